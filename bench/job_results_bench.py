"""Background job results benchmark: what a 1,000,000-record job keeps, and how it reads back.

``make bench`` runs it last (or ``python -m bench.job_results_bench``). On fresh SQLite files it
runs one background job of ``--records`` records (a third each users, products and orders, about
5% invalid, seeded), in a process of its own, as a worker does (``ingest.jobs.run_job``), then
measures, each read in a fresh process:

1. the job's summary (``GET /ingest/jobs/<id>/``'s body): its bytes, against a target of 2 KB
   whatever the batch (the synchronous body it replaces is shown beside it);
2. what the job stores for its per-record results (``ingest.job_results``): bytes in the
   default database, against a target of 10 MB per million records;
3. reading every record's result as NDJSON, as ``results/`` streams it, and the synchronous
   body, as ``response/`` streams it: seconds, lines, and the reading process's peak RSS above
   a process that only loads the job (``wait4``), against a target of 50 MB: flat, whatever the
   batch.

The reads run the generators the views stream, in-process, without an HTTP server: what is
measured is the service's own cost.
"""

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.file_bench import run

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
SUMMARY_TARGET = 2048
STORED_TARGET_PER_MILLION = 10 * 2**20
READ_RSS_TARGET_MB = 50


def batch(records: int, invalid_rate: float, seed: int) -> bytes:
    import orjson

    rng = random.Random(seed)
    count = records // 3
    bad = lambda: rng.random() < invalid_rate  # noqa: E731
    users = [
        {"name": "" if bad() else f"User {i}", "email": f"user{i}@example.com"}
        for i in range(count)
    ]
    products = [{"name": f"Product {i}", "price": -1 if bad() else 9.5} for i in range(count)]
    orders = [
        {"user_id": rng.randint(1, count), "product_id": rng.randint(1, count), "quantity": 1}
        for _ in range(records - 2 * count)
    ]
    return orjson.dumps({"users": users, "products": products, "orders": orders})


def _django() -> None:
    import django

    django.setup()


def run_worker(body_path: Path) -> None:
    """Submit the batch as a job and run it here, as a worker does; print the job's id."""
    _django()
    from ingest import jobs
    from ingest.records import count_records

    jobs.dispatch = lambda job_id: None  # run below, in this thread, not in the local pool
    body = body_path.read_bytes()
    job = jobs.submit_job(body, total=count_records(body), owner="bench")
    started = time.perf_counter()
    jobs.run_job(job.id)
    print(job.id, f"{time.perf_counter() - started:.2f}")


def read_worker(job_id: str, what: str) -> None:
    """Read the job (``what``: ``nothing``, ``results`` or ``response``); print bytes and lines."""
    _django()
    from rest_framework.test import APIRequestFactory

    from ingest import selectors
    from ingest.job_serializers import IngestJobSerializer
    from ingest.models import IngestJob

    job = selectors.job_list(owner=IngestJob.objects.get(id=job_id).owner).get(id=job_id)
    if what == "nothing":
        request = APIRequestFactory().get("/", SERVER_NAME="localhost", HTTP_HOST="localhost")
        summary = IngestJobSerializer(job, context={"request": request}).data
        from common.http.json import dumps

        print(len(dumps(summary)), 0)
        return
    pieces = (
        selectors.job_result_lines(job=job)
        if what == "results"
        else selectors.job_response_body(job=job)
    )
    size = lines = 0
    for piece in pieces:
        size += len(piece)
        lines += piece.count(b"\n")
    print(size, lines)


def stored_bytes(data_dir: Path, job_id: str) -> tuple[int, int]:
    import sqlite3

    with sqlite3.connect(data_dir / "default.db") as db:
        return db.execute(
            "SELECT count(*), coalesce(sum(length(data)), 0) FROM ingest_ingestjobresultblock "
            "WHERE job_id = ?",
            (job_id.replace("-", ""),),
        ).fetchone()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--invalid", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--arg", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "write":
        Path(args.arg).write_bytes(batch(args.records, args.invalid, args.seed))
        return
    if args.worker == "run":
        run_worker(Path(args.arg))
        return
    if args.worker:
        read_worker(args.arg, args.worker)
        return

    work = Path(tempfile.mkdtemp(prefix="bench-jobs-"))
    try:
        body_path = work / "batch.json"
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.local",
            "LOG_LEVEL": "WARNING",
            "DATA_DIR": str(work),
            "INGEST_ASYNC_MAX_RECORDS": str(max(args.records, 5_000_000)),
        }
        for name in ("DEFAULT", "USERS", "PRODUCTS", "ORDERS"):
            env.pop(f"{name}_DATABASE_URL", None)  # SQLite files in DATA_DIR
        env.pop("CELERY_BROKER_URL", None)
        subprocess.run([PYTHON, "manage.py", "init_db"], cwd=ROOT, env=env, check=True,
                       capture_output=True)  # fmt: skip
        me = [PYTHON, "-m", "bench.job_results_bench", "--worker"]
        # Even the batch is made in a child: a child's peak RSS starts from its parent's.
        run([*me, "write", "--arg", str(body_path), "--records", str(args.records),
             "--invalid", str(args.invalid), "--seed", str(args.seed)], env)  # fmt: skip
        _, job_rss, out = run([*me, "run", "--arg", str(body_path)], env)
        job_id, job_seconds = out.split()
        blocks, stored = stored_bytes(work, job_id)
        _, base_rss, out = run([*me, "nothing", "--arg", job_id], env)
        summary = int(out.split()[0])
        reads = {what: run([*me, what, "--arg", job_id], env) for what in ("results", "response")}

        print(
            f"\nJob results benchmark: one background job of {args.records:,} records "
            f"(~{args.invalid:.0%} invalid), SQLite, {os.cpu_count()} CPUs"
        )
        print(f"job run: {float(job_seconds):.1f} s in its worker (peak RSS {job_rss:.0f} MB)")
        per_million = stored * 1_000_000 / args.records
        print(
            f"summary: {summary:,} bytes (target < {SUMMARY_TARGET:,}: "
            f"{'met' if summary < SUMMARY_TARGET else 'NOT met'})"
        )
        print(
            f"stored results: {stored:,} bytes in {blocks} blocks, {per_million / 2**20:.2f} MiB "
            f"per million records (target < {STORED_TARGET_PER_MILLION // 2**20} MiB: "
            f"{'met' if per_million < STORED_TARGET_PER_MILLION else 'NOT met'})"
        )
        print(f"{'read':<36}{'seconds':>9}{'MiB':>9}{'lines':>11}{'RSS above base':>16}")
        for what, label in (("results", "results/ (NDJSON)"), ("response", "response/ (JSON)")):
            seconds, rss, out = reads[what]
            size, lines = (int(value) for value in out.split())
            growth = rss - base_rss
            verdict = "met" if growth < READ_RSS_TARGET_MB else "NOT met"
            print(
                f"{label:<36}{seconds:>9.2f}{size / 2**20:>9.1f}{lines:>11,}"
                f"{growth:>9.0f} MB ({verdict})"
            )
        print(
            f"(RSS above a process that only loads the job, {base_rss:.0f} MB; target < "
            f"{READ_RSS_TARGET_MB} MB for results/; response/ gathers the skipped groups, as a "
            "synchronous answer does)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
