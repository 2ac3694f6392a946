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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from store_client.http import ClientError, ServerRefused, Transport
from store_client.pieces import SINGULAR, TYPES, Layout, Piece, cut, file_format
from store_client.prefetch import read_ahead
from store_client.state import PushState, StateError, fingerprint

#: Pieces are at most this big even when the server takes more: the client holds three at
#: most (one in flight, one cut ahead, one being cut). Measured on 1,000,000 records: 100,000
#: records and 16 MiB made a 110 MB client, these 50,000 and 8 MiB a smaller one at the same
#: speed (the server's time per record does not depend on the piece).
PIECE_RECORDS = 50_000
PIECE_BYTES = 8 * 1024 * 1024
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
    def records(self) -> int:
        return sum(c["received"] + c["not_sent"] for c in self.counts.values())

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
        sender = _Sender(transport, state, options, layout, progress)
        pieces = cut(path, layout, max_records=state.piece_records, max_bytes=state.piece_bytes)
        for piece in read_ahead(pieces):
            summary.pieces += 1 if piece.body else 0
            if str(piece.number) in state.confirmed:
                progress.advance(piece.read_bytes, piece.records)
                continue
            counts = sender.send(piece, errors, state_path) if piece.body else None
            _write_rejected(errors, piece)
            _confirm(state, state_path, errors, piece, counts)
            summary.sent += 1 if piece.body else 0
            progress.advance(piece.read_bytes, piece.records)
        state.finished_at = time.time()
        state.save(state_path)
    progress.stop()
    _add_counts(summary, state)
    summary.seconds = time.monotonic() - started
    return summary


def _state_for(path: Path, state_path: Path, options: PushOptions, limits: dict) -> PushState:
    size, sha256 = fingerprint(path)
    wanted = {
        "type": options.record_type,
        "action": options.action,
        "async": options.in_background,
    }
    state = PushState.load(state_path)
    if state is None:
        prefix = "async_" if options.in_background else ""
        return PushState(
            file_size=size,
            file_sha256=sha256,
            options=wanted,
            piece_records=min(
                options.piece_records or PIECE_RECORDS, limits[f"{prefix}max_records"]
            ),
            # Room for a CSV header and the request's own bytes.
            piece_bytes=min(options.piece_bytes or PIECE_BYTES, limits[f"{prefix}max_body_bytes"])
            - 1024,
        )
    if (state.file_size, state.file_sha256) != (size, sha256):
        raise StateError(
            f"{path} changed since the push recorded in {state_path} began (its size or SHA-256 "
            "differs); the new content is not mixed with what was sent of the old. Restore the "
            f"file to finish that push, or move {state_path.name} away to push the file as a "
            "new one (its records without ids would then be written again)."
        )
    if state.options != wanted:
        raise StateError(
            f"{state_path} records a push of this file with other options ({state.options}); "
            "run the same command again to finish it, or move the state file away."
        )
    age = time.time() - state.started_at
    if state.finished_at is None and age > limits["idempotency_ttl_seconds"] - TTL_MARGIN:
        raise StateError(
            f"{state_path} began {age / 3600:.1f} hours ago; the server remembers a piece's key "
            f"for {limits['idempotency_ttl_seconds'] / 3600:.1f} hours, so a piece sent but not "
            "confirmed then could be written twice. Check what arrived (the errors file, "
            "exports) and push the rest as a new file."
        )
    return state


class _errors_file:
    """The errors file, cut back to what the confirmed pieces wrote (a resumed run writes the
    others again)."""

    def __init__(self, path: Path, state: PushState) -> None:
        self.path, self.state = path, state

    def __enter__(self) -> BinaryIO:
        mode = "r+b" if self.path.exists() and self.state.confirmed else "w+b"
        self.file = self.path.open(mode)
        self.file.truncate(self.state.errors_bytes)
        self.file.seek(self.state.errors_bytes)
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
        progress: Progress,
    ) -> None:
        self.transport, self.state, self.options = transport, state, options
        self.progress = progress
        self.params: dict[str, str] = {}
        if layout.format == "csv":
            self.params["type"] = layout.csv_type
            self.content_type = "text/csv; charset=utf-8"
        else:
            self.content_type = "application/x-ndjson"
        if options.action:
            self.params["action"] = options.action

    def send(self, piece: Piece, errors: BinaryIO, state_path: Path) -> dict[str, dict[str, int]]:
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
            raise ClientError(f"{exc} (piece {piece.number}: {_span(piece)})") from None
        _write_skipped(errors, piece, body)
        return {
            kind: {
                "received": body[kind]["received"],
                "inserted": body[kind]["inserted"],
                "updated": body[kind]["updated"],
                "deleted": body[kind]["deleted"],
                "skipped": body[kind]["skipped"],
            }
            for kind in TYPES
        }

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


def _span(piece: Piece) -> str:
    wheres = [where for lines in piece.origins.values() for where in lines]
    return f"lines {min(wheres)}-{max(wheres)}" if wheres else "no records"


def _write_skipped(errors: BinaryIO, piece: Piece, body: dict) -> None:
    lines = []
    for kind in TYPES:
        origins = piece.origins.get(kind, [])
        for group in body[kind]["skipped_groups"]:
            ids = group.get("ids") or [None] * len(group["indexes"])
            for index, record_id in zip(group["indexes"], ids, strict=True):
                lines.append(
                    {
                        "line": origins[index],
                        "type": SINGULAR[kind],
                        "id": record_id,
                        "action": group.get("action", "insert"),
                        "reasons": group["reasons"],
                    }
                )
    lines.sort(key=lambda entry: entry["line"])
    errors.write(b"".join(orjson.dumps(entry) + b"\n" for entry in lines))


def _write_rejected(errors: BinaryIO, piece: Piece) -> None:
    errors.write(
        b"".join(
            orjson.dumps(
                {
                    "line": rejected.where,
                    "type": SINGULAR.get(rejected.type),
                    "id": None,
                    "action": None,
                    "reasons": {"non_field_errors": [f"Not sent: {rejected.reason}."]},
                }
            )
            + b"\n"
            for rejected in piece.rejected
        )
    )


def _confirm(
    state: PushState,
    state_path: Path,
    errors: BinaryIO,
    piece: Piece,
    counts: dict[str, dict[str, int]] | None,
) -> None:
    errors.flush()
    os.fsync(errors.fileno())
    not_sent: dict[str, int] = {}
    for rejected in piece.rejected:
        not_sent[rejected.type or "unknown"] = not_sent.get(rejected.type or "unknown", 0) + 1
    state.confirmed[str(piece.number)] = {"counts": counts or {}, "not_sent": not_sent}
    state.jobs.pop(str(piece.number), None)
    state.errors_bytes = errors.tell()
    state.save(state_path)


def _add_counts(summary: PushSummary, state: PushState) -> None:
    totals = {kind: dict.fromkeys(COUNTS, 0) for kind in (*TYPES, "unknown")}
    for confirmed in state.confirmed.values():
        for kind, counts in confirmed["counts"].items():
            for name, value in counts.items():
                totals[kind][name] += value
        for kind, value in confirmed["not_sent"].items():
            totals[kind]["not_sent"] += value
    summary.counts = {k: v for k, v in totals.items() if k != "unknown" or any(v.values())}
