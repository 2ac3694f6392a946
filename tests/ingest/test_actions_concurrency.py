"""Bulk deletions racing with order writes: no order ever points nowhere, and counts stay exact.

The deletion of a user or product and the writing of an order that points at it happen in two
databases. They are kept apart by the orders lock (``common.data.db``): an order writer takes it
before it checks its references, a deletion guard (``common.data.references``) before it counts
the orders that point at what it deletes, and each holds it until it commits. The streaming
insert (``ingest.streaming``) goes further and trusts the users and products it inserted itself
without a lookup, as long as the deletion epoch did not move (``orders_svc.models.DeletionEpoch``):
every deletion that may delete something must bump it.

Two kinds of test:

* interleavings forced at the moment that matters, each showing one guard is needed: a bulk
  deletion between a streaming ingest's users commit and its orders check (the epoch); a
  bulk deletion while a single-record DELETE of the same record runs (one of them reports
  it); a deletion while a batch in held transactions (atomic, dry run) is between its phases,
  and an atomic batch beside a streaming one with the same ids (PostgreSQL: no wait across two
  databases that no server can see); and, marked as a known failure, what a reader sees between
  the commits of an atomic batch that deletes an order and its user;
* rounds of clients sending mixed batches at once through a live server (real HTTP, a thread
  per request), while a watcher reads the databases again and again; after each round no
  order points at a missing user or product, and every reported outcome is what the databases
  hold: the deleted ids of all answers are exactly the rows gone, each id once; every order
  is stored as its last accepted write left it; every order refused for a missing user or
  product names one that is gone indeed.
"""

import json
import random
import threading
import time

import pytest
from django.db import connections
from django.test import Client

from common.http.viewsets import ServiceViewSet
from ingest.resources import ORDERS
from orders_svc.models import Order
from orders_svc.selectors import dangling_orders
from products_svc import services as product_services
from products_svc.models import Product
from tests.ingest.skips import skipped_records
from tests.live import request as live_request
from users_svc import services as user_services
from users_svc.models import User

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True, reset_sequences=True)


def post(client, body, query=""):
    return client.generic(
        "POST", f"/ingest/{query}", json.dumps(body), content_type="application/json"
    )


class Request(threading.Thread):
    """Another client's request on a thread of its own (its own connections, closed at the
    end as a server thread closes them); ``result()`` is its answer."""

    def __init__(self, work) -> None:
        super().__init__(daemon=True)
        self._work = work
        self._outcome: dict = {}

    def run(self) -> None:
        try:
            self._outcome["value"] = self._work()
        except BaseException as exc:  # noqa: BLE001 - re-raised by result()
            self._outcome["error"] = exc
        finally:
            connections.close_all()

    def result(self):
        assert not self.is_alive(), "the request has not finished"
        if "error" in self._outcome:
            raise self._outcome["error"]
        return self._outcome["value"]


def in_another_thread(work):
    """Run ``work()`` as another client's request and wait for its answer."""
    request = Request(work)
    request.start()
    request.join(60)
    return request.result()


def token_client(api_token):
    return Client(headers={"Authorization": f"Token {api_token}"})


# --- a deletion between a streaming ingest's users commit and its orders check ----------------


@pytest.mark.parametrize(
    ("kind", "service", "insert_name"),
    [
        ("users", user_services, "users_bulk_insert"),
        ("products", product_services, "products_bulk_insert"),
    ],
)
def test_a_streaming_ingest_does_not_trust_what_it_inserted_once_a_bulk_deletion_removed_it(
    api, api_token, settings, monkeypatch, kind, service, insert_name
):
    """A batch inserts user (or product) 50 and an order for it. Right after the users chunk
    commits, another client deletes 1 and 50 with ``?action=delete``: 1 is refused (an order
    points at it), 50 is deleted (nothing points at it yet). The ingest must not count 50 as
    existing because it inserted it: the order is refused."""
    post(
        api,
        {
            "users": [{"id": 1, "name": "Seed", "email": "seed@example.com"}],
            "products": [{"id": 1, "name": "Seed", "price": "1.00"}],
            "orders": [{"id": 1, "user_id": 1, "product_id": 1, "quantity": 1}],
        },
    )
    # Inline writers: the orders are written and checked after the users and products commit,
    # in this thread, so the deletion below lands exactly in between.
    settings.INGEST_WRITER_THREADS = False
    real_insert = getattr(service, insert_name)
    deletions = []

    def insert_then_someone_deletes(rows, **kwargs):
        ids = real_insert(rows, **kwargs)
        response = in_another_thread(
            lambda: post(token_client(api_token), {kind: [{"id": 1}, {"id": 50}]}, "?action=delete")
        )
        deletions.append(response.json()[kind])
        return ids

    monkeypatch.setattr(service, insert_name, insert_then_someone_deletes)
    new = {
        "users": {"id": 50, "name": "New", "email": "new@example.com"},
        "products": {"id": 50, "name": "New", "price": "2.00"},
    }[kind]
    order = {"id": 7, "user_id": 1, "product_id": 1, "quantity": 1}
    order["user_id" if kind == "users" else "product_id"] = 50
    response = post(api, {kind: [new], "orders": [order]})

    assert response.status_code == 200
    body = response.json()
    assert body[kind]["inserted_ids"] == [50]
    assert [(d["deleted_ids"], d["skipped"]) for d in deletions] == [([50], 1)]
    field = "user_id" if kind == "users" else "product_id"
    assert body["orders"]["inserted_ids"] == []
    assert [r["reasons"] for r in skipped_records(body["orders"])] == [
        {field: [f"No {kind.removesuffix('s')} has this id."]}
    ]
    model = User if kind == "users" else Product
    assert not model.objects.filter(id=50).exists()
    assert list(Order.objects.values_list("id", flat=True)) == [1]
    assert list(dangling_orders()) == []


# --- a single-record DELETE and a bulk deletion of the same record -----------------------------


@pytest.mark.parametrize("kind", ["users", "products", "orders"])
def test_a_record_deleted_by_a_bulk_deletion_while_its_delete_request_runs_is_a_404(
    api, api_token, monkeypatch, kind
):
    """DELETE /users/5/ has read user 5 when another client's ``?action=delete`` deletes it.
    That client's answer lists 5 in ``deleted_ids``; the DELETE deleted nothing and says so
    (404, as it would a moment later), so that every deletion is reported once (it said 204)."""
    post(
        api,
        {
            "users": [_user(5)],
            "products": [{"id": 5, "name": "P", "price": "1.00"}],
            "orders": [{"id": 5, "user_id": 5, "product_id": 5, "quantity": 1}]
            if kind == "orders"
            else [],
        },
    )
    real_destroy = ServiceViewSet.perform_destroy
    others = []

    def destroy_after_another_deletion(view, instance):
        others.append(
            in_another_thread(
                lambda: post(token_client(api_token), {kind: [{"id": 5}]}, "?action=delete")
            ).json()[kind]
        )
        return real_destroy(view, instance)

    monkeypatch.setattr(ServiceViewSet, "perform_destroy", destroy_after_another_deletion)
    response = api.delete(f"/{kind}/5/")

    assert [other["deleted_ids"] for other in others] == [[5]]
    assert response.status_code == 404, response.content
    assert response.json()["detail"] == f"{kind.removesuffix('s').capitalize()} 5 does not exist."


def test_a_user_deleted_by_another_request_while_the_admin_deletes_it_is_a_message(
    api_token, monkeypatch
):
    """The admin deletes through the same service function: a user another request deleted
    since the admin read it is a warning saying so, not a 500. (Through the admin's pages this
    needs PostgreSQL: on SQLite the admin's users transaction keeps the other request out.)"""
    from django.contrib import admin
    from django.contrib.messages.storage.fallback import FallbackStorage
    from django.test import RequestFactory

    from users_svc.admin import UserAdmin

    user = User.objects.create(name="Gone", email="gone@example.com")
    in_another_thread(
        lambda: post(token_client(api_token), {"users": [{"id": user.id}]}, "?action=delete")
    )
    request = RequestFactory().post("/")
    request.session = {}
    request._messages = FallbackStorage(request)
    UserAdmin(User, admin.site).delete_model(request, user)

    assert [(m.level_tag, str(m)) for m in request._messages] == [
        ("warning", f"User {user.id} does not exist.")
    ]
    assert not User.objects.exists()


def test_a_patch_that_read_an_order_before_it_was_moved_and_its_user_deleted_is_refused(
    api, api_token, monkeypatch
):
    """PATCH /orders/1/ {"quantity": 5} has read order 1 (user 1) when another client moves it
    to user 2 in bulk and a third deletes user 1. The PATCH would write back user 1 with its
    quantity: a change of the stored user (2), checked like a new order's, and refused, never
    an order pointing at a user that is gone."""
    post(
        api,
        {
            "users": [_user(1), _user(2)],
            "products": [{"id": 1, "name": "P", "price": "1.00"}],
            "orders": [{"id": 1, "user_id": 1, "product_id": 1, "quantity": 1}],
        },
    )
    real_update = ServiceViewSet.perform_update
    others = []

    def update_after_a_move_and_a_deletion(view, serializer):
        client = token_client(api_token)
        others.append(
            in_another_thread(
                lambda: post(client, {"orders": [{"id": 1, "user_id": 2}]}, "?action=update")
            ).json()["orders"]["updated_ids"]
        )
        others.append(in_another_thread(lambda: client.delete("/users/1/")).status_code)
        return real_update(view, serializer)

    monkeypatch.setattr(ServiceViewSet, "perform_update", update_after_a_move_and_a_deletion)
    response = api.patch("/orders/1/", {"quantity": 5}, format="json")

    assert others == [[1], 204]
    assert response.status_code == 400
    assert response.json() == {"user_id": ["No user has this id."]}
    assert list(Order.objects.values_list("id", "user_id", "quantity")) == [(1, 2, 1)]
    assert list(dangling_orders()) == []


# --- held transactions (atomic, dry run) against a deletion -----------------------------------


def release_lock_waits() -> int:
    """PostgreSQL: cancel the statements of the test databases that wait for a lock (a way
    out of a deadlock the server cannot see, so that a failing test ends); their count."""
    if connections["default"].vendor != "postgresql":
        return 0
    names = [connections[alias].settings_dict["NAME"] for alias in ("users", "products", "orders")]
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_cancel_backend(pid)) FROM pg_stat_activity "
            "WHERE wait_event_type = 'Lock' AND datname = ANY(%s)",
            [names],
        )
        return cursor.fetchone()[0]


def finish_or_fail(threads, what: str, timeout: float = 10) -> None:
    """Join ``threads``; if they are still waiting after ``timeout``, free them and fail."""
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    if any(thread.is_alive() for thread in threads):
        cancelled = release_lock_waits()
        for thread in threads:
            thread.join(30)
        pytest.fail(f"{what}: still waiting after {timeout}s ({cancelled} lock waits cancelled)")


@pytest.mark.parametrize("mode", ["?atomic=true", "?dry_run=true"])
def test_a_batch_in_held_transactions_and_a_deletion_of_a_user_it_changes_both_finish(
    api, api_token, monkeypatch, mode
):
    """An atomic (or dry-run) batch renames user 1 (phase 2) and creates an order for user 2
    (phase 3); while it is between the two, another client deletes user 1. On PostgreSQL the
    batch held user 1's row lock and waited for the orders lock, the deletion held the orders
    lock and waited for user 1's row: each waiting on the other across two databases, which no
    server can see, forever. The batch takes the orders lock before it changes anything, so the
    deletion waits for it instead, and then deletes user 1 (no order points at it)."""
    post(
        api,
        {
            "users": [{"id": i, "name": f"U{i}", "email": f"u{i}@example.com"} for i in (1, 2)],
            "products": [{"id": 1, "name": "Seed", "price": "1.00"}],
        },
    )
    real_insert = ORDERS.writers["insert"]
    deletion = Request(lambda: token_client(api_token).delete("/users/1/"))

    def insert_while_user_1_is_deleted(rows, **kwargs):
        deletion.start()
        time.sleep(0.5)  # the deletion is under way, waiting for a lock
        return real_insert(rows, **kwargs)

    monkeypatch.setitem(ORDERS.writers, "insert", insert_while_user_1_is_deleted)
    batch = Request(
        lambda: post(
            token_client(api_token),
            {
                "users": [{"id": 1, "name": "Renamed", "action": "update"}],
                "orders": [{"id": 1, "user_id": 2, "product_id": 1, "quantity": 1}],
            },
            mode,
        )
    )
    batch.start()
    finish_or_fail([batch, deletion], "the batch and the deletion")

    assert batch.result().status_code == 200, batch.result().content
    assert deletion.result().status_code == 204, deletion.result().content
    assert not User.objects.filter(id=1).exists()
    expected_orders = [] if "dry_run" in mode else [(1, 2, 1, 1)]
    assert list(Order.objects.values_list("id", "user_id", "product_id", "quantity")) == (
        expected_orders
    )
    assert list(dangling_orders()) == []


@pytest.mark.parametrize("mode", ["?atomic=true", "?atomic=true&action=upsert"])
def test_an_atomic_batch_and_a_streaming_one_with_the_same_ids_both_finish(
    api_token, monkeypatch, mode
):
    """Two clients send user 500 and order 900 for them at once, one in the default streaming
    mode, the other atomic. The streaming batch has order 900 written, uncommitted, waiting for
    its users; the atomic one writes user 500 first. On PostgreSQL the streaming users writer
    then waited for the atomic batch's user 500, and the atomic batch for the streaming order
    900, forever (the streaming orders transaction waits for its users writer, which no server
    can see). The atomic batch waits for the order writers already running before it writes
    anything, so one of them goes first, the other finds the ids taken."""
    client = token_client(api_token)
    post(client, {"products": [{"id": 1, "name": "P", "price": "1.00"}]})
    users = [{"id": 500, "name": "Five", "email": "five@example.com"}]
    orders = [{"id": 900, "user_id": 500, "product_id": 1, "quantity": 1}]
    real_insert = user_services.users_bulk_insert
    atomic_wrote_users = threading.Event()

    def insert_users(rows, **kwargs):
        if threading.current_thread().name.startswith("ingest-users"):  # the streaming batch
            atomic_wrote_users.wait(1)  # its orders are written and wait for these users
            return real_insert(rows, **kwargs)
        ids = real_insert(rows, **kwargs)
        atomic_wrote_users.set()
        return ids

    monkeypatch.setattr(user_services, "users_bulk_insert", insert_users)
    streaming = Request(lambda: post(client, {"users": users, "orders": orders}))
    atomic = Request(lambda: post(client, {"users": users, "orders": orders}, mode))
    streaming.start()
    time.sleep(0.5)  # the streaming batch's order 900 is written, waiting for its users
    atomic.start()
    finish_or_fail([streaming, atomic], "the streaming and the atomic batch")

    # The streaming batch went first (its orders transaction was open when the other began).
    first = streaming.result().json()
    assert (first["users"]["inserted_ids"], first["orders"]["inserted_ids"]) == ([500], [900])
    second = atomic.result()
    if "upsert" in mode:
        assert second.status_code == 200
        body = second.json()
        assert (body["users"]["updated_ids"], body["orders"]["updated_ids"]) == ([500], [900])
    else:
        assert second.status_code == 422  # the ids are taken: nothing of it is written
        assert second.json()["orders"]["skipped"] == 1
    assert list(User.objects.values_list("id", flat=True)) == [500]
    assert list(Order.objects.values_list("id", "user_id")) == [(900, 500)]
    assert list(dangling_orders()) == []


def test_an_atomic_batch_deleting_an_order_and_its_user_is_refused_and_shows_nothing(api):
    """Atomic: delete order 1 and its user 1. Its users commit before its orders, so a reader
    between the commits would see order 1 pointing at a user that is gone (and for as long as
    an undo takes if the orders commit failed): the batch is refused instead (a 422), and the
    same batch without atomic, whose phases commit the orders first, goes in."""
    post(
        api,
        {
            "users": [{"id": 1, "name": "U1", "email": "u1@example.com"}],
            "products": [{"id": 1, "name": "Seed", "price": "1.00"}],
            "orders": [{"id": 1, "user_id": 1, "product_id": 1, "quantity": 1}],
        },
    )
    batch = {"orders": [{"id": 1}], "users": [{"id": 1}]}
    response = post(api, batch, "?atomic=true&action=delete")
    assert response.status_code == 422
    [refused] = skipped_records(response.json()["users"])
    assert "with atomic=true the deletion would commit before" in refused["reasons"]["id"][0]
    assert list(dangling_orders()) == []
    assert Order.objects.filter(id=1).exists()
    assert User.objects.filter(id=1).exists()
    plain = post(api, batch, "?action=delete").json()
    assert plain["users"]["deleted_ids"] == [1]
    assert plain["orders"]["deleted_ids"] == [1]


# --- rounds of clients at once through a real server --------------------------------------------

ROUNDS = 3
POOL_USERS = 60
ALL_PRODUCTS = 12
#: User 1 and product 1 are never deleted: setup orders point at them. The sentinel order's id
#: is above every explicit order id, so that ids the service assigns never collide with those.
SENTINEL_ORDER = 1_000_000
NO_USER = {"user_id": ["No user has this id."]}
NO_PRODUCT = {"product_id": ["No product has this id."]}


class Books:
    """What the clients were told, kept as they go: the orders each owns (each client writes
    only its own orders, one request after another, so the last accepted write is the row),
    the users and products deleted and inserted, and every missing user or product an order
    was refused for."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.orders: dict[int, tuple[int, int, int]] = {}
        self.single_orders: list[int] = []  # those created by POST /orders/
        self.new_round()

    def new_round(self) -> None:
        self.users_inserted: list[int] = []
        self.users_deleted: list[int] = []
        self.products_deleted: list[int] = []
        self.said_missing: list[tuple[str, int]] = []  # ("user" or "product", id)
        self.unexpected: list[str] = []

    def fail(self, what: str) -> None:
        with self.lock:
            self.unexpected.append(what)

    def orders_section(self, section: dict, records: list[dict], default: str) -> None:
        """Fold an answer's orders section: each record inserted, updated, deleted or refused
        for a missing user or product, and nothing else."""
        skipped = {record["index"]: record["reasons"] for record in skipped_records(section)}
        done = {
            outcome: set(section[f"{outcome}_ids"])
            for outcome in ("inserted", "updated", "deleted")
        }
        if sum(map(len, done.values())) + len(skipped) != len(records):
            self.fail(f"orders counts do not add up: {section}")
        with self.lock:
            for index, record in enumerate(records):
                action = record.get("action", default)
                order_id = record["id"]
                if index in skipped:
                    reasons = skipped[index]
                    stored = self.orders.get(order_id, (None, None, None))
                    user_id = record.get("user_id", stored[0])
                    product_id = record.get("product_id", stored[1])
                    if reasons not in (NO_USER, NO_PRODUCT, {**NO_USER, **NO_PRODUCT}):
                        self.unexpected.append(f"order {record} refused: {reasons}")
                    if "user_id" in reasons:
                        self.said_missing.append(("user", user_id))
                    if "product_id" in reasons:
                        self.said_missing.append(("product", product_id))
                elif action == "delete":
                    if order_id not in done["deleted"]:
                        self.unexpected.append(f"order {order_id} neither deleted nor refused")
                    self.orders.pop(order_id, None)
                elif action == "update":
                    if order_id not in done["updated"]:
                        self.unexpected.append(f"order {order_id} neither updated nor refused")
                    user_id, product_id, quantity = self.orders[order_id]
                    self.orders[order_id] = (
                        record.get("user_id", user_id),
                        record.get("product_id", product_id),
                        record.get("quantity", quantity),
                    )
                else:
                    if order_id not in done["inserted"] | done["updated"]:
                        self.unexpected.append(f"order {order_id} neither written nor refused")
                    self.orders[order_id] = (
                        record["user_id"],
                        record["product_id"],
                        record["quantity"],
                    )

    def deletions(self, section: dict, kind: str) -> None:
        """Fold the deleted ids of an answer's users or products section; every refusal is
        "not found" or "still referenced"."""
        with self.lock:
            (self.users_deleted if kind == "users" else self.products_deleted).extend(
                section["deleted_ids"]
            )
            for record in skipped_records(section):
                [message] = record["reasons"].get("id", ["?"])
                if not (message.startswith("No ") or "still referenced by" in message):
                    self.unexpected.append(f"{kind} deletion refused: {record}")


class Http:
    def __init__(self, base: str, token: str, books: Books) -> None:
        self.base, self.token, self.books = base, token, books

    def __call__(self, method: str, path: str, body=None, expect=(200,)):
        status, _, answer = live_request(method, self.base + path, body, token=self.token)
        if status not in expect:
            self.books.fail(f"{method} {path} {body}: {status} {answer}")
            return status, None
        return status, answer

    def ingest(self, body: dict, query: str = "", expect=(200,)) -> tuple[int, dict | None]:
        return self("POST", f"/ingest/{query}", body, expect)


def _order(order_id: int, user_id: int, product_id: int, rng: random.Random) -> dict:
    return {
        "id": order_id,
        "user_id": user_id,
        "product_id": product_id,
        "quantity": rng.randint(1, 9),
    }


def _user(user_id: int) -> dict:
    return {"id": user_id, "name": f"User {user_id}", "email": f"u{user_id}@example.com"}


def _own(books: Books, low: int, high: int) -> list[int]:
    with books.lock:
        return sorted(order_id for order_id in books.orders if low <= order_id < high)


def _range(client: int) -> tuple[int, int]:
    return 10_000 * client, 10_000 * (client + 1)


def _round_clients(http: Http, books: Books, round_number: int, seed: int) -> list:
    """The clients of one round, each a function that sends its requests in order (and picks
    its ids with a random generator of its own)."""
    rng = random.Random(seed)
    pool = sorted(set(User.objects.values_list("id", flat=True)) - {1})
    products = sorted(Product.objects.values_list("id", flat=True))
    deletable_products = [p for p in products if p != 1]
    base = 1000 * round_number

    # Orders that client 1 deletes together with their users (set up first).
    targets = rng.sample(pool, 4)
    doomed = [_order(_range(1)[0] + base + j, user, 1, rng) for j, user in enumerate(targets)]
    _, answer = http.ingest({"orders": doomed})
    assert answer["orders"]["inserted"] == len(doomed), answer
    books.orders_section(answer["orders"], doomed, "insert")
    streamed_users = [100_000 + base + j for j in range(5)]

    def bulk_delete_orders_and_their_users():
        rng = random.Random(seed * 100 + 1)
        body = {
            "orders": [{"id": order["id"]} for order in doomed],
            "users": [
                {"id": i} for i in dict.fromkeys(targets + rng.sample(pool, 5) + streamed_users[:3])
            ],
        }
        _, answer = http.ingest(body, "?action=delete")
        if answer:
            books.orders_section(answer["orders"], body["orders"], "delete")
            books.deletions(answer["users"], "users")

    def bulk_delete_users_and_products_then_delete_and_reference():
        rng = random.Random(seed * 100 + 2)
        body = {
            "users": [{"id": i} for i in rng.sample(pool, 6)],
            "products": [{"id": i} for i in rng.sample(deletable_products, 2)],
        }
        _, answer = http.ingest(body, "?action=delete")
        if answer:
            books.deletions(answer["users"], "users")
            books.deletions(answer["products"], "products")
        # "Delete user x and create an order for x": the order is kept, the deletion refused
        # (unless x was gone already: then the order is refused).
        victim = rng.choice(pool)
        order = _order(_range(2)[0] + base, victim, 1, rng)
        body = {"users": [{"id": victim, "action": "delete"}], "orders": [order]}
        _, answer = http.ingest(body)
        if answer:
            books.deletions(answer["users"], "users")
            books.orders_section(answer["orders"], [order], "insert")
            if answer["orders"]["inserted_ids"] and answer["users"]["deleted_ids"]:
                books.fail(f"user {victim} deleted though the batch's order points at it")

    def stream_users_and_orders():
        rng = random.Random(seed * 100 + 3)
        orders = [
            _order(
                _range(3)[0] + base + j,
                rng.choice(pool + streamed_users),
                rng.choice(products),
                rng,
            )
            for j in range(10)
        ]
        _, answer = http.ingest({"users": [_user(i) for i in streamed_users], "orders": orders})
        if answer:
            with books.lock:
                books.users_inserted.extend(answer["users"]["inserted_ids"])
            if answer["users"]["inserted_ids"] != streamed_users:
                books.fail(f"streamed users not all inserted: {answer['users']}")
            books.orders_section(answer["orders"], orders, "insert")

    def upsert_then_update_orders():
        rng = random.Random(seed * 100 + 4)
        low, high = _range(4)
        mine = _own(books, low, high)
        orders = [
            _order(order_id, rng.choice(pool), rng.choice(products), rng)
            for order_id in mine[:4] + [low + base + j for j in range(3)]
        ]
        _, answer = http.ingest({"orders": orders}, "?action=upsert")
        if answer:
            books.orders_section(answer["orders"], orders, "upsert")
        mine = _own(books, low, high)
        changes = [{"id": i, "user_id": rng.choice(pool)} for i in mine[:5]]
        changes += [{"id": i, "quantity": rng.randint(1, 9)} for i in mine[5:7]]
        _, answer = http.ingest({"orders": changes}, "?action=update")
        if answer:
            books.orders_section(answer["orders"], changes, "update")

    def atomic_users_and_orders():
        rng = random.Random(seed * 100 + 5)
        new_users = [200_000 + base + j for j in range(2)]
        orders = [
            _order(_range(5)[0] + base + j, rng.choice(pool + new_users), 1, rng) for j in range(3)
        ]
        status, answer = http.ingest(
            {"users": [_user(i) for i in new_users], "orders": orders}, "?atomic=true", (200, 422)
        )
        if status == 200:
            with books.lock:
                books.users_inserted.extend(answer["users"]["inserted_ids"])
            books.orders_section(answer["orders"], orders, "insert")
        elif answer:  # rejected: some order's user is gone; nothing of the batch is kept
            for record in skipped_records(answer["orders"]):
                if record["reasons"] != NO_USER:
                    books.fail(f"atomic batch refused for {record}")
                else:
                    with books.lock:
                        books.said_missing.append(("user", orders[record["index"]]["user_id"]))

    single_orders = books.single_orders

    def single_record_writes():
        rng = random.Random(seed * 100 + 6)
        for _ in range(2):
            values = {
                "user_id": rng.choice(pool),
                "product_id": rng.choice(products),
                "quantity": 2,
            }
            status, answer = http("POST", "/orders/", values, (201, 400))
            if status == 201:
                single_orders.append(answer["id"])
                with books.lock:
                    books.orders[answer["id"]] = (answer["user_id"], answer["product_id"], 2)
            elif answer:
                _said_missing(books, answer, values)
        for order_id in rng.sample(single_orders, min(2, len(single_orders))):
            change = {"user_id": rng.choice(pool)}
            status, answer = http("PATCH", f"/orders/{order_id}/", change, (200, 400))
            if status == 200:
                with books.lock:
                    _, product_id, quantity = books.orders[order_id]
                    books.orders[order_id] = (change["user_id"], product_id, quantity)
            elif answer:
                with books.lock:
                    user_id, product_id, _ = books.orders[order_id]
                _said_missing(
                    books, answer, {"user_id": change["user_id"], "product_id": product_id}
                )

    low, high = _range(8)
    moved = _own(books, low, high)
    with books.lock:
        their_users = sorted({books.orders[i][0] for i in moved})

    def single_deletions_of_users_orders_move_to_and_from():
        rng = random.Random(seed * 100 + 7)
        for user_id in rng.sample(their_users + pool, 4):
            status, _ = http("DELETE", f"/users/{user_id}/", None, (204, 404, 409))
            if status == 204:
                with books.lock:
                    books.users_deleted.append(user_id)

    def bulk_updates_changing_user_id():
        rng = random.Random(seed * 100 + 8)
        changes = [{"id": i, "user_id": rng.choice(their_users + pool)} for i in moved]
        _, answer = http.ingest({"orders": changes}, "?action=update")
        if answer:
            books.orders_section(answer["orders"], changes, "update")

    return [
        bulk_delete_orders_and_their_users,
        bulk_delete_users_and_products_then_delete_and_reference,
        stream_users_and_orders,
        upsert_then_update_orders,
        atomic_users_and_orders,
        single_record_writes,
        single_deletions_of_users_orders_move_to_and_from,
        bulk_updates_changing_user_id,
    ]


def _said_missing(books: Books, answer: dict, values: dict) -> None:
    """A 400 of the single-record endpoint: only a missing user or product may be the reason."""
    if answer not in (NO_USER, NO_PRODUCT, {**NO_USER, **NO_PRODUCT}):
        books.fail(f"order {values} refused: {answer}")
    with books.lock:
        for kind in ("user", "product"):
            if f"{kind}_id" in answer:
                books.said_missing.append((kind, values[f"{kind}_id"]))


def _watch(stop: threading.Event, seen: set) -> int:
    """Look at the three databases again and again until ``stop``; note every order that points
    at a missing user or product. An order counts only if it is the same before and after the
    look at the users and products: rows that change meanwhile are no proof (an order deleted
    and then its user)."""
    looks = 0
    while not stop.is_set() and looks < 1000:
        before = {
            row[0]: row[1:] for row in Order.objects.values_list("id", "user_id", "product_id")
        }
        users = set(User.objects.values_list("id", flat=True))
        products = set(Product.objects.values_list("id", flat=True))
        after = {
            row[0]: row[1:] for row in Order.objects.values_list("id", "user_id", "product_id")
        }
        seen.update(
            (order_id, refs)
            for order_id, refs in before.items()
            if after.get(order_id) == refs and (refs[0] not in users or refs[1] not in products)
        )
        looks += 1
    return looks


def _at_once(clients) -> tuple[set, int]:
    """Start every client at the same moment, each on a thread of its own, and watch the
    databases while they run; (what the watcher saw pointing nowhere, how often it looked)."""
    start = threading.Barrier(len(clients) + 1)
    stop, seen = threading.Event(), set()
    watcher = Request(lambda: _watch(stop, seen))
    requests = [Request(lambda client=client: (start.wait(10), client())) for client in clients]
    for request in requests:
        request.start()
    watcher.start()
    start.wait(10)
    finish_or_fail(requests, "the clients", timeout=60)
    stop.set()
    finish_or_fail([watcher], "the watcher")
    for request in requests:
        request.result()  # a client that raised fails the test here
    return seen, watcher.result()


def test_clients_at_once_leave_no_order_pointing_nowhere_and_get_answers_that_match_the_rows(
    live_server, api_token, settings
):
    settings.INGEST_CHUNK_SIZE = 4  # many short transactions: more ways to interleave
    books = Books()
    http = Http(live_server.url, api_token, books)
    rng = random.Random(12)
    setup_orders = [_order(SENTINEL_ORDER, 1, 1, rng)] + [
        _order(_range(8)[0] + j, rng.randint(2, POOL_USERS), 1, rng) for j in range(6)
    ]
    _, answer = http.ingest(
        {
            "users": [_user(i) for i in range(1, POOL_USERS + 1)],
            "products": [
                {"id": i, "name": f"Product {i}", "price": "3.50"}
                for i in range(1, ALL_PRODUCTS + 1)
            ],
            "orders": setup_orders,
        }
    )
    books.orders_section(answer["orders"], setup_orders, "insert")
    assert answer["orders"]["inserted"] == len(setup_orders)

    for round_number in range(ROUNDS):
        books.new_round()
        users_before = set(User.objects.values_list("id", flat=True))
        products_before = set(Product.objects.values_list("id", flat=True))
        seen, looks = _at_once(_round_clients(http, books, round_number, seed=round_number))

        assert books.unexpected == [], books.unexpected
        assert looks > 0
        assert seen == set(), f"orders seen pointing nowhere: {sorted(seen)}"
        assert list(dangling_orders()) == []
        deleted = books.users_deleted
        assert len(deleted) == len(set(deleted)), "a user reported deleted twice"
        inserted = set(books.users_inserted)
        assert not inserted & users_before
        assert set(deleted) <= users_before | inserted
        assert set(User.objects.values_list("id", flat=True)) == (users_before | inserted) - set(
            deleted
        )
        assert len(books.products_deleted) == len(set(books.products_deleted))
        assert set(Product.objects.values_list("id", flat=True)) == products_before - set(
            books.products_deleted
        )
        stored = {
            row[0]: row[1:]
            for row in Order.objects.values_list("id", "user_id", "product_id", "quantity")
        }
        assert stored == books.orders
        for kind, missing_id in books.said_missing:
            if kind == "user":
                assert missing_id in deleted or missing_id not in users_before | inserted
            else:
                assert missing_id in books.products_deleted or missing_id not in products_before
