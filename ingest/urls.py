"""Routes of the ingest pipeline."""

from django.urls import path

from ingest.apis import IngestView

urlpatterns = [
    path("ingest/", IngestView.as_view(), name="ingest"),
]
