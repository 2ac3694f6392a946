"""A small disk to fill up, and a client that posts batches to a live server: for the tests of
atomic batches whose commit meets a real full disk (the ``small_disk`` fixture is in this
directory's conftest.py)."""

import json
import os
import sqlite3
import subprocess
import tempfile
import urllib.error
import urllib.request
from pathlib import Path


def mount_small_disk() -> tuple[Path | None, str]:
    """Mount a 4 MiB tmpfs: ``(its directory, "")``, or ``(None, why not)`` where none can be
    mounted (not root, no mount)."""
    directory = Path(tempfile.mkdtemp(prefix="full-disk-"))
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(directory)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        directory.rmdir()
        return None, mounted.stderr.strip() or str(mounted.returncode)
    return directory, ""


def unmount(directory: Path) -> None:
    subprocess.run(["umount", "-l", str(directory)], check=False)
    directory.rmdir()


def fill(directory: Path, leave: int) -> Path:
    """Fill the file system of ``directory`` up to ``leave`` free bytes; returns the filler."""
    filler = directory / "filler"
    with open(filler, "wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:  # ENOSPC: full
            pass
    os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler


def send(url: str, batch: dict, token: str, key: str) -> tuple[int, dict]:
    """POST a batch with an Idempotency-Key, as a client that retries would."""
    request = urllib.request.Request(
        url,
        data=json.dumps(batch).encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Token {token}",
            "Idempotency-Key": key,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def count(database: Path, sql: str) -> tuple:
    with sqlite3.connect(database) as connection:
        return connection.execute(sql).fetchone()
