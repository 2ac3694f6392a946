"""One service's database goes away: requests that need it get a 503 naming it, the others go
on, orders that cannot be checked are skipped, and a retry after recovery completes once."""

import json
from contextlib import contextmanager

import pytest
from django.db import connections

from orders_svc.models import Order
from products_svc.models import Product
from tests.ingest.skips import skipped_records
from users_svc.models import User

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True, reset_sequences=True)


@contextmanager
def database_down(alias: str):
    """Point ``alias`` at a database that cannot be opened, for every thread, then restore it."""
    settings_dict = connections.settings[alias]  # shared by every thread's connection object
    saved = settings_dict["NAME"]
    if settings_dict["ENGINE"].endswith("sqlite3"):
        settings_dict["NAME"] = "/no/such/directory/gone.db"
    else:
        settings_dict["NAME"] = "no_such_database_for_the_fault_test"
    connections[alias].close()
    try:
        yield
    finally:
        settings_dict["NAME"] = saved
        connections[alias].close()


BATCH = {
    "users": [{"id": i, "name": f"U{i}", "email": f"u{i}@example.com"} for i in range(1, 6)],
    "products": [{"id": i, "name": f"P{i}", "price": "9.50"} for i in range(1, 6)],
    "orders": [{"id": i, "user_id": i, "product_id": i, "quantity": 1} for i in range(1, 6)],
}


def _ingest(api):
    return api.generic("POST", "/ingest/", json.dumps(BATCH), content_type="application/json")


def test_requests_that_need_a_missing_database_get_a_503_naming_it(api):
    with database_down("users"):
        response = api.get("/users/")
        assert response.status_code == 503
        body = response.json()
        assert body["code"] == "unavailable"
        assert body["unavailable"] == ["users"]
        assert body["detail"].startswith("The users database is unavailable (")
        assert response["Retry-After"]
        order = api.post("/orders/", {"user_id": 1, "product_id": 1, "quantity": 1}, format="json")
        assert order.status_code == 503  # it needs the users service to check the user
        # The other services keep answering and writing.
        assert api.get("/products/").status_code == 200
        assert api.post("/products/", {"name": "P", "price": 1}, format="json").status_code == 201
        assert api.get("/orders/").status_code == 200
    assert api.get("/users/").status_code == 200  # and it is back


def test_ingest_goes_on_without_one_service_and_a_retry_completes_once(api):
    with database_down("users"):
        response = _ingest(api)
    assert response.status_code == 200
    body = response.json()
    assert body["users"]["inserted"] == 0
    assert skipped_records(body["users"])[0]["reasons"]["non_field_errors"][0].startswith(
        "Not written: the users database is unavailable"
    )
    assert body["products"]["inserted_ids"] == [1, 2, 3, 4, 5]
    assert body["orders"]["inserted"] == 0
    reason = skipped_records(body["orders"])[0]["reasons"]
    assert reason["user_id"][0].startswith("Cannot be checked: the users service is unavailable")
    assert "product_id" not in reason  # the products were there to be checked
    assert (User.objects.count(), Product.objects.count(), Order.objects.count()) == (0, 5, 0)

    retry = _ingest(api).json()  # the same batch, same ids, once the users are back
    assert retry["users"]["inserted_ids"] == [1, 2, 3, 4, 5]
    assert retry["products"]["inserted"] == 0  # already there: duplicates, not copies
    assert retry["orders"]["inserted_ids"] == [1, 2, 3, 4, 5]
    assert (User.objects.count(), Product.objects.count(), Order.objects.count()) == (5, 5, 5)


def test_ingest_without_the_orders_database_still_writes_users_and_products(api):
    with database_down("orders"):
        body = _ingest(api).json()
    assert body["users"]["inserted"] == body["products"]["inserted"] == 5
    assert body["orders"]["inserted"] == 0
    assert (
        "orders database is unavailable"
        in (skipped_records(body["orders"])[0]["reasons"]["non_field_errors"][0])
    )
    assert Order.objects.count() == 0


def test_writes_need_the_default_database_for_their_token(api):
    with database_down("default"):
        response = api.post("/users/", {"name": "A", "email": "a@example.com"}, format="json")
    assert response.status_code == 503
    assert response.json()["unavailable"] == ["default"]
