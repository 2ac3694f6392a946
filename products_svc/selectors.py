"""Read access to products: the products service's public query API.

Other services (orders) ask here whether products exist, with sets of ids and one query per
call , never one per record; they never import the products model.
"""

from collections.abc import Iterable, Iterator
from decimal import Decimal

from django.db.models import QuerySet

from common.data import bulk
from common.data.ids import ids_left
from common.data.queries import existing_ids, field_by_id
from common.data.streams import keyset_chunks
from products_svc.models import Product, ProductWriteLedger


def product_list() -> QuerySet[Product]:
    """All products, in id order (the API filters and paginates it)."""
    return Product.objects.all()


#: The fields of a product in an export, the id first: what ``POST /ingest/`` takes back.
PRODUCT_EXPORT_FIELDS = ("id", "name", "price")


def product_export_rows(
    *, products: QuerySet[Product], chunk_size: int
) -> Iterator[list[tuple[int, str, Decimal]]]:
    """``products`` (``product_list()``, filtered) as ``PRODUCT_EXPORT_FIELDS`` tuples, in id
    order, ``chunk_size`` at a time: one short query per chunk (``common.data.streams``).
    Prices are exact ``Decimal``s with their two places (``Decimal("1000.00")``)."""
    return keyset_chunks(products, fields=PRODUCT_EXPORT_FIELDS, chunk_size=chunk_size)


def existing_product_ids(ids: Iterable[int]) -> set[int]:
    """Which of ``ids`` belong to a stored product that an order may point at.

    Rows an atomic ingest wrote count only once the whole batch has committed: until then (or
    until an interrupted batch is undone, see ``ingest.atomic``) they are left out, so that no
    order comes to depend on a row that is about to be deleted again.
    """
    found = existing_ids(Product, ids)
    if found:
        found -= bulk.ids_of_unfinished_writes(ProductWriteLedger)
    return found


def product_ids_left(*, above: int = 0) -> int:
    """How many new products without an id of their own can still get one (ids are given above
    every product id used before, and above ``above``: the largest explicit id of a batch)."""
    return ids_left(Product, above=above)


def product_names(ids: Iterable[int]) -> dict[int, str]:
    """The name of each of ``ids`` that is a stored product: one query (the orders admin shows
    them beside each order)."""
    return field_by_id(Product, ids, "name")
