"""``Idempotency-Key`` for ``POST /ingest/``: a retried request never writes twice.

A client that is not sure its batch arrived (a timeout, a dropped connection) sends it again
with the same key:

* same key, same request, first one finished: the stored response is replayed, nothing is
  written again (header ``Idempotent-Replayed: true``);
* same key, different request (body or query string): 422, the key is already bound;
* same key while the first request is still running: 409, with ``Retry-After``.

Keys live in the default database for ``INGEST_IDEMPOTENCY_TTL`` seconds (24 hours by default).
A request that fails with an error releases its key so that it can be retried. A server that
dies mid-request leaves its key locked for ``INGEST_IDEMPOTENCY_LOCK_TIMEOUT`` seconds; after
that, a retry with the key runs the batch again (records with explicit ids are then skipped as
duplicates).
"""

import hashlib
import re
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from config.db_router import DEFAULT_DATABASE
from ingest.models import IdempotencyKey

#: Printable ASCII without spaces, as most APIs that take such keys require.
KEY_PATTERN = re.compile(r"[\x21-\x7e]{1,255}")


class KeyInvalid(ValueError):
    """The header is not a usable key (a 400)."""


class KeyReused(Exception):
    """The key was used for a different request (a 422)."""


class KeyInProgress(Exception):
    """A request with this key is still running (a 409); ``retry_after`` in seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: bytes


def request_fingerprint(method: str, path: str, query: str, body: bytes) -> str:
    """What makes two requests "the same" for a key: method, path, query string and body."""
    digest = fingerprint_digest(method, path, query)
    digest.update(body)
    return digest.hexdigest()


def fingerprint_digest(method: str, path: str, query: str):
    """:func:`request_fingerprint` for a body that is read as a stream: feed the body's bytes
    to the returned hash with ``update()``, then take its ``hexdigest()``."""
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), query.encode()):
        digest.update(part)
        digest.update(b"\0")
    return digest


def validate_key(key: str) -> str:
    if not KEY_PATTERN.fullmatch(key):
        raise KeyInvalid(
            "Idempotency-Key must be 1 to 255 printable ASCII characters without spaces "
            "(a UUID is a good choice)."
        )
    return key


def claim(key: str, fingerprint: str, *, owner: str = "") -> StoredResponse | None:
    """Bind ``key`` to this request, or say why not.

    Returns ``None`` when the caller should process the request (then call :func:`complete`
    or :func:`release`), or the stored response to replay. Raises :class:`KeyReused` or
    :class:`KeyInProgress`.
    """
    now = timezone.now()
    lock_until = now + timedelta(seconds=settings.INGEST_IDEMPOTENCY_LOCK_TIMEOUT)
    with transaction.atomic(using=DEFAULT_DATABASE):
        # This key only, if it expired: the reaper purges the others (jobs.purge_expired).
        IdempotencyKey.objects.filter(owner=owner, key=key, expires_at__lte=now).delete()
        try:
            with transaction.atomic(using=DEFAULT_DATABASE):
                IdempotencyKey.objects.create(
                    owner=owner,
                    key=key,
                    request_hash=fingerprint,
                    locked_until=lock_until,
                    expires_at=now + timedelta(seconds=settings.INGEST_IDEMPOTENCY_TTL),
                )
            return None
        except IntegrityError:
            stored = IdempotencyKey.objects.select_for_update().get(owner=owner, key=key)
        if stored.request_hash != fingerprint:
            raise KeyReused(
                "This Idempotency-Key was already used with a different request; use a new key "
                "for a new batch."
            )
        if stored.status is not None:
            return StoredResponse(stored.status, bytes(stored.response))
        if stored.locked_until and stored.locked_until > now:
            raise KeyInProgress(max(1, int((stored.locked_until - now).total_seconds())))
        # The request that held the key stopped answering long ago: this one takes over.
        stored.locked_until = lock_until
        stored.save(update_fields=["locked_until"])
        return None


def complete(key: str, status: int, body: bytes, *, owner: str = "") -> None:
    """Store the response of the request that holds ``key``, for replays."""
    IdempotencyKey.objects.filter(owner=owner, key=key).update(
        status=status, response=body, locked_until=None
    )


def release(key: str, *, owner: str = "") -> None:
    """Forget ``key`` after its request failed, so that a retry runs the batch again."""
    IdempotencyKey.objects.filter(owner=owner, key=key, status__isnull=True).delete()


def purge_expired(*, now=None) -> int:
    """Delete the keys past their ``expires_at`` (the job reaper calls it); their count.

    :func:`claim` drops expired keys too, but only when a request with a key comes; this keeps
    the table from growing on a deployment that stopped sending keys. One indexed existence
    check when there is nothing to delete.
    """
    expired = IdempotencyKey.objects.filter(expires_at__lte=now or timezone.now())
    return expired.delete()[0] if expired.exists() else 0
