"""Settings come from the environment, SQLite is set up for concurrency, production fails fast."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connections

from config.env import database_from_env, env_bool, env_int

ROOT = Path(__file__).resolve().parents[2]


def _sqlite_aliases():
    return [
        a for a in ("default", "users", "products", "orders") if connections[a].vendor == "sqlite"
    ]


@pytest.mark.django_db(databases="__all__")
def test_every_sqlite_connection_runs_wal_normal_sync_busy_timeout_and_immediate():
    aliases = _sqlite_aliases()
    if not aliases:
        pytest.skip("no SQLite database configured")
    for alias in aliases:
        connection = connections[alias]
        with connection.cursor() as cursor:
            assert cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert cursor.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
            assert cursor.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
        assert connection.transaction_mode == "IMMEDIATE"
        assert connection.settings_dict["OPTIONS"]["transaction_mode"] == "IMMEDIATE"


def test_database_url_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("USERS_DATABASE_URL", "postgres://svc:pw@db.example:5433/users")
    config = database_from_env(
        "USERS_DATABASE_URL", tmp_path / "users.db", busy_timeout_seconds=5, conn_max_age=60
    )
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert (config["HOST"], config["PORT"], config["NAME"]) == ("db.example", 5433, "users")
    assert "transaction_mode" not in config.get("OPTIONS", {})


def test_sqlite_file_in_data_dir_by_default(monkeypatch, tmp_path):
    monkeypatch.delenv("USERS_DATABASE_URL", raising=False)
    config = database_from_env(
        "USERS_DATABASE_URL", tmp_path / "users.db", busy_timeout_seconds=5, conn_max_age=60
    )
    assert config["ENGINE"] == "common.data.backends.sqlite3"  # Django's, opening files only
    assert config["NAME"] == str(tmp_path / "users.db")
    assert config["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert "journal_mode=WAL" in config["OPTIONS"]["init_command"]
    assert config["OPTIONS"]["timeout"] == 5


def test_bad_values_fail_fast_naming_the_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("ORDERS_DATABASE_URL", "nosuchdb://x/y")
    with pytest.raises(ImproperlyConfigured, match="ORDERS_DATABASE_URL"):
        database_from_env(
            "ORDERS_DATABASE_URL", tmp_path / "o.db", busy_timeout_seconds=1, conn_max_age=0
        )
    monkeypatch.setenv("SOME_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="SOME_FLAG"):
        env_bool("SOME_FLAG", False)
    monkeypatch.setenv("SOME_COUNT", "ten")
    with pytest.raises(ImproperlyConfigured, match="SOME_COUNT"):
        env_int("SOME_COUNT", 1)


def _run_with_production_settings(args: list[str], **env: str) -> subprocess.CompletedProcess:
    # SQLite files in the test's DATA_DIR, whatever databases the suite runs on.
    clean_env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SECRET_KEY", "ALLOWED_HOSTS") and not k.endswith("_DATABASE_URL")
    }
    clean_env.update(DJANGO_SETTINGS_MODULE="config.settings.production", **env)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=clean_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_refuses_to_start_without_secret_key(tmp_path):
    result = _run_with_production_settings(
        ["check"], ALLOWED_HOSTS="api.example.com", DATA_DIR=str(tmp_path)
    )
    assert result.returncode != 0
    assert "Set the SECRET_KEY environment variable" in result.stderr


def test_production_refuses_to_start_without_allowed_hosts(tmp_path):
    result = _run_with_production_settings(["check"], SECRET_KEY="x" * 60, DATA_DIR=str(tmp_path))
    assert result.returncode != 0
    assert "Set the ALLOWED_HOSTS environment variable" in result.stderr


PRODUCTION = {"SECRET_KEY": "k3!9vZ" * 10, "ALLOWED_HOSTS": "api.example.com"}


@pytest.fixture(scope="module")
def collected_static(tmp_path_factory) -> Path:
    """A STATIC_ROOT filled by collectstatic, which the static files check must not block."""
    static_root = tmp_path_factory.mktemp("static")
    result = _run_with_production_settings(
        ["collectstatic", "--noinput", "-v", "0"],
        **PRODUCTION,
        DATA_DIR=str(tmp_path_factory.mktemp("data")),
        STATIC_ROOT=str(static_root),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (static_root / "staticfiles.json").exists()
    return static_root


def test_production_check_deploy_is_clean(tmp_path, collected_static):
    result = _run_with_production_settings(
        ["check", "--deploy", "--fail-level", "WARNING"],
        **PRODUCTION,
        DATA_DIR=str(tmp_path),
        STATIC_ROOT=str(collected_static),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_check_deploy_says_when_collectstatic_was_not_run(tmp_path):
    result = _run_with_production_settings(
        ["check", "--deploy"], **PRODUCTION, DATA_DIR=str(tmp_path), STATIC_ROOT=str(tmp_path)
    )
    assert result.returncode != 0
    assert "(common.E001) The static files manifest" in result.stderr
    assert f"{tmp_path / 'staticfiles.json'} is missing" in result.stderr
    assert "Run `python manage.py collectstatic --noinput`" in result.stderr


def test_production_check_deploy_says_when_the_manifest_is_older_than_the_code(
    tmp_path, collected_static
):
    static_root = tmp_path / "static"
    shutil.copytree(collected_static, static_root)
    manifest = json.loads((static_root / "staticfiles.json").read_text())
    del manifest["paths"]["admin/css/base.css"]  # as if collected before that file existed
    (static_root / "staticfiles.json").write_text(json.dumps(manifest))
    result = _run_with_production_settings(
        ["check", "--deploy"], **PRODUCTION, DATA_DIR=str(tmp_path), STATIC_ROOT=str(static_root)
    )
    assert result.returncode != 0
    assert "(common.E002) 1 static file(s) not in the manifest" in result.stderr
    assert "(e.g. admin/css/base.css)" in result.stderr


def test_production_server_refuses_to_start_without_collected_static_files(tmp_path):
    """Rather than start and answer 500 on /admin/, /api/docs/ and /api/redoc/."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_DATABASE_URL")}
    env.update(
        PRODUCTION,
        DJANGO_SETTINGS_MODULE="config.settings.production",
        DATA_DIR=str(tmp_path),
        STATIC_ROOT=str(tmp_path / "static"),
    )
    server = subprocess.run(
        [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", "127.0.0.1:0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert server.returncode == 3  # gunicorn's "worker failed to boot": it stops at once
    assert "Refusing to serve: The static files manifest" in server.stderr
    assert "Run `python manage.py collectstatic --noinput`" in server.stderr


def test_production_serves_the_admin_and_the_docs_after_collectstatic(tmp_path, collected_static):
    script = (
        "from django.test import Client\n"
        "c = Client(HTTP_HOST='api.example.com')\n"
        "print(*(c.get(p, secure=True).status_code"
        " for p in ('/admin/login/', '/api/docs/', '/api/redoc/')))\n"
    )
    result = _run_with_production_settings(
        ["shell", "-v", "0", "-c", script],
        **PRODUCTION,
        DATA_DIR=str(tmp_path),
        STATIC_ROOT=str(collected_static),
        LOG_LEVEL="ERROR",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["200", "200", "200"]


def test_production_redirects_plain_http_except_the_health_and_metrics_probes(tmp_path):
    script = (
        "from django.test import Client\n"
        "c = Client(HTTP_HOST='api.example.com')\n"
        "print(c.get('/users/').status_code, c.get('/healthz').status_code,"
        " c.get('/metrics').status_code)\n"
    )
    env = {
        "SECRET_KEY": "k3!9vZ" * 10,
        "ALLOWED_HOSTS": "api.example.com",
        "DATA_DIR": str(tmp_path),
        "LOG_LEVEL": "ERROR",
    }
    assert _run_with_production_settings(["init_db", "-v", "0"], **env).returncode == 0
    result = _run_with_production_settings(["shell", "-c", script], **env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].split() == ["301", "200", "200"]
