"""``POST /ingest/``: a batch of users, products and orders; a result for every record.

The view only deals with HTTP: body limits, decoding, the ``Idempotency-Key`` protocol and
status codes. Checking and writing is the pipeline's job (``ingest.pipeline``).
"""

import hashlib
from contextlib import contextmanager
from dataclasses import dataclass

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
)
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from common.data.gc_tuning import fewer_collections
from common.exceptions import Conflict, Unprocessable
from common.http.auth import (
    IngestRateThrottle,
    WriteRateThrottle,
    owner_of,
)
from common.http.json import ORJSONParser, dumps
from common.http.query import query_choice, query_flag, strict_query
from common.ops.gunicorn_worker import ingesting
from ingest import bodies, idempotency, jobs, pipeline
from ingest.actions import ACTIONS, INSERT
from ingest.job_serializers import IngestJobSerializer
from ingest.serializers import (
    ACTIONS_REQUEST_EXAMPLE,
    ACTIONS_RESPONSE_EXAMPLE,
    REQUEST_EXAMPLE,
    RESPONSE_EXAMPLE,
    AtomicWriteFailedSerializer,
    ErrorSerializer,
    IngestRequestSerializer,
    IngestResponseSerializer,
)


def _json_response(body: bytes, status: int, **headers: str) -> HttpResponse:
    return HttpResponse(body, status=status, content_type="application/json", headers=headers)


class IngestView(APIView):
    """Bulk ingest of users, products and orders (see the operation's description)."""

    # Declares JSON for the schema; the body itself is read and decoded by the view (see
    # ingest.records), never through request.data.
    parser_classes = [ORJSONParser]
    throttle_classes = [WriteRateThrottle, IngestRateThrottle]
    #: Read by common.http.body: this view reads its (possibly chunked) body as a stream.
    streams_body = True
    #: Every query parameter POST /ingest/ takes; any other is a 400 (common.http.query).
    query_parameters = ("action", "dry_run", "atomic", "async", "type")

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
            "**Actions**: a record may carry `action`: `insert` (the default), `upsert` "
            "(insert, or replace the whole record with that id), `update` (change only the "
            "fields given; the id must exist; the merged record is checked by the same rules) "
            "or `delete` (the id must exist). `?action=` sets the default for every record of "
            "the request; a record's own `action` wins. Upsert, update and delete need an "
            "`id`. A batch with actions runs in four phases, whatever the order of its "
            "records: (1) order deletions; (2) users and products: inserts, upserts, updates; "
            "(3) orders: inserts, upserts, updates, each checked against the users and products "
            "as they are after phase 2 (a changed `user_id` or `product_id` too); (4) user and "
            "product deletions, each refused (skipped, saying how many orders still point at "
            "it) while an order points at it. An upsert that replaced a record reports its id "
            "in `updated_ids`; skipped records of other actions than insert are grouped by "
            "action too (`action` in their group). One id appears at most once per type in a "
            "batch. Dry runs, atomic batches, Idempotency-Key, background jobs, NDJSON (an "
            '`"action"` beside `"type"`) and CSV (`?action=` and an optional `action` column; '
            "with an `id` column the others may be left out) take actions alike.\n\n"
            "The answer is 200 when the batch was processed, even if records were skipped "
            "(`errors` says whether any were). With `atomic=true` nothing is written unless every "
            "record is valid (422 otherwise, with the same body). With `dry_run=true` everything "
            "is checked and nothing is written.\n\n"
            "Limits: `INGEST_MAX_RECORDS` records and `INGEST_MAX_BODY_BYTES` bytes per request "
            "(500,000 and 64 MiB by default); above them, 413.\n\n"
            "**In the background**: with `async=true` (or the header `Prefer: respond-async`) the "
            "batch is stored and the answer is at once a 202 with the job, whose URL is also in "
            "`Location`; poll it (`GET /ingest/jobs/{id}/`) for its state, its progress and, "
            "when it has finished, its counts per type and outcome; every record's result is "
            "NDJSON at its `results/`, the same result body at its `response/`. Background "
            "jobs can be aborted and deleted. They take bigger batches "
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
                "action",
                OpenApiTypes.STR,
                enum=["insert", "upsert", "update", "delete"],
                description="The action of every record without its own `action` (default "
                "`insert`; see the description).",
            ),
            OpenApiParameter(
                "dry_run",
                OpenApiTypes.BOOL,
                description="Check only; write nothing (with actions, every phase runs in "
                "transactions that are rolled back, so the verdicts are a real run's).",
            ),
            OpenApiParameter(
                "atomic",
                OpenApiTypes.BOOL,
                description="All records or none (422 if any is invalid).",
            ),
            OpenApiParameter(
                "async",
                OpenApiTypes.BOOL,
                description="Run as a background job: 202 with the job (see the description).",
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
                description="Malformed JSON or not a batch, a body cut off before its "
                "Content-Length or its last chunk, bytes that are not UTF-8, or an unknown or "
                "repeated query parameter (the message says which). Nothing was written."
            ),
            409: OpenApiResponse(
                description="A request with this Idempotency-Key is still running."
            ),
            411: OpenApiResponse(
                description="A chunked body (no Content-Length) on a server that cannot read it."
            ),
            413: OpenApiResponse(description="Too many records or too large a body."),
            415: OpenApiResponse(
                description="The body is not JSON, NDJSON or CSV, or it is compressed "
                "(a Content-Encoding other than identity)."
            ),
            422: OpenApiResponse(
                response=PolymorphicProxySerializer(
                    component_name="IngestUnprocessable",
                    serializers=[IngestResponseSerializer, ErrorSerializer],
                    resource_type_field_name=None,
                ),
                description="atomic=true and some records are invalid: nothing was written; or "
                "the Idempotency-Key was used for a different request.",
            ),
            503: OpenApiResponse(
                response=AtomicWriteFailedSerializer,
                description="atomic=true and a database failed while committing: what was "
                "already committed elsewhere is undone again; `left_behind` and `not_restored` "
                "list what could not be yet (undone automatically, see `ingest.atomic`). Send "
                "the batch again.",
            ),
        },
        examples=[
            REQUEST_EXAMPLE,
            RESPONSE_EXAMPLE,
            ACTIONS_REQUEST_EXAMPLE,
            ACTIONS_RESPONSE_EXAMPLE,
        ],
    )
    def post(self, request: Request) -> HttpResponse:
        # A batch is hundreds of thousands of records from decoding to the response: see
        # common.data.gc_tuning for why the collector runs less often meanwhile.
        # It also leaves new connections to this server's other processes meanwhile
        # (common.ops.gunicorn_worker): reads that land here wait for the GIL at every step.
        with fewer_collections(), ingesting():
            return self._post(request)

    def _post(self, request: Request) -> HttpResponse:
        options = _Options.of(request)
        key = request.headers.get("Idempotency-Key")
        digest = None if key is None else _fingerprint_digest(request)
        received = bodies.read_body(
            request,
            limits=bodies.limits_for(in_background=options.in_background),
            digest=digest,
            in_background=options.in_background,
        )
        # Keys and jobs belong to the client that sent them (as Stripe scopes keys per account).
        owner = owner_of(request)
        if key is not None and (replay := _claim_key(key, digest.hexdigest(), owner)):
            return replay
        # The batch's checked rows, let go with the response once it is sent (see _run).
        rows: list = []
        try:
            with _released_on_failure(key, owner):
                status, response_body, job = _execute(request, received, options, key, owner, rows)
        except pipeline.WriteFailed as exc:  # an atomic batch: the body says what was kept
            return _json_response(dumps(exc.as_dict()), 503, **{"Retry-After": "5"})
        if key is not None:
            _complete_key(key, owner, status, response_body, options)
        response = _respond(request, status, response_body, job)
        response.checked_rows = rows  # freed with the response, after the client has it
        return response


@dataclass(frozen=True)
class _Options:
    """What the query string (and ``Prefer``) of ``POST /ingest/`` asks for."""

    action: str
    dry_run: bool
    atomic: bool
    in_background: bool

    @classmethod
    def of(cls, request: Request) -> "_Options":
        strict_query(request, IngestView.query_parameters)
        prefer = request.headers.get("Prefer", "").lower().replace(" ", "")
        return cls(
            action=query_choice(request, "action", ACTIONS, INSERT),
            dry_run=query_flag(request, "dry_run"),
            atomic=query_flag(request, "atomic"),
            in_background=query_flag(request, "async") or "respond-async" in prefer,
        )


def _execute(
    request: Request,
    received: bodies.Received,
    options: _Options,
    key: str | None,
    owner: str,
    rows: list,
) -> tuple[int, bytes, jobs.IngestJob | None]:
    """Run the batch now, or store it as a job: ``(status, response body, job or None)``."""
    if options.in_background:
        job = _submit(received, options=options, owner=owner)
        return 202, dumps(IngestJobSerializer(job, context={"request": request}).data), job
    status, body = _run(received, options=options, ledger_key=_ledger_key(key, owner), rows=rows)
    return status, body, None


def _complete_key(key: str, owner: str, status: int, body: bytes, options: _Options) -> None:
    """Store the answer under the key; a finished request's ledger rows are no longer needed."""
    idempotency.complete(key, status, body, owner=owner)
    if not options.in_background:
        pipeline.forget_ledger(_ledger_key(key, owner))


def _respond(
    request: Request, status: int, body: bytes, job: jobs.IngestJob | None
) -> HttpResponse:
    response = _json_response(body, status)
    if job is not None:
        response["Location"] = reverse("ingest-job-detail", args=[job.id], request=request)
        response["Preference-Applied"] = "respond-async"
    return response


def _fingerprint_digest(request: Request):
    """Only a request under a key is compared with another: the body is hashed only then."""
    return idempotency.fingerprint_digest(
        request.method, request.path, request.META.get("QUERY_STRING", "")
    )


def _submit(received: bodies.Received, *, options: _Options, owner: str) -> jobs.IngestJob:
    return jobs.submit_job(
        received.body,
        total=received.total,
        action=options.action,
        dry_run=options.dry_run,
        atomic=options.atomic,
        media_type=received.media_type,
        record_type=received.record_type,
        owner=owner,
    )


def _run(
    received: bodies.Received, *, options: _Options, ledger_key: str | None, rows: list
) -> tuple[int, bytes]:
    """Run the batch now: ``(status, response body)``. The checked rows go into ``rows``, to be
    let go once the answer is sent: freeing those of 300,000 records took 30 ms before it."""
    result = pipeline.ingest(
        received.batch,
        action=options.action,
        dry_run=options.dry_run,
        atomic=options.atomic,
        ledger_key=ledger_key,
        let_go_later=rows,
    )
    received.batch = None  # the pipeline let the records go; so do we
    outcome = result.as_dict()
    if received.lines is not None:
        received.lines.annotate(outcome)
    return (422 if result.rejected else 200), dumps(outcome)


@contextmanager
def _released_on_failure(key: str | None, owner: str):
    """A request that fails releases its Idempotency-Key, so that a retry runs it again."""
    try:
        yield
    except BaseException:
        if key is not None:
            idempotency.release(key, owner=owner)
        raise


def _claim_key(key: str, fingerprint: str, owner: str) -> HttpResponse | None:
    """None if this request may run under ``key``; else the response to give (a replay or an
    error)."""
    try:
        stored = idempotency.claim(idempotency.validate_key(key), fingerprint, owner=owner)
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


def _ledger_key(idempotency_key: str | None, owner: str) -> str | None:
    """Writes under an Idempotency-Key are re-runnable: a retry after a crash reuses what the
    dead request committed (see common.models.WriteLedger). Per client, as the key is."""
    if idempotency_key is None:
        return None
    scoped = f"{owner}\0{idempotency_key}".encode()
    return "key:" + hashlib.sha256(scoped).hexdigest()[:40]
