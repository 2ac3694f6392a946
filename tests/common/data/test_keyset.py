"""Keyset reads seek an index for every ordering a list offers, on SQLite and PostgreSQL.

What the database plans is what makes a deep page cost the same as the first: an index search
from the position, no scan of the table, no sort. Asked of the planner, not timed.
"""

import pytest
from django.db import connections

from common.data.keyset import Ordering, rows_after
from orders_svc.models import Order
from products_svc.models import Product
from users_svc.models import User

pytestmark = pytest.mark.django_db(databases="__all__")

POSITIONS = {
    (User, "name"): "Ann",
    (User, "email"): "a@x.io",
    (Product, "name"): "Pen",
    (Product, "price"): "10.00",
    (Order, "user_id"): 5,
    (Order, "product_id"): 5,
    (Order, "quantity"): 2,
}
CASES = [
    (model, field, descending)
    for (model, field) in [*POSITIONS, (User, "id"), (Order, "id")]
    for descending in (False, True)
]


def _plan(queryset) -> str:
    alias = queryset.db
    sql, params = queryset.query.sql_with_params()
    with connections[alias].cursor() as cursor:
        if connections[alias].vendor == "sqlite":
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
            return "\n".join(str(row[-1]) for row in cursor.fetchall())
        # A tiny test table is cheaper to scan and sort than to search; say what we ask: can
        # the index serve it (it cannot when the ordering or the condition does not fit it).
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.parametrize(("model", "field", "descending"), CASES)
def test_the_page_after_a_position_is_an_index_search(model, field, descending):
    value = POSITIONS.get((model, field))
    page = rows_after(model.objects.all(), Ordering(field, descending), (value, 40))[:51]
    plan = _plan(page)
    if connections[page.db].vendor == "sqlite":
        assert "SEARCH" in plan, plan
        assert "INDEX" in plan or "PRIMARY KEY" in plan, plan
        assert "TEMP B-TREE" not in plan, plan  # no sort of the rows found
    else:
        assert "Index" in plan, plan
        assert "Sort" not in plan, plan
        assert "Seq Scan" not in plan, plan
        if field != "id":
            assert "Index Cond: (ROW(" in plan, plan  # a seek to the position, not a filter


def test_rows_after_a_position_in_each_direction():
    for i, quantity in enumerate([2, 1, 2, 3, 2, 1], start=1):
        Order.objects.create(id=i, user_id=1, product_id=1, quantity=quantity)
    ascending = Ordering("quantity")
    after = rows_after(Order.objects.all(), ascending, (2, 3))
    assert list(after.values_list("quantity", "id")) == [(2, 5), (3, 4)]
    before = rows_after(Order.objects.all(), ascending.reversed(), (2, 3))
    assert list(before.values_list("quantity", "id")) == [(2, 1), (1, 6), (1, 2)]
