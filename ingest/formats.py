"""Ingest bodies other than the JSON batch: NDJSON (a record per line) and CSV (one type).

NDJSON (``application/x-ndjson``; files ``*.ndjson``/``*.jsonl``): one JSON object per line,
with a ``"type"`` (``"user"``, ``"product"``, ``"order"``, or the plural) beside the record's
fields; blank lines are ignored::

    {"type": "user", "id": 1, "name": "Alice", "email": "alice@example.com"}
    {"type": "order", "user_id": 1, "product_id": 1, "quantity": 2}
    {"type": "user", "action": "delete", "id": 7}

CSV (``text/csv``; files ``*.csv``): one type per body, named by ``?type=`` (or ``--type``);
the first row names the columns (``id`` is optional, order and case do not matter, other
columns are ignored), then a record per row. An empty ``id`` cell means "assign one". An
optional ``action`` column gives each row's action (empty: the request's, ``?action=``); with
an ``id`` column the other columns may be left out, for updates (only the columns given
change) and deletions (only the id counts).

Both are read as streams: a line at a time, decoded into the same record structs as the JSON
body (``ingest.records``), so the raw bytes never have to be held whole. Each record keeps its
line number, and skipped records are reported with it (the ``"lines"`` of their group). A line
that is not a record at all (malformed JSON, no known ``type``, bytes that are not UTF-8) is a
:class:`LineError`: the API refuses the body with a 400 naming the line; ``ingest_file`` skips
the line and reports it.
"""

import csv
import json
from array import array
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import msgspec
from msgspec import UNSET

from ingest.duplicates import KNOWN_KEYS, RepeatedKey, UnknownKeys, keys_of
from ingest.records import (
    Batch,
    BatchError,
    NotAnObject,
    OrderRecord,
    ProductRecord,
    UserRecord,
)

NDJSON_MEDIA_TYPES = frozenset({"application/x-ndjson", "application/jsonl", "application/ndjson"})
CSV_MEDIA_TYPE = "text/csv"

TYPES = ("users", "products", "orders")
#: what a record's "type" may say -> the batch list it goes to
TYPE_NAMES = {
    "user": "users",
    "users": "users",
    "product": "products",
    "products": "products",
    "order": "orders",
    "orders": "orders",
}
RECORD_TYPES = {"users": UserRecord, "products": ProductRecord, "orders": OrderRecord}
#: the columns a CSV of each type must have (besides the optional id)
CSV_COLUMNS = {
    "users": ("name", "email"),
    "products": ("name", "price"),
    "orders": ("user_id", "product_id", "quantity"),
}

Record = Any  # a UserRecord, ProductRecord, OrderRecord, RepeatedKey, UnknownKeys or a non-object


class LineError(BatchError):
    """One line of a streamed body is not a record; ``line`` says which (1-based)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"Line {line}: {message}")
        self.line = line
        self.reason = message


class TooManyRecords(Exception):
    """A streamed body has more records than allowed."""


class _Line(msgspec.Struct, gc=False):
    type: Any = UNSET
    action: Any = UNSET
    id: Any = UNSET
    name: Any = UNSET
    email: Any = UNSET
    price: Any = UNSET
    user_id: Any = UNSET
    product_id: Any = UNSET
    quantity: Any = UNSET


_line_decoder = msgspec.json.Decoder(_Line | NotAnObject)
_encode = msgspec.json.Encoder().encode
_BOM = b"\xef\xbb\xbf"


def ndjson_record(raw: bytes, line: int) -> tuple[str, Record]:
    """``(type, record)`` of one NDJSON line, or :class:`LineError`.

    A record that repeats a key comes out as a :class:`RepeatedKey`, one with keys its type
    does not have as an :class:`UnknownKeys` (both skipped with a reason by the pipeline), as
    in a JSON body; the same colon count as ``ingest.duplicates`` keeps the exact check for the
    rare lines that need it.
    """
    if line == 1 and raw.startswith(_BOM):  # a byte order mark, as some editors write
        raw = raw[len(_BOM) :]
    try:
        decoded = _line_decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        message = str(exc)
        if not message.startswith("JSON is malformed"):
            message = f"JSON is malformed: {message}"
        raise LineError(line, message) from None
    except RecursionError:
        raise LineError(line, "JSON is nested too deeply.") from None
    except UnicodeDecodeError as exc:  # msgspec checks the UTF-8 of strings as it decodes them
        bad = exc.object[exc.start : exc.start + 1].hex()
        raise LineError(line, f"not valid UTF-8 (a string holds the byte 0x{bad}).") from None
    if type(decoded) is not _Line:
        raise LineError(line, 'expected a JSON object with a "type" (user, product or order).')
    kind = decoded.type
    type_name = TYPE_NAMES.get(kind) if type(kind) is str else None
    if type_name is None and isinstance(kind, str):
        type_name = TYPE_NAMES.get(kind.strip().lower())  # "Order ", "USERS"
    if type_name is None:
        shown = "missing" if kind is UNSET else json.dumps(kind)[:40]
        raise LineError(line, f'"type" must be "user", "product" or "order" (it is {shown}).')
    if type_name == "users":
        record = UserRecord(decoded.id, decoded.name, decoded.email, decoded.action)
    elif type_name == "products":
        record = ProductRecord(decoded.id, decoded.name, decoded.price, decoded.action)
    else:
        record = OrderRecord(
            decoded.id, decoded.user_id, decoded.product_id, decoded.quantity, decoded.action
        )
    # Every key is followed by a colon, and colons in strings survive decoding: the record with
    # its "type" holds as many as the line unless msgspec dropped a key (a repeated one, or one
    # this type does not have: one struct decodes every type's fields), about 0.3 us a line.
    if raw.count(b":") != _encode(record).count(b":") + 1:
        try:
            repeated, keys = keys_of(raw)  # the exact, slow check, for the lines that need it
        except BatchError as exc:  # bytes msgspec skipped (an unknown key) are not UTF-8
            reason = str(exc).removeprefix("JSON is malformed: the body is ")
            raise LineError(line, reason) from None
        if repeated:
            return type_name, RepeatedKey(repeated)
        known = KNOWN_KEYS[type_name]
        unknown = [key for key in keys if key != "type" and key not in known]
        if unknown:
            return type_name, UnknownKeys(record, unknown)
    return type_name, record


def ndjson_records(
    lines: Iterable[bytes], on_bad_line: Callable[[LineError], None] | None = None
) -> Iterator[tuple[int, str, Record]]:
    """``(line number, type, record)`` for each non-blank line. A bad line raises
    :class:`LineError`, or with ``on_bad_line`` is handed to it and skipped."""
    for number, raw in enumerate(lines, start=1):
        if raw.strip():
            try:
                yield (number, *ndjson_record(raw, number))
            except LineError as exc:
                if on_bad_line is None:
                    raise
                on_bad_line(exc)


def csv_records(lines: Iterable[bytes], type_name: str) -> Iterator[tuple[int, Record]]:
    """``(line number, record)`` for each row of a CSV of ``type_name`` records.

    The header must name every column the type needs; a missing one refuses the whole body
    (:class:`BatchError`), a malformed row is a :class:`LineError`.
    """
    assert type_name in CSV_COLUMNS, f"type_name must be one of {', '.join(CSV_COLUMNS)}"
    text = _utf8_lines(lines)
    reader = csv.reader(text, strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise LineError(1, f"the header row is not valid CSV ({exc}).") from None
    needed = CSV_COLUMNS[type_name]
    if header is None:
        raise BatchError(
            f"The CSV is empty; its first row must name the columns: {','.join(needed)}."
        )
    columns = [column.strip().lower() for column in header]
    repeated = sorted({column for column in columns if columns.count(column) > 1 and column})
    if repeated:
        raise BatchError(f"The CSV header names the column {repeated[0]!r} more than once.")
    # With an id column the others may be left out: an update changes only the columns given,
    # a deletion needs none (an insert or upsert then misses them per record, with a reason).
    missing = [] if "id" in columns else [column for column in needed if column not in columns]
    if missing:
        raise BatchError(
            f"The CSV of {type_name} has no column {', '.join(missing)}; its first row must "
            f"name the columns {','.join(needed)} (and optionally id and action)."
        )
    wanted = ("id", *needed, "action")
    position = {column: columns.index(column) for column in wanted if column in columns}
    record_type = RECORD_TYPES[type_name]
    first_line = 2
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise LineError(reader.line_num, f"not valid CSV ({exc}).") from None
        line, first_line = first_line, reader.line_num + 1
        if not any(cell.strip() for cell in row):
            continue
        values = [
            row[position[c]] if c in position and position[c] < len(row) else UNSET for c in wanted
        ]
        if isinstance(values[0], str) and not values[0].strip():
            values[0] = UNSET  # an empty id cell: the database assigns one
        if isinstance(values[-1], str) and not values[-1].strip():
            values[-1] = UNSET  # an empty action cell: the request's action
        yield line, record_type(*values)


def _utf8_lines(lines: Iterable[bytes]) -> Iterator[str]:
    for number, raw in enumerate(lines, start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LineError(number, f"not valid UTF-8 (byte {exc.start} of the line).") from None
        if number == 1:
            text = text.removeprefix("\ufeff")  # a byte order mark, as spreadsheets write
        yield text


def split_lines(blocks: Iterable[bytes]) -> Iterator[bytes]:
    """The lines of a stream of byte blocks, each with its ``\\n`` (CSV needs it for quoted
    cells that span lines)."""
    tail = b""
    for block in blocks:
        if tail:
            block = tail + block
        start = 0
        while (end := block.find(b"\n", start)) != -1:
            yield block[start : end + 1]
            start = end + 1
        tail = block[start:]
    if tail:
        yield tail


class LineNumberedBatch:
    """A :class:`~ingest.records.Batch` gathered from a stream, with each record's line."""

    def __init__(self, max_records: int | None = None) -> None:
        self.batch = Batch(users=[], products=[], orders=[])
        self.lines = {name: array("Q") for name in TYPES}
        self.max_records = max_records
        self.count = 0

    def add(self, type_name: str, record: Record, line: int) -> None:
        self.count += 1
        if self.max_records is not None and self.count > self.max_records:
            raise TooManyRecords(self.count)
        getattr(self.batch, type_name).append(record)
        self.lines[type_name].append(line)

    def __len__(self) -> int:
        return self.count

    def annotate(self, body: dict[str, Any]) -> dict[str, Any]:
        """Add ``lines`` to every group of skipped records of a result body
        (``IngestResult.as_dict``), parallel to its ``indexes``."""
        for name in TYPES:
            lines = self.lines[name]
            for group in body[name]["skipped_groups"]:
                group["lines"] = [lines[index] for index in group["indexes"]]
        return body


def read_ndjson(lines: Iterable[bytes], max_records: int | None = None) -> LineNumberedBatch:
    """Every record of an NDJSON stream (see the module docstring)."""
    gathered = LineNumberedBatch(max_records)
    for line, type_name, record in ndjson_records(lines):
        gathered.add(type_name, record, line)
    return gathered


def read_csv(
    lines: Iterable[bytes], type_name: str, max_records: int | None = None
) -> LineNumberedBatch:
    """Every record of a CSV stream of ``type_name`` records."""
    gathered = LineNumberedBatch(max_records)
    for line, record in csv_records(lines, type_name):
        gathered.add(type_name, record, line)
    return gathered


def read_streamed(
    lines: Iterable[bytes], media_type: str, type_name: str | None, max_records: int | None = None
) -> LineNumberedBatch:
    """Every record of an NDJSON body, or of a CSV body of ``type_name`` records."""
    if media_type == CSV_MEDIA_TYPE:
        assert type_name, "a CSV body needs its record type"
        return read_csv(lines, type_name, max_records)
    return read_ndjson(lines, max_records)
