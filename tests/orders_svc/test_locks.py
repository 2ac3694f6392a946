"""Creating an order and deleting its user (or product) at the same moment: never a dangling order.

An order is checked against the users and products databases and written to the orders
database; no foreign key spans them. What keeps the two apart is a lock on the orders table
(``common.data.db``): the order writer takes it before it checks, the deletion guard before it
counts references. So a deletion that arrives while an order is between "its user exists" and
its commit must wait for that commit, then see the order and be refused (409).

These tests stop the order writer right after its check, start the deletion, and look: the
deletion must still be waiting half a second later. On SQLite every transaction starts with
``BEGIN IMMEDIATE``, which gives the same ordering; on PostgreSQL only the table locks do, so
there (run with the ``*_DATABASE_URL`` variables) these tests are what shows they are taken.
"""

import json
import threading
from collections.abc import Callable
from decimal import Decimal

import pytest
from django.db import connections
from rest_framework.test import APIClient

from orders_svc import services as order_services
from orders_svc.models import Order
from products_svc.models import Product
from products_svc.services import product_create
from users_svc.models import User
from users_svc.services import user_create

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True)

WAIT = 10  # seconds: a bound on every wait, never reached when things go right
STILL_WAITING_AFTER = 0.5


class Request(threading.Thread):
    """One HTTP request on its own thread, with its own connections (closed when done)."""

    def __init__(self, token: str, send: Callable[[APIClient], object]) -> None:
        super().__init__(daemon=True)
        self.token, self.send = token, send
        self.response = None
        self.error: BaseException | None = None

    def run(self) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {self.token}")
        try:
            self.response = self.send(client)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
        finally:
            connections.close_all()

    def result(self):
        self.join(WAIT)
        assert not self.is_alive(), "the request did not finish"
        if self.error is not None:
            raise self.error
        return self.response


@pytest.fixture
def pause_after_check(monkeypatch):
    """Make ``name`` in orders_svc.services stop, after doing its work, until released."""
    checked, release = threading.Event(), threading.Event()

    def install(name: str) -> None:
        real = getattr(order_services, name)

        def checked_then_paused(*args, **kwargs):
            outcome = real(*args, **kwargs)
            checked.set()
            release.wait(WAIT)
            return outcome

        monkeypatch.setattr(order_services, name, checked_then_paused)

    yield install, checked, release
    release.set()  # never leave a paused writer behind, whatever failed


def _race(token, pause, create, delete):
    """Run ``create`` until it has checked its references, then ``delete`` beside it; return
    (create's response, delete's response, whether delete was still waiting)."""
    _, checked, release = pause
    creator = Request(token, create)
    creator.start()
    assert checked.wait(WAIT), "the order writer never checked its references"
    deleter = Request(token, delete)
    deleter.start()
    deleter.join(STILL_WAITING_AFTER)
    waited = deleter.is_alive()
    release.set()
    return creator.result(), deleter.result(), waited


def test_a_user_deleted_while_its_order_is_being_created_waits_then_is_refused(
    api_token, pause_after_check
):
    install, *_ = pause_after_check
    install("_require_references")
    user = user_create(name="Ann", email="ann@example.com")
    product = product_create(name="Lamp", price=Decimal("10.00"))

    created, deleted, waited = _race(
        api_token,
        pause_after_check,
        lambda client: client.post(
            "/orders/", {"user_id": user.id, "product_id": product.id, "quantity": 2}, "json"
        ),
        lambda client: client.delete(f"/users/{user.id}/"),
    )

    assert created.status_code == 201, created.content
    assert deleted.status_code == 409, deleted.content
    assert deleted.json()["references"] == {"orders": 1}
    assert User.objects.filter(id=user.id).exists()
    assert list(Order.objects.values_list("user_id", "product_id")) == [(user.id, product.id)]
    assert waited, "the deletion did not wait for the order being created"


def test_a_product_deleted_while_an_ingest_writes_its_orders_waits_then_is_refused(
    api_token, pause_after_check
):
    install, *_ = pause_after_check
    install("reference_errors_by_chunk")  # the bulk path's check, just before its commit
    user = user_create(name="Ann", email="ann@example.com")
    product = product_create(name="Lamp", price=Decimal("10.00"))
    orders = [{"user_id": user.id, "product_id": product.id, "quantity": q} for q in (1, 2, 3)]

    ingested, deleted, waited = _race(
        api_token,
        pause_after_check,
        lambda client: client.generic(
            "POST", "/ingest/", json.dumps({"orders": orders}), content_type="application/json"
        ),
        lambda client: client.delete(f"/products/{product.id}/"),
    )

    assert ingested.status_code == 200, ingested.content
    assert ingested.json()["orders"]["inserted"] == 3
    assert deleted.status_code == 409, deleted.content
    assert deleted.json()["references"] == {"orders": 3}
    assert Product.objects.filter(id=product.id).exists()
    assert Order.objects.filter(product_id=product.id).count() == 3
    assert waited, "the deletion did not wait for the ingest's orders"
