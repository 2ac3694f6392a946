"""/products/: what a client sees, and what lands in the products database."""
# ruff: noqa: RUF001 (look-alike digits and invisible characters are the point of some cases)

import shutil
import sqlite3
import subprocess
from contextlib import closing
from decimal import Decimal

import orjson
import pytest
from django.db import connections

from orders_svc.models import Order
from products_svc.models import Product
from tests.factories import make_order, make_product, make_user
from users_svc.models import User

pytestmark = pytest.mark.django_db(databases="__all__")

NOT_A_NUMBER = "A valid number is required."
UNKNOWN = "Unknown field. The fields of a product are: name, price."


def _rows():
    """Every row of every service's database, as a client would check them."""
    return (
        User.objects.count(),
        list(Product.objects.values_list("id", "name", "price")),
        Order.objects.count(),
    )


@pytest.mark.parametrize(
    ("price", "stored"),
    [(1000, "1000.00"), (1000.0, "1000.00"), ("19.99", "19.99"), (19.99, "19.99"), (0.01, "0.01")],
)
def test_create_product_keeps_the_price_exact(api, price, stored):
    response = api.post("/products/", {"name": "Laptop", "price": price})
    assert response.status_code == 201
    assert response.json()["price"] == stored
    assert Product.objects.get().price == Decimal(stored)


@pytest.mark.django_db(databases="__all__", transaction=True, reset_sequences=True)
def test_whole_prices_read_like_the_seed_report_in_the_sqlite_shell(api):
    if connections["products"].vendor != "sqlite":
        pytest.skip("SQLite storage only")
    api.post("/products/", {"name": "Laptop", "price": 1000})
    api.post("/products/", {"name": "Cable", "price": "19.99"})
    path = connections["products"].settings_dict["NAME"]
    expected = "1|Laptop|1000.0\n2|Cable|19.99\n"
    if shutil.which("sqlite3"):
        shell = subprocess.run(
            ["sqlite3", path, "SELECT * FROM products;"], capture_output=True, text=True, check=True
        )
        assert shell.stdout == expected
    with closing(sqlite3.connect(path)) as raw:
        rows = raw.execute("SELECT * FROM products").fetchall()
    assert "".join("|".join(map(str, row)) + "\n" for row in rows) == expected


@pytest.mark.parametrize(
    ("payload", "errors"),
    [
        ({"name": "Earbuds", "price": -50.0}, {"price": ["Ensure this value is greater than 0."]}),
        ({"name": "Earbuds", "price": 0}, {"price": ["Ensure this value is greater than 0."]}),
        ({"name": "Earbuds", "price": "abc"}, {"price": ["A valid number is required."]}),
        ({"name": "Earbuds", "price": "NaN"}, {"price": ["A valid number is required."]}),
        ({"name": "Earbuds", "price": True}, {"price": ["A valid number is required."]}),
        (
            {"name": "Earbuds", "price": 1.234},
            {"price": ["Ensure that there are no more than 2 decimal places."]},
        ),
        (
            {"name": "Earbuds", "price": 1e12},
            {"price": ["Ensure that there are no more than 10 digits before the decimal point."]},
        ),
        ({"name": "Earbuds"}, {"price": ["This field is required."]}),
        ({"name": " ", "price": 5}, {"name": ["This field may not be blank."]}),
    ],
)
def test_invalid_product_is_a_400_and_nothing_written(api, payload, errors):
    response = api.post("/products/", payload)
    assert response.status_code == 400
    assert response.json() == errors
    assert _rows() == (0, [], 0)


@pytest.mark.parametrize(
    "price",
    [
        "١٠",  # Arabic-Indic: Decimal() reads 10
        "٥.٥٠",
        "５",  # fullwidth: Decimal() reads 5
        "１０００.００",
        "1_000",  # Decimal() reads 1000
        "1_000.00",
        "१९.९९",  # Devanagari
        "-Infinity",
        "sNaN",
        "1e99999999999999999999",
    ],
)
def test_a_price_in_other_digits_than_ascii_is_a_400_and_nothing_written(api, price):
    response = api.post("/products/", {"name": "Earbuds", "price": price})
    assert response.status_code == 400
    assert response.json() == {"price": [NOT_A_NUMBER]}
    assert _rows() == (0, [], 0)


def test_a_price_update_in_other_digits_changes_nothing(api):
    product = make_product()
    for method, payload in (
        ("put", {"name": "Laptop", "price": "١٠"}),
        ("patch", {"price": "1_0"}),
    ):
        response = getattr(api, method)(f"/products/{product.id}/", payload)
        assert response.status_code == 400, method
        assert response.json() == {"price": [NOT_A_NUMBER]}
    assert _rows() == (0, [(product.id, "Laptop", Decimal("1000.00"))], 0)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("\u200b\u200b", "This field may not be blank."),
        ("\ufeff \u2060", "This field may not be blank."),
        (
            "Lap\ntop",
            "Control characters (newlines, tabs, line separators and other non-printing codes) "
            "are not allowed.",
        ),
        (
            "Laptop\u202e",
            "Bidirectional override characters (U+202A to U+202E, U+2066 to U+2069) are not "
            "allowed.",
        ),
    ],
)
def test_a_product_name_of_invisible_control_or_bidi_characters_is_a_400(api, name, message):
    response = api.post("/products/", {"name": name, "price": "10"})
    assert response.status_code == 400
    assert response.json() == {"name": [message]}
    assert _rows() == (0, [], 0)


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_an_unknown_field_is_a_400_naming_it_and_nothing_written(api, method):
    product = make_product()
    url = "/products/" if method == "POST" else f"/products/{product.id}/"
    payload = {"name": "Mouse", "price": "30", "currency": "EUR"}
    response = api.generic(method, url, orjson.dumps(payload), content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"currency": [UNKNOWN]}
    assert _rows() == (0, [(product.id, "Laptop", Decimal("1000.00"))], 0)


def test_a_repeated_key_is_a_400_even_when_its_last_value_is_valid(api):
    body = '{"name": "Mouse", "price": -1, "price": "30"}'
    response = api.generic("POST", "/products/", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {
        "detail": "JSON parse error - the key 'price' appears more than once in an object; "
        "send each key once.",
        "code": "parse_error",
    }
    assert _rows() == (0, [], 0)


def test_a_body_above_one_mib_is_a_413(api):
    body = b'{"name": "Mouse", "price": "30", "pad": "' + b"x" * (1024 * 1024) + b'"}'
    response = api.generic("POST", "/products/", body, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["detail"].startswith(
        "Request body is larger than the limit of 1048576 bytes (API_MAX_BODY_BYTES)"
    )
    assert _rows() == (0, [], 0)


def test_list_filters_by_name_and_price_and_orders_by_price(api):
    for name, price in [("Laptop", "1000"), ("Mouse", "30"), ("Monitor", "300"), ("laptop", "7")]:
        make_product(name, price)
    names = lambda url: [p["name"] for p in api.get(url).json()["results"]]  # noqa: E731
    assert names("/products/?name=LAPTOP") == ["Laptop", "laptop"]
    assert names("/products/?name_contains=mo") == ["Mouse", "Monitor"]
    assert names("/products/?min_price=30&max_price=300") == ["Mouse", "Monitor"]
    assert names("/products/?ordering=-price") == ["Laptop", "Monitor", "Mouse", "laptop"]
    assert names("/products/?ordering=price&page_size=2") == ["laptop", "Mouse"]


@pytest.mark.parametrize(
    ("query", "errors"),
    [
        ("min_price=abc", {"min_price": ["Enter a number."]}),
        (
            "max_price=1e40",
            {"max_price": ["Ensure that there are no more than 12 digits in total."]},
        ),
        (
            "min_price=1.234",
            {"min_price": ["Ensure that there are no more than 2 decimal places."]},
        ),
        ("min_price=١٠", {"min_price": ["Enter a number."]}),  # Decimal() reads 10
        ("max_price=５", {"max_price": ["Enter a number."]}),
        ("min_price=1_000", {"min_price": ["Enter a number."]}),
        ("max_price=NaN", {"max_price": ["Enter a number."]}),
    ],
)
def test_bad_filter_values_are_400s(api, query, errors):
    make_product()
    response = api.get(f"/products/?{query}")
    assert response.status_code == 400
    assert response.json() == errors


def test_update_and_patch(api):
    product = make_product()
    response = api.put(f"/products/{product.id}/", {"name": "Laptop Pro", "price": "1500.5"})
    assert response.status_code == 200
    assert response.json() == {"id": product.id, "name": "Laptop Pro", "price": "1500.50"}
    response = api.patch(f"/products/{product.id}/", {"price": -1})
    assert response.status_code == 400
    assert response.json() == {"price": ["Ensure this value is greater than 0."]}
    response = api.patch(f"/products/{product.id}/", {"id": product.id, "price": 20})
    assert response.status_code == 200
    assert response.json() == {"id": product.id, "name": "Laptop Pro", "price": "20.00"}
    assert _rows() == (0, [(product.id, "Laptop Pro", Decimal("20.00"))], 0)


def test_delete_referenced_product_is_a_409_and_unreferenced_is_a_204(api):
    user, laptop, mouse = make_user(), make_product(), make_product("Mouse", "30")
    make_order(user.id, laptop.id)
    response = api.delete(f"/products/{laptop.id}/")
    assert response.status_code == 409
    assert response.json()["detail"] == (
        f"Product {laptop.id} is still referenced by 1 order; delete or change those first."
    )
    assert api.delete(f"/products/{mouse.id}/").status_code == 204
    assert list(Product.objects.values_list("id", flat=True)) == [laptop.id]
