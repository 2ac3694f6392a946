"""/orders/: references are checked against the users and products databases."""

import pytest

from orders_svc.models import Order
from tests.factories import make_order, make_product, make_user

pytestmark = pytest.mark.django_db(databases="__all__")


@pytest.fixture
def alice_and_laptop():
    return make_user(), make_product()


def test_create_order_for_existing_user_and_product(api, alice_and_laptop):
    user, product = alice_and_laptop
    response = api.post("/orders/", {"user_id": user.id, "product_id": product.id, "quantity": 2})
    assert response.status_code == 201
    assert response.json() == {
        "id": response.json()["id"],
        "user_id": user.id,
        "product_id": product.id,
        "quantity": 2,
    }
    assert list(Order.objects.using("orders").values_list("user_id", "product_id", "quantity")) == [
        (user.id, product.id, 2)
    ]


@pytest.mark.parametrize(
    ("payload", "errors"),
    [
        ({"quantity": 0}, {"quantity": ["Ensure this value is greater than 0."]}),
        ({"quantity": -1}, {"quantity": ["Ensure this value is greater than 0."]}),
        ({"quantity": 1.5}, {"quantity": ["A valid integer is required."]}),
        ({"quantity": "lots"}, {"quantity": ["A valid integer is required."]}),
        (
            {"quantity": 2**31},
            {"quantity": ["Ensure this value is less than or equal to 2147483647."]},
        ),
        # Ids far above any a test creates (PostgreSQL sequences are not reset between tests).
        ({"user_id": 999999999}, {"user_id": ["User 999999999 does not exist."]}),
        ({"product_id": 888888888}, {"product_id": ["Product 888888888 does not exist."]}),
        (
            {"user_id": 999999999, "product_id": 888888888},
            {
                "user_id": ["User 999999999 does not exist."],
                "product_id": ["Product 888888888 does not exist."],
            },
        ),
        ({"user_id": 0}, {"user_id": ["Ensure this value is greater than 0."]}),
        (
            {"user_id": 2**64},
            {"user_id": [f"Ensure this value is less than or equal to {2**63 - 1}."]},
        ),
        ({"user_id": None}, {"user_id": ["This field may not be null."]}),
    ],
)
def test_invalid_order_is_a_400_and_nothing_written(api, alice_and_laptop, payload, errors):
    user, product = alice_and_laptop
    body = {"user_id": user.id, "product_id": product.id, "quantity": 1, **payload}
    response = api.post("/orders/", body)
    assert response.status_code == 400
    assert response.json() == errors
    assert not Order.objects.exists()


def test_changing_the_user_or_product_is_checked_like_a_create(api, alice_and_laptop):
    user, product = alice_and_laptop
    bob = make_user("Bob", "bob@example.com")
    order = make_order(user.id, product.id)
    assert api.patch(f"/orders/{order.id}/", {"user_id": 404}).json() == {
        "user_id": ["User 404 does not exist."]
    }
    assert (
        api.put(
            f"/orders/{order.id}/", {"user_id": user.id, "product_id": 77, "quantity": 1}
        ).status_code
        == 400
    )
    response = api.patch(f"/orders/{order.id}/", {"user_id": bob.id, "quantity": 4})
    assert response.status_code == 200
    order.refresh_from_db()
    assert (order.user_id, order.product_id, order.quantity) == (bob.id, product.id, 4)


def test_list_filters_by_user_product_and_quantity(api, alice_and_laptop):
    user, product = alice_and_laptop
    other = make_product("Mouse", "30")
    make_order(user.id, product.id, 1)
    make_order(user.id, other.id, 5)
    make_order(user.id + 1000, other.id, 9)
    ids = lambda url: [o["quantity"] for o in api.get(url).json()["results"]]  # noqa: E731
    assert ids(f"/orders/?user_id={user.id}") == [1, 5]
    assert ids(f"/orders/?product_id={other.id}") == [5, 9]
    assert ids("/orders/?min_quantity=2&max_quantity=8") == [5]
    assert ids("/orders/?ordering=-quantity") == [9, 5, 1]


@pytest.mark.parametrize(
    "query",
    [
        "user_id=abc",
        "user_id=0",
        "user_id=99999999999999999999",
        "product_id=-4",
        "min_quantity=1.5",
    ],
)
def test_bad_filter_values_are_400s(api, query):
    response = api.get(f"/orders/?{query}")
    assert response.status_code == 400
    assert response.json()


def test_delete_order_frees_the_user(api, alice_and_laptop):
    user, product = alice_and_laptop
    order = make_order(user.id, product.id)
    assert api.delete(f"/users/{user.id}/").status_code == 409
    assert api.delete(f"/orders/{order.id}/").status_code == 204
    assert api.delete(f"/users/{user.id}/").status_code == 204
