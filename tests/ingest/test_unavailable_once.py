"""A database found unavailable during a batch is not tried again for each later chunk: every
try would wait out DB_CONNECT_TIMEOUT on a server cut off by the network (a 300,000-record
ingest answered after 57 s; ``make test-cluster`` cuts a server off for real). Every chunk is
still skipped with the reason."""

import psycopg
import pytest
from django.db import OperationalError

from orders_svc import services as order_services
from products_svc import services as product_services
from tests.ingest.test_apis import post
from users_svc.models import User

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True)

BATCH = {
    "users": [{"id": i, "name": f"U{i}", "email": f"u{i}@example.com"} for i in range(1, 9)],
    "products": [{"id": i, "name": f"P{i}", "price": "1.00"} for i in range(1, 9)],
    "orders": [{"id": i, "user_id": i, "product_id": 100 + i, "quantity": 1} for i in range(1, 9)],
}


def test_products_found_down_are_not_tried_again_for_each_chunk(api, settings, monkeypatch):
    settings.INGEST_CHUNK_SIZE = 2  # four chunks of each type
    tries = {"writes": 0, "lookups": 0}

    def cut_off() -> OperationalError:
        # What Django raises for a server psycopg could not reach: no SQLSTATE.
        error = OperationalError("connection to server at 10.0.0.9 failed: timeout expired")
        error.__cause__ = psycopg.OperationalError("timeout expired")
        return error

    def write(rows, **kwargs):
        tries["writes"] += 1
        raise cut_off()

    def look_up(ids):
        tries["lookups"] += 1
        raise cut_off()

    monkeypatch.setattr(product_services, "products_bulk_insert", write)
    monkeypatch.setattr(order_services, "existing_product_ids", look_up)
    response = post(api, BATCH)
    assert response.status_code == 200
    body = response.json()
    assert body["users"]["inserted"] == 8
    assert User.objects.count() == 8
    assert body["products"]["skipped"] == body["orders"]["skipped"] == 8
    assert "Not written: the products database is unavailable" in str(body["products"])
    assert "Cannot be checked: the products service is unavailable" in str(body["orders"])
    # Each was tried once (two writer threads may both have begun a chunk), not four times.
    assert tries["writes"] <= 2
    assert tries["lookups"] == 1


def test_an_error_the_server_or_file_answered_fails_its_own_chunk_only(api, settings, monkeypatch):
    # A locked SQLite file, a statement PostgreSQL cancelled: the next chunk may well work
    # (tests/ingest/test_apis.py has a chunk failing in the middle of a type).
    settings.INGEST_CHUNK_SIZE = 2
    tries = {"lookups": 0}

    def look_up(ids):
        tries["lookups"] += 1
        raise OperationalError("database is locked")

    monkeypatch.setattr(order_services, "existing_product_ids", look_up)
    batch = {**BATCH, "products": []}
    assert post(api, batch).status_code == 200
    assert tries["lookups"] == 1 + 4  # once for the whole batch, then once per chunk
