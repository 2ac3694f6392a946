"""``store_client push`` against a real gunicorn: whole files, a client killed and run again, a
server killed and restarted, throttled pushes, a changed file, a refused key."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from store_client import Client
from tests import live
from tests.conftest import make_api_key
from tests.store_client.files import assert_holds, stored, write_mixed

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True, reset_sequences=True)

USERS = 100_000  # and as many products and orders: 300,000 records


def _cli(base: str, token: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "store_client", "--url", base, "--token", token, "--quiet", *args],
        cwd=live.ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def _run(base: str, token: str, *args: str, timeout: float = 300) -> tuple[int, str]:
    process = _cli(base, token, *args)
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out.decode() + err.decode()


def _confirmed(state: Path) -> int:
    try:
        return len(orjson.loads(state.read_bytes())["confirmed"])
    except (FileNotFoundError, orjson.JSONDecodeError):
        return 0


def _errors(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_a_300000_record_file_whose_orders_come_first_is_pushed_whole(tmp_path):
    data = tmp_path / "data.ndjson"
    expected = write_mixed(data, users=USERS)
    token = make_api_key("client-tests")
    with live.gunicorn() as (base, _server), Client(base, token) as client:
        summary = client.push(data, piece_records=40_000)
    assert_holds(expected)
    assert summary.counts["users"]["inserted"] == USERS - USERS // 1000
    assert summary.counts["orders"]["skipped"] == USERS // 1000  # their users were skipped
    assert summary.counts["unknown"]["not_sent"] == 2
    errors = _errors(Path(summary.errors_file))
    assert len(errors) == 2 * (USERS // 1000) + 2
    bad_user = next(e for e in errors if e["type"] == "user")
    assert bad_user["line"] == USERS + 2 + 1000  # its line in the file, 1-based
    assert bad_user["id"] == 1000
    assert "email" in bad_user["reasons"]
    assert {e["line"] for e in errors if e["type"] is None} == {USERS + 1, USERS + 2}
    assert any(e["line"] == USERS + 2 and "customer" in str(e["reasons"]) for e in errors)


def test_records_without_ids_are_written_once_each(tmp_path):
    data = tmp_path / "no-ids.ndjson"
    expected = write_mixed(data, users=USERS, with_ids=False)
    token = make_api_key("client-tests")
    with live.gunicorn() as (base, _server), Client(base, token) as client:
        client.push(data, piece_records=25_000)
        again = client.push(data, piece_records=25_000)  # finished: nothing is sent again
    assert again.already_done
    assert again.sent == 0
    assert_holds(expected)


def test_a_client_killed_three_times_ends_as_one_clean_run(tmp_path):
    data = tmp_path / "no-ids.ndjson"
    expected = write_mixed(data, users=USERS, with_ids=False)
    state = Path(f"{data}.push-state.json")
    token = make_api_key("client-tests")
    chance = random.Random(13)
    with live.gunicorn() as (base, _server):
        for _kill in range(3):
            client = _cli(base, token, "push", str(data), "--piece-records", "10000")
            # A random moment: after some pieces were confirmed, then some ms into the next.
            wanted = _confirmed(state) + chance.randint(1, 4)
            deadline = time.monotonic() + 60
            while _confirmed(state) < wanted and client.poll() is None:
                assert time.monotonic() < deadline, "the push made no progress"
                time.sleep(0.01)
            time.sleep(chance.uniform(0, 0.15))
            assert client.poll() is None, client.communicate()
            os.killpg(client.pid, signal.SIGKILL)
            client.wait(timeout=30)
        assert _confirmed(state) < 30, "the kills came before the end"
        status, output = _run(base, token, "push", str(data), "--piece-records", "10000")
    assert status == 0, output
    assert_holds(expected)
    errors = _errors(Path(f"{data}.errors.ndjson"))
    assert len(errors) == USERS // 1000 + 2, "each skipped record listed once"


def test_a_file_changed_after_a_crash_is_refused(tmp_path):
    data = tmp_path / "data.ndjson"
    write_mixed(data, users=2_000)
    token = make_api_key("client-tests")
    with live.gunicorn() as (base, _server):
        with Client(base, token) as client:
            client.push(data, piece_records=500)
        state = Path(f"{data}.push-state.json")
        saved = orjson.loads(state.read_bytes())
        saved["finished_at"] = None  # as if the client had died before the end
        state.write_bytes(orjson.dumps(saved))
        before = stored("users", "id")
        with data.open("ab") as file:
            file.write(b'{"type": "user", "name": "Late", "email": "late@example.com"}\n')
        status, output = _run(base, token, "push", str(data), "--piece-records", "500")
    assert status == 2
    assert "changed since the push" in output
    assert "SHA-256" in output
    assert stored("users", "id") == before


def test_a_server_killed_and_restarted_mid_push_loses_and_repeats_nothing(tmp_path):
    data = tmp_path / "no-ids.ndjson"
    expected = write_mixed(data, users=USERS, with_ids=False)
    state = Path(f"{data}.push-state.json")
    token = make_api_key("client-tests")
    port = live.free_port()
    # A request that died with its server keeps its key 2 s here (15 minutes by default).
    env = {"INGEST_IDEMPOTENCY_LOCK_TIMEOUT": "2"}
    client = None
    with live.gunicorn(port=port, **env) as (base, server):
        client = _cli(base, token, "push", str(data), "--piece-records", "10000")
        deadline = time.monotonic() + 60
        while _confirmed(state) < 3:
            assert time.monotonic() < deadline, "the push made no progress"
            assert client.poll() is None, client.communicate()
            time.sleep(0.01)
        time.sleep(0.05)  # in the middle of a piece, most likely
        live.stop(server, signal.SIGKILL)
    time.sleep(1)  # the client meets refused connections meanwhile
    with live.gunicorn(port=port, **env):
        out, err = client.communicate(timeout=300)
    assert client.returncode == 0, out.decode() + err.decode()
    assert_holds(expected)


def test_a_throttled_push_waits_as_told_and_completes(tmp_path):
    data = tmp_path / "data.ndjson"
    expected = write_mixed(data, users=3_000)
    token = make_api_key("client-tests")
    retries = []
    with (
        live.gunicorn(API_INGEST_RATE="3/second") as (base, _server),
        Client(base, token, on_retry=retries.append) as client,
    ):
        summary = client.push(data, piece_records=500)
    assert summary.pieces >= 18
    assert any("429" in message for message in retries), retries
    assert_holds(expected)


def test_a_refused_key_stops_at_once_with_the_servers_message(tmp_path):
    data = tmp_path / "data.ndjson"
    write_mixed(data, users=10)
    with live.gunicorn() as (base, _server):
        started = time.monotonic()
        status, output = _run(base, "not-a-key", "push", str(data))
    assert status == 2
    assert "401" in output
    assert "Invalid token" in output
    assert time.monotonic() - started < 30, "no retries on a client error"
    assert stored("users", "id") == []


def test_pieces_as_background_jobs_and_the_jobs_commands(tmp_path):
    data = tmp_path / "data.ndjson"
    expected = write_mixed(data, users=3_000)
    token = make_api_key("client-tests")
    with live.gunicorn() as (base, _server):
        status, output = _run(base, token, "push", str(data), "--async", "--piece-records", "4000")
        assert status == 0, output
        assert_holds(expected)
        with Client(base, token) as client:
            jobs = client.jobs()
        assert len(jobs) == 3  # users and products in two pieces, then the orders
        assert {job["state"] for job in jobs} == {"succeeded"}
        status, output = _run(base, token, "jobs")
        assert status == 0
        assert all(job["id"][:8] in output for job in jobs)
        status, output = _run(base, token, "jobs", "--watch", jobs[0]["id"])
        assert status == 0, output
        assert '"state": "succeeded"' in output
