"""The Celery app: ``celery -A config worker`` runs ingest jobs (see ``ingest.tasks``).

It reads its settings from Django's (``CELERY_*``). Without ``CELERY_BROKER_URL`` nothing uses
it: the web process runs jobs on its own threads (``ingest.jobs``).
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
