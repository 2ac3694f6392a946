"""What a record asks for: insert, upsert, update or delete, and what each action needs of it.

A record may carry ``"action"`` (a request-wide default comes from ``?action=``; a record's own
wins): ``insert`` (the default: a new record, an existing id is a duplicate), ``upsert`` (insert,
or replace the whole stored record with that id), ``update`` (change only the fields given; the
id must exist) or ``delete`` (the id must exist). :func:`uses_actions` tells the pipeline whether
a batch needs more than inserts (the fast path, ``ingest.streaming``); when it does,
:func:`sort_records` files each type's records by action and checks them by what the action
needs, for the phases of ``ingest.phases``:

* ``insert`` and ``upsert``: the whole record by its service's rule (``ingest.checking``), and an
  upsert must have an id;
* ``update``: an id and the fields given (any of them); the merged record (stored fields plus
  the given ones) is checked by the same rule when it is written, since only then is the stored
  record read (``common.data.changes.apply_updates``, one read per chunk);
* ``delete``: an id; other fields are ignored, so that a line of an export can be sent back
  with ``"action": "delete"``.

An id may appear once per type in a batch, whatever the actions: the second record with it is
skipped, naming the first. An unknown action is skipped with a reason.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import orjson
from msgspec import UNSET

from common.data.validation import JSON_TYPE_NAMES, MAX_BIGINT
from ingest.checking import Checked, check_records, irregular_record, parse_id
from ingest.records import Batch
from ingest.resources import Reasons, Resource, Row

INSERT, UPSERT, UPDATE, DELETE = "insert", "upsert", "update", "delete"
ACTIONS = (INSERT, UPSERT, UPDATE, DELETE)


def uses_actions(batch: Batch, default: str) -> bool:
    """Whether any record of ``batch`` asks for more than an insert.

    On the path of every insert-only batch, so it reads the field in C (``map`` with an
    ``attrgetter``: 12 ms per 300,000 records, against 75 ms for a Python loop).
    """
    if default != INSERT:
        return True
    for records in (batch.users, batch.products, batch.orders):
        try:
            found = set(map(_action_of_record, records))
        except AttributeError:  # a record that is not a struct (skipped later): read each
            try:
                found = {getattr(record, "action", UNSET) for record in records}
            except TypeError:  # an action that is a list or an object: skipped, in the phases
                return True
        except TypeError:
            return True
        if found - _NO_ACTION:
            return True
    return False


_action_of_record = attrgetter("action")
_NO_ACTION = frozenset({UNSET, INSERT})


@dataclass
class Sorted:
    """One type's records, filed by action and checked: a :class:`Checked` per action (rows
    and skips with indexes in the request), the action of every record, and the records
    skipped before any action applied (an unknown action, an id already used)."""

    resource: Resource
    received: int
    by_action: dict[str, Checked] = field(default_factory=dict)
    actions: list[str] = field(default_factory=list)  # per request index
    skipped: list[tuple[int, Any, Reasons]] = field(default_factory=list)
    ids_above: int = 0  # the largest explicit id of the type: assigned ids go above it


def sort_records(records: Sequence[Any], resource: Resource, default: str) -> Sorted:
    """File ``records`` by action and check each group by what its action needs.

    Runs once per record of a batch with actions: a record of the type without an action of
    its own (most of them) costs one attribute read.
    """
    result = Sorted(resource, received=len(records))
    buckets: dict[str, tuple[list[Any], list[int]]] = {action: ([], []) for action in ACTIONS}
    record_type, actions = resource.record_type, result.actions
    for index, record in enumerate(records):
        raw = record.action if type(record) is record_type else getattr(record, "action", UNSET)
        if raw is UNSET:
            action = default
        elif type(raw) is str and raw in _KNOWN:  # a list or an object cannot be looked up
            action = raw
        else:
            action, reasons = action_of(raw, default)
            if reasons:
                actions.append(action)
                result.skipped.append((index, _shown_id(record), reasons))
                continue
        actions.append(action)
        bucket = buckets[action]
        bucket[0].append(record)
        bucket[1].append(index)
    for action, (bucket_records, indexes) in buckets.items():
        checked = _CHECKS[action](bucket_records, resource)
        result.by_action[action] = _in_request_order(checked, indexes)
    if sum(1 for checked in result.by_action.values() if checked.rows) > 1:
        _skip_repeated_ids(result)  # one action alone: its own check found every repeat
    for action in (UPSERT, UPDATE, DELETE):
        _in_id_order(result.by_action[action])
    result.ids_above = max(
        (row[0] for c in result.by_action.values() for row in c.rows if row[0] is not None),
        default=0,
    )
    return result


_KNOWN = frozenset(ACTIONS)


def _in_id_order(checked: Checked) -> None:
    """Put rows that change stored ones in id order (each keeps its request index), so that a
    chunk changes one stretch of the table instead of pages all over it: each chunk is its own
    transaction, and SQLite writes every page a transaction changed to its log at the commit.
    In request order, a 300,000-record upsert of shuffled ids took 2.45-2.67 s in-process, in
    id order 2.03-2.16 s (five runs of each, alternating).
    """
    rows, positions = checked.rows, checked.positions
    if len(rows) < 2:
        return
    ids = [row[0] for row in rows]
    order = sorted(range(len(ids)), key=ids.__getitem__)
    checked.rows = [rows[i] for i in order]
    checked.positions = [positions[i] for i in order]


def action_of(raw: Any, default: str) -> tuple[str, Reasons | None]:
    """``(action, None)`` for a record's raw ``"action"`` (``default`` when it has none), or
    ``(the value as shown, reasons)`` for one that is not an action (``ingest_file`` sorts its
    passes by it too)."""
    if raw is UNSET:
        return default, None
    if type(raw) is str:
        action = raw if raw in ACTIONS else raw.strip().lower()
        if action in ACTIONS:
            return action, None
    if isinstance(raw, str):
        shown = repr(raw)[:40]
    else:
        shown = f"(a JSON {JSON_TYPE_NAMES.get(type(raw), 'object')}, not a string)"
    return _label(raw)[:40], {
        "action": [f"Unknown action {shown}: use insert, upsert, update or delete."]
    }


def _label(raw: Any) -> str:
    """How an unknown action is shown in its group: as the JSON it came as."""
    if isinstance(raw, str):
        return raw
    try:
        return orjson.dumps(raw, default=str).decode()
    except TypeError:  # an integer beyond 64 bits
        return str(raw)


def _shown_id(record: Any) -> Any:
    raw = getattr(record, "id", UNSET)
    if raw is UNSET or not isinstance(raw, int | str):
        return None
    return parse_id(raw)[0]  # as every other skip shows it: a CSV cell "3" is the id 3


def _check_inserts(records: Sequence[Any], resource: Resource) -> Checked:
    return check_records(records, resource)


def _check_upserts(records: Sequence[Any], resource: Resource) -> Checked:
    checked = check_records(records, resource)
    if any(row[0] is None for row in checked.rows):
        _require_ids(checked, UPSERT)
    return checked


def _check_updates(records: Sequence[Any], resource: Resource) -> Checked:
    """Rows ``(id, given value or UNSET, ...)``: the values are checked once merged."""
    return _check_by_id(records, resource, UPDATE, keep_values=True)


def _check_deletions(records: Sequence[Any], resource: Resource) -> Checked:
    return _check_by_id(records, resource, DELETE, keep_values=False)


def _check_by_id(
    records: Sequence[Any], resource: Resource, action: str, *, keep_values: bool
) -> Checked:
    """Rows ``(id, *given values)`` (``(id,)`` without ``keep_values``); a hot loop, like
    ``ingest.checking.check_records``: local names, the plain id first."""
    checked = Checked(resource, received=len(records))
    rows, positions, skipped = checked.rows, checked.positions, checked.skipped
    record_type = resource.record_type
    values_of = attrgetter(*resource.fields)  # every type has two fields or more: a tuple
    width = len(resource.fields)
    first_with: dict[int, int] = {}
    for index, record in enumerate(records):
        if type(record) is not record_type:
            skipped.append((index, *irregular_record(record, resource)))
            continue
        record_id = record.id
        if type(record_id) is int and 0 < record_id <= MAX_BIGINT:
            reasons = None
        else:
            record_id, reasons = parse_id(record_id)
            if record_id is None and reasons is None:
                reasons = _needs_id(action)
        if reasons is None and record_id in first_with:
            reasons = _repeated(resource, first_with[record_id])
        if reasons:
            skipped.append((index, record_id, reasons))
            continue
        first_with[record_id] = index
        if not keep_values:
            rows.append((record_id,))
            positions.append(index)
            continue
        values = values_of(record)
        if values.count(UNSET) == width:
            skipped.append((index, record_id, _nothing_to_update(resource)))
            continue
        rows.append((record_id, *values))
        positions.append(index)
    return checked


_CHECKS = {
    INSERT: _check_inserts,
    UPSERT: _check_upserts,
    UPDATE: _check_updates,
    DELETE: _check_deletions,
}


def _needs_id(action: str) -> Reasons:
    return {"id": [f"Required for action {action}: the id of the record to {action}."]}


def _nothing_to_update(resource: Resource) -> Reasons:
    return {
        "non_field_errors": [
            f"Nothing to update: give at least one of {', '.join(resource.fields)}."
        ]
    }


def _repeated(resource: Resource, first_index: int) -> Reasons:
    # The first record is not named by its index: every repeat would make a group of its own
    # (a CSV of 100,000 repeated ids answered 14x its body); its id is in the group's "ids".
    return {"id": [f"Duplicate id: an earlier {resource.singular} of this batch has the same id."]}


def _require_ids(checked: Checked, action: str) -> None:
    rows, positions = [], []
    for row, position in zip(checked.rows, checked.positions, strict=True):
        if row[0] is None:
            checked.skipped.append((position, None, _needs_id(action)))
        else:
            rows.append(row)
            positions.append(position)
    checked.rows, checked.positions = rows, positions


def _in_request_order(checked: Checked, indexes: list[int]) -> Checked:
    """``checked`` of a group of records, its positions turned into request indexes."""
    checked.positions = [indexes[position] for position in checked.positions]
    checked.skipped = [(indexes[i], shown, reasons) for i, shown, reasons in checked.skipped]
    return checked


def _skip_repeated_ids(result: Sorted) -> None:
    """An id used by records of two actions: the later one is skipped, naming the first."""
    first: dict[int, int] = {}
    for checked in result.by_action.values():
        for row, position in zip(checked.rows, checked.positions, strict=True):
            if row[0] is not None and (row[0] not in first or position < first[row[0]]):
                first[row[0]] = position
    for checked in result.by_action.values():
        rows: list[Row] = []
        positions: list[int] = []
        for row, position in zip(checked.rows, checked.positions, strict=True):
            earlier = first.get(row[0]) if row[0] is not None else None
            if earlier is not None and earlier != position:
                result.skipped.append((position, row[0], _repeated(result.resource, earlier)))
                continue
            rows.append(row)
            positions.append(position)
        checked.rows, checked.positions = rows, positions
