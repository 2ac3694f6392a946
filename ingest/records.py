"""Decoding an ingest body: ``{"users": [...], "products": [...], "orders": [...]}``.

The body is decoded with msgspec straight into small record structs: no intermediate document
tree and no dict per record, which takes about a third of the memory orjson needs for the same
body and half the time. Every field is typed ``Any`` on purpose: a wrong type in one record must
skip that record with a reason, not reject the whole batch, so the type checks are the services'
rules. A record that is not a JSON object at all decodes as the raw value, and is skipped too.

What does reject the whole body (a 400): malformed JSON, a top level that is not an object, a
top-level key other than the three, a list that is not a list, nesting deeper than Python can
follow, and numbers beyond the range of a double.
"""

import codecs
from typing import Any

import msgspec
from msgspec import UNSET


class UserRecord(msgspec.Struct, gc=False):
    id: Any = UNSET
    name: Any = UNSET
    email: Any = UNSET
    action: Any = UNSET  # insert (when UNSET), upsert, update or delete: see ingest.actions


class ProductRecord(msgspec.Struct, gc=False):
    id: Any = UNSET
    name: Any = UNSET
    price: Any = UNSET
    action: Any = UNSET


class OrderRecord(msgspec.Struct, gc=False):
    id: Any = UNSET
    user_id: Any = UNSET
    product_id: Any = UNSET
    quantity: Any = UNSET
    action: Any = UNSET


# A record that is not an object: decoded as itself, so it can be skipped with a reason.
NotAnObject = list | str | int | float | bool | None


class Batch(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    # UNSET while decoding (to tell a missing list from an empty one), then [].
    users: list[UserRecord | NotAnObject] | msgspec.UnsetType = UNSET
    products: list[ProductRecord | NotAnObject] | msgspec.UnsetType = UNSET
    orders: list[OrderRecord | NotAnObject] | msgspec.UnsetType = UNSET

    def __len__(self) -> int:
        return len(self.users) + len(self.products) + len(self.orders)


class BatchError(ValueError):
    """The body is not a batch at all; the message says why (a 400)."""


_decoder = msgspec.json.Decoder(Batch)


def decode_batch(body: bytes) -> Batch:
    """Decode a JSON body into a :class:`Batch`, or raise :class:`BatchError`.

    A record that repeats a key comes out as an ``ingest.duplicates.RepeatedKey`` (skipped
    with a reason); a repeated top-level key refuses the body.
    """
    from ingest.duplicates import mark_repeated_keys

    batch = _decode(_decoder, body)
    mark_repeated_keys(body, batch)
    for name in ("users", "products", "orders"):
        if getattr(batch, name) is UNSET:
            setattr(batch, name, [])
    return batch


class _Outline(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """The batch's shape only: each record stays undecoded bytes (for counting large bodies)."""

    users: list[msgspec.Raw] = []  # noqa: RUF012 (msgspec copies mutable defaults)
    products: list[msgspec.Raw] = []  # noqa: RUF012
    orders: list[msgspec.Raw] = []  # noqa: RUF012


_outline_decoder = msgspec.json.Decoder(_Outline)


def count_records(body: bytes) -> int:
    """The number of records in a batch body, checking its JSON, its shape and its UTF-8 but
    not the records themselves (about a third of the memory of :func:`decode_batch`). A record
    the full decoder refuses (a number out of range) is found when the batch is run."""
    check_utf8(body)  # undecoded records (msgspec.Raw) are not checked by the decoder
    outline = _decode(_outline_decoder, body)
    return len(outline.users) + len(outline.products) + len(outline.orders)


_UTF8_STEP = 1 << 20


def check_utf8(body: bytes) -> None:
    """Raise :class:`BatchError` unless ``body`` is valid UTF-8 (checked a megabyte at a time,
    so that a 512 MiB body never becomes a 512 MiB string)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    for start in range(0, len(body), _UTF8_STEP):
        try:
            decoder.decode(body[start : start + _UTF8_STEP], final=start + _UTF8_STEP >= len(body))
        except UnicodeDecodeError as exc:
            # exc.start counts from the start of the bytes this call was given, plus any
            # partial character held over from the previous step.
            where = max(start - len(decoder.getstate()[0]), 0) + exc.start
            raise BatchError(
                f"JSON is malformed: the body is not valid UTF-8 (byte {where})."
            ) from None


def _decode(decoder: msgspec.json.Decoder, body: bytes):
    if body.startswith(b"\xef\xbb\xbf"):  # a byte order mark (RFC 8259 lets a parser skip it)
        body = body[3:]
    if not body.strip():
        raise BatchError(
            'The body is empty; send a JSON object like {"users": [], "products": [], '
            '"orders": []}.'
        )
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise BatchError(
            f"{exc}. The body must be a JSON object with any of the keys users, products and "
            "orders, each a list of records."
        ) from None
    except msgspec.DecodeError as exc:
        message = str(exc)
        if not message.startswith("JSON is malformed"):
            message = f"JSON is malformed: {message}"  # e.g. "Input data was truncated"
        raise BatchError(message) from None
    except RecursionError:
        raise BatchError("JSON is nested too deeply.") from None
    except UnicodeDecodeError:
        check_utf8(body)  # msgspec counts from the start of the string: say where in the body
        raise BatchError("JSON is malformed: the body is not valid UTF-8.") from None
