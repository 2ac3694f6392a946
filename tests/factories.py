"""Rows written straight into each service's database, for tests that need existing data."""

from decimal import Decimal

from orders_svc.models import Order
from products_svc.models import Product
from users_svc.models import User


def make_user(name: str = "Alice", email: str = "alice@example.com", **kw) -> User:
    return User.objects.create(name=name, email=email, **kw)


def make_product(name: str = "Laptop", price: str | Decimal = "1000.00", **kw) -> Product:
    return Product.objects.create(name=name, price=Decimal(price), **kw)


def make_order(user_id: int, product_id: int, quantity: int = 1, **kw) -> Order:
    return Order.objects.create(user_id=user_id, product_id=product_id, quantity=quantity, **kw)
