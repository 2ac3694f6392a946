"""``python manage.py init_db``: create or update every service's database. Safe to re-run.

Prints, for each service, the line the seed report shows:

    users database initialized.
    products database initialized.
    orders database initialized.

Django's own tables (auth, sessions, admin, ingest bookkeeping) go to the ``default`` database
first; with ``-v 2`` that is reported too, with ``-v 0`` nothing is.
"""

from django.core.management import call_command
from django.core.management.base import BaseCommand

from config.db_router import DEFAULT_DATABASE, SERVICE_DATABASES


class Command(BaseCommand):
    help = "Create or migrate the default, users, products and orders databases (idempotent)."

    def handle(self, *args, **options) -> None:
        verbosity = options["verbosity"]
        migrate_verbosity = max(0, verbosity - 1)
        call_command(
            "migrate", database=DEFAULT_DATABASE, verbosity=migrate_verbosity, interactive=False
        )
        if verbosity > 1:
            self.stdout.write(f"{DEFAULT_DATABASE} database initialized.")
        for alias in SERVICE_DATABASES.values():
            call_command("migrate", database=alias, verbosity=migrate_verbosity, interactive=False)
            if verbosity:
                self.stdout.write(f"{alias} database initialized.")
