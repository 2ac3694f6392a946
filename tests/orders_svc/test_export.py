"""GET /orders/export/: the orders with their user and product ids, filtered as the list is."""

import pytest

from orders_svc.filters import OrderFilter
from tests.export_parity import assert_every_filter_selects_what_the_list_selects, exported_ids
from tests.factories import make_order, make_product, make_user

pytestmark = pytest.mark.django_db(databases="__all__")


@pytest.fixture
def orders():
    users = [make_user(f"U{i}", f"u{i}@example.com") for i in range(3)]
    products = [make_product(f"P{i}", "1.00") for i in range(3)]
    return [make_order(users[i % 3].id, products[(i * 2) % 3].id, quantity=i + 1) for i in range(9)]


def test_every_filter_of_the_list_selects_the_same_orders(api, orders):
    first = orders[0]
    assert_every_filter_selects_what_the_list_selects(
        api,
        "orders",
        OrderFilter,
        {
            "user_id": [first.user_id, orders[1].user_id, 10**15],
            "product_id": [first.product_id, orders[2].product_id],
            "min_quantity": [1, 5, 100],
            "max_quantity": [3, 9, 0],
            "id__in": ["1,2,3", "2", "999999"],
            "min_id": [1, 3, 999999],
            "max_id": [2, 999999],
            "user_id__in": ["1,2,3", "999999"],
            "product_id__in": ["1,2", "3"],
        },
    )


def test_the_filters_select_what_they_say(api, orders):
    user_id = orders[1].user_id
    assert exported_ids(api, f"/orders/export/?user_id={user_id}&min_quantity=3") == [
        order.id for order in orders if order.user_id == user_id and order.quantity >= 3
    ]
