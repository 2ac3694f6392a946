"""Routes of the ingest pipeline."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from ingest.apis import IngestView
from ingest.job_apis import IngestJobViewSet

router = SimpleRouter()
router.register("ingest/jobs", IngestJobViewSet, basename="ingest-job")

urlpatterns = [
    path("ingest/", IngestView.as_view(), name="ingest"),
    *router.urls,
]
