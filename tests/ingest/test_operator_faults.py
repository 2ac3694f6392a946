"""What an operator's commands do when a file or a database lets them down (the third outside
review): a message and an exit status, never a traceback or an all-clear that is not true."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.test_faults import database_down
from users_svc.models import User

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True, reset_sequences=True)

USER_LINES = [
    json.dumps({"type": "user", "id": n, "name": f"U{n}", "email": f"u{n}@example.com"})
    for n in range(1, 4)
]


def ingest_file(path, *args) -> str:
    out = StringIO()
    call_command("ingest_file", str(path), "--no-progress", *args, stdout=out)
    return out.getvalue()


def test_a_file_that_changes_between_the_two_passes_is_a_message(tmp_path, monkeypatch):
    from ingest import files

    path = tmp_path / "records.ndjson"
    order = json.dumps({"type": "order", "user_id": 1, "product_id": 1, "quantity": 1})
    path.write_text("\n".join([*USER_LINES, order]) + "\n")
    real_in_chunks = files._Runner.in_chunks
    passes = []

    def in_chunks(self, records, size):
        passes.append(1)
        if len(passes) == 2:  # between the passes, someone truncates the file mid-line
            path.write_bytes(path.read_bytes()[: -len(order) // 2 - 1])
        return real_in_chunks(self, records, size)

    monkeypatch.setattr(files._Runner, "in_chunks", in_chunks)
    with pytest.raises(CommandError, match="records.ndjson changed while it was read"):
        ingest_file(path)
    assert User.objects.count() == 3  # the first pass is written, and the message says so


def test_a_directory_is_not_called_a_missing_file(tmp_path):
    with pytest.raises(CommandError, match="is not a regular file"):
        ingest_file(tmp_path)


def test_a_byte_order_mark_before_the_first_line_is_not_a_lost_record(tmp_path, api):
    path = tmp_path / "records.ndjson"
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(USER_LINES).encode() + b"\n")
    assert "1 line was not a record" not in ingest_file(path)
    assert User.objects.count() == 3
    body = b"\xef\xbb\xbf" + json.dumps({"users": [{"name": "A", "email": "a@x.io"}]}).encode()
    response = api.generic("POST", "/ingest/", body, content_type="application/json")
    assert response.status_code == 200, response.content
    assert response.json()["users"]["inserted"] == 1


def test_ingest_file_fails_when_a_database_did_not_take_its_records(tmp_path):
    path = tmp_path / "users.ndjson"
    path.write_text("\n".join(USER_LINES) + "\n")
    with database_down("users"), pytest.raises(CommandError, match="3 valid records were not"):
        ingest_file(path)


def test_insert_data_says_when_a_database_did_not_take_its_records():
    out = StringIO()
    with database_down("products"):
        call_command("insert_data", stdout=out)
    assert "valid records were not written because a database failed" in out.getvalue()
    assert "Nothing new was inserted" not in out.getvalue()


def test_reap_ingest_jobs_reports_a_database_that_is_down_and_does_the_rest():
    out = StringIO()
    with database_down("products"), pytest.raises(CommandError, match="was unavailable"):
        call_command("reap_ingest_jobs", stdout=out)
    assert "stale job(s) retried or failed." in out.getvalue()  # the steps it could do
