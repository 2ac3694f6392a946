"""Bulk changes to stored rows: upserts, updates and deletions, one statement per chunk.

``common.data.bulk`` inserts new rows; this module changes rows that may exist already. Each
function runs in the caller's transaction on the model's database (a service's
``transaction.atomic``) and sends a set of rows in as few statements as the database allows,
never one per row:

* :func:`upsert_rows` writes whole rows: a new id is inserted, a stored one replaced
  (``INSERT ... ON CONFLICT (id) DO UPDATE``). On PostgreSQL the rows are copied into a
  temporary table first (``COPY``, the fastest way in) and merged from there in one statement.
  It returns which ids were stored before, so that the caller can tell a replacement from an
  insert: on SQLite read first, in the transaction that holds the file's write lock
  (``BEGIN IMMEDIATE``), on PostgreSQL told by the merge itself (another transaction may store
  an id between a read and the merge).
* :func:`stored_rows` reads the current values of a set of ids (locked ``FOR UPDATE`` on
  PostgreSQL), for an update that changes some fields and must check the merged record.
* :func:`delete_returning` deletes a set of ids and says which of them existed.

On PostgreSQL every statement here locks its rows in id order, whatever order a chunk has them
in: two transactions that want some of the same rows then wait for each other at the first one
they share, never each holding a row the other waits for (PostgreSQL would end the deadlock by
failing one of them, a chunk lost for nothing).

:func:`undo_marked_batch` undoes what an atomic ingest batch marked (``ingest.atomic``): it
deletes the rows the batch inserted and writes back the rows it replaced, updated or deleted,
where nobody changed them since (:func:`put_back`).

:func:`encode_outcome` / :func:`decode_outcome` keep a chunk's outcome small in a write ledger:
rows refused for the same reasons share one reasons object, stored once.
"""

import functools
import logging
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from collections.abc import Set as AbstractSet
from contextlib import closing
from decimal import Decimal
from itertools import chain
from typing import Any

import msgspec
from django.db import OperationalError, connections, models, router
from msgspec import UNSET

from common.data import bulk
from common.data.bulk import Ledger, record_outcome, recorded_outcome, table_columns
from common.data.ids import raise_sequence
from common.data.queries import existing_ids, id_list_param, id_list_sql
from common.data.validation import as_sent

Row = tuple[Any, ...]
Reasons = dict[str, list[str]]

log = logging.getLogger("store.data")


def upsert_rows(model: type[models.Model], rows: Sequence[Row]) -> set[int]:
    """Insert or replace whole rows (id first, every id given); return the ids stored before.

    Call inside ``transaction.atomic`` on the model's database.
    """
    if not rows:
        return set()
    connection = _connection_in_transaction(model)
    if connection.vendor == "postgresql":
        # The merge itself says which rows it replaced: an id looked up first could be
        # inserted by another transaction before the merge reaches it (and be replaced).
        existed = _upsert_postgresql(connection, model, rows)
        raise_sequence(connection, model, max(row[0] for row in rows))
        return existed
    # SQLite: the transaction holds the file's write lock, so what it reads stays true.
    existed = existing_ids(model, [row[0] for row in rows])
    for part in _statement_parts(connection, len(rows[0]), rows):
        _upsert_sqlite(connection, model, part)
    return existed


def stored_rows(
    model: type[models.Model], ids: Iterable[int], fields: Sequence[str]
) -> dict[int, tuple]:
    """``{id: (value of each field, ...)}`` for those of ``ids`` that are stored: one query.

    On PostgreSQL the rows are locked until the transaction ends, so that the merged values the
    caller writes back are computed from what is still stored (no lost update).
    """
    wanted = list(set(ids))
    if not wanted:
        return {}
    connection = _connection_in_transaction(model)
    meta = model._meta
    quote = connection.ops.quote_name
    columns = [meta.get_field(name) for name in fields]
    select = ", ".join(quote(field.column) for field in columns)
    # In id order, as every statement here locks rows: two transactions that want some of the
    # same rows then queue for the first one they share instead of deadlocking.
    lock = " ORDER BY 1 FOR UPDATE" if connection.vendor == "postgresql" else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {quote(meta.pk.column)}, {select} FROM {quote(meta.db_table)} "
            f"WHERE {quote(meta.pk.column)} IN ({id_list_sql(connection)}){lock}",
            [id_list_param(connection, wanted)],
        )
        found = cursor.fetchall()
    converters = [_from_database(connection, field) for field in columns]
    if not any(converters):
        return {row[0]: tuple(row[1:]) for row in found}
    return {
        row[0]: tuple(
            convert(value) if convert else value
            for convert, value in zip(converters, row[1:], strict=True)
        )
        for row in found
    }


def delete_returning(model: type[models.Model], ids: Sequence[int]) -> set[int]:
    """Delete the rows with these ids (one statement); return the ids that existed."""
    if not ids:
        return set()
    connection = _connection_in_transaction(model)
    quote = connection.ops.quote_name
    table, pk = quote(model._meta.db_table), quote(model._meta.pk.column)
    wanted = f"SELECT id_value FROM ({id_list_sql(connection)}) AS wanted"
    if connection.vendor == "postgresql":
        # A DELETE locks rows in the order it finds them; the rows are locked in id order
        # first (see stored_rows).
        wanted = f"SELECT {pk} FROM {table} WHERE {pk} IN ({wanted}) ORDER BY 1 FOR UPDATE"
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {table} WHERE {pk} IN ({wanted}) RETURNING {pk}",
            [id_list_param(connection, ids)],
        )
        return {row[0] for row in cursor.fetchall()}


# --- outcomes in a write ledger -------------------------------------------------------------


def encode_outcome(outcome: tuple[list, dict[int, Reasons], list[int]]) -> list:
    """``(ids, errors by position, replaced positions)`` as a ledger stores it:
    ``[ids, reasons table, positions, which, replaced]``, each distinct reasons object once.
    Rows refused alike share one reasons object; written out per row, 300,000 refused rows
    would make a ledger row of about 30 MB."""
    ids, errors, replaced = outcome
    table: list[Reasons] = []
    number_of: dict[int, int] = {}
    positions, which = [], []
    for position, reasons in errors.items():
        number = number_of.get(id(reasons))
        if number is None:
            number = number_of[id(reasons)] = len(table)
            table.append(reasons)
        positions.append(position)
        which.append(number)
    return [ids, table, positions, which, replaced]


def decode_outcome(stored: list) -> tuple[list, dict[int, Reasons], list[int]]:
    ids, table, positions, which, replaced = stored
    errors = {position: table[n] for position, n in zip(positions, which, strict=True)}
    return ids, errors, replaced


# --- the statements ---------------------------------------------------------------------------


def _connection_in_transaction(model: type[models.Model]):
    connection = connections[router.db_for_write(model)]
    assert connection.in_atomic_block, f"{model.__name__}: call inside transaction.atomic()"
    return connection


def _statement_parts(connection, width: int, rows: Sequence[Row]) -> list[Sequence[Row]]:
    """Rows cut into the parts one SQLite statement can take (its limit on parameters)."""
    most = max(1, connection.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // width)
    return [rows[start : start + most] for start in range(0, len(rows), most)]


def _upsert_sqlite(connection, model: type[models.Model], rows: Sequence[Row]) -> None:
    # One multi-row statement bound in C by the driver, which holds no GIL while SQLite runs it
    # (see common.data.bulk); the driver's own cursor, its errors turned into Django's.
    sql = _upsert_sql(*_names(connection, model), len(rows[0]), len(rows))
    with connection.wrap_database_errors, closing(connection.connection.cursor()) as cursor:
        cursor.execute(sql, list(chain.from_iterable(rows)))


def _names(connection, model: type[models.Model]) -> tuple[str, tuple[str, ...]]:
    quote = connection.ops.quote_name
    return quote(model._meta.db_table), tuple(quote(c) for c in table_columns(model))


@functools.lru_cache(maxsize=16)
def _upsert_sql(table: str, columns: tuple[str, ...], width: int, count: int) -> str:
    row = "(" + ", ".join(["?"] * width) + ")"
    changes = ", ".join(f"{column} = excluded.{column}" for column in columns[1:])
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([row] * count)} "
        f"ON CONFLICT ({columns[0]}) DO UPDATE SET {changes}"
    )


def _upsert_postgresql(connection, model: type[models.Model], rows: Sequence[Row]) -> set[int]:
    """Merge ``rows`` into the table; return the ids it replaced.

    COPY into a temporary table, then one ``INSERT ... SELECT ... ON CONFLICT``. Which rows the
    merge replaced it says itself: an inserted row has no ``xmax``, one that ``ON CONFLICT DO
    UPDATE`` wrote carries the writer's. Reading the ids first costs a query per chunk and can
    miss an id another transaction stores in between. The merge takes the rows in id order
    (see :func:`stored_rows`).

    Measured on ``ingest.pipeline.ingest`` (``?action=upsert``: 100,000 users, products and
    orders, half of them stored, chunks of 10,000; PostgreSQL 15 on a busy 2-CPU machine; best
    and median of 3): this, 6.7 s / 8.0 s; the same with the ids read first, 9.8 / 10.3 s; one
    ``INSERT ... SELECT FROM unnest(<an array per column>)`` with the ids read first, 9.3 /
    9.7 s; ``executemany`` of ``INSERT ... VALUES (...) ON CONFLICT`` (psycopg's pipeline mode)
    with the ids read first, 24.3 / 25.6 s. COPY streams the rows, formatted by psycopg in C,
    where the others make the server parse or unpack every value.

    The staging table lives as long as the connection, emptied at each commit (``ON COMMIT
    DELETE ROWS``) and before each use (a savepoint may have left rows of an earlier chunk); one
    created in a savepoint that is rolled back is gone with it, and made again next time.
    """
    table, columns = _names(connection, model)
    stage = connection.ops.quote_name(f"stage_{model._meta.db_table}")
    listed = ", ".join(columns)
    changes = ", ".join(f"{column} = excluded.{column}" for column in columns[1:])
    with connection.wrap_database_errors, connection.connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {stage} (LIKE {table}) ON COMMIT DELETE ROWS"
        )
        cursor.execute(f"TRUNCATE {stage}")
        with cursor.copy(f"COPY {stage} ({listed}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(
            f"WITH merged AS (INSERT INTO {table} ({listed}) "
            f"SELECT {listed} FROM {stage} ORDER BY {columns[0]} "
            f"ON CONFLICT ({columns[0]}) DO UPDATE SET {changes} "
            f"RETURNING {columns[0]}, xmax) "
            f"SELECT {columns[0]} FROM merged WHERE NOT (xmax = 0)"
        )
        return {row[0] for row in cursor.fetchall()}


def _from_database(connection, field: models.Field):
    """How a raw value of ``field`` becomes what the ORM would give (None: as it is)."""
    if connection.vendor == "sqlite" and isinstance(field, models.DecimalField):
        # SQLite hands back a float (the column has NUMERIC affinity): its shortest repr is
        # the decimal that was stored, which the rule then checks as it checks a new value.
        step = Decimal(1).scaleb(-field.decimal_places)
        return lambda value: None if value is None else Decimal(repr(value)).quantize(step)
    return None


# --- a chunk of changes, as a service applies it ----------------------------------------------
#
# Each function takes checked rows of one action and returns the chunk's ``Outcome``:
# ``(ids, errors, replaced)``: each row's id, or None where it was refused; the refused rows'
# reasons by position; the positions of upserted rows that replaced a stored one. With
# ``before`` (a list), each stored row a change replaces or deletes is appended to it as
# ``(earlier row, row written or None for a deletion)``, whole rows, id first: what an atomic
# batch needs to put the earlier rows back if it must be undone, and to see whether someone
# changed them since (see :func:`undo_marked_batch`).

Outcome = tuple[list[int | None], dict[int, Reasons], list[int]]
#: Extra checks of rows about to be written (the orders' references): errors by position.
Check = Callable[[Sequence[Row]], dict[int, Reasons]]


def apply_upserts(
    model: type[models.Model],
    rows: Sequence[Row],
    *,
    check: Check | None = None,
    before: list | None = None,
) -> Outcome:
    """Insert or replace whole checked rows (every id given)."""
    errors = check(rows) if check is not None else {}
    kept = [row for position, row in enumerate(rows) if position not in errors]
    stored = None
    if before is not None:
        stored = stored_rows(model, [row[0] for row in kept], _value_fields(model))
        before.extend(((row[0], *stored[row[0]]), row) for row in kept if row[0] in stored)
    existed = upsert_rows(model, kept)
    if stored is not None and not existed.issubset(stored):
        # On PostgreSQL another transaction stored some of these ids after they were read
        # (SQLite's write lock rules that out): the rows replaced are not the ones kept to put
        # back, and an undo could not undo. The chunk fails; an atomic batch then keeps nothing.
        raise OperationalError(
            f"{model._meta.db_table} with ids {sorted(existed - stored.keys())[:10]} were "
            "stored by another request while this batch ran; send it again"
        )
    ids = [None if position in errors else row[0] for position, row in enumerate(rows)]
    replaced = [position for position, row in enumerate(rows) if row[0] in existed]
    return ids, errors, [p for p in replaced if p not in errors]


def apply_updates(
    model: type[models.Model],
    patches: Sequence[Row],
    *,
    rule: Callable[..., tuple[Row | None, Reasons | None]],
    not_found: Reasons,
    check: Callable[[Sequence[Row], Sequence[Row]], dict[int, Reasons]] | None = None,
    before: list | None = None,
) -> Outcome:
    """Change the given fields of stored rows, each merged record checked by ``rule``.

    ``patches`` are ``(id, value or UNSET, ...)`` in the rule's field order; UNSET keeps the
    stored value. One read of the stored rows, one write of the merged ones.
    ``check(merged rows, stored rows)`` may refuse more (the orders' changed references).
    """
    stored = stored_rows(model, [patch[0] for patch in patches], _value_fields(model))
    errors: dict[int, Reasons] = {}
    merged: list[Row] = []
    merged_positions: list[int] = []
    old: list[Row] = []
    for position, (row_id, *given) in enumerate(patches):
        current = stored.get(row_id)
        if current is None:
            errors[position] = not_found
            continue
        values, reasons = rule(
            *[
                value if value is not UNSET else as_sent(was)
                for value, was in zip(given, current, strict=True)
            ]
        )
        if reasons:
            errors[position] = reasons
            continue
        merged.append((row_id, *values))
        merged_positions.append(position)
        old.append((row_id, *current))
    if check is not None and merged:
        for offset, reasons in check(merged, old).items():
            errors[merged_positions[offset]] = reasons
    written = [row for row, p in zip(merged, merged_positions, strict=True) if p not in errors]
    if before is not None:
        before.extend(
            (was, row)
            for was, row, p in zip(old, merged, merged_positions, strict=True)
            if p not in errors
        )
    upsert_rows(model, written)
    ids = [None if position in errors else patch[0] for position, patch in enumerate(patches)]
    return ids, errors, []


def apply_deletions(
    model: type[models.Model],
    ids: Sequence[int],
    *,
    referenced: dict[int, dict[str, int]],
    not_found: Reasons,
    before: list | None = None,
) -> Outcome:
    """Delete the rows nothing points at (``referenced``: what does, from the deletion guards,
    which the caller holds); the others are refused, saying what still points at them."""
    deletable = [row_id for row_id in ids if row_id not in referenced]
    if before is not None:
        stored = stored_rows(model, deletable, _value_fields(model))
        before.extend(((row_id, *values), None) for row_id, values in stored.items())
    deleted = delete_returning(model, deletable)
    errors: dict[int, Reasons] = {}
    shared: dict[tuple, Reasons] = {}
    for position, row_id in enumerate(ids):
        if row_id in referenced:
            counts = referenced[row_id]
            key = tuple(sorted(counts.items()))
            errors[position] = shared.get(key) or shared.setdefault(key, _still_referenced(counts))
        elif row_id not in deleted:
            errors[position] = not_found
    return [None if p in errors else row_id for p, row_id in enumerate(ids)], errors, []


def _value_fields(model: type[models.Model]) -> list[str]:
    """The model's fields but its id, in table order (a whole row is the id and these)."""
    return [field.name for field in model._meta.concrete_fields[1:]]


def _still_referenced(counts: dict[str, int]) -> Reasons:
    what = " and ".join(
        f"{count} {kind if count != 1 else kind.removesuffix('s')}"
        for kind, count in counts.items()
    )
    return {"id": [f"Not deleted: still referenced by {what}; delete or change those first."]}


def with_ledger(ledger, compute: Callable[[], Outcome]) -> Outcome:
    """``compute()``, or the outcome a run under the same ledger key recorded before (then
    nothing is written again); call inside the chunk's transaction. ``ledger`` may be None."""
    if ledger is None:
        return compute()
    done = recorded_outcome(ledger)
    if done is not None:
        return decode_outcome(done)
    outcome = compute()
    record_outcome(ledger, encode_outcome(outcome))
    return outcome


# --- undoing an atomic batch's changes (see ingest.atomic) -------------------------------


def undo_marked_batch(
    model: type[models.Model], ledger: Ledger, *, keep: AbstractSet[int] = frozenset()
) -> list[int]:
    """Delete the rows a marker lists (except ``keep``), put back the earlier state of the rows
    it replaced, updated or deleted, and drop its chunk keys and the marker itself.

    Call inside a transaction on the model's database; returns the ids deleted (none if the
    marker is gone: someone undid it first). On PostgreSQL the marker row is locked first, so
    two undos of one marker run one after the other and the second finds nothing.

    An earlier row goes back only where the batch's change is still what is stored: a row it
    deleted only if its id is still free, a row it replaced or updated only if it still holds
    what the batch wrote. Between the batch's first commit and its undo those rows are visible
    and writable like any other, and a client whose later write was answered with a success
    must not lose it to an undo; such rows keep the later write (a warning counts them).
    Nothing the undo writes can leave an order pointing nowhere: it deletes only rows the batch
    inserted, through the caller's deletion guards, and putting a row back never removes one.
    """
    ledger_model, key = ledger
    stored = (
        ledger_model._default_manager.select_for_update()
        .filter(key=key)
        .values_list("outcome", flat=True)
        .first()
    )
    if stored is None:
        return []
    marker = msgspec.json.decode(bytes(stored))
    ids = [i for i in marker["ids"] if i not in keep]
    bulk.delete_ids(model, ids)
    if marker.get("before"):
        kept_later = put_back(model, marker["before"], marker.get("after", []))
        if kept_later:
            log.warning(
                "atomic batch %s: %d %s changed since the batch wrote them keep that change",
                key,
                kept_later,
                model._meta.db_table,
            )
    bulk.forget_keys(ledger_model, [*marker["ledger_keys"], key])
    return ids


def put_back(
    model: type[models.Model], earlier: Sequence[Sequence], written: Sequence[Sequence]
) -> int:
    """Write ``earlier`` rows back (whole, id first) where ``written`` (the rows a change wrote,
    by id; a row missing there was deleted) is still what is stored; returns how many were not,
    and were left as they are. Values as JSON gave them back (a price as a string) are fine:
    each is turned into its field's type first.

    Call inside a transaction on the model's database. The undo path, rare: one
    ``executemany`` for the deleted rows and one for the changed ones (a conditional write per
    row; the rows of a batch's chunks are thousands, not millions).
    """
    connection = _connection_in_transaction(model)
    to_python = [field.to_python for field in model._meta.concrete_fields]

    def typed(row: Sequence) -> Row:
        return tuple(convert(value) for convert, value in zip(to_python, row, strict=True))

    after = {row[0]: typed(row) for row in written}
    deleted = [typed(row) for row in earlier if row[0] not in after]
    changed = [(typed(row), after[row[0]]) for row in earlier if row[0] in after]
    table, columns = _names(connection, model)
    same = "IS" if connection.vendor == "sqlite" else "IS NOT DISTINCT FROM"
    restored = 0
    with connection.cursor() as cursor:
        if deleted:
            # Back where the id is still free (someone may have stored another row under it).
            cursor.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) "
                f"VALUES ({', '.join(['%s'] * len(columns))}) "
                f"ON CONFLICT ({columns[0]}) DO NOTHING",
                deleted,
            )
            restored += cursor.rowcount
        if changed:
            cursor.executemany(
                f"UPDATE {table} SET {', '.join(f'{c} = %s' for c in columns[1:])} "
                f"WHERE {columns[0]} = %s AND "
                + " AND ".join(f"{c} {same} %s" for c in columns[1:]),
                [(*was[1:], was[0], *now[1:]) for was, now in changed],
            )
            restored += cursor.rowcount
    return len(deleted) + len(changed) - restored
