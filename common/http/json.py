"""orjson-backed DRF renderers and parser: the same JSON as DRF's, several times faster.

:class:`NDJSONRenderer` lets an endpoint that streams ``application/x-ndjson`` (a job's
results) accept clients that ask for exactly that; its errors are then one JSON line.

The parser also enforces ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (set by ``API_MAX_BODY_BYTES``, 1 MiB
by default): DRF reads the request stream directly, which skips Django's own body-size check,
so an oversized body would otherwise be read whole into memory.
"""

import json
from decimal import Decimal
from typing import Any

import orjson
from django.conf import settings
from django.utils.functional import Promise
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer

from common.exceptions import PayloadTooLarge


def _default(value: Any) -> Any:
    """Types orjson does not know: lazy translations, decimals (as text, never floats), sets."""
    if isinstance(value, Promise):
        return str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(data: Any, *, indent: bool = False) -> bytes:
    """Serialize like the API does (used by views that build their own responses)."""
    option = orjson.OPT_NON_STR_KEYS | (orjson.OPT_INDENT_2 if indent else 0)
    return orjson.dumps(data, default=_default, option=option)


class ORJSONRenderer(BaseRenderer):
    """Renders ``application/json`` with orjson; honours ``; indent=N`` like DRF's renderer."""

    media_type = "application/json"
    format = "json"
    charset = None  # orjson always writes UTF-8; JSON has no charset parameter

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context=None):
        if data is None:
            return b""
        indent = bool((renderer_context or {}).get("indent"))
        if accepted_media_type and "indent=" in accepted_media_type:
            indent = True
        return dumps(data, indent=indent)


class NDJSONRenderer(ORJSONRenderer):
    """Renders what a view answers as data (its errors) as one line of ``application/x-ndjson``;
    the records themselves are streamed by the view."""

    media_type = "application/x-ndjson"
    format = "ndjson"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context=None):
        if data is None:
            return b""
        return dumps(data) + b"\n"


def body_too_large(limit: int) -> PayloadTooLarge:
    """The 413 of a body above ``API_MAX_BODY_BYTES`` (JSON here, forms through Django)."""
    return PayloadTooLarge(
        f"Request body is larger than the limit of {limit} bytes (API_MAX_BODY_BYTES); "
        "POST /ingest/ takes batches."
    )


def refuse_declared_oversize(parser_context) -> None:
    """A 413 for a body whose Content-Length is above ``API_MAX_BODY_BYTES``, before a byte of
    it is read (reading first would answer a client that sends less than it declares with a
    400 "cut off" instead)."""
    request = (parser_context or {}).get("request")
    meta = getattr(request, "META", {})
    try:
        declared = int(meta.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
        raise body_too_large(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)


def read_limited(stream, limit: int) -> bytes:
    """Read a request body of at most ``limit`` bytes, or refuse it with a 413."""
    body = stream.read(limit + 1)
    if len(body) > limit:
        raise body_too_large(limit)
    return body


def first_repeated_key(pairs: list[tuple[str, Any]]) -> str | None:
    """The first key that appears twice among an object's ``(key, value)`` pairs, if any."""
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            return key
        seen.add(key)
    return None


def _reject_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    decoded = dict(pairs)
    if len(decoded) != len(pairs):
        raise ParseError(
            f"JSON parse error - the key {first_repeated_key(pairs)!r} appears more than once "
            "in an object; send each key once."
        )
    return decoded


class ORJSONParser(BaseParser):
    """Parses ``application/json`` with orjson; malformed JSON is a 400 that says where.

    A key repeated in an object is a 400 too: parsers disagree on which value counts (orjson
    keeps the last), so the service does not guess. Finding repeats takes Python's own parser,
    which is fine for the small bodies of the single-record endpoints.
    """

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        refuse_declared_oversize(parser_context)
        body = read_limited(stream, settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        if b"{" in body:
            json.loads(body, object_pairs_hook=_reject_repeated_keys)
        return data
