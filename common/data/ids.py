"""Ids the database assigns, and what happens once the largest one is taken.

A record without an id gets one above every id its table has used, also ids of deleted rows:
ids are never given twice. Where the counter lives depends on the database:

* SQLite: the table is ``AUTOINCREMENT``; its counter is the row of ``sqlite_sequence``, which
  never goes below the largest id ever stored. Bulk ingest counts up from it itself
  (:func:`first_free_id`), holding the file's write lock.
* PostgreSQL: the column's sequence. An explicit id does not move a sequence, so every writer
  of explicit ids raises it past them (:func:`raise_sequence`); ids come from ``nextval``
  (:func:`next_sequence_values`), which hands each value to one transaction only.

Ids are signed 64-bit, so a client that stores a record with id 2**63-1 (``POST /ingest/``
takes explicit ids, and exports give them back) leaves no id to assign: SQLite then answers
every insert without an id with ``SQLITE_FULL`` ("database or disk is full", which also means
a full disk) and PostgreSQL with "nextval: reached maximum value of sequence". Deleting that
record does not help, since the counter remembers it. :func:`ids_left` reads how many ids the
counter has left, and :func:`assigning_id` turns a failed create into
``common.exceptions.IdsExhausted`` (a 409 that says what to do) when that is why it failed,
and only then: a real full disk stays the database error it is.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import DatabaseError, connections, models, router

from common.data.validation import MAX_BIGINT
from common.exceptions import IdsExhausted


def ids_left(model: type[models.Model], *, above: int = 0) -> int:
    """How many new ``model`` rows can still get an id from the database, counting only ids
    above ``above`` too (the largest explicit id of a batch: ids assigned go above it)."""
    connection = connections[router.db_for_write(model)]
    if connection.vendor == "postgresql":
        last, largest = _sequence_state(connection, model)
        return max(0, largest - max(last, above))
    return max(0, MAX_BIGINT + 1 - first_free_id(connection, model, above))


@contextmanager
def assigning_id(model: type[models.Model]) -> Iterator[None]:
    """Around the create of one ``model`` row whose id the database assigns, outside its
    transaction (so that it is rolled back when this looks): if the create fails because no
    id is left, raise ``IdsExhausted`` instead; any other failure goes on as it was.

    The counter is read only after a failure, so a create that works costs nothing more.
    """
    try:
        yield
    except DatabaseError as exc:
        try:
            exhausted = ids_left(model) == 0
        except DatabaseError:  # the database cannot answer at all: that is the error to show
            exhausted = False
        if exhausted:
            raise IdsExhausted(model._meta.verbose_name) from exc
        raise


def first_free_id(connection, model: type[models.Model], ids_above: int) -> int:
    """One above every id the table has used (also deleted ones) and above ``ids_above``."""
    table = model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT MAX({connection.ops.quote_name(model._meta.pk.column)}) "
            f"FROM {connection.ops.quote_name(table)}"
        )
        highest = cursor.fetchone()[0] or 0
        if connection.vendor == "sqlite":
            # AUTOINCREMENT never reuses the id of a deleted row; neither do we.
            cursor.execute("SELECT seq FROM sqlite_sequence WHERE name = %s", [table])
            found = cursor.fetchone()
            highest = max(highest, found[0] if found else 0)
    return max(highest, ids_above) + 1


def _sequence_of(model: type[models.Model]) -> tuple[str, str]:
    return model._meta.db_table, model._meta.pk.column


def _sequence_state(connection, model: type[models.Model]) -> tuple[int, int]:
    """``(the last value handed out or set, the largest it may hand out)`` of the PostgreSQL
    sequence of ``model``; the last value is one below the start before the first ``nextval``.
    (Django's sequences count up by 1.)"""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COALESCE(pg_sequence_last_value(seqrelid), seqstart - seqincrement), seqmax"
            " FROM pg_sequence WHERE seqrelid = pg_get_serial_sequence(%s, %s)::regclass",
            [*_sequence_of(model)],
        )
        return cursor.fetchone()


def next_sequence_values(connection, model: type[models.Model], count: int) -> list[int]:
    """``count`` new ids from the PostgreSQL sequence of ``model`` (check :func:`ids_left`
    first: past its largest value ``nextval`` fails, and the values it took are gone)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [*_sequence_of(model), count],
        )
        return [row[0] for row in cursor.fetchall()]


def raise_sequence(connection, model: type[models.Model], at_least: int) -> None:
    """Move the PostgreSQL sequence of ``model`` up to ``at_least`` if it is below.

    Explicit ids do not move a sequence, so without this a later ``nextval`` (a new user created
    through the API) would hand out an id that an ingested record already has. The read and the
    set are one statement, but a ``nextval`` of another session can slip between them; the
    worst outcome is an id handed out twice, which the primary key refuses (a failed chunk or
    request that can be sent again), never two rows with one id.
    """
    if at_least <= 0:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT setval(sequence, %s) FROM (SELECT pg_get_serial_sequence(%s, %s) AS sequence)"
            " AS found WHERE coalesce(pg_sequence_last_value(sequence::regclass), 0) < %s",
            [at_least, *_sequence_of(model), at_least],
        )
