"""Crash: the server is killed (SIGKILL) in the middle of a large ingest.

Then every SQLite file passes ``PRAGMA integrity_check``, every chunk is all there or not at
all (users and products chunks commit one by one; all orders commit together), and sending
the same batch again (same ids) ends in exactly the state one clean ingest gives.
"""

import contextlib
import signal
import threading
import time

import pytest
from django.db import connections

from orders_svc.models import Order
from products_svc.models import Product
from tests import live
from users_svc.models import User

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True)

COUNT = 90_000
CHUNK = 2_000
BATCH = {
    "users": [
        {"id": i, "name": f"U{i}", "email": f"u{i}@example.com"} for i in range(1, COUNT + 1)
    ],
    "products": [{"id": i, "name": f"P{i}", "price": "3.25"} for i in range(1, COUNT + 1)],
    "orders": [
        {"id": i, "user_id": i, "product_id": COUNT + 1 - i, "quantity": 1 + i % 9}
        for i in range(1, COUNT + 1)
    ],
}


def _ids(model) -> set[int]:
    return set(model.objects.values_list("id", flat=True))


def _whole_chunks_only(ids: set[int]) -> bool:
    chunks = {(i - 1) // CHUNK for i in ids}
    return all(set(range(c * CHUNK + 1, min((c + 1) * CHUNK, COUNT) + 1)) <= ids for c in chunks)


def test_a_killed_ingest_leaves_whole_chunks_and_a_resend_completes_it(api_token):
    env = {"INGEST_CHUNK_SIZE": str(CHUNK)}
    with live.gunicorn(workers=1, threads=2, **env) as (base_url, server):

        def send() -> None:
            with contextlib.suppress(OSError):  # the server dies under it: that is the point
                live.request("POST", f"{base_url}/ingest/", BATCH, api_token)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        deadline = time.monotonic() + 60
        while not User.objects.exists():  # some chunks are committed: kill it now
            assert time.monotonic() < deadline, "the ingest never started writing"
            time.sleep(0.005)
        live.stop(server, signal.SIGKILL)
        sender.join(timeout=30)

    for alias in ("default", "users", "products", "orders"):
        connections[alias].close()
        if connections[alias].vendor == "sqlite":
            with connections[alias].cursor() as cursor:
                assert cursor.execute("PRAGMA integrity_check").fetchall() == [("ok",)], alias
    users, products, orders = _ids(User), _ids(Product), _ids(Order)
    print(
        f"\ncrash: killed with {len(users)} users, {len(products)} products, "
        f"{len(orders)} orders committed of {COUNT} each"
    )
    assert 0 < len(users) < COUNT or len(products) < COUNT, "the kill came too late to test"
    assert _whole_chunks_only(users)
    assert _whole_chunks_only(products)
    assert len(orders) in (0, COUNT)  # the orders are one transaction

    with live.gunicorn(workers=1, threads=2, **env) as (base_url, _):
        status, _, body = live.request("POST", f"{base_url}/ingest/", BATCH, api_token)
    assert status == 200
    assert body["users"]["inserted"] == COUNT - len(users)
    assert body["users"]["skipped"] == len(users)  # already there: duplicates, not copies
    assert body["orders"]["inserted"] + len(orders) == COUNT

    assert _ids(User) == _ids(Product) == _ids(Order) == set(range(1, COUNT + 1))
    assert User.objects.get(id=777).email == "u777@example.com"
    assert str(Product.objects.get(id=COUNT).price) == "3.25"
    order = Order.objects.get(id=10)
    assert (order.user_id, order.product_id, order.quantity) == (10, COUNT - 9, 2)
