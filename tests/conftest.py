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
