"""The bulk write path (common.data.bulk) through the services that use it: every row stored once,
duplicates reported where they are, values stored as the ORM stores them.

On SQLite a chunk goes in as few multi-row statements as SQLite's limit on parameters allows;
these tests lower that limit so that a handful of rows already needs several statements.
"""

import sqlite3
from decimal import Decimal

import pytest
from django.db import IntegrityError, connections

from common.data import bulk
from ingest import pipeline
from ingest.records import decode_batch
from orders_svc.models import Order
from orders_svc.services import KnownReferences, orders_bulk_insert
from products_svc.models import Product
from products_svc.services import product_create, products_bulk_insert
from tests.live import products_write_lock
from users_svc.models import User
from users_svc.services import user_create, users_bulk_insert

pytestmark = pytest.mark.django_db(databases="__all__")


@pytest.fixture
def few_parameters_per_statement():
    """SQLite takes at most 9 parameters per statement: 3 users or 2 orders."""
    lowered = []
    for alias in ("users", "products", "orders"):
        connection = connections[alias]
        if connection.vendor == "sqlite":
            connection.ensure_connection()
            raw = connection.connection
            lowered.append((raw, raw.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 9)))
    yield
    for raw, limit in lowered:
        raw.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, limit)


def _users(ids):
    return [(i, f"User {i}", f"user{i}@example.com") for i in ids]


@pytest.mark.usefixtures("few_parameters_per_statement")
def test_a_chunk_larger_than_one_statement_is_written_whole():
    assert users_bulk_insert(_users(range(1, 11))) == list(range(1, 11))
    assert list(User.objects.order_by("id").values_list("id", "name", "email")) == _users(
        range(1, 11)
    )


@pytest.mark.usefixtures("few_parameters_per_statement")
def test_a_duplicate_in_a_later_statement_leaves_the_earlier_rows_inserted():
    # Rows 1-3, 4-6, 7-9 and 10 go in four statements; the third one meets the existing user 8.
    users_bulk_insert([(8, "Existing", "existing@example.com")])

    assert users_bulk_insert(_users(range(1, 11))) == [1, 2, 3, 4, 5, 6, 7, None, 9, 10]
    stored = dict(User.objects.values_list("id", "name"))
    assert sorted(stored) == list(range(1, 11))
    assert stored[8] == "Existing"  # a duplicate is skipped, never overwritten


@pytest.mark.usefixtures("few_parameters_per_statement")
def test_rows_without_an_id_get_new_ids_across_statements():
    user_create(name="First", email="first@example.com")
    rows = [(None, f"New {n}", f"new{n}@example.com") for n in range(5)]

    ids = users_bulk_insert(rows)

    assert len(set(ids)) == 5
    assert min(ids) > 1
    assert User.objects.count() == 6


@pytest.mark.usefixtures("few_parameters_per_statement")
def test_orders_over_several_statements_are_written_whole():
    users_bulk_insert(_users([1]))
    products_bulk_insert([(1, "Lamp", Decimal("10.00"))])
    rows = [(i, 1, 1, i) for i in range(1, 8)]  # 2 orders per statement

    outcome = orders_bulk_insert([rows], references_ready=KnownReferences)

    assert outcome == [(list(range(1, 8)), {})]
    assert list(Order.objects.order_by("id").values_list("id", "quantity")) == [
        (i, i) for i in range(1, 8)
    ]


def test_prices_are_stored_as_the_orm_stores_them():
    prices = [Decimal("19.99"), Decimal("0.10"), Decimal("12345678.91"), Decimal("0.01")]
    for n, price in enumerate(prices):
        product_create(name=f"By hand {n}", price=price)
    by_hand = list(Product.objects.order_by("id").values_list("price", flat=True))

    products_bulk_insert([(None, f"In bulk {n}", price) for n, price in enumerate(prices)])

    in_bulk = list(
        Product.objects.filter(name__startswith="In bulk")
        .order_by("id")
        .values_list("price", flat=True)
    )
    assert in_bulk == by_hand == prices


@pytest.fixture
def an_assigned_id_is_taken(monkeypatch):
    """The first id a chunk is handed is already in the table, as if another writer had just
    taken it (PostgreSQL: a ``nextval`` that slipped past the sequence being raised)."""
    real = bulk._assign_ids

    def racing(connection, model, rows, ids_above):
        assigned = real(connection, model, rows, ids_above)
        if assigned is None:
            return None
        filled, handed_out, unassigned = assigned
        stolen = model._default_manager.order_by("id").values_list("id", flat=True).first()
        first = next(i for i, row in enumerate(filled) if row[0] in handed_out)
        handed_out = (set(handed_out) - {filled[first][0]}) | {stolen}
        filled[first] = (stolen, *filled[first][1:])
        return filled, handed_out, unassigned

    monkeypatch.setattr(bulk, "_assign_ids", racing)


@pytest.mark.usefixtures("an_assigned_id_is_taken")
def test_an_assigned_id_someone_else_took_fails_the_chunk_instead_of_a_duplicate():
    users_bulk_insert(_users([1]))
    rows = [(None, f"New {n}", f"new{n}@example.com") for n in range(3)]

    with pytest.raises(IntegrityError):
        bulk.insert_new(User, rows)

    # The chunk is one transaction: nothing of it stayed, and user 1 is untouched.
    assert list(User.objects.values_list("id", "name")) == [(1, "User 1")]


@pytest.mark.usefixtures("an_assigned_id_is_taken")
@pytest.mark.django_db(databases="__all__", transaction=True)  # the writers' own connections
def test_the_ingest_reports_such_a_chunk_as_not_written_and_a_resend_writes_it(monkeypatch):
    users_bulk_insert(_users([1]))
    body = b'{"users": [%s]}' % b", ".join(
        b'{"name": "New %d", "email": "new%d@example.com"}' % (n, n) for n in range(3)
    )

    result = pipeline.ingest(decode_batch(body))

    assert result.users.inserted_ids == []
    assert [index for index, _, _ in result.users.skipped] == [0, 1, 2]
    for _, _, reasons in result.users.skipped:
        (message,) = reasons["non_field_errors"]
        assert "Not written" in message
        assert "send these records again" in message
        assert "Duplicate id" not in message
    assert User.objects.count() == 1

    monkeypatch.undo()  # the race is over: sending the records again writes them
    again = pipeline.ingest(decode_batch(body))
    assert len(again.users.inserted_ids) == 3
    assert not again.users.skipped
    assert sorted(User.objects.values_list("email", flat=True)) == [
        "new0@example.com",
        "new1@example.com",
        "new2@example.com",
        "user1@example.com",
    ]


@pytest.mark.usefixtures("id_counters_restored")
def test_rows_without_an_id_past_the_last_id_left_get_none_and_the_others_are_written():
    """None for a row that came without an id: no id was left for it (not a duplicate)."""
    largest = 2**63 - 1
    users_bulk_insert([(largest - 1, "Near", "near@example.com")])
    stored = users_bulk_insert(
        [
            (None, "Gets the last", "a@example.com"),
            (5, "Own id", "five@example.com"),
            (None, "Gets none", "b@example.com"),
            (largest - 1, "Duplicate", "d@example.com"),
        ]
    )
    assert stored == [largest, 5, None, None]
    assert list(User.objects.order_by("id").values_list("id", "name")) == [
        (5, "Own id"),
        (largest - 1, "Near"),
        (largest, "Gets the last"),
    ]


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_forgetting_a_ledger_takes_no_lock_where_it_has_no_rows():
    # A request that wrote only users forgets its ledger in every service's database. Where it
    # has no rows, it must not wait for another request's transaction (on SQLite the write lock
    # is the whole file's): two requests of 50,000 users and of 50,000 products at once both
    # answered after 0.45 s, when either alone takes 0.23 s.
    products = connections["products"]
    if products.vendor != "sqlite":
        pytest.skip("on PostgreSQL a delete that finds nothing waits for no one")
    with products_write_lock():
        products.ensure_connection()
        products.connection.execute("PRAGMA busy_timeout = 0")  # locked: fail, do not wait
        try:
            pipeline.forget_ledger("a-request-that-wrote-no-products")
        finally:
            products.close()  # the next test's connection waits as configured
