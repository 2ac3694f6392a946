"""Crash: the server is killed (SIGKILL) in the middle of a large ingest.

Then every SQLite file passes ``PRAGMA integrity_check``, every chunk is all there or not at
all (users and products chunks commit one by one; all orders commit together), and sending
the same batch again (same ids) ends in exactly the state one clean ingest gives.

The moment of the kill does not depend on the machine's speed: the test holds the products
database's write lock from outside, so the ingest commits users chunks and then waits on its
first products chunk with its orders transaction open; the server is killed once users rows
appear, and only then is the lock released. Every wait is bounded.
"""

import contextlib
import signal
import threading
from io import StringIO

import pytest
from django.core.management import call_command
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


def _integrity_report() -> str:
    """What ``manage.py check_integrity`` says (it exits non-zero if an order points nowhere)."""
    out = StringIO()
    call_command("check_integrity", stdout=out)
    return out.getvalue().strip()


def _whole_chunks_only(ids: set[int]) -> bool:
    chunks = {(i - 1) // CHUNK for i in ids}
    return all(set(range(c * CHUNK + 1, min((c + 1) * CHUNK, COUNT) + 1)) <= ids for c in chunks)


def test_a_killed_ingest_leaves_whole_chunks_and_a_resend_completes_it(api_token):
    # The waiting products writer must not give up before the kill: a long busy timeout.
    env = {"INGEST_CHUNK_SIZE": str(CHUNK), "SQLITE_BUSY_TIMEOUT": "600"}
    with (
        live.products_write_lock(),
        live.gunicorn(workers=1, threads=2, **env) as (base_url, server),
    ):

        def send() -> None:
            with contextlib.suppress(OSError):  # the server dies under it: that is the point
                live.request("POST", f"{base_url}/ingest/", BATCH, api_token)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        live.wait_for(User.objects.exists, "the ingest never committed a users chunk")
        live.stop(server, signal.SIGKILL)
        sender.join(timeout=30)
        assert not sender.is_alive(), "the request did not end with the server"
    # The lock is released only now: what the dead server left half-done stays undone.

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
    assert users, "killed before any users chunk was committed"
    assert _whole_chunks_only(users)
    assert products == set()  # its writer was waiting for the lock: nothing committed
    assert orders == set()  # one transaction, open when the server died: nothing committed
    assert _integrity_report() == "0 orders checked, 0 point at a missing user or product."

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
    assert _integrity_report() == f"{COUNT} orders checked, 0 point at a missing user or product."
