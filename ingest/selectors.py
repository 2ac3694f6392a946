"""Read access to ingest jobs."""

from django.db.models import QuerySet

from ingest.models import IngestJob


def job_list(*, owner: str) -> QuerySet[IngestJob]:
    """The jobs of the client ``owner`` (``common.http.auth.owner_of``), newest first; none for
    an anonymous reader (owner "")."""
    if not owner:
        return IngestJob.objects.none()
    return IngestJob.objects.filter(owner=owner)
