"""Is each database reachable, and how fast? Used by the 503 answers and by /healthz."""

import time
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, connections

#: What each database alias holds, as users and operators know it.
SERVICE_OF = {
    "default": "default (accounts, tokens, ingest jobs)",
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
    """Run ``SELECT 1`` on the database; a failed connection is closed so the next use retries."""
    started = time.perf_counter()
    connection = connections[alias]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        connection.close()
        return DatabaseHealth(alias, False, time.perf_counter() - started, _first_line(exc))
    return DatabaseHealth(alias, True, time.perf_counter() - started)


def probe_all() -> list[DatabaseHealth]:
    return [probe(alias) for alias in settings.DATABASES]


def _first_line(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
