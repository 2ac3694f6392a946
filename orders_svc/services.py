"""Writes to the orders database, after checking references with the other two services.

Every order write runs in one orders transaction that first locks out concurrent deletions of
the users and products it points at (``common.data.db``), then asks the users and products services
whether the ids exist (their public selectors), then writes. A user or product deleted at the
same moment either finishes first (the order is refused) or waits for the order and then sees it
(the deletion is refused with a 409).
"""

import itertools
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from django.db import DatabaseError, IntegrityError, connections, transaction
from django.db.models import F

from common.data import bulk, changes
from common.data.db import lock_for_checked_insert, lock_out_inserts, lock_out_writers
from common.data.ids import assigning_id
from common.data.preconditions import Precondition, check_stored
from common.data.queries import id_list_param, id_list_sql
from common.data.unreachable import unreachable
from common.exceptions import RecordInvalid, RecordNotFound
from orders_svc import rules, selectors
from orders_svc.models import ORDERS_DB, DeletionEpoch, Order, OrderWriteLedger
from products_svc.selectors import existing_product_ids
from users_svc.selectors import existing_user_ids

ORDERS_TABLE = Order._meta.db_table

OrderRow = tuple[int | None, int, int, int]  # (id or None, user_id, product_id, quantity)


def _require_references(user_id: int, product_id: int) -> None:
    errors = rules.check_references(
        user_id, product_id, existing_user_ids([user_id]), existing_product_ids([product_id])
    )
    if errors:
        raise RecordInvalid(errors)


def order_create(*, user_id: int, product_id: int, quantity: int) -> Order:
    """Store an order for an existing user and product; raise ``RecordInvalid`` otherwise
    (and ``IdsExhausted`` if no id is left for it)."""
    with assigning_id(Order), transaction.atomic(using=ORDERS_DB):
        lock_for_checked_insert(ORDERS_DB, ORDERS_TABLE)
        _require_references(user_id, product_id)
        return Order.objects.create(user_id=user_id, product_id=product_id, quantity=quantity)


def order_update(
    order: Order,
    *,
    user_id: int,
    product_id: int,
    quantity: int,
    precondition: Precondition | None = None,
) -> Order:
    """Replace an order's fields; a changed user or product is checked like a new order.

    "Changed" is against the order as stored now, read under the lock (not as the caller read
    it: another request may have moved it since), as a bulk update does
    (``orders_bulk_update``): a quantity change of an order whose user was deleted behind the
    service's back is taken alike by both. ``precondition`` is given that stored order too.
    """
    with transaction.atomic(using=ORDERS_DB):
        lock_for_checked_insert(ORDERS_DB, ORDERS_TABLE)
        stored = Order.objects.select_for_update().filter(id=order.id).first()
        if stored is None:
            raise RecordNotFound(f"Order {order.id} does not exist.")
        if precondition is not None:
            precondition(stored)
        if (user_id, product_id) != (stored.user_id, stored.product_id):
            _require_references(user_id, product_id)
        Order.objects.filter(id=order.id).update(
            user_id=user_id, product_id=product_id, quantity=quantity
        )
    order.user_id, order.product_id, order.quantity = user_id, product_id, quantity
    return order


def order_delete(order: Order, *, precondition: Precondition | None = None) -> None:
    """Delete an order (nothing references orders); ``RecordNotFound`` if it is gone already
    (if ``precondition`` accepts the stored order)."""
    with transaction.atomic(using=ORDERS_DB):
        check_stored(Order, order.id, precondition)
        # Gone since the view read it (another request deleted it): a 404, as it is afterwards,
        # so that each deletion is reported by one request only.
        if not Order.objects.filter(id=order.id).delete()[0]:
            raise RecordNotFound(f"Order {order.id} does not exist.")


def reference_errors(
    rows: Sequence[OrderRow],
    *,
    known_user_ids: AbstractSet[int] = frozenset(),
    known_product_ids: AbstractSet[int] = frozenset(),
    unavailable: dict[str, str] | None = None,
) -> dict[int, dict[str, list[str]]]:
    """Errors by row position for orders whose user or product does not exist.

    ``known_*`` are ids the caller knows exist (e.g. it inserted them in this batch); every
    other id is looked up: one query to the users service and one to the products service for
    the whole set of rows, never one per order. ``unavailable`` (service -> why), shared by
    the chunks of one batch, keeps a service found down from being asked again for each
    chunk: every try would wait out the connect timeout of a server cut off by the network.
    """
    return reference_errors_by_chunk(
        [rows],
        known_user_ids=known_user_ids,
        known_product_ids=known_product_ids,
        unavailable=unavailable,
    )[0]


#: The most ids one lookup query asks about.
LOOKUP_SLICE = 50_000


def reference_errors_by_chunk(
    chunks: Sequence[Sequence[OrderRow]],
    *,
    known_user_ids: AbstractSet[int] = frozenset(),
    known_product_ids: AbstractSet[int] = frozenset(),
    unavailable: dict[str, str] | None = None,
) -> list[dict[int, dict[str, list[str]]]]:
    """:func:`reference_errors` of each chunk, the ids of all of them looked up together: one
    query per service for every ``LOOKUP_SLICE`` unknown ids, not two per chunk (each of which
    also asks the service's ledger for unfinished writes). A 300,000-record ingest on PostgreSQL
    spent 290 ms on the ten chunks' 40 queries, 27 ms a chunk, after its orders were written."""
    unavailable = {} if unavailable is None else unavailable
    unknown_users: set[int] = set()
    unknown_products: set[int] = set()
    for rows in chunks:
        unknown_users.update([row[1] for row in rows])
        unknown_products.update([row[2] for row in rows])
    unknown_users -= known_user_ids
    unknown_products -= known_product_ids
    missing_users, users_down = _missing(existing_user_ids, unknown_users, "users", unavailable)
    missing_products, products_down = _missing(
        existing_product_ids, unknown_products, "products", unavailable
    )
    answered_an_error = (users_down and "users" not in unavailable) or (
        products_down and "products" not in unavailable
    )
    if answered_an_error and len(chunks) > 1:
        # A locked file, a cancelled statement: each chunk tries again on its own, and may
        # well get its answer (a server that could not be reached is not asked again).
        return [
            reference_errors(
                rows,
                known_user_ids=known_user_ids,
                known_product_ids=known_product_ids,
                unavailable=unavailable,
            )
            for rows in chunks
        ]
    if not missing_users and not missing_products:
        return [{} for _ in chunks]
    users, products = _AllBut(missing_users), _AllBut(missing_products)
    # Rows that fail the same way share one reasons object: 300,000 orders pointing at missing
    # users are one dict, not 300,000 (and the answer groups them by identity, cheaply).
    shared: dict[tuple[bool, bool], dict[str, list[str]]] = {}
    found = []
    for rows in chunks:
        errors = {}
        for position, row in enumerate(rows):
            how = (row[1] in missing_users, row[2] in missing_products)
            if how == (False, False):
                continue
            reasons = shared.get(how)
            if reasons is None:
                reasons = shared[how] = rules.check_references(row[1], row[2], users, products)
                # An id that could not be looked up is not known to be missing: say why instead.
                if users_down and how[0]:
                    reasons["user_id"] = [_UNCHECKABLE.format(service="users", error=users_down)]
                if products_down and how[1]:
                    reasons["product_id"] = [
                        _UNCHECKABLE.format(service="products", error=products_down)
                    ]
            errors[position] = reasons
        found.append(errors)
    return found


_UNCHECKABLE = (
    "Cannot be checked: the {service} service is unavailable ({error}); send this order again "
    "once it is back."
)


def _missing(
    existing: Callable[[set[int]], set[int]],
    ids: set[int],
    service: str,
    unavailable: dict[str, str],
) -> tuple[set[int], str]:
    """``(ids that do not exist, "")``, or ``(all of them, why)`` if their service is down
    (now, or its server could not be reached earlier in the batch: ``unavailable``)."""
    if not ids:
        return ids, ""
    if service in unavailable:
        return ids, unavailable[service]
    try:
        if len(ids) <= LOOKUP_SLICE:
            return ids - existing(ids), ""
        wanted = sorted(ids)
        found = set()
        for start in range(0, len(wanted), LOOKUP_SLICE):
            found |= existing(wanted[start : start + LOOKUP_SLICE])
        return ids - found, ""
    except DatabaseError as exc:
        why = str(exc).strip().splitlines()[0][:200]
        if unreachable(exc):  # not asked again in this batch (a locked file may answer next)
            unavailable[service] = why
        return ids, why


class _AllBut:
    """Every id except the missing ones: what exists, without listing it."""

    __slots__ = ("missing",)

    def __init__(self, missing: AbstractSet[int]) -> None:
        self.missing = missing

    def __contains__(self, item: object) -> bool:
        return item not in self.missing


@dataclass(frozen=True)
class KnownReferences:
    """Users and products a caller knows exist, e.g. because it just inserted them.

    They count as existing without a lookup: unconditionally if ``as_of_epoch`` is None (the
    caller holds every lock, as an atomic ingest does), else only if no user or product was
    deleted since that deletion epoch (see ``DeletionEpoch``).
    """

    user_ids: AbstractSet[int] = frozenset()
    product_ids: AbstractSet[int] = frozenset()
    as_of_epoch: int | None = None


ChunkOutcome = tuple[list[int | None], dict[int, dict[str, list[str]]]]


def orders_bulk_insert(
    chunks: Iterable[Sequence[OrderRow]],
    *,
    ids_above: int = 0,
    references_ready: Callable[[], KnownReferences] = KnownReferences,
    ledger_key: str | None = None,
) -> list[ChunkOutcome]:
    """Insert checked order rows, check their references, keep only the valid ones (bulk ingest).

    All in one orders transaction, which holds the orders lock throughout: first the chunks are
    written as they come (the costly part: the table and its two indexes; ``chunks`` may be a
    generator that yields while its producer checks the next ones), then ``references_ready()`` is
    called, which may block until the users and products the orders point at are committed
    (bulk ingest writes them meanwhile, on other threads), then the chunks' users and products
    are checked (one query per database, for the ids not already known) and the
    orders that point nowhere are deleted again before the commit. Nothing is visible to others
    before the commit, so no reader ever sees an order whose user or product is missing.

    Returns, per chunk, each row's stored id (``None`` if it was not kept) and, by row position,
    the reference errors of the refused rows; a ``None`` without errors is a duplicate id. With
    a ``ledger_key`` that was recorded before (a re-run), nothing is written and the recorded
    outcome comes back.
    """
    ledger = (OrderWriteLedger, ledger_key) if ledger_key else None
    chunks = iter(chunks)
    first = next(chunks, None)
    if first is None:  # no orders at all: no transaction, no lock
        references_ready()
        return []
    with transaction.atomic(using=ORDERS_DB):
        lock_for_checked_insert(ORDERS_DB, ORDERS_TABLE)
        if ledger is not None and (done := bulk.recorded_outcome(ledger)) is not None:
            for _ in chunks:  # let a producer that is still handing chunks over finish
                pass
            return [_outcome_from_ledger(chunk) for chunk in done]
        written = [
            (rows, bulk.insert_new_in_transaction(Order, rows, ids_above=ids_above))
            for rows in itertools.chain([first], chunks)
        ]
        known = references_ready()
        if known.as_of_epoch is not None and selectors.deletion_epoch() != known.as_of_epoch:
            known = KnownReferences()  # something was deleted meanwhile: look everything up
        outcomes, refused = [], []
        by_chunk = reference_errors_by_chunk(
            [rows for rows, _ in written],
            known_user_ids=known.user_ids,
            known_product_ids=known.product_ids,
        )
        for (_, ids), errors in zip(written, by_chunk, strict=True):
            for position in errors:
                if ids[position] is not None:
                    refused.append(ids[position])
                    ids[position] = None
            outcomes.append((ids, errors))
        bulk.delete_ids(Order, refused)
        if ledger is not None:
            bulk.record_outcome(ledger, [_outcome_for_ledger(*outcome) for outcome in outcomes])
    return outcomes


def _outcome_for_ledger(ids: list[int | None], errors: dict[int, dict]) -> tuple:
    """A chunk's outcome as the ledger stores it: ``(ids, reasons, positions, which)``, each
    distinct reasons once and each refused row as two small ints. Rows that fail alike share
    one reasons object (see ``reference_errors``); written out per row, 300,000 refused orders
    cost a ledger row of about 30 MB and 80 MB more at the peak of the request."""
    table: list[dict] = []
    index_of: dict[int, int] = {}
    positions, which = [], []
    for position, reasons in errors.items():
        number = index_of.get(id(reasons))
        if number is None:
            number = index_of[id(reasons)] = len(table)
            table.append(reasons)
        positions.append(position)
        which.append(number)
    return ids, table, positions, which


def _outcome_from_ledger(chunk: list) -> ChunkOutcome:
    if len(chunk) == 2:  # written by an older version: (ids, [(position, reasons), ...])
        ids, errors = chunk
        return ids, {int(position): reasons for position, reasons in errors}
    ids, table, positions, which = chunk
    return ids, {position: table[number] for position, number in zip(positions, which, strict=True)}


def orders_forget_ledger(key_prefix: str) -> None:
    """Drop the write-ledger rows of a finished job (see ``common.models.WriteLedger``)."""
    bulk.forget_outcomes(OrderWriteLedger, key_prefix)


def orders_forget_ledger_before(*, cutoff: datetime) -> int:
    """Delete the write-ledger rows older than ``cutoff`` (what crashed runs left); their count.

    One indexed existence check when there is none, so that the reaper can call it often
    without taking the database's write lock for nothing.
    """
    stale = OrderWriteLedger.objects.filter(created_at__lt=cutoff)
    return stale.delete()[0] if stale.exists() else 0


@contextmanager
def _hold_references(field: str, ids: Collection[int]) -> Iterator[dict[str, dict[int, int]]]:
    with transaction.atomic(using=ORDERS_DB):
        lock_out_inserts(ORDERS_DB, ORDERS_TABLE)
        counts = selectors.orders_per_reference(field, ids)
        if len(counts) < len(set(ids)):  # some may be deleted: streaming ingests must know
            _bump_deletion_epoch()  # rolled back with the rest if the deletion fails
        yield {"orders": counts}


def _bump_deletion_epoch() -> None:
    if DeletionEpoch.objects.filter(id=1).update(value=F("value") + 1):
        return
    try:  # the first deletion ever: create the row (two guards may race to do it)
        with transaction.atomic(using=ORDERS_DB):
            DeletionEpoch.objects.create(id=1, value=1)
    except IntegrityError:
        DeletionEpoch.objects.filter(id=1).update(value=F("value") + 1)


def hold_user_references(ids: Collection[int]):
    """Deletion guard for users (see ``common.data.references``): orders per user, locked."""
    return _hold_references("user_id", ids)


def hold_product_references(ids: Collection[int]):
    """Deletion guard for products (see ``common.data.references``): orders per product, locked."""
    return _hold_references("product_id", ids)


def orders_delete_many(ids: Sequence[int]) -> None:
    """Delete orders by id (nothing references orders)."""
    with transaction.atomic(using=ORDERS_DB):
        bulk.delete_ids(Order, ids)


def lock_orders_for_held_batch() -> None:
    """Take the orders lock of a batch that holds its transactions in every database until it
    ends (an atomic ingest: ``common.data.db.lock_out_writers``), before it writes anything."""
    lock_out_writers(ORDERS_DB, ORDERS_TABLE)


def orders_referencing(field: str, ids: Collection[int]) -> set[int]:
    """Which of ``ids`` (of users or products, by ``field``) at least one order points at."""
    assert field in ("user_id", "product_id"), f"orders reference users and products, not {field}"
    if not ids:
        return set()
    connection = connections[ORDERS_DB]
    column = connection.ops.quote_name(Order._meta.get_field(field).column)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT DISTINCT {column} FROM {connection.ops.quote_name(ORDERS_TABLE)} "
            f"WHERE {column} IN ({id_list_sql(connection)})",
            [id_list_param(connection, ids)],
        )
        return {row[0] for row in cursor.fetchall()}


# --- bulk changes (ingest actions; see common.data.changes) ----------------------------------
#
# Every write of orders that may point at another user or product runs under the orders lock
# and checks those references first, as one order's create and update do; deletions of orders
# need no check (nothing points at an order).

_NOT_FOUND = {"id": ["No order has this id."]}


def _ledger(key: str | None):
    return (OrderWriteLedger, key) if key else None


def _checked_write(ledger_key: str | None, compute: Callable[[], changes.Outcome]):
    with transaction.atomic(using=ORDERS_DB):
        lock_for_checked_insert(ORDERS_DB, ORDERS_TABLE)
        return changes.with_ledger(_ledger(ledger_key), compute)


def orders_bulk_insert_checked(
    rows: Sequence[OrderRow],
    *,
    ids_above: int = 0,
    ledger_key: str | None = None,
    before: list | None = None,
) -> changes.Outcome:
    """Insert checked order rows whose user and product exist, in one transaction (a batch
    with other actions than inserts; plain inserts take :func:`orders_bulk_insert`). A row
    refused without reasons has an id that is already stored."""

    def compute() -> changes.Outcome:
        errors = reference_errors(rows)
        kept = [row for position, row in enumerate(rows) if position not in errors]
        stored = iter(bulk.insert_new_in_transaction(Order, kept, ids_above=ids_above))
        ids = [None if position in errors else next(stored) for position in range(len(rows))]
        return ids, errors, []

    return _checked_write(ledger_key, compute)


def orders_bulk_upsert(
    rows: Sequence[OrderRow], *, ledger_key: str | None = None, before: list | None = None
) -> changes.Outcome:
    """Insert or replace whole order rows whose user and product exist, in one transaction."""
    return _checked_write(
        ledger_key,
        lambda: changes.apply_upserts(Order, rows, check=reference_errors, before=before),
    )


def orders_bulk_update(
    patches: Sequence[tuple], *, ledger_key: str | None = None, before: list | None = None
) -> changes.Outcome:
    """Change the given fields of stored orders; a changed user or product is checked like a
    new order's, every merged order by ``rules.check_order``, in one transaction."""
    return _checked_write(
        ledger_key,
        lambda: changes.apply_updates(
            Order,
            patches,
            rule=rules.check_order,
            not_found=_NOT_FOUND,
            check=_changed_references,
            before=before,
        ),
    )


def _changed_references(merged: Sequence[OrderRow], old: Sequence[OrderRow]) -> dict:
    changed = [
        offset
        for offset, (new, was) in enumerate(zip(merged, old, strict=True))
        if new[1] != was[1] or new[2] != was[2]
    ]
    errors = reference_errors([merged[offset] for offset in changed])
    return {changed[position]: reasons for position, reasons in errors.items()}


def orders_bulk_delete(
    ids: Sequence[int], *, ledger_key: str | None = None, before: list | None = None
) -> changes.Outcome:
    """Delete orders by id, in one transaction; an id that is not stored is refused."""
    with transaction.atomic(using=ORDERS_DB):
        return changes.with_ledger(
            _ledger(ledger_key),
            lambda: changes.apply_deletions(
                Order, ids, referenced={}, not_found=_NOT_FOUND, before=before
            ),
        )


# --- markers of atomic ingest batches (see ingest.atomic) ------------------------------------


def orders_mark_batch(key: str, *, ids: Sequence[int], ledger_keys: Sequence[str]) -> None:
    """Record, in the caller's orders transaction, that an atomic batch committed its orders."""
    bulk.record_marker((OrderWriteLedger, key), ids, ledger_keys)


def orders_batch_keys(prefix: str) -> list[str]:
    """The keys of the batch markers in the orders ledger (one indexed lookup)."""
    return bulk.ledger_keys_with_prefix(OrderWriteLedger, prefix)


def orders_forget_batch(key: str) -> None:
    """Drop a batch marker (the batch is complete), in its own transaction."""
    bulk.forget_keys(OrderWriteLedger, [key])
