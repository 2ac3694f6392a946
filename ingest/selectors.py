"""Read access to ingest jobs."""

from django.db.models import QuerySet

from ingest.models import IngestJob


def job_list() -> QuerySet[IngestJob]:
    """All jobs, newest first."""
    return IngestJob.objects.all()
