"""Idempotency-Key after an unexpected error: the key is released, so the retry runs.

A request under a key claims it while it runs (a second one meanwhile gets a 409). If the
request dies of an error nobody planned for (a bug, a dropped connection: a 500), it stored no
response to replay, so the key must not stay claimed: the client's retry, same key and body,
must run the batch and write it, not be told "still running" or be replayed an error.
"""

import json

import pytest
from rest_framework.test import APIClient

from ingest import pipeline
from orders_svc.models import Order
from products_svc.models import Product
from users_svc.models import User

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True)

BATCH = {"users": [{"id": 1, "name": "Alice", "email": "alice@example.com"}]}


@pytest.fixture
def server_api(api_token) -> APIClient:
    """A client that gets the 500 a real server would send instead of the exception."""
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token}")
    return client


def _post(client, key: str, query: str = ""):
    return client.generic(
        "POST",
        f"/ingest/{query}",
        json.dumps(BATCH),
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY=key,
    )


@pytest.fixture
def fails_once(monkeypatch):
    """The pipeline raises an unexpected error on its first call, then works."""
    real, calls = pipeline.ingest, []

    def ingest(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("an unexpected bug")
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "ingest", ingest)
    return calls


def test_a_retry_after_an_unexpected_error_runs_and_writes(server_api, fails_once):
    first = _post(server_api, "fault-1")
    assert first.status_code == 500
    assert not User.objects.exists()

    retry = _post(server_api, "fault-1")

    assert retry.status_code == 200, retry.content
    assert "Idempotent-Replayed" not in retry
    assert retry.json()["users"]["inserted_ids"] == [1]
    assert list(User.objects.values_list("id", "email")) == [(1, "alice@example.com")]
    assert not Product.objects.exists()
    assert not Order.objects.exists()
    assert len(fails_once) == 2  # the retry really ran the pipeline

    # ...and from now on the key replays that success.
    again = _post(server_api, "fault-1")
    assert again.status_code == 200
    assert again["Idempotent-Replayed"] == "true"
    assert again.content == retry.content
    assert User.objects.count() == 1


def test_the_error_reaches_the_server_and_still_releases_the_key(api, fails_once):
    # The plain test client re-raises what the view raised: nothing swallowed it.
    with pytest.raises(RuntimeError, match="an unexpected bug"):
        _post(api, "fault-2")

    retry = _post(api, "fault-2")

    assert retry.status_code == 200
    assert "Idempotent-Replayed" not in retry
    assert User.objects.count() == 1


def test_a_dry_run_that_failed_unexpectedly_can_be_retried_too(server_api, fails_once):
    assert _post(server_api, "fault-3", "?dry_run=true").status_code == 500

    retry = _post(server_api, "fault-3", "?dry_run=true")

    assert retry.status_code == 200
    assert retry.json()["users"]["valid"] == 1
    assert not User.objects.exists()  # a dry run writes nothing


def test_a_ledger_that_cannot_be_cleared_after_the_run_leaves_its_answer_alone(
    server_api, monkeypatch
):
    # The run is over and answered when its write ledger is cleared in every service's
    # database; one of them gone meanwhile (the products server died mid-run) used to turn the
    # answer for the users written into a 503 that said nothing of them.
    from django.db import OperationalError

    from products_svc import services as product_services
    from users_svc.models import UserWriteLedger

    def gone(key):
        raise OperationalError("connection to server failed: Connection refused")

    monkeypatch.setattr(product_services, "products_forget_ledger", gone)
    response = _post(server_api, "key-ledger")
    assert response.status_code == 200, response.content
    assert response.json()["users"]["inserted_ids"] == [1]
    assert not UserWriteLedger.objects.exists()  # the other services' rows are cleared
    assert _post(server_api, "key-ledger").json() == response.json()  # replayed, not re-run
