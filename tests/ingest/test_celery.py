"""Real Celery workers on the real Redis carry batches from 202 to succeeded, and survive a kill.

The tests start workers (``celery -A config worker``) and a web server (gunicorn), all on the
test databases (``tests.live.process_env``), with ``CELERY_BROKER_URL`` pointing at the local
Redis (``TEST_CELERY_BROKER_URL``, db 15 by default), on a queue of the run's own. Nothing is
mocked: what is checked is what a user would see, the job's state and result through the API
and the rows in each database. Without a reachable Redis the tests are skipped, unless
``REQUIRE_REDIS`` is set (as in CI), where they fail.
"""

import base64
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager

import pytest

from ingest.models import IngestJob, IngestJobPayload
from orders_svc.models import Order, OrderWriteLedger
from products_svc.models import Product, ProductWriteLedger
from tests import live
from tests.ingest.job_downloads import by_outcome, live_response_of, live_results_of
from tests.ingest.skips import skipped_records
from users_svc.models import User, UserWriteLedger

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True, reset_sequences=True)

BROKER = os.environ.get("TEST_CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")
SEED = (live.ROOT / "ingest" / "fixtures" / "seed.json").read_bytes()
# Short enough for a test to see a dead worker's job taken over; long enough that a busy
# machine does not make a live worker look dead (its heartbeat comes every 0.2 s).
# A queue of this run's own: test runs side by side (several checkouts on one machine) share
# the Redis database, and a worker of one must not take another's jobs.
QUEUE = f"test-{uuid.uuid4().hex}"
STACK_ENV = {
    "CELERY_BROKER_URL": BROKER,
    "CELERY_QUEUE": QUEUE,
    "INGEST_JOB_HEARTBEAT_SECONDS": "0.2",
    "INGEST_JOB_STALE_AFTER": "3",
    "SQLITE_BUSY_TIMEOUT": "120",  # a writer waits for the lock a test holds, it does not fail
}
FINAL = ("succeeded", "failed", "cancelled", "aborted")


@pytest.fixture
def redis_client():
    import redis

    try:
        client = redis.Redis.from_url(BROKER, socket_connect_timeout=2)
        client.ping()
        client.delete(QUEUE)  # no job left over (the queue is this run's own anyway)
    except redis.RedisError as exc:
        message = f"Redis is not reachable at {BROKER}: {exc}"
        if os.environ.get("REQUIRE_REDIS"):
            pytest.fail(message)
        pytest.skip(message)
    return client


@contextmanager
def celery_worker(tmp_path, name: str, **env: str):
    """A worker process on the test databases; yields (process, log path) once it is ready."""
    log = tmp_path / f"worker-{name}.log"
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--hostname",
            f"{name}@%h",
            "--pool",
            "threads",
            "--concurrency",
            "2",
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=live.ROOT,
        env=live.process_env(**STACK_ENV, **env),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        live.wait_until(lambda: " ready." in log.read_text(), f"the Celery worker {name}", worker)
        yield worker, log
    finally:
        live.stop(worker)


@pytest.fixture
def web(redis_client):
    """A web server on the test databases that hands jobs to the broker; yields its base URL."""
    with live.gunicorn(threads=2, **STACK_ENV) as (base_url, _):
        yield base_url


def wait_for_job(url: str, token: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        _, _, job = live.request("GET", url, token=token)
        if job["state"] in FINAL:
            return job
        assert time.monotonic() < deadline, f"job still {job['state']} after {timeout}s"
        time.sleep(0.2)


def ledger_rows() -> int:
    return sum(m.objects.count() for m in (UserWriteLedger, ProductWriteLedger, OrderWriteLedger))


def test_a_celery_worker_runs_an_async_batch_to_succeeded(web, tmp_path, api_token):
    with celery_worker(tmp_path, "a") as (_, worker_log):
        status, headers, job = live.request("POST", f"{web}/ingest/?async=true", SEED, api_token)
        assert status == 202
        assert headers["Location"] == job["url"]
        job = wait_for_job(job["url"], api_token)

    assert job["state"] == "succeeded", job["error"]
    assert job["processed"] == job["total"] == 30
    assert job["attempts"] == 1
    result = live_response_of(job, api_token)
    assert result["users"]["inserted_ids"] == list(range(1, 10))
    assert [s["id"] for s in skipped_records(result["orders"])] == [8, 9, 10]
    assert (User.objects.count(), Product.objects.count(), Order.objects.count()) == (9, 9, 7)
    assert ledger_rows() == 0
    assert not IngestJobPayload.objects.exists()
    # It was the worker that ran it, not a thread of the web server.
    assert "ingest.run_job[" in worker_log.read_text()


def test_only_the_job_id_goes_through_the_broker_and_a_late_worker_runs_it(
    redis_client, web, tmp_path, api_token
):
    users = [{"name": f"U{i}", "email": f"u{i}@example.com"} for i in range(2000)]
    body = json.dumps({"users": users}).encode()
    status, _, job = live.request("POST", f"{web}/ingest/?async=true", body, api_token)
    assert status == 202

    # No worker yet: the message waits in Redis, and it carries the id, not the batch.
    (message,) = redis_client.lrange(QUEUE, 0, -1)
    assert len(message) < 4096 < len(body)
    envelope = json.loads(message)
    assert envelope["headers"]["task"] == "ingest.run_job"
    args, kwargs, _ = json.loads(base64.b64decode(envelope["body"]))
    assert (args, kwargs) == ([job["id"]], {})
    assert IngestJob.objects.get(id=job["id"]).state == "queued"

    with celery_worker(tmp_path, "late"):
        done = wait_for_job(job["url"], api_token)
    assert done["state"] == "succeeded", done["error"]
    assert User.objects.count() == 2000
    assert redis_client.llen(QUEUE) == 0


def poll(check, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.1)


def test_a_worker_killed_mid_job_leaves_it_to_another_without_duplicates(web, tmp_path, api_token):
    """SIGKILL a worker after the job's users are committed, while its products wait for a
    lock; a second worker takes the job over and finishes it, reusing the users."""
    users = [{"name": f"U{i}", "email": f"u{i}@example.com"} for i in range(300)]  # no ids
    products = [{"name": f"P{i}", "price": 5} for i in range(120)]
    body = json.dumps({"users": users, "products": products}).encode()

    with live.products_write_lock(), celery_worker(tmp_path, "doomed") as (worker, _):
        status, _, job = live.request("POST", f"{web}/ingest/?async=true", body, api_token)
        assert status == 202
        poll(lambda: User.objects.count() == 300, "the users committed")
        row = IngestJob.objects.get(id=job["id"])
        assert (row.state, row.attempts) == ("running", 1)
        assert not Product.objects.exists()
        assert UserWriteLedger.objects.exists()
        live.stop(worker, signal.SIGKILL)
        assert worker.returncode == -signal.SIGKILL
    assert IngestJob.objects.get(id=job["id"]).state == "running"  # nobody said it died

    with celery_worker(tmp_path, "heir"):
        done = wait_for_job(job["url"], api_token)

    assert done["state"] == "succeeded", done["error"]
    assert done["attempts"] == 2
    assert done["processed"] == done["total"] == 420
    result = live_response_of(done, api_token)
    assert result["users"]["inserted_ids"] == list(range(1, 301))
    assert User.objects.count() == 300  # not 600: the second run reused what the first wrote
    assert Product.objects.count() == 120
    assert sorted(result["products"]["inserted_ids"]) == sorted(
        Product.objects.values_list("id", flat=True)
    )
    assert ledger_rows() == 0
    assert not IngestJobPayload.objects.exists()


def test_a_celery_worker_stops_an_aborted_job_at_its_next_chunk(web, tmp_path, api_token):
    """The abort goes to the web server, which records it; the worker, another process, sees it
    at its next chunk: it keeps the users it committed, writes no further products chunk, rolls
    its orders back, and reports every record it never wrote as unprocessed."""
    users = [{"id": i, "name": f"U{i}", "email": "u@x.org"} for i in range(1, 301)]
    products = [{"id": 1000 + i, "name": f"P{i}", "price": 5} for i in range(1, 121)]
    orders = [{"user_id": i, "product_id": 1000 + i, "quantity": 1} for i in range(1, 61)]
    body = json.dumps({"users": users, "products": products, "orders": orders}).encode()

    with celery_worker(tmp_path, "stopper", INGEST_CHUNK_SIZE="50") as (_, worker_log):
        with live.products_write_lock():
            status, _, job = live.request("POST", f"{web}/ingest/?async=true", body, api_token)
            assert status == 202
            poll(lambda: User.objects.count() == 300, "the users committed")
            status, _, asked = live.request("POST", job["url"] + "abort/", b"", api_token)
            assert status == 202, asked
            assert (asked["state"], bool(asked["abort_requested_at"])) == ("running", True)
        done = wait_for_job(job["url"], api_token)

    assert "ingest.run_job[" in worker_log.read_text()
    assert done["state"] == "aborted", done
    counts = done["counts"]
    assert counts["users"]["inserted"] == User.objects.count() == 300
    assert counts["products"]["inserted"] == Product.objects.count()
    assert counts["products"]["inserted"] in (0, 50, 100)  # the chunk(s) waiting on the lock
    assert counts["products"]["unprocessed"] == 120 - Product.objects.count()
    assert counts["orders"]["unprocessed"] == 60
    assert not Order.objects.exists()
    results = by_outcome(live_results_of(done, api_token))
    assert len(results["inserted"]) == 300 + Product.objects.count()
    assert len(results["unprocessed"]) == counts["total"]["unprocessed"]
    assert results["unprocessed"][0]["id"] == 1001 + Product.objects.count()
    assert done["processed"] == 480 - counts["total"]["unprocessed"]
    assert ledger_rows() == 0
    assert not IngestJobPayload.objects.exists()
