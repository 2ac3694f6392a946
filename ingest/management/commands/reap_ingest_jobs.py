"""``python manage.py reap_ingest_jobs``: retry or fail jobs whose worker stopped answering,
delete what has outlived its retention (``ingest.jobs.purge_expired``), and finish undoing
atomic batches that a failure interrupted (``ingest.atomic``).

Jobs are also checked whenever the API lists or shows them and when a Celery worker starts;
this command is for a cron entry on deployments where neither happens often.
"""

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from ingest import jobs, pipeline


class Command(BaseCommand):
    help = (
        "Give running ingest jobs with a silent worker to another worker, or fail them; delete "
        "expired jobs, idempotency keys and stale write-ledger rows; finish undoing interrupted "
        "atomic batches."
    )

    def handle(self, *args, **options) -> None:
        failed: list[str] = []

        def step(what: str, run, report) -> None:
            # A database that is down stops its own step, not the others (cron runs this).
            try:
                outcome = run()
            except DatabaseError as exc:
                failed.append(f"{what}: {str(exc).strip().splitlines()[0][:200]}")
                return
            if options["verbosity"]:
                self.stdout.write(report(outcome))

        step(
            "reaping stale jobs",
            lambda: jobs.reap_stale_jobs(purge=False),
            lambda count: f"{count} stale job(s) retried or failed.",
        )
        step("purging expired rows", jobs.purge_expired, str)
        step(
            "undoing interrupted atomic batches",
            pipeline.finish_interrupted_atomic_batches,
            lambda undone: f"{undone} interrupted atomic batch(es) undone.",
        )
        if failed:
            raise CommandError(
                "A database was unavailable, so some of the work waits for the next run: "
                + "; ".join(failed)
            )
