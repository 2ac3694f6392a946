"""An update merges the fields given with the stored ones, then checks the merged record by the
service's rule: the stored values must pass that rule as they passed it when they came in.

A price is stored as a decimal (a float on SQLite, read back as the decimal it was) and the
rules take prices as clients send them (JSON numbers and strings), so these tests update the
other fields of products with every kind of stored price, on the suite's database.
"""

import json
from decimal import Decimal

import pytest

from products_svc.models import Product

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True, reset_sequences=True)

PRICES = ["0.01", "19.90", "1000", "1234567890.12", "9999999999.99"]


def post(api, body, query):
    return api.generic(
        "POST", f"/ingest/{query}", json.dumps(body), content_type="application/json"
    )


@pytest.mark.parametrize("query", ["?action=update", "?action=update&atomic=true"])
def test_an_update_of_a_products_name_keeps_its_stored_price(api, query):
    products = [{"id": i, "name": f"P{i}", "price": p} for i, p in enumerate(PRICES, start=1)]
    assert post(api, {"products": products}, "").json()["errors"] is False

    response = post(
        api, {"products": [{"id": i, "name": f"Renamed {i}"} for i in range(1, 6)]}, query
    )

    assert response.status_code == 200, response.json()
    body = response.json()["products"]
    assert body["updated_ids"] == [1, 2, 3, 4, 5], body
    assert list(Product.objects.order_by("id").values_list("name", "price")) == [
        (f"Renamed {i}", Decimal(p).quantize(Decimal("0.01"))) for i, p in enumerate(PRICES, 1)
    ]
