"""Read access to users: the users service's public query API.

Other services (orders) ask here whether users exist, with sets of ids and one query per call
, never one per record; they never import the users model.
"""

from collections.abc import Iterable

from django.db.models import Count, QuerySet, Value
from django.db.models.functions import Lower, StrIndex, Substr

from common.data.queries import existing_ids, field_by_id
from users_svc.models import User


def user_list() -> QuerySet[User]:
    """All users, in id order (the API filters and paginates it)."""
    return User.objects.all()


def existing_user_ids(ids: Iterable[int]) -> set[int]:
    """Which of ``ids`` belong to a stored user."""
    return existing_ids(User, ids)


def user_names(ids: Iterable[int]) -> dict[int, str]:
    """The name of each of ``ids`` that is a stored user: one query (the orders admin shows
    them beside each order)."""
    return field_by_id(User, ids, "name")


def top_email_domains(limit: int = 10) -> list[tuple[str, int]]:
    """The most common email domains, with how many users have each (one query)."""
    domain = Lower(Substr("email", StrIndex("email", Value("@")) + 1))
    rows = (
        User.objects.annotate(domain=domain)
        .values("domain")
        .annotate(users=Count("id"))
        .order_by("-users", "domain")[:limit]
    )
    return [(row["domain"], row["users"]) for row in rows]
