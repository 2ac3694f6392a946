"""Dry runs and atomic batches with actions hold a transaction in each database: no lock cycle.

A batch of ``ingest.phases`` run as a dry run or atomically holds its three transactions (orders,
products, users) from its first write to its end, taking row locks in users and products in
phase 2 and the orders table's locks in phases 1, 3 and 4. A single user's deletion takes the
deletion guard's SHARE lock on orders, then deletes in users. If the batch took its orders lock
only in phase 3, the two could wait on each other across two databases: the batch (in orders)
for the guard, the guard's deletion (in users) for the batch's row lock. PostgreSQL sees each
database's waits, not a cycle that runs through a client holding connections to two of them,
so neither would ever be told: both would hang. The batch takes its orders lock first, as
deletion guards and atomic inserts do, so the deletion waits before it locks anything in users.

PostgreSQL only: on SQLite every transaction takes its file's write lock when it begins.
"""

import json
import threading
import time

import pytest
from django.db import connections

from ingest import phases, pipeline
from ingest.records import decode_batch
from ingest.resources import ORDERS
from orders_svc import services as order_services
from orders_svc.models import Order
from tests.factories import make_product, make_user
from users_svc import services as user_services
from users_svc.models import User

pytestmark = [
    pytest.mark.django_db(databases="__all__", transaction=True, reset_sequences=True),
    pytest.mark.skipif(
        connections["users"].vendor != "postgresql", reason="PostgreSQL's row and table locks"
    ),
]


def backends_waiting_on_locks() -> list[int]:
    """The server processes of the test databases that wait for a lock (not an advisory one)."""
    names = [connections[alias].settings_dict["NAME"] for alias in ("users", "orders")]
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND wait_event <> 'advisory' AND datname = ANY(%s)",
            [names],
        )
        return [row[0] for row in cursor.fetchall()]


def cancel(pids: list[int]) -> None:
    with connections["default"].cursor() as cursor:
        for pid in pids:
            cursor.execute("SELECT pg_cancel_backend(%s)", [pid])


def in_thread(outcome: dict, name: str, work) -> threading.Thread:
    def run():
        try:
            outcome[name] = work()
        except Exception as exc:  # the test looks at it
            outcome[name] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def until(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("mode", ["atomic", "dry_run"])
def test_a_user_deletion_during_a_held_batch_waits_for_it_instead_of_hanging_both(
    monkeypatch, mode
):
    for number in range(1, 6):
        make_user(name=f"User {number}", email=f"u{number}@example.com")
    make_product()
    # Phase 2 updates user 5 (a row lock in users); phase 3 inserts an order (the orders lock).
    batch = {
        "users": [{"id": 5, "name": "Five", "action": "update"}],
        "orders": [{"user_id": 1, "product_id": 1, "quantity": 1}],
    }
    paused, resume = threading.Event(), threading.Event()
    real_step = phases._write_step

    def write_step(section, resource, action, run, **kwargs):
        if resource is ORDERS and action != "delete" and not paused.is_set():
            paused.set()  # after phase 2, before phase 3
            assert resume.wait(30)
        return real_step(section, resource, action, run, **kwargs)

    monkeypatch.setattr(phases, "_write_step", write_step)
    outcome: dict = {}
    batch_thread = in_thread(
        outcome,
        "batch",
        lambda: pipeline.ingest(
            decode_batch(json.dumps(batch).encode()), **{mode: True, "action": "insert"}
        ),
    )
    assert paused.wait(30), "the batch never reached phase 3"
    deletion = in_thread(
        outcome, "deletion", lambda: user_services.user_delete(User.objects.get(id=5))
    )
    try:
        assert until(lambda: backends_waiting_on_locks(), 10), "the deletion did not wait"
        resume.set()
        batch_thread.join(timeout=10)
        hung = batch_thread.is_alive()
    finally:
        resume.set()
        if batch_thread.is_alive():
            cancel(backends_waiting_on_locks())  # break the cycle, or the test run hangs too
        batch_thread.join(timeout=30)
        deletion.join(timeout=30)

    assert not hung, "the batch and the deletion waited on each other"
    result = outcome["batch"]
    assert not isinstance(result, Exception), result
    assert result.errors is False
    assert outcome["deletion"] is None  # deleted once the batch was done
    assert not User.objects.filter(id=5).exists()
    assert Order.objects.count() == (1 if mode == "atomic" else 0)


@pytest.mark.parametrize("mode", ["atomic", "dry_run"])
def test_a_held_batch_with_deletions_and_a_plain_ingest_waiting_on_it_do_not_hang(
    monkeypatch, mode
):
    """A plain ingest holds its orders transaction (the orders writers' lock) while it waits
    for its users to commit (``orders_bulk_insert``'s ``references_ready``); its users wait for
    the batch, which updated one of them. If the batch took the deletion guards' SHARE lock only
    in phase 4, it would wait there for that orders transaction: the same cycle across two
    databases. A batch with deletions of users or products takes it first."""
    for number in range(1, 6):
        make_user(name=f"User {number}", email=f"u{number}@example.com")
    make_product()
    make_product(name="Cable", price="1.00")
    batch = {
        "users": [{"id": 5, "name": "Five", "action": "update"}],
        "products": [{"id": 2, "action": "delete"}],
    }
    paused, resume = threading.Event(), threading.Event()
    real_step = phases._write_step

    def write_step(section, resource, action, run, **kwargs):
        if resource is ORDERS and action != "delete" and not paused.is_set():
            paused.set()  # after phase 2 (user 5 updated, not committed), before phase 4
            assert resume.wait(30)
        return real_step(section, resource, action, run, **kwargs)

    monkeypatch.setattr(phases, "_write_step", write_step)
    outcome: dict = {}
    batch_thread = in_thread(
        outcome,
        "batch",
        lambda: pipeline.ingest(
            decode_batch(json.dumps(batch).encode()), **{mode: True, "action": "insert"}
        ),
    )
    assert paused.wait(30), "the batch never reached phase 3"

    users_written = threading.Event()

    def plain_users():  # a plain ingest's users writer: user 5 again (it waits for the batch)
        try:
            return user_services.users_bulk_insert([(5, "Again", "again@example.com")])
        finally:
            users_written.set()

    def plain_orders():  # its orders writer, which waits for the users before it commits
        def references_ready():
            in_thread(outcome, "plain users", plain_users)
            assert users_written.wait(60)
            return order_services.KnownReferences()

        return order_services.orders_bulk_insert(
            [[(None, 1, 1, 1)]], references_ready=references_ready
        )

    plain = in_thread(outcome, "plain orders", plain_orders)
    try:
        assert until(lambda: backends_waiting_on_locks(), 10), "the plain ingest did not wait"
        resume.set()
        batch_thread.join(timeout=10)
        hung = batch_thread.is_alive()
    finally:
        resume.set()
        if batch_thread.is_alive():
            cancel(backends_waiting_on_locks())  # break the cycle, or the test run hangs too
        batch_thread.join(timeout=30)
        plain.join(timeout=30)

    assert not hung, "the batch and the plain ingest waited on each other"
    result = outcome["batch"]
    assert not isinstance(result, Exception), result
    assert result.errors is False
    assert outcome["plain users"] == [None]  # user 5 exists: a duplicate
    assert not isinstance(outcome["plain orders"], Exception), outcome["plain orders"]
    assert Order.objects.count() == 1
    assert User.objects.get(id=5).name == ("Five" if mode == "atomic" else "User 5")
