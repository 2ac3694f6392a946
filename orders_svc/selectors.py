"""Read access to orders: the orders service's public query API."""

from collections.abc import Collection, Iterable, Iterator

from django.db.models import QuerySet

from common.data.ids import ids_left
from common.data.queries import count_by, existing_ids
from common.data.streams import keyset_chunks
from orders_svc.models import DeletionEpoch, Order


def order_list() -> QuerySet[Order]:
    """All orders, in id order (the API filters and paginates it)."""
    return Order.objects.all()


#: The fields of an order in an export, the id first: what ``POST /ingest/`` takes back.
ORDER_EXPORT_FIELDS = ("id", "user_id", "product_id", "quantity")


def order_export_rows(
    *, orders: QuerySet[Order], chunk_size: int
) -> Iterator[list[tuple[int, int, int, int]]]:
    """``orders`` (``order_list()``, filtered) as ``ORDER_EXPORT_FIELDS`` tuples, in id order,
    ``chunk_size`` at a time: one short query per chunk (``common.data.streams``)."""
    return keyset_chunks(orders, fields=ORDER_EXPORT_FIELDS, chunk_size=chunk_size)


def orders_per_reference(field: str, ids: Collection[int]) -> dict[int, int]:
    """``{id: number of orders}`` for those of ``ids`` (users or products, by ``field``:
    ``user_id`` or ``product_id``) that at least one order points at: one query."""
    assert field in ("user_id", "product_id"), f"orders reference users and products, not {field}"
    return count_by(Order, field, ids)


def existing_order_ids(ids: Iterable[int]) -> set[int]:
    """Which of ``ids`` belong to a stored order."""
    return existing_ids(Order, ids)


def order_ids_left(*, above: int = 0) -> int:
    """How many new orders without an id of their own can still get one (ids are given above
    every order id used before, and above ``above``: the largest explicit id of a batch)."""
    return ids_left(Order, above=above)


def deletion_epoch() -> int:
    """The current deletion epoch (see ``DeletionEpoch``): equal readings mean no user or product
    was deleted in between."""
    return DeletionEpoch.objects.filter(id=1).values_list("value", flat=True).first() or 0


def dangling_orders(batch_size: int = 10_000) -> Iterator[tuple[int, int, int, list[str]]]:
    """Orders whose user or product does not exist (rows changed behind the service's back):
    ``(order id, user id, product id, ["user" and/or "product"])``, in id order.

    Reads the orders in batches of ``batch_size`` and asks the users and products services
    once per batch, never once per order.
    """
    from products_svc.selectors import existing_product_ids
    from users_svc.selectors import existing_user_ids

    last_id = 0
    while True:
        batch = list(
            Order.objects.filter(id__gt=last_id)
            .order_by("id")
            .values_list("id", "user_id", "product_id")[:batch_size]
        )
        if not batch:
            return
        users = existing_user_ids({user_id for _, user_id, _ in batch})
        products = existing_product_ids({product_id for _, _, product_id in batch})
        for order_id, user_id, product_id in batch:
            missing = [
                kind
                for kind, present in (
                    ("user", user_id in users),
                    ("product", product_id in products),
                )
                if not present
            ]
            if missing:
                yield order_id, user_id, product_id, missing
        last_id = batch[-1][0]
