"""Query strings are checked, not guessed at: unknown and repeated parameters are refused.

A typo (``?dryrun=true``) or a parameter given twice (``?dry_run=true&dry_run=false``, where
Django keeps the last value) would otherwise change what a request does without a word: a
"dry run" that writes. A view names the parameters it takes; :func:`strict_query` refuses any
other with a 400 that names it and lists the allowed ones, and any parameter given twice.
"""

from collections.abc import Collection
from urllib.parse import unquote_to_bytes

from rest_framework.exceptions import ValidationError

from config.env import parse_bool

#: Unknown parameters a 400 names; past this many, a count (the answer stays small).
_NAMED = 5


def strict_query(request, allowed: Collection[str]) -> None:
    """Refuse (400) a query string that is not UTF-8, a parameter not in ``allowed``, or one
    given more than once."""
    _refuse_bytes_that_are_not_utf8(request)
    params = request.query_params if hasattr(request, "query_params") else request.GET
    errors = {}
    unknown = 0
    for name, values in params.lists():
        if name not in allowed:
            unknown += 1
            if unknown <= _NAMED:
                shown = ", ".join(sorted(allowed)) or "none"
                errors[name[:60]] = [f"Unknown query parameter. This endpoint takes: {shown}."]
        elif len(values) > 1:
            errors[name] = [f"Given {len(values)} times; give it once."]
    if unknown > _NAMED:
        errors["non_field_errors"] = [
            f"{unknown} unknown query parameters; the first {_NAMED} are named."
        ]
    if errors:
        raise ValidationError(errors)


def _refuse_bytes_that_are_not_utf8(request) -> None:
    """Django decodes a query string replacing what is not UTF-8 (``?name=%ff`` becomes
    ``"\ufffd"``), so a filter would quietly look for another value; bodies refuse such bytes
    (``common.http.body``), and so do query strings."""
    raw = request.META.get("QUERY_STRING", "")
    try:
        unquote_to_bytes(raw.encode("latin-1", errors="replace")).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(
            {
                "non_field_errors": [
                    f"The query string is not UTF-8 (the byte 0x{exc.object[exc.start]:02x}): "
                    "percent-encode the UTF-8 bytes of the text."
                ]
            }
        ) from None


def query_flag(request, name: str) -> bool:
    """A boolean query parameter (``?dry_run=true``); anything unrecognised is a 400."""
    raw = request.query_params.get(name)
    if raw is None:
        return False
    value = parse_bool(raw)
    if value is None:
        raise ValidationError({name: [f"Must be true or false, not {raw[:40]!r}."]})
    return value


def query_choice(request, name: str, choices: tuple[str, ...], default: str) -> str:
    """A query parameter that takes one of ``choices`` (``?action=upsert``); another is a 400."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value not in choices:
        raise ValidationError({name: [f"Must be one of {', '.join(choices)}, not {raw[:40]!r}."]})
    return value
