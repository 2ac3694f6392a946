"""The admin: each service's records on its own database, the services' rules on every form,
and the orders list showing user and product names with one query per database per page."""

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.db import connections
from django.test.utils import CaptureQueriesContext

from orders_svc.models import Order
from products_svc.models import Product
from tests.factories import make_product, make_user
from users_svc.models import User

pytestmark = pytest.mark.django_db(databases="__all__")


@pytest.fixture
def admin_client(client):
    admin = get_user_model().objects.create_superuser("admin", "admin@example.com", "pw-admin-1")
    client.force_login(admin)
    return client


def test_the_users_list_searches_and_filters_by_email_domain(admin_client):
    make_user(name="Alice", email="alice@example.com")
    make_user(name="Bob", email="bob@other.org")
    page = admin_client.get("/admin/users_svc/user/?q=alice")
    assert page.status_code == 200
    assert b"alice@example.com" in page.content
    assert b"bob@other.org" not in page.content
    page = admin_client.get("/admin/users_svc/user/?domain=other.org")
    assert b"bob@other.org" in page.content
    assert b"alice@example.com" not in page.content
    assert b"other.org (1)" in page.content  # the filter lists domains with their counts


def test_the_products_list_filters_by_price_range(admin_client):
    make_product(name="Pen", price="2.50")
    make_product(name="Laptop", price="1000")
    page = admin_client.get("/admin/products_svc/product/?price_range=over-1000")
    assert b"Laptop" in page.content
    assert b"Pen" not in page.content


def test_admin_forms_apply_the_services_rules(admin_client):
    response = admin_client.post("/admin/users_svc/user/add/", {"name": "  ", "email": "nope"})
    assert response.status_code == 200  # the form again, with the messages
    assert b"Enter a valid email address." in response.content
    assert User.objects.count() == 0

    response = admin_client.post(
        "/admin/users_svc/user/add/", {"name": " Zoe ", "email": "zoe@example.com"}
    )
    assert response.status_code == 302
    assert list(User.objects.values_list("name", "email")) == [("Zoe", "zoe@example.com")]

    response = admin_client.post("/admin/products_svc/product/add/", {"name": "X", "price": "0"})
    assert b"Ensure this value is greater than 0." in response.content
    assert Product.objects.count() == 0


def test_an_order_from_the_admin_needs_an_existing_user_and_product(admin_client):
    user, product = make_user(), make_product()
    response = admin_client.post(
        "/admin/orders_svc/order/add/", {"user_id": 999, "product_id": product.id, "quantity": 1}
    )
    assert b"No user has this id." in response.content
    assert Order.objects.count() == 0
    response = admin_client.post(
        "/admin/orders_svc/order/add/",
        {"user_id": user.id, "product_id": product.id, "quantity": 2},
    )
    assert response.status_code == 302
    assert list(Order.objects.values_list("user_id", "product_id", "quantity")) == [
        (user.id, product.id, 2)
    ]


def test_a_referenced_user_is_not_deleted_from_the_admin(admin_client):
    user, product = make_user(), make_product()
    Order.objects.create(user_id=user.id, product_id=product.id, quantity=1)
    response = admin_client.post(
        f"/admin/users_svc/user/{user.id}/delete/", {"post": "yes"}, follow=True
    )
    assert b"still referenced" in response.content
    assert User.objects.filter(id=user.id).exists()


def test_the_orders_list_shows_names_with_one_query_per_database(admin_client):
    users = [make_user(name=f"Buyer {n}", email=f"b{n}@example.com") for n in range(30)]
    products = [make_product(name=f"Thing {n}") for n in range(30)]
    for n in range(30):
        Order.objects.create(user_id=users[n].id, product_id=products[n].id, quantity=n + 1)
    Order.objects.create(user_id=99_999, product_id=products[0].id, quantity=1)  # dangling

    with (
        CaptureQueriesContext(connections["users"]) as users_queries,
        CaptureQueriesContext(connections["products"]) as products_queries,
    ):
        page = admin_client.get("/admin/orders_svc/order/")
    assert page.status_code == 200
    assert b"Buyer 7 (#" in page.content
    assert b"Thing 29 (#" in page.content
    assert b"#99999: missing" in page.content
    assert len(users_queries) == 1
    assert len(products_queries) == 1


def test_the_orders_list_searches_by_any_id_and_filters_by_quantity(admin_client):
    user, product = make_user(), make_product()
    Order.objects.create(user_id=user.id, product_id=product.id, quantity=7)
    Order.objects.create(user_id=user.id, product_id=product.id, quantity=1)
    page = admin_client.get(f"/admin/orders_svc/order/?q={user.id}&quantity_range=6-")
    assert page.status_code == 200
    assert page.context["cl"].result_count == 1
    page = admin_client.get("/admin/orders_svc/order/?q=not-a-number")
    assert page.context["cl"].result_count == 0


def test_a_record_the_service_refuses_at_save_time_is_a_message_not_an_error(
    admin_client, monkeypatch
):
    """A user deleted between the form's check and the save: the service says no."""
    from common.exceptions import RecordInvalid
    from orders_svc import services

    user, product = make_user(), make_product()

    def refuse(**values):
        raise RecordInvalid({"user_id": ["No user has this id."]})

    monkeypatch.setattr(services, "order_create", refuse)
    monkeypatch.setattr("orders_svc.admin.OrderAdmin.create_record", staticmethod(refuse))
    response = admin_client.post(
        "/admin/orders_svc/order/add/",
        {"user_id": user.id, "product_id": product.id, "quantity": 1},
        follow=True,
    )
    assert response.status_code == 200
    assert b"Not saved: user_id: No user has this id." in response.content
    assert Order.objects.count() == 0
    assert not LogEntry.objects.exists()  # nothing was added, so no "Added" in the history
