"""Query-string filters for ``GET /products/`` (and its export).

Exact filters, ids and price bounds use the indexes; ``name_contains`` and ``search`` read every
row (a ``LIKE '%...%'``).
"""

from django_filters import rest_framework as filters

from common.http.filters import AmountFilter, RecordFilterSet
from products_svc import rules
from products_svc.models import Product

_PRICE = {"max_digits": rules.PRICE_MAX_DIGITS, "decimal_places": rules.PRICE_DECIMAL_PLACES}


class ProductFilter(RecordFilterSet):
    name = filters.CharFilter(lookup_expr="iexact", help_text="Exact name, ignoring case.")
    name_contains = filters.CharFilter(
        field_name="name", lookup_expr="icontains", help_text="Part of the name, ignoring case."
    )
    search = filters.CharFilter(
        field_name="name", lookup_expr="icontains", help_text="Part of the name, ignoring case."
    )
    min_price = AmountFilter(
        field_name="price", lookup_expr="gte", help_text="Price at least this.", **_PRICE
    )
    max_price = AmountFilter(
        field_name="price", lookup_expr="lte", help_text="Price at most this.", **_PRICE
    )

    class Meta:
        model = Product
        fields = [
            "id__in",
            "min_id",
            "max_id",
            "name",
            "name_contains",
            "search",
            "min_price",
            "max_price",
        ]
