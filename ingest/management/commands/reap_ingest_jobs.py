"""``python manage.py reap_ingest_jobs``: retry or fail jobs whose worker stopped answering.

Jobs are also checked whenever the API lists or shows them and when a Celery worker starts;
this command is for a cron entry on deployments where neither happens often.
"""

from django.core.management.base import BaseCommand

from ingest import jobs


class Command(BaseCommand):
    help = "Give running ingest jobs with a silent worker to another worker, or fail them."

    def handle(self, *args, **options) -> None:
        count = jobs.reap_stale_jobs()
        if options["verbosity"]:
            self.stdout.write(f"{count} stale job(s) retried or failed.")
