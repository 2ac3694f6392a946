"""``python manage.py reap_ingest_jobs``: retry or fail jobs whose worker stopped answering,
delete what has outlived its retention (``ingest.jobs.purge_expired``), and finish undoing
atomic batches that a failure interrupted (``ingest.atomic``).

Jobs are also checked whenever the API lists or shows them and when a Celery worker starts;
this command is for a cron entry on deployments where neither happens often.
"""

from django.core.management.base import BaseCommand

from ingest import jobs


class Command(BaseCommand):
    help = (
        "Give running ingest jobs with a silent worker to another worker, or fail them; delete "
        "expired jobs, idempotency keys and stale write-ledger rows; finish undoing interrupted "
        "atomic batches."
    )

    def handle(self, *args, **options) -> None:
        count = jobs.reap_stale_jobs(purge=False)
        purged = jobs.purge_expired()
        undone = jobs.finish_interrupted_atomic_batches()
        if options["verbosity"]:
            self.stdout.write(f"{count} stale job(s) retried or failed.")
            self.stdout.write(str(purged))
            self.stdout.write(f"{undone} interrupted atomic batch(es) undone.")
