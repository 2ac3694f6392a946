"""Reading a whole table a chunk at a time: keyset reads, the way exports walk a table.

A table of a million rows cannot be read with one query and held: the rows would sit in the
process's memory (and, on PostgreSQL, in the driver's buffer) until the last one was sent. Nor
page by page with ``OFFSET``: ``LIMIT 5000 OFFSET 995000`` makes the database walk past the
995,000 rows before it, so reading the whole table that way costs the square of its size, and a
row inserted or deleted in front of the window shifts every later page by one (a row seen twice,
or never).

A **keyset** read (what Elasticsearch calls ``search_after``) remembers the last key it saw and
asks for the rows after it::

    SELECT id, name, email FROM users WHERE id > 4210 ORDER BY id LIMIT 5000

The primary key's index finds the first row at once, so each chunk costs the same however deep
into the table it is, and since every chunk starts after the last key returned, each row comes at
most once, in key order, whatever is inserted or deleted meanwhile.

Each chunk is its own short query, with no transaction around the walk (the connection is in
autocommit): a transaction held while a slow client reads would keep SQLite from checkpointing
its WAL and PostgreSQL on an old snapshot. The price is that a walk is not a snapshot: a row
changed during it shows its old or its new values depending on whether its chunk was read
before or after, and a row inserted behind the cursor (a smaller key) is not seen.

Rows come as tuples (``values_list``), never model instances: a million instances would cost
seconds and hundreds of megabytes for nothing an export needs.
"""

from collections.abc import Iterator, Sequence
from typing import Any

from django.db.models import QuerySet

Row = tuple[Any, ...]


def keyset_chunks(
    queryset: QuerySet, *, fields: Sequence[str], chunk_size: int
) -> Iterator[list[Row]]:
    """The rows of ``queryset`` as lists of at most ``chunk_size`` tuples of ``fields``, in
    order of ``fields[0]`` (a unique key: the primary key), one query per chunk.

    The queryset may be filtered (its filters go into every chunk's ``WHERE``); its ordering
    is replaced by the key's. Nothing is read until the first chunk is asked for, and a
    consumer that stops asking stops the reading.
    """
    assert chunk_size > 0, "a chunk holds at least one row"
    key = fields[0]
    ordered = queryset.order_by(key).values_list(*fields)
    after = None
    while True:
        window = ordered if after is None else ordered.filter(**{f"{key}__gt": after})
        rows = list(window[:chunk_size])
        if rows:
            yield rows
        if len(rows) < chunk_size:  # a short chunk is the last: no query to find nothing
            return
        after = rows[-1][0]
