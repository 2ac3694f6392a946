"""Bulk actions benchmark: upsert, update and delete through ``POST /ingest/?action=...``.

``make bench`` runs it after the ingest benchmark (or ``python -m bench.actions_bench``). It
generates a prepared state of 100,000 valid users, products and orders (ids 1 to 100,000 of
each type) and three action batches of 100,000 records per type, each with about 5% invalid
records (seeded, so every run sends the same bytes):

* upsert: every field given; half the ids exist, half are new; the invalid ones break a rule
  (a blank name, an email without ``@``, a price <= 0, a quantity <= 0, an order pointing at a
  user or product that does not exist);
* update: existing ids with one field each (users: ``email``, products: ``price``, orders:
  ``quantity``); the invalid ones break a rule or name an id that does not exist;
* delete: every user and product, and the orders but about 5% (whose ids do not exist), so that
  phase 1 deletes the orders and phase 4 the users and products nothing points at any more; the
  ones the remaining orders still point at are refused.

Each measured run is a fresh process on fresh database files: it loads the prepared state
first (not timed), then times the action batch from its JSON bytes to the last commit:

1. raw: the limit of plain Python and sqlite3 doing the same work: orjson, plain ``if`` checks,
   one transaction per file, chunks of 10,000. Upsert reads which ids exist per chunk (to tell
   inserted from updated) and runs ``INSERT ... ON CONFLICT(id) DO UPDATE``; update reads the
   stored rows per chunk, merges the given fields, checks the result and runs ``UPDATE ...
   WHERE id = ?``; delete removes the orders, then the users and products that no order points
   at (one query per chunk finds the referenced ones). Orders are checked against the users and
   products after those are written, as the service's phases do. On PostgreSQL the same with
   psycopg: ``COPY`` into a temporary table, then ``INSERT ... ON CONFLICT``, ``UPDATE ...
   FROM`` or ``DELETE ... USING``.
2. HTTP: the prepared state is loaded by ``manage.py ingest_file`` before gunicorn starts (so
   the worker's memory is its own), then the batch is posted to ``/ingest/?action=...`` end to
   end, with the worker's peak RSS growth during the request.

Both sides' counts (inserted, updated, deleted, skipped per type) are checked against what the
data implies (``expected_counts``); a mismatch stops the benchmark. Every figure is records per
second of the batch (all three types, invalid records included); raw and HTTP runs alternate
``--repeat`` times, and the ratio of the best runs and of the medians is compared with the
target (upsert >= 0.8x its raw baseline end to end, update and delete >= 0.5x, best and median).
"""

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.ingest_bench import (
    PG_URL,
    ROOT,
    _peak_rss_mb,
    generate,
    gunicorn,
    measure,
    postgres_available,
    raw_checks,
    raw_pg_databases,
    raw_sqlite_files,
    timed_post,
)
from bench.profiles import profile_summary, profiled
from bench.targets import check

ACTIONS = ("upsert", "update", "delete")
TYPES = ("users", "products", "orders")
COLUMNS = {
    "users": ("id", "name", "email"),
    "products": ("id", "name", "price"),
    "orders": ("id", "user_id", "product_id", "quantity"),
}
# The raw baselines' plain checks of a whole record (the service's rules are stricter; the
# generated invalid records break both). References are checked apart, against the databases.
CHECKS = {
    "users": lambda r: bool(r["name"].strip()) and "@" in r["email"],
    "products": lambda r: r["price"] > 0,
    "orders": lambda r: r["quantity"] > 0,
}
REFERENCES = (("user_id", "users"), ("product_id", "products"))
OUTCOMES = ("inserted", "updated", "deleted", "skipped")
CHUNK = 10_000  # records per query, as the service's INGEST_CHUNK_SIZE
#: Each action end to end against its raw baseline, best and median of the runs: upsert is the
#: re-sync path and has the higher bar (issue 16); updates and deletions the first one (0.5x).
TARGETS = {"upsert": 0.8, "update": 0.5, "delete": 0.5}
SQLITE_CACHE_KIB = 32 * 1024  # the service's default (config.settings.base)


# --- data --------------------------------------------------------------------------------------


def generate_actions(count: int, invalid_rate: float, seed: int) -> tuple[dict, dict[str, dict]]:
    """The prepared state (``count`` valid records of each type, ids 1..count) and the upsert,
    update and delete batches (``count`` records of each type, about ``invalid_rate`` invalid)."""
    prepared = generate(count, 0.0, seed)
    rng = random.Random(seed + 1)
    bad = lambda: rng.random() < invalid_rate  # noqa: E731
    missing = 10 * count  # ids from here on exist nowhere

    def shuffled(ids) -> list[int]:
        ids = list(ids)
        rng.shuffle(ids)
        return ids

    # upsert: half existing ids (a random half), half new ones (count+1...), all fields given
    half = count // 2

    def upsert_ids() -> list[int]:
        return shuffled(
            rng.sample(range(1, count + 1), half) + list(range(count + 1, 2 * count - half + 1))
        )

    users = []
    for i in upsert_ids():
        name, email = f"User {i} v2", f"user{i}@example.org"
        if bad():
            name, email = rng.choice([("", email), ("   ", email), (name, f"user{i}.example.org")])
        users.append({"id": i, "name": name, "email": email})
    products = []
    for i in upsert_ids():
        price = round(rng.uniform(0.5, 2000), 2)
        if bad():
            price = rng.choice([0, -50.0, -price])
        products.append({"id": i, "name": f"Product {i} v2", "price": price})
    # orders point at users and products that exist once phase 2 is done (new ones included)
    user_ids = [
        *range(1, count + 1),
        *(u["id"] for u in users if u["id"] > count and CHECKS["users"](u)),
    ]
    product_ids = [
        *range(1, count + 1),
        *(p["id"] for p in products if p["id"] > count and CHECKS["products"](p)),
    ]
    orders = []
    for i in upsert_ids():
        user_id, product_id, quantity = (
            rng.choice(user_ids),
            rng.choice(product_ids),
            rng.randint(1, 9),
        )
        if bad():
            kind = rng.randrange(3)
            if kind == 0:
                quantity = rng.choice([0, -1])
            elif kind == 1:
                user_id = missing + rng.randint(1, 1000)
            else:
                product_id = missing + rng.randint(1, 1000)
        orders.append({"id": i, "user_id": user_id, "product_id": product_id, "quantity": quantity})
    upsert = {"users": users, "products": products, "orders": orders}

    # update: one field each; an invalid record breaks a rule or names an id that is not there
    update = {name: [] for name in TYPES}
    for name, field, good, wrong in (
        ("users", "email",
         lambda i: f"user{i}@example.net", lambda i: rng.choice(["", f"user{i}.example.net"])),
        ("products", "price",
         lambda i: round(rng.uniform(0.5, 2000), 2), lambda i: rng.choice([0, -1.0])),
        ("orders", "quantity", lambda i: rng.randint(1, 9), lambda i: rng.choice([0, -1])),
    ):  # fmt: skip
        for i in shuffled(range(1, count + 1)):
            if not bad():
                update[name].append({"id": i, field: good(i)})
            elif rng.random() < 0.5:
                update[name].append({"id": i, field: wrong(i)})
            else:
                update[name].append({"id": missing + i, field: good(i)})

    # delete: every user and product; the orders but ~5%, whose ids in the batch do not exist
    delete = {
        "users": [{"id": i} for i in shuffled(range(1, count + 1))],
        "products": [{"id": i} for i in shuffled(range(1, count + 1))],
        "orders": [{"id": missing + i if bad() else i} for i in shuffled(range(1, count + 1))],
    }
    return prepared, {"upsert": upsert, "update": update, "delete": delete}


def expected_counts(prepared: dict, batch: dict, action: str) -> dict[str, dict[str, int]]:
    """What the data implies, worked out with sets (no database): per type, how many records are
    received, inserted, updated, deleted and skipped."""
    users, products, orders = raw_checks(prepared)  # what the prepared insert stored
    stored = {
        "users": {row[0]: dict(zip(COLUMNS["users"], row, strict=True)) for row in users},
        "products": {row[0]: dict(zip(COLUMNS["products"], row, strict=True)) for row in products},
        "orders": {row[0]: dict(zip(COLUMNS["orders"], row, strict=True)) for row in orders},
    }
    counts = {
        name: dict.fromkeys(("received", "inserted", "updated", "deleted", "skipped"), 0)
        for name in TYPES
    }
    if action == "delete":
        gone_orders = {r["id"] for r in batch.get("orders", []) if r["id"] in stored["orders"]}
        left = [o for i, o in stored["orders"].items() if i not in gone_orders]
        referenced = {name: {o[column] for o in left} for column, name in REFERENCES}
        for name in TYPES:
            for record in batch.get(name, []):
                ok = record["id"] in stored[name] and record["id"] not in referenced.get(name, ())
                counts[name]["deleted" if ok else "skipped"] += 1
                counts[name]["received"] += 1
        return counts
    for name in TYPES:  # users and products first: orders are checked against them afterwards
        for record in batch.get(name, []):
            counts[name]["received"] += 1
            existing = stored[name].get(record["id"])
            if action == "update":
                merged = {**existing, **record} if existing else None
            else:
                merged = record
            ok = merged is not None and CHECKS[name](merged)
            if ok and name == "orders":
                ok = all(merged[column] in stored[table] for column, table in REFERENCES)
            if not ok:
                counts[name]["skipped"] += 1
            elif existing:
                counts[name]["updated"] += 1
            else:
                counts[name]["inserted"] += 1
                stored[name][record["id"]] = merged
    return counts


def check_counts(where: str, got: dict, expected: dict) -> None:
    """Stop loudly when a run's counts are not what the data implies."""
    wrong = {
        f"{name}.{key}": (got.get(name, {}).get(key), value)
        for name, keys in expected.items()
        for key, value in keys.items()
        if got.get(name, {}).get(key) != value
    }
    if wrong:
        raise SystemExit(
            f"{where}: counts are not what the data implies (got, expected): "
            + ", ".join(f"{key} {pair}" for key, pair in sorted(wrong.items()))
        )


def _chunks(items: list, size: int = CHUNK):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _counts(received: int, **done: int) -> dict[str, int]:
    counts = dict.fromkeys(("inserted", "updated", "deleted"), 0) | done
    return {"received": received, **counts, "skipped": received - sum(counts.values())}


# --- the raw baselines: SQLite -----------------------------------------------------------------


def _sqlite_ids(connection, sql: str, ids: list) -> set:
    """The first column of ``sql`` (with ``{marks}`` for one ``?`` per id) over ``ids``."""
    if not ids:
        return set()
    return {row[0] for row in connection.execute(sql.format(marks=",".join("?" * len(ids))), ids)}


def _sqlite_references(db: dict, orders: list[dict]) -> list[dict]:
    """The orders whose user and product exist (a query per chunk and database)."""
    kept = []
    for chunk in _chunks(orders):
        found = {
            column: _sqlite_ids(
                db[table],
                f"SELECT id FROM {table} WHERE id IN ({{marks}})",
                list({o[column] for o in chunk}),
            )
            for column, table in REFERENCES
        }
        kept += [o for o in chunk if all(o[column] in found[column] for column, _ in REFERENCES)]
    return kept


def sqlite_upsert(batch: dict, db: dict) -> dict:
    counts = {}
    for name in TYPES:
        columns = COLUMNS[name]
        records = [r for r in batch.get(name, []) if r.get("id") is not None and CHECKS[name](r)]
        if name == "orders":
            records = _sqlite_references(db, records)
        sql = (
            f"INSERT INTO {name} VALUES ({', '.join('?' * len(columns))}) ON CONFLICT(id) "
            f"DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in columns[1:])}"
        )
        inserted_ids, updated_ids = [], []
        connection = db[name]
        connection.execute("BEGIN")
        for chunk in _chunks([tuple(r[c] for c in columns) for r in records]):
            ids = [row[0] for row in chunk]
            existing = _sqlite_ids(
                connection, f"SELECT id FROM {name} WHERE id IN ({{marks}})", ids
            )
            for i in ids:
                (updated_ids if i in existing else inserted_ids).append(i)
            connection.executemany(sql, chunk)
        connection.execute("COMMIT")
        counts[name] = _counts(
            len(batch.get(name, [])), inserted=len(inserted_ids), updated=len(updated_ids)
        )
    return counts


def sqlite_update(batch: dict, db: dict) -> dict:
    counts = {}
    for name in TYPES:
        columns = COLUMNS[name]
        select = f"SELECT {', '.join(columns)} FROM {name} WHERE id IN ({{marks}})"
        updated_ids = []
        connection = db[name]
        connection.execute("BEGIN")
        for chunk in _chunks([r for r in batch.get(name, []) if r.get("id") is not None]):
            marks = ",".join("?" * len(chunk))
            rows = connection.execute(select.format(marks=marks), [r["id"] for r in chunk])
            stored = {row[0]: row for row in rows}
            merged, moved, given = [], [], {}
            for record in chunk:
                row = stored.get(record["id"])
                if row is None:
                    continue
                new = dict(zip(columns, row, strict=True)) | record
                if CHECKS[name](new):
                    given[record["id"]] = tuple(c for c in columns[1:] if c in record)
                    # an order whose user or product changes is checked again
                    moved_ref = name == "orders" and any(c in record for c, _ in REFERENCES)
                    (moved if moved_ref else merged).append(new)
            if moved:
                merged += _sqlite_references(db, moved)
            # only the given columns are written (SQLite rewrites the index entries of every
            # column a SET names): one statement per set of given fields
            by_fields: dict[tuple, list] = {}
            for m in merged:
                by_fields.setdefault(given[m["id"]], []).append(m)
            for fields, group in by_fields.items():
                if fields:
                    connection.executemany(
                        f"UPDATE {name} SET {', '.join(f'{c} = ?' for c in fields)} WHERE id = ?",
                        [(*(m[c] for c in fields), m["id"]) for m in group],
                    )
            updated_ids += [m["id"] for m in merged]
        connection.execute("COMMIT")
        counts[name] = _counts(len(batch.get(name, [])), updated=len(updated_ids))
    return counts


def sqlite_delete(batch: dict, db: dict) -> dict:
    def delete(name: str, candidates, referenced_by: str | None = None) -> list[int]:
        connection, deleted_ids = db[name], []
        connection.execute("BEGIN")
        for chunk in _chunks(candidates):
            existing = _sqlite_ids(
                connection, f"SELECT id FROM {name} WHERE id IN ({{marks}})", chunk
            )
            if referenced_by:  # phase 4: not while an order points at it
                column = referenced_by
                existing -= _sqlite_ids(
                    db["orders"],
                    f"SELECT DISTINCT {column} FROM orders WHERE {column} IN ({{marks}})",
                    list(existing),
                )
            gone = [i for i in chunk if i in existing]
            connection.executemany(f"DELETE FROM {name} WHERE id = ?", [(i,) for i in gone])
            deleted_ids += gone
        connection.execute("COMMIT")
        return deleted_ids

    ids = {
        name: [r["id"] for r in batch.get(name, []) if r.get("id") is not None] for name in TYPES
    }
    deleted = {"orders": delete("orders", ids["orders"])}  # phase 1
    for column, name in REFERENCES:  # phase 4
        deleted[name] = delete(name, ids[name], referenced_by=column)
    return {name: _counts(len(batch.get(name, [])), deleted=len(deleted[name])) for name in TYPES}


# --- the raw baselines: PostgreSQL -------------------------------------------------------------


def _pg_copy(cursor, table: str, columns, rows) -> None:
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _pg_references(db: dict, orders: list[dict]) -> list[dict]:
    """The orders whose user and product exist (one query per database)."""
    found = {
        column: {
            row[0]
            for row in db[table].execute(
                f"SELECT id FROM {table} WHERE id = ANY(%s)", (list({o[column] for o in orders}),)
            )
        }
        for column, table in REFERENCES
    }
    return [o for o in orders if all(o[column] in found[column] for column, _ in REFERENCES)]


def pg_upsert(batch: dict, db: dict) -> dict:
    counts = {}
    for name in TYPES:
        columns = COLUMNS[name]
        records = [r for r in batch.get(name, []) if r.get("id") is not None and CHECKS[name](r)]
        if name == "orders":
            records = _pg_references(db, records)
        connection = db[name]
        with connection.transaction(), connection.cursor() as cursor:
            cursor.execute(f"CREATE TEMP TABLE incoming (LIKE {name}) ON COMMIT DROP")
            _pg_copy(cursor, "incoming", columns, (tuple(r[c] for c in columns) for r in records))
            cursor.execute(
                f"INSERT INTO {name} SELECT * FROM incoming ON CONFLICT (id) DO UPDATE SET "
                + ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
                + " RETURNING id, xmax = 0"  # xmax = 0: a new row, not an updated one
            )
            inserted_ids, updated_ids = [], []
            for i, new in cursor:
                (inserted_ids if new else updated_ids).append(i)
        counts[name] = _counts(
            len(batch.get(name, [])), inserted=len(inserted_ids), updated=len(updated_ids)
        )
    return counts


def pg_update(batch: dict, db: dict) -> dict:
    counts = {}
    for name in TYPES:
        columns = COLUMNS[name]
        records = [r for r in batch.get(name, []) if r.get("id") is not None]
        connection = db[name]
        with connection.transaction(), connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {', '.join(columns)} FROM {name} WHERE id = ANY(%s)",
                ([r["id"] for r in records],),
            )
            stored = {row[0]: row for row in cursor}
            merged, moved = [], []
            for record in records:
                row = stored.get(record["id"])
                if row is None:
                    continue
                new = dict(zip(columns, row, strict=True)) | record
                if CHECKS[name](new):
                    moved_ref = name == "orders" and any(c in record for c, _ in REFERENCES)
                    (moved if moved_ref else merged).append(new)
            if moved:
                merged += _pg_references(db, moved)
            cursor.execute(f"CREATE TEMP TABLE incoming (LIKE {name}) ON COMMIT DROP")
            _pg_copy(cursor, "incoming", columns, (tuple(m[c] for c in columns) for m in merged))
            cursor.execute(
                f"UPDATE {name} AS t SET "
                + ", ".join(f"{c} = i.{c}" for c in columns[1:])
                + " FROM incoming AS i WHERE t.id = i.id"
            )
            updated = cursor.rowcount
        counts[name] = _counts(len(batch.get(name, [])), updated=updated)
    return counts


def pg_delete(batch: dict, db: dict) -> dict:
    def delete(name: str, candidates: list[int]) -> int:
        connection = db[name]
        with connection.transaction(), connection.cursor() as cursor:
            cursor.execute("CREATE TEMP TABLE gone (id bigint) ON COMMIT DROP")
            _pg_copy(cursor, "gone", ("id",), ((i,) for i in candidates))
            cursor.execute(f"DELETE FROM {name} USING gone WHERE {name}.id = gone.id")
            return cursor.rowcount

    ids = {
        name: [r["id"] for r in batch.get(name, []) if r.get("id") is not None] for name in TYPES
    }
    deleted = {"orders": delete("orders", ids["orders"])}  # phase 1
    for column, name in REFERENCES:  # phase 4: not while an order points at it
        referenced = {
            row[0]
            for row in db["orders"].execute(
                f"SELECT DISTINCT {column} FROM orders WHERE {column} = ANY(%s)", (ids[name],)
            )
        }
        deleted[name] = delete(name, [i for i in ids[name] if i not in referenced])
    return {name: _counts(len(batch.get(name, [])), deleted=deleted[name]) for name in TYPES}


RAW = {
    "sqlite": {"upsert": sqlite_upsert, "update": sqlite_update, "delete": sqlite_delete},
    "pg": {"upsert": pg_upsert, "update": pg_update, "delete": pg_delete},
}


# --- the measured workers (each runs in its own process) ---------------------------------------


def _load_raw(prepared: dict, db: dict, postgres: bool) -> None:
    """The prepared state, as the insert benchmark's raw baseline writes it (not timed)."""
    for name, rows in zip(TYPES, raw_checks(prepared), strict=True):
        if postgres:
            with db[name].transaction(), db[name].cursor() as cursor:
                _pg_copy(cursor, name, COLUMNS[name], rows)
            db[name].execute("VACUUM ANALYZE")  # see _vacuum
        else:
            db[name].execute("BEGIN")
            db[name].executemany(
                f"INSERT INTO {name} VALUES ({', '.join('?' * len(rows[0]))})", rows
            )
            db[name].execute("COMMIT")


def _vacuum(urls: dict[str, str]) -> None:
    """VACUUM ANALYZE the service's PostgreSQL databases after the prepared load: a settled
    state (hint bits set, statistics known) rather than autovacuum starting at a random moment
    during the measured batch. The raw side does the same."""
    import psycopg

    for variable in ("USERS_DATABASE_URL", "PRODUCTS_DATABASE_URL", "ORDERS_DATABASE_URL"):
        with psycopg.connect(urls[variable], autocommit=True) as connection:
            connection.execute("VACUUM ANALYZE")


def run_raw(
    body_path: Path, data_dir: Path, prepared: str, action: str, urls: dict | None = None
) -> dict:
    """Load the prepared state, then time the action batch in plain sqlite3 (or psycopg)."""
    import orjson

    if urls:
        db = raw_pg_databases(urls)
    else:
        db = raw_sqlite_files(data_dir)
        for connection in db.values():  # the service's page cache (SQLITE_CACHE_KIB): updates
            connection.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")  # touch every page
    _load_raw(orjson.loads(Path(prepared).read_bytes()), db, postgres=bool(urls))
    body = body_path.read_bytes()
    started = time.perf_counter()
    batch = orjson.loads(body)
    parsed = time.perf_counter()
    counts = RAW["pg" if urls else "sqlite"][action](batch, db)
    finished = time.perf_counter()
    for connection in db.values():
        connection.close()
    return {
        "seconds": finished - started,
        "parse_seconds": parsed - started,
        "counts": counts,
        "peak_rss_mb": _peak_rss_mb(),
    }


def run_http(
    body_path: Path,
    data_dir: Path,
    prepared: str,
    action: str,
    urls: dict | None = None,
    profile: str | None = None,
) -> dict:
    """Load the prepared state with ``manage.py ingest_file``, start gunicorn, time the POST."""

    def load(env: dict) -> None:
        done = subprocess.run(
            [sys.executable, "manage.py", "ingest_file", prepared, "--no-progress", "--show", "3"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        if done.returncode:
            raise RuntimeError(f"ingest_file failed: {done.stdout}{done.stderr}")
        if urls:
            _vacuum(urls)

    with gunicorn(data_dir, urls, prepare=load) as (port, token, worker):
        body = body_path.read_bytes()
        with profiled(profile, worker):
            run = timed_post(port, f"/ingest/?action={action}", body, token, worker)
    result = run.pop("result")
    counts = {
        name: {
            key: result[name].get(key)
            for key in ("received", "inserted", "updated", "deleted", "skipped")
        }
        for name in TYPES
    }
    return {"counts": counts, **run}


# --- orchestration -----------------------------------------------------------------------------


def rate(run: dict, total: int) -> float:
    return total / run["seconds"]


def report(results: dict, total: int, chart_path: Path | None = None) -> bool:
    """Print the table and the target; True when every action met it (on the best runs)."""
    met = True
    verdicts = []
    for backend, title in (("sqlite", "SQLite (a file per service)"), ("pg", "PostgreSQL")):
        rows = [a for a in ACTIONS if (a, backend, "raw") in results]
        if not rows:
            continue
        print(f"\n{title}:")
        print(
            f"{'action':<8}{'raw rec/s':>12}{'median':>10}{'HTTP rec/s':>12}{'median':>10}"
            f"{'ratio':>8}{'median':>8}  {'target':<9}{'RSS growth':>11}{'body':>8}"
            f"{'growth/body':>13}"
        )
        for action in rows:
            raw = [rate(r, total) for r in results[action, backend, "raw"]]
            http = [rate(r, total) for r in results[action, backend, "http"]]
            best = max(http) / max(raw)
            median = statistics.median(http) / statistics.median(raw)
            growth = max(r["server_rss_growth_mb"] for r in results[action, backend, "http"])
            body = results[action, backend, "http"][0]["body_mb"]
            goal = TARGETS[action]
            reached = best >= goal and median >= goal
            met = met and reached
            print(
                f"{action:<8}{max(raw):>12,.0f}{statistics.median(raw):>10,.0f}"
                f"{max(http):>12,.0f}{statistics.median(http):>10,.0f}{best:>7.2f}x"
                f"{median:>7.2f}x  {'met' if reached else 'NOT met':<9}"
                f"{growth:>8.0f}MiB{body:>6.1f}MiB{growth / body:>12.1f}x"
            )
            verdicts.append((action, backend, title, best, median, goal, reached))
    print(
        "\nratio: HTTP / raw of the best runs, and of the medians; targets (on both): "
        + ", ".join(f"{action} >= {goal:.1f}x" for action, goal in TARGETS.items())
        + f": {'met by every action' if met else 'NOT met by every action'}. "
        "RSS growth: the largest of the runs."
    )
    for action, _, title, best, median, goal, reached in verdicts:
        check(
            f"{action}, {title.split(' ')[0]}, end to end vs raw",
            f"{best:.2f}x best, {median:.2f}x median",
            f">= {goal:.1f}x both",
            reached,
            chart_path,
        )
    return met


def chart(results: dict, total: int, path: Path, subtitle: str) -> None:
    """Add the bulk actions panels (best runs) to the ingest chart (see bench.chart)."""
    from bench.chart import update

    panels = []
    for backend, title, raw_label in (
        ("sqlite", "Bulk actions, SQLite (100,000 of each type)", "raw sqlite3"),
        ("pg", "Bulk actions, PostgreSQL (100,000 of each type)", "raw psycopg"),
    ):
        bars = []
        for action in ACTIONS:
            if (action, backend, "raw") not in results:
                continue
            raw = max(rate(r, total) for r in results[action, backend, "raw"])
            http = max(rate(r, total) for r in results[action, backend, "http"])
            bars += [
                (f"{action}: {raw_label} (baseline)", raw, raw),
                (f"{action}: POST /ingest/?action={action}", http, raw),
            ]
        if bars:
            panels.append((title.replace("100,000", f"{total // 3:,}"), bars))
    if panels:
        print(f"chart: {update(panels, path, subtitle)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000, help="records of each type")
    parser.add_argument("--invalid", type=float, default=0.05, help="share of invalid records")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--actions", default=",".join(ACTIONS), help="comma-separated")
    parser.add_argument("--only", choices=["raw", "http"], help="run one side only (no ratios)")
    parser.add_argument(
        "--no-postgres", dest="postgres", action="store_false", help="leave out the PostgreSQL runs"
    )
    parser.add_argument(
        "--chart",
        type=lambda value: Path(value) if value else None,
        default=ROOT / "docs" / "ingest-throughput.png",
        help="the chart to add the panels to (default %(default)s; '' for none)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="after the measured runs, one more HTTP run per action under py-spy; its stacks go "
        "to this directory and the top functions are printed",
    )
    parser.add_argument("--fail-below-target", action="store_true", help="exit 1 if not met")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--body", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--options", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        worker = {"raw": run_raw, "http": run_http}[args.worker]
        print(json.dumps(worker(args.body, args.data_dir, **json.loads(args.options))))
        return

    import orjson

    sys.stdout.reconfigure(line_buffering=True)  # progress lines as they come, into a pipe too
    actions = args.actions.split(",")
    if unknown := set(actions) - set(ACTIONS):
        parser.error(f"unknown actions: {', '.join(sorted(unknown))}")
    sides = [args.only] if args.only else ["raw", "http"]
    backends = ["sqlite"]
    if args.postgres and postgres_available():
        backends.append("pg")
    elif args.postgres:
        print(f"PostgreSQL is not reachable at {PG_URL}: its figures are left out.")

    work = Path(tempfile.mkdtemp(prefix="bench-actions-"))
    prepared, batches = generate_actions(args.count, args.invalid, args.seed)
    prepared_path = work / "prepared.json"
    prepared_path.write_bytes(orjson.dumps(prepared))
    paths, expected = {}, {}
    for action in actions:
        paths[action] = work / f"{action}.json"
        paths[action].write_bytes(orjson.dumps(batches[action]))
        expected[action] = expected_counts(prepared, batches[action], action)
    total = 3 * args.count
    print(
        f"Bulk actions benchmark: batches of {total:,} records ({args.count:,} users, products "
        f"and orders, ~{args.invalid:.0%} invalid, seed {args.seed}) on {total:,} stored rows, "
        f"{os.cpu_count()} CPUs, raw and HTTP runs alternating, {args.repeat} each"
    )
    for action in actions:
        size = paths[action].stat().st_size / 2**20
        print(
            f"  {action}: body {size:.1f} MiB; expected (inserted, updated, deleted, skipped) "
            + "; ".join(
                f"{name} {tuple(expected[action][name][key] for key in OUTCOMES)}" for name in TYPES
            )
        )

    results: dict[tuple[str, str, str], list[dict]] = {}
    try:
        for _ in range(args.repeat):
            for action in actions:
                for backend in backends:
                    for side in sides:
                        options = {"prepared": str(prepared_path), "action": action}
                        [run] = measure(
                            side,
                            paths[action],
                            1,
                            postgres=backend == "pg",
                            module="bench.actions_bench",
                            **options,
                        )
                        check_counts(f"{action} {backend} {side}", run["counts"], expected[action])
                        results.setdefault((action, backend, side), []).append(run)
                        print(
                            f"  run {len(results[action, backend, side])}: {action} {backend} "
                            f"{side} {run['seconds']:.2f} s ({rate(run, total):,.0f} records/s)"
                        )
        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
            for action in actions:
                for backend in backends:
                    output = args.profile / f"{action}-{backend}.txt"
                    [run] = measure(
                        "http",
                        paths[action],
                        1,
                        postgres=backend == "pg",
                        module="bench.actions_bench",
                        prepared=str(prepared_path),
                        action=action,
                        profile=str(output),
                    )
                    check_counts(f"{action} {backend} profiled", run["counts"], expected[action])
                    print(
                        f"\npy-spy, {action} on {backend} ({total / run['seconds']:,.0f} records/s "
                        f"under the profiler), {profile_summary(output)}"
                    )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    if sides != ["raw", "http"]:
        for key, runs in sorted(results.items()):
            print(f"{' '.join(key)}: best {max(rate(r, total) for r in runs):,.0f} records/s")
        return
    if args.chart:
        chart(results, total, args.chart, f"{total:,} records, {os.cpu_count()} CPUs")
    met = report(results, total, args.chart)
    if args.fail_below_target and not met:
        sys.exit(1)


if __name__ == "__main__":
    main()
