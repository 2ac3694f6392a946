"""Query-string filters for ``GET /orders/``."""

from django_filters import rest_framework as filters

from common.http.filters import BoundedIntegerFilter, IdFilter
from orders_svc.models import Order


class OrderFilter(filters.FilterSet):
    user_id = IdFilter(help_text="Orders of this user.")
    product_id = IdFilter(help_text="Orders of this product.")
    min_quantity = BoundedIntegerFilter(
        field_name="quantity", lookup_expr="gte", help_text="Quantity at least this."
    )
    max_quantity = BoundedIntegerFilter(
        field_name="quantity", lookup_expr="lte", help_text="Quantity at most this."
    )

    class Meta:
        model = Order
        fields = ["user_id", "product_id", "min_quantity", "max_quantity"]
