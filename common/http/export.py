"""Streaming a whole table out over HTTP: ``GET /users/export/`` and its siblings.

A list answers 50 records at a time; an export answers every record (or every one its filters
select) in one response, in id order, in a format that ``POST /ingest/`` takes back unchanged:

* **NDJSON** (``application/x-ndjson``, the default): one JSON object per line, its ``"type"``
  first, as an NDJSON ingest body has it::

      {"type":"user","id":1,"name":"Alice","email":"alice@example.com"}

* **CSV** (``text/csv``): a header row naming the columns, then a row per record, as a CSV
  ingest body of that type (``?type=users``) has it.

**Streaming.** Django's :class:`~django.http.StreamingHttpResponse` takes an iterator of byte
strings instead of a body: the server sends the headers, then each piece as the iterator yields
it (as an HTTP/1.1 chunk), so the response never exists whole. The rows come from a keyset walk
of the table (``common.data.streams``), a few thousand at a time, each chunk encoded and
yielded before the next is read: memory stays the same for ten rows or ten million. How fast the
rows are read follows how fast the client takes them: gunicorn writes each piece to the socket
before it asks for the next, and a socket whose client does not read blocks that write.

**Before and after the first byte.** Everything that can be refused is refused while the status
can still say so: the query string (400, ``common.http.query``), the filters (400), the format
(``?format=`` 400, ``Accept`` 406) and the first chunk, read before the response starts, so a
database that is down is the usual 503 naming it (``common.http.exception_handler``). Once the
headers are out, the status is spent. A database that fails later makes the iterator raise
:class:`ExportAborted`; gunicorn then closes the connection without the chunked body's last,
empty chunk, which every HTTP client reports as an incomplete response (curl: "transfer closed
with outstanding read data remaining", exit 18; Python's ``http.client``: ``IncompleteRead``).
Nothing is appended that could pass for data: an error line would be one more record to a
reader, and ``POST /ingest/`` would refuse the whole body over it.

**A client that goes away.** When a write to the socket fails, gunicorn stops iterating and
closes the iterator (WSGI's ``close()``): the generator below gets ``GeneratorExit`` at its
``yield``, reads nothing more, and Django's ``request_finished`` gives its database connection
back. Each export that ends is counted by how it ended (``export_streams_total`` at ``/metrics``,
``completed``, ``disconnected``, ``stalled`` or ``failed``) and logged with its rows and duration.

**Slow and stalled clients.** An export holds a thread for as long as its client reads; a
process streams at most ``EXPORT_MAX_STREAMS`` at once (one more is a 503 ``exports_busy``
before anything is read), and under gunicorn a chunk its client has not taken within
``EXPORT_SEND_TIMEOUT_SECONDS`` cuts the export off as ``stalled`` (``common.http.export_slots``).

**Errors are JSON.** DRF picks a renderer by ``?format=`` and ``Accept`` too, and would answer a
``text/csv`` client's 400 in CSV, or an unknown ``?format=`` with a 404. Here DRF's negotiation
always picks JSON (:class:`JsonForErrors`): it renders only the errors, and the export's own
format is chosen by :func:`export_format`.
"""

import csv
import functools
import io
import logging
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import starmap
from typing import Any, ClassVar

import msgspec
from django.conf import settings
from django.http import StreamingHttpResponse
from django.utils.cache import patch_vary_headers
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import NotAcceptable
from rest_framework.generics import GenericAPIView
from rest_framework.negotiation import BaseContentNegotiation

from common.data.streams import Row
from common.http.export_slots import ExportSlot, SendDeadline, bound_send_time
from common.http.json import ORJSONRenderer
from common.http.query import query_choice, strict_query
from common.http.schema import AutoSchema
from common.ops.metrics import EXPORT_ROWS, EXPORT_STREAMS

export_log = logging.getLogger("store.export")


@dataclass(frozen=True)
class ExportTable:
    """What one export holds: ``resource`` (``users``: the file name, the metrics' label),
    ``record`` (``user``: each NDJSON line's ``"type"``) and the ``fields`` of each row, the id
    first, as ``POST /ingest/`` names them."""

    resource: str
    record: str
    fields: tuple[str, ...]
    #: A row as the documentation shows it (``(1, "Alice", "alice@example.com")``).
    example: tuple[Any, ...] = ()


@dataclass(frozen=True)
class ExportFormat:
    name: str  # as ?format= names it
    media_type: str  # what an Accept header must allow
    content_type: str  # the response's Content-Type
    extension: str

    def encoder(self, table: ExportTable) -> "Encoder":
        return _ENCODERS[self.name](table)


@dataclass(frozen=True)
class Encoder:
    """The bytes before the first row, and the bytes of each chunk of rows."""

    header: bytes
    encode: Callable[[list[Row]], bytes]


NDJSON = ExportFormat(
    "ndjson", "application/x-ndjson; charset=utf-8", "application/x-ndjson", "ndjson"
)
CSV = ExportFormat("csv", "text/csv; charset=utf-8", "text/csv; charset=utf-8", "csv")
#: In order of preference: the first is the default, and wins when Accept allows both alike.
FORMATS = (NDJSON, CSV)


@functools.cache  # a struct type per table, made once
def _ndjson(table: ExportTable) -> Encoder:
    # msgspec encodes a whole chunk of structs in one call, several times faster than orjson
    # on a dict per row (the export would otherwise spend most of its time here); a tagged
    # struct puts "type" first, as ingest's examples do, and it writes decimals as strings
    # ("1000.00"), as the API shows prices.
    line = msgspec.defstruct(table.record, table.fields, tag_field="type", tag=table.record)
    encode_lines = msgspec.json.Encoder().encode_lines
    return Encoder(header=b"", encode=lambda rows: encode_lines(starmap(line, rows)))


def _csv_text(rows: Sequence[Sequence[Any]]) -> bytes:
    # The csv module's dialect "excel": commas, quotes doubled, a field quoted when it holds
    # a comma, a quote or a line break; rows end in CRLF (RFC 4180). str() of a price is its
    # exact decimal ("0.01").
    text = io.StringIO()
    csv.writer(text).writerows(rows)
    return text.getvalue().encode()


def _csv(table: ExportTable) -> Encoder:
    return Encoder(header=_csv_text([table.fields]), encode=_csv_text)


_ENCODERS = {"ndjson": _ndjson, "csv": _csv}


def export_format(request) -> ExportFormat:
    """The format a request asks for: ``?format=`` if given (another value is a 400 naming the
    allowed ones), else the one its ``Accept`` header prefers (none of them: a 406), else NDJSON.
    """
    named = query_choice(request, "format", tuple(f.name for f in FORMATS), default="")
    if named:
        return next(f for f in FORMATS if f.name == named)
    if not request.headers.get("Accept", "").strip():
        return FORMATS[0]
    # Django's own Accept parsing: q-values, wildcards, the most specific range first. Offering
    # "; charset=utf-8" lets an Accept of "text/csv" and of "text/csv; charset=utf-8" both match.
    preferred = request.get_preferred_type([f.media_type for f in FORMATS])
    if preferred is None:
        offered = " or ".join(f"{f.content_type.split(';')[0]} (?format={f.name})" for f in FORMATS)
        raise NotAcceptable(
            f"An export is {offered}; the Accept header {request.headers['Accept'][:100]!r} "
            "allows neither. Errors come as application/json."
        )
    return next(f for f in FORMATS if f.media_type == preferred)


class ExportAborted(RuntimeError):
    """An export failed after its first byte: the response is cut off (see the module
    docstring), not finished."""


class JsonForErrors(BaseContentNegotiation):
    """DRF's negotiation for an export: always its one renderer, JSON, which renders only the
    errors (the export's own format is :func:`export_format`'s)."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class ExportSchema(AutoSchema):
    """The schema of an export: its filters are documented although it is no list (which is
    what drf-spectacular looks for before it documents a view's filters)."""

    def get_filter_backends(self) -> list[Any]:
        return list(getattr(self.view, "filter_backends", []))


class ExportView(GenericAPIView):
    """``GET /<resource>/export/``: the rows of ``get_queryset()`` its ``filterset_class``
    selects, streamed in id order as NDJSON or CSV.

    Authentication, permissions and throttles are the API's defaults, as for the lists: reads
    stay open or need a key exactly as theirs do. A subclass sets ``table`` and
    ``filterset_class`` and reads its rows through its service's selectors (``read_rows``).
    """

    table: ClassVar[ExportTable]
    renderer_classes = [ORJSONRenderer]
    content_negotiation_class = JsonForErrors
    filter_backends = [DjangoFilterBackend]
    pagination_class = None
    schema = ExportSchema()

    def read_rows(self, queryset, *, chunk_size: int) -> Iterator[list[Row]]:
        """The rows of ``queryset`` (filtered) as chunks of ``table.fields``: a selector's."""
        raise NotImplementedError

    def initial(self, request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        strict_query(request, (*self.filterset_class.base_filters, "format"))

    def get(self, request, *args, **kwargs) -> StreamingHttpResponse:
        chosen = export_format(request)
        slot = ExportSlot(self.table.resource)  # over the cap: a 503 before any read
        try:
            chunks = self.read_rows(
                self.filter_queryset(self.get_queryset()), chunk_size=settings.EXPORT_CHUNK_ROWS
            )
            first = next(chunks, [])  # read now: a database that is down is still a 503
        except BaseException:
            slot.release()
            raise
        return export_response(request, self.table, chosen, first, chunks, slot)


def export_response(
    request,
    table: ExportTable,
    chosen: ExportFormat,
    first: list[Row],
    chunks: Iterator[list[Row]],
    slot: ExportSlot,
) -> StreamingHttpResponse:
    """The streamed response: ``first`` (already read) and then the rest of ``chunks``; the
    server's ``close()`` of the response gives ``slot`` back."""
    if request.method == "HEAD":  # the headers a GET would get, and no rows
        chunks.close()
        slot.release()
        body: Iterable[bytes] = ()
    else:
        deadline = bound_send_time(request)
        stream = _stream(
            table, chosen, first, chunks, getattr(request, "request_id", None), deadline
        )
        body = _Body(stream, slot)
    response = StreamingHttpResponse(body, content_type=chosen.content_type)
    response["Content-Disposition"] = f'attachment; filename="{table.resource}.{chosen.extension}"'
    # A proxy that buffers the whole response (nginx does by default) would undo the streaming.
    response["X-Accel-Buffering"] = "no"
    patch_vary_headers(response, ["Accept"])
    return response


class _Body:
    """The response's content: the stream, and the slot it holds until the server closes the
    response. Django calls the content's ``close()`` from the response's, which every WSGI
    server calls, even when it never asked for a chunk (a generator's own ``finally`` would
    not run then)."""

    def __init__(self, stream: Generator[bytes, None, None], slot: ExportSlot) -> None:
        self._stream = stream
        self._slot = slot

    def __iter__(self) -> Iterator[bytes]:
        return self._stream

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            self._slot.release()


def _stream(
    table: ExportTable,
    chosen: ExportFormat,
    first: list[Row],
    chunks: Iterator[list[Row]],
    request_id: str | None,
    deadline: SendDeadline | None,
) -> Generator[bytes, None, None]:
    encoder = chosen.encoder(table)
    started = time.perf_counter()
    sent = 0
    outcome, error = "failed", None
    handed = time.monotonic()
    try:
        if encoder.header:
            yield encoder.header
        chunk = first
        while chunk:
            handed = time.monotonic()
            yield encoder.encode(chunk)
            sent += len(chunk)  # the server took them: it asks for more only after writing
            chunk = next(chunks, None)
        outcome = "completed"
    except GeneratorExit:  # the server closed us: the client went away, or took too long
        stalled = deadline is not None and time.monotonic() - handed >= deadline.seconds
        outcome = "stalled" if stalled else "disconnected"
        if stalled:
            deadline.cut()
            error = f"a chunk waited more than {deadline.seconds:g} s for the client to take it"
        raise
    except Exception as exc:
        error = f"{type(exc).__name__}: {str(exc).strip()[:300]}"
        raise ExportAborted(
            f"The export of {table.resource} failed after {sent} rows ({error}); the response "
            "is cut off, without its last chunk."
        ) from exc
    finally:
        chunks.close()  # a reader stopped between chunks runs no more queries
        _ended(table, chosen, outcome, sent, time.perf_counter() - started, error, request_id)


def _ended(
    table: ExportTable,
    chosen: ExportFormat,
    outcome: str,
    rows: int,
    seconds: float,
    error: str | None,
    request_id: str | None,
) -> None:
    EXPORT_STREAMS.labels(table.resource, outcome).inc()
    EXPORT_ROWS.labels(table.resource).inc(rows)
    fields = {
        "event": "export",
        "resource": table.resource,
        "format": chosen.name,
        "outcome": outcome,
        "rows": rows,
        "duration_ms": round(seconds * 1000, 1),
        # The request's own log line was written when the headers went out; this one comes
        # after, outside the request's context, so it carries the id itself.
        "request_id": request_id,
        **({"error": error} if error else {}),
    }
    how = {
        "completed": "",
        "disconnected": ": the client went away",
        "stalled": f": {error}; the response was cut off",
        "failed": f": {error}; the response was cut off",
    }[outcome]
    level = {"failed": logging.ERROR, "stalled": logging.WARNING}.get(outcome, logging.INFO)
    export_log.log(
        level,
        "export of %s %s: %d rows in %.1f ms%s",
        table.resource,
        outcome,
        rows,
        seconds * 1000,
        how,
        extra={"fields": fields},
    )


def export_docs(table: ExportTable, filterset: type):
    """The OpenAPI description of an :class:`ExportView`'s ``get`` over ``table``, filtered by
    ``filterset`` (the list's; drf-spectacular documents each of its filters)."""
    fields = ",".join(table.fields)
    filters = ", ".join(f"`{name}`" for name in filterset.base_filters)
    return extend_schema(
        operation_id=f"{table.resource}_export",
        summary=f"Export every {table.record} (NDJSON or CSV, streamed)",
        description=(
            f"Every {table.record}, or those the filters select ({filters}; the same filters "
            f"as `GET /{table.resource}/`), in id order, in one streamed response that "
            f"`POST /ingest/` takes back as it is. NDJSON by default: one object per line, its "
            f'`"type"` first. CSV with `Accept: text/csv` or `?format=csv`: a header row '
            f"(`{fields}`), then one row per {table.record} (send it back with "
            f"`?type={table.resource}`). Prices are exact decimal strings.\n\n"
            "The table is read a few thousand rows at a time, each its own short query: an "
            "export is not a snapshot. Every row comes at most once, in id order; a row changed "
            "meanwhile may show its old or its new values, a row inserted meanwhile may or may "
            "not be there.\n\n"
            "Errors before the first byte have their status and a JSON body. A database that "
            "fails after it cuts the response off: the connection closes without the chunked "
            "body's last chunk, which an HTTP client reports as an incomplete transfer. So does a "
            "client that has not taken a chunk (5,000 rows) within "
            "`EXPORT_SEND_TIMEOUT_SECONDS` (30 s): the export is cut off, and its thread is free "
            "for others. A server process streams at most "
            "`EXPORT_MAX_STREAMS` exports at once (2): one more is a 503 `exports_busy`."
        ),
        parameters=[
            OpenApiParameter(
                "format",
                OpenApiTypes.STR,
                enum=[f.name for f in FORMATS],
                description="`ndjson` or `csv`; overrides the Accept header.",
            ),
        ],
        responses={
            (200, f.content_type.split(";")[0]): OpenApiResponse(
                response=OpenApiTypes.STR,
                description=f"The {table.resource}: NDJSON, one JSON object per line, or CSV, "
                "a header row and one row per record.",
                examples=[
                    OpenApiExample(
                        f.name.upper(),
                        value=_example(table, f),
                        media_type=f.content_type.split(";")[0],
                    )
                ],
            )
            for f in FORMATS
        }
        | {
            400: OpenApiResponse(
                description="An unknown or repeated query parameter (`ordering`, `page`…), an "
                "unknown `format` or a bad filter value; the message says which."
            ),
            406: OpenApiResponse(
                description="The Accept header allows neither application/x-ndjson nor text/csv."
            ),
            429: OpenApiResponse(description="Too many reads without a key from this address."),
            503: OpenApiResponse(
                description="The service's database is unavailable (the message names it), or "
                "this server process already streams as many exports as it may at once "
                '(`"code": "exports_busy"`, `EXPORT_MAX_STREAMS`); `Retry-After` says when to '
                "try again."
            ),
        },
    )


def _example(table: ExportTable, chosen: ExportFormat) -> str:
    """What an export of ``table.example`` alone looks like, made by the encoder itself."""
    encoder = chosen.encoder(table)
    return (encoder.header + encoder.encode([table.example])).decode()
