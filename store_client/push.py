"""``push``: a file of any size into the service, exactly once, across the client's own crash.

The flow, top to bottom:

1. read the server's limits (``GET /ingest/limits/``) and the file's fingerprint;
2. load the state file (``store_client.state``), or start one: a changed file, other options,
   or a state older than the server remembers keys is refused with a message;
3. cut the file into pieces (``store_client.pieces``), the same way as the first run did;
4. for each piece the state does not list as confirmed: send it with its ``Idempotency-Key``
   (``POST /ingest/``, or ``?async=true`` and wait for the job), retrying what is worth a retry
   (``store_client.http``); write its skipped records to the errors file with their line in
   the file; then record it as confirmed.

Why this is exactly once: a piece is confirmed in the state only after the server answered for
it; a piece that was sent but not confirmed (the client died meanwhile, or the connection did)
is sent again under the same key with the same body, and the server either replays the answer
of the first (it finished) or makes the retry wait until it has (409), or, if the request died
with the server, runs it again over its write ledger, which skips what the dead one committed.
Records without ids are written once like the others. The server remembers keys for
``idempotency_ttl_seconds`` (24 h by default): a state older than that is refused.
"""

import os
import re
import sys
import time
import zlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from store_client.http import ClientError, ServerRefused, Transport
from store_client.pieces import SINGULAR, TYPES, Layout, Piece, cut, file_format
from store_client.prefetch import read_ahead
from store_client.state import VERSION, PushState, StateError, fingerprint

#: Pieces are at most this big even when the server takes more: the client holds seven at
#: most (two in flight, two answered and waiting for an older one, one waiting to be sent,
#: one cut ahead, one being cut). Measured on 1,000,000 records, against one request of them
#: (before the memory and speed fixes of store_client.http and .pieces): 100,000 records and
#: 16 MiB, one in flight: 0.70x; 50,000 and 8 MiB, one in flight: 0.65-0.67x; two in flight
#: 0.69x; 25,000 and 4 MiB, two in flight: 0.61x (each request costs its key, ledger and
#: answer). Now: 0.84-0.87x, 83-85 MB.
PIECE_RECORDS = 50_000
PIECE_BYTES = 8 * 1024 * 1024
#: The first pieces are smaller, so that the server has work while the client cuts the next:
#: a whole first piece took 0.34 s to cut (a file whose orders come first), the server idle.
FIRST_PIECES = (PIECE_RECORDS // 8, PIECE_RECORDS // 4, PIECE_RECORDS // 2)
#: A state this close to the server's key TTL is not resumed: its keys may be gone meanwhile.
TTL_MARGIN = 600
FINISHED = ("succeeded", "failed", "cancelled", "aborted")
COUNTS = ("received", "inserted", "updated", "deleted", "skipped", "not_sent")


@dataclass
class PushOptions:
    record_type: str | None = None  # CSV: the type of its records
    action: str | None = None
    in_background: bool = False
    errors: Path | None = None
    state: Path | None = None
    piece_records: int | None = None
    piece_bytes: int | None = None
    job_poll: float = 1.0
    #: Pieces of one pass in flight at once (--async: one; the jobs run in the background).
    parallel: int = 2


@dataclass
class PushSummary:
    path: str
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    pieces: int = 0
    sent: int = 0  # pieces sent in this run (the others were confirmed before)
    seconds: float = 0.0
    errors_file: str = ""
    already_done: bool = False

    @property
    def skipped(self) -> int:
        return sum(c["skipped"] + c["not_sent"] for c in self.counts.values())


class Progress:
    """What ``push`` tells as it goes (the CLI draws a bar; the library default says nothing)."""

    def start(self, total_bytes: int, resumed: int) -> None: ...
    def advance(self, read_bytes: int, records: int) -> None: ...
    def note(self, message: str) -> None: ...
    def stop(self) -> None: ...


def push(
    transport: Transport, path: Path, options: PushOptions, progress: Progress | None = None
) -> PushSummary:
    progress = progress or Progress()
    started = time.monotonic()
    layout = file_format(path, options.record_type)
    if not path.is_file():
        raise ClientError(f"{path}: no such file.")
    if options.action == "delete":
        layout = Layout(layout.format, layout.csv_type, deletions=True)
    limits = transport.send("GET", "/ingest/limits/").json()
    state_path = options.state or path.with_name(path.name + ".push-state.json")
    state = _state_for(path, state_path, options, limits)
    errors_path = options.errors or path.with_name(path.name + ".errors.ndjson")
    summary = PushSummary(str(path), errors_file=str(errors_path))
    if state.finished_at is not None:
        summary.already_done = True
        summary.pieces = sum(1 for piece in state.confirmed.values() if piece["counts"])
        _add_counts(summary, state)
        return summary
    state.save(state_path)
    with _errors_file(errors_path, state) as errors:
        progress.start(state.file_size * len(layout.passes()), len(state.confirmed))
        sender = _Sender(transport, state, options, layout)
        pieces = cut(
            path,
            layout,
            max_records=state.piece_records,
            max_bytes=state.piece_bytes,
            first_pieces=tuple(state.first_pieces),
        )
        parallel = 1 if options.in_background else max(1, options.parallel)

        def confirm(piece: Piece, body: dict | None) -> None:
            _confirm(state, state_path, errors, piece, body)
            summary.sent += 1 if body is not None else 0
            progress.advance(piece.read_bytes, piece.records)

        window = _Window(parallel, confirm)
        with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="store-push") as pool:
            try:
                for piece in read_ahead(pieces):
                    summary.pieces += 1 if piece.body else 0
                    if str(piece.number) in state.confirmed:
                        _same_piece(state, state_path, piece)
                        progress.advance(piece.read_bytes, piece.records)
                        continue
                    window.make_room(piece)
                    if piece.body:
                        _still_the_same(path, state)
                        window.add(piece, pool.submit(sender.send, piece, state_path))
                    else:
                        confirm(piece, None)
                window.drain()
                _still_the_same(path, state)
            finally:
                window.cancel()  # stopping: nothing more is sent
        state.finished_at = time.time()
        state.save(state_path)
    progress.stop()
    _add_counts(summary, state)
    summary.seconds = time.monotonic() - started
    return summary


class _Window:
    """The pieces sent and not yet confirmed.

    They are confirmed in their order, so that the errors file lists skipped records in the
    file's order, but a piece is sent as soon as any one in flight is answered: waiting for the
    oldest, when a newer one was answered first, left a slot of the server idle (0.25 s at the
    end of the first pass, measured on 1,000,000 records). Answers waiting for an older one
    are held, at most ``parallel`` of them, with their pieces.
    """

    def __init__(self, parallel: int, confirm: Callable[[Piece, dict | None], None]) -> None:
        self.parallel, self.confirm = parallel, confirm
        self.pieces: deque[tuple[Piece, Future]] = deque()

    def add(self, piece: Piece, answer: Future) -> None:
        self.pieces.append((piece, answer))

    def make_room(self, piece: Piece) -> None:
        """Wait until ``piece`` may be sent: orders only once every user and product piece
        is confirmed; a piece with nothing to send (only lines that are no record) once those
        before it are, to keep the errors in order; any other when a slot is free."""
        if self.pieces and (self.pieces[0][0].stage != piece.stage or not piece.body):
            self.drain()
            return
        while True:
            while self.pieces and self.pieces[0][1].done():
                self._confirm_oldest()
            running = [answer for _, answer in self.pieces if not answer.done()]
            if len(running) < self.parallel and len(self.pieces) < 2 * self.parallel:
                return
            wait(running, return_when=FIRST_COMPLETED)

    def drain(self) -> None:
        while self.pieces:
            self._confirm_oldest()

    def cancel(self) -> None:
        for _piece, answer in self.pieces:
            answer.cancel()

    def _confirm_oldest(self) -> None:
        piece, answer = self.pieces.popleft()
        self.confirm(piece, answer.result())


def _state_for(path: Path, state_path: Path, options: PushOptions, limits: dict) -> PushState:
    """The state to go on with: the one in ``state_path`` if it is this push's, unfinished (a
    resumed run) or finished (nothing to do); else a new one. Refuses to mix a changed file, or
    other options, into a push that has begun."""
    size, sha256 = fingerprint(path)
    mtime = path.stat().st_mtime_ns
    wanted = {
        "type": options.record_type,
        "action": options.action,
        "async": options.in_background,
    }
    state = PushState.load(state_path)
    same = state is not None and (state.file_size, state.file_sha256) == (size, sha256)
    if state is None or (state.finished_at is not None and not (same and state.options == wanted)):
        return _new_state(size, sha256, mtime, wanted, options, limits)
    if state.finished_at is not None:
        return state  # pushed before, the same way: nothing to send
    if state.version != VERSION:
        raise StateError(
            f"{state_path} records a push begun by an earlier version of the client, which cut "
            "files into other pieces: this one cannot finish it. Check what arrived (the errors "
            "file, exports) and push the rest, or move the state file away to push the file as "
            "a new one (its records without ids would then be written again)."
        )
    if not same:
        raise StateError(
            f"{path} changed since the push recorded in {state_path} began (its size or SHA-256 "
            "differs); the new content is not mixed with what was sent of the old. Restore the "
            f"file to finish that push, or move {state_path.name} away to push the file as a "
            "new one (its records without ids would then be written again)."
        )
    if state.options != wanted:
        if not state.confirmed:  # nothing of it went through: start again with these
            return _new_state(size, sha256, mtime, wanted, options, limits)
        raise StateError(
            f"{state_path} records an unfinished push of this file with other options "
            f"({state.options}); run it again with those to finish it, or move the state file "
            "away to start over (its records without ids would then be written again)."
        )
    age = time.time() - state.started_at
    if age > limits["idempotency_ttl_seconds"] - TTL_MARGIN:
        raise StateError(
            f"{state_path} began {age / 3600:.1f} hours ago; the server remembers a piece's key "
            f"for {limits['idempotency_ttl_seconds'] / 3600:.1f} hours, so a piece sent but not "
            "confirmed then could be written twice. Check what arrived (the errors file, "
            "exports) and push the rest as a new file."
        )
    state.file_mtime_ns = mtime  # the same bytes, touched: what the checks below compare with
    return state


def _new_state(
    size: int, sha256: str, mtime: int, wanted: dict, options: PushOptions, limits: dict
) -> PushState:
    prefix = "async_" if options.in_background else ""
    return PushState(
        file_size=size,
        file_sha256=sha256,
        file_mtime_ns=mtime,
        options=wanted,
        piece_records=min(options.piece_records or PIECE_RECORDS, limits[f"{prefix}max_records"]),
        first_pieces=[] if options.piece_records else list(FIRST_PIECES),
        # Room for a CSV header and the request's own bytes.
        piece_bytes=min(options.piece_bytes or PIECE_BYTES, limits[f"{prefix}max_body_bytes"])
        - 1024,
    )


def _still_the_same(path: Path, state: PushState) -> None:
    """Refuse to go on with a file written to since the push began (checked before each piece
    is sent, and at the end): its pieces would no longer be those of the fingerprint."""
    now = path.stat()
    if (now.st_size, now.st_mtime_ns) != (state.file_size, state.file_mtime_ns):
        raise ClientError(
            f"{path} was changed while it was being pushed (its size or modification time "
            "moved); what was confirmed before stays written. Run the same command again once "
            "the file is complete: it will be refused as a changed file, and pushed as a new "
            "one after you move the state file away."
        )


class _errors_file:
    """The errors file, cut back to what the confirmed pieces wrote (a resumed run writes the
    others again)."""

    def __init__(self, path: Path, state: PushState) -> None:
        self.path, self.state = path, state

    def __enter__(self) -> BinaryIO:
        if not self.state.confirmed:
            self.file = self.path.open("w+b")
            return self.file
        self.file = self.path.open("a+b" if not self.path.exists() else "r+b")
        size = self.file.seek(0, os.SEEK_END)
        if size >= self.state.errors_bytes:
            self.file.truncate(self.state.errors_bytes)
            self.file.seek(self.state.errors_bytes)
        else:  # moved away or cut meanwhile: go on at its end, and say what is missing
            self.file.seek(size)
            sys.stderr.write(
                f"warning: {self.path} holds {size} of the {self.state.errors_bytes} bytes the "
                "pieces confirmed before wrote; their skipped records are not listed again.\n"
            )
        return self.file

    def __exit__(self, *exc: object) -> None:
        self.file.close()


class _Sender:
    def __init__(
        self,
        transport: Transport,
        state: PushState,
        options: PushOptions,
        layout: Layout,
    ) -> None:
        self.transport, self.state, self.options = transport, state, options
        self.params: dict[str, str] = {}
        if layout.format == "csv":
            self.params["type"] = layout.csv_type
            self.content_type = "text/csv; charset=utf-8"
        else:
            self.content_type = "application/x-ndjson"
        if options.action:
            self.params["action"] = options.action

    def send(self, piece: Piece, state_path: Path) -> dict[str, Any]:
        """The server's answer for ``piece`` (on a thread of the pool)."""
        headers = {
            "Idempotency-Key": self.state.key(piece.number),
            "Content-Type": self.content_type,
        }
        try:
            if self.options.in_background:
                body = self._as_job(piece, headers, state_path)
            else:
                response = self.transport.send(
                    "POST", "/ingest/", params=self.params, content=piece.body, headers=headers
                )
                body = response.json()
        except ServerRefused as exc:
            lines = self.content_type == "application/x-ndjson"  # a CSV body has its header
            raise ClientError(f"{exc} ({_where(piece, str(exc), lines)})") from None
        return body

    def _as_job(self, piece: Piece, headers: dict, state_path: Path) -> dict[str, Any]:
        job_id = self.state.jobs.get(str(piece.number))
        if job_id is None:
            response = self.transport.send(
                "POST",
                "/ingest/",
                params={**self.params, "async": "true"},
                content=piece.body,
                headers=headers,
            )
            job_id = response.json()["id"]
            self.state.jobs[str(piece.number)] = job_id
            self.state.save(state_path)
        while True:
            job = self.transport.send("GET", f"/ingest/jobs/{job_id}/").json()
            if job["state"] in FINISHED:
                break
            time.sleep(self.options.job_poll)
        if job["state"] != "succeeded":
            raise ClientError(
                f"job {job_id} (piece {piece.number}: {_span(piece)}) ended {job['state']}: "
                f"{job.get('error') or 'see GET /ingest/jobs/' + job_id + '/'}"
            )
        return self.transport.send("GET", f"/ingest/jobs/{job_id}/response/").json()


def _where(piece: Piece, message: str, lines_are_records: bool) -> str:
    """Where in the file a refused piece is; for NDJSON, the line of the file a "Line N" of
    the server's message is (N counts the lines of the piece's body)."""
    where = f"piece {piece.number}: {_span(piece)}"
    named = re.search(r"\bLine (\d+)\b", message) if lines_are_records else None
    lines = sorted(line for origins in piece.origins.values() for line in origins)
    if named and 0 < int(named.group(1)) <= len(lines):
        where += f"; the server's line {named.group(1)} is line {lines[int(named.group(1)) - 1]}"
    return where


def _span(piece: Piece) -> str:
    wheres = [where for lines in piece.origins.values() for where in lines]
    return f"lines {min(wheres)}-{max(wheres)}" if wheres else "no records"


def _skipped(piece: Piece, body: dict) -> list[dict]:
    """The records the server skipped, with their line (or position) in the file."""
    entries = []
    for kind in TYPES:
        origins = piece.origins.get(kind, [])
        for group in body[kind]["skipped_groups"]:
            ids = group.get("ids") or [None] * len(group["indexes"])
            for index, record_id in zip(group["indexes"], ids, strict=True):
                entries.append(
                    {
                        "line": origins[index],
                        "type": SINGULAR[kind],
                        "id": record_id,
                        "action": group.get("action", "insert"),
                        "reasons": group["reasons"],
                    }
                )
    return entries


def _not_sent(piece: Piece) -> list[dict]:
    """The lines of ``piece``'s stretch of the file that were no record: never sent."""
    return [
        {
            "line": rejected.where,
            "type": SINGULAR.get(rejected.type),
            "id": None,
            "action": None,
            "reasons": {"non_field_errors": [f"Not sent: {rejected.reason}."]},
        }
        for rejected in piece.rejected
    ]


def _confirm(
    state: PushState, state_path: Path, errors: BinaryIO, piece: Piece, body: dict | None
) -> None:
    """Write what ``piece`` skipped (and what of it was never sent) to the errors file, then
    record it as confirmed: in this order, so that a crash in between leaves it unconfirmed,
    and the errors file is cut back to the state's length when the run resumes."""
    counts = None
    entries = _not_sent(piece)
    if body is not None:
        entries += _skipped(piece, body)
        counts = {kind: {name: body[kind][name] for name in COUNTS[:5]} for kind in TYPES}
    entries.sort(key=lambda entry: entry["line"])
    errors.write(b"".join(orjson.dumps(entry) + b"\n" for entry in entries))
    errors.flush()
    os.fsync(errors.fileno())
    not_sent: dict[str, int] = {}
    for rejected in piece.rejected:
        not_sent[rejected.type or "unknown"] = not_sent.get(rejected.type or "unknown", 0) + 1
    state.confirmed[str(piece.number)] = {
        "counts": counts or {},
        "not_sent": not_sent,
        **_identity(piece),
    }
    state.jobs.pop(str(piece.number), None)
    state.errors_bytes = errors.tell()
    state.save(state_path)


def _identity(piece: Piece) -> dict[str, int]:
    return {"records": piece.records, "crc32": zlib.crc32(piece.body)}


def _same_piece(state: PushState, state_path: Path, piece: Piece) -> None:
    """Refuse to skip a piece the state lists as confirmed unless it is the one confirmed: a
    state edited by hand, or written for another cut, would skip records never sent."""
    confirmed = state.confirmed[str(piece.number)]
    if "crc32" in confirmed and {k: confirmed[k] for k in ("records", "crc32")} != _identity(piece):
        raise StateError(
            f"{state_path} lists piece {piece.number} as confirmed, but this file's piece "
            f"{piece.number} is not the one it confirmed (its records or checksum differ): the "
            "state was changed, or belongs to another push. Move it away to push the file as a "
            "new one (its records without ids would then be written again)."
        )


def _add_counts(summary: PushSummary, state: PushState) -> None:
    totals = {kind: dict.fromkeys(COUNTS, 0) for kind in (*TYPES, "unknown")}
    for confirmed in state.confirmed.values():
        for kind, counts in confirmed["counts"].items():
            for name, value in counts.items():
                totals[kind][name] += value
        for kind, value in confirmed["not_sent"].items():
            totals[kind]["not_sent"] += value
    summary.counts = {k: v for k, v in totals.items() if k != "unknown" or any(v.values())}
