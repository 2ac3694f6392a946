"""docker-compose.yml and the Dockerfile, checked without Docker (there is no engine here)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SERVICE_DATABASES = ["default-db", "users-db", "products-db", "orders-db"]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _settings_variables() -> set[str]:
    """Every environment variable the production settings read (recorded by config.env)."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_DATABASE_URL")}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.production",
        SECRET_KEY="x" * 60,
        ALLOWED_HOSTS="example.com",
    )
    script = (
        "import django, json; django.setup(); from config.env import READ_VARIABLES; "
        "print(json.dumps(sorted(READ_VARIABLES)))"
    )
    output = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return set(json.loads(output.strip().splitlines()[-1]))


def test_every_service_the_app_needs_is_there(compose):
    assert {"api", "worker", "redis", *SERVICE_DATABASES} <= set(compose["services"])


@pytest.mark.parametrize("name", SERVICE_DATABASES)
def test_each_database_is_its_own_postgresql_with_a_healthcheck(compose, name):
    service = compose["services"][name]
    assert service["image"].startswith("postgres:")
    assert "pg_isready" in service["healthcheck"]["test"]
    assert service["volumes"], "its data must outlive the container"


@pytest.mark.parametrize("name", ["api", "worker"])
def test_app_services_wait_for_healthy_databases_and_redis(compose, name):
    depends = compose["services"][name]["depends_on"]
    for needed in [*SERVICE_DATABASES, "redis"]:
        assert depends[needed]["condition"] == "service_healthy", (name, needed)


def test_migrations_run_when_the_api_starts_and_workers_wait_for_them(compose):
    assert "manage.py init_db" in " ".join(compose["services"]["api"]["command"])
    assert "gunicorn" in " ".join(compose["services"]["api"]["command"])
    assert compose["services"]["worker"]["depends_on"]["api"]["condition"] == "service_healthy"
    assert compose["services"]["worker"]["command"][:4] == ["celery", "-A", "config", "worker"]


@pytest.mark.parametrize("name", ["api", "worker"])
def test_every_variable_the_settings_read_is_set(compose, name):
    environment = compose["services"][name]["environment"]
    missing = _settings_variables() - set(environment)
    assert not missing, f"{name} does not set {sorted(missing)}"
    assert environment["DJANGO_SETTINGS_MODULE"] == "config.settings.production"


def test_database_urls_point_at_the_database_services(compose):
    environment = compose["services"]["api"]["environment"]
    for alias in ("default", "users", "products", "orders"):
        url = environment[f"{alias.upper()}_DATABASE_URL"]
        host = re.match(r"postgres://[^@]+@([^:/]+)", url).group(1)
        assert host == f"{alias}-db"
        database = compose["services"][host]["environment"]["POSTGRES_DB"]
        assert url.endswith(f"/{database}")
    assert environment["CELERY_BROKER_URL"].startswith("redis://redis:")


def test_dockerfile_builds_the_app_from_the_pinned_requirements():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11", dockerfile, re.M)
    assert "pip install -r requirements.txt" in dockerfile
    assert "collectstatic" in dockerfile
    assert "config/gunicorn.conf.py" in dockerfile
    assert re.search(r"^USER (?!root)", dockerfile, re.M), "the app must not run as root"


def _gunicorn_config() -> dict:
    namespace: dict = {}
    exec((ROOT / "config" / "gunicorn.conf.py").read_text(), namespace)  # noqa: S102
    return namespace


def test_gunicorn_configuration_loads(monkeypatch):
    monkeypatch.setenv("EXPORT_MAX_STREAMS", "")  # recorded, so that the test's value goes
    monkeypatch.delenv("EXPORT_MAX_STREAMS")
    namespace = _gunicorn_config()
    assert namespace["worker_class"] == "common.ops.gunicorn_worker.IngestAwareWorker"
    assert namespace["workers"] >= 1
    assert namespace["threads"] >= 1


def test_exports_get_half_the_threads_and_never_all(monkeypatch):
    """An export holds a thread while its client reads (common.http.export_slots): the default
    cap follows GUNICORN_THREADS, and a cap that would let exports take every thread (and
    /healthz with them) stops gunicorn from starting."""
    monkeypatch.setenv("EXPORT_MAX_STREAMS", "")  # recorded, so that the test's value goes
    monkeypatch.delenv("EXPORT_MAX_STREAMS")
    monkeypatch.setenv("GUNICORN_THREADS", "2")
    _gunicorn_config()
    assert os.environ["EXPORT_MAX_STREAMS"] == "1"
    monkeypatch.setenv("GUNICORN_THREADS", "4")
    monkeypatch.setenv("EXPORT_MAX_STREAMS", "4")
    with pytest.raises(SystemExit, match="set it below 4"):
        _gunicorn_config()


def test_nginx_is_the_only_published_port_and_uses_the_repository_s_config(compose):
    published = {name for name, service in compose["services"].items() if service.get("ports")}
    assert published == {"nginx"}
    nginx = compose["services"]["nginx"]
    assert "./deploy/nginx.conf:/etc/nginx/nginx.conf:ro" in nginx["volumes"]
    assert nginx["depends_on"]["api"]["condition"] == "service_started"
    # The app reads the client's address from the one proxy's X-Forwarded-For entry.
    assert compose["services"]["api"]["environment"]["NUM_PROXIES"] == "1"


def test_nginx_takes_the_bodies_the_app_takes_and_cuts_off_stalled_clients(compose):
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    environment = compose["services"]["api"]["environment"]
    largest = int(re.search(r"client_max_body_size (\d+)m;", conf).group(1)) * 2**20
    assert largest == int(environment["INGEST_ASYNC_MAX_BODY_BYTES"])
    for directive in (
        "client_header_timeout",
        "client_body_timeout",
        "send_timeout",
        "proxy_read_timeout",
    ):
        assert re.search(rf"\n\s*{directive} \d+s;", conf), directive
    assert "proxy_request_buffering on;" in conf
    assert re.search(r"server api:8000 max_fails=0;\s*# cluster:", conf)  # the harness swaps it
    assert re.search(r"listen 8080;\s*# cluster:", conf)
    assert compose["services"]["nginx"]["ports"] == ["8000:8080"]
    # Its own refusals in JSON, like the app's.
    assert "error_page 413 = @too_large;" in conf
    assert "error_page 502 504 = @no_answer;" in conf
