"""Data files for the client's tests, and what the databases must hold after pushing them."""

from pathlib import Path

import orjson
from django.db import connections


def write_users(path: Path, count: int) -> Path:
    """An NDJSON file of ``count`` users with ids 1.. (all valid)."""
    path.write_bytes(
        b"".join(
            orjson.dumps({"type": "user", "id": i, "name": "A", "email": "a@b.c"}) + b"\n"
            for i in range(1, count + 1)
        )
    )
    return path


def write_mixed(path: Path, *, users: int, with_ids: bool = True, bad_every: int = 1000) -> dict:
    # Without ids, the file has no orders: what they point at would depend on the ids given.
    """An NDJSON file whose orders come first (each pointing at a user and product further
    down), then two lines that are not records, then users and products; every
    ``bad_every``-th user has a bad email (skipped, and its order with it). Returns the expected
    rows per table: ``users`` as (id or None, name, email), ``products``, ``orders``."""
    expected = {"users": [], "products": [], "orders": []}
    with path.open("wb") as file:
        for i in range(1, users + 1 if with_ids else 1):
            order = {"type": "order", "id": i, "user_id": i, "product_id": i, "quantity": 1 + i % 5}
            file.write(orjson.dumps(order) + b"\n")
            if i % bad_every:
                expected["orders"].append((i, i, i, 1 + i % 5))
        file.write(b"this is not json\n")
        file.write(b'{"type": "customer", "id": 5}\n')
        for i in range(1, users + 1):
            email = f"u{i}@example.com" if i % bad_every else "no-at-sign"
            user = {"type": "user", "name": f"U{i}", "email": email}
            if with_ids:
                user["id"] = i
            file.write(orjson.dumps(user) + b"\n")
            if i % bad_every:
                expected["users"].append((i if with_ids else None, f"U{i}", email))
        for i in range(1, users + 1):
            product = {"type": "product", "id": i, "name": f"P{i}", "price": f"{i % 90 + 1}.50"}
            file.write(orjson.dumps(product) + b"\n")
            expected["products"].append((i, f"P{i}", f"{i % 90 + 1}.50"))
    return expected


def stored(alias: str, columns: str) -> list[tuple]:
    with connections[alias].cursor() as cursor:
        cursor.execute(f"SELECT {columns} FROM {alias} ORDER BY id")
        return cursor.fetchall()


def assert_holds(expected: dict) -> None:
    """The three tables hold exactly the expected rows (users without ids: by name and email,
    each once)."""
    users = stored("users", "id, name, email")
    if expected["users"] and expected["users"][0][0] is None:
        assert sorted(u[1:] for u in users) == sorted(u[1:] for u in expected["users"])
    else:
        assert users == expected["users"]
    products = stored("products", "id, name, price")
    assert [(p[0], p[1], f"{float(p[2]):.2f}") for p in products] == expected["products"]
    assert stored("orders", "id, user_id, product_id, quantity") == expected["orders"]


def export_killed(client, kind: str, path: Path) -> None:
    """An export of ``kind`` into ``path`` whose client dies after its first chunk of rows."""

    def die(_rows):
        raise KeyboardInterrupt  # the client killed between two writes

    try:
        client.export(kind, path, on_rows=die)
    except KeyboardInterrupt:
        return
    raise AssertionError("the export was not interrupted")
