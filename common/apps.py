"""The shared app: it holds the project-wide management commands (init_db, migrate) and the
system checks of common.ops.checks."""

from django.apps import AppConfig


class CommonConfig(AppConfig):
    name = "common"
    verbose_name = "Common"

    def ready(self) -> None:
        from common.ops import checks  # noqa: F401 (registers the checks)
        from common.ops.observability import install_request_id_on_records

        install_request_id_on_records()
