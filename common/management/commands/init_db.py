"""``python manage.py init_db``: create or update every service's database. Safe to re-run.

Prints, for each service, the line the seed report shows:

    users database initialized.
    products database initialized.
    orders database initialized.

Django's own tables (auth, sessions, admin, ingest bookkeeping) go to the ``default`` database
first; with ``-v 2`` that is reported too, with ``-v 0`` nothing is.

It is the only command that creates SQLite files (through ``migrate``), readable by their owner
only (0600). A file it finds readable by others (made by an older version, or copied in) is
tightened to 0600, with its ``-wal`` and ``-shm`` files; ``-v 2`` says which.
"""

import stat
from pathlib import Path

from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import connections

from common.data.backends.sqlite3.base import FILE_MODE, database_path
from config.db_router import DEFAULT_DATABASE, SERVICE_DATABASES


class Command(BaseCommand):
    help = "Create or migrate the default, users, products and orders databases (idempotent)."

    def handle(self, *args, **options) -> None:
        verbosity = options["verbosity"]
        migrate_verbosity = max(0, verbosity - 1)
        for alias in [DEFAULT_DATABASE, *SERVICE_DATABASES.values()]:
            for path, was in database_files_tightened(alias=alias):
                if verbosity > 1:
                    self.stdout.write(
                        f"{path.name} was readable by others ({was:04o}): now {FILE_MODE:04o}."
                    )
            call_command("migrate", database=alias, verbosity=migrate_verbosity, interactive=False)
            if verbosity > 1 or (verbosity and alias != DEFAULT_DATABASE):
                self.stdout.write(f"{alias} database initialized.")


def database_files_tightened(*, alias: str) -> list[tuple[Path, int]]:
    """Make the alias's SQLite file and its -wal/-shm owner-only; ``(path, old mode)`` of each
    file changed. Nothing for a PostgreSQL database or a file that does not exist yet."""
    connection = connections[alias]
    if connection.vendor != "sqlite":
        return []
    main = database_path(connection.settings_dict["NAME"])
    if main is None:
        return []
    changed = []
    for path in (main, main.with_name(f"{main.name}-wal"), main.with_name(f"{main.name}-shm")):
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & ~FILE_MODE:
            path.chmod(FILE_MODE)
            changed.append((path, mode))
    return changed
