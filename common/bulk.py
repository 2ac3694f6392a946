"""Fast inserts of many checked rows into one service table: the write path of bulk ingest.

A service calls :func:`insert_new` with rows that already passed its rules, id first (``None``
when the database should assign one). In one transaction on the service's database it

1. assigns ids to the rows without one, above every id already used and above ``ids_above``
   (the largest explicit id in the whole batch, so a later chunk's explicit id cannot collide
   with an id assigned here);
2. writes the rows with the fastest statement the database offers;
3. only if the primary key refuses a row (an explicit id that exists), looks up which ids
   exist (one query) and writes the others: those rows are duplicates.

Why not the ORM's ``bulk_create``: it spends about 4 s per 300,000 rows building model
instances and SQL. On SQLite this module sends multi-row ``INSERT ... VALUES (...), (...)``
statements of a few hundred rows straight to the sqlite3 driver: one statement per few hundred
rows means the driver releases the GIL for the whole statement, so writer threads of different
databases really run in parallel with the Python that validates the next records (plain
``executemany`` releases and re-takes the GIL on every row, and three such threads were measured
1.8x slower than one). These statements bypass Django's cursor wrappers, so they do not show up
in ``connection.queries``.
"""

from collections.abc import Sequence
from contextlib import closing
from typing import Any

import msgspec
from django.db import IntegrityError, connections, models, router, transaction

from common.queries import existing_ids, id_list_param, id_list_sql

Row = tuple[Any, ...]

# Decimals (prices) go out as JSON numbers written from their exact text, e.g. 19.99: SQLite
# reads them as the nearest double, exactly as it reads "19.99" (msgspec does this in C; orjson
# would call back into Python for every Decimal).
_encode_rows = msgspec.json.Encoder(decimal_format="number").encode


def table_columns(model: type[models.Model]) -> list[str]:
    """The model's columns in table order; rows passed here follow that order (id first)."""
    columns = [field.column for field in model._meta.concrete_fields]
    assert columns[0] == model._meta.pk.column, f"{model.__name__}: the primary key must be first"
    return columns


def insert_new(
    model: type[models.Model], rows: Sequence[Row], *, ids_above: int = 0
) -> list[int | None]:
    """Insert ``rows`` in one transaction; return each row's id, or ``None`` for a duplicate."""
    alias = router.db_for_write(model)
    with transaction.atomic(using=alias):
        return insert_new_in_transaction(model, rows, ids_above=ids_above)


def insert_new_in_transaction(
    model: type[models.Model], rows: Sequence[Row], *, ids_above: int = 0
) -> list[int | None]:
    """:func:`insert_new` for a caller that already holds a transaction on the model's database."""
    alias = router.db_for_write(model)
    connection = connections[alias]
    assert connection.in_atomic_block, "insert_new_in_transaction needs transaction.atomic()"
    if not rows:
        return []
    rows = _with_ids(connection, model, rows, ids_above)
    # Optimistic: records of a new batch rarely exist already, and the primary key index finds
    # a duplicate while inserting at no extra cost. Only when it does (a retried batch), look the
    # ids up and insert the rest: one more query, on the rare path.
    try:
        with transaction.atomic(using=alias):
            _write(connection, model, rows)
        return [row[0] for row in rows]
    except IntegrityError:
        pass
    taken = existing_ids(model, [row[0] for row in rows])
    _write(connection, model, [row for row in rows if row[0] not in taken])
    return [None if row[0] in taken else row[0] for row in rows]


def _with_ids(connection, model: type[models.Model], rows: Sequence[Row], ids_above: int):
    """``rows`` with an id in every row: the next free ids for the rows that have none."""
    missing = sum(1 for row in rows if row[0] is None)
    if not missing:
        return rows
    next_id = _first_free_id(connection, model, ids_above)
    assigned = []
    for row in rows:
        if row[0] is None:
            row = (next_id, *row[1:])
            next_id += 1
        assigned.append(row)
    return assigned


def _first_free_id(connection, model: type[models.Model], ids_above: int) -> int:
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


def _write(connection, model: type[models.Model], rows: list[Row]) -> None:
    if not rows:
        return
    table = connection.ops.quote_name(model._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(c) for c in table_columns(model))
    if connection.vendor == "sqlite":
        _write_sqlite(connection, table, columns, len(rows[0]), rows)
    else:
        with connection.cursor() as cursor:
            placeholders = ", ".join(["%s"] * len(rows[0]))
            cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({placeholders})", rows)


def _write_sqlite(connection, table: str, columns: str, width: int, rows: list[Row]) -> None:
    # The whole chunk travels as one JSON array parameter and SQLite unpacks it: one statement,
    # during which the driver holds no GIL (see the module docstring).
    values = ", ".join(f"value ->> {i}" for i in range(width))
    statement = f"INSERT INTO {table} ({columns}) SELECT {values} FROM json_each(?)"
    payload = _encode_rows(rows)
    # The driver's own cursor (no debug wrappers), with its errors turned into Django's.
    with connection.wrap_database_errors, closing(connection.connection.cursor()) as cursor:
        cursor.execute(statement, (payload,))


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
