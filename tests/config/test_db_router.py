"""Each service lives on its own database, and nothing else lives there."""

import sqlite3

import pytest
from django.apps import apps
from django.db import connections, router

from config.db_router import SERVICE_DATABASES, ServiceRouter
from orders_svc.models import Order
from products_svc.models import Product
from users_svc.models import User

pytestmark = pytest.mark.django_db(databases="__all__")

SERVICE_TABLES = {"users": "users", "products": "products", "orders": "orders"}


@pytest.mark.parametrize(
    ("model", "alias"), [(User, "users"), (Product, "products"), (Order, "orders")]
)
def test_each_service_model_reads_and_writes_its_own_database(model, alias):
    assert model.objects.db == alias
    assert router.db_for_read(model) == alias
    assert router.db_for_write(model) == alias


def test_django_own_apps_stay_on_default():
    for label in ("auth", "contenttypes", "sessions", "admin"):
        for model in apps.get_app_config(label).get_models():
            assert router.db_for_write(model) == "default", model


@pytest.mark.parametrize("alias", ["default", "users", "products", "orders"])
def test_each_app_migrates_only_on_its_own_alias(alias):
    for config in apps.get_app_configs():
        expected = SERVICE_DATABASES.get(config.label, "default") == alias
        assert ServiceRouter().allow_migrate(alias, config.label) is expected, config.label


def _tables(alias: str) -> set[str]:
    return set(connections[alias].introspection.table_names())


@pytest.mark.parametrize("alias", ["users", "products", "orders"])
def test_service_database_holds_its_own_table_and_no_other_service_table(alias):
    tables = _tables(alias)
    assert SERVICE_TABLES[alias] in tables
    for other_alias, other_table in SERVICE_TABLES.items():
        if other_alias != alias:
            assert other_table not in tables
    assert not any(t.startswith(("auth_", "django_admin", "django_session")) for t in tables)


def test_default_database_holds_no_service_table():
    assert not _tables("default") & set(SERVICE_TABLES.values())


@pytest.mark.parametrize(
    ("alias", "table", "columns"),
    [
        ("users", "users", ["id", "name", "email"]),
        ("products", "products", ["id", "name", "price"]),
        ("orders", "orders", ["id", "user_id", "product_id", "quantity"]),
    ],
)
def test_tables_have_exactly_the_seed_report_columns(alias, table, columns):
    with connections[alias].cursor() as cursor:
        description = connections[alias].introspection.get_table_description(cursor, table)
    assert [column.name for column in description] == columns


def test_relations_across_services_are_refused():
    user = User(id=1, name="A", email="a@example.com")
    order = Order(id=1, user_id=1, product_id=1, quantity=1)
    assert ServiceRouter().allow_relation(user, order) is False
    assert ServiceRouter().allow_relation(order, Order(id=2, user_id=1, product_id=1, quantity=1))


def test_rows_land_in_their_own_database_file():
    User.objects.create(name="Alice", email="alice@example.com")
    Product.objects.create(name="Laptop", price="1000")
    Order.objects.create(user_id=1, product_id=1, quantity=2)
    assert User.objects.using("users").count() == 1
    assert Product.objects.using("products").count() == 1
    assert Order.objects.using("orders").count() == 1
    for alias in ("users", "products", "orders"):
        if connections[alias].vendor == "sqlite":
            # Another process (the sqlite3 shell) opening the file sees the right tables.
            path = connections[alias].settings_dict["NAME"]
            with sqlite3.connect(path) as raw:
                names = {r[0] for r in raw.execute("SELECT name FROM sqlite_master")}
            assert SERVICE_TABLES[alias] in names
            assert not names & (set(SERVICE_TABLES.values()) - {SERVICE_TABLES[alias]})
