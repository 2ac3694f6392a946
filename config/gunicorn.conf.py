"""gunicorn settings for production (the Docker image runs ``gunicorn -c config/gunicorn.conf.py``).

Each worker process runs requests on a few threads (``gthread``). An ingest request is CPU-bound
Python plus database writes on its own writer threads, so more processes (one per core) serve
more ingests in parallel, while the threads keep cheap reads (lists, retrieves) flowing beside
a running ingest. Every value can be set from the environment.
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
worker_class = "common.ops.gunicorn_worker.IngestAwareWorker"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# Exports a process streams at once (common.http.export_slots): half the threads unless set,
# and never all of them, or clients that stop reading could take every thread from /healthz.
os.environ.setdefault("EXPORT_MAX_STREAMS", str(max(1, threads // 2)))
if threads > 1 and int(os.environ["EXPORT_MAX_STREAMS"]) >= threads:
    raise SystemExit(
        f"EXPORT_MAX_STREAMS={os.environ['EXPORT_MAX_STREAMS']} would let exports take all "
        f"{threads} threads of a process (GUNICORN_THREADS): set it below {threads}."
    )
# A synchronous ingest of the largest allowed batch (500,000 records) takes a few seconds on
# two cores; leave room for a slow disk before a worker is considered hung.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
graceful_timeout = 30
keepalive = 5
# The longest request line gunicorn takes (its default is 4094): a list filtered by many ids
# (?id__in=, up to 1,000 of them) and its next link must fit.
limit_request_line = 8190
# Each request is logged once, as JSON, by the app (common.ops.observability); set this to "-" for
# gunicorn's own access log too.
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")


def child_exit(server, worker) -> None:
    """With PROMETHEUS_MULTIPROC_DIR set (several workers sharing /metrics), drop a dead
    worker's live gauges; its counters stay counted."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
