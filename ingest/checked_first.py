"""Dry runs and atomic batches: every check, the databases' included, before anything is written.

Both modes check every record by its rules (``ingest.checking``), then against the databases:
explicit ids already stored, each order's user and product (one query per chunk per
database; an order may point at a user or product of the batch that passed its checks), and
whether an id is left for each record without one (one query per type that has such records:
once a table has used the largest id, they are skipped, as the write would skip them).

* ``dry_run`` stops there and writes nothing: the result's ``valid`` counts the records that
  passed every check.
* ``atomic`` runs those checks under all three databases' write locks and writes only if every
  record passed, and then all of it or nothing (:func:`_ingest_atomic`), on the caller's thread
  and in its transactions. A marker in each database (``ingest.atomic``) makes "nothing" hold
  across the three even when a commit fails after another succeeded: what the earlier commits
  wrote is deleted at once, or as soon as the database lets it, and the answer is a 503
  (:class:`ingest.results.WriteFailed`).

A run asked to stop (an aborted job, ``ingest.runs``) stops at its next chunk in either mode,
and keeps nothing: a dry run never writes, and an atomic batch is rolled back whole.
"""

from collections.abc import Callable
from contextlib import ExitStack

from django.conf import settings
from django.db import DatabaseError, transaction

from ingest import atomic as atomic_batches  # the markers and the recovery; `atomic` is the mode
from ingest.checking import Checked, check_records
from ingest.records import Batch
from ingest.resources import ORDERS, PRODUCTS, USERS
from ingest.results import (
    IngestResult,
    ResourceResult,
    WriteFailed,
    duplicate_reason,
    fold_chunk,
    kept_nothing,
    no_id_left_reason,
    result_of,
)
from ingest.runs import Aborted, Run
from orders_svc import services as order_services
from orders_svc.models import ORDERS_DB
from orders_svc.selectors import existing_order_ids, order_ids_left
from products_svc import services as product_services
from products_svc.models import PRODUCTS_DB
from products_svc.selectors import existing_product_ids, product_ids_left
from users_svc import services as user_services
from users_svc.models import USERS_DB
from users_svc.selectors import existing_user_ids, user_ids_left


def ingest_checked_first(batch: Batch, *, dry_run: bool, run: Run) -> IngestResult:
    """Check everything before writing anything: the dry-run and atomic modes."""
    users = check_records(batch.users, USERS)
    products = check_records(batch.products, PRODUCTS)
    orders = check_records(batch.orders, ORDERS)
    batch.users = batch.products = batch.orders = []
    results = IngestResult(
        result_of(users),
        result_of(products),
        result_of(orders),
        dry_run=dry_run,
        atomic=not dry_run,
    )
    if dry_run:
        try:
            _validate_against_databases(users, products, orders, results, run)
        except Aborted:
            return kept_nothing(results)
        run.advance(len(users.rows) + len(products.rows) + len(orders.rows))
        return results
    return _ingest_atomic(users, products, orders, results, run)


def _validate_against_databases(
    users: Checked, products: Checked, orders: Checked, results: IngestResult, run: Run
) -> None:
    """The checks that need the databases, for every row: duplicate ids and references.

    An order may point at a user or product of the same batch that passed its checks. Raises
    :class:`Aborted` at a chunk if the run was asked to stop.
    """
    user_ids = _check_duplicates(users, existing_user_ids, results.users, run)
    product_ids = _check_duplicates(products, existing_product_ids, results.products, run)
    _check_ids_left(users, user_ids_left, results.users)
    _check_ids_left(products, product_ids_left, results.products)
    for start, chunk in orders.chunks(settings.INGEST_CHUNK_SIZE):
        run.stop_here()
        reference_errors = order_services.reference_errors(
            chunk, known_user_ids=user_ids, known_product_ids=product_ids
        )
        taken = existing_order_ids({row[0] for row in chunk if row[0] is not None})
        for offset, row in enumerate(chunk):
            reasons = reference_errors.get(offset)
            if reasons is None and row[0] in taken:
                reasons = duplicate_reason(ORDERS, row[0])
            if reasons:
                results.orders.skipped.append((orders.positions[start + offset], row[0], reasons))
    _check_ids_left(orders, order_ids_left, results.orders)


def _check_duplicates(
    checked: Checked, existing: Callable[[set[int]], set[int]], result: ResourceResult, run: Run
) -> set[int]:
    """Skip rows whose explicit id exists (one query per chunk); return the ids that remain."""
    kept: set[int] = set()
    for start, chunk in checked.chunks(settings.INGEST_CHUNK_SIZE):
        run.stop_here()
        taken = existing({row[0] for row in chunk if row[0] is not None})
        for offset, row in enumerate(chunk):
            if row[0] in taken:
                reasons = duplicate_reason(checked.resource, row[0])
                result.skipped.append((checked.positions[start + offset], row[0], reasons))
            elif row[0] is not None:
                kept.add(row[0])
    return kept


def _check_ids_left(checked: Checked, ids_left: Callable[..., int], result: ResourceResult) -> None:
    """Skip the rows without an id that no id is left for, as the write would: ids are handed
    out in request order, each row without one taking the next (also one refused later for
    other reasons, as an order pointing nowhere is refused after it was written)."""
    without = [offset for offset, row in enumerate(checked.rows) if row[0] is None]
    if not without:
        return
    left = ids_left(above=checked.ids_above)
    if left >= len(without):
        return
    reasons = no_id_left_reason(checked.resource)
    skipped = {index for index, _, _ in result.skipped}
    for offset in without[left:]:
        if checked.positions[offset] not in skipped:
            result.skipped.append((checked.positions[offset], None, reasons))


class Rejected(Exception):
    """Raised inside the atomic transactions to roll all of them back."""


def _ingest_atomic(
    users: Checked, products: Checked, orders: Checked, results: IngestResult, run: Run
) -> IngestResult:
    """Write the batch only if every record is valid, and then all of it or nothing.

    Holds all three databases' write locks for the whole batch (taken in the global order
    orders, products, users, as deletion guards do, so they cannot deadlock; in the orders
    database the batch lock of ``ingest.atomic`` comes first), checks every record under them,
    and writes only if all are valid, with a marker in each database (see ``ingest.atomic``).
    The three transactions then commit one after another: users, products, orders. If a commit
    fails after an earlier one succeeded, what the earlier ones wrote is deleted again at once;
    if even that fails, the markers say what is left, and it is deleted as soon as the database
    lets it (``ingest.pipeline.finish_interrupted_atomic_batches``). Either way the answer is a 503.
    """
    key = atomic_batches.new_batch_key()
    committed: list[str] = []
    marked: list[str] = []
    try:
        with ExitStack() as stack:
            for alias in (ORDERS_DB, PRODUCTS_DB, USERS_DB):
                stack.enter_context(transaction.atomic(using=alias))
                transaction.on_commit(lambda alias=alias: committed.append(alias), using=alias)
                if alias == ORDERS_DB:
                    atomic_batches.hold_batch_lock()  # before the table lock (see common.data.db)
            order_services.lock_orders_for_held_batch()
            _validate_against_databases(users, products, orders, results, run)
            if results.errors:
                raise Rejected
            marked = _write_in_caller_transactions(users, products, orders, results, run, key)
            if results.errors:  # refused while writing, though the checks passed: keep nothing
                raise Rejected
    except Rejected:
        return rejected(results)
    except Aborted:
        return kept_nothing(results)
    except DatabaseError as exc:
        failure = undo_failed_commit(key, committed, results, exc)
        if failure is not None:
            failure.result = results  # what each record was, for a job's per-record results
            raise failure from exc
    atomic_batches.forget_batch(key, marked)
    return results


def rejected(results: IngestResult) -> IngestResult:
    """``results`` of an atomic batch that was rolled back because some record is invalid."""
    results.rejected = True
    for section in results.sections:
        section.inserted_ids, section.updated_ids, section.deleted_ids = [], [], []
        section.done_at = None
    invalid = sum(len(section.skipped) for section in results.sections)
    records = "1 record is" if invalid == 1 else f"{invalid} records are"
    results.detail = f"atomic=true: nothing was written because {records} invalid."
    return results


_MARKED_BY_RESOURCE = {USERS.name: atomic_batches.USERS, PRODUCTS.name: atomic_batches.PRODUCTS}


def _write_in_caller_transactions(
    users: Checked, products: Checked, orders: Checked, results: IngestResult, run: Run, key: str
) -> list[str]:
    """Write every row in the transactions the caller holds (atomic mode, one thread).

    Returns the names of the services where a marker ``key`` lists what was inserted.
    """
    marked = [
        name
        for name, checked, write, section in (
            ("users", users, user_services.users_bulk_insert, results.users),
            ("products", products, product_services.products_bulk_insert, results.products),
        )
        if _write_marked(checked, write, section, run, key)
    ]
    if marked:
        atomic_batches.mark_complete(key)  # commits with the orders, last: the batch is complete
    known = order_services.KnownReferences(  # inserted in this thread's transactions: they exist
        frozenset(results.users.inserted_ids), frozenset(results.products.inserted_ids)
    )
    chunks = list(orders.chunks(settings.INGEST_CHUNK_SIZE))
    run.stop_here()
    outcomes = order_services.orders_bulk_insert(
        [chunk for _, chunk in chunks],
        ids_above=orders.ids_above,
        references_ready=lambda: known,
        ledger_key=run.ledger(ORDERS),
    )
    for (start, chunk), outcome in zip(chunks, outcomes, strict=True):
        fold_chunk(orders, start, chunk, outcome, results.orders)
    return marked


def _write_marked(
    checked: Checked, write: Callable, section: ResourceResult, run: Run, key: str
) -> bool:
    """Write one service's chunks and a marker listing the rows they inserted (if any)."""
    size = settings.INGEST_CHUNK_SIZE
    service = _MARKED_BY_RESOURCE[checked.resource.name]
    chunk_keys = [run.ledger(checked.resource, start // size) for start, _ in checked.chunks(size)]
    # Chunks a run under the same ledger key committed before (a re-run of a complete batch)
    # are not written again, and are not this batch's to undo.
    done_before = service.recorded([k for k in chunk_keys if k is not None])
    new_ids: list[int] = []
    new_keys: list[str] = []
    for (start, chunk), ledger_key in zip(checked.chunks(size), chunk_keys, strict=True):
        run.stop_here()
        outcome = write(chunk, ids_above=checked.ids_above, ledger_key=ledger_key)
        fold_chunk(checked, start, chunk, outcome, section)
        run.advance(len(chunk))
        if ledger_key not in done_before:
            new_ids += [stored for stored in outcome if stored is not None]
            if ledger_key is not None:
                new_keys.append(ledger_key)
    if not new_ids and not new_keys:
        return False
    service.mark(key, ids=new_ids, ledger_keys=new_keys)
    return True


def undo_failed_commit(
    key: str, committed: list[str], results: IngestResult, exc: Exception
) -> WriteFailed | None:
    """After a failed commit: undo what the earlier commits wrote, and say what is left.

    None if the batch turns out complete after all (its orders marker is there: a commit that
    reported an error but went through, as when a connection is lost during COMMIT).
    """
    names = {USERS_DB: USERS.name, PRODUCTS_DB: PRODUCTS.name, ORDERS_DB: ORDERS.name}
    if not committed:
        return WriteFailed(f"atomic=true: nothing was written; a database failed ({exc}).")
    failed = next(
        (names[alias] for alias in (USERS_DB, PRODUCTS_DB, ORDERS_DB) if alias not in committed),
        ORDERS.name,
    )
    try:
        finished = atomic_batches.finish_interrupted()
    except DatabaseError as undo_exc:  # the orders database itself: the markers stay
        finished = atomic_batches.Finished(failed={key: undo_exc})
    if key in finished.complete:
        return None
    sections = {USERS_DB: results.users, PRODUCTS_DB: results.products}
    done = [(names[a], sections[a]) for a in committed if a in sections]
    # What the batch did in each committed database, should its markers not be readable.
    fallback = {name: section.inserted_ids for name, section in done}
    changed = {name: sorted(section.updated_ids + section.deleted_ids) for name, section in done}
    left = atomic_batches.left_behind(key, fallback, changed)
    what = f"atomic=true: the {failed} database failed while committing ({exc})"
    if not left:
        if not any(changed.values()):
            return WriteFailed(
                f"{what}; the rows already committed in {' and '.join(sorted(fallback))} "
                "were deleted again, so nothing was kept. Send the batch again once the "
                "database is back."
            )
        return WriteFailed(
            f"{what}; what was already committed in {' and '.join(sorted(fallback))} was "
            "undone (rows it inserted deleted again, rows it replaced, updated or deleted put "
            "back), so nothing was kept. Send the batch again once the database is back."
        )
    undo_exc = finished.failed.get(key)
    why = f" ({undo_exc})" if undo_exc is not None else ""
    parts = []
    if left.stored:
        parts.append(f"{_counted(left.stored)} of this batch are still stored (ids in left_behind)")
    if left.not_restored:
        parts.append(
            f"{_counted(left.not_restored)} it replaced, updated or deleted are not put back "
            "yet (ids in not_restored)"
        )
    if not left.not_restored:
        then = (
            "they are recorded as an unfinished batch and will be removed automatically as "
            "soon as the database allows"
        )
    else:
        then = (
            "this is recorded as an unfinished batch and will be undone automatically (rows "
            "it inserted removed, the others put back) as soon as the database allows"
        )
    return WriteFailed(
        f"{what}, and undoing what was already committed failed too{why}. "
        f"{' and '.join(parts)}; {then}: at the latest on the next ingest request or by the "
        "job reaper. Then send the batch again: it will be written exactly once.",
        left_behind=left.stored,
        not_restored=left.not_restored,
    )


def _counted(ids_by_type: dict[str, list[int]]) -> str:
    """``{"users": [1, 2], "products": [7]}`` as "2 users and 1 product"."""
    singular = {USERS.name: USERS.singular, PRODUCTS.name: PRODUCTS.singular}
    return " and ".join(
        f"{len(ids)} {name if len(ids) != 1 else singular[name]}"
        for name, ids in ids_by_type.items()
    )
