"""/products/: what a client sees, and what lands in the products database."""

import shutil
import sqlite3
import subprocess
from contextlib import closing
from decimal import Decimal

import pytest
from django.db import connections

from products_svc.models import Product
from tests.factories import make_order, make_product, make_user

pytestmark = pytest.mark.django_db(databases="__all__")


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
    assert not Product.objects.exists()


def test_list_filters_by_name_and_price_and_orders_by_price(api):
    for name, price in [("Laptop", "1000"), ("Mouse", "30"), ("Monitor", "300"), ("laptop", "7")]:
        make_product(name, price)
    names = lambda url: [p["name"] for p in api.get(url).json()["results"]]  # noqa: E731
    assert names("/products/?name=LAPTOP") == ["Laptop", "laptop"]
    assert names("/products/?name_contains=mo") == ["Mouse", "Monitor"]
    assert names("/products/?min_price=30&max_price=300") == ["Mouse", "Monitor"]
    assert names("/products/?ordering=-price") == ["Laptop", "Monitor", "Mouse", "laptop"]
    assert names("/products/?ordering=price&page_size=2") == ["laptop", "Mouse"]


@pytest.mark.parametrize("query", ["min_price=abc", "max_price=1e40", "min_price=1.234"])
def test_bad_filter_values_are_400s(api, query):
    response = api.get(f"/products/?{query}")
    assert response.status_code == 400
    assert response.json()


def test_update_and_patch(api):
    product = make_product()
    assert (
        api.put(f"/products/{product.id}/", {"name": "Laptop Pro", "price": "1500.5"}).json()[
            "price"
        ]
        == "1500.50"
    )
    assert api.patch(f"/products/{product.id}/", {"price": -1}).status_code == 400
    product.refresh_from_db()
    assert (product.name, product.price) == ("Laptop Pro", Decimal("1500.50"))


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
