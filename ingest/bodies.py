"""Reading an ingest request's body: the first stage of ``POST /ingest/``.

The body is read from the request a block at a time, under the limits of its mode (a request,
or a background job with bigger ones), hashed as it comes when an ``Idempotency-Key`` needs a
fingerprint, and decoded by its media type:

* JSON (``application/json``): joined, then decoded into a batch (``ingest.records``); for a
  job only counted, since the worker decodes it again when it runs;
* NDJSON and CSV: decoded a line at a time (``ingest.formats``), never held whole, unless a job
  must store it.

Every way a body can be unusable is an API error here, before anything is written: cut off or
badly framed (``common.http.body``: 400), too big (413), not a batch (400, naming the line for
NDJSON and CSV), an unknown media type (415).
"""

from dataclasses import dataclass

from django.conf import settings
from rest_framework.exceptions import ParseError, UnsupportedMediaType, ValidationError

from common.exceptions import PayloadTooLarge
from common.http.body import body_reader
from ingest import formats
from ingest.records import Batch, BatchError, count_records, decode_batch


@dataclass(frozen=True)
class Limits:
    """How much one request may carry, and the settings that say so (named in the 413s)."""

    body: int
    records: int
    body_setting: str
    records_setting: str

    def check_records(self, total: int) -> None:
        if total > self.records:
            raise PayloadTooLarge(
                f"The batch has {total} records; the limit is {self.records} per request "
                f"({self.records_setting}). Split the batch."
            )


def limits_for(*, in_background: bool) -> Limits:
    if in_background:
        return Limits(
            settings.INGEST_ASYNC_MAX_BODY_BYTES,
            settings.INGEST_ASYNC_MAX_RECORDS,
            "INGEST_ASYNC_MAX_BODY_BYTES",
            "INGEST_ASYNC_MAX_RECORDS",
        )
    return Limits(
        settings.INGEST_MAX_BODY_BYTES,
        settings.INGEST_MAX_RECORDS,
        "INGEST_MAX_BODY_BYTES",
        "INGEST_MAX_RECORDS",
    )


@dataclass
class Received:
    """A body that was read whole and is a batch."""

    media_type: str
    total: int  # records
    batch: Batch | None  # None for a job (the worker decodes the stored body)
    lines: formats.LineNumberedBatch | None = None  # NDJSON/CSV: each record's line
    body: bytes = b""  # kept only for a job, which stores it
    record_type: str = ""  # the records of a CSV body


def media_type_of(request) -> str:
    return request.content_type.split(";")[0].strip().lower()


def read_body(request, *, limits: Limits, digest, in_background: bool) -> Received:
    """Read, check and decode the request's body (see the module docstring). ``digest``, if
    given, is fed every byte of the body (the Idempotency-Key fingerprint)."""
    media_type = media_type_of(request)
    if media_type == "application/json":
        body = b"".join(_blocks(request, limits, digest, size=1 << 20))
        try:
            if in_background:  # a job only needs its records counted now
                received = Received(media_type, count_records(body), None, body=body)
            else:
                batch = decode_batch(body)
                received = Received(media_type, len(batch), batch)
        except BatchError as exc:
            raise ParseError(str(exc)) from None
        limits.check_records(received.total)
        return received
    if media_type in formats.NDJSON_MEDIA_TYPES or media_type == formats.CSV_MEDIA_TYPE:
        return _read_streamed(request, media_type, limits, digest, in_background=in_background)
    shown = request.content_type or "(none)"
    raise UnsupportedMediaType(
        shown,
        detail=f"Unsupported media type {shown!r}: send application/json, "
        "application/x-ndjson, or text/csv with ?type=.",
    )


def csv_type(request) -> str:
    """The record type a CSV body's ``?type=`` names (a 400 without a known one)."""
    type_name = (request.query_params.get("type") or "").strip().lower()
    type_name = formats.TYPE_NAMES.get(type_name, type_name)
    if type_name not in formats.TYPES:
        raise ValidationError(
            {"type": ["A CSV body needs ?type=users, ?type=products or ?type=orders."]}
        )
    return type_name


def _read_streamed(
    request, media_type: str, limits: Limits, digest, *, in_background: bool
) -> Received:
    """Decode an NDJSON or CSV body a line at a time, never holding the whole body (unless a
    job must store it)."""
    type_name = csv_type(request) if media_type == formats.CSV_MEDIA_TYPE else None
    kept: list[bytes] = []
    blocks = _blocks(request, limits, digest)
    if in_background:
        blocks = _keeping(blocks, kept)
    try:
        gathered = formats.read_streamed(
            formats.split_lines(blocks), media_type, type_name, limits.records
        )
    except formats.TooManyRecords:
        raise PayloadTooLarge(
            f"The body has more than {limits.records} records, the limit per request "
            f"({limits.records_setting}). Split the batch."
        ) from None
    except BatchError as exc:
        raise ParseError(str(exc)) from None
    if in_background:  # the job decodes the stored body again when it runs
        return Received(media_type, len(gathered), None, None, b"".join(kept), type_name or "")
    return Received(media_type, len(gathered), gathered.batch, gathered, b"", type_name or "")


def _keeping(blocks, kept: list[bytes]):
    for block in blocks:
        kept.append(block)
        yield block


def _blocks(request, limits: Limits, digest, size: int = 1 << 16):
    """The body in blocks of ``size`` bytes, hashed as they come (into ``digest``, if one is
    given), refused past the limit: announced (before reading) or actual (chunked)."""
    announced = int(request.META.get("CONTENT_LENGTH") or 0)  # a number: checked on arrival
    if announced > limits.body:
        raise PayloadTooLarge(
            f"The body is {announced} bytes; the limit is {limits.body} bytes "
            f"({limits.body_setting}). Split the batch."
        )
    stream = body_reader(request)
    if stream is None:
        return
    seen = 0
    while block := stream.read(size):
        seen += len(block)
        if seen > limits.body:
            raise PayloadTooLarge(
                f"The body is larger than the limit of {limits.body} bytes "
                f"({limits.body_setting}). Split the batch."
            )
        if digest is not None:
            digest.update(block)
        yield block
