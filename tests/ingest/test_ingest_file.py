"""``manage.py ingest_file``: JSON, NDJSON and CSV files, in chunks, with a summary and --errors,
and every action (``--action``, a record's own ``"action"``, a CSV ``action`` column) with the
four phases of ``POST /ingest/`` held across the whole file, whatever chunk a line falls in."""

import json
import os
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from ingest import files, pipeline
from ingest.records import decode_batch
from orders_svc.models import Order
from products_svc.models import Product
from tests.test_faults import database_down
from users_svc.models import User

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True, reset_sequences=True)

REPEATED_USER = "Duplicate id: an earlier user of this batch has the same id."
REPEATED_ORDER = "Duplicate id: an earlier order of this batch has the same id."


def run(*args) -> str:
    out = StringIO()
    call_command("ingest_file", *map(str, args), "--no-progress", stdout=out)
    return out.getvalue()


def table(output: str) -> dict[str, list[int]]:
    """The summary table: type -> [received, inserted, updated, deleted, skipped]."""
    rows = [row.split("│")[1:-1] for row in output.splitlines() if row.count("│") == 7]
    return {cells[0].strip(): [int(cell.strip()) for cell in cells[1:]] for cells in rows}


def ndjson(path, lines) -> None:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def seed(users=3, products=2, orders=()) -> None:
    """Users 1..users, products 1..products and orders 1.. for the (user, product) pairs."""
    body = {
        "users": [
            {"id": i, "name": f"User {i}", "email": f"u{i}@example.com"}
            for i in range(1, users + 1)
        ],
        "products": [{"id": i, "name": f"P{i}", "price": 10 * i} for i in range(1, products + 1)],
        "orders": [
            {"id": i, "user_id": u, "product_id": p, "quantity": 1}
            for i, (u, p) in enumerate(orders, start=1)
        ],
    }
    result = pipeline.ingest(decode_batch(json.dumps(body).encode()))
    assert not result.errors, result.as_dict()


def rows(model, *fields):
    return list(model.objects.order_by("id").values_list(*fields))


def skips(errors) -> list[tuple]:
    return [
        (s["type"], s["line"], s["id"], s["action"], s["reasons"])
        for s in map(json.loads, errors.read_text().splitlines())
    ]


# --- inserts (the default) -------------------------------------------------------------------


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
    assert table(output) == {
        "users": [3, 2, 0, 0, 1],
        "products": [3, 3, 0, 0, 0],
        "orders": [3, 2, 0, 0, 1],
        "total": [9, 7, 0, 0, 2],
    }
    assert "1 line was not a record" in output
    assert "line 6 (line): line: JSON is malformed" in output
    skipped = [json.loads(line) for line in errors.read_text().splitlines()]
    assert {(s["type"], s["line"]) for s in skipped} == {(None, 6), ("users", 11), ("orders", 3)}
    assert {s["action"] for s in skipped if s["type"]} == {"insert"}
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
    ndjson(
        path, [{"type": "user", "name": f"U{i}", "email": f"u{i}@example.com"} for i in range(25)]
    )
    done = []
    result = files.ingest_file(path, chunk_records=10, on_progress=done.append)
    assert sum(done) == 25 == files.estimate_records(path, "ndjson")
    assert (result.chunks, result.passes) == (3, 1)  # no orders, no deletions: one pass
    assert result.counts["users"] == {
        "received": 25,
        "inserted": 25,
        "updated": 0,
        "deleted": 0,
        "skipped": 0,
    }


# --- each action alone, across chunks -------------------------------------------------------


def test_upsert_inserts_new_ids_and_replaces_stored_ones(tmp_path):
    seed(users=3, products=1)
    path = tmp_path / "records.ndjson"
    ndjson(
        path,
        [
            {"type": "user", "id": 2, "name": "Two", "email": "two@example.com"},
            {"type": "order", "id": 1, "user_id": 5, "product_id": 1, "quantity": 3},
            {"type": "user", "id": 5, "name": "Five", "email": "five@example.com"},
            {"type": "user", "name": "No id", "email": "x@example.com"},
            {"type": "product", "id": 1, "name": "Desk", "price": "99.00"},
        ],
    )
    errors = tmp_path / "errors.ndjson"
    output = run(path, "--action", "upsert", "--chunk", 1, "--errors", errors)
    assert table(output)["users"] == [3, 1, 1, 0, 1]
    assert table(output)["products"] == [1, 0, 1, 0, 0]
    assert table(output)["orders"] == [1, 1, 0, 0, 0]  # for user 5, two chunks further down
    assert rows(User, "id", "name") == [(1, "User 1"), (2, "Two"), (3, "User 3"), (5, "Five")]
    assert rows(Product, "id", "name") == [(1, "Desk")]
    assert rows(Order, "id", "user_id", "quantity") == [(1, 5, 3)]
    assert skips(errors) == [
        (
            "users",
            4,
            None,
            "upsert",
            {"id": ["Required for action upsert: the id of the record to upsert."]},
        )
    ]
    assert "line 4 (users, upsert): id: Required for action upsert" in output


def test_update_changes_only_the_fields_given_and_checks_the_merged_record(tmp_path):
    seed(users=3, products=2, orders=[(1, 1)])
    path = tmp_path / "records.ndjson"
    ndjson(
        path,
        [
            {"type": "order", "id": 1, "user_id": 4},  # user 4 comes three lines down
            {"type": "user", "id": 1, "email": "one@example.com"},
            {"type": "user", "id": 2, "email": "not an email"},
            {"type": "user", "id": 4, "name": "Four"},  # no user 4 to update
            {"type": "product", "id": 2, "price": "7.25"},
            {"type": "order", "id": 1, "quantity": 2},
        ],
    )
    errors = tmp_path / "errors.ndjson"
    output = run(path, "--action", "update", "--chunk", 2, "--errors", errors)
    assert table(output)["users"] == [3, 0, 1, 0, 2]
    assert table(output)["products"] == [1, 0, 1, 0, 0]
    assert table(output)["orders"] == [2, 0, 0, 0, 2]
    assert rows(User, "id", "name", "email") == [
        (1, "User 1", "one@example.com"),
        (2, "User 2", "u2@example.com"),
        (3, "User 3", "u3@example.com"),
    ]
    assert rows(Product, "id", "price")[1] == (2, Decimal("7.25"))
    assert rows(Order, "id", "user_id", "quantity") == [(1, 1, 1)]
    assert [(t, line, action, reasons) for t, line, _, action, reasons in skips(errors)] == [
        ("users", 3, "update", {"email": ["Enter a valid email address."]}),
        ("users", 4, "update", {"id": ["No user has this id."]}),
        ("orders", 1, "update", {"user_id": ["No user has this id."]}),
        # The orders of the file are one chunk of the orders pass: one id twice, as in a batch.
        (
            "orders",
            6,
            "update",
            {"id": ["Duplicate id: an earlier order of this batch has the same id."]},
        ),
    ]
    assert "line 1 (orders id 1, update): user_id: No user has this id." in output


def test_deleting_orders_and_then_their_user_works_wherever_the_lines_are(tmp_path):
    seed(users=2, products=1, orders=[(1, 1)] * 9 + [(2, 1)])
    path = tmp_path / "deletions.ndjson"
    # The user's deletion comes first, in the first chunk; the orders' later, in other chunks.
    ndjson(
        path,
        [{"type": "user", "id": 1}]
        + [{"type": "order", "id": i} for i in range(1, 10)]
        + [{"type": "user", "id": 2}, {"type": "user", "id": 7}],
    )
    errors = tmp_path / "errors.ndjson"
    output = run(path, "--action", "delete", "--chunk", 4, "--errors", errors)
    assert table(output)["orders"] == [9, 0, 0, 9, 0]
    assert table(output)["users"] == [3, 0, 0, 1, 2]
    assert rows(User, "id") == [(2,)]  # user 2 still has order 10
    assert rows(Order, "id", "user_id") == [(10, 2)]
    assert skips(errors) == [
        (
            "users",
            11,
            2,
            "delete",
            {"id": ["Not deleted: still referenced by 1 order; delete or change those first."]},
        ),
        ("users", 12, 7, "delete", {"id": ["No user has this id."]}),
    ]


@pytest.mark.parametrize("action", ["insert", "upsert", "update", "delete"])
def test_every_action_alone_in_a_csv_file_across_chunks(tmp_path, action):
    seed(users=4)
    path = tmp_path / "people.csv"
    path.write_text(
        "id,name,email\n"
        + "".join(f"{i},Name {i},n{i}@example.com\n" for i in range(3, 7))
        + ",Nobody,nobody@example.com\n"
    )
    output = run(path, "--type", "users", "--action", action, "--chunk", 2)
    # (received, inserted, updated, deleted, skipped) and the ids left, for each action
    expected = {
        "insert": ([5, 3, 0, 0, 2], [1, 2, 3, 4, 5, 6, 7]),  # 3 and 4 are duplicates
        "upsert": ([5, 2, 2, 0, 1], [1, 2, 3, 4, 5, 6]),  # the id-less row needs an id
        "update": ([5, 0, 2, 0, 3], [1, 2, 3, 4]),  # 5 and 6 do not exist
        "delete": ([5, 0, 0, 2, 3], [1, 2]),
    }[action]
    assert table(output)["users"] == expected[0]
    assert [user_id for (user_id,) in rows(User, "id")] == expected[1]
    if action in ("upsert", "update"):
        assert rows(User, "name")[2] == ("Name 3",)


# --- mixed actions, the phases across the file -----------------------------------------------


def test_a_new_user_and_an_order_for_them_with_the_order_first_in_another_chunk(tmp_path):
    seed(users=0, products=1)
    path = tmp_path / "records.ndjson"
    ndjson(
        path,
        [
            {"type": "order", "id": 1, "user_id": 5, "product_id": 1, "quantity": 1},
            {"type": "order", "id": 2, "user_id": 6, "product_id": 1, "quantity": 1},
            {"type": "user", "id": 5, "name": "New", "email": "new@example.com"},
            {"type": "user", "id": 6, "name": "", "email": "six@example.com"},
        ],
    )
    output = run(path, "--action", "upsert", "--chunk", 1)
    assert rows(Order, "id", "user_id") == [(1, 5)]
    assert "line 2 (orders id 2, upsert): user_id: No user has this id." in output
    assert "line 4 (users id 6, upsert): name: This field may not be blank." in output


def test_deleting_a_user_and_ordering_for_them_keeps_the_order_and_refuses_the_deletion(tmp_path):
    seed(users=3, products=1)
    path = tmp_path / "records.ndjson"
    ndjson(
        path,
        [
            {"type": "user", "action": "delete", "id": 3},
            {"type": "user", "action": "delete", "id": 2},
            {"type": "product", "id": 2, "name": "New", "price": 5},
            {"type": "order", "user_id": 3, "product_id": 2, "quantity": 2},
        ],
    )
    result = files.ingest_file(path, chunk_records=1)
    assert result.passes == 3
    assert rows(Order, "user_id", "product_id") == [(3, 2)]
    assert rows(User, "id") == [(1,), (3,)]
    [refused] = result.first_skips
    assert (refused.type, refused.line, refused.id, refused.action) == ("users", 1, 3, "delete")
    assert refused.reasons == {
        "id": ["Not deleted: still referenced by 1 order; delete or change those first."]
    }


def test_a_mixed_file_runs_each_phase_over_the_whole_file(tmp_path):
    """Every action in one file of one-record chunks, the lines in the worst order for the
    phases: each record still sees what the earlier phases did, in any chunk."""
    seed(users=3, products=2, orders=[(1, 1), (1, 2), (2, 1)])
    path = tmp_path / "records.ndjson"
    ndjson(
        path,
        [
            {"type": "user", "action": "delete", "id": 1},  # after its orders go (lines 6, 7)
            {"type": "product", "action": "delete", "id": 1},  # order 3 moves away (line 8)
            {
                "type": "order",
                "action": "upsert",
                "id": 4,
                "user_id": 4,
                "product_id": 2,
                "quantity": 1,
            },  # fmt: skip
            {"type": "user", "action": "upsert", "id": 4, "name": "Four", "email": "4@x.io"},
            {"type": "user", "action": "update", "id": 2, "name": "Two"},
            {"type": "order", "action": "delete", "id": 1},
            {"type": "order", "action": "delete", "id": 2},
            {"type": "order", "action": "update", "id": 3, "product_id": 2},
            {"type": "user", "id": 5, "name": "Five", "email": "5@x.io"},  # --action insert
        ],
    )
    errors = tmp_path / "errors.ndjson"
    output = run(path, "--chunk", 1, "--errors", errors)
    assert table(output) == {
        "users": [4, 2, 1, 1, 0],
        "products": [1, 0, 0, 1, 0],
        "orders": [4, 1, 1, 2, 0],
        "total": [9, 3, 2, 4, 0],
    }
    assert rows(User, "id", "name") == [(2, "Two"), (3, "User 3"), (4, "Four"), (5, "Five")]
    assert rows(Product, "id") == [(2,)]
    assert rows(Order, "id", "user_id", "product_id") == [(3, 2, 2), (4, 4, 2)]
    assert errors.read_text() == ""


def test_passes_are_read_only_when_the_file_has_their_records(tmp_path):
    path = tmp_path / "records.ndjson"
    seed(users=2, products=1, orders=[(1, 1)])

    def passes(lines, action="insert"):
        ndjson(path, lines)
        return files.ingest_file(path, action=action, chunk_records=1).passes

    user = {"type": "user", "name": "U", "email": "u@example.com"}
    order = {"type": "order", "user_id": 2, "product_id": 1, "quantity": 1}
    assert passes([user]) == 1
    assert passes([user, order]) == 2
    assert passes([{"type": "order", "id": 1}], "delete") == 1  # order deletions: the first
    assert passes([{"type": "user", "id": 3}, user], "delete") == 2  # users and their deletions
    assert passes([order, {"type": "user", "id": 3, "action": "delete"}]) == 3


# --- reasons, lines and actions in the report ------------------------------------------------


@pytest.mark.parametrize("value", ["bogus", "", "delete;"])
def test_an_unknown_action_option_is_refused_before_anything_is_read(tmp_path, value):
    path = tmp_path / "users.ndjson"
    ndjson(path, [{"type": "user", "name": "U", "email": "u@example.com"}])
    with pytest.raises(CommandError, match="invalid choice"):
        run(path, "--action", value)
    assert User.objects.count() == 0


def test_the_action_option_takes_any_case_and_unknown_record_actions_are_skipped(tmp_path):
    seed(users=2)
    path = tmp_path / "users.csv"
    path.write_text(
        "id,name,email,action\n"
        "1,One,one@example.com,\n"  # the file's default: upsert
        "2,,,Delete\n"
        "3,Three,three@example.com,merge\n"
        "4,Four,four@example.com, insert \n"
    )
    errors = tmp_path / "errors.ndjson"
    output = run(path, "--action", " UPSERT ", "--chunk", 1, "--errors", errors)
    assert table(output)["users"] == [4, 1, 1, 1, 1]
    assert rows(User, "id", "name") == [(1, "One"), (4, "Four")]
    assert skips(errors) == [
        (
            "users",
            4,
            3,
            "merge",
            {"action": ["Unknown action 'merge': use insert, upsert, update or delete."]},
        )
    ]
    assert "line 4 (users id 3, merge): action: Unknown action 'merge'" in output


def test_skips_are_listed_in_file_order_whatever_pass_found_them(tmp_path):
    path = tmp_path / "records.ndjson"
    ndjson(
        path,
        [
            {"type": "order", "user_id": 9, "product_id": 1, "quantity": 1},  # the orders pass
            {"type": "user", "name": "", "email": "x@example.com"},  # the first pass
            {"type": "user", "name": "", "email": "y@example.com"},
        ],
    )
    output = run(path, "--show", 2)
    listed = [line.split(" (")[0].strip() for line in output.splitlines() if "): " in line]
    assert listed == ["line 1", "line 2"]  # the two first in the file, not the first found


def test_a_repeated_id_in_a_chunk_names_the_line_of_the_first(tmp_path):
    path = tmp_path / "users.ndjson"
    ndjson(
        path,
        [
            {"type": "user", "id": 1, "name": "A", "email": "a@example.com"},
            {"type": "user", "id": 2, "name": "B", "email": "b@example.com"},
            {"type": "user", "id": 2, "action": "delete"},
            {"type": "user", "id": 1, "name": "C", "email": "c@example.com", "action": "upsert"},
            {"type": "user", "id": 1, "name": "D", "email": "d@example.com", "action": "upsert"},
        ],
    )
    output = run(path, "--chunk", 3)
    # Lines 1, 2 and 4 are the first chunk of the first pass: line 4 is refused as in one
    # batch, naming line 1 (the pipeline names its index in the chunk, 0). Line 5 is in the
    # next chunk and line 3 in the deletions pass: they run, in pass order.
    assert table(output)["users"] == [5, 2, 1, 1, 1]
    assert f"line 4 (users id 1, upsert): id: {REPEATED_USER}" in output
    assert rows(User, "id", "name") == [(1, "D")]


def test_a_json_batch_file_takes_the_action_too(tmp_path):
    seed(users=2)
    path = tmp_path / "batch.json"
    path.write_text(json.dumps({"users": [{"id": 1}, {"id": 2, "action": "update", "name": "B"}]}))
    output = run(path, "--action", "delete")
    assert table(output)["users"] == [2, 0, 1, 1, 0]
    assert rows(User, "id", "name") == [(2, "B")]


def test_a_broken_csv_row_says_what_is_written(tmp_path):
    seed(users=3)
    path = tmp_path / "users.csv"
    path.write_text('id,name,email,action\n1,,,delete\n5,E,e@example.com,\n"6,F\n')
    with pytest.raises(CommandError) as raised:
        run(path, "--chunk", 1)
    assert str(raised.value).startswith("users.csv, line 4: not valid CSV")
    assert str(raised.value).endswith(
        "The rows before it are written (except the user deletions before it, which had not "
        "run), none after it."
    )
    assert rows(User, "id") == [(1,), (2,), (3,), (5,)]


def test_a_database_that_fails_a_deletion_makes_the_command_fail(tmp_path):
    seed(users=3)
    path = tmp_path / "users.csv"
    path.write_text("id\n1\n2\n3\n")
    with database_down("users"), pytest.raises(CommandError, match="3 valid records were not"):
        run(path, "--action", "delete")
    assert rows(User, "id") == [(1,), (2,), (3,)]


def test_each_chunk_starts_with_fresh_connections_as_a_request_would(tmp_path, monkeypatch):
    """A connection kept from chunk to chunk keeps every big statement it prepared: 900,000
    updates peaked at 403 MB instead of 150 MB. Each chunk closes what it opened."""
    from django.db import connections

    seed(users=6)
    path = tmp_path / "users.csv"
    path.write_text("id,name\n" + "".join(f"{i},Name {i}\n" for i in range(1, 7)))
    real_ingest = pipeline.ingest
    open_at_start = []

    def ingest(batch, **options):
        open_at_start.append(
            [alias for alias in ("users", "products", "orders") if connections[alias].connection]
        )
        return real_ingest(batch, **options)

    monkeypatch.setattr(pipeline, "ingest", ingest)
    run(path, "--action", "update", "--chunk", 2)
    assert open_at_start[1:] == [[], []]  # the first chunk finds those of seed()
    assert rows(User, "name")[5] == ("Name 6",)


# --- a file that changes between its passes --------------------------------------------------


def changing_before_pass(monkeypatch, number: int, change) -> None:
    """Call ``change()`` as the pass ``number`` (1-based) starts."""
    real_in_chunks = files._Runner.in_chunks
    passes = []

    def in_chunks(self, records, size):
        passes.append(1)
        if len(passes) == number:
            change()
        return real_in_chunks(self, records, size)

    monkeypatch.setattr(files._Runner, "in_chunks", in_chunks)


MIXED = [
    {"type": "user", "id": 1, "name": "A", "email": "a@example.com"},
    {"type": "order", "id": 1, "user_id": 1, "product_id": 1, "quantity": 1},
    {"type": "user", "id": 2, "action": "delete"},
    {"type": "product", "id": 1, "name": "P", "price": 1},
]


def test_a_file_cut_before_the_deletions_pass_says_what_is_written(tmp_path, monkeypatch):
    seed(users=2, products=0)
    path = tmp_path / "records.ndjson"
    ndjson(path, MIXED)
    changing_before_pass(monkeypatch, 3, lambda: path.write_bytes(path.read_bytes()[:-60]))
    with pytest.raises(CommandError) as raised:
        run(path)
    assert str(raised.value) == (
        "records.ndjson changed while it was read (its size or modification time is not what "
        "it was); the users, products and orders of the earlier passes are written, the user "
        "deletions are not: run it again on a file that stays put."
    )
    assert rows(Order, "id") == [(1,)]
    assert rows(User, "id") == [(1,), (2,)]  # user 2's deletion did not run


def test_a_file_cut_at_a_line_end_between_passes_loses_no_order_silently(tmp_path, monkeypatch):
    path = tmp_path / "records.ndjson"
    lines = [
        {"type": "user", "id": 1, "name": "A", "email": "a@example.com"},
        {"type": "product", "id": 1, "name": "P", "price": 1},
        {"type": "order", "user_id": 1, "product_id": 1, "quantity": 1},
        {"type": "order", "user_id": 1, "product_id": 1, "quantity": 2},
    ]
    ndjson(path, lines)
    cut = path.read_bytes()[: -len(json.dumps(lines[-1])) - 1]  # the last line, whole
    changing_before_pass(monkeypatch, 2, lambda: path.write_bytes(cut))
    with pytest.raises(CommandError, match="records.ndjson changed while it was read"):
        run(path)
    assert rows(Order, "id") == []


def test_a_line_changed_in_place_between_passes_is_found(tmp_path, monkeypatch):
    """Same size, same modification time: the line itself shows the change."""
    seed(users=2, products=0)
    path = tmp_path / "records.ndjson"
    ndjson(path, MIXED)
    stamp = os.stat(path)

    def change():  # "delete" -> "update": the same bytes long, but no longer a deletion
        path.write_bytes(path.read_bytes().replace(b'"delete"', b'"update"'))
        os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))

    changing_before_pass(monkeypatch, 3, change)
    with pytest.raises(CommandError, match=r"\(line 3 is no longer the record the first pass"):
        run(path)
    assert rows(User, "id") == [(1,), (2,)]


def test_a_csv_changed_between_passes_is_found(tmp_path, monkeypatch):
    seed(users=4)
    path = tmp_path / "users.csv"
    path.write_text("id,name,email\n4,D,d@example.com\n2,,\n3,,\n")
    stamp = os.stat(path)

    def change():  # rows 3 and 4 become one (a quoted cell), the size and time kept
        path.write_bytes(path.read_bytes().replace(b"2,,\n3,,\n", b'2,"\n3,"\n'))
        os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))

    changing_before_pass(monkeypatch, 2, change)
    with pytest.raises(CommandError) as raised:
        run(path, "--action", "delete", "--chunk", 1)
    # Every row deletes: the first pass had nothing to write, the deletions pass found the
    # change only on reaching line 4, after the chunks of lines 2 and 3.
    assert str(raised.value) == (
        "users.csv changed while it was read (line 4 is no longer a record); the user "
        "deletions are not (the first chunks of the user deletions may be): run it again on a "
        "file that stays put."
    )
    assert rows(User, "id") == [(1,), (3,)]


@pytest.mark.parametrize(
    ("lines", "title", "where"),
    [
        (
            ['{"type": "user", "name": "Ann", "email": "ann@example.com"}'],
            "1 record in",
            "No record was skipped: {errors} is empty.",
        ),
        (
            ['{"type": "user", "name": "", "email": "ann@example.com"}'],
            "1 record in",
            "The skipped record is in {errors}.",
        ),
    ],
)
def test_the_summary_counts_one_record_in_the_singular_and_none_as_none(
    tmp_path, lines, title, where
):
    path = tmp_path / "one.ndjson"
    path.write_text("\n".join(lines) + "\n")
    errors = tmp_path / "skipped.ndjson"
    output = run(path, "--errors", errors)
    assert f"one.ndjson: {title} " in output
    assert where.format(errors=errors) in output
    assert "All 0" not in output
    assert "1 records" not in output
