"""A finished job's result as the body a synchronous ``POST /ingest/`` answers, on demand.

A job's summary (``GET /ingest/jobs/<id>/``) stays small whatever the batch; its per-record
results are NDJSON (``ingest.job_results``). Clients that want the synchronous answer itself,
``inserted_ids``, ``skipped_groups`` and all, get it at ``GET /ingest/jobs/<id>/response/``:
:func:`response_body` rebuilds it from the stored per-record results as a stream, a block at a
time (each id list is one pass over the blocks), so it is never held whole. Only the skipped
groups are gathered first, as the synchronous path gathers them.

Records an aborted job never processed have no place in that body: they appear in its
``skipped_groups`` with the reason that says so, and count as ``skipped``.
"""

from collections.abc import Iterator
from typing import Any

import orjson

from common.http.json import dumps
from ingest.formats import TYPES
from ingest.job_results import records
from ingest.outcomes import DELETED, INSERTED, SKIPPED, UNPROCESSED, UPDATED
from ingest.resources import Reasons

_ID_LISTS = (("inserted_ids", INSERTED), ("updated_ids", UPDATED), ("deleted_ids", DELETED))
_REASONS_KEY = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def response_body(
    job_id,
    *,
    counts: dict[str, dict[str, int]],
    head: dict[str, Any],
    unprocessed_reasons: Reasons,
) -> Iterator[bytes]:
    """The synchronous body of a finished job: ``head`` (``errors``, ``took_ms``, ``dry_run``,
    ``atomic``, ``committed``, and ``detail`` if any), then a section per type."""
    yield dumps(head)[:-1]
    for name in TYPES:
        count = counts[name]
        section = {
            key: count[key] for key in ("received", "valid", "inserted", "updated", "deleted")
        }
        section["skipped"] = count["skipped"] + count["unprocessed"]
        yield b',"' + name.encode() + b'":' + dumps(section)[:-1]
        for key, code in _ID_LISTS:
            yield b',"' + key.encode() + b'":['
            separator = b""
            for found in records(job_id, name, code):
                if found:
                    yield separator + b",".join(b"%d" % record.id for record in found)
                    separator = b","
            yield b"]"
        groups = _skipped_groups(job_id, name, unprocessed_reasons)
        yield b',"skipped_groups":' + dumps(groups) + b"}"
    yield b"}"


def _skipped_groups(job_id, name: str, unprocessed_reasons: Reasons) -> list[dict[str, Any]]:
    """As ``ResourceResult.skipped_groups``: one group per distinct reasons and action, in
    order of each group's first index."""
    groups: dict[tuple[bytes, str], dict[str, Any]] = {}
    for found in records(job_id, name):
        for record in found:
            if record.outcome == SKIPPED:
                reasons = record.reasons
            elif record.outcome == UNPROCESSED:
                reasons = unprocessed_reasons
            else:
                continue
            key = orjson.dumps(reasons, option=_REASONS_KEY), record.action
            group = groups.get(key)
            if group is None:
                group = groups[key] = {"reasons": reasons, "indexes": [], "ids": [], "lines": []}
                if record.action != "insert":
                    group["action"] = record.action
            group["indexes"].append(record.index)
            group["ids"].append(record.id)
            group["lines"].append(record.line)
    shown = []
    for group in groups.values():
        if all(record_id is None for record_id in group["ids"]):
            del group["ids"]
        if group["lines"] and group["lines"][0] is None:
            del group["lines"]
        shown.append(_in_synchronous_order(group))
    return shown


def _in_synchronous_order(group: dict[str, Any]) -> dict[str, Any]:
    keys = ("reasons", "indexes", "ids", "action", "lines")
    return {key: group[key] for key in keys if key in group}
