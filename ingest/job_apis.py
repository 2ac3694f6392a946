"""``/ingest/jobs/``: background ingest jobs, in the manner of Salesforce's Bulk API 2.0 jobs.

A job is shown as a small summary (``ingest.job_serializers``); its results are separate
downloads: every record's outcome as NDJSON (``results/``, narrowed by ``?outcome=`` and
``?type=``) and the body a synchronous ingest would have answered (``response/``). A queued or
running job can be aborted (``abort/``), a finished one deleted (``DELETE``). A job belongs to
the client whose key submitted it: anyone else gets a 404 for it, never a 403, never its data.

The views are thin: the rules are in ``ingest.jobs`` (abort, delete, cancel) and the reads in
``ingest.selectors``.
"""

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
)
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from common.exceptions import Conflict
from common.http.auth import JobsBelongToTheirClient, owner_of
from common.http.json import NDJSONRenderer, ORJSONRenderer
from common.http.query import query_choice, strict_query
from ingest import jobs, selectors
from ingest.formats import TYPES
from ingest.job_serializers import IngestJobSerializer
from ingest.models import IngestJob
from ingest.outcomes import OUTCOMES
from ingest.serializers import AtomicWriteFailedSerializer, IngestResponseSerializer

STATES = tuple(IngestJob.State.values)

_NOT_YOURS = OpenApiResponse(
    description="No such job for this client: another client's job, or a reader without a key, "
    "gets a 404 too."
)
_NO_KEY = OpenApiResponse(description="No API key: jobs belong to the client that sent them.")
_NO_RESULTS = OpenApiResponse(
    description="The job has not finished yet (`not_finished`), or ended without per-record "
    "results (`no_results`: cancelled before it ran, or failed before its records had "
    "outcomes; the message says which)."
)


class IngestJobViewSet(mixins.DestroyModelMixin, viewsets.ReadOnlyModelViewSet):
    """Background ingest jobs: their summary, results, abort and deletion."""

    lookup_value_regex = "[0-9a-fA-F-]{32,36}"
    # A job belongs to the client that submitted it: another client, or a reader without a key,
    # gets a 404 for it (not a 403, which would tell that it exists) and never sees it listed.
    permission_classes = [JobsBelongToTheirClient]
    serializer_class = IngestJobSerializer
    #: The query parameters each action takes; any other is a 400 (common.http.query).
    query_parameters = {"list": ("page", "page_size", "state"), "results": ("outcome", "type")}

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema is being generated
            return IngestJob.objects.none()
        state = None
        if self.action == "list":
            state = query_choice(self.request, "state", STATES, None)
        return selectors.job_list(owner=owner_of(self.request), state=state)

    def initial(self, request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        strict_query(request, self.query_parameters.get(self.action, ()))
        jobs.reap_stale_jobs()  # whoever looks at jobs also notices a dead worker's ones

    @extend_schema(
        summary="List ingest jobs",
        description="The jobs of the client whose API key is sent (401 without a key), newest "
        "first, as summaries; paginated.",
        parameters=[
            OpenApiParameter(
                "state", OpenApiTypes.STR, enum=[*STATES], description="Only jobs in this state."
            )
        ],
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(
        summary="Get an ingest job's summary",
        description="State, progress, counts per type and outcome once finished, and links to "
        "its results. Its size does not grow with the batch: every record's result is at "
        "`links.results`, the synchronous body at `links.response`. Only the client that "
        "submitted the job sees it: for anyone else it is a 404.",
        responses={200: IngestJobSerializer, 404: _NOT_YOURS},
    )
    def retrieve(self, request, *args, **kwargs):
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(
        summary="Delete a finished ingest job and its results",
        responses={
            204: OpenApiResponse(description="Deleted, results and all."),
            401: _NO_KEY,
            404: _NOT_YOURS,
            409: OpenApiResponse(description="The job is queued or running: abort it first."),
        },
    )
    def destroy(self, request, *args, **kwargs):
        job = self.get_object()
        try:
            jobs.delete_job(job.id)
        except jobs.JobNotFinished as exc:
            raise Conflict(str(exc)) from None
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Cancel a queued ingest job",
        request=None,
        responses={
            200: IngestJobSerializer,
            401: _NO_KEY,
            404: _NOT_YOURS,
            409: OpenApiResponse(description="The job is already running or finished."),
        },
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        job = self.get_object()
        try:
            jobs.cancel_job(job.id)
        except jobs.JobNotCancellable as exc:
            raise Conflict(str(exc)) from None
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(
        summary="Abort a queued or running ingest job",
        description="A queued job is cancelled at once (200). A running job is asked to stop "
        "(202): wherever it runs, it stops at its next chunk, keeps what it committed (an "
        "`atomic=true` job keeps nothing) and ends `aborted`; the records it never wrote have "
        "the outcome `unprocessed`. A job that finishes before its next chunk ends as it "
        "would have.",
        request=None,
        responses={
            200: OpenApiResponse(IngestJobSerializer, description="Cancelled (it was queued)."),
            202: OpenApiResponse(
                IngestJobSerializer, description="Asked to stop; it does at its next chunk."
            ),
            401: _NO_KEY,
            404: _NOT_YOURS,
            409: OpenApiResponse(description="The job has already finished."),
        },
    )
    @action(detail=True, methods=["post"])
    def abort(self, request, pk=None):
        job = self.get_object()
        try:
            _, cancelled = jobs.abort_job(job.id)
        except jobs.JobNotAbortable as exc:
            raise Conflict(str(exc)) from None
        answer = status.HTTP_200_OK if cancelled else status.HTTP_202_ACCEPTED
        return Response(self.get_serializer(self.get_object()).data, status=answer)

    @extend_schema(
        summary="Every record's result, as NDJSON",
        description="One line per record of the batch: "
        '`{"type", "index", "line", "id", "action", "outcome", "reasons"}`, by type '
        "(users, products, orders), then `index` (the record's position in its list, as in "
        "`skipped_groups`). `line` is the record's line in an NDJSON or CSV body (not given "
        "for JSON bodies); `id` the stored id (for a record not written, the id it was sent "
        "with, or null); `reasons` is given for skipped and unprocessed records. Every record "
        "has exactly one `outcome`: `inserted`, `updated` (an upsert that replaced a record "
        "too), `deleted`, `skipped`, `unprocessed` (an aborted job never wrote it) or "
        "`valid` (a dry run, or an atomic batch refused for other records: it passed every "
        "check and was not written). Streamed: a million records in flat memory.",
        parameters=[
            OpenApiParameter(
                "outcome", OpenApiTypes.STR, enum=[*OUTCOMES], description="Only this outcome."
            ),
            OpenApiParameter(
                "type", OpenApiTypes.STR, enum=[*TYPES], description="Only this type."
            ),
        ],
        responses={
            (200, "application/x-ndjson"): OpenApiResponse(
                OpenApiTypes.STR, description="A JSON object per line, one per record."
            ),
            400: OpenApiResponse(
                description="An unknown outcome or type, or an unknown or repeated parameter."
            ),
            404: _NOT_YOURS,
            409: _NO_RESULTS,
        },
    )
    @action(detail=True, methods=["get"], renderer_classes=[ORJSONRenderer, NDJSONRenderer])
    def results(self, request, pk=None):
        job = self.get_object()
        outcome = query_choice(request, "outcome", OUTCOMES, None)
        record_type = query_choice(request, "type", TYPES, None)
        _require(job, selectors.job_results_missing(job=job))
        lines = selectors.job_result_lines(job=job, outcome=outcome, record_type=record_type)
        return StreamingHttpResponse(lines, content_type="application/x-ndjson")

    @extend_schema(
        summary="The body a synchronous ingest would have answered",
        description="What `POST /ingest/` answers for the same batch, `inserted_ids`, "
        "`skipped_groups` and all (the 503's body for an atomic job a database failed), "
        "streamed. The records an aborted job never wrote are in `skipped_groups`, with the "
        "reason that says so.",
        responses={
            200: PolymorphicProxySerializer(
                component_name="IngestJobResponse",
                serializers=[IngestResponseSerializer, AtomicWriteFailedSerializer],
                resource_type_field_name=None,
            ),
            404: _NOT_YOURS,
            409: _NO_RESULTS,
        },
    )
    @action(detail=True, methods=["get"], url_path="response", url_name="response")
    def sync_response(self, request, pk=None):
        job = self.get_object()
        _require(job, selectors.job_response_missing(job=job))
        body = selectors.job_response_body(job=job)
        return StreamingHttpResponse(body, content_type="application/json")


def _require(job: IngestJob, missing: str | None) -> None:
    """A 409 saying why, when the job has nothing to show."""
    if missing is not None:
        finished = job.state in IngestJob.FINISHED
        raise Conflict(missing, code="no_results" if finished else "not_finished")
