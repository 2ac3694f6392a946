"""``python manage.py reap_ingest_jobs``: retry or fail jobs whose worker stopped answering,
and delete what has outlived its retention (``ingest.jobs.purge_expired``).

Jobs are also checked whenever the API lists or shows them and when a Celery worker starts;
this command is for a cron entry on deployments where neither happens often.
"""

from django.core.management.base import BaseCommand

from ingest import jobs


class Command(BaseCommand):
    help = (
        "Give running ingest jobs with a silent worker to another worker, or fail them; delete "
        "expired jobs, idempotency keys and stale write-ledger rows."
    )

    def handle(self, *args, **options) -> None:
        count = jobs.reap_stale_jobs(purge=False)
        purged = jobs.purge_expired()
        if options["verbosity"]:
            self.stdout.write(f"{count} stale job(s) retried or failed.")
            self.stdout.write(str(purged))
