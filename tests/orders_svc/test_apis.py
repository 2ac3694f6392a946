"""/orders/: references are checked against the users and products databases."""
# ruff: noqa: RUF001 (look-alike digits are the point of some cases)

import orjson
import pytest

from orders_svc.models import Order
from products_svc.models import Product
from tests.factories import make_order, make_product, make_user
from users_svc.models import User

pytestmark = pytest.mark.django_db(databases="__all__")

NOT_AN_INTEGER = "A valid integer is required."
UNKNOWN = "Unknown field. The fields of an order are: user_id, product_id, quantity."


def _rows():
    """Every row of every service's database, as a client would check them."""
    return (
        User.objects.count(),
        Product.objects.count(),
        list(Order.objects.values_list("id", "user_id", "product_id", "quantity")),
    )


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
        ({"user_id": 999999999}, {"user_id": ["No user has this id."]}),
        ({"product_id": 888888888}, {"product_id": ["No product has this id."]}),
        (
            {"user_id": 999999999, "product_id": 888888888},
            {
                "user_id": ["No user has this id."],
                "product_id": ["No product has this id."],
            },
        ),
        ({"user_id": 0}, {"user_id": ["Ensure this value is greater than 0."]}),
        (
            {"user_id": 2**64},
            {"user_id": [f"Ensure this value is less than or equal to {2**63 - 1}."]},
        ),
        ({"user_id": None}, {"user_id": ["This field may not be null."]}),
        # Numbers as text take ASCII digits only: int() would read these as 10, 5 and 1000.
        ({"quantity": "١٠"}, {"quantity": [NOT_AN_INTEGER]}),
        ({"quantity": "５"}, {"quantity": [NOT_AN_INTEGER]}),
        ({"quantity": "1_000"}, {"quantity": [NOT_AN_INTEGER]}),
        ({"user_id": "١"}, {"user_id": [NOT_AN_INTEGER]}),
    ],
)
def test_invalid_order_is_a_400_and_nothing_written(api, alice_and_laptop, payload, errors):
    user, product = alice_and_laptop
    body = {"user_id": user.id, "product_id": product.id, "quantity": 1, **payload}
    response = api.post("/orders/", body)
    assert response.status_code == 400
    assert response.json() == errors
    assert _rows() == (1, 1, [])


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_an_unknown_field_is_a_400_naming_it_and_nothing_written(api, alice_and_laptop, method):
    user, product = alice_and_laptop
    order = make_order(user.id, product.id)
    url = "/orders/" if method == "POST" else f"/orders/{order.id}/"
    payload = {"user_id": user.id, "product_id": product.id, "quantity": 3, "price": "1.00"}
    response = api.generic(method, url, orjson.dumps(payload), content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"price": [UNKNOWN]}
    assert _rows() == (1, 1, [(order.id, user.id, product.id, 1)])


def test_a_repeated_key_is_a_400_even_when_its_last_value_is_valid(api, alice_and_laptop):
    user, product = alice_and_laptop
    body = f'{{"user_id": {user.id}, "product_id": {product.id}, "quantity": 0, "quantity": 2}}'
    response = api.generic("POST", "/orders/", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {
        "detail": "JSON parse error - the key 'quantity' appears more than once in an object; "
        "send each key once.",
        "code": "parse_error",
    }
    assert _rows() == (1, 1, [])


def test_a_body_above_one_mib_is_a_413(api, alice_and_laptop):
    user, product = alice_and_laptop
    body = orjson.dumps(
        {"user_id": user.id, "product_id": product.id, "quantity": 1, "pad": [0] * 600_000}
    )
    response = api.generic("POST", "/orders/", body, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["detail"].startswith(
        "Request body is larger than the limit of 1048576 bytes (API_MAX_BODY_BYTES)"
    )
    assert _rows() == (1, 1, [])


def test_changing_the_user_or_product_is_checked_like_a_create(api, alice_and_laptop):
    user, product = alice_and_laptop
    bob = make_user("Bob", "bob@example.com")
    order = make_order(user.id, product.id)
    response = api.patch(f"/orders/{order.id}/", {"user_id": 999999999})
    assert response.status_code == 400
    assert response.json() == {"user_id": ["No user has this id."]}
    response = api.put(
        f"/orders/{order.id}/", {"user_id": user.id, "product_id": 888888888, "quantity": 1}
    )
    assert response.status_code == 400
    assert response.json() == {"product_id": ["No product has this id."]}
    assert _rows() == (2, 1, [(order.id, user.id, product.id, 1)])
    response = api.patch(f"/orders/{order.id}/", {"user_id": bob.id, "quantity": 4})
    assert response.status_code == 200
    assert response.json() == {
        "id": order.id,
        "user_id": bob.id,
        "product_id": product.id,
        "quantity": 4,
    }
    assert _rows() == (2, 1, [(order.id, bob.id, product.id, 4)])


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


WHOLE = ["Enter a whole number."]


@pytest.mark.parametrize(
    ("query", "errors"),
    [
        ("user_id=abc", {"user_id": WHOLE}),
        ("user_id=0", {"user_id": ["Ensure this value is greater than or equal to 1."]}),
        (
            "user_id=99999999999999999999",
            {"user_id": ["Ensure this value is less than or equal to 9223372036854775807."]},
        ),
        ("product_id=-4", {"product_id": ["Ensure this value is greater than or equal to 1."]}),
        ("min_quantity=1.5", {"min_quantity": WHOLE}),
        # ASCII digits only: int() would read each of these as a number.
        ("user_id=١٠", {"user_id": WHOLE}),
        ("user_id=%D9%A1%D9%A0", {"user_id": WHOLE}),  # the same, percent-encoded
        ("product_id=５", {"product_id": WHOLE}),
        ("user_id=1_0", {"user_id": WHOLE}),
        ("min_quantity=１", {"min_quantity": WHOLE}),
        ("max_quantity=2_0", {"max_quantity": WHOLE}),
    ],
)
def test_bad_filter_values_are_400s(api, alice_and_laptop, query, errors):
    user, product = alice_and_laptop
    make_order(user.id, product.id)
    response = api.get(f"/orders/?{query}")
    assert response.status_code == 400
    assert response.json() == errors


def test_id_filters_still_take_ascii_digits_with_spaces_and_signs(api, alice_and_laptop):
    user, product = alice_and_laptop
    make_order(user.id, product.id, 3)
    for query in (f"user_id={user.id}", f"user_id=+{user.id}", f"user_id=%20{user.id}%20"):
        response = api.get(f"/orders/?{query}")
        assert response.status_code == 200, query
        assert [o["quantity"] for o in response.json()["results"]] == [3], query


def test_delete_order_frees_the_user(api, alice_and_laptop):
    user, product = alice_and_laptop
    order = make_order(user.id, product.id)
    assert api.delete(f"/users/{user.id}/").status_code == 409
    assert api.delete(f"/orders/{order.id}/").status_code == 204
    assert _rows() == (1, 1, [])
    assert api.delete(f"/users/{user.id}/").status_code == 204
    assert _rows() == (0, 1, [])
