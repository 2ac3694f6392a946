"""``POST /ingest/``: a batch of users, products and orders; a result for every record.

The view only deals with HTTP: body limits, decoding, the ``Idempotency-Key`` protocol and
status codes. Checking and writing is the pipeline's job (``ingest.pipeline``).
"""

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import ParseError, UnsupportedMediaType, ValidationError
from rest_framework.request import Request
from rest_framework.views import APIView

from common.exceptions import Conflict, PayloadTooLarge, Unavailable, Unprocessable
from common.json import ORJSONParser, dumps, read_limited
from ingest import idempotency, pipeline
from ingest.records import BatchError, decode_batch
from ingest.serializers import (
    REQUEST_EXAMPLE,
    RESPONSE_EXAMPLE,
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


def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with a 413 before reading if it announces more than ``limit``."""
    try:
        announced = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise ParseError("Content-Length is not a number.") from None
    if announced > limit:
        raise PayloadTooLarge(
            f"The body is {announced} bytes; the limit is {limit} bytes (INGEST_MAX_BODY_BYTES). "
            "Split the batch."
        )
    stream = request.stream
    return read_limited(stream, limit) if stream is not None else b""


def _json_response(body: bytes, status: int, **headers: str) -> HttpResponse:
    return HttpResponse(body, status=status, content_type="application/json", headers=headers)


class IngestView(APIView):
    """Bulk ingest of users, products and orders (see the operation's description)."""

    # Declares JSON for the schema; the body itself is read and decoded by the view (see
    # ingest.records), never through request.data.
    parser_classes = [ORJSONParser]

    @extend_schema(
        operation_id="ingest_create",
        summary="Ingest a batch of users, products and orders",
        description=(
            "Every record is checked with the same rules as the single-record endpoints and "
            "comes back either inserted (its id in `inserted_ids`) or skipped (its index, id and "
            "reasons in `skipped_records`). Users and products are written first, in chunks, "
            "each chunk its own transaction; orders are then checked against the users and "
            "products databases, so an order may point at a user or product inserted earlier "
            "in the same batch, but not at one that was skipped. A record with an explicit `id` "
            "that already exists, or repeats in the batch, is skipped as a duplicate.\n\n"
            "The answer is 200 when the batch was processed, even if records were skipped "
            "(`errors` says whether any were). With `atomic=true` nothing is written unless every "
            "record is valid (422 otherwise, with the same body). With `dry_run=true` everything "
            "is checked and nothing is written.\n\n"
            "Limits: `INGEST_MAX_RECORDS` records and `INGEST_MAX_BODY_BYTES` bytes per request "
            "(500,000 and 64 MiB by default); above them, 413."
        ),
        request=IngestRequestSerializer,
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
            400: OpenApiResponse(
                description="Malformed JSON or not a batch (the message says why)."
            ),
            409: OpenApiResponse(
                description="A request with this Idempotency-Key is still running."
            ),
            413: OpenApiResponse(description="Too many records or too large a body."),
            415: OpenApiResponse(description="The body is not application/json."),
            422: OpenApiResponse(
                response=IngestResponseSerializer,
                description="atomic=true and some records are invalid: nothing was written; or "
                "the Idempotency-Key was used for a different request.",
            ),
            503: OpenApiResponse(description="A database failed; the message says what was kept."),
        },
        examples=[REQUEST_EXAMPLE, RESPONSE_EXAMPLE],
    )
    def post(self, request: Request) -> HttpResponse:
        dry_run, atomic = query_flag(request, "dry_run"), query_flag(request, "atomic")
        if request.content_type.split(";")[0].strip().lower() != "application/json":
            raise UnsupportedMediaType(request.content_type or "(none)")
        body = read_body(request, settings.INGEST_MAX_BODY_BYTES)
        try:
            batch = decode_batch(body)
        except BatchError as exc:
            raise ParseError(str(exc)) from None
        if len(batch) > settings.INGEST_MAX_RECORDS:
            raise PayloadTooLarge(
                f"The batch has {len(batch)} records; the limit is {settings.INGEST_MAX_RECORDS} "
                "per request (INGEST_MAX_RECORDS). Split the batch."
            )

        key = request.headers.get("Idempotency-Key")
        fingerprint = key and idempotency.request_fingerprint(
            request.method, request.path, request.META.get("QUERY_STRING", ""), body
        )
        del body  # the decoded batch is all that is needed from here on
        if key is not None:
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
                            "detail": "A request with this Idempotency-Key is still running; retry "
                            "later.",
                            "code": Conflict.default_code,
                        }
                    ),
                    409,
                )
                response["Retry-After"] = str(exc.retry_after)
                return response
            if stored is not None:
                return _json_response(stored.body, stored.status, **{"Idempotent-Replayed": "true"})

        try:
            result = pipeline.ingest(batch, dry_run=dry_run, atomic=atomic)
        except pipeline.WriteFailed as exc:
            if key is not None:
                idempotency.release(key)
            raise Unavailable(str(exc)) from None
        except BaseException:
            if key is not None:
                idempotency.release(key)
            raise
        status = 422 if result.rejected else 200
        response_body = dumps(result.as_dict())
        if key is not None:
            idempotency.complete(key, status, response_body)
        return _json_response(response_body, status)
