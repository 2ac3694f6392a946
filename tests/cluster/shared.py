"""What the cluster's tests share: their data, the rows in each server, and the products table
locked from outside (so that an ingest or a job waits on products, its users committed, when a
test breaks something, however fast the machine is)."""

from contextlib import contextmanager, suppress

import orjson
import psycopg

SEEDED = {"users": 9, "products": 9, "orders": 7}


def batch(first_id: int, count: int) -> bytes:
    """``count`` users, products and orders (a third each), ids from ``first_id``, each order
    pointing at a user and a product of the batch."""
    third = count // 3
    lines = []
    for i in range(first_id, first_id + third):
        lines.append({"type": "user", "id": i, "name": f"U{i}", "email": f"u{i}@example.com"})
        lines.append({"type": "product", "id": i, "name": f"P{i}", "price": "9.99"})
        lines.append({"type": "order", "id": i, "user_id": i, "product_id": i, "quantity": 1})
    return b"".join(orjson.dumps(line) + b"\n" for line in lines)


def counts(cluster) -> dict[str, int]:
    """The rows of each service's table, counted on its own server."""
    return {name: cluster.servers[name].count(f"store_{name}", name) for name in SEEDED}


def outline(body: dict) -> dict:
    """Each type's counts in an ingest's answer, and its skipped groups' reasons with how many
    records each."""
    return {
        kind: {
            **{name: body[kind][name] for name in ("inserted", "skipped")},
            "groups": [
                (len(group["indexes"]), group["reasons"]) for group in body[kind]["skipped_groups"]
            ],
        }
        for kind in ("users", "products", "orders")
    }


@contextmanager
def products_locked(cluster):
    server = cluster.servers["products"]
    holder = psycopg.connect(server.url("store_products"))
    try:
        holder.execute("LOCK TABLE products IN EXCLUSIVE MODE")
        yield server
    finally:
        with suppress(psycopg.OperationalError):  # the server may have been stopped meanwhile
            holder.rollback()
        holder.close()


def waiting_port(server) -> int | None:
    """The client port of a connection waiting for a lock on the products server."""
    with psycopg.connect(server.url("store_products"), autocommit=True) as connection:
        row = connection.execute(
            "SELECT client_port FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        ).fetchone()
    return row[0] if row else None
