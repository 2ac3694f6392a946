"""Writes to the products database. Callers pass values already checked by ``rules``."""

from decimal import Decimal

from django.db import transaction

from common.exceptions import RecordNotFound
from common.references import guard_deletion
from products_svc.models import PRODUCTS_DB, Product


def product_create(*, name: str, price: Decimal) -> Product:
    """Store a new product; the database assigns its id."""
    with transaction.atomic(using=PRODUCTS_DB):
        return Product.objects.create(name=name, price=price)


def product_update(product: Product, *, name: str, price: Decimal) -> Product:
    """Replace a product's name and price."""
    with transaction.atomic(using=PRODUCTS_DB):
        if not Product.objects.filter(id=product.id).update(name=name, price=price):
            raise RecordNotFound(f"Product {product.id} does not exist.")
    product.name, product.price = name, price
    return product


def product_delete(product: Product) -> None:
    """Delete a product no order points at; raise ``RecordReferenced`` (409) otherwise."""
    with guard_deletion("products", [product.id]), transaction.atomic(using=PRODUCTS_DB):
        Product.objects.filter(id=product.id).delete()
