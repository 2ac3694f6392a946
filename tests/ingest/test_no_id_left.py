"""Records without an id once their table has used the largest id (2**63-1), through every way
the ingest takes them: ``POST /ingest/`` (plain, atomic, dry run, with actions), background
jobs, ``manage.py ingest_file`` and ``insert_data --file``.

Each such record is skipped with a reason that says what to do (give it an id), the records of
the same chunk that have ids are written, and nothing claims that a database failed or asks for
the records to be sent again.
"""

import json
from io import StringIO

import pytest
from django.core.management import call_command

from orders_svc.models import Order
from products_svc.models import Product
from tests.ingest.job_downloads import by_outcome, results_of
from tests.ingest.skips import skipped_records
from tests.ingest.test_jobs import wait_for
from users_svc.models import User

pytestmark = [
    pytest.mark.django_db(databases="__all__", transaction=True, reset_sequences=True),
    pytest.mark.usefixtures("id_counters_restored"),
]

LARGEST = 2**63 - 1


def no_id_left(noun: str) -> dict[str, list[str]]:
    return {
        "id": [
            f"No id is left for this {noun}: ids are given above every {noun} id used before "
            f"and every id in the batch, and {LARGEST}, the largest possible {noun} id, is among "
            "them. Give it an id of its own that is not in use."
        ]
    }


def post(api, body, query=""):
    return api.generic(
        "POST", f"/ingest/{query}", json.dumps(body), content_type="application/json"
    )


def rows():
    return (
        list(User.objects.order_by("id").values_list("id", "name")),
        list(Product.objects.order_by("id").values_list("id", "name")),
        list(Order.objects.order_by("id").values_list("id", "user_id", "product_id")),
    )


def seed_largest_ids(api):
    """User, product and order 1, and a user, product and order with the largest id."""
    body = {
        "users": [
            {"id": 1, "name": "One", "email": "one@example.com"},
            {"id": LARGEST, "name": "Max", "email": "max@example.com"},
        ],
        "products": [
            {"id": 1, "name": "One", "price": 1},
            {"id": LARGEST, "name": "Max", "price": 1},
        ],
        "orders": [
            {"id": 1, "user_id": 1, "product_id": 1, "quantity": 1},
            {"id": LARGEST, "user_id": 1, "product_id": 1, "quantity": 1},
        ],
    }
    assert not post(api, body).json()["errors"]


#: Per type, a record with an id of its own (written) and one without (skipped).
MIXED = {
    "users": [
        {"id": 7, "name": "Seven", "email": "seven@example.com"},
        {"name": "No id", "email": "none@example.com"},
    ],
    "products": [{"id": 7, "name": "Seven", "price": 7}, {"name": "No id", "price": 7}],
    "orders": [
        {"id": 7, "user_id": 7, "product_id": 7, "quantity": 7},
        {"user_id": 1, "product_id": 1, "quantity": 7},
    ],
}


def mixed(query: str) -> dict:
    """``MIXED``; with ``?action=`` in ``query``, its records without an id are inserts."""
    if "action=" not in query:
        return MIXED
    return {
        name: [record if "id" in record else {**record, "action": "insert"} for record in records]
        for name, records in MIXED.items()
    }


AFTER_MIXED = (
    [(1, "One"), (7, "Seven"), (LARGEST, "Max")],
    [(1, "One"), (7, "Seven"), (LARGEST, "Max")],
    [(1, 1, 1), (7, 7, 7), (LARGEST, 1, 1)],
)


def assert_only_the_records_without_an_id_skipped(body):
    for name in ("users", "products", "orders"):
        section = body[name]
        assert section["inserted_ids"] == [7], (name, section)
        assert section["skipped_groups"] == [
            {"reasons": no_id_left(name.removesuffix("s")), "indexes": [1]}
        ]


@pytest.mark.parametrize("query", ["", "?action=upsert"])
def test_records_without_an_id_are_skipped_saying_so_and_the_others_are_written(api, query):
    """Plain inserts and a batch with actions (whose records without an id are inserts)."""
    seed_largest_ids(api)
    response = post(api, mixed(query), query)
    assert response.status_code == 200
    assert_only_the_records_without_an_id_skipped(response.json())
    assert rows() == AFTER_MIXED


@pytest.mark.parametrize("query", ["?atomic=true", "?atomic=true&action=upsert"])
def test_an_atomic_batch_is_refused_as_invalid_not_as_a_database_failure(api, query):
    seed_largest_ids(api)
    before = rows()
    response = post(api, mixed(query), query)
    assert response.status_code == 422, response.content
    body = response.json()
    assert body["committed"] is False
    assert body["detail"] == "atomic=true: nothing was written because 3 records are invalid."
    for name in ("users", "products", "orders"):
        assert skipped_records(body[name]) == [
            {"index": 1, "id": None, "reasons": no_id_left(name.removesuffix("s"))}
        ]
    assert rows() == before


@pytest.mark.parametrize(
    "query", ["?dry_run=true", "?dry_run=true&atomic=true", "?dry_run=true&action=upsert"]
)
def test_a_dry_run_says_what_the_real_run_does(api, query):
    seed_largest_ids(api)
    before = rows()
    preview = post(api, mixed(query), query).json()
    assert rows() == before
    for name in ("users", "products", "orders"):
        assert preview[name]["valid"] == 1
        assert preview[name]["skipped_groups"] == [
            {"reasons": no_id_left(name.removesuffix("s")), "indexes": [1]}
        ]


def test_the_last_ids_left_go_to_the_first_records_without_one(api):
    post(api, {"users": [{"id": LARGEST - 2, "name": "Near", "email": "near@example.com"}]})
    batch = {"users": [{"name": f"U{i}", "email": f"u{i}@example.com"} for i in range(4)]}
    preview = post(api, batch, "?dry_run=true").json()["users"]
    response = post(api, batch)
    users = response.json()["users"]
    assert users["inserted_ids"] == [LARGEST - 1, LARGEST]
    assert users["skipped_groups"] == [{"reasons": no_id_left("user"), "indexes": [2, 3]}]
    assert preview["skipped_groups"] == users["skipped_groups"]
    assert list(User.objects.order_by("id").values_list("id", "name")) == [
        (LARGEST - 2, "Near"),
        (LARGEST - 1, "U0"),
        (LARGEST, "U1"),
    ]


def test_a_batch_whose_own_explicit_id_is_the_largest_leaves_none_for_the_others(api):
    body = {
        "users": [
            {"name": "Before", "email": "b@example.com"},
            {"id": LARGEST, "name": "Max", "email": "m@example.com"},
        ]
    }
    users = post(api, body).json()["users"]
    assert users["inserted_ids"] == [LARGEST]
    assert users["skipped_groups"] == [{"reasons": no_id_left("user"), "indexes": [0]}]
    assert list(User.objects.values_list("id", flat=True)) == [LARGEST]


def test_a_job_reports_each_record_without_an_id_as_skipped_with_the_reason(api):
    seed_largest_ids(api)
    submitted = post(api, MIXED, "?async=true")
    assert submitted.status_code == 202, submitted.content
    job = wait_for(api, submitted["Location"])
    assert job["state"] == "succeeded"
    skipped = by_outcome(results_of(api, job))["skipped"]
    assert [(line["type"], line["index"], line["reasons"]) for line in skipped] == [
        (name, 1, no_id_left(name.removesuffix("s"))) for name in ("users", "products", "orders")
    ]
    assert rows() == AFTER_MIXED


def test_ingest_file_names_the_reason_and_does_not_report_a_failed_database(api, tmp_path):
    seed_largest_ids(api)
    path = tmp_path / "mixed.ndjson"
    path.write_text(
        "".join(
            json.dumps({"type": name, **record}) + "\n"
            for name, records in MIXED.items()
            for record in records
        )
    )
    out = StringIO()
    call_command("ingest_file", str(path), "--no-progress", stdout=out)  # no CommandError
    output = out.getvalue()
    assert "line 2 (users): id: No id is left for this user:" in output
    assert "line 4 (products): id: No id is left for this product:" in output
    assert "line 6 (orders): id: No id is left for this order:" in output
    assert "database" not in output.replace("products", "")
    assert rows() == AFTER_MIXED


def test_insert_data_reports_the_records_it_could_not_give_an_id(api, tmp_path):
    seed_largest_ids(api)
    path = tmp_path / "batch.json"
    path.write_text(json.dumps(MIXED))
    out = StringIO()
    call_command("insert_data", "--file", str(path), stdout=out)
    output = out.getvalue()
    user = "(None, 'No id', 'none@example.com') --> Not inserted: id: No id is left for this user:"
    assert user in output
    assert "a database failed" not in output
    assert (
        "Final result: 1 user, 1 product, 1 order inserted; 1 user, 1 product, 1 order skipped."
        in output
    )
    assert rows() == AFTER_MIXED
