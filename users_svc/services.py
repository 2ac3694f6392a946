"""Writes to the users database. Callers pass values already checked by ``rules.check_user``."""

from django.db import transaction

from common.exceptions import RecordNotFound
from common.references import guard_deletion
from users_svc.models import USERS_DB, User


def user_create(*, name: str, email: str) -> User:
    """Store a new user; the database assigns its id."""
    with transaction.atomic(using=USERS_DB):
        return User.objects.create(name=name, email=email)


def user_update(user: User, *, name: str, email: str) -> User:
    """Replace a user's name and email."""
    with transaction.atomic(using=USERS_DB):
        if not User.objects.filter(id=user.id).update(name=name, email=email):
            raise RecordNotFound(f"User {user.id} does not exist.")
    user.name, user.email = name, email
    return user


def user_delete(user: User) -> None:
    """Delete a user no order points at; raise ``RecordReferenced`` (409) otherwise."""
    with guard_deletion("users", [user.id]), transaction.atomic(using=USERS_DB):
        User.objects.filter(id=user.id).delete()
