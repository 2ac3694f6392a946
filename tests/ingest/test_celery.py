"""A real Celery worker on the real Redis carries a batch from 202 to succeeded.

The fixture starts a worker (``celery -A config worker``) and a web server (gunicorn), both on
the test databases, with ``CELERY_BROKER_URL`` pointing at the local Redis. Without a reachable
Redis the test is skipped, unless ``REQUIRE_REDIS`` is set (as in CI), where it fails.
"""

import os
import subprocess
import sys
import time
import uuid

import pytest

from ingest import jobs
from orders_svc.models import Order
from products_svc.models import Product
from tests import live
from users_svc.models import User

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True, reset_sequences=True)

BROKER = os.environ.get("TEST_CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")
SEED = (live.ROOT / "ingest" / "fixtures" / "seed.json").read_bytes()


def _redis_or_skip() -> None:
    import redis

    try:
        client = redis.Redis.from_url(BROKER, socket_connect_timeout=2)
        client.ping()
        client.flushdb()  # no job left over from an earlier run
    except redis.RedisError as exc:
        message = f"Redis is not reachable at {BROKER}: {exc}"
        if os.environ.get("REQUIRE_REDIS"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def celery_stack(tmp_path):
    """A Celery worker and a web server sharing the test databases and the local Redis."""
    _redis_or_skip()
    worker_log = tmp_path / "worker.log"
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
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
        env=live.process_env(CELERY_BROKER_URL=BROKER),
        stdout=worker_log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        live.wait_until(lambda: " ready." in worker_log.read_text(), "the Celery worker", worker)
        with live.gunicorn(threads=2, CELERY_BROKER_URL=BROKER) as (base_url, _):
            yield base_url, worker_log
    finally:
        live.stop(worker)


def test_a_celery_worker_runs_an_async_batch_to_succeeded(celery_stack, api_token):
    base_url, worker_log = celery_stack
    status, headers, job = live.request("POST", f"{base_url}/ingest/?async=true", SEED, api_token)
    assert status == 202
    assert headers["Location"] == job["url"]

    deadline = time.monotonic() + 60
    while job["state"] not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline, f"job still {job['state']}"
        time.sleep(0.2)
        _, _, job = live.request("GET", job["url"], token=api_token)

    assert job["state"] == "succeeded", job["error"]
    assert job["processed"] == job["total"] == 30
    assert job["result"]["users"]["inserted_ids"] == list(range(1, 10))
    assert (User.objects.count(), Product.objects.count(), Order.objects.count()) == (9, 9, 7)
    # It was the worker that ran it, not a thread of the web server.
    assert "ingest.run_job[" in worker_log.read_text()


def test_only_the_job_id_travels_through_the_broker(monkeypatch, settings):
    sent = []
    settings.CELERY_BROKER_URL = BROKER
    monkeypatch.setattr("ingest.tasks.run_ingest_job.delay", lambda *args: sent.append(args))
    job_id = uuid.uuid4()
    jobs.dispatch(job_id)
    assert sent == [(str(job_id),)]
