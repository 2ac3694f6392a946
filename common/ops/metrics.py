"""Prometheus metrics of the ingest pipeline, beside django-prometheus's request metrics.

Served at ``/metrics`` (``django_prometheus.exports.ExportToDjangoView``). Counters live in the
process that runs the ingest: the web process for ``POST /ingest/`` and jobs on its thread pool,
a Celery worker for jobs on a broker. With several gunicorn workers, set
``PROMETHEUS_MULTIPROC_DIR`` to an empty directory so that every worker's counts are summed.
"""

from prometheus_client import Counter, Histogram

RECORDS = Counter(
    "ingest_records_total",
    "Records received by the ingest pipeline, by type and outcome (inserted or skipped).",
    ["type", "outcome"],
)
BATCHES = Counter(
    "ingest_batches_total",
    "Batches run through the ingest pipeline, by mode (write, dry_run, atomic).",
    ["mode"],
)
DURATION = Histogram(
    "ingest_duration_seconds",
    "Time to run one batch through the ingest pipeline.",
    ["mode"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)


def record_ingest(result) -> None:
    """Count one finished batch (an ``ingest.pipeline.IngestResult``)."""
    mode = "dry_run" if result.dry_run else "atomic" if result.atomic else "write"
    BATCHES.labels(mode).inc()
    DURATION.labels(mode).observe(result.seconds)
    for name, section in zip(("users", "products", "orders"), result.sections, strict=True):
        RECORDS.labels(name, "inserted").inc(len(section.inserted_ids))
        RECORDS.labels(name, "skipped").inc(len(section.skipped))
