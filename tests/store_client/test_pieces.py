"""Cutting files into pieces: under both limits, the same cut every time, orders in their own
pass, lines that are not records kept out and reported with their line."""

import orjson
import pytest

from store_client.pieces import Layout, cut, file_format


def _lines(piece) -> list[dict]:
    return [orjson.loads(line) for line in piece.body.splitlines()]


def test_pieces_stay_under_both_limits_and_are_the_same_every_time(tmp_path):
    data = tmp_path / "d.ndjson"
    with data.open("wb") as file:
        for i in range(1, 1001):
            file.write(
                orjson.dumps(
                    {"type": "order", "id": i, "user_id": i, "product_id": 1, "quantity": 1}
                )
                + b"\n"
            )
            file.write(
                orjson.dumps({"type": "user", "id": i, "name": "n" * (i % 50), "email": "a@b.c"})
                + b"\n"
            )
    first = list(cut(data, Layout("ndjson"), max_records=70, max_bytes=3000))
    again = list(cut(data, Layout("ndjson"), max_records=70, max_bytes=3000))
    assert [p.body for p in first] == [p.body for p in again]
    assert all(p.records <= 70 and len(p.body) <= 3000 for p in first)
    kinds = [{line["type"] for line in _lines(p)} for p in first if p.body]
    users_pieces = [k for k in kinds if k == {"user"}]
    assert kinds[: len(users_pieces)] == users_pieces, "users before any order"
    assert sum(p.records for p in first) == 2000
    # Each record's line in the file: users are on even lines.
    assert list(first[0].origins["users"][:3]) == [2, 4, 6]
    assert sum(p.read_bytes for p in first) == 2 * data.stat().st_size


def test_deletions_send_orders_first(tmp_path):
    data = tmp_path / "d.ndjson"
    data.write_bytes(b'{"type":"user","id":1}\n{"type":"order","id":1}\n')
    pieces = list(cut(data, Layout("ndjson", deletions=True), max_records=10, max_bytes=1000))
    assert [list(p.origins) for p in pieces if p.body] == [["orders"], ["users"]]


def test_lines_that_are_not_records_are_reported_once_with_their_line(tmp_path):
    data = tmp_path / "d.ndjson"
    data.write_bytes(
        b'{"type":"user","id":1,"name":"A","email":"a@b.c"}\n'
        b"not json\n"
        b"\n"
        b'["a list"]\n'
        b'{"type":"User ","id":2,"name":"B","email":"b@b.c"}\n'
        b'{"type":"user","name":"\xff"}\n'
        b'{"kind":"user"}\n'
    )
    pieces = list(cut(data, Layout("ndjson"), max_records=10, max_bytes=10_000))
    rejected = [(r.where, r.reason.split(":")[0]) for p in pieces for r in p.rejected]
    assert [where for where, _ in rejected] == [2, 4, 6, 7]
    assert [list(p.origins["users"]) for p in pieces if p.body] == [[1, 5]]


def test_csv_rows_keep_their_first_line_and_quoted_line_breaks(tmp_path):
    data = tmp_path / "p.csv"
    data.write_bytes(b'id,name,price\n1,"two\nlines",9.50\n2,plain,1.00\n3,\xff,2.00\n')
    layout = file_format(data, "products")
    (piece,) = [p for p in cut(data, layout, max_records=10, max_bytes=10_000) if p.body]
    assert piece.body.startswith(b"id,name,price\r\n")
    assert {kind: list(lines) for kind, lines in piece.origins.items()} == {"products": [2, 4]}
    assert [(r.where, r.reason) for r in piece.rejected] == [(5, "not valid UTF-8")]


def test_a_csv_file_needs_its_type():
    with pytest.raises(ValueError, match="--type"):
        file_format(__import__("pathlib").Path("x.csv"), None)
