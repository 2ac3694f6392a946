"""The first stage of a batch: every record checked by its service's own rules, no database touched.

:func:`check_records` turns the decoded records of one type into a :class:`Checked`: the rows to
write, each with its index in the request, and the records skipped with their reasons. A record
is skipped here when

* it is not a plain record of its type: not a JSON object, a key repeated
  (``ingest.duplicates.RepeatedKey``), or a key its type does not have (``UnknownKeys``, judged by
  its rules too, so that it gets every reason at once, as on the single-record endpoints);
* its service's rule refuses its values (``ingest.resources`` says which rule);
* its explicit ``id`` is not an integer in range (``"7"`` and ``7.0`` count as 7), or an earlier
  valid record of the batch has the same id.

An id that is already stored is found later, by the writers (``ingest.results`` folds what they
report) or, in a dry run or an atomic batch, by ``ingest.checked_first``. Records without an id
get one above every id in use and every explicit id of the batch (:func:`highest_explicit_id`).
"""

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from common.data.validation import (
    JSON_TYPE_NAMES,
    MAX_BIGINT,
    UNSET,
    Invalid,
    clean_id,
)
from ingest.duplicates import RepeatedKey, UnknownKeys
from ingest.resources import Reasons, Resource, Row


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
    rest is checked.
    """
    steps = check_in_chunks(records, resource, chunk_size=chunk_size if on_chunk else 0)
    while True:
        try:
            start, rows = next(steps)
        except StopIteration as done:
            return done.value
        on_chunk(start, rows)


def check_in_chunks(
    records: Sequence[Any], resource: Resource, *, chunk_size: int = 0
) -> Generator[tuple[int, list[Row]], None, Checked]:
    """:func:`check_records` one chunk at a time: yields ``(first row number, rows)`` as each
    ``chunk_size`` rows are checked (and the last, shorter chunk), and returns the
    :class:`Checked` (``StopIteration.value``); with ``chunk_size=0`` it yields nothing. A caller
    can so take turns between the types (``ingest.streaming``). This loop runs once per record
    of every batch, so it sticks to local names and early exits.
    """
    checked = Checked(resource, received=len(records))
    rows, positions, skipped = checked.rows, checked.positions, checked.skipped
    record_type, rule = resource.record_type, resource.rule
    values_of = attrgetter(*resource.fields)
    claimed: dict[int, int] = {}  # explicit id -> index of the valid record that has it
    handed_over = 0
    next_handover = chunk_size or -1
    max_id = MAX_BIGINT
    for index, record in enumerate(records):
        if type(record) is not record_type:
            skipped.append((index, *irregular_record(record, resource)))
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
                        yield handed_over, rows[handed_over:]
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
            yield handed_over, rows[handed_over:]
            handed_over, next_handover = next_handover, next_handover + chunk_size
    if chunk_size and len(rows) > handed_over:
        yield handed_over, rows[handed_over:]
    checked.ids_above = highest_explicit_id(records, resource) if len(rows) > len(claimed) else 0
    return checked


#: Unknown keys a reason names; past this many, a count.
_KEYS_NAMED = 20


def irregular_record(record: Any, resource: Resource) -> tuple[Any, Reasons]:
    """``(id, reasons)`` of a record that is not a plain record of its type: one with keys its
    type does not have, one repeating a key, or not a JSON object at all."""
    if type(record) is not UnknownKeys:
        return None, _not_an_object(record)
    inner = record.record
    record_id = None if inner.id is UNSET else _reportable(inner.id)
    return record_id, _unknown_keys_reason(record.keys)


def _unknown_keys_reason(keys: list[str]) -> Reasons:
    """One short message naming the keys, and nothing else about the record: a bulk answer
    groups records by their reasons, and records with different made-up keys each make a group
    of their own, so what a group repeats must stay about as small as the keys in the body (a
    message per key, and the rules' own messages beside it, made 14.7x the body). The README
    and the schema say which fields each type has."""
    shown = ", ".join(keys[:_KEYS_NAMED])
    more = f" and {len(keys) - _KEYS_NAMED} more" if len(keys) > _KEYS_NAMED else ""
    return {"non_field_errors": [f"Unknown keys: {shown}{more}."]}


def _not_an_object(record: Any) -> Reasons:
    if type(record) is RepeatedKey:
        return {
            "non_field_errors": [
                f"The key {record.key!r} appears more than once in this record; send each once."
            ]
        }
    kind = JSON_TYPE_NAMES.get(type(record), type(record).__name__)
    return {"non_field_errors": [f"Expected a JSON object, got {kind}."]}


def _repeated_id_reason(resource: Resource, first_index: int) -> Reasons:
    # The first record is not named by its index: every repeat would make a group of its own
    # (a CSV of 100,000 repeated ids answered 14x its body); its id is in the group's "ids".
    return {"id": [f"Duplicate id: an earlier {resource.singular} of this batch has the same id."]}


def parse_id(raw_id: Any) -> tuple[Any, Reasons | None]:
    """``(id, None)`` for an id in range (``"7"`` and ``7.0`` count as 7), ``(None, None)`` for
    no id, ``(the id as shown, reasons)`` for one that is refused."""
    if type(raw_id) is int and 0 < raw_id <= MAX_BIGINT:
        return raw_id, None
    if raw_id is UNSET or raw_id is None:
        return None, None
    return _irregular_id(raw_id, None)


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
