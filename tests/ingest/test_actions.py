"""POST /ingest/ with actions: upsert, update and delete, alone and mixed, in the four phases.

Each test states what a client sends and checks what it sees (the result's ids and skipped
records) and what each database holds afterwards.
"""

import json
from decimal import Decimal

import pytest

from orders_svc.models import Order
from products_svc.models import Product
from tests.ingest.job_downloads import response_of
from tests.ingest.skips import skipped_records
from users_svc.models import User

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True, reset_sequences=True)


def post(api, body, query="", content_type="application/json", **headers):
    payload = body if isinstance(body, str | bytes) else json.dumps(body)
    return api.generic("POST", f"/ingest/{query}", payload, content_type=content_type, **headers)


def rows(model, *fields):
    return list(model.objects.order_by("id").values_list(*fields))


def all_rows():
    return (
        rows(User, "id", "name", "email"),
        rows(Product, "id", "name", "price"),
        rows(Order, "id", "user_id", "product_id", "quantity"),
    )


def seed(api, users=3, products=2, orders=()):
    body = {
        "users": [
            {"id": i, "name": f"User {i}", "email": f"u{i}@example.com"}
            for i in range(1, users + 1)
        ],
        "products": [
            {"id": i, "name": f"Product {i}", "price": 10 * i} for i in range(1, products + 1)
        ],
        "orders": [
            {"id": i, "user_id": u, "product_id": p, "quantity": 1}
            for i, (u, p) in enumerate(orders, start=1)
        ],
    }
    response = post(api, body)
    assert response.status_code == 200
    assert not response.json()["errors"], response.json()


USE = "use insert, upsert, update or delete."


def only_reasons(section):
    return [(r["index"], r["id"], r.get("action"), r["reasons"]) for r in skipped_records(section)]


# --- each action alone -----------------------------------------------------------------------


def test_upsert_inserts_new_ids_and_replaces_stored_ones(api):
    seed(api, users=2)
    response = post(
        api,
        {
            "users": [
                {"id": 2, "name": "Bob Two", "email": "bob@example.com"},
                {"id": 7, "name": "Seven", "email": "seven@example.com"},
            ]
        },
        "?action=upsert",
    )
    assert response.status_code == 200
    users = response.json()["users"]
    assert (users["inserted"], users["updated"], users["skipped"]) == (1, 1, 0)
    assert users["inserted_ids"] == [7]
    assert users["updated_ids"] == [2]
    assert rows(User, "id", "name", "email") == [
        (1, "User 1", "u1@example.com"),
        (2, "Bob Two", "bob@example.com"),
        (7, "Seven", "seven@example.com"),
    ]
    # A user created afterwards gets an id above the upserted one.
    assert api.post("/users/", {"name": "N", "email": "n@example.com"}).json()["id"] == 8


def test_upsert_checks_the_whole_record_and_needs_an_id(api):
    seed(api, users=1)
    response = post(
        api,
        {
            "users": [
                {"id": 1, "name": "Only a name"},
                {"name": "No id", "email": "x@example.com"},
            ]
        },
        "?action=upsert",
    )
    users = response.json()["users"]
    assert only_reasons(users) == [
        (0, 1, "upsert", {"email": ["This field is required."]}),
        (
            1,
            None,
            "upsert",
            {"id": ["Required for action upsert: the id of the record to upsert."]},
        ),
    ]
    assert rows(User, "id", "name") == [(1, "User 1")]


def test_update_changes_only_the_fields_given_and_checks_the_merged_record(api):
    seed(api, users=3, products=2)
    response = post(
        api,
        {
            "users": [
                {"id": 1, "email": "new1@example.com"},
                {"id": 2, "name": "   "},
                {"id": 99, "name": "Ghost"},
                {"name": "No id"},
                {"id": 3},
            ],
            "products": [{"id": 2, "price": "12.50"}],
        },
        "?action=update",
    )
    assert response.status_code == 200
    body = response.json()
    assert body["users"]["updated_ids"] == [1]
    assert only_reasons(body["users"]) == [
        (1, 2, "update", {"name": ["This field may not be blank."]}),
        (2, 99, "update", {"id": ["No user has this id."]}),
        (
            3,
            None,
            "update",
            {"id": ["Required for action update: the id of the record to update."]},
        ),
        (
            4,
            3,
            "update",
            {"non_field_errors": ["Nothing to update: give at least one of name, email."]},
        ),
    ]
    assert body["products"]["updated_ids"] == [2]
    assert rows(User, "id", "name", "email") == [
        (1, "User 1", "new1@example.com"),
        (2, "User 2", "u2@example.com"),
        (3, "User 3", "u3@example.com"),
    ]
    assert rows(Product, "id", "name", "price") == [
        (1, "Product 1", Decimal("10.00")),
        (2, "Product 2", Decimal("12.50")),
    ]


def test_update_of_an_order_checks_a_changed_user_like_a_new_order(api):
    seed(api, users=2, products=1, orders=[(1, 1), (2, 1)])
    response = post(
        api,
        {
            "orders": [
                {"id": 1, "user_id": 2},
                {"id": 2, "user_id": 42},
                {"id": 1, "quantity": 5},
            ]
        },
        "?action=update",
    )
    orders = response.json()["orders"]
    assert orders["updated_ids"] == [1]
    assert only_reasons(orders) == [
        (1, 2, "update", {"user_id": ["No user has this id."]}),
        (2, 1, "update", {"id": ["Duplicate id: an earlier order of this batch has the same id."]}),
    ]
    assert rows(Order, "id", "user_id", "quantity") == [(1, 2, 1), (2, 2, 1)]


def test_delete_removes_what_exists_and_refuses_what_is_referenced(api):
    seed(api, users=3, products=2, orders=[(1, 1), (1, 2)])
    response = post(
        api,
        {"users": [{"id": 1}, {"id": 2}, {"id": 50}], "products": [{"id": 2, "name": "x"}]},
        "?action=delete",
    )
    body = response.json()
    assert body["users"]["deleted_ids"] == [2]
    assert only_reasons(body["users"]) == [
        (
            0,
            1,
            "delete",
            {"id": ["Not deleted: still referenced by 2 orders; delete or change those first."]},
        ),
        (2, 50, "delete", {"id": ["No user has this id."]}),
    ]
    assert only_reasons(body["products"]) == [
        (
            0,
            2,
            "delete",
            {"id": ["Not deleted: still referenced by 1 order; delete or change those first."]},
        )
    ]
    assert rows(User, "id") == [(1,), (3,)]
    assert rows(Product, "id") == [(1,), (2,)]


# --- the four phases ---------------------------------------------------------------------------


def test_orders_deleted_first_let_their_user_go_in_the_same_batch(api):
    seed(api, users=2, products=1, orders=[(1, 1)] * 5)
    # The user's deletion comes first in the body: the phases, not the order of lines, decide.
    response = post(
        api,
        {
            "users": [{"id": 1, "action": "delete"}],
            "orders": [{"id": i, "action": "delete"} for i in range(1, 6)],
        },
    )
    body = response.json()
    assert body["errors"] is False
    assert body["orders"]["deleted_ids"] == [1, 2, 3, 4, 5]
    assert body["users"]["deleted_ids"] == [1]
    assert all_rows()[0] == [(2, "User 2", "u2@example.com")]
    assert all_rows()[2] == []


def test_a_new_user_and_an_order_for_them_in_one_batch(api):
    seed(api, users=1, products=1)
    response = post(
        api,
        {
            "orders": [{"id": 1, "user_id": 5, "product_id": 1, "quantity": 1, "action": "upsert"}],
            "users": [{"id": 5, "name": "New", "email": "new@example.com", "action": "upsert"}],
        },
    )
    body = response.json()
    assert body["errors"] is False
    assert body["users"]["inserted_ids"] == [5]
    assert body["orders"]["inserted_ids"] == [1]
    assert rows(Order, "id", "user_id") == [(1, 5)]


def test_deleting_a_user_and_ordering_for_them_keeps_the_order_and_refuses_the_deletion(api):
    seed(api, users=3, products=1)
    response = post(
        api,
        {
            "users": [{"id": 3, "action": "delete"}],
            "orders": [{"user_id": 3, "product_id": 1, "quantity": 2}],
        },
    )
    body = response.json()
    assert body["orders"]["inserted_ids"] == [1]
    assert only_reasons(body["users"]) == [
        (
            0,
            3,
            "delete",
            {"id": ["Not deleted: still referenced by 1 order; delete or change those first."]},
        )
    ]
    assert rows(User, "id") == [(1,), (2,), (3,)]
    assert rows(Order, "user_id") == [(3,)]


def test_an_order_moved_away_from_a_user_lets_the_user_be_deleted(api):
    seed(api, users=2, products=1, orders=[(1, 1)])
    response = post(
        api,
        {
            "users": [{"id": 1, "action": "delete"}],
            "orders": [{"id": 1, "user_id": 2, "action": "update"}],
        },
    )
    body = response.json()
    assert body["errors"] is False, body
    assert rows(User, "id") == [(2,)]
    assert rows(Order, "id", "user_id") == [(1, 2)]


def test_an_order_for_a_user_whose_upsert_was_refused_is_refused(api):
    seed(api, users=0, products=1)
    response = post(
        api,
        {
            "users": [{"id": 4, "name": "", "email": "e@example.com", "action": "upsert"}],
            "orders": [{"user_id": 4, "product_id": 1, "quantity": 1}],
        },
    )
    body = response.json()
    assert only_reasons(body["orders"]) == [(0, None, None, {"user_id": ["No user has this id."]})]
    assert all_rows()[0] == []
    assert all_rows()[2] == []


# --- actions and their reasons ----------------------------------------------------------------


def test_a_record_action_wins_over_the_request_default_and_unknown_ones_are_skipped(api):
    seed(api, users=2)
    response = post(
        api,
        {
            "users": [
                {"id": 1, "name": "One", "email": "one@example.com"},
                {"id": 2, "action": "delete"},
                {"id": 3, "name": "x", "email": "x@example.com", "action": "merge"},
                {"id": 4, "name": "y", "email": "y@example.com", "action": 5},
                {"id": 5, "name": "Five", "email": "five@example.com", "action": "Insert"},
                {"id": 6, "name": "z", "email": "z@example.com", "action": ["delete"]},
                {"id": 7, "name": "z", "email": "z@example.com", "action": {"a": 1}},
                {"id": 8, "name": "z", "email": "z@example.com", "action": None},
            ]
        },
        "?action=upsert",
    )
    users = response.json()["users"]
    assert users["updated_ids"] == [1]
    assert users["deleted_ids"] == [2]
    assert users["inserted_ids"] == [5]
    assert [(r["index"], r["reasons"]) for r in skipped_records(users)] == [
        (2, {"action": [f"Unknown action 'merge': {USE}"]}),
        *[
            (index, {"action": [f"Unknown action (a JSON {kind}, not a string): {USE}"]})
            for index, kind in ((3, "number"), (5, "array"), (6, "object"), (7, "null"))
        ],
    ]
    assert rows(User, "id", "name") == [(1, "One"), (5, "Five")]


def test_one_id_twice_in_a_batch_is_skipped_whatever_the_actions(api):
    seed(api, users=2)
    response = post(
        api,
        {
            "users": [
                {"id": 2, "email": "two@example.com", "action": "update"},
                {"id": 2, "action": "delete"},
            ]
        },
    )
    users = response.json()["users"]
    assert users["updated_ids"] == [2]
    assert only_reasons(users) == [
        (1, 2, "delete", {"id": ["Duplicate id: an earlier user of this batch has the same id."]})
    ]
    assert rows(User, "id", "email")[1] == (2, "two@example.com")


@pytest.mark.parametrize("value", ["bogus", "", "DELETE;"])
def test_an_unknown_request_action_is_a_400_and_writes_nothing(api, value):
    seed(api, users=1)
    before = all_rows()
    response = post(api, {"users": [{"id": 1}]}, f"?action={value}")
    assert response.status_code == 400
    assert "insert, upsert, update, delete" in response.json()["action"][0]
    assert all_rows() == before


def test_a_repeated_action_parameter_is_a_400(api):
    response = post(api, {"users": []}, "?action=upsert&action=delete")
    assert response.status_code == 400


# --- modes -----------------------------------------------------------------------------------


def mixed_batch():
    return {
        "users": [
            {"id": 1, "action": "delete"},
            {"id": 2, "email": "changed@example.com", "action": "update"},
            {"id": 9, "name": "Nine", "email": "nine@example.com", "action": "upsert"},
        ],
        "products": [{"id": 1, "name": "Renamed", "price": 11, "action": "upsert"}],
        "orders": [
            {"id": 1, "action": "delete"},
            {"id": 3, "user_id": 9, "product_id": 1, "quantity": 4},
        ],
    }


def test_a_dry_run_gives_the_verdicts_of_a_real_run_and_keeps_nothing(api):
    seed(api, users=2, products=1, orders=[(1, 1)])
    before = all_rows()
    dry = post(api, mixed_batch(), "?dry_run=true").json()
    assert all_rows() == before
    assert dry["committed"] is False
    assert dry["errors"] is False
    assert [dry[t]["valid"] for t in ("users", "products", "orders")] == [3, 1, 2]
    assert dry["users"]["deleted_ids"] == []
    assert dry["users"]["updated_ids"] == []
    real = post(api, mixed_batch()).json()
    assert real["errors"] is False
    assert real["users"]["deleted_ids"] == [1]
    assert real["orders"]["inserted_ids"] == [3]


def test_an_atomic_batch_with_one_bad_record_changes_nothing(api):
    seed(api, users=2, products=1, orders=[(1, 1)])
    before = all_rows()
    batch = mixed_batch()
    batch["users"].append({"id": 2, "action": "delete"})  # a repeated id: skipped
    response = post(api, batch, "?atomic=true")
    assert response.status_code == 422
    assert response.json()["committed"] is False
    assert all_rows() == before


def test_an_atomic_batch_refused_by_the_database_state_changes_nothing(api):
    seed(api, users=2, products=1, orders=[(1, 1)])
    before = all_rows()
    # Deleting user 2 is refused in phase 4 because the order of phase 3 points at them.
    batch = {
        "users": [
            {"id": 2, "action": "delete"},
            {"id": 1, "email": "a@b.example", "action": "update"},
        ],
        "orders": [{"id": 5, "user_id": 2, "product_id": 1, "quantity": 1}],
    }
    response = post(api, batch, "?atomic=true")
    assert response.status_code == 422, response.json()
    assert all_rows() == before


def test_an_atomic_mixed_batch_is_written_whole(api):
    seed(api, users=2, products=1, orders=[(2, 1)])
    batch = mixed_batch()
    batch["orders"][0] = {"id": 1, "quantity": 7, "action": "update"}
    response = post(api, batch, "?atomic=true")
    assert response.status_code == 200, response.json()
    users, products, orders = all_rows()
    assert users == [(2, "User 2", "changed@example.com"), (9, "Nine", "nine@example.com")]
    assert products == [(1, "Renamed", Decimal("11.00"))]
    assert orders == [(1, 2, 1, 7), (3, 9, 1, 4)]


def test_an_atomic_batch_cannot_delete_a_user_only_its_own_order_deletion_frees(api):
    """Its users commit before its orders: the deletion would show order 1 pointing at nobody
    until the orders commit. Refused (and the batch with it); without atomic it goes in."""
    seed(api, users=2, products=1, orders=[(1, 1)])
    before = all_rows()
    response = post(api, mixed_batch(), "?atomic=true")
    assert response.status_code == 422
    [refused] = skipped_records(response.json()["users"])
    assert (refused["index"], refused["id"], refused["action"]) == (0, 1, "delete")
    assert "with atomic=true the deletion would commit before" in refused["reasons"]["id"][0]
    assert all_rows() == before
    assert post(api, mixed_batch()).json()["errors"] is False
    assert rows(User, "id") == [(2,), (9,)]


def test_an_idempotent_replay_of_a_mixed_batch_writes_nothing_more(api):
    seed(api, users=2, products=1, orders=[(1, 1)])
    first = post(api, mixed_batch(), HTTP_IDEMPOTENCY_KEY="mixed-1")
    after = all_rows()
    again = post(api, mixed_batch(), HTTP_IDEMPOTENCY_KEY="mixed-1")
    assert again.status_code == first.status_code == 200
    assert again.json() == first.json()
    assert all_rows() == after
    other = post(api, mixed_batch(), "?action=upsert", HTTP_IDEMPOTENCY_KEY="mixed-1")
    assert other.status_code == 422  # the same key for another request


def test_ndjson_lines_carry_their_action_and_skips_their_line(api):
    seed(api, users=2, products=1, orders=[(1, 1)])
    body = "\n".join(
        [
            '{"type": "order", "action": "delete", "id": 1}',
            '{"type": "user", "action": "delete", "id": 1}',
            '{"type": "user", "action": "update", "id": 2, "email": "nope"}',
            '{"type": "product", "action": "upsert", "id": 3, "name": "P3", "price": 3}',
        ]
    )
    response = post(api, body, content_type="application/x-ndjson")
    body = response.json()
    assert body["users"]["deleted_ids"] == [1]
    assert body["products"]["inserted_ids"] == [3]
    skipped = skipped_records(body["users"])
    assert [(r["line"], r["action"], r["reasons"]) for r in skipped] == [
        (3, "update", {"email": ["Enter a valid email address."]})
    ]


def test_a_csv_of_deletions_needs_only_ids_and_an_action_column_works_per_row(api):
    seed(api, users=3)
    response = post(api, "id\n1\n2\n", "?type=users&action=delete", content_type="text/csv")
    assert response.json()["users"]["deleted_ids"] == [1, 2]
    csv = "id,email,action\n3,three@example.com,update\n4,,upsert\n"
    body = post(api, csv, "?type=users", content_type="text/csv").json()
    assert body["users"]["updated_ids"] == [3]
    assert [(r["line"], r["action"]) for r in skipped_records(body["users"])] == [(3, "upsert")]
    assert rows(User, "id", "email") == [(3, "three@example.com")]


def test_a_background_job_runs_its_action(api):
    seed(api, users=2)
    response = post(api, {"users": [{"id": 1}, {"id": 2}]}, "?action=delete&async=true")
    assert response.status_code == 202
    assert response.json()["action"] == "delete"
    job = api.get(response["Location"]).json()
    for _ in range(200):
        if job["state"] in ("succeeded", "failed"):
            break
        import time

        time.sleep(0.05)
        job = api.get(response["Location"]).json()
    assert job["state"] == "succeeded", job
    assert response_of(api, job)["users"]["deleted_ids"] == [1, 2]
    assert rows(User, "id") == []


def test_the_schema_example_of_actions_gives_the_result_it_shows(api):
    from ingest.serializers import ACTIONS_REQUEST_EXAMPLE, ACTIONS_RESPONSE_EXAMPLE

    seed(api, users=3, products=4, orders=[(1, 1)] * 6 + [(3, 1), (3, 2)])
    response = post(api, ACTIONS_REQUEST_EXAMPLE.value, "?action=upsert")
    body = response.json()
    body["took_ms"] = ACTIONS_RESPONSE_EXAMPLE.value["took_ms"]
    assert body == ACTIONS_RESPONSE_EXAMPLE.value


def test_a_rerun_under_the_same_ledger_key_reuses_every_recorded_chunk(api, settings):
    """A job that died after some chunks committed runs again under its ledger key: what was
    recorded is not applied twice and is reported as the first run did."""
    from ingest import pipeline
    from ingest.records import decode_batch

    settings.INGEST_CHUNK_SIZE = 2
    seed(api, users=5, products=1, orders=[(1, 1), (2, 1)])
    body = json.dumps(
        {
            "users": [
                {"id": 1, "action": "delete"},
                {"id": 2, "email": "two@example.com", "action": "update"},
                {"id": 3, "action": "delete"},
                {"id": 9, "name": "Nine", "email": "nine@example.com", "action": "upsert"},
            ],
            "orders": [
                {"id": 1, "action": "delete"},
                {"user_id": 9, "product_id": 1, "quantity": 1},
            ],
        }
    ).encode()
    first = pipeline.ingest(decode_batch(body), ledger_key="job:rerun").as_dict()
    after = all_rows()
    again = pipeline.ingest(decode_batch(body), ledger_key="job:rerun").as_dict()
    assert all_rows() == after
    for name in ("users", "products", "orders"):
        first[name].pop("skipped_groups"), again[name].pop("skipped_groups")
        assert again[name] == first[name]
    assert first["users"]["deleted_ids"] == [1, 3]
    assert first["orders"]["inserted_ids"] == [3]
    pipeline.forget_ledger("job:rerun")


@pytest.mark.parametrize("action", [["delete"], {"a": 1}, None, 7, "merge"])
def test_an_odd_action_in_a_batch_of_inserts_is_skipped_with_a_reason(api, action):
    body = {
        "users": [
            {"id": 1, "name": "A", "email": "a@example.com"},
            {"id": 2, "name": "B", "email": "b@example.com", "action": action},
            ["not an object"],
        ]
    }
    response = post(api, body)
    assert response.status_code == 200
    users = response.json()["users"]
    assert users["inserted_ids"] == [1]
    assert [r["index"] for r in skipped_records(users)] == [1, 2]
    assert "Unknown action" in skipped_records(users)[0]["reasons"]["action"][0]
    assert rows(User, "id") == [(1,)]


def test_a_patch_of_a_product_name_alone_keeps_its_price_as_the_bulk_update_does(api):
    """The stored price fills the PATCH's merged record as a client would send it (it was
    refused, "A valid number is required.": the rule takes no Decimal)."""
    seed(api, users=0, products=2)
    patched = api.patch("/products/1/", {"name": "Renamed"}, format="json")
    assert patched.status_code == 200, patched.json()
    bulk = post(api, {"products": [{"id": 2, "name": "Renamed too"}]}, "?action=update")
    assert bulk.json()["products"]["updated_ids"] == [2]
    assert rows(Product, "id", "name", "price") == [
        (1, "Renamed", Decimal("10.00")),
        (2, "Renamed too", Decimal("20.00")),
    ]


@pytest.mark.usefixtures("id_counters_restored")
def test_records_without_an_id_once_the_largest_id_is_taken_are_skipped_not_a_500(api):
    largest = 2**63 - 1
    post(
        api, {"users": [{"id": largest, "name": "Max", "email": "m@example.com"}]}, "?action=upsert"
    )
    response = post(
        api,
        {
            "users": [{"name": "Next", "email": "n@example.com"}],
            "products": [{"id": 5, "name": "P", "price": 1}],
        },
    )
    assert response.status_code == 200
    body = response.json()
    [skipped] = skipped_records(body["users"])
    # The same words on SQLite and PostgreSQL (tests/ingest/test_no_id_left.py has the rest).
    assert skipped["reasons"]["id"][0].startswith("No id is left for this user:")
    assert body["products"]["inserted_ids"] == [5]
    assert rows(User, "id") == [(largest,)]


def test_unknown_actions_are_named_as_json_and_a_dry_run_of_an_atomic_batch_previews_it(api):
    seed(api, users=2, products=1, orders=[(1, 1)])
    odd = post(api, {"users": [{"id": 2, "action": None}, {"id": 2, "action": 10**30}]})
    assert [g["action"] for g in odd.json()["users"]["skipped_groups"]] == [
        "null",
        str(10**30),
    ]
    before = all_rows()
    preview = post(api, mixed_batch(), "?dry_run=true&atomic=true").json()
    real = post(api, mixed_batch(), "?atomic=true").json()
    assert all_rows() == before
    assert skipped_records(preview["users"]) == skipped_records(real["users"])
    assert (
        "with atomic=true the deletion" in skipped_records(preview["users"])[0]["reasons"]["id"][0]
    )


def test_repeated_ids_answer_within_a_small_multiple_of_the_body(api):
    """Each repeat used to name the first record's index in its reason, so that every repeat
    made a group of its own: 100,000 repeated pairs in a CSV of deletions answered 14x."""
    body = "id\n" + "".join(f"{i}\n{i}\n" for i in range(20_000))
    response = post(api, body, "?type=users&action=delete", content_type="text/csv")
    assert response.status_code == 200
    assert len(response.content) < 10 * len(body)
    groups = response.json()["users"]["skipped_groups"]
    assert len(groups) <= 3, [g["reasons"] for g in groups]
