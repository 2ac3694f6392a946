"""Writes to the products database. Callers pass values already checked by ``rules``."""

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from django.db import transaction

from common.data import bulk
from common.data.references import guard_deletion
from common.exceptions import RecordNotFound
from products_svc.models import PRODUCTS_DB, Product, ProductWriteLedger


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


def products_bulk_insert(
    rows: Sequence[tuple[int | None, str, Decimal]],
    *,
    ids_above: int = 0,
    ledger_key: str | None = None,
) -> list[int | None]:
    """Insert checked ``(id or None, name, price)`` rows in one transaction (bulk ingest).

    Returns each row's stored id, or ``None`` where its explicit id already exists. A chunk
    written before under ``ledger_key`` is not written again (its recorded ids come back).
    """
    ledger = (ProductWriteLedger, ledger_key) if ledger_key else None
    return bulk.insert_new(Product, rows, ids_above=ids_above, ledger=ledger)


def products_forget_ledger(key_prefix: str) -> None:
    """Drop the write-ledger rows of a finished job (see ``common.models.WriteLedger``)."""
    bulk.forget_outcomes(ProductWriteLedger, key_prefix)


def products_forget_ledger_before(*, cutoff: datetime) -> int:
    """Delete the write-ledger rows older than ``cutoff`` (what crashed runs left); their count.

    One indexed existence check when there is none, so that the reaper can call it often
    without taking the database's write lock for nothing.
    """
    stale = ProductWriteLedger.objects.filter(created_at__lt=cutoff)
    return stale.delete()[0] if stale.exists() else 0


def products_delete_many(ids: Sequence[int]) -> None:
    """Delete products by id, all or none; raise ``RecordReferenced`` if orders point at any."""
    with guard_deletion("products", ids), transaction.atomic(using=PRODUCTS_DB):
        bulk.delete_ids(Product, ids)
