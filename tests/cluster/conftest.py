"""The deployment for ``make test-cluster`` (tests/cluster/harness.py): started once for these
tests, torn down after them. Without ``STORE_CLUSTER=1`` (``make test`` alone) they are skipped:
they need the PostgreSQL server binaries, Redis and nginx, and a few minutes."""

import logging
import os
import shutil
import signal
import tempfile
from pathlib import Path

import httpx
import pytest

from tests.cluster.harness import Cluster


def pytest_collection_modifyitems(config, items):
    if os.environ.get("STORE_CLUSTER") == "1":
        return
    skip = pytest.mark.skip(reason="a whole deployment: run with make test-cluster")
    for item in items:
        if "tests/cluster/" in str(item.fspath):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def cluster():
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the figures printed stay readable
    # A SIGTERM (a CI timeout, a killed job) ends the run as Ctrl-C does, through the finally
    # below: the servers run in sessions of their own and would outlive it otherwise.
    previous = signal.signal(signal.SIGTERM, _interrupted)
    # Not under pytest's own temporary folder: its parents are private to root, and the
    # PostgreSQL servers run as the postgres user.
    scratch = Path(tempfile.mkdtemp(prefix="store-cluster-"))
    try:
        started = Cluster(
            scratch,
            # Jobs whose worker died go to another after 6 s of silence, not 2 minutes.
            app_env={"INGEST_JOB_HEARTBEAT_SECONDS": "1", "INGEST_JOB_STALE_AFTER": "6"},
            # The products server on a test host of its own, to be cut off (test_partition).
            own_hosts=("products",),
        ).start()
        try:
            yield started
        finally:
            started.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        signal.signal(signal.SIGTERM, previous)


def _interrupted(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def client(cluster):
    """A client of the deployment, through nginx, with a key."""
    with httpx.Client(
        base_url=cluster.url, headers={"Authorization": f"Token {cluster.token}"}, timeout=300
    ) as client:
        yield client
