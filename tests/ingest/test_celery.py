"""A real Celery worker on the real Redis carries a batch from 202 to succeeded.

The fixture starts a worker (``celery -A config worker``) and a web server (gunicorn), both on
the test databases, with ``CELERY_BROKER_URL`` pointing at the local Redis. Without a reachable
Redis the test is skipped, unless ``REQUIRE_REDIS`` is set (as in CI), where it fails.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from contextlib import closing
from pathlib import Path

import pytest
from django.db import connections

from ingest import jobs
from orders_svc.models import Order
from products_svc.models import Product
from users_svc.models import User

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True, reset_sequences=True)

ROOT = Path(__file__).resolve().parents[2]
BROKER = os.environ.get("TEST_CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")
SEED = (ROOT / "ingest" / "fixtures" / "seed.json").read_bytes()


def _database_urls() -> dict[str, str]:
    """URLs of the test databases, for processes that are not under the test runner."""
    urls = {}
    for alias in ("default", "users", "products", "orders"):
        config = connections[alias].settings_dict
        if config["ENGINE"].endswith("sqlite3"):
            url = f"sqlite:///{config['NAME']}"
        else:
            auth = config["USER"] + (f":{config['PASSWORD']}" if config["PASSWORD"] else "")
            url = f"postgres://{auth}@{config['HOST']}:{config['PORT'] or 5432}/{config['NAME']}"
        urls[f"{alias.upper()}_DATABASE_URL"] = url
    return urls


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


def _free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until(ready, what: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            raise AssertionError(f"{what} exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not start within {timeout}s")
        time.sleep(0.2)


@pytest.fixture
def celery_stack(tmp_path):
    """A Celery worker and a web server sharing the test databases and the local Redis."""
    _redis_or_skip()
    env = {
        **os.environ,
        **_database_urls(),
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "CELERY_BROKER_URL": BROKER,
        "PYTHONPATH": str(ROOT),
    }
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
        cwd=ROOT,
        env=env,
        stdout=worker_log.open("w"),
        stderr=subprocess.STDOUT,
    )
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--threads",
            "2",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        _wait_until(lambda: " ready." in worker_log.read_text(), "the Celery worker", worker)

        def listening() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            except OSError:
                return False
            return True

        _wait_until(listening, "gunicorn", server)
        yield f"http://127.0.0.1:{port}", worker_log
    finally:
        for process in (server, worker):
            process.terminate()
        for process in (server, worker):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def _request(
    method: str, url: str, body: bytes | None = None, token: str = ""
) -> tuple[int, dict, dict]:
    headers = {"Content-Type": "application/json", "Authorization": f"Token {token}"}
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, dict(response.headers), json.loads(response.read())


def test_a_celery_worker_runs_an_async_batch_to_succeeded(celery_stack, api_token):
    base_url, worker_log = celery_stack
    status, headers, job = _request("POST", f"{base_url}/ingest/?async=true", SEED, api_token)
    assert status == 202
    assert headers["Location"] == job["url"]

    deadline = time.monotonic() + 60
    while job["state"] not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline, f"job still {job['state']}"
        time.sleep(0.2)
        _, _, job = _request("GET", job["url"], token=api_token)

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
