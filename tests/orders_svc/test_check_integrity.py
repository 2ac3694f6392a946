"""check_integrity finds orders left pointing nowhere by changes behind the service's back."""

import json
from io import StringIO

import pytest
from django.core.management import call_command

from products_svc.models import Product
from tests.factories import make_order, make_product, make_user
from users_svc.models import User

pytestmark = pytest.mark.django_db(databases="__all__")


def _run(*args: str) -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("check_integrity", *args, stdout=out)
    except SystemExit as exit_:
        return exit_.code, out.getvalue()
    return 0, out.getvalue()


def test_a_consistent_store_passes():
    user, product = make_user(), make_product()
    make_order(user.id, product.id)
    assert _run() == (0, "1 order checked, 0 point at a missing user or product.\n")


def test_one_dangling_order_is_counted_in_the_singular():
    alice, bob, laptop = make_user(), make_user("Bob", "bob@example.com"), make_product()
    make_order(alice.id, laptop.id)
    dangling = make_order(bob.id, laptop.id)
    User.objects.filter(id=bob.id).delete()
    assert _run() == (
        1,
        f"order {dangling.id}: user {bob.id} does not exist\n"
        "2 orders checked, 1 points at a missing user or product.\n",
    )


def test_rows_deleted_behind_the_api_are_found_and_the_exit_status_says_so():
    alice, bob = make_user(), make_user("Bob", "bob@example.com")
    laptop, mouse = make_product(), make_product("Mouse", "30")
    kept = make_order(alice.id, laptop.id)
    no_user = make_order(bob.id, laptop.id)
    no_both = make_order(bob.id, mouse.id)
    # As the sqlite3 shell would: straight into each database, no service involved.
    User.objects.filter(id=bob.id).delete()
    Product.objects.filter(id=mouse.id).delete()

    status, output = _run()
    assert status == 1
    assert output.splitlines() == [
        f"order {no_user.id}: user {bob.id} does not exist",
        f"order {no_both.id}: user {bob.id} and product {mouse.id} do not exist",
        "3 orders checked, 2 point at a missing user or product.",
    ]
    status, output = _run("--json")
    assert status == 1
    assert json.loads(output) == {
        "checked": 3,
        "dangling": [
            {
                "order_id": no_user.id,
                "user_id": bob.id,
                "product_id": laptop.id,
                "missing": ["user"],
            },
            {
                "order_id": no_both.id,
                "user_id": bob.id,
                "product_id": mouse.id,
                "missing": ["user", "product"],
            },
        ],
    }
    assert kept.id not in {o["order_id"] for o in json.loads(output)["dangling"]}


def test_it_reads_in_batches():
    from orders_svc import selectors

    user, product = make_user(), make_product()
    for _ in range(5):
        make_order(user.id, product.id)
    assert list(selectors.dangling_orders(batch_size=2)) == []
    User.objects.all().delete()
    assert len(list(selectors.dangling_orders(batch_size=2))) == 5
