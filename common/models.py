"""Models of the shared app: the API keys of clients (a concrete table on the default
database), and abstract models the services share (each service owns its concrete table)."""

from django.conf import settings
from django.db import models
from rest_framework_api_key.models import AbstractAPIKey


class WriteLedger(models.Model):
    """Chunks of a bulk write that are done, by key: written in the same transaction as the rows.

    A long ingest job that dies halfway and runs again must not insert a record twice, and a
    record without an explicit id cannot be recognised as "already there" by its id. So every
    chunk written under a key (``job:<id>:users:3``) leaves a row here, in the same transaction
    and database as the chunk's rows: either both are committed or neither. A re-run finds the
    key and reuses the stored outcome instead of writing the chunk again.
    """

    key = models.CharField(max_length=200, unique=True)
    outcome = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.key


class ApiKey(AbstractAPIKey):
    """An API key of a client account: only its prefix and a hash of it are stored.

    A key is ``<prefix>.<secret>`` (``djangorestframework-api-key``'s format): the prefix, kept
    in clear, finds the row; the whole key is then checked against ``hashed_key`` (SHA-512,
    compared in constant time; a key is 190 random bits, so a slow password hash adds nothing).
    The key itself is shown once, when it is made, and can never be read back. A client (a
    Django user without a password) may hold several keys, each with its own name, expiry and
    revocation; ``request.user`` is the client, whichever of its keys it sent.

    Tokens of the plaintext scheme used before (40 hex characters, DRF's ``authtoken``) were
    turned into keys of this table by a migration, their prefix derived from the token (see
    :func:`common.http.auth.legacy_prefix`), so that clients keep the token they have.
    """

    client = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    last_used_at = models.DateTimeField(
        null=True, blank=True, help_text="Updated at most once a minute."
    )

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "API key"
        verbose_name_plural = "API keys"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
