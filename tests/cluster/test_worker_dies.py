"""A Celery worker SIGKILLed while it runs a job: the job goes to the other worker (it is silent
for INGEST_JOB_STALE_AFTER, 6 s here), which finishes it over the write ledger: every row once.

So that the kill lands mid-job however fast the machine is, the products table is locked from
outside while the job runs: the job commits users, then waits on its first products write. The
worker that runs it is the one whose connection waits, as PostgreSQL itself says."""

import subprocess
import time

from tests.cluster.harness import killed, wait_for
from tests.cluster.shared import SEEDED, batch, counts, products_locked, waiting_port


def _owner(cluster, port: int) -> str:
    """The name of the process (of the cluster's) whose socket has this local port."""
    sockets = subprocess.run(
        ["ss", "-tnpH", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout
    for name, process in cluster.processes.items():
        if f"pid={process.pid}," in sockets:
            return name
    raise AssertionError(f"no process of the cluster has port {port}: {sockets}")


def test_a_job_whose_worker_is_killed_is_finished_by_the_other_exactly_once(cluster, client):
    before = counts(cluster)
    with products_locked(cluster) as server:
        submitted = client.post(
            "/ingest/?async=true",
            content=batch(600_000, 300_000),
            headers={"Content-Type": "application/x-ndjson"},
        )
        assert submitted.status_code == 202, submitted.text[:500]
        url = f"/ingest/jobs/{submitted.json()['id']}/"
        wait_for(lambda: waiting_port(server) is not None, "the job waits on products", 60)
        victim = _owner(cluster, waiting_port(server))
        assert victim.startswith("worker"), victim
        killed(cluster.processes.pop(victim))
        partial = counts(cluster)
    deadline = time.monotonic() + 180
    while (job := client.get(url).json())["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, (job, cluster.logs())
        time.sleep(1)
    after = counts(cluster)
    print(
        f"killed {victim} mid-job; rows then {partial}, after {after}; job {job['state']} "
        f"after {job['attempts']} attempts"
    )
    assert job["state"] == "succeeded", job
    assert job["attempts"] >= 2, job
    assert after == {kind: before[kind] + 100_000 for kind in SEEDED}
    cluster.start_worker(int(victim.removeprefix("worker")))
