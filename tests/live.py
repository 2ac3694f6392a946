"""Real servers for the tests that need processes: gunicorn (and Celery) on the test databases.

The processes are not under the test runner, so they get the test databases as URLs
(``*_DATABASE_URL``) and the test settings module.
"""

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import closing, contextmanager, suppress
from pathlib import Path

from django.db import connections

ROOT = Path(__file__).resolve().parents[1]


def database_urls() -> dict[str, str]:
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


def process_env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        **database_urls(),
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "PYTHONPATH": str(ROOT),
        **extra,
    }


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(ready, what: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            raise AssertionError(f"{what} exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not start within {timeout}s")
        time.sleep(0.1)


def wait_for(condition, what: str, seconds: float = 60) -> None:
    """Wait until ``condition()`` holds, polling every 10 ms; fail with ``what`` after
    ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


@contextmanager
def gunicorn(
    workers: int = 1, threads: int = 4, port: int | None = None, shipped: bool = False, **env: str
):
    """A gunicorn serving the app on the test databases; yields (base URL, master process).
    With ``shipped``, it runs the shipped ``config/gunicorn.conf.py`` (its worker class), with
    ``workers`` and ``threads`` given through its variables."""
    port = port or free_port()
    if shipped:
        command = ["--config", "config/gunicorn.conf.py", "config.wsgi"]
        env = {
            "GUNICORN_BIND": f"127.0.0.1:{port}",
            "WEB_CONCURRENCY": str(workers),
            "GUNICORN_THREADS": str(threads),
            "GUNICORN_LOG_LEVEL": "warning",
            **env,
        }
    else:
        command = [
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--timeout",
            "120",
            "--log-level",
            "warning",
        ]
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", *command],
        cwd=ROOT,
        env=process_env(**env),
        start_new_session=True,
    )
    try:
        wait_until(lambda: listening(port), "gunicorn", server)
        yield f"http://127.0.0.1:{port}", server
    finally:
        stop(server)


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Stop a process and everything it started (gunicorn's workers)."""
    if process.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def request(
    method: str, url: str, body=None, token: str = "", timeout: float = 120
) -> tuple[int, dict, object]:
    """One HTTP request; (status, headers, decoded JSON body or None). Never raises on 4xx/5xx."""
    data = (
        None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    )
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Token {token}"
    http_request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(http_request, timeout=timeout) as response:
            status, response_headers, raw = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        status, response_headers, raw = error.code, dict(error.headers), error.read()
    return status, response_headers, json.loads(raw) if raw else None


@contextmanager
def products_write_lock():
    """Hold the products database's write lock from outside the service, until the block ends.

    SQLite: a transaction begun with ``BEGIN IMMEDIATE`` on the products file (readers go on,
    every writer waits). PostgreSQL: ``LOCK TABLE products IN EXCLUSIVE MODE`` in an open
    transaction (reads go on, inserts wait). Either way the ingest commits users chunks, then
    waits on its first products chunk, with its orders transaction open, for as long as this
    is held: the server can be killed then without depending on how fast the machine is.
    """
    config = connections["products"].settings_dict
    if connections["products"].vendor == "sqlite":
        holder = sqlite3.connect(config["NAME"], timeout=10, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
    else:
        import psycopg  # only where the databases are PostgreSQL

        holder = psycopg.connect(
            dbname=config["NAME"],
            user=config["USER"],
            password=config["PASSWORD"] or None,
            host=config["HOST"],
            port=config["PORT"] or 5432,
        )
        holder.execute("LOCK TABLE products IN EXCLUSIVE MODE")
    try:
        yield
    finally:
        holder.rollback()
        holder.close()
