"""HTTP API of the users service: ``/users/`` and ``/users/export/`` (thin: validation in rules,
writes in services)."""

from common.http.export import ExportTable, ExportView, export_docs
from common.http.viewsets import ServiceViewSet, crud_docs
from users_svc import selectors, services
from users_svc.filters import UserFilter
from users_svc.serializers import UserSerializer


@crud_docs(
    "user",
    UserSerializer,
    list_description="Paginated (`page`, `page_size`), filterable by name and email, "
    "sortable with `ordering` (e.g. `?ordering=-name`).",
    invalid_example='{"name": ["This field may not be blank."], '
    '"email": ["Enter a valid email address."]}',
    referenced_by="orders",
)
class UserViewSet(ServiceViewSet):
    """Users: name and email of the people who place orders."""

    serializer_class = UserSerializer
    filterset_class = UserFilter
    ordering_fields = ["id", "name", "email"]

    create_record = staticmethod(services.user_create)
    update_record = staticmethod(services.user_update)
    delete_record = staticmethod(services.user_delete)

    def get_queryset(self):
        return selectors.user_list()


class UserExportView(ExportView):
    """``GET /users/export/``: every user (or those the filters select), streamed in id order."""

    table = ExportTable(
        "users",
        record="user",
        fields=selectors.USER_EXPORT_FIELDS,
        example=(1, "Alice", "alice@example.com"),
    )
    filterset_class = UserFilter

    def get_queryset(self):
        return selectors.user_list()

    def read_rows(self, queryset, *, chunk_size: int):
        return selectors.user_export_rows(users=queryset, chunk_size=chunk_size)

    @export_docs(table, UserFilter)
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)
