"""Batches that upsert, update or delete: four phases, so that dependent changes need no order.

A batch with any action other than ``insert`` (``ingest.actions``) runs here. Its records are
filed by action and checked (``ingest.actions.sort_records``), then written phase by phase,
each phase seeing what the earlier ones did::

    1. orders     delete                    so that their users and products can go in phase 4
    2. users      insert, upsert, update    every order of phase 3 can point at them
       products   insert, upsert, update
    3. orders     insert, upsert, update    each order's user and product checked as they are
                                            now (a changed user_id or product_id too)
    4. users      delete                    refused ("still referenced by N orders") while an
       products   delete                    order points at it, after phase 3

So "delete orders 5-9 and then their user" and "create a user and an order for them" both work
in one batch, and "delete user 3 and create an order for user 3" keeps the order and refuses
the deletion. Each step writes its rows a chunk (``INGEST_CHUNK_SIZE``) at a time, one
transaction per chunk, through its resource's writer (``ingest.resources``: one statement per
chunk, ``common.data.changes``). Orders are written under the orders lock and deletions of users
and products under the deletion guards (``common.data.references``), the same locks that
protect a single record's create and delete, so no order pointing nowhere is ever visible, also
while other requests run.

* By default a chunk whose database fails is skipped with that reason and the rest goes on; a
  later phase then sees what was really written (an order whose user's chunk failed is refused).
* ``dry_run`` runs every phase inside one transaction per database and rolls all three back:
  the verdicts are exactly those a real run would give, and nothing is kept.
* ``atomic`` runs every phase in those transactions too and commits only if no record was
  skipped; a marker in each database (``ingest.atomic``) lists what the batch inserted and the
  rows it replaced or deleted, so that a commit that fails after another succeeded is undone
  (inserted rows deleted, earlier rows put back).
* A run asked to stop (an aborted job, ``ingest.runs``) writes no further chunk: by default
  what was committed stays and every later chunk, of this phase and the next ones, is
  unprocessed; held in transactions (dry run, atomic), they are rolled back and nothing is kept.
"""

from concurrent.futures import Future
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction

from ingest import atomic as atomic_batches  # `atomic` is the mode
from ingest.actions import DELETE, INSERT, UPDATE, UPSERT, Sorted, sort_records
from ingest.checked_first import Rejected, rejected, undo_failed_commit
from ingest.records import Batch
from ingest.resources import ORDERS, PRODUCTS, USERS, Resource
from ingest.results import (
    IngestResult,
    ResourceResult,
    fold_failure,
    fold_unprocessed,
    kept_nothing,
    refused_reason,
)
from ingest.runs import Aborted, Run
from ingest.writers import WriterPool, writers_for
from orders_svc import services as order_services
from orders_svc.models import ORDERS_DB
from products_svc.models import PRODUCTS_DB
from users_svc.models import USERS_DB

#: The phases, in order: (resource, actions).
PHASES: tuple[tuple[Resource, tuple[str, ...]], ...] = (
    (ORDERS, (DELETE,)),
    (USERS, (INSERT, UPSERT, UPDATE)),
    (PRODUCTS, (INSERT, UPSERT, UPDATE)),
    (ORDERS, (INSERT, UPSERT, UPDATE)),
    (USERS, (DELETE,)),
    (PRODUCTS, (DELETE,)),
)

#: What a written row counts as, by action (an upsert that replaced counts as updated).
_DONE_AS = {INSERT: "inserted", UPSERT: "inserted", UPDATE: "updated", DELETE: "deleted"}


@dataclass
class _Section:
    """One type's records as sorted, its result, and what its writes did, by request index."""

    records: Sorted
    result: ResourceResult
    done: dict[str, list[tuple[int, int]]] = field(
        default_factory=lambda: {"inserted": [], "updated": [], "deleted": []}
    )
    before: list | None = None  # rows replaced or deleted (atomic batches only)
    ledger_keys: list[str] = field(default_factory=list)  # chunk keys written (atomic only)
    # Chunks a run under the same ledger key recorded before (a job run again after its batch
    # committed): reused, not written, so not this batch's to undo (atomic only).
    replayed: set[str] = field(default_factory=set)
    replayed_ids: set[int] = field(default_factory=set)

    def finish(self) -> None:
        """Put the ids into the result, in request order (and the pairs, for a job's
        per-record results)."""
        for outcome, pairs in self.done.items():
            pairs.sort()
            setattr(self.result, f"{outcome}_ids", [record_id for _, record_id in pairs])
        self.result.done_at = self.done


def ingest_with_actions(
    batch: Batch, *, default: str, dry_run: bool, atomic: bool, run: Run
) -> IngestResult:
    """Sort, check and write a batch phase by phase (see the module docstring)."""
    if dry_run or atomic:
        sections = {
            resource.name: _section(getattr(batch, resource.name), resource, default)
            for resource in (USERS, PRODUCTS, ORDERS)
        }
        batch.users = batch.products = batch.orders = []
        results = _results_of(sections, dry_run=dry_run, atomic=atomic)
        if atomic and not dry_run:
            return _all_or_nothing(sections, results, run)
        if not _rehearse(sections, run, as_atomic=atomic):
            return kept_nothing(results)
    else:
        sections = _write_on_threads(batch, default, run)
        results = _results_of(sections, dry_run=False, atomic=False)
    for section in sections.values():
        section.finish()
    return results


def _results_of(sections: dict[str, "_Section"], *, dry_run: bool, atomic: bool) -> IngestResult:
    return IngestResult(
        sections[USERS.name].result,
        sections[PRODUCTS.name].result,
        sections[ORDERS.name].result,
        dry_run=dry_run,
        atomic=atomic and not dry_run,
    )


def _section(records: list[Any], resource: Resource, default: str) -> _Section:
    sorted_records = sort_records(records, resource, default)
    result = ResourceResult(
        received=sorted_records.received,
        actions=sorted_records.actions,
        sources=list(sorted_records.by_action.values()),
    )
    result.skipped.extend(sorted_records.skipped)
    for checked in sorted_records.by_action.values():
        result.skipped.extend(checked.skipped)
    return _Section(sorted_records, result)


_WRITES = (INSERT, UPSERT, UPDATE)


def _write_on_threads(batch: Batch, default: str, run: Run) -> dict[str, _Section]:
    """The default mode: each database's steps on its writer thread (``ingest.writers``), in
    phase order, while the main thread sorts and checks the next type's records.

    A step's SQL runs without the GIL (see ``common.data.bulk``), so the users are written on
    the second core while the products are checked, and so on; a phase starts once the steps
    it depends on are done (orders after users and products, their deletions after both).
    """
    sections: dict[str, _Section] = {}
    with ExitStack() as stack:
        pools = {
            alias: stack.enter_context(WriterPool(alias, writers_for(alias)))
            for alias in (USERS_DB, PRODUCTS_DB, ORDERS_DB)
        }

        def start(resource: Resource, actions: tuple[str, ...]) -> Future:
            return pools[resource.alias].submit(
                _write_steps, sections[resource.name], resource, actions, run
            )

        started = []
        for resource, actions in ((USERS, _WRITES), (PRODUCTS, _WRITES), (ORDERS, (DELETE,))):
            sections[resource.name] = _section(getattr(batch, resource.name), resource, default)
            setattr(batch, resource.name, [])  # the rows hold what is needed
            started.append(start(resource, actions))
        _wait(started[0], started[1])  # phase 2
        _wait(start(ORDERS, _WRITES), started[2])  # phases 3 and 1
        _wait(start(USERS, (DELETE,)), start(PRODUCTS, (DELETE,)))  # phase 4
    return sections


def _wait(*futures: Future) -> None:
    for future in futures:
        future.result()


def _write_steps(section: "_Section", resource: Resource, actions: tuple[str, ...], run: Run):
    for action in actions:
        _write_step(section, resource, action, run, raise_failures=False)


def _write_phases(sections: dict[str, _Section], run: Run) -> None:
    """Every phase, in order, in the caller's thread (dry runs and atomic batches, in the
    transactions it holds): a failing database raises, since it spoils them."""
    for resource, actions in PHASES:
        section = sections[resource.name]
        for action in actions:
            _write_step(section, resource, action, run, raise_failures=True)


def _write_step(
    section: _Section, resource: Resource, action: str, run: Run, *, raise_failures: bool
) -> None:
    """Write one action's rows of one type, a chunk per transaction."""
    checked = section.records.by_action[action]
    writer = resource.writers[action]
    size = settings.INGEST_CHUNK_SIZE
    for start, chunk in checked.chunks(size):
        if raise_failures:
            run.stop_here()  # held transactions: rolled back whole
        elif run.stopping():
            fold_unprocessed(checked, start, chunk, section.result)
            continue
        ledger_key = run.ledger(resource, f"{action}:{start // size}")
        try:
            ids, errors, replaced = writer(
                chunk,
                ids_above=section.records.ids_above,
                ledger_key=ledger_key,
                before=section.before,
            )
        except DatabaseError as exc:
            if raise_failures:
                raise
            fold_failure(checked, start, chunk, exc, section.result)
        else:
            if ledger_key in section.replayed:
                section.replayed_ids.update(i for i in ids if i is not None)
            elif ledger_key is not None:
                section.ledger_keys.append(ledger_key)
            outcome = (ids, errors, replaced)
            _fold(section, resource, action, chunk, checked.positions[start:], outcome)
        run.advance(len(chunk))


def _fold(
    section: _Section,
    resource: Resource,
    action: str,
    chunk: list,
    positions: list[int],
    outcome: tuple[list[int | None], dict, list[int]],
) -> None:
    """One written chunk into the section: ids by outcome, refused rows with their reasons."""
    ids, errors, replaced = outcome
    done = section.done[_DONE_AS[action]]
    replaced_positions = set(replaced)
    for offset, stored_id in enumerate(ids):
        index = positions[offset]
        if stored_id is None:
            reasons = errors.get(offset) or refused_reason(resource, chunk[offset][0])
            section.result.skipped.append((index, chunk[offset][0], reasons))
        elif offset in replaced_positions:
            section.done["updated"].append((index, stored_id))
        else:
            done.append((index, stored_id))


def _held_transactions(stack: ExitStack, committed: list[str] | None = None) -> None:
    """Enter one transaction per database in the global lock order (orders, products, users;
    the batch lock first in orders, as in ``ingest.checked_first``), then take the orders lock.

    The orders lock comes before any change, as in ``ingest.checked_first``: taken only when
    phase 3 writes orders, a batch that had changed user 3 in phase 2 (its row locked until the
    end) would wait there for a deletion guard that holds the orders lock and waits for user
    3's row: a deadlock across two databases that PostgreSQL cannot see, so both wait forever.
    It keeps every other order writer out too (``SHARE ROW EXCLUSIVE``): a plain ingest holds
    its orders transaction while its users are written, and those may wait for a user this
    batch changed, which would close the same kind of cycle.
    """
    for alias in (ORDERS_DB, PRODUCTS_DB, USERS_DB):
        stack.enter_context(transaction.atomic(using=alias))
        if committed is not None:
            transaction.on_commit(lambda alias=alias: committed.append(alias), using=alias)
        if alias == ORDERS_DB:
            atomic_batches.hold_batch_lock()
    order_services.lock_orders_for_held_batch()


class _Rehearsed(Exception):
    """Raised inside a dry run's transactions to roll them back."""


def _rehearse(sections: dict[str, _Section], run: Run, *, as_atomic: bool) -> bool:
    """A dry run: every phase in transactions that are rolled back; the verdicts stay (with
    ``atomic`` too, its own refusals: a dry run previews the batch as it would run). False if
    the run was asked to stop before the end (its verdicts are then incomplete)."""
    finished = True
    try:
        with ExitStack() as stack:
            _held_transactions(stack)
            if as_atomic:
                _refuse_deletions_freed_by_the_batch(sections)
            _write_phases(sections, run)
            raise _Rehearsed
    except _Rehearsed:
        pass
    except Aborted:
        finished = False
    for section in sections.values():  # nothing was kept
        section.done = {"inserted": [], "updated": [], "deleted": []}
    return finished


def _all_or_nothing(sections: dict[str, _Section], results: IngestResult, run: Run) -> IngestResult:
    """An atomic batch: every phase in held transactions, committed only if nothing was
    skipped, with markers that let a half-committed batch be undone (``ingest.atomic``)."""
    key = atomic_batches.new_batch_key()
    committed: list[str] = []
    marked: list[str] = []
    for name in (USERS.name, PRODUCTS.name):
        sections[name].before = []
    try:
        with ExitStack() as stack:
            _held_transactions(stack, committed)
            _refuse_deletions_freed_by_the_batch(sections)
            if any(section.result.skipped for section in sections.values()):
                raise Rejected
            for resource in (USERS, PRODUCTS):
                prefix = run.ledger(resource)
                if prefix is not None:
                    replayed = atomic_batches.recorded_chunks(resource.name, f"{prefix}:")
                    sections[resource.name].replayed = replayed
            _write_phases(sections, run)
            if any(section.result.skipped for section in sections.values()):
                raise Rejected
            for section in sections.values():
                section.finish()
            marked = _mark(key, sections)
    except Rejected:
        return rejected(results)
    except Aborted:
        return kept_nothing(results)
    except DatabaseError as exc:
        for section in sections.values():
            section.finish()
        failure = undo_failed_commit(key, committed, results, exc)
        if failure is not None:
            failure.result = results  # what each record was, for a job's per-record results
            raise failure from exc
    atomic_batches.forget_batch(key, marked)
    return results


def _refuse_deletions_freed_by_the_batch(sections: dict[str, _Section]) -> None:
    """Skip user and product deletions that only this batch's own order changes make possible.

    The three transactions of an atomic batch commit users, products, then orders (orders
    last: see ``ingest.atomic``). A user whom an order pointed at before the batch can only be
    deleted because the batch deletes or re-points that order; committed first, the deletion
    would show, until the orders commit, an order pointing at nobody. So such a deletion is
    refused, and the batch with it (a 422); run it without ``atomic``, whose phases commit the
    orders first, or delete the orders in an earlier batch. The orders lock is held, so what
    points at the ids cannot change meanwhile.
    """
    for resource, field_name in ((USERS, "user_id"), (PRODUCTS, "product_id")):
        checked = sections[resource.name].records.by_action[DELETE]
        ids = [row[0] for row in checked.rows]
        if not ids:
            continue
        referenced = order_services.orders_referencing(field_name, ids)
        if not referenced:
            continue
        reasons = {
            "id": [
                f"Not deleted: orders point at this {resource.singular}, and with atomic=true "
                "the deletion would commit before this batch's own order changes (there is no "
                "commit across databases). Delete or change those orders in an earlier batch, "
                "or send this one without atomic."
            ]
        }
        skipped = sections[resource.name].result.skipped
        kept_rows, kept_positions = [], []
        for row, position in zip(checked.rows, checked.positions, strict=True):
            if row[0] in referenced:
                skipped.append((position, row[0], reasons))
            else:
                kept_rows.append(row)
                kept_positions.append(position)
        checked.rows, checked.positions = kept_rows, kept_positions


def _mark(key: str, sections: dict[str, _Section]) -> list[str]:
    """Write the batch's markers in the held transactions; the names of the services marked."""
    marked = []
    for service in atomic_batches.MARKED:
        section = sections[service.name]
        ids = [i for i in section.result.inserted_ids if i not in section.replayed_ids]
        if ids or section.before or section.ledger_keys:
            service.mark(
                key,
                ids=ids,
                ledger_keys=section.ledger_keys,
                before=section.before or [],
            )
            marked.append(service.name)
    if marked:
        atomic_batches.mark_complete(key)
    return marked
