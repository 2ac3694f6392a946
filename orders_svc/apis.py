"""HTTP API of the orders service: ``/orders/`` and ``/orders/export/`` (thin: rules validate,
services write)."""

from common.http.export import ExportTable, ExportView, export_docs
from common.http.viewsets import ServiceViewSet, crud_docs
from orders_svc import selectors, services
from orders_svc.filters import OrderFilter
from orders_svc.serializers import OrderSerializer


@crud_docs(
    "order",
    OrderSerializer,
    list_description="Paginated (`page`, `page_size`), filterable by user, product and "
    "quantity, sortable with `ordering` (e.g. `?ordering=-quantity`).",
    invalid_example='{"quantity": ["Ensure this value is greater than 0."], '
    '"product_id": ["No product has this id."]}',
    write_description="The user and the product must exist in their services' databases "
    "(checked on every create and on every change of `user_id` or `product_id`).",
)
class OrderViewSet(ServiceViewSet):
    """Orders: a quantity of one product for one user."""

    serializer_class = OrderSerializer
    filterset_class = OrderFilter
    ordering_fields = ["id", "user_id", "product_id", "quantity"]

    create_record = staticmethod(services.order_create)
    update_record = staticmethod(services.order_update)
    delete_record = staticmethod(services.order_delete)

    def get_queryset(self):
        return selectors.order_list()


class OrderExportView(ExportView):
    """``GET /orders/export/``: every order (or those the filters select), streamed in id
    order."""

    table = ExportTable(
        "orders", record="order", fields=selectors.ORDER_EXPORT_FIELDS, example=(1, 1, 1, 2)
    )
    filterset_class = OrderFilter

    def get_queryset(self):
        return selectors.order_list()

    def read_rows(self, queryset, *, chunk_size: int):
        return selectors.order_export_rows(orders=queryset, chunk_size=chunk_size)

    @export_docs(table, OrderFilter)
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)
