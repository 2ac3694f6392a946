"""Read access to products: the products service's public query API.

Other services (orders) ask here whether products exist, with sets of ids and one query per
call , never one per record; they never import the products model.
"""

from collections.abc import Iterable

from django.db.models import QuerySet

from common.data.queries import existing_ids, field_by_id
from products_svc.models import Product


def product_list() -> QuerySet[Product]:
    """All products, in id order (the API filters and paginates it)."""
    return Product.objects.all()


def existing_product_ids(ids: Iterable[int]) -> set[int]:
    """Which of ``ids`` belong to a stored product."""
    return existing_ids(Product, ids)


def product_names(ids: Iterable[int]) -> dict[int, str]:
    """The name of each of ``ids`` that is a stored product: one query (the orders admin shows
    them beside each order)."""
    return field_by_id(Product, ids, "name")
