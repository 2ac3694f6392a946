"""Query-string filters for ``GET /users/`` (and its export).

Exact filters and ids use the indexes; ``name_contains`` and ``search`` read every row (a
``LIKE '%...%'``), which is fine for a page of a filtered list but not for a million users.
"""

from django.db.models import Q
from django_filters import rest_framework as filters

from common.http.filters import RecordFilterSet
from users_svc.models import User


class UserFilter(RecordFilterSet):
    name = filters.CharFilter(lookup_expr="iexact", help_text="Exact name, ignoring case.")
    name_contains = filters.CharFilter(
        field_name="name", lookup_expr="icontains", help_text="Part of the name, ignoring case."
    )
    email = filters.CharFilter(lookup_expr="iexact", help_text="Exact email, ignoring case.")
    search = filters.CharFilter(
        method="search_text", help_text="Part of the name or of the email, ignoring case."
    )

    class Meta:
        model = User
        fields = ["id__in", "min_id", "max_id", "name", "name_contains", "email", "search"]

    def search_text(self, queryset, name, value):
        return queryset.filter(Q(name__icontains=value) | Q(email__icontains=value))
