"""The shared app: it holds the project-wide management commands (init_db)."""

from django.apps import AppConfig


class CommonConfig(AppConfig):
    name = "common"
    verbose_name = "Common"
