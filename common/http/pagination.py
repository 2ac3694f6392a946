"""Pagination of the lists: page numbers near the top, cursors (keyset reads) all the way down.

Two ways into a list, one way through it:

* ``?page=N`` (the default, page 1; ``last`` for the last): the page at offset
  ``(N - 1) * page_size`` and the ``count`` of rows, as DRF's page-number pagination answers,
  except that the count stops at ``API_MAX_PAGE_DEPTH`` (then ``"count_exact": false``), as
  Elasticsearch's total stops at 10,000: an exact count of a big table walks all of it.
  An offset makes the database walk every row before it, so page numbers reach only the first
  ``API_MAX_PAGE_DEPTH`` rows (10,000, as Elasticsearch's ``index.max_result_window``); a
  deeper page is a 400 that says to follow the links instead.
* ``?cursor=...``: the page after (or before) a position, found through an index whatever its
  depth (``common.data.keyset``); no ``count``, which would cost a walk of the table on every
  page. Every answer's ``next`` and ``previous`` are such cursor links, the page-number answers'
  too, so a client reads a whole table, from any page, by following ``next``.

A cursor is the position of the row at the edge of the page it came from (the value of the
ordering's field and the id, base64url JSON) and the ordering it belongs to; any ``ordering``
sent beside it must be that one. It is not a snapshot: rows inserted meanwhile show up if they
sort after the position, and none is skipped or repeated for an insert or a delete; a row whose
sorted field changes may be read twice or missed (never with ``id``, which does not change). A
cursor that does not decode, or
does not fit the list, is a 400, as are a ``page_size`` above ``API_MAX_PAGE_SIZE`` or below 1
and page numbers or sizes in anything but the ASCII digits (Python's ``int`` also takes ``"٢"``,
an Arabic-Indic 2).
"""

import base64
import binascii
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple
from urllib.parse import unquote_plus

import orjson
from django.conf import settings
from django.db import models
from rest_framework import pagination
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import BasePagination
from rest_framework.response import Response

from common.data.keyset import Ordering, rows_after
from common.data.validation import MAX_BIGINT
from common.http.ordering import default_ordering, offered, requested_ordering

PAGE, PAGE_SIZE, CURSOR = "page", "page_size", "cursor"
#: Longer than any cursor of ours (a 255-character name, its id and the ordering).
_MAX_CURSOR = 2000
_BAD_CURSOR = "Not a cursor of this list: follow the `next` and `previous` links as they are."


def page_size_of(request) -> int:
    """``?page_size=``: 1 to ``API_MAX_PAGE_SIZE``, ``API_PAGE_SIZE`` when not given."""
    raw = request.query_params.get(PAGE_SIZE)
    if raw is None:
        return settings.API_PAGE_SIZE
    size = _whole_number(PAGE_SIZE, raw)
    if not 1 <= size <= settings.API_MAX_PAGE_SIZE:
        raise ValidationError(
            {PAGE_SIZE: [f"Must be from 1 to {settings.API_MAX_PAGE_SIZE} (API_MAX_PAGE_SIZE)."]}
        )
    return size


def _whole_number(name: str, raw: str) -> int:
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise ValidationError({name: ["Must be a whole number written with the digits 0-9."]})
    return int(raw)


class Cursor(NamedTuple):
    """A position in an ordering, and whether the page wanted is the one after it or before."""

    ordering: Ordering
    position: tuple[Any, int]
    before: bool = False

    def encode(self) -> str:
        value, row_id = self.position
        if isinstance(value, Decimal):
            value = str(value)
        fields: dict[str, Any] = {"o": self.ordering.name, "i": row_id}
        if self.ordering.field != "id":
            fields["v"] = value
        if self.before:
            fields["b"] = 1
        return base64.urlsafe_b64encode(orjson.dumps(fields)).rstrip(b"=").decode()

    @classmethod
    def decode(cls, raw: str, view, model: type[models.Model]) -> "Cursor":
        """The cursor ``raw`` names, or a 400 if it is not one of this list."""
        try:
            if len(raw) > _MAX_CURSOR:
                raise ValueError
            fields = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
            name, row_id = fields["o"], fields["i"]
            before = fields.get("b", 0)
            if (
                not isinstance(fields, dict)
                or name not in offered(view)
                or set(fields) - {"o", "i", "v", "b"}
                or not _is_id(row_id)
                or type(before) is not int
                or before not in (0, 1)
            ):
                raise ValueError
            ordering = Ordering(name.lstrip("-"), name.startswith("-"))
            value = None if ordering.field == "id" else _value_of(model, ordering, fields["v"])
        except (ValueError, TypeError, KeyError, binascii.Error, orjson.JSONDecodeError):
            raise ValidationError({CURSOR: [_BAD_CURSOR]}) from None
        return cls(ordering, (value, row_id), before=before == 1)


def _is_id(value: Any) -> bool:
    return type(value) is int and -MAX_BIGINT <= value <= MAX_BIGINT


def _value_of(model: type[models.Model], ordering: Ordering, value: Any) -> Any:
    """The field's value in a cursor, checked against the field (ValueError if it does not
    fit): numbers for number columns, text for text, a decimal string for money. A value no
    row can hold is refused here, before a database sees it: PostgreSQL refuses a NUL in text
    and a decimal beyond its numeric range with an error of its own (a 500 it was)."""
    field = model._meta.get_field(ordering.field)
    if isinstance(field, models.DecimalField):
        return _amount(field, value)
    if isinstance(field, models.IntegerField):
        if not _is_id(value):
            raise ValueError
        return value
    if not isinstance(value, str) or len(value) > (field.max_length or 1000) or "\x00" in value:
        raise ValueError
    value.encode()  # a lone surrogate ("\ud800" in the JSON) is no text a row holds
    return value


def _amount(field: models.DecimalField, value: Any) -> Decimal:
    """A decimal string within the column's digits (``max_digits``, ``decimal_places``)."""
    if not isinstance(value, str) or len(value) > 40:
        raise ValueError
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise ValueError from None
    # adjusted() (the power of ten of the first digit) needs no arithmetic context: abs() of
    # 1E+999999999 is itself an Overflow. Within the digits, the quantize below is exact.
    if not amount.is_finite() or amount.adjusted() >= field.max_digits - field.decimal_places:
        raise ValueError
    if amount != amount.quantize(Decimal(1).scaleb(-field.decimal_places)):
        raise ValueError
    return amount


class KeysetPagination(BasePagination):
    """``?page=`` within the first ``API_MAX_PAGE_DEPTH`` rows, ``?cursor=`` anywhere (see the
    module docstring)."""

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        size = page_size_of(request)
        ordering = requested_ordering(request, view)
        raw_cursor = request.query_params.get(CURSOR)
        if raw_cursor is None:
            self.ordering = ordering or default_ordering(view)
            return self._numbered_page(queryset, size)
        if PAGE in request.query_params:
            raise ValidationError({CURSOR: ["Give a cursor or a page number, not both."]})
        cursor = Cursor.decode(raw_cursor, view, queryset.model)
        if ordering is not None and ordering != cursor.ordering:
            wrong = f"This cursor reads ordering={cursor.ordering.name}, not {ordering.name}."
            raise ValidationError({CURSOR: [wrong]})
        self.ordering = cursor.ordering
        return self._page_at(queryset, cursor, size)

    def _numbered_page(self, queryset, size: int) -> list:
        raw = self.request.query_params.get(PAGE, "1")
        self._count(queryset)
        if raw == "last":
            if not self.count_exact:  # more rows than a page number reaches
                raise ValidationError({PAGE: [self._too_deep("The last page")]})
            number = max(1, -(-self.count // size))
        else:
            number = _whole_number(PAGE, raw)
        if number < 1:
            raise ValidationError({PAGE: ["Pages are numbered from 1."]})
        offset = (number - 1) * size
        if offset >= settings.API_MAX_PAGE_DEPTH:
            raise ValidationError({PAGE: [self._too_deep(f"Page {number} of {size} rows")]})
        if offset and offset >= self.count:
            raise NotFound("Invalid page.")
        rows = list(queryset[offset : offset + size + 1])
        self._link(rows[:size], more_before=offset > 0, more_after=len(rows) > size)
        return rows[:size]

    def _count(self, queryset) -> None:
        """The rows of the list, counted up to ``API_MAX_PAGE_DEPTH`` and no further (as
        Elasticsearch's ``track_total_hits``): an exact count walks the whole table or index,
        12 ms for a million users on SQLite, every time the first page is asked for."""
        limit = settings.API_MAX_PAGE_DEPTH
        counted = queryset.order_by()[: limit + 1].count()
        self.count, self.count_exact = min(counted, limit), counted <= limit

    def _too_deep(self, page: str) -> str:
        depth = settings.API_MAX_PAGE_DEPTH
        return (
            f"{page} would start past row {depth:,}, the deepest a page number reaches "
            "(API_MAX_PAGE_DEPTH): follow the `next` links (cursors) to read further, or sort "
            f"the other way (ordering={self.ordering.reversed().name}) to start from the end."
        )

    def _page_at(self, queryset, cursor: Cursor, size: int) -> list:
        self.count, self.count_exact = None, True
        ordering = cursor.ordering.reversed() if cursor.before else cursor.ordering
        rows = rows_after(queryset, ordering, cursor.position, size + 1)
        more = len(rows) > size
        rows = rows[:size]
        if cursor.before:
            rows.reverse()
            self._link(rows, more_before=more, more_after=True)
        else:
            self._link(rows, more_before=True, more_after=more)
        return rows

    def _link(self, rows: list, *, more_before: bool, more_after: bool) -> None:
        """``next``/``previous``: cursors at the page's last and first row, where there is
        more to read that way."""
        self.next = self.previous = None
        if not rows:
            return
        if more_after:
            self.next = self._url(Cursor(self.ordering, self.ordering.key(rows[-1])))
        if more_before:
            self.previous = self._url(
                Cursor(self.ordering, self.ordering.key(rows[0]), before=True)
            )

    def _url(self, cursor: Cursor) -> str:
        """This request's URL with the cursor instead of its page or cursor. The rest of the
        query string stays as the client wrote it: re-encoded (DRF's ``replace_query_param``
        writes each comma of ``id__in=1,2,3`` as ``%2C``), a link to a long filter outgrew the
        request line the server takes (a 414 from gunicorn for the server's own ``next``)."""
        query = self.request.META.get("QUERY_STRING", "")
        kept = [
            part
            for part in query.split("&")
            if part and unquote_plus(part.partition("=")[0]) not in (PAGE, CURSOR)
        ]
        kept.append(f"{CURSOR}={cursor.encode()}")
        return self.request.build_absolute_uri(self.request.path) + "?" + "&".join(kept)

    def get_paginated_response(self, data) -> Response:
        body: dict[str, Any] = {} if self.count is None else {"count": self.count}
        if not self.count_exact:
            body["count_exact"] = False
        body.update(next=self.next, previous=self.previous, results=data)
        return Response(body)

    def get_paginated_response_schema(self, schema: dict) -> dict:
        link = {"type": "string", "nullable": True, "format": "uri"}
        return {
            "type": "object",
            "required": ["next", "previous", "results"],
            "properties": {
                "count": {
                    "type": "integer",
                    "description": "Rows in the list (with its filters), counted up to "
                    "`API_MAX_PAGE_DEPTH` (10,000): past it, this says 10,000 and "
                    "`count_exact` is false. Given for `page` requests, not for `cursor` ones.",
                    "example": 123,
                },
                "count_exact": {
                    "type": "boolean",
                    "description": "Only given, false, when more rows match than `count` "
                    "says (the count stopped at `API_MAX_PAGE_DEPTH`).",
                    "example": False,
                },
                "next": {
                    **link,
                    "description": "The page after this one (a cursor link).",
                    "example": "http://localhost:8000/users/?cursor=eyJvIjoiaWQiLCJpIjo1MH0",
                },
                "previous": {
                    **link,
                    "description": "The page before (a cursor link).",
                    "example": None,
                },
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view) -> list[dict]:
        return [
            {
                "name": PAGE,
                "required": False,
                "in": "query",
                "description": "A page number, for the first `API_MAX_PAGE_DEPTH` rows "
                "(10,000); deeper, follow `next` (cursor links).",
                "schema": {"type": "integer", "minimum": 1},
            },
            {
                "name": PAGE_SIZE,
                "required": False,
                "in": "query",
                "description": f"Rows per page (default {settings.API_PAGE_SIZE}); above "
                "`API_MAX_PAGE_SIZE` it is a 400.",
                "schema": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": settings.API_MAX_PAGE_SIZE,
                },
            },
            {
                "name": CURSOR,
                "required": False,
                "in": "query",
                "description": "A position in the list, as the `next` and `previous` links "
                "give it: the page after (or before) it, at the same cost at any depth.",
                "schema": {"type": "string"},
            },
        ]


class PageNumberPagination(pagination.PageNumberPagination):
    """Pages by number only, for lists without an index per ordering (the ingest jobs: a
    client's own, and few); the same strict ``page`` and ``page_size``."""

    page_size_query_param = PAGE_SIZE

    def get_page_size(self, request) -> int:
        return page_size_of(request)

    def paginate_queryset(self, queryset, request, view=None):
        page = request.query_params.get(PAGE)
        if page is not None and page != "last" and _whole_number(PAGE, page) < 1:
            raise ValidationError({PAGE: ["Pages are numbered from 1."]})
        return super().paginate_queryset(queryset, request, view)
