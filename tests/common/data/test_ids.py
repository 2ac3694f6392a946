"""A table that has used the largest id (2**63-1): single-record creates answer a 409 that says
what to do, through the API and the admin, on SQLite and PostgreSQL, and write nothing; a real
full disk stays the 503 it is (common.data.ids).

The record with the largest id is stored as ``POST /ingest/`` stores it (the services' bulk
inserts, which raise a PostgreSQL sequence past explicit ids)."""

import sqlite3
import subprocess
import sys

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.db import connections

from common.data.ids import ids_left
from orders_svc.models import Order
from orders_svc.services import orders_bulk_insert, orders_delete_many
from products_svc.models import Product
from products_svc.services import products_bulk_insert, products_delete_many
from tests import live
from tests.factories import make_product, make_user
from tests.ingest.disks import count, fill
from users_svc.models import User
from users_svc.services import users_bulk_insert, users_delete_many

pytestmark = [
    pytest.mark.django_db(databases="__all__"),
    pytest.mark.usefixtures("id_counters_restored"),
]

LARGEST = 2**63 - 1


def store(resource: str, record_id: int) -> None:
    """A record with ``record_id``, written as an ingest writes it."""
    if resource == "users":
        users_bulk_insert([(record_id, "Max", "max@example.com")])
    elif resource == "products":
        products_bulk_insert([(record_id, "Max", 1)])
    else:
        user, product = make_user(), make_product()
        orders_bulk_insert([[(record_id, user.id, product.id, 1)]])


DELETE_MANY = {
    "users": users_delete_many,
    "products": products_delete_many,
    "orders": orders_delete_many,
}


def all_rows():
    return (
        list(User.objects.order_by("id").values_list("id", "name")),
        list(Product.objects.order_by("id").values_list("id", "name")),
        list(Order.objects.order_by("id").values_list("id", "quantity")),
    )


NEW = {
    "users": {"name": "New", "email": "new@example.com"},
    "products": {"name": "New", "price": "2.50"},
}


def new_record(resource: str) -> dict:
    if resource != "orders":
        return NEW[resource]
    return {"user_id": User.objects.get().id, "product_id": Product.objects.get().id, "quantity": 2}


def no_id_left(noun: str) -> dict:
    return {
        "detail": (
            f"No id is left for a new {noun}: ids are given above every {noun} id used before, "
            f"and {LARGEST}, the largest possible {noun} id, has been used. Send the {noun} with "
            f"an id of its own that is not in use, through POST /ingest/ (deleting the {noun} "
            "with the largest id frees no id: ids are never given twice)."
        ),
        "code": "ids_exhausted",
    }


@pytest.mark.parametrize("resource", ["users", "products", "orders"])
def test_a_create_once_the_largest_id_is_used_is_a_409_that_says_what_to_do(api, resource):
    store(resource, LARGEST)
    before = all_rows()
    response = api.post(f"/{resource}/", new_record(resource), format="json")
    assert response.status_code == 409, response.content
    assert response.json() == no_id_left(resource.removesuffix("s"))
    assert "Retry-After" not in response
    assert all_rows() == before  # nothing written, in any database
    # Deleting that record frees no id, as the message says: ids are never given twice.
    DELETE_MANY[resource]([LARGEST])
    again = api.post(f"/{resource}/", new_record(resource), format="json")
    assert again.status_code == 409, again.content
    assert again.json()["code"] == "ids_exhausted"


def test_the_last_id_left_is_given_and_then_the_create_is_a_409(api):
    store("users", LARGEST - 1)
    assert ids_left(User) == 1
    created = api.post("/users/", NEW["users"], format="json")
    assert created.status_code == 201, created.content
    assert created.json()["id"] == LARGEST
    refused = api.post("/users/", NEW["users"], format="json")
    assert refused.status_code == 409
    assert ids_left(User) == 0
    assert list(User.objects.values_list("id", flat=True).order_by("id")) == [LARGEST - 1, LARGEST]


def test_ids_left_counts_what_is_left_above_a_batch_s_largest_explicit_id():
    store("products", 1_000)
    assert ids_left(Product) == LARGEST - 1_000
    assert ids_left(Product, above=LARGEST - 5) == 5
    assert ids_left(Product, above=LARGEST) == 0


@pytest.fixture
def admin_client(client):
    admin = get_user_model().objects.create_superuser("admin", "admin@example.com", "pw-admin-1")
    client.force_login(admin)
    return client


@pytest.mark.parametrize("resource", ["users", "products", "orders"])
def test_the_admin_add_page_says_so_and_writes_nothing(admin_client, resource):
    store(resource, LARGEST)
    before = all_rows()
    app = {"users": "users_svc/user", "products": "products_svc/product"}.get(
        resource, "orders_svc/order"
    )
    response = admin_client.post(f"/admin/{app}/add/", new_record(resource), follow=True)
    assert response.status_code == 200
    assert f"Not saved: {no_id_left(resource.removesuffix('s'))['detail']}" in (
        response.content.decode()
    )
    assert all_rows() == before
    assert not LogEntry.objects.exists()  # no "Added" in the admin's history either


def insert_directly(database) -> str:
    """What SQLite itself says to an insert into ``database`` now: "ok" or its error."""
    connection = sqlite3.connect(database, isolation_level=None)
    try:
        connection.execute("INSERT INTO users (name, email) VALUES ('Direct', 'd@example.com')")
    except sqlite3.Error as exc:
        return str(exc)
    finally:
        connection.close()
    return "ok"


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_a_real_full_disk_is_still_a_503_to_retry(api_token, small_disk):
    """SQLite says "database or disk is full" for a full disk as for a table out of ids: with
    ids left, the create is the 503 of a database that cannot write (and works once there is
    room again), not the 409."""
    if connections["users"].vendor != "sqlite":
        pytest.skip("the disk test puts a SQLite file on the small disk")
    database = small_disk / "users.db"
    url = {"USERS_DATABASE_URL": f"sqlite:///{database}"}
    migrated = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--database", "users", "-v", "0"],
        cwd=live.ROOT,
        env=live.process_env(**url),
        capture_output=True,
        text=True,
    )
    assert migrated.returncode == 0, migrated.stderr
    with live.gunicorn(workers=1, threads=2, **url) as (base, _):
        # Room for SQLite's shared-memory file (32 KiB), which a connection makes when it opens
        # the database, and not for the pages a new user writes: the write is what fails.
        filler = fill(small_disk, leave=40 * 1024)
        status, headers, body = live.request("POST", f"{base}/users/", NEW["users"], api_token)
        sqlite_says = insert_directly(database)
        filler.unlink()
        after, _, created = live.request("POST", f"{base}/users/", NEW["users"], api_token)

    assert sqlite_says == "database or disk is full"  # the words of a table out of ids
    assert status == 503, body
    assert body["code"] == "unavailable"
    assert "(database or disk is full). Retry later." in body["detail"]
    assert headers["Retry-After"] == "5"
    assert after == 201, created
    assert count(database, "SELECT COUNT(*), MAX(id) FROM users") == (1, created["id"])
