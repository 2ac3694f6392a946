"""The deployment as a client meets it, through nginx: the seed commands, a 300,000-record
ingest run now and one run as a background job by the Celery workers, each row in its own
PostgreSQL server."""

import time

from tests.cluster.shared import SEEDED, batch, counts


def test_the_report_s_commands_seed_each_server(cluster, client):
    before = counts(cluster)
    cluster.manage("insert_data")
    assert counts(cluster) == {kind: before[kind] + SEEDED[kind] for kind in SEEDED}
    assert client.get("/users/1/").status_code == 200
    assert client.get("/orders/7/").json()["user_id"] in range(1, 10)
    assert client.get("/healthz").status_code == 200


def test_a_batch_run_now_and_one_run_by_the_workers_land_in_their_servers(cluster, client):
    before = counts(cluster)
    answer = client.post(
        "/ingest/", content=batch(1000, 300_000), headers={"Content-Type": "application/x-ndjson"}
    )
    assert answer.status_code == 200, answer.text[:500]
    body = answer.json()
    assert [body[kind]["inserted"] for kind in SEEDED] == [100_000] * 3
    assert counts(cluster) == {kind: before[kind] + 100_000 for kind in SEEDED}

    submitted = client.post(
        "/ingest/?async=true",
        content=batch(200_000, 300_000),
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert submitted.status_code == 202, submitted.text[:500]
    job = submitted.json()
    deadline = time.monotonic() + 180
    while job["state"] not in ("succeeded", "failed", "cancelled", "aborted"):
        assert time.monotonic() < deadline, job
        time.sleep(1)
        job = client.get(f"/ingest/jobs/{job['id']}/").json()
    assert job["state"] == "succeeded", job
    assert counts(cluster) == {kind: before[kind] + 200_000 for kind in SEEDED}
