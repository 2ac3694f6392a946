"""Aborting and deleting background jobs (the jobs run on the local thread pool here; a Celery
worker in another process is in ``test_celery``).

A job is held mid-run deterministically: the test holds the products database's write lock
(``tests.live.products_write_lock``), so the job commits its users and then waits inside its
first products chunk; the abort is requested then, and the lock released. Whatever the machine's
speed, the job must then stop at its next chunk, keep what it committed (an atomic job keeps
nothing) and say so: ``aborted``, counts of what it wrote that match the rows in each database,
and every record it never wrote reported as unprocessed.
"""

import time
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from ingest import jobs
from ingest.models import IngestJob, IngestJobPayload, IngestJobResultBlock
from orders_svc.models import Order, OrderWriteLedger
from products_svc.models import Product, ProductWriteLedger
from tests import live
from tests.ingest.job_downloads import by_outcome, response_of, results_of
from tests.ingest.test_jobs import SEED, post, wait_for
from users_svc.models import User, UserWriteLedger

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True, reset_sequences=True)

FINAL = ("succeeded", "failed", "cancelled", "aborted")
NOT_PROCESSED = "Not processed: the job was aborted before this record was written. Send it again."


def batch(users=300, products=120, orders=60):
    """Records with their own ids (so an unprocessed one's result names it)."""
    return {
        "users": [{"id": i, "name": f"U{i}", "email": "u@x.org"} for i in range(1, users + 1)],
        "products": [{"id": 1000 + i, "name": f"P{i}", "price": 5} for i in range(1, products + 1)],
        "orders": [
            {"id": i, "user_id": i, "product_id": 1000 + i, "quantity": 1}
            for i in range(1, orders + 1)
        ],
    }


def poll(check, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.05)


def ledger_rows() -> int:
    return sum(m.objects.count() for m in (UserWriteLedger, ProductWriteLedger, OrderWriteLedger))


def _running(job: dict) -> bool:
    assert job["state"] not in FINAL, f"the job ended before the abort: {job}"
    return job["state"] == "running"


def abort_while_products_wait(api, query: str, body: dict, *, users_first: int) -> dict:
    """Submit ``body`` as a job while the products database is locked, wait until it runs (and
    has committed ``users_first`` users), abort it, release the lock; the finished job."""
    with live.products_write_lock():
        submitted = post(api, body, query)
        assert submitted.status_code == 202, submitted.content
        url = submitted.json()["url"]
        poll(lambda: _running(api.get(url).json()), "the job running")
        poll(lambda: User.objects.count() == users_first, f"{users_first} users committed")
        response = api.post(url + "abort/")
        assert response.status_code == 202, (response.content, api.get(url).json()["error"])
        assert response.json()["state"] == "running"
        assert response.json()["abort_requested_at"] is not None
    return wait_for(api, url, states=FINAL)


def assert_aborted_as_the_rows_say(api, job: dict, received: dict[str, int]) -> dict:
    """The job's counts are what each database holds, and every record has one result."""
    assert job["state"] == "aborted", job
    assert job["error"] == ""
    counts = job["counts"]
    stored = {"users": User, "products": Product, "orders": Order}
    for name, model in stored.items():
        count = counts[name]
        assert count["received"] == received[name]
        assert count["inserted"] + count["updated"] == model.objects.count(), name
        total = sum(count[k] for k in ("inserted", "updated", "deleted", "skipped", "unprocessed"))
        assert total == received[name]
    unprocessed = counts["total"]["unprocessed"]
    assert unprocessed > 0
    assert job["processed"] == job["total"] - unprocessed
    assert job["progress"] < 1
    results = results_of(api, job)
    assert [(r["type"], r["index"]) for r in results] == [
        (name, i) for name in ("users", "products", "orders") for i in range(received[name])
    ]
    assert len(by_outcome(results)["unprocessed"]) == unprocessed
    assert ledger_rows() == 0
    assert not IngestJobPayload.objects.exists()
    return counts


def test_a_running_job_stops_at_its_next_chunk_and_keeps_what_it_committed(api, settings):
    settings.INGEST_CHUNK_SIZE = 50
    job = abort_while_products_wait(api, "?async=true", batch(), users_first=300)
    counts = assert_aborted_as_the_rows_say(api, job, {"users": 300, "products": 120, "orders": 60})
    assert counts["users"]["inserted"] == 300  # committed before the abort: kept
    # The products chunk that waited for the lock may have been under way (then it is kept);
    # the chunks after it were not written.
    assert counts["products"]["inserted"] in (0, 50, 100)
    assert counts["products"]["unprocessed"] == 120 - counts["products"]["inserted"]
    # The orders, one transaction checked after the users and products, were rolled back.
    assert counts["orders"]["unprocessed"] == 60
    assert not Order.objects.exists()
    unprocessed = results_of(api, job, "?outcome=unprocessed")
    assert unprocessed[-1] == {
        "type": "orders",
        "index": 59,
        "id": 60,
        "action": "insert",
        "outcome": "unprocessed",
        "reasons": {"non_field_errors": [NOT_PROCESSED]},
    }
    assert unprocessed[0]["type"] == "products"
    assert unprocessed[0]["id"] == 1001 + counts["products"]["inserted"]
    # The synchronous body shows them as skipped, with that reason.
    body = response_of(api, job)
    assert body["committed"] is True
    assert body["orders"]["skipped"] == 60
    assert body["orders"]["skipped_groups"][0]["reasons"] == {"non_field_errors": [NOT_PROCESSED]}
    assert body["detail"].startswith("The job was aborted: ")


def test_a_running_batch_with_actions_stops_at_its_next_chunk(api, settings):
    settings.INGEST_CHUNK_SIZE = 50
    job = abort_while_products_wait(api, "?async=true&action=upsert", batch(), users_first=300)
    counts = assert_aborted_as_the_rows_say(api, job, {"users": 300, "products": 120, "orders": 60})
    assert counts["users"]["inserted"] == 300
    assert counts["products"]["inserted"] in (0, 50)
    assert counts["orders"]["unprocessed"] == 60  # phase 3 came after the abort
    unprocessed = results_of(api, job, "?outcome=unprocessed&type=orders")
    assert {(r["action"], r["reasons"]["non_field_errors"][0]) for r in unprocessed} == {
        ("upsert", NOT_PROCESSED)
    }


def test_an_aborted_atomic_job_keeps_nothing(api, settings):
    # Every record valid: an invalid one would have the batch refused by its checks (they read
    # the products, which the lock lets through on PostgreSQL) before the abort is asked for.
    settings.INGEST_CHUNK_SIZE = 50
    job = abort_while_products_wait(api, "?async=true&atomic=true", batch(users=100), users_first=0)
    assert job["state"] == "aborted"
    counts = job["counts"]
    assert counts["total"]["inserted"] == counts["total"]["skipped"] == 0
    assert counts["total"]["unprocessed"] == 100 + 120 + 60
    assert (User.objects.count(), Product.objects.count(), Order.objects.count()) == (0, 0, 0)
    assert ledger_rows() == 0
    unprocessed = results_of(api, job, "?outcome=unprocessed")[0]
    assert unprocessed["reasons"]["non_field_errors"][0].startswith(
        "Not written: the job was aborted, and with atomic=true nothing of the batch is kept."
    )
    assert response_of(api, job)["committed"] is False


def test_aborting_a_queued_job_cancels_it(api, monkeypatch):
    monkeypatch.setattr(jobs, "dispatch", lambda job_id: None)
    job = post(api, SEED).json()
    response = api.post(job["url"] + "abort/")
    assert response.status_code == 200
    assert response.json()["state"] == "cancelled"
    assert not IngestJobPayload.objects.exists()
    jobs.run_job(uuid.UUID(job["id"]))  # the broker delivers it anyway: it does not run
    assert not User.objects.exists()
    again = api.post(job["url"] + "abort/")
    assert again.status_code == 409
    assert again.json()["detail"] == (
        f"Job {job['id']} is already cancelled; only a queued or running job can be aborted."
    )


def test_aborting_a_running_job_twice_is_one_request(api, monkeypatch):
    monkeypatch.setattr(jobs, "dispatch", lambda job_id: None)
    job = post(api, SEED).json()
    IngestJob.objects.filter(id=job["id"]).update(state="running", heartbeat_at=timezone.now())
    first = api.post(job["url"] + "abort/")
    again = api.post(job["url"] + "abort/")
    assert first.status_code == again.status_code == 202
    assert first.json()["abort_requested_at"] is not None
    assert again.json() == first.json()


def test_aborting_a_finished_job_is_a_409(api):
    job = wait_for(api, post(api, SEED).json()["url"])
    response = api.post(job["url"] + "abort/")
    assert response.status_code == 409
    assert response.json() == {
        "detail": f"Job {job['id']} has already succeeded; only a queued or running job can be "
        "aborted.",
        "code": "conflict",
    }
    assert api.get(job["url"]).json() == job


def test_a_job_whose_worker_died_after_an_abort_ends_aborted_and_never_runs_again(api, monkeypatch):
    monkeypatch.setattr(jobs, "dispatch", lambda job_id: None)
    job_id = uuid.UUID(post(api, SEED).json()["id"])
    IngestJob.objects.filter(id=job_id).update(
        state="running",
        attempts=1,
        heartbeat_at=timezone.now() - timedelta(hours=1),
        abort_requested_at=timezone.now(),
    )
    jobs.run_job(job_id)  # a redelivery: an aborted job's run is not started again
    assert not User.objects.exists()
    monkeypatch.setattr(jobs, "dispatch", jobs.run_job)
    job = api.get(f"/ingest/jobs/{job_id}/").json()  # looking at jobs reaps dead ones
    assert job["state"] == "aborted"
    assert job["error"].startswith("The worker running this job stopped answering after the abort")
    assert job["links"]["results"] is None
    response = api.get(f"/ingest/jobs/{job_id}/results/")
    assert (response.status_code, response.json()["code"]) == (409, "no_results")
    assert "has aborted without per-record results" in response.json()["detail"]
    assert not User.objects.exists()
    assert not IngestJobPayload.objects.exists()


# --- delete ------------------------------------------------------------------------------------


def test_a_finished_job_is_deleted_with_its_results(api):
    job = wait_for(api, post(api, SEED).json()["url"])
    assert IngestJobResultBlock.objects.filter(job_id=job["id"]).exists()
    response = api.delete(job["url"])
    assert response.status_code == 204
    assert response.content == b""
    assert api.get(job["url"]).status_code == 404
    assert api.get(job["url"] + "results/").status_code == 404
    assert not IngestJob.objects.exists()
    assert not IngestJobResultBlock.objects.exists()
    assert User.objects.count() == 9  # the records stay: only the job goes
    assert api.delete(job["url"]).status_code == 404


def test_a_queued_or_running_job_cannot_be_deleted(api, monkeypatch):
    monkeypatch.setattr(jobs, "dispatch", lambda job_id: None)
    job = post(api, SEED).json()
    for state in ("queued", "running"):
        IngestJob.objects.filter(id=job["id"]).update(state=state, heartbeat_at=timezone.now())
        response = api.delete(job["url"])
        assert response.status_code == 409
        assert response.json()["detail"] == (
            f"Job {job['id']} is {state}; abort it first (POST its abort/), then delete it."
        )
    assert IngestJob.objects.filter(id=job["id"]).exists()
    assert IngestJobPayload.objects.exists()


def test_jobs_are_listed_by_state(api, monkeypatch):
    done = wait_for(api, post(api, SEED).json()["url"])
    monkeypatch.setattr(jobs, "dispatch", lambda job_id: None)
    queued = post(api, SEED).json()
    cancelled = post(api, SEED).json()
    api.post(cancelled["url"] + "abort/")

    def listed(state):
        response = api.get(f"/ingest/jobs/?state={state}")
        assert response.status_code == 200, response.content
        return [job["id"] for job in response.json()["results"]]

    assert listed("succeeded") == [done["id"]]
    assert listed("queued") == [queued["id"]]
    assert listed("cancelled") == [cancelled["id"]]
    assert listed("running") == listed("aborted") == listed("failed") == []
    response = api.get("/ingest/jobs/?state=done")
    assert response.status_code == 400
    assert response.json() == {
        "state": [
            "Must be one of queued, running, succeeded, failed, cancelled, aborted, not 'done'."
        ]
    }
    assert api.get("/ingest/jobs/?state=queued&state=running").status_code == 400
