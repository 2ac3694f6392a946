"""The database probe behind /healthz and the 503s: each database must hold its own table."""

from pathlib import Path

import pytest
from django.db import DatabaseError, connections

from common.ops.health import PROBE_TABLE, explain, probe, probe_all
from tests.test_faults import database_at, database_down

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True)


def test_every_database_answers_with_its_own_table():
    assert [(h.alias, h.ok, h.error) for h in probe_all()] == [
        ("default", True, ""),
        ("users", True, ""),
        ("products", True, ""),
        ("orders", True, ""),
    ]
    for alias, table in PROBE_TABLE.items():
        assert table in connections[alias].introspection.table_names()


@pytest.mark.parametrize(("alias", "other"), [("users", "orders"), ("default", "products")])
def test_a_database_that_answers_but_is_another_services_is_not_ok(alias, other):
    """SELECT 1 would pass: the connection opens and the server (or file) answers."""
    with database_at(alias, connections[other].settings_dict["NAME"]):
        health = probe(alias)
    assert not health.ok
    other_name = connections[other].settings_dict["NAME"]
    if connections[alias].vendor == "sqlite":
        where = f"{Path(other_name).name}: is this the right file?"
    else:
        where = f"the database {other_name}: is this the right database?"
    assert health.error.startswith(f"the {PROBE_TABLE[alias]} table is missing from {where}")
    assert "init_db" in health.error
    assert probe(alias).ok  # and back


def test_a_database_that_is_gone_is_not_ok_and_says_why():
    with database_down("orders"):
        health = probe("orders")
    assert not health.ok
    if connections["orders"].vendor == "sqlite":
        assert health.error.startswith("the database file gone.db does not exist: was it moved")
    else:
        assert 'database "no_such_database_for_the_test" does not exist' in health.error


@pytest.mark.parametrize(
    ("message", "meaning"),
    [
        ("file is not a database: users.db", "users.db is not a SQLite database"),
        ("database disk image is malformed", "users.db is corrupt: restore it from a backup"),
        ("no such table: users", "the users table is missing from users.db: is this the right"),
        ("disk I/O error", "disk I/O error"),
    ],
)
def test_sqlite_errors_are_explained(message, meaning):
    text = explain(DatabaseError(message), table="users", vendor="sqlite", name="users.db")
    assert text.startswith(meaning)
    assert message in text
