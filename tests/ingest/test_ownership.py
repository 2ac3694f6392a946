"""Every client sees only its own: ingest jobs and Idempotency-Keys belong to the client that
sent them. Another client's key, or no key, finds nothing of them (404, never listed), and the
same Idempotency-Key from another client is a request of its own."""

import json
import uuid

import pytest
from django.contrib.auth import get_user_model

from ingest import jobs
from ingest.models import IdempotencyKey, IngestJob
from users_svc.models import User

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True, reset_sequences=True)

BATCH = {"users": [{"name": "A", "email": "a@example.com"}, {"name": "B", "email": "b@x.org"}]}


def _ingest(client, body=BATCH, query="", **headers):
    return client.generic(
        "POST", f"/ingest/{query}", json.dumps(body), content_type="application/json", **headers
    )


@pytest.fixture
def queued_job(api, monkeypatch) -> dict:
    """A job of the client "tests", left queued (no worker picks it up)."""
    monkeypatch.setattr(jobs, "dispatch", lambda job_id: None)
    response = _ingest(api, query="?async=true")
    assert response.status_code == 202
    return response.json()


def _account_pk(username: str) -> str:
    return str(get_user_model().objects.get(username=username).pk)


def test_a_job_belongs_to_the_client_that_submitted_it(api, queued_job):
    job = IngestJob.objects.get(pk=queued_job["id"])
    assert job.owner == _account_pk("tests")
    assert api.get(queued_job["url"]).status_code == 200
    assert [j["id"] for j in api.get("/ingest/jobs/").json()["results"]] == [queued_job["id"]]


def test_another_client_cannot_see_read_or_cancel_a_job(other_api, queued_job):
    assert other_api.get(queued_job["url"]).status_code == 404
    cancel = other_api.post(queued_job["url"] + "cancel/")
    assert cancel.status_code == 404
    assert IngestJob.objects.get(pk=queued_job["id"]).state == "queued"
    listed = other_api.get("/ingest/jobs/").json()
    assert (listed["count"], listed["results"]) == (0, [])


def test_a_reader_without_a_key_cannot_list_or_read_jobs(anonymous_api, queued_job):
    listing = anonymous_api.get("/ingest/jobs/")
    assert listing.status_code == 401
    assert "Jobs belong to the client that created them" in listing.json()["detail"]
    assert listing["WWW-Authenticate"] == "Token"
    assert anonymous_api.get(queued_job["url"]).status_code == 404
    assert anonymous_api.post(queued_job["url"] + "cancel/").status_code == 401
    assert IngestJob.objects.get(pk=queued_job["id"]).state == "queued"
    # Other reads stay open.
    assert anonymous_api.get("/users/").status_code == 200


def test_a_job_made_before_owners_were_recorded_is_shown_to_nobody(api, anonymous_api):
    orphan = IngestJob.objects.create(chunk_size=10)
    assert api.get(f"/ingest/jobs/{orphan.id}/").status_code == 404
    assert anonymous_api.get(f"/ingest/jobs/{orphan.id}/").status_code == 404
    assert api.get("/ingest/jobs/").json()["count"] == 0


def test_the_admin_shows_every_clients_jobs(client, api, other_api, monkeypatch):
    monkeypatch.setattr(jobs, "dispatch", lambda job_id: None)
    ids = [_ingest(c, query="?async=true").json()["id"] for c in (api, other_api)]
    admin = get_user_model().objects.create_superuser("admin", "admin@example.com", "pw-admin-1")
    client.force_login(admin)
    page = client.get("/admin/ingest/ingestjob/")
    assert page.status_code == 200
    for job_id in ids:
        assert job_id.encode() in page.content
    assert client.get(f"/admin/ingest/ingestjob/{ids[1]}/change/").status_code == 200


def test_the_same_idempotency_key_from_another_client_is_a_request_of_its_own(api, other_api):
    key = str(uuid.uuid4())
    first = _ingest(api, HTTP_IDEMPOTENCY_KEY=key)
    assert first.status_code == 200
    assert User.objects.count() == 2
    second = _ingest(other_api, HTTP_IDEMPOTENCY_KEY=key)
    assert second.status_code == 200
    assert "Idempotent-Replayed" not in second
    assert second.json()["users"]["inserted_ids"] == [3, 4]
    assert User.objects.count() == 4  # written again: not a replay of the first client's
    owners = set(IdempotencyKey.objects.filter(key=key).values_list("owner", flat=True))
    assert owners == {_account_pk("tests"), _account_pk("other-tests")}
    # Each client's own retry is still a replay of its own response.
    replay = _ingest(other_api, HTTP_IDEMPOTENCY_KEY=key)
    assert replay["Idempotent-Replayed"] == "true"
    assert replay.json() == second.json()
    assert User.objects.count() == 4


def test_a_key_another_client_used_with_another_body_is_free_for_this_client(api, other_api):
    key = str(uuid.uuid4())
    assert _ingest(api, HTTP_IDEMPOTENCY_KEY=key).status_code == 200
    mine = {"users": [{"name": "C", "email": "c@example.com"}]}
    response = _ingest(other_api, mine, HTTP_IDEMPOTENCY_KEY=key)
    assert response.status_code == 200
    assert "Idempotent-Replayed" not in response
    assert User.objects.filter(name="C").count() == 1
    assert User.objects.count() == 3


def test_what_another_clients_dead_request_left_under_the_same_key_is_not_reused(
    api, other_api, monkeypatch
):
    # The first client's request commits its chunks and dies before it can tidy up: its
    # write ledger (kept so that its own retry does not write twice) stays behind.
    from ingest import pipeline

    monkeypatch.setattr(pipeline, "forget_ledger", lambda key: None)
    key = str(uuid.uuid4())
    assert _ingest(api, HTTP_IDEMPOTENCY_KEY=key).status_code == 200
    response = _ingest(other_api, HTTP_IDEMPOTENCY_KEY=key)
    assert response.status_code == 200
    assert response.json()["users"]["inserted_ids"] == [3, 4]
    assert User.objects.count() == 4


@pytest.mark.parametrize(
    "query", ["?status=running", "?page=1&page=2", "?owner=someone-else", "?page_sise=5"]
)
def test_the_jobs_list_refuses_unknown_and_repeated_parameters(api, query):
    response = api.get(f"/ingest/jobs/{query}")
    assert response.status_code == 400, response.content
    name = query[1:].split("=")[0]
    assert name in response.json()


@pytest.fixture
def finished_job(api) -> dict:
    """A finished job of the client "tests", with results."""
    from tests.ingest.test_jobs import wait_for

    response = _ingest(api, query="?async=true")
    assert response.status_code == 202
    job = wait_for(api, response.json()["url"])
    assert job["links"]["results"]
    return job


def test_another_client_finds_none_of_a_jobs_results_nor_can_abort_or_delete_it(
    other_api, finished_job, queued_job
):
    for url in (finished_job["links"]["results"], finished_job["links"]["response"]):
        response = other_api.get(url)
        assert response.status_code == 404
        assert finished_job["id"] not in response.content.decode()
    assert other_api.get(finished_job["links"]["skipped"]).status_code == 404
    assert other_api.delete(finished_job["url"]).status_code == 404
    assert other_api.post(queued_job["url"] + "abort/").status_code == 404
    assert IngestJob.objects.get(pk=finished_job["id"]).state == "succeeded"
    assert IngestJob.objects.get(pk=queued_job["id"]).state == "queued"
    assert other_api.get("/ingest/jobs/?state=succeeded").json()["count"] == 0


def test_a_reader_without_a_key_finds_no_results_and_cannot_abort_or_delete(
    anonymous_api, finished_job, queued_job
):
    assert anonymous_api.get(finished_job["links"]["results"]).status_code == 404
    assert anonymous_api.get(finished_job["links"]["response"]).status_code == 404
    # Writes without a key are a 401 before any job is looked up, as for cancel/.
    assert anonymous_api.delete(finished_job["url"]).status_code == 401
    assert anonymous_api.post(queued_job["url"] + "abort/").status_code == 401
    assert IngestJob.objects.filter(pk=finished_job["id"]).exists()
    assert IngestJob.objects.get(pk=queued_job["id"]).state == "queued"
