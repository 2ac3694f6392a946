"""One service's database goes away: requests that need it get a 503 naming it, the others go
on, orders that cannot be checked are skipped, and a retry after recovery completes once.

"Goes away" as an operator meets it: the server is down, the SQLite file was moved or deleted
(it is not recreated empty), another file took its place (another service's, an empty one), or
its first bytes were overwritten.
"""

import json
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing, contextmanager
from pathlib import Path

import pytest
from django.db import DatabaseError, IntegrityError, ProgrammingError, connections

from common.http.exception_handler import api_exception_handler
from common.ops.health import SERVICE_OF
from orders_svc.models import Order
from products_svc.models import Product
from tests import live
from tests.ingest.skips import skipped_records
from users_svc.models import User

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True, reset_sequences=True)


@contextmanager
def database_at(alias: str, name: str):
    """Point ``alias`` at database ``name`` (a file or a PostgreSQL database), for every thread,
    then restore it."""
    settings_dict = connections.settings[alias]  # shared by every thread's connection object
    saved = settings_dict["NAME"]
    settings_dict["NAME"] = name
    connections[alias].close()
    try:
        yield
    finally:
        settings_dict["NAME"] = saved
        connections[alias].close()


def is_sqlite(alias: str) -> bool:
    return connections[alias].vendor == "sqlite"


@contextmanager
def database_down(alias: str):
    """Point ``alias`` at a database that cannot be opened, for every thread, then restore it."""
    gone = "/no/such/directory/gone.db" if is_sqlite(alias) else "no_such_database_for_the_test"
    with database_at(alias, gone):
        yield


def sqlite_file(alias: str) -> Path:
    """The alias's test database file, with everything in it (its -wal folded in)."""
    if not is_sqlite(alias):
        pytest.skip("a SQLite file's fault")
    with connections[alias].cursor() as cursor:
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connections[alias].close()
    return Path(connections[alias].settings_dict["NAME"])


BATCH = {
    "users": [{"id": i, "name": f"U{i}", "email": f"u{i}@example.com"} for i in range(1, 6)],
    "products": [{"id": i, "name": f"P{i}", "price": "9.50"} for i in range(1, 6)],
    "orders": [{"id": i, "user_id": i, "product_id": i, "quantity": 1} for i in range(1, 6)],
}


def _ingest(api):
    return api.generic("POST", "/ingest/", json.dumps(BATCH), content_type="application/json")


def test_requests_that_need_a_missing_database_get_a_503_naming_it(api):
    with database_down("users"):
        response = api.get("/users/")
        assert response.status_code == 503
        body = response.json()
        assert body["code"] == "unavailable"
        assert body["unavailable"] == ["users"]
        assert body["detail"].startswith("The users database is unavailable (")
        assert response["Retry-After"]
        order = api.post("/orders/", {"user_id": 1, "product_id": 1, "quantity": 1}, format="json")
        assert order.status_code == 503  # it needs the users service to check the user
        # The other services keep answering and writing.
        assert api.get("/products/").status_code == 200
        assert api.post("/products/", {"name": "P", "price": 1}, format="json").status_code == 201
        assert api.get("/orders/").status_code == 200
    assert api.get("/users/").status_code == 200  # and it is back


def test_ingest_goes_on_without_one_service_and_a_retry_completes_once(api):
    with database_down("users"):
        response = _ingest(api)
    assert response.status_code == 200
    body = response.json()
    assert body["users"]["inserted"] == 0
    assert skipped_records(body["users"])[0]["reasons"]["non_field_errors"][0].startswith(
        "Not written: the users database is unavailable"
    )
    assert body["products"]["inserted_ids"] == [1, 2, 3, 4, 5]
    assert body["orders"]["inserted"] == 0
    reason = skipped_records(body["orders"])[0]["reasons"]
    assert reason["user_id"][0].startswith("Cannot be checked: the users service is unavailable")
    assert "product_id" not in reason  # the products were there to be checked
    assert (User.objects.count(), Product.objects.count(), Order.objects.count()) == (0, 5, 0)

    retry = _ingest(api).json()  # the same batch, same ids, once the users are back
    assert retry["users"]["inserted_ids"] == [1, 2, 3, 4, 5]
    assert retry["products"]["inserted"] == 0  # already there: duplicates, not copies
    assert retry["orders"]["inserted_ids"] == [1, 2, 3, 4, 5]
    assert (User.objects.count(), Product.objects.count(), Order.objects.count()) == (5, 5, 5)


def test_ingest_without_the_orders_database_still_writes_users_and_products(api):
    with database_down("orders"):
        body = _ingest(api).json()
    assert body["users"]["inserted"] == body["products"]["inserted"] == 5
    assert body["orders"]["inserted"] == 0
    assert (
        "orders database is unavailable"
        in (skipped_records(body["orders"])[0]["reasons"]["non_field_errors"][0])
    )
    assert Order.objects.count() == 0


def test_writes_need_the_default_database_for_their_token(api):
    with database_down("default"):
        response = api.post("/users/", {"name": "A", "email": "a@example.com"}, format="json")
    assert response.status_code == 503
    assert response.json()["unavailable"] == ["default"]


# --- vanished, foreign, empty and corrupt database files -----------------------------------


def _assert_unavailable(response, alias: str, *words: str) -> None:
    assert response.status_code == 503, response.content
    body = response.json()
    assert body["code"] == "unavailable"
    assert body["unavailable"] == [alias]
    assert body["detail"].startswith(f"The {SERVICE_OF[alias]} database is unavailable (")
    for word in words:
        assert word in body["detail"]


def _assert_healthz_names(client, alias: str, *words: str) -> None:
    response = client.get("/healthz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert [name for name, check in checks.items() if not check["ok"]] == [alias]
    for word in words:
        assert word in checks[alias]["error"]


def _assert_everything_answers(api) -> None:
    assert api.get("/healthz").status_code == 200
    for path in ("/users/", "/products/", "/orders/"):
        assert api.get(path).status_code == 200, path


def test_a_moved_database_file_is_unavailable_and_not_recreated(api):
    api.post("/products/", {"name": "Kept", "price": "2.00"}, format="json")
    path = sqlite_file("products")  # and its connection closed, as at the end of a request
    away = path.with_name(path.name + ".away")
    path.rename(away)  # mv products.db products.db.away, the app running
    try:
        _assert_unavailable(api.get("/products/"), "products", "does not exist")
        created = api.post("/products/", {"name": "P", "price": 1}, format="json")
        _assert_unavailable(created, "products", "does not exist")
        _assert_healthz_names(api, "products", f"{path.name} does not exist")
        assert api.get("/users/").status_code == 200  # the other services go on
        assert not path.exists(), "the service created a new, empty database file"
    finally:
        away.rename(path)
    _assert_everything_answers(api)
    assert [p["name"] for p in api.get("/products/").json()["results"]] == ["Kept"]


def test_a_missing_file_stays_missing_on_every_kind_of_request(api, tmp_path):
    missing = tmp_path / "users.db"
    with database_at("users", str(missing)) if is_sqlite("users") else database_down("users"):
        _assert_unavailable(api.get("/users/"), "users")
        _assert_unavailable(api.get("/users/1/"), "users")
        created = api.post("/users/", {"name": "A", "email": "a@example.com"}, format="json")
        _assert_unavailable(created, "users")
        _assert_unavailable(api.delete("/users/1/"), "users")
        body = _ingest(api).json()
        assert body["users"]["inserted"] == 0
        assert body["products"]["inserted"] == 5
        _assert_healthz_names(api, "users")
    assert not missing.exists()
    _assert_everything_answers(api)


def test_another_services_database_in_its_place_is_unavailable(api):
    """users.db copied over products.db (or PRODUCTS_DATABASE_URL naming the users database)."""
    created = api.post("/users/", {"name": "A", "email": "a@example.com"}, format="json")
    assert created.status_code == 201
    users_database = connections["users"].settings_dict["NAME"]
    with database_at("products", users_database):
        _assert_unavailable(api.get("/products/"), "products", "the products table is missing")
        created = api.post("/products/", {"name": "P", "price": 1}, format="json")
        _assert_unavailable(created, "products", "the products table is missing")
        _assert_healthz_names(api, "products", "the products table is missing", "init_db")
        assert api.get("/users/").json()["count"] == 1
    _assert_everything_answers(api)
    assert (User.objects.count(), Product.objects.count()) == (1, 0)


def test_an_empty_file_in_its_place_is_unavailable_and_left_empty(api, tmp_path):
    if not is_sqlite("orders"):
        pytest.skip("a SQLite file's fault")
    empty = tmp_path / "orders.db"
    empty.touch()
    with database_at("orders", str(empty)):
        _assert_unavailable(api.get("/orders/"), "orders", "orders.db is empty")
        _assert_healthz_names(api, "orders", "orders.db is empty")
    assert empty.stat().st_size == 0
    _assert_everything_answers(api)


@pytest.mark.parametrize("alias", ["users", "default"])
def test_a_file_with_overwritten_first_bytes_is_503_not_500(api, tmp_path, alias):
    api.post("/users/", {"name": "A", "email": "a@example.com"}, format="json")
    corrupt = tmp_path / f"{alias}.db"
    shutil.copy(sqlite_file(alias), corrupt)
    with corrupt.open("r+b") as file:
        file.write(b"\xff" * 100)
    with database_at(alias, str(corrupt)):
        words = ("not a SQLite database", f"file is not a database: {alias}.db")
        created = api.post("/users/", {"name": "B", "email": "b@example.com"}, format="json")
        _assert_unavailable(created, alias, *words)
        _assert_healthz_names(api, alias, *words)
        if alias == "users":
            _assert_unavailable(api.get("/users/"), "users", *words)
            assert api.get("/products/").status_code == 200
            body = _ingest(api).json()
            reason = skipped_records(body["users"])[0]["reasons"]["non_field_errors"][0]
            assert reason.startswith("Not written: the users database is unavailable")
            assert "file is not a database" in reason
            assert body["products"]["inserted"] == 5
    _assert_everything_answers(api)
    assert User.objects.count() == 1
    assert Product.objects.count() == (5 if alias == "users" else 0)


def test_errors_of_our_own_queries_stay_500s_while_every_database_answers():
    for bug in (IntegrityError("x"), ProgrammingError("relation x"), DatabaseError("?")):
        response = api_exception_handler(bug, {})
        if type(bug) is DatabaseError:  # a corrupt file, for all we know: the probe decides
            assert response.status_code == 503
        else:
            assert response is None  # Django's 500, logged with its traceback


def test_a_real_server_reports_a_moved_file_and_recovers_when_it_is_back(tmp_path):
    """gunicorn on files made by init_db, then ``mv`` and ``cp`` as an operator would."""
    data = tmp_path / "data"
    env = {
        "DATA_DIR": str(data),
        **{f"{alias.upper()}_DATABASE_URL": "" for alias in SERVICES},
    }
    subprocess.run(
        [sys.executable, "manage.py", "init_db", "-v", "0"],
        cwd=live.ROOT,
        env=live.process_env(**env),
        check=True,
        timeout=120,
    )
    products = data / "products.db"
    with live.gunicorn(workers=1, threads=2, **env) as (base, _server):
        assert live.request("GET", f"{base}/products/")[0] == 200
        products.rename(data / "products.db.away")
        status, _headers, body = live.request("GET", f"{base}/products/")
        assert (status, body["unavailable"]) == (503, ["products"])
        assert "products.db does not exist" in body["detail"]
        status, _headers, health = live.request("GET", f"{base}/healthz")
        assert status == 503
        assert health["checks"]["products"]["ok"] is False
        assert health["checks"]["users"]["ok"] is True
        assert not products.exists()

        shutil.copy(data / "users.db", products)  # another service's file in its place
        status, _headers, body = live.request("GET", f"{base}/products/")
        assert (status, body["unavailable"]) == (503, ["products"])
        assert "the products table is missing" in body["detail"]

        (data / "products.db.away").replace(products)  # and back
        assert live.request("GET", f"{base}/healthz")[0] == 200
        status, _headers, body = live.request("GET", f"{base}/products/")
        assert (status, body["count"]) == (200, 0)
    with closing(sqlite3.connect(products)) as raw:
        assert raw.execute("SELECT count(*) FROM products").fetchone() == (0,)


SERVICES = ("default", "users", "products", "orders")


def test_a_damaged_page_deep_in_a_file_is_a_503_naming_its_service(api, tmp_path):
    """The third review's case: a page of random bytes in the middle of products.db passed the
    probe's one-row read, and the 503 named no service and blamed a timeout."""
    api.post("/products/", {"name": "P", "price": 1}, format="json")
    from products_svc.models import Product as ProductModel

    ProductModel.objects.bulk_create(
        [ProductModel(name=f"P{n}" * 20, price=n % 90 + 1) for n in range(20_000)]
    )
    damaged = tmp_path / "products.db"
    shutil.copy(sqlite_file("products"), damaged)
    # Every fifth page from page 40 on: whether SQLite answers the search below from the table
    # or from its (name, id) index, it reads one of them; the first pages, which the health
    # probe's one-row read needs, stay whole.
    with damaged.open("r+b") as file:
        for page in range(40, damaged.stat().st_size // 4096, 5):
            file.seek(4096 * page)
            file.write(bytes(range(256)) * 16)
    with database_at("products", str(damaged)):
        response = api.get("/products/?search=zzz")  # a LIKE: reads every row
        assert response.status_code == 503, response.content
        body = response.json()
        assert body["unavailable"] == ["products"]
        assert body["detail"].startswith("The products database is damaged (")
        assert "restored from a backup" in body["detail"]
    _assert_everything_answers(api)


def test_text_written_behind_the_api_that_is_not_utf8_is_a_503_saying_so(api):
    """The review's case: bytes that are not UTF-8 put in a name with the sqlite3 shell made
    every read of the row a 503 that blamed a timeout and said to retry."""
    if not is_sqlite("users"):
        pytest.skip("PostgreSQL refuses such text itself")
    user = User.objects.create(name="Ann", email="ann@example.com")
    with connections["users"].cursor() as cursor:
        cursor.execute("UPDATE users SET name = CAST(X'41FF42' AS TEXT) WHERE id = %s", [user.id])
    response = api.get(f"/users/{user.id}/")
    assert response.status_code == 503
    detail = response.json()["detail"]
    assert detail.startswith("The users database holds text that is not UTF-8 (")
    assert "did not answer in time" not in detail
    User.objects.filter(id=user.id).delete()
    _assert_everything_answers(api)


def test_the_admin_answers_503_naming_a_missing_database(admin_client):
    from tests.factories import make_product, make_user

    Order.objects.create(user_id=make_user().id, product_id=make_product().id, quantity=1)
    with database_down("products"):
        for path in ("/admin/products_svc/product/", "/admin/orders_svc/order/"):
            response = admin_client.get(path)
            assert response.status_code == 503, (path, response.status_code)
            assert response.json()["unavailable"] == ["products"]
    assert admin_client.get("/admin/products_svc/product/").status_code == 200


def test_the_admin_login_answers_503_without_the_default_database(client):
    with database_down("default"):
        response = client.post("/admin/login/", {"username": "a", "password": "b"})
    assert response.status_code == 503, response.status_code
    assert response.json()["unavailable"] == ["default"]
