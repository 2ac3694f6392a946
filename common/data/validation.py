"""Field cleaners shared by every service's rules: parse one raw JSON value, or say why not.

A cleaner takes the value exactly as the client sent it (``UNSET`` when the key was missing)
and returns either the clean Python value or an :class:`Invalid` carrying the message a user
sees. They never raise for bad input and never touch a database, so the same call serves the
single-record API, the bulk ingest of hundreds of thousands of records and the management
commands. They run once per field of every ingested record, which is why they are written as
plain functions with early returns instead of DRF fields (about 10x cheaper per record).

Messages follow DRF's wording, so that a client sees the same text from every endpoint.

Text is what a person reads, so it must look like what is stored. A value made only of
invisible characters (spaces, zero-width and other format characters) is blank; control
characters (newlines, tabs, C0/C1 codes, the Unicode line and paragraph separators) and the
bidirectional embedding, override and isolate characters, which make text display differently
from what it is (U+202E before ``gnp.exe`` shows it as ``exe.png``), are refused. Everything
else a name may legitimately hold is kept: accents, any script, emoji and their
zero-width-joiner sequences, a non-breaking space inside a name.

Numbers given as text take ASCII digits only. Python's own parsers also accept other scripts'
digits (``int("١٠") == 10``, ``Decimal("５") == 5``) and underscores (``Decimal("1_000")``):
no client means a price of 1000 by ``"1_000"``, and silently reading it as one hides a bug.
"""

import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator
from msgspec import UNSET, UnsetType

__all__ = [
    "UNSET",
    "UnsetType",
    "Invalid",
    "MAX_BIGINT",
    "MAX_INT",
    "clean_text",
    "clean_email",
    "clean_int",
    "clean_id",
    "clean_decimal",
    "field_errors",
    "unknown_field_errors",
    "plain_text",
    "plain_email",
    "plain_money",
]

#: Largest value of a signed 64-bit column (ids) and of a 32-bit one (quantities).
MAX_BIGINT = 2**63 - 1
MAX_INT = 2**31 - 1

REQUIRED = "This field is required."
NOT_NULL = "This field may not be null."
NOT_A_STRING = "Not a valid string."
BLANK = "This field may not be blank."
NUL_CHARACTER = "Null characters are not allowed."
NOT_AN_INTEGER = "A valid integer is required."
NOT_A_NUMBER = "A valid number is required."
INVALID_EMAIL = "Enter a valid email address."
CONTROL_CHARACTER = (
    "Control characters (newlines, tabs, line separators and other non-printing codes) "
    "are not allowed."
)
BIDI_CHARACTER = (
    "Bidirectional override characters (U+202A to U+202E, U+2066 to U+2069) are not allowed."
)


class Invalid:
    """Why a value was refused. Cleaners return it instead of raising (cheaper per record)."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message

    def __repr__(self) -> str:
        return f"Invalid({self.message!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Invalid) and other.message == self.message

    def __hash__(self) -> int:
        return hash(self.message)


_REQUIRED = Invalid(REQUIRED)
_NOT_NULL = Invalid(NOT_NULL)
_NOT_A_STRING = Invalid(NOT_A_STRING)
_BLANK = Invalid(BLANK)
_NUL_CHARACTER = Invalid(NUL_CHARACTER)
_NOT_AN_INTEGER = Invalid(NOT_AN_INTEGER)
_NOT_A_NUMBER = Invalid(NOT_A_NUMBER)
_INVALID_EMAIL = Invalid(INVALID_EMAIL)
_NOT_UTF8 = Invalid("Text must be valid Unicode.")
_CONTROL_CHARACTER = Invalid(CONTROL_CHARACTER)
_BIDI_CHARACTER = Invalid(BIDI_CHARACTER)

# Refused anywhere in a text: the control characters (category Cc), the line and paragraph
# separators, and the bidi embeddings, overrides and isolates. One regex scans in C.
_REFUSED_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_BIDI_CHARACTERS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Letters and symbols that render as nothing, used to fake a name that looks blank: the Hangul
# fillers, the blank Braille pattern, the combining grapheme joiner, Khmer inherent vowels.
_INVISIBLE_GLYPHS = frozenset("\u115f\u1160\u3164\uffa0\u2800\u034f\u17b4\u17b5")


def _is_invisible(character: str) -> bool:
    """True for a character that shows nothing on its own: whitespace, a format character
    (category Cf: zero-width space and joiners, word joiner, byte order mark, soft hyphen...), a
    variation selector, or one of the blank-looking glyphs above."""
    return (
        character.isspace()
        or character in _INVISIBLE_GLYPHS
        or unicodedata.category(character) == "Cf"
        or "\ufe00" <= character <= "\ufe0f"
        or "\U000e0100" <= character <= "\U000e01ef"
    )


def _refused_character(text: str) -> "Invalid | None":
    """The message for the first character no text may hold, or None."""
    found = _REFUSED_CHARACTER.search(text)
    if found is None:
        return None
    character = found.group()
    if character == "\x00":
        # PostgreSQL cannot store NUL in text, and no name or address legitimately holds one.
        return _NUL_CHARACTER
    return _BIDI_CHARACTER if character in _BIDI_CHARACTERS else _CONTROL_CHARACTER


def clean_text(value: Any, max_length: int) -> "str | Invalid":
    """A non-blank string of at most ``max_length`` characters, stripped of outer whitespace.

    Whitespace and other invisible characters alone count as blank; control and bidi override
    characters are refused (see the module docstring). Numbers are not silently turned into
    text: a name that arrives as ``42`` is a client bug worth reporting.
    """
    if type(value) is not str:
        if value is UNSET:
            return _REQUIRED
        if value is None:
            return _NOT_NULL
        if not isinstance(value, str):
            return _NOT_A_STRING
        value = str(value)
    text = value.strip()
    if not text:
        return _BLANK
    if len(text) > max_length:
        return Invalid(f"Ensure this field has no more than {max_length} characters.")
    if text.isascii():
        # The common case: on ASCII, isprintable() is False exactly for \x00-\x1f and \x7f.
        return text if text.isprintable() else _refused_character(text)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, e.g. from a form post
        return _NOT_UTF8
    # all() stops at the first visible character: one step for an ordinary name.
    if all(_is_invisible(character) for character in text):
        return _BLANK
    return _refused_character(text) or text


# The common shape of an address (dot-atom local part, ASCII host names), checked in one regex.
# It accepts a strict subset of what Django's EmailValidator accepts, so that anything it lets
# through Django would also accept; everything else (quoted local parts, IP literals,
# international domains, near-misses) goes to Django's validator for the final word.
# tests/common/data/test_validation.py proves the subset property on generated addresses.
_COMMON_EMAIL = re.compile(
    # Possessive quantifiers: no backtracking, about a third faster than the greedy version.
    r"[-!#$%&'*+/=?^_`{}|~0-9A-Za-z]++(?:\.[-!#$%&'*+/=?^_`{}|~0-9A-Za-z]++)*+"
    r"@(?:[A-Za-z0-9]++(?:-++[A-Za-z0-9]++)*+\.)++[A-Za-z]{2,63}"
)
# Labels of a host name have at most 63 characters; a domain part that short cannot break that.
_COMMON_DOMAIN_MAX = 63
_django_email_validator = EmailValidator()


def is_valid_email(address: str) -> bool:
    """Django's EmailValidator verdict, about 10x faster on ordinary addresses."""
    if (
        len(address) - address.rfind("@") <= _COMMON_DOMAIN_MAX
        and len(address) <= 320
        and _COMMON_EMAIL.fullmatch(address)
    ):
        return True
    try:
        _django_email_validator(address)
    except ValidationError:
        return False
    return True


def clean_email(value: Any, max_length: int) -> "str | Invalid":
    """A valid email address (Django's rules) of at most ``max_length`` characters."""
    text = clean_text(value, max_length)
    if type(text) is Invalid:
        return text
    if "@" not in text or not is_valid_email(text):
        return _INVALID_EMAIL
    return text


# ASCII digits only (re's [0-9] never matches other scripts' digits), no underscores.
_INTEGER_STRING = re.compile(r"[-+]?[0-9]+(?:\.0*)?")
_DECIMAL_STRING = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


def clean_int(value: Any, greater_than: int, max_value: int) -> "int | Invalid":
    """An integer with ``greater_than < value <= max_value``.

    Like DRF's IntegerField it accepts ``5``, ``5.0`` and ``"5"``; it refuses booleans, ``5.5``,
    NaN, infinities, strings in other digits than ASCII (``"١٠"``) or with underscores
    (``"1_000"``), and anything else.
    """
    if type(value) is not int:
        if value is UNSET:
            return _REQUIRED
        if value is None:
            return _NOT_NULL
        if isinstance(value, bool):
            return _NOT_AN_INTEGER
        if isinstance(value, int):
            value = int(value)
        elif isinstance(value, float):
            if not value.is_integer():  # also False for NaN and the infinities
                return _NOT_AN_INTEGER
            value = int(value)
        elif isinstance(value, str):
            text = value.strip()
            if len(text) > 40 or not _INTEGER_STRING.fullmatch(text):
                return _NOT_AN_INTEGER
            value = int(text.split(".", 1)[0])
        else:
            return _NOT_AN_INTEGER
    if value <= greater_than:
        return Invalid(f"Ensure this value is greater than {greater_than}.")
    if value > max_value:
        return Invalid(f"Ensure this value is less than or equal to {max_value}.")
    return value


def clean_id(value: Any) -> "int | None | Invalid":
    """An optional record id: ``None`` when absent (the database assigns one), else 1..2**63-1."""
    if value is UNSET or value is None:
        return None
    return clean_int(value, 0, MAX_BIGINT)


def as_sent(stored: Any) -> Any:
    """A stored value as a client would send it, for a rule that checks a merged record (a
    PATCH, a bulk update): the rules take prices as JSON numbers or strings and refuse a
    ``Decimal``, which no client can send, so a stored price goes in as its text ("999.99")."""
    return str(stored) if type(stored) is Decimal else stored


def clean_decimal(
    value: Any, max_digits: int, decimal_places: int, greater_than: int
) -> "Decimal | Invalid":
    """A finite decimal above ``greater_than`` that fits ``max_digits``/``decimal_places``.

    Accepts JSON numbers and numeric strings in ASCII digits (``"19.99"``, ``"1e3"``). Floats go
    through their shortest text form, so ``19.99`` becomes ``Decimal("19.99")``, never
    ``19.989999...``. The result is quantized to
    ``decimal_places`` so that ``1000``, ``1000.0`` and ``"1000.00"`` are the same price.
    """
    if isinstance(value, bool):
        return _NOT_A_NUMBER
    if isinstance(value, float):
        if not math.isfinite(value):
            return _NOT_A_NUMBER
        number = Decimal(repr(float(value)))
    elif isinstance(value, int):
        number = Decimal(int(value))
    elif isinstance(value, str):
        text = value.strip()
        # The regex leaves out what Decimal() would also read: other scripts' digits ("١٠"),
        # underscores ("1_000"), NaN and the infinities.
        if len(text) > 64 or not _DECIMAL_STRING.fullmatch(text):
            return _NOT_A_NUMBER
        try:
            number = Decimal(text)
        except (
            InvalidOperation
        ):  # an exponent beyond Decimal's range, e.g. "1e99999999999999999999"
            return _NOT_A_NUMBER
    elif value is UNSET:
        return _REQUIRED
    elif value is None:
        return _NOT_NULL
    else:
        return _NOT_A_NUMBER
    if number <= greater_than:
        return Invalid(f"Ensure this value is greater than {greater_than}.")
    whole_digits = max_digits - decimal_places
    if number >= _TEN**whole_digits:
        return Invalid(
            f"Ensure that there are no more than {whole_digits} digits before the decimal point."
        )
    step = _STEPS.get(decimal_places) or Decimal(1).scaleb(-decimal_places)
    rounded = number.quantize(step)
    if rounded != number:
        return Invalid(f"Ensure that there are no more than {decimal_places} decimal places.")
    return rounded


# --- fast paths -------------------------------------------------------------------------------
# Bulk ingest checks every field of hundreds of thousands of records, most of them ordinary:
# ASCII text, plain JSON numbers. These functions accept exactly those in a few operations and
# return None for anything else, which then goes through the full cleaner above for the verdict
# and the message. Whenever one returns a value, it is the value the full cleaner returns
# (tests/common/data/test_validation.py checks this on generated input), so a rule that tries them
# first decides exactly as the full cleaners alone would.


def plain_text(value: Any, max_length: int) -> str | None:
    """``clean_text``'s result for ordinary ASCII text, else None."""
    if type(value) is str and value.isascii():
        text = value.strip()
        if text and len(text) <= max_length and text.isprintable():
            return text
    return None


def plain_email(value: Any, max_length: int) -> str | None:
    """``clean_email``'s result for an ordinary ASCII address, else None."""
    if type(value) is str and value.isascii():
        text = value.strip()
        if (
            len(text) <= max_length
            and len(text) - text.rfind("@") <= _COMMON_DOMAIN_MAX
            and _COMMON_EMAIL.fullmatch(text)
        ):
            return text
    return None


def plain_money(value: Any, whole_digits: int) -> Decimal | None:
    """``clean_decimal(value, whole_digits + 2, 2, 0)``'s result for a plain positive JSON number
    with at most 2 decimals (``19.99``, ``1000.0``, ``50``), else None."""
    kind = type(value)
    if kind is float:
        if 0.0 < value < _FLOAT_CEILINGS[whole_digits]:
            # A float has at most 2 decimals exactly when it is the double nearest some whole
            # number of cents; cheaper than formatting it (cents < 2**53, so both are exact).
            cents = round(value * 100)
            if cents / 100 == value:
                return Decimal(cents).scaleb(-2)
    elif kind is int and 0 < value < _INT_CEILINGS[whole_digits]:
        return Decimal(value * 100).scaleb(-2)
    return None


_FLOAT_CEILINGS = {digits: float(10**digits) for digits in range(1, 16)}
_INT_CEILINGS = {digits: 10**digits for digits in range(1, 16)}


#: How a JSON value that is not an object is named in "Expected a JSON object, got ...".
JSON_TYPE_NAMES = {
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


#: Unknown keys named one by one in a record's errors; past this many, a count (so that the
#: answer stays smaller than a body made of made-up keys).
MAX_UNKNOWN_FIELDS_NAMED = 20


def unknown_field_errors(keys: Iterable[str], noun: str, fields: Sequence[str]) -> dict:
    """``{key: [message]}`` for keys a record of ``noun`` ("a user") does not have, the first
    :data:`MAX_UNKNOWN_FIELDS_NAMED` of them, then a count: the one wording the single-record
    endpoints and the ingest use."""
    message = f"Unknown field. The fields of {noun} are: {', '.join(fields)}."
    errors: dict[str, list[str]] = {}
    unknown = 0
    for key in keys:
        unknown += 1
        if unknown <= MAX_UNKNOWN_FIELDS_NAMED:
            errors[str(key)] = [message]
    if unknown > MAX_UNKNOWN_FIELDS_NAMED:
        errors["non_field_errors"] = [
            f"{unknown} unknown fields in all; the first {MAX_UNKNOWN_FIELDS_NAMED} are named."
        ]
    return errors


def field_errors(**cleaned: Any) -> dict[str, list[str]] | None:
    """``{field: [message]}`` for every cleaned value that is an :class:`Invalid`, else ``None``."""
    errors = {field: [value.message] for field, value in cleaned.items() if type(value) is Invalid}
    return errors or None


_TEN = Decimal(10)
_STEPS = {places: Decimal(1).scaleb(-places) for places in range(7)}
