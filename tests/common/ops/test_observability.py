"""/healthz, /metrics and the structured logs, as an operator meets them."""

import json
import logging

import pytest
from prometheus_client import REGISTRY

from common.ops.observability import JsonFormatter
from tests.test_faults import database_down

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True)

BATCH = {
    "users": [{"name": "Ann", "email": "ann@example.com"}, {"name": "", "email": "x"}],
    "products": [{"name": "Pen", "price": "1.50"}],
    "orders": [{"user_id": 999_999, "product_id": 999_999, "quantity": 1}],
}


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_healthz_reports_every_database_with_its_latency(anonymous_api):
    response = anonymous_api.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"default", "users", "products", "orders"}
    for check in body["checks"].values():
        assert check["ok"] is True
        assert check["latency_ms"] >= 0
    assert response["Cache-Control"].startswith("max-age=0")


def test_healthz_is_503_naming_the_database_that_is_down(anonymous_api):
    with database_down("products"):
        response = anonymous_api.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["products"]["ok"] is False
    assert body["checks"]["products"]["error"]
    assert body["checks"]["users"]["ok"] is True


def test_healthz_checks_the_broker_when_one_is_configured(anonymous_api, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = anonymous_api.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"]["ok"] is False
    assert response.json()["checks"]["broker"]["error"]


def test_metrics_count_ingested_records_by_type_and_outcome(api, anonymous_api):
    before = {
        key: counter("ingest_records_total", type=key[0], outcome=key[1])
        for key in [("users", "inserted"), ("users", "skipped"), ("orders", "skipped")]
    }
    batches = counter("ingest_batches_total", mode="write")
    assert api.post("/ingest/", BATCH, format="json").status_code == 200

    response = anonymous_api.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert 'ingest_records_total{outcome="inserted",type="users"}' in text
    assert "ingest_duration_seconds_bucket" in text
    assert "django_http_requests_total_by_method_total" in text  # django-prometheus's own
    assert counter("ingest_records_total", type="users", outcome="inserted") == (
        before["users", "inserted"] + 1
    )
    assert counter("ingest_records_total", type="users", outcome="skipped") == (
        before["users", "skipped"] + 1
    )
    assert counter("ingest_records_total", type="orders", outcome="skipped") == (
        before["orders", "skipped"] + 1
    )
    assert counter("ingest_batches_total", mode="write") == batches + 1


def test_every_response_carries_a_request_id(anonymous_api):
    first, second = anonymous_api.get("/users/"), anonymous_api.get("/users/")
    assert len(first["X-Request-ID"]) == 32
    assert first["X-Request-ID"] != second["X-Request-ID"]


def test_a_sane_request_id_from_the_client_is_kept_and_a_hostile_one_replaced(anonymous_api):
    kept = anonymous_api.get("/users/", HTTP_X_REQUEST_ID="trace-42.a:b")
    assert kept["X-Request-ID"] == "trace-42.a:b"
    replaced = anonymous_api.get("/users/", HTTP_X_REQUEST_ID='x" \n{"level": "forged"}')
    assert replaced["X-Request-ID"] != 'x" \n{"level": "forged"}'
    assert len(replaced["X-Request-ID"]) == 32


def test_each_request_logs_one_line_with_its_id_status_and_duration(anonymous_api, caplog):
    with caplog.at_level(logging.INFO, logger="store.request"):
        response = anonymous_api.get("/products/?ordering=-price")
    lines = [r for r in caplog.records if r.name == "store.request"]
    assert len(lines) == 1
    fields = lines[0].fields
    assert fields["request_id"] == response["X-Request-ID"]
    assert fields["method"] == "GET"
    assert fields["path"] == "/products/"
    assert fields["query"] == "ordering=-price"
    assert fields["status"] == 200
    assert fields["duration_ms"] >= 0


def test_behind_nginx_the_log_names_the_client_nginx_saw(anonymous_api, caplog, settings):
    # NUM_PROXIES=1 (deploy/nginx.conf in front): the connection is nginx's; the client is the
    # last X-Forwarded-For entry, which nginx appends and a client cannot forge.
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    with caplog.at_level(logging.INFO, logger="store.request"):
        anonymous_api.get("/products/", HTTP_X_FORWARDED_FOR="10.9.9.9, 203.0.113.7")
    [line] = [r for r in caplog.records if r.name == "store.request"]
    assert line.fields["client"] == "203.0.113.7"


def test_an_ingest_logs_its_counts_and_duration_under_the_request_id(api, caplog):
    with caplog.at_level(logging.INFO, logger="store.ingest"):
        response = api.post("/ingest/", BATCH, format="json", HTTP_X_REQUEST_ID="batch-7")
    [line] = [r for r in caplog.records if r.name == "store.ingest"]
    counts = {"updated": 0, "deleted": 0}
    assert line.fields["users"] == {"received": 2, "inserted": 1, "skipped": 1, **counts}
    assert line.fields["orders"] == {"received": 1, "inserted": 0, "skipped": 1, **counts}
    assert line.fields["duration_ms"] >= 0
    rendered = json.loads(JsonFormatter().format(line))
    assert rendered["request_id"] == "batch-7" == response["X-Request-ID"]
    assert rendered["event"] == "ingest"
    assert rendered["level"] == "INFO"


def test_the_json_formatter_writes_one_parseable_line_even_for_hostile_messages():
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, 'a "quoted"\nline', (), None)
    record.fields = {"path": "/\u0000\u00e9/"}
    output = JsonFormatter().format(record)
    assert "\n" not in output
    parsed = json.loads(output)
    assert parsed["message"] == 'a "quoted"\nline'
    assert parsed["path"] == "/\u0000\u00e9/"
    assert parsed["level"] == "ERROR"
