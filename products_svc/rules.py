"""The rules a product must satisfy, written once for every way a product gets in.

A product needs a name that is not blank and a price: a finite decimal greater than 0 with at
most 2 decimal places (and at most 10 digits before the point). Money is never a float: the
price is a ``Decimal`` from here on. The REST endpoints, the bulk ingest and the seed commands
all call :func:`check_product`.
"""

from decimal import Decimal
from typing import Any

from common.data.validation import (
    Invalid,
    clean_decimal,
    clean_text,
    field_errors,
    plain_money,
    plain_text,
)
from products_svc.models import Product

NAME_MAX_LENGTH: int = Product._meta.get_field("name").max_length
PRICE_MAX_DIGITS: int = Product._meta.get_field("price").max_digits
PRICE_DECIMAL_PLACES: int = Product._meta.get_field("price").decimal_places

ProductValues = tuple[str, Decimal]


def check_product(
    name: Any, price: Any
) -> tuple[ProductValues | None, dict[str, list[str]] | None]:
    """``((name, price), None)`` cleaned, or ``(None, {field: [message]})``."""
    fast_name = plain_text(name, NAME_MAX_LENGTH)
    fast_price = plain_money(price, PRICE_MAX_DIGITS - PRICE_DECIMAL_PLACES)
    if fast_name is not None and fast_price is not None and PRICE_DECIMAL_PLACES == 2:
        return (fast_name, fast_price), None
    clean_name = clean_text(name, NAME_MAX_LENGTH)
    clean_price = clean_decimal(price, PRICE_MAX_DIGITS, PRICE_DECIMAL_PLACES, 0)
    if type(clean_name) is Invalid or type(clean_price) is Invalid:
        return None, field_errors(name=clean_name, price=clean_price)
    return (clean_name, clean_price), None
