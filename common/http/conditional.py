"""Conditional requests: ETags, so that a client re-reads cheaply and never overwrites a change
it has not seen.

Every single-record response (a GET, the 201 of a create, the 200 of a PUT or PATCH) carries
``ETag: "<hash>"``, a hash of the record exactly as the response shows it: any change of a
field changes it (a value changed and then changed back gives the same ETag again, which is
harmless: the record is then the one the client read).

* ``GET`` with ``If-None-Match: <etag>``: a **304** without a body when the record is
  unchanged (a cache or a sync job revalidates for the price of the lookup).
* ``PUT``, ``PATCH``, ``DELETE`` (and ``GET``) with ``If-Match: <etag>``: the request goes
  ahead only if the stored record still has that ETag; otherwise a **412** with the current
  ETag, and nothing is written. ``If-None-Match`` on a write is the opposite: a 412 when the
  record *is* a version named (``*``: any record). On a create (``POST``) either is a 400:
  there is no version to compare, and a precondition is never silently ignored. For writes
  the comparison runs in the service's transaction, under the lock the write holds
  (``common.data.preconditions``): of two clients that read the same version and both send a
  change with its ETag, one writes and the other gets the 412 instead of silently
  overwriting it (no lost update).

``If-Match`` compares strongly (our ETags are strong; a weak ``W/"..."`` never matches),
``If-None-Match`` weakly, as RFC 9110 says; ``*`` matches any stored record. A header that is
not a list of quoted entity tags is a 400, rather than a precondition quietly ignored.
"""

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

from django.utils.http import parse_etags
from rest_framework.exceptions import ValidationError

from common.data.preconditions import Precondition
from common.exceptions import PreconditionFailed
from common.http.json import dumps

IF_MATCH, IF_NONE_MATCH = "If-Match", "If-None-Match"


def etag_of(representation: Mapping[str, Any]) -> str:
    """The strong ETag of a record as a response shows it."""
    return '"' + hashlib.sha256(dumps(dict(sorted(representation.items())))).hexdigest()[:32] + '"'


def _tags(request, header: str) -> list[str] | None:
    raw = request.headers.get(header)
    if raw is None:
        return None
    tags = parse_etags(raw)
    if not tags or len(raw) > 2000:
        message = 'Not a list of entity tags: send an ETag back as it came, quotes and all ("...").'
        raise ValidationError({header: [message]})
    return tags


def not_modified(request, etag: str) -> bool:
    """Does ``If-None-Match`` name ``etag`` (weakly compared), or ``*``?"""
    tags = _tags(request, IF_NONE_MATCH)
    if tags is None:
        return False
    return "*" in tags or etag in {tag.removeprefix("W/") for tag in tags}


def if_match(request, noun: str, etag_of_record: Callable[[Any], str]) -> Precondition | None:
    """The precondition ``If-Match`` asks for, for a service to check under its lock; None when
    the request has no ``If-Match``. It raises :class:`PreconditionFailed` (412) for a stored
    record whose ETag is not one of those sent."""
    tags = _tags(request, IF_MATCH)
    if tags is None:
        return None

    def precondition(stored: Any) -> None:
        current = etag_of_record(stored)
        if "*" in tags or current in tags:
            return
        if all(tag.startswith("W/") for tag in tags):
            why = (
                f"If-Match compares ETags strongly, and a weak one ({tags[0][:80]}) never "
                f"matches: send the ETag as the response gave it ({current} now)"
            )
        else:
            why = (
                f"The {noun} changed since you read it (its ETag is now {current}, not "
                f"{', '.join(tags)[:200]})"
            )
        raise PreconditionFailed(
            f"{why}. Nothing was written: read it again and send the change with the new ETag "
            "in If-Match.",
            etag=current,
        )

    return precondition


def if_none_match(request, noun: str, etag_of_record: Callable[[Any], str]) -> Precondition | None:
    """On a write, ``If-None-Match`` asks for it only if the record is *not* a version named
    (``*``: not any version, i.e. only where there is no record): a 412 otherwise."""
    tags = _tags(request, IF_NONE_MATCH)
    if tags is None:
        return None

    def precondition(stored: Any) -> None:
        current = etag_of_record(stored)
        if "*" in tags:
            why = f"The {noun} exists, and If-None-Match: * asks for a write where none is"
        elif current in {tag.removeprefix("W/") for tag in tags}:
            why = f"The {noun} is still the version If-None-Match names ({current})"
        else:
            return
        raise PreconditionFailed(f"{why}. Nothing was written.", etag=current)

    return precondition


def write_precondition(
    request, noun: str, etag_of_record: Callable[[Any], str]
) -> Precondition | None:
    """Both conditions of a PUT, PATCH or DELETE, checked by the service under its lock (RFC
    9110: If-Match first); None when the request sends neither header."""
    checks = [
        check
        for check in (
            if_match(request, noun, etag_of_record),
            if_none_match(request, noun, etag_of_record),
        )
        if check is not None
    ]
    if not checks:
        return None

    def precondition(stored: Any) -> None:
        for check in checks:
            check(stored)

    return precondition


def refuse_conditions_on_create(request) -> None:
    """A create has no stored version to compare: a precondition there would be ignored, so it
    is a 400 instead."""
    for header in (IF_MATCH, IF_NONE_MATCH):
        if header in request.headers:
            raise ValidationError(
                {
                    header: [
                        f"{header} applies to a record: PUT, PATCH or DELETE its URL. A create "
                        "has no version to compare."
                    ]
                }
            )
