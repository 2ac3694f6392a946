"""Fast inserts of many checked rows into one service table: the write path of bulk ingest.

A service calls :func:`insert_new` with rows that already passed its rules, id first (``None``
when the database should assign one). In one transaction on the service's database it

1. finds which explicit ids already exist (one ``IN`` query per 10,000 ids): those rows are
   duplicates and are not written;
2. assigns ids to the rows without one, above every id already used and above ``ids_above``
   (the largest explicit id in the whole batch, so a later chunk's explicit id cannot collide
   with an id assigned here);
3. writes the rows with the fastest statement the database offers.

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
from itertools import chain
from typing import Any

from django.db import connections, models, router, transaction

from common.queries import IDS_PER_QUERY, existing_ids

Row = tuple[Any, ...]

#: Rows per multi-row INSERT on SQLite: big enough that the per-statement cost vanishes, small
#: enough to stay far below SQLite's bind-parameter limit (32,766 on current versions).
SQLITE_ROWS_PER_STATEMENT = 500


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
    explicit = [row[0] for row in rows if row[0] is not None]
    taken = existing_ids(model, explicit) if explicit else set()
    missing = len(rows) - len(explicit)
    next_id = _first_free_id(connection, model, ids_above) if missing else 0

    ids: list[int | None] = []
    to_write: list[Row] = []
    for row in rows:
        row_id = row[0]
        if row_id is None:
            row_id = next_id
            next_id += 1
            row = (row_id, *row[1:])
        elif row_id in taken:
            ids.append(None)
            continue
        ids.append(row_id)
        to_write.append(row)
    _write(connection, model, to_write)
    return ids


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
    one_row = "(" + ", ".join(["?"] * width) + ")"
    per_statement = SQLITE_ROWS_PER_STATEMENT
    full_statement = f"INSERT INTO {table} ({columns}) VALUES " + ", ".join(
        [one_row] * per_statement
    )
    cursor = connection.connection.cursor()  # the sqlite3 driver's own cursor: no wrappers
    try:
        for start in range(0, len(rows), per_statement):
            part = rows[start : start + per_statement]
            statement = (
                full_statement
                if len(part) == per_statement
                else (f"INSERT INTO {table} ({columns}) VALUES " + ", ".join([one_row] * len(part)))
            )
            cursor.execute(statement, list(chain.from_iterable(part)))
    finally:
        cursor.close()


def delete_ids(model: type[models.Model], ids: Sequence[int]) -> None:
    """Delete rows by primary key, 10,000 ids per statement."""
    for start in range(0, len(ids), IDS_PER_QUERY):
        model._default_manager.filter(pk__in=ids[start : start + IDS_PER_QUERY]).delete()
