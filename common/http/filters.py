"""Filters that validate ids and counts before they reach a database.

django-filter's ``NumberFilter`` parses into a ``Decimal`` with no bounds, so ``?user_id=1e40``
would overflow SQLite's 64-bit integers and fail inside the database. These fields are bounded:
anything out of range is a 400 that says so.
"""

from django import forms
from django_filters import rest_framework as filters

from common.data.validation import MAX_BIGINT


class IdFilter(filters.Filter):
    """An id: a whole number from 1 to 2**63-1."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_BIGINT)
        super().__init__(*args, **kwargs)


class BoundedIntegerFilter(filters.Filter):
    """A whole number within the range of a 64-bit column."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("min_value", -MAX_BIGINT)
        kwargs.setdefault("max_value", MAX_BIGINT)
        super().__init__(*args, **kwargs)
