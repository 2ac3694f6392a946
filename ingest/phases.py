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
"""

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
from ingest.results import IngestResult, ResourceResult, duplicate_reason, fold_failure
from ingest.runs import Run
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

    def finish(self) -> None:
        """Put the ids into the result, in request order."""
        for outcome, pairs in self.done.items():
            pairs.sort()
            setattr(self.result, f"{outcome}_ids", [record_id for _, record_id in pairs])


def ingest_with_actions(
    batch: Batch, *, default: str, dry_run: bool, atomic: bool, run: Run
) -> IngestResult:
    """Sort, check and write a batch phase by phase (see the module docstring)."""
    sections = {
        resource.name: _section(getattr(batch, resource.name), resource, default)
        for resource in (USERS, PRODUCTS, ORDERS)
    }
    batch.users = batch.products = batch.orders = []
    results = IngestResult(
        *(section.result for section in sections.values()), dry_run=dry_run, atomic=atomic
    )
    if dry_run:
        _rehearse(sections, run)
        results.atomic = False
    elif atomic:
        return _all_or_nothing(sections, results, run)
    else:
        _write_phases(sections, run, in_held_transactions=False)
    for section in sections.values():
        section.finish()
    return results


def _section(records: list[Any], resource: Resource, default: str) -> _Section:
    sorted_records = sort_records(records, resource, default)
    result = ResourceResult(received=sorted_records.received, actions=sorted_records.actions)
    result.skipped.extend(sorted_records.skipped)
    for checked in sorted_records.by_action.values():
        result.skipped.extend(checked.skipped)
    return _Section(sorted_records, result)


def _write_phases(sections: dict[str, _Section], run: Run, *, in_held_transactions: bool) -> None:
    """Every phase, in order; with ``in_held_transactions`` a failing database raises (the
    caller's transactions are spoiled), otherwise its chunk is skipped and the rest goes on."""
    for resource, actions in PHASES:
        section = sections[resource.name]
        for action in actions:
            _write_step(section, resource, action, run, raise_failures=in_held_transactions)


def _write_step(
    section: _Section, resource: Resource, action: str, run: Run, *, raise_failures: bool
) -> None:
    """Write one action's rows of one type, a chunk per transaction."""
    checked = section.records.by_action[action]
    writer = resource.writers[action]
    size = settings.INGEST_CHUNK_SIZE
    for start, chunk in checked.chunks(size):
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
            if ledger_key is not None:
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
            reasons = errors.get(offset) or duplicate_reason(resource, index)
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


def _rehearse(sections: dict[str, _Section], run: Run) -> None:
    """A dry run: every phase in transactions that are rolled back; the verdicts stay."""
    try:
        with ExitStack() as stack:
            _held_transactions(stack)
            _write_phases(sections, run, in_held_transactions=True)
            raise _Rehearsed
    except _Rehearsed:
        pass
    for section in sections.values():  # nothing was kept
        section.done = {"inserted": [], "updated": [], "deleted": []}


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
            if any(section.result.skipped for section in sections.values()):
                raise Rejected
            _write_phases(sections, run, in_held_transactions=True)
            if any(section.result.skipped for section in sections.values()):
                raise Rejected
            for section in sections.values():
                section.finish()
            marked = _mark(key, sections)
    except Rejected:
        return rejected(results)
    except DatabaseError as exc:
        for section in sections.values():
            section.finish()
        failure = undo_failed_commit(key, committed, results, exc)
        if failure is not None:
            raise failure from exc
    atomic_batches.forget_batch(key, marked)
    return results


def _mark(key: str, sections: dict[str, _Section]) -> list[str]:
    """Write the batch's markers in the held transactions; the names of the services marked."""
    marked = []
    for service in atomic_batches.MARKED:
        section = sections[service.name]
        if section.result.inserted_ids or section.before or section.ledger_keys:
            service.mark(
                key,
                ids=section.result.inserted_ids,
                ledger_keys=section.ledger_keys,
                before=section.before or [],
            )
            marked.append(service.name)
    if marked:
        atomic_batches.mark_complete(key)
    return marked
