"""The shipped gunicorn worker: a process running an ingest leaves new connections to the others.

Real gunicorn, with the shipped config and two processes. The ingests are held still by the
products database's write lock (taken from outside, ``tests.live.products_write_lock``): users
chunks commit, then the ingest waits on its products chunk for as long as the test holds the
lock. Which process took a connection is read from the processes' own sockets (psutil), so
nothing here depends on timing.
"""

import http.client
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest

from common.ops import gunicorn_worker
from tests import live
from users_svc.models import User

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True)


def _batch(first_id: int) -> bytes:
    """50 users and 50 products, ids from ``first_id``."""
    ids = range(first_id, first_id + 50)
    return json.dumps(
        {
            "users": [{"id": i, "name": f"U{i}", "email": f"u{i}@example.com"} for i in ids],
            "products": [{"id": i, "name": f"P{i}", "price": "2.50"} for i in ids],
        }
    ).encode()


def _owner(server, client_port: int) -> int:
    """The pid of the gunicorn process holding the server side of the client's connection."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for worker in psutil.Process(server.pid).children():
            for connection in worker.net_connections(kind="tcp"):
                if connection.raddr and connection.raddr.port == client_port:
                    return worker.pid
        time.sleep(0.01)
    raise AssertionError(f"no gunicorn process holds the connection from port {client_port}")


def _read(base_url: str, server) -> int:
    """A read on a new connection, kept open until its owner is found; that owner's pid."""
    host, port = base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("GET", "/users/?page_size=5")
        response = connection.getresponse()
        response.read()
        assert response.status == 200
        return _owner(server, connection.sock.getsockname()[1])
    finally:
        connection.close()


class _Post(threading.Thread):
    """POST /ingest/ on its own connection; ``port`` is its local port once connected."""

    def __init__(
        self,
        base_url: str,
        token: str,
        body: bytes,
        connection: http.client.HTTPConnection | None = None,
    ) -> None:
        super().__init__(daemon=True)
        host, port = base_url.removeprefix("http://").split(":")
        self.connection = connection or http.client.HTTPConnection(host, int(port), timeout=60)
        if self.connection.sock is None:
            self.connection.connect()
        self.port = self.connection.sock.getsockname()[1]
        self.token, self.body = token, body
        self.status: int | None = None

    def run(self) -> None:
        self.connection.request(
            "POST",
            "/ingest/",
            self.body,
            {"Content-Type": "application/json", "Authorization": f"Token {self.token}"},
        )
        response = self.connection.getresponse()
        response.read()
        self.status = response.status
        self.connection.close()


def _both_serving(base_url: str, server) -> None:
    """Wait until each of the two workers has answered a read: gunicorn listens once the first
    is up, and a worker still loading the app is not one to leave connections to."""
    owners = set()
    for _ in range(200):
        owners.add(_read(base_url, server))
        if len(owners) == 2:
            return
    raise AssertionError("one of the two workers never answered")


def test_a_process_running_an_ingest_leaves_new_connections_to_the_other(api_token):
    with (
        live.gunicorn(workers=2, threads=4, shipped=True) as (base_url, server),
    ):
        _both_serving(base_url, server)
        with live.products_write_lock():
            post = _Post(base_url, api_token, _batch(1))
            post.start()
            live.wait_for(User.objects.exists, "the ingest never committed its users")
            busy = _owner(server, post.port)
            readers = {_read(base_url, server) for _ in range(20)}
            assert busy not in readers, "a read was accepted by the process running the ingest"
        post.join(timeout=30)
        assert post.status == 200
        # Done, the process takes connections again (each new one goes to either process).
        for _ in range(200):
            if _read(base_url, server) == busy:
                break
        else:
            raise AssertionError("the process never accepted again after its ingest")


def _kept_alive(base_url: str, server) -> tuple[http.client.HTTPConnection, int]:
    """A connection kept alive after one read, and the pid of the process holding it."""
    host, port = base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.request("GET", "/users/?page_size=5")
    response = connection.getresponse()
    response.read()
    assert response.status == 200
    assert not response.will_close
    return connection, _owner(server, connection.sock.getsockname()[1])


def test_a_kept_alive_connection_to_the_busy_process_closes_after_its_next_answer(api_token):
    with live.gunicorn(workers=2, threads=4, shipped=True) as (base_url, server):
        _both_serving(base_url, server)
        # Three kept-alive connections: two processes, so two of them share one.
        held = [_kept_alive(base_url, server) for _ in range(3)]
        owners = [owner for _, owner in held]
        busy = next(owner for owner in owners if owners.count(owner) > 1)
        ingesting_on, reading_on = [c for c, owner in held if owner == busy][:2]
        with live.products_write_lock():
            post = _Post(base_url, api_token, _batch(1), connection=ingesting_on)
            post.start()
            live.wait_for(User.objects.exists, "the ingest never committed its users")
            reading_on.request("GET", "/users/?page_size=5")
            response = reading_on.getresponse()
            response.read()
            assert response.status == 200
            assert response.getheader("Connection") == "close"
            assert response.will_close
            # The client's next request, on a new connection, goes to the other process.
            assert _read(base_url, server) != busy
        post.join(timeout=30)
        assert post.status == 200
        for connection, _ in held:
            connection.close()


def test_when_every_process_is_ingesting_the_last_one_still_accepts(api_token):
    with (
        live.gunicorn(workers=2, threads=4, shipped=True) as (base_url, server),
        live.products_write_lock(),
    ):
        _both_serving(base_url, server)
        first = _Post(base_url, api_token, _batch(1))
        first.start()
        live.wait_for(lambda: User.objects.count() == 50, "the first ingest never wrote its users")
        second = _Post(base_url, api_token, _batch(51))  # the other process takes it
        second.start()
        live.wait_for(lambda: User.objects.count() == 100, "the second ingest wrote no users")
        assert _owner(server, second.port) != _owner(server, first.port)
        # Both processes ingest: the second, last to begin, still takes new connections.
        assert _read(base_url, server) == _owner(server, second.port)
    for post in (first, second):
        post.join(timeout=30)
        assert post.status == 200


def test_without_shared_memory_a_busy_process_keeps_accepting(monkeypatch, caplog):
    def no_shared_memory(*args, **kwargs):
        raise OSError("[Errno 38] Function not implemented")

    monkeypatch.setattr(gunicorn_worker, "_slots", None)
    monkeypatch.setattr(gunicorn_worker.multiprocessing, "RawArray", no_shared_memory)
    gunicorn_worker._share_slots()
    assert gunicorn_worker._slots is None
    assert "will keep accepting connections" in caplog.text
    assert gunicorn_worker._claim_slot() is None

    worker = object.__new__(gunicorn_worker.IngestAwareWorker)
    worker._ingests, worker._ingests_lock = 0, threading.Lock()
    worker._yielding, worker._slot = False, None
    worker.began_ingest()
    assert worker._yielding is False
    worker.ended_ingest()
    assert worker._ingests == 0


def test_a_worker_the_master_let_go_is_not_one_to_leave_connections_to(api_token):
    # TTOU: the master stops one of its two workers; the one left must never stop accepting.
    with live.gunicorn(workers=2, threads=4, shipped=True) as (base_url, server):
        _both_serving(base_url, server)
        master = psutil.Process(server.pid)
        master.send_signal(signal.SIGTTOU)
        live.wait_for(lambda: len(master.children()) == 1, "the master kept both workers")
        with live.products_write_lock():
            post = _Post(base_url, api_token, _batch(1))
            post.start()
            live.wait_for(User.objects.exists, "the ingest never committed its users")
            host, port = base_url.removeprefix("http://").split(":")
            reader = http.client.HTTPConnection(host, int(port), timeout=10)
            reader.request("GET", "/users/?page_size=5")  # a timeout here: nobody accepted
            response = reader.getresponse()
            response.read()
            reader.close()
            assert response.status == 200
        post.join(timeout=30)
        assert post.status == 200


def test_a_zombie_or_a_garbled_stat_line_is_not_a_live_worker():
    assert gunicorn_worker._live_parent(b"4242 (gunicorn: worker [x]) S 4200 4200 0") == 4200
    assert gunicorn_worker._live_parent(b"4242 (a ) b) R 4200 1 2") == 4200
    assert gunicorn_worker._live_parent(b"4242 (gunicorn: worker) Z 4200 4200 0") is None
    assert gunicorn_worker._live_parent(b"") is None
    assert gunicorn_worker._live_parent(b"4242 (x) S") is None
    assert gunicorn_worker._live_parent(b"4242 (x) S notanumber") is None


def test_a_worker_that_dies_is_not_one_to_leave_connections_to():
    assert gunicorn_worker._is_sibling(0) is False
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        # A child of this process is not a sibling either: its parent is this process.
        assert gunicorn_worker._is_sibling(child.pid) is False
    finally:
        child.kill()
        child.wait()
    assert gunicorn_worker._is_sibling(child.pid) is False


def test_a_lock_left_held_makes_a_worker_a_plain_one_instead_of_waiting(monkeypatch, caplog):
    # A worker killed while it held the workers' lock leaves it held for good.
    slots, lock = multiprocessing.RawArray("i", 2 * gunicorn_worker.SLOTS), multiprocessing.Lock()
    slots[0], slots[1] = os.getppid(), 1  # a live process, "accepting", but not a sibling
    monkeypatch.setattr(gunicorn_worker, "_slots", slots)
    monkeypatch.setattr(gunicorn_worker, "_lock", lock)
    monkeypatch.setattr(gunicorn_worker, "LOCK_WAIT", 0.1)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    try:
        assert gunicorn_worker._claim_slot() is None
        worker = object.__new__(gunicorn_worker.IngestAwareWorker)
        worker._ingests, worker._ingests_lock = 0, threading.Lock()
        worker._yielding, worker._slot = False, 1
        worker.began_ingest()  # returns after LOCK_WAIT, without yielding
        assert worker._yielding is False
        assert "lock is held too long" in caplog.text
        # What the main loop does on every turn needs no lock: it must not wait for it.
        started = time.monotonic()
        gunicorn_worker._publish(1, True)
        assert gunicorn_worker._others_accept(2) is False  # the parent is no sibling of ours
        assert time.monotonic() - started < 0.05
    finally:
        release.set()
        holder.join()
