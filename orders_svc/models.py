"""The orders table, exactly ``orders(id, user_id, product_id, quantity)`` as in the seed report.

``user_id`` and ``product_id`` are plain indexed integers: the users and products live in other
databases, and Django has no foreign keys across databases. The orders service checks them in
Python (see ``rules`` and ``services``).
"""

from django.db import models

from common.models import WriteLedger
from config.db_router import database_for_app


class Order(models.Model):
    user_id = models.BigIntegerField()
    product_id = models.BigIntegerField()
    quantity = models.IntegerField()

    class Meta:
        db_table = "orders"
        ordering = ["id"]
        # One per ordering the list offers, id breaking ties (common.data.keyset); the first
        # two also serve the lookups by user and product (the deletion guards, the filters).
        indexes = [
            models.Index(fields=["user_id", "id"], name="orders_user_id_id"),
            models.Index(fields=["product_id", "id"], name="orders_product_id_id"),
            models.Index(fields=["quantity", "id"], name="orders_quantity_id"),
        ]
        verbose_name = "order"

    def __str__(self) -> str:
        return (
            f"Order {self.id}: {self.quantity} x product {self.product_id} for user {self.user_id}"
        )


class DeletionEpoch(models.Model):
    """How many times a user or product deletion passed the orders' reference guard.

    A single row. The guard bumps it inside the transaction that holds the orders lock while the
    user or product is deleted; an ingest reads it before writing users and products and again
    before each orders chunk. If it has not moved, nothing was deleted in between, so the users
    and products the ingest itself just inserted still exist and need no lookup.
    """

    value = models.BigIntegerField(default=0)

    class Meta:
        db_table = "orders_deletion_epoch"

    def __str__(self) -> str:
        return str(self.value)


class OrderWriteLedger(WriteLedger):
    """Bulk-ingest chunks already written to the orders table (see common.models.WriteLedger)."""

    class Meta(WriteLedger.Meta):
        db_table = "orders_write_ledger"


#: The alias this service reads and writes (see config.db_router).
ORDERS_DB = database_for_app(Order._meta.app_label)
