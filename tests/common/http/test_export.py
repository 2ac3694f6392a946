"""GET /<resource>/export/: formats, negotiation, strict queries, access, chunked reading, and
what a client sees when the database fails before or after the first byte."""
# ruff: noqa: RUF001 (look-alike characters are the point of some cases)

import csv
import io
import json
import logging

import pytest
import yaml
from django.db import connections
from django.test import Client
from django.test.utils import CaptureQueriesContext
from prometheus_client import REGISTRY

from common.http.export import ExportAborted
from orders_svc.filters import OrderFilter
from products_svc.filters import ProductFilter
from tests.conftest import client_with, close_as_a_server, make_api_key
from tests.factories import make_order, make_product, make_user
from users_svc.filters import UserFilter

pytestmark = [
    pytest.mark.django_db(databases="__all__"),
    pytest.mark.usefixtures("fresh_throttles"),
]

EXPORTS = ["/users/export/", "/products/export/", "/orders/export/"]
NDJSON = "application/x-ndjson"
CSV = "text/csv; charset=utf-8"


def body(response) -> bytes:
    assert response.streaming, "an export is streamed"
    return b"".join(response.streaming_content)


def ndjson(response) -> list[dict]:
    return [json.loads(line) for line in body(response).decode().splitlines()]


def csv_rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body(response).decode(), newline="")))


def streams(resource: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "export_streams_total", {"resource": resource, "outcome": outcome}
    )
    return value or 0.0


@pytest.fixture
def two_users():
    return [make_user("Alice", "alice@example.com"), make_user("Bob", "bob@example.com")]


# --- formats and headers -----------------------------------------------------------------------


def test_ndjson_is_the_default_one_object_per_line_as_ingest_takes_it(api, two_users):
    alice, bob = two_users
    response = api.get("/users/export/")
    assert response.status_code == 200
    assert response["Content-Type"] == NDJSON
    assert response["Content-Disposition"] == 'attachment; filename="users.ndjson"'
    assert "Accept" in response["Vary"]
    assert (
        body(response)
        == (
            f'{{"type":"user","id":{alice.id},"name":"Alice","email":"alice@example.com"}}\n'
            f'{{"type":"user","id":{bob.id},"name":"Bob","email":"bob@example.com"}}\n'
        ).encode()
    )


def test_products_and_orders_as_ndjson_with_exact_prices(api):
    user = make_user()
    product = make_product("Laptop", "1000.00")
    order = make_order(user.id, product.id, 2)
    assert ndjson(api.get("/products/export/")) == [
        {"type": "product", "id": product.id, "name": "Laptop", "price": "1000.00"}
    ]
    assert (
        body(api.get("/orders/export/"))
        == (
            f'{{"type":"order","id":{order.id},"user_id":{user.id},"product_id":{product.id},'
            f'"quantity":2}}\n'
        ).encode()
    )


@pytest.mark.parametrize(
    ("path", "header", "filename"),
    [
        ("/users/export/", ["id", "name", "email"], "users.csv"),
        ("/products/export/", ["id", "name", "price"], "products.csv"),
        ("/orders/export/", ["id", "user_id", "product_id", "quantity"], "orders.csv"),
    ],
)
@pytest.mark.parametrize("ask", ["accept", "query"])
def test_csv_by_accept_or_query_has_a_header_row_then_one_row_per_record(
    api, path, header, filename, ask
):
    user = make_user()
    product = make_product("Desk", "120.50")
    order = make_order(user.id, product.id, 3)
    if ask == "accept":
        response = api.get(path, HTTP_ACCEPT="text/csv")
    else:
        response = api.get(path + "?format=csv")
    assert response.status_code == 200
    assert response["Content-Type"] == CSV
    assert response["Content-Disposition"] == f'attachment; filename="{filename}"'
    raw = body(response)
    assert raw.endswith(b"\r\n")
    rows = list(csv.reader(io.StringIO(raw.decode(), newline="")))
    assert rows[0] == header
    expected = {
        "users.csv": [user.id, "Alice", "alice@example.com"],
        "products.csv": [product.id, "Desk", "120.50"],
        "orders.csv": [order.id, user.id, product.id, 3],
    }[filename]
    assert rows[1:] == [[str(value) for value in expected]]


def test_commas_quotes_unicode_and_emoji_survive_csv_and_ndjson(api):
    awkward = [
        ('Zoë "Z" O\'Brien, Jr.', "zoe@example.com"),
        ("日本語の名前", "名前@例え.jp"),
        ("👩‍👩‍👧 family, 😀", "emoji@example.com"),
        ("  inner  spaces and ; semicolons ", "a+b@example.com"),
        ("=SUM(A1:A2)", "formula@example.com"),
        ("back\\slash and 'single'", "q@example.com"),
    ]
    users = [make_user(name.strip(), email) for name, email in awkward]
    expected = [[str(u.id), u.name, u.email] for u in users]
    assert csv_rows(api.get("/users/export/?format=csv"))[1:] == expected
    assert [[str(r["id"]), r["name"], r["email"]] for r in ndjson(api.get("/users/export/"))] == (
        expected
    )


@pytest.mark.parametrize("path", EXPORTS)
def test_an_empty_table_is_an_empty_ndjson_body_or_a_csv_header(api, path):
    assert body(api.get(path)) == b""
    header = body(api.get(path + "?format=csv"))
    assert header.count(b"\r\n") == 1
    assert header.startswith(b"id,")


def test_rows_come_in_id_order_whatever_the_insertion_order(api):
    for user_id in (70, 3, 2**40, 9, 1):
        make_user(f"U{user_id}", f"u{user_id}@example.com", id=user_id)
    assert [r["id"] for r in ndjson(api.get("/users/export/"))] == [1, 3, 9, 70, 2**40]


def test_head_answers_the_headers_and_reads_one_chunk_at_most(api, two_users, settings):
    settings.EXPORT_CHUNK_ROWS = 1
    with CaptureQueriesContext(connections["users"]) as queries:
        response = api.head("/users/export/?format=csv")
    assert response.status_code == 200
    assert response["Content-Type"] == CSV
    assert body(response) == b""
    assert len(queries) == 1


# --- format negotiation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        ("*/*", NDJSON),
        ("application/x-ndjson", NDJSON),
        ("application/*", NDJSON),
        ("text/*", CSV),
        ("text/csv; charset=utf-8", CSV),
        ("text/csv;q=0.5, application/x-ndjson;q=0.9", NDJSON),
        ("application/x-ndjson;q=0.1, text/csv", CSV),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", NDJSON),  # browsers
        ("application/json, text/csv;q=0.2", CSV),
        ("", NDJSON),
    ],
)
def test_the_accept_header_chooses_the_format(api, accept, content_type):
    response = api.get("/users/export/", HTTP_ACCEPT=accept)
    assert response.status_code == 200
    assert response["Content-Type"] == content_type


def test_format_in_the_query_wins_over_accept(api):
    assert api.get("/users/export/?format=ndjson", HTTP_ACCEPT="text/csv")["Content-Type"] == (
        NDJSON
    )
    assert api.get("/users/export/?format=CSV", HTTP_ACCEPT="application/xml")["Content-Type"] == (
        CSV
    )


@pytest.mark.parametrize(
    "accept",
    ["application/xml", "application/json", "text/csv;q=0, application/x-ndjson;q=0", "image/*"],
)
@pytest.mark.parametrize("path", EXPORTS)
def test_an_accept_header_that_allows_neither_format_is_a_406_in_json(api, path, accept):
    make_user()
    response = api.get(path, HTTP_ACCEPT=accept)
    assert response.status_code == 406
    assert response["Content-Type"] == "application/json"
    payload = response.json()
    assert payload["code"] == "not_acceptable"
    assert "application/x-ndjson" in payload["detail"]
    assert "text/csv" in payload["detail"]


@pytest.mark.parametrize("value", ["xml", "json", "", "ndjson2", "١"])
def test_an_unknown_format_is_a_400_naming_the_allowed_ones(api, value):
    response = api.get(f"/users/export/?format={value}", HTTP_ACCEPT="text/csv")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    (message,) = response.json()["format"]
    assert message.startswith("Must be one of ndjson, csv, not ")


# --- the query string is strict ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/users/export/", "email, format, id__in, max_id, min_id, name, name_contains, search"),
        (
            "/products/export/",
            "format, id__in, max_id, max_price, min_id, min_price, name, name_contains, search",
        ),
        (
            "/orders/export/",
            "format, id__in, max_id, max_quantity, min_id, min_quantity, product_id, "
            "product_id__in, user_id, user_id__in",
        ),
    ],
)
@pytest.mark.parametrize("param", ["ordering=id", "page=2", "page_size=10", "cursor=abc", "nam=a"])
def test_parameters_the_export_does_not_take_are_a_400_listing_those_it_does(
    api, path, allowed, param
):
    make_user()
    response = api.get(f"{path}?{param}")
    assert response.status_code == 400
    name = param.split("=")[0]
    assert response.json() == {name: [f"Unknown query parameter. This endpoint takes: {allowed}."]}


@pytest.mark.parametrize("query", ["format=csv&format=csv", "name=a&name=b"])
def test_a_repeated_parameter_is_a_400(api, query):
    response = api.get(f"/users/export/?{query}")
    assert response.status_code == 400
    assert response.json() == {query.split("=")[0]: ["Given 2 times; give it once."]}


@pytest.mark.parametrize(
    "query",
    [
        "/orders/?user_id=abc",
        "/orders/?user_id=١٠",
        "/orders/?min_quantity=1e40",
        "/products/?min_price=0.001",
        "/products/?max_price=NaN",
    ],
)
def test_bad_filter_values_are_the_same_400_as_on_the_list(api, query):
    path, params = query.split("?")
    listed = api.get(query)
    exported = api.get(f"{path}export/?{params}")
    assert listed.status_code == exported.status_code == 400
    assert exported.json() == listed.json()


# --- access: exactly as the lists ---------------------------------------------------------------


@pytest.mark.parametrize("path", EXPORTS)
def test_reads_open_means_exports_open(anonymous_api, path):
    make_user()
    assert anonymous_api.get(path).status_code == 200


@pytest.mark.parametrize("path", EXPORTS)
def test_reads_that_need_a_key_mean_exports_need_one(anonymous_api, settings, path):
    settings.API_READS_REQUIRE_TOKEN = True
    response = anonymous_api.get(path)
    assert response.status_code == 401
    assert "create_api_token" in response.json()["detail"]
    assert anonymous_api.get(path.replace("export/", "")).status_code == 401  # as the list
    assert client_with("0123abcd.wrong").get(path).status_code == 401
    assert client_with(make_api_key("reader")).get(path).status_code == 200


def test_anonymous_exports_count_against_the_read_throttle(anonymous_api, settings):
    settings.API_THROTTLE_RATES = {"anon_reads": "2/minute"}
    statuses = [anonymous_api.get(path).status_code for path in ("/users/", *EXPORTS)]
    assert statuses == [200, 200, 429, 429]
    limited = anonymous_api.get("/users/export/")
    assert limited.status_code == 429
    assert 0 < int(limited["Retry-After"]) <= 60
    assert limited["Content-Type"] == "application/json"
    assert client_with(make_api_key("reader")).get("/users/export/").status_code == 200


# --- chunked reading: bounded queries, nothing read ahead ---------------------------------------


def test_the_table_is_read_in_keyset_chunks_while_the_response_is_sent(api, settings):
    settings.EXPORT_CHUNK_ROWS = 2
    ids = [make_user(f"U{i}", f"u{i}@example.com").id for i in range(5)]
    with CaptureQueriesContext(connections["users"]) as queries:
        response = api.get("/users/export/")
        assert len(queries) == 1  # the first chunk only, before the response starts
        lines = ndjson(response)
    assert [line["id"] for line in lines] == ids
    sql = [query["sql"] for query in queries]
    assert len(sql) == 3  # 2 + 2 + 1 rows: a short chunk is the last
    assert all("LIMIT 2" in statement for statement in sql), sql
    assert not any("OFFSET" in statement for statement in sql), sql
    assert f'"id" > {ids[1]}' in sql[1]
    assert f'"id" > {ids[3]}' in sql[2]
    assert all("ORDER BY" in statement for statement in sql)


def test_filters_go_into_every_chunk(api, settings):
    settings.EXPORT_CHUNK_ROWS = 2
    for i in range(7):
        make_user(f"{'Ann' if i % 2 else 'Bob'} {i}", f"u{i}@example.com")
    with CaptureQueriesContext(connections["users"]) as queries:
        names = [line["name"] for line in ndjson(api.get("/users/export/?name_contains=ann"))]
    assert names == ["Ann 1", "Ann 3", "Ann 5"]
    assert len(queries) == 2
    assert all("LIKE" in query["sql"] for query in queries)


def test_a_client_that_stops_reading_stops_the_queries(api, settings):
    settings.EXPORT_CHUNK_ROWS = 2
    for i in range(10):
        make_user(f"U{i}", f"u{i}@example.com")
    before = streams("users", "disconnected")
    with CaptureQueriesContext(connections["users"]) as queries:
        response = api.get("/users/export/")
        pieces = iter(response.streaming_content)
        next(pieces)
        next(pieces)
        response.close()  # what a WSGI server does when the client is gone
        assert list(pieces) == []
    assert len(queries) == 2
    assert streams("users", "disconnected") == before + 1


def test_a_finished_export_is_counted_and_logged(api, two_users, caplog):
    before = streams("users", "completed")
    with caplog.at_level(logging.INFO, logger="store.export"):
        body(api.get("/users/export/?format=csv", HTTP_X_REQUEST_ID="export-1"))
    assert streams("users", "completed") == before + 1
    (record,) = [r for r in caplog.records if r.name == "store.export"]
    assert record.fields["outcome"] == "completed"
    assert record.fields["rows"] == 2
    assert record.fields["format"] == "csv"
    assert record.fields["request_id"] == "export-1"


# --- the database fails before or after the first byte ------------------------------------------


@pytest.mark.django_db(databases="__all__", transaction=True)
@pytest.mark.parametrize("alias", ["users", "products", "orders"])
def test_a_database_down_before_the_first_byte_is_a_503_naming_it(api, alias):
    from tests.test_faults import database_down

    with database_down(alias):
        response = api.get(f"/{alias}/export/?format=csv")
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert response["Retry-After"]
    payload = response.json()
    assert payload["code"] == "unavailable"
    assert payload["unavailable"] == [alias]
    assert payload["detail"].startswith(f"The {alias} database is unavailable (")


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_a_database_down_after_the_first_byte_aborts_the_stream(api, settings, caplog):
    from tests.test_faults import database_down

    settings.EXPORT_CHUNK_ROWS = 2
    for i in range(5):
        make_user(f"U{i}", f"u{i}@example.com")
    before = streams("users", "failed")
    response = api.get("/users/export/")
    assert response.status_code == 200  # sent before the failure: it cannot change any more
    pieces = iter(response.streaming_content)
    first = next(pieces)
    assert first.count(b"\n") == 2
    with (
        database_down("users"),
        caplog.at_level(logging.INFO, logger="store.export"),
        pytest.raises(ExportAborted, match="failed after 2 rows"),
    ):
        next(pieces)  # the server gets an exception, not an end: it cuts the connection
    assert streams("users", "failed") == before + 1
    (record,) = [r for r in caplog.records if r.name == "store.export"]
    assert record.levelno == logging.ERROR
    assert record.fields["outcome"] == "failed"
    assert record.fields["rows"] == 2
    assert "OperationalError" in record.fields["error"]


# --- a process streams a bounded number of exports ----------------------------------------------


def test_an_export_over_the_cap_is_a_503_before_any_read(api, two_users, settings):
    from common.http.export_slots import streaming_exports

    settings.EXPORT_MAX_STREAMS = 1
    held = api.get("/users/export/")  # headers sent, body not read: it holds the slot
    assert held.status_code == 200
    assert streaming_exports() == 1
    with CaptureQueriesContext(connections["users"]) as queries:
        refused = api.get("/users/export/?format=csv", HTTP_ACCEPT="text/csv")
    assert refused.status_code == 503
    assert refused["Content-Type"] == "application/json"
    assert refused["Retry-After"] == "5"
    payload = refused.json()
    assert payload["code"] == "exports_busy"
    assert "already streaming 1 exports" in payload["detail"]
    assert "EXPORT_MAX_STREAMS" in payload["detail"]
    assert "GET /users/?cursor=" in payload["detail"]
    assert len(queries) == 0, "refused before the first chunk was read"
    assert len(body(held).splitlines()) == 2  # the held export finishes: its slot is back
    assert streaming_exports() == 0
    assert api.get("/orders/export/").status_code == 200


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_every_way_an_export_ends_gives_its_slot_back(api, two_users, settings):
    from common.http.export_slots import streaming_exports
    from tests.test_faults import database_down

    settings.EXPORT_MAX_STREAMS = 1
    api.head("/users/export/")  # HEAD: no body to send
    assert streaming_exports() == 0
    unread = api.get("/users/export/")
    close_as_a_server(unread)  # what a server does when its client went away before the first chunk
    assert streaming_exports() == 0
    with database_down("users"):  # a 503 while the first chunk is read
        assert api.get("/users/export/").status_code == 503
    assert streaming_exports() == 0
    assert api.get("/users/export/?max_id=abc").status_code == 400  # refused by its filters
    assert streaming_exports() == 0
    assert len(body(api.get("/users/export/")).splitlines()) == 2


# --- where a client finds them -------------------------------------------------------------------


def test_the_api_root_links_each_export(api):
    root = api.get("/").json()
    for resource in ("users", "products", "orders"):
        assert root[f"{resource}_export"].endswith(f"/{resource}/export/")


@pytest.mark.parametrize(
    ("resource", "filterset"),
    [("users", UserFilter), ("products", ProductFilter), ("orders", OrderFilter)],
)
def test_the_schema_documents_both_formats_the_filters_and_the_errors(resource, filterset):
    schema = yaml.safe_load(Client().get("/api/schema/").content)
    operation = schema["paths"][f"/{resource}/export/"]["get"]
    assert operation["summary"]
    assert set(operation["responses"]["200"]["content"]) == {"application/x-ndjson", "text/csv"}
    assert {"200", "400", "406", "429", "503"} <= set(operation["responses"])
    assert "exports_busy" in operation["responses"]["503"]["description"]
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert set(parameters) == {*filterset.base_filters, "format"}
    assert parameters["format"]["schema"]["enum"] == ["csv", "ndjson"]
    assert "security" not in operation  # reads are open: no padlock (common.http.schema)
