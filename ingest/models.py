"""Bookkeeping of the ingest endpoint, kept on the default database (never a service's)."""

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
