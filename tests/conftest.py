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


@pytest.fixture
def api_token(django_db_blocker) -> str:
    """The key of an API token for a client named "tests" (allowed to write)."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    client, _ = get_user_model().objects.get_or_create(username="tests")
    return Token.objects.get_or_create(user=client)[0].key


@pytest.fixture
def api(api_token) -> APIClient:
    """A DRF test client that sends JSON and a valid API token."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token}")
    return client


@pytest.fixture
def anonymous_api() -> APIClient:
    """A DRF test client without a token."""
    return APIClient()
