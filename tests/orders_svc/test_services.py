"""The orders service checks references with one query per set of ids, never one per order."""

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext

from orders_svc import services
from orders_svc.models import Order
from tests.factories import make_product, make_user

pytestmark = pytest.mark.django_db(databases="__all__")


def test_reference_checks_cost_one_query_per_database():
    alice, laptop = make_user(), make_product()
    rows = [(None, alice.id if i % 2 else 10_000_000 + i, laptop.id, 1) for i in range(25_000)]
    with (
        CaptureQueriesContext(connections["users"]) as users_queries,
        CaptureQueriesContext(connections["products"]) as products_queries,
    ):
        errors = services.reference_errors(rows)
    # 12,501 distinct user ids: one query for them all, one for the markers of unfinished atomic
    # batches (whose rows do not count yet), however many orders
    assert len(users_queries) == 2
    assert len(products_queries) == 2
    assert len(errors) == 12_500
    assert errors[0] == {"user_id": ["No user has this id."]}


def test_bulk_insert_writes_only_orders_with_existing_references():
    alice, laptop = make_user(), make_product()
    [(ids, errors)] = services.orders_bulk_insert(
        [[(None, alice.id, laptop.id, 2), (None, 999, laptop.id, 1), (None, alice.id, 888, 1)]]
    )
    assert ids[0] is not None
    assert ids[1:] == [None, None]
    assert errors == {
        1: {"user_id": ["No user has this id."]},
        2: {"product_id": ["No product has this id."]},
    }


def test_known_ids_count_as_existing_without_a_lookup():
    laptop = make_product()
    errors = services.reference_errors([(None, 42, laptop.id, 1)], known_user_ids={42})
    assert errors == {}


def test_a_deletion_moves_the_epoch_and_a_refused_one_does_not(api):
    from orders_svc.selectors import deletion_epoch
    from tests.factories import make_order

    alice, bob, laptop = make_user(), make_user("Bob", "bob@example.com"), make_product()
    make_order(alice.id, laptop.id)
    before = deletion_epoch()
    assert api.delete(f"/users/{alice.id}/").status_code == 409
    assert deletion_epoch() == before
    assert api.delete(f"/users/{bob.id}/").status_code == 204
    assert deletion_epoch() == before + 1


def test_known_ids_are_not_trusted_after_a_deletion(api):
    from orders_svc.selectors import deletion_epoch

    bob, laptop = make_user("Bob", "bob@example.com"), make_product()
    epoch = deletion_epoch()
    assert api.delete(f"/users/{bob.id}/").status_code == 204  # e.g. by another client
    known = services.KnownReferences(user_ids={bob.id}, as_of_epoch=epoch)
    [(ids, errors)] = services.orders_bulk_insert(
        [[(None, bob.id, laptop.id, 1)]], references_ready=lambda: known
    )
    assert ids == [None]
    assert errors == {0: {"user_id": ["No user has this id."]}}
    assert not Order.objects.exists()  # written, then taken out again before the commit
    known = services.KnownReferences(user_ids={bob.id}, as_of_epoch=deletion_epoch())
    [(ids, errors)] = services.orders_bulk_insert(
        [[(None, bob.id, laptop.id, 1)]], references_ready=lambda: known
    )
    assert ids[0] is not None  # trusted: no deletion since the caller's reading


def test_a_rerun_reuses_the_recorded_outcome_in_either_ledger_form():
    from common.data import bulk
    from orders_svc.models import OrderWriteLedger

    alice, laptop = make_user(), make_product()
    rows = [(None, alice.id, laptop.id, 2), (None, 999, laptop.id, 1), (None, 998, 888, 1)]
    first = services.orders_bulk_insert([rows], ledger_key="test:orders")
    again = services.orders_bulk_insert([rows], ledger_key="test:orders")  # a re-run
    assert again == first
    assert Order.objects.count() == 1  # nothing written twice
    [(ids, table, positions, which)] = bulk.recorded_outcome((OrderWriteLedger, "test:orders"))
    assert (positions, len(table)) == ([1, 2], 2)  # each distinct reasons once
    # a row recorded by the previous version: (ids, [(position, reasons), ...])
    OrderWriteLedger.objects.filter(key="test:orders").delete()
    bulk.record_outcome((OrderWriteLedger, "old:orders"), [(ids, [[1, {"user_id": ["x"]}]])])
    [(old_ids, errors)] = services.orders_bulk_insert([rows], ledger_key="old:orders")
    assert (old_ids, errors) == (ids, {1: {"user_id": ["x"]}})
