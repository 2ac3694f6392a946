"""Injected faults shared by the atomic-batch tests: a commit or an undo step that fails once,
as a full disk makes it fail (the real full disk is ``tests.ingest.disks``)."""

from django.db import OperationalError, connections

from common.data import bulk
from users_svc.models import User

DISK_FULL = "database or disk is full"


def fail_commit_once(monkeypatch, alias: str) -> None:
    """The next commit on ``alias`` fails as a full disk makes it fail."""
    connection = connections[alias]
    real_commit = connection._commit
    failed = []

    def commit():
        if not failed:
            failed.append(True)
            raise OperationalError(DISK_FULL)
        return real_commit()

    monkeypatch.setattr(connection, "_commit", commit)


def fail_users_delete_once(monkeypatch) -> None:
    """The next deletion of users by id (an undo's first step) fails."""
    real_delete = bulk.delete_ids
    failed = []

    def delete_ids(model, ids):
        if model is User and not failed:
            failed.append(True)
            raise OperationalError(DISK_FULL)
        return real_delete(model, ids)

    monkeypatch.setattr(bulk, "delete_ids", delete_ids)
