"""A finished job's per-record results: stored in compact blocks, read back as NDJSON lines.

What is stored is ``ingest.outcomes``: for every record of the batch, by type and index, its
outcome, its id and action, its line in an NDJSON or CSV body, and for a skipped record its
reasons. It is kept in the default database in blocks of :data:`BLOCK_RECORDS` records of one
type (``ingest.models.IngestJobResultBlock``), each one zlib-compressed msgpack document:

* ``outcomes`` and ``actions``: a byte per record (``actions`` empty when every record was an
  insert);
* ``ids`` and ``lines``: 64-bit integers per record, stored as the difference from the previous
  one, so that the usual runs of consecutive ids and lines compress to almost nothing;
* the skipped records' reasons once per distinct ``(reasons, action)`` in the block (``kinds``),
  then per skipped record, in index order, which kind it is and the id it was shown with (an id
  that was refused may be any JSON value, so it is not in ``ids``).

A million inserted records take a few kilobytes; ids in no order about 4 MB. Reading goes a
block at a time (:func:`result_lines`), so a million results stream in flat memory, in a stable
order: type (users, products, orders), then index.
"""

import sys
import zlib
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate, chain
from operator import sub
from typing import Any

import msgspec
import orjson

from ingest.actions import ACTIONS, INSERT
from ingest.formats import TYPES
from ingest.models import IngestJobResultBlock
from ingest.outcomes import CODES, OUTCOMES, SKIPPED, UNPROCESSED, TypeOutcomes
from ingest.resources import Reasons

#: Records per stored block: what one read holds in memory (about 0.5 MB decoded).
BLOCK_RECORDS = 20_000


class _Block(msgspec.Struct, array_like=True, gc=False):
    outcomes: bytes
    ids: bytes
    lines: bytes
    actions: bytes
    kinds: list[tuple[Reasons, str]]
    kind_of: list[int]
    shown_ids: list[Any]


_encode = msgspec.msgpack.Encoder(enc_hook=str).encode  # lazy translations in reasons
_decode = msgspec.msgpack.Decoder(_Block).decode
_SWAP = sys.byteorder != "little"  # stored little-endian, whatever the machine


def _packed(values) -> bytes:
    """64-bit integers as differences from their predecessor (little-endian bytes)."""
    deltas = array("q", map(sub, values, chain((0,), values)))
    if _SWAP:
        deltas.byteswap()
    return deltas.tobytes()


def _unpacked(data: bytes) -> array:
    deltas = array("q", data)
    if _SWAP:
        deltas.byteswap()
    return array("q", accumulate(deltas))


# --- storing -----------------------------------------------------------------------------------


def blocks_of(
    outcomes: dict[str, TypeOutcomes], lines: dict[str, array] | None = None
) -> list[IngestJobResultBlock]:
    """The blocks to store for a job (unsaved, without their job)."""
    blocks = []
    for resource, name in enumerate(TYPES):
        type_outcomes = outcomes[name]
        type_lines = lines[name] if lines is not None else None
        skipped = iter(type_outcomes.skipped)
        for first in range(0, type_outcomes.received, BLOCK_RECORDS):
            end = min(first + BLOCK_RECORDS, type_outcomes.received)
            data = _block(type_outcomes, first, end, type_lines, skipped)
            blocks.append(
                IngestJobResultBlock(resource=resource, first=first, size=end - first, data=data)
            )
    return blocks


# Equal reasons give the same bytes whatever their keys' order (as in ingest.results).
_REASONS_KEY = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def _block(
    outcomes: TypeOutcomes, first: int, end: int, lines: array | None, skipped: Iterator
) -> bytes:
    codes = outcomes.codes[first:end]
    kinds: dict[tuple[bytes, str], tuple[int, Reasons, str]] = {}
    kind_of, shown_ids = [], []
    last: tuple[Reasons | None, str, int] = (None, "", -1)
    for _ in range(codes.count(SKIPPED)):
        _, shown_id, reasons, action = next(skipped)
        # Neighbours mostly share one reasons object (a failed chunk, a run of one fault).
        if reasons is not last[0] or action != last[1]:
            key = orjson.dumps(reasons, default=str, option=_REASONS_KEY), action
            number = kinds.setdefault(key, (len(kinds), reasons, action))[0]
            last = (reasons, action, number)
        kind_of.append(last[2])
        shown_ids.append(shown_id)
    block = _Block(
        outcomes=bytes(codes),
        ids=_packed(outcomes.ids[first:end]),
        lines=_packed(lines[first:end]) if lines is not None else b"",
        actions=bytes(outcomes.actions[first:end]) if outcomes.actions is not None else b"",
        kinds=[(reasons, action) for _, reasons, action in kinds.values()],
        kind_of=kind_of,
        shown_ids=shown_ids,
    )
    return zlib.compress(_encode(block))


# --- reading -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Record:
    """One record's result, as :func:`records` reads it back."""

    type: str
    index: int
    line: int | None
    id: Any
    action: str
    outcome: int  # a code of ingest.outcomes
    reasons: Reasons | None  # a skipped record's (an unprocessed one's come from the job)


def blocks(job_id, name: str) -> Iterator[tuple[int, _Block]]:
    """``(first index, block)`` of one type, in index order, one block in memory at a time."""
    resource = TYPES.index(name)
    found = IngestJobResultBlock.objects.filter(job_id=job_id, resource=resource).order_by("first")
    for block_id, first in found.values_list("id", "first"):
        data = IngestJobResultBlock.objects.values_list("data", flat=True).get(id=block_id)
        yield first, _decode(zlib.decompress(bytes(data)))


def records(job_id, name: str, outcome: int = 0) -> Iterator[list[Record]]:
    """The records of one type (of one outcome, if given), a block's worth per list."""
    for first, block in blocks(job_id, name):
        ids = _unpacked(block.ids)
        lines = _unpacked(block.lines) if block.lines else None
        actions = block.actions
        kinds, kind_of, shown_ids = block.kinds, block.kind_of, block.shown_ids
        found, skipped = [], 0
        for offset, code in enumerate(block.outcomes):
            if code == SKIPPED:
                reasons, action = kinds[kind_of[skipped]]
                record_id = shown_ids[skipped]
                skipped += 1
            else:
                reasons, action = None, ACTIONS[actions[offset]] if actions else INSERT
                record_id = ids[offset] or None
            if outcome and code != outcome:
                continue
            line = lines[offset] if lines is not None else None
            found.append(Record(name, first + offset, line, record_id, action, code, reasons))
        yield found


def result_lines(
    job_id,
    *,
    outcome: str | None = None,
    name: str | None = None,
    unprocessed_reasons: Reasons | None = None,
) -> Iterator[bytes]:
    """The job's results as NDJSON, a block at a time: a line per record, ``{"type", "index",
    "line" (NDJSON and CSV bodies), "id", "action", "outcome", "reasons" (skipped and
    unprocessed records)}``, by type (users, products, orders), then index."""
    wanted = CODES[outcome] if outcome else 0
    # Lines are appended to one buffer as they are made: orjson gives each its own buffer of
    # a few kilobytes, so 20,000 of them held for a join took 43 MB for 1 MB of lines.
    piece = bytearray()
    for type_name in TYPES if name is None else (name,):
        for found in records(job_id, type_name, wanted):
            for record in found:
                piece += _line(record, unprocessed_reasons)
                if len(piece) >= _PIECE_BYTES:
                    yield bytes(piece)
                    piece.clear()
    if piece:
        yield bytes(piece)


#: About how much of the stream is handed to the server at a time.
_PIECE_BYTES = 256 * 1024


def _line(record: Record, unprocessed_reasons: Reasons | None) -> bytes:
    shown: dict[str, Any] = {"type": record.type, "index": record.index}
    if record.line is not None:
        shown["line"] = record.line
    shown["id"] = record.id
    shown["action"] = record.action
    shown["outcome"] = OUTCOMES[record.outcome - 1]
    if record.outcome == SKIPPED:
        shown["reasons"] = record.reasons
    elif record.outcome == UNPROCESSED:
        shown["reasons"] = unprocessed_reasons
    return orjson.dumps(shown, option=orjson.OPT_APPEND_NEWLINE)


def unprocessed_reasons(*, state: str, atomic: bool, dry_run: bool, error: str) -> Reasons:
    """Why a job's unprocessed records were not written: it was aborted (``state``), or its
    atomic batch failed to commit (``error`` says how)."""
    if state != "aborted":
        return {"non_field_errors": [error or "Not processed: the job ended before this record."]}
    if dry_run:
        message = "Not checked: the dry run was aborted before this record's verdict."
    elif atomic:
        message = (
            "Not written: the job was aborted, and with atomic=true nothing of the batch is "
            "kept. Send the batch again."
        )
    else:
        message = (
            "Not processed: the job was aborted before this record was written. Send it again."
        )
    return {"non_field_errors": [message]}
