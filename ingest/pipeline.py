"""The bulk ingest engine: every record of a batch comes out written, or skipped with reasons.

:func:`ingest` takes a decoded batch (``ingest.records.Batch``, from ``ingest.formats``) down one
of two roads. A batch that only inserts (nearly every batch, and the one that must be fastest)
takes the road below. A batch where any record upserts, updates or deletes (``ingest.actions``)
goes through the four phases of ``ingest.phases`` instead: order deletions; users and products;
orders; user and product deletions.

An insert-only batch goes through these stages, each in its own module:

1. **check** (``ingest.checking``): each record by its service's own rules, the same functions the
   single-record endpoints use (``ingest.resources`` says which rule, fields and database each
   type has); no database is touched.
2. **write**, in one of two modes:

   * ``ingest.streaming``, the default: chunks are written as soon as they are checked, one
     writer thread per database (the picture below);
   * ``ingest.checked_first``, for ``dry_run`` and ``atomic``: the ids and references are checked
     against the databases before anything is written; a dry run stops there, an atomic batch
     then writes all of it or nothing (``ingest.atomic``).

3. **report** (``ingest.results``): each written chunk is folded into the result (ids in request
   order, skips with their reasons), which becomes the response body; every batch also counts in
   the metrics and logs one line.

How a batch flows (the default mode); each arrow is a chunk of ``INGEST_CHUNK_SIZE`` rows, and
the main thread checks a chunk of each type in turn (orders, users, products, orders, ...)::

    main thread           orders writer             users writer          products writer
    check orders 1 ─────▶ BEGIN (orders locked)
                          insert chunk 1
    check users 1 ───────────────────────────────▶ insert + commit
                                                     chunk 1
    check products 1 ─────────────────────────────────────────────────────▶ insert + commit
                                                                            chunk 1
    check orders 2, users 2, products 2, … (each writer takes its chunks as they come)
    wait for users and products; hand their inserted ids to the orders writer
                          check every order's user and product exist (ids this batch
                          inserted are known; others: one query per database),
                          delete the orders that point nowhere, COMMIT

An explicit ``id`` that already exists, or that an earlier valid record of the batch has, is
skipped as a duplicate. Records without an id get one above every id in use and every explicit
id of the batch.

Every ingest first finishes undoing the atomic batches a failure interrupted
(:func:`finish_interrupted_atomic_batches`), so that a batch re-sent after one goes in.
:func:`forget_ledger` drops what a re-runnable run recorded once it is finished. ``ingest()``
raises :class:`WriteFailed` (from ``ingest.results``, importable from here) when an atomic batch
could not be written.
"""

import logging
import time
from collections.abc import Callable
from typing import Any

from django.db import DatabaseError

from common.data.gc_tuning import fewer_collections
from common.ops.metrics import record_ingest
from ingest import atomic as atomic_batches  # not `atomic`: ingest() has a flag of that name
from ingest.actions import INSERT, uses_actions
from ingest.checked_first import ingest_checked_first
from ingest.phases import ingest_with_actions
from ingest.records import Batch
from ingest.results import IngestResult, WriteFailed
from ingest.runs import Run
from ingest.streaming import ingest_streaming
from orders_svc import services as order_services
from products_svc import services as product_services
from users_svc import services as user_services

__all__ = [
    "IngestResult",
    "WriteFailed",
    "finish_interrupted_atomic_batches",
    "forget_ledger",
    "ingest",
]

log = logging.getLogger("store.ingest")


def ingest(
    batch: Batch,
    *,
    action: str = INSERT,
    dry_run: bool = False,
    atomic: bool = False,
    ledger_key: str | None = None,
    on_progress: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    per_record: bool = False,
    let_go_later: list | None = None,
) -> IngestResult:
    """Run a batch through the pipeline (see the module docstring).

    ``action`` is the request-wide default action of the records (a record's own wins); a batch
    with any other action than insert runs through the four phases of ``ingest.phases``.
    ``ledger_key`` makes the writes re-runnable: a chunk written under it before (by a run that
    died) is not written again, its recorded outcome is reused. ``on_progress(done)`` is called
    with the number of records whose outcome is final, as it grows. ``should_stop()`` is asked
    before each chunk (an aborted job, see ``ingest.runs``); once it says yes, nothing more is
    written and the result says which records were not processed (``aborted``). With
    ``per_record`` the result keeps what ``ingest.outcomes`` needs to give every record its
    outcome (a job's results); a request lets those rows go before its answer is built, or,
    given a ``let_go_later`` list, puts them there for the caller to let go once it has
    answered (freeing 300,000 checked rows took 30 ms, which the client need not wait for).
    """
    started = time.perf_counter()
    run = Run(ledger_key=ledger_key, on_progress=on_progress, should_stop=should_stop)
    _finish_interrupted_first()  # so that a batch re-sent after a failed atomic one goes in
    try:
        with fewer_collections():
            if uses_actions(batch, action):
                result = ingest_with_actions(
                    batch, default=action, dry_run=dry_run, atomic=atomic, run=run
                )
            elif dry_run or atomic:
                result = ingest_checked_first(batch, dry_run=dry_run, run=run)
            else:
                result = ingest_streaming(batch, run)
    except WriteFailed as exc:
        if not per_record and exc.result is not None:
            _drop_per_record(exc.result, let_go_later)
        raise
    if not per_record:
        _drop_per_record(result, let_go_later)
    if run.stopped and any(section.unprocessed for section in result.sections):
        result.aborted = True  # (a run held in transactions says so itself)
    result.seconds = time.perf_counter() - started
    record_ingest(result)
    _log_ingest(result)
    return result


def _drop_per_record(result: IngestResult, let_go_later: list | None = None) -> None:
    """Let the checked rows and the ids by index go (into ``let_go_later``, if given): only a
    job's results need them."""
    for section in result.sections:
        if let_go_later is not None:
            let_go_later.append((section.sources, section.done_at))
        section.sources, section.done_at = [], None


def _finish_interrupted_first() -> None:
    """The recovery at the start of an ingest; a database that fails it does not stop the batch."""
    try:
        finish_interrupted_atomic_batches()
    except DatabaseError as exc:
        log.warning("could not check for interrupted atomic batches (%s)", exc)


def _log_ingest(result: IngestResult) -> None:
    """One structured line per batch: its counts per type and how long it took."""
    fields: dict[str, Any] = {
        "event": "ingest",
        "duration_ms": round(result.seconds * 1000, 1),
        "dry_run": result.dry_run,
        "atomic": result.atomic,
        "committed": not result.dry_run and not result.rejected,
    }
    for name, section in zip(("users", "products", "orders"), result.sections, strict=True):
        fields[name] = {
            "received": section.received,
            "inserted": len(section.inserted_ids),
            "updated": len(section.updated_ids),
            "deleted": len(section.deleted_ids),
            "skipped": len(section.skipped),
        }
    log.info(
        "ingest: %d inserted, %d updated, %d deleted, %d skipped in %.0f ms",
        sum(len(section.inserted_ids) for section in result.sections),
        sum(len(section.updated_ids) for section in result.sections),
        sum(len(section.deleted_ids) for section in result.sections),
        sum(len(section.skipped) for section in result.sections),
        result.seconds * 1000,
        extra={"fields": fields},
    )


def forget_ledger(ledger_key: str) -> None:
    """Drop the write-ledger rows of a finished run (in every service's database).

    A database that is down keeps its rows, and says so in the log: they only cost space until
    the reaper deletes them (``INGEST_LEDGER_RETENTION``). The run is over and answered; a
    products server that died mid-run must not turn the answer for the users it wrote into a
    503 that says nothing of them.
    """
    for name, forget in (
        ("users", user_services.users_forget_ledger),
        ("products", product_services.products_forget_ledger),
        ("orders", order_services.orders_forget_ledger),
    ):
        try:
            forget(ledger_key)
        except DatabaseError as exc:
            log.warning("could not clear the %s write ledger of %s (%s)", name, ledger_key, exc)


def finish_interrupted_atomic_batches() -> int:
    """Finish undoing atomic batches a failure interrupted; return how many were undone.

    Safe to call at any time from any process: it waits for an atomic batch that is still
    committing, and does nothing (three indexed lookups) when no marker is left. Every ingest
    calls it first; the job reaper and ``reap_ingest_jobs`` call it too. See ``ingest.atomic``.
    """
    return len(atomic_batches.finish_interrupted().undone)
