"""Set-based lookups shared by the services' selectors."""

from collections.abc import Iterable

from django.db import models

#: Ids per ``IN (...)`` query: below every supported database's bind-parameter limit.
IDS_PER_QUERY = 10_000


def existing_ids(model: type[models.Model], ids: Iterable[int]) -> set[int]:
    """Which of ``ids`` are primary keys of stored ``model`` rows: one query per 10,000 ids."""
    wanted = list(set(ids))
    found: set[int] = set()
    for start in range(0, len(wanted), IDS_PER_QUERY):
        batch = wanted[start : start + IDS_PER_QUERY]
        found.update(model._default_manager.filter(pk__in=batch).values_list("pk", flat=True))
    return found
