"""Indexes for the orderings the list offers: ``(user_id, id)``, ``(product_id, id)``,
``(quantity, id)`` (see common.data.keyset).

The composite indexes replace the single-column ones of ``db_index=True``: they serve the same
lookups by user and product. Dropping ``db_index`` through ``AlterField`` would make Django
rebuild the whole table on SQLite (twice, and with the columns in another order than the
report's ``orders(id, user_id, product_id, quantity)``), so the old indexes are dropped by name
and only the model state is altered.
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("orders_svc", "0003_write_ledger"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="order", name="product_id", field=models.BigIntegerField()
                ),
                migrations.AlterField(
                    model_name="order", name="user_id", field=models.BigIntegerField()
                ),
            ],
            database_operations=[
                # The names Django gave the db_index indexes (the same on SQLite and PostgreSQL).
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "orders_user_id_7e2523fb"',
                    'CREATE INDEX "orders_user_id_7e2523fb" ON "orders" ("user_id")',
                ),
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "orders_product_id_410f7af4"',
                    'CREATE INDEX "orders_product_id_410f7af4" ON "orders" ("product_id")',
                ),
            ],
        ),
        migrations.AddIndex(
            model_name="order",
            index=models.Index(fields=["user_id", "id"], name="orders_user_id_id"),
        ),
        migrations.AddIndex(
            model_name="order",
            index=models.Index(fields=["product_id", "id"], name="orders_product_id_id"),
        ),
        migrations.AddIndex(
            model_name="order",
            index=models.Index(fields=["quantity", "id"], name="orders_quantity_id"),
        ),
    ]
