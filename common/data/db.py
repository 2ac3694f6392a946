"""Table locks that make a check in one database and a write in another safe together.

SQLite needs none of this: every transaction here starts with ``BEGIN IMMEDIATE`` (see
``config.env.sqlite_options``), which takes the file's single write lock up front. PostgreSQL
lets writers run side by side, so the two kinds of transaction that must not interleave say so:

* a writer that checks references before inserting (an order checks its user and product)
  takes ``ROW EXCLUSIVE`` before it checks; writers do not block each other;
* a guard that counts references before the referenced record is deleted takes ``SHARE``,
  which waits for those writers to finish and keeps new ones out until it commits.

Some transactions must exclude each other though they take those same locks or none (an atomic
ingest and the recovery of interrupted ones: ``ROW EXCLUSIVE`` does not conflict with itself).
They take a named lock (:func:`hold_named_lock`): on PostgreSQL a transaction-level advisory
lock, on SQLite again the file's write lock. A named lock is taken before any table lock of its
database, so that it never waits while holding one.
"""

import zlib

from django.db import connections


def _lock(alias: str, table: str, mode: str) -> None:
    connection = connections[alias]
    assert connection.in_atomic_block, (
        f"lock {table} inside transaction.atomic(using={alias!r}): a lock outside a "
        "transaction is released at once"
    )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {connection.ops.quote_name(table)} IN {mode} MODE")


def lock_for_checked_insert(alias: str, table: str) -> None:
    """Call first in a transaction that checks references and then inserts into ``table``."""
    _lock(alias, table, "ROW EXCLUSIVE")


def lock_out_inserts(alias: str, table: str) -> None:
    """Call first in a transaction that must see no new rows in ``table`` until it ends."""
    _lock(alias, table, "SHARE")


def hold_named_lock(alias: str, name: str) -> None:
    """Call first in a transaction that must not overlap another one holding ``name``.

    PostgreSQL: ``pg_advisory_xact_lock``, released when the transaction ends (commit, rollback
    or a lost connection), never left behind. SQLite: nothing more to take, the transaction
    already holds the file's write lock (``BEGIN IMMEDIATE``), which excludes every other writer.
    """
    connection = connections[alias]
    assert connection.in_atomic_block, (
        f"take the lock {name!r} inside transaction.atomic(using={alias!r})"
    )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [zlib.crc32(name.encode())])
