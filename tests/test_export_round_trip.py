"""Round trip: what the exports give, POST /ingest/ takes back into empty databases as exactly
the same rows, every column of every row, as NDJSON (one body with all three exports) and as
CSV (one body per type)."""
# ruff: noqa: RUF001 (look-alike and invisible characters are the point of some values)

from decimal import Decimal

import pytest

from orders_svc.models import Order
from products_svc.models import Product
from users_svc.models import User

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True, reset_sequences=True)

LARGEST = 2**63 - 1
MODELS = (User, Product, Order)

USERS = [
    (1, "Alice", "alice@example.com"),
    (2, 'Zoë "Z" O\'Brien, Jr.', "o'brien@example.com"),
    (5, "日本語の名前", "nihon@example.jp"),
    (6, "👩‍👩‍👧 family, 😀 and 🇺🇦", "emoji@example.com"),
    (7, "a,b,,c", "commas@example.com"),
    (8, '"', "quote@example.com"),
    (9, "back\\slash \\n not a newline", "slash@example.com"),
    (10, "non\u00a0breaking space", "nbsp@example.com"),
    (11, "=SUM(A1:A2)", "formula@example.com"),
    (12, "x" * 255, ("e" * 64) + "@" + ("d" * 60) + ".example.com"),
    (13, "Ünïcödé; semi;colons", "UPPER.Case+tag@Example.COM"),
    (1000, "after a gap", "gap@example.com"),
    (2**31, "past 32 bits", "big@example.com"),
    (2**53 + 1, "past a double's integers", "double@example.com"),
    (LARGEST, "the largest id", "largest@example.com"),
]
PRICES = ["0.01", "0.10", "1.00", "19.99", "1000.00", "123456.78", "9999999999.99"]
PRODUCTS = [
    (3, "Laptop", "1000.00"),
    (4, 'Cable, 2m "braided"', "0.01"),
    *[(100 + i, f"Product {price} ☕", price) for i, price in enumerate(PRICES)],
    (2**40, "Ｆｕｌｌｗｉｄｔｈ", "9999999999.99"),
    (LARGEST, "the largest product", "0.99"),
]
ORDERS = [
    (1, 1, 3, 2),
    (2, LARGEST, LARGEST, 2147483647),
    (4, 2**53 + 1, 2**40, 1),
    *[(20 + i, USERS[i % len(USERS)][0], PRODUCTS[i % len(PRODUCTS)][0], i + 1) for i in range(12)],
    (10**15, 6, 4, 7),
    (LARGEST, 13, 100, 3),
]


def _populate() -> None:
    User.objects.bulk_create(User(id=i, name=n, email=e) for i, n, e in USERS)
    Product.objects.bulk_create(Product(id=i, name=n, price=Decimal(p)) for i, n, p in PRODUCTS)
    Order.objects.bulk_create(
        Order(id=i, user_id=u, product_id=p, quantity=q) for i, u, p, q in ORDERS
    )


def _rows() -> dict[str, list[tuple]]:
    """Every column of every row of each service's table, in id order."""
    return {
        model._meta.db_table: list(
            model.objects.order_by("id").values_list(
                *(field.attname for field in model._meta.concrete_fields)
            )
        )
        for model in MODELS
    }


def _empty() -> None:
    for model in reversed(MODELS):
        model.objects.all().delete()
    assert all(not rows for rows in _rows().values())


def _export(api, resource: str, fmt: str) -> bytes:
    response = api.get(f"/{resource}/export/?format={fmt}")
    assert response.status_code == 200
    return b"".join(response.streaming_content)


def _ingest(api, body: bytes, content_type: str, query: str = "") -> dict:
    response = api.generic("POST", f"/ingest/{query}", body, content_type=content_type)
    assert response.status_code == 200, response.content
    result = response.json()
    assert result["errors"] is False, result
    return result


@pytest.fixture
def exported(api, settings):
    """The databases above, and their exports (several chunks each) in both formats."""
    settings.EXPORT_CHUNK_ROWS = 4
    _populate()
    before = _rows()
    assert [len(rows) for rows in before.values()] == [len(USERS), len(PRODUCTS), len(ORDERS)]
    exports = {
        (resource, fmt): _export(api, resource, fmt)
        for resource in ("users", "products", "orders")
        for fmt in ("ndjson", "csv")
    }
    _empty()
    return before, exports


def test_ndjson_exports_in_one_body_come_back_as_the_same_rows(api, exported):
    before, exports = exported
    body = b"".join(exports[(resource, "ndjson")] for resource in ("users", "products", "orders"))
    assert body.count(b"\n") == len(USERS) + len(PRODUCTS) + len(ORDERS)
    result = _ingest(api, body, "application/x-ndjson")
    assert [result[kind]["inserted"] for kind in ("users", "products", "orders")] == [
        len(USERS),
        len(PRODUCTS),
        len(ORDERS),
    ]
    assert _rows() == before


def test_ndjson_exports_in_any_order_come_back_as_the_same_rows(api, exported):
    """Orders first: an NDJSON body's orders may point at users and products further on."""
    before, exports = exported
    body = b"".join(exports[(resource, "ndjson")] for resource in ("orders", "products", "users"))
    _ingest(api, body, "application/x-ndjson")
    assert _rows() == before


def test_csv_exports_one_per_type_come_back_as_the_same_rows(api, exported):
    before, exports = exported
    for resource in ("users", "products", "orders"):
        result = _ingest(api, exports[(resource, "csv")], "text/csv", f"?type={resource}")
        assert result[resource]["inserted"] == len(before[resource])
    assert _rows() == before


def test_an_export_sent_back_to_the_same_databases_is_all_duplicates(api, exported):
    before, exports = exported
    body = b"".join(exports[(resource, "ndjson")] for resource in ("users", "products", "orders"))
    _ingest(api, body, "application/x-ndjson")
    again = api.generic("POST", "/ingest/", body, content_type="application/x-ndjson").json()
    assert [again[kind]["inserted"] for kind in ("users", "products", "orders")] == [0, 0, 0]
    assert _rows() == before
