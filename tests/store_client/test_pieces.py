"""Cutting files into pieces: under both limits, the same cut every time, orders in their own
pass, lines that are not records kept out and reported with their line."""

import orjson
import pytest

from store_client.pieces import Layout, _ndjson_type, cut, file_format
from tests.store_client.files import write_users


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


def test_the_first_pieces_are_smaller(tmp_path):
    data = write_users(tmp_path / "u.ndjson", 300)
    ramped = cut(data, Layout("ndjson"), max_records=100, max_bytes=1 << 20, first_pieces=(10, 20))
    assert [p.records for p in ramped if p.body] == [10, 20, 100, 100, 70]
    plain = cut(data, Layout("ndjson"), max_records=100, max_bytes=1 << 20)
    assert [p.records for p in plain if p.body] == [100, 100, 100]


def test_lines_of_the_other_pass_are_parsed_when_their_pass_comes(tmp_path):
    # The first pass knows an order line by its first bytes and leaves it unparsed; the second
    # parses it: a line that only starts like an order is reported there, once, with its line.
    data = tmp_path / "d.ndjson"
    data.write_bytes(
        b'{"type":"order","id":1,"user_id":1,"product_id":1,"quantity":1}\r\n'
        b'{"type":"order","id":2,"user_id":1,\n'
        b'{"type":"order","id":3,"type":"user","name":"A","email":"a@b.c"}\n'
        b'{"type":"user","id":1,"name":"A","email":"a@b.c"}\n'
        b'{"type":"order","id":4,"note":"\xff"}\n'
        b'{"type": "order", "id": 5, "user_id": 1, "product_id": 1, "quantity": 1}\n'
    )
    pieces = list(cut(data, Layout("ndjson"), max_records=10, max_bytes=10_000))
    users, orders = [p for p in pieces if p.body]
    assert (list(users.origins["users"]), users.rejected) == ([4], [])
    assert list(orders.origins["orders"]) == [1, 6]
    assert orders.body.startswith(b'{"type":"order","id":1,"user_id":1,"product_id":1,"qua')
    assert b"\r" not in orders.body
    reasons = {r.where: r.reason for p in pieces for r in p.rejected}
    assert sorted(reasons) == [2, 3, 5]
    assert reasons[2].startswith("not a JSON record")
    assert reasons[3] == '"type" is given twice, with different values'
    assert reasons[5] == "not valid UTF-8"


SERVER_LINES = [
    b'{"type":"user","id":1,"name":"A","email":"a@b.c"}',
    b'{"type":"User ","name":"A","email":"a@b.c"}',
    b'{"type":"users","extra":{"deep":[1,2,{"x":null}]}}',
    b'{"type":"user","name":"\xc3\xa9"}',
    b'{"type":"user","name":"\xff"}',
    b'{"type":"user","unknown":"\xff"}',
    b'{"type":"user","name":"\\ud800"}',
    b'{"type":"user","n":1e999}',
    b'{"type":"user","n":NaN}',
    b'{"type":"user","id":123456789012345678901234567890}',
    b'{"type":"user"} trailing',
    b'{"type":"user"',
    b'["a list"]',
    b'"a string"',
    b"not json",
    b'{"type":5}',
    b'{"type":null}',
    b'{"kind":"user"}',
    b'{"type":"order","type":"user"}',
    b"{" * 2000 + b"}" * 2000,
    b'{"type":"product","name":"P","price":1e999}',
    b'{"type":"product","name":"P","price":1e309}',
    b'{"type":"user","id":1e400}',
    b'{"type":"user","action":1e999}',
    b'{"type":"user","id":' + b"9" * 4301 + b"}",
    b'{"type":"user","junk":' + b"9" * 4301 + b"}",
    b'{"type":"user","name":"' + b"9" * 4301 + b'"}',
    b'{"type":"user","junk":[' + b"1," * 3000 + b"1]}",
]


@pytest.mark.parametrize("raw", SERVER_LINES, ids=range(len(SERVER_LINES)))
def test_a_line_is_sent_exactly_when_the_server_s_parser_takes_it(raw):
    # A line the client sends but the server's parser refuses makes the server refuse the
    # whole request; one the client keeps out but the server takes is lost for nothing.
    from ingest.formats import LineError, ndjson_record

    try:
        server_kind = ndjson_record(raw, 2)[0]
    except LineError:
        server_kind = None
    kind, reason = _ndjson_type(raw)
    assert (kind if reason is None else None) == server_kind


def test_the_client_decodes_the_fields_the_server_decodes():
    # The client is a package of its own (it never imports the server's code), so the struct
    # is written twice; this keeps the two the same.
    from ingest import formats
    from store_client import pieces

    assert pieces._Line.__struct_fields__ == formats._Line.__struct_fields__
