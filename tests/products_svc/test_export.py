"""GET /products/export/: exact prices as the API shows them, filtered as the list is."""

import csv
import io
import json

import pytest

from products_svc.filters import ProductFilter
from tests.export_parity import assert_every_filter_selects_what_the_list_selects, exported_ids
from tests.factories import make_product

pytestmark = pytest.mark.django_db(databases="__all__")

PRICES = ["0.01", "0.10", "19.99", "1000.00", "1000.50", "123456.78", "9999999999.99"]


@pytest.fixture
def products():
    return [make_product(f"P {price}", price) for price in PRICES]


def test_prices_are_the_exact_decimal_strings_the_api_shows(api, products):
    lines = b"".join(api.get("/products/export/").streaming_content).splitlines()
    exported = [json.loads(line)["price"] for line in lines]
    assert exported == PRICES
    assert b'"price":"0.01"' in lines[0]  # a string, never a float
    listed = api.get("/products/?page_size=100").json()["results"]
    assert [product["price"] for product in listed] == exported
    csv_body = b"".join(api.get("/products/export/?format=csv").streaming_content).decode()
    assert [row[2] for row in csv.reader(io.StringIO(csv_body))][1:] == PRICES


def test_every_filter_of_the_list_selects_the_same_products(api, products):
    assert_every_filter_selects_what_the_list_selects(
        api,
        "products",
        ProductFilter,
        {
            "name": ["p 19.99", "nothing"],
            "name_contains": ["1000", "P"],
            "min_price": ["0.1", "1000", "9999999999.99"],
            "max_price": ["0.01", "1000.5", "1e3"],
            "id__in": ["1,2,3", "2", "999999"],
            "min_id": [1, 3, 999999],
            "max_id": [2, 999999],
            "search": ["lap", "zz"],
        },
    )


def test_the_price_range_selects_what_it_says(api, products):
    ids = {str(product.price): product.id for product in products}
    selected = exported_ids(api, "/products/export/?min_price=19.99&max_price=1000")
    assert selected == [ids["19.99"], ids["1000.00"]]
