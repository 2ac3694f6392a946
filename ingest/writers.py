"""Writer threads: one small pool per database, each thread closing its own connections.

SQLite allows one writer per file, so a SQLite database gets exactly one writer thread (more
would only queue on the file lock). PostgreSQL takes concurrent writers, so its pool size is
``INGEST_WRITERS_PER_DATABASE``. Django's connections are per thread: a worker opens its own on
first use and closes them all when the pool shuts down, so nothing leaks between requests.

With ``threads=0`` the pool runs each job at once in the caller's thread (used by atomic
ingests, which must keep every write in the caller's transactions, and by the benchmark to show
what the threads buy).
"""

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from django.conf import settings
from django.db import connections

_STOP = object()

#: How long a new pool waits for its threads to open their connections (see ``_connect``).
CONNECT_WAIT = 0.25


class WriterPool:
    """Runs submitted jobs on ``threads`` threads in submission order (FIFO)."""

    def __init__(self, name: str, threads: int) -> None:
        assert threads >= 0, "a writer pool needs 0 (inline) or more threads"
        self.name = name
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._connected = [threading.Event() for _ in range(threads)]
        self._threads = [
            threading.Thread(target=self._work, args=(n,), name=f"ingest-{name}-{n}", daemon=True)
            for n in range(threads)
        ]
        for thread in self._threads:
            thread.start()
        deadline = time.monotonic() + CONNECT_WAIT
        for connected in self._connected:
            connected.wait(max(0.0, deadline - time.monotonic()))

    @property
    def threaded(self) -> bool:
        """False for an inline pool (jobs run in the caller's thread)."""
        return bool(self._threads)

    def submit(self, job: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        if not self._threads:
            _run(future, job, args, kwargs)
        else:
            self._jobs.put((future, job, args, kwargs))
        return future

    def close(self) -> None:
        """Let queued jobs finish, then stop the threads (each closes its connections)."""
        for _ in self._threads:
            self._jobs.put(_STOP)
        for thread in self._threads:
            thread.join()

    def __enter__(self) -> "WriterPool":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _work(self, number: int) -> None:
        try:
            self._connect(number)
            while (item := self._jobs.get()) is not _STOP:
                _run(*item)
        finally:
            connections.close_all()

    def _connect(self, number: int) -> None:
        """Open the thread's connection before the first job, while the pool's creator waits
        (at most ``CONNECT_WAIT``) without the GIL. Opened later, beside a thread checking
        records in Python, each of the dozen calls that opening makes waited for the GIL, up to
        the 5 ms switch interval each: the writers of a 300,000-record ingest started 100-150 ms
        after their first chunk was ready. A database that cannot be reached fails the jobs
        themselves, as before."""
        try:
            connections[self.name].ensure_connection()
        except Exception:  # noqa: BLE001, S110 - the first job meets the same error and reports it
            pass
        finally:
            self._connected[number].set()


def _run(future: Future, job: Callable[..., Any], args: tuple, kwargs: dict) -> None:
    if not future.set_running_or_notify_cancel():
        return
    try:
        future.set_result(job(*args, **kwargs))
    except BaseException as exc:  # noqa: BLE001 - handed to whoever waits on the future
        future.set_exception(exc)


def writers_for(alias: str) -> int:
    """How many writer threads a database gets: 1 for SQLite, the configured count otherwise."""
    if not settings.INGEST_WRITER_THREADS:
        return 0
    if connections[alias].vendor == "sqlite":
        return 1
    return settings.INGEST_WRITERS_PER_DATABASE
