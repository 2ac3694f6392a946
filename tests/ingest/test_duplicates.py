"""Repeated keys: a record that repeats one is skipped, a repeated top-level key refuses the
body, and the cheap check lets ordinary batches through without the exact one."""

import json

import pytest

from ingest import duplicates
from ingest.pipeline import USERS, check_records
from ingest.records import BatchError, decode_batch


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


def test_ordinary_batches_never_take_the_exact_check(monkeypatch):
    calls = []
    monkeypatch.setattr(duplicates.json, "loads", lambda *a, **k: calls.append(1))
    users = [{"id": i, "name": f"U:{i}", "email": f"u{i}@example.com"} for i in range(500)]
    body = json.dumps({"users": users, "orders": [[1, 2], "x:y", None]}, indent=1).encode()
    batch = decode_batch(body)
    assert len(batch.users) == 500
    assert calls == []


def test_unknown_fields_take_the_exact_check_and_pass_it():
    body = b'{"users": [{"name": "A", "email": "a@example.com", "nickname": "a:b"}]}'
    assert _skipped(body) == []
