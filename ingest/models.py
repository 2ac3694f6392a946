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

    ``processed`` counts the records whose outcome is final; ``result`` is the same body a
    synchronous ingest answers (JSON), once the job has finished. The batch itself is kept in
    :class:`IngestJobPayload`, so that listing jobs never loads it, and a worker gets only the
    job's id through the broker. A finished job is deleted ``INGEST_JOB_RETENTION`` seconds
    after ``finished_at`` (``ingest.jobs.purge_expired``).
    """

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    FINISHED = (State.SUCCEEDED, State.FAILED, State.CANCELLED)

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
