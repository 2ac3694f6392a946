"""Read access to ingest jobs: a client's jobs, and a finished job's results.

A job is read without its stored response body (``result``, possibly megabytes): the queries
here defer it and say only whether there is one (``has_stored_response``). A finished job's
results are read a block at a time (``ingest.job_results``, ``ingest.job_response``), so that
they stream in flat memory whatever the batch.
"""

from collections.abc import Iterator

from django.db.models import BooleanField, ExpressionWrapper, Q, QuerySet

from ingest import job_response, job_results
from ingest.models import IngestJob

State = IngestJob.State


def job_list(*, owner: str, state: str | None = None) -> QuerySet[IngestJob]:
    """The jobs of the client ``owner`` (``common.http.auth.owner_of``), newest first, only
    those in ``state`` if given; none for an anonymous reader (owner "")."""
    if not owner:
        return IngestJob.objects.none()
    jobs = (
        IngestJob.objects.filter(owner=owner)
        .defer("result")
        .annotate(
            has_stored_response=ExpressionWrapper(
                Q(result__isnull=False), output_field=BooleanField()
            )
        )
    )
    return jobs if state is None else jobs.filter(state=state)


def job_results_missing(*, job: IngestJob) -> str | None:
    """Why ``job`` has no per-record results to read (a 409), or None if it has."""
    if job.has_results:
        return None
    if job.state not in IngestJob.FINISHED:
        return f"Job {job.id} is {job.state}: its results are there once it has finished."
    if job.state == State.CANCELLED:
        return f"Job {job.id} was cancelled before it ran: it has no results."
    if job.has_stored_response:
        return (
            f"Job {job.id} finished before per-record results were kept; its whole result is "
            "at its response/."
        )
    return (
        f"Job {job.id} has {job.state} without per-record results ({job.error or 'no detail'}); "
        "records written before are kept, see the database."
    )


def job_response_missing(*, job: IngestJob) -> str | None:
    """Why ``job`` has no response body to show (a 409), or None if it has."""
    if job.has_results or job.has_stored_response:
        return None
    return job_results_missing(job=job)


def job_result_lines(
    *, job: IngestJob, outcome: str | None = None, record_type: str | None = None
) -> Iterator[bytes]:
    """Every record's result (of one outcome, of one type) as NDJSON, a block at a time."""
    return job_results.result_lines(
        job.id, outcome=outcome, name=record_type, unprocessed_reasons=_unprocessed_reasons(job)
    )


def job_response_body(*, job: IngestJob) -> Iterator[bytes]:
    """The body a synchronous ingest of the job's batch would have answered, in pieces."""
    if job.has_stored_response:
        stored = IngestJob.objects.values_list("result", flat=True).get(id=job.id)
        return iter([bytes(stored)])
    counts = job.counts
    troubled = sum(counts[name]["skipped"] + counts[name]["unprocessed"] for name in counts)
    head = {
        "errors": troubled > 0,
        "took_ms": job.took_ms or 0,
        "dry_run": job.dry_run,
        "atomic": job.atomic and not job.dry_run,
        "committed": _committed(job),
    }
    detail = _detail(job)
    if detail:
        head["detail"] = detail
    return job_response.response_body(
        job.id, counts=counts, head=head, unprocessed_reasons=_unprocessed_reasons(job)
    )


def _committed(job: IngestJob) -> bool:
    """As a synchronous answer says it: the batch's writes stand (not a dry run, not an atomic
    batch refused, failed or aborted)."""
    if job.dry_run:
        return False
    if job.atomic:
        return job.state == State.SUCCEEDED
    return job.state in (State.SUCCEEDED, State.ABORTED)


def _detail(job: IngestJob) -> str:
    if job.state == State.ABORTED:
        unprocessed = sum(count["unprocessed"] for count in job.counts.values())
        return (
            f"The job was aborted: {unprocessed} records were not processed (in skipped_groups, "
            "with the reason)."
        )
    return job.error


def _unprocessed_reasons(job: IngestJob) -> dict[str, list[str]]:
    return job_results.unprocessed_reasons(
        state=job.state, atomic=job.atomic, dry_run=job.dry_run, error=job.error
    )
