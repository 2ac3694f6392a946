"""The default mode: records are written while the next ones are checked, a thread per database.

The picture of a batch in ``ingest.pipeline`` is this module:

* Writes go through the services (``users_bulk_insert`` …), one writer thread per database
  (SQLite has one writer per file; see ``ingest.writers``); each users and products chunk is its
  own transaction, handed to its writer as soon as it is checked. The threads pay because a chunk
  goes to SQLite in one or two statements during which the driver holds no GIL (see
  ``common.data.bulk``): the three files are written on the second core while the main thread
  checks the next records in Python.
* Orders are checked after users and products are written, so an order may point at a user or
  product inserted earlier in the same batch, but not at one that was skipped. To overlap the
  costly part (the orders table and its two indexes) with the rest, the orders are inserted
  first in one transaction that holds the orders lock, and only checked, pruned and committed
  once the users and products are; nobody sees them before. Holding the orders lock also keeps
  deletions of users and products out for that time (see ``common.data.references``).
* A chunk whose database fails is skipped with that reason (``ingest.results.fold_failure``);
  the other chunks and databases go on.
* A run asked to stop (an aborted job, ``ingest.runs``) writes no further chunk: each writer
  asks before each users or products chunk, and the orders, one transaction, are rolled back
  unless they were checked before the stop was seen. What was committed stays; the rest is
  unprocessed (``ingest.results.fold_unprocessed``).
"""

import queue
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import Future
from contextlib import ExitStack
from typing import Any

from django.conf import settings
from django.db import DatabaseError

from common.data.unreachable import unreachable
from ingest.checking import Checked, check_in_chunks, highest_explicit_id
from ingest.records import Batch
from ingest.resources import ORDERS, PRODUCTS, USERS, Resource, Row
from ingest.results import (
    IngestResult,
    ResourceResult,
    fold_chunk,
    fold_failure,
    fold_unprocessed,
    result_of,
)
from ingest.runs import Aborted, Run
from ingest.writers import WriterPool, writers_for
from orders_svc import services as order_services
from orders_svc.models import ORDERS_DB
from orders_svc.selectors import deletion_epoch
from products_svc import services as product_services
from products_svc.models import PRODUCTS_DB
from users_svc import services as user_services
from users_svc.models import USERS_DB


def ingest_streaming(batch: Batch, run: Run) -> IngestResult:
    """The default mode (see the module docstring; the picture is in ``ingest.pipeline``)."""
    size = settings.INGEST_CHUNK_SIZE
    try:
        epoch = deletion_epoch()
    except DatabaseError:  # the orders database is down: its chunks will say so, the rest goes on
        epoch = -1  # matches no reading: nothing is trusted without a lookup
    references: Future = Future()
    order_chunks: queue.SimpleQueue = queue.SimpleQueue()
    orders_ids_above = highest_explicit_id(batch.orders, ORDERS)
    with ExitStack() as stack:
        pools = {
            alias: stack.enter_context(WriterPool(alias, writers_for(alias)))
            for alias in (USERS_DB, PRODUCTS_DB, ORDERS_DB)
        }
        # Whatever happens below, never leave the orders writer waiting.
        stack.callback(_abandon, references, order_chunks)

        def write_orders() -> Future:
            return pools[ORDERS_DB].submit(
                order_services.orders_bulk_insert,
                iter(order_chunks.get, None),
                ids_above=orders_ids_above,
                references_ready=references.result,
                ledger_key=run.ledger(ORDERS),
            )

        # Orders first: with a writer thread, each chunk of orders is written as soon as it is
        # checked, and waits, uncommitted, for the users and products it points at; inline, the
        # orders can only be written after those.
        orders_written = write_orders() if pools[ORDERS_DB].threaded else None
        user_writes = _ChunkWriter(
            batch.users, USERS, pools[USERS_DB], user_services.users_bulk_insert, run
        )
        product_writes = _ChunkWriter(
            batch.products, PRODUCTS, pools[PRODUCTS_DB], product_services.products_bulk_insert, run
        )
        orders, users, products = _take_turns(
            (check_in_chunks(batch.orders, ORDERS, chunk_size=size), order_chunks.put),
            (check_in_chunks(batch.users, USERS, chunk_size=size), user_writes.write),
            (check_in_chunks(batch.products, PRODUCTS, chunk_size=size), product_writes.write),
        )
        order_chunks.put(None)
        # The rows hold what is needed; let the decoded records go.
        batch.orders, batch.users, batch.products = [], [], []
        user_chunks, product_chunks = user_writes.submitted, product_writes.submitted

        users_result, products_result = result_of(users), result_of(products)
        _collect(users, user_chunks, users_result, run)
        _collect(products, product_chunks, products_result, run)
        if run.stopping():  # the orders are the next step: roll them back
            references.set_exception(Aborted())
        else:
            # What this batch inserted needs no lookup, unless a deletion ran since it began.
            references.set_result(
                order_services.KnownReferences(
                    frozenset(users_result.inserted_ids),
                    frozenset(products_result.inserted_ids),
                    epoch,
                )
            )
        orders_result = result_of(orders)
        _collect_orders(orders, orders_written or write_orders(), orders_result, run)
    return IngestResult(users_result, products_result, orders_result)


def _abandon(references: Future, order_chunks: queue.SimpleQueue) -> None:
    order_chunks.put(None)
    if not references.done():
        references.set_exception(RuntimeError("the ingest stopped before its orders were checked"))


def _take_turns(*checks: tuple[Generator, Callable[[list[Row]], None]]) -> list[Checked]:
    """Check the types a chunk at a time each, in turn, handing each chunk to its writer
    (``hand_over(rows)``) as soon as it is checked; the :class:`Checked` of each type.

    In turn, not one type after the other, so that every writer has work from the start: checked
    one after the other, the products writer began when the users were nearly all checked, and
    the batch waited for its last chunks, one after the other, once the checks were done
    (300,000 records in-process, best of five, two rounds: 880-908 ms one after the other,
    800-821 ms in turn). The price: every type's decoded records stay until all are checked
    (the server's RSS grew 11.3x the body, 9.7x before).
    """
    checked: list[Checked | None] = [None] * len(checks)
    waiting = list(enumerate(checks))
    while waiting:
        for item in list(waiting):
            number, (steps, hand_over) = item
            try:
                _, rows = next(steps)
            except StopIteration as done:
                checked[number] = done.value
                waiting.remove(item)
            else:
                hand_over(rows)
    return checked  # type: ignore[return-value]


class _ChunkWriter:
    """Hands a type's checked chunks to its database's writer thread, each its own transaction;
    ``submitted`` keeps ``(first row number, rows, future)`` of each."""

    def __init__(
        self,
        records: Sequence[Any],
        resource: Resource,
        pool: WriterPool,
        writer: Callable,
        run: Run,
    ) -> None:
        self.records, self.resource, self.pool, self.run = records, resource, pool, run
        self.writer = _UntilUnavailable(writer)
        self.submitted: list[tuple[int, list[Row], Future]] = []
        self.written = 0
        self.ids_above: int | None = None  # found only if some record comes without an id

    def write(self, rows: list[Row]) -> None:
        start, self.written = self.written, self.written + len(rows)
        if self.ids_above is None and any(row[0] is None for row in rows):
            self.ids_above = highest_explicit_id(self.records, self.resource)
        future = self.pool.submit(
            _unless_stopped,
            self.run,
            self.writer,
            rows,
            ids_above=self.ids_above or 0,
            ledger_key=self.run.ledger(self.resource, start // settings.INGEST_CHUNK_SIZE),
        )
        self.submitted.append((start, rows, future))


class _UntilUnavailable:
    """A type's chunk writer that, once its database's server could not be reached in this run
    (``common.data.unreachable``), fails the type's later chunks at once with the same error
    instead of trying again: each try would wait out the timeouts (a products server cut off
    by the network made a 300,000-record ingest answer after 57 s, the chunks one after the
    other waiting out DB_CONNECT_TIMEOUT; 17 s now). Each chunk is still skipped with the
    reason, "send these records again". Other errors (a locked SQLite file, a statement the
    server cancelled) fail their own chunk only."""

    def __init__(self, writer: Callable) -> None:
        self.writer = writer
        self.unavailable: BaseException | None = None

    def __call__(self, rows: list[Row], **kwargs: Any) -> Any:
        if self.unavailable is not None:
            raise self.unavailable
        try:
            return self.writer(rows, **kwargs)
        except DatabaseError as exc:
            if unreachable(exc):
                self.unavailable = exc
            raise


#: A chunk's outcome when its run was asked to stop before it was written.
_UNPROCESSED = object()


def _unless_stopped(run: Run, writer: Callable, rows: list[Row], **kwargs: Any) -> Any:
    """On the writer thread: write the chunk, unless the run was asked to stop by now, and count
    it done as soon as it is committed: a job's progress moves while later records are still
    being checked (counted only after the whole type was checked, a job of 400,000 users showed
    0 for its first 6 s)."""
    if run.stopping():
        return _UNPROCESSED
    outcome = writer(rows, **kwargs)
    run.advance(len(rows))
    return outcome


def _collect(
    checked: Checked,
    submitted: list[tuple[int, list[Row], Future]],
    result: ResourceResult,
    run: Run,
) -> None:
    """Wait for each chunk's writer and fold its outcome into ``result`` (a written chunk was
    counted done by its writer, a failed one is counted here)."""
    run.advance(len(checked.skipped))
    for start, chunk, future in submitted:
        try:
            outcome = future.result()
        except DatabaseError as exc:
            fold_failure(checked, start, chunk, exc, result)
            run.advance(len(chunk))
        else:
            if outcome is _UNPROCESSED:
                fold_unprocessed(checked, start, chunk, result)
            else:
                fold_chunk(checked, start, chunk, outcome, result)


def _collect_orders(orders: Checked, written: Future, result: ResourceResult, run: Run) -> None:
    """Fold the orders writer's outcome (one transaction for all chunks) into ``result``."""
    chunks = list(orders.chunks(settings.INGEST_CHUNK_SIZE))
    try:
        outcomes = written.result()
    except Aborted:
        for start, chunk in chunks:
            fold_unprocessed(orders, start, chunk, result)
        return
    except DatabaseError as exc:
        for start, chunk in chunks:
            fold_failure(orders, start, chunk, exc, result)
    else:
        for (start, chunk), outcome in zip(chunks, outcomes, strict=True):
            fold_chunk(orders, start, chunk, outcome, result)
    run.advance(orders.received)
