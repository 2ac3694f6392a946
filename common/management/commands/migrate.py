"""``manage.py migrate``, Django's own, allowed to create a missing SQLite database file.

Outside migrations the service opens existing database files only (see
``common.data.backends.sqlite3``): a moved or deleted file is reported as unavailable instead
of being replaced by an empty one. ``init_db`` and the test runner's creation of the test
databases both run this command, so they create the files they need, private to their owner.
"""

from django.core.management.commands.migrate import Command as DjangoMigrateCommand

from common.data.backends.sqlite3.base import files_may_be_created


class Command(DjangoMigrateCommand):
    def handle(self, *args, **options) -> None:
        with files_may_be_created():
            super().handle(*args, **options)
