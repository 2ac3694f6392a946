"""``manage.py init_db`` prints the seed report's lines and can run again safely; the files it
creates, and the data folder, are private to the service's user."""

import os
import stat
import subprocess
import sys
from io import StringIO
from pathlib import Path

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


ROOT = Path(__file__).resolve().parents[2]
FILES = ["default.db", "orders.db", "products.db", "users.db"]


def _manage(*args: str, data_dir: Path, umask: int = 0o022) -> subprocess.CompletedProcess:
    """``manage.py`` as a user runs it, on SQLite files in ``data_dir``, with a common umask."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_DATABASE_URL")}
    env.update(DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="config.settings.local")
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        umask=umask,
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_db_creates_a_private_data_folder_and_private_files_whatever_the_umask(tmp_path):
    data = tmp_path / "new" / "data"
    _manage("init_db", data_dir=data)
    assert _mode(data) == 0o700
    assert sorted(p.name for p in data.iterdir()) == FILES
    assert {name: _mode(data / name) for name in FILES} == dict.fromkeys(FILES, 0o600)
    # The service's own connections add the -wal and -shm files: SQLite gives them the mode of
    # the database file.
    script = (
        "from django.db import connections\n"
        "with connections['users'].cursor() as c: c.execute('SELECT count(*) FROM users')\n"
        "import os, pathlib, stat\n"
        "for p in sorted(pathlib.Path(os.environ['DATA_DIR']).glob('users.db*')):\n"
        "    print(p.name, oct(stat.S_IMODE(p.stat().st_mode)))\n"
    )
    listed = _manage("shell", "-v", "0", "-c", script, data_dir=data).stdout.split()
    assert listed == ["users.db", "0o600", "users.db-shm", "0o600", "users.db-wal", "0o600"]


def test_init_db_tightens_database_files_readable_by_others_and_says_so(tmp_path):
    _manage("init_db", "-v", "0", data_dir=tmp_path)
    (tmp_path / "users.db").chmod(0o644)
    (tmp_path / "orders.db").chmod(0o640)
    result = _manage("init_db", "-v", "2", data_dir=tmp_path)
    assert "users.db was readable by others (0644): now 0600." in result.stdout
    assert "orders.db was readable by others (0640): now 0600." in result.stdout
    assert "products.db was readable" not in result.stdout
    assert {name: _mode(tmp_path / name) for name in FILES} == dict.fromkeys(FILES, 0o600)
    assert _manage("init_db", data_dir=tmp_path).stdout == SEED_REPORT_LINES  # quiet at -v 1


def test_an_existing_data_folder_keeps_its_mode(tmp_path):
    tmp_path.chmod(0o755)  # the default DATA_DIR is the project folder: not ours to change
    _manage("init_db", "-v", "0", data_dir=tmp_path)
    assert _mode(tmp_path) == 0o755
    assert _mode(tmp_path / "users.db") == 0o600


REPORT_COLUMNS = {
    "users": ["id", "name", "email"],
    "products": ["id", "name", "price"],
    "orders": ["id", "user_id", "product_id", "quantity"],
}


def test_each_table_keeps_the_reports_columns_and_has_an_index_per_ordering_it_offers():
    """The report's ``SELECT * FROM orders`` prints ``id|user_id|product_id|quantity``: the
    migrations that add the sort indexes must not rebuild a table in another column order. And
    every ordering a list offers has its ``(field, id)`` index, or a deep page would scan."""
    from orders_svc.apis import OrderViewSet
    from products_svc.apis import ProductViewSet
    from users_svc.apis import UserViewSet

    for table, viewset in [
        ("users", UserViewSet),
        ("products", ProductViewSet),
        ("orders", OrderViewSet),
    ]:
        connection = connections[table]
        with connection.cursor() as cursor:
            columns = [
                c.name for c in connection.introspection.get_table_description(cursor, table)
            ]
            constraints = connection.introspection.get_constraints(cursor, table)
        assert columns == REPORT_COLUMNS[table]
        indexed = {tuple(c["columns"]) for c in constraints.values() if c["index"]}
        for field in viewset.ordering_fields:
            if field != "id":
                assert (field, "id") in indexed, (table, field, indexed)


def test_the_benchmarks_raw_baselines_have_the_services_indexes():
    """The raw baselines of ``make bench`` write the same indexes, or the ratios flatter us."""
    from bench.ingest_bench import SORT_INDEXES

    for table in REPORT_COLUMNS:
        connection = connections[table]
        with connection.cursor() as cursor:
            constraints = connection.introspection.get_constraints(cursor, table)
        ours = {
            tuple(c["columns"]) for c in constraints.values() if c["index"] and not c["primary_key"]
        }
        raw = {
            tuple(part.strip() for part in ddl.split("(", 1)[1].rstrip(")").split(","))
            for ddl in SORT_INDEXES[table]
        }
        assert raw == ours
