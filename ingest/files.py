"""Ingest a file through the pipeline, a chunk at a time: JSON batches, NDJSON and CSV.

Memory stays flat for NDJSON and CSV however large the file: records are read ``chunk_records``
at a time (see ``ingest.formats``) and each chunk is one pipeline run, committed before the next
is read. An NDJSON file is read twice, users and products first and orders second, so that an
order may point at a user or product anywhere in the file: as in one batch, orders are checked
once every user and product has been written. A CSV file holds one type. A JSON file is one
batch (the body of ``POST /ingest/``) and is read whole: use NDJSON for big files.

Runs are not all-or-nothing across chunks: stopping half-way keeps the chunks already written.
Running the same file again skips the records whose explicit ``id`` is already there (as
duplicates) and inserts records without one again.
"""

import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest import formats, pipeline
from ingest.records import decode_batch

#: file name ending -> format
FORMAT_OF_SUFFIX = {".json": "json", ".ndjson": "ndjson", ".jsonl": "ndjson", ".csv": "csv"}
DEFAULT_CHUNK_RECORDS = 50_000
_BLOCK = 1 << 20


class FileError(ValueError):
    """The file cannot be ingested at all (unknown format, no type for a CSV, not a batch)."""


@dataclass(frozen=True)
class Skip:
    """One record that was not inserted, or one line that was not a record (``type`` None)."""

    type: str | None
    line: int | None  # NDJSON and CSV
    index: int | None  # JSON: the record's position in its list
    id: Any
    reasons: dict[str, list[str]]

    def as_dict(self) -> dict[str, Any]:
        place = {"line": self.line} if self.line is not None else {"index": self.index}
        return {"type": self.type, **place, "id": self.id, "reasons": self.reasons}


@dataclass
class FileResult:
    """Counts per type, the first skips, and how long it took."""

    counts: dict[str, dict[str, int]] = field(
        default_factory=lambda: {
            name: {"received": 0, "inserted": 0, "skipped": 0} for name in formats.TYPES
        }
    )
    bad_lines: int = 0
    not_written: int = 0  # valid records a failing database did not take (send them again)
    first_skips: list[Skip] = field(default_factory=list)
    chunks: int = 0
    seconds: float = 0.0

    @property
    def records(self) -> int:
        return sum(count["received"] for count in self.counts.values())

    @property
    def skipped(self) -> int:
        return sum(count["skipped"] for count in self.counts.values()) + self.bad_lines


def file_format(path: Path, given: str | None = None) -> str:
    """``json``, ``ndjson`` or ``csv``: as given, or from the file name."""
    if given:
        assert given in ("json", "ndjson", "csv"), f"unknown format {given!r}"
        return given
    try:
        return FORMAT_OF_SUFFIX[path.suffix.lower()]
    except KeyError:
        raise FileError(
            f"Cannot tell the format of {path.name}: name it .json, .ndjson or .csv, or pass "
            "--format."
        ) from None


def csv_type(path: Path, given: str | None = None) -> str:
    """The record type of a CSV file: as given, or from its name (``users.csv``)."""
    name = (given or path.stem).strip().lower()
    type_name = formats.TYPE_NAMES.get(name)
    if type_name is None:
        raise FileError(
            f"Which records does {path.name} hold? Pass --type users, products or orders "
            "(or name the file users.csv, products.csv or orders.csv)."
        )
    return type_name


def estimate_records(path: Path, fmt: str) -> int | None:
    """About how many records the file holds (its lines), for a progress bar; None for JSON."""
    if fmt == "json":
        return None
    lines, last = 0, b"\n"
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(_BLOCK), b""):
            lines += block.count(b"\n")
            last = block[-1:]
    lines += last != b"\n"
    return max(lines - (fmt == "csv"), 0)


def ingest_file(
    path: Path,
    *,
    fmt: str | None = None,
    type_name: str | None = None,
    chunk_records: int = DEFAULT_CHUNK_RECORDS,
    keep_first: int = 10,
    on_progress: Callable[[int], None] | None = None,
    on_skip: Callable[[Skip], None] | None = None,
) -> FileResult:
    """Run every record of the file at ``path`` through the pipeline (see the module docstring).

    ``on_progress(n)`` is called as ``n`` more records (or bad lines) are done; ``on_skip`` with
    every :class:`Skip`, as it happens; the first ``keep_first`` are kept in the result too.
    """
    assert chunk_records > 0, "chunk_records must be positive"
    fmt = file_format(path, fmt)
    started = time.perf_counter()
    result = FileResult()
    run = _Runner(result, keep_first, on_progress or (lambda _: None), on_skip or (lambda _: None))
    if fmt == "json":
        try:
            batch = decode_batch(path.read_bytes())
        except formats.BatchError as exc:
            raise FileError(f"{path.name} is not an ingest batch: {exc}") from None
        run.chunk(batch, lines=None)
    elif fmt == "csv":
        type_name = csv_type(path, type_name)
        try:
            records = formats.csv_records(_lines(path), type_name)
            run.in_chunks(((line, type_name, record) for line, record in records), chunk_records)
        except formats.LineError as exc:  # a broken row: what came before it is written
            raise FileError(f"{path.name}, line {exc.line}: {exc.reason}") from None
        except formats.BatchError as exc:
            raise FileError(f"{path.name}: {exc}") from None
    else:
        # First pass: users and products (and every bad line, reported once); the orders'
        # line numbers are noted (8 bytes each) so that the second pass decodes only them.
        order_lines = array("Q")

        def users_and_products() -> Iterator[tuple[int, str, Any]]:
            for line, type_name, record in formats.ndjson_records(_lines(path), run.bad_line):
                if type_name == "orders":
                    order_lines.append(line)
                else:
                    yield line, type_name, record

        def orders() -> Iterator[tuple[int, str, Any]]:
            wanted = iter(order_lines)
            next_line = next(wanted, None)
            for number, raw in enumerate(_lines(path), start=1):
                if number == next_line:
                    yield (number, *formats.ndjson_record(raw, number))
                    next_line = next(wanted, None)
                    if next_line is None:
                        return

        run.in_chunks(users_and_products(), chunk_records)
        # Second pass: orders, now that every user and product is in its database.
        try:
            run.in_chunks(orders(), chunk_records)
        except formats.LineError as exc:  # a line that was a record in the first pass
            raise FileError(
                f"{path.name} changed while it was read (line {exc.line}: {exc.reason}); the "
                "users and products of the first pass are written, the orders are not: run it "
                "again on a file that stays put."
            ) from None
    result.seconds = time.perf_counter() - started
    return result


def _lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as stream:
        yield from stream  # each line with its b"\n", as formats.split_lines gives them


@dataclass
class _Runner:
    result: FileResult
    keep_first: int
    on_progress: Callable[[int], None]
    on_skip: Callable[[Skip], None]

    def in_chunks(self, records: Iterator[tuple[int, str, Any]], size: int) -> None:
        gathered = formats.LineNumberedBatch()
        for line, type_name, record in records:
            gathered.add(type_name, record, line)
            if len(gathered) >= size:
                self.chunk(gathered.batch, gathered.lines)
                gathered = formats.LineNumberedBatch()
        if len(gathered):
            self.chunk(gathered.batch, gathered.lines)

    def chunk(self, batch, lines: dict | None) -> None:
        reported = 0

        def progress(done: int) -> None:
            nonlocal reported
            self.on_progress(done - reported)
            reported = done

        total = len(batch)
        outcome = pipeline.ingest(batch, on_progress=progress)
        if total > reported:
            self.on_progress(total - reported)
        self.result.chunks += 1
        for name, section in zip(formats.TYPES, outcome.sections, strict=True):
            counts = self.result.counts[name]
            counts["received"] += section.received
            counts["inserted"] += len(section.inserted_ids)
            counts["skipped"] += len(section.skipped)
            self.result.not_written += section.failed_writes
            for index, record_id, reasons in sorted(section.skipped, key=_first):
                if lines is None:
                    self.skip(Skip(name, None, index, record_id, reasons))
                else:
                    self.skip(Skip(name, lines[name][index], None, record_id, reasons))

    def bad_line(self, error: formats.LineError) -> None:
        self.result.bad_lines += 1
        self.on_progress(1)
        self.skip(Skip(None, error.line, None, None, {"line": [error.reason]}))

    def skip(self, skip: Skip) -> None:
        if len(self.result.first_skips) < self.keep_first:
            self.result.first_skips.append(skip)
        self.on_skip(skip)


def _first(skipped: tuple) -> int:
    return skipped[0]
