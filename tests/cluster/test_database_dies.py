"""The products server stopped (``pg_ctl stop -m immediate``) while a 300,000-record ingest
runs: users are written, products and the orders that point at them are not, each record's
answer says why; /healthz names products within a second; the users and orders endpoints go
on answering. Started again, the same batch sent again ends in the rows of one clean run.

The products table is locked from outside first, so that the ingest is waiting on products
(its users committed) when the server stops, however fast the machine is."""

import threading
import time

import httpx

from tests.cluster.harness import wait_for
from tests.cluster.shared import batch, counts, outline, products_locked, waiting_port


def test_the_products_server_stopped_mid_ingest(cluster, client):
    before = counts(cluster)
    body = batch(900_000, 300_000)
    answers: list[httpx.Response] = []
    sender = threading.Thread(
        target=lambda: answers.append(
            client.post(
                "/ingest/",
                content=body,
                headers={"Content-Type": "application/x-ndjson", "Idempotency-Key": "k-dies"},
            )
        )
    )
    products = cluster.servers["products"]
    try:
        with products_locked(cluster):
            sender.start()
            wait_for(lambda: waiting_port(products) is not None, "the ingest waits", 60)
            stopped = time.monotonic()
            products.stop("immediate")
        health = None
        while time.monotonic() - stopped < 5:
            health = httpx.get(f"{cluster.url}/healthz", timeout=5)
            if health.status_code == 503:
                break
        health_after = time.monotonic() - stopped
        users_page = httpx.get(f"{cluster.url}/users/?page_size=5", timeout=5)
        orders_page = httpx.get(f"{cluster.url}/orders/?page_size=5", timeout=5)
        sender.join(timeout=120)
        answer = answers[0]
        during = {
            name: cluster.servers[name].count(f"store_{name}", name) for name in ("users", "orders")
        }
        print(f"answer {answer.status_code}: {outline(answer.json())}")
        print(f"/healthz {health.status_code} after {health_after:.2f} s: {health.text[:300]}")
        print(f"users {users_page.status_code}, orders {orders_page.status_code}; rows {during}")
    finally:
        products.start()
    again = client.post("/ingest/", content=body, headers={"Content-Type": "application/x-ndjson"})
    after = counts(cluster)
    print(f"sent again: {again.status_code}; rows {after} (before {before})")
    # Every record has its answer: users written, products not, orders not checked.
    assert answer.status_code == 200, answer.text[:500]
    result = answer.json()
    assert result["errors"] is True
    assert result["users"]["inserted"] == 100_000
    for kind, reason in (
        ("products", "Not written: the products database is unavailable"),
        ("orders", "Cannot be checked: the products service is unavailable"),
    ):
        assert result[kind]["inserted"] == 0
        groups = result[kind]["skipped_groups"]  # a group per message (they name the chunk's error)
        assert sum(len(group["indexes"]) for group in groups) == 100_000
        assert all(reason in str(group["reasons"]) for group in groups)
    assert during == {"users": before["users"] + 100_000, "orders": before["orders"]}
    assert health.status_code == 503
    assert health.json()["checks"]["products"]["ok"] is False
    assert health_after < 1.0
    assert users_page.status_code == 200
    assert orders_page.status_code == 200
    assert again.status_code == 200
    assert after == {kind: before[kind] + 100_000 for kind in before}
