"""``export``: a whole table into a file, resumed from the last id written after a crash.

``GET /<type>/export/`` streams a table in id order (NDJSON or CSV), one response however big.
The client writes it as it arrives, a chunk at a time. Because the rows come in id order, a run
that died (the client killed, the connection or the server gone) resumes without reading again
what it has: it cuts the file back to its last whole record (``_Records``: a line, except
inside a CSV field's quotes), reads that record's id, and asks for the rest with
``?min_id=<id + 1>``, appending. A cut-off response (the server closes it without the chunked
body's last chunk, which ``httpx`` raises as a ``RemoteProtocolError``) is resumed the same
way, within the same run.

A small state file beside the output (``<file>.export-state.json``) says whether the export in
the file is finished: an unfinished one is resumed, a finished one is replaced by a new export
only with ``--force``; a file that exists without it is not overwritten either.
"""

import os
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson

from store_client.http import ClientError, Transport

TYPES = ("users", "products", "orders")
FORMATS = ("ndjson", "csv")
#: Cut-off responses resumed within one run before giving up.
RESUMES = 20


@dataclass
class ExportSummary:
    path: str
    rows: int  # rows in the file
    resumed_from: int | None  # the id the run resumed after, if it did
    seconds: float


def export(
    transport: Transport,
    record_type: str,
    path: Path,
    *,
    format: str = "ndjson",
    force: bool = False,
    on_rows=None,
) -> ExportSummary:
    if record_type not in TYPES:
        raise ClientError(f"export takes users, products or orders, not {record_type!r}.")
    if format not in FORMATS:
        raise ClientError(f"--format is ndjson or csv, not {format!r}.")
    started = time.monotonic()
    state_path = path.with_name(path.name + ".export-state.json")
    state = _load_state(state_path)
    resumable = (
        state is not None
        and not state.get("finished")
        and (state.get("type"), state.get("format")) == (record_type, format)
    )
    if path.exists() and path.stat().st_size and not resumable and not force:
        if state is None:
            why = ""
        elif state.get("finished"):
            why = " and holds a finished export"
        else:
            why = f" and holds an unfinished export of {state.get('type')} ({state.get('format')})"
        raise ClientError(f"{path} exists{why}; use --force to replace it with a new export.")
    if force or not resumable:
        path.write_bytes(b"")
    _save_state(state_path, {"type": record_type, "format": format, "finished": False})
    last_id, rows = _cut_back(path, format)
    resumed_from = last_id
    for _attempt in range(RESUMES):
        try:
            rows += _read_after(transport, record_type, format, path, last_id, on_rows)
            break
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.ReadTimeout):
            last_id, rows = _cut_back(path, format)
    else:
        raise ClientError(f"the export of {record_type} was cut off {RESUMES} times; run again.")
    _save_state(state_path, {"type": record_type, "format": format, "finished": True})
    return ExportSummary(str(path), rows, resumed_from, time.monotonic() - started)


def _load_state(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        state = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise ClientError(f"{path} is not an export state ({exc}); move it away.") from None
    if not isinstance(state, dict):
        raise ClientError(f"{path} is not an export state; move it away.")
    return state


def _save_state(path: Path, state: dict) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(orjson.dumps(state))
    os.replace(temporary, path)


def _read_after(transport, record_type, format, path: Path, last_id, on_rows) -> int:
    params = {"format": format}
    if last_id is not None:
        params["min_id"] = str(last_id + 1)
    header_in_file = format == "csv" and path.stat().st_size > 0
    header_wanted = header_in_file
    written = 0
    records = _Records(format)  # the file ends where a record does: outside quotes
    # The first request goes through the retry rules (a server restarting, a 503 exports_busy);
    # the stream itself is read outside them, and a cut is resumed by the caller.
    with (
        transport.stream("GET", f"/{record_type}/export/", params=params) as response,
        path.open("ab") as file,
    ):
        pending = b""
        for block in response.iter_bytes(1 << 16):
            # Whole records only: a cut leaves none half-written.
            count, end, _before = records.scan(block)
            if not count:
                pending += block
                continue
            whole, pending = pending + block[:end], block[end:]
            if header_wanted:  # a resumed CSV: its header is in the file already
                whole = whole.split(b"\n", 1)[1]
                count -= 1
                header_wanted = False
            file.write(whole)
            written += count
            if on_rows is not None and count:
                on_rows(count)
        file.write(pending)
    if format == "csv" and not header_in_file and written:
        written -= 1  # the header
    return written


class _Records:
    """Where the records of an export end, read a block at a time.

    An NDJSON record is a line. A CSV record may hold line breaks inside a quoted field (a
    name "two\nlines"), so a line break ends a CSV record only outside quotes: after an even
    number of quote characters since the start (a quote inside a field is written twice).
    Cutting a CSV export back to its last line break, as NDJSON is, could cut a record in two
    and resume after the wrong id.
    """

    def __init__(self, format: str) -> None:
        self.csv = format == "csv"
        self.quoted = False

    def scan(self, block: bytes) -> tuple[int, int, int]:
        """(records ending in ``block``, the offset just after the last of them, the offset
        just after the one before it, or 0 for either where there is none)."""
        if not self.csv or b'"' not in block:
            if self.quoted:
                return 0, 0, 0
            count = block.count(b"\n")
            last = block.rfind(b"\n") + 1
            before = block.rfind(b"\n", 0, last - 1) + 1 if count > 1 else 0
            return count, last, before
        count = last = before = offset = 0
        for part in block.split(b'"'):
            if not self.quoted and (found := part.count(b"\n")):
                end = part.rfind(b"\n") + 1
                before = offset + part.rfind(b"\n", 0, end - 1) + 1 if found > 1 else last
                last = offset + end
                count += found
            offset += len(part) + 1
            self.quoted = not self.quoted  # the quote after this part
        self.quoted = not self.quoted  # ... but none follows the last part
        return count, last, before


def _cut_back(path: Path, format: str) -> tuple[int | None, int]:
    """Cut ``path`` back to the end of its last whole record; (the id of that record, the
    rows in the file). Reads the file a MiB at a time: memory stays flat whatever its size."""
    if not path.exists() or path.stat().st_size == 0:
        return None, 0
    records = _Records(format)
    count = last = before = offset = 0
    with path.open("r+b") as file:
        while block := file.read(1 << 20):
            found, end, previous = records.scan(block)
            if found:
                before = offset + previous if found > 1 else last
                last = offset + end
                count += found
            offset += len(block)
        file.truncate(last)
        file.seek(before)
        tail = file.read(last - before).rstrip(b"\r\n")
    rows = count - (1 if format == "csv" and count else 0)
    if rows <= 0:
        return None, 0
    if format == "ndjson":
        return int(orjson.loads(tail)["id"]), rows
    return int(tail.split(b",", 1)[0]), rows
