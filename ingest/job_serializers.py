"""A background job as the API shows it: a summary whose size never grows with the batch.

``GET /ingest/jobs/<id>/``, the list and the 202 of ``POST /ingest/?async=true`` all show
:class:`IngestJobSerializer`: the job's state and progress, its counts per type and outcome once
it has finished, and links to what is too big for a summary: every record's result as NDJSON
(``results``, and the same narrowed to the skipped and the unprocessed records, like
Salesforce's failed and unprocessed result files) and the body a synchronous ingest would have
answered (``response``). A job without per-record results has null links.
"""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.reverse import reverse

from ingest.formats import TYPES
from ingest.models import IngestJob

_OUTCOME_HELP = {
    "received": "Records of this type in the batch.",
    "valid": "Records that passed every check (a dry run: would be written).",
    "inserted": "Inserted (an upsert of a new id too).",
    "updated": "Updated, or replaced by an upsert.",
    "deleted": "Deleted.",
    "skipped": "Not written, with reasons.",
    "unprocessed": "Never written: the job was aborted (or an atomic batch failed to commit) "
    "first.",
}


class OutcomeCountsSerializer(serializers.Serializer):
    """The records of one type (or of all, ``total``) by outcome."""

    received = serializers.IntegerField(help_text=_OUTCOME_HELP["received"])
    valid = serializers.IntegerField(help_text=_OUTCOME_HELP["valid"])
    inserted = serializers.IntegerField(help_text=_OUTCOME_HELP["inserted"])
    updated = serializers.IntegerField(help_text=_OUTCOME_HELP["updated"])
    deleted = serializers.IntegerField(help_text=_OUTCOME_HELP["deleted"])
    skipped = serializers.IntegerField(help_text=_OUTCOME_HELP["skipped"])
    unprocessed = serializers.IntegerField(help_text=_OUTCOME_HELP["unprocessed"])


class JobCountsSerializer(serializers.Serializer):
    users = OutcomeCountsSerializer()
    products = OutcomeCountsSerializer()
    orders = OutcomeCountsSerializer()
    total = OutcomeCountsSerializer(help_text="The three types together.")


class JobLinksSerializer(serializers.Serializer):
    results = serializers.URLField(
        allow_null=True, help_text="Every record's result, NDJSON (`?outcome=`, `?type=`)."
    )
    skipped = serializers.URLField(allow_null=True, help_text="The skipped records' results.")
    unprocessed = serializers.URLField(
        allow_null=True, help_text="The results of the records an aborted job never wrote."
    )
    response = serializers.URLField(
        allow_null=True, help_text="The body a synchronous ingest would have answered."
    )


class IngestJobSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="ingest-job-detail")
    progress = serializers.SerializerMethodField(
        help_text="processed / total, from 0 to 1 (1 for an empty batch once finished)."
    )
    counts = serializers.SerializerMethodField(
        help_text="Records per type and outcome, once the job has finished with per-record "
        "results; null before, and for a job that failed without (see `error`)."
    )
    links = serializers.SerializerMethodField(help_text="Absolute URLs of the job's results.")

    class Meta:
        model = IngestJob
        fields = [
            "id",
            "url",
            "state",
            "action",
            "dry_run",
            "atomic",
            "total",
            "processed",
            "progress",
            "attempts",
            "created_at",
            "started_at",
            "finished_at",
            "abort_requested_at",
            "took_ms",
            "error",
            "counts",
            "links",
        ]
        read_only_fields = fields
        extra_kwargs = {
            "total": {"help_text": "Records in the batch."},
            "processed": {"help_text": "Records with a final outcome so far."},
            "attempts": {"help_text": "Workers that have started the job (more after a crash)."},
            "abort_requested_at": {
                "help_text": "When an abort of the running job was asked for; it stops at its "
                "next chunk."
            },
            "took_ms": {"help_text": "How long the batch took to run, once finished."},
        }

    def get_progress(self, job: IngestJob) -> float:
        if job.total:
            return round(min(job.processed / job.total, 1.0), 4)
        return 1.0 if job.state in IngestJob.FINISHED else 0.0

    @extend_schema_field(JobCountsSerializer(allow_null=True))
    def get_counts(self, job: IngestJob) -> dict | None:
        if job.counts is None:
            return None
        per_type = {name: job.counts[name] for name in TYPES}
        keys = per_type["users"].keys()
        return {**per_type, "total": {k: sum(c[k] for c in per_type.values()) for k in keys}}

    @extend_schema_field(JobLinksSerializer)
    def get_links(self, job: IngestJob) -> dict:
        request = self.context.get("request")
        links = dict.fromkeys(("results", "skipped", "unprocessed", "response"))
        if job.has_results:
            results = reverse("ingest-job-results", args=[job.id], request=request)
            links.update(
                results=results,
                skipped=f"{results}?outcome=skipped",
                unprocessed=f"{results}?outcome=unprocessed",
            )
        if job.has_results or _has_stored_response(job):
            links["response"] = reverse("ingest-job-response", args=[job.id], request=request)
        return links


def _has_stored_response(job: IngestJob) -> bool:
    # Jobs read through ingest.selectors say so without loading the (possibly big) body.
    if hasattr(job, "has_stored_response"):
        return job.has_stored_response
    return job.result is not None
