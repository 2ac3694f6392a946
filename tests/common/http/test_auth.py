"""Reads are open, writes need an API token, and writes are rate-limited per token."""

from io import StringIO

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from users_svc.models import User

pytestmark = pytest.mark.django_db(databases="__all__")

WRITES = [
    ("post", "/users/", {"name": "A", "email": "a@example.com"}),
    ("post", "/products/", {"name": "P", "price": 1}),
    ("post", "/orders/", {"user_id": 1, "product_id": 1, "quantity": 1}),
    ("put", "/users/1/", {"name": "A", "email": "a@example.com"}),
    ("patch", "/products/1/", {"price": 2}),
    ("delete", "/orders/1/", None),
    ("post", "/ingest/", {"users": [{"name": "A", "email": "a@example.com"}]}),
]


def _token(name: str, *args: str) -> str:
    out = StringIO()
    call_command("create_api_token", name, *args, stdout=out)
    return out.getvalue().strip()


def _client(token: str | None = None, keyword: str = "Token") -> APIClient:
    client = APIClient()
    if token:
        client.credentials(HTTP_AUTHORIZATION=f"{keyword} {token}")
    return client


@pytest.mark.parametrize("path", ["/users/", "/products/", "/orders/", "/ingest/jobs/", "/"])
def test_reads_are_open(anonymous_api, path):
    assert anonymous_api.get(path).status_code == 200


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
def test_every_write_without_a_token_is_a_401_that_says_how_to_get_one(
    anonymous_api, method, path, body
):
    response = getattr(anonymous_api, method)(path, body, format="json")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert "create_api_token" in response.json()["detail"]
    assert not User.objects.exists()


def test_a_wrong_token_is_a_401_even_for_reads():
    client = _client("not-a-real-token")
    for response in (client.get("/users/"), client.post("/users/", {}, format="json")):
        assert response.status_code == 401
        assert response.json()["detail"] == "Invalid token."


def test_a_token_from_the_command_can_write_as_token_or_bearer():
    token = _token("warehouse")
    assert len(token) == 40
    for keyword in ("Token", "Bearer"):
        response = _client(token, keyword).post(
            "/users/", {"name": keyword, "email": "w@example.com"}, format="json"
        )
        assert response.status_code == 201
    assert User.objects.count() == 2


def test_the_command_prints_the_same_token_again_and_rotates_on_request():
    first = _token("importer")
    assert _token("importer") == first
    rotated = _token("importer", "--rotate")
    assert rotated != first
    assert _client(first).get("/users/").status_code == 401
    assert _client(rotated).get("/users/").status_code == 200


def test_reads_can_be_closed_too(anonymous_api, settings):
    settings.API_READS_REQUIRE_TOKEN = True
    assert anonymous_api.get("/users/").status_code == 401
    assert _client(_token("reader")).get("/users/").status_code == 200


def test_writes_are_throttled_per_token_with_retry_after(settings):
    settings.API_THROTTLE_RATES = {"writes": "2/minute", "ingest": ""}
    first, second = _client(_token("one")), _client(_token("two"))
    statuses = [
        first.post("/users/", {"name": "A", "email": "a@example.com"}, format="json").status_code
        for _ in range(3)
    ]
    assert statuses == [201, 201, 429]
    limited = first.post("/users/", {"name": "A", "email": "a@example.com"}, format="json")
    assert limited.status_code == 429
    assert int(limited["Retry-After"]) > 0
    assert "throttled" in limited.json()["detail"].lower()
    assert first.get("/users/").status_code == 200  # reads are not counted
    assert (
        second.post("/users/", {"name": "B", "email": "b@x.com"}, format="json").status_code == 201
    )


def test_ingest_has_its_own_rate(settings):
    settings.API_THROTTLE_RATES = {"writes": "", "ingest": "1/minute"}
    client = _client(_token("batcher"))
    body = {"users": [{"name": "A", "email": "a@example.com"}]}
    assert client.post("/ingest/?dry_run=true", body, format="json").status_code == 200
    response = client.post("/ingest/?dry_run=true", body, format="json")
    assert response.status_code == 429
    assert response["Retry-After"]
    assert (
        client.post("/users/", {"name": "A", "email": "a@x.com"}, format="json").status_code == 201
    )
