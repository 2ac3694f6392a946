"""``GET /ingest/limits/``: what one ``POST /ingest/`` may hold, for clients that split files.

A client with a file bigger than one request (``store_client push``, a script of one's own)
needs the server's limits to cut it into requests the server takes, rather than guessing and
meeting 413s: records and bytes per request, synchronous and in the background, and how long
an ``Idempotency-Key`` is remembered (a client resuming after a crash must come back within
it, or a piece it cannot confirm would be written twice) and held by a request that died.
These are settings, the same for every client; reads are open as for the lists.
"""

from django.conf import settings
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.http.query import strict_query


def ingest_limits() -> dict[str, int]:
    return {
        "max_records": settings.INGEST_MAX_RECORDS,
        "max_body_bytes": settings.INGEST_MAX_BODY_BYTES,
        "async_max_records": settings.INGEST_ASYNC_MAX_RECORDS,
        "async_max_body_bytes": settings.INGEST_ASYNC_MAX_BODY_BYTES,
        "idempotency_ttl_seconds": settings.INGEST_IDEMPOTENCY_TTL,
        "idempotency_lock_timeout_seconds": settings.INGEST_IDEMPOTENCY_LOCK_TIMEOUT,
    }


class IngestLimitsView(APIView):
    """The limits of ``POST /ingest/`` (see the module docstring)."""

    @extend_schema(
        operation_id="ingest_limits",
        summary="The limits of one ingest request",
        description=(
            "Records and body bytes one `POST /ingest/` may hold (`max_records`, "
            "`max_body_bytes`; `async_max_records`, `async_max_body_bytes` with `async=true`), "
            "how long an `Idempotency-Key` is remembered (`idempotency_ttl_seconds`) and how "
            "long a request that died keeps its key (`idempotency_lock_timeout_seconds`). A "
            "client splitting a file reads them once (`store_client push` does)."
        ),
        responses={
            200: inline_serializer(
                "IngestLimits",
                {name: serializers.IntegerField() for name in ingest_limits()},
            )
        },
    )
    def get(self, request: Request) -> Response:
        strict_query(request, ())
        return Response(ingest_limits())
