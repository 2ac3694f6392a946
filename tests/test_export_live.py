"""Exports against a real gunicorn: a client that goes away stops the reading, and a database
that fails after the first byte cuts the response off where a client can tell.

The users table is made far larger than every socket buffer between the server and the test
(the server's send buffer grows to 4 MB at most, a client's receive buffer to 6 MB, or a few KB
where the test shrinks it), so that the server is still in the middle of the export whatever the
machine's speed: it can only have sent what those buffers hold.
"""

import http.client
import re
import socket
import struct
import time
from contextlib import closing, contextmanager
from pathlib import Path

import pytest
from django.db import connections

from tests import live
from users_svc.models import User

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True, reset_sequences=True)

USERS = 80_000
NAME_PADDING = "n" * 250  # about 320 bytes a line: 25 MB of NDJSON


def _fill_users() -> None:
    """``USERS`` users written straight into the table (one statement)."""
    with connections["users"].cursor() as cursor:
        cursor.execute(
            "INSERT INTO users (id, name, email) "
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %s) "
            "SELECT i, CAST(%s AS TEXT) || CAST(i AS TEXT), "
            "'user' || CAST(i AS TEXT) || '@example.com' FROM n",
            [USERS, NAME_PADDING],
        )
    assert User.objects.count() == USERS


@contextmanager
def _slow_reader(base: str, path: str):
    """A raw HTTP/1.1 GET of ``path`` by a client with a receive buffer of a few KB; yields
    (socket, the bytes read so far: the headers and at least 64 KB of the body)."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(60)
    with closing(sock):
        sock.connect((host, int(port)))
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        received = b""
        while len(received) < 64 * 1024:
            piece = sock.recv(16 * 1024)
            assert piece, "the server closed the connection early"
            received += piece
        assert received.startswith(b"HTTP/1.1 200 OK\r\n"), received[:200]
        assert b"\r\nTransfer-Encoding: chunked\r\n" in received
        yield sock, received


def _metric(base: str, name: str, **labels: str) -> float:
    with closing(http.client.HTTPConnection(base.removeprefix("http://"), timeout=30)) as conn:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    match = re.search(rf"^{name}\{{{re.escape(wanted)}\}} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def _eventually(check, what: str) -> None:
    """Until ``check()`` holds (bounded: what it waits for follows a write the server makes at
    once, or right after)."""
    deadline = time.monotonic() + 60
    while not check():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.1)


def _wait_for_metric(base: str, name: str, value: float, **labels: str) -> None:
    _eventually(lambda: _metric(base, name, **labels) == value, f"{name}{labels} == {value}")


def _worker_pid(server) -> int:
    """The one worker of ``server`` (the master listens before it has forked it)."""
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children")
    _eventually(lambda: children.read_text().split(), "gunicorn's worker started")
    (worker,) = children.read_text().split()
    return int(worker)


def _open_files(pid: int) -> set[str]:
    found = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            found.add(str(fd.readlink()))
        except OSError:  # closed meanwhile
            continue
    return found


def _users_sessions() -> list[tuple[str, str]]:
    """PostgreSQL: (state, query) of every other session on the users database."""
    with connections["users"].cursor() as cursor:
        cursor.execute(
            "SELECT state, query FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchall()


def test_a_client_that_disconnects_mid_stream_stops_the_export():
    _fill_users()
    users_db = connections["users"].settings_dict["NAME"]
    sqlite = connections["users"].vendor == "sqlite"
    with live.gunicorn(workers=1, threads=4) as (base, server):
        worker = _worker_pid(server)
        with _slow_reader(base, "/users/export/") as (sock, received):
            if sqlite:  # mid-stream: the export holds its database file open
                assert users_db in _open_files(worker)
            # Close with unread bytes (and no lingering): the kernel answers the server's next
            # segment with a reset, and the server's next write fails.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        _wait_for_metric(
            base, "export_streams_total", 1.0, outcome="disconnected", resource="users"
        )
        sent = _metric(base, "export_rows_total", resource="users")
        # What the socket buffers took (the write that failed is not counted): at most a few
        # chunks, far from the whole table.
        assert sent < USERS // 2, "the export stopped at the first write after the disconnect"
        assert _metric(base, "export_streams_total", outcome="completed", resource="users") == 0
        # Its database connection is given back (request_finished, right after the count):
        # closed (SQLite), or idle outside any transaction (PostgreSQL keeps it open for the
        # next request, DB_CONN_MAX_AGE).
        if sqlite:
            _eventually(lambda: users_db not in _open_files(worker), "users.db closed")
        else:
            _eventually(
                lambda: all(state == "idle" for state, _query in _users_sessions()),
                "the worker's users connection idle",
            )
        # The worker goes on serving: a whole export of a filtered set.
        status, _headers, _body = live.request("GET", f"{base}/users/?name=user")
        assert status == 200
        with closing(http.client.HTTPConnection(base.removeprefix("http://"), timeout=60)) as conn:
            conn.request("GET", "/users/export/?name_contains=example&format=csv")
            response = conn.getresponse()
            assert response.status == 200
            assert response.read() == b"id,name,email\r\n"
        _wait_for_metric(base, "export_streams_total", 1.0, outcome="completed", resource="users")


def _rename_table(old: str, new: str) -> None:
    with connections["users"].cursor() as cursor:
        cursor.execute(f"ALTER TABLE {old} RENAME TO {new}")


def _kill_users_sessions() -> None:
    with connections["users"].cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.mark.parametrize("fault", ["table_gone", "connection_killed"])
def test_a_database_failure_after_the_first_byte_cuts_the_response_off(fault):
    if fault == "connection_killed" and connections["users"].vendor != "postgresql":
        pytest.skip("a PostgreSQL server ending the connection")
    _fill_users()
    with live.gunicorn(workers=1, threads=4) as (base, _server):
        # A client that stops reading: the server fills the socket buffers (10 MB at most
        # here, a third of the export) and waits, mid-export, while the database fails.
        with closing(
            http.client.HTTPConnection(base.removeprefix("http://"), timeout=60)
        ) as connection:
            connection.request("GET", "/users/export/")
            response = connection.getresponse()
            assert response.status == 200
            head = response.read(64 * 1024)
            try:
                if fault == "table_gone":
                    _rename_table("users", "users_away")
                else:
                    _kill_users_sessions()
                with pytest.raises(http.client.IncompleteRead) as cut:
                    response.read()  # the rest: whatever was sent, then no last chunk
            finally:
                if fault == "table_gone":
                    _rename_table("users_away", "users")
        received = head + cut.value.partial
        lines = received.split(b"\n")
        assert lines[-1] == b"", "each piece the server sent ends with a whole line"
        assert 0 < len(lines) - 1 < USERS
        assert lines[0].startswith(b'{"type":"user","id":1,')
        _wait_for_metric(base, "export_streams_total", 1.0, outcome="failed", resource="users")
        # The next request finds the table again (or a new connection), as any other would.
        status, _headers, body = live.request("GET", f"{base}/users/?page_size=1&ordering=-id")
        assert (status, body["results"][0]["id"]) == (200, USERS)


def _export_status(base: str, path: str) -> tuple[socket.socket, bytes]:
    """A GET of ``path`` by a client that reads its status line and then nothing more (its
    receive buffer a few KB); (the socket, the first bytes read). Bounded: a server with no
    thread left for it is a timeout here, not a hang."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect((host, int(port)))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    received = b""
    while b"\r\n\r\n" not in received:
        piece = sock.recv(4096)
        assert piece, "the server closed the connection before its headers"
        received += piece
    head, _, rest = received.partition(b"\r\n\r\n")
    if length := re.search(rb"\r\nContent-Length: (\d+)", head):  # an error: its whole body
        while len(rest) < int(length.group(1)):
            rest += sock.recv(4096)
    return sock, head + b"\r\n\r\n" + rest


def _timed_get(url: str) -> tuple[int, float]:
    started = time.monotonic()
    status, _headers, _body = live.request("GET", url, timeout=10)
    return status, time.monotonic() - started


def test_exports_whose_clients_stop_reading_leave_the_other_threads_free():
    """Clients that open exports and read nothing more: a process streams two at most (the
    others are told to come back), lists and /healthz keep answering at once, and each
    stalled export is cut off once its chunk has waited EXPORT_SEND_TIMEOUT_SECONDS."""
    _fill_users()
    with live.gunicorn(workers=1, threads=4, EXPORT_SEND_TIMEOUT_SECONDS="3") as (base, _):
        opened = [_export_status(base, "/users/export/") for _ in range(5)]
        try:
            statuses = [first.split(b" ", 2)[1] for _sock, first in opened]
            assert statuses == [b"200", b"200", b"503", b"503", b"503"]
            refused = opened[2][1]
            assert b"\r\nRetry-After: 5\r\n" in refused
            assert b'"code":"exports_busy"' in refused
            # Two threads hold stalled exports; the other two serve everyone else.
            for path in ("/healthz", "/users/?page_size=50", "/users/1/"):
                status, seconds = _timed_get(f"{base}{path}")
                assert (status, seconds < 2) == (200, True), (path, status, seconds)
            # Each stalled export is cut off within the send deadline of its blocked chunk, and
            # the cut holds up nobody: gunicorn's own close of such a connection would hold its
            # main thread (which accepts connections) for 2 s each.
            slowest = 0.0
            deadline = time.monotonic() + 60
            while _metric(base, "export_streams_total", outcome="stalled", resource="users") < 2:
                assert time.monotonic() < deadline, "the stalled exports were never cut off"
                _status, seconds = _timed_get(f"{base}/healthz")
                slowest = max(slowest, seconds)
                time.sleep(0.05)
            for _ in range(10):  # and just after
                slowest = max(slowest, _timed_get(f"{base}/healthz")[1])
            assert slowest < 1.0, f"/healthz took {slowest:.2f} s while exports were cut off"
            for sock, first in opened[:2]:
                received = first + _drain(sock)
                assert not received.endswith(b"\r\n0\r\n\r\n"), "no last chunk: cut off"
                assert len(received) < 25_000_000
        finally:
            for sock, _first in opened:
                sock.close()
        # Their slots are back: a whole export again.
        with closing(http.client.HTTPConnection(base.removeprefix("http://"), timeout=60)) as conn:
            conn.request("GET", "/users/export/")
            response = conn.getresponse()
            assert response.status == 200
            assert response.read().count(b"\n") == USERS
        assert _metric(base, "export_streams_total", outcome="completed", resource="users") == 1


def _drain(sock: socket.socket) -> bytes:
    """Everything the server still sends before it closes the connection (bounded by the
    socket's timeout)."""
    received = b""
    while piece := sock.recv(1 << 16):
        received += piece
    return received
