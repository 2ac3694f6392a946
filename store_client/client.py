"""The library's one entry point: ``Client(url, token)`` and its three verbs."""

from pathlib import Path

from store_client import export as exports
from store_client import jobs as job_reads
from store_client.http import Transport
from store_client.push import Progress, PushOptions, PushSummary, push


class Client:
    """A client of one service::

    client = Client("http://127.0.0.1:8000", token)
    summary = client.push("data.ndjson")  # every record once, resumable
    client.export("users", "users.ndjson")  # the whole table, resumable
    client.jobs()  # this key's background jobs
    """

    def __init__(
        self, url: str, token: str | None = None, *, max_wait: float = 1800.0, on_retry=None
    ):
        self.transport = Transport(url, token, max_wait=max_wait, on_retry=on_retry)

    def push(self, path, *, progress: Progress | None = None, **options) -> PushSummary:
        return push(self.transport, Path(path), PushOptions(**options), progress)

    def export(
        self, record_type: str, path, *, format: str = "ndjson", force: bool = False, on_rows=None
    ):
        return exports.export(
            self.transport, record_type, Path(path), format=format, force=force, on_rows=on_rows
        )

    def jobs(self, *, state: str | None = None) -> list[dict]:
        return job_reads.jobs_list(self.transport, state=state)

    def watch(self, job_id: str, *, every: float = 1.0, on_update=None) -> dict:
        return job_reads.job_watch(self.transport, job_id, every=every, on_update=on_update)

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
