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
import json
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ijson
import msgspec
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


def cut(
    path: Path,
    layout: Layout,
    *,
    max_records: int,
    max_bytes: int,
    first_pieces: tuple[int, ...] = (),
) -> Iterator[Piece]:
    """The pieces of ``path``, numbered from 0 across both passes; the last one may hold only
    rejected lines (no body: nothing to send). Piece ``n`` holds at most ``first_pieces[n]``
    records where that is given (a push starts with small pieces, see ``store_client.push``),
    ``max_records`` after."""
    builder = _Builder(max_records=max_records, max_bytes=max_bytes, first_pieces=first_pieces)
    # The type of every NDJSON line, found in the first pass (a byte a line): the second one
    # parses only the lines the first did not. (Finding a line's type by a regular expression
    # was tried: slower, 2.5 s against 1.7 s to cut 1,000,000 records; orjson parses a short
    # line faster than the regular expression matches it. ``bytes.startswith`` is faster
    # still, for the lines written the usual way: ``_PREFIXES``.)
    kinds = bytearray()
    for stage, wanted in enumerate(layout.passes()):
        builder.stage = stage
        if layout.format == "ndjson":
            entries = _ndjson(path, wanted, kinds=kinds)
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
    def __init__(
        self, *, max_records: int, max_bytes: int, first_pieces: tuple[int, ...] = ()
    ) -> None:
        self.max_records, self.max_bytes = max_records, max_bytes
        self.first_pieces = first_pieces
        self.number = 0
        self.stage = 0
        self._new()

    def _new(self) -> None:
        # One growing buffer rather than a list of lines: a piece costs its bytes, not a
        # Python object per record.
        self.body = bytearray()
        self.count = 0
        self.limit = self.max_records
        if self.number < len(self.first_pieces):
            self.limit = min(self.first_pieces[self.number], self.max_records)
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
        # A loop over every record: the piece being built is kept in locals between pieces
        # (0.9 against 1.2 s of the client's time to cut 1,000,000 records).
        room = self.max_bytes - len(header)
        body, count, origins, rejected = self.body, 0, self.origins, self.rejected
        for read, kind, where, line, reason in entries:
            self.read += read
            if line is None:  # read, and not sent in this pass (with a reason: not a record)
                if reason is not None:
                    rejected.append(Rejected(where, kind, reason))
                continue
            size = len(line)
            if size > room:
                rejected.append(
                    Rejected(where, kind, f"longer ({size} bytes) than one request may be")
                )
                continue
            if count and (count >= self.limit or len(body) + size > room):
                self.count = count
                yield self._take(header)
                body, count, origins, rejected = self.body, 0, self.origins, self.rejected
            body += line
            count += 1
            lines = origins.get(kind)
            if lines is None:
                lines = origins[kind] = array("q")
            lines.append(where)
        self.count = count
        if count:  # a pass ends its last piece: orders never share one with users
            yield self._take(header)

    def finish(self) -> Iterator[Piece]:
        if self.rejected or self.read:
            yield self._take(b"")


# --- the formats ----------------------------------------------------------------------------------


_CODES = {None: 0, "users": 1, "products": 2, "orders": 3}
_UNREAD = 255
#: Added to a line's code when its type was read from its first bytes only, not parsed: the
#: pass that sends it parses it.
_GUESSED = 4
#: A line's first bytes as our exports and most writers make them: enough to know the type of
#: a line that the first pass does not send, without parsing it. Measured on 1,000,000
#: records whose orders came first: the first piece was ready after 0.27 s of parsing orders
#: (0.8 us a line) that the pass skips, 0.05 s with this.
_PREFIXES = (
    (b'{"type":"order",', "orders"),
    (b'{"type":"user",', "users"),
    (b'{"type":"product",', "products"),
)


def _ndjson(path: Path, wanted: frozenset[str], *, kinds: bytearray) -> Iterator[Entry]:
    """The first pass finds the type of every line (a byte a line in ``kinds``); a later one
    parses only the lines whose type the first one guessed from their first bytes."""
    return _ndjson_again(path, wanted, kinds) if kinds else _ndjson_first(path, wanted, kinds)


def _ndjson_first(path: Path, wanted: frozenset[str], kinds: bytearray) -> Iterator[Entry]:
    others = tuple(prefix for prefix, kind in _PREFIXES if kind not in wanted)
    # Usually one other type (orders, in the first pass of inserts): its code, known at once.
    other_code = _CODES[_guess(others[0])] + _GUESSED if len(others) == 1 else None
    skipped = 0  # bytes of lines not sent in this pass, counted with the next entry
    with path.open("rb") as file:
        for number, raw in enumerate(file, start=1):
            if number == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM) :]
                skipped += len(_BOM)
            # The hot path (a third of the lines): ``raw`` as it is, no copy made.
            if raw.startswith(others):
                kinds.append(other_code or _CODES[_guess(raw)] + _GUESSED)
                skipped += len(raw)
                continue
            line = raw.rstrip(b"\r\n")
            if not line.strip():
                kinds.append(_UNREAD)
                skipped += len(raw)
                continue
            kind, reason = _ndjson_type(line)
            kinds.append(_UNREAD if reason is not None else _CODES[kind])
            if reason is not None:
                yield skipped + len(raw), kind, number, None, reason
            elif kind in wanted:
                yield skipped + len(raw), kind, number, line + b"\n", None
            else:
                skipped += len(raw)
                continue
            skipped = 0
    yield skipped, None, 0, None, None


def _ndjson_again(path: Path, wanted: frozenset[str], kinds: bytearray) -> Iterator[Entry]:
    send = {_CODES[kind]: kind for kind in wanted}
    check = {_CODES[kind] + _GUESSED: kind for kind in wanted}
    skipped = 0
    with path.open("rb") as file:
        for number, raw in enumerate(file, start=1):
            code = kinds[number - 1]
            kind = send.get(code)
            if kind is not None:
                line = raw.rstrip(b"\r\n")
                if number == 1 and line.startswith(_BOM):
                    line = line[len(_BOM) :]
                yield skipped + len(raw), kind, number, line + b"\n", None
                skipped = 0
                continue
            kind = check.get(code)
            if kind is None:
                skipped += len(raw)
                continue
            line = _line(raw, number)
            parsed, reason = _ndjson_type(line)
            if reason is None and parsed != kind:  # {"type":"order", ..., "type":"user"}
                reason = '"type" is given twice, with different values'
            sent = line + b"\n" if reason is None else None
            yield skipped + len(raw), parsed, number, sent, reason
            skipped = 0
    yield skipped, None, 0, None, None


def _guess(line: bytes) -> str:
    return next(kind for prefix, kind in _PREFIXES if line.startswith(prefix))


def _line(raw: bytes, number: int) -> bytes:
    line = raw.rstrip(b"\r\n")
    if number == 1 and line.startswith(_BOM):
        return line[len(_BOM) :]
    return line


class _Line(msgspec.Struct, gc=False):
    """The fields the server's parser decodes (``ingest.formats._Line``, written again here:
    the client never imports the server's code; a test keeps the two the same). The same
    parser decoding the same fields refuses the same lines (a number out of range in
    ``price``, too)."""

    type: Any = None
    action: Any = None
    id: Any = None
    name: Any = None
    email: Any = None
    price: Any = None
    user_id: Any = None
    product_id: Any = None
    quantity: Any = None


_decode_line = msgspec.json.Decoder(_Line).decode
#: Python's json parser converts no integer of more than this many digits; the server reads a
#: line with a key no record has with it, and refuses the request if the line holds one.
_LONGEST_INTEGER = 4300


def _ndjson_type(line: bytes) -> tuple[str | None, str | None]:
    """``(type, None)`` of a line the server's parser takes, or ``(type or None, reason)``.

    msgspec checks the whole line's JSON as the server's parser does (it is the same parser,
    decoding the same fields) and builds no dict: 0.29 us a line, against 0.54 us for
    ``orjson.loads``. msgspec does not check the UTF-8 of what it skips; the server refuses a
    request holding a string that is not UTF-8, so the line is checked unless it is ASCII. A
    line long enough to hold an integer Python's json parser will not convert is read with
    that parser too, as the server reads a line with a key it does not know.
    """
    try:
        kind = _decode_line(line).type
        if not line.isascii():
            line.decode("utf-8")
        if len(line) > _LONGEST_INTEGER:
            json.loads(line)
    except msgspec.ValidationError:
        return None, 'not a JSON object with a "type" (user, product or order)'
    except msgspec.DecodeError as exc:
        return None, f"not a JSON record: {str(exc).removeprefix('JSON is malformed: ')}"
    except UnicodeDecodeError:
        return None, "not valid UTF-8"
    except RecursionError:
        return None, "not a JSON record: nested too deeply"
    except ValueError:
        return None, f"not a JSON record: a number has more than {_LONGEST_INTEGER:,} digits"
    name = TYPE_NAMES.get(kind) if type(kind) is str else None
    if name is None and isinstance(kind, str):
        name = TYPE_NAMES.get(kind.strip().lower())  # "Order ", "USERS"
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
