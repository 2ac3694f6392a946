"""What an outside review of the client tried: files and commands a user gets wrong, state and
errors files that moved, an export into the wrong file. Each is a message and exit status 2 (or
a record reported as not sent), never a traceback, and nothing written twice or lost."""

import os
from pathlib import Path

import orjson
import pytest

from store_client import Client, ClientError
from store_client.pieces import Layout, cut
from tests import live
from tests.conftest import make_api_key
from tests.store_client.files import export_killed, stored, write_mixed
from tests.store_client.test_push_live import _run

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True, reset_sequences=True)


def _pieces(path: Path) -> list:
    layout = Layout("csv", "users") if path.suffix == ".csv" else Layout("json")
    return list(cut(path, layout, max_records=100, max_bytes=1 << 20))


def test_files_the_client_cannot_read_are_messages(tmp_path):
    huge = tmp_path / "huge.json"
    huge.write_bytes(
        b'{"users": [{"id": 123456789012345678901234567890, "name": "A", "email": "a@b.c"}]}'
    )
    (piece,) = _pieces(huge)
    assert [r.reason.split(" (")[0] for r in piece.rejected] == ["cannot be sent as JSON"]
    cut_off = tmp_path / "cut.json"
    cut_off.write_bytes(b'{"users": [{"id": 1, "name": "A"')
    with pytest.raises(ValueError, match="not valid JSON"):
        _pieces(cut_off)
    listed = tmp_path / "list.json"
    listed.write_bytes(b'[{"type": "user", "name": "A", "email": "a@b.c"}]')
    with pytest.raises(ValueError, match="must be a JSON object with the lists"):
        _pieces(listed)
    wide = tmp_path / "wide.csv"
    wide.write_bytes(b"name,email\n" + b"n" * 200_000 + b",a@b.c\n")
    (piece,) = [p for p in _pieces(wide) if p.body]
    assert piece.records == 1  # sent: the server says the name is too long


def test_commands_given_wrongly_stop_at_once_with_a_message(tmp_path):
    data = tmp_path / "data.ndjson"
    write_mixed(data, users=10)
    status, output = _run("127.0.0.1:9", "key", "push", str(data))
    assert status == 2
    assert "is not an http:// or https:// address" in output
    status, output = _run("http://127.0.0.1:9", "key", "push", str(tmp_path / "nope.ndjson"))
    assert status == 2
    assert "no such file" in output
    assert "Traceback" not in output
    status, output = _run("http://127.0.0.1:9", "key", "push", str(data), "--piece-bytes", "500")
    assert status == 2
    assert "must be at least 2048" in output


def test_moved_state_and_errors_files_and_other_options(tmp_path):
    data = tmp_path / "people.ndjson"
    data.write_bytes(
        b'{"type": "user", "name": "A", "email": "a@example.com"}\n'
        b'{"type": "user", "name": "", "email": "b@example.com"}\n'
    )
    state = Path(f"{data}.push-state.json")
    errors = Path(f"{data}.errors.ndjson")
    token = make_api_key("client-tests")
    with live.gunicorn() as (base, _server), Client(base, token) as client:
        client.push(data)
        assert len(stored("users", "id")) == 1
        # The state moved away: a new push, written again (the README says so).
        state.rename(tmp_path / "old-state.json")
        client.push(data)
        assert len(stored("users", "id")) == 2
        # A finished push does not stop a push of the same file with other options.
        summary = client.push(data, action="upsert")
        assert not summary.already_done
        # An unfinished push whose errors file was deleted: no NUL bytes, the rest listed.
        saved = orjson.loads(state.read_bytes())
        saved["finished_at"] = None
        first = min(saved["confirmed"], key=int)
        saved["confirmed"] = {first: saved["confirmed"][first]}
        state.write_bytes(orjson.dumps(saved))
        errors.unlink()
        client.push(data, action="upsert")
        assert b"\0" not in errors.read_bytes()


def test_a_file_changed_while_it_is_pushed_is_refused(tmp_path):
    data = tmp_path / "data.ndjson"
    write_mixed(data, users=2_000)
    token = make_api_key("client-tests")

    class Appends:
        def start(self, total_bytes, resumed):
            pass

        def advance(self, read_bytes, records):
            with data.open("ab") as file:
                file.write(b'{"type": "user", "name": "Late", "email": "late@example.com"}\n')
            os.utime(data, ns=(1, 1))

        def note(self, message):
            pass

        def stop(self):
            pass

    with (
        live.gunicorn() as (base, _server),
        Client(base, token) as client,
        pytest.raises(ClientError, match="was changed while it was being pushed"),
    ):
        client.push(data, piece_records=500, progress=Appends())
    assert ("Late",) not in stored("users", "name")


def test_an_export_does_not_resume_into_a_file_of_another_table(tmp_path):
    data = tmp_path / "data.ndjson"
    write_mixed(data, users=3_000)
    token = make_api_key("client-tests")
    out = tmp_path / "mix.ndjson"
    with live.gunicorn() as (base, _server), Client(base, token) as client:
        client.push(data)

        export_killed(client, "users", out)
        with pytest.raises(ClientError, match="holds an unfinished export of users"):
            client.export("orders", out)
        replaced = client.export("orders", out, force=True)
    lines = out.read_bytes().splitlines()
    assert replaced.resumed_from is None
    assert len(lines) == replaced.rows
    assert {orjson.loads(line)["type"] for line in lines} == {"order"}
