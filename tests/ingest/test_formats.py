"""POST /ingest/ with NDJSON and CSV bodies: the same results, with the line of each skip."""

import json

import pytest

from ingest import formats
from ingest.duplicates import RepeatedKey
from orders_svc.models import Order
from products_svc.models import Product
from tests.ingest.job_downloads import response_of
from tests.ingest.skips import skipped_records
from users_svc.models import User

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True, reset_sequences=True)

NDJSON = (
    '{"type": "user", "id": 1, "name": "Alice", "email": "alice@example.com"}\n'
    '{"type": "users", "id": 2, "name": "", "email": "bob@example.com"}\n'
    "\n"
    '{"type": "product", "id": 1, "name": "Laptop", "price": 1000}\n'
    '{"type": "order", "user_id": 1, "product_id": 1, "quantity": 2}\n'
    '{"type": "order", "user_id": 2, "product_id": 1, "quantity": 1}\n'
    '{"type": "Order", "user_id": 1, "product_id": 1, "quantity": 0}'  # no final newline
)


def post(api, body: str | bytes, content_type: str, query: str = "", **headers):
    return api.generic("POST", f"/ingest/{query}", body, content_type=content_type, **headers)


def test_an_ndjson_body_gives_every_record_a_result_with_its_line(api):
    response = post(api, NDJSON, "application/x-ndjson")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["users"]["inserted_ids"] == [1]
    assert skipped_records(body["users"]) == [
        {"index": 1, "id": 2, "reasons": {"name": ["This field may not be blank."]}, "line": 2}
    ]
    assert body["products"]["inserted_ids"] == [1]
    assert body["orders"]["inserted"] == 1
    skipped = {record["line"]: record["reasons"] for record in skipped_records(body["orders"])}
    assert set(skipped) == {6, 7}
    assert "user_id" in skipped[6]  # user 2 was skipped, so the order points nowhere
    assert skipped[7] == {"quantity": ["Ensure this value is greater than 0."]}
    assert list(User.objects.values_list("id", "name")) == [(1, "Alice")]
    assert list(Order.objects.values_list("user_id", "product_id", "quantity")) == [(1, 1, 2)]


def test_an_ndjson_line_that_is_not_a_record_refuses_the_body_naming_the_line(api):
    for bad_line, message in [
        ('{"name": "x"', "Line 2: JSON is malformed"),
        ('["a"]', 'Line 2: expected a JSON object with a "type"'),
        ('{"name": "x", "email": "x@example.com"}', 'Line 2: "type" must be'),
        ('{"type": "invoice"}', 'Line 2: "type" must be'),
        ('{"type": 7}', 'Line 2: "type" must be'),
    ]:
        body = '{"type": "user", "name": "Ann", "email": "ann@example.com"}\n' + bad_line
        response = post(api, body, "application/x-ndjson")
        assert response.status_code == 400, bad_line
        assert response.json()["detail"].startswith(message), response.json()
    assert User.objects.count() == 0  # nothing of a refused body is written


def test_an_ndjson_record_that_repeats_a_key_is_skipped_like_in_json(api):
    body = '{"type": "user", "name": "", "name": "Eve", "email": "eve@example.com"}\n'
    response = post(api, body, "application/x-ndjson")
    assert response.status_code == 200
    [skipped] = skipped_records(response.json()["users"])
    assert "appears more than once" in skipped["reasons"]["non_field_errors"][0]
    assert skipped["line"] == 1
    assert User.objects.count() == 0


def test_a_csv_body_of_each_type(api):
    users = "id,Name,email\n1,Alice,alice@example.com\n,Bob,bob@example.com\n3, ,nobody\n"
    response = post(api, users, "text/csv", "?type=users")
    assert response.status_code == 200, response.content
    body = response.json()["users"]
    assert body["inserted_ids"] == [1, 4]  # an empty id cell: the database assigns one
    assert [(r["line"], sorted(r["reasons"])) for r in skipped_records(body)] == [
        (4, ["email", "name"])
    ]
    products = '\ufeffname,price,notes\n"Desk, oak",120.50,"two\nlines"\nPen,-1,\n'
    response = post(api, products.encode(), "text/csv; charset=utf-8", "?type=product")
    assert response.status_code == 200, response.content
    body = response.json()["products"]
    assert body["inserted"] == 1
    assert skipped_records(body)[0]["line"] == 4  # the quoted cell spans lines 2 and 3
    orders = "user_id,product_id,quantity\n1,1,2\n1,99,1\n"
    response = post(api, orders, "text/csv", "?type=orders")
    assert response.json()["orders"]["inserted"] == 1
    assert skipped_records(response.json()["orders"])[0]["line"] == 3
    assert list(Product.objects.values_list("name", flat=True)) == ["Desk, oak"]
    assert list(Order.objects.values_list("user_id", "product_id", "quantity")) == [(1, 1, 2)]


@pytest.mark.parametrize(
    ("body", "query", "message"),
    [
        ("name,email\nA,a@example.com\n", "", "type"),
        ("name,email\nA,a@example.com\n", "?type=invoices", "type"),
        ("", "?type=users", "The CSV is empty"),
        ("name\nA\n", "?type=users", "has no column email"),
        ("name,name,email\n", "?type=users", "more than once"),
        ('name,email\n"A,a@example.com\n', "?type=users", "Line 2: not valid CSV"),
    ],
)
def test_a_csv_that_cannot_be_read_is_a_400_saying_why(api, body, query, message):
    response = post(api, body, "text/csv", query)
    assert response.status_code == 400
    assert message in json.dumps(response.json())
    assert User.objects.count() == 0


def test_invalid_utf8_in_a_csv_is_a_400_naming_the_line(api):
    response = post(api, b"name,email\nA\xff,a@example.com\n", "text/csv", "?type=users")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("Line 2: not valid UTF-8")


def test_streamed_bodies_keep_the_limits(api, settings):
    settings.INGEST_MAX_RECORDS = 2
    three = "name,email\n" + "A,a@example.com\n" * 3
    response = post(api, three, "text/csv", "?type=users")
    assert response.status_code == 413
    assert "INGEST_MAX_RECORDS" in response.json()["detail"]
    settings.INGEST_MAX_RECORDS = 1000
    settings.INGEST_MAX_BODY_BYTES = 100
    response = post(api, "name,email\n" + "A,a@example.com\n" * 20, "text/csv", "?type=users")
    assert response.status_code == 413
    assert "INGEST_MAX_BODY_BYTES" in response.json()["detail"]
    assert User.objects.count() == 0


def test_streamed_bodies_honour_dry_run_and_idempotency_keys(api):
    response = post(api, NDJSON, "application/x-ndjson", "?dry_run=true")
    assert response.json()["dry_run"] is True
    assert User.objects.count() == 0
    first = post(api, NDJSON, "application/x-ndjson", HTTP_IDEMPOTENCY_KEY="nd-1")
    again = post(api, NDJSON, "application/x-ndjson", HTTP_IDEMPOTENCY_KEY="nd-1")
    assert again["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    other = post(api, NDJSON + "\n", "application/x-ndjson", HTTP_IDEMPOTENCY_KEY="nd-1")
    assert other.status_code == 422
    assert User.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "content_type", "query"),
    [
        (NDJSON, "application/x-ndjson", "?async=true"),
        ("id,name,email\n1,Alice,alice@example.com\n2,,bob@example.com\n", "text/csv",
         "?async=true&type=users"),
    ],
)  # fmt: skip
def test_streamed_bodies_run_as_background_jobs_with_their_lines(api, body, content_type, query):
    from tests.ingest.test_jobs import wait_for

    response = post(api, body, content_type, query)
    assert response.status_code == 202, response.content
    assert response.json()["total"] == (6 if content_type != "text/csv" else 2)
    job = wait_for(api, response["Location"])
    assert job["state"] == "succeeded", job
    users = response_of(api, job)["users"]
    assert users["inserted_ids"] == [1]
    assert skipped_records(users)[0]["line"] == (2 if content_type != "text/csv" else 3)
    assert list(User.objects.values_list("id", "name")) == [(1, "Alice")]


def test_a_bad_line_refuses_a_background_job_before_the_202(api):
    response = post(api, NDJSON + "\n{oops", "application/x-ndjson", "?async=true")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("Line 8:")


def test_other_media_types_are_a_415_listing_the_accepted_ones(api):
    response = post(api, "<users/>", "application/xml")
    assert response.status_code == 415
    assert "text/csv" in response.json()["detail"]


def test_split_lines_keeps_line_ends_and_joins_lines_across_blocks():
    blocks = [b"ab", b"c\nde", b"\n\nf"]
    assert list(formats.split_lines(blocks)) == [b"abc\n", b"de\n", b"\n", b"f"]


def test_ndjson_record_builds_the_same_structs_as_a_json_body():
    kind, record = formats.ndjson_record(b'{"type": "product", "name": "P", "price": "2"}', 1)
    assert kind == "products"
    assert (record.name, record.price) == ("P", "2")
    kind, record = formats.ndjson_record(b'{"type": "user", "id": 1, "id": 2}', 1)
    assert isinstance(record, RepeatedKey)


def test_a_chunked_body_the_server_cannot_read_is_a_411_not_an_empty_batch(api):
    response = api.generic(
        "POST",
        "/ingest/",
        NDJSON,
        content_type="application/x-ndjson",
        HTTP_TRANSFER_ENCODING="chunked",
        CONTENT_LENGTH="",
    )
    assert response.status_code == 411
    assert "Content-Length" in response.json()["detail"]
    assert User.objects.count() == 0


def test_gunicorn_reads_a_chunked_ndjson_stream(api_token):
    """A client streaming NDJSON without Content-Length, against a real gunicorn."""
    import http.client

    from tests import live

    def lines():
        for number in range(1, 2001):
            yield (
                json.dumps(
                    {"type": "user", "id": number, "name": f"U{number}", "email": f"u{number}@x.io"}
                ).encode()
                + b"\n"
            )

    with live.gunicorn() as (base_url, _):
        connection = http.client.HTTPConnection(base_url.removeprefix("http://"), timeout=60)
        connection.request(
            "POST",
            "/ingest/",
            body=lines(),
            headers={
                "Content-Type": "application/x-ndjson",
                "Authorization": f"Token {api_token}",
            },
            encode_chunked=True,
        )
        response = connection.getresponse()
        body = json.loads(response.read())
        connection.close()
    assert response.status == 200, body
    assert body["users"]["inserted"] == 2000
    assert User.objects.count() == 2000
