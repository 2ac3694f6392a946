"""Cutting a file of any size into ingest requests the server takes, the same way every time.

``POST /ingest/`` takes at most ``max_records`` records and ``max_body_bytes`` bytes
(``GET /ingest/limits/``); a file is read a line at a time and cut into **pieces** under both,
so that the client's memory holds one piece whatever the file's size.

**Two passes.** An order is checked against the users and products that exist when it is
written, so the file is read twice: users and products first, then orders. An order may then
point at a user anywhere in the file, as with ``manage.py ingest_file``. A file of deletions is
read the other way round (orders first), since a user is not deleted while an order points at
it.

**The same pieces every time.** A piece is identified by its number, and its body is made from
the file's bytes alone (NDJSON lines as they are; CSV rows and JSON records written out the
same way each time), so that a run resumed after a crash cuts the same pieces and sends each
with the same ``Idempotency-Key`` and the same body: the server replays what it already did.
The piece sizes are kept in the state file, so that a server whose limits changed meanwhile
does not change the cut.

**Lines that are not records** (not JSON, no known ``"type"``, bytes that are not UTF-8) would
make the server refuse the whole request; they are kept out of the pieces and reported with
their line, attached to the piece being built so that they are reported exactly once too.
Each piece knows, per type, the line (NDJSON, CSV) or the position in its list (JSON) of each
of its records, so that the server's answer (``indexes`` per type) maps back to the file.
"""

import csv
import io
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import ijson
import orjson

# A CSV field may be as long as a piece (the csv module's default limit is 128 KB).
csv.field_size_limit(1 << 31)

TYPES = ("users", "products", "orders")
SINGULAR = {"users": "user", "products": "product", "orders": "order"}
#: what a line's "type" may say -> its type, as the server reads it (ingest.formats)
TYPE_NAMES = {**{name: name for name in TYPES}, **{s: p for p, s in SINGULAR.items()}}
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Rejected:
    """A line (or JSON record) never sent: what it is and why."""

    where: int  # its line (NDJSON, CSV) or its position in its list (JSON)
    type: str | None
    reason: str


@dataclass
class Piece:
    number: int
    body: bytes = b""
    #: per type, the line (or list position) of each record, in body order
    origins: dict[str, "array[int]"] = field(default_factory=dict)
    rejected: list[Rejected] = field(default_factory=list)
    read_bytes: int = 0  # bytes of the file read since the piece before (progress)
    stage: int = 0  # its pass: a piece of the second is sent once the first is confirmed

    @property
    def records(self) -> int:
        return sum(len(lines) for lines in self.origins.values())


@dataclass(frozen=True)
class Layout:
    """How a file is read: its format, and for CSV the type of its records."""

    format: str  # "ndjson", "csv" or "json"
    csv_type: str | None = None
    deletions: bool = False  # orders first

    def passes(self) -> list[frozenset[str]]:
        if self.format == "csv":
            return [frozenset({self.csv_type})]
        first, second = frozenset({"users", "products"}), frozenset({"orders"})
        return [second, first] if self.deletions else [first, second]


def file_format(path: Path, explicit_type: str | None) -> Layout:
    suffix = path.suffix.lower()
    if suffix in (".ndjson", ".jsonl"):
        return Layout("ndjson")
    if suffix == ".csv":
        if explicit_type not in TYPES:
            raise ValueError(
                f"{path.name} is CSV: say which records it holds with --type users|products|orders."
            )
        return Layout("csv", explicit_type)
    if suffix == ".json":
        return Layout("json")
    raise ValueError(f"{path.name}: the file must end in .ndjson (or .jsonl), .csv or .json.")


def cut(path: Path, layout: Layout, *, max_records: int, max_bytes: int) -> Iterator[Piece]:
    """The pieces of ``path``, numbered from 0 across both passes; the last one may hold only
    rejected lines (no body: nothing to send)."""
    builder = _Builder(max_records=max_records, max_bytes=max_bytes)
    # The type of every NDJSON line, found in the first pass (a byte a line): the second one
    # parses nothing. (Leaving the lines of a later pass unparsed, by a regular expression on
    # their first bytes, was tried: slower, 2.5 s against 1.7 s to cut 1,000,000 records;
    # orjson parses a short line faster than the regular expression matches it.)
    kinds = bytearray()
    for stage, wanted in enumerate(layout.passes()):
        builder.stage = stage
        first_pass = stage == 0
        if layout.format == "ndjson":
            entries = _ndjson(path, wanted, report=first_pass, kinds=kinds)
        elif layout.format == "csv":
            entries = _csv(path, layout.csv_type)
        else:
            entries = _json(path, wanted)
        yield from builder.feed(
            entries, header=_csv_header(path) if layout.format == "csv" else b""
        )
    yield from builder.finish()


# --- the builder: entries in, pieces out --------------------------------------------------------

# An entry: (read bytes, type or None, where, line bytes or None, rejected reason or None)
Entry = tuple[int, str | None, int, bytes | None, str | None]


class _Builder:
    def __init__(self, *, max_records: int, max_bytes: int) -> None:
        self.max_records, self.max_bytes = max_records, max_bytes
        self.number = 0
        self.stage = 0
        self._new()

    def _new(self) -> None:
        # One growing buffer rather than a list of lines: a piece costs its bytes, not a
        # Python object per record.
        self.body = bytearray()
        self.count = 0
        self.origins: dict[str, array[int]] = {}
        self.rejected: list[Rejected] = []
        self.read = 0

    def _take(self, header: bytes) -> Piece:
        body = header + bytes(self.body) if self.count else b""
        piece = Piece(self.number, body, self.origins, self.rejected, self.read, self.stage)
        self.number += 1
        self._new()
        return piece

    def feed(self, entries: Iterator[Entry], *, header: bytes) -> Iterator[Piece]:
        for read, kind, where, line, reason in entries:
            self.read += read
            if reason is not None:
                self.rejected.append(Rejected(where, kind, reason))
                continue
            if line is None:  # read, not for this pass
                continue
            if len(header) + len(line) > self.max_bytes:
                self.rejected.append(
                    Rejected(where, kind, f"longer ({len(line)} bytes) than one request may be")
                )
                continue
            full = self.count >= self.max_records
            if self.count and (full or len(header) + len(self.body) + len(line) > self.max_bytes):
                yield self._take(header)
            self.body += line
            self.count += 1
            origins = self.origins.get(kind)
            if origins is None:
                origins = self.origins[kind] = array("q")
            origins.append(where)
        if self.count:  # a pass ends its last piece: orders never share one with users
            yield self._take(header)

    def finish(self) -> Iterator[Piece]:
        if self.rejected or self.read:
            yield self._take(b"")


# --- the formats ----------------------------------------------------------------------------------


_CODES = {None: 0, "users": 1, "products": 2, "orders": 3}
_KINDS = {code: kind for kind, code in _CODES.items()}
_UNREAD = 255


def _ndjson(
    path: Path, wanted: frozenset[str], *, report: bool, kinds: bytearray
) -> Iterator[Entry]:
    known = len(kinds)
    with path.open("rb") as file:
        for number, raw in enumerate(file, start=1):
            if number <= known:  # a later pass: the first one found its type
                kind = _KINDS.get(kinds[number - 1])
                if kinds[number - 1] == _UNREAD or kind not in wanted:
                    yield len(raw), None, number, None, None
                    continue
                yield len(raw), kind, number, _line(raw, number) + b"\n", None
                continue
            line = _line(raw, number)
            if not line.strip():
                kinds.append(_UNREAD)
                yield len(raw), None, number, None, None
                continue
            kind, reason = _ndjson_type(line)
            kinds.append(_UNREAD if reason is not None else _CODES[kind])
            if reason is not None:
                yield len(raw), kind, number, None, (reason if report else None)
            elif kind in wanted:
                yield len(raw), kind, number, line + b"\n", None
            else:
                yield len(raw), kind, number, None, None


def _line(raw: bytes, number: int) -> bytes:
    line = raw.rstrip(b"\r\n")
    if number == 1 and line.startswith(_BOM):
        return line[len(_BOM) :]
    return line


def _ndjson_type(line: bytes) -> tuple[str | None, str | None]:
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return None, f"not a JSON record: {exc}"
    if type(record) is not dict:
        return None, 'not a JSON object with a "type" (user, product or order)'
    kind = record.get("type")
    name = TYPE_NAMES.get(kind.strip().lower()) if isinstance(kind, str) else None
    if name is None:
        shown = "missing" if kind is None else orjson.dumps(kind).decode()[:40]
        return None, f'"type" must be "user", "product" or "order" (it is {shown})'
    return name, None


def _json_is_a_batch(path: Path) -> None:
    """A JSON file must be an ingest body: an object with the lists users, products, orders
    (its first byte is all this reads; other keys are not looked for, and are not sent)."""
    with path.open("rb") as file:
        try:
            _prefix, event, _value = next(ijson.parse(file), ("", None, None))
        except ijson.JSONError as exc:
            raise ValueError(f"{path.name} is not valid JSON ({exc}).") from None
    if event != "start_map":
        raise ValueError(
            f"{path.name} must be a JSON object with the lists users, products and orders (a "
            "POST /ingest/ body); for a record a line, use NDJSON (.ndjson)."
        )


def _csv_header(path: Path) -> bytes:
    with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as file:
        header = next(csv.reader(file), [])
    return _csv_row(header)


def _csv_row(row: list[str]) -> bytes:
    text = io.StringIO()
    csv.writer(text).writerow(row)
    return text.getvalue().encode("utf-8", "surrogateescape")


def _csv(path: Path, kind: str) -> Iterator[Entry]:
    with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as file:
        reader = csv.reader(file)
        header = next(reader, None)
        if header is None:
            return
        consumed = reader.line_num
        yield _csv_bytes(header), None, 1, None, None
        for row in _csv_rows(reader, path):
            start, consumed = consumed + 1, reader.line_num
            size = _csv_bytes(row)
            if not any(cell.strip() for cell in row):
                yield size, None, start, None, None
                continue
            try:
                line = _csv_row(row).decode("utf-8").encode("utf-8")
            except UnicodeError:
                yield size, kind, start, None, "not valid UTF-8"
                continue
            yield size, kind, start, line, None


def _csv_rows(reader, path: Path) -> Iterator[list[str]]:
    try:
        yield from reader
    except csv.Error as exc:  # a NUL byte, or a quote never closed before the end
        raise ValueError(f"{path.name}, line {reader.line_num}: not CSV ({exc}).") from None


def _csv_bytes(row: list[str]) -> int:
    # An estimate of the bytes a row took in the file, for the progress bar only.
    return sum(len(cell) for cell in row) + len(row)


def _json(path: Path, wanted: frozenset[str]) -> Iterator[Entry]:
    size = path.stat().st_size
    _json_is_a_batch(path)
    for kind in TYPES:
        if kind not in wanted:
            continue
        with path.open("rb") as file:
            try:
                for position, record in enumerate(ijson.items(file, f"{kind}.item")):
                    if not isinstance(record, dict):
                        yield 0, kind, position, None, "not a JSON object"
                        continue
                    try:
                        line = orjson.dumps({"type": SINGULAR[kind], **record}, default=str)
                    except (TypeError, orjson.JSONEncodeError) as exc:  # an integer over 64 bits
                        yield 0, kind, position, None, f"cannot be sent as JSON ({exc})"
                        continue
                    yield 0, kind, position, line + b"\n", None
            except ijson.JSONError as exc:
                raise ValueError(f"{path.name} is not valid JSON ({exc}).") from None
    # JSON is read by key, not by line: the progress moves once the pass is done.
    yield size, None, -1, None, None
