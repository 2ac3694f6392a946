"""What a push has done, kept next to the data so that a crashed run can resume exactly.

The state file (``<file>.push-state.json`` by default) holds:

* the file's **fingerprint** (size and SHA-256): a file changed since the push began is
  refused, with a message, rather than mixed with what was sent of the old one;
* the **options** and the **piece sizes** (the first few pieces are smaller) the pieces were
  cut with, so that a resumed run cuts the same pieces (``store_client.pieces``), and the
  push's own random id, which each piece's ``Idempotency-Key`` starts with: a resumed run
  sends each piece under the same key, while a new push of the same file (its state moved
  away) is a new push, written again;
* the pieces the server **confirmed**, with their counts, and how long the errors file was
  after the last of them (a resumed run cuts it back there, so no skipped record is listed
  twice);
* the background job of each piece sent with ``--async``, so that a resumed run waits for the
  same job instead of sending the piece again.

It is written after every confirmed piece, to a temporary file that is flushed, synced and
renamed over the old one: a client killed at any moment leaves the old state or the new one,
never half of one. A piece sent but not confirmed when the client died is sent again with the
same key; the server writes it once and replays its answer.
"""

import hashlib
import os
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson

#: 2: the first pieces smaller, lines of the other pass parsed in their own pass, each
#: confirmed piece's record count and CRC-32 kept. A push begun by version 1 cut the file
#: into other pieces: it can be read (a finished one is finished) but not resumed.
VERSION = 2


class StateError(Exception):
    """The state file cannot be used for this push (the message says why and what to do)."""


@dataclass
class PushState:
    file_size: int
    file_sha256: str
    file_mtime_ns: int
    options: dict
    piece_records: int
    piece_bytes: int
    #: the record limits of the first pieces (a push starts small)
    first_pieces: list[int] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)
    #: piece number -> its counts, records and CRC-32 (a resumed run checks that it cut the
    #: same piece)
    confirmed: dict[str, dict] = field(default_factory=dict)
    jobs: dict[str, str] = field(default_factory=dict)  # piece number -> job id (--async)
    errors_bytes: int = 0
    finished_at: float | None = None
    push_id: str = field(default_factory=lambda: "store-push-" + secrets.token_hex(16))
    version: int = VERSION

    def key(self, piece: int) -> str:
        return f"{self.push_id}-{piece}"

    def save(self, path: Path) -> None:
        temporary = path.with_name(path.name + ".tmp")
        with temporary.open("wb") as file:
            file.write(orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2))
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    @classmethod
    def load(cls, path: Path) -> "PushState | None":
        if not path.exists():
            return None
        try:
            data = orjson.loads(path.read_bytes())
            if not isinstance(data, dict):
                raise TypeError("not a JSON object")
            if data.get("version") not in (1, VERSION):
                raise StateError(f"{path} was written by another version of the client.")
            return cls(**data)
        except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
            raise StateError(
                f"{path} is not a push state this client can read ({exc}); move it away to "
                "start the push over (records without ids already sent would be sent again)."
            ) from None


def fingerprint(path: Path, *, on_read=None) -> tuple[int, str]:
    """(size, SHA-256) of ``path``, read a MiB at a time."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
            size += len(block)
            if on_read is not None:
                on_read(len(block))
    return size, digest.hexdigest()
