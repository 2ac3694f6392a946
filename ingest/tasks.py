"""Celery tasks: a worker runs ingest jobs by id (``celery -A config worker``)."""

import uuid

from celery import shared_task
from celery.signals import worker_ready
from django.db import connections

from ingest import jobs


@shared_task(name="ingest.run_job", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_ingest_job(job_id: str) -> None:
    """Run one job (the payload is read from the database, never sent through the broker)."""
    try:
        jobs.run_job(uuid.UUID(job_id))
    finally:
        connections.close_all()


@worker_ready.connect
def reap_on_start(**kwargs) -> None:
    """A worker that starts looks for jobs whose previous worker died."""
    try:
        jobs.reap_stale_jobs()
    finally:
        connections.close_all()
