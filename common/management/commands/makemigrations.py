"""``manage.py makemigrations``, Django's own, quiet about SQLite files that do not exist yet.

Django checks that each database's applied migrations are consistent with the files on disk,
and warns when it cannot connect. Since the service no longer creates missing SQLite files
(``common.data.backends.sqlite3``), on a fresh checkout (``make test`` runs ``makemigrations
--check``) every database would be such a warning, though a database that does not exist has
no history to be inconsistent with. Other connection errors are still reported.
"""

import re
import warnings

from django.core.management.commands.makemigrations import Command as DjangoMakemigrationsCommand

from common.data.backends.sqlite3.base import MISSING_FILE


class Command(DjangoMakemigrationsCommand):
    def handle(self, *args, **options) -> None:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore",
                message=r"Got an error checking a consistent migration history .*"
                + re.escape(MISSING_FILE),
                category=RuntimeWarning,
            )
            super().handle(*args, **options)
