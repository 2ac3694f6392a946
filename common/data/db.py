"""Table locks that make a check in one database and a write in another safe together.

SQLite needs none of this: every transaction here starts with ``BEGIN IMMEDIATE`` (see
``config.env.sqlite_options``), which takes the file's single write lock up front. PostgreSQL
lets writers run side by side, so the kinds of transaction that must not interleave say so:

* a writer that checks references before inserting (an order checks its user and product)
  takes ``ROW EXCLUSIVE`` before it checks; writers do not block each other;
* a guard that counts references before the referenced record is deleted takes ``SHARE``,
  which waits for those writers to finish and keeps new ones out until it commits;
* a batch that writes all three databases in transactions it holds to the end (an atomic
  ingest) takes ``SHARE ROW EXCLUSIVE`` before it writes anything: it waits for the writers and
  guards already running and keeps new ones out. Sharing the table with writers would not do:
  such a batch waits for rows of the others in one database (an order with the same id, not
  yet committed) while holding rows they need in another (the user of that order), and they
  may be waiting for each other in Python (a streaming ingest's orders for its users), which
  no server sees as a deadlock.

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


def lock_out_writers(alias: str, table: str) -> None:
    """Call first in a transaction that writes ``table`` and other databases until it ends."""
    _lock(alias, table, "SHARE ROW EXCLUSIVE")


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
