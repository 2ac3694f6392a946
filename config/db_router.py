"""Database router: each service app lives on its own database, and nothing else lives there.

This is the database-per-service rule of a distributed system, kept on one machine: the users
service reads, writes and migrates only on the ``users`` alias, the products service only on
``products``, the orders service only on ``orders``; Django's own apps (auth, admin, sessions,
contenttypes) and the ingest bookkeeping stay on ``default``. A relation between two objects on
different databases is refused: there are no joins or foreign keys across services, only ids
that a service checks through another service's public selectors.
"""

from typing import Any

from django.db import models

#: app label -> database alias. The single source of truth for where each service lives.
SERVICE_DATABASES: dict[str, str] = {
    "users_svc": "users",
    "products_svc": "products",
    "orders_svc": "orders",
}
DEFAULT_DATABASE = "default"


def database_for_app(app_label: str) -> str:
    """The alias an app's models are read from, written to and migrated on."""
    return SERVICE_DATABASES.get(app_label, DEFAULT_DATABASE)


class ServiceRouter:
    """Route by app label (see the module docstring)."""

    def db_for_read(self, model: type[models.Model], **hints: Any) -> str:
        return database_for_app(model._meta.app_label)

    def db_for_write(self, model: type[models.Model], **hints: Any) -> str:
        return database_for_app(model._meta.app_label)

    def allow_relation(self, obj1: models.Model, obj2: models.Model, **hints: Any) -> bool:
        return database_for_app(obj1._meta.app_label) == database_for_app(obj2._meta.app_label)

    def allow_migrate(
        self, db: str, app_label: str, model_name: str | None = None, **hints: Any
    ) -> bool:
        return db == database_for_app(app_label)
