"""Writes to the products database. Callers pass values already checked by ``rules``."""

from collections.abc import Collection, Sequence
from contextlib import nullcontext
from datetime import datetime
from decimal import Decimal

from django.db import transaction

from common.data import bulk, changes
from common.data.ids import assigning_id
from common.data.preconditions import Precondition, check_stored
from common.data.references import guard_deletion, hold_references
from common.exceptions import RecordNotFound
from products_svc import rules
from products_svc.models import PRODUCTS_DB, Product, ProductWriteLedger


def product_create(*, name: str, price: Decimal) -> Product:
    """Store a new product; the database assigns its id (``IdsExhausted`` if none is left)."""
    with assigning_id(Product), transaction.atomic(using=PRODUCTS_DB):
        return Product.objects.create(name=name, price=price)


def product_update(
    product: Product, *, name: str, price: Decimal, precondition: Precondition | None = None
) -> Product:
    """Replace a product's name and price (if ``precondition`` accepts the stored product)."""
    with transaction.atomic(using=PRODUCTS_DB):
        check_stored(Product, product.id, precondition)
        if not Product.objects.filter(id=product.id).update(name=name, price=price):
            raise RecordNotFound(f"Product {product.id} does not exist.")
    product.name, product.price = name, price
    return product


def product_delete(product: Product, *, precondition: Precondition | None = None) -> None:
    """Delete a product no order points at; raise ``RecordReferenced`` (409) otherwise, and
    ``RecordNotFound`` if it is gone already (if ``precondition`` accepts the stored product)."""
    with guard_deletion("products", [product.id]), transaction.atomic(using=PRODUCTS_DB):
        check_stored(Product, product.id, precondition)
        # Gone since the view read it (another request deleted it): a 404, as it is afterwards,
        # so that each deletion is reported by one request only.
        if not Product.objects.filter(id=product.id).delete()[0]:
            raise RecordNotFound(f"Product {product.id} does not exist.")


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


# --- bulk changes (ingest actions upsert, update, delete; see common.data.changes) ----------

_NOT_FOUND = {"id": ["No product has this id."]}


def _ledger(key: str | None):
    return (ProductWriteLedger, key) if key else None


def products_bulk_upsert(
    rows: Sequence[tuple], *, ledger_key: str | None = None, before: list | None = None
) -> changes.Outcome:
    """Insert or replace checked whole rows (id first, every id given), in one transaction."""
    with transaction.atomic(using=PRODUCTS_DB):
        return changes.with_ledger(
            _ledger(ledger_key), lambda: changes.apply_upserts(Product, rows, before=before)
        )


def products_bulk_update(
    patches: Sequence[tuple], *, ledger_key: str | None = None, before: list | None = None
) -> changes.Outcome:
    """Change the given fields of stored products (``(id, value or UNSET, ...)``, in the rule's
    order); each merged record is checked by ``rules.check_product``, in one transaction."""
    with transaction.atomic(using=PRODUCTS_DB):
        return changes.with_ledger(
            _ledger(ledger_key),
            lambda: changes.apply_updates(
                Product, patches, rule=rules.check_product, not_found=_NOT_FOUND, before=before
            ),
        )


def products_bulk_delete(
    ids: Sequence[int], *, ledger_key: str | None = None, before: list | None = None
) -> changes.Outcome:
    """Delete the products no order points at; refuse the others, saying how many orders do.

    The deletion guards hold their locks until the deletion commits, as for one product.
    """
    with hold_references("products", ids) as referenced, transaction.atomic(using=PRODUCTS_DB):
        return changes.with_ledger(
            _ledger(ledger_key),
            lambda: changes.apply_deletions(
                Product, ids, referenced=referenced, not_found=_NOT_FOUND, before=before
            ),
        )


# --- markers of atomic ingest batches (see ingest.atomic) ------------------------------------


def products_mark_batch(
    key: str, *, ids: Sequence[int], ledger_keys: Sequence[str], before: Sequence[tuple] = ()
) -> None:
    """Record, in the caller's products transaction, the rows an atomic batch inserted there and
    the earlier state of those it replaced or deleted."""
    bulk.record_marker((ProductWriteLedger, key), ids, ledger_keys, before)


def products_batch_keys(prefix: str) -> list[str]:
    """The keys of the batch markers in the products ledger (one indexed lookup)."""
    return bulk.ledger_keys_with_prefix(ProductWriteLedger, prefix)


def products_batch_ids(key: str) -> list[int] | None:
    """The products ids the batch marker ``key`` lists, or None if there is none."""
    return bulk.marked_ids((ProductWriteLedger, key))


def products_batch_earlier_ids(key: str) -> list[int] | None:
    """The products ids whose earlier state the batch marker ``key`` keeps (rows the batch
    replaced, updated or deleted), or None if there is no such marker."""
    return bulk.marked_earlier_ids((ProductWriteLedger, key))


def products_undo_batch(key: str, *, keep: Collection[int] = frozenset()) -> list[int]:
    """Delete the products an interrupted batch inserted (but ``keep``), put back those it replaced,
    updated or deleted, and drop its marker, all or none.

    The deletion guards run as for any deletion: ``RecordReferenced`` if an order points at one
    of the ids to delete. Returns the ids deleted.
    """
    keep = frozenset(keep)
    ids = [i for i in (products_batch_ids(key) or ()) if i not in keep]
    guard = guard_deletion("products", ids) if ids else nullcontext()
    with guard, transaction.atomic(using=PRODUCTS_DB):
        return changes.undo_marked_batch(Product, (ProductWriteLedger, key), keep=keep)


def products_recorded_ledger_keys(keys: Sequence[str]) -> set[str]:
    """Which of the write-ledger ``keys`` are recorded (chunks a re-run will not write again)."""
    return bulk.recorded_keys(ProductWriteLedger, keys)


def products_forget_batch(key: str) -> None:
    """Drop a batch marker (the batch is complete), in its own transaction."""
    bulk.forget_keys(ProductWriteLedger, [key])
