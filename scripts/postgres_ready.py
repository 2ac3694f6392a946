"""Is the PostgreSQL server of ``make test-postgres`` reachable? Create its databases if so.

Usage: ``python scripts/postgres_ready.py URL NAME...``. Connects to ``URL/postgres`` (3 s
timeout), creates each missing database ``NAME`` and exits 0; if the server cannot be reached,
says so and exits 1. The tests then create their own ``test_NAME`` databases beside them.
"""

import sys

import psycopg
from psycopg import sql


def main(url: str, names: list[str]) -> int:
    try:
        connection = psycopg.connect(f"{url}/postgres", connect_timeout=3, autocommit=True)
    except psycopg.OperationalError as exc:
        print(f"PostgreSQL is not reachable at {url}: {str(exc).strip()}", file=sys.stderr)
        return 1
    with connection:
        existing = {row[0] for row in connection.execute("SELECT datname FROM pg_database")}
        for name in names:
            if name not in existing:
                connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                print(f"created database {name}")
    print(f"PostgreSQL ready at {url}: {', '.join(names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1].rstrip("/"), sys.argv[2:]))
