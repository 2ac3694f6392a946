"""What the pipeline knows of each kind of record: its rule, its fields, its database.

A :class:`Resource` is where every stage finds what differs between users, products and orders:
the record type the decoder produces (``ingest.records``), the fields the service's rule takes,
the rule itself (``users_svc.rules.check_user`` …, the same functions the single-record endpoints
use), the database the rows go to and the names used in the response and its messages. The
stages look these up rather than asking which type they hold.

Each resource also names its service's writer for each action (``writers``: insert, upsert,
update, delete; see ``ingest.actions`` and ``ingest.phases``), all called alike:
``writer(rows, ids_above=..., ledger_key=..., before=...)`` returns the chunk's
``common.data.changes.Outcome``.

A ``Row`` is a checked record ready to write, ``(id or None, *values)`` in the rule's order; a
record's ``Reasons`` are its errors as the response shows them, field name to messages.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from common.data.changes import Outcome
from ingest.records import OrderRecord, ProductRecord, UserRecord
from orders_svc import rules as order_rules
from orders_svc import services as order_services
from orders_svc.models import ORDERS_DB
from products_svc import rules as product_rules
from products_svc import services as product_services
from products_svc.models import PRODUCTS_DB
from users_svc import rules as user_rules
from users_svc import services as user_services
from users_svc.models import USERS_DB

Reasons = dict[str, list[str]]
Row = tuple[Any, ...]


@dataclass(frozen=True)
class Resource:
    """How one kind of record is checked and written."""

    name: str  # "users": the key in the request and the response
    singular: str  # "user": used in messages
    alias: str  # the service's database
    record_type: type
    fields: tuple[str, ...]  # the rule's arguments, in order
    rule: Callable[..., tuple[Row | None, Reasons | None]]
    article: str = "a"  # "a user", "an order"
    writers: Mapping[str, Callable[..., Outcome]] = field(default_factory=dict)


def _inserts(write: Callable[..., list[int | None]]) -> Callable[..., Outcome]:
    """A plain bulk insert (ids only) as an action writer: a None id is a duplicate."""

    def insert(rows, *, ids_above: int = 0, ledger_key: str | None = None, before=None):
        return write(rows, ids_above=ids_above, ledger_key=ledger_key), {}, []

    return insert


def _changes(write: Callable[..., Outcome]) -> Callable[..., Outcome]:
    """A writer of changes to stored rows (no id to assign) as an action writer."""

    def change(rows, *, ids_above: int = 0, ledger_key: str | None = None, before=None):
        return write(rows, ledger_key=ledger_key, before=before)

    return change


def _deletions(write: Callable[..., Outcome]) -> Callable[..., Outcome]:
    """A writer of deletions by id as an action writer (its rows are ``(id,)``)."""

    def delete(rows, *, ids_above: int = 0, ledger_key: str | None = None, before=None):
        return write([row[0] for row in rows], ledger_key=ledger_key, before=before)

    return delete


def _writers(insert, upsert, update, delete) -> dict[str, Callable[..., Outcome]]:
    return {
        "insert": insert,
        "upsert": _changes(upsert),
        "update": _changes(update),
        "delete": _deletions(delete),
    }


USERS = Resource(
    "users",
    "user",
    USERS_DB,
    UserRecord,
    ("name", "email"),
    user_rules.check_user,
    writers=_writers(
        _inserts(user_services.users_bulk_insert),
        user_services.users_bulk_upsert,
        user_services.users_bulk_update,
        user_services.users_bulk_delete,
    ),
)
PRODUCTS = Resource(
    "products",
    "product",
    PRODUCTS_DB,
    ProductRecord,
    ("name", "price"),
    product_rules.check_product,
    writers=_writers(
        _inserts(product_services.products_bulk_insert),
        product_services.products_bulk_upsert,
        product_services.products_bulk_update,
        product_services.products_bulk_delete,
    ),
)
ORDERS = Resource(
    "orders",
    "order",
    ORDERS_DB,
    OrderRecord,
    ("user_id", "product_id", "quantity"),
    order_rules.check_order,
    article="an",
    writers=_writers(
        order_services.orders_bulk_insert_checked,
        order_services.orders_bulk_upsert,
        order_services.orders_bulk_update,
        order_services.orders_bulk_delete,
    ),
)
