"""Bulk deletions racing with order writes: no order ever points nowhere, and counts stay exact.

The deletion of a user or product and the writing of an order that points at it happen in two
databases. They are kept apart by the orders lock (``common.data.db``): an order writer takes it
before it checks its references, a deletion guard (``common.data.references``) before it counts
the orders that point at what it deletes, and each holds it until it commits. The streaming
insert (``ingest.streaming``) goes further and trusts the users and products it inserted itself
without a lookup, as long as the deletion epoch did not move (``orders_svc.models.DeletionEpoch``):
every deletion that may delete something must bump it.

Two kinds of test:

* interleavings forced at the one moment that matters (a deletion between a streaming ingest's
  users commit and its orders check), so that each guard is shown to be needed;
* rounds of clients sending mixed batches at once through a real server, after each of which
  no order points at a missing user or product, and every reported outcome is what the
  databases hold: the deleted ids of all answers are exactly the rows gone, each id once;
  every order reported inserted or updated is stored with the values of its last accepted
  write; every order refused for a missing user names a user that is gone indeed.
"""

import json
import threading
import time

import pytest
from django.db import connections
from django.test import Client

from ingest.resources import ORDERS
from orders_svc.models import Order
from orders_svc.selectors import dangling_orders
from products_svc import services as product_services
from products_svc.models import Product
from tests.ingest.skips import skipped_records
from users_svc import services as user_services
from users_svc.models import User

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True, reset_sequences=True)


def post(client, body, query=""):
    return client.generic(
        "POST", f"/ingest/{query}", json.dumps(body), content_type="application/json"
    )


class Request(threading.Thread):
    """Another client's request on a thread of its own (its own connections, closed at the
    end as a server thread closes them); ``result()`` is its answer."""

    def __init__(self, work) -> None:
        super().__init__(daemon=True)
        self._work = work
        self._outcome: dict = {}

    def run(self) -> None:
        try:
            self._outcome["value"] = self._work()
        except BaseException as exc:  # noqa: BLE001 - re-raised by result()
            self._outcome["error"] = exc
        finally:
            connections.close_all()

    def result(self):
        assert not self.is_alive(), "the request has not finished"
        if "error" in self._outcome:
            raise self._outcome["error"]
        return self._outcome["value"]


def in_another_thread(work):
    """Run ``work()`` as another client's request and wait for its answer."""
    request = Request(work)
    request.start()
    request.join(60)
    return request.result()


def token_client(api_token):
    return Client(headers={"Authorization": f"Token {api_token}"})


# --- a deletion between a streaming ingest's users commit and its orders check ----------------


@pytest.mark.parametrize(
    ("kind", "service", "insert_name"),
    [
        ("users", user_services, "users_bulk_insert"),
        ("products", product_services, "products_bulk_insert"),
    ],
)
def test_a_streaming_ingest_does_not_trust_what_it_inserted_once_a_bulk_deletion_removed_it(
    api, api_token, settings, monkeypatch, kind, service, insert_name
):
    """A batch inserts user (or product) 50 and an order for it. Right after the users chunk
    commits, another client deletes 1 and 50 with ``?action=delete``: 1 is refused (an order
    points at it), 50 is deleted (nothing points at it yet). The ingest must not count 50 as
    existing because it inserted it: the order is refused."""
    post(
        api,
        {
            "users": [{"id": 1, "name": "Seed", "email": "seed@example.com"}],
            "products": [{"id": 1, "name": "Seed", "price": "1.00"}],
            "orders": [{"id": 1, "user_id": 1, "product_id": 1, "quantity": 1}],
        },
    )
    # Inline writers: the orders are written and checked after the users and products commit,
    # in this thread, so the deletion below lands exactly in between.
    settings.INGEST_WRITER_THREADS = False
    real_insert = getattr(service, insert_name)
    deletions = []

    def insert_then_someone_deletes(rows, **kwargs):
        ids = real_insert(rows, **kwargs)
        response = in_another_thread(
            lambda: post(token_client(api_token), {kind: [{"id": 1}, {"id": 50}]}, "?action=delete")
        )
        deletions.append(response.json()[kind])
        return ids

    monkeypatch.setattr(service, insert_name, insert_then_someone_deletes)
    new = {
        "users": {"id": 50, "name": "New", "email": "new@example.com"},
        "products": {"id": 50, "name": "New", "price": "2.00"},
    }[kind]
    order = {"id": 7, "user_id": 1, "product_id": 1, "quantity": 1}
    order["user_id" if kind == "users" else "product_id"] = 50
    response = post(api, {kind: [new], "orders": [order]})

    assert response.status_code == 200
    body = response.json()
    assert body[kind]["inserted_ids"] == [50]
    assert [(d["deleted_ids"], d["skipped"]) for d in deletions] == [([50], 1)]
    field = "user_id" if kind == "users" else "product_id"
    assert body["orders"]["inserted_ids"] == []
    assert [r["reasons"] for r in skipped_records(body["orders"])] == [
        {field: [f"No {kind.removesuffix('s')} has this id."]}
    ]
    model = User if kind == "users" else Product
    assert not model.objects.filter(id=50).exists()
    assert list(Order.objects.values_list("id", flat=True)) == [1]
    assert list(dangling_orders()) == []


# --- held transactions (atomic, dry run) against a deletion -----------------------------------


def release_lock_waits() -> int:
    """PostgreSQL: cancel the statements of the test databases that wait for a lock (a way
    out of a deadlock the server cannot see, so that a failing test ends); their count."""
    if connections["default"].vendor != "postgresql":
        return 0
    names = [connections[alias].settings_dict["NAME"] for alias in ("users", "products", "orders")]
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_cancel_backend(pid)) FROM pg_stat_activity "
            "WHERE wait_event_type = 'Lock' AND datname = ANY(%s)",
            [names],
        )
        return cursor.fetchone()[0]


def finish_or_fail(threads, what: str, timeout: float = 10) -> None:
    """Join ``threads``; if they are still waiting after ``timeout``, free them and fail."""
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    if any(thread.is_alive() for thread in threads):
        cancelled = release_lock_waits()
        for thread in threads:
            thread.join(30)
        pytest.fail(f"{what}: still waiting after {timeout}s ({cancelled} lock waits cancelled)")


@pytest.mark.parametrize("mode", ["?atomic=true", "?dry_run=true"])
def test_a_batch_in_held_transactions_and_a_deletion_of_a_user_it_changes_both_finish(
    api, api_token, monkeypatch, mode
):
    """An atomic (or dry-run) batch renames user 1 (phase 2) and creates an order for user 2
    (phase 3); while it is between the two, another client deletes user 1. On PostgreSQL the
    batch held user 1's row lock and waited for the orders lock, the deletion held the orders
    lock and waited for user 1's row: each waiting on the other across two databases, which no
    server can see, forever. The batch takes the orders lock before it changes anything, so the
    deletion waits for it instead, and then deletes user 1 (no order points at it)."""
    post(
        api,
        {
            "users": [{"id": i, "name": f"U{i}", "email": f"u{i}@example.com"} for i in (1, 2)],
            "products": [{"id": 1, "name": "Seed", "price": "1.00"}],
        },
    )
    real_insert = ORDERS.writers["insert"]
    deletion = Request(lambda: token_client(api_token).delete("/users/1/"))

    def insert_while_user_1_is_deleted(rows, **kwargs):
        deletion.start()
        time.sleep(0.5)  # the deletion is under way, waiting for a lock
        return real_insert(rows, **kwargs)

    monkeypatch.setitem(ORDERS.writers, "insert", insert_while_user_1_is_deleted)
    batch = Request(
        lambda: post(
            token_client(api_token),
            {
                "users": [{"id": 1, "name": "Renamed", "action": "update"}],
                "orders": [{"id": 1, "user_id": 2, "product_id": 1, "quantity": 1}],
            },
            mode,
        )
    )
    batch.start()
    finish_or_fail([batch, deletion], "the batch and the deletion")

    assert batch.result().status_code == 200, batch.result().content
    assert deletion.result().status_code == 204, deletion.result().content
    assert not User.objects.filter(id=1).exists()
    expected_orders = [] if "dry_run" in mode else [(1, 2, 1, 1)]
    assert list(Order.objects.values_list("id", "user_id", "product_id", "quantity")) == (
        expected_orders
    )
    assert list(dangling_orders()) == []


@pytest.mark.parametrize("mode", ["?atomic=true", "?atomic=true&action=upsert"])
def test_an_atomic_batch_and_a_streaming_one_with_the_same_ids_both_finish(
    api_token, monkeypatch, mode
):
    """Two clients send user 500 and order 900 for them at once, one in the default streaming
    mode, the other atomic. The streaming batch has order 900 written, uncommitted, waiting for
    its users; the atomic one writes user 500 first. On PostgreSQL the streaming users writer
    then waited for the atomic batch's user 500, and the atomic batch for the streaming order
    900, forever (the streaming orders transaction waits for its users writer, which no server
    can see). The atomic batch waits for the order writers already running before it writes
    anything, so one of them goes first, the other finds the ids taken."""
    client = token_client(api_token)
    post(client, {"products": [{"id": 1, "name": "P", "price": "1.00"}]})
    users = [{"id": 500, "name": "Five", "email": "five@example.com"}]
    orders = [{"id": 900, "user_id": 500, "product_id": 1, "quantity": 1}]
    real_insert = user_services.users_bulk_insert
    atomic_wrote_users = threading.Event()

    def insert_users(rows, **kwargs):
        if threading.current_thread().name.startswith("ingest-users"):  # the streaming batch
            atomic_wrote_users.wait(1)  # its orders are written and wait for these users
            return real_insert(rows, **kwargs)
        ids = real_insert(rows, **kwargs)
        atomic_wrote_users.set()
        return ids

    monkeypatch.setattr(user_services, "users_bulk_insert", insert_users)
    streaming = Request(lambda: post(client, {"users": users, "orders": orders}))
    atomic = Request(lambda: post(client, {"users": users, "orders": orders}, mode))
    streaming.start()
    time.sleep(0.5)  # the streaming batch's order 900 is written, waiting for its users
    atomic.start()
    finish_or_fail([streaming, atomic], "the streaming and the atomic batch")

    # The streaming batch went first (its orders transaction was open when the other began).
    first = streaming.result().json()
    assert (first["users"]["inserted_ids"], first["orders"]["inserted_ids"]) == ([500], [900])
    second = atomic.result()
    if "upsert" in mode:
        assert second.status_code == 200
        body = second.json()
        assert (body["users"]["updated_ids"], body["orders"]["updated_ids"]) == ([500], [900])
    else:
        assert second.status_code == 422  # the ids are taken: nothing of it is written
        assert second.json()["orders"]["skipped"] == 1
    assert list(User.objects.values_list("id", flat=True)) == [500]
    assert list(Order.objects.values_list("id", "user_id")) == [(900, 500)]
    assert list(dangling_orders()) == []
