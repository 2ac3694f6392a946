"""App config of the users service."""

from django.apps import AppConfig


class UsersConfig(AppConfig):
    name = "users_svc"
    verbose_name = "Users service"
