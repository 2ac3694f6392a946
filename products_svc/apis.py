"""HTTP API of the products service: ``/products/`` and ``/products/export/`` (thin: rules
validate, services write)."""

from decimal import Decimal

from common.http.export import ExportTable, ExportView, export_docs
from common.http.viewsets import ServiceViewSet, crud_docs
from products_svc import selectors, services
from products_svc.filters import ProductFilter
from products_svc.serializers import ProductSerializer


@crud_docs(
    "product",
    ProductSerializer,
    list_description="Paginated (`page`, `page_size`), filterable by name and price range, "
    "sortable with `ordering` (e.g. `?ordering=-price`).",
    invalid_example='{"price": ["Ensure this value is greater than 0."]}',
    referenced_by="orders",
)
class ProductViewSet(ServiceViewSet):
    """Products: what can be ordered, and its price."""

    serializer_class = ProductSerializer
    filterset_class = ProductFilter
    ordering_fields = ["id", "name", "price"]

    create_record = staticmethod(services.product_create)
    update_record = staticmethod(services.product_update)
    delete_record = staticmethod(services.product_delete)

    def get_queryset(self):
        return selectors.product_list()


class ProductExportView(ExportView):
    """``GET /products/export/``: every product (or those the filters select), streamed in id
    order."""

    table = ExportTable(
        "products",
        record="product",
        fields=selectors.PRODUCT_EXPORT_FIELDS,
        example=(1, "Laptop", Decimal("1000.00")),
    )
    filterset_class = ProductFilter

    def get_queryset(self):
        return selectors.product_list()

    def read_rows(self, queryset, *, chunk_size: int):
        return selectors.product_export_rows(products=queryset, chunk_size=chunk_size)

    @export_docs(table, ProductFilter)
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)
