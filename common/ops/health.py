"""Does each database answer, with its own data, and how fast? Used by /healthz and the 503s.

``SELECT 1`` only proves that a connection opens: a SQLite file replaced by another service's
file, by an empty one or by a database that was never migrated answers it happily. So each
database is asked for a row of a table only it holds (the users service's ``users`` table,
and so on), and a failure is explained in words an operator can act on: the file is missing,
it is not a database, it is corrupt, or it lacks its service's table (the wrong file, or one
``init_db`` never ran on).
"""

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connections

#: What each database alias holds, as users and operators know it.
SERVICE_OF = {
    "default": "default (accounts, tokens, ingest jobs)",
    "users": "users",
    "products": "products",
    "orders": "orders",
}

#: The table whose presence proves that a database is the one its alias names. Django's
#: content types live on ``default`` only (config.db_router keeps them off the services').
PROBE_TABLE = {
    "default": "django_content_type",
    "users": "users",
    "products": "products",
    "orders": "orders",
}


@dataclass(frozen=True)
class DatabaseHealth:
    alias: str
    ok: bool
    seconds: float
    error: str = ""


def probe(alias: str) -> DatabaseHealth:
    """Read one row of the alias's own table; a failed connection is closed so the next use
    opens a new one (the file may be back by then)."""
    started = time.perf_counter()
    connection = connections[alias]
    table = PROBE_TABLE.get(alias)
    try:
        with connection.cursor() as cursor:
            if table is None:
                cursor.execute("SELECT 1")
            else:
                cursor.execute(f"SELECT 1 FROM {connection.ops.quote_name(table)} LIMIT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        connection.close()
        error = explain(exc, table=table, vendor=connection.vendor, name=_database_name(alias))
        return DatabaseHealth(alias, False, time.perf_counter() - started, error)
    return DatabaseHealth(alias, True, time.perf_counter() - started)


#: Seconds a PostgreSQL server has to answer its probe before it counts as down. A server that
#: hangs (its processes stopped, its disk frozen) answers nothing and refuses nothing, on a
#: connection already open: a probe waiting for it held a gunicorn thread for as long, and
#: eight /healthz requests held every thread of the API (an outside review, with the products
#: server's processes SIGSTOPped).
PROBE_DEADLINE = 3.0

_probes: dict[str, tuple[Future, float]] = {}  # alias -> (its running probe, when it began)
_probes_lock = threading.Lock()
_probe_pool = ThreadPoolExecutor(max_workers=len(SERVICE_OF), thread_name_prefix="health")


def probe_all() -> list[DatabaseHealth]:
    """Every database's health. A SQLite file answers at once (or is found missing at once);
    a PostgreSQL server is probed on a thread of its own and counts as down if it has not
    answered within :data:`PROBE_DEADLINE` of the probe's start. A server still hung at the
    next probe is not asked again: its probe stays the one, so a hung server holds one thread
    of the pool, however often it is probed, and requests after its deadline get their answer
    at once."""
    found: dict[str, DatabaseHealth] = {}
    waiting: dict[str, tuple[Future, float]] = {}
    for alias in settings.DATABASES:
        if connections[alias].vendor == "sqlite":
            found[alias] = probe(alias)
        else:
            waiting[alias] = _probe_soon(alias)
    for alias, (future, began) in waiting.items():
        # Until the probe's own deadline: once a server has been silent that long, the next
        # requests are told at once, instead of each waiting (and holding a thread) again.
        try:
            found[alias] = future.result(
                timeout=max(0.0, began + PROBE_DEADLINE - time.monotonic())
            )
        except FutureTimeout:
            found[alias] = DatabaseHealth(
                alias,
                False,
                time.monotonic() - began,
                f"no answer within {PROBE_DEADLINE:g} s (the server hangs, or the network to "
                "it is cut)",
            )
    return [found[alias] for alias in settings.DATABASES]


def _probe_soon(alias: str) -> tuple[Future, float]:
    with _probes_lock:
        running = _probes.get(alias)
        if running is None or running[0].done():
            running = _probes[alias] = (
                _probe_pool.submit(_probe_and_close, alias),
                time.monotonic(),
            )
        return running


def _probe_and_close(alias: str) -> DatabaseHealth:
    # On the pool's thread, whose connections no request ever closes.
    try:
        return probe(alias)
    finally:
        connections[alias].close()


def explain(exc: Exception, *, table: str | None, vendor: str, name: str = "") -> str:
    """The error's first line, with what it most likely means and what to do about it.

    ``name`` is the database's: a SQLite file's name (not its folder: this text reaches
    clients) or a PostgreSQL database's.
    """
    text = _first_line(exc)
    lowered = text.lower()
    kind = "file" if vendor == "sqlite" else "database"
    what = name if vendor == "sqlite" and name else f"the {kind} {name}".rstrip()
    if table and (f"no such table: {table}" in lowered or f'relation "{table}"' in lowered):
        return (
            f"the {table} table is missing from {what}: is this the right {kind}? A new, empty "
            f"one needs `manage.py init_db` ({text})"
        )
    if "file is not a database" in lowered:
        return (
            f"{what} is not a SQLite database (another file, or its first bytes overwritten): "
            f"restore it from a backup ({text})"
        )
    if "malformed" in lowered:
        return f"{what} is corrupt: restore it from a backup ({text})"
    return text


def _database_name(alias: str) -> str:
    name = str(connections[alias].settings_dict["NAME"])
    return Path(name).name if connections[alias].vendor == "sqlite" else name


def _first_line(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
