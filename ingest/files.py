"""Ingest a file through the pipeline, a chunk at a time: JSON batches, NDJSON and CSV.

Memory stays flat for NDJSON and CSV however large the file: records are read ``chunk_records``
at a time (see ``ingest.formats``) and each chunk is one pipeline run, committed before the next
is read. A CSV file holds one type. A JSON file is one batch (the body of ``POST /ingest/``,
its phases those of one batch) and is read whole: use NDJSON for big files.

Every record has an action (``ingest.actions``): its own ``"action"`` (or CSV ``action`` cell),
else the file's default (``action``, ``--action``). One batch runs its records in the four
phases of ``ingest.phases``; a file of many chunks keeps those phases across the whole file by
reading it in up to three passes, each running only its records::

    pass 1 (every line)   users and products: insert, upsert, update;  orders: delete
    pass 2                orders: insert, upsert, update
    pass 3                users and products: delete

so an order may point at a user or product anywhere in the file (written in pass 1, checked in
pass 2), and "delete orders 5-9 and their user" works wherever the lines are (the orders go in
pass 1, the user in pass 3, refused while an order still points at it after pass 2). Order
deletions share pass 1 with the users and products: nothing of those depends on them, only the
user and product deletions of pass 3 do. Pass 1 decodes every line, reports the bad ones, and
notes the line numbers of the records of passes 2 and 3 (8 bytes each: the only memory that
grows with the file); a later pass runs only when the file has such records, and decodes only
its lines. An insert-only NDJSON file takes two passes (users and products, then orders), a
CSV of inserts one.

A later pass checks that the file is the one pass 1 read (same size and modification time, and
each noted line still a record of that pass): a file that changed stops with
:class:`FileError` naming what is written and what is not.

Runs are not all-or-nothing across chunks: stopping half-way keeps the chunks already written.
Running the same file again skips the records whose explicit ``id`` is already there (as
duplicates), inserts records without one again, and upserts, updates or deletes again (a
deletion done before is then "No user has this id."). The one-id-once rule of a batch holds
within a chunk; across chunks and passes records with the same id run in pass order.
"""

import heapq
import os
import time
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import connections, reset_queries
from msgspec import UNSET

from ingest import formats, pipeline
from ingest.actions import ACTIONS, DELETE, INSERT, action_of
from ingest.records import decode_batch

#: file name ending -> format
FORMAT_OF_SUFFIX = {".json": "json", ".ndjson": "ndjson", ".jsonl": "ndjson", ".csv": "csv"}
DEFAULT_CHUNK_RECORDS = 50_000
_BLOCK = 1 << 20

#: The passes over a streamed file (see the module docstring).
FIRST, ORDERS, DELETIONS = 1, 2, 3
COUNTS = ("received", "inserted", "updated", "deleted", "skipped")


class FileError(ValueError):
    """The file cannot be ingested at all (unknown format, no type for a CSV, not a batch), or
    changed between two passes."""


@dataclass(frozen=True)
class Skip:
    """One record that was not written, or one line that was not a record (``type`` None)."""

    type: str | None
    line: int | None  # NDJSON and CSV
    index: int | None  # JSON: the record's position in its list
    id: Any
    reasons: dict[str, list[str]]
    action: str | None = None  # the record's action (as given, if unknown); None for a line

    def as_dict(self) -> dict[str, Any]:
        place = {"line": self.line} if self.line is not None else {"index": self.index}
        return {
            "type": self.type,
            **place,
            "id": self.id,
            "action": self.action,
            "reasons": self.reasons,
        }

    def sort_key(self) -> tuple[int, int]:
        """File order: by line, or for a JSON batch by type and index."""
        if self.line is not None:
            return self.line, 0
        return formats.TYPES.index(self.type) if self.type else -1, self.index or 0


@dataclass
class FileResult:
    """Counts per type, the first skips (in file order), and how long it took."""

    counts: dict[str, dict[str, int]] = field(
        default_factory=lambda: {name: dict.fromkeys(COUNTS, 0) for name in formats.TYPES}
    )
    bad_lines: int = 0
    not_written: int = 0  # valid records a failing database did not take (send them again)
    first_skips: list[Skip] = field(default_factory=list)
    chunks: int = 0
    passes: int = 0  # reads of the file (NDJSON and CSV): 1 to 3
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


def pass_of(type_name: str, record: Any, default: str) -> int:
    """The pass that runs a record: :data:`FIRST`, :data:`ORDERS` or :data:`DELETIONS`.

    Its action is read as the pipeline reads it (``ingest.actions``), so that a record runs in
    the pass of the phase the pipeline gives it; one with an unknown action is skipped by the
    pipeline in the pass of its type's writes."""
    action, unknown = action_of(getattr(record, "action", UNSET), default)
    deletes = action == DELETE and unknown is None
    if type_name == "orders":
        return FIRST if deletes else ORDERS
    return DELETIONS if deletes else FIRST


def ingest_file(
    path: Path,
    *,
    fmt: str | None = None,
    type_name: str | None = None,
    action: str = INSERT,
    chunk_records: int = DEFAULT_CHUNK_RECORDS,
    keep_first: int = 10,
    on_progress: Callable[[int], None] | None = None,
    on_skip: Callable[[Skip], None] | None = None,
) -> FileResult:
    """Run every record of the file at ``path`` through the pipeline (see the module docstring).

    ``action`` is the default action of the file's records (a record's own wins).
    ``on_progress(n)`` is called as ``n`` more records (or bad lines) are done; ``on_skip`` with
    every :class:`Skip`, as it happens (pass by pass, so not always in line order); the
    ``keep_first`` skips that come first in the file are kept in the result too.
    """
    assert chunk_records > 0, "chunk_records must be positive"
    assert action in ACTIONS, f"action must be one of {', '.join(ACTIONS)}"
    fmt = file_format(path, fmt)
    started = time.perf_counter()
    result = FileResult()
    run = _Runner(
        result, action, keep_first, on_progress or (lambda _: None), on_skip or (lambda _: None)
    )
    if fmt == "json":
        try:
            batch = decode_batch(path.read_bytes())
        except formats.BatchError as exc:
            raise FileError(f"{path.name} is not an ingest batch: {exc}") from None
        run.chunk(batch, lines=None)
    else:
        if fmt == "csv":
            type_name = csv_type(path, type_name)
        _Passes(path, fmt, type_name, run, chunk_records).run()
    result.first_skips = run.first_skips()
    result.seconds = time.perf_counter() - started
    return result


#: What each pass writes, by type, for the message of a changed file.
_PASS_WRITES = {
    FIRST: (("users", "users"), ("products", "products"), ("orders", "order deletions")),
    ORDERS: (("orders", "orders"),),
    DELETIONS: (("users", "user deletions"), ("products", "product deletions")),
}


class _Changed(Exception):
    """The file is no longer the one the first pass read; the message says how."""


@dataclass
class _Passes:
    """The passes over one NDJSON or CSV file (see the module docstring)."""

    path: Path
    fmt: str
    type_name: str | None  # a CSV's type
    runner: "_Runner"
    size: int
    later: dict[int, array] = field(  # the line numbers of the records of passes 2 and 3
        default_factory=lambda: {ORDERS: array("Q"), DELETIONS: array("Q")}
    )
    seen: set[tuple[str, int]] = field(default_factory=set)  # (type, pass) of the records

    def run(self) -> None:
        path, run = self.path, self.runner
        stamp = _stamp(path)
        try:
            run.in_chunks(self._first_pass(), self.size)
        except formats.LineError as exc:  # a broken CSV row: what came before it is written
            left = self._writes(n for n in (ORDERS, DELETIONS) if self.later[n])
            unrun = f" (except the {_and(left)} before it, which had not run)" if left else ""
            raise FileError(
                f"{path.name}, line {exc.line}: {exc.reason} The rows before it are written"
                f"{unrun}, none after it."
            ) from None
        except formats.BatchError as exc:
            raise FileError(f"{path.name}: {exc}") from None
        run.result.passes = 1
        for number in (ORDERS, DELETIONS):
            if not self.later[number]:
                continue
            chunks_before = run.result.chunks
            try:
                run.in_chunks(self._again(number, stamp), self.size)
            except _Changed as exc:
                raise FileError(
                    self._changed_message(number, str(exc), run.result.chunks > chunks_before)
                ) from None
            run.result.passes += 1

    def _records(self, on_bad_line) -> Iterator[tuple[int, str, Any]]:
        lines = _lines(self.path)
        if self.fmt == "ndjson":
            return formats.ndjson_records(lines, on_bad_line)
        type_name = self.type_name
        return ((line, type_name, record) for line, record in formats.csv_records(lines, type_name))

    def _first_pass(self) -> Iterator[tuple[int, str, Any]]:
        """Every record of the first pass; the lines of the others are noted."""
        default, later, seen = self.runner.action, self.later, self.seen
        # Nearly every record names no action: its type's pass under the default, looked up.
        by_default = {name: pass_of(name, None, default) for name in formats.TYPES}
        for line, type_name, record in self._records(self.runner.bad_line):
            if getattr(record, "action", UNSET) is UNSET:
                number = by_default[type_name]
            else:
                number = pass_of(type_name, record, default)
            seen.add((type_name, number))
            if number == FIRST:
                yield line, type_name, record
            else:
                later[number].append(line)

    def _again(self, number: int, stamp: tuple[int, int]) -> Iterator[tuple[int, str, Any]]:
        """The records of a later pass, read again from their lines; :class:`_Changed` if the
        file is not the one the first pass read."""
        if _stamp(self.path) != stamp:
            raise _Changed("its size or modification time is not what it was")
        wanted = iter(self.later[number])
        next_line = next(wanted)
        default = self.runner.action
        try:
            for line, type_name, record in self._reread(number):
                if line < next_line:
                    continue
                if line > next_line:
                    break  # the noted line is no longer the start of a record
                if pass_of(type_name, record, default) != number:
                    raise _Changed(f"line {line} is no longer the record the first pass read")
                yield line, type_name, record
                next_line = next(wanted, None)
                if next_line is None:
                    return
        except formats.LineError as exc:
            raise _Changed(f"line {exc.line}: {exc.reason}") from None
        except formats.BatchError as exc:
            raise _Changed(str(exc)) from None
        raise _Changed(f"line {next_line} is no longer a record")

    def _reread(self, number: int) -> Iterator[tuple[int, str, Any]]:
        """The records of the file again: of an NDJSON file only those of the pass ``number``
        (only their lines are decoded), of a CSV every row."""
        if self.fmt != "ndjson":
            yield from self._records(None)
            return
        wanted = iter(self.later[number])
        next_line = next(wanted)
        for line, raw in enumerate(_lines(self.path), start=1):
            if line == next_line:
                yield (line, *formats.ndjson_record(raw, line))
                next_line = next(wanted, None)
                if next_line is None:
                    return

    def _writes(self, numbers: Iterable[int]) -> list[str]:
        """What the passes ``numbers`` write, of what the file holds ("users", "orders")."""
        return [
            what
            for n in numbers
            for type_name, what in _PASS_WRITES[n]
            if (type_name, n) in self.seen
        ]

    def _changed_message(self, number: int, how: str, partly: bool) -> str:
        done = self._writes(n for n in (FIRST, ORDERS) if n < number)
        left = self._writes(n for n in (ORDERS, DELETIONS) if n >= number)
        written = f"the {_and(done)} of the earlier passes are written, " if done else ""
        # Chunks of the pass that found the change may have run before it showed.
        partly = f" (the first chunks of the {left[0]} may be)" if partly else ""
        return (
            f"{self.path.name} changed while it was read ({how}); {written}the {_and(left)} "
            f"are not{partly}: run it again on a file that stays put."
        )


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _stamp(path: Path) -> tuple[int, int]:
    stat = os.stat(path)
    return stat.st_size, stat.st_mtime_ns


def _lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as stream:
        yield from stream  # each line with its b"\n", as formats.split_lines gives them


@dataclass
class _Runner:
    result: FileResult
    action: str
    keep_first: int
    on_progress: Callable[[int], None]
    on_skip: Callable[[Skip], None]
    _first: list = field(default_factory=list)  # a heap of (-key, count, skip), the first skips
    _count: int = 0

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
        outcome = pipeline.ingest(batch, action=self.action, on_progress=progress)
        if total > reported:
            self.on_progress(total - reported)
        _close_connections()
        self.result.chunks += 1
        for name, section in zip(formats.TYPES, outcome.sections, strict=True):
            counts = self.result.counts[name]
            counts["received"] += section.received
            counts["inserted"] += len(section.inserted_ids)
            counts["updated"] += len(section.updated_ids)
            counts["deleted"] += len(section.deleted_ids)
            counts["skipped"] += len(section.skipped)
            self.result.not_written += section.failed_writes
            actions = section.actions
            for index, record_id, reasons in sorted(section.skipped, key=_first):
                action = actions[index] if actions is not None else INSERT
                if lines is None:
                    self.skip(Skip(name, None, index, record_id, reasons, action))
                else:
                    self.skip(Skip(name, lines[name][index], None, record_id, reasons, action))

    def bad_line(self, error: formats.LineError) -> None:
        self.result.bad_lines += 1
        self.on_progress(1)
        self.skip(Skip(None, error.line, None, None, {"line": [error.reason]}))

    def skip(self, skip: Skip) -> None:
        if self.keep_first > 0:
            # The passes find skips out of file order: keep the keep_first first in the file.
            line, index = skip.sort_key()
            self._count += 1
            entry = ((-line, -index), -self._count, skip)
            if len(self._first) < self.keep_first:
                heapq.heappush(self._first, entry)
            else:
                heapq.heappushpop(self._first, entry)
        self.on_skip(skip)

    def first_skips(self) -> list[Skip]:
        return [skip for *_, skip in sorted(self._first, reverse=True)]


def _close_connections() -> None:
    """End a chunk as a request ends: this thread's database connections closed, the query log
    emptied.

    A connection kept for a whole file keeps every statement it prepared (Python's sqlite3
    caches 128 per connection), and a chunk's statements have thousands of parameters and a
    text of their own (one per row count): 900,000 updates peaked at 403 MB with the
    connections open from chunk to chunk, 150 MB closed after each. Under ``DEBUG`` (the
    local settings) every query's text is logged too, about 1 MB a chunk. Reopening costs a
    millisecond or two per chunk. A connection inside the caller's transaction stays open.
    """
    reset_queries()
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close()


def _first(skipped: tuple) -> int:
    return skipped[0]
