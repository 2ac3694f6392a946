"""Writes to the orders database, after checking references with the other two services.

Every order write runs in one orders transaction that first locks out concurrent deletions of
the users and products it points at (``common.db``), then asks the users and products services
whether the ids exist (their public selectors), then writes. A user or product deleted at the
same moment either finishes first (the order is refused) or waits for the order and then sees it
(the deletion is refused with a 409).
"""

from collections.abc import Collection, Iterator
from contextlib import contextmanager

from django.db import transaction

from common.db import lock_for_checked_insert, lock_out_inserts
from common.exceptions import RecordInvalid, RecordNotFound
from orders_svc import rules, selectors
from orders_svc.models import ORDERS_DB, Order
from products_svc.selectors import existing_product_ids
from users_svc.selectors import existing_user_ids

ORDERS_TABLE = Order._meta.db_table


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
