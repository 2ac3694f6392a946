"""Writes: 201 with Location; ETags on single records; 304 on If-None-Match; 412 on a stale
If-Match, with nothing written; and of two clients that read the same version and write it,
the second gets the 412 instead of silently overwriting the first (no lost update)."""

import threading
import time

import pytest
from django.db import connections

from orders_svc.models import Order
from products_svc.models import Product
from tests.conftest import client_with
from tests.factories import make_order, make_product, make_user
from users_svc import services as user_services
from users_svc.models import User

pytestmark = pytest.mark.django_db(databases="__all__")

CREATES = {
    "users": {"name": "Alice", "email": "alice@example.com"},
    "products": {"name": "Lamp", "price": "20.00"},
}


@pytest.fixture
def user():
    return make_user()


@pytest.mark.parametrize("resource", ["users", "products", "orders"])
def test_a_create_answers_201_with_the_location_and_etag_of_the_new_record(api, resource):
    body = CREATES.get(resource)
    if body is None:
        body = {"user_id": make_user().id, "product_id": make_product().id, "quantity": 2}
    created = api.post(f"/{resource}/", body)
    assert created.status_code == 201
    record_id = created.json()["id"]
    assert created["Location"] == f"http://testserver/{resource}/{record_id}/"
    read = api.get(created["Location"])
    assert read.json() == created.json()
    assert read["ETag"] == created["ETag"]


def test_the_etag_changes_with_the_record_and_only_then(api, user):
    first = api.get(f"/users/{user.id}/")
    assert first["ETag"].startswith('"')
    assert first["ETag"].endswith('"')
    assert api.get(f"/users/{user.id}/")["ETag"] == first["ETag"]
    patched = api.patch(f"/users/{user.id}/", {"name": "Alicia"})
    assert patched["ETag"] != first["ETag"]
    assert api.get(f"/users/{user.id}/")["ETag"] == patched["ETag"]
    assert api.get(f"/users/{make_user().id}/")["ETag"] != patched["ETag"]


def test_if_none_match_gives_a_304_without_a_body_until_the_record_changes(api, user):
    etag = api.get(f"/users/{user.id}/")["ETag"]
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        response = api.get(f"/users/{user.id}/", HTTP_IF_NONE_MATCH=header)
        assert response.status_code == 304, header
        assert response.content == b""
        assert response["ETag"] == etag
    user_services.user_update(user, name="Alicia", email=user.email)
    changed = api.get(f"/users/{user.id}/", HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200
    assert changed.json()["name"] == "Alicia"


@pytest.mark.parametrize(
    ("method", "body"),
    [("put", {"name": "Bob", "email": "bob@example.com"}), ("patch", {"name": "Bob"})],
)
def test_a_write_with_a_stale_if_match_is_a_412_and_writes_nothing(api, user, method, body):
    stale = api.get(f"/users/{user.id}/")["ETag"]
    user_services.user_update(user, name="Changed meanwhile", email=user.email)
    current = api.get(f"/users/{user.id}/")["ETag"]
    response = getattr(api, method)(f"/users/{user.id}/", body, HTTP_IF_MATCH=stale)
    assert response.status_code == 412
    assert response.json()["code"] == "precondition_failed"
    assert "changed since you read it" in response.json()["detail"]
    assert response["ETag"] == current
    assert User.objects.get(id=user.id).name == "Changed meanwhile"

    accepted = getattr(api, method)(f"/users/{user.id}/", body, HTTP_IF_MATCH=current)
    assert accepted.status_code == 200
    assert User.objects.get(id=user.id).name == "Bob"


def test_a_delete_with_a_stale_if_match_is_a_412_and_deletes_nothing(api, user):
    product = make_product()
    order = make_order(user.id, product.id)
    for path, model, record in [
        (f"/orders/{order.id}/", Order, order),
        (f"/products/{product.id}/", Product, product),
    ]:
        stale = api.get(path)["ETag"]
        model.objects.filter(id=record.id).update(
            **({"quantity": 9} if model is Order else {"name": "Renamed"})
        )
        assert api.delete(path, HTTP_IF_MATCH=stale).status_code == 412
        assert model.objects.filter(id=record.id).exists()
        assert api.delete(path, HTTP_IF_MATCH=api.get(path)["ETag"]).status_code == 204
        assert not model.objects.filter(id=record.id).exists()


def test_if_match_star_and_lists_and_a_malformed_header(api, user):
    path = f"/users/{user.id}/"
    etag = api.get(path)["ETag"]
    assert api.patch(path, {"name": "A"}, HTTP_IF_MATCH="*").status_code == 200
    etag = api.get(path)["ETag"]
    assert api.patch(path, {"name": "B"}, HTTP_IF_MATCH=f'"x", {etag}').status_code == 200
    assert api.patch(
        path, {"name": "C"}, HTTP_IF_MATCH=f"W/{api.get(path)['ETag']}"
    ).status_code == (
        412  # If-Match compares strongly: a weak tag never matches
    )
    malformed = api.patch(path, {"name": "D"}, HTTP_IF_MATCH="no-quotes")
    assert malformed.status_code == 400
    assert "send an ETag back as it came" in malformed.json()["If-Match"][0]
    assert User.objects.get(id=user.id).name == "B"
    assert api.get(path, HTTP_IF_MATCH='"stale"').status_code == 412


def test_an_order_write_with_a_stale_if_match_changes_nothing(api, user):
    product = make_product()
    order = make_order(user.id, product.id, quantity=1)
    stale = api.get(f"/orders/{order.id}/")["ETag"]
    Order.objects.filter(id=order.id).update(quantity=5)
    response = api.patch(f"/orders/{order.id}/", {"quantity": 2}, HTTP_IF_MATCH=stale)
    assert response.status_code == 412
    assert Order.objects.get(id=order.id).quantity == 5


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_two_clients_writing_the_version_they_read_one_wins_the_other_gets_a_412(
    api_token, other_api_token, monkeypatch
):
    """The check runs under the write's lock: the first writer is held right after its check
    passed (still in its transaction); the second, with the same ETag, must wait and then be
    refused. Checked before the lock, both would pass and the second would overwrite."""
    user = make_user()
    path = f"/users/{user.id}/"
    etag = client_with(api_token).get(path)["ETag"]
    checked, release = threading.Event(), threading.Event()
    real_check = user_services.check_stored

    def check_then_hold(*args):
        real_check(*args)
        if threading.current_thread().name == "first":
            checked.set()
            release.wait(10)

    monkeypatch.setattr(user_services, "check_stored", check_then_hold)
    answers = {}

    def write(name, token, new_name):
        try:
            client = client_with(token)
            answers[name] = client.put(
                path, {"name": new_name, "email": user.email}, HTTP_IF_MATCH=etag
            )
        finally:
            connections.close_all()

    first = threading.Thread(target=write, args=("first", api_token, "First"), name="first")
    second = threading.Thread(target=write, args=("second", other_api_token, "Second"))
    first.start()
    assert checked.wait(10)
    second.start()
    time.sleep(0.5)
    assert "second" not in answers  # waiting for the first's lock
    release.set()
    first.join(10)
    second.join(10)
    assert answers["first"].status_code == 200
    assert answers["second"].status_code == 412
    assert User.objects.get(id=user.id).name == "First"


def test_if_none_match_on_a_write_is_a_412_when_the_record_is_that_version(api, user):
    """The review: If-None-Match on PUT, PATCH and DELETE was ignored (a 200 for '*')."""
    path = f"/users/{user.id}/"
    etag = api.get(path)["ETag"]
    for header in ("*", etag, f'W/{etag}, "other"'):
        response = api.patch(path, {"name": "B"}, HTTP_IF_NONE_MATCH=header)
        assert response.status_code == 412, header
        assert response.json()["code"] == "precondition_failed"
        assert response["ETag"] == etag
    assert api.delete(path, HTTP_IF_NONE_MATCH="*").status_code == 412
    assert User.objects.get(id=user.id).name == "Alice"
    assert api.patch(path, {"name": "B"}, HTTP_IF_NONE_MATCH='"other"').status_code == 200
    malformed = api.put(path, {"name": "C", "email": "c@example.com"}, HTTP_IF_NONE_MATCH="x")
    assert malformed.status_code == 400
    assert User.objects.get(id=user.id).name == "B"


@pytest.mark.parametrize("header", ["HTTP_IF_MATCH", "HTTP_IF_NONE_MATCH"])
def test_a_precondition_on_a_create_is_a_400_not_ignored(api, header):
    response = api.post("/users/", CREATES["users"], **{header: '"nope"'})
    assert response.status_code == 400
    name = header.removeprefix("HTTP_").replace("_", "-").title()
    assert "A create has no version to compare." in response.json()[name][0]
    assert User.objects.count() == 0


def test_a_weak_etag_in_if_match_is_refused_saying_why(api, user):
    path = f"/users/{user.id}/"
    etag = api.get(path)["ETag"]
    response = api.patch(path, {"name": "B"}, HTTP_IF_MATCH=f"W/{etag}")
    assert response.status_code == 412
    assert "a weak one" in response.json()["detail"]
    assert User.objects.get(id=user.id).name == "Alice"
