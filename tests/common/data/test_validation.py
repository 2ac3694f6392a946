"""The field cleaners behind every rule, and the fast email check's agreement with Django."""
# ruff: noqa: RUF001 (the look-alike digits and invisible characters are the point)

import math
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator
from hypothesis import example, given, settings
from hypothesis import strategies as st

from common.data.validation import (
    MAX_BIGINT,
    UNSET,
    Invalid,
    clean_decimal,
    clean_email,
    clean_id,
    clean_int,
    clean_text,
    is_valid_email,
    plain_email,
    plain_money,
    plain_text,
)

BLANK = Invalid("This field may not be blank.")
CONTROL = Invalid(
    "Control characters (newlines, tabs, line separators and other non-printing codes) "
    "are not allowed."
)
BIDI = Invalid(
    "Bidirectional override characters (U+202A to U+202E, U+2066 to U+2069) are not allowed."
)
NOT_A_NUMBER = Invalid("A valid number is required.")
NOT_AN_INTEGER = Invalid("A valid integer is required.")

SEED_EMAILS = [
    f"{name}@example.com"
    for name in ("alice", "bob", "charlie", "david", "eve", "frank", "grace", "henry", "jane")
]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Alice", "Alice"),
        ("  Alice  ", "Alice"),
        ("Zoë 😀", "Zoë 😀"),
        ("Robert'); DROP TABLE users;--", "Robert'); DROP TABLE users;--"),
        ("", Invalid("This field may not be blank.")),
        ("   \t\n", Invalid("This field may not be blank.")),
        (None, Invalid("This field may not be null.")),
        (UNSET, Invalid("This field is required.")),
        (42, Invalid("Not a valid string.")),
        (True, Invalid("Not a valid string.")),
        (["Alice"], Invalid("Not a valid string.")),
        ("a\x00b", Invalid("Null characters are not allowed.")),
        ("x" * 41, Invalid("Ensure this field has no more than 40 characters.")),
        ("\ud800", Invalid("Text must be valid Unicode.")),
    ],
)
def test_clean_text(value, expected):
    assert clean_text(value, 40) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # Only invisible characters: blank, whatever they are.
        ("\u200b", BLANK),
        ("\u200b\u200c\u200d\u2060\ufeff", BLANK),
        (" \u200b \u00a0\u3000", BLANK),
        ("\u00ad\u2061\u180e", BLANK),
        ("\u3164\u115f\u1160\uffa0\u2800", BLANK),  # Hangul fillers, blank Braille
        ("\u034f\ufe0f\U000e0100", BLANK),  # grapheme joiner, variation selectors
        ("\u202e", BLANK),
        # Control characters inside the text (at the ends they are stripped as whitespace).
        ("Ali\nce", CONTROL),
        ("Ali\r\nce", CONTROL),
        ("Ali\tce", CONTROL),
        ("\x01Alice", CONTROL),
        ("Alice\x1b[31m", CONTROL),
        ("Al\x7fice", CONTROL),
        ("Al\x9bice", CONTROL),
        ("Al\x85ice", CONTROL),
        ("Zoë\nK", CONTROL),
        ("Ali\u2028ce", CONTROL),
        ("Ali\u2029ce", CONTROL),
        ("x\x01\x00", CONTROL),
        # Bidi embeddings, overrides and isolates.
        ("\u202egnp.exe", BIDI),
        *[
            (f"Alice{chr(code)}Bob", BIDI)
            for code in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))
        ],
        ("Zoë\u2067x", BIDI),
        # Legitimate text stays accepted.
        ("  Zoë Ångström ", "Zoë Ångström"),
        ("李小龍", "李小龍"),
        ("👨\u200d👩\u200d👧", "👨\u200d👩\u200d👧"),
        ("Jean\u00a0Dupont", "Jean\u00a0Dupont"),
        ("מרים כהן", "מרים כהן"),
        ("Ali\u200fce", "Ali\u200fce"),  # a right-to-left mark is not an override
        ("Jeanne\u2060d'Arc", "Jeanne\u2060d'Arc"),
        ("\ufeffAlice", "\ufeffAlice"),
        ("\u00a0Alice\u00a0", "Alice"),
    ],
)
def test_clean_text_refuses_invisible_control_and_bidi_characters(value, expected):
    assert clean_text(value, 40) == expected
    # The fast path either gives the same text or leaves the value to the full cleaner.
    assert plain_text(value, 40) in (None, expected)


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ('"a\x01b"@example.com', CONTROL),
        ('"al\x7fice"@example.com', CONTROL),
        ('"a\tb"@example.com', CONTROL),
        ("alice@ex\u202eample.com", BIDI),
        ("alice@exa\u2066mple.com", BIDI),
        ("al\u202eice@example.com", BIDI),
        ("\u200b", BLANK),
        (" alice@example.com\n", "alice@example.com"),
        ("alice@bücher.example", "alice@bücher.example"),
    ],
)
def test_emails_go_through_the_text_rules_first(address, expected):
    assert clean_email(address, 254) == expected


@pytest.mark.parametrize("address", SEED_EMAILS)
def test_every_seed_email_is_accepted(address):
    assert clean_email(address, 254) == address


@pytest.mark.parametrize(
    "address",
    [
        "plainaddress",
        "@example.com",
        "a@",
        "a@b",
        "a b@example.com",
        "a@exa mple.com",
        "a@-example.com",
        "a..b@example.com",
        "a@example..com",
        "x" * 250 + "@example.com",
    ],
)
def test_invalid_emails_are_refused(address):
    assert clean_email(address, 254) == Invalid(
        "Ensure this field has no more than 254 characters."
        if len(address) > 254
        else "Enter a valid email address."
    )


def _django_accepts(address: str) -> bool:
    try:
        EmailValidator()(address)
    except ValidationError:
        return False
    return True


_EMAILISH = st.text(alphabet=st.sampled_from('ab.-_+@Z9é"[]: xn-'), min_size=1, max_size=40)


@settings(max_examples=600, deadline=None)
@given(st.one_of(st.emails(), _EMAILISH, st.text(max_size=60)))
@example('"quoted local"@example.com')
@example("user@[127.0.0.1]")
@example("user@xn--bcher-kva.example")
@example("user@bücher.example")
@example("user@localhost")
@example("a@b.c")
@example("a@" + "b" * 64 + ".com")
def test_fast_email_check_gives_django_emailvalidator_verdict(address):
    assert is_valid_email(address) == _django_accepts(address)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (5, 5),
        (5.0, 5),
        ("5", 5),
        (" 7 ", 7),
        ("5.0", 5),
        (MAX_BIGINT, MAX_BIGINT),
        (0, Invalid("Ensure this value is greater than 0.")),
        (-1, Invalid("Ensure this value is greater than 0.")),
        (MAX_BIGINT + 1, Invalid(f"Ensure this value is less than or equal to {MAX_BIGINT}.")),
        (2**80, Invalid(f"Ensure this value is less than or equal to {MAX_BIGINT}.")),
        (True, Invalid("A valid integer is required.")),
        (5.5, Invalid("A valid integer is required.")),
        (math.nan, Invalid("A valid integer is required.")),
        (math.inf, Invalid("A valid integer is required.")),
        ("five", Invalid("A valid integer is required.")),
        ("1" * 50, Invalid("A valid integer is required.")),
        ("١٠", NOT_AN_INTEGER),  # Arabic-Indic digits: int() would read 10
        ("５", NOT_AN_INTEGER),  # fullwidth
        ("１０.0", NOT_AN_INTEGER),
        ("1_000", NOT_AN_INTEGER),  # int() would read 1000
        ("0x10", NOT_AN_INTEGER),
        ("²", NOT_AN_INTEGER),
        ([5], Invalid("A valid integer is required.")),
        ({"n": 5}, Invalid("A valid integer is required.")),
        (None, Invalid("This field may not be null.")),
        (UNSET, Invalid("This field is required.")),
    ],
)
def test_clean_int(value, expected):
    assert clean_int(value, 0, MAX_BIGINT) == expected


def test_clean_id_is_optional():
    assert clean_id(UNSET) is None
    assert clean_id(None) is None
    assert clean_id(3) == 3
    assert clean_id("3") == 3
    assert clean_id(0) == Invalid("Ensure this value is greater than 0.")
    assert clean_id("١٠") == NOT_AN_INTEGER
    assert clean_id("1_0") == NOT_AN_INTEGER


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1000, Decimal("1000.00")),
        (1000.0, Decimal("1000.00")),
        ("1000.00", Decimal("1000")),
        (19.99, Decimal("19.99")),
        ("19.99", Decimal("19.99")),
        (0.01, Decimal("0.01")),
        ("9999999999.99", Decimal("9999999999.99")),
        ("1e3", Decimal("1000")),
        (-50.0, Invalid("Ensure this value is greater than 0.")),
        (0, Invalid("Ensure this value is greater than 0.")),
        ("-0.00", Invalid("Ensure this value is greater than 0.")),
        (19.999, Invalid("Ensure that there are no more than 2 decimal places.")),
        (10**10, Invalid("Ensure that there are no more than 10 digits before the decimal point.")),
        (
            "1e400",
            Invalid("Ensure that there are no more than 10 digits before the decimal point."),
        ),
        (math.nan, Invalid("A valid number is required.")),
        (math.inf, Invalid("A valid number is required.")),
        ("NaN", Invalid("A valid number is required.")),
        ("Infinity", Invalid("A valid number is required.")),
        ("ten", Invalid("A valid number is required.")),
        ("١٠", NOT_A_NUMBER),  # Decimal() would read 10
        ("٥.٥٠", NOT_A_NUMBER),
        ("５", NOT_A_NUMBER),  # Decimal() would read 5
        ("1_000", NOT_A_NUMBER),  # Decimal() would read 1000
        ("1_000.00", NOT_A_NUMBER),
        ("1e1_0", NOT_A_NUMBER),
        ("१९.९९", NOT_A_NUMBER),  # Devanagari
        ("-Infinity", NOT_A_NUMBER),
        ("sNaN", NOT_A_NUMBER),
        ("1e99999999999999999999", NOT_A_NUMBER),  # beyond Decimal's exponents
        ("0x10", NOT_A_NUMBER),
        ("5.", Decimal("5")),
        (".5", Decimal("0.5")),
        ("+19.99", Decimal("19.99")),
        (" 19.99 ", Decimal("19.99")),
        ("1E3", Decimal("1000")),
        (True, Invalid("A valid number is required.")),
        ([1], Invalid("A valid number is required.")),
        (None, Invalid("This field may not be null.")),
        (UNSET, Invalid("This field is required.")),
    ],
)
def test_clean_decimal(value, expected):
    result = clean_decimal(value, 12, 2, 0)
    assert result == expected
    if isinstance(result, Decimal):
        assert result.as_tuple().exponent == -2


# --- the fast paths decide exactly as the full cleaners --------------------------------------

# The characters the text rules single out, mixed with ordinary ones.
_SPECIAL_CHARACTERS = (
    " \t\n\r\x0b\x0c\x00\x01\x1b\x1f\x7f\x85\x9f\xa0\xad"
    "\u200b\u200c\u200d\u200e\u200f\u2028\u2029\u202a\u202e\u2060\u2066\u2069"
    "\u3000\u3164\u2800\ufeff\ufe0fabé👨"
)
_REFUSED = {
    *map(chr, range(0x20)),
    *map(chr, range(0x7F, 0xA0)),
    "\u2028",
    "\u2029",
    *map(chr, range(0x202A, 0x202F)),
    *map(chr, range(0x2066, 0x206A)),
}
_texty = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.sampled_from(" \t\nab\x00é"), max_size=12),
    st.text(alphabet=st.sampled_from(_SPECIAL_CHARACTERS), max_size=12),
    st.text(alphabet=st.characters(codec="ascii"), max_size=20),
    st.text(alphabet=st.characters(categories=["Cc", "Cf", "Zs", "Zl", "Zp"]), max_size=8),
    st.integers(),
    st.none(),
    st.floats(allow_nan=True),
)
_emaily = st.one_of(st.emails(), _EMAILISH, st.text(max_size=60), st.integers())
_moneyish = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0, max_value=2e10),
    st.integers(min_value=-(10**12), max_value=10**12).map(lambda cents: cents / 100),
    st.integers(min_value=-(10**11), max_value=10**11),
    st.decimals(places=3, allow_nan=False).map(float),
    st.booleans(),
    st.text(max_size=10),
    st.text(alphabet=st.sampled_from("0123456789._-+eE١٠５"), max_size=8),
)


@settings(max_examples=2000, deadline=None)
@given(_texty, st.integers(min_value=1, max_value=300))
@example("Ali\nce", 40)
@example("Ali\tce", 40)
@example("\x01Alice", 40)
@example("Al\x7fice", 40)
@example("Alice\x1b[31m", 40)
def test_plain_text_agrees_with_clean_text(value, max_length):
    fast = plain_text(value, max_length)
    assert fast is None or fast == clean_text(value, max_length)


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet=st.sampled_from(_SPECIAL_CHARACTERS), min_size=1, max_size=12))
def test_accepted_text_holds_no_refused_character_and_something_visible(value):
    cleaned = clean_text(value, 40)
    if isinstance(cleaned, str):
        assert not set(cleaned) & _REFUSED, cleaned
        assert set(cleaned) & set("abé👨"), cleaned


@settings(max_examples=1000, deadline=None)
@given(_emaily)
@example("a@" + "b" * 64 + ".com")
@example(" alice@example.com ")
def test_plain_email_agrees_with_clean_email(value):
    fast = plain_email(value, 254)
    assert fast is None or fast == clean_email(value, 254)


@settings(max_examples=2000, deadline=None)
@given(_moneyish)
@example(9999999999.99)
@example(1e10)
@example(0.1)
@example(1.005)
@example(2.675)
def test_plain_money_agrees_with_clean_decimal(value):
    fast = plain_money(value, 10)
    if fast is not None:
        full = clean_decimal(value, 12, 2, 0)
        assert fast == full
        assert fast.as_tuple().exponent == full.as_tuple().exponent == -2


def test_plain_paths_take_the_ordinary_cases():
    assert plain_text(" Alice ", 255) == "Alice"
    assert plain_email("alice@example.com", 254) == "alice@example.com"
    assert plain_money(19.99, 10) == Decimal("19.99")
    assert plain_money(1000, 10) == Decimal("1000.00")
    assert plain_text("Zoë", 255) is None  # non-ASCII: left to the full cleaner
    assert plain_text("Ali\nce", 255) is None  # ASCII control characters too
    assert plain_text("Ali\x7fce", 255) is None
    assert plain_money(19.999, 10) is None
