"""What one ingest call carries through its stages besides the records.

A :class:`Run` holds the run's ledger key: the prefix under which each chunk's outcome is
recorded in the write ledger (``common.models.WriteLedger``, in the chunk's own transaction), so
that a job that died and runs again reuses what was committed instead of writing it twice. Keys
are ``<key>:users:<chunk number>`` and ``<key>:products:<chunk number>`` per chunk, and
``<key>:orders`` for the orders, written in one transaction. A run also counts the records whose
outcome is final, for a job's progress.
"""

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from ingest.resources import Resource


@dataclass
class Run:
    """What one ingest call carries through its phases besides the records."""

    ledger_key: str | None = None  # prefix of the write-ledger keys (re-runnable jobs)
    on_progress: Callable[[int], None] | None = None
    done: int = 0  # records with a final outcome so far
    # Writer threads of a batch with actions advance it too (ingest.phases).
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

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
