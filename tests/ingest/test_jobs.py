"""Background ingest jobs on the local thread pool: from 202 to a result, and crash safety."""

import dataclasses
import json
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.utils import timezone

from ingest import jobs, streaming
from ingest.models import IngestJob, IngestJobPayload
from orders_svc import services as order_services
from orders_svc.models import Order, OrderWriteLedger
from products_svc.models import Product, ProductWriteLedger
from tests.ingest.job_downloads import response_of
from tests.ingest.skips import skipped_records
from users_svc import services as user_services
from users_svc.models import User, UserWriteLedger

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True, reset_sequences=True)

SEED = json.loads(
    open(__file__.rsplit("/tests/", 1)[0] + "/ingest/fixtures/seed.json").read()  # noqa: PTH123, SIM115
)


def post(api, body, query="?async=true", **headers):
    return api.generic(
        "POST", f"/ingest/{query}", json.dumps(body), content_type="application/json", **headers
    )


def wait_for(api, url, states=("succeeded", "failed", "cancelled"), timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = api.get(url).json()
        if job["state"] in states:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job still {job['state']} after {timeout}s")


def test_an_async_batch_goes_from_202_to_succeeded_with_the_sync_result(api):
    response = post(api, SEED)
    assert response.status_code == 202
    job = response.json()
    assert response["Location"] == job["url"]
    assert response["Preference-Applied"] == "respond-async"
    assert job["state"] in ("queued", "running", "succeeded")
    assert job["total"] == 30
    done = wait_for(api, job["url"])
    assert done["state"] == "succeeded"
    assert done["processed"] == done["total"] == 30
    assert done["started_at"]
    assert done["finished_at"]
    result = response_of(api, done)
    assert result["users"]["inserted_ids"] == list(range(1, 10))
    assert [s["id"] for s in skipped_records(result["orders"])] == [8, 9, 10]
    assert (User.objects.count(), Product.objects.count(), Order.objects.count()) == (9, 9, 7)


def test_prefer_respond_async_header_does_the_same(api):
    response = post(
        api,
        {"users": [{"name": "A", "email": "a@example.com"}]},
        "",
        HTTP_PREFER="respond-async, wait=10",
    )
    assert response.status_code == 202
    assert wait_for(api, response.json()["url"])["state"] == "succeeded"


def test_async_accepts_bigger_batches_than_sync_and_has_its_own_limits(api, settings):
    settings.INGEST_MAX_RECORDS = 2
    settings.INGEST_ASYNC_MAX_RECORDS = 5
    users = [{"name": f"U{i}", "email": f"u{i}@example.com"} for i in range(4)]
    assert post(api, {"users": users}, "").status_code == 413
    response = post(api, {"users": users})
    assert response.status_code == 202
    assert wait_for(api, response.json()["url"])["counts"]["users"]["inserted"] == 4
    too_many = post(api, {"users": users * 2})
    assert too_many.status_code == 413
    assert "(INGEST_ASYNC_MAX_RECORDS)" in too_many.json()["detail"]


def test_a_malformed_async_body_is_a_400_and_no_job(api):
    assert post(api, "{oops").status_code == 400
    assert post(api, {"user": []}).status_code == 400
    assert not IngestJob.objects.exists()


def test_jobs_are_listed_newest_first_and_paginated(api):
    for _ in range(3):
        wait_for(api, post(api, {"users": []}).json()["url"])
    page = api.get("/ingest/jobs/?page_size=2").json()
    assert page["count"] == 3
    assert len(page["results"]) == 2
    assert "result" not in page["results"][0]
    assert page["results"][0]["counts"]["total"]["received"] == 0
    assert page["results"][0]["created_at"] >= page["results"][1]["created_at"]
    assert api.get(f"/ingest/jobs/{uuid.uuid4()}/").status_code == 404
    assert api.get("/ingest/jobs/not-a-job/").status_code == 404


def test_a_queued_job_can_be_cancelled_and_then_never_runs(api, monkeypatch):
    monkeypatch.setattr(jobs, "dispatch", lambda job_id: None)  # nobody picks it up
    job = post(api, SEED).json()
    response = api.post(job["url"] + "cancel/")
    assert response.status_code == 200
    assert response.json()["state"] == "cancelled"
    jobs.run_job(uuid.UUID(job["id"]))
    assert not User.objects.exists()
    again = api.post(job["url"] + "cancel/")
    assert again.status_code == 409
    assert "is already cancelled" in again.json()["detail"]


def test_a_finished_job_cannot_be_cancelled(api):
    job = wait_for(api, post(api, {"users": []}).json()["url"])
    response = api.post(job["url"] + "cancel/")
    assert response.status_code == 409
    assert "has already succeeded" in response.json()["detail"]


class WorkerDied(BaseException):
    """Stands for a worker killed mid-job: nothing in the job's code catches it."""


def test_a_job_whose_worker_died_is_run_again_without_inserting_twice(api, monkeypatch):
    monkeypatch.setattr(jobs, "dispatch", lambda job_id: None)
    users = [{"name": f"U{i}", "email": f"u{i}@example.com"} for i in range(25)]  # no ids
    products = [{"name": f"P{i}", "price": 5} for i in range(25)]
    orders = [{"user_id": 1 + i, "product_id": 1 + i, "quantity": 1} for i in range(25)]
    job = post(api, {"users": users, "products": products, "orders": orders}).json()
    job_id = uuid.UUID(job["id"])

    real_orders_insert = order_services.orders_bulk_insert

    def dies_before_the_orders(*args, **kwargs):
        raise WorkerDied

    monkeypatch.setattr(order_services, "orders_bulk_insert", dies_before_the_orders)
    with pytest.raises(WorkerDied):
        jobs.run_job(job_id)
    assert IngestJob.objects.get(id=job_id).state == "running"
    assert User.objects.count() == 25  # the users and products chunks were committed...
    assert not Order.objects.exists()
    assert UserWriteLedger.objects.count() == 1  # ...and recorded under the job's key

    monkeypatch.setattr(order_services, "orders_bulk_insert", real_orders_insert)
    IngestJob.objects.filter(id=job_id).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    monkeypatch.setattr(jobs, "dispatch", jobs.run_job)  # run the retry right here
    assert jobs.reap_stale_jobs() == 1

    done = IngestJob.objects.get(id=job_id)
    assert done.state == "succeeded"
    assert done.attempts == 2
    result = response_of(api, api.get(f"/ingest/jobs/{job_id}/").json())
    assert result["users"]["inserted_ids"] == list(range(1, 26))
    assert User.objects.count() == 25  # not 50: the second run reused what the first wrote
    assert Product.objects.count() == 25
    assert Order.objects.count() == 25
    assert not UserWriteLedger.objects.exists()  # cleared once the job finished


def test_a_job_that_keeps_dying_is_failed_after_the_last_attempt(api, monkeypatch, settings):
    settings.INGEST_JOB_MAX_ATTEMPTS = 2
    monkeypatch.setattr(jobs, "dispatch", lambda job_id: None)
    job_id = uuid.UUID(post(api, {"users": []}).json()["id"])
    IngestJob.objects.filter(id=job_id).update(
        state="running", attempts=2, heartbeat_at=timezone.now() - timedelta(hours=1)
    )
    response = api.get(f"/ingest/jobs/{job_id}/")  # looking at jobs reaps dead ones
    assert response.json()["state"] == "failed"
    assert "stopped answering" in response.json()["error"]


def test_a_rejected_atomic_job_fails_with_the_result(api):
    job = post(api, {"users": [{"name": "", "email": "x@example.com"}]}, "?async=true&atomic=true")
    done = wait_for(api, job.json()["url"])
    assert done["state"] == "failed"
    assert done["error"].startswith("atomic=true: nothing was written")
    assert response_of(api, done)["committed"] is False


def test_the_same_idempotency_key_replays_the_same_job(api):
    first = post(api, SEED, HTTP_IDEMPOTENCY_KEY="job-key")
    second = post(api, SEED, HTTP_IDEMPOTENCY_KEY="job-key")
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    assert IngestJob.objects.count() == 1
    wait_for(api, first.json()["url"])


def test_the_reap_command_handles_silent_jobs(api, monkeypatch):
    from io import StringIO

    from django.core.management import call_command

    monkeypatch.setattr(jobs, "dispatch", lambda job_id: None)
    job_id = uuid.UUID(post(api, {"users": []}).json()["id"])
    IngestJob.objects.filter(id=job_id).update(
        state="running", attempts=1, heartbeat_at=timezone.now() - timedelta(hours=1)
    )
    out = StringIO()
    call_command("reap_ingest_jobs", stdout=out)
    assert out.getvalue().splitlines() == [
        "1 stale job(s) retried or failed.",
        "0 expired job(s), 0 leftover payload(s), 0 expired idempotency key(s), "
        "0 stale write-ledger row(s) deleted.",
        "0 interrupted atomic batch(es) undone.",
    ]
    assert IngestJob.objects.get(id=job_id).state == "queued"


def counts():
    """Rows in every table a batch can write, in each database."""
    return {
        model.__name__: model.objects.count()
        for model in (User, Product, Order, UserWriteLedger, ProductWriteLedger, OrderWriteLedger)
    }


NOTHING = dict.fromkeys(
    ("User", "Product", "Order", "UserWriteLedger", "ProductWriteLedger", "OrderWriteLedger"), 0
)


def test_an_async_dry_run_writes_nothing_in_any_database(api):
    response = post(api, SEED, "?async=true&dry_run=true")
    assert response.status_code == 202
    assert response.json()["dry_run"] is True
    done = wait_for(api, response.json()["url"])
    assert done["state"] == "succeeded", done["error"]
    result = response_of(api, done)
    assert result["dry_run"] is True
    assert result["committed"] is False
    assert result["users"]["valid"] == 9
    assert result["users"]["inserted_ids"] == []
    assert counts() == NOTHING


@contextmanager
def held_mid_way(api, monkeypatch, settings, users=40):
    """An async job of ``users`` users in chunks of 10, held inside its second chunk's write.

    Yields the job (as the 202 described it); on leaving, lets it finish and waits for it.
    """
    settings.INGEST_CHUNK_SIZE = 10
    reached, release = threading.Event(), threading.Event()
    real_insert = user_services.users_bulk_insert

    def insert(rows, **kwargs):
        # The second chunk by its content, not the second call: on PostgreSQL two writer
        # threads take chunks 1 and 2 at once, and either may call first.
        if rows[0][1] == "U10":
            reached.set()
            release.wait(30)
        return real_insert(rows, **kwargs)

    monkeypatch.setattr(user_services, "users_bulk_insert", insert)
    batch = {"users": [{"name": f"U{i}", "email": f"u{i}@example.com"} for i in range(users)]}
    job = post(api, batch).json()
    try:
        assert reached.wait(10), "the job never reached its second chunk"
        yield job
    finally:
        release.set()
        assert wait_for(api, job["url"])["state"] == "succeeded"


def poll(read, until, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not until(value := read()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return value


def test_a_held_job_shows_its_progress_before_it_finishes(api, monkeypatch, settings):
    with held_mid_way(api, monkeypatch, settings) as job:
        seen = poll(lambda: api.get(job["url"]).json(), lambda j: j["processed"] > 0)
        assert seen["state"] == "running"
        assert 0 < seen["processed"] < seen["total"] == 40
    assert IngestJob.objects.get(id=job["id"]).processed == 40


def test_a_held_job_keeps_its_heartbeat_advancing(api, monkeypatch, settings):
    settings.INGEST_JOB_HEARTBEAT_SECONDS = 0.05
    with held_mid_way(api, monkeypatch, settings) as job:

        def beat():
            return IngestJob.objects.values_list("heartbeat_at", flat=True).get(id=job["id"])

        first = beat()
        assert first is not None
        later = poll(beat, lambda seen: seen > first, timeout=3)
        assert later > first
        assert IngestJob.objects.get(id=job["id"]).state == "running"


def silent_job(api, monkeypatch, *, attempts, body=SEED):
    """A job a worker claimed ``attempts`` times, the last one silent for an hour."""
    monkeypatch.setattr(jobs, "dispatch", lambda job_id: None)
    job_id = uuid.UUID(post(api, body).json()["id"])
    IngestJob.objects.filter(id=job_id).update(
        state="running", attempts=attempts, heartbeat_at=timezone.now() - timedelta(hours=1)
    )
    monkeypatch.setattr(jobs, "dispatch", jobs.run_job)  # a retry runs right here
    return job_id


def test_a_silent_job_that_used_its_attempts_is_failed_and_never_run_again(
    api, monkeypatch, settings
):
    settings.INGEST_JOB_MAX_ATTEMPTS = 2
    job_id = silent_job(api, monkeypatch, attempts=2)
    jobs.run_job(job_id)  # the broker redelivers it to a worker: it must not run a third time
    assert counts() == NOTHING
    assert IngestJob.objects.get(id=job_id).attempts == 2

    assert jobs.reap_stale_jobs() == 1
    job = IngestJob.objects.get(id=job_id)
    assert job.state == "failed"
    assert job.error.startswith("The worker running this job stopped answering, 2 times")
    assert job.attempts == 2
    assert job.finished_at is not None
    assert not IngestJobPayload.objects.filter(job_id=job_id).exists()
    assert counts() == NOTHING
    jobs.run_job(job_id)
    assert counts() == NOTHING


def test_a_silent_job_with_attempts_left_is_run_again_to_the_end(api, monkeypatch, settings):
    settings.INGEST_JOB_MAX_ATTEMPTS = 2
    job_id = silent_job(api, monkeypatch, attempts=1)
    assert jobs.reap_stale_jobs() == 1
    job = IngestJob.objects.get(id=job_id)
    assert (job.state, job.attempts, job.error) == ("succeeded", 2, "")
    assert (User.objects.count(), Product.objects.count(), Order.objects.count()) == (9, 9, 7)


def test_a_job_counts_chunks_written_while_it_still_checks_later_ones(api, monkeypatch, settings):
    """A job's progress moves as its chunks are committed, not once every record of the type
    is checked (the review: a job of 400,000 users showed 0 processed for its first 6 s while
    its first chunks were already in the database)."""
    settings.INGEST_CHUNK_SIZE = 10
    reached, release = threading.Event(), threading.Event()
    real_rule = streaming.USERS.rule

    def rule(*values):
        if values[0] == "U35":  # the fourth chunk: the first three are handed to the writer
            reached.set()
            release.wait(30)
        return real_rule(*values)

    monkeypatch.setattr(streaming, "USERS", dataclasses.replace(streaming.USERS, rule=rule))
    batch = {"users": [{"name": f"U{i}", "email": f"u{i}@example.com"} for i in range(40)]}
    job = post(api, batch).json()
    try:
        assert reached.wait(10), "the job never reached the record it is held on"
        seen = poll(lambda: api.get(job["url"]).json(), lambda j: j["processed"] > 0)
        assert seen["state"] == "running"
        assert 0 < seen["processed"] <= 30 < seen["total"]
    finally:
        release.set()
    finished = wait_for(api, job["url"])
    assert (finished["state"], finished["processed"]) == ("succeeded", 40)


def test_a_progress_count_that_cannot_be_written_changes_nothing_the_job_did(
    api, monkeypatch, settings
):
    """The outside review: a lock on the default database while a job ran made the write of
    its progress fail in a writer thread after its chunk was committed, and the job reported
    the chunk as "not written, send these records again" (10,000 duplicates for a client that
    did). Progress that cannot be written is only late."""
    from django.db import OperationalError
    from django.db.models.query import QuerySet

    settings.INGEST_CHUNK_SIZE = 10
    settings.INGEST_JOB_HEARTBEAT_SECONDS = 0.05
    real_update = QuerySet.update

    def update(self, **changes):
        if self.model is IngestJob and "processed" in changes and "state" not in changes:
            raise OperationalError("database is locked")
        return real_update(self, **changes)

    monkeypatch.setattr(QuerySet, "update", update)
    batch = {"users": [{"name": f"U{i}", "email": f"u{i}@example.com"} for i in range(30)]}
    job = wait_for(api, post(api, batch).json()["url"])
    assert (job["state"], job["processed"], job["total"]) == ("succeeded", 30, 30)
    assert job["counts"]["users"]["inserted"] == 30
    assert job["counts"]["users"]["skipped"] == 0
    assert User.objects.count() == 30
