"""Fast inserts of many checked rows into one service table: the write path of bulk ingest.

A service calls :func:`insert_new` with rows that already passed its rules, id first (``None``
when the database should assign one). In one transaction on the service's database it

1. assigns ids to the rows without one, above every id already used and above ``ids_above``
   (the largest explicit id in the whole batch, so a later chunk's explicit id cannot collide
   with an id assigned here; ``common.data.ids``). Once the largest id a column takes is used,
   rows without an id get none and are not written;
2. writes the rows with the fastest statement the database offers;
3. only if the primary key refuses a row (an explicit id that exists), looks up which ids
   exist (one query) and writes the others: those rows are duplicates.

Each row's outcome is its stored id, or ``None``: a duplicate for a row that came with an id,
"no id was left" for one that came without.

Why not the ORM's ``bulk_create``: it spends about 4 s per 300,000 rows building model instances
and SQL. On SQLite this module sends multi-row ``INSERT ... VALUES (...), (...)`` statements as
large as SQLite's limit on parameters allows (a chunk of 10,000 users in one, of 10,000 orders
in two) straight to the sqlite3 driver, and no savepoints (SQLite backs out a refused statement
by itself). What matters with writer threads is how often a writer must win the GIL back from
the thread that checks the next records: once per statement, and each time that may wait for the
interpreter's switch interval (5 ms). Plain ``executemany`` re-takes the GIL on every row (three
such threads were measured 1.8x slower than one); one JSON array unpacked by ``json_each`` takes
it once, but SQLite spends about twice as long per row unpacking it (0.8 against 0.4 us for a
user, 2.2 against 1.5 us for an order with its two indexes). These statements bypass Django's
cursor wrappers, so they do not show up in ``connection.queries``.
"""

import functools
import sqlite3
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from contextlib import closing, nullcontext
from itertools import chain
from typing import Any

import msgspec
from django.db import IntegrityError, connections, models, router, transaction

from common.data import ids
from common.data.ids import raise_sequence
from common.data.queries import existing_ids, id_list_param, id_list_sql
from common.data.validation import MAX_BIGINT

Row = tuple[Any, ...]

# The write ledger stores outcomes as JSON (msgspec: in C).
_encode_outcome = msgspec.json.Encoder().encode


def table_columns(model: type[models.Model]) -> list[str]:
    """The model's columns in table order; rows passed here follow that order (id first)."""
    columns = [field.column for field in model._meta.concrete_fields]
    assert columns[0] == model._meta.pk.column, f"{model.__name__}: the primary key must be first"
    return columns


#: Where a chunk written under a key is recorded: (the service's WriteLedger model, the key).
Ledger = tuple[type[models.Model], str]


def insert_new(
    model: type[models.Model],
    rows: Sequence[Row],
    *,
    ids_above: int = 0,
    ledger: Ledger | None = None,
) -> list[int | None]:
    """Insert ``rows`` in one transaction; return each row's id, or ``None`` for a duplicate
    (a row with an id) or a row no id was left for (a row without one).

    With a ``ledger``, a chunk whose key is already recorded is not written again: its recorded
    outcome is returned (see ``common.models.WriteLedger``).
    """
    alias = router.db_for_write(model)
    with transaction.atomic(using=alias):
        if ledger is not None:
            done = recorded_outcome(ledger)
            if done is not None:
                return done
        ids = insert_new_in_transaction(model, rows, ids_above=ids_above)
        if ledger is not None:
            record_outcome(ledger, ids)
        return ids


def recorded_outcome(ledger: Ledger) -> Any:
    """The outcome stored under the ledger key, or None (call inside the writing transaction)."""
    ledger_model, key = ledger
    stored = ledger_model._default_manager.filter(key=key).values_list("outcome", flat=True)
    outcome = stored.first()
    return None if outcome is None else msgspec.json.decode(bytes(outcome))


def record_outcome(ledger: Ledger, outcome: Any) -> None:
    """Store ``outcome`` under the ledger key, in the caller's transaction."""
    ledger_model, key = ledger
    ledger_model._default_manager.create(key=key, outcome=_encode_outcome(outcome))


def forget_outcomes(ledger_model: type[models.Model], key_prefix: str) -> None:
    """Drop the ledger rows of a finished job or request (keys starting with the prefix).

    Looked for first: a delete takes the database's write lock even when it finds nothing, and
    a request that wrote only users would then wait, once done, for another request's
    transaction on products to end (on SQLite the lock is the whole file's). Measured with two
    requests of 50,000 records at once, one of users and one of products: both answered after
    0.45 s, when either alone takes 0.23 s.
    """
    rows = ledger_model._default_manager.filter(key__startswith=key_prefix)
    if rows.exists():
        rows.delete()


def insert_new_in_transaction(
    model: type[models.Model], rows: Sequence[Row], *, ids_above: int = 0
) -> list[int | None]:
    """:func:`insert_new` for a caller that already holds a transaction on the model's database."""
    alias = router.db_for_write(model)
    connection = connections[alias]
    assert connection.in_atomic_block, "insert_new_in_transaction needs transaction.atomic()"
    if not rows:
        return []
    assigned = _assign_ids(connection, model, rows, ids_above)
    handed_out: AbstractSet[int] = frozenset()
    written = rows
    if assigned is not None:
        rows, handed_out, unassigned = assigned
        written = rows
        if unassigned:  # rare: only the rows with an id are written
            written = [row for row in rows if row[0] is not None]
    stored: list[int | None] = []
    for part in _statement_parts(connection, len(rows[0]), written) if written else ():
        stored += _insert_part(connection, model, part, handed_out)
    if connection.vendor == "postgresql":
        raise_sequence(connection, model, max((i for i in stored if i is not None), default=0))
    if written is rows:
        return stored
    from_written = iter(stored)
    return [None if row[0] is None else next(from_written) for row in rows]


def _insert_part(
    connection, model: type[models.Model], rows: Sequence[Row], handed_out: AbstractSet[int]
) -> list[int | None]:
    """Insert rows that one statement can take; return each row's id, or None for a duplicate."""
    # Optimistic: records of a new batch rarely exist already, and the primary key index finds
    # a duplicate while inserting at no extra cost. Only when it does (a retried batch), look the
    # ids up and insert the rest: one more query, on the rare path.
    try:
        with _statement_scope(connection):
            _write(connection, model, rows)
    except IntegrityError as exc:
        taken = existing_ids(model, [row[0] for row in rows])
        if not taken.isdisjoint(handed_out):
            # An id this chunk was just handed is taken: another writer raced us for it (see
            # _assign_ids). Not a duplicate record: fail the chunk so that it is sent again.
            raise exc
        _write(connection, model, [row for row in rows if row[0] not in taken])
        return [None if row[0] in taken else row[0] for row in rows]
    return [row[0] for row in rows]


def _statement_parts(connection, width: int, rows: Sequence[Row]) -> list[Sequence[Row]]:
    """``rows`` cut into the parts that one insert statement each can take.

    SQLite limits the parameters of a statement (32,766 by default), so a chunk goes in as few
    statements as that allows, of even sizes (so that one prepared statement serves them all).
    Elsewhere one statement takes any number of rows.
    """
    if connection.vendor != "sqlite":
        return [rows]
    most = max(1, connection.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // width)
    parts = -(-len(rows) // most)
    size = -(-len(rows) // parts)
    return [rows[start : start + size] for start in range(0, len(rows), size)]


def _statement_scope(connection):
    """What undoes a refused insert statement and nothing before it in the transaction.

    SQLite backs out a statement that fails on a constraint by itself and the transaction goes
    on, so no savepoint is needed: that spares the writer two statements per chunk, each of
    which has to win the GIL back from the thread checking the next records. PostgreSQL aborts
    the whole transaction on an error, so there a savepoint keeps it usable.
    """
    if connection.vendor == "sqlite":
        return nullcontext()
    return transaction.atomic(using=connection.alias)


def _assign_ids(connection, model, rows: Sequence[Row], ids_above: int):
    """``(rows with an id in each that could get one, the ids handed out, how many rows got
    none)`` if some rows had none, else None.

    New ids are above every id the table has used and above ``ids_above``
    (``common.data.ids``). On SQLite the caller holds the file's write lock, so the largest id in
    use is read and counted up from. PostgreSQL takes concurrent writers, so ids come from the
    table's own sequence (which ``nextval`` hands out to one transaction only), first raised
    above ``ids_above``. Rows past the last id left keep ``None``: they are not written.
    """
    missing = sum(1 for row in rows if row[0] is None)
    if not missing:
        return None
    if connection.vendor == "postgresql":
        raise_sequence(connection, model, ids_above)
        # Counted first: nextval past the sequence's end fails and takes the values it had
        # left with it, which a single create could still have used. (Another writer taking
        # the last ones in between makes nextval fail: a failed chunk, sent again.)
        room = min(missing, ids.ids_left(model))
        fresh = iter(ids.next_sequence_values(connection, model, room) if room else ())
    else:
        first = ids.first_free_id(connection, model, ids_above)
        fresh = iter(range(first, first + min(missing, MAX_BIGINT + 1 - first)))
    handed_out = set()
    filled = []
    for row in rows:
        if row[0] is None:
            new_id = next(fresh, None)
            if new_id is not None:
                row = (new_id, *row[1:])
                handed_out.add(new_id)
        filled.append(row)
    return filled, handed_out, missing - len(handed_out)


def _write(connection, model: type[models.Model], rows: list[Row]) -> None:
    if not rows:
        return
    table = connection.ops.quote_name(model._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(c) for c in table_columns(model))
    if connection.vendor == "sqlite":
        _write_sqlite(connection, table, columns, len(rows[0]), rows)
    elif connection.vendor == "postgresql":
        _write_postgresql(connection, table, columns, rows)
    else:
        with connection.cursor() as cursor:
            placeholders = ", ".join(["%s"] * len(rows[0]))
            cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({placeholders})", rows)


def _write_postgresql(connection, table: str, columns: str, rows: list[Row]) -> None:
    # COPY: the fastest way into PostgreSQL; psycopg formats the rows in C and streams them.
    with (
        connection.wrap_database_errors,
        connection.connection.cursor() as cursor,
        cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(row)


def _write_sqlite(connection, table: str, columns: str, width: int, rows: list[Row]) -> None:
    # One multi-row INSERT ... VALUES statement (the caller keeps within SQLite's limit on
    # parameters): the driver binds the values in C and runs it without the GIL, and the writer
    # has to win the GIL back only once (see the module docstring). Decimals are bound through
    # the adapter Django registers, as the ORM binds them.
    # The driver's own cursor (no debug wrappers), with its errors turned into Django's.
    with connection.wrap_database_errors, closing(connection.connection.cursor()) as cursor:
        cursor.execute(
            _insert_sql(table, columns, width, len(rows)), list(chain.from_iterable(rows))
        )


# Kept so that the driver's statement cache finds the same string (its hash already known); a
# few entries, since each can be 100 KB: the full-chunk statement of each table and remainders.
@functools.lru_cache(maxsize=16)
def _insert_sql(table: str, columns: str, width: int, count: int) -> str:
    row = "(" + ", ".join(["?"] * width) + ")"
    return f"INSERT INTO {table} ({columns}) VALUES " + ", ".join([row] * count)


def delete_ids(model: type[models.Model], ids: Sequence[int]) -> None:
    """Delete rows by primary key in one statement (the ids travel as one parameter)."""
    if not ids:
        return
    connection = connections[router.db_for_write(model)]
    table = connection.ops.quote_name(model._meta.db_table)
    pk = connection.ops.quote_name(model._meta.pk.column)
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {table} WHERE {pk} IN ({id_list_sql(connection)})",
            [id_list_param(connection, ids)],
        )


# --- markers of an insert that spans several databases (atomic ingest) -----------------------
#
# A marker is a ledger row written in the same transaction as the rows it lists, so that a
# write whose other half failed can be undone later from what the database itself recorded:
# ``{"ids": [ids inserted], "ledger_keys": [chunk keys recorded alongside]}``, and for a batch
# that also changed stored rows ``"before"`` (their earlier state, whole rows) and ``"after"``
# (what it wrote over those it replaced or updated; the others it deleted): see
# ``common.data.changes.undo_marked_batch``.


#: Where markers' keys start (``atomic:<batch>``); keys range up to, not including, "atomic;".
MARKER_PREFIX = "atomic:"


def ids_of_unfinished_writes(ledger_model: type[models.Model]) -> set[int]:
    """The ids every marker in the ledger lists: rows of a write that has not completed (or
    not yet dropped its marker), which must not count as existing for a new reference. One
    indexed lookup when there is none, as nearly always."""
    keys = ledger_keys_with_prefix(ledger_model, MARKER_PREFIX)
    found: set[int] = set()
    for key in keys:
        found.update(marked_ids((ledger_model, key)) or ())
    return found


def ledger_keys_with_prefix(ledger_model: type[models.Model], prefix: str) -> list[str]:
    """The ledger keys that start with ``prefix``, by one indexed lookup.

    SQLite compares text byte by byte, so a range (``key >= 'atomic:' AND key < 'atomic;'``)
    walks the unique index; its LIKE ignores case and cannot. PostgreSQL compares by the
    database's collation, which may ignore punctuation (``en_US``), so a range could miss keys
    there; its LIKE uses the ``varchar_pattern_ops`` index Django adds to a unique CharField.
    """
    manager = ledger_model._default_manager
    if connections[router.db_for_read(ledger_model)].vendor == "postgresql":
        found = manager.filter(key__startswith=prefix)
    else:
        found = manager.filter(key__gte=prefix, key__lt=prefix[:-1] + chr(ord(prefix[-1]) + 1))
    return list(found.values_list("key", flat=True))


def recorded_keys(ledger_model: type[models.Model], keys: Sequence[str]) -> set[str]:
    """Which of ``keys`` are recorded in the ledger."""
    if not keys:
        return set()
    return set(ledger_model._default_manager.filter(key__in=keys).values_list("key", flat=True))


def forget_keys(ledger_model: type[models.Model], keys: Sequence[str]) -> None:
    """Drop the ledger rows with exactly these keys."""
    if keys:
        ledger_model._default_manager.filter(key__in=keys).delete()


def record_marker(
    ledger: Ledger,
    ids: Sequence[int],
    ledger_keys: Sequence[str],
    before: Sequence[tuple[Row, Row | None]] = (),
) -> None:
    """Record, in the caller's transaction, the rows it inserted, the chunk keys it wrote and,
    in ``before``, ``(earlier row, row written or None)`` for each row it replaced or updated
    (the row written) or deleted (None): whole rows, id first, as ``common.data.changes``
    collects them."""
    marker: dict[str, Any] = {"ids": list(ids), "ledger_keys": list(ledger_keys)}
    if before:
        marker["before"] = [earlier for earlier, _ in before]
        marker["after"] = [written for _, written in before if written is not None]
    record_outcome(ledger, marker)


def marked_ids(ledger: Ledger) -> list[int] | None:
    """The ids a marker lists (rows inserted), or None if there is no such marker."""
    marker = recorded_outcome(ledger)
    return None if marker is None else marker["ids"]


def marked_earlier_ids(ledger: Ledger) -> list[int] | None:
    """The ids of the rows a marker keeps the earlier state of (rows its write replaced,
    updated or deleted, to be put back by an undo), or None if there is no such marker."""
    marker = recorded_outcome(ledger)
    return None if marker is None else sorted(row[0] for row in marker.get("before", ()))
