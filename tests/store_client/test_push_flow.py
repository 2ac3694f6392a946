"""How a push keeps the server busy and its own memory flat, with a transport that answers as
the test says: a new piece goes out as soon as any in flight is answered (not only the oldest),
pieces are still confirmed in their order, and a response is freed as soon as it is read."""

import gc
import threading
import weakref

import httpx
import orjson
import pytest

from store_client.http import Transport
from store_client.push import PushOptions, push
from store_client.state import PushState, StateError
from tests.store_client.files import write_users

LIMITS = {
    "max_records": 1000,
    "max_body_bytes": 1 << 20,
    "async_max_records": 1000,
    "async_max_body_bytes": 1 << 20,
    "idempotency_ttl_seconds": 86400,
}


class _Answer:
    def __init__(self, body: dict) -> None:
        self.body = body

    def json(self) -> dict:
        return self.body


class _Server:
    """Holds the answer to piece 0 until piece 2 has arrived (or 5 s have passed)."""

    def __init__(self) -> None:
        self.arrived: list[int] = []
        self.piece_two_came = threading.Event()
        self.held_until_piece_two: bool | None = None

    def send(self, method: str, path: str, **kwargs) -> _Answer:
        if path == "/ingest/limits/":
            return _Answer(LIMITS)
        number = int(kwargs["headers"]["Idempotency-Key"].rsplit("-", 1)[1])
        self.arrived.append(number)
        if number == 2:
            self.piece_two_came.set()
        if number == 0:
            self.held_until_piece_two = self.piece_two_came.wait(timeout=5)
        records = kwargs["content"].count(b"\n")
        counts = {"received": records, "inserted": records, "updated": 0, "deleted": 0}
        empty = {"received": 0, "inserted": 0, "updated": 0, "deleted": 0}
        return _Answer(
            {
                "users": {**counts, "skipped": 0, "skipped_groups": []},
                "products": {**empty, "skipped": 0, "skipped_groups": []},
                "orders": {**empty, "skipped": 0, "skipped_groups": []},
            }
        )


def test_a_piece_goes_out_as_soon_as_any_piece_in_flight_is_answered(tmp_path):
    data = write_users(tmp_path / "users.ndjson", 50)
    server = _Server()
    state_path = tmp_path / "state.json"
    summary = push(server, data, PushOptions(piece_records=10, state=state_path, parallel=2))
    # Piece 1 was answered while piece 0 was not: piece 2 went out then, not after piece 0.
    assert server.held_until_piece_two is True
    assert sorted(server.arrived) == [0, 1, 2, 3, 4]
    assert summary.counts["users"]["inserted"] == 50
    # Confirmed in their order (the last one is the end of the file: nothing to send).
    assert list(PushState.load(state_path).confirmed) == ["0", "1", "2", "3", "4", "5"]


def test_a_read_response_and_the_body_it_sent_are_freed_without_the_garbage_collector():
    # An httpx response and its stream refer to each other: left so, each piece's body stayed
    # in memory until the collector's next full pass (a dozen pieces, 46 MB, at the peak).
    transport = Transport("http://store.test", "token")
    transport.http = httpx.Client(
        base_url="http://store.test",
        transport=httpx.MockTransport(lambda request: httpx.Response(200, json={"ok": True})),
    )
    gc.disable()
    try:
        response = transport.send("POST", "/ingest/", content=b"x" * 1000)
        assert response.json() == {"ok": True}
        answer, request = weakref.ref(response), weakref.ref(response.request)
        del response
        assert answer() is None
        assert request() is None
    finally:
        gc.enable()
        transport.close()


def _finished_push(tmp_path) -> tuple:
    data = write_users(tmp_path / "users.ndjson", 50)
    state_path = tmp_path / "state.json"
    server = _Server()
    server.piece_two_came.set()
    push(server, data, PushOptions(piece_records=10, state=state_path))
    return data, state_path, server


def test_a_state_that_does_not_match_the_file_s_pieces_is_refused(tmp_path):
    # Edited by hand (here: other piece sizes, as if the crash came after piece 1), a state
    # would skip pieces as confirmed that hold other records than those sent.
    data, state_path, server = _finished_push(tmp_path)
    state = orjson.loads(state_path.read_bytes())
    state.update(finished_at=None, piece_records=5)
    state["confirmed"] = {n: state["confirmed"][n] for n in ("0", "1")}
    state_path.write_bytes(orjson.dumps(state))
    server.arrived.clear()
    with pytest.raises(StateError, match="is not the one it confirmed"):
        push(server, data, PushOptions(piece_records=5, state=state_path))
    assert server.arrived == []


def test_a_push_begun_by_the_earlier_client_is_not_resumed_with_other_pieces(tmp_path):
    data, state_path, server = _finished_push(tmp_path)
    state = orjson.loads(state_path.read_bytes())
    state.update(finished_at=None, version=1)
    for confirmed in state["confirmed"].values():  # version 1 kept neither
        del confirmed["records"], confirmed["crc32"]
    state_path.write_bytes(orjson.dumps(state))
    server.arrived.clear()
    with pytest.raises(StateError, match="earlier version of the client"):
        push(server, data, PushOptions(piece_records=10, state=state_path))
    assert server.arrived == []
