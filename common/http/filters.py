"""Filters that validate ids, counts and amounts before they reach a database.

django-filter's ``NumberFilter`` parses into a ``Decimal`` with no bounds, so ``?user_id=1e40``
would overflow SQLite's 64-bit integers and fail inside the database. These fields are bounded:
anything out of range is a 400 that says so.

They also take ASCII digits only, like the rules of the request bodies
(``common.data.validation``): Django's form fields parse with ``int()`` and ``Decimal()``, which
read other scripts' digits and underscores (``int("١٠") == 10``, ``int("1_0") == 10``), so
``?user_id=١٠`` would quietly mean user 10.
"""

import re

from django import forms
from django_filters import rest_framework as filters
from django_filters.fields import BaseCSVField
from django_filters.widgets import CSVWidget

from common.data.validation import MAX_BIGINT

# What forms.IntegerField accepts ("5", " 5 ", "5.0"), in ASCII digits.
_ASCII_INTEGER = re.compile(r"\s*[-+]?[0-9]+(?:\.0*)?\s*")
# What forms.DecimalField accepts, in ASCII digits: no underscores, NaN or infinities.
_ASCII_DECIMAL = re.compile(r"\s*[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?\s*")


def _refuse_unless(pattern: re.Pattern[str], field: forms.Field, value: object) -> None:
    """The field's own "invalid" error unless ``value`` (a query string value) fits ``pattern``."""
    if (
        isinstance(value, str)
        and value not in field.empty_values
        and (len(value) > 80 or not pattern.fullmatch(value))
    ):
        raise forms.ValidationError(field.error_messages["invalid"], code="invalid")


class AsciiIntegerField(forms.IntegerField):
    """``forms.IntegerField`` that refuses digits other than ASCII, and underscores."""

    def to_python(self, value):
        _refuse_unless(_ASCII_INTEGER, self, value)
        return super().to_python(value)


class AsciiDecimalField(forms.DecimalField):
    """``forms.DecimalField`` that refuses digits other than ASCII, and underscores."""

    def to_python(self, value):
        _refuse_unless(_ASCII_DECIMAL, self, value)
        return super().to_python(value)


class IdFilter(filters.Filter):
    """An id: a whole number from 1 to 2**63-1."""

    field_class = AsciiIntegerField

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_BIGINT)
        super().__init__(*args, **kwargs)


class BoundedIntegerFilter(filters.Filter):
    """A whole number within the range of a 64-bit column."""

    field_class = AsciiIntegerField

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("min_value", -MAX_BIGINT)
        kwargs.setdefault("max_value", MAX_BIGINT)
        super().__init__(*args, **kwargs)


class AmountFilter(filters.NumberFilter):
    """A decimal amount (e.g. a price bound) in ASCII digits; give it ``max_digits`` and
    ``decimal_places`` to bound it like its column."""

    field_class = AsciiDecimalField


#: Ids one ``__in`` filter takes: one bind parameter each, well below every database's limit.
MAX_IDS_PER_FILTER = 1000


class _IdListField(BaseCSVField, AsciiIntegerField):
    """Comma-separated ids (``1,5,9``): each as :class:`IdFilter` takes it, none empty."""

    def clean(self, value):
        if value is not None and len(value) > MAX_IDS_PER_FILTER:
            raise forms.ValidationError(
                f"At most {MAX_IDS_PER_FILTER} ids, not {len(value)}: filter by range "
                "(min_id, max_id) or export, for more."
            )
        if value is not None and any(not item.strip() for item in value):
            raise forms.ValidationError("An empty id between commas: give ids like 1,5,9.")
        return super().clean(value)


class IdListFilter(filters.Filter):
    """Rows whose field is one of the ids given, comma-separated (``?id__in=1,5,9``)."""

    field_class = _IdListField

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("lookup_expr", "in")
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_BIGINT)
        kwargs.setdefault("widget", CSVWidget)
        super().__init__(*args, **kwargs)


class StrictFilterSet(filters.FilterSet):
    """A FilterSet that refuses an empty value (``?name=``) instead of reading it as "no
    filter": a client that sends ``?user_id=`` from an unset variable would otherwise get the
    whole table as if that were the answer."""

    def is_valid(self) -> bool:
        valid = super().is_valid()
        for name in self.filters:
            raw = self.data.get(name)
            if raw is not None and not raw.strip():
                self.form.add_error(name, "Empty: give a value, or leave the parameter out.")
                valid = False
        return valid


class RecordFilterSet(StrictFilterSet):
    """The filters every list has, by id: a set of ids, and a range."""

    id__in = IdListFilter(field_name="id", help_text="Any of these ids, comma-separated (1,5,9).")
    min_id = IdFilter(field_name="id", lookup_expr="gte", help_text="Id at least this.")
    max_id = IdFilter(field_name="id", lookup_expr="lte", help_text="Id at most this.")
