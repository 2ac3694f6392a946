"""Ingest jobs: a batch accepted now (202) and run in the background.

Life of a job::

    submit_job()  ── row + payload committed ──▶ dispatch(id) ──▶ Celery worker or local thread
                                                                 run_job(id): claim, heartbeat,
                                                                 pipeline.ingest(), results

* The job row and its payload are committed before the job is dispatched (``on_commit``), so a
  worker never looks for a job that is not there yet. The broker carries only the job's id.
* With ``CELERY_BROKER_URL`` a Celery worker runs it (``celery -A config worker``); without,
  a small thread pool inside the web process does, so ``make run`` needs no other service.
* A worker claims a job with one conditional UPDATE (queued, or running but silent for
  ``INGEST_JOB_STALE_AFTER`` seconds), so two workers never run it at once, and proves it is
  alive with a heartbeat. :func:`reap_stale_jobs` gives a silent job to another worker, or
  marks it failed after ``INGEST_JOB_MAX_ATTEMPTS`` attempts: no job stays ``running`` forever.
* Running a job again cannot insert a record twice: every chunk is written under the job's
  write-ledger key (``common.models.WriteLedger``), so what a dead run committed is reused.
* A finished job keeps a small summary (``counts`` per type and outcome) and every record's
  outcome (``ingest.outcomes``), stored compactly in the transaction that ends it
  (``ingest.job_results``); the summary never grows with the batch.
* :func:`abort_job` cancels a queued job, and records the request on a running one: the run
  asks the database before each chunk (``ingest.runs``), so a worker in another process stops
  at its next chunk too, keeps what it committed (an atomic job keeps nothing), ends
  ``aborted``, and reports the records it never wrote as unprocessed. :func:`delete_job`
  deletes a finished job and its results.
* Nothing is kept longer than it is needed. The payload (the batch, up to
  ``INGEST_ASYNC_MAX_BODY_BYTES``) is deleted in the transaction that ends the job, whatever
  the end: succeeded, failed, aborted, failed by the reaper, cancelled. :func:`purge_expired`
  deletes jobs (their results with them) that ended ``INGEST_JOB_RETENTION`` seconds ago,
  ``Idempotency-Key`` records past their ``INGEST_IDEMPOTENCY_TTL``, and the write-ledger rows
  a crashed run left in each service's database after ``INGEST_LEDGER_RETENTION``; the reaper
  runs it now and then, and ``manage.py reap_ingest_jobs`` every time.
"""

import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, connections, transaction
from django.db.models import Exists, F, Min, OuterRef, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from common.http.json import dumps
from config.db_router import DEFAULT_DATABASE
from ingest import formats, idempotency, pipeline
from ingest.formats import TYPES
from ingest.job_results import blocks_of
from ingest.models import IngestJob, IngestJobPayload, IngestJobResultBlock
from ingest.outcomes import TypeOutcomes, all_unprocessed, outcomes_of
from ingest.records import decode_batch
from ingest.results import IngestResult, kept_nothing
from orders_svc import services as order_services
from products_svc import services as product_services
from users_svc import services as user_services

logger = logging.getLogger(__name__)
State = IngestJob.State


class JobNotCancellable(Exception):
    """Only a queued job can be cancelled; the message says what state it is in (a 409)."""


class JobNotAbortable(Exception):
    """A finished job cannot be aborted; the message says how it ended (a 409)."""


class JobNotFinished(Exception):
    """A queued or running job cannot be deleted; the message says to abort it first (a 409)."""


def submit_job(
    body: bytes,
    *,
    total: int,
    action: str = "insert",
    dry_run: bool = False,
    atomic: bool = False,
    owner: str = "",
    media_type: str = "application/json",
    record_type: str = "",
) -> IngestJob:
    """Store a job and its batch (a JSON, NDJSON or CSV body, see ``ingest.formats``); it is
    dispatched once both are committed."""
    with transaction.atomic(using=DEFAULT_DATABASE):
        job = IngestJob.objects.create(
            owner=owner,
            total=total,
            action=action,
            dry_run=dry_run,
            atomic=atomic,
            chunk_size=settings.INGEST_CHUNK_SIZE,
        )
        IngestJobPayload.objects.create(
            job=job, body=body, media_type=media_type, record_type=record_type
        )
        transaction.on_commit(lambda: dispatch(job.id), using=DEFAULT_DATABASE)
    return job


def dispatch(job_id: uuid.UUID) -> None:
    """Hand a job to Celery if a broker is configured, else to the local thread pool."""
    if settings.CELERY_BROKER_URL:
        from ingest.tasks import run_ingest_job

        run_ingest_job.delay(str(job_id))
    else:
        _local_pool().submit(_run_locally, job_id)


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _local_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=settings.INGEST_JOB_WORKERS, thread_name_prefix="ingest-job"
            )
    return _pool


def _run_locally(job_id: uuid.UUID) -> None:
    try:
        run_job(job_id)
    except Exception:  # the job row says what went wrong; keep the pool's thread alive
        logger.exception("ingest job %s crashed", job_id)
    finally:
        connections.close_all()


def run_job(job_id: uuid.UUID) -> None:
    """Run a job if this worker can claim it (see the module docstring)."""
    job = _claim(job_id)
    if job is None:
        return
    progress = _Progress()
    beat = _Heartbeat(job.id, progress)
    beat.start()
    try:
        _run_claimed(job, progress)
    finally:
        beat.stop()


def _run_claimed(job: IngestJob, progress: "_Progress") -> None:
    received: dict[str, int] = {}
    lines = None
    try:
        try:
            body, media_type, record_type = IngestJobPayload.objects.values_list(
                "body", "media_type", "record_type"
            ).get(job_id=job.id)
        except IngestJobPayload.DoesNotExist:
            # A worker presumed dead finished the job between our claim and this read.
            logger.warning("ingest job %s was finished by another worker", job.id)
            return
        if media_type == "application/json":
            batch = decode_batch(bytes(body))
        else:
            lines = formats.read_streamed(
                formats.split_lines([bytes(body)]), media_type, record_type or None
            )
            batch = lines.batch
        del body
        received = {name: len(getattr(batch, name)) for name in TYPES}
        result = pipeline.ingest(
            batch,
            action=job.action,
            dry_run=job.dry_run,
            atomic=job.atomic,
            ledger_key=_ledger_key(job.id),
            on_progress=progress,
            should_stop=_abort_requested(job.id),
            per_record=True,
        )
        state = State.SUCCEEDED
        if result.aborted or result.rejected:
            state = State.ABORTED if result.aborted else State.FAILED
        _finish(job.id, state, result=result, lines=lines, error=result.detail or "")
    except pipeline.WriteFailed as exc:  # an atomic batch: the 503's body says what was kept
        outcome = kept_nothing(exc.result, aborted=False) if exc.result else None
        _finish(
            job.id,
            State.FAILED,
            result=outcome,
            lines=lines,
            received=received,
            body=dumps(exc.as_dict()),
            error=str(exc),
        )
    except ValueError as exc:
        _finish(job.id, State.FAILED, error=str(exc))
    except Exception as exc:
        logger.exception("ingest job %s failed", job.id)
        _finish(job.id, State.FAILED, error=f"{type(exc).__name__}: {exc}")


def _abort_requested(job_id: uuid.UUID):
    """Asked by the run before each chunk: one indexed read of the job's row."""

    def requested() -> bool:
        return IngestJob.objects.filter(id=job_id, abort_requested_at__isnull=False).exists()

    return requested


def _ledger_key(job_id: uuid.UUID) -> str:
    return f"job:{job_id}"


def _claim(job_id: uuid.UUID) -> IngestJob | None:
    """Mark the job running for this worker, if it is free to run; one UPDATE, no race."""
    now = timezone.now()
    silent = now - timedelta(seconds=settings.INGEST_JOB_STALE_AFTER)
    claimed = IngestJob.objects.filter(
        Q(state=State.QUEUED) | Q(state=State.RUNNING, heartbeat_at__lt=silent),
        id=job_id,
        attempts__lt=settings.INGEST_JOB_MAX_ATTEMPTS,
        abort_requested_at__isnull=True,  # an aborted job's dead run is not run again
    ).update(
        state=State.RUNNING,
        attempts=F("attempts") + 1,
        started_at=Coalesce("started_at", Value(now)),
        heartbeat_at=now,
    )
    return IngestJob.objects.get(id=job_id) if claimed else None


def _finish(
    job_id: uuid.UUID,
    state: str,
    *,
    result: IngestResult | None = None,
    lines: formats.LineNumberedBatch | None = None,
    received: dict[str, int] | None = None,
    body: bytes | None = None,
    error: str = "",
) -> None:
    """Set a final state, store what the job did, and drop what it no longer needs (its
    payload, its ledger).

    With a ``result``, every record's outcome is stored (or, with only ``received``, every
    record as unprocessed); ``body`` is a response kept as it is (an atomic job's 503).
    """
    outcomes: dict[str, TypeOutcomes] | None = None
    if result is not None:
        outcomes = outcomes_of(result)
    elif received:
        outcomes = all_unprocessed(received)
    # Compressed before the transaction: the default database's lock is not held meanwhile.
    blocks = blocks_of(outcomes, lines.lines if lines is not None else None) if outcomes else []
    changes = {}
    if outcomes is not None:
        counts = {name: outcomes[name].counts() for name in TYPES}
        unprocessed = sum(count["unprocessed"] for count in counts.values())
        changes = {
            "counts": counts,
            "has_results": True,
            "processed": sum(count["received"] for count in counts.values()) - unprocessed,
        }
        if result is not None:
            changes["took_ms"] = round(result.seconds * 1000)
    elif state == State.SUCCEEDED:
        changes = {"processed": F("total")}
    with transaction.atomic(using=DEFAULT_DATABASE):
        IngestJob.objects.filter(id=job_id).update(
            state=state,
            result=body,
            error=error,
            finished_at=timezone.now(),
            heartbeat_at=None,
            **changes,
        )
        IngestJobPayload.objects.filter(job_id=job_id).delete()
        # A run presumed dead may have stored results meanwhile: the last run's stand.
        IngestJobResultBlock.objects.filter(job_id=job_id).delete()
        for block in blocks:
            block.job_id = job_id
        IngestJobResultBlock.objects.bulk_create(blocks, batch_size=100)
    _forget_ledger(job_id)


def _forget_ledger(job_id: uuid.UUID) -> None:
    try:
        pipeline.forget_ledger(_ledger_key(job_id))
    except Exception as exc:  # leftover ledger rows only cost space until their retention
        logger.warning("could not clear the write ledger of job %s (%s)", job_id, exc)


def cancel_job(job_id: uuid.UUID) -> IngestJob:
    """Cancel a queued job (it will never run); a running or finished one cannot be."""
    if not _cancel_queued(job_id):
        job = IngestJob.objects.get(id=job_id)
        where = {State.RUNNING: "is already running", **_ENDED}
        raise JobNotCancellable(
            f"Job {job_id} {where.get(job.state, f'has already {job.state}')}; "
            "only a queued job can be cancelled."
        )
    return IngestJob.objects.get(id=job_id)


_ENDED = {State.CANCELLED: "is already cancelled", State.ABORTED: "is already aborted"}


def _cancel_queued(job_id: uuid.UUID) -> bool:
    with transaction.atomic(using=DEFAULT_DATABASE):
        cancelled = IngestJob.objects.filter(id=job_id, state=State.QUEUED).update(
            state=State.CANCELLED, finished_at=timezone.now()
        )
        if cancelled:
            IngestJobPayload.objects.filter(job_id=job_id).delete()
    return bool(cancelled)


def abort_job(job_id: uuid.UUID) -> tuple[IngestJob, bool]:
    """Abort a job: ``(job, True)`` for a queued one, cancelled now; ``(job, False)`` for a
    running one, whose run stops at its next chunk (see the module docstring).

    Both are conditional updates, so an abort racing the worker that claims the job lands in
    one of them: tried again while the job moves between queued and running.
    """
    for _ in range(3):
        if _cancel_queued(job_id):
            return IngestJob.objects.get(id=job_id), True
        requested = IngestJob.objects.filter(id=job_id, state=State.RUNNING).update(
            abort_requested_at=Coalesce("abort_requested_at", Value(timezone.now()))
        )
        job = IngestJob.objects.get(id=job_id)
        if requested:
            return job, False
        if job.state in IngestJob.FINISHED:
            where = _ENDED.get(job.state, f"has already {job.state}")
            raise JobNotAbortable(
                f"Job {job_id} {where}; only a queued or running job can be aborted."
            )
    raise JobNotAbortable(f"Job {job_id} keeps changing state; try again.")


def delete_job(job_id: uuid.UUID) -> None:
    """Delete a finished job, its results with it; a queued or running one is refused."""
    with transaction.atomic(using=DEFAULT_DATABASE):
        # only("id"): the row is fetched to cascade, and a stored body can be megabytes.
        deleted = (
            IngestJob.objects.filter(id=job_id, state__in=IngestJob.FINISHED).only("id").delete()[0]
        )
    if deleted:
        return
    state = IngestJob.objects.filter(id=job_id).values_list("state", flat=True).first()
    if state is not None:
        raise JobNotFinished(
            f"Job {job_id} is {state}; abort it first (POST its abort/), then delete it."
        )


def reap_stale_jobs(*, purge: bool = True) -> int:
    """Give silent running jobs to another worker, or fail them after the last attempt.

    With ``purge``, also run :func:`purge_expired`, at most every ``PURGE_EVERY`` seconds in
    this process (the reaper runs on every look at the jobs).
    """
    silent = timezone.now() - timedelta(seconds=settings.INGEST_JOB_STALE_AFTER)
    stale = IngestJob.objects.filter(state=State.RUNNING, heartbeat_at__lt=silent)
    failed = _end_silent(
        stale.filter(abort_requested_at__isnull=False),
        State.ABORTED,
        "The worker running this job stopped answering after the abort was requested; "
        "records written before are kept, see the database.",
    )
    failed += _end_silent(
        stale.filter(attempts__gte=settings.INGEST_JOB_MAX_ATTEMPTS),
        State.FAILED,
        "The worker running this job stopped answering, "
        f"{settings.INGEST_JOB_MAX_ATTEMPTS} times; records written before are kept, "
        "see the database.",
    )
    retried = 0
    for job_id in stale.values_list("id", flat=True):
        requeued = IngestJob.objects.filter(
            id=job_id, state=State.RUNNING, heartbeat_at__lt=silent, abort_requested_at=None
        ).update(state=State.QUEUED)
        if requeued:
            retried += 1
            dispatch(job_id)
    if failed or retried:
        logger.warning("ingest jobs: %d stale job(s) retried, %d failed", retried, failed)
    if purge:
        _purge_now_and_then()
    return failed + retried


def _end_silent(silent, state: str, error: str) -> int:
    """End silent jobs that must not run again (their last attempt used, or an abort
    requested): they get ``state`` and ``error``, no results; their payload and ledger go."""
    job_ids = list(silent.values_list("id", flat=True))
    if not job_ids:
        return 0
    with transaction.atomic(using=DEFAULT_DATABASE):
        ended = silent.filter(id__in=job_ids).update(
            state=state, finished_at=timezone.now(), heartbeat_at=None, error=error
        )
        IngestJobPayload.objects.filter(job_id__in=job_ids, job__state=state).delete()
    for job_id in job_ids:
        _forget_ledger(job_id)
    return ended


# --- expiry -----------------------------------------------------------------------------------

#: Seconds between two purges run by the reaper in one process (the command always purges).
PURGE_EVERY = 60.0
#: Jobs deleted per transaction, so that a long backlog never holds the lock for long.
PURGE_BATCH = 500

_last_purge = float("-inf")
_purge_lock = threading.Lock()


@dataclass
class Purged:
    """What :func:`purge_expired` deleted, by kind."""

    jobs: int = 0
    payloads: int = 0
    idempotency_keys: int = 0
    ledger_rows: int = 0

    def __str__(self) -> str:
        return (
            f"{self.jobs} expired job(s), {self.payloads} leftover payload(s), "
            f"{self.idempotency_keys} expired idempotency key(s), "
            f"{self.ledger_rows} stale write-ledger row(s) deleted."
        )


def purge_expired(*, now: datetime | None = None) -> Purged:
    """Delete what has outlived its retention (see the module docstring).

    Each kind is one indexed existence check when there is nothing to delete: on SQLite a
    DELETE takes the file's write lock even when it matches nothing, and the reaper runs while
    batches are being written.
    """
    now = now or timezone.now()
    purged = Purged()
    # Payloads of finished jobs: none since jobs drop theirs when they end, but a database
    # from before that kept them all. EXISTS per payload: the payload table is the small one
    # (a join lets SQLite walk every finished job instead).
    leftovers = IngestJobPayload.objects.filter(
        Exists(IngestJob.objects.filter(id=OuterRef("job_id"), state__in=IngestJob.FINISHED))
    )
    if leftovers.exists():
        purged.payloads = leftovers.delete()[0]
    purged.jobs = _delete_jobs_finished_before(
        now - timedelta(seconds=settings.INGEST_JOB_RETENTION)
    )
    purged.idempotency_keys = idempotency.purge_expired(now=now)
    purged.ledger_rows = _forget_ledgers_before(
        now - timedelta(seconds=settings.INGEST_LEDGER_RETENTION)
    )
    if purged.jobs or purged.payloads or purged.idempotency_keys or purged.ledger_rows:
        logger.info("ingest purge: %s", purged)
    return purged


def _purge_now_and_then() -> None:
    global _last_purge
    with _purge_lock:
        if time.monotonic() - _last_purge < PURGE_EVERY:
            return
        _last_purge = time.monotonic()
    try:
        purge_expired()
    except Exception:  # expiry can wait for the next look; the jobs must still be shown
        logger.exception("ingest purge failed")
    finish_interrupted_atomic_batches()


def finish_interrupted_atomic_batches() -> int:
    """Undo what an interrupted atomic batch left (``ingest.atomic``); never fails the caller."""
    try:
        return pipeline.finish_interrupted_atomic_batches()
    except Exception as exc:  # the next look, or the next ingest, tries again
        logger.warning("could not finish the undo of interrupted atomic batches (%s)", exc)
        return 0


def _delete_jobs_finished_before(cutoff: datetime) -> int:
    # Only a final state sets finished_at; a filter on the state too would make SQLite walk
    # the state index (every finished job) instead of the finished_at one.
    expired = (
        IngestJob.objects.filter(finished_at__lt=cutoff).order_by().values_list("id", flat=True)
    )
    deleted = 0
    while job_ids := list(expired[:PURGE_BATCH]):
        with transaction.atomic(using=DEFAULT_DATABASE):
            IngestJobPayload.objects.filter(job_id__in=job_ids).delete()
            # only("id"): the rows are fetched to cascade, and a result can be megabytes. The
            # cascade takes their result blocks too; only the jobs are counted.
            _, by_model = IngestJob.objects.filter(id__in=job_ids).only("id").delete()
            deleted += by_model.get(IngestJob._meta.label, 0)
    return deleted


def _forget_ledgers_before(cutoff: datetime) -> int:
    """Ledger rows older than ``cutoff`` in each service's database, never a live job's."""
    oldest_live = (
        IngestJob.objects.filter(state__in=(State.QUEUED, State.RUNNING))  # indexed, unlike NOT IN
        .order_by()
        .aggregate(oldest=Min("created_at"))["oldest"]
    )
    if oldest_live is not None:
        cutoff = min(cutoff, oldest_live)
    return (
        user_services.users_forget_ledger_before(cutoff=cutoff)
        + product_services.products_forget_ledger_before(cutoff=cutoff)
        + order_services.orders_forget_ledger_before(cutoff=cutoff)
    )


class _Progress:
    """The number of finished records, as the run reports it from any of its threads.

    Reporting is an assignment, never a database write: the writer threads report each chunk
    as they commit it, and one that had to write the count itself would wait on the default
    database's lock, and fail with it, after its chunk was committed (an outside review: a
    lock held on default.db made a committed chunk come back as "not written, send it again").
    The job's heartbeat thread writes the count (:class:`_Heartbeat`)."""

    def __init__(self) -> None:
        self.done = 0
        self._lock = threading.Lock()

    def __call__(self, done: int) -> None:
        with self._lock:
            if done > self.done:
                self.done = done


class _Heartbeat:
    """A thread that, until stopped, updates the job's heartbeat every
    ``INGEST_JOB_HEARTBEAT_SECONDS`` and its ``processed`` count about once a second when it
    grew (and closes its connection at the end). A write that fails is logged and tried again
    at the next turn: the run never sees it."""

    PROGRESS_EVERY = 1.0

    def __init__(self, job_id: uuid.UUID, progress: _Progress) -> None:
        self.job_id = job_id
        self.progress = progress
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"ingest-beat-{job_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        beat_every = settings.INGEST_JOB_HEARTBEAT_SECONDS
        next_beat = time.monotonic() + beat_every
        written = 0
        try:
            while not self._stop.wait(min(self.PROGRESS_EVERY, beat_every)):
                changes: dict = {}
                if time.monotonic() >= next_beat:
                    changes["heartbeat_at"] = timezone.now()
                done = self.progress.done
                if done > written:
                    changes["processed"] = done
                if not changes:
                    continue
                try:
                    self._record(changes)
                except DatabaseError as exc:
                    logger.warning(
                        "ingest job %s: could not record %s (%s)", self.job_id, sorted(changes), exc
                    )
                    continue
                written = changes.get("processed", written)
                if "heartbeat_at" in changes:
                    next_beat = time.monotonic() + beat_every
        finally:
            connections.close_all()

    def _record(self, changes: dict) -> None:
        IngestJob.objects.filter(id=self.job_id, state=State.RUNNING).update(**changes)
