"""The users table, exactly ``users(id, name, email)`` as in the seed report.

Emails are not unique: the seed data has two users with alice@example.com, and the report keeps
both.
"""

from django.db import models

from common.models import WriteLedger
from config.db_router import database_for_app


class User(models.Model):
    name = models.CharField(max_length=255)
    email = models.EmailField(max_length=254)

    class Meta:
        db_table = "users"
        ordering = ["id"]
        # One per ordering the list offers, id breaking ties (common.data.keyset).
        indexes = [
            models.Index(fields=["name", "id"], name="users_name_id"),
            models.Index(fields=["email", "id"], name="users_email_id"),
        ]
        verbose_name = "user"

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"


class UserWriteLedger(WriteLedger):
    """Bulk-ingest chunks already written to the users table (see common.models.WriteLedger)."""

    class Meta(WriteLedger.Meta):
        db_table = "users_write_ledger"


#: The alias this service reads and writes (see config.db_router).
USERS_DB = database_for_app(User._meta.app_label)
