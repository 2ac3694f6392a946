"""Page-number pagination with a client-chosen page size (``?page=2&page_size=100``).

Page numbers and sizes are ASCII digits, as every other number the API reads: Python's ``int``
also takes ``"٢"`` (an Arabic-Indic 2), which DRF and Django would then serve as page 2. Such a
value is a 400 naming the parameter.
"""

from django.conf import settings
from rest_framework import pagination
from rest_framework.exceptions import ValidationError


def _ascii_digits(request, name: str) -> None:
    value = request.query_params.get(name)
    if value is not None and value != "last" and not (value.isascii() and value.isdigit()):
        raise ValidationError({name: ["Must be a whole number written with the digits 0-9."]})


class PageNumberPagination(pagination.PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = settings.API_MAX_PAGE_SIZE

    def paginate_queryset(self, queryset, request, view=None):
        _ascii_digits(request, self.page_query_param)
        _ascii_digits(request, self.page_size_query_param)
        return super().paginate_queryset(queryset, request, view)
