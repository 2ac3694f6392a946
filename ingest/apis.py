"""``POST /ingest/``: a batch of users, products and orders; a result for every record.

The view only deals with HTTP: body limits, decoding, the ``Idempotency-Key`` protocol and
status codes. Checking and writing is the pipeline's job (``ingest.pipeline``).
"""

import hashlib
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
)
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ParseError, UnsupportedMediaType, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from common.data.gc_tuning import fewer_collections
from common.exceptions import (
    Conflict,
    LengthRequired,
    PayloadTooLarge,
    Unavailable,
    Unprocessable,
)
from common.http.auth import IngestRateThrottle, WriteRateThrottle
from common.http.json import ORJSONParser, dumps
from ingest import formats, idempotency, jobs, pipeline, selectors
from ingest.records import BatchError, count_records, decode_batch
from ingest.serializers import (
    REQUEST_EXAMPLE,
    RESPONSE_EXAMPLE,
    ErrorSerializer,
    IngestJobSerializer,
    IngestJobSummarySerializer,
    IngestRequestSerializer,
    IngestResponseSerializer,
)

_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off", ""}


def query_flag(request: Request, name: str) -> bool:
    """A boolean query parameter (``?dry_run=true``); anything unrecognised is a 400."""
    raw = request.query_params.get(name)
    if raw is None:
        return False
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValidationError({name: [f"Must be true or false, not {raw[:40]!r}."]})


def body_stream(request: Request, limit: int, setting: str):
    """The request body as a stream (None if there is none), refused with a 413 before reading
    if it announces more than ``limit``.

    A body sent without ``Content-Length`` (``Transfer-Encoding: chunked``, as a client that
    streams NDJSON sends it) is read from the server's own input when the server de-chunks it
    and marks its end (``wsgi.input_terminated``, as gunicorn does). Django alone would read
    such a body as empty, so where the server does not, it is a 411 rather than a batch quietly
    taken for empty.
    """
    meta = request.META
    if (
        not meta.get("CONTENT_LENGTH")
        and "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower()
    ):
        if meta.get("wsgi.input_terminated"):
            return meta["wsgi.input"]
        raise LengthRequired(
            "This server cannot read a chunked body: send the body with a Content-Length "
            "header (or serve the app with gunicorn, which can)."
        )
    try:
        announced = int(meta.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise ParseError("Content-Length is not a number.") from None
    if announced > limit:
        raise PayloadTooLarge(
            f"The body is {announced} bytes; the limit is {limit} bytes ({setting}). "
            "Split the batch."
        )
    return request.stream


def _json_response(body: bytes, status: int, **headers: str) -> HttpResponse:
    return HttpResponse(body, status=status, content_type="application/json", headers=headers)


class IngestView(APIView):
    """Bulk ingest of users, products and orders (see the operation's description)."""

    # Declares JSON for the schema; the body itself is read and decoded by the view (see
    # ingest.records), never through request.data.
    parser_classes = [ORJSONParser]
    throttle_classes = [WriteRateThrottle, IngestRateThrottle]

    @extend_schema(
        operation_id="ingest_create",
        summary="Ingest a batch of users, products and orders",
        description=(
            "Every record is checked with the same rules as the single-record endpoints and "
            "comes back either inserted (its id in `inserted_ids`) or skipped (its index, and "
            "id if it had one, in the group of `skipped_groups` that gives its reasons: one "
            "group per distinct reasons, so the answer stays within a small multiple of the "
            "request). Users and products are written first, in chunks, "
            "each chunk its own transaction; orders are then checked against the users and "
            "products databases, so an order may point at a user or product inserted earlier "
            "in the same batch, but not at one that was skipped. A record with an explicit `id` "
            "that already exists, or repeats in the batch, is skipped as a duplicate.\n\n"
            "The answer is 200 when the batch was processed, even if records were skipped "
            "(`errors` says whether any were). With `atomic=true` nothing is written unless every "
            "record is valid (422 otherwise, with the same body). With `dry_run=true` everything "
            "is checked and nothing is written.\n\n"
            "Limits: `INGEST_MAX_RECORDS` records and `INGEST_MAX_BODY_BYTES` bytes per request "
            "(500,000 and 64 MiB by default); above them, 413.\n\n"
            "**In the background**: with `async=true` (or the header `Prefer: respond-async`) the "
            "batch is stored and the answer is at once a 202 with the job, whose URL is also in "
            "`Location`; poll it (`GET /ingest/jobs/{id}/`) for its state, its progress and, "
            "when it has finished, the same result body. Background jobs take bigger batches "
            "(`INGEST_ASYNC_MAX_RECORDS`, `INGEST_ASYNC_MAX_BODY_BYTES`: 5,000,000 records and "
            "512 MiB by default).\n\n"
            "**NDJSON and CSV**: the body may also be `application/x-ndjson`, one JSON object per "
            'line with a `"type"` (`user`, `product` or `order`) beside its fields, or '
            "`text/csv` with `?type=users|products|orders` and a header row naming the columns "
            "(`id` optional). Both are read a line at a time; the result is the same, and each "
            "group of skipped records also carries their `lines`. A line that is not a record "
            "(malformed JSON, no known type, a broken CSV row) refuses the body with a 400 "
            "naming the line."
        ),
        request={
            "application/json": IngestRequestSerializer,
            "application/x-ndjson": OpenApiTypes.STR,
            "text/csv": OpenApiTypes.STR,
        },
        parameters=[
            OpenApiParameter(
                "dry_run", OpenApiTypes.BOOL, description="Check only; write nothing."
            ),
            OpenApiParameter(
                "atomic",
                OpenApiTypes.BOOL,
                description="All records or none (422 if any is invalid).",
            ),
            OpenApiParameter(
                "type",
                OpenApiTypes.STR,
                enum=["users", "products", "orders"],
                description="The type of every record of a `text/csv` body (required there).",
            ),
            OpenApiParameter(
                "Idempotency-Key",
                OpenApiTypes.STR,
                location=OpenApiParameter.HEADER,
                description="Any unique string (a UUID). Sending the same request again with the "
                "same key replays the first response and writes nothing; the same key with a "
                "different request is a 422; while the first is still running, a 409.",
            ),
        ],
        responses={
            200: IngestResponseSerializer,
            202: OpenApiResponse(
                response=IngestJobSerializer,
                description="Accepted as a background job (async=true); poll its URL.",
            ),
            400: OpenApiResponse(
                description="Malformed JSON or not a batch (the message says why)."
            ),
            409: OpenApiResponse(
                description="A request with this Idempotency-Key is still running."
            ),
            411: OpenApiResponse(
                description="A chunked body (no Content-Length) on a server that cannot read it."
            ),
            413: OpenApiResponse(description="Too many records or too large a body."),
            415: OpenApiResponse(description="The body is not JSON, NDJSON or CSV."),
            422: OpenApiResponse(
                response=PolymorphicProxySerializer(
                    component_name="IngestUnprocessable",
                    serializers=[IngestResponseSerializer, ErrorSerializer],
                    resource_type_field_name=None,
                ),
                description="atomic=true and some records are invalid: nothing was written; or "
                "the Idempotency-Key was used for a different request.",
            ),
            503: OpenApiResponse(description="A database failed; the message says what was kept."),
        },
        examples=[REQUEST_EXAMPLE, RESPONSE_EXAMPLE],
    )
    def post(self, request: Request) -> HttpResponse:
        # A batch is hundreds of thousands of records from decoding to the response: see
        # common.data.gc_tuning for why the collector runs less often meanwhile.
        with fewer_collections():
            return self._post(request)

    def _post(self, request: Request) -> HttpResponse:
        dry_run, atomic = query_flag(request, "dry_run"), query_flag(request, "atomic")
        in_background = query_flag(request, "async") or "respond-async" in request.headers.get(
            "Prefer", ""
        ).lower().replace(" ", "")
        media_type = request.content_type.split(";")[0].strip().lower()
        if in_background:
            limits = _Limits(
                settings.INGEST_ASYNC_MAX_BODY_BYTES,
                settings.INGEST_ASYNC_MAX_RECORDS,
                "INGEST_ASYNC_MAX_BODY_BYTES",
                "INGEST_ASYNC_MAX_RECORDS",
            )
        else:
            limits = _Limits(
                settings.INGEST_MAX_BODY_BYTES,
                settings.INGEST_MAX_RECORDS,
                "INGEST_MAX_BODY_BYTES",
                "INGEST_MAX_RECORDS",
            )
        key = request.headers.get("Idempotency-Key")
        # Only a request under a key is compared with another: hash the body only then.
        digest = (
            None
            if key is None
            else idempotency.fingerprint_digest(
                request.method, request.path, request.META.get("QUERY_STRING", "")
            )
        )
        lines: formats.LineNumberedBatch | None = None
        body, record_type = b"", None
        if media_type == "application/json":
            body = b"".join(_body_blocks(request, limits, digest, size=1 << 20))
            try:
                # A job only needs its records counted now; it decodes them when it runs.
                batch = None if in_background else decode_batch(body)
                total = count_records(body) if in_background else len(batch)
            except BatchError as exc:
                raise ParseError(str(exc)) from None
            limits.check_records(total)
        elif media_type in formats.NDJSON_MEDIA_TYPES or media_type == formats.CSV_MEDIA_TYPE:
            lines, record_type, body = _read_streamed(
                request, media_type, limits, digest, keep_body=in_background
            )
            batch, total = lines.batch, len(lines)
            if in_background:  # the job decodes the stored body again when it runs
                batch = lines = None
        else:
            raise UnsupportedMediaType(
                request.content_type or "(none)",
                detail=f"Unsupported media type {request.content_type or '(none)'!r}: send "
                "application/json, application/x-ndjson, or text/csv with ?type=.",
            )

        if key is not None:
            refusal_or_replay = _claim_key(key, digest.hexdigest())
            if refusal_or_replay is not None:
                return refusal_or_replay
        try:
            if in_background:
                job = jobs.submit_job(
                    body,
                    total=total,
                    dry_run=dry_run,
                    atomic=atomic,
                    media_type=media_type,
                    record_type=record_type or "",
                )
                status = 202
                response_body = dumps(IngestJobSerializer(job, context={"request": request}).data)
            else:
                del body  # the decoded batch is all that is needed from here on
                result = pipeline.ingest(
                    batch, dry_run=dry_run, atomic=atomic, ledger_key=_ledger_key(key)
                )
                status = 422 if result.rejected else 200
                outcome = result.as_dict()
                response_body = dumps(lines.annotate(outcome) if lines else outcome)
        except pipeline.WriteFailed as exc:
            if key is not None:
                idempotency.release(key)
            raise Unavailable(str(exc)) from None
        except BaseException:
            if key is not None:
                idempotency.release(key)
            raise
        if key is not None:
            idempotency.complete(key, status, response_body)
            if not in_background:
                pipeline.forget_ledger(_ledger_key(key))
        response = _json_response(response_body, status)
        if in_background:
            response["Location"] = reverse("ingest-job-detail", args=[job.id], request=request)
            response["Preference-Applied"] = "respond-async"
        return response


@dataclass(frozen=True)
class _Limits:
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


def _read_streamed(
    request: Request, media_type: str, limits: _Limits, digest, *, keep_body: bool = False
) -> tuple[formats.LineNumberedBatch, str | None, bytes]:
    """Decode an NDJSON or CSV body a line at a time, never holding the whole body (unless
    ``keep_body``, for a job that stores it): ``(records, CSV record type, kept body)``."""
    type_name = None
    if media_type == formats.CSV_MEDIA_TYPE:
        type_name = (request.query_params.get("type") or "").strip().lower()
        type_name = formats.TYPE_NAMES.get(type_name, type_name)
        if type_name not in formats.TYPES:
            raise ValidationError(
                {"type": ["A CSV body needs ?type=users, ?type=products or ?type=orders."]}
            )
    kept: list[bytes] = []
    blocks = _body_blocks(request, limits, digest)
    if keep_body:
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
    return gathered, type_name, b"".join(kept)


def _keeping(blocks, kept: list[bytes]):
    for block in blocks:
        kept.append(block)
        yield block


def _body_blocks(request: Request, limits: _Limits, digest, size: int = 1 << 16):
    """The body in blocks of ``size`` bytes, hashed as they come (into ``digest``, if one is
    given), refused past the limit."""
    stream = body_stream(request, limits.body, limits.body_setting)
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


def _claim_key(key: str, fingerprint: str) -> HttpResponse | None:
    """None if this request may run under ``key``; else the response to give (a replay or an
    error)."""
    try:
        stored = idempotency.claim(idempotency.validate_key(key), fingerprint)
    except idempotency.KeyInvalid as exc:
        raise ValidationError({"Idempotency-Key": [str(exc)]}) from None
    except idempotency.KeyReused as exc:
        raise Unprocessable(str(exc)) from None
    except idempotency.KeyInProgress as exc:
        response = _json_response(
            dumps(
                {
                    "detail": "A request with this Idempotency-Key is still running; retry later.",
                    "code": Conflict.default_code,
                }
            ),
            409,
        )
        response["Retry-After"] = str(exc.retry_after)
        return response
    if stored is None:
        return None
    return _json_response(stored.body, stored.status, **{"Idempotent-Replayed": "true"})


def _ledger_key(idempotency_key: str | None) -> str | None:
    """Writes under an Idempotency-Key are re-runnable: a retry after a crash reuses what the
    dead request committed (see common.models.WriteLedger)."""
    if idempotency_key is None:
        return None
    return "key:" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]


class IngestJobViewSet(viewsets.ReadOnlyModelViewSet):
    """Background ingest jobs: their state, progress and, once finished, their result."""

    lookup_value_regex = "[0-9a-fA-F-]{32,36}"

    def get_queryset(self):
        return selectors.job_list()

    def get_serializer_class(self):
        return IngestJobSerializer if self.action != "list" else IngestJobSummarySerializer

    def initial(self, request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        jobs.reap_stale_jobs()  # whoever looks at jobs also notices a dead worker's ones

    @extend_schema(summary="List ingest jobs", description="Newest first; paginated.")
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(
        summary="Get an ingest job",
        description="`result` is the same body a synchronous ingest answers, once the job has "
        "finished (`succeeded`, or `failed` for a rejected atomic batch).",
    )
    def retrieve(self, request, *args, **kwargs):
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(
        summary="Cancel a queued ingest job",
        request=None,
        responses={
            200: IngestJobSerializer,
            409: OpenApiResponse(description="The job is already running or finished."),
        },
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        job = self.get_object()
        try:
            job = jobs.cancel_job(job.id)
        except jobs.JobNotCancellable as exc:
            raise Conflict(str(exc)) from None
        return Response(IngestJobSerializer(job, context={"request": request}).data)
