"""The client against one big request: ``store_client push`` of a 1,000,000-record file.

``python -m bench.client_bench`` (part of ``make bench``; options in ``CLIENT_BENCH_ARGS``)
writes an NDJSON file of ``--records`` records (a third each users, products and orders, with
ids, the orders first in the file so that they point forward), then, each on fresh SQLite
databases behind gunicorn (``--workers`` processes, 2 by default: the shipped config on this
2-core machine, whose ``WEB_CONCURRENCY`` is the core count; four threads each; the request
limits raised so that the whole file fits one request),
alternating ``--repeat`` times:

* **one request** (the baseline): the whole file as one ``POST /ingest/`` body, read into memory
  and sent by a plain ``httpx`` call, as a script that knows the file fits would;
* **the client**: ``python -m store_client push FILE`` in its own process: two passes over the
  file, pieces of at most 50,000 records and 8 MiB (the first three smaller), two in
  flight, each with its ``Idempotency-Key``, its state written after each piece; the
  process's peak RSS from ``/usr/bin/time`` (not from ``wait4``: a child forked from this
  process would count this one's memory from before its exec).

Target: the client at >= 0.8x the records/s of the one request, its peak memory < 100 MB.
"""

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import orjson

from bench.ingest_bench import PYTHON, ROOT, gunicorn

RATIO_TARGET = 0.8
MEMORY_TARGET_MB = 100


def write_file(path: Path, records: int) -> None:
    third = records // 3
    with path.open("wb") as file:
        for i in range(1, third + 1):
            order = {"type": "order", "id": i, "user_id": i, "product_id": i, "quantity": i % 7 + 1}
            file.write(orjson.dumps(order) + b"\n")
        for i in range(1, third + 1):
            user = {"type": "user", "id": i, "name": f"User {i}", "email": f"user{i}@example.com"}
            file.write(orjson.dumps(user) + b"\n")
        for i in range(1, records - 2 * third + 1):
            product = {"type": "product", "id": i, "name": f"Product {i}", "price": "19.99"}
            file.write(orjson.dumps(product) + b"\n")


def one_request(path: Path, data_dir: Path, workers: int) -> dict:
    with gunicorn(data_dir, workers=workers) as (port, token, _worker):
        started = time.perf_counter()
        response = httpx.post(
            f"http://127.0.0.1:{port}/ingest/",
            content=path.read_bytes(),
            headers={"Authorization": f"Token {token}", "Content-Type": "application/x-ndjson"},
            timeout=600,
        )
        seconds = time.perf_counter() - started
    response.raise_for_status()
    body = response.json()
    return {
        "seconds": seconds,
        "inserted": sum(body[k]["inserted"] for k in ("users", "products", "orders")),
    }


def client_push(path: Path, data_dir: Path, workers: int) -> dict:
    state = data_dir / "push-state.json"
    with gunicorn(data_dir, workers=workers) as (port, token, _worker):
        started = time.perf_counter()
        # Through /usr/bin/time: the peak RSS of a child forked from this process would count
        # this process's memory from before the exec (1,000,000 ids of the baseline's answer).
        process = subprocess.Popen(
            [
                "/usr/bin/time",
                "-f",
                "peak-kb %M",
                PYTHON,
                "-m",
                "store_client",
                "push",
                str(path),
                "--quiet",
                "--state",
                str(state),
                "--errors",
                str(data_dir / "errors.ndjson"),
                "--url",
                f"http://127.0.0.1:{port}",
                "--token",
                token,
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = process.communicate()
        status = process.returncode
        seconds = time.perf_counter() - started
    if status != 0:
        raise RuntimeError(f"the client failed: {out.decode()}{err.decode()}")
    confirmed = orjson.loads(state.read_bytes())["confirmed"].values()
    inserted = sum(
        c["counts"][k]["inserted"] for c in confirmed if c["counts"] for k in c["counts"]
    )
    peak_kb = int(err.decode().rsplit("peak-kb ", 1)[1].split()[0])
    return {"seconds": seconds, "inserted": inserted, "peak_rss_mb": peak_kb / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--workers", type=int, default=2, help="gunicorn processes (2: the shipped config)"
    )
    args = parser.parse_args()
    print(f"gunicorn: {args.workers} process(es) x 4 threads")
    os.environ["INGEST_MAX_RECORDS"] = str(args.records)
    os.environ["INGEST_MAX_BODY_BYTES"] = str(512 * 1024 * 1024)
    results: dict[str, list[dict]] = {"one request": [], "store_client push": []}
    with tempfile.TemporaryDirectory(prefix="client-bench-") as scratch:
        path = Path(scratch) / "data.ndjson"
        write_file(path, args.records)
        size = path.stat().st_size
        print(f"{args.records:,} records, {size / 2**20:.0f} MiB of NDJSON")
        for run in range(args.repeat):
            for name, side in (("one request", one_request), ("store_client push", client_push)):
                data_dir = Path(scratch) / f"{run}-{name.split()[0]}"
                data_dir.mkdir()
                result = side(path, data_dir, args.workers)
                if result["inserted"] != args.records:
                    raise RuntimeError(
                        f"{name} inserted {result['inserted']:,}, not {args.records:,}"
                    )
                results[name].append(result)
                print(f"  run {run + 1}: {name} {result['seconds']:.2f} s")
    report(results, args.records)


def report(results: dict[str, list[dict]], records: int) -> None:
    print(
        f"\n{'approach':<22}{'records/s':>12}{'median':>12}{'vs one request':>16}{'peak RSS':>10}"
    )
    base = [records / r["seconds"] for r in results["one request"]]
    for name, runs in results.items():
        rates = [records / r["seconds"] for r in runs]
        ratio = max(rates) / max(base)
        peak = max((r.get("peak_rss_mb", 0) for r in runs), default=0)
        shown = f"{peak:.0f} MB" if peak else ""
        print(
            f"{name:<22}{max(rates):>12,.0f}{statistics.median(rates):>12,.0f}{ratio:>15.2f}x{shown:>10}"
        )
    client = [records / r["seconds"] for r in results["store_client push"]]
    best, median = max(client) / max(base), statistics.median(client) / statistics.median(base)
    peak = max(r["peak_rss_mb"] for r in results["store_client push"])
    met = "met" if best >= RATIO_TARGET else "NOT met"
    print(
        f"client vs one request: {best:.2f}x best, {median:.2f}x median "
        f"(target >= {RATIO_TARGET}x: {met})"
    )
    met = "met" if peak < MEMORY_TARGET_MB else "NOT met"
    print(
        f"client peak RSS {peak:.0f} MB for {records:,} records "
        f"(target < {MEMORY_TARGET_MB} MB: {met})"
    )


if __name__ == "__main__":
    main()
