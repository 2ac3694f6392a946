"""App config of the orders service; registers the guards that keep referenced records."""

from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders_svc"
    verbose_name = "Orders service"

    def ready(self) -> None:
        from common.data.references import register_guard
        from orders_svc import services

        register_guard("users", services.hold_user_references)
        register_guard("products", services.hold_product_references)
