"""Prometheus metrics: django-prometheus's request metrics, the ingest pipeline's and the exports'.

Served at ``/metrics`` (``django_prometheus.exports.ExportToDjangoView``). Counters live in the
process that runs the ingest: the web process for ``POST /ingest/`` and jobs on its thread pool,
a Celery worker for jobs on a broker. With several gunicorn workers, set
``PROMETHEUS_MULTIPROC_DIR`` to an empty directory so that every worker's counts are summed.
"""

from django_prometheus import middleware
from prometheus_client import Counter, Histogram


class PrometheusAfterMiddleware(middleware.PrometheusAfterMiddleware):
    """django-prometheus's, with every ``method`` label from a fixed set.

    Each distinct label value is a new time series, and the request latency histogram (about
    twenty lines per series) is labelled with the raw ``request.method``: a client sending
    1,000 made-up methods added 20,000 lines to ``/metrics``, and would grow it without bound.
    Here every metric gets the method folded as the library folds it for its other metrics
    (an unknown method is ``<invalid method>``). The other labels come from the server (view
    names, status codes, exception types), never from the client.
    """

    def label_metric(self, metric, request, response=None, **labels):
        if "method" in labels:
            labels["method"] = self._method(request)
        return super().label_metric(metric, request, response, **labels)


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
        RECORDS.labels(name, "updated").inc(len(section.updated_ids))
        RECORDS.labels(name, "deleted").inc(len(section.deleted_ids))
        RECORDS.labels(name, "skipped").inc(len(section.skipped))


EXPORT_STREAMS = Counter(
    "export_streams_total",
    "Exports (GET /<resource>/export/) that ended, by resource and how: completed, "
    "disconnected (the client went away), stalled (the client took no chunk within "
    "EXPORT_SEND_TIMEOUT_SECONDS: cut off) or failed (after the first byte: the response was "
    "cut off).",
    ["resource", "outcome"],
)
EXPORT_ROWS = Counter(
    "export_rows_total",
    "Rows exports handed to the server, by resource (a disconnected export counts what it sent).",
    ["resource"],
)
