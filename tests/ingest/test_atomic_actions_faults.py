"""Atomic batches with actions whose last commit fails: every database exactly as before.

An atomic batch with upserts, updates and deletions (``ingest.phases``) commits users, then
products, then orders, like an insert-only one; its markers list the rows it inserted *and the
earlier state of the rows it replaced, updated or deleted* (``before``), so that an undo deletes
the first and puts the others back (``common.data.changes.undo_marked_batch``). These tests make
the orders commit fail after users and products committed (injected: the same code path as a
full disk or a lost connection) and check what a client sees: the 503's body, every row of every
database right after (the undo at once) or after the recovery (when the undo failed too), and
that the batch sent again ends in exactly the rows one clean run gives.
"""

import json
import sqlite3
import subprocess
import sys
from decimal import Decimal

import pytest
from django.db import OperationalError, connections

from common.data import bulk, changes
from ingest import pipeline
from ingest.records import decode_batch
from orders_svc.models import Order, OrderWriteLedger
from products_svc.models import Product, ProductWriteLedger
from tests import live
from tests.ingest.disks import fill, send
from tests.ingest.faults import DISK_FULL, fail_commit_once, fail_users_delete_once
from users_svc.models import User, UserWriteLedger

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True, reset_sequences=True)


def post(api, body, query="?atomic=true", **headers):
    return api.generic(
        "POST", f"/ingest/{query}", json.dumps(body), content_type="application/json", **headers
    )


#: Users 1-4, products 1-4 and orders 1-3 (user 4 and product 4 without an order).
SEED = {
    "users": [{"id": i, "name": f"User {i}", "email": f"u{i}@example.com"} for i in range(1, 5)],
    "products": [
        {"id": 1, "name": "Laptop", "price": "999.99"},
        {"id": 2, "name": "Mouse", "price": "25.10"},
        {"id": 3, "name": "Cable", "price": "0.01"},
        {"id": 4, "name": "Plug", "price": "3.50"},
    ],
    "orders": [
        {"id": 1, "user_id": 1, "product_id": 1, "quantity": 1},
        {"id": 2, "user_id": 3, "product_id": 3, "quantity": 2},
        {"id": 3, "user_id": 2, "product_id": 2, "quantity": 3},
    ],
}


def seed(api) -> None:
    """SEED, written by an ordinary ingest."""
    response = post(api, SEED, query="")
    assert response.status_code == 200
    assert response.json()["errors"] is False, response.json()


#: Every action on every type: replaced, updated, deleted and inserted rows (with and without
#: an id); order 2 deleted in phase 1, user 4 and product 4 (no order points at them) in phase
#: 4. (An atomic batch cannot delete a user whose only order it deletes itself: its users commit
#: first, see ingest.phases; tests/ingest/test_actions.py has that refusal.)
MIXED = {
    "users": [
        {"id": 1, "name": "Alice", "email": "alice@example.com", "action": "upsert"},
        {"id": 2, "name": "Bob", "action": "update"},
        {"id": 4, "action": "delete"},
        {"id": 9, "name": "Nine", "email": "nine@example.com", "action": "upsert"},
        {"name": "Carol", "email": "carol@example.com"},
    ],
    "products": [
        {"id": 1, "price": "1234567890.12", "action": "update"},
        {"id": 2, "name": "Mouse 2", "price": "19.9", "action": "upsert"},
        {"id": 4, "action": "delete"},
        {"id": 7, "name": "Seven", "price": "7"},
    ],
    "orders": [
        {"id": 2, "action": "delete"},
        {"id": 3, "quantity": 5, "action": "update"},
        {"id": 1, "user_id": 9, "product_id": 7, "quantity": 4, "action": "upsert"},
        {"user_id": 2, "product_id": 1, "quantity": 1},
    ],
}


def stored() -> tuple[list, list, list]:
    """Every row of the three tables, ids included."""
    return (
        list(User.objects.order_by("id").values_list("id", "name", "email")),
        list(Product.objects.order_by("id").values_list("id", "name", "price")),
        list(Order.objects.order_by("id").values_list("id", "user_id", "product_id", "quantity")),
    )


SEEDED = (
    [(i, f"User {i}", f"u{i}@example.com") for i in range(1, 5)],
    [
        (1, "Laptop", Decimal("999.99")),
        (2, "Mouse", Decimal("25.10")),
        (3, "Cable", Decimal("0.01")),
        (4, "Plug", Decimal("3.50")),
    ],
    [(1, 1, 1, 1), (2, 3, 3, 2), (3, 2, 2, 3)],
)


#: The ids the seed and MIXED give; any other was assigned by a database.
CHOSEN_IDS = {"users": {1, 2, 3, 4, 9}, "orders": {1, 2, 3}}


def after_one_clean_run() -> tuple[list, list, list]:
    """What one run of MIXED leaves, but the ids the databases assign (Carol's, the new
    order's: a failed batch used some up on PostgreSQL, where a sequence never goes back)."""
    users, products, orders = stored()
    return (
        [row if row[0] in CHOSEN_IDS["users"] else ("new", *row[1:]) for row in users],
        products,
        [row if row[0] in CHOSEN_IDS["orders"] else ("new", *row[1:]) for row in orders],
    )


CLEAN = (
    [
        (1, "Alice", "alice@example.com"),
        (2, "Bob", "u2@example.com"),
        (3, "User 3", "u3@example.com"),
        (9, "Nine", "nine@example.com"),
        ("new", "Carol", "carol@example.com"),
    ],
    [
        (1, "Laptop", Decimal("1234567890.12")),
        (2, "Mouse 2", Decimal("19.90")),
        (3, "Cable", Decimal("0.01")),
        (7, "Seven", Decimal("7.00")),
    ],
    [(1, 9, 7, 4), (3, 2, 2, 5), ("new", 2, 1, 1)],
)


def markers() -> list[str]:
    return [
        key
        for ledger in (UserWriteLedger, ProductWriteLedger, OrderWriteLedger)
        for key in ledger.objects.filter(key__startswith="atomic:").values_list("key", flat=True)
    ]


def fail_users_restore_once(monkeypatch) -> None:
    """The next write of users' earlier rows back by an undo (its second step, after the
    deletion of the inserted rows) fails."""
    real_put_back = changes.put_back
    failed = []

    def put_back(model, earlier, written):
        if model is User and not failed:
            failed.append(True)
            raise OperationalError(DISK_FULL)
        return real_put_back(model, earlier, written)

    monkeypatch.setattr(changes, "put_back", put_back)


def test_one_clean_run_of_the_mixed_batch(api):
    """The reference the other tests compare with: what MIXED does when nothing fails."""
    seed(api)
    assert stored() == SEEDED
    response = post(api, MIXED)
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["committed"] is True
    assert (body["users"]["inserted"], body["users"]["updated"], body["users"]["deleted"]) == (
        2,
        2,
        1,
    )
    assert after_one_clean_run() == CLEAN
    assert markers() == []


@pytest.mark.parametrize("failing", ["orders", "products"])
def test_a_failed_commit_whose_undo_succeeds_leaves_every_database_as_before(
    api, monkeypatch, failing
):
    seed(api)
    fail_commit_once(monkeypatch, failing)
    response = post(api, MIXED)
    monkeypatch.undo()

    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "unavailable"
    assert body["detail"].startswith(
        f"atomic=true: the {failing} database failed while committing ({DISK_FULL})"
    )
    assert "so nothing was kept" in body["detail"]
    assert body["left_behind"] == {}
    assert body["not_restored"] == {}
    # Alice and Bob have their old names back, user 3 and product 3 are there again, with
    # their prices to the cent; users 9 and Carol, product 7 are gone.
    assert stored() == SEEDED
    assert markers() == []

    again = post(api, MIXED)
    assert again.status_code == 200, again.json()
    assert after_one_clean_run() == CLEAN
    assert markers() == []


@pytest.mark.parametrize("step", ["delete", "restore"])
def test_a_failed_commit_whose_undo_fails_too_is_undone_by_the_recovery(api, monkeypatch, step):
    seed(api)
    fail_commit_once(monkeypatch, "orders")
    (fail_users_delete_once if step == "delete" else fail_users_restore_once)(monkeypatch)
    response = post(api, MIXED)
    monkeypatch.undo()

    assert response.status_code == 503
    body = response.json()
    carol = User.objects.get(email="carol@example.com").id
    # Still as the batch left them: inserted rows stored, the others not put back yet. The
    # users undo failed first, so the products one was not tried (one batch, undone whole).
    assert body["left_behind"] == {"users": sorted([9, carol]), "products": [7]}
    assert body["not_restored"] == {"users": [1, 2, 4], "products": [1, 2, 4]}
    assert "the orders database failed while committing" in body["detail"]
    assert "2 users and 1 product of this batch are still stored" in body["detail"]
    assert (
        "3 users and 3 products it replaced, updated or deleted are not put back"
        in (body["detail"])
    )
    assert "will be undone automatically" in body["detail"]
    users, products, orders = stored()
    assert [row[0] for row in users] == sorted([1, 2, 3, 9, carol])
    assert [row[0] for row in products] == [1, 2, 3, 7]
    assert orders == SEEDED[2]  # the orders transaction never committed

    assert pipeline.finish_interrupted_atomic_batches() == 1
    assert stored() == SEEDED
    assert markers() == []

    again = post(api, MIXED)
    assert again.status_code == 200, again.json()
    assert after_one_clean_run() == CLEAN
    assert markers() == []


def test_a_batch_resent_while_its_undo_is_pending_is_written_once(api, monkeypatch):
    """The re-sent batch runs the recovery first (every ingest does), then goes in whole."""
    seed(api)
    fail_commit_once(monkeypatch, "orders")
    fail_users_restore_once(monkeypatch)
    assert post(api, MIXED).status_code == 503
    monkeypatch.undo()

    again = post(api, MIXED)

    assert again.status_code == 200, again.json()
    assert after_one_clean_run() == CLEAN
    assert markers() == []


def test_an_atomic_batch_of_updates_and_deletions_only_says_what_is_not_put_back(api, monkeypatch):
    """Nothing inserted: the marker lists no ids, only earlier rows. The 503 must not say that
    nothing was kept while users stay renamed and deleted."""
    seed(api)
    fail_commit_once(monkeypatch, "orders")
    fail_users_restore_once(monkeypatch)
    response = post(
        api,
        {
            "users": [
                {"id": 1, "name": "Alice", "action": "update"},
                {"id": 4, "action": "delete"},
            ],
            "orders": [{"id": 3, "quantity": 9, "action": "update"}],
        },
    )
    monkeypatch.undo()

    body = response.json()
    assert response.status_code == 503
    assert body["left_behind"] == {}
    assert body["not_restored"] == {"users": [1, 4]}
    assert "nothing was kept" not in body["detail"]
    assert "2 users it replaced, updated or deleted are not put back" in body["detail"]
    assert stored()[0] == [
        (1, "Alice", "u1@example.com"),
        (2, "User 2", "u2@example.com"),
        (3, "User 3", "u3@example.com"),
    ]

    assert pipeline.finish_interrupted_atomic_batches() == 1
    assert stored() == SEEDED
    assert markers() == []


# --- writes made between the failed commit and the undo are kept ---------------------------


def test_rows_changed_after_the_batch_committed_them_keep_the_later_change(api, monkeypatch):
    """Between the users commit and the recovery, the batch's users are ordinary rows: a
    client renames user 1 (which the batch replaced) and stores a new user 4 (which it
    deleted), and both get a 200. The undo must not take those writes back; the rows nobody
    touched are put back as before."""
    seed(api)
    fail_commit_once(monkeypatch, "orders")
    real_delete = bulk.delete_ids

    def delete_ids(model, ids):  # every undo fails until the test lifts the fault
        if model is User:
            raise OperationalError(DISK_FULL)
        return real_delete(model, ids)

    monkeypatch.setattr(bulk, "delete_ids", delete_ids)
    assert post(api, MIXED).status_code == 503

    renamed = api.put("/users/1/", {"name": "Later", "email": "later@example.com"}, format="json")
    assert renamed.status_code == 200, renamed.json()
    again = post(api, {"users": [{"id": 4, "name": "New 4", "email": "n4@example.com"}]}, "")
    assert again.json()["users"]["inserted_ids"] == [4], again.json()  # its undo failed first
    monkeypatch.undo()

    assert pipeline.finish_interrupted_atomic_batches() == 1

    users, products, orders = stored()
    assert users == [
        (1, "Later", "later@example.com"),
        (2, "User 2", "u2@example.com"),  # Bob again
        (3, "User 3", "u3@example.com"),
        (4, "New 4", "n4@example.com"),
    ]
    assert (products, orders) == SEEDED[1:]
    assert markers() == []


# --- a re-run of a batch that was complete ----------------------------------------------------


def test_a_rerun_of_a_complete_job_whose_commit_fails_takes_nothing_of_the_first_run_back(
    api, monkeypatch
):
    """A job's atomic batch committed everywhere, then its worker died before the job was
    marked done: the job runs again under the same ledger key, and every chunk's recorded
    outcome is reused (nothing written twice). If a commit of that second run fails, its undo
    must not delete the rows the first run inserted (nor drop the first run's ledger rows):
    the second run inserted nothing."""
    seed(api)
    batch = decode_batch(json.dumps(MIXED).encode())
    first = pipeline.ingest(batch, atomic=True, ledger_key="job:rerun")
    assert not first.rejected
    clean = after_one_clean_run()
    assert clean == CLEAN

    fail_commit_once(monkeypatch, "orders")
    with pytest.raises(pipeline.WriteFailed) as failed:
        pipeline.ingest(
            decode_batch(json.dumps(MIXED).encode()), atomic=True, ledger_key="job:rerun"
        )
    monkeypatch.undo()

    assert failed.value.left_behind == {}
    assert failed.value.not_restored == {}
    assert after_one_clean_run() == CLEAN
    assert markers() == []
    again = pipeline.ingest(
        decode_batch(json.dumps(MIXED).encode()), atomic=True, ledger_key="job:rerun"
    )
    assert again.users.inserted_ids == first.users.inserted_ids  # the recorded outcome
    assert after_one_clean_run() == CLEAN


# --- a real full disk ------------------------------------------------------------------------


def test_a_full_disk_under_the_orders_database(api_token, small_disk):
    """The orders database alone on a full disk: users and products commit (the batch renamed,
    replaced, deleted and inserted some), the orders commit fails for want of room in the WAL
    (30,000 new orders, in SQLite's page cache until then), and users and products are put back
    at once. With room again, the batch sent again is written exactly once."""
    if connections["orders"].vendor != "sqlite":
        pytest.skip("the disk test puts a SQLite file on the small disk")
    orders_db = small_disk / "orders.db"
    urls = {"ORDERS_DATABASE_URL": f"sqlite:///{orders_db}"}
    migrated = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--database", "orders", "-v", "0"],
        cwd=live.ROOT,
        env=live.process_env(**urls),
        capture_output=True,
        text=True,
    )
    assert migrated.returncode == 0, migrated.stderr
    batch = {
        **MIXED,
        "orders": MIXED["orders"]
        + [{"user_id": 2, "product_id": 1, "quantity": 1} for _ in range(30_000)],
    }

    def orders() -> list[tuple]:
        with sqlite3.connect(orders_db) as connection:
            return connection.execute(
                "SELECT id, user_id, product_id, quantity FROM orders ORDER BY id"
            ).fetchall()

    with live.gunicorn(workers=1, threads=2, **urls) as (url, _):
        status, body = send(f"{url}/ingest/", SEED, api_token, "seed")
        assert status == 200, body
        filler = fill(small_disk, leave=256 * 1024)
        status, body = send(f"{url}/ingest/?atomic=true", batch, api_token, "full-disk")
        users_and_products = stored()[:2]
        orders_after_failure = orders()
        filler.unlink()
        again, second = send(f"{url}/ingest/?atomic=true", batch, api_token, "full-disk")

    assert status == 503, body
    assert body["detail"].startswith(
        f"atomic=true: the orders database failed while committing ({DISK_FULL})"
    )
    assert "so nothing was kept" in body["detail"]
    assert (body["left_behind"], body["not_restored"]) == ({}, {})
    assert users_and_products == SEEDED[:2]
    assert orders_after_failure == SEEDED[2]

    assert again == 200, second
    assert (second["users"]["inserted"], second["orders"]["inserted"]) == (2, 30_001)
    assert after_one_clean_run()[:2] == CLEAN[:2]
    stored_orders = orders()
    assert stored_orders[:2] == [(1, 9, 7, 4), (3, 2, 2, 5)]
    assert len(stored_orders) == 30_003
    with sqlite3.connect(orders_db) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert markers() == []
