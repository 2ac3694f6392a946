"""Query-string filters for ``GET /users/``."""

from django_filters import rest_framework as filters

from users_svc.models import User


class UserFilter(filters.FilterSet):
    name = filters.CharFilter(lookup_expr="iexact", help_text="Exact name, ignoring case.")
    name_contains = filters.CharFilter(
        field_name="name", lookup_expr="icontains", help_text="Part of the name, ignoring case."
    )
    email = filters.CharFilter(lookup_expr="iexact", help_text="Exact email, ignoring case.")

    class Meta:
        model = User
        fields = ["name", "name_contains", "email"]
