"""Read access to users: the users service's public query API.

Other services (orders) ask here whether users exist, with sets of ids and one query per call
, never one per record; they never import the users model.
"""

from collections.abc import Iterable

from django.db.models import QuerySet

from common.queries import existing_ids
from users_svc.models import User


def user_list() -> QuerySet[User]:
    """All users, in id order (the API filters and paginates it)."""
    return User.objects.all()


def existing_user_ids(ids: Iterable[int]) -> set[int]:
    """Which of ``ids`` belong to a stored user."""
    return existing_ids(User, ids)
