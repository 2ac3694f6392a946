"""Several ingests at once against the real database files: no "database is locked", no loss."""

import json
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from orders_svc.models import Order
from products_svc.models import Product
from users_svc.models import User

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True)

CLIENTS = 6
BATCHES_PER_CLIENT = 3
PER_BATCH = 1500


def _batch(client: int, batch: int) -> dict:
    base = (client * BATCHES_PER_CLIENT + batch) * PER_BATCH
    ids = range(base + 1, base + PER_BATCH + 1)
    return {
        "users": [{"id": i, "name": f"U{i}", "email": f"u{i}@example.com"} for i in ids],
        "products": [{"id": i, "name": f"P{i}", "price": "9.99"} for i in ids],
        "orders": [{"user_id": i, "product_id": i, "quantity": 1} for i in ids],
    }


def _post(url: str, body: dict, token: str) -> tuple[int, dict]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Token {token}"},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return response.status, json.loads(response.read())


def test_concurrent_ingests_all_succeed_and_every_reported_row_is_stored(
    live_server, settings, api_token
):
    settings.INGEST_CHUNK_SIZE = 500  # more, shorter transactions: more interleaving
    url = f"{live_server.url}/ingest/"
    jobs = [(c, b) for c in range(CLIENTS) for b in range(BATCHES_PER_CLIENT)]

    def run(job):
        return _post(url, _batch(*job), api_token)

    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        results = list(pool.map(run, jobs))

    reported = {"users": set(), "products": set(), "orders": set()}
    for status, body in results:
        assert status == 200
        assert body["errors"] is False, body  # no chunk failed, e.g. with "database is locked"
        for name in reported:
            reported[name].update(body[name]["inserted_ids"])
    total = len(jobs) * PER_BATCH
    assert len(reported["users"]) == len(reported["products"]) == len(reported["orders"]) == total
    assert set(User.objects.values_list("id", flat=True)) == reported["users"]
    assert set(Product.objects.values_list("id", flat=True)) == reported["products"]
    assert set(Order.objects.values_list("id", flat=True)) == reported["orders"]
    assert not Order.objects.exclude(user_id__in=reported["users"]).exists()


def test_the_same_explicit_ids_sent_twice_at_once_are_stored_once(live_server, api_token):
    url = f"{live_server.url}/ingest/"
    body = {
        "users": [{"id": i, "name": f"U{i}", "email": f"u{i}@example.com"} for i in range(1, 3001)]
    }
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: _post(url, body, api_token), range(4)))
    inserted = [i for _, response in results for i in response["users"]["inserted_ids"]]
    assert sorted(inserted) == list(range(1, 3001))  # each id inserted by exactly one request
    assert User.objects.count() == 3000
