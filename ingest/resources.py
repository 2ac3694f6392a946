"""What the pipeline knows of each kind of record: its rule, its fields, its database.

A :class:`Resource` is where every stage finds what differs between users, products and orders:
the record type the decoder produces (``ingest.records``), the fields the service's rule takes,
the rule itself (``users_svc.rules.check_user`` …, the same functions the single-record endpoints
use), the database the rows go to and the names used in the response and its messages. The
stages look these up rather than asking which type they hold.

A ``Row`` is a checked record ready to write, ``(id or None, *values)`` in the rule's order; a
record's ``Reasons`` are its errors as the response shows them, field name to messages.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ingest.records import OrderRecord, ProductRecord, UserRecord
from orders_svc import rules as order_rules
from orders_svc.models import ORDERS_DB
from products_svc import rules as product_rules
from products_svc.models import PRODUCTS_DB
from users_svc import rules as user_rules
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


USERS = Resource("users", "user", USERS_DB, UserRecord, ("name", "email"), user_rules.check_user)
PRODUCTS = Resource(
    "products",
    "product",
    PRODUCTS_DB,
    ProductRecord,
    ("name", "price"),
    product_rules.check_product,
)
ORDERS = Resource(
    "orders",
    "order",
    ORDERS_DB,
    OrderRecord,
    ("user_id", "product_id", "quantity"),
    order_rules.check_order,
    article="an",
)
