"""The products server hung (its processes SIGSTOPped: it answers nothing, refuses nothing, and
connections already open stay open). /healthz says so within PROBE_DEADLINE (3 s) of its probe,
and once the probe is that old, at once, however many ask: a probe waiting for a hung server
used to hold its gunicorn thread, and eight of them held the whole API."""

import os
import signal
import subprocess
import threading
import time

import httpx


def _server_processes(server) -> list[int]:
    postmaster = int((server.directory / "postmaster.pid").read_text().split()[0])
    children = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True, text=True)
    return [postmaster, *map(int, children.stdout.split())]


def _healthz_together(url: str, count: int) -> list[tuple[int, float, str]]:
    """``count`` GET /healthz at once: (status, seconds, body) of each."""
    answers: list[tuple[int, float, str]] = []

    def ask() -> None:
        started = time.monotonic()
        try:
            response = httpx.get(f"{url}/healthz", timeout=30)
            answers.append((response.status_code, time.monotonic() - started, response.text))
        except httpx.TimeoutException:
            answers.append((0, time.monotonic() - started, ""))

    threads = [threading.Thread(target=ask) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return answers


def test_a_hung_database_server_does_not_hang_the_api(cluster):
    assert httpx.get(f"{cluster.url}/healthz", timeout=10).status_code == 200
    stopped = _server_processes(cluster.servers["products"])
    later: list[tuple[int, float, str]] = []
    for pid in stopped:
        os.kill(pid, signal.SIGSTOP)
    try:
        first = _healthz_together(cluster.url, 8)  # these wait out the probe's deadline
        # The next ones are told at once, and the API beside them is not held up.
        asking = threading.Thread(target=lambda: later.extend(_healthz_together(cluster.url, 8)))
        asking.start()
        started = time.monotonic()
        users = httpx.get(f"{cluster.url}/users/?page_size=5", timeout=30)
        users_seconds = time.monotonic() - started
        asking.join(timeout=60)
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
    print(
        f"products hung: 8 x /healthz {sorted((s, round(t, 1)) for s, t, _ in first)}; 8 more "
        f"{sorted((s, round(t, 2)) for s, t, _ in later)}, with /users/ {users.status_code} in "
        f"{users_seconds * 1000:.0f} ms"
    )
    deadline = time.monotonic() + 30
    while httpx.get(f"{cluster.url}/healthz", timeout=30).status_code != 200:
        assert time.monotonic() < deadline, "products never came back"
        time.sleep(0.5)
    assert [status for status, _, _ in first] == [503] * 8
    assert max(seconds for _, seconds, _ in first) < 6
    assert all("no answer within 3 s" in text for _, _, text in first)
    assert [status for status, _, _ in later] == [503] * 8
    assert max(seconds for _, seconds, _ in later) < 1.0
    assert users.status_code == 200
    assert users_seconds < 1.0
