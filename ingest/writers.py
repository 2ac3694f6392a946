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
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from django.conf import settings
from django.db import connections

_STOP = object()


class WriterPool:
    """Runs submitted jobs on ``threads`` threads in submission order (FIFO)."""

    def __init__(self, name: str, threads: int) -> None:
        assert threads >= 0, "a writer pool needs 0 (inline) or more threads"
        self.name = name
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"ingest-{name}-{n}", daemon=True)
            for n in range(threads)
        ]
        for thread in self._threads:
            thread.start()

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

    def _work(self) -> None:
        try:
            while (item := self._jobs.get()) is not _STOP:
                _run(*item)
        finally:
            connections.close_all()


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
