"""``?ordering=``: one field a list offers, ascending or descending, ``id`` breaking ties.

DRF's ``OrderingFilter`` drops a field it does not know and sorts by the default instead, so
``?ordering=bogus`` answered the table in id order as if the client had asked for it, and it
takes several fields (``?ordering=name,-email``), which no single index can serve. Here a list
names the fields it offers (``ordering_fields``, each with an index on ``(field, id)``: see
``common.data.keyset``); anything else is a 400 that lists what is offered.
"""

from rest_framework.exceptions import ValidationError
from rest_framework.filters import BaseFilterBackend

from common.data.keyset import Ordering

ORDERING_PARAM = "ordering"


def offered(view) -> list[str]:
    """Every value ``?ordering=`` takes on ``view``: ``id, -id, name, -name, ...``."""
    return [name for field in view.ordering_fields for name in (field, f"-{field}")]


def requested_ordering(request, view) -> Ordering | None:
    """The ordering the query string asks for, None if it asks for none; a 400 if it asks for
    one the list does not offer."""
    raw = request.query_params.get(ORDERING_PARAM)
    if raw is None:
        return None
    descending = raw.startswith("-")
    field = raw[1:] if descending else raw
    if field not in view.ordering_fields:
        why = "Sort by one field (ties are broken by id)" if "," in raw else "Unknown ordering"
        raise ValidationError(
            {ORDERING_PARAM: [f"{why}: {raw[:60]!r}. Offered: {', '.join(offered(view))}."]}
        )
    return Ordering(field, descending)


def default_ordering(view) -> Ordering:
    """The view's ``ordering`` (``["id"]`` by default), as an :class:`Ordering`."""
    first = view.ordering[0]
    return Ordering(first.lstrip("-"), first.startswith("-"))


class StrictOrderingFilter(BaseFilterBackend):
    """Sorts a list by ``?ordering=`` (or the view's default), refusing what it does not offer."""

    def filter_queryset(self, request, queryset, view):
        ordering = requested_ordering(request, view) or default_ordering(view)
        return queryset.order_by(*ordering.order_by())

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": ORDERING_PARAM,
                "required": False,
                "in": "query",
                "description": "Sort by one field, ascending, or descending with a leading "
                "`-`; ties are broken by `id` (in the same direction). Any other value is a "
                "400 listing these.",
                "schema": {"type": "string", "enum": offered(view)},
            }
        ]
