"""Repeated keys: a record that repeats one is skipped, a repeated top-level key refuses the
body, and the cheap check lets ordinary batches through without the exact one."""

import json
from types import SimpleNamespace

import pytest

from ingest import duplicates, formats
from ingest.checking import check_records
from ingest.duplicates import UnknownKeys
from ingest.records import BatchError, UserRecord, decode_batch
from ingest.resources import ORDERS, USERS


def _skipped(body: bytes):
    return [
        (index, reasons)
        for index, _, reasons in check_records(decode_batch(body).users, USERS).skipped
    ]


REPEATS = "The key 'name' appears more than once in this record; send each once."


@pytest.mark.parametrize(
    "record",
    [
        '{"name": "", "name": "Bob", "email": "b@example.com"}',
        '{"name": "Bob", "n\\u0061me": "", "email": "b@example.com"}',  # the same key, escaped
        '{"name" : "Bob", "email": "b@example.com", "name":"Eve"}',
    ],
)
def test_a_record_that_repeats_a_key_is_skipped(record):
    body = f'{{"users": [{{"name": "Ann", "email": "a@example.com"}}, {record}]}}'.encode()
    assert _skipped(body) == [(1, {"non_field_errors": [REPEATS]})]


def test_a_repeated_top_level_key_refuses_the_body():
    with pytest.raises(BatchError, match="The key 'users' appears more than once"):
        decode_batch(b'{"users": [], "users": [{"name": "A", "email": "a@example.com"}]}')


def test_repeats_inside_a_field_value_do_not_matter():
    body = b'{"users": [{"name": {"a": 1, "a": 2}, "email": "a@example.com"}]}'
    assert _skipped(body) == [(0, {"name": ["Not a valid string."]})]


@pytest.fixture
def exact_checks(monkeypatch):
    """Count the exact (slow) checks: Python's json parser run to list every key. The real
    parser still runs, so every outcome below is the real one."""
    calls = []
    real = json.loads

    def loads(*args, **kwargs):
        if kwargs.get("object_pairs_hook") is duplicates._Pairs:
            calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(duplicates, "json", SimpleNamespace(loads=loads))
    return calls


def test_ordinary_batches_never_take_the_exact_check(exact_checks):
    users = [{"id": i, "name": f"U:{i}", "email": f"u{i}@example.com"} for i in range(1, 501)]
    body = json.dumps({"users": users, "orders": [[1, 2], "x:y", None]}, indent=1).encode()

    batch = decode_batch(body)

    assert exact_checks == []
    assert [user.name for user in batch.users] == [f"U:{i}" for i in range(1, 501)]
    assert check_records(batch.users, USERS).skipped == []
    assert [index for index, _, _ in check_records(batch.orders, ORDERS).skipped] == [0, 1, 2]


def test_a_batch_with_a_repeated_key_takes_the_exact_check_once_and_skips_the_record(
    exact_checks,
):
    users = [{"name": f"U{i}", "email": f"u{i}@example.com"} for i in range(300)]
    body = json.dumps({"users": users}).encode()
    body = body.replace(b'{"name": "U7", ', b'{"name": "U7", "name": "", ', 1)

    assert _skipped(body) == [(7, {"non_field_errors": [REPEATS]})]
    assert exact_checks == [1]  # one pass over the whole body, not one per record


def test_ndjson_lines_take_the_exact_check_only_when_they_may_repeat_a_key(exact_checks):
    lines = [
        b'{"type": "user", "name": "A:1", "email": "a@example.com"}\n',
        b'{"type": "user", "name": "Bob", "email": "b@example.com", "name": ""}\n',
        b'{"type": "user", "name": "Cy", "email": "c@example.com"}\n',
    ]

    gathered = formats.read_ndjson(lines)

    assert exact_checks == [1]  # the second line only
    skipped = check_records(gathered.batch.users, USERS).skipped
    assert [(index, reasons) for index, _, reasons in skipped] == [
        (1, {"non_field_errors": [REPEATS]})
    ]
    assert [user.name for user in gathered.batch.users[::2]] == ["A:1", "Cy"]


def test_unknown_fields_take_the_exact_check_and_are_named(exact_checks):
    body = b'{"users": [{"name": "A", "email": "a@example.com", "nickname": "a:b"}]}'
    assert _skipped(body) == [(0, {"non_field_errors": ["Unknown keys: nickname."]})]
    assert exact_checks == [1]


def test_an_ndjson_line_with_another_types_field_is_skipped_naming_it():
    kind, record = formats.ndjson_record(
        b'{"type": "user", "name": "A", "email": "a@example.com", "price": 3}', 1
    )
    assert kind == "users"
    assert isinstance(record, UnknownKeys)
    assert record.keys == ["price"]
    kind, record = formats.ndjson_record(b'{"type": "user", "name": "A", "email": "a@x.io"}', 2)
    assert type(record) is UserRecord  # an ordinary line takes no detour
