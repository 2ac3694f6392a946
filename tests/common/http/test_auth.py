"""Reads are open, writes need an API key, and writes are rate-limited per client."""

from io import StringIO

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from common.models import ApiKey
from users_svc.models import User

pytestmark = [
    pytest.mark.django_db(databases="__all__"),
    pytest.mark.usefixtures("fresh_throttles"),
]

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


# Not /ingest/jobs/: jobs belong to their client (tests/ingest/test_ownership.py).
@pytest.mark.parametrize("path", ["/users/", "/products/", "/orders/", "/"])
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


def test_a_key_from_the_command_can_write_as_token_or_bearer():
    token = _token("warehouse")
    prefix, dot, secret = token.partition(".")
    assert (len(prefix), dot, len(secret)) == (8, ".", 32)
    for keyword in ("Token", "Bearer"):
        response = _client(token, keyword).post(
            "/users/", {"name": keyword, "email": "w@example.com"}, format="json"
        )
        assert response.status_code == 201
    assert User.objects.count() == 2


def test_the_command_makes_another_key_for_the_same_client_and_both_work():
    first = _token("importer")
    second = _token("importer")
    assert second != first
    assert _client(first).get("/users/").status_code == 200
    assert _client(second).get("/users/").status_code == 200
    assert ApiKey.objects.filter(client__username="importer").count() == 2


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


# --- Throttles per address: anonymous reads, failed authentications ---------------------------


def _rotating(client: APIClient, method: str, path: str, n: int, **extra):
    """``n`` requests, each claiming a new address in X-Forwarded-For (which the app must not
    believe: no proxy of ours wrote it)."""
    return [
        getattr(client, method)(path, HTTP_X_FORWARDED_FOR=f"203.0.113.{i}", **extra)
        for i in range(n)
    ]


def test_anonymous_reads_are_throttled_per_address_whatever_x_forwarded_for_says(
    anonymous_api, settings
):
    settings.API_THROTTLE_RATES = {"anon_reads": "3/minute"}
    statuses = [r.status_code for r in _rotating(anonymous_api, "get", "/users/", 4)]
    assert statuses == [200, 200, 200, 429]
    limited = anonymous_api.get("/products/")  # every read counts, on every resource
    assert limited.status_code == 429
    assert 0 < int(limited["Retry-After"]) <= 60
    assert "throttled" in limited.json()["detail"].lower()
    # Another address has its own count; a client with a key is not counted as anonymous.
    assert anonymous_api.get("/users/", REMOTE_ADDR="198.51.100.7").status_code == 200
    assert _client(_token("reader")).get("/users/").status_code == 200


def test_behind_a_trusted_proxy_the_address_it_saw_is_the_one_counted(anonymous_api, settings):
    settings.API_THROTTLE_RATES = {"anon_reads": "1/minute"}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    assert [r.status_code for r in _rotating(anonymous_api, "get", "/users/", 3)] == [200] * 3
    again = anonymous_api.get("/users/", HTTP_X_FORWARDED_FOR="203.0.113.0")
    assert again.status_code == 429


def test_failed_authentications_are_throttled_per_address_even_with_rotating_x_forwarded_for(
    settings,
):
    settings.API_THROTTLE_RATES = {"auth_failures": "3/minute"}
    good = _token("client")
    bad = _client("0123abcd.not-the-secret-of-any-key-at-all")
    statuses = [r.status_code for r in _rotating(bad, "get", "/users/", 4)]
    assert statuses == [401, 401, 401, 429]
    limited = bad.post("/users/", {"name": "A", "email": "a@example.com"}, format="json")
    assert limited.status_code == 429
    assert 0 < int(limited["Retry-After"]) <= 60
    assert "failed authentication" in limited.json()["detail"]
    # From that address even a valid key waits: a right guess must look like a wrong one.
    assert _client(good).get("/users/").status_code == 429
    # Requests without a key are not refused by it, nor are other addresses.
    assert _client().get("/users/").status_code == 200
    assert _client(good).get("/users/", REMOTE_ADDR="198.51.100.7").status_code == 200
    assert not User.objects.exists()


def test_good_keys_do_not_count_as_failures(settings):
    settings.API_THROTTLE_RATES = {"auth_failures": "2/minute"}
    client = _client(_token("client"))
    assert {client.get("/users/").status_code for _ in range(5)} == {200}


# --- Admin logins: django-axes locks an address out after failed passwords --------------------


def test_admin_logins_lock_out_an_address_after_failed_passwords(client, settings):
    settings.AXES_ENABLED = True
    settings.AXES_FAILURE_LIMIT = 3
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_superuser("root", "root@example.com", "right-password-1")
    wrong = {"username": "root", "password": "wrong", "next": "/admin/"}
    statuses = [
        client.post("/admin/login/", wrong, HTTP_X_FORWARDED_FOR=f"203.0.113.{i}").status_code
        for i in range(3)
    ]
    assert statuses == [200, 200, 429]  # the login form again, twice; then locked out
    right = {**wrong, "password": "right-password-1"}
    locked = client.post("/admin/login/", right)  # even the right password, meanwhile
    assert locked.status_code == 429
    assert int(locked["Retry-After"]) == 15 * 60
    assert "Too many failed logins" in locked.content.decode()
    assert "_auth_user_id" not in client.session
    # Another address may still log in.
    other = client.post("/admin/login/", right, REMOTE_ADDR="198.51.100.7")
    assert other.status_code == 302
    assert client.session["_auth_user_id"]
