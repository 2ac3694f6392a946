"""Bodies are read whole or refused (common.http.body): a cut-off upload, a broken chunked body,
a compressed body or bytes that are not UTF-8 are a 4xx with a message, and nothing is written
in any database; an Idempotency-Key sent with such a body stays free for the real retry."""

import json
import socket
from io import BytesIO, StringIO

import pytest
from django.core.management import call_command

from ingest.models import IdempotencyKey, IngestJob
from orders_svc.models import Order
from products_svc.models import Product
from tests import live
from users_svc.models import User

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True, reset_sequences=True)

NDJSON_LINES = [
    {"type": "user", "id": n, "name": f"U{n}", "email": f"u{n}@example.com"} for n in range(1, 4)
]
NDJSON = b"".join(json.dumps(line).encode() + b"\n" for line in NDJSON_LINES) * 20
CSV = b"id,name,email\n" + b"".join(b"%d,U%d,u%d@example.com\n" % (n, n, n) for n in range(1, 61))
BATCH = json.dumps(
    {"users": [{"id": n, "name": f"U{n}", "email": f"u{n}@example.com"} for n in range(1, 61)]}
).encode()
USER = json.dumps({"name": "Alice", "email": "alice@example.com"}).encode()

# (path, content type, whole body): each is cut after its first 189 bytes.
CUT_OFF = [
    ("/ingest/", "application/x-ndjson", NDJSON),
    ("/ingest/?type=users", "text/csv", CSV),
    ("/ingest/", "application/json", BATCH),
    ("/ingest/?async=true", "application/json", BATCH),
    ("/ingest/?async=true", "application/x-ndjson", NDJSON),
    ("/users/", "application/json", USER + b" " * 300),
]


def nothing_written() -> bool:
    return (User.objects.count(), Product.objects.count(), Order.objects.count()) == (0, 0, 0)


def send_cut_off(api, path: str, content_type: str, body: bytes, cut: int = 189, **headers):
    """What a server hands on when a client declares ``len(body)`` bytes and hangs up after
    ``cut``: a shorter input under the full Content-Length."""
    return api.generic(
        "POST",
        path,
        b"",
        content_type=content_type,
        CONTENT_LENGTH=str(len(body)),
        **{"wsgi.input": BytesIO(body[:cut])},
        **headers,
    )


@pytest.mark.parametrize(("path", "content_type", "body"), CUT_OFF)
def test_a_cut_off_body_is_a_400_and_nothing_is_written(api, path, content_type, body):
    response = send_cut_off(api, path, content_type, body)
    assert response.status_code == 400, response.content
    detail = response.json()["detail"]
    assert f"ended after 189 of the {len(body)} bytes" in detail
    assert "cut off" in detail
    assert nothing_written()
    assert IngestJob.objects.count() == 0


def test_the_idempotency_key_of_a_cut_off_upload_stays_free_for_the_retry(api):
    key = {"HTTP_IDEMPOTENCY_KEY": "cut-off-1"}
    whole_lines = NDJSON.index(b"\n", NDJSON.index(b"\n") + 1) + 1  # two whole lines arrive
    response = send_cut_off(api, "/ingest/", "application/x-ndjson", NDJSON, whole_lines, **key)
    assert response.status_code == 400
    assert IdempotencyKey.objects.count() == 0
    retry = api.generic("POST", "/ingest/", NDJSON, content_type="application/x-ndjson", **key)
    assert retry.status_code == 200, retry.content
    assert retry.json()["users"]["inserted"] == 3  # each line 20 times: 3 new, the rest repeats
    assert User.objects.count() == 3


@pytest.mark.parametrize(
    ("path", "content_type", "body"),
    [("/ingest/", "application/json", BATCH), ("/users/", "application/json", USER)],
)
def test_a_compressed_body_is_a_415(api, path, content_type, body):
    response = api.generic(
        "POST", path, body, content_type=content_type, HTTP_CONTENT_ENCODING="gzip"
    )
    assert response.status_code == 415
    assert "Content-Encoding 'gzip' is not supported" in response.json()["detail"]
    assert nothing_written()


def test_identity_encoding_is_a_body_as_sent(api):
    response = api.generic(
        "POST", "/users/", USER, content_type="application/json", HTTP_CONTENT_ENCODING="identity"
    )
    assert response.status_code == 201


@pytest.mark.parametrize("query", ["", "?async=true"])
def test_invalid_utf8_inside_an_ndjson_line_is_a_400_naming_the_line(api, query):
    body = json.dumps(NDJSON_LINES[0]).encode() + b'\n{"type": "user", "name": "\xff\xfe"}\n'
    response = api.generic("POST", f"/ingest/{query}", body, content_type="application/x-ndjson")
    assert response.status_code == 400, response.content
    assert response.json()["detail"] == "Line 2: not valid UTF-8 (a string holds the byte 0xff)."
    assert nothing_written()
    assert IngestJob.objects.count() == 0


@pytest.mark.parametrize("query", ["", "?async=true"])
def test_invalid_utf8_inside_a_json_record_is_a_400(api, query):
    body = b'{"users": [{"name": "Zo\xc3\xab", "email": "z@example.com"}, {"name": "\xff"}]}'
    response = api.generic("POST", f"/ingest/{query}", body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert "not valid UTF-8 (byte 65)" in response.json()["detail"]
    assert nothing_written()
    assert IngestJob.objects.count() == 0


def test_ingest_file_skips_and_reports_a_line_that_is_not_utf8(tmp_path):
    path = tmp_path / "records.ndjson"
    path.write_bytes(
        json.dumps(NDJSON_LINES[0]).encode()
        + b'\n{"type": "user", "id": 5, "name": "\xc3\x28", "email": "x@example.com"}\n'
        + json.dumps(NDJSON_LINES[1]).encode()
        + b"\n"
    )
    errors = tmp_path / "skipped.ndjson"
    out = StringIO()
    call_command("ingest_file", str(path), "--no-progress", "--errors", str(errors), stdout=out)
    assert "1 line was not a record and skipped." in out.getvalue()
    assert "line 2 (line): line: not valid UTF-8" in out.getvalue()
    assert sorted(User.objects.values_list("id", flat=True)) == [1, 2]
    [skipped] = [json.loads(line) for line in errors.read_text().splitlines()]
    assert skipped["line"] == 2


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("?dry_run=true&dry_run=false", "dry_run"),
        ("?atomic=true&atomic=false", "atomic"),
        ("?dryrun=true", "dryrun"),
        ("?dry_run=true&verbose=1", "verbose"),
    ],
)
def test_repeated_and_unknown_query_parameters_are_refused(api, query, named):
    response = api.generic("POST", f"/ingest/{query}", BATCH, content_type="application/json")
    assert response.status_code == 400, response.content
    assert named in response.json()
    assert nothing_written()


# --- against a real gunicorn, with a raw socket -------------------------------------------------


def raw_request(base_url: str, head: bytes, body: bytes, *, hang_up: bool = True) -> tuple:
    """Send ``head`` + ``body`` on a socket, half-close it (a client that hung up), and return
    ``(status, JSON body)``."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head + body)
        if hang_up:
            sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    status_line, _, rest = received.partition(b"\r\n")
    payload = rest.split(b"\r\n\r\n", 1)[1]
    if b"Transfer-Encoding: chunked" in rest.split(b"\r\n\r\n", 1)[0]:
        payload = payload.split(b"\r\n", 1)[1].rsplit(b"\r\n0\r\n", 1)[0]
    return int(status_line.split()[1]), json.loads(payload)


def _head(path: str, content_type: str, token: str, framing: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Authorization: Token {token}\r\nConnection: close\r\n{framing}\r\n"
    ).encode()


@pytest.fixture(scope="module")
def server():
    with live.gunicorn() as (base_url, _):
        yield base_url


@pytest.mark.parametrize(
    ("path", "content_type", "body"),
    [CUT_OFF[0], CUT_OFF[1], CUT_OFF[3], CUT_OFF[5]],
)
def test_gunicorn_a_client_that_hangs_up_mid_body(server, api_token, path, content_type, body):
    head = _head(path, content_type, api_token, f"Content-Length: {len(body)}\r\n")
    status, payload = raw_request(server, head, body[:189])
    assert status == 400, payload
    assert "cut off" in payload["detail"]
    assert nothing_written()


@pytest.mark.parametrize(
    ("chunks", "why"),
    [
        (b"zz\r\n" + NDJSON[:50] + b"\r\n0\r\n\r\n", "InvalidChunkSize"),
        (b"%x\r\n" % len(NDJSON) + NDJSON + b"\r\n", "no terminator"),
        (b"%x\r\n" % len(NDJSON) + NDJSON + b"XX5\r\n", "ChunkMissingTerminator"),
    ],
    ids=["bad-size", "no-last-chunk", "bad-chunk-end"],
)
@pytest.mark.parametrize("path", ["/ingest/", "/users/"])
def test_gunicorn_a_badly_framed_chunked_body(server, api_token, chunks, why, path):
    head = _head(path, "application/x-ndjson", api_token, "Transfer-Encoding: chunked\r\n")
    if path == "/users/":
        head = head.replace(b"application/x-ndjson", b"application/json")
    status, payload = raw_request(server, head, chunks)
    assert status == 400, payload
    assert "cut off or badly framed" in payload["detail"]
    assert nothing_written()


def test_gunicorn_a_chunked_json_body_reaches_a_single_record_endpoint(server, api_token):
    head = _head("/users/", "application/json", api_token, "Transfer-Encoding: chunked\r\n")
    status, payload = raw_request(server, head, b"%x\r\n%s\r\n0\r\n\r\n" % (len(USER), USER))
    assert status == 201, payload
    assert payload["name"] == "Alice"
    assert User.objects.count() == 1


@pytest.mark.parametrize("form", ["multipart", "urlencoded"])
def test_a_form_body_above_the_limit_is_a_413_before_it_is_read(api, settings, form):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100_000
    if form == "multipart":
        boundary = "b0undary"
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\nAlice\r\n'
                f'--{boundary}\r\nContent-Disposition: form-data; name="email"\r\n\r\na@example.com'
                f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="pad"; filename="p.bin"'
                f"\r\nContent-Type: application/octet-stream\r\n\r\n"
            ).encode()
            + b"x" * 300_000
            + f"\r\n--{boundary}--\r\n".encode()
        )
        content_type = f"multipart/form-data; boundary={boundary}"
    else:
        body = b"name=Alice&email=a%40example.com&pad=" + b"x" * 300_000
        content_type = "application/x-www-form-urlencoded"
    response = api.generic("POST", "/users/", body, content_type=content_type)
    assert response.status_code == 413, response.content
    assert "limit of 100000 bytes (API_MAX_BODY_BYTES)" in response.json()["detail"]
    assert nothing_written()


def test_a_json_body_declared_above_the_limit_is_a_413_before_it_is_read(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100_000
    response = send_cut_off(api, "/users/", "application/json", USER + b" " * 200_000, cut=0)
    assert response.status_code == 413, response.content  # not "cut off": never read
    assert "limit of 100000 bytes (API_MAX_BODY_BYTES)" in response.json()["detail"]
    assert nothing_written()


@pytest.mark.parametrize("coding", ["gzip, chunked", "deflate", "x-custom"])
def test_a_transfer_coding_other_than_chunked_is_a_415(api, coding):
    response = api.generic(
        "POST", "/ingest/", BATCH, content_type="application/json", HTTP_TRANSFER_ENCODING=coding
    )
    assert response.status_code == 415, response.content
    assert "Transfer-Encoding" in response.json()["detail"]
    assert nothing_written()


def test_a_query_string_of_many_unknown_names_gets_a_small_answer(api):
    query = "&".join(f"p{n}" for n in range(900))
    response = api.generic("POST", f"/ingest/?{query}", BATCH, content_type="application/json")
    assert response.status_code == 400
    assert len(response.content) < 2_000
    assert response.json()["non_field_errors"] == [
        "900 unknown query parameters; the first 5 are named."
    ]
    assert nothing_written()


@pytest.mark.parametrize("path", ["/users/", "/ingest/jobs/4bC44bb5--daA0d8F90aFB35C4904da7F/"])
def test_a_content_length_header_that_is_not_a_number_is_a_400(api, path):
    """Schemathesis' case: a header named ``CONTENT_LENGTH`` reaches ``request.headers`` as
    Content-Length, and django-prometheus read it with ``int()``: a 500."""
    response = api.get(path, HTTP_CONTENT_LENGTH="E:gP")
    assert response.status_code == 400, response.content
    assert response.json()["detail"] == "Content-Length is not a number."
