"""A gunicorn process SIGKILLed: nginx sends the next requests to the other one (a connection
refused is retried on the next server, POSTs included: the request never reached the dead one),
so clients see no error; started again, it takes its share back."""

import httpx

from tests.cluster.harness import killed
from tests.cluster.shared import batch


def test_a_dead_gunicorn_is_passed_over_by_nginx(cluster, client):
    killed(cluster.processes.pop("web1"))
    try:
        reads = [client.get("/users/?page_size=5").status_code for _ in range(20)]
        writes = [
            client.post(
                "/ingest/",
                content=batch(2_000_000 + 10 * i, 3),
                headers={"Content-Type": "application/x-ndjson"},
            ).status_code
            for i in range(5)
        ]
        health = httpx.get(f"{cluster.url}/healthz", timeout=10).status_code
        print(f"web1 killed: reads {set(reads)}, writes {set(writes)}, /healthz {health}")
    finally:
        cluster.start_web(1, cluster.web_ports[0])
    assert reads == [200] * 20
    assert writes == [200] * 5
    assert health == 200
