"""HTTP API of the products service: ``/products/`` (thin: rules validate, services write)."""

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
