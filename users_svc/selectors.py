"""Read access to users: the users service's public query API.

Other services (orders) ask here whether users exist, with sets of ids and one query per call
, never one per record; they never import the users model.
"""

from collections.abc import Iterable, Iterator

from django.db.models import Count, QuerySet, Value
from django.db.models.functions import Lower, StrIndex, Substr

from common.data import bulk
from common.data.ids import ids_left
from common.data.queries import existing_ids, field_by_id
from common.data.streams import keyset_chunks
from users_svc.models import User, UserWriteLedger


def user_list() -> QuerySet[User]:
    """All users, in id order (the API filters and paginates it)."""
    return User.objects.all()


#: The fields of a user in an export, the id first: what ``POST /ingest/`` takes back.
USER_EXPORT_FIELDS = ("id", "name", "email")


def user_export_rows(
    *, users: QuerySet[User], chunk_size: int
) -> Iterator[list[tuple[int, str, str]]]:
    """``users`` (``user_list()``, filtered) as ``USER_EXPORT_FIELDS`` tuples, in id order,
    ``chunk_size`` at a time: one short query per chunk (``common.data.streams``)."""
    return keyset_chunks(users, fields=USER_EXPORT_FIELDS, chunk_size=chunk_size)


def existing_user_ids(ids: Iterable[int]) -> set[int]:
    """Which of ``ids`` belong to a stored user that an order may point at.

    Rows an atomic ingest wrote count only once the whole batch has committed: until then (or
    until an interrupted batch is undone, see ``ingest.atomic``) they are left out, so that no
    order comes to depend on a row that is about to be deleted again.
    """
    found = existing_ids(User, ids)
    if found:
        found -= bulk.ids_of_unfinished_writes(UserWriteLedger)
    return found


def user_ids_left(*, above: int = 0) -> int:
    """How many new users without an id of their own can still get one (ids are given above
    every user id used before, and above ``above``: the largest explicit id of a batch)."""
    return ids_left(User, above=above)


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
