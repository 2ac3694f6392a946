"""Query-string filters for ``GET /orders/`` (and its export); each uses an index."""

from common.http.filters import BoundedIntegerFilter, IdFilter, IdListFilter, RecordFilterSet
from orders_svc.models import Order


class OrderFilter(RecordFilterSet):
    user_id = IdFilter(help_text="Orders of this user.")
    user_id__in = IdListFilter(
        field_name="user_id", help_text="Orders of any of these users, comma-separated."
    )
    product_id = IdFilter(help_text="Orders of this product.")
    product_id__in = IdListFilter(
        field_name="product_id", help_text="Orders of any of these products, comma-separated."
    )
    min_quantity = BoundedIntegerFilter(
        field_name="quantity", lookup_expr="gte", help_text="Quantity at least this."
    )
    max_quantity = BoundedIntegerFilter(
        field_name="quantity", lookup_expr="lte", help_text="Quantity at most this."
    )

    class Meta:
        model = Order
        fields = [
            "id__in",
            "min_id",
            "max_id",
            "user_id",
            "user_id__in",
            "product_id",
            "product_id__in",
            "min_quantity",
            "max_quantity",
        ]
