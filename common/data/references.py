"""Cross-service reference guards: refuse to delete a record that another service points at.

There are no foreign keys across databases. A service that stores ids of another service's
records (orders store user and product ids) registers a guard for that resource when its app
loads, so the owning service never has to import it. Deleting user 7 then runs:

    with guard_deletion("users", {7}):             # each guard locks its own table's writers,
        with transaction.atomic(using="users"):    # counts references and refuses if any;
            ...delete user 7...                    # the delete commits while the guards still
                                                   # hold their locks, so no new order for
                                                   # user 7 can slip in between.

Locks are always taken in one order, referencing services before referenced ones (orders, then
products, then users), so two transactions never wait on each other in a circle.
"""

from collections import defaultdict
from collections.abc import Callable, Collection, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager

from common.exceptions import RecordReferenced

#: A guard: given ids of the resource, hold a lock and yield, per kind of reference, how many
#: point at each of the ids that any points at: ``{"orders": {7: 2}}``.
Guard = Callable[[Collection[int]], AbstractContextManager[dict[str, dict[int, int]]]]

_guards: dict[str, list[Guard]] = defaultdict(list)


def register_guard(resource: str, guard: Guard) -> None:
    """Make ``guard`` part of every deletion of ``resource`` records (call from AppConfig.ready)."""
    if guard not in _guards[resource]:
        _guards[resource].append(guard)


@contextmanager
def guard_deletion(resource: str, ids: Collection[int]) -> Iterator[None]:
    """Hold every guard of ``resource`` for the body; raise RecordReferenced if any counts > 0."""
    with hold_references(resource, ids) as referenced:
        if referenced:
            totals: dict[str, int] = {}
            for counts in referenced.values():
                for kind, count in counts.items():
                    totals[kind] = totals.get(kind, 0) + count
            raise RecordReferenced(resource.rstrip("s"), min(referenced), totals)
        yield


@contextmanager
def hold_references(resource: str, ids: Collection[int]) -> Iterator[dict[int, dict[str, int]]]:
    """Hold every guard of ``resource`` for the body and yield what points at each of ``ids``:
    ``{id: {kind: count}}`` for the referenced ones only. For a deletion of many records that
    deletes those nothing points at and refuses the rest (bulk ingest); the body deletes while
    the guards keep new references out."""
    with ExitStack() as stack:
        referenced: dict[int, dict[str, int]] = defaultdict(dict)
        for guard in _guards[resource]:
            for kind, counts in stack.enter_context(guard(ids)).items():
                for record_id, count in counts.items():
                    if count:
                        referenced[record_id][kind] = referenced[record_id].get(kind, 0) + count
        yield dict(referenced)
