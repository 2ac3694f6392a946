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

#: A guard: given ids of the resource, hold a lock and yield {kind of reference: count}.
Guard = Callable[[Collection[int]], AbstractContextManager[dict[str, int]]]

_guards: dict[str, list[Guard]] = defaultdict(list)


def register_guard(resource: str, guard: Guard) -> None:
    """Make ``guard`` part of every deletion of ``resource`` records (call from AppConfig.ready)."""
    if guard not in _guards[resource]:
        _guards[resource].append(guard)


@contextmanager
def guard_deletion(resource: str, ids: Collection[int]) -> Iterator[None]:
    """Hold every guard of ``resource`` for the body; raise RecordReferenced if any counts > 0."""
    with ExitStack() as stack:
        references: dict[str, int] = {}
        for guard in _guards[resource]:
            for kind, count in stack.enter_context(guard(ids)).items():
                references[kind] = references.get(kind, 0) + count
        referenced = {kind: count for kind, count in references.items() if count}
        if referenced:
            raise RecordReferenced(resource.rstrip("s"), min(ids), referenced)
        yield
