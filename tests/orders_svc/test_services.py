"""The orders service checks references with one query per set of ids, never one per order."""

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext

from orders_svc import services
from tests.factories import make_product, make_user

pytestmark = pytest.mark.django_db(databases="__all__")


def test_reference_checks_cost_one_query_per_database_per_10000_ids():
    alice, laptop = make_user(), make_product()
    rows = [(None, alice.id if i % 2 else 10_000_000 + i, laptop.id, 1) for i in range(25_000)]
    with (
        CaptureQueriesContext(connections["users"]) as users_queries,
        CaptureQueriesContext(connections["products"]) as products_queries,
    ):
        errors = services.reference_errors(rows)
    assert len(users_queries) == 2  # 12,501 distinct user ids: two IN queries
    assert len(products_queries) == 1  # one distinct product id
    assert len(errors) == 12_500
    assert errors[0] == {"user_id": ["User 10000000 does not exist."]}


def test_bulk_insert_writes_only_orders_with_existing_references():
    alice, laptop = make_user(), make_product()
    ids, errors = services.orders_bulk_insert(
        [(None, alice.id, laptop.id, 2), (None, 999, laptop.id, 1), (None, alice.id, 888, 1)]
    )
    assert ids[0] is not None
    assert ids[1:] == [None, None]
    assert errors == {
        1: {"user_id": ["User 999 does not exist."]},
        2: {"product_id": ["Product 888 does not exist."]},
    }


def test_pending_ids_count_as_existing():
    laptop = make_product()
    errors = services.reference_errors([(None, 42, laptop.id, 1)], pending_user_ids={42})
    assert errors == {}
