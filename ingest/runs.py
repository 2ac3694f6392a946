"""What one ingest call carries through its stages besides the records.

A :class:`Run` holds the run's ledger key: the prefix under which each chunk's outcome is
recorded in the write ledger (``common.models.WriteLedger``, in the chunk's own transaction), so
that a job that died and runs again reuses what was committed instead of writing it twice. Keys
are ``<key>:users:<chunk number>`` and ``<key>:products:<chunk number>`` per chunk, and
``<key>:orders`` for the orders, written in one transaction. A run also counts the records whose
outcome is final, for a job's progress.

A run can be asked to stop (a background job someone aborted, ``ingest.jobs.abort_job``): its
``should_stop`` callable is asked before each chunk is written (:meth:`Run.stopping`), so the
run stops at its next chunk boundary wherever it is, whichever thread or process runs it. What
the stages do then depends on how they write: chunks that commit on their own keep what they
committed and report the rest of their records as unprocessed; a batch held in transactions (a
dry run, ``atomic=true``) raises :class:`Aborted` inside them, so that nothing of it is kept.
"""

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import DatabaseError

from ingest.resources import Resource

log = logging.getLogger(__name__)


class Aborted(Exception):
    """The run was asked to stop (raised where stopping must roll a held transaction back)."""


@dataclass
class Run:
    """What one ingest call carries through its phases besides the records."""

    ledger_key: str | None = None  # prefix of the write-ledger keys (re-runnable jobs)
    on_progress: Callable[[int], None] | None = None
    should_stop: Callable[[], bool] | None = None  # asked before each chunk (a job's abort)
    done: int = 0  # records with a final outcome so far
    # Writer threads of a batch with actions advance it too (ingest.phases).
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _stopped: bool = field(default=False, repr=False)

    def ledger(self, resource: Resource, chunk_number: int | str | None = None) -> str | None:
        if self.ledger_key is None:
            return None
        suffix = "" if chunk_number is None else f":{chunk_number}"
        return f"{self.ledger_key}:{resource.name}{suffix}"

    def advance(self, records: int) -> None:
        with self._lock:
            self.done += records
            done = self.done
        if self.on_progress is not None:
            self.on_progress(done)

    def stopping(self) -> bool:
        """Whether the run was asked to stop; once it was, it stays stopped.

        Called before each chunk, from any writer thread. A request (no ``should_stop``) pays
        one attribute read. A failing check does not stop the run: the next chunk asks again.
        """
        if self._stopped or self.should_stop is None:
            return self._stopped
        try:
            self._stopped = self.should_stop()
        except DatabaseError as exc:
            log.warning("could not check whether the run was asked to stop (%s)", exc)
        return self._stopped

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stopping` found the run asked to stop (no new check)."""
        return self._stopped

    def stop_here(self) -> None:
        """Raise :class:`Aborted` if the run was asked to stop (in held transactions)."""
        if self.stopping():
            raise Aborted
