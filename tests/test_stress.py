"""Stress: a live gunicorn (two processes, four threads each) and eight clients mixing ingest
batches, lists, retrieves and deletes for a bounded time.

Pass: no 5xx, no "database is locked", and the databases hold exactly the rows the responses
reported (inserted minus deleted), none missing and none extra. It prints the throughput and
the latency percentiles of each kind of request (``pytest -s`` shows them).
"""

import os
import random
import statistics
import threading
import time
from collections import defaultdict

import pytest

from orders_svc.models import Order
from products_svc.models import Product
from tests import live
from users_svc.models import User

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True)

CLIENTS = 8
SECONDS = float(os.environ.get("STRESS_SECONDS", "12"))
BATCH = 100  # records of each type per ingest


class Client(threading.Thread):
    """One client: its own id range, its own random mix of requests."""

    def __init__(self, number: int, base_url: str, token: str, deadline: float) -> None:
        super().__init__(name=f"stress-client-{number}")
        self.number, self.base_url, self.token, self.deadline = number, base_url, token, deadline
        self.random = random.Random(number)
        self.next_id = number * 10_000_000 + 1
        self.inserted = {"users": set(), "products": set(), "orders": set()}
        self.deleted_orders: set[int] = set()
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.problems: list[str] = []

    def call(self, kind: str, method: str, path: str, body=None):
        started = time.perf_counter()
        status, _, payload = live.request(method, self.base_url + path, body, self.token)
        self.latencies[kind].append(time.perf_counter() - started)
        if status >= 500:
            self.problems.append(f"{kind} {method} {path}: {status} {payload}")
        if "database is locked" in str(payload):
            self.problems.append(f"{kind} {method} {path}: database is locked")
        return status, payload

    def ingest(self) -> None:
        ids = range(self.next_id, self.next_id + BATCH)
        self.next_id += BATCH
        batch = {
            "users": [{"id": i, "name": f"U{i}", "email": f"u{i}@example.com"} for i in ids],
            "products": [{"id": i, "name": f"P{i}", "price": "2.50"} for i in ids],
            "orders": [{"id": i, "user_id": i, "product_id": i, "quantity": 1} for i in ids],
        }
        status, payload = self.call("ingest", "POST", "/ingest/", batch)
        if status == 200:
            for kind in self.inserted:
                self.inserted[kind].update(payload[kind]["inserted_ids"])
                if payload[kind]["skipped"]:
                    self.problems.append(
                        f"ingest skipped {kind}: {payload[kind]['skipped_groups'][:1]}"
                    )
        else:
            self.problems.append(f"ingest answered {status}: {payload}")

    def run(self) -> None:
        while time.monotonic() < self.deadline:
            choice = self.random.random()
            live_orders = sorted(self.inserted["orders"] - self.deleted_orders)
            if choice < 0.35 or not live_orders:
                self.ingest()
            elif choice < 0.6:
                resource = self.random.choice(["users", "products", "orders"])
                self.call("list", "GET", f"/{resource}/?page_size=100&ordering=-id")
            elif choice < 0.8:
                user_id = self.random.choice(sorted(self.inserted["users"]))
                status, _ = self.call("retrieve", "GET", f"/users/{user_id}/")
                if status != 200:
                    self.problems.append(f"retrieve of user {user_id}: {status}")
            else:
                order_id = self.random.choice(live_orders)
                status, _ = self.call("delete", "DELETE", f"/orders/{order_id}/")
                if status == 204:
                    self.deleted_orders.add(order_id)
                else:
                    self.problems.append(f"delete of order {order_id}: {status}")
                # A user whose order is gone may still have others: a 409 is a right answer.
                status, _ = self.call("delete", "DELETE", f"/users/{order_id}/")
                if status not in (204, 409):
                    self.problems.append(f"delete of user {order_id}: {status}")
                elif status == 204:
                    self.inserted["users"].discard(order_id)


def test_eight_clients_at_once_lose_nothing_and_get_no_server_error(api_token):
    with live.gunicorn(workers=2, threads=4) as (base_url, _):
        deadline = time.monotonic() + SECONDS
        clients = [Client(n, base_url, api_token, deadline) for n in range(1, CLIENTS + 1)]
        started = time.perf_counter()
        for client in clients:
            client.start()
        for client in clients:
            client.join()
        elapsed = time.perf_counter() - started

    problems = [problem for client in clients for problem in client.problems]
    assert not problems, problems[:10]

    expected_users = set().union(*(c.inserted["users"] for c in clients))
    expected_products = set().union(*(c.inserted["products"] for c in clients))
    expected_orders = set().union(*(c.inserted["orders"] - c.deleted_orders for c in clients))
    assert set(User.objects.values_list("id", flat=True)) == expected_users
    assert set(Product.objects.values_list("id", flat=True)) == expected_products
    assert set(Order.objects.values_list("id", flat=True)) == expected_orders

    latencies = defaultdict(list)
    for client in clients:
        for kind, values in client.latencies.items():
            latencies[kind].extend(values)
    requests = sum(len(values) for values in latencies.values())
    records = 3 * BATCH * len(latencies["ingest"])
    print(
        f"\nstress: {CLIENTS} clients, {elapsed:.1f} s, {requests} requests "
        f"({requests / elapsed:.0f}/s), {records} records ingested ({records / elapsed:.0f}/s)"
    )
    for kind, values in sorted(latencies.items()):
        q = statistics.quantiles(values, n=100) if len(values) > 1 else values * 99
        print(
            f"  {kind:<9} n={len(values):<5} p50 {q[49] * 1000:6.1f} ms  "
            f"p95 {q[94] * 1000:6.1f} ms  p99 {q[98] * 1000:6.1f} ms"
        )
    assert len(latencies["ingest"]) >= CLIENTS  # every client got real work done
