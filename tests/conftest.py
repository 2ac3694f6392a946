"""Fixtures shared by the whole suite.

Tests run against real database files (see config.settings.test): four SQLite files by default,
or four PostgreSQL databases when the ``*_DATABASE_URL`` variables point there.
"""

import pytest
from django.conf import settings
from rest_framework.test import APIClient

ALL_DATABASES = "__all__"


def pytest_configure(config) -> None:
    # A test database file left by a killed run may have a stale -wal file beside it, which
    # SQLite would replay into the new, empty database. Start from nothing.
    test_dir = getattr(settings, "TEST_DATA_DIR", None)
    if test_dir is not None:
        for leftover in test_dir.glob("test_*.db*"):
            leftover.unlink()


@pytest.fixture(autouse=True)
def streamed_responses_closed(monkeypatch):
    """Close every streamed response a test got, at its end, as a WSGI server always does.

    Django's test client closes a streamed response only once a test has read it whole; an
    export holds one of its process's slots (``common.http.export_slots``) until the close, so
    the slots of exports a test only looked at would run out for the tests after it.
    """
    from django.test.client import ClientHandler

    streamed = []
    handle = ClientHandler.__call__

    def call(self, environ):
        response = handle(self, environ)
        if response.streaming:
            streamed.append(response)
        return response

    monkeypatch.setattr(ClientHandler, "__call__", call)
    yield
    for response in streamed:
        close_as_a_server(response)


def close_as_a_server(response) -> None:
    """``response.close()``, as a WSGI server calls it, without closing the test's database
    connections (which the close's ``request_finished`` would, as the test client knows)."""
    from django.core.signals import request_finished
    from django.db import close_old_connections

    request_finished.disconnect(close_old_connections)
    try:
        response.close()
    finally:
        request_finished.connect(close_old_connections)


def make_api_key(client_name: str) -> str:
    """A new API key (the clear text, as a client would hold it) for the client ``client_name``."""
    from common.api_keys import api_key_create

    return api_key_create(client_name=client_name).key


def client_with(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


@pytest.fixture
def api_token(django_db_blocker) -> str:
    """An API key of a client named "tests" (allowed to write)."""
    return make_api_key("tests")


@pytest.fixture
def other_api_token(django_db_blocker) -> str:
    """An API key of another client, "other-tests": for what one client must not see of
    another's."""
    return make_api_key("other-tests")


@pytest.fixture
def api(api_token) -> APIClient:
    """A DRF test client that sends JSON and a valid API token."""
    return client_with(api_token)


@pytest.fixture
def other_api(other_api_token) -> APIClient:
    """A DRF test client with the API key of another client ("other-tests")."""
    return client_with(other_api_token)


@pytest.fixture
def fresh_throttles() -> None:
    """Throttle counts start from zero (they live in the cache, which outlives a test)."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def anonymous_api() -> APIClient:
    """A DRF test client without a token."""
    return APIClient()


@pytest.fixture
def small_disk():
    """A 4 MiB tmpfs, unmounted afterwards; the test is skipped where it cannot be mounted."""
    from tests.ingest.disks import mount_small_disk, unmount

    directory, why_not = mount_small_disk()
    if directory is None:
        pytest.skip(f"cannot mount a tmpfs here: {why_not}")
    try:
        yield directory
    finally:
        unmount(directory)


#: The service tables whose ids the databases assign (each in the database of the same name).
ID_TABLES = ("users", "products", "orders")


@pytest.fixture
def id_counters_restored():
    """Each service table's id counter is set back after the test to what it was before.

    For tests that use up ids (a record with id 2**63-1): a PostgreSQL sequence is not rolled
    back with the test's transaction, nor reset when a transactional test empties the tables,
    and neither is SQLite's ``sqlite_sequence`` then; every later test would find no id left.
    """
    saved = {table: _id_counter(table) for table in ID_TABLES}
    yield
    for table in ID_TABLES:
        _set_id_counter(table, saved[table])


def _id_counter(table: str):
    from django.db import connections

    connection = connections[table]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
            sequence = cursor.fetchone()[0]
            cursor.execute(f"SELECT last_value, is_called FROM {sequence}")
            return sequence, *cursor.fetchone()
        cursor.execute("SELECT seq FROM sqlite_sequence WHERE name = %s", [table])
        found = cursor.fetchone()
        return found[0] if found else None


def _set_id_counter(table: str, saved) -> None:
    from django.db import connections

    connection = connections[table]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT setval(%s, %s, %s)", list(saved))
        elif saved is None:
            cursor.execute("DELETE FROM sqlite_sequence WHERE name = %s", [table])
        else:
            cursor.execute("UPDATE sqlite_sequence SET seq = %s WHERE name = %s", [saved, table])
