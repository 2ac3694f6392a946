"""What a batch did: per type, the ids it inserted and the records it skipped, with reasons.

:class:`IngestResult` is the response body (``as_dict()``), one :class:`ResourceResult` per type,
the skipped records grouped by their reasons (:meth:`ResourceResult.skipped_groups`). A result
starts from what the checks skipped (:func:`result_of`) and grows as each written chunk comes
back: :func:`fold_chunk` adds the ids the chunk inserted, in request order, and skips the rows it
did not insert (an id already stored, no id left to assign, an order pointing nowhere);
:func:`fold_failure` skips every
row of a chunk whose transaction failed, saying that the database did. :class:`WriteFailed` is
the one outcome that is not a result: an atomic batch that could not be written (a 503).

A result also knows where each record ended, for a background job's per-record results
(``ingest.outcomes``): the rows it checked (``sources``: their positions and explicit ids), the
request index of each written id when a batch had actions (``done_at``; for inserts only, the
n-th record that was not skipped got the n-th id), and the records a stopped run never wrote
(:func:`fold_unprocessed`, :func:`kept_nothing`). None of it costs the request path more than
a reference or a flag.
"""

from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import orjson
from django.db import DatabaseError, InterfaceError, OperationalError

from common.data.gc_tuning import fewer_collections
from common.data.validation import MAX_BIGINT
from ingest.checking import Checked
from ingest.resources import Reasons, Resource, Row


@dataclass
class ResourceResult:
    """What happened to the records of one resource: the response's per-type section."""

    received: int
    inserted_ids: list[int] = field(default_factory=list)
    skipped: list[tuple[int, Any, Reasons]] = field(default_factory=list)  # (index, id, reasons)
    failed_writes: int = 0  # valid records skipped because their database failed
    updated_ids: list[int] = field(default_factory=list)
    deleted_ids: list[int] = field(default_factory=list)
    actions: list[str] | None = None  # each record's action, when a batch had others than insert
    # (request index, stored id) per outcome ("inserted", "updated", "deleted"), index order,
    # when a batch had actions; None for inserts only, whose ids follow the records' order.
    done_at: dict[str, list[tuple[int, int]]] | None = None
    unprocessed: list[int] = field(default_factory=list)  # indexes a stopped run did not write
    sources: list[Checked] = field(default_factory=list)  # the checked rows, with positions

    @property
    def valid(self) -> int:
        """Records that passed every check (in a dry run: the ones that would be inserted)."""
        return self.received - len(self.skipped) - len(self.unprocessed) + self.failed_writes

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "valid": self.valid,
            "inserted": len(self.inserted_ids),
            "updated": len(self.updated_ids),
            "deleted": len(self.deleted_ids),
            "skipped": len(self.skipped),
            "inserted_ids": self.inserted_ids,
            "updated_ids": self.updated_ids,
            "deleted_ids": self.deleted_ids,
            "skipped_groups": self.skipped_groups(),
        }

    def skipped_groups(self) -> list[dict[str, Any]]:
        """The skipped records grouped by their reasons (equal dicts together), in order of
        each group's first index: ``{"reasons", "indexes", "ids"}``, ``ids`` parallel to
        ``indexes`` and only given when a record of the group had one. In a batch with other
        actions than insert, records are grouped by action too, and a group of them names it
        (``"action"``; a group without one is of inserts).

        Grouped because a batch of 500,000 records with the same fault would otherwise repeat
        the same reasons 500,000 times (a response 49 times its request); grouped, a skipped
        record costs its index (and id) only.
        """
        self.skipped.sort(key=itemgetter(0))
        actions = self.actions
        groups: dict[Any, tuple[Reasons, list[int], list[Any], str]] = {}
        last: Reasons | None = None
        last_action = "insert"
        group: tuple[Reasons, list[int], list[Any], str] = ({}, [], [], "insert")
        for index, record_id, reasons in self.skipped:
            action = actions[index] if actions is not None else "insert"
            # Neighbours mostly share their reasons (one object for a failed chunk, equal
            # dicts for a run of the same fault): comparing with the last one spares the key.
            if reasons is not last and reasons != last or action != last_action:
                key = orjson.dumps(reasons, default=str, option=_REASONS_KEY), action
                group = groups.get(key) or groups.setdefault(key, (reasons, [], [], action))
                last, last_action = reasons, action
            group[1].append(index)
            group[2].append(record_id)
        return [_group(*group) for group in groups.values()]


def _group(reasons: Reasons, indexes: list[int], ids: list[Any], action: str) -> dict[str, Any]:
    group: dict[str, Any] = {"reasons": reasons, "indexes": indexes}
    if ids.count(None) != len(ids):
        group["ids"] = ids
    if action != "insert":
        group["action"] = action
    return group


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
    aborted: bool = False  # the run was asked to stop, and did before its end
    rolled_back: bool = False  # held in transactions and rolled back: nothing of it was kept

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

    ``left_behind`` lists, per type, ids of rows the batch inserted that are still stored and
    will be removed automatically; ``not_restored`` the ids of rows it replaced, updated or
    deleted whose earlier state is not put back yet, which will be (see ``ingest.atomic``);
    ``as_dict()`` is the response body.
    """

    def __init__(
        self,
        detail: str,
        *,
        left_behind: dict[str, list[int]] | None = None,
        not_restored: dict[str, list[int]] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.left_behind = left_behind or {}
        self.not_restored = not_restored or {}
        self.result: IngestResult | None = None  # the batch's checks, when it got that far

    def as_dict(self) -> dict[str, Any]:
        return {
            "detail": self.detail,
            "code": "unavailable",
            "left_behind": self.left_behind,
            "not_restored": self.not_restored,
        }


# --- folding the written chunks into the result ---------------------------------------------------


def result_of(checked: Checked) -> ResourceResult:
    """A type's result before anything is written: the records its checks skipped."""
    return ResourceResult(
        received=checked.received, skipped=list(checked.skipped), sources=[checked]
    )


def duplicate_reason(resource: Resource, record_id: int) -> Reasons:
    # The id is in the group's "ids": a message that repeated it made every duplicate a group
    # of its own (a re-sent batch of 500,000 answered 1.8x its body).
    return {
        "id": [f"Duplicate id: {resource.article} {resource.singular} with this id already exists."]
    }


def no_id_left_reason(resource: Resource) -> Reasons:
    """Why a record without an id was not inserted: its table has used the largest id there is
    (``common.data.ids``), or the batch holds it. Sending it again will not help; an id will."""
    return {
        "id": [
            f"No id is left for this {resource.singular}: ids are given above every "
            f"{resource.singular} id used before and every id in the batch, and {MAX_BIGINT}, "
            f"the largest possible {resource.singular} id, is among them. Give it an id of its own "
            "that is not in use."
        ]
    }


def refused_reason(resource: Resource, row_id: int | None) -> Reasons:
    """Why a writer refused a row without saying why: a row with an id is a duplicate, a row
    without one is one no id was left for (``common.data.bulk.insert_new``)."""
    if row_id is None:
        return no_id_left_reason(resource)
    return duplicate_reason(resource, row_id)


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


def fold_chunk(
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
        reasons = reference_errors.get(offset) or refused_reason(checked.resource, row_id)
        result.skipped.append((checked.positions[start + offset], row_id, reasons))


def fold_failure(
    checked: Checked, start: int, chunk: list[Row], exc: Exception, result: ResourceResult
) -> None:
    """A chunk whose transaction failed: every row of it is skipped, saying why."""
    reason = _write_failed_reason(checked.resource, exc)
    for offset, row in enumerate(chunk):
        result.skipped.append((checked.positions[start + offset], row[0], reason))
    result.failed_writes += len(chunk)


def fold_unprocessed(
    checked: Checked, start: int, chunk: list[Row], result: ResourceResult
) -> None:
    """A chunk a stopped run did not write: its records are unprocessed."""
    result.unprocessed.extend(checked.positions[start : start + len(chunk)])


def kept_nothing(results: IngestResult, *, aborted: bool = True) -> IngestResult:
    """``results`` of a batch held in transactions (a dry run, ``atomic=true``) that was asked
    to stop (or, not ``aborted``, failed to commit) and rolled back: nothing of it was kept,
    and every record its checks did not skip is unprocessed."""
    results.aborted = aborted
    results.rolled_back = True
    for section in results.sections:
        section.inserted_ids, section.updated_ids, section.deleted_ids = [], [], []
        section.done_at = None
    return results
