"""``insert_data`` reproduces the seed report exactly, and a second run inserts nothing."""

import shutil
import subprocess
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connections

from orders_svc.models import Order
from products_svc.models import Product
from users_svc.models import User

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True, reset_sequences=True)

# The report's "Step 2" output, section by section.
REPORT = """\
=== INSERTED DATA ===

ORDERS TABLE (Inserted):
(1, 1, 1, 2)
(2, 2, 2, 1)
(3, 3, 3, 5)
(4, 4, 4, 1)
(5, 5, 5, 3)
(6, 6, 6, 4)
(7, 7, 7, 2)

USERS TABLE (Inserted):
(1, 'Alice', 'alice@example.com')
(2, 'Bob', 'bob@example.com')
(3, 'Charlie', 'charlie@example.com')
(4, 'David', 'david@example.com')
(5, 'Eve', 'eve@example.com')
(6, 'Frank', 'frank@example.com')
(7, 'Grace', 'grace@example.com')
(8, 'Alice', 'alice@example.com')
(9, 'Henry', 'henry@example.com')

PRODUCTS TABLE (Inserted):
(1, 'Laptop', 1000.0)
(2, 'Smartphone', 700.0)
(3, 'Headphones', 150.0)
(4, 'Monitor', 300.0)
(5, 'Keyboard', 50.0)
(6, 'Mouse', 30.0)
(7, 'Laptop', 1000.0)
(8, 'Smartwatch', 250.0)
(9, 'Gaming Chair', 500.0)

ORDERS TABLE (Skipped):
(8, 8, 8, 0) --> Failed validation: quantity: Ensure this value is greater than 0.
(9, 9, 1, -1) --> Failed validation: quantity: Ensure this value is greater than 0.
(10, 10, 11, 2) --> Failed validation: user_id: No user has this id. \
product_id: No product has this id.

USERS TABLE (Skipped):
(10, '', 'jane@example.com') --> Failed validation: name: This field may not be blank.

PRODUCTS TABLE (Skipped):
(10, 'Earbuds', -50.0) --> Failed validation: price: Ensure this value is greater than 0.

Final result: 9 users, 9 products, 7 orders inserted; 1 user, 1 product, 3 orders skipped.
"""

SQLITE_SHELL = {
    "users": "1|Alice|alice@example.com\n2|Bob|bob@example.com\n3|Charlie|charlie@example.com\n"
    "4|David|david@example.com\n5|Eve|eve@example.com\n6|Frank|frank@example.com\n"
    "7|Grace|grace@example.com\n8|Alice|alice@example.com\n9|Henry|henry@example.com\n",
    "products": "1|Laptop|1000.0\n2|Smartphone|700.0\n3|Headphones|150.0\n4|Monitor|300.0\n"
    "5|Keyboard|50.0\n6|Mouse|30.0\n7|Laptop|1000.0\n8|Smartwatch|250.0\n9|Gaming Chair|500.0\n",
    "orders": "1|1|1|2\n2|2|2|1\n3|3|3|5\n4|4|4|1\n5|5|5|3\n6|6|6|4\n7|7|7|2\n",
}


def _run(*args: str) -> str:
    out = StringIO()
    call_command("insert_data", *args, stdout=out)
    return out.getvalue()


def test_insert_data_prints_the_seed_report_and_stores_its_rows():
    assert _run() == REPORT
    assert User.objects.count() == 9
    assert Product.objects.count() == 9
    assert Order.objects.count() == 7
    assert list(User.objects.values_list("id", flat=True)) == list(range(1, 10))
    assert not Order.objects.filter(id__in=[8, 9, 10]).exists()


def test_tables_read_in_the_sqlite_shell_exactly_as_in_the_report():
    if connections["users"].vendor != "sqlite" or not shutil.which("sqlite3"):
        pytest.skip("needs SQLite databases and the sqlite3 shell")
    _run()
    for table, expected in SQLITE_SHELL.items():
        path = connections[table].settings_dict["NAME"]
        shell = subprocess.run(
            ["sqlite3", path, f"SELECT * FROM {table};"], capture_output=True, text=True, check=True
        )
        assert shell.stdout == expected, table


def test_second_run_inserts_nothing_and_says_so():
    _run()
    again = _run()
    assert "Nothing new was inserted: every valid record is already in the databases." in again
    assert again.endswith(
        "Final result: 0 users, 0 products, 0 orders inserted; "
        "10 users, 10 products, 10 orders skipped.\n"
    )
    assert (
        "(1, 'Alice', 'alice@example.com') --> Already present: id: Duplicate id: a user "
        "with this id already exists." in again
    )
    assert "(10, '', 'jane@example.com') --> Failed validation: name:" in again
    assert (User.objects.count(), Product.objects.count(), Order.objects.count()) == (9, 9, 7)


def test_file_option_ingests_a_batch_file(tmp_path):
    batch = tmp_path / "batch.json"
    batch.write_text('{"users": [{"name": "Zed", "email": "zed@example.com"}, {"name": ""}]}')
    output = _run("--file", str(batch))
    zed = User.objects.get()
    assert f"({zed.id}, 'Zed', 'zed@example.com')" in output
    assert (
        "(None, '', None) --> Failed validation: name: This field may not be blank. "
        "email: This field is required." in output
    )


def test_file_option_reports_unreadable_or_malformed_files(tmp_path):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="Cannot read"):
        _run("--file", str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(CommandError, match="not an ingest batch"):
        _run("--file", str(tmp_path / "bad.json"))


def test_second_run_calls_identical_orders_already_present_too():
    # The duplicate label matched "Duplicate id: a ...", and an order's reason says "an order".
    _run()
    again = _run()
    assert (
        "(3, 3, 3, 5) --> Already present: id: Duplicate id: an order with this id already "
        "exists." in again
    )
    assert "Failed validation: id:" not in again


def test_a_taken_id_stored_with_other_values_is_reported_with_the_stored_row():
    _run()
    User.objects.filter(id=1).update(name="Alicia")
    Product.objects.filter(id=2).update(price="699.99")
    Order.objects.filter(id=3).update(quantity=9)
    Product.objects.filter(id=1).update(price="1000.00")  # the same price, written otherwise
    again = _run()
    assert (
        "(1, 'Alice', 'alice@example.com') --> Present with other values: stored "
        "(1, 'Alicia', 'alice@example.com')\n" in again
    )
    assert "(2, 'Smartphone', 700.0) --> Present with other values: stored " in again
    assert "(2, 'Smartphone', 699.99)\n" in again
    assert "(3, 3, 3, 5) --> Present with other values: stored (3, 3, 3, 9)\n" in again
    assert "(1, 'Laptop', 1000.0) --> Already present: id: Duplicate id: a product" in again
    assert "(8, 'Alice', 'alice@example.com') --> Already present: id: Duplicate id:" in again
    assert (
        "Nothing new was inserted: every valid record's id is already taken (3 of them by rows "
        "with other values, which insert_data leaves as they are).\n" in again
    )
    assert User.objects.get(id=1).name == "Alicia"  # nothing was changed


def test_dry_run_lists_what_a_real_run_would_insert_and_writes_nothing():
    dry = _run("--dry-run")
    assert (User.objects.count(), Product.objects.count(), Order.objects.count()) == (0, 0, 0)
    real_sections = REPORT.replace("(Inserted)", "(Would be inserted)").split("\n\nFinal result")
    assert dry.startswith(real_sections[0] + "\n\nDry run: nothing was written.\n")
    assert dry.endswith(
        "Final result: 9 users, 9 products, 7 orders would be inserted; "
        "1 user, 1 product, 3 orders skipped.\n"
    )


def test_dry_run_of_a_file_shows_cleaned_values_and_no_id_for_new_records(tmp_path):
    batch = tmp_path / "batch.json"
    batch.write_text(
        '{"users": [{"name": " Zed ", "email": "zed@example.com"}], '
        '"products": [{"id": 5, "name": "Pen", "price": "2"}], '
        '"orders": [{"user_id": 1, "product_id": 5, "quantity": 1}]}'
    )
    User.objects.create(id=1, name="Ann", email="ann@example.com")
    dry = _run("--file", str(batch), "--dry-run")
    assert "USERS TABLE (Would be inserted):\n(None, 'Zed', 'zed@example.com')\n" in dry
    assert "PRODUCTS TABLE (Would be inserted):\n(5, 'Pen', 2.0)\n" in dry
    assert "ORDERS TABLE (Would be inserted):\n(None, 1, 5, 1)\n" in dry
    assert (User.objects.count(), Product.objects.count(), Order.objects.count()) == (1, 0, 0)
