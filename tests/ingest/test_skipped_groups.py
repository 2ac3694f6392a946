"""POST /ingest/: skipped records come grouped by their reasons, so an answer stays small.

Half a million records with the same fault once answered 49 times their body (each record its
own copy of the reasons); grouped, a skipped record costs its index (and id, and line) only.
Every answer (sync, background job, replayed Idempotency-Key) stays within 10x its body.
"""

import json

import pytest

from ingest.models import IdempotencyKey, IngestJobResultBlock
from ingest.results import ResourceResult
from orders_svc.models import Order
from products_svc.models import Product
from tests.ingest.job_downloads import response_of
from tests.ingest.skips import skipped_records
from tests.ingest.test_jobs import wait_for
from users_svc.models import User

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True, reset_sequences=True)

ZEROS = 499_999  # under INGEST_MAX_RECORDS (500,000): the biggest batch a client may send
NOT_AN_OBJECT = {"non_field_errors": ["Expected a JSON object, got number."]}
BLANK = {"name": ["This field may not be blank."]}


def post(api, body: bytes, content_type="application/json", query="", **headers):
    return api.generic("POST", f"/ingest/{query}", body, content_type=content_type, **headers)


def zeros() -> bytes:
    return b'{"users": [' + b",".join([b"0"] * ZEROS) + b"]}"


def nothing_written():
    return (User.objects.count(), Product.objects.count(), Order.objects.count()) == (0, 0, 0)


def assert_all_zeros_skipped(body: dict):
    users = body["users"]
    assert (users["received"], users["skipped"], users["inserted"]) == (ZEROS, ZEROS, 0)
    assert users["skipped_groups"] == [{"reasons": NOT_AN_OBJECT, "indexes": list(range(ZEROS))}]


def test_half_a_million_invalid_records_answer_within_10x_their_body(api):
    body = zeros()
    response = post(api, body)
    assert response.status_code == 200
    assert len(response.content) <= 10 * len(body)
    assert_all_zeros_skipped(response.json())
    assert nothing_written()


def test_the_stored_and_replayed_idempotent_response_is_within_10x_too(api):
    body = zeros()
    first = post(api, body, HTTP_IDEMPOTENCY_KEY="zeros")
    assert first.status_code == 200
    [stored] = IdempotencyKey.objects.filter(key="zeros")
    assert len(bytes(stored.response)) <= 10 * len(body)
    replayed = post(api, body, HTTP_IDEMPOTENCY_KEY="zeros")
    assert replayed["Idempotent-Replayed"] == "true"
    assert replayed.content == first.content
    assert len(replayed.content) <= 10 * len(body)
    assert_all_zeros_skipped(replayed.json())
    assert nothing_written()


def test_a_background_job_result_is_within_10x_its_body(api):
    body = zeros()
    response = post(api, body, query="?async=true")
    assert response.status_code == 202, response.content
    job = wait_for(api, response["Location"], timeout=120)
    assert job["state"] == "succeeded", job
    stored = IngestJobResultBlock.objects.filter(job_id=job["id"]).values_list("data", flat=True)
    assert sum(len(data) for data in stored) <= 10 * len(body)
    summary = api.get(job["url"]).content
    assert len(summary) < 2048  # the summary does not grow with the batch
    result = response_of(api, job)
    assert len(json.dumps(result)) <= 10 * len(body)
    assert_all_zeros_skipped(result)
    assert nothing_written()


def test_tiny_invalid_ndjson_lines_answer_within_10x_with_their_lines(api):
    # The smallest line that is a record with the most reasons (one per missing field): a
    # record each, the answer was 10.03x its body.
    body = b'{"type":"order"}\n' * ZEROS
    response = post(api, body, "application/x-ndjson")
    assert response.status_code == 200, response.content[:300]
    assert len(response.content) <= 10 * len(body)
    [group] = response.json()["orders"]["skipped_groups"]
    assert group == {
        "reasons": {
            "user_id": ["This field is required."],
            "product_id": ["This field is required."],
            "quantity": ["This field is required."],
        },
        "indexes": list(range(ZEROS)),
        "lines": list(range(1, ZEROS + 1)),
    }
    assert nothing_written()


def test_tiny_invalid_csv_rows_answer_within_10x_with_their_lines(api):
    # Rows of blank cells are not records (ignored); "a" is the smallest one: a name, no email.
    body = b"name,email\n" + b"a\n" * ZEROS
    response = post(api, body, "text/csv", "?type=users")
    assert response.status_code == 200, response.content[:300]
    assert len(response.content) <= 10 * len(body)
    [group] = response.json()["users"]["skipped_groups"]
    assert group == {
        "reasons": {"email": ["This field is required."]},
        "indexes": list(range(ZEROS)),
        "lines": list(range(2, ZEROS + 2)),  # the header is line 1
    }
    assert nothing_written()


@pytest.mark.parametrize("query", ["?type=orders", "?type=orders&dry_run=true"])
def test_orders_pointing_at_distinct_missing_users_answer_within_10x(api, query):
    """The outside review's case: each row names another missing user and product, so reasons
    that repeated the ids made every record its own group (13.3x, and 1.2 GB in the worker)."""
    rows = 100_000
    body = b"user_id,product_id,quantity\n" + b"".join(
        b"%d,%d,1\n" % (200 + n // 800, 200 + n % 800) for n in range(rows)
    )
    response = post(api, body, "text/csv", query)
    assert response.status_code == 200, response.content[:300]
    assert len(response.content) <= 10 * len(body)
    [group] = response.json()["orders"]["skipped_groups"]
    assert group["reasons"] == {
        "user_id": ["No user has this id."],
        "product_id": ["No product has this id."],
    }
    assert group["indexes"] == list(range(rows))
    assert nothing_written()


def test_distinct_reasons_make_distinct_groups_and_ids_appear_only_where_given(api):
    users = [
        {"id": 1, "name": "Alice", "email": "alice@example.com"},
        {"id": 10, "name": "", "email": "jane@example.com"},
        0,
        {"name": "", "email": "joe@example.com"},
        {"email": "not-an-address", "name": "", "id": 12},
        [],
        {"name": "  ", "email": "ann@example.com"},
    ]
    response = post(api, json.dumps({"users": users}).encode())
    assert response.status_code == 200
    section = response.json()["users"]
    assert (section["received"], section["inserted"], section["skipped"]) == (7, 1, 6)
    assert section["skipped_groups"] == [
        {"reasons": BLANK, "indexes": [1, 3, 6], "ids": [10, None, None]},
        {"reasons": NOT_AN_OBJECT, "indexes": [2]},  # no record of the group had an id
        {
            "reasons": {
                "name": ["This field may not be blank."],
                "email": ["Enter a valid email address."],
            },
            "indexes": [4],
            "ids": [12],
        },
        {"reasons": {"non_field_errors": ["Expected a JSON object, got array."]}, "indexes": [5]},
    ]
    assert list(User.objects.values_list("id", "name")) == [(1, "Alice")]


def test_ndjson_groups_carry_lines_parallel_to_their_indexes(api):
    body = (
        b'{"type": "user", "id": 5, "name": "", "email": "a@example.com"}\n'
        b"\n"
        b'{"type": "product", "name": "Pen", "price": -1}\n'
        b'{"type": "user", "name": "Bob", "email": "bob@example.com"}\n'
        b'{"type": "user", "name": "", "email": "c@example.com"}\n'
    )
    response = post(api, body, "application/x-ndjson")
    assert response.status_code == 200, response.content
    result = response.json()
    assert result["users"]["skipped_groups"] == [
        {"reasons": BLANK, "indexes": [0, 2], "ids": [5, None], "lines": [1, 5]}
    ]
    assert result["products"]["skipped_groups"] == [
        {
            "reasons": {"price": ["Ensure this value is greater than 0."]},
            "indexes": [0],
            "lines": [3],
        }
    ]
    assert list(User.objects.values_list("name", flat=True)) == ["Bob"]


def test_grouping_takes_equal_reasons_together_whatever_their_order_or_identity():
    shared = {"id": ["Not written."]}
    result = ResourceResult(
        received=6,
        skipped=[
            (5, 9, shared),
            (0, None, {"name": ["Blank."], "email": ["Bad."]}),
            (3, None, {"email": ["Bad."], "name": ["Blank."]}),  # equal, keys in another order
            (1, 7, shared),
            (2, None, {"name": ["Blank."]}),
            (4, None, {"email": ["Bad."], "name": ["Blank."]}),
        ],
    )
    section = result.as_dict()
    assert section["skipped"] == 6
    assert section["skipped_groups"] == [
        {"reasons": {"name": ["Blank."], "email": ["Bad."]}, "indexes": [0, 3, 4]},
        {"reasons": shared, "indexes": [1, 5], "ids": [7, 9]},
        {"reasons": {"name": ["Blank."]}, "indexes": [2]},
    ]
    assert [record["index"] for record in skipped_records(section)] == list(range(6))


def test_records_each_with_other_made_up_keys_answer_within_10x(api):
    """The second review's case: 20 one-letter unknown keys per record, a different set each
    time, made every record its own group with a message per key (14.7x)."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    records = []
    for n in range(8_000):
        keys = [letters[(n + i) % 26] + letters[(n // 26 + i) % 26] for i in range(20)]
        records.append("{" + ",".join(f'"{key}":0' for key in keys) + "}")
    body = ('{"orders":[' + ",".join(records) + "]}").encode()
    response = post(api, body)
    assert response.status_code == 200, response.content[:300]
    assert len(response.content) <= 10 * len(body)
    records = skipped_records(response.json()["orders"])
    assert len(records) == 8_000
    assert records[0]["reasons"]["non_field_errors"][0].startswith("Unknown keys: aa, bb, cc")
    assert nothing_written()


@pytest.mark.parametrize("length", [2, 3])
def test_records_each_with_one_short_made_up_key_answer_within_10x(api, length):
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    keys = ["".join(alphabet[(n // 62**i) % 62] for i in range(length)) for n in range(5_000)]
    body = ('{"users":[' + ",".join(f'{{"{key}":0}}' for key in keys) + "]}").encode()
    response = post(api, body)
    assert response.status_code == 200
    assert len(response.content) <= 10 * len(body), len(response.content) / len(body)
