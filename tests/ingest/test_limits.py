"""GET /ingest/limits/: what one ingest request may hold, as the settings say."""

import pytest

pytestmark = pytest.mark.django_db(databases="__all__")


def test_the_limits_are_the_settings(anonymous_api, settings):
    settings.INGEST_MAX_RECORDS = 1234
    settings.INGEST_IDEMPOTENCY_TTL = 3600
    response = anonymous_api.get("/ingest/limits/")
    assert response.status_code == 200
    assert response.json() == {
        "max_records": 1234,
        "max_body_bytes": settings.INGEST_MAX_BODY_BYTES,
        "async_max_records": settings.INGEST_ASYNC_MAX_RECORDS,
        "async_max_body_bytes": settings.INGEST_ASYNC_MAX_BODY_BYTES,
        "idempotency_ttl_seconds": 3600,
        "idempotency_lock_timeout_seconds": settings.INGEST_IDEMPOTENCY_LOCK_TIMEOUT,
    }


def test_an_unknown_parameter_is_a_400(anonymous_api):
    response = anonymous_api.get("/ingest/limits/?records=1")
    assert response.status_code == 400
    assert "records" in response.json()


def test_reads_that_need_a_key_mean_the_limits_need_one(anonymous_api, api, settings):
    settings.API_READS_REQUIRE_TOKEN = True
    assert anonymous_api.get("/ingest/limits/").status_code == 401
    assert api.get("/ingest/limits/").status_code == 200
