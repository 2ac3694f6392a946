"""Export benchmark: a 1,000,000-row table out of ``GET /orders/export/``, against plain Python.

``make bench`` runs it last (or ``python -m bench.export_bench``). Each run is a fresh process on
fresh databases: the table is written straight into them (``executemany`` on SQLite, ``COPY``
on PostgreSQL; not timed), then one side is timed:

1. raw (the baseline): what a plain script does: one ``SELECT ... ORDER BY id`` over the table
   (``sqlite3``; on PostgreSQL a psycopg server-side cursor, 5,000 rows a fetch), each row
   turned into its NDJSON line with ``orjson.dumps`` of a dict, written to ``/dev/null``;
2. raw, batched: the same query, 5,000 rows a fetch, each fetch encoded in one call with the
   service's own encoder (msgspec ``encode_lines``): what is left of the service's cost is
   Django, the keyset queries and HTTP;
3. HTTP: ``GET /<table>/export/`` from gunicorn (the benchmark's usual one worker process, four
   threads), read whole by a client in the benchmark's process, which checks the line count and
   the first and last lines; the worker's peak RSS growth during the export too.

The three sides alternate, ``--repeat`` runs each; the best run counts (the least disturbed by
other load), the median is shown beside it. Targets: HTTP at least 0.5x raw, and the server's
memory growth under 50 MB whatever the table's size.

The default table is orders because nothing reads it before the measure starts: the server's
warm-up (``bench.ingest_bench.gunicorn``) is ``GET /users/``, whose count reads the whole users
table, so with ``--table users`` the cache it filled and freed is already in the worker and the
growth shown is too low.
"""

import argparse
import http.client
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.ingest_bench import (
    PG_URL,
    PYTHON,
    ROOT,
    _drop_postgres,
    _fresh_postgres,
    _peak_rss_mb,
    _proc_status,
    gunicorn,
    postgres_available,
    raw_pg_databases,
    raw_sqlite_files,
)

RATIO_TARGET = 0.5
RSS_TARGET_MB = 50
TABLES = {
    "orders": ("order", ("id", "user_id", "product_id", "quantity")),
    "users": ("user", ("id", "name", "email")),
    "products": ("product", ("id", "name", "price")),
}


def rows(table: str, count: int):
    """``count`` rows of ``table``, ids 1 to ``count``, the same on every side and run."""
    for i in range(1, count + 1):
        if table == "orders":
            yield (i, (i * 7919) % 100_000 + 1, (i * 104_729) % 100_000 + 1, i % 9 + 1)
        elif table == "users":
            yield (i, f"User {i} Zoë", f"user{i}@example.com")
        else:
            yield (i, f"Product {i}", f"{(i * 7919) % 200_000 / 100 + 0.01:.2f}")


def fill_sqlite(path: Path, table: str, count: int) -> None:
    _, fields = TABLES[table]
    with sqlite3.connect(path, isolation_level=None) as connection:
        connection.execute("BEGIN")
        connection.executemany(
            f"INSERT INTO {table} ({', '.join(fields)}) VALUES ({', '.join('?' * len(fields))})",
            rows(table, count),
        )
        connection.execute("COMMIT")
    connection.close()


def fill_postgres(url: str, table: str, count: int) -> None:
    import psycopg

    _, fields = TABLES[table]
    with psycopg.connect(url, autocommit=True) as connection:
        with (
            connection.cursor() as cursor,
            cursor.copy(f"COPY {table} ({', '.join(fields)}) FROM STDIN") as copy,
        ):
            for row in rows(table, count):
                copy.write_row(row)
        connection.execute(f"VACUUM ANALYZE {table}")


# --- the measured workers (each runs in its own process) ---------------------------------------


#: Each table's NDJSON line as a plain script would build it: a dict literal per row.
RAW_LINES = {
    "orders": lambda r: {
        "type": "order",
        "id": r[0],
        "user_id": r[1],
        "product_id": r[2],
        "quantity": r[3],
    },
    "users": lambda r: {"type": "user", "id": r[0], "name": r[1], "email": r[2]},
    "products": lambda r: {"type": "product", "id": r[0], "name": r[1], "price": str(r[2])},
}


def run_raw(
    data_dir: Path,
    table: str,
    count: int,
    urls: dict[str, str] | None = None,
    batched: bool = False,
) -> dict:
    """Plain Python: one query over the table, orjson per row (or, ``batched``, msgspec a
    fetch of 5,000 rows at a time, the service's encoder), lines to /dev/null."""
    import orjson

    record, fields = TABLES[table]
    if urls:
        import psycopg

        for created in raw_pg_databases(urls).values():
            created.close()
        fill_postgres(urls[f"{table.upper()}_DATABASE_URL"], table, count)
        connection = psycopg.connect(urls[f"{table.upper()}_DATABASE_URL"])
        cursor = connection.cursor(name="export")  # server-side, in a transaction
        cursor.itersize = 5_000
    else:
        raw_sqlite_files(data_dir)
        fill_sqlite(data_dir / f"{table}.db", table, count)
        connection = sqlite3.connect(data_dir / f"{table}.db")
        cursor = connection.cursor()
    line, dumps, option = RAW_LINES[table], orjson.dumps, orjson.OPT_APPEND_NEWLINE
    started = time.perf_counter()
    lines = 0
    with open(os.devnull, "wb") as out:  # noqa: PTH123 (a buffered binary file, as a client's)
        cursor.execute(f"SELECT {', '.join(fields)} FROM {table} ORDER BY id")
        if batched:
            import msgspec

            struct = msgspec.defstruct(record, fields, tag_field="type", tag=record)
            encode_lines = msgspec.json.Encoder().encode_lines
            while chunk := cursor.fetchmany(5_000):
                out.write(encode_lines([struct(*row) for row in chunk]))
                lines += len(chunk)
        else:
            for row in cursor:
                out.write(dumps(line(row), option=option))
                lines += 1
    seconds = time.perf_counter() - started
    connection.close()
    return {"seconds": seconds, "rows": lines, "peak_rss_mb": _peak_rss_mb()}


def run_http(data_dir: Path, table: str, count: int, urls: dict[str, str] | None = None) -> dict:
    """``GET /<table>/export/`` against gunicorn, read whole; the worker's RSS growth."""

    def prepare(_env: dict[str, str]) -> None:
        if urls:
            fill_postgres(urls[f"{table.upper()}_DATABASE_URL"], table, count)
        else:
            fill_sqlite(data_dir / f"{table}.db", table, count)

    with gunicorn(data_dir, urls, prepare) as (port, _token, worker):
        before = _proc_status(worker)["VmRSS"]
        Path(f"/proc/{worker}/clear_refs").write_text("5")  # reset the peak (VmHWM)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        started = time.perf_counter()
        connection.request("GET", f"/{table}/export/")
        response = connection.getresponse()
        lines, first, last, received = 0, b"", b"", 0
        while piece := response.read(1 << 20):
            if not first:
                first = piece[: piece.index(b"\n")]
            lines += piece.count(b"\n")
            received += len(piece)
            last = piece
        seconds = time.perf_counter() - started
        peak = _proc_status(worker)["VmHWM"]
        connection.close()
    if response.status != 200:
        raise RuntimeError(f"GET /{table}/export/ answered {response.status}")
    record, fields = TABLES[table]
    expected_first = json.dumps(
        dict(zip(("type", *fields), (record, *next(rows(table, 1))), strict=True)),
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    if lines != count or first != expected_first or not last.endswith(b"\n"):
        raise RuntimeError(f"the export is wrong: {lines} lines, first {first[:200]!r}")
    return {
        "seconds": seconds,
        "rows": lines,
        "mib": received / 2**20,
        "server_rss_growth_mb": (peak - before) / 2**20,
        "peak_rss_mb": peak / 2**20,
    }


# --- orchestration -----------------------------------------------------------------------------


def measure(worker: str, postgres: bool, side: str, **options) -> dict:
    """One run of ``worker`` in a new process (``python -m bench.export_bench --worker ...``) on
    new databases. As ``bench.ingest_bench.measure``, but with databases of its own names."""
    data_dir = Path(tempfile.mkdtemp(prefix=f"bench-export-{side}-"))
    if postgres:
        options["urls"] = _fresh_postgres(f"bench_export_{side}")
    command = [PYTHON, "-m", "bench.export_bench", "--worker", worker, "--data-dir", str(data_dir)]
    try:
        output = subprocess.run(
            [*command, "--options", json.dumps(options)],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    except subprocess.CalledProcessError as exc:
        sys.stderr.write(exc.stderr)
        raise
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
        if postgres:
            _drop_postgres(options["urls"])
    return json.loads(output.strip().splitlines()[-1])


def rate(run: dict) -> float:
    return run["rows"] / run["seconds"]


def report(results: dict[tuple[str, str], list[dict]], table: str, count: int) -> bool:
    """Print the table and the targets; whether every target was met."""
    met = True
    for backend, title in (("sqlite", "SQLite"), ("pg", "PostgreSQL")):
        if (backend, "raw") not in results or (backend, "http") not in results:
            continue
        raw, served = results[backend, "raw"], results[backend, "http"]
        best_raw, best_http = max(raw, key=rate), max(served, key=rate)
        print(f"\n{title}:")
        print(
            f"{'approach':<46}{'rows/s':>12}{'median':>12}{'seconds':>9}{'vs raw':>9}"
            f"{'RSS growth':>12}"
        )
        shown = [("raw: one SELECT, orjson per row (baseline)", raw, best_raw)]
        if batched := results.get((backend, "raw_batched")):
            shown.append(("raw, msgspec per 5,000 rows", batched, max(batched, key=rate)))
        shown.append((f"GET /{table}/export/ (gunicorn, NDJSON)", served, best_http))
        for label, runs, best in shown:
            growth = f"{best['server_rss_growth_mb']:.1f}MiB" if runs is served else ""
            print(
                f"{label:<46}{rate(best):>12,.0f}{statistics.median(map(rate, runs)):>12,.0f}"
                f"{best['seconds']:>9.2f}{rate(best) / rate(best_raw):>8.2f}x{growth:>12}"
            )
        ratio = rate(best_http) / rate(best_raw)
        median_ratio = statistics.median(map(rate, served)) / statistics.median(map(rate, raw))
        growth = max(run["server_rss_growth_mb"] for run in served)
        ratio_met, rss_met = ratio >= RATIO_TARGET, growth < RSS_TARGET_MB
        met = met and ratio_met and rss_met
        print(
            f"{title}: export vs raw {ratio:.2f}x best, {median_ratio:.2f}x median (target >= "
            f"{RATIO_TARGET}x: {'met' if ratio_met else 'NOT met'}); server RSS growth at most "
            f"{growth:.1f} MiB for {count:,} rows, {best_http['mib']:.0f} MiB of NDJSON (target "
            f"< {RSS_TARGET_MB} MiB: {'met' if rss_met else 'NOT met'})"
        )
    return met


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the table")
    parser.add_argument("--table", choices=list(TABLES), default="orders")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--no-postgres", dest="postgres", action="store_false", help="leave out the PostgreSQL runs"
    )
    parser.add_argument("--fail-below-target", action="store_true", help="exit 1 if not met")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--options", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        worker = {"raw": run_raw, "http": run_http}[args.worker]
        print(json.dumps(worker(args.data_dir, **json.loads(args.options))))
        return

    sys.stdout.reconfigure(line_buffering=True)  # progress lines as they come, into a pipe too
    backends = ["sqlite"]
    if args.postgres and postgres_available():
        backends.append("pg")
    elif args.postgres:
        print(f"PostgreSQL is not reachable at {PG_URL}: its figures are left out.")
    print(
        f"Export benchmark: the {args.table} table, {args.rows:,} rows, NDJSON, "
        f"{os.cpu_count()} CPUs, the three sides alternating, {args.repeat} runs each"
    )
    results: dict[tuple[str, str], list[dict]] = {}
    for _ in range(args.repeat):
        for backend in backends:
            for side in ("raw", "raw_batched", "http"):
                options = {"table": args.table, "count": args.rows}
                if side == "raw_batched":
                    options["batched"] = True
                run = measure(
                    side.removesuffix("_batched"), postgres=backend == "pg", side=side, **options
                )
                results.setdefault((backend, side), []).append(run)
                print(
                    f"  run {len(results[backend, side])}: {backend} {side} "
                    f"{run['seconds']:.2f} s ({rate(run):,.0f} rows/s)"
                )
    met = report(results, args.table, args.rows)
    if args.fail_below_target and not met:
        sys.exit(1)


if __name__ == "__main__":
    main()
