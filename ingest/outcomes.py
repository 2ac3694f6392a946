"""Where each record of a batch ended: one outcome per record, for a job's per-record results.

A synchronous ingest answers with lists of ids and groups of skipped records
(``ingest.results``). A background job keeps more, as Salesforce's Bulk API keeps a successful,
a failed and an unprocessed result per record: for every record of its batch, by type and
index (its position in its list), one **outcome**:

=============== ==================================================================================
``inserted``    written as a new record (an upsert of a new id too); ``id`` is the stored id
``updated``     an update, or an upsert that replaced the stored record
``deleted``     deleted
``skipped``     not written, with its ``reasons`` (as in the synchronous ``skipped_groups``)
``unprocessed`` never written: the job was aborted before it (or, ``atomic=true``, the batch was
                rolled back, or a database failed its commit); its ``reasons`` say which
``valid``       passed every check and was not written: a dry run, or an ``atomic=true`` batch
                refused because of other records
=============== ==================================================================================

:func:`outcomes_of` reads them off an :class:`~ingest.results.IngestResult` after the run
(``ingest.pipeline.ingest(..., per_record=True)`` keeps what it needs): skipped records come
with their index; ids written by a batch with actions come with theirs (``done_at``); in a batch
of inserts only, the n-th record neither skipped nor unprocessed got the n-th inserted id; the
ids of the records not written are their explicit ids, read from the checked rows
(``sources``). Each type's outcomes are compact arrays, one byte and one 64-bit id per record,
so a million records cost 9 MB here and far less once stored (``ingest.job_results``).
"""

from array import array
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from ingest.actions import ACTIONS, INSERT
from ingest.formats import TYPES
from ingest.resources import Reasons
from ingest.results import IngestResult, ResourceResult

#: The outcomes, in the order counts show them; a record's code is its position plus one.
OUTCOMES = ("inserted", "updated", "deleted", "skipped", "unprocessed", "valid")
INSERTED, UPDATED, DELETED, SKIPPED, UNPROCESSED, VALID = range(1, 7)
CODES = dict(zip(OUTCOMES, range(1, 7), strict=True))
_DONE = {"inserted": INSERTED, "updated": UPDATED, "deleted": DELETED}

#: A record's action as one byte: its position in ACTIONS, or OTHER for an unknown action (the
#: record is then skipped, and its skipped entry keeps the action as the request gave it).
ACTION_CODES = {action: code for code, action in enumerate(ACTIONS)}
OTHER_ACTION = len(ACTIONS)


@dataclass
class TypeOutcomes:
    """The outcome of every record of one type, by index."""

    name: str
    codes: bytearray  # one outcome code per record
    ids: array  # 'q': the stored (or explicit) id per record, 0 for none
    actions: bytearray | None  # one action code per record; None when all were inserts
    skipped: list[tuple[int, Any, Reasons, str]] = field(default_factory=list)
    failed_writes: int = 0  # valid records skipped because their database failed

    @property
    def received(self) -> int:
        return len(self.codes)

    def counts(self) -> dict[str, int]:
        """``received``, ``valid`` (as a synchronous answer counts it) and one count per
        outcome but ``valid``, which a dry run's ``valid`` already counts."""
        per_outcome = {name: self.codes.count(code) for name, code in CODES.items()}
        written = per_outcome["inserted"] + per_outcome["updated"] + per_outcome["deleted"]
        return {
            "received": self.received,
            "valid": written + per_outcome.pop("valid") + self.failed_writes,
            **per_outcome,
        }


def outcomes_of(result: IngestResult) -> dict[str, TypeOutcomes]:
    """Every record's outcome, per type (see the module docstring)."""
    nothing_written = result.dry_run or result.rejected or result.rolled_back
    rest = VALID if (result.dry_run or result.rejected) and not result.aborted else UNPROCESSED
    return {
        name: _type_outcomes(name, section, nothing_written=nothing_written, rest=rest)
        for name, section in zip(TYPES, result.sections, strict=True)
    }


def _type_outcomes(
    name: str, section: ResourceResult, *, nothing_written: bool, rest: int
) -> TypeOutcomes:
    size = section.received
    if (
        not nothing_written
        and section.done_at is None
        and not section.skipped
        and not section.unprocessed
        and len(section.inserted_ids) == size
    ):  # the common job: every record inserted
        return TypeOutcomes(name, _all(INSERTED, size), array("q", section.inserted_ids), None)
    codes = bytearray(size)
    ids = array("q", bytes(8 * size))
    outcomes = TypeOutcomes(
        name, codes, ids, _action_codes(section.actions), failed_writes=section.failed_writes
    )
    for index, shown_id, reasons in sorted(section.skipped, key=itemgetter(0)):
        codes[index] = SKIPPED
        action = section.actions[index] if section.actions is not None else INSERT
        outcomes.skipped.append((index, shown_id, reasons, action))
    for index in section.unprocessed:
        codes[index] = UNPROCESSED
    if not nothing_written:
        if section.done_at is not None:
            for outcome, pairs in section.done_at.items():
                code = _DONE[outcome]
                for index, stored_id in pairs:
                    codes[index] = code
                    ids[index] = stored_id
        else:
            _inserted_in_order(codes, ids, section.inserted_ids)
    if codes.count(0):
        codes[:] = codes.replace(b"\0", bytes([rest]))
    if codes.count(UNPROCESSED) or codes.count(VALID):
        _ids_not_written(codes, ids, section)
    return outcomes


def _action_codes(actions: list[str] | None) -> bytearray | None:
    if actions is None:
        return None
    known = ACTION_CODES
    return bytearray(known.get(action, OTHER_ACTION) for action in actions)


def _inserted_in_order(codes: bytearray, ids: array, inserted_ids: list[int]) -> None:
    """Inserts only: the n-th record neither skipped nor unprocessed got the n-th id (chunks are
    folded in request order, whichever writer finished first)."""
    stored = iter(inserted_ids)
    for index, code in enumerate(codes):
        if code:
            continue
        stored_id = next(stored, None)
        if stored_id is None:
            break
        codes[index] = INSERTED
        ids[index] = stored_id


def _ids_not_written(codes: bytearray, ids: array, section: ResourceResult) -> None:
    """Records not written (valid or unprocessed) show their explicit id, if they had one."""
    for checked in section.sources:
        for index, row in zip(checked.positions, checked.rows, strict=True):
            if row[0] is not None and codes[index] >= UNPROCESSED:
                ids[index] = row[0]


def all_unprocessed(received: dict[str, int]) -> dict[str, TypeOutcomes]:
    """Outcomes of a batch nothing is known of but its size (every record unprocessed)."""
    return {
        name: TypeOutcomes(name, _all(UNPROCESSED, size), array("q", bytes(8 * size)), None)
        for name, size in received.items()
    }


def _all(code: int, size: int) -> bytearray:
    return bytearray([code]) * size
