"""Routes of the ingest pipeline."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from ingest.apis import IngestView
from ingest.job_apis import IngestJobViewSet
from ingest.limit_apis import IngestLimitsView

router = SimpleRouter()
router.register("ingest/jobs", IngestJobViewSet, basename="ingest-job")

urlpatterns = [
    path("ingest/", IngestView.as_view(), name="ingest"),
    path("ingest/limits/", IngestLimitsView.as_view(), name="ingest-limits"),
    *router.urls,
]
