"""Reading the ``skipped_groups`` of an ingest result back as one entry per skipped record.

A result section lists its skipped records grouped by their reasons (``{"reasons", "indexes",
"ids"?, "lines"?, "action"?}``, see ``ResourceResult.skipped_groups``). Tests mostly ask about
records, so :func:`skipped_records` unfolds the groups into ``{"index", "id", "reasons",
"action"?, "line"?}`` per record, ordered by index, and checks on the way that the groups
are what the format promises.
"""

from typing import Any


def skipped_records(section: dict[str, Any]) -> list[dict[str, Any]]:
    """Every skipped record of a result section, by index (see the module docstring)."""
    groups = section["skipped_groups"]
    records = []
    for group in groups:
        indexes = group["indexes"]
        assert indexes == sorted(indexes), group
        ids = group.get("ids", [None] * len(indexes))
        assert len(ids) == len(indexes), group
        assert "ids" not in group or any(record_id is not None for record_id in ids), group
        lines = group.get("lines")
        assert lines is None or len(lines) == len(indexes), group
        for position, (index, record_id) in enumerate(zip(indexes, ids, strict=True)):
            record = {"index": index, "id": record_id, "reasons": group["reasons"]}
            if "action" in group:
                record["action"] = group["action"]
            if lines is not None:
                record["line"] = lines[position]
            records.append(record)
    assert [group["indexes"][0] for group in groups] == sorted(g["indexes"][0] for g in groups)
    kinds = [(group["reasons"], group.get("action")) for group in groups]
    assert all(kinds.count(k) == 1 for k in kinds), "equal reasons must share one group"
    records.sort(key=lambda record: record["index"])
    assert len({record["index"] for record in records}) == len(records) == section["skipped"]
    return records
