"""What a job leaves behind: its payload goes when it ends, the rest after a retention.

A job ends in four ways (succeeded, failed, failed by the reaper after its last attempt,
cancelled); each must leave no payload row. ``jobs.purge_expired`` deletes what has outlived
its retention, in every database, and nothing newer (nor the ledger of a job still running).
"""

import json
import time
import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ingest import jobs, pipeline
from ingest.models import IdempotencyKey, IngestJob, IngestJobPayload, IngestJobResultBlock
from orders_svc.models import OrderWriteLedger
from products_svc.models import ProductWriteLedger
from users_svc.models import User, UserWriteLedger

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True, reset_sequences=True)

LEDGERS = (UserWriteLedger, ProductWriteLedger, OrderWriteLedger)
ONE_USER = {"users": [{"name": "A", "email": "a@example.com"}]}


def post(api, body, query="?async=true"):
    body = json.dumps(body)
    return api.generic("POST", f"/ingest/{query}", body, content_type="application/json")


def wait_for(api, url, timeout=30):
    deadline = time.monotonic() + timeout
    while (job := api.get(url).json())["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, f"job still {job['state']}"
        time.sleep(0.05)
    return job


def payload_of(job_id) -> bool:
    return IngestJobPayload.objects.filter(job_id=job_id).exists()


# --- the payload goes when the job ends ------------------------------------------------------


def test_a_succeeded_job_has_no_payload_left(api):
    job = post(api, ONE_USER).json()
    assert wait_for(api, job["url"])["state"] == "succeeded"
    assert not payload_of(job["id"])
    assert User.objects.count() == 1


def test_a_rejected_atomic_job_has_no_payload_left(api):
    job = post(api, {"users": [{"name": "", "email": "x@example.com"}]}, "?async=true&atomic=true")
    assert wait_for(api, job.json()["url"])["state"] == "failed"
    assert not payload_of(job.json()["id"])


def test_a_job_that_crashed_has_no_payload_left(api, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(pipeline, "ingest", broken)
    job = post(api, ONE_USER).json()
    done = wait_for(api, job["url"])
    assert (done["state"], done["error"]) == ("failed", "RuntimeError: disk on fire")
    assert not payload_of(job["id"])


def test_a_cancelled_job_has_no_payload_left(api, monkeypatch):
    monkeypatch.setattr(jobs, "dispatch", lambda job_id: None)
    job = post(api, ONE_USER).json()
    assert payload_of(job["id"])  # kept while the job may still run
    assert api.post(job["url"] + "cancel/").json()["state"] == "cancelled"
    assert not payload_of(job["id"])


def test_a_job_the_reaper_fails_has_no_payload_nor_ledger_left(api, monkeypatch, settings):
    settings.INGEST_JOB_MAX_ATTEMPTS = 1
    monkeypatch.setattr(jobs, "dispatch", lambda job_id: None)
    job_id = post(api, ONE_USER).json()["id"]
    UserWriteLedger.objects.create(key=f"job:{job_id}:users:0", outcome=b"[[1]]")
    IngestJob.objects.filter(id=job_id).update(
        state="running", attempts=1, heartbeat_at=timezone.now() - timedelta(hours=1)
    )
    assert api.get(f"/ingest/jobs/{job_id}/").json()["state"] == "failed"
    assert not payload_of(job_id)
    assert not UserWriteLedger.objects.exists()


# --- purge_expired ----------------------------------------------------------------------------


def a_job(*, state, created_days_ago, finished_days_ago=None, payload=False) -> uuid.UUID:
    now = timezone.now()
    job = IngestJob.objects.create(state=state, chunk_size=10, result=b"{}")
    IngestJob.objects.filter(id=job.id).update(
        created_at=now - timedelta(days=created_days_ago),
        finished_at=None if finished_days_ago is None else now - timedelta(days=finished_days_ago),
    )
    if payload:
        IngestJobPayload.objects.create(job=job, body=b'{"users": []}')
    return job.id


def a_key(name, *, expires_in_hours) -> None:
    IdempotencyKey.objects.create(
        key=name,
        request_hash="h",
        status=200,
        response=b"{}",
        expires_at=timezone.now() + timedelta(hours=expires_in_hours),
    )


def ledger_rows(*, days_ago, prefix) -> None:
    for model in LEDGERS:
        row = model.objects.create(key=f"{prefix}:{model.__name__}", outcome=b"[]")
        model.objects.filter(id=row.id).update(created_at=timezone.now() - timedelta(days=days_ago))


def remaining_ledger_keys() -> set[str]:
    return {key for model in LEDGERS for key in model.objects.values_list("key", flat=True)}


def test_purge_deletes_what_is_past_its_retention_and_keeps_the_rest(settings):
    settings.INGEST_JOB_RETENTION = 7 * 86400
    settings.INGEST_LEDGER_RETENTION = 3 * 86400
    old_done = a_job(state="succeeded", created_days_ago=9, finished_days_ago=8)
    old_cancelled = a_job(state="cancelled", created_days_ago=9, finished_days_ago=8)
    recent_failed = a_job(state="failed", created_days_ago=9, finished_days_ago=6)
    leftover = a_job(state="succeeded", created_days_ago=1, finished_days_ago=1, payload=True)
    a_key("expired", expires_in_hours=-1)
    a_key("live", expires_in_hours=1)
    ledger_rows(days_ago=4, prefix="old")
    ledger_rows(days_ago=2, prefix="new")

    purged = jobs.purge_expired()

    assert (purged.jobs, purged.payloads, purged.idempotency_keys, purged.ledger_rows) == (
        2,
        1,
        1,
        3,
    )
    assert set(IngestJob.objects.values_list("id", flat=True)) == {recent_failed, leftover}
    assert not IngestJob.objects.filter(id__in=[old_done, old_cancelled]).exists()
    assert not IngestJobPayload.objects.exists()
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["live"]
    assert remaining_ledger_keys() == {
        "new:UserWriteLedger",
        "new:ProductWriteLedger",
        "new:OrderWriteLedger",
    }
    assert jobs.purge_expired() == jobs.Purged()  # nothing left to do


def test_purge_keeps_unfinished_jobs_and_the_ledger_they_may_still_need(settings):
    settings.INGEST_JOB_RETENTION = 86400
    settings.INGEST_LEDGER_RETENTION = 86400
    queued = a_job(state="queued", created_days_ago=10, payload=True)
    running = a_job(state="running", created_days_ago=5, payload=True)
    ledger_rows(days_ago=4, prefix=f"job:{running}")  # a crashed first run of the running job
    ledger_rows(days_ago=30, prefix="job:long-gone")

    purged = jobs.purge_expired()

    assert set(IngestJob.objects.values_list("id", flat=True)) == {queued, running}
    assert IngestJobPayload.objects.count() == 2
    # Older than the queued job: no unfinished job can own them.
    assert purged.ledger_rows == 3
    assert len(remaining_ledger_keys()) == 3
    assert all(key.startswith(f"job:{running}") for key in remaining_ledger_keys())


def test_purge_with_nothing_to_do_writes_to_no_database():
    a_job(state="succeeded", created_days_ago=0, finished_days_ago=0)
    a_key("live", expires_in_hours=1)
    captures = {alias: CaptureQueriesContext(connections[alias]) for alias in connections}
    for capture in captures.values():
        capture.__enter__()
    try:
        assert jobs.purge_expired() == jobs.Purged()
    finally:
        for capture in captures.values():
            capture.__exit__(None, None, None)
    statements = [q["sql"] for capture in captures.values() for q in capture.captured_queries]
    assert statements, "the purge looked at nothing"
    assert not [sql for sql in statements if not sql.lstrip().upper().startswith("SELECT")]


def test_the_reaper_purges_now_and_then(api, monkeypatch, settings):
    settings.INGEST_JOB_RETENTION = 86400
    monkeypatch.setattr(jobs, "_last_purge", float("-inf"))
    first = a_job(state="succeeded", created_days_ago=3, finished_days_ago=2)
    assert api.get("/ingest/jobs/").status_code == 200  # looking at jobs runs the reaper
    assert not IngestJob.objects.filter(id=first).exists()
    second = a_job(state="succeeded", created_days_ago=3, finished_days_ago=2)
    api.get("/ingest/jobs/")  # within PURGE_EVERY: not again
    assert IngestJob.objects.filter(id=second).exists()


def test_the_command_says_what_it_reaped_and_purged(settings):
    settings.INGEST_JOB_RETENTION = 86400
    for _ in range(2):
        a_job(state="failed", created_days_ago=3, finished_days_ago=2)
    a_job(state="succeeded", created_days_ago=0, finished_days_ago=0, payload=True)
    a_key("expired", expires_in_hours=-1)
    ledger_rows(days_ago=30, prefix="old")
    out = StringIO()
    call_command("reap_ingest_jobs", stdout=out)
    assert out.getvalue().splitlines() == [
        "0 stale job(s) retried or failed.",
        "2 expired job(s), 1 leftover payload(s), 1 expired idempotency key(s), "
        "3 stale write-ledger row(s) deleted.",
        "0 interrupted atomic batch(es) undone.",
    ]
    assert IngestJob.objects.count() == 1
    assert not IngestJobPayload.objects.exists()
    assert not IdempotencyKey.objects.exists()
    assert not remaining_ledger_keys()


def test_purge_deletes_the_results_of_expired_jobs_and_keeps_the_others(api, settings):
    settings.INGEST_JOB_RETENTION = 86400
    old = wait_for(api, post(api, ONE_USER).json()["url"])
    new = wait_for(api, post(api, {"users": [{"name": "B", "email": "b@x.org"}]}).json()["url"])
    assert IngestJobResultBlock.objects.filter(job_id=old["id"]).exists()
    IngestJob.objects.filter(id=old["id"]).update(finished_at=timezone.now() - timedelta(days=2))

    assert jobs.purge_expired().jobs == 1

    assert not IngestJobResultBlock.objects.filter(job_id=old["id"]).exists()
    assert IngestJobResultBlock.objects.filter(job_id=new["id"]).count() == 1
    assert api.get(old["url"] + "results/").status_code == 404
    assert api.get(new["url"] + "results/").status_code == 200
