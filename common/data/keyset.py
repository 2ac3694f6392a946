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

PostgreSQL seeks a ``(quantity, id)`` index with the row comparison itself. SQLite does not:
Django expands ``(a, b) > (x, y)`` there into ``a > x OR (a = x AND b > y)``, which it answers by
scanning the whole index (36 ms a page at a million orders), and given the row values it seeks
``quantity >= 5`` only and walks every order of quantity 5 up to id 81234 (10 ms a page when a
quantity has 100,000 orders, measured here). So on SQLite the page is read in two exact seeks,
the rest of the position's own value, then the values after it::

    ... WHERE quantity = 5 AND id > 81234 ORDER BY quantity, id LIMIT 51   -- (quantity=? AND id>?)
    ... WHERE quantity > 5 ORDER BY quantity, id LIMIT <what is missing>     -- only if needed

0.05 ms each on the same table.
"""

from typing import Any, NamedTuple

from django.db import connections
from django.db.models import F, QuerySet
from django.db.models.fields.tuple_lookups import Tuple, TupleGreaterThan, TupleLessThan


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


def keyset_queries(
    queryset: QuerySet, ordering: Ordering, position: tuple[Any, int]
) -> list[QuerySet]:
    """The queries, in order, whose rows are those of ``queryset`` after ``position`` (a
    :meth:`Ordering.key`) in ``ordering``, sorted by it: one on PostgreSQL and for ``id``, two
    on SQLite (see the module docstring). Each is one index seek, whatever the depth."""
    value, row_id = position
    ascending = not ordering.descending
    ordered = queryset.order_by(*ordering.order_by())
    after = "gt" if ascending else "lt"
    if ordering.field == "id":
        return [ordered.filter(**{f"id__{after}": row_id})]
    if connections[queryset.db].vendor != "sqlite":
        lookup = TupleGreaterThan if ascending else TupleLessThan
        return [ordered.filter(lookup(Tuple(F(ordering.field), F("id")), (value, row_id)))]
    return [
        ordered.filter(**{ordering.field: value, f"id__{after}": row_id}),
        ordered.filter(**{f"{ordering.field}__{after}": value}),
    ]


def rows_after(
    queryset: QuerySet, ordering: Ordering, position: tuple[Any, int], limit: int
) -> list:
    """Up to ``limit`` rows of ``queryset`` after ``position`` in ``ordering``, in its order."""
    rows: list = []
    for query in keyset_queries(queryset, ordering, position):
        rows += query[: limit - len(rows)]
        if len(rows) >= limit:
            break
    return rows
