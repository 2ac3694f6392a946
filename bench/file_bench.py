"""File ingest benchmark: a 1,000,000-record NDJSON file through ``manage.py ingest_file``.

``make bench`` runs it after the ingest benchmark (or ``python -m bench.file_bench``). It writes
one NDJSON file (a third each users, products and orders, about 5% invalid, seeded, the orders
first so that every one of them points forward in the file), then measures in one run, each in
a fresh process on fresh SQLite files:

1. raw: plain Python streaming the same file: orjson per line, plain checks, ``executemany``
   per 50,000 records into three files, the ids of good users and products kept in sets;
2. ``ingest_file``: the command as a user runs it (``--no-progress``), default chunk size.

It prints records/s, the ratio to raw, and each process's peak RSS (from ``wait4``) against
the target: under 300 MB for a million records, whatever the file's size.
"""

import argparse
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.ingest_bench import raw_sqlite_files

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
RSS_TARGET_MB = 300


def write_ndjson(path: Path, records: int, invalid_rate: float, seed: int) -> None:
    """``records`` typed records, orders first (so that ingest must not check them early)."""
    import orjson

    rng = random.Random(seed)
    count = records // 3
    bad = lambda: rng.random() < invalid_rate  # noqa: E731
    with path.open("wb") as out:
        for i in range(1, records - 2 * count + 1):
            user_id, product_id, quantity = rng.randint(1, count), rng.randint(1, count), 2
            if bad():
                quantity = rng.choice([0, -1])
            out.write(
                orjson.dumps(
                    {
                        "type": "order",
                        "id": i,
                        "user_id": user_id,
                        "product_id": product_id,
                        "quantity": quantity,
                    }  # fmt: skip
                )
                + b"\n"
            )
        for i in range(1, count + 1):
            email = f"user{i}.example.com" if bad() else f"user{i}@example.com"
            out.write(
                orjson.dumps({"type": "user", "id": i, "name": f"User {i}", "email": email}) + b"\n"
            )
        for i in range(1, count + 1):
            price = -1 if bad() else round(rng.uniform(0.5, 2000), 2)
            out.write(
                orjson.dumps({"type": "product", "id": i, "name": f"Product {i}", "price": price})
                + b"\n"
            )


def raw_worker(path: Path, data_dir: Path) -> None:
    """The raw baseline, run as ``--worker raw``: prints the counts."""
    import orjson

    files = raw_sqlite_files(data_dir)
    user_ids: set[int] = set()
    product_ids: set[int] = set()
    rows: dict[str, list] = {"users": [], "products": [], "orders": []}
    inserted = dict.fromkeys(rows, 0)

    def flush(name: str) -> None:
        if rows[name]:
            connection = files[name]
            connection.execute("BEGIN")
            marks = ", ".join("?" * len(rows[name][0]))
            connection.executemany(f"INSERT INTO {name} VALUES ({marks})", rows[name])
            connection.execute("COMMIT")
            inserted[name] += len(rows[name])
            rows[name] = []

    orders_later = []  # the orders come first in the file: check them once users are in
    with path.open("rb") as stream:
        for line in stream:
            r = orjson.loads(line)
            kind = r["type"]
            if kind == "user" and r["name"].strip() and "@" in r["email"]:
                rows["users"].append((r["id"], r["name"], r["email"]))
                user_ids.add(r["id"])
            elif kind == "product" and r["price"] > 0:
                rows["products"].append((r["id"], r["name"], r["price"]))
                product_ids.add(r["id"])
            elif kind == "order":
                orders_later.append((r["id"], r["user_id"], r["product_id"], r["quantity"]))
            for name in ("users", "products"):
                if len(rows[name]) >= 50_000:
                    flush(name)
    flush("users")
    flush("products")
    for order in orders_later:
        if order[3] > 0 and order[1] in user_ids and order[2] in product_ids:
            rows["orders"].append(order)
            if len(rows["orders"]) >= 50_000:
                flush("orders")
    flush("orders")
    print(inserted)


def run(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(seconds, peak RSS in MB, stdout) of one child process."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        errors = child.stderr.read().decode()
        child.stderr.close()
        if child.returncode:
            sys.stderr.write(errors)
            raise SystemExit(f"{command[2:4]} failed with {child.returncode}")
        out.seek(0)
        return seconds, usage.ru_maxrss / 1024, out.read().decode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--invalid", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "raw":
        raw_worker(args.file, args.data_dir)
        return

    work = Path(tempfile.mkdtemp(prefix="bench-file-"))
    try:
        path = work / "records.ndjson"
        write_ndjson(path, args.records, args.invalid, args.seed)
        size_mb = path.stat().st_size / 2**20
        print(
            f"\nFile ingest benchmark: {args.records:,} records in one NDJSON file "
            f"({size_mb:.0f} MiB, ~{args.invalid:.0%} invalid, orders first), {os.cpu_count()} CPUs"
        )
        raw_dir, app_dir = work / "raw", work / "app"
        raw_dir.mkdir()
        app_dir.mkdir()
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.local",
            "LOG_LEVEL": "WARNING",
        }
        for name in ("DEFAULT", "USERS", "PRODUCTS", "ORDERS"):
            env.pop(f"{name}_DATABASE_URL", None)  # SQLite files in DATA_DIR
        app_env = {**env, "DATA_DIR": str(app_dir)}
        subprocess.run([PYTHON, "manage.py", "init_db"], cwd=ROOT, env=app_env, check=True,
                       capture_output=True)  # fmt: skip
        raw = run(
            [PYTHON, "-m", "bench.file_bench", "--worker", "raw", "--file", str(path),
             "--data-dir", str(raw_dir)], env,
        )  # fmt: skip
        app = run([PYTHON, "manage.py", "ingest_file", str(path), "--no-progress"], app_env)
        print(f"{'approach':<44}{'records/s':>12}{'seconds':>9}{'vs raw':>9}{'peak RSS':>10}")
        for label, (seconds, rss, _) in [
            ("raw: orjson per line, executemany (baseline)", raw),
            ("manage.py ingest_file (chunks of 50,000)", app),
        ]:
            print(
                f"{label:<44}{args.records / seconds:>12,.0f}{seconds:>9.2f}"
                f"{raw[0] / seconds:>8.2f}x{rss:>8.0f}MB"
            )
        inserted = {
            name: sqlite3.connect(app_dir / f"{name}.db").execute(f"SELECT count(*) FROM {name}")
            .fetchone()[0]
            for name in ("users", "products", "orders")
        }  # fmt: skip
        print(f"rows inserted: raw {raw[2].strip()}; ingest_file {inserted}")
        verdict = "met" if app[1] < RSS_TARGET_MB else "NOT met"
        print(
            f"ingest_file peak RSS {app[1]:.0f} MB for {args.records:,} records "
            f"(target < {RSS_TARGET_MB} MB: {verdict})"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
