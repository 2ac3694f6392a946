"""Slow clients: 50 connections trickling a byte a second, their headers or their bodies, for
30 s. nginx reads every request whole before gunicorn sees it, so they cost gunicorn nothing:
/healthz and /users/ answer as fast as when they are not there. Straight at gunicorn, the same
trickle takes every thread of the process (the contrast at the end)."""

import socket
import statistics
import threading
import time

import httpx

CONNECTIONS = 50
SECONDS = 30


def _trickle(port: int, kind: str, stop: threading.Event) -> None:
    """One slow client: a byte a second, reconnecting when it is cut off."""
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                if kind == "body":
                    sock.sendall(
                        b"POST /ingest/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        b"Content-Type: application/x-ndjson\r\nContent-Length: 100000\r\n\r\n"
                    )
                    payload = b"{" * 100000
                else:
                    payload = b"GET /users/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"a" * 1000
                for byte in payload:
                    if stop.wait(1):
                        return
                    sock.sendall(bytes([byte]))
        except OSError:
            stop.wait(0.5)  # cut off (a 408 and a close): come again


def _latencies(url: str, seconds: float) -> dict[str, list[float]]:
    seen: dict[str, list[float]] = {"/healthz": [], "/users/?page_size=50": []}
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=url, timeout=10) as client:
        while time.monotonic() < deadline:
            for path, times in seen.items():
                started = time.perf_counter()
                try:
                    status = client.get(path).status_code
                except httpx.TimeoutException:
                    status = None
                times.append(time.perf_counter() - started if status == 200 else 10.0)
            time.sleep(0.05)
    return seen


def _under_trickle(port: int, url: str, seconds: float) -> dict[str, list[float]]:
    stop = threading.Event()
    threads = [
        threading.Thread(target=_trickle, args=(port, kind, stop), daemon=True)
        for kind in ["headers", "body"] * (CONNECTIONS // 2)
    ]
    for thread in threads:
        thread.start()
    time.sleep(2)  # every connection open and sending
    try:
        return _latencies(url, seconds)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)


def _p99(times: list[float]) -> float:
    return statistics.quantiles(times, n=100)[98]


def test_fifty_slow_clients_cost_the_app_nothing_behind_nginx(cluster):
    _latencies(cluster.url, 2)  # every process has its connections open
    idle = _latencies(cluster.url, 5)
    busy = _under_trickle(cluster.nginx_port, cluster.url, SECONDS)
    for path, times in busy.items():
        print(
            f"{path}: idle p50 {statistics.median(idle[path]) * 1000:.1f} ms, "
            f"p99 {_p99(idle[path]) * 1000:.1f} ms; under {CONNECTIONS} slow clients "
            f"p50 {statistics.median(times) * 1000:.1f} ms, p99 {_p99(times) * 1000:.1f} ms, "
            f"max {max(times) * 1000:.1f} ms ({len(times)} requests)"
        )
        assert _p99(times) < 0.1, (path, sorted(times)[-5:])
    # The same clients straight at one gunicorn process: its four threads are taken.
    direct = f"http://127.0.0.1:{cluster.web_ports[0]}"
    starved = _under_trickle(cluster.web_ports[0], direct, 5)
    print(f"straight at gunicorn: /healthz max {max(starved['/healthz']):.1f} s")
    assert max(starved["/healthz"]) >= 1.0
