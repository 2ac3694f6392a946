"""The rules an order must satisfy, written once for every way an order gets in.

An order needs a quantity that is an integer greater than 0, and a user and a product that
exist. :func:`check_order` checks the fields alone; :func:`check_references` checks the ids
against sets of known ids, which the caller gets from the users and products services' selectors
(one query per set, never one per order). The REST endpoints, the bulk ingest and the seed
commands all use these two functions.
"""

from collections.abc import Container
from typing import Any

from common.data.validation import MAX_BIGINT, MAX_INT, Invalid, clean_int, field_errors

OrderValues = tuple[int, int, int]


def check_order(
    user_id: Any, product_id: Any, quantity: Any
) -> tuple[OrderValues | None, dict[str, list[str]] | None]:
    """``((user_id, product_id, quantity), None)`` cleaned, or ``(None, {field: [message]})``."""
    if (
        type(user_id) is int
        and type(product_id) is int
        and type(quantity) is int
        and 0 < user_id <= MAX_BIGINT
        and 0 < product_id <= MAX_BIGINT
        and 0 < quantity <= MAX_INT
    ):  # the fast path: plain JSON integers in range, as clean_int would return them
        return (user_id, product_id, quantity), None
    clean_user_id = clean_int(user_id, 0, MAX_BIGINT)
    clean_product_id = clean_int(product_id, 0, MAX_BIGINT)
    clean_quantity = clean_int(quantity, 0, MAX_INT)
    if (
        type(clean_user_id) is Invalid
        or type(clean_product_id) is Invalid
        or type(clean_quantity) is Invalid
    ):
        return None, field_errors(
            user_id=clean_user_id, product_id=clean_product_id, quantity=clean_quantity
        )
    return (clean_user_id, clean_product_id, clean_quantity), None


def check_references(
    user_id: int, product_id: int, users: Container[int], products: Container[int]
) -> dict[str, list[str]] | None:
    """``None`` if both ids are among the known ones, else a message per missing id.

    The messages do not repeat the id: the client sent it, and a batch of orders pointing at
    300,000 different missing users then shares one reason (a bulk answer groups records by
    their reasons and must stay within a small multiple of the body: ``ingest.results``)."""
    if user_id in users and product_id in products:
        return None
    errors = {}
    if user_id not in users:
        errors["user_id"] = [NO_SUCH_USER]
    if product_id not in products:
        errors["product_id"] = [NO_SUCH_PRODUCT]
    return errors


NO_SUCH_USER = "No user has this id."
NO_SUCH_PRODUCT = "No product has this id."
