"""Abstract models shared by the services (each service owns its own concrete table)."""

from django.db import models


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
