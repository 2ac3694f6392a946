"""The bulk ingest engine: every record of a batch comes out inserted, or skipped with reasons.

How a batch flows (the default mode); each arrow is a chunk of ``INGEST_CHUNK_SIZE`` rows::

    main thread           orders writer             users writer          products writer
    check orders ───────▶ BEGIN (orders locked)
                          insert chunk 1, 2, …
    check users ─────────────────────────────────▶ insert + commit
                                                     chunk 1, 2, …
    check products ───────────────────────────────────────────────────────▶ insert + commit
                                                                            chunk 1, 2, …
    wait for users and products; hand their inserted ids to the orders writer
                          check every order's user and product exist (ids this batch
                          inserted are known; others: one query per chunk per database),
                          delete the orders that point nowhere, COMMIT

* Every record is checked by its service's own rules (``users_svc.rules.check_user`` …), the
  same functions the single-record endpoints use.
* Writes go through the services (``users_bulk_insert`` …), one writer thread per database
  (SQLite has one writer per file); each users and products chunk is its own transaction.
  The threads pay because a chunk goes to SQLite in one or two statements during which the
  driver holds no GIL (see ``common.data.bulk``): the three files are written on the second core
  while the main thread checks the next records in Python.
* Orders are checked after users and products are written, so an order may point at a user or
  product inserted earlier in the same batch, but not at one that was skipped. To overlap the
  costly part (the orders table and its two indexes) with the rest, the orders are inserted
  first in one transaction that holds the orders lock, and only checked, pruned and committed
  once the users and products are; nobody sees them before. Holding the orders lock also keeps
  deletions of users and products out for that time (see ``common.data.references``).
* An explicit ``id`` that already exists, or that an earlier valid record of the batch has, is
  skipped as a duplicate. Records without an id get one above every id in use and every
  explicit id of the batch.

``dry_run`` checks everything (including duplicates and references) and writes nothing.
``atomic`` writes nothing unless every record is valid; see :func:`_ingest_atomic` and
``ingest.atomic`` for what is guaranteed across the three databases.
"""

import logging
import queue
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from contextlib import ExitStack
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter
from typing import Any

import orjson
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, transaction

from common.data.gc_tuning import fewer_collections
from common.data.validation import MAX_BIGINT, UNSET, Invalid, clean_id, unknown_field_errors
from common.ops.metrics import record_ingest
from ingest import atomic as atomic_batches  # not `atomic`: ingest() has a flag of that name
from ingest.duplicates import RepeatedKey, UnknownKeys
from ingest.records import Batch, OrderRecord, ProductRecord, UserRecord
from ingest.writers import WriterPool, writers_for
from orders_svc import rules as order_rules
from orders_svc import services as order_services
from orders_svc.models import ORDERS_DB
from orders_svc.selectors import deletion_epoch, existing_order_ids
from products_svc import rules as product_rules
from products_svc import services as product_services
from products_svc.models import PRODUCTS_DB
from products_svc.selectors import existing_product_ids
from users_svc import rules as user_rules
from users_svc import services as user_services
from users_svc.models import USERS_DB
from users_svc.selectors import existing_user_ids

Reasons = dict[str, list[str]]
Row = tuple[Any, ...]

log = logging.getLogger("store.ingest")

_JSON_TYPE_NAMES = {
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


@dataclass(frozen=True)
class Resource:
    """How one kind of record is checked and written."""

    name: str  # "users": the key in the request and the response
    singular: str  # "user": used in messages
    alias: str  # the service's database
    record_type: type
    fields: tuple[str, ...]  # the rule's arguments, in order
    rule: Callable[..., tuple[Row | None, Reasons | None]]


USERS = Resource("users", "user", USERS_DB, UserRecord, ("name", "email"), user_rules.check_user)
PRODUCTS = Resource(
    "products",
    "product",
    PRODUCTS_DB,
    ProductRecord,
    ("name", "price"),
    product_rules.check_product,
)
ORDERS = Resource(
    "orders",
    "order",
    ORDERS_DB,
    OrderRecord,
    ("user_id", "product_id", "quantity"),
    order_rules.check_order,
)


@dataclass
class Checked:
    """The records of one resource after their own rules: rows to write, and the skipped."""

    resource: Resource
    received: int
    rows: list[Row] = field(default_factory=list)  # (id or None, *values), ready to write
    positions: list[int] = field(default_factory=list)  # request index of each row
    skipped: list[tuple[int, Any, Reasons]] = field(default_factory=list)  # (index, id, reasons)
    ids_above: int = 0  # the largest explicit id among the rows

    def chunks(self, size: int):
        """(first row number, rows) per chunk of at most ``size`` rows."""
        for start in range(0, len(self.rows), size):
            yield start, self.rows[start : start + size]


@dataclass
class ResourceResult:
    """What happened to the records of one resource: the response's per-type section."""

    received: int
    inserted_ids: list[int] = field(default_factory=list)
    skipped: list[tuple[int, Any, Reasons]] = field(default_factory=list)  # (index, id, reasons)
    failed_writes: int = 0  # valid records skipped because their database failed

    @property
    def valid(self) -> int:
        """Records that passed every check (in a dry run: the ones that would be inserted)."""
        return self.received - len(self.skipped) + self.failed_writes

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "valid": self.valid,
            "inserted": len(self.inserted_ids),
            "skipped": len(self.skipped),
            "inserted_ids": self.inserted_ids,
            "skipped_groups": self.skipped_groups(),
        }

    def skipped_groups(self) -> list[dict[str, Any]]:
        """The skipped records grouped by their reasons (equal dicts together), in order of
        each group's first index: ``{"reasons", "indexes", "ids"}``, ``ids`` parallel to
        ``indexes`` and only given when a record of the group had one.

        Grouped because a batch of 500,000 records with the same fault would otherwise repeat
        the same reasons 500,000 times (a response 49 times its request); grouped, a skipped
        record costs its index (and id) only.
        """
        self.skipped.sort(key=itemgetter(0))
        groups: dict[bytes, tuple[Reasons, list[int], list[Any]]] = {}
        last: Reasons | None = None
        group: tuple[Reasons, list[int], list[Any]] = ({}, [], [])
        for index, record_id, reasons in self.skipped:
            # Neighbours mostly share their reasons (one object for a failed chunk, equal
            # dicts for a run of the same fault): comparing with the last one spares the key.
            if reasons is not last and reasons != last:
                key = orjson.dumps(reasons, default=str, option=_REASONS_KEY)
                group = groups.get(key) or groups.setdefault(key, (reasons, [], []))
                last = reasons
            group[1].append(index)
            group[2].append(record_id)
        return [
            {"reasons": reasons, "indexes": indexes, "ids": ids}
            if ids.count(None) != len(ids)
            else {"reasons": reasons, "indexes": indexes}
            for reasons, indexes, ids in groups.values()
        ]


# Equal reasons dicts give the same bytes whatever their keys' order.
_REASONS_KEY = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


@dataclass
class IngestResult:
    """The outcome of one batch; ``as_dict()`` is the response body."""

    users: ResourceResult
    products: ResourceResult
    orders: ResourceResult
    dry_run: bool = False
    atomic: bool = False
    rejected: bool = False  # atomic mode refused the whole batch
    seconds: float = 0.0
    detail: str | None = None

    @property
    def sections(self) -> tuple[ResourceResult, ResourceResult, ResourceResult]:
        return self.users, self.products, self.orders

    @property
    def errors(self) -> bool:
        return any(section.skipped for section in self.sections)

    def as_dict(self) -> dict[str, Any]:
        # Many small lists and dicts for the skipped groups: the collector's passes cost ten
        # times the building without this (measured with one dict per skipped record, 0.36 s
        # against 0.03 s for 300,000 records, 15,000 skipped).
        with fewer_collections():
            return self._as_dict()

    def _as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "errors": self.errors,
            "took_ms": round(self.seconds * 1000),
            "dry_run": self.dry_run,
            "atomic": self.atomic,
            "committed": not self.dry_run and not self.rejected,
        }
        if self.detail:
            body["detail"] = self.detail
        body.update(
            users=self.users.as_dict(),
            products=self.products.as_dict(),
            orders=self.orders.as_dict(),
        )
        return body


class WriteFailed(Exception):
    """An atomic batch could not be written (a 503): what happened, and the ids left behind.

    ``left_behind`` lists, per type, ids still stored that will be removed automatically (see
    ``ingest.atomic``); ``as_dict()`` is the response body.
    """

    def __init__(self, detail: str, *, left_behind: dict[str, list[int]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.left_behind = left_behind or {}

    def as_dict(self) -> dict[str, Any]:
        return {"detail": self.detail, "code": "unavailable", "left_behind": self.left_behind}


# --- checking ---------------------------------------------------------------------------------


def highest_explicit_id(records: Sequence[Any], resource: Resource) -> int:
    """The largest explicit id in ``records``: ids the database assigns go above it."""
    highest = 0
    record_type = resource.record_type
    for record in records:
        if type(record) is record_type:
            raw_id = record.id
            if type(raw_id) is not int:
                raw_id = clean_id(raw_id)
                if type(raw_id) is not int:
                    continue
            if raw_id > highest:
                highest = raw_id
    return min(highest, MAX_BIGINT)


def check_records(
    records: Sequence[Any],
    resource: Resource,
    *,
    chunk_size: int = 0,
    on_chunk: Callable[[int, list[Row]], None] | None = None,
) -> Checked:
    """Apply the resource's rules to each record; no database is touched.

    With ``on_chunk``, every ``chunk_size`` checked rows are handed over as soon as they are
    ready (``on_chunk(first row number, rows)``), so that a writer can start on them while the
    rest is checked. This loop runs once per record of every batch, so it sticks to local names
    and early exits.
    """
    checked = Checked(resource, received=len(records))
    rows, positions, skipped = checked.rows, checked.positions, checked.skipped
    record_type, rule = resource.record_type, resource.rule
    values_of = attrgetter(*resource.fields)
    claimed: dict[int, int] = {}  # explicit id -> index of the valid record that has it
    handed_over = 0
    next_handover = chunk_size if on_chunk is not None else -1
    max_id = MAX_BIGINT
    for index, record in enumerate(records):
        if type(record) is not record_type:
            skipped.append((index, *_irregular_record(record, resource)))
            continue
        values, errors = rule(*values_of(record))
        record_id = record.id
        if type(record_id) is int and 0 < record_id <= max_id:  # the usual case
            if errors is None:
                if record_id not in claimed:
                    claimed[record_id] = index
                    rows.append((record_id,) + values)
                    positions.append(index)
                    if len(rows) == next_handover:
                        on_chunk(handed_over, rows[handed_over:])
                        handed_over, next_handover = next_handover, next_handover + chunk_size
                    continue
                errors = _repeated_id_reason(resource, claimed[record_id])
        elif record_id is UNSET or record_id is None:
            record_id = None
        else:
            record_id, errors = _irregular_id(record_id, errors)
            if errors is None and record_id in claimed:
                errors = _repeated_id_reason(resource, claimed[record_id])
            elif errors is None:
                claimed[record_id] = index
        if errors:
            skipped.append((index, record_id, errors))
            continue
        rows.append((record_id,) + values)
        positions.append(index)
        if len(rows) == next_handover:
            on_chunk(handed_over, rows[handed_over:])
            handed_over, next_handover = next_handover, next_handover + chunk_size
    if on_chunk is not None and len(rows) > handed_over:
        on_chunk(handed_over, rows[handed_over:])
    checked.ids_above = highest_explicit_id(records, resource) if len(rows) > len(claimed) else 0
    return checked


_A = {"users": "a user", "products": "a product", "orders": "an order"}


def _irregular_record(record: Any, resource: Resource) -> tuple[Any, Reasons]:
    """``(id, reasons)`` of a record that is not a plain record of its type: one with unknown
    keys (judged by its rules too, as the single-record endpoints judge it), one repeating a
    key, or not a JSON object at all."""
    if type(record) is not UnknownKeys:
        return None, _not_an_object(record)
    inner = record.record
    _, errors = resource.rule(*attrgetter(*resource.fields)(inner))
    unknown = unknown_field_errors(record.keys, _A[resource.name], resource.fields)
    record_id = None if inner.id is UNSET else _reportable(inner.id)
    return record_id, {**(errors or {}), **unknown}


def _not_an_object(record: Any) -> Reasons:
    if type(record) is RepeatedKey:
        return {
            "non_field_errors": [
                f"The key {record.key!r} appears more than once in this record; send each once."
            ]
        }
    kind = _JSON_TYPE_NAMES.get(type(record), type(record).__name__)
    return {"non_field_errors": [f"Expected a JSON object, got {kind}."]}


def _repeated_id_reason(resource: Resource, first_index: int) -> Reasons:
    return {
        "id": [f"Duplicate id: the {resource.singular} at index {first_index} has the same id."]
    }


def _irregular_id(raw_id: Any, errors: Reasons | None) -> tuple[Any, Reasons | None]:
    """An id that is not a plain JSON integer in range: cleaned (``"7"``, ``7.0``) or refused."""
    record_id = clean_id(raw_id)
    if type(record_id) is Invalid:
        return _reportable(raw_id), {"id": [record_id.message], **(errors or {})}
    return record_id, errors


def _reportable(raw_id: Any) -> Any:
    """An id as the response can show it: JSON scalars as they came, anything else as text."""
    if isinstance(raw_id, str | int | float | bool) and (
        not isinstance(raw_id, int) or -(2**63) <= raw_id < 2**64
    ):
        return raw_id
    return repr(raw_id)[:100]


# --- writing ----------------------------------------------------------------------------------


def _duplicate_reason(resource: Resource, record_id: int) -> Reasons:
    return {"id": [f"Duplicate id: a {resource.singular} with id {record_id} already exists."]}


def _write_failed_reason(resource: Resource, exc: BaseException) -> Reasons:
    # A plain DatabaseError is SQLite's "file is not a database" or "disk image is malformed".
    down = isinstance(exc, OperationalError | InterfaceError) or type(exc) is DatabaseError
    what = "is unavailable" if down else "failed"
    return {
        "non_field_errors": [
            f"Not written: the {resource.name} database {what} ({type(exc).__name__}: {exc}). "
            "Nothing of this chunk was written; send these records again."
        ]
    }


ChunkOutcome = list[int | None] | tuple[list[int | None], dict[int, Reasons]]


def _fold(
    checked: Checked, start: int, chunk: list[Row], outcome: ChunkOutcome, result: ResourceResult
) -> None:
    """Add one written chunk to ``result``: ids in request order, skips with their reasons."""
    ids, reference_errors = outcome if isinstance(outcome, tuple) else (outcome, {})
    if None not in ids:  # the common case: every row of the chunk was written
        result.inserted_ids.extend(ids)
        return
    for offset, stored_id in enumerate(ids):
        if stored_id is not None:
            result.inserted_ids.append(stored_id)
            continue
        row_id = chunk[offset][0]
        reasons = reference_errors.get(offset) or _duplicate_reason(checked.resource, row_id)
        result.skipped.append((checked.positions[start + offset], row_id, reasons))


def _fold_failure(
    checked: Checked, start: int, chunk: list[Row], exc: Exception, result: ResourceResult
) -> None:
    """A chunk whose transaction failed: every row of it is skipped, saying why."""
    reason = _write_failed_reason(checked.resource, exc)
    for offset, row in enumerate(chunk):
        result.skipped.append((checked.positions[start + offset], row[0], reason))
    result.failed_writes += len(chunk)


@dataclass
class _Run:
    """What one ingest call carries through its phases besides the records."""

    ledger_key: str | None = None  # prefix of the write-ledger keys (re-runnable jobs)
    on_progress: Callable[[int], None] | None = None
    done: int = 0  # records with a final outcome so far

    def ledger(self, resource: Resource, chunk_number: int | None = None) -> str | None:
        if self.ledger_key is None:
            return None
        suffix = "" if chunk_number is None else f":{chunk_number}"
        return f"{self.ledger_key}:{resource.name}{suffix}"

    def advance(self, records: int) -> None:
        self.done += records
        if self.on_progress is not None:
            self.on_progress(self.done)


def _collect(
    checked: Checked,
    submitted: list[tuple[int, list[Row], Future]],
    result: ResourceResult,
    run: _Run,
) -> None:
    """Wait for each chunk's writer and fold its outcome into ``result``."""
    run.advance(len(checked.skipped))
    for start, chunk, future in submitted:
        try:
            outcome = future.result()
        except DatabaseError as exc:
            _fold_failure(checked, start, chunk, exc, result)
        else:
            _fold(checked, start, chunk, outcome, result)
        run.advance(len(chunk))


def _collect_orders(orders: Checked, written: Future, result: ResourceResult, run: _Run) -> None:
    """Fold the orders writer's outcome (one transaction for all chunks) into ``result``."""
    chunks = list(orders.chunks(settings.INGEST_CHUNK_SIZE))
    try:
        outcomes = written.result()
    except DatabaseError as exc:
        for start, chunk in chunks:
            _fold_failure(orders, start, chunk, exc, result)
    else:
        for (start, chunk), outcome in zip(chunks, outcomes, strict=True):
            _fold(orders, start, chunk, outcome, result)
    run.advance(orders.received)


def _result_of(checked: Checked) -> ResourceResult:
    return ResourceResult(received=checked.received, skipped=list(checked.skipped))


def ingest(
    batch: Batch,
    *,
    dry_run: bool = False,
    atomic: bool = False,
    ledger_key: str | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> IngestResult:
    """Run a batch through the pipeline (see the module docstring).

    ``ledger_key`` makes the writes re-runnable: a chunk written under it before (by a run that
    died) is not written again, its recorded outcome is reused. ``on_progress(done)`` is called
    with the number of records whose outcome is final, as it grows.
    """
    started = time.perf_counter()
    run = _Run(ledger_key=ledger_key, on_progress=on_progress)
    _finish_interrupted_first()  # so that a batch re-sent after a failed atomic one goes in
    with fewer_collections():
        if dry_run or atomic:
            result = _ingest_checked_first(batch, dry_run=dry_run, run=run)
        else:
            result = _ingest_streaming(batch, run)
    result.seconds = time.perf_counter() - started
    record_ingest(result)
    _log_ingest(result)
    return result


def _log_ingest(result: IngestResult) -> None:
    """One structured line per batch: its counts per type and how long it took."""
    fields: dict[str, Any] = {
        "event": "ingest",
        "duration_ms": round(result.seconds * 1000, 1),
        "dry_run": result.dry_run,
        "atomic": result.atomic,
        "committed": not result.dry_run and not result.rejected,
    }
    for name, section in zip(("users", "products", "orders"), result.sections, strict=True):
        fields[name] = {
            "received": section.received,
            "inserted": len(section.inserted_ids),
            "skipped": len(section.skipped),
        }
    log.info(
        "ingest: %d inserted, %d skipped in %.0f ms",
        sum(len(section.inserted_ids) for section in result.sections),
        sum(len(section.skipped) for section in result.sections),
        result.seconds * 1000,
        extra={"fields": fields},
    )


def forget_ledger(ledger_key: str) -> None:
    """Drop the write-ledger rows of a finished run (in every service's database)."""
    user_services.users_forget_ledger(ledger_key)
    product_services.products_forget_ledger(ledger_key)
    order_services.orders_forget_ledger(ledger_key)


def _check_and_write(
    records: Sequence[Any], resource: Resource, pool: WriterPool, writer: Callable, run: _Run
) -> tuple[Checked, list[tuple[int, list[Row], Future]]]:
    """Check records and hand each full chunk to ``pool`` as soon as it is checked."""
    size = settings.INGEST_CHUNK_SIZE
    submitted: list[tuple[int, list[Row], Future]] = []
    ids_above: int | None = None  # found only if some record comes without an id

    def write(start: int, rows: list[Row]) -> None:
        nonlocal ids_above
        if ids_above is None and any(row[0] is None for row in rows):
            ids_above = highest_explicit_id(records, resource)
        future = pool.submit(
            writer, rows, ids_above=ids_above or 0, ledger_key=run.ledger(resource, start // size)
        )
        submitted.append((start, rows, future))

    checked = check_records(records, resource, chunk_size=size, on_chunk=write)
    return checked, submitted


def _ingest_streaming(batch: Batch, run: _Run) -> IngestResult:
    """The default mode (see the module docstring for the picture)."""
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
        orders = check_records(
            batch.orders, ORDERS, chunk_size=size, on_chunk=lambda _, rows: order_chunks.put(rows)
        )
        order_chunks.put(None)
        batch.orders = []  # the rows hold what is needed; let the decoded records go
        users, user_chunks = _check_and_write(
            batch.users, USERS, pools[USERS_DB], user_services.users_bulk_insert, run
        )
        batch.users = []
        products, product_chunks = _check_and_write(
            batch.products,
            PRODUCTS,
            pools[PRODUCTS_DB],
            product_services.products_bulk_insert,
            run,
        )
        batch.products = []

        users_result, products_result = _result_of(users), _result_of(products)
        _collect(users, user_chunks, users_result, run)
        _collect(products, product_chunks, products_result, run)
        # What this batch inserted needs no lookup, unless a deletion ran since it began.
        references.set_result(
            order_services.KnownReferences(
                frozenset(users_result.inserted_ids), frozenset(products_result.inserted_ids), epoch
            )
        )
        orders_result = _result_of(orders)
        _collect_orders(orders, orders_written or write_orders(), orders_result, run)
    return IngestResult(users_result, products_result, orders_result)


def _abandon(references: Future, order_chunks: queue.SimpleQueue) -> None:
    order_chunks.put(None)
    if not references.done():
        references.set_exception(RuntimeError("the ingest stopped before its orders were checked"))


# --- dry runs and atomic batches --------------------------------------------------------------


class _Rejected(Exception):
    """Raised inside the atomic transactions to roll all of them back."""


def _check_duplicates(
    checked: Checked, existing: Callable[[set[int]], set[int]], result: ResourceResult
) -> set[int]:
    """Skip rows whose explicit id exists (one query per chunk); return the ids that remain."""
    kept: set[int] = set()
    for start, chunk in checked.chunks(settings.INGEST_CHUNK_SIZE):
        taken = existing({row[0] for row in chunk if row[0] is not None})
        for offset, row in enumerate(chunk):
            if row[0] in taken:
                reasons = _duplicate_reason(checked.resource, row[0])
                result.skipped.append((checked.positions[start + offset], row[0], reasons))
            elif row[0] is not None:
                kept.add(row[0])
    return kept


def _validate_against_databases(
    users: Checked, products: Checked, orders: Checked, results: IngestResult
) -> None:
    """The checks that need the databases, for every row: duplicate ids and references.

    An order may point at a user or product of the same batch that passed its checks.
    """
    user_ids = _check_duplicates(users, existing_user_ids, results.users)
    product_ids = _check_duplicates(products, existing_product_ids, results.products)
    for start, chunk in orders.chunks(settings.INGEST_CHUNK_SIZE):
        reference_errors = order_services.reference_errors(
            chunk, known_user_ids=user_ids, known_product_ids=product_ids
        )
        taken = existing_order_ids({row[0] for row in chunk if row[0] is not None})
        for offset, row in enumerate(chunk):
            reasons = reference_errors.get(offset)
            if reasons is None and row[0] in taken:
                reasons = _duplicate_reason(ORDERS, row[0])
            if reasons:
                results.orders.skipped.append((orders.positions[start + offset], row[0], reasons))


def _ingest_checked_first(batch: Batch, *, dry_run: bool, run: _Run) -> IngestResult:
    """Check everything before writing anything: the dry-run and atomic modes."""
    users = check_records(batch.users, USERS)
    products = check_records(batch.products, PRODUCTS)
    orders = check_records(batch.orders, ORDERS)
    batch.users = batch.products = batch.orders = []
    results = IngestResult(
        _result_of(users),
        _result_of(products),
        _result_of(orders),
        dry_run=dry_run,
        atomic=not dry_run,
    )
    if dry_run:
        _validate_against_databases(users, products, orders, results)
        run.advance(len(users.rows) + len(products.rows) + len(orders.rows))
        return results
    return _ingest_atomic(users, products, orders, results, run)


def _ingest_atomic(
    users: Checked, products: Checked, orders: Checked, results: IngestResult, run: _Run
) -> IngestResult:
    """Write the batch only if every record is valid, and then all of it or nothing.

    Holds all three databases' write locks for the whole batch (taken in the global order
    orders, products, users, as deletion guards do, so they cannot deadlock; in the orders
    database the batch lock of ``ingest.atomic`` comes first), checks every record under them,
    and writes only if all are valid, with a marker in each database (see ``ingest.atomic``).
    The three transactions then commit one after another: users, products, orders. If a commit
    fails after an earlier one succeeded, what the earlier ones wrote is deleted again at once;
    if even that fails, the markers say what is left, and it is deleted as soon as the database
    lets it (:func:`finish_interrupted_atomic_batches`). Either way the answer is a 503.
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
            order_services.lock_orders_for_checked_insert()
            _validate_against_databases(users, products, orders, results)
            if results.errors:
                raise _Rejected
            marked = _write_in_caller_transactions(users, products, orders, results, run, key)
            if results.errors:  # refused while writing, though the checks passed: keep nothing
                raise _Rejected
    except _Rejected:
        results.rejected = True
        for section in results.sections:
            section.inserted_ids = []
        invalid = sum(len(section.skipped) for section in results.sections)
        results.detail = f"atomic=true: nothing was written because {invalid} records are invalid."
        return results
    except DatabaseError as exc:
        failure = _undo_now(key, committed, results, exc)
        if failure is not None:
            raise failure from exc
    atomic_batches.forget_batch(key, marked)
    return results


_MARKED_BY_RESOURCE = {USERS.name: atomic_batches.USERS, PRODUCTS.name: atomic_batches.PRODUCTS}


def _write_in_caller_transactions(
    users: Checked, products: Checked, orders: Checked, results: IngestResult, run: _Run, key: str
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
    outcomes = order_services.orders_bulk_insert(
        [chunk for _, chunk in chunks],
        ids_above=orders.ids_above,
        references_ready=lambda: known,
        ledger_key=run.ledger(ORDERS),
    )
    for (start, chunk), outcome in zip(chunks, outcomes, strict=True):
        _fold(orders, start, chunk, outcome, results.orders)
    return marked


def _write_marked(
    checked: Checked, write: Callable, section: ResourceResult, run: _Run, key: str
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
        outcome = write(chunk, ids_above=checked.ids_above, ledger_key=ledger_key)
        _fold(checked, start, chunk, outcome, section)
        run.advance(len(chunk))
        if ledger_key not in done_before:
            new_ids += [stored for stored in outcome if stored is not None]
            if ledger_key is not None:
                new_keys.append(ledger_key)
    if not new_ids and not new_keys:
        return False
    service.mark(key, ids=new_ids, ledger_keys=new_keys)
    return True


def _undo_now(
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
    fallback = {names[a]: sections[a].inserted_ids for a in committed if a in sections}
    left = atomic_batches.left_behind(key, fallback)
    what = f"atomic=true: the {failed} database failed while committing ({exc})"
    if not left:
        return WriteFailed(
            f"{what}; the rows already committed in {' and '.join(sorted(fallback))} were "
            "deleted again, so nothing was kept. Send the batch again once the database is back."
        )
    counts = " and ".join(f"{len(ids)} {name}" for name, ids in left.items())
    undo_exc = finished.failed.get(key)
    why = f" ({undo_exc})" if undo_exc is not None else ""
    return WriteFailed(
        f"{what}, and deleting what was already committed failed too{why}. {counts} "
        "of this batch are still stored (ids in left_behind); they are recorded as an "
        "unfinished batch and will be removed automatically as soon as the database allows: "
        "at the latest on the next ingest request or by the job reaper. Then send the batch "
        "again: it will be written exactly once.",
        left_behind=left,
    )


def finish_interrupted_atomic_batches() -> int:
    """Finish undoing atomic batches a failure interrupted; return how many were undone.

    Safe to call at any time from any process: it waits for an atomic batch that is still
    committing, and does nothing (three indexed lookups) when no marker is left. Every ingest
    calls it first; the job reaper and ``reap_ingest_jobs`` call it too. See ``ingest.atomic``.
    """
    return len(atomic_batches.finish_interrupted().undone)


def _finish_interrupted_first() -> None:
    """The recovery at the start of an ingest; a database that fails it does not stop the batch."""
    try:
        finish_interrupted_atomic_batches()
    except DatabaseError as exc:
        log.warning("could not check for interrupted atomic batches (%s)", exc)
