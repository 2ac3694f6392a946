"""Request bodies are read whole or refused: the framing checks every endpoint shares.

A body arrives in one of two framings. With ``Content-Length: N`` the client promises N bytes;
with ``Transfer-Encoding: chunked`` it sends pieces, each with its size, and a last piece of
size zero that says "this is the end". Either way a client can stop short: hang up after 189 of
5,189 bytes, or break off a chunked body, or send a chunk size that is not a number. A server
that hands such a body on as if it were complete writes whatever arrived, three whole NDJSON
lines say, and answers 200 to a request that never finished.

:class:`BodyFramingMiddleware` puts a :class:`CheckedBody` between the server's input and
everything that reads it (Django's ``request.body`` and ``request.POST``, DRF's parsers, the
ingest view's streaming reads). It counts the bytes against the declared length and turns
every way a body can end badly into one error, :class:`BodyIncomplete`: a **400** that says
what happened, raised *while reading*, so before anything is written (every writer here reads
its whole body first). The same middleware answers, before any view runs:

* **415** for a ``Content-Encoding`` other than ``identity``, or a ``Transfer-Encoding`` other
  than ``chunked``: the service does not decompress, and a gzip body read as JSON would fail
  far from its cause;
* **411** for a chunked body on a server that cannot de-chunk it (``manage.py runserver``);
  gunicorn de-chunks and marks the end of the input (``wsgi.input_terminated``).

A chunked body meant for an endpoint that takes small JSON bodies is read here, at most
``DATA_UPLOAD_MAX_MEMORY_SIZE`` bytes (413 above), so that it reaches the view like any other;
views that stream their bodies themselves (``streams_body = True``, the ingest endpoint) read
it as it comes through :func:`body_reader`, under their own limits.
"""

from django.conf import settings
from django.core.exceptions import BadRequest, RequestDataTooBig
from django.http import HttpResponse
from rest_framework.exceptions import ParseError

from common.http.json import dumps


class BodyIncomplete(ParseError, BadRequest):
    """The body ended before its declared length or its chunked terminator, or its framing is
    broken (a 400; DRF and Django both know it as a bad request)."""

    default_detail = "The request body is incomplete or badly framed."
    default_code = "body_incomplete"


_RESEND = " Nothing was written; send the whole body again."


class CheckedBody:
    """A request body stream that refuses to end early (see the module docstring).

    ``declared`` is the Content-Length, or None for a chunked body (whose reader, the server's,
    knows its end and raises on bad framing).
    """

    def __init__(self, source, declared: int | None) -> None:
        self._source = source
        self.declared = declared
        self.seen = 0

    def read(self, size: int | None = -1, /) -> bytes:
        wanted = self._wanted(size)
        data = self._call(self._source.read, wanted)
        return self._count(data, wanted, complete_line=False)

    def readline(self, size: int | None = -1, /) -> bytes:
        wanted = self._wanted(size)
        data = self._call(self._source.readline, wanted)
        return self._count(data, wanted, complete_line=data.endswith(b"\n"))

    def __iter__(self):
        return iter(self.readline, b"")

    def close(self) -> None:
        pass  # the server owns its input

    def _wanted(self, size: int | None) -> int:
        if self.declared is None:
            return -1 if size is None else size
        remaining = self.declared - self.seen
        return remaining if size is None or size < 0 else min(size, remaining)

    def _call(self, read, size: int) -> bytes:
        if size == 0:
            return b""
        try:
            return read(size)
        except Exception as exc:  # the server's reader: a broken chunk, a reset connection
            raise BodyIncomplete(
                f"The request body could not be read ({_describe(exc)}): it is cut off or "
                f"badly framed.{_RESEND}"
            ) from None

    def _count(self, data: bytes, wanted: int, *, complete_line: bool) -> bytes:
        self.seen += len(data)
        # Servers fill every read unless the input has ended (gunicorn and wsgiref loop until
        # they have the bytes), so a short read before the declared length is the end.
        if (
            self.declared is not None
            and self.seen < self.declared
            and len(data) < wanted
            and not complete_line
        ):
            raise BodyIncomplete(
                f"The request body ended after {self.seen} of the {self.declared} bytes its "
                f"Content-Length announced: the upload was cut off.{_RESEND}"
            )
        return data


def _describe(exc: Exception) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def body_reader(request) -> CheckedBody | None:
    """The checked body of a Django or DRF request, for views that read it as a stream."""
    django_request = getattr(request, "_request", request)
    return getattr(django_request, "checked_body", None)


def is_chunked(meta) -> bool:
    return "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower()


class BodyFramingMiddleware:
    """Check every request's body framing (see the module docstring). Put it before anything
    that may read a body (CSRF reads forms)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        meta = request.META
        encoding = meta.get("HTTP_CONTENT_ENCODING", "").strip().lower()
        if encoding not in ("", "identity"):
            return _refusal(
                415,
                "unsupported_media_type",
                f"Content-Encoding {encoding[:40]!r} is not supported: send the body "
                "uncompressed (Content-Encoding: identity, or none).",
            )
        codings = [c.strip() for c in meta.get("HTTP_TRANSFER_ENCODING", "").lower().split(",")]
        if any(coding not in ("", "chunked", "identity") for coding in codings):
            return _refusal(
                415,
                "unsupported_media_type",
                f"Transfer-Encoding {meta['HTTP_TRANSFER_ENCODING'][:40]!r} is not supported: "
                "send the body as it is, with a Content-Length or chunked.",
            )
        if is_chunked(meta):
            if not meta.get("wsgi.input_terminated"):
                return _refusal(
                    411,
                    "length_required",
                    "This server cannot read a chunked body: send the body with a "
                    "Content-Length header (or serve the app with gunicorn, which can).",
                )
            request.checked_body = CheckedBody(meta["wsgi.input"], None)
            request._stream = request.checked_body
        else:
            try:
                declared = int(meta.get("CONTENT_LENGTH") or 0)
                # A "Content_Length" header reaches request.headers as Content-Length too
                # (servers drop such names; the test client does not), where django-prometheus
                # reads it with int().
                int(meta.get("HTTP_CONTENT_LENGTH") or 0)
            except ValueError:
                return _refusal(400, "parse_error", "Content-Length is not a number.")
            if declared > 0:
                request.checked_body = CheckedBody(request._stream, declared)
                request._stream = request.checked_body
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        """A chunked body for a view that does not stream: read it now (bounded), so that the
        view and DRF see it like a body with a Content-Length."""
        view_class = getattr(view_func, "cls", None) or getattr(view_func, "view_class", None)
        if not is_chunked(request.META) or getattr(view_class, "streams_body", False):
            return None
        try:
            body = request.body  # at most DATA_UPLOAD_MAX_MEMORY_SIZE + 1 bytes
        except RequestDataTooBig:
            return _refusal(
                413,
                "payload_too_large",
                f"Request body is larger than the limit of {settings.DATA_UPLOAD_MAX_MEMORY_SIZE}"
                " bytes (API_MAX_BODY_BYTES).",
            )
        except BodyIncomplete as exc:
            return _refusal(400, exc.default_code, str(exc.detail))
        request.META["CONTENT_LENGTH"] = str(len(body))  # what DRF looks at
        return None


def _refusal(status: int, code: str, detail: str) -> HttpResponse:
    body = dumps({"detail": detail, "code": code})  # as the API's own errors are written
    return HttpResponse(body, status=status, content_type="application/json")
