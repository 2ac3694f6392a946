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
def api() -> APIClient:
    """A DRF test client that sends JSON."""
    return APIClient()
