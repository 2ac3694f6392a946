"""The gunicorn worker the shipped config runs: gthread, but a process busy with an ingest leaves
new connections to the processes that are not.

Every gunicorn process waits on the same listening socket, and the kernel hands a new connection
to whichever process takes it first. A process running a bulk ingest keeps one core busy with
Python (checking records) while its writer threads keep SQLite busy on the other, and every
request it takes meanwhile waits for the GIL at each step: with the plain gthread worker, reads
that landed there while three 300,000-record ingests ran took up to 100-200 ms (p99 54-69 ms),
against 4-7 ms idle (``bench.reads_bench``).

So while a request of this process runs an ingest (:func:`ingesting`, around the ingest view),
the process stops accepting new connections, as long as another process is not busy too: the
last process to get busy keeps accepting, so that some process always does. A connection it
already holds (a client's kept-alive one, nginx's pool of them to its upstream) gets its next
answer with ``Connection: close`` meanwhile, so that the client's following request opens a
new connection, which another process takes: a reader on one kept-alive connection had p99
207 ms (max 233) while three ingests ran, since every read that landed on the busy process
waited there.

Which processes are busy is shared through a small array in shared memory, made by the gunicorn
master when it makes its first worker, before the fork: a slot per worker, holding the process id
while it ingests. A worker that dies mid-ingest leaves its id behind, which counts only while
that process lives. Elsewhere (the development server, Celery, tests) nothing is shared and
:func:`ingesting` does nothing; so too where shared memory cannot be had, and then every process
keeps accepting, as plain gthread does.
"""

import logging
import multiprocessing
import os
import threading
from contextlib import contextmanager

from gunicorn.workers.gthread import ThreadWorker

#: Slots for the processes' ids; more than any WEB_CONCURRENCY on a machine this size.
SLOTS = 64

log = logging.getLogger("store.gunicorn")

#: Made in the master, with its first worker (see _share_slots); None elsewhere.
_busy = None

#: This process's worker, once it runs (None in tests, the dev server, Celery).
_worker: "IngestAwareWorker | None" = None


class IngestAwareWorker(ThreadWorker):
    """``gthread``, except that accepting pauses while this process ingests (see the module
    docstring)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _share_slots()  # gunicorn makes a worker in the master, then forks

    def init_process(self) -> None:
        global _worker
        _worker = self
        self._ingests = 0
        self._ingests_lock = threading.Lock()
        self._yielding = False
        self._slot: int | None = None
        super().init_process()

    def load_wsgi(self) -> None:
        super().load_wsgi()
        self.wsgi = _closing_while_yielding(self, self.wsgi)

    def set_accept_enabled(self, enabled: bool) -> None:
        # The main loop calls this with "fewer connections than the limit"; a process that
        # yields stays closed to new ones until it is done.
        super().set_accept_enabled(enabled and not self._yielding)

    def _reconsider(self) -> None:
        """On the main loop: open or close to new connections as ``_yielding`` now says."""
        self.set_accept_enabled(self.nr_conns < self.worker_connections)

    def began_ingest(self) -> None:
        with self._ingests_lock:
            self._ingests += 1
            if self._ingests > 1 or _busy is None:
                return
            with _busy.get_lock():
                others, free = _busy_others()
                if free is None:  # no slot left: stay open, as a plain gthread worker does
                    return
                self._slot = free
                _busy[free] = os.getpid()
                self._yielding = others < self.cfg.workers - 1
        if self._yielding:
            self.method_queue.defer(self._reconsider)

    def ended_ingest(self) -> None:
        with self._ingests_lock:
            self._ingests -= 1
            if self._ingests:
                return
            if self._slot is not None:
                with _busy.get_lock():
                    _busy[self._slot] = 0
                self._slot = None
            if self._yielding:
                self._yielding = False
                self.method_queue.defer(self._reconsider)


def _closing_while_yielding(worker: IngestAwareWorker, app):
    """``app``, whose answers close their connection while ``worker`` yields (gunicorn's own
    response object, whose ``start_response`` the app is given, is told to close it: a
    ``Connection`` header from the app would be dropped as hop-by-hop)."""

    def application(environ, start_response):
        def respond(status, headers, exc_info=None):
            if worker._yielding:
                response = getattr(start_response, "__self__", None)
                if hasattr(response, "force_close"):
                    response.force_close()
            return start_response(status, headers, exc_info)

        return app(environ, respond)

    return application


def _share_slots() -> None:
    global _busy
    if _busy is None:
        try:
            _busy = multiprocessing.Array("i", SLOTS)
        except OSError as exc:  # no shared memory (/dev/shm) here: stay a plain gthread worker
            log.warning("processes busy with an ingest will keep accepting connections (%s)", exc)


def _busy_others() -> tuple[int, int | None]:
    """``(other live processes ingesting now, a free slot or None)``; call with the array's
    lock held."""
    count, free = 0, None
    for slot, pid in enumerate(_busy):
        if pid:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:  # died mid-ingest: its slot is free again
                _busy[slot] = pid = 0
            except PermissionError:  # alive, though not ours to signal: it counts
                pass
        if pid:
            count += 1
        elif free is None:
            free = slot
    return count, free


@contextmanager
def ingesting():
    """Around a request's ingest: this process lets the others take new connections meanwhile
    (does nothing outside :class:`IngestAwareWorker`)."""
    worker = _worker
    if worker is None:
        yield
        return
    worker.began_ingest()
    try:
        yield
    finally:
        worker.ended_ingest()
