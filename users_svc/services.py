"""Writes to the users database. Callers pass values already checked by ``rules.check_user``."""

from collections.abc import Collection, Sequence
from contextlib import nullcontext
from datetime import datetime

from django.db import transaction

from common.data import bulk, changes
from common.data.ids import assigning_id
from common.data.preconditions import Precondition, check_stored
from common.data.references import guard_deletion, hold_references
from common.exceptions import RecordNotFound
from users_svc import rules
from users_svc.models import USERS_DB, User, UserWriteLedger


def user_create(*, name: str, email: str) -> User:
    """Store a new user; the database assigns its id (``IdsExhausted`` if none is left)."""
    with assigning_id(User), transaction.atomic(using=USERS_DB):
        return User.objects.create(name=name, email=email)


def user_update(
    user: User, *, name: str, email: str, precondition: Precondition | None = None
) -> User:
    """Replace a user's name and email (if ``precondition`` accepts the stored user)."""
    with transaction.atomic(using=USERS_DB):
        check_stored(User, user.id, precondition)
        if not User.objects.filter(id=user.id).update(name=name, email=email):
            raise RecordNotFound(f"User {user.id} does not exist.")
    user.name, user.email = name, email
    return user


def user_delete(user: User, *, precondition: Precondition | None = None) -> None:
    """Delete a user no order points at; raise ``RecordReferenced`` (409) otherwise, and
    ``RecordNotFound`` if it is gone already (if ``precondition`` accepts the stored user)."""
    with guard_deletion("users", [user.id]), transaction.atomic(using=USERS_DB):
        check_stored(User, user.id, precondition)
        # Gone since the view read it (another request deleted it): a 404, as it is afterwards,
        # so that each deletion is reported by one request only.
        if not User.objects.filter(id=user.id).delete()[0]:
            raise RecordNotFound(f"User {user.id} does not exist.")


def users_bulk_insert(
    rows: Sequence[tuple[int | None, str, str]],
    *,
    ids_above: int = 0,
    ledger_key: str | None = None,
) -> list[int | None]:
    """Insert checked ``(id or None, name, email)`` rows in one transaction (bulk ingest).

    Returns each row's stored id, or ``None`` where its explicit id already exists. A chunk
    written before under ``ledger_key`` is not written again (its recorded ids come back).
    """
    ledger = (UserWriteLedger, ledger_key) if ledger_key else None
    return bulk.insert_new(User, rows, ids_above=ids_above, ledger=ledger)


def users_forget_ledger(key_prefix: str) -> None:
    """Drop the write-ledger rows of a finished job (see ``common.models.WriteLedger``)."""
    bulk.forget_outcomes(UserWriteLedger, key_prefix)


def users_forget_ledger_before(*, cutoff: datetime) -> int:
    """Delete the write-ledger rows older than ``cutoff`` (what crashed runs left); their count.

    One indexed existence check when there is none, so that the reaper can call it often
    without taking the database's write lock for nothing.
    """
    stale = UserWriteLedger.objects.filter(created_at__lt=cutoff)
    return stale.delete()[0] if stale.exists() else 0


def users_delete_many(ids: Sequence[int]) -> None:
    """Delete users by id, all or none; raise ``RecordReferenced`` if orders point at any."""
    with guard_deletion("users", ids), transaction.atomic(using=USERS_DB):
        bulk.delete_ids(User, ids)


# --- bulk changes (ingest actions upsert, update, delete; see common.data.changes) ----------

_NOT_FOUND = {"id": ["No user has this id."]}


def _ledger(key: str | None):
    return (UserWriteLedger, key) if key else None


def users_bulk_upsert(
    rows: Sequence[tuple], *, ledger_key: str | None = None, before: list | None = None
) -> changes.Outcome:
    """Insert or replace checked whole rows (id first, every id given), in one transaction."""
    with transaction.atomic(using=USERS_DB):
        return changes.with_ledger(
            _ledger(ledger_key), lambda: changes.apply_upserts(User, rows, before=before)
        )


def users_bulk_update(
    patches: Sequence[tuple], *, ledger_key: str | None = None, before: list | None = None
) -> changes.Outcome:
    """Change the given fields of stored users (``(id, value or UNSET, ...)``, in the rule's
    order); each merged record is checked by ``rules.check_user``, in one transaction."""
    with transaction.atomic(using=USERS_DB):
        return changes.with_ledger(
            _ledger(ledger_key),
            lambda: changes.apply_updates(
                User, patches, rule=rules.check_user, not_found=_NOT_FOUND, before=before
            ),
        )


def users_bulk_delete(
    ids: Sequence[int], *, ledger_key: str | None = None, before: list | None = None
) -> changes.Outcome:
    """Delete the users no order points at; refuse the others, saying how many orders do.

    The deletion guards hold their locks until the deletion commits, as for one user.
    """
    with hold_references("users", ids) as referenced, transaction.atomic(using=USERS_DB):
        return changes.with_ledger(
            _ledger(ledger_key),
            lambda: changes.apply_deletions(
                User, ids, referenced=referenced, not_found=_NOT_FOUND, before=before
            ),
        )


# --- markers of atomic ingest batches (see ingest.atomic) ------------------------------------


def users_mark_batch(
    key: str, *, ids: Sequence[int], ledger_keys: Sequence[str], before: Sequence[tuple] = ()
) -> None:
    """Record, in the caller's users transaction, the rows an atomic batch inserted there and
    the earlier state of those it replaced or deleted."""
    bulk.record_marker((UserWriteLedger, key), ids, ledger_keys, before)


def users_batch_keys(prefix: str) -> list[str]:
    """The keys of the batch markers in the users ledger (one indexed lookup)."""
    return bulk.ledger_keys_with_prefix(UserWriteLedger, prefix)


def users_batch_ids(key: str) -> list[int] | None:
    """The users ids the batch marker ``key`` lists, or None if there is none."""
    return bulk.marked_ids((UserWriteLedger, key))


def users_batch_earlier_ids(key: str) -> list[int] | None:
    """The users ids whose earlier state the batch marker ``key`` keeps (rows the batch
    replaced, updated or deleted), or None if there is no such marker."""
    return bulk.marked_earlier_ids((UserWriteLedger, key))


def users_undo_batch(key: str, *, keep: Collection[int] = frozenset()) -> list[int]:
    """Delete the users an interrupted batch inserted (but ``keep``), put back those it replaced,
    updated or deleted, and drop its marker, all or none.

    The deletion guards run as for any deletion: ``RecordReferenced`` if an order points at one
    of the ids to delete. Returns the ids deleted.
    """
    keep = frozenset(keep)
    ids = [i for i in (users_batch_ids(key) or ()) if i not in keep]
    guard = guard_deletion("users", ids) if ids else nullcontext()
    with guard, transaction.atomic(using=USERS_DB):
        return changes.undo_marked_batch(User, (UserWriteLedger, key), keep=keep)


def users_recorded_ledger_keys(keys: Sequence[str]) -> set[str]:
    """Which of the write-ledger ``keys`` are recorded (chunks a re-run will not write again)."""
    return bulk.recorded_keys(UserWriteLedger, keys)


def users_forget_batch(key: str) -> None:
    """Drop a batch marker (the batch is complete), in its own transaction."""
    bulk.forget_keys(UserWriteLedger, [key])
