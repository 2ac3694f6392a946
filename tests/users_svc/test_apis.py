"""/users/: what a client sees, and what lands in the users database."""

import pytest

from orders_svc.models import Order
from tests.factories import make_order, make_product, make_user
from users_svc.models import User

pytestmark = pytest.mark.django_db(databases="__all__")


def test_create_user_returns_201_and_writes_the_users_database(api):
    response = api.post("/users/", {"name": "  Alice ", "email": "alice@example.com"})
    assert response.status_code == 201
    body = response.json()
    assert body == {"id": body["id"], "name": "Alice", "email": "alice@example.com"}
    assert list(User.objects.using("users").values_list("name", "email")) == [
        ("Alice", "alice@example.com")
    ]


@pytest.mark.parametrize(
    ("payload", "errors"),
    [
        ({"name": "", "email": "jane@example.com"}, {"name": ["This field may not be blank."]}),
        ({"name": "   ", "email": "jane@example.com"}, {"name": ["This field may not be blank."]}),
        (
            {"name": "Jane", "email": "jane.example.com"},
            {"email": ["Enter a valid email address."]},
        ),
        ({"name": "Jane"}, {"email": ["This field is required."]}),
        ({"email": "jane@example.com"}, {"name": ["This field is required."]}),
        (
            {"name": None, "email": None},
            {"name": ["This field may not be null."], "email": ["This field may not be null."]},
        ),
        ({"name": 7, "email": "jane@example.com"}, {"name": ["Not a valid string."]}),
        (
            {"name": "x" * 256, "email": "jane@example.com"},
            {"name": ["Ensure this field has no more than 255 characters."]},
        ),
        (
            {"name": "Ja\x00ne", "email": "jane@example.com"},
            {"name": ["Null characters are not allowed."]},
        ),
    ],
)
def test_invalid_user_is_a_400_with_field_messages_and_nothing_written(api, payload, errors):
    response = api.post("/users/", payload)
    assert response.status_code == 400
    assert response.json() == errors
    assert not User.objects.exists()


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ('{"name": "Jane",', "application/json"),
        ("[1, 2]", "application/json"),
        ('"Jane"', "application/json"),
        ("null", "application/json"),
    ],
)
def test_malformed_or_wrong_shape_body_is_a_400(api, body, content_type):
    response = api.generic("POST", "/users/", body, content_type=content_type)
    assert response.status_code == 400
    assert response.json()
    assert not User.objects.exists()


def test_unsupported_content_type_is_a_415(api):
    response = api.generic("POST", "/users/", "name=x", content_type="text/plain")
    assert response.status_code == 415


def test_list_is_paginated_filtered_and_ordered(api):
    for name, email in [
        ("Alice", "alice@example.com"),
        ("Bob", "bob@example.com"),
        ("alice", "alice2@example.com"),
        ("Charlie", "c@example.com"),
    ]:
        make_user(name, email)
    body = api.get("/users/").json()
    assert body["count"] == 4
    assert [u["name"] for u in body["results"]] == ["Alice", "Bob", "alice", "Charlie"]

    assert [u["email"] for u in api.get("/users/?name=ALICE").json()["results"]] == [
        "alice@example.com",
        "alice2@example.com",
    ]
    assert [u["name"] for u in api.get("/users/?email=BOB@example.com").json()["results"]] == [
        "Bob"
    ]
    assert [u["name"] for u in api.get("/users/?name_contains=har").json()["results"]] == [
        "Charlie"
    ]
    assert [u["name"] for u in api.get("/users/?ordering=-id").json()["results"]] == [
        "Charlie",
        "alice",
        "Bob",
        "Alice",
    ]

    page = api.get("/users/?page_size=3&page=2").json()
    assert page["count"] == 4
    assert [u["name"] for u in page["results"]] == ["Charlie"]
    assert page["previous"]
    assert page["next"] is None


def test_retrieve_and_404s(api):
    user = make_user()
    assert api.get(f"/users/{user.id}/").json() == {
        "id": user.id,
        "name": "Alice",
        "email": "alice@example.com",
    }
    for url in ("/users/999999/", "/users/abc/", "/users/99999999999999999999999/"):
        response = api.get(url)
        assert response.status_code == 404, url
        assert "detail" in response.json()
    assert api.get("/users/?page=99").status_code == 404


def test_put_replaces_and_patch_changes_one_field(api):
    user = make_user()
    response = api.put(f"/users/{user.id}/", {"name": "Alicia", "email": "alicia@example.com"})
    assert response.status_code == 200
    assert response.json() == {"id": user.id, "name": "Alicia", "email": "alicia@example.com"}
    response = api.patch(f"/users/{user.id}/", {"email": "al@example.com"})
    assert response.status_code == 200
    assert response.json()["name"] == "Alicia"
    user.refresh_from_db()
    assert (user.name, user.email) == ("Alicia", "al@example.com")


def test_put_without_a_field_and_bad_patch_are_400s_and_change_nothing(api):
    user = make_user()
    assert api.put(f"/users/{user.id}/", {"name": "Alicia"}).json() == {
        "email": ["This field is required."]
    }
    assert api.patch(f"/users/{user.id}/", {"name": " "}).status_code == 400
    user.refresh_from_db()
    assert (user.name, user.email) == ("Alice", "alice@example.com")


def test_delete_unreferenced_user(api):
    user = make_user()
    assert api.delete(f"/users/{user.id}/").status_code == 204
    assert not User.objects.exists()
    assert api.delete(f"/users/{user.id}/").status_code == 404


def test_delete_referenced_user_is_a_409_saying_how_many_orders(api):
    user, product = make_user(), make_product()
    make_order(user.id, product.id)
    make_order(user.id, product.id, quantity=3)
    response = api.delete(f"/users/{user.id}/")
    assert response.status_code == 409
    body = response.json()
    assert body["references"] == {"orders": 2}
    assert body["detail"] == (
        f"User {user.id} is still referenced by 2 orders; delete or change those first."
    )
    assert User.objects.filter(id=user.id).exists()
    assert Order.objects.count() == 2
