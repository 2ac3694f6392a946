"""``jobs``: the client's background ingest jobs, and one watched until it ends.

``GET /ingest/jobs/`` lists the jobs of the key's client (newest first, a page at a time);
``GET /ingest/jobs/<id>/`` is one job's summary: its state, ``processed`` of ``total`` and,
once it has ended, its counts per type and outcome. Watching polls the summary until the state
is final.
"""

import time
from collections.abc import Callable

from store_client.http import Transport

FINISHED = ("succeeded", "failed", "cancelled", "aborted")


def jobs_list(transport: Transport, *, state: str | None = None, limit: int = 50) -> list[dict]:
    params = {"page_size": str(limit)}
    if state:
        params["state"] = state
    return transport.send("GET", "/ingest/jobs/", params=params).json()["results"]


def job_watch(
    transport: Transport,
    job_id: str,
    *,
    every: float = 1.0,
    on_update: Callable[[dict], None] | None = None,
) -> dict:
    """The job's summary once it has ended, polled every ``every`` seconds."""
    while True:
        job = transport.send("GET", f"/ingest/jobs/{job_id}/").json()
        if on_update is not None:
            on_update(job)
        if job["state"] in FINISHED:
            return job
        time.sleep(every)
