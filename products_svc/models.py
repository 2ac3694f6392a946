"""The products table, exactly ``products(id, name, price)`` as in the seed report."""

from django.db import models

from common.data.fields import MoneyField
from common.models import WriteLedger
from config.db_router import database_for_app


class Product(models.Model):
    name = models.CharField(max_length=255)
    price = MoneyField(max_digits=12, decimal_places=2)

    class Meta:
        db_table = "products"
        ordering = ["id"]
        # One per ordering the list offers, id breaking ties (common.data.keyset).
        indexes = [
            models.Index(fields=["name", "id"], name="products_name_id"),
            models.Index(fields=["price", "id"], name="products_price_id"),
        ]
        verbose_name = "product"

    def __str__(self) -> str:
        return f"{self.name} ({self.price})"


class ProductWriteLedger(WriteLedger):
    """Bulk-ingest chunks already written to the products table (see common.models.WriteLedger)."""

    class Meta(WriteLedger.Meta):
        db_table = "products_write_ledger"


#: The alias this service reads and writes (see config.db_router).
PRODUCTS_DB = database_for_app(Product._meta.app_label)
