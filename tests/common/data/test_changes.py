"""The bulk SQL of ``common.data.changes`` on the database the suite runs on (SQLite or
PostgreSQL): what each function stores and answers, prices to the cent, and on PostgreSQL what
concurrent transactions do to it (a racing insert, two upserts locking rows in opposite orders,
temporary tables inside savepoints).
"""

import threading
from decimal import Decimal

import pytest
from django.db import DatabaseError, OperationalError, connections, transaction
from msgspec import UNSET

from common.data import changes
from products_svc.models import PRODUCTS_DB, Product
from products_svc.rules import check_product
from users_svc.models import USERS_DB, User

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True, reset_sequences=True)

postgresql_only = pytest.mark.skipif(
    connections["users"].vendor != "postgresql", reason="concurrent writers: PostgreSQL"
)


def users() -> list[tuple]:
    return list(User.objects.order_by("id").values_list("id", "name", "email"))


def products() -> list[tuple]:
    return list(Product.objects.order_by("id").values_list("id", "name", "price"))


def add_users(*ids: int) -> None:
    User.objects.bulk_create(User(id=i, name=f"User {i}", email=f"u{i}@example.com") for i in ids)


PRICES = [Decimal("0.01"), Decimal("19.90"), Decimal("1234567890.12"), Decimal("9999999999.99")]


# --- what each function does ------------------------------------------------------------------


def test_upsert_rows_inserts_replaces_and_says_which_ids_were_stored():
    add_users(1, 2)
    with transaction.atomic(using=USERS_DB):
        existed = changes.upsert_rows(User, [(2, "Two", "two@example.com"), (5, "Five", "f@x.io")])
    assert existed == {2}
    assert users() == [
        (1, "User 1", "u1@example.com"),
        (2, "Two", "two@example.com"),
        (5, "Five", "f@x.io"),
    ]
    # A user created afterwards gets an id above the upserted ones (the sequence, on PostgreSQL).
    assert User.objects.create(name="Next", email="n@example.com").id == 6


def test_upserted_and_stored_prices_round_trip_to_the_cent():
    rows = [(i, f"P{i}", price) for i, price in enumerate(PRICES, start=1)]
    with transaction.atomic(using=PRODUCTS_DB):
        changes.upsert_rows(Product, rows)
    with transaction.atomic(using=PRODUCTS_DB):
        stored = changes.stored_rows(Product, [1, 2, 3, 4, 99], ["name", "price"])
    assert stored == {i: (f"P{i}", price) for i, price in enumerate(PRICES, start=1)}
    assert all(type(price) is Decimal for _, price in stored.values())
    assert [str(price) for _, price in stored.values()] == [str(p) for p in PRICES]


def test_an_update_of_names_only_keeps_every_stored_price_as_it_was():
    """The merged record is checked by the product rule with the stored price in it: a price
    read back as a float (SQLite) must come back as the decimal that was stored."""
    rows = [(i, f"P{i}", price) for i, price in enumerate(PRICES, start=1)]
    with transaction.atomic(using=PRODUCTS_DB):
        changes.upsert_rows(Product, rows)
    patches = [(i, f"Renamed {i}", UNSET) for i in range(1, len(PRICES) + 1)]
    before: list = []
    with transaction.atomic(using=PRODUCTS_DB):
        ids, errors, _ = changes.apply_updates(
            Product, patches, rule=check_product, not_found={}, before=before
        )
    assert errors == {}
    assert ids == [1, 2, 3, 4]
    assert products() == [(i, f"Renamed {i}", price) for i, price in enumerate(PRICES, start=1)]
    assert before == [((i, f"P{i}", p), (i, f"Renamed {i}", p)) for i, p in enumerate(PRICES, 1)]


def test_delete_returning_says_which_ids_existed():
    add_users(1, 2, 3)
    with transaction.atomic(using=USERS_DB):
        assert changes.delete_returning(User, [3, 1, 7]) == {1, 3}
    assert users() == [(2, "User 2", "u2@example.com")]


def test_an_upsert_in_a_savepoint_rolled_back_leaves_the_next_one_working():
    """On PostgreSQL the first upsert of a connection creates its temporary staging table; in a
    savepoint that is rolled back, the table goes too, and the next upsert must make it again
    (and find no rows of the first in it)."""
    with transaction.atomic(using=USERS_DB):
        try:
            with transaction.atomic(using=USERS_DB):
                changes.upsert_rows(User, [(1, "Gone", "gone@example.com")])
                raise OperationalError("the chunk failed")
        except OperationalError:
            pass
        changes.upsert_rows(User, [(2, "Kept", "kept@example.com")])
    with transaction.atomic(using=USERS_DB):  # a later transaction on the same connection
        changes.upsert_rows(User, [(3, "Also", "also@example.com")])
    assert users() == [(2, "Kept", "kept@example.com"), (3, "Also", "also@example.com")]


# --- putting earlier rows back (the undo of an atomic batch) --------------------------------


def test_put_back_restores_deleted_and_changed_rows_that_nobody_touched_since():
    add_users(1, 2, 3, 4)
    # The batch deleted user 3 and 4 and replaced users 1 and 2 with these:
    User.objects.filter(id__in=[3, 4]).delete()
    User.objects.filter(id=1).update(name="Batch 1")
    User.objects.filter(id=2).update(name="Batch 2")
    # Since then a client renamed user 2 and stored a new user 4.
    User.objects.filter(id=2).update(name="Later 2")
    User.objects.create(id=4, name="New 4", email="n4@example.com")

    earlier = [[i, f"User {i}", f"u{i}@example.com"] for i in (1, 2, 3, 4)]
    written = [[1, "Batch 1", "u1@example.com"], [2, "Batch 2", "u2@example.com"]]
    with transaction.atomic(using=USERS_DB):
        left = changes.put_back(User, earlier, written)

    assert left == 2  # user 2 and user 4 keep the later writes
    assert users() == [
        (1, "User 1", "u1@example.com"),
        (2, "Later 2", "u2@example.com"),
        (3, "User 3", "u3@example.com"),
        (4, "New 4", "n4@example.com"),
    ]


def test_put_back_takes_prices_as_json_gave_them_back():
    with transaction.atomic(using=PRODUCTS_DB):
        changes.upsert_rows(Product, [(1, "A", Decimal("1234567890.12")), (2, "B", PRICES[0])])
    earlier = [[1, "A", "25.10"], [2, "B", "9999999999.99"], [3, "C", "0.01"]]
    written = [[1, "A", "1234567890.12"], [2, "B", "0.01"]]
    with transaction.atomic(using=PRODUCTS_DB):
        assert changes.put_back(Product, earlier, written) == 0
    assert products() == [
        (1, "A", Decimal("25.10")),
        (2, "B", Decimal("9999999999.99")),
        (3, "C", Decimal("0.01")),
    ]


# --- PostgreSQL: concurrent transactions ----------------------------------------------------


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


def waiting_for_a_lock() -> bool:
    name = connections["users"].settings_dict["NAME"]
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = %s",
            [name],
        )
        return cursor.fetchone()[0] > 0


def wait_until(condition, seconds: float = 10) -> None:
    import time

    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "nothing happened in time"
        time.sleep(0.02)


@postgresql_only
def test_an_upsert_that_meets_a_concurrent_insert_of_its_id_reports_a_replacement():
    """Another transaction inserts id 7 and commits while the upsert waits for it: the upsert
    replaced that row. Said to be an insert, an atomic batch would list id 7 as its own and
    its undo would delete the other transaction's row."""
    holding, release = threading.Event(), threading.Event()
    outcome: dict = {}

    def insert_and_hold():
        with transaction.atomic(using=USERS_DB):
            User.objects.create(id=7, name="Theirs", email="theirs@example.com")
            holding.set()
            assert release.wait(30)

    def upsert():
        with transaction.atomic(using=USERS_DB):
            return changes.upsert_rows(User, [(7, "Ours", "ours@example.com")])

    other = in_thread(outcome, "other", insert_and_hold)
    assert holding.wait(30)
    ours = in_thread(outcome, "ours", upsert)
    wait_until(waiting_for_a_lock)  # the upsert waits on the uncommitted row 7
    release.set()
    other.join(30)
    ours.join(30)

    assert outcome["ours"] == {7}
    assert users() == [(7, "Ours", "ours@example.com")]


@postgresql_only
def test_an_atomic_upsert_that_meets_a_concurrent_insert_refuses_to_go_on():
    """With ``before`` (an atomic batch) the earlier state of every replaced row must be kept;
    a row another transaction stored after it was read cannot be put back, so the chunk fails
    (the batch is a 503 and nothing of it is kept) instead of leaving an undo that cannot undo."""
    holding, release = threading.Event(), threading.Event()
    outcome: dict = {}

    def insert_and_hold():
        with transaction.atomic(using=USERS_DB):
            User.objects.create(id=7, name="Theirs", email="theirs@example.com")
            holding.set()
            assert release.wait(30)

    def upsert():
        with transaction.atomic(using=USERS_DB):
            return changes.apply_upserts(User, [(7, "Ours", "ours@example.com")], before=[])

    other = in_thread(outcome, "other", insert_and_hold)
    assert holding.wait(30)
    ours = in_thread(outcome, "ours", upsert)
    wait_until(waiting_for_a_lock)
    release.set()
    other.join(30)
    ours.join(30)

    assert isinstance(outcome["ours"], DatabaseError), outcome["ours"]
    assert "stored by another request while this batch ran" in str(outcome["ours"])
    assert users() == [(7, "Theirs", "theirs@example.com")]


@postgresql_only
@pytest.mark.parametrize("function", ["upsert_rows", "stored_rows", "delete_returning"])
def test_two_writers_locking_the_same_rows_in_opposite_orders_do_not_deadlock(function):
    """Each statement locks its rows in id order, whatever order the chunk has them in, so a
    transaction that holds row 1 and then wants row 2 never meets one that holds row 2 and
    waits for row 1 (PostgreSQL would abort one of them: a chunk lost for nothing)."""
    add_users(1, 2)
    holding, go_on = threading.Event(), threading.Event()
    outcome: dict = {}

    def first():  # locks row 1, then (once the other waits) row 2
        with transaction.atomic(using=USERS_DB):
            changes.upsert_rows(User, [(1, "First", "first@example.com")])
            holding.set()
            assert go_on.wait(30)
            changes.upsert_rows(User, [(2, "First", "first@example.com")])

    def second():  # rows 2 and 1, in that order, in one statement
        with transaction.atomic(using=USERS_DB):
            if function == "upsert_rows":
                changes.upsert_rows(
                    User, [(2, "Second", "second@example.com"), (1, "Second", "s@example.com")]
                )
            elif function == "stored_rows":
                changes.stored_rows(User, [2, 1], ["name"])
            else:
                changes.delete_returning(User, [2, 1])

    one = in_thread(outcome, "first", first)
    assert holding.wait(30)
    two = in_thread(outcome, "second", second)
    wait_until(waiting_for_a_lock)
    go_on.set()
    one.join(30)
    two.join(30)

    assert outcome["first"] is None, outcome["first"]
    assert outcome["second"] is None, outcome["second"]
