"""``manage.py ingest_file``: JSON, NDJSON and CSV files, in chunks, with a summary and --errors."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from ingest import files
from orders_svc.models import Order
from products_svc.models import Product
from users_svc.models import User

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True, reset_sequences=True)


def run(*args) -> str:
    out = StringIO()
    call_command("ingest_file", *map(str, args), "--no-progress", stdout=out)
    return out.getvalue()


def test_an_ndjson_file_in_small_chunks_with_orders_before_their_users(tmp_path):
    lines = [{"type": "order", "user_id": u, "product_id": u, "quantity": 1} for u in (1, 2, 3)]
    lines += [
        {"type": "user", "id": u, "name": f"U{u}", "email": f"u{u}@example.com"} for u in (1, 2)
    ]
    lines += [{"type": "product", "id": p, "name": f"P{p}", "price": "2.50"} for p in (1, 2, 3)]
    lines.append({"type": "user", "id": 9, "name": " ", "email": "nine@example.com"})
    path = tmp_path / "batch.ndjson"
    path.write_text(
        "\n".join(json.dumps(line) for line in lines[:4])
        + "\n\nnot json\n"
        + "\n".join(json.dumps(line) for line in lines[4:])
        + "\n"
    )
    errors = tmp_path / "errors.ndjson"
    output = run(path, "--chunk", 2, "--errors", errors)

    # Orders come first in the file but are checked after every user and product is written.
    assert sorted(Order.objects.values_list("user_id", flat=True)) == [1, 2]
    assert sorted(User.objects.values_list("id", flat=True)) == [1, 2]
    assert Product.objects.count() == 3
    table = {row.split("│")[1].strip(): row for row in output.splitlines() if row.count("│") == 5}
    assert [cell.strip() for cell in table["users"].split("│")[2:5]] == ["3", "2", "1"]
    assert [cell.strip() for cell in table["orders"].split("│")[2:5]] == ["3", "2", "1"]
    assert "1 line was not a record" in output
    assert "line 6 (line): line: JSON is malformed" in output
    skipped = [json.loads(line) for line in errors.read_text().splitlines()]
    assert {(s["type"], s["line"]) for s in skipped} == {(None, 6), ("users", 11), ("orders", 3)}
    assert f"All 3 skipped records are in {errors}" in output


def test_running_the_same_file_again_inserts_nothing_twice(tmp_path):
    path = tmp_path / "users.csv"
    path.write_text("id,name,email\n1,Ann,ann@example.com\n2,Bo,bo@example.com\n")
    run(path)
    output = run(path)
    assert User.objects.count() == 2
    assert "Duplicate id" in output


def test_a_csv_file_takes_its_type_from_its_name_or_from_type(tmp_path):
    path = tmp_path / "products.csv"
    path.write_text("name,price\nDesk,120\nFree,0\n")
    output = run(path)
    assert list(Product.objects.values_list("name", flat=True)) == ["Desk"]
    assert "line 3 (products): price: Ensure this value is greater than 0." in output

    other = tmp_path / "export.csv"
    other.write_text("user_id,product_id,quantity\n")
    with pytest.raises(CommandError, match="--type"):
        run(other)
    run(other, "--type", "orders")  # an empty CSV of orders is fine


def test_a_json_batch_file_reports_skips_by_index(tmp_path):
    path = tmp_path / "batch.json"
    path.write_text(json.dumps({"users": [{"name": "A", "email": "a@example.com"}, {"name": "B"}]}))
    output = run(path)
    assert User.objects.count() == 1
    assert "index 1 (users): email: This field is required." in output


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("batch.txt", "x", "Cannot tell the format"),
        ("batch.json", "[1, 2]", "is not an ingest batch"),
        ("users.csv", "name\nA\n", "has no column email"),
        ("users.csv", 'name,email\n"A,a@example.com\n', "line 2: not valid CSV"),
    ],
)
def test_files_that_cannot_be_ingested_are_a_clear_error(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(CommandError, match=message):
        run(path)
    with pytest.raises(CommandError, match="No such file"):
        run(tmp_path / "missing.ndjson")


def test_progress_reaches_every_record(tmp_path):
    path = tmp_path / "users.ndjson"
    path.write_text(
        "".join(
            json.dumps({"type": "user", "name": f"U{i}", "email": f"u{i}@example.com"}) + "\n"
            for i in range(25)
        )
    )
    done = []
    result = files.ingest_file(path, chunk_records=10, on_progress=done.append)
    assert sum(done) == 25 == files.estimate_records(path, "ndjson")
    assert result.chunks == 3
    assert result.counts["users"] == {"received": 25, "inserted": 25, "skipped": 0}
