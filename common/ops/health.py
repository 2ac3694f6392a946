"""Does each database answer, with its own data, and how fast? Used by /healthz and the 503s.

``SELECT 1`` only proves that a connection opens: a SQLite file replaced by another service's
file, by an empty one or by a database that was never migrated answers it happily. So each
database is asked for a row of a table only it holds (the users service's ``users`` table,
and so on), and a failure is explained in words an operator can act on: the file is missing,
it is not a database, it is corrupt, or it lacks its service's table (the wrong file, or one
``init_db`` never ran on).
"""

import time
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


def probe_all() -> list[DatabaseHealth]:
    return [probe(alias) for alias in settings.DATABASES]


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
