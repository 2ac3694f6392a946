"""Atomic batches across three databases: all or nothing, even when the undo has to wait.

An atomic ingest (``?atomic=true``) writes its users, products and orders in three transactions,
one per database, and commits them one after another: users, products, orders. There is no
two-phase commit across databases, so a commit can fail after an earlier one succeeded (a full
disk, a lost connection); the earlier commits are then undone at once, and when even that fails
(the same fault), later. What makes "later" safe is a *marker*: a row ``atomic:<batch>`` in the
service's own write ledger (``common.models.WriteLedger``), written in the same transaction as
the batch's rows in that service and listing their ids. It is committed exactly when they are,
in the same file, so whatever fails, each database itself says what a batch left there:

* orders commit last, so a batch is complete exactly when its orders marker exists;
* a users or products marker without an orders marker is an interrupted batch: the rows it
  inserted are deleted (through the services' deletion guards) and the rows it replaced,
  updated or deleted put back (the marker keeps their earlier state, ``before``, and what the
  batch wrote over them, ``after``), rows and marker in one transaction.

No extra database is involved, so this holds when the default database is on the same full
disk. :func:`finish_interrupted` does the undo; the pipeline runs it when a commit fails, at the
start of every ingest, and the job reaper runs it too. It must never undo a batch that is still
committing: every atomic batch holds the named lock :data:`BATCH_LOCK` in the orders database
(``common.data.db.hold_named_lock``) from before its first write until its orders transaction
ends, and the recovery takes it before it reads any marker. While the recovery holds it, no batch
is between its first commit and its last, so a users marker without an orders marker really is
left over. The orders markers are read first: a complete batch drops its markers when it is done
(users and products first, the orders one last: a lone orders marker is harmless, a lone users
marker would be undone), which may happen while the recovery reads.

Rows a marker lists do not count as existing for a new reference until their batch completes
(the users and products selectors leave them out: ``common.data.bulk.ids_of_unfinished_writes``),
so no order can come to point at a leftover row. Should one all the same (an order written
before this rule, or by hand), that row is not deleted: the deletion guards refuse
to leave an order pointing nowhere, and deleting someone else's order is not ours to do. The row
stays as an ordinary one (a warning names it), everything else of the batch is deleted, and a
re-sent batch reports that id as a duplicate.

Rows the batch replaced, updated or deleted need no such rule: an undo only ever adds them back,
so it cannot leave an order pointing nowhere. Until then they are ordinary rows, as the batch
left them: another client may change one, or store a new row under the id of one the batch
deleted, and that later write stands (``common.data.changes.put_back`` writes an earlier row
back only where the batch's own write is still there). Two things are visible meanwhile, and
only then: an order the batch deleted (in the orders transaction, never committed) points at a
user or product the batch deleted (committed) until the undo puts it back; and if someone
stored a new row under that id in between, that order points at the new row afterwards.
"""

import logging
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from django.db import DatabaseError, transaction

from common.data import bulk
from common.data.db import hold_named_lock
from common.exceptions import RecordReferenced
from orders_svc import services as order_services
from orders_svc.models import ORDERS_DB
from products_svc import services as product_services
from users_svc import services as user_services

log = logging.getLogger("store.ingest")

PREFIX = bulk.MARKER_PREFIX  # keys range from "atomic:" up to, not including, "atomic;"
BATCH_LOCK = "ingest:atomic-batches"
_ATTEMPTS = 3  # undo attempts when orders keep appearing for the rows (PostgreSQL only)


@dataclass(frozen=True)
class MarkedService:
    """A service whose rows an interrupted batch may leave: how to find and undo them."""

    name: str  # "users"
    reference_field: str  # what orders call it: "user_id"
    mark: Callable[..., None]  # (key, *, ids, ledger_keys), in the caller's transaction
    recorded: Callable[[Sequence[str]], set[str]]  # chunk keys a re-run will not write again
    keys: Callable[[str], list[str]]
    ids: Callable[[str], list[int] | None]  # rows the batch inserted
    undo: Callable[..., list[int]]  # (key, *, keep) -> ids deleted
    forget: Callable[[str], None]
    earlier_ids: Callable[[str], list[int] | None]  # rows replaced, updated or deleted


USERS = MarkedService(
    "users",
    "user_id",
    user_services.users_mark_batch,
    user_services.users_recorded_ledger_keys,
    user_services.users_batch_keys,
    user_services.users_batch_ids,
    user_services.users_undo_batch,
    user_services.users_forget_batch,
    user_services.users_batch_earlier_ids,
)
PRODUCTS = MarkedService(
    "products",
    "product_id",
    product_services.products_mark_batch,
    product_services.products_recorded_ledger_keys,
    product_services.products_batch_keys,
    product_services.products_batch_ids,
    product_services.products_undo_batch,
    product_services.products_forget_batch,
    product_services.products_batch_earlier_ids,
)
MARKED = (USERS, PRODUCTS)


@dataclass
class Finished:
    """What one recovery did, by batch key."""

    undone: list[str] = field(default_factory=list)  # interrupted batches now fully undone
    complete: list[str] = field(default_factory=list)  # complete batches whose markers went
    failed: dict[str, Exception] = field(default_factory=dict)  # left for the next attempt


def new_batch_key() -> str:
    return f"{PREFIX}{uuid.uuid4().hex}"


def hold_batch_lock() -> None:
    """Take the batch lock (inside an orders transaction, before any table lock there)."""
    hold_named_lock(ORDERS_DB, BATCH_LOCK)


def mark_complete(key: str) -> None:
    """Record, in the caller's orders transaction, that the batch's orders commit with it."""
    order_services.orders_mark_batch(key, ids=[], ledger_keys=[])


def forget_batch(key: str, marked: Collection[str]) -> None:
    """Drop the markers of a complete batch (best effort: leftovers are harmless)."""
    try:
        for service in MARKED:
            if service.name in marked:
                service.forget(key)
        order_services.orders_forget_batch(key)  # last: see the module docstring
    except DatabaseError as exc:
        log.warning("atomic batch %s is complete; its markers stay for now (%s)", key, exc)


def recorded_chunks(service_name: str, prefix: str) -> set[str]:
    """The write-ledger keys starting with ``prefix`` in the service's database (one indexed
    lookup): chunks a run under the same ledger key committed before, which a re-run reuses
    and must not list in its own markers (undoing it would take the earlier run's rows)."""
    return set(next(s for s in MARKED if s.name == service_name).keys(prefix))


def any_markers() -> bool:
    """Whether any database holds a batch marker: three indexed lookups, the normal path."""
    return bool(order_services.orders_batch_keys(PREFIX)) or any(
        service.keys(PREFIX) for service in MARKED
    )


def finish_interrupted() -> Finished:
    """Undo what interrupted atomic batches left, and drop the markers of complete ones.

    Waits for any atomic batch that is committing (the batch lock). A batch whose undo fails
    (its database still failing, or an order created meanwhile for one of its rows on
    PostgreSQL, again and again) is left for the next call, logged and listed in ``failed``.
    """
    finished = Finished()
    if not any_markers():
        return finished
    with transaction.atomic(using=ORDERS_DB):
        hold_batch_lock()
        complete = set(order_services.orders_batch_keys(PREFIX))  # first: see the docstring
        pending = {service.name: set(service.keys(PREFIX)) for service in MARKED}
        for key in sorted(complete.union(*pending.values())):
            # A savepoint: a batch whose undo fails does not spoil the others' transaction.
            with transaction.atomic(using=ORDERS_DB):
                _finish_one(key, key in complete, pending, finished)
    return finished


def _finish_one(key: str, complete: bool, pending: dict[str, set[str]], finished: Finished) -> None:
    """Drop a complete batch's markers, or undo an interrupted one (noting the outcome)."""
    if complete:
        forget_batch(key, [name for name, keys in pending.items() if key in keys])
        finished.complete.append(key)
        return
    try:
        for service in MARKED:
            if key in pending[service.name]:
                _undo(service, key)
    except (DatabaseError, RecordReferenced) as exc:
        log.warning("atomic batch %s: undo left for later (%s)", key, exc)
        finished.failed[key] = exc
    else:
        log.info("atomic batch %s: interrupted, undone", key)
        finished.undone.append(key)


def _undo(service: MarkedService, key: str) -> None:
    """Delete one service's rows of an interrupted batch, but those an order points at."""
    keep: set[int] = set()
    for attempt in range(_ATTEMPTS):
        try:
            service.undo(key, keep=keep)
        except RecordReferenced:
            if attempt == _ATTEMPTS - 1:
                raise
            ids = service.ids(key) or []
            keep |= order_services.orders_referencing(service.reference_field, ids)
            continue
        if keep:
            log.warning(
                "atomic batch %s: kept %d %s that orders now point at (ids %s); they stay as "
                "ordinary rows",
                key,
                len(keep),
                service.name,
                sorted(keep)[:20],
            )
        return


@dataclass
class LeftBehind:
    """What an interrupted batch still has in each database, by its markers: ``stored``, the
    ids of rows it inserted that are still there; ``not_restored``, the ids of rows it replaced,
    updated or deleted whose earlier state is not put back yet."""

    stored: dict[str, list[int]] = field(default_factory=dict)
    not_restored: dict[str, list[int]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.stored or self.not_restored)


def left_behind(
    key: str,
    fallback: dict[str, list[int]],
    fallback_changed: dict[str, list[int]] | None = None,
) -> LeftBehind:
    """What the batch ``key`` still has in each database (by its markers).

    A database that cannot be read is assumed to hold what ``fallback`` (inserted ids) and
    ``fallback_changed`` (ids replaced, updated or deleted) say for it.
    """
    left = LeftBehind()
    for service in MARKED:
        try:
            ids, earlier = service.ids(key), service.earlier_ids(key)
        except DatabaseError:
            ids = fallback.get(service.name)
            earlier = (fallback_changed or {}).get(service.name)
        if ids:
            left.stored[service.name] = ids
        if earlier:
            left.not_restored[service.name] = earlier
    return left
