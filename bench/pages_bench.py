"""Deep pages: any page of any ordering of a million rows, by cursor, against the old OFFSET.

``python -m bench.pages_bench`` (part of ``make bench``) fills fresh databases with ``--rows``
users, products and orders (1,000,000 each; many equal names, prices and quantities, so that
the id tie-breaker does real work), starts gunicorn, and times, for every ordering each list
offers (both directions):

* the first page (``?ordering=...``: a numbered page, with its ``count``);
* the page after a position at 10%, 50%, 90% and the end of the ordering (``?cursor=``), and
  the page before the middle one (a ``previous`` link): the target is < 20 ms for each;
* the deepest numbered page (``page=200`` of 50 rows: rows 9,951-10,000, ``API_MAX_PAGE_DEPTH``);
* for contrast, measured in the same run on the same file: what the old deep page cost, a raw
  ``ORDER BY field, id LIMIT 50 OFFSET rows-50`` with sqlite3 (the indexes now in place; before
  them it was a sort of the whole table).

Then the reviewer's load: six clients reading ``GET /users/?ordering=email`` page after page
(following ``next``) while another times ``GET /users/1/``; p50/p99/max idle and under load.

Each figure is the median of ``--repeat`` requests on a kept-alive connection, in milliseconds,
client side (it includes HTTP and JSON). With PostgreSQL reachable the same runs again there
(``--no-postgres`` skips it).
"""

import argparse
import http.client
import json
import os
import random
import sqlite3
import statistics
import tempfile
import threading
import time
from contextlib import closing
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

from bench.ingest_bench import (
    _drop_postgres,
    _fresh_postgres,
    gunicorn,
    postgres_available,
)
from common.data.keyset import Ordering

ORDERINGS = {
    "users": ["id", "name", "email"],
    "products": ["id", "name", "price"],
    "orders": ["id", "user_id", "product_id", "quantity"],
}
DEPTHS = (0.1, 0.5, 0.9, 1.0)
PAGE_SIZE = 50
TARGET_MS = 20.0
FIRST_NAMES = ["Alice", "Bob", "Carol", "Dan", "Eve", "Frank", "Grace", "Heidi", "Ivan", "Judy"]


# --- data ----------------------------------------------------------------------------------------


def _users(rows: int, rng: random.Random):
    for i in range(1, rows + 1):
        name = f"{rng.choice(FIRST_NAMES)} {rng.randint(1, 500)}"
        yield i, name, f"{name.split()[0].lower()}{rng.randint(1, rows)}@example.com"


def _products(rows: int, rng: random.Random):
    for i in range(1, rows + 1):
        yield i, f"Product {rng.randint(1, 20_000)}", round(rng.randint(1, 200_000) / 100, 2)


def _orders(rows: int, rng: random.Random):
    for i in range(1, rows + 1):
        yield i, rng.randint(1, rows), rng.randint(1, rows), rng.randint(1, 9)


TABLES = {
    "users": ("INSERT INTO users (id, name, email) VALUES (?, ?, ?)", _users),
    "products": ("INSERT INTO products (id, name, price) VALUES (?, ?, ?)", _products),
    "orders": (
        "INSERT INTO orders (id, user_id, product_id, quantity) VALUES (?, ?, ?, ?)",
        _orders,
    ),
}


def fill_sqlite(data_dir: Path, rows: int) -> None:
    """``rows`` rows into each of the service's (migrated, empty) files, with its indexes."""
    for table, (insert, generate) in TABLES.items():
        with closing(sqlite3.connect(data_dir / f"{table}.db", isolation_level=None)) as db:
            db.execute("BEGIN")
            db.executemany(insert, generate(rows, random.Random(table)))
            db.execute("COMMIT")
            db.execute("ANALYZE")


def fill_postgres(urls: dict[str, str], rows: int) -> None:
    import psycopg

    for table, (insert, generate) in TABLES.items():
        columns = insert.split("(", 1)[1].split(")", 1)[0]
        with psycopg.connect(urls[f"{table.upper()}_DATABASE_URL"], autocommit=True) as db:
            with db.cursor().copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in generate(rows, random.Random(table)):
                    copy.write_row(row)
            db.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {rows})")
            db.execute(f"ANALYZE {table}")


def positions(query, table: str, field: str, descending: bool, rows: int) -> dict[float, tuple]:
    """The ``(value, id)`` at each depth of an ordering, read once with plain SQL."""
    direction = "DESC" if descending else "ASC"
    order = f"{field} {direction}" + ("" if field == "id" else f", id {direction}")
    found = {}
    for depth in DEPTHS:
        offset = min(int(rows * depth), rows - PAGE_SIZE)
        value, row_id = query(
            f"SELECT {field}, id FROM {table} ORDER BY {order} LIMIT 1 OFFSET {offset}"
        )
        # SQLite's money column is REAL; the service reads (and cursors carry) exact decimals.
        found[depth] = (Decimal(repr(value)) if isinstance(value, float) else value, row_id)
    return found


# --- timing --------------------------------------------------------------------------------------


class Client:
    """One kept-alive HTTP connection with the benchmark's key."""

    def __init__(self, port: int, token: str) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.headers = {"Authorization": f"Token {token}"}

    def get(self, path: str) -> tuple[float, dict]:
        started = time.perf_counter()
        self.connection.request("GET", path, headers=self.headers)
        response = self.connection.getresponse()
        body = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status != 200:
            raise RuntimeError(f"GET {path} answered {response.status}: {body[:300]!r}")
        return elapsed, json.loads(body)

    def median(self, path: str, repeat: int) -> float:
        return statistics.median(self.get(path)[0] for _ in range(repeat))


def _cursor_path(table: str, ordering: Ordering, position: tuple, before: bool = False) -> str:
    """The path of a cursor at ``position``, made as the service makes its links."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")  # DRF's settings
    from common.http.pagination import Cursor

    cursor = Cursor(ordering, position, before=before).encode()
    return f"/{table}/?ordering={ordering.name}&page_size={PAGE_SIZE}&cursor={cursor}"


def time_orderings(client: Client, query, rows: int, repeat: int) -> list[dict]:
    results = []
    for table, fields in ORDERINGS.items():
        for field in fields:
            for descending in (False, True):
                ordering = Ordering(field, descending)
                at = positions(query, table, field, descending, rows)
                base = f"/{table}/?ordering={ordering.name}&page_size={PAGE_SIZE}"
                cursor_ms = {
                    depth: client.median(_cursor_path(table, ordering, at[depth]), repeat)
                    for depth in DEPTHS
                }
                direction = "DESC" if descending else "ASC"
                order = f"{field} {direction}" + ("" if field == "id" else f", id {direction}")
                started = time.perf_counter()
                query(
                    f"SELECT * FROM {table} ORDER BY {order} LIMIT {PAGE_SIZE} "
                    f"OFFSET {rows - PAGE_SIZE}",
                    one=False,
                )
                results.append(
                    {
                        "list": table,
                        "ordering": ordering.name,
                        "first_ms": client.median(base, repeat),
                        "cursor_ms": cursor_ms,
                        "previous_ms": client.median(
                            _cursor_path(table, ordering, at[0.5], before=True), repeat
                        ),
                        "page200_ms": client.median(f"{base}&page=200", repeat),
                        "raw_offset_ms": (time.perf_counter() - started) * 1000,
                    }
                )
    return results


def readers_under_load(port: int, token: str, readers: int, samples: int) -> dict:
    """``GET /users/1/`` latency alone, then while ``readers`` clients walk the users by email."""
    probe = Client(port, token)

    def sample() -> list[float]:
        return sorted(probe.get("/users/1/")[0] for _ in range(samples))

    idle = sample()
    stop = threading.Event()
    pages = [0] * readers

    def walk(index: int) -> None:
        client = Client(port, token)
        path = f"/users/?ordering=email&page_size={PAGE_SIZE}"
        while not stop.is_set():
            _, body = client.get(path)
            pages[index] += 1
            link = body["next"]
            path = (
                f"/users/?ordering=email&page_size={PAGE_SIZE}"
                if not link
                else (urlsplit(link).path + "?" + urlsplit(link).query)
            )

    threads = [threading.Thread(target=walk, args=(i,), daemon=True) for i in range(readers)]
    for thread in threads:
        thread.start()
    time.sleep(1)
    loaded = sample()
    stop.set()
    for thread in threads:
        thread.join(30)

    def summary(values: list[float]) -> dict:
        return {
            "p50": values[len(values) // 2],
            "p99": values[min(len(values) - 1, int(len(values) * 0.99))],
            "max": values[-1],
        }

    return {"idle": summary(idle), "loaded": summary(loaded), "pages_read": sum(pages)}


# --- runs ----------------------------------------------------------------------------------------


def run(label: str, rows: int, repeat: int, readers: int, urls: dict | None = None) -> dict:
    with tempfile.TemporaryDirectory(prefix="pages-bench-") as scratch:
        data_dir = Path(scratch)
        started = time.perf_counter()

        def prepare(env) -> None:
            if urls:
                fill_postgres(urls, rows)
            else:
                fill_sqlite(data_dir, rows)

        with gunicorn(data_dir, urls, prepare=prepare, workers=2) as (port, token, _):
            filled = time.perf_counter() - started
            query = _sqlite_query(data_dir) if not urls else _postgres_query(urls)
            client = Client(port, token)
            orderings = time_orderings(client, query, rows, repeat)
            load = readers_under_load(port, token, readers, samples=200)
    return {"label": label, "rows": rows, "fill_s": filled, "orderings": orderings, "load": load}


def _sqlite_query(data_dir: Path):
    def query(sql: str, one: bool = True):
        table = sql.split(" FROM ", 1)[1].split()[0]
        with closing(sqlite3.connect(data_dir / f"{table}.db")) as db:
            rows = db.execute(sql).fetchall()
        return rows[0] if one else rows

    return query


def _postgres_query(urls: dict[str, str]):
    import psycopg

    def query(sql: str, one: bool = True):
        table = sql.split(" FROM ", 1)[1].split()[0]
        with psycopg.connect(urls[f"{table.upper()}_DATABASE_URL"]) as db:
            rows = db.execute(sql).fetchall()
        return rows[0] if one else rows

    return query


def report(result: dict) -> None:
    print(
        f"\n{result['label']}: {result['rows']:,} rows per table "
        f"(filled in {result['fill_s']:.0f} s)"
    )
    header = (
        f"{'list':9}{'ordering':12}{'first':>8}{'10%':>8}{'50%':>8}{'90%':>8}{'end':>8}"
        f"{'prev':>8}{'page200':>9}{'OFFSET':>9}  target"
    )
    print(header + "\n" + "-" * len(header))
    worst = 0.0
    for row in result["orderings"]:
        cursors = row["cursor_ms"]
        deepest = max([*cursors.values(), row["previous_ms"]])
        worst = max(worst, deepest)
        print(
            f"{row['list']:9}{row['ordering']:12}{row['first_ms']:8.1f}"
            + "".join(f"{cursors[d]:8.1f}" for d in DEPTHS)
            + f"{row['previous_ms']:8.1f}{row['page200_ms']:9.1f}{row['raw_offset_ms']:9.1f}  "
            + ("met" if deepest < TARGET_MS else "NOT met")
        )
    verdict = "met" if worst < TARGET_MS else "NOT met"
    print(f"slowest cursor page: {worst:.1f} ms (target < {TARGET_MS:.0f} ms: {verdict})")
    print("(ms, median of the repeats, client side; OFFSET: raw SQL of the old deepest page)")
    load = result["load"]
    print(
        "GET /users/1/ idle: p50 {p50:.1f} / p99 {p99:.1f} / max {max:.1f} ms".format(
            **load["idle"]
        )
    )
    print(
        "GET /users/1/ with 6 clients walking ?ordering=email: "
        "p50 {p50:.1f} / p99 {p99:.1f} / max {max:.1f} ms".format(**load["loaded"])
        + f" ({load['pages_read']:,} pages read meanwhile)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--readers", type=int, default=6)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    report(run("SQLite", args.rows, args.repeat, args.readers))
    if not args.no_postgres and postgres_available():
        urls = _fresh_postgres("pages_bench")
        try:
            report(run("PostgreSQL", args.rows, args.repeat, args.readers, urls))
        finally:
            _drop_postgres(urls)


if __name__ == "__main__":
    main()
