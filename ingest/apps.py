"""App config of the ingest pipeline (its bookkeeping tables live on the default database)."""

from django.apps import AppConfig


class IngestConfig(AppConfig):
    name = "ingest"
    verbose_name = "Bulk ingest"
