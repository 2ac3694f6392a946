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

Which processes take new connections is shared through a small array in shared memory, made by
the gunicorn master when it makes its first worker, before the fork: a slot per worker, with its
process id and whether it accepts. A process yields only while another live worker of the same
master accepts, decided under the array's lock (so that of two ingests beginning at once, one
process keeps accepting), and it checks again on every turn of its loop (at least once a
second): if the other one has died, is stopping, or began an ingest itself, it accepts again.
A worker that dies leaves its slot, which counts only while a process with that id is a child of
the same master. Elsewhere (the development server, Celery, tests) nothing is shared and
:func:`ingesting` does nothing; so too where shared memory cannot be had, or the lock cannot be
taken within ``LOCK_WAIT`` (a process killed while it held it): then the process keeps
accepting, as plain gthread does. Slots are read and written without the lock (a whole int at
a time); the lock is taken only to decide, so that a process killed while holding it cannot
stop the others' main loops.
"""

import logging
import multiprocessing
import os
import threading
from contextlib import contextmanager

from gunicorn.workers.gthread import ThreadWorker

#: Slots for the workers; more than any WEB_CONCURRENCY on a machine this size.
SLOTS = 64
#: Seconds to wait for the array's lock before giving up on yielding this once.
LOCK_WAIT = 0.5

log = logging.getLogger("store.gunicorn")

#: Made in the master, with its first worker (see _share_slots); None elsewhere. Slot ``n`` is
#: ``[2n]``, a worker's process id (0: free), and ``[2n + 1]``, 1 while it accepts. A raw
#: array: a single int is read and written whole without a lock, and the synchronized kind
#: would take its lock, without a time limit, on every item (a worker killed while it held it
#: would then hang every other one). ``_lock`` guards only the decisions, with LOCK_WAIT.
_slots = None
_lock = None

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
        self._slot = _claim_slot()
        super().init_process()  # runs the worker until it exits

    def load_wsgi(self) -> None:
        super().load_wsgi()
        self.wsgi = _closing_while_yielding(self, self.wsgi)

    def set_accept_enabled(self, enabled: bool) -> None:
        # The main loop calls this on every turn while this process yields (its listeners are
        # off, "fewer connections than the limit" says on): the moment to check that another
        # process still takes the new connections.
        if self._yielding and not _others_accept(self._slot):
            self._yielding = False
        super().set_accept_enabled(enabled and not self._yielding)
        _publish(self._slot, self._accepting and self.alive)

    def handle_exit(self, sig, frame) -> None:
        _publish(self._slot, False)  # stopping: not one to leave connections to
        super().handle_exit(sig, frame)

    def _reconsider(self) -> None:
        """On the main loop: open or close to new connections as ``_yielding`` now says."""
        self.set_accept_enabled(self.nr_conns < self.worker_connections)

    def began_ingest(self) -> None:
        with self._ingests_lock:
            self._ingests += 1
            if self._ingests > 1 or self._slot is None:
                return
            if not _lock.acquire(timeout=LOCK_WAIT):
                log.warning("the workers' lock is held too long: this ingest does not yield")
                return
            try:
                self._yielding = _others_accept(self._slot)
                if self._yielding:
                    _publish(self._slot, False)  # at once: a process deciding next sees it
            finally:
                _lock.release()
        if self._yielding:
            self.method_queue.defer(self._reconsider)

    def ended_ingest(self) -> None:
        with self._ingests_lock:
            self._ingests -= 1
            if self._ingests or not self._yielding:
                return
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
    global _slots, _lock
    if _slots is None:
        try:
            _slots, _lock = multiprocessing.RawArray("i", 2 * SLOTS), multiprocessing.Lock()
        except (OSError, ImportError) as exc:  # no shared memory or semaphores here
            _slots = _lock = None  # stay a plain gthread worker
            log.warning("processes busy with an ingest will keep accepting connections (%s)", exc)


def _claim_slot() -> int | None:
    """In a new worker: a free slot (or one of a worker that is gone), now this process's."""
    if _slots is None:
        return None
    if not _lock.acquire(timeout=LOCK_WAIT):
        log.warning("the workers' lock is held too long: this worker will not yield")
        return None
    try:
        claimed = None
        for slot in range(SLOTS):
            if not _is_sibling(_slots[2 * slot]):
                _slots[2 * slot] = _slots[2 * slot + 1] = 0  # gone: never "accepting" again
                if claimed is None:
                    claimed = slot
        if claimed is not None:
            _slots[2 * claimed] = os.getpid()
        return claimed  # None: more workers than slots, and this one never yields
    finally:
        _lock.release()


def _publish(slot: int | None, accepting: bool) -> None:
    if slot is not None:
        _slots[2 * slot + 1] = int(accepting)


def _others_accept(slot: int | None) -> bool:
    """Whether another live worker of this master takes new connections now."""
    if slot is None:
        return False
    for other in range(SLOTS):
        if other != slot and _slots[2 * other + 1] and _is_sibling(_slots[2 * other]):
            return True
    return False


def _is_sibling(pid: int) -> bool:
    """Whether ``pid`` is a live process with this process's parent (another worker of the
    same master, not a process that got a dead worker's id)."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return _live_parent(stat.read()) == os.getppid()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc here: alive is the best that can be known
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def _live_parent(stat: bytes) -> int | None:
    """The parent's id from a ``/proc/<pid>/stat`` line, or None for a zombie (a dead worker
    its master has not reaped yet) or a line that is not what Linux writes there."""
    try:
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        state, parent = stat.rsplit(b")", 1)[1].split()[:2]
        return None if state == b"Z" else int(parent)
    except (IndexError, ValueError):
        return None


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
