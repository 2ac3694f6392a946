"""Read access to orders: the orders service's public query API."""

from collections.abc import Collection, Iterable

from django.db.models import QuerySet

from common.queries import count_matching, existing_ids
from orders_svc.models import DeletionEpoch, Order


def order_list() -> QuerySet[Order]:
    """All orders, in id order (the API filters and paginates it)."""
    return Order.objects.all()


def count_orders_referencing(field: str, ids: Collection[int]) -> int:
    """How many orders have ``field`` (``user_id`` or ``product_id``) among ``ids``."""
    assert field in ("user_id", "product_id"), f"orders reference users and products, not {field}"
    return count_matching(Order, field, ids)


def existing_order_ids(ids: Iterable[int]) -> set[int]:
    """Which of ``ids`` belong to a stored order."""
    return existing_ids(Order, ids)


def deletion_epoch() -> int:
    """The current deletion epoch (see ``DeletionEpoch``): equal readings mean no user or product
    was deleted in between."""
    return DeletionEpoch.objects.filter(id=1).values_list("value", flat=True).first() or 0
