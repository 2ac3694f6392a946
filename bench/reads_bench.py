"""Reads while ingests run: does a bulk load slow down everyone else's pages?

``make bench`` (or ``python -m bench.reads_bench``) starts gunicorn with the shipped
configuration (``config/gunicorn.conf.py``: a process per core, four threads each) on fresh
SQLite files, then times ``GET /users/?page_size=50`` twice, from one client that opens a new
connection for each read and waits ``--gap`` between reads:

1. idle: ``--idle-reads`` reads with nothing else running;
2. under ingest: reads for as long as ``--ingests`` batches of 300,000 records (100,000 users,
   products and orders, ~5% invalid, ids that do not overlap, so each is a full insert) are
   posted one after the other by another client.

It prints p50, p99 and max of both phases and whether the target (p99 under ingest below
``--target-ms``, 50 ms) is met, which also goes into the chart's table of targets. Every read
must answer 200 and every ingest 200; anything else stops the benchmark. The client runs on the
same two cores as the server, as a neighbour on the machine would.
"""

import argparse
import http.client
import os
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

from bench.ingest_bench import ROOT, _request, generate, gunicorn, timed_post
from bench.targets import check

READ_PATH = "/users/?page_size=50"


def batch_from(number: int, count: int, invalid: float, seed: int) -> bytes:
    """The ``number``-th batch: ``generate``'s records with every id (and reference) moved up by
    ``number * count``, so that each batch inserts rows of its own."""
    import orjson

    batch = generate(count, invalid, seed + number)
    shift = number * count
    for records, fields in (
        (batch["users"], ("id",)),
        (batch["products"], ("id",)),
        (batch["orders"], ("id", "user_id", "product_id")),
    ):
        for record in records:
            for name in fields:
                record[name] += shift
    return orjson.dumps(batch)


def timed_read(port: int, kept: http.client.HTTPConnection | None = None) -> float:
    """One read on a new connection (or on ``kept``, left open); its seconds. Anything but a
    200 raises."""
    started = time.perf_counter()
    connection = kept or http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("GET", READ_PATH)
        response = connection.getresponse()
        response.read()
    finally:
        if kept is None:
            connection.close()
    if response.status != 200:
        raise RuntimeError(f"GET {READ_PATH} answered {response.status}")
    return time.perf_counter() - started


def percentiles(seconds: list[float]) -> dict[str, float]:
    """p50, p99 and max in milliseconds (p99 by the nearest rank)."""
    ordered = sorted(seconds)
    rank = max(0, -(-99 * len(ordered) // 100) - 1)
    return {
        "reads": len(ordered),
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[rank] * 1000,
        "max_ms": ordered[-1] * 1000,
    }


def measure(args: argparse.Namespace) -> dict:
    bodies = [batch_from(n, args.count, args.invalid, args.seed) for n in range(args.ingests)]
    data_dir = Path(tempfile.mkdtemp(prefix="bench-reads-"))
    try:
        with gunicorn(data_dir, shipped=True) as (port, token, worker):
            # A first page to read: a small batch of users.
            _request(port, "POST", "/ingest/", batch_from(args.ingests, 100, 0, 0), token)
            for _ in range(20):  # warm up every process and thread
                timed_read(port)
            kept = None
            if args.keep_alive:
                kept = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            idle = []
            for _ in range(args.idle_reads):
                idle.append(timed_read(port, kept))
                time.sleep(args.gap)
            ingests: list[float] = []
            failure: list[BaseException] = []

            def post_all() -> None:
                try:
                    for body in bodies:
                        ingests.append(timed_post(port, "/ingest/", body, token, worker)["seconds"])
                except BaseException as exc:  # noqa: BLE001 - reported by the reading thread
                    failure.append(exc)

            poster = threading.Thread(target=post_all)
            busy = []
            poster.start()
            time.sleep(0.05)  # the first body is on its way
            while poster.is_alive():
                busy.append(timed_read(port, kept))
                time.sleep(args.gap)
            poster.join()
            if failure:
                raise failure[0]
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    return {"idle": percentiles(idle), "ingest": percentiles(busy), "ingest_seconds": ingests}


def report(result: dict, target_ms: float, chart_path: Path | None = None, how: str = "") -> bool:
    print(f"{'phase':<16}{'reads':>7}{'p50':>10}{'p99':>10}{'max':>10}")
    for phase, label in (("idle", "idle"), ("ingest", "under ingest")):
        figures = result[phase]
        print(
            f"{label:<16}{figures['reads']:>7}{figures['p50_ms']:>8.1f}ms"
            f"{figures['p99_ms']:>8.1f}ms{figures['max_ms']:>8.1f}ms"
        )
    seconds = ", ".join(f"{s:.2f} s" for s in result["ingest_seconds"])
    print(f"ingests meanwhile: {seconds}")
    idle, busy = result["idle"], result["ingest"]
    return check(
        f"GET /users/ p99 while {len(result['ingest_seconds'])} ingests run"
        + (f", {how}" if how else ""),
        f"{busy['p99_ms']:.0f} ms (p50 {busy['p50_ms']:.1f}, max {busy['max_ms']:.0f}; "
        f"idle p99 {idle['p99_ms']:.0f})",
        f"< {target_ms:.0f} ms",
        busy["p99_ms"] < target_ms,
        chart_path,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000, help="records of each type")
    parser.add_argument("--invalid", type=float, default=0.05, help="share of invalid records")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--ingests", type=int, default=3, help="batches posted back to back")
    parser.add_argument("--idle-reads", type=int, default=300)
    parser.add_argument("--gap", type=float, default=0.005, help="seconds between reads")
    parser.add_argument("--target-ms", type=float, default=50.0)
    parser.add_argument(
        "--keep-alive",
        action="store_true",
        help="read on one kept-alive connection (it stays with whichever process took it) "
        "instead of a new connection per read; not the target's measure",
    )
    parser.add_argument(
        "--chart",
        type=lambda value: Path(value) if value else None,
        default=ROOT / "docs" / "ingest-throughput.png",
        help="the chart whose table of targets gets this one (default %(default)s; '' for none)",
    )
    args = parser.parse_args()
    print(
        f"Reads under ingest: GET {READ_PATH}, shipped gunicorn config, {os.cpu_count()} CPUs, "
        f"{args.ingests} ingests of {3 * args.count:,} records"
    )
    if args.keep_alive:  # not the target's measure: printed, not charted
        report(measure(args), args.target_ms, None, "on one kept-alive connection")
    else:
        report(measure(args), args.target_ms, args.chart)


if __name__ == "__main__":
    main()
