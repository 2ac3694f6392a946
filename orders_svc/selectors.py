"""Read access to orders: the orders service's public query API."""

from collections.abc import Collection, Iterable

from django.db.models import Count, QuerySet

from common.queries import existing_ids
from orders_svc.models import Order


def order_list() -> QuerySet[Order]:
    """All orders, in id order (the API filters and paginates it)."""
    return Order.objects.all()


def count_orders_referencing(field: str, ids: Collection[int]) -> int:
    """How many orders have ``field`` (``user_id`` or ``product_id``) among ``ids``."""
    assert field in ("user_id", "product_id"), f"orders reference users and products, not {field}"
    return Order.objects.filter(**{f"{field}__in": list(ids)}).aggregate(n=Count("id"))["n"]


def existing_order_ids(ids: Iterable[int]) -> set[int]:
    """Which of ``ids`` belong to a stored order."""
    return existing_ids(Order, ids)
