"""``manage.py init_db`` prints the seed report's lines and can run again safely."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connections

pytestmark = pytest.mark.django_db(databases="__all__")

SEED_REPORT_LINES = (
    "users database initialized.\nproducts database initialized.\norders database initialized.\n"
)


def test_init_db_prints_what_the_seed_report_shows_and_is_idempotent():
    for _ in range(2):
        out = StringIO()
        call_command("init_db", stdout=out)
        assert out.getvalue() == SEED_REPORT_LINES
    for alias, table in [("users", "users"), ("products", "products"), ("orders", "orders")]:
        assert table in connections[alias].introspection.table_names()


def test_init_db_on_fresh_machine_creates_the_four_files(tmp_path):
    """As a user runs it: a new data folder, the command twice, the files and tables there."""
    import os
    import sqlite3
    import subprocess
    import sys
    from contextlib import closing
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if not k.endswith("_DATABASE_URL")}
    env.update(DATA_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="config.settings.local")
    root = Path(__file__).resolve().parents[2]
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, "manage.py", "init_db"],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        assert result.stdout == SEED_REPORT_LINES
    assert sorted(p.name for p in tmp_path.glob("*.db")) == [
        "default.db",
        "orders.db",
        "products.db",
        "users.db",
    ]
    for name in ("users", "products", "orders"):
        with closing(sqlite3.connect(tmp_path / f"{name}.db")) as raw:
            tables = {
                r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert name in tables
        assert not tables & ({"users", "products", "orders"} - {name})


def test_init_db_is_quiet_with_verbosity_zero():
    out = StringIO()
    call_command("init_db", verbosity=0, stdout=out)
    assert out.getvalue() == ""
