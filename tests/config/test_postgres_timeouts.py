"""A PostgreSQL database gives up on a server that stops answering (config.env.postgres_options):
the connection settings carry the three timeouts; make test-cluster proves them on a server cut
off by the network."""

from pathlib import Path

from config.env import database_from_env, postgres_options


def test_a_postgresql_url_carries_the_timeouts_and_a_sqlite_file_does_not(monkeypatch):
    options = postgres_options(connect_timeout=5, network_timeout=10, statement_timeout=120)
    monkeypatch.setenv("SOME_DATABASE_URL", "postgres://store@db:5432/store_users")
    config = database_from_env(
        "SOME_DATABASE_URL", Path("x.db"), busy_timeout_seconds=1, conn_max_age=60, postgres=options
    )
    assert config["OPTIONS"]["connect_timeout"] == 5
    assert config["OPTIONS"]["tcp_user_timeout"] == 10_000
    assert config["OPTIONS"]["keepalives"] == 1
    assert config["OPTIONS"]["options"] == "-c statement_timeout=120000"
    monkeypatch.delenv("SOME_DATABASE_URL")
    sqlite = database_from_env(
        "SOME_DATABASE_URL", Path("x.db"), busy_timeout_seconds=1, conn_max_age=60, postgres=options
    )
    assert "connect_timeout" not in sqlite["OPTIONS"]


def test_the_settings_read_them_from_the_environment():
    from django.conf import settings

    assert settings.POSTGRES_OPTIONS["connect_timeout"] == 5  # DB_CONNECT_TIMEOUT's default
