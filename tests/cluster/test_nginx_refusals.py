"""nginx's own refusals answer in JSON, like the app's: a body over 512 MiB (told by its
Content-Length, before a byte of it is read) is a 413 that says what to do; with no gunicorn
answering, a 502 with Retry-After. The app's own errors pass through unchanged."""

import json
import socket

import httpx


def _raw(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def test_a_body_too_large_is_refused_in_json_before_it_is_read(cluster):
    status, headers, body = _raw(
        cluster.nginx_port,
        b"POST /ingest/?async=true HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Content-Type: application/x-ndjson\r\nContent-Length: 600000000\r\n\r\n",
    )
    assert status == 413
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body)["code"] == "too_large"


def test_no_gunicorn_answering_is_a_502_in_json_and_an_app_error_passes_through(cluster):
    names = ["web1", "web2"]
    saved = {name: cluster.processes.pop(name) for name in names}
    try:
        for process in saved.values():
            process.terminate()
            process.wait(timeout=30)
        answer = httpx.get(f"{cluster.url}/users/", timeout=10)
    finally:
        for number, port in enumerate(cluster.web_ports, start=1):
            cluster.start_web(number, port)
    assert answer.status_code == 502
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.headers["Retry-After"] == "5"
    assert answer.json()["code"] == "bad_gateway"
    missing = httpx.get(f"{cluster.url}/users/999999999/", timeout=10)
    assert missing.status_code == 404
    assert "detail" in missing.json()
