"""API keys: only a hash is stored, keys expire and are revoked, and the plaintext tokens of
before are migrated into keys that keep working."""

import secrets
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connections
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone
from rest_framework.test import APIClient

from common.models import ApiKey
from users_svc.models import User

pytestmark = [
    pytest.mark.django_db(databases="__all__"),
    pytest.mark.usefixtures("fresh_throttles"),
]


def _create(*args: str) -> str:
    out, err = StringIO(), StringIO()
    call_command("create_api_token", *args, stdout=out, stderr=err)
    return out.getvalue().strip()


def _revoke(what: str) -> str:
    out = StringIO()
    call_command("revoke_api_token", what, stdout=out)
    return out.getvalue()


def _client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def _write(client: APIClient):
    return client.post("/users/", {"name": "A", "email": "a@example.com"}, format="json")


def _default_database_text() -> str:
    """Every value of every row of every table of the default database, as text."""
    connection = connections["default"]
    values = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        value = bytes(value).decode("latin-1")
                    values.append(str(value))
    return "\n".join(values)


def test_only_a_hash_of_the_key_is_stored_anywhere_in_the_default_database():
    key = _create("warehouse")
    assert _write(_client(key)).status_code == 201  # used once, so last_used_at is written
    prefix, _, secret = key.partition(".")
    stored = _default_database_text()
    assert prefix in stored  # the scan does see the key's row
    assert key not in stored
    assert secret not in stored
    api_key = ApiKey.objects.get(prefix=prefix)
    assert api_key.hashed_key.startswith("sha512$$")
    assert api_key.client.username == "warehouse"
    assert not api_key.client.has_usable_password()
    assert api_key.last_used_at is not None


def test_the_key_is_printed_once_and_the_command_says_so():
    out, err = StringIO(), StringIO()
    call_command("create_api_token", "printer", "--key-name", "laptop", stdout=out, stderr=err)
    key = out.getvalue().strip()
    assert "\n" not in key  # stdout is the key alone, for scripts
    assert "cannot be shown again" in err.getvalue()
    assert ApiKey.objects.get(prefix=key.split(".")[0]).name == "laptop"


def test_a_revoked_key_is_a_401_that_says_so_and_writes_nothing():
    key = _create("importer")
    other = _create("importer", "--key-name", "second")
    assert _write(_client(key)).status_code == 201
    output = _revoke(key.split(".")[0])
    assert f"Revoked key {key.split('.')[0]}" in output
    assert "'importer'" in output
    response = _write(_client(key))
    assert response.status_code == 401
    assert "was revoked" in response.json()["detail"]
    assert _client(key).get("/users/").status_code == 401
    assert User.objects.count() == 1
    assert _write(_client(other)).status_code == 201  # the client's other key still works


def test_revoking_a_client_by_name_revokes_all_its_keys():
    keys = [_create("batcher"), _create("batcher")]
    untouched = _create("someone-else")
    output = _revoke("batcher")
    assert output.count("Revoked key") == 2
    assert {_client(key).get("/users/").status_code for key in keys} == {401}
    assert _client(untouched).get("/users/").status_code == 200
    assert "Nothing to revoke" in _revoke("batcher")
    with pytest.raises(CommandError, match="no client that name"):
        _revoke("nobody")


def test_an_expired_key_is_a_401_that_says_so():
    key = _create("temp", "--expires", "1")
    api_key = ApiKey.objects.get(prefix=key.split(".")[0])
    assert timedelta(hours=23) < api_key.expiry_date - timezone.now() <= timedelta(days=1)
    assert _write(_client(key)).status_code == 201
    ApiKey.objects.filter(pk=api_key.pk).update(expiry_date=timezone.now() - timedelta(seconds=1))
    response = _write(_client(key))
    assert response.status_code == 401
    assert "expired at" in response.json()["detail"]
    assert User.objects.count() == 1


def test_last_use_is_written_at_most_once_a_minute():
    key = _create("busy")
    client = _client(key)
    client.get("/users/")
    first = ApiKey.objects.get(prefix=key.split(".")[0]).last_used_at
    client.get("/users/")
    assert ApiKey.objects.get(prefix=key.split(".")[0]).last_used_at == first
    ApiKey.objects.filter(prefix=key.split(".")[0]).update(
        last_used_at=first - timedelta(minutes=2)
    )
    client.get("/users/")
    assert ApiKey.objects.get(prefix=key.split(".")[0]).last_used_at > first


def test_a_made_up_key_of_any_shape_is_a_401():
    key = _create("real")
    prefix = key.split(".")[0]
    for made_up in (f"{prefix}.{'x' * 32}", secrets.token_hex(20), prefix, "."):
        response = _client(made_up).get("/users/")
        assert response.status_code == 401, made_up
        assert response.json()["detail"] == "Invalid token."


def test_the_admin_lists_keys_with_their_client_and_revokes_them(client):
    key = _create("shop")
    admin = get_user_model().objects.create_superuser("admin", "admin@example.com", "pw-admin-1")
    client.force_login(admin)
    page = client.get("/admin/common/apikey/")
    assert page.status_code == 200
    assert key.split(".")[0].encode() in page.content
    assert b"shop" in page.content
    api_key = ApiKey.objects.get(prefix=key.split(".")[0])
    response = client.post(
        "/admin/common/apikey/",
        {"action": "revoke", "_selected_action": [api_key.pk]},
        follow=True,
    )
    assert b"Revoked 1 API key" in response.content
    assert _client(key).get("/users/").status_code == 401
    # The library's own (unused) key model is not offered beside ours.
    assert client.get("/admin/rest_framework_api_key/apikey/").status_code == 404


# --- The plaintext tokens of before -----------------------------------------------------------


def _make_pre_upgrade_token_table(connection) -> None:
    """DRF's ``authtoken_token`` table as the earlier versions of this service created it."""
    created_type = "timestamp with time zone" if connection.vendor == "postgresql" else "datetime"
    with connection.cursor() as cursor:
        cursor.execute(
            'CREATE TABLE authtoken_token ("key" varchar(40) NOT NULL PRIMARY KEY, '
            f'"created" {created_type} NOT NULL, "user_id" integer NOT NULL UNIQUE)'
        )


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_a_plaintext_token_from_before_is_migrated_to_a_hashed_key_that_keeps_working():
    connection = connections["default"]
    MigrationExecutor(connection).migrate([("common", "0001_api_keys")])
    _make_pre_upgrade_token_table(connection)
    try:
        account = get_user_model().objects.create(username="old-client")
        token = secrets.token_hex(20)  # DRF's format: 40 hex characters
        created = timezone.now() - timedelta(days=300)
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO authtoken_token (key, created, user_id) VALUES (%s, %s, %s)",
                [token, created, account.pk],
            )
        MigrationExecutor(connection).migrate([("common", "0002_legacy_tokens_to_keys")])

        with connection.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM authtoken_token")
            assert cursor.fetchone()[0] == 0  # the plaintext is gone
        assert token not in _default_database_text()
        api_key = ApiKey.objects.get(client=account)
        assert abs(api_key.created - created) < timedelta(seconds=1)
        # The client's token still works, as Token and as Bearer, and acts as the client.
        assert _write(_client(token)).status_code == 201
        bearer = APIClient()
        bearer.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        assert bearer.get("/users/").status_code == 200
        assert ApiKey.objects.get(pk=api_key.pk).last_used_at is not None
        # It is revoked like any other key.
        assert f"Revoked key {api_key.prefix}" in _revoke("old-client")
        assert _client(token).get("/users/").status_code == 401
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE authtoken_token")
        MigrationExecutor(connection).migrate(
            MigrationExecutor(connection).loader.graph.leaf_nodes("common")
        )


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_the_migration_does_nothing_on_a_database_without_the_old_table():
    connection = connections["default"]
    MigrationExecutor(connection).migrate([("common", "0001_api_keys")])
    MigrationExecutor(connection).migrate([("common", "0002_legacy_tokens_to_keys")])
    assert not ApiKey.objects.exists()


def test_a_key_made_in_the_admin_is_shown_once_and_works(client):
    admin = get_user_model().objects.create_superuser("admin", "admin@example.com", "pw-admin-1")
    account = get_user_model().objects.create(username="partner")
    client.force_login(admin)
    response = client.post(
        "/admin/common/apikey/add/", {"name": "partner feed", "client": account.pk}, follow=True
    )
    assert response.status_code == 200
    (shown,) = [str(m) for m in response.context["messages"] if "see it again" in str(m)]
    key = shown.split("is: ")[1].split(". ")[0]
    assert _write(_client(key)).status_code == 201
    assert key not in _default_database_text()
    assert key.encode() not in client.get("/admin/common/apikey/").content


@pytest.mark.parametrize("days", ["1e9", "0", "-1", "36501"])
def test_an_expiry_out_of_range_is_refused_with_a_message(days):
    with pytest.raises(CommandError, match="--expires must be a number of days greater than 0"):
        call_command("create_api_token", "dave", "--expires", days, stdout=StringIO())
