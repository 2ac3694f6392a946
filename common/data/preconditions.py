"""Preconditions: a write that happens only if the stored record is still the one a client read.

HTTP's ``If-Match`` says "change this record only if it is still the version I read" (see
``common.http.conditional``). The comparison must run inside the writing transaction, on the
row as read under the lock the write holds: compared before the transaction begins, two
clients that read the same version could both pass it, and the second would overwrite the
first's change without having seen it (a lost update). So a service's update and delete take
an optional ``precondition``, a callable it gives the stored record to, under its lock, before
writing; it raises to refuse, which rolls the transaction back.

On SQLite every write transaction begins with ``BEGIN IMMEDIATE`` (the file's write lock), so
the row read inside it cannot change before the commit; on PostgreSQL it is read ``FOR UPDATE``.
"""

from collections.abc import Callable

from django.db import models

from common.exceptions import RecordNotFound

#: Given the stored record under the write's lock; raises to refuse the write.
Precondition = Callable[[models.Model], None]


def check_stored(
    model: type[models.Model], record_id: int, precondition: Precondition | None
) -> None:
    """Call ``precondition`` with the stored ``model`` row ``record_id``, read under the lock of
    the caller's transaction (call it inside one); ``RecordNotFound`` if the row is gone."""
    if precondition is None:
        return
    stored = model.objects.select_for_update().filter(id=record_id).first()
    if stored is None:
        raise RecordNotFound(f"{model._meta.verbose_name.capitalize()} {record_id} does not exist.")
    precondition(stored)
