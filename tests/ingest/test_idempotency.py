"""Idempotency-Key: a retried batch never writes twice."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from ingest import idempotency
from ingest.models import IdempotencyKey
from users_svc.models import User

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True, reset_sequences=True)

BATCH = {"users": [{"name": "Alice", "email": "alice@example.com"}]}


def post(api, body, key, query=""):
    return api.generic(
        "POST",
        f"/ingest/{query}",
        json.dumps(body),
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY=key,
    )


def test_same_key_and_body_replays_the_first_response_and_writes_nothing(api):
    first = post(api, BATCH, "key-1")
    second = post(api, BATCH, "key-1")
    assert first.status_code == second.status_code == 200
    assert second.content == first.content
    assert second["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert User.objects.count() == 1


def test_same_key_with_a_different_body_or_query_is_a_422(api):
    post(api, BATCH, "key-2")
    other = post(api, {"users": [{"name": "Bob", "email": "bob@example.com"}]}, "key-2")
    assert other.status_code == 422
    assert "already used with a different request" in other.json()["detail"]
    assert post(api, BATCH, "key-2", "?dry_run=true").status_code == 422
    assert User.objects.count() == 1


def _owner_of_api() -> str:
    """The owner the ``api`` fixture's requests are recorded under (its client's id)."""
    from django.contrib.auth import get_user_model

    return str(get_user_model().objects.get(username="tests").pk)


def test_same_key_while_the_first_request_runs_is_a_409_with_retry_after(api):
    fingerprint = idempotency.request_fingerprint(
        "POST", "/ingest/", "", json.dumps(BATCH).encode()
    )
    # A request of the same client is "running" (keys are per client: tests/ingest/test_ownership).
    assert idempotency.claim("key-3", fingerprint, owner=_owner_of_api()) is None
    response = post(api, BATCH, "key-3")
    assert response.status_code == 409
    assert int(response["Retry-After"]) > 0
    assert "still running" in response.json()["detail"]
    assert not User.objects.exists()


def test_a_key_abandoned_by_a_dead_request_can_be_taken_over(api):
    fingerprint = idempotency.request_fingerprint(
        "POST", "/ingest/", "", json.dumps(BATCH).encode()
    )
    idempotency.claim("key-4", fingerprint, owner=_owner_of_api())
    IdempotencyKey.objects.filter(key="key-4").update(
        locked_until=timezone.now() - timedelta(seconds=1)
    )
    assert post(api, BATCH, "key-4").status_code == 200
    assert User.objects.count() == 1


def test_expired_keys_are_forgotten(api, settings):
    post(api, BATCH, "key-5")
    IdempotencyKey.objects.filter(key="key-5").update(expires_at=timezone.now())
    again = post(api, BATCH, "key-5")
    assert again.status_code == 200
    assert "Idempotent-Replayed" not in again
    assert User.objects.count() == 2


def test_rejected_atomic_batches_are_replayed_too(api):
    bad = {"users": [{"name": "", "email": "x@example.com"}]}
    assert post(api, bad, "key-6", "?atomic=true").status_code == 422
    replay = post(api, bad, "key-6", "?atomic=true")
    assert replay.status_code == 422
    assert replay["Idempotent-Replayed"] == "true"


@pytest.mark.parametrize("key", ["", "has space", "x" * 256, "naïve"])
def test_unusable_keys_are_400s(api, key):
    response = post(api, BATCH, key)
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()
    assert not User.objects.exists()


def test_a_failed_request_releases_its_key(api, monkeypatch):
    from ingest import pipeline

    def explode(*args, **kwargs):
        raise pipeline.WriteFailed("atomic=true: nothing was written; a database failed.")

    monkeypatch.setattr(pipeline, "ingest", explode)
    assert post(api, BATCH, "key-7").status_code == 503
    monkeypatch.undo()
    assert not IdempotencyKey.objects.filter(key="key-7").exists()
    assert post(api, BATCH, "key-7").status_code == 200
    assert User.objects.count() == 1
