"""Bookkeeping of the ingest endpoint, kept on the default database (never a service's)."""

import uuid

from django.db import models


class IdempotencyKey(models.Model):
    """One ``Idempotency-Key`` a client sent, and the response it got.

    While the first request with the key runs, ``status`` is empty and ``locked_until`` says
    until when a second request with the same key is told to wait (409). Afterwards the stored
    response is replayed to every request with the same key and body, until ``expires_at``.
    """

    owner = models.CharField(max_length=150, default="", blank=True)
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    status = models.SmallIntegerField(null=True)
    response = models.BinaryField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)
    locked_until = models.DateTimeField(null=True)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["owner", "key"], name="ingest_idempotency_key_unique")
        ]

    def __str__(self) -> str:
        return f"{self.key} ({'done' if self.status else 'running'})"


class IngestJob(models.Model):
    """A batch ingested in the background (``POST /ingest/?async=true``).

    ``processed`` counts the records whose outcome is final. Once the job has finished,
    ``counts`` holds its counts per type and outcome (small, whatever the batch), and its
    per-record results are in :class:`IngestJobResultBlock` rows (``has_results``). The batch
    itself is kept in :class:`IngestJobPayload`, so that listing jobs never loads it, and a
    worker gets only the job's id through the broker. ``abort_requested_at`` is set by an abort
    of a running job: its worker, wherever it runs, sees it at its next chunk. A finished job
    is deleted ``INGEST_JOB_RETENTION`` seconds after ``finished_at``
    (``ingest.jobs.purge_expired``), its results with it.
    """

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"
        ABORTED = "aborted"

    FINISHED = (State.SUCCEEDED, State.FAILED, State.CANCELLED, State.ABORTED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.CharField(max_length=150, default="", blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    action = models.CharField(max_length=8, default="insert")  # the request's ?action=
    dry_run = models.BooleanField(default=False)
    atomic = models.BooleanField(default=False)
    total = models.IntegerField(default=0)
    processed = models.IntegerField(default=0)
    attempts = models.IntegerField(default=0)
    chunk_size = models.IntegerField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True)
    finished_at = models.DateTimeField(null=True, db_index=True)  # the reaper expires by it
    heartbeat_at = models.DateTimeField(null=True)
    error = models.TextField(blank=True, default="")
    abort_requested_at = models.DateTimeField(null=True)
    counts = models.JSONField(null=True)  # per type: received, valid, and one count per outcome
    took_ms = models.IntegerField(null=True)
    has_results = models.BooleanField(default=False)  # per-record results were stored
    # A body answered as it is at response/: the 503's of an atomic job a database failed, or
    # the whole result of a job finished before per-record results were kept.
    result = models.BinaryField(null=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["state", "heartbeat_at"], name="ingest_job_state_beat")]

    def __str__(self) -> str:
        return f"{self.id} ({self.state})"


class IngestJobPayload(models.Model):
    """The request body of an :class:`IngestJob`, as sent; deleted in the transaction that
    gives the job its final state (``ingest.jobs``), so it lives only while the job may run."""

    job = models.OneToOneField(IngestJob, primary_key=True, on_delete=models.CASCADE)
    body = models.BinaryField()
    media_type = models.CharField(max_length=64, default="application/json")
    record_type = models.CharField(
        max_length=16, blank=True, default="", help_text="The records of a CSV body."
    )

    def __str__(self) -> str:
        return f"payload of {self.job_id}"


class IngestJobResultBlock(models.Model):
    """The per-record results of up to ``ingest.job_results.BLOCK_RECORDS`` records of one
    type of a finished :class:`IngestJob`, compressed (``ingest.job_results`` says how);
    deleted with their job."""

    class Resource(models.IntegerChoices):
        USERS = 0, "users"
        PRODUCTS = 1, "products"
        ORDERS = 2, "orders"

    # No index of its own: the unique constraint's (job, resource, first) serves every lookup.
    job = models.ForeignKey(
        IngestJob, on_delete=models.CASCADE, related_name="result_blocks", db_index=False
    )
    resource = models.SmallIntegerField(choices=Resource.choices)
    first = models.IntegerField()  # the index of the block's first record in its list
    size = models.IntegerField()
    data = models.BinaryField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["job", "resource", "first"], name="ingest_result_block_unique"
            )
        ]

    def __str__(self) -> str:
        last = self.first + self.size - 1
        return f"{self.get_resource_display()} {self.first}-{last} of {self.job_id}"
