"""A corpus of hostile requests: each gets a 4xx with a message, or its records are skipped with
reasons; none gets a 500, and nothing it carries reaches a database."""

import json
from io import BytesIO

import pytest

from ingest.models import IngestJob
from orders_svc.models import Order
from products_svc.models import Product
from tests.ingest.skips import skipped_records
from users_svc.models import User

pytestmark = pytest.mark.django_db(databases="__all__")

JSON = "application/json"
MEGABYTE = "x" * 1_000_000
DEEP = "[" * 5000 + "]" * 5000


def _user(**fields) -> bytes:
    return json.dumps({"name": "Alice", "email": "alice@example.com", **fields}).encode()


def _batch(kind: str, record) -> bytes:
    raw = record if isinstance(record, str) else json.dumps(record)
    return f'{{"{kind}": [{raw}]}}'.encode()


# (method, path, content type, body, expected: "4xx" or "skipped")
CORPUS = [
    # Malformed and truncated JSON
    ("post", "/users/", JSON, b'{"name": "Alice", "email": "a@example.com"', "4xx"),
    ("post", "/users/", JSON, b"{name: 'Alice'}", "4xx"),
    ("post", "/products/", JSON, b'{"name": "P", "price": 1,}', "4xx"),
    ("post", "/orders/", JSON, b"", "4xx"),
    ("post", "/users/", JSON, b"\xff\xfe{}", "4xx"),
    ("post", "/users/", JSON, b'{"name": "\\ud800", "email": "a@example.com"}', "4xx"),
    ("post", "/users/", JSON, b'{"name": "a\x00b", "email": "a@example.com"}', "4xx"),
    # Wrong content types
    ("post", "/users/", "text/plain", b"name=Alice", "4xx"),
    ("post", "/users/", "application/xml", b"<user><name>Alice</name></user>", "4xx"),
    ("post", "/users/", "application/x-www-form-urlencoded", b"name=&email=nope", "4xx"),
    # Top-level arrays and scalars
    ("post", "/users/", JSON, b'[{"name": "Alice", "email": "a@example.com"}]', "4xx"),
    ("post", "/products/", JSON, b'"Laptop"', "4xx"),
    ("post", "/orders/", JSON, b"42", "4xx"),
    ("post", "/users/", JSON, b"null", "4xx"),
    ("post", "/users/", JSON, b"true", "4xx"),
    # Nulls everywhere, strings for numbers and the reverse, booleans
    ("post", "/users/", JSON, b'{"name": null, "email": null}', "4xx"),
    ("post", "/orders/", JSON, b'{"user_id": null, "product_id": null, "quantity": null}', "4xx"),
    ("post", "/users/", JSON, _user(name=12345), "4xx"),
    ("post", "/users/", JSON, _user(email=["a@example.com"]), "4xx"),
    ("post", "/products/", JSON, b'{"name": "P", "price": "cheap"}', "4xx"),
    (
        "post",
        "/orders/",
        JSON,
        b'{"user_id": "one", "product_id": "two", "quantity": "lots"}',
        "4xx",
    ),
    ("post", "/products/", JSON, b'{"name": true, "price": false}', "4xx"),
    ("post", "/orders/", JSON, b'{"user_id": true, "product_id": 1, "quantity": 1}', "4xx"),
    # NaN, Infinity, numbers beyond 64 bits
    ("post", "/products/", JSON, b'{"name": "P", "price": NaN}', "4xx"),
    ("post", "/products/", JSON, b'{"name": "P", "price": Infinity}', "4xx"),
    ("post", "/products/", JSON, b'{"name": "P", "price": -Infinity}', "4xx"),
    ("post", "/products/", JSON, b'{"name": "P", "price": 1e999}', "4xx"),
    ("post", "/products/", JSON, b'{"name": "P", "price": "NaN"}', "4xx"),
    (
        "post",
        "/orders/",
        JSON,
        b'{"user_id": 1, "product_id": 1, "quantity": 123456789012345678901234567890}',
        "4xx",
    ),
    (
        "post",
        "/orders/",
        JSON,
        b'{"user_id": 99999999999999999999999, "product_id": 1, "quantity": 1}',
        "4xx",
    ),
    # Negative and zero ids
    ("post", "/orders/", JSON, b'{"user_id": -1, "product_id": 0, "quantity": 1}', "4xx"),
    ("get", "/users/-1/", None, None, "4xx"),
    ("get", "/products/0/", None, None, "4xx"),
    ("put", "/users/999999999999999999999999/", JSON, _user(), "4xx"),
    ("delete", "/orders/0/", None, None, "4xx"),
    # Megabyte strings, deep nesting, unicode where it does not belong
    ("post", "/users/", JSON, _user(name=MEGABYTE), "4xx"),
    ("post", "/users/", JSON, f'{{"name": {DEEP}, "email": "a@example.com"}}'.encode(), "4xx"),
    ("post", "/users/", JSON, _user(email="😀@example.com"), "4xx"),
    ("post", "/users/", JSON, _user(name="   \u2003\t"), "4xx"),
    # Duplicate keys, oversize bodies
    ("post", "/users/", JSON, b'{"name": "Alice", "name": "", "email": "a@example.com"}', "4xx"),
    ("post", "/users/", JSON, b'{"name": "A", "email": "' + b"a" * 3_000_000 + b'@x.com"}', "4xx"),
    # Bad query strings
    ("get", "/orders/?user_id=abc", None, None, "4xx"),
    ("get", "/orders/?product_id=1e400", None, None, "4xx"),
    ("get", "/users/?email=a%00b", None, None, "4xx"),
    ("get", "/products/?min_price=Infinity", None, None, "4xx"),
    ("get", "/users/?page=-3", None, None, "4xx"),
    ("put", "/users/", JSON, _user(), "4xx"),
    ("get", "/no/such/endpoint/", None, None, "4xx"),
    # Bulk ingest: the body as a whole
    ("post", "/ingest/", JSON, b'{"users": [{"name": "A"', "4xx"),
    ("post", "/ingest/", JSON, b'[{"users": []}]', "4xx"),
    ("post", "/ingest/", JSON, b'"users"', "4xx"),
    ("post", "/ingest/", JSON, b'{"users": null}', "4xx"),
    ("post", "/ingest/", JSON, b'{"customers": []}', "4xx"),
    ("post", "/ingest/", JSON, b'{"users": [], "users": [{"name": "A"}]}', "4xx"),
    ("post", "/ingest/", JSON, b'{"products": [{"name": "P", "price": NaN}]}', "4xx"),
    ("post", "/ingest/", JSON, f'{{"users": [{DEEP}]}}'.encode(), "4xx"),
    ("post", "/ingest/", JSON, b'{"users": ["\xff"]}', "4xx"),
    ("post", "/ingest/", "text/csv", b"name,email\nA,a@example.com", "4xx"),
    ("post", "/ingest/?dry_run=perhaps", JSON, b'{"users": []}', "4xx"),
    ("post", "/ingest/", JSON, b'{"users": [' + b'{"name": "A"},' * 300_000 + b"{}]}", "4xx"),
    # Bulk ingest: bad records are skipped with reasons, the batch goes on
    ("post", "/ingest/", JSON, _batch("users", "null"), "skipped"),
    ("post", "/ingest/", JSON, _batch("users", '"Alice"'), "skipped"),
    ("post", "/ingest/", JSON, _batch("users", "[1, 2]"), "skipped"),
    (
        "post",
        "/ingest/",
        JSON,
        _batch("users", {"name": None, "email": None, "id": None}),
        "skipped",
    ),
    ("post", "/ingest/", JSON, _batch("users", {"name": 5, "email": 6}), "skipped"),
    ("post", "/ingest/", JSON, _batch("products", {"name": "P", "price": True}), "skipped"),
    ("post", "/ingest/", JSON, _batch("products", {"name": "P", "price": "1.005"}), "skipped"),
    (
        "post",
        "/ingest/",
        JSON,
        _batch("orders", {"user_id": "x", "product_id": 1, "quantity": 1}),
        "skipped",
    ),
    (
        "post",
        "/ingest/",
        JSON,
        _batch("users", {"id": 2**70, "name": "A", "email": "a@x.com"}),
        "skipped",
    ),
    (
        "post",
        "/ingest/",
        JSON,
        _batch("users", {"id": -7, "name": "A", "email": "a@x.com"}),
        "skipped",
    ),
    (
        "post",
        "/ingest/",
        JSON,
        _batch("users", {"id": 0, "name": "A", "email": "a@x.com"}),
        "skipped",
    ),
    ("post", "/ingest/", JSON, _batch("users", {"name": MEGABYTE, "email": "a@x.com"}), "skipped"),
    ("post", "/ingest/", JSON, _batch("users", {"name": "a\x00b", "email": "a@x.com"}), "skipped"),
    ("post", "/ingest/", JSON, _batch("users", {"name": "A", "email": "😀@x.com"}), "skipped"),
    (
        "post",
        "/ingest/",
        JSON,
        _batch("users", '{"name": "", "name": "Bob", "email": "b@x.com"}'),
        "skipped",
    ),
    (
        "post",
        "/ingest/",
        JSON,
        _batch("orders", {"user_id": 2**64, "product_id": -1, "quantity": 2**40}),
        "skipped",
    ),
    (
        "post",
        "/ingest/",
        JSON,
        _batch("users", {"name": {"$ne": None}, "email": "a@x.com"}),
        "skipped",
    ),
]


NDJSON = "application/x-ndjson"
CSV = "text/csv"
USER_LINE = b'{"type": "user", "name": "Alice", "email": "alice@example.com"}\n'
THREE_LINES = USER_LINE * 3


def _ndjson_user(**fields) -> bytes:
    return json.dumps({"type": "user", "name": "Alice", "email": "a@x.com", **fields}).encode()


def cut_off(body: bytes, arrived: int) -> dict:
    """The request a server hands on when a client declares ``len(body)`` bytes and hangs up
    after ``arrived`` of them."""
    return {"CONTENT_LENGTH": str(len(body)), "wsgi.input": BytesIO(body[:arrived])}


def encoded(encoding: str) -> dict:
    return {"HTTP_CONTENT_ENCODING": encoding}


BATCH_BODY = json.dumps(
    {"users": [{"name": f"U{n}", "email": f"u{n}@example.com"} for n in range(50)]}
).encode()
CSV_BODY = b"name,email\n" + b"U,u@example.com\n" * 50

# The review's classes (issue 11): (method, path, content type, body, expected, extra WSGI keys)
MORE = [
    # Cut-off bodies: whole records arrived, the rest never did
    ("post", "/ingest/", NDJSON, THREE_LINES * 10, "4xx", cut_off(THREE_LINES * 10, 189)),
    ("post", "/ingest/", NDJSON, THREE_LINES * 10, "4xx", cut_off(THREE_LINES * 10, 0)),
    ("post", "/ingest/?type=users", CSV, CSV_BODY, "4xx", cut_off(CSV_BODY, 43)),
    ("post", "/ingest/", JSON, BATCH_BODY, "4xx", cut_off(BATCH_BODY, len(BATCH_BODY) - 1)),
    ("post", "/ingest/?async=true", JSON, BATCH_BODY, "4xx", cut_off(BATCH_BODY, 100)),
    ("post", "/ingest/?async=true", NDJSON, THREE_LINES * 10, "4xx", cut_off(THREE_LINES, 63)),
    ("post", "/ingest/?dry_run=true", NDJSON, THREE_LINES, "4xx", cut_off(THREE_LINES, 63)),
    ("post", "/ingest/?atomic=true", NDJSON, THREE_LINES, "4xx", cut_off(THREE_LINES, 126)),
    ("post", "/users/", JSON, _user() + b" " * 100, "4xx", cut_off(_user() + b" " * 100, 48)),
    ("post", "/products/", JSON, b'{"name": "P", "price": 1}  ', "4xx", cut_off(b"x" * 99, 26)),
    (
        "post",
        "/orders/",
        JSON,
        b'{"user_id": 1, "product_id": 1, "quantity": 1}',
        "4xx",
        cut_off(b'{"user_id": 1, "product_id": 1, "quantity": 1}' + b" " * 9, 47),
    ),
    # Compressed, or labelled so
    ("post", "/ingest/", JSON, b'{"users": []}', "4xx", encoded("gzip")),
    ("post", "/ingest/", NDJSON, THREE_LINES, "4xx", encoded("br")),
    ("post", "/ingest/", NDJSON, THREE_LINES, "4xx", encoded("deflate")),
    ("post", "/ingest/?type=users", CSV, CSV_BODY, "4xx", encoded("x-gzip")),
    ("post", "/ingest/", JSON, b'{"users": []}', "4xx", encoded("gzip, identity")),
    ("post", "/users/", JSON, _user(), "4xx", encoded("gzip")),
    ("post", "/products/", JSON, b'{"name": "P", "price": 1}', "4xx", encoded("compress")),
    ("post", "/orders/", JSON, b"{}", "4xx", encoded("zstd")),
    ("post", "/ingest/?async=true", JSON, b'{"users": []}', "4xx", encoded("GZIP")),
    # NDJSON (and JSON, CSV) bytes that are not UTF-8, sync and async
    ("post", "/ingest/", NDJSON, USER_LINE + b'{"type": "user", "name": "\xff"}\n', "4xx", {}),
    ("post", "/ingest/", NDJSON, b'{"type": "user", "na\xffme": "A"}\n', "4xx", {}),
    ("post", "/ingest/", NDJSON, b'{"type": "user", "name": "\xc0\xaf"}\n', "4xx", {}),
    ("post", "/ingest/", NDJSON, b'{"type": "user", "name": "\x80abc"}\n', "4xx", {}),
    ("post", "/ingest/", NDJSON, b'{"type": "user", "name": "\xed\xa0\x80"}\n', "4xx", {}),
    ("post", "/ingest/", NDJSON, b'{"type": "user", "name": "\xe2\x82"}\n', "4xx", {}),
    ("post", "/ingest/", NDJSON, b'{"type": "us\xe9r", "name": "A"}\n', "4xx", {}),
    ("post", "/ingest/?async=true", NDJSON, b'{"type": "user", "name": "\xff"}\n', "4xx", {}),
    ("post", "/ingest/?async=true", JSON, b'{"users": [{"name": "\xff"}]}', "4xx", {}),
    ("post", "/ingest/", JSON, b'{"users": [{"na\xffme": "A"}]}', "4xx", {}),
    ("post", "/ingest/", JSON, b'{"users": [{"name": "A", "\xc3": 1}]}', "4xx", {}),
    ("post", "/ingest/?async=true", JSON, b'{"orders": [{"user_id": "\xc3"}]}', "4xx", {}),
    ("post", "/ingest/?type=users", CSV, b"name,email\n\xff\xfe,a@x.com\n", "4xx", {}),
    ("post", "/ingest/?async=true&type=users", CSV, b"name,email\nA\xff,a@x.com\n", "4xx", {}),
    (
        "post",
        "/ingest/",
        "application/x-ndjson; charset=latin-1",
        b'{"type": "user", "name": "Zo\xeb"}\n',
        "4xx",
        {},
    ),
    # Query parameters given twice, or unknown
    ("post", "/ingest/?dry_run=true&dry_run=false", JSON, BATCH_BODY, "4xx", {}),
    ("post", "/ingest/?atomic=false&atomic=true", JSON, BATCH_BODY, "4xx", {}),
    ("post", "/ingest/?async=false&async=true", JSON, BATCH_BODY, "4xx", {}),
    ("post", "/ingest/?type=users&type=orders", CSV, CSV_BODY, "4xx", {}),
    ("post", "/ingest/?dry_run=true&dry_run=true", NDJSON, THREE_LINES, "4xx", {}),
    ("post", "/ingest/?dryrun=true", JSON, BATCH_BODY, "4xx", {}),
    ("post", "/ingest/?DRY_RUN=true", JSON, BATCH_BODY, "4xx", {}),
    ("post", "/ingest/?atomic=true&mode=fast", NDJSON, THREE_LINES, "4xx", {}),
    ("post", "/ingest/?users=1", JSON, BATCH_BODY, "4xx", {}),
    ("post", "/ingest/?dry_run", JSON, BATCH_BODY, "4xx", {"QUERY_STRING": "dry_run&dry_run=1"}),
    # Fields the single-record endpoints do not know
    ("post", "/users/", JSON, _user(pad=[{}] * 1000), "4xx", {}),
    ("post", "/users/", JSON, _user(is_admin=True), "4xx", {}),
    ("post", "/products/", JSON, b'{"name": "P", "price": 1, "colour": "red"}', "4xx", {}),
    (
        "post",
        "/orders/",
        JSON,
        b'{"user_id": 1, "product_id": 1, "quantity": 1, "x": 1}',
        "4xx",
        {},
    ),
    ("post", "/users/", JSON, _user(Name="Bob"), "4xx", {}),
    # Invisible, control and bidi characters
    ("post", "/users/", JSON, _user(name="\u200b\u200c\u200d"), "4xx", {}),
    ("post", "/users/", JSON, _user(name="\ufeff\u2060"), "4xx", {}),
    ("post", "/users/", JSON, _user(name="Ali\nce"), "4xx", {}),
    ("post", "/users/", JSON, _user(name="Ali\tce"), "4xx", {}),
    ("post", "/users/", JSON, _user(name="Ali\x07ce"), "4xx", {}),
    ("post", "/users/", JSON, _user(name="Ali\x7fce"), "4xx", {}),
    ("post", "/users/", JSON, _user(name="Ali\u0085ce"), "4xx", {}),
    ("post", "/users/", JSON, _user(name="Alice\u202egpj.exe"), "4xx", {}),
    ("post", "/users/", JSON, _user(name="\u2066Alice\u2069"), "4xx", {}),
    ("post", "/users/", JSON, _user(name="Ali\u2028ce"), "4xx", {}),
    ("post", "/products/", JSON, b'{"name": "\\u200b", "price": 1}', "4xx", {}),
    ("post", "/users/", JSON, _user(email="alice\u202e@example.com"), "4xx", {}),
    (
        "post",
        "/ingest/",
        JSON,
        _batch("users", {"name": "\u200b\u200b", "email": "a@x.com"}),
        "skipped",
        {},
    ),
    (
        "post",
        "/ingest/",
        JSON,
        _batch("users", {"name": "A\u202eB", "email": "a@x.com"}),
        "skipped",
        {},
    ),
    (
        "post",
        "/ingest/",
        JSON,
        _batch("users", {"name": "A\r\nB", "email": "a@x.com"}),
        "skipped",
        {},
    ),
    ("post", "/ingest/", NDJSON, _ndjson_user(name="\u2067x") + b"\n", "skipped", {}),
    # An integer longer than Python's json parser converts (4,300 digits), in a key no record
    # has: msgspec skips it, the exact check for unknown keys met it (a 500 before).
    ("post", "/ingest/", NDJSON, b'{"type": "user", "junk": ' + b"9" * 4301 + b"}\n", "4xx", {}),
    (
        "post",
        "/ingest/",
        JSON,
        b'{"users": [{"name": "A", "junk": ' + b"9" * 4301 + b"}]}",
        "4xx",
        {},
    ),
    ("post", "/ingest/?type=users", CSV, b'name,email\n"A\nB",a@x.com\n', "skipped", {}),
    ("post", "/ingest/", JSON, _batch("products", {"name": "\u2060", "price": 1}), "skipped", {}),
    # Digits that are not ASCII, and underscores
    ("post", "/products/", JSON, json.dumps({"name": "P", "price": "١٠"}).encode(), "4xx", {}),
    ("post", "/products/", JSON, json.dumps({"name": "P", "price": "５"}).encode(), "4xx", {}),
    ("post", "/products/", JSON, b'{"name": "P", "price": "1_000"}', "4xx", {}),
    ("post", "/products/", JSON, json.dumps({"name": "P", "price": "٣.٥"}).encode(), "4xx", {}),
    (
        "post",
        "/orders/",
        JSON,
        json.dumps({"user_id": "１", "product_id": 1, "quantity": 1}).encode(),
        "4xx",
        {},
    ),
    (
        "post",
        "/orders/",
        JSON,
        json.dumps({"user_id": 1, "product_id": 1, "quantity": "٢"}).encode(),
        "4xx",
        {},
    ),
    ("get", "/orders/?user_id=١٠", None, None, "4xx", {}),
    ("post", "/ingest/", JSON, _batch("products", {"name": "P", "price": "١٠"}), "skipped", {}),
    ("post", "/ingest/", JSON, _batch("products", {"name": "P", "price": "1_0"}), "skipped", {}),
    (
        "post",
        "/ingest/",
        JSON,
        _batch("users", {"id": "٧", "name": "A", "email": "a@x.com"}),
        "skipped",
        {},
    ),
    ("post", "/ingest/?type=products", CSV, "name,price\nP,５\n".encode(), "skipped", {}),
    # Made-up methods
    ("qwertyuiopasd", "/users/", JSON, b"{}", "4xx", {}),
    ("brew", "/ingest/", JSON, b'{"users": []}', "4xx", {}),
    ("propfind", "/products/", None, None, "4xx", {}),
    ("x-delete-all", "/orders/", None, None, "4xx", {}),
    ("trace", "/users/", None, None, "4xx", {}),
    ("connect", "/ingest/", None, None, "4xx", {}),
]


def _send(api, method, path, content_type, body, extra=None):
    extra = extra or {}
    if body is None and method in ("get", "put", "post", "patch", "delete"):
        return getattr(api, method)(path, **extra)
    return api.generic(method.upper(), path, body or b"", content_type=content_type, **extra)


ALL = [(*case, {}) for case in CORPUS] + MORE


@pytest.mark.parametrize(
    ("method", "path", "content_type", "body", "expected", "extra"),
    ALL,
    ids=[
        f"{i:03d}-{case[0]}-{case[1].strip('/').split('/')[0].split('?')[0] or 'root'}"
        for i, case in enumerate(ALL)
    ],
)
def test_hostile_request(api, settings, method, path, content_type, body, expected, extra):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2_500_000
    settings.INGEST_MAX_BODY_BYTES = 4_000_000
    response = _send(api, method, path, content_type, body, dict(extra))
    assert response.status_code < 500
    payload = response.json()
    if expected == "4xx":
        assert 400 <= response.status_code < 500, payload
        assert payload, "a 4xx must say why"
        assert any(isinstance(message, str) and message for message in _messages(payload)), payload
    else:
        assert response.status_code == 200, payload
        received = sum(payload[kind]["received"] for kind in ("users", "products", "orders"))
        skipped = [
            record
            for kind in ("users", "products", "orders")
            for record in skipped_records(payload[kind])
        ]
        assert received == len(skipped) == 1
        assert all(reasons for reasons in skipped[0]["reasons"].values())
    assert (User.objects.count(), Product.objects.count(), Order.objects.count()) == (0, 0, 0)
    assert IngestJob.objects.count() == 0  # nor was it stored as a background job


def _messages(payload):
    if isinstance(payload, dict):
        for value in payload.values():
            yield from _messages(value)
    elif isinstance(payload, list):
        for value in payload:
            yield from _messages(value)
    else:
        yield payload


def test_the_corpus_is_big_enough():
    assert len(ALL) >= 150


@pytest.mark.parametrize(
    "name",
    [
        "Robert'); DROP TABLE users;--",
        "1 OR 1=1",
        "'; SELECT * FROM sqlite_master; --",
        "Zoë 😀 日本語",
        "<script>alert(1)</script>",
    ],
)
def test_sql_and_markup_looking_text_is_stored_literally(api, name):
    response = api.post("/users/", {"name": name, "email": "bobby@example.com"}, format="json")
    assert response.status_code == 201
    assert User.objects.get().name == name
    assert api.get(f"/users/?name={name[:3]}").status_code == 200
    assert Order.objects.count() == 0  # every table still there and untouched
