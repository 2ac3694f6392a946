"""POST /ingest/: results per record, modes, limits, and what lands in each database.

Writes happen on worker threads with their own connections, so these tests commit for real
(``transaction=True``) and read the rows back from each database.
"""

import json
import threading

import pytest
from django.db import OperationalError, connections

from ingest.writers import writers_for
from orders_svc.models import Order
from products_svc.models import Product
from tests.factories import make_product, make_user
from tests.ingest.skips import skipped_records
from users_svc import services as user_services
from users_svc.models import User

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True, reset_sequences=True)


def post(api, body, query="", **headers):
    payload = body if isinstance(body, str | bytes) else json.dumps(body)
    return api.generic(
        "POST", f"/ingest/{query}", payload, content_type="application/json", **headers
    )


def rows(model, *fields):
    return list(model.objects.order_by("id").values_list(*fields))


def test_a_mixed_batch_gives_every_record_a_result(api):
    response = post(
        api,
        {
            "users": [
                {"id": 1, "name": "Alice", "email": "alice@example.com"},
                {"id": 10, "name": " ", "email": "jane@example.com"},
                {"name": "Auto", "email": "auto@example.com"},
                ["not", "an", "object"],
            ],
            "products": [
                {"id": 1, "name": "Laptop", "price": 1000.0},
                {"id": 2, "name": "Earbuds", "price": -50.0},
            ],
            "orders": [
                {"id": 1, "user_id": 1, "product_id": 1, "quantity": 2},
                {"id": 2, "user_id": 10, "product_id": 1, "quantity": 1},
                {"id": 3, "user_id": 1, "product_id": 2, "quantity": 1},
                {"id": 4, "user_id": 1, "product_id": 1, "quantity": 0},
            ],
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert body["errors"] is True
    assert body["committed"] is True
    users = body["users"]
    assert (users["received"], users["valid"], users["inserted"], users["skipped"]) == (4, 2, 2, 2)
    # The record without an id got one above every explicit id of the batch (even invalid ones).
    assert users["inserted_ids"] == [1, 11]
    assert skipped_records(users) == [
        {"index": 1, "id": 10, "reasons": {"name": ["This field may not be blank."]}},
        {
            "index": 3,
            "id": None,
            "reasons": {"non_field_errors": ["Expected a JSON object, got array."]},
        },
    ]
    assert body["products"]["inserted_ids"] == [1]
    assert body["orders"]["inserted_ids"] == [1]
    assert skipped_records(body["orders"]) == [
        {"index": 1, "id": 2, "reasons": {"user_id": ["No user has this id."]}},
        {"index": 2, "id": 3, "reasons": {"product_id": ["No product has this id."]}},
        {"index": 3, "id": 4, "reasons": {"quantity": ["Ensure this value is greater than 0."]}},
    ]
    assert rows(User, "id", "name") == [(1, "Alice"), (11, "Auto")]
    assert rows(Product, "id", "name") == [(1, "Laptop")]
    assert rows(Order, "id", "user_id", "product_id", "quantity") == [(1, 1, 1, 2)]


def test_orders_may_reference_records_inserted_earlier_in_the_same_batch(api):
    make_user()  # id 1, already stored
    body = post(
        api,
        {
            "users": [{"id": 7, "name": "Gus", "email": "gus@example.com"}],
            "products": [{"id": 3, "name": "Pen", "price": "1.50"}],
            "orders": [
                {"user_id": 7, "product_id": 3, "quantity": 1},
                {"user_id": 1, "product_id": 3, "quantity": 2},
            ],
        },
    ).json()
    assert body["errors"] is False
    assert len(body["orders"]["inserted_ids"]) == 2
    assert rows(Order, "user_id", "product_id") == [(7, 3), (1, 3)]


def test_duplicate_ids_in_the_batch_and_in_the_database_are_skipped(api):
    make_user(id=5)
    body = post(
        api,
        {
            "users": [
                {"id": 5, "name": "Again", "email": "again@example.com"},
                {"id": 6, "name": "First", "email": "first@example.com"},
                {"id": 6, "name": "Second", "email": "second@example.com"},
                {"id": 7, "name": "", "email": "bad@example.com"},
                {"id": 7, "name": "Valid", "email": "valid@example.com"},
            ]
        },
    ).json()["users"]
    assert body["inserted_ids"] == [6, 7]
    assert skipped_records(body) == [
        {
            "index": 0,
            "id": 5,
            "reasons": {"id": ["Duplicate id: a user with this id already exists."]},
        },
        {
            "index": 2,
            "id": 6,
            "reasons": {"id": ["Duplicate id: an earlier user of this batch has the same id."]},
        },
        {"index": 3, "id": 7, "reasons": {"name": ["This field may not be blank."]}},
    ]
    assert rows(User, "id", "name") == [(5, "Alice"), (6, "First"), (7, "Valid")]


def test_ids_are_assigned_above_the_batch_explicit_ids(api, settings):
    settings.INGEST_CHUNK_SIZE = 2
    body = post(
        api,
        {
            "users": [
                {"name": "A", "email": "a@example.com"},
                {"name": "B", "email": "b@example.com"},
                {"name": "C", "email": "c@example.com"},
                {"id": 3, "name": "Three", "email": "three@example.com"},
            ]
        },
    ).json()["users"]
    # Above the batch's explicit id 3. (With several writer threads, as on PostgreSQL, chunks
    # may take their ids in any order; within a chunk they follow the request.)
    assert body["inserted_ids"][3] == 3
    assert sorted(body["inserted_ids"][:3]) == [4, 5, 6]
    assert rows(User, "id") == [(3,), (4,), (5,), (6,)]


@pytest.mark.parametrize("bad_id", [0, -3, 1.5, "x", True, 2**63, [1], {"a": 1}])
def test_invalid_ids_skip_the_record(api, bad_id):
    body = post(api, {"users": [{"id": bad_id, "name": "A", "email": "a@example.com"}]}).json()
    skipped = skipped_records(body["users"])
    assert len(skipped) == 1
    assert list(skipped[0]["reasons"]) == ["id"]
    assert not User.objects.exists()


def test_small_chunks_give_the_same_result(api, settings):
    settings.INGEST_CHUNK_SIZE = 3
    users = [{"id": i, "name": f"U{i}", "email": f"u{i}@example.com"} for i in range(1, 11)]
    users[4]["email"] = "broken"
    orders = [{"id": i, "user_id": i, "product_id": 1, "quantity": 1} for i in range(1, 11)]
    body = post(
        api, {"users": users, "products": [{"id": 1, "name": "P", "price": 1}], "orders": orders}
    ).json()
    assert body["users"]["inserted_ids"] == [1, 2, 3, 4, 6, 7, 8, 9, 10]
    assert body["orders"]["inserted_ids"] == [1, 2, 3, 4, 6, 7, 8, 9, 10]
    assert skipped_records(body["orders"]) == [
        {"index": 4, "id": 5, "reasons": {"user_id": ["No user has this id."]}}
    ]
    assert User.objects.count() == 9
    assert Order.objects.count() == 9


def test_dry_run_checks_everything_and_writes_nothing(api):
    make_user(id=1)
    body = post(
        api,
        {
            "users": [
                {"id": 1, "name": "Dup", "email": "dup@example.com"},
                {"id": 2, "name": "New", "email": "new@example.com"},
            ],
            "orders": [{"user_id": 2, "product_id": 9, "quantity": 1}],
        },
        "?dry_run=true",
    ).json()
    assert body["dry_run"] is True
    assert body["committed"] is False
    assert body["users"]["valid"] == 1
    assert body["users"]["inserted"] == 0
    assert skipped_records(body["users"])[0]["reasons"] == {
        "id": ["Duplicate id: a user with this id already exists."]
    }
    assert skipped_records(body["orders"])[0]["reasons"] == {
        "product_id": ["No product has this id."]
    }
    assert User.objects.count() == 1


def test_atomic_batch_with_an_invalid_record_writes_nothing_anywhere(api):
    response = post(
        api,
        {
            "users": [{"id": 1, "name": "Alice", "email": "alice@example.com"}],
            "products": [{"id": 1, "name": "Laptop", "price": 10}],
            "orders": [
                {"user_id": 1, "product_id": 1, "quantity": 1},
                {"user_id": 1, "product_id": 1, "quantity": 0},
            ],
        },
        "?atomic=true",
    )
    assert response.status_code == 422
    body = response.json()
    assert body["committed"] is False
    assert body["detail"] == "atomic=true: nothing was written because 1 record is invalid."
    assert skipped_records(body["orders"])[0]["index"] == 1
    assert (User.objects.count(), Product.objects.count(), Order.objects.count()) == (0, 0, 0)


def test_atomic_batch_that_is_all_valid_is_written(api):
    response = post(
        api,
        {
            "users": [{"id": 1, "name": "Alice", "email": "alice@example.com"}],
            "products": [{"id": 1, "name": "Laptop", "price": 10}],
            "orders": [{"user_id": 1, "product_id": 1, "quantity": 1}],
        },
        "?atomic=true",
    )
    assert response.status_code == 200
    assert response.json()["committed"] is True
    assert (User.objects.count(), Product.objects.count(), Order.objects.count()) == (1, 1, 1)


def test_atomic_batch_whose_later_commit_fails_is_undone(api, monkeypatch):
    """The orders commit fails after users and products committed: they are deleted again."""
    from django.db import transaction

    real_atomic_exit = transaction.Atomic.__exit__
    failures = []

    def failing_exit(self, exc_type, exc, tb):
        outermost = not connections["orders"].savepoint_ids
        if self.using == "orders" and exc_type is None and outermost and not failures:
            failures.append(1)  # the first orders commit fails, as a full disk would make it
            real_atomic_exit(self, OperationalError, OperationalError("disk I/O error"), None)
            raise OperationalError("disk I/O error")
        return real_atomic_exit(self, exc_type, exc, tb)

    monkeypatch.setattr(transaction.Atomic, "__exit__", failing_exit)
    response = post(
        api,
        {
            "users": [{"id": 1, "name": "Alice", "email": "alice@example.com"}],
            "products": [{"id": 1, "name": "Laptop", "price": 10}],
            "orders": [{"user_id": 1, "product_id": 1, "quantity": 1}],
        },
        "?atomic=true",
    )
    monkeypatch.undo()
    assert response.status_code == 503
    assert "were deleted again, so nothing was kept" in response.json()["detail"]
    assert (User.objects.count(), Product.objects.count(), Order.objects.count()) == (0, 0, 0)


def test_a_chunk_whose_database_fails_is_reported_and_the_rest_is_written(
    api, settings, monkeypatch
):
    settings.INGEST_CHUNK_SIZE = 2
    real_insert = user_services.users_bulk_insert
    calls = []

    def flaky_insert(rows, **kwargs):
        calls.append(len(rows))
        if len(calls) == 2:
            raise OperationalError("disk I/O error")
        return real_insert(rows, **kwargs)

    monkeypatch.setattr(user_services, "users_bulk_insert", flaky_insert)
    users = [{"id": i, "name": f"U{i}", "email": f"u{i}@example.com"} for i in range(1, 6)]
    body = post(api, {"users": users}).json()["users"]
    assert body["inserted_ids"] == [1, 2, 5]
    assert [s["id"] for s in skipped_records(body)] == [3, 4]
    assert skipped_records(body)[0]["reasons"]["non_field_errors"][0].startswith(
        "Not written: the users database is unavailable (OperationalError: disk I/O error)."
    )
    assert body["valid"] == 5
    assert rows(User, "id") == [(1,), (2,), (5,)]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{", "JSON is malformed"),
        ("", "The body is empty"),
        ("[]", "Expected `object`, got `array`"),
        ('"users"', "Expected `object`, got `str`"),
        ('{"user": []}', "Object contains unknown field `user`"),
        ('{"users": {"name": "A"}}', "Expected `array`, got `object` - at `$.users`"),
        ('{"users": null}', "Expected `array`, got `null`"),
        ('{"users": [{"id": 1e999}]}', "Number out of range"),
        ('{"users": [' + "[" * 3000 + "]" * 3000 + "]}", "nested too deeply"),
    ],
)
def test_bodies_that_are_not_a_batch_are_400s(api, body, message):
    response = post(api, body)
    assert response.status_code == 400
    assert message in response.json()["detail"]


def test_wrong_content_type_is_a_415(api):
    response = api.generic("POST", "/ingest/", "users=1", content_type="text/plain")
    assert response.status_code == 415
    assert "text/plain" in response.json()["detail"]


def test_bad_flag_is_a_400(api):
    response = post(api, {"users": []}, "?dry_run=maybe")
    assert response.status_code == 400
    assert response.json() == {"dry_run": ["Must be true or false, not 'maybe'."]}


def test_too_many_records_is_a_413_saying_the_limit(api, settings):
    settings.INGEST_MAX_RECORDS = 3
    response = post(api, {"users": [{"name": "A", "email": "a@example.com"}] * 4})
    assert response.status_code == 413
    assert response.json()["detail"] == (
        "The batch has 4 records; the limit is 3 per request (INGEST_MAX_RECORDS). Split the batch."
    )
    assert not User.objects.exists()


def test_too_large_a_body_is_a_413_saying_the_limit(api, settings):
    settings.INGEST_MAX_BODY_BYTES = 2048
    response = post(api, {"users": [{"name": "A" * 3000, "email": "a@example.com"}]})
    assert response.status_code == 413
    assert "the limit is 2048 bytes (INGEST_MAX_BODY_BYTES)" in response.json()["detail"]


def test_writer_threads_are_gone_after_the_request(api):
    post(api, {"users": [{"name": "A", "email": "a@example.com"}]})
    writers = ("ingest-default", "ingest-users", "ingest-products", "ingest-orders")
    # (the job pool's "ingest-job" threads live on, by design, once a job has run)
    assert not [t.name for t in threading.enumerate() if t.name.startswith(writers)]


def test_every_writer_thread_closes_its_own_connections(api, monkeypatch):
    closed_by = []
    real_close_all = connections.close_all

    def recording_close_all():
        closed_by.append(threading.current_thread().name)
        real_close_all()

    monkeypatch.setattr(connections, "close_all", recording_close_all)
    post(
        api,
        {
            "users": [{"name": "A", "email": "a@example.com"}],
            "products": [{"name": "P", "price": 1}],
        },
    )
    monkeypatch.undo()
    # One close per writer thread (one per SQLite file; more on PostgreSQL), none forgotten.
    assert (
        len(closed_by)
        == len(set(closed_by))
        == sum(writers_for(alias) for alias in ("users", "products", "orders"))
    )
    assert {name.rsplit("-", 1)[0] for name in closed_by} == {
        "ingest-orders",
        "ingest-products",
        "ingest-users",
    }


def test_single_record_rules_apply_to_the_bulk_path(api):
    make_product(id=1)
    body = post(api, {"orders": [{"user_id": 1, "product_id": 1, "quantity": "2"}]}).json()
    assert skipped_records(body["orders"])[0]["reasons"] == {"user_id": ["No user has this id."]}


def test_a_record_with_a_key_its_type_does_not_have_is_skipped_naming_it(api):
    body = post(
        api,
        {
            "users": [
                {"id": 1, "name": "Alice", "email": "alice@example.com"},
                {"id": 2, "name": "Bob", "emial": "bob@example.com"},
                {"id": 3, "name": "Carl", "email": "carl@example.com", "is_admin": True},
            ]
        },
    ).json()
    assert body["users"]["inserted_ids"] == [1]
    assert skipped_records(body["users"]) == [
        {
            "index": 1,
            "id": 2,
            "reasons": {"non_field_errors": ["Unknown keys: emial."]},
        },
        {
            "index": 2,
            "id": 3,
            "reasons": {"non_field_errors": ["Unknown keys: is_admin."]},
        },
    ]
    assert list(User.objects.values_list("id", flat=True)) == [1]
