"""HTTP API of the users service: ``/users/`` (thin: validation in rules, writes in services)."""

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
