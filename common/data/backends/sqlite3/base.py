"""Django's SQLite backend, except that the running service never creates a database file.

SQLite's default is to create a missing file: after ``mv products.db products.db.away`` the next
request would find a new, empty ``products.db`` (and answer "no such table" as if the service
had lost its data). Here a connection opens the file with the URI ``file:...?mode=rw``, which
fails on a missing file; an empty file is refused as well, since SQLite would quietly turn it
into a new database. Only migrations may create a file (``manage.py migrate``, ``init_db``, the
test runner's test databases, all through ``common``'s ``migrate`` command), inside
``files_may_be_created()``; the file is then created private to the service's user (0600),
and SQLite gives its ``-wal`` and ``-shm`` files the same mode.

The error messages name the file, not its folder: they reach clients in 503 answers.
"""

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.db.backends.sqlite3.base import DatabaseWrapper as SQLiteDatabaseWrapper

#: Mode of a database file this backend creates; SQLite copies it to the -wal and -shm files.
FILE_MODE = 0o600

#: How the error for a missing file goes on after its name.
MISSING_FILE = "does not exist: was it moved or deleted? `manage.py init_db` creates a new one"

_creating = 0  # how many migrate commands run now (in any thread): they may create files
_creating_lock = threading.Lock()


@contextmanager
def files_may_be_created() -> Iterator[None]:
    """Let connections opened inside create their database file (for migrations only)."""
    global _creating
    with _creating_lock:
        _creating += 1
    try:
        yield
    finally:
        with _creating_lock:
            _creating -= 1


def creating_allowed() -> bool:
    return _creating > 0


def database_path(name: str | Path) -> Path | None:
    """The file a NAME setting refers to, or None for an in-memory database or a URI."""
    name = str(name)
    if name == ":memory:" or name.startswith("file:") or "mode=memory" in name:
        return None
    return Path(name)


def create_private_file(path: Path) -> None:
    """An empty database file readable by its owner only, whatever the umask says."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return
    try:
        os.fchmod(descriptor, FILE_MODE)
    finally:
        os.close(descriptor)


class DatabaseWrapper(SQLiteDatabaseWrapper):
    def get_connection_params(self) -> dict[str, Any]:
        params = super().get_connection_params()
        path = database_path(params["database"])
        if path is not None and not creating_allowed():
            # uri=True is Django's own setting; as_uri() escapes "?", "#" and "%" in the path.
            params["database"] = f"{path.absolute().as_uri()}?mode=rw"
        return params

    def get_new_connection(self, conn_params: dict[str, Any]) -> sqlite3.Connection:
        path = database_path(self.settings_dict["NAME"])
        if path is not None:
            if creating_allowed():
                create_private_file(path)
            else:
                _refuse_missing_or_empty(path)
        try:
            return super().get_new_connection(conn_params)
        except sqlite3.DatabaseError as exc:
            if path is None:
                raise
            # "file is not a database" comes from the first statement (the init PRAGMAs): say
            # which file it is about.
            raise type(exc)(f"{exc}: {path.name}") from exc


def _refuse_missing_or_empty(path: Path) -> None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise sqlite3.OperationalError(f"the database file {path.name} {MISSING_FILE}") from None
    except OSError as exc:
        raise sqlite3.OperationalError(
            f"the database file {path.name} cannot be opened ({exc.strerror})"
        ) from None
    if size == 0:
        raise sqlite3.OperationalError(
            f"the database file {path.name} is empty: it is not a database made by init_db"
        )
