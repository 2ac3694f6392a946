"""Writes to the orders database, after checking references with the other two services.

Every order write runs in one orders transaction that first locks out concurrent deletions of
the users and products it points at (``common.db``), then asks the users and products services
whether the ids exist (their public selectors), then writes. A user or product deleted at the
same moment either finishes first (the order is refused) or waits for the order and then sees it
(the deletion is refused with a 409).
"""

from collections.abc import Collection, Iterator, Sequence
from collections.abc import Set as AbstractSet
from contextlib import contextmanager

from django.db import transaction

from common import bulk
from common.db import lock_for_checked_insert, lock_out_inserts
from common.exceptions import RecordInvalid, RecordNotFound
from orders_svc import rules, selectors
from orders_svc.models import ORDERS_DB, Order
from products_svc.selectors import existing_product_ids
from users_svc.selectors import existing_user_ids

ORDERS_TABLE = Order._meta.db_table

OrderRow = tuple[int | None, int, int, int]  # (id or None, user_id, product_id, quantity)


def _require_references(user_id: int, product_id: int) -> None:
    errors = rules.check_references(
        user_id, product_id, existing_user_ids([user_id]), existing_product_ids([product_id])
    )
    if errors:
        raise RecordInvalid(errors)


def order_create(*, user_id: int, product_id: int, quantity: int) -> Order:
    """Store an order for an existing user and product; raise ``RecordInvalid`` otherwise."""
    with transaction.atomic(using=ORDERS_DB):
        lock_for_checked_insert(ORDERS_DB, ORDERS_TABLE)
        _require_references(user_id, product_id)
        return Order.objects.create(user_id=user_id, product_id=product_id, quantity=quantity)


def order_update(order: Order, *, user_id: int, product_id: int, quantity: int) -> Order:
    """Replace an order's fields; a changed user or product is checked like a new order."""
    with transaction.atomic(using=ORDERS_DB):
        lock_for_checked_insert(ORDERS_DB, ORDERS_TABLE)
        _require_references(user_id, product_id)
        updated = Order.objects.filter(id=order.id).update(
            user_id=user_id, product_id=product_id, quantity=quantity
        )
        if not updated:
            raise RecordNotFound(f"Order {order.id} does not exist.")
    order.user_id, order.product_id, order.quantity = user_id, product_id, quantity
    return order


def order_delete(order: Order) -> None:
    """Delete an order (nothing references orders)."""
    with transaction.atomic(using=ORDERS_DB):
        Order.objects.filter(id=order.id).delete()


def reference_errors(
    rows: Sequence[OrderRow],
    *,
    pending_user_ids: AbstractSet[int] = frozenset(),
    pending_product_ids: AbstractSet[int] = frozenset(),
) -> dict[int, dict[str, list[str]]]:
    """Errors by row position for orders whose user or product does not exist.

    One query to the users service and one to the products service for the whole set of rows
    (per 10,000 distinct ids). ``pending_*`` are ids the caller is inserting in the same
    not-yet-committed batch, which count as existing.
    """
    users = existing_user_ids({row[1] for row in rows}) | pending_user_ids
    products = existing_product_ids({row[2] for row in rows}) | pending_product_ids
    errors = {}
    for position, row in enumerate(rows):
        if row[1] not in users or row[2] not in products:
            errors[position] = rules.check_references(row[1], row[2], users, products)
    return errors


def orders_bulk_insert(
    rows: Sequence[OrderRow],
    *,
    ids_above: int = 0,
    pending_user_ids: AbstractSet[int] = frozenset(),
    pending_product_ids: AbstractSet[int] = frozenset(),
) -> tuple[list[int | None], dict[int, dict[str, list[str]]]]:
    """Check references and insert checked order rows in one orders transaction (bulk ingest).

    Returns each row's stored id (``None`` if it was not written) and, by row position, the
    reference errors of the rows that were refused; a ``None`` without errors is a duplicate id.
    """
    with transaction.atomic(using=ORDERS_DB):
        lock_for_checked_insert(ORDERS_DB, ORDERS_TABLE)
        errors = reference_errors(
            rows, pending_user_ids=pending_user_ids, pending_product_ids=pending_product_ids
        )
        accepted = [row for position, row in enumerate(rows) if position not in errors]
        stored = iter(bulk.insert_new_in_transaction(Order, accepted, ids_above=ids_above))
    ids = [None if position in errors else next(stored) for position in range(len(rows))]
    return ids, errors


@contextmanager
def _hold_references(field: str, ids: Collection[int]) -> Iterator[dict[str, int]]:
    with transaction.atomic(using=ORDERS_DB):
        lock_out_inserts(ORDERS_DB, ORDERS_TABLE)
        yield {"orders": selectors.count_orders_referencing(field, ids)}


def hold_user_references(ids: Collection[int]):
    """Deletion guard for users (see ``common.references``): orders per user, locked."""
    return _hold_references("user_id", ids)


def hold_product_references(ids: Collection[int]):
    """Deletion guard for products (see ``common.references``): orders per product, locked."""
    return _hold_references("product_id", ids)


def orders_delete_ids(ids: Sequence[int]) -> None:
    """Delete orders by id: only to undo a failed atomic ingest."""
    with transaction.atomic(using=ORDERS_DB):
        bulk.delete_ids(Order, ids)


def lock_orders_for_checked_insert() -> None:
    """Take the lock an order writer takes before checking references (inside a transaction)."""
    lock_for_checked_insert(ORDERS_DB, ORDERS_TABLE)
