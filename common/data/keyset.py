"""Keyset ("seek") reads: the rows after a position in an ordering, found through an index.

A page read with ``OFFSET 500000`` makes the database walk and throw away half a million rows
before it returns fifty; with ``page=19999`` of a million orders sorted by quantity that was
1.9 s a page, a sort of the whole table each time. A keyset read names the last row the client
saw instead: sorted by ``quantity`` with ``id`` breaking ties, the next page is::

    SELECT ... WHERE (quantity, id) > (5, 81234) ORDER BY quantity, id LIMIT 51

and an index on ``(quantity, id)`` takes the database straight to that row, whatever its
depth: the cost is the index's height plus the page (Elasticsearch's ``search_after``, DRF's
``CursorPagination``, without DRF's offset within equal values, which would walk every order
of the same quantity).

Every ordering a list offers has such an index (the models' ``Meta.indexes``). ``id`` follows
the direction of the field, so one index serves both directions (``-quantity`` is ``ORDER BY
quantity DESC, id DESC``, the same index read backwards).

Django compares row values on PostgreSQL; on SQLite it expands ``(a, b) > (x, y)`` into ``a > x
OR (a = x AND b > y)``, which SQLite answers by scanning the whole index (36 ms against 0.6 ms
per page at a million rows, measured here). SQLite has compared row values natively since 3.15,
and seeks the index with them, so the lookups below give it the row values too.
"""

from typing import Any, NamedTuple

from django.db.models import F, QuerySet
from django.db.models.fields.tuple_lookups import (
    Tuple,
    TupleGreaterThan,
    TupleLessThan,
    TupleLookupMixin,
)


class _RowGreaterThan(TupleGreaterThan):
    def as_sqlite(self, compiler, connection):
        return super(TupleLookupMixin, self).as_sql(compiler, connection)


class _RowLessThan(TupleLessThan):
    def as_sqlite(self, compiler, connection):
        return super(TupleLookupMixin, self).as_sql(compiler, connection)


class Ordering(NamedTuple):
    """One field to sort by (``id`` breaking ties, in the same direction), and its direction."""

    field: str
    descending: bool = False

    @property
    def name(self) -> str:
        """As a client writes it: ``quantity``, ``-quantity``."""
        return f"-{self.field}" if self.descending else self.field

    def reversed(self) -> "Ordering":
        return Ordering(self.field, not self.descending)

    def order_by(self) -> list[str]:
        sign = "-" if self.descending else ""
        if self.field == "id":
            return [f"{sign}id"]
        return [f"{sign}{self.field}", f"{sign}id"]

    def key(self, row: Any) -> tuple[Any, int]:
        """A row's position in this ordering: ``(value of the field, id)``."""
        return getattr(row, self.field), row.id


def rows_after(queryset: QuerySet, ordering: Ordering, position: tuple[Any, int]) -> QuerySet:
    """The rows of ``queryset`` that come after ``position`` (a :meth:`Ordering.key`) in
    ``ordering``, sorted by it. One index seek, whatever the depth."""
    value, row_id = position
    ascending = not ordering.descending
    if ordering.field == "id":
        rows = queryset.filter(id__gt=row_id) if ascending else queryset.filter(id__lt=row_id)
    else:
        lookup = _RowGreaterThan if ascending else _RowLessThan
        rows = queryset.filter(lookup(Tuple(F(ordering.field), F("id")), (value, row_id)))
    return rows.order_by(*ordering.order_by())
