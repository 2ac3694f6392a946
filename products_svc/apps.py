"""App config of the products service."""

from django.apps import AppConfig


class ProductsConfig(AppConfig):
    name = "products_svc"
    verbose_name = "Products service"
