"""Typed reads of environment variables, so that settings fail fast on a bad value.

Every setting that can change between machines is read here, once, with a default that suits a
developer's laptop. A value that cannot be parsed raises ``ImproperlyConfigured`` naming the
variable, instead of letting a typo turn into a surprising default.
"""

import os
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

#: Every variable the settings have read (docker-compose.yml sets them all; a test checks).
READ_VARIABLES: set[str] = set()

#: The SQLite backend every SQLite database uses (common.data.backends.sqlite3).
SQLITE_ENGINE = "common.data.backends.sqlite3"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None) -> str | None:
    """The variable's value, or ``default`` when it is unset."""
    READ_VARIABLES.add(name)
    return os.environ.get(name, default)


def env_required(name: str, why: str) -> str:
    """The variable's value; refuse to start without it."""
    READ_VARIABLES.add(name)
    value = os.environ.get(name, "").strip()
    if not value:
        raise ImproperlyConfigured(f"Set the {name} environment variable: {why}")
    return value


def parse_bool(raw: str) -> bool | None:
    """``1/true/yes/on`` or ``0/false/no/off`` (any case, outer spaces ignored), else None: the
    one reading of a boolean, for environment variables and query flags alike."""
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return None


def env_bool(name: str, default: bool) -> bool:
    """``1/true/yes/on`` or ``0/false/no/off`` (case-insensitive)."""
    READ_VARIABLES.add(name)
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = parse_bool(raw)
    if value is None:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true or false).")
    return value


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    """A whole number, at least ``minimum`` when given."""
    READ_VARIABLES.add(name)
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw.strip().replace("_", ""))
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number.") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below the minimum of {minimum}.")
    return value


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    """A number, at least ``minimum`` when given."""
    READ_VARIABLES.add(name)
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number.") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below the minimum of {minimum}.")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    """A comma-separated list; blanks are dropped."""
    READ_VARIABLES.add(name)
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def sqlite_options(busy_timeout_seconds: float, cache_kib: int = 2000) -> dict[str, Any]:
    """OPTIONS that make a SQLite file safe for several threads and processes at once.

    WAL lets readers run while one writer writes; ``synchronous=NORMAL`` is durable in WAL mode
    except for the last transactions before a power cut; the busy timeout makes a second writer
    wait for the lock instead of failing with "database is locked"; IMMEDIATE takes the write
    lock when a transaction starts, so that a reader never has to upgrade to a writer mid-way
    (an upgrade cannot wait and fails at once). The page cache (SQLite's default is 2 MiB) is
    a ceiling per connection: a bulk insert into the orders table and its two indexes re-reads
    pages from the operating system three times less often with 32 MiB.
    """
    return {
        "init_command": (
            f"PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-{cache_kib}"
        ),
        "transaction_mode": "IMMEDIATE",
        "timeout": busy_timeout_seconds,
    }


def postgres_options(
    *, connect_timeout: int, network_timeout: int, statement_timeout: int
) -> dict[str, Any]:
    """OPTIONS that keep a PostgreSQL server that stops answering from holding requests.

    Without them, a server cut off by the network (its packets vanish; nothing refuses) held
    every request that needed it: a new connection for the kernel's two minutes of SYN
    retries, a query on an open one until gunicorn killed the worker. Now:

    * ``connect_timeout`` (seconds): a connection not made by then fails;
    * ``network_timeout`` (seconds): data sent and not acknowledged for that long fails the
      connection (``tcp_user_timeout``), and so does an idle or waiting one whose peer stops
      answering keepalive probes (first after 5 s, then every 2 s, 3 of them);
    * ``statement_timeout`` (seconds): the server ends a statement that runs longer (one
      waiting on a lock someone holds, a runaway query). Above the longest bulk write.

    Each failure is the database's 503 naming it (common.http.exception_handler), as for a
    stopped server. ``make test-cluster`` cuts a server off with a network namespace.
    """
    return {
        "connect_timeout": connect_timeout,
        "tcp_user_timeout": network_timeout * 1000,
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 3,
        "options": f"-c statement_timeout={statement_timeout * 1000}",
    }


def database_from_env(
    variable: str,
    sqlite_path: Path,
    *,
    busy_timeout_seconds: float,
    conn_max_age: int,
    cache_kib: int = 2000,
    postgres: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One DATABASES entry: the URL in ``variable``, else a SQLite file at ``sqlite_path``."""
    READ_VARIABLES.add(variable)
    url = os.environ.get(variable, "").strip() or f"sqlite:///{sqlite_path}"
    try:
        config = dj_database_url.parse(url, conn_max_age=conn_max_age, conn_health_checks=True)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{variable} is not a usable database URL: {exc}") from None
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # Django's backend, except that it opens existing files only: a missing file is an
        # unavailable database, never a new empty one (only migrations create files).
        config["ENGINE"] = SQLITE_ENGINE
        config["OPTIONS"] = {
            **sqlite_options(busy_timeout_seconds, cache_kib),
            **config.get("OPTIONS", {}),
        }
        # A SQLite connection is cheap to open, and a persistent one would pin the file open
        # for every idle thread of the server.
        config["CONN_MAX_AGE"] = 0
    elif config["ENGINE"] == "django.db.backends.postgresql" and postgres:
        config["OPTIONS"] = {**postgres, **config.get("OPTIONS", {})}
    return config
