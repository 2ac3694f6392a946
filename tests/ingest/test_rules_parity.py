"""The bulk path and the single-record endpoints give the same verdict on any record.

Both call the services' rules, but they reach them differently: the endpoints through DRF and
orjson, the bulk path through msgspec structs. Hypothesis generates good and bad records (wrong
types, blanks, huge numbers, unicode, invisible, control and bidi characters, digits of other
scripts) and checks that both paths accept the same records with the same clean values, and
refuse the same records with the same messages.
"""
# ruff: noqa: RUF001 (look-alike digits and invisible characters are the point)

import json
from decimal import Decimal

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.checking import check_records
from ingest.records import decode_batch
from ingest.resources import ORDERS, PRODUCTS, USERS
from orders_svc.serializers import OrderSerializer
from products_svc.serializers import ProductSerializer
from users_svc.serializers import UserSerializer

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
any_json = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)

_tricky_text = st.text(
    alphabet=st.sampled_from(
        "ab é\t\n\x00\x01\x7f\x85\u200b\u200d\u2028\u202e\u2066\ufeff\u3164👨"
    ),
    max_size=8,
)
names = st.one_of(
    st.sampled_from(
        [
            "Alice",
            "  Bob ",
            "",
            "   ",
            "Zoë",
            "x" * 255,
            "x" * 256,
            "a\x00b",
            "\u200b",
            "Ali\nce",
            "\u202egnp.exe",
            "👨\u200d👩\u200d👧",
            "Jean\u00a0Dupont",
        ]
    ),
    _tricky_text,
    any_json,
)
emails = st.one_of(
    st.emails(),
    st.sampled_from(
        [
            "alice@example.com",
            "nope",
            "a@b",
            "@x.com",
            " bob@example.com ",
            '"a\x01b"@example.com',
            "alice@ex\u202eample.com",
        ]
    ),
    any_json,
)
prices = st.one_of(
    st.decimals(min_value=-100, max_value=10**11, places=3, allow_nan=False).map(str),
    st.floats(min_value=-1e12, max_value=1e12),
    st.integers(-5, 10**11),
    st.sampled_from(["19.99", "0", "-50.0", "1e3", "NaN", "abc", "1.234", "١٠", "５", "1_000"]),
    st.text(alphabet=st.sampled_from("0123456789._-+eE١٠５ "), max_size=8),
    any_json,
)
integers = st.one_of(
    st.integers(-(2**65), 2**65),
    st.floats(-1e20, 1e20),
    st.sampled_from(["5", "5.0", " 7 ", "x", "1.5", "١٠", "５", "1_0"]),
    any_json,
)


def _fields(**strategies):
    """Records with each field present (any value) or missing."""
    return st.fixed_dictionaries({}, optional=strategies)


def _verdicts(serializer_class, resource, record):
    """What each path makes of ``record``: ("valid", clean values) or ("invalid", errors)."""
    body = json.dumps({resource.name: [record]}).encode()  # orjson cannot write ints > 64 bits
    single_data = orjson.loads(body)[resource.name][0]
    serializer = serializer_class(data=single_data)
    if serializer.is_valid():
        single = ("valid", tuple(serializer.validated_data[f] for f in resource.fields))
    else:
        single = (
            "invalid",
            {
                field: [str(message) for message in messages]
                for field, messages in serializer.errors.items()
            },
        )
    checked = check_records(getattr(decode_batch(body), resource.name), resource)
    if checked.skipped:
        [(index, _, reasons)] = checked.skipped
        assert index == 0
        bulk = ("invalid", reasons)
    else:
        [(record_id, *values)] = checked.rows
        assert record_id is None
        bulk = ("valid", tuple(values))
    return single, bulk


def _same(single, bulk):
    assert single == bulk
    if single[0] == "valid":  # equal Decimals may still differ in exponent ("10.0" vs "10.00")
        assert [str(value) for value in single[1]] == [str(value) for value in bulk[1]]


common = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@common
@given(_fields(name=names, email=emails))
def test_users(record):
    _same(*_verdicts(UserSerializer, USERS, record))


@common
@given(_fields(name=names, price=prices))
def test_products(record):
    _same(*_verdicts(ProductSerializer, PRODUCTS, record))


@common
@given(_fields(user_id=integers, product_id=integers, quantity=integers))
def test_orders_fields(record):
    _same(*_verdicts(OrderSerializer, ORDERS, record))


@pytest.mark.parametrize(
    ("record", "kind"),
    [
        ([1, 2], "array"),
        ("text", "string"),
        (5, "number"),
        (1.5, "number"),
        (None, "null"),
        (True, "boolean"),
    ],
)
@pytest.mark.parametrize(
    ("serializer_class", "resource"),
    [(UserSerializer, USERS), (ProductSerializer, PRODUCTS), (OrderSerializer, ORDERS)],
)
def test_records_that_are_not_objects_are_refused_by_both_alike(
    serializer_class, resource, record, kind
):
    single, bulk = _verdicts(serializer_class, resource, record)
    assert (
        single
        == bulk
        == (
            "invalid",
            {"non_field_errors": [f"Expected a JSON object, got {kind}."]},
        )
    )


@pytest.mark.parametrize(
    ("serializer_class", "resource", "record", "verdict"),
    [
        (
            UserSerializer,
            USERS,
            {"name": " Zoë ", "email": "z@example.com"},
            ("valid", ("Zoë", "z@example.com")),
        ),
        (
            UserSerializer,
            USERS,
            {"name": "\u200b", "email": "Ali\nce@example.com"},
            (
                "invalid",
                {
                    "name": ["This field may not be blank."],
                    "email": [
                        "Control characters (newlines, tabs, line separators and other "
                        "non-printing codes) are not allowed."
                    ],
                },
            ),
        ),
        (
            ProductSerializer,
            PRODUCTS,
            {"name": "Cable", "price": "١٠"},
            ("invalid", {"price": ["A valid number is required."]}),
        ),
        (
            ProductSerializer,
            PRODUCTS,
            {"name": "Cable", "price": "10"},
            ("valid", ("Cable", Decimal("10.00"))),
        ),
        (
            OrderSerializer,
            ORDERS,
            {"user_id": 1, "product_id": 2, "quantity": "1_0"},
            ("invalid", {"quantity": ["A valid integer is required."]}),
        ),
        (
            OrderSerializer,
            ORDERS,
            {"user_id": "1", "product_id": 2.0, "quantity": 3},
            ("valid", (1, 2, 3)),
        ),
    ],
)
def test_known_records_get_the_same_verdict_from_both(serializer_class, resource, record, verdict):
    single, bulk = _verdicts(serializer_class, resource, record)
    assert single == bulk == verdict


@pytest.mark.parametrize(
    "record",
    [
        {"name": "Alice", "email": "alice@example.com", "pad": 1},
        {"name": "", "email": "alice@example.com", "pad": 1, "x": [2]},
        {"name": "Alice", "emial": "alice@example.com"},
    ],
)
def test_a_record_with_an_unknown_field_gets_the_same_verdict_from_both(record):
    single, bulk = _verdicts(UserSerializer, USERS, record)
    assert single[0] == bulk[0] == "invalid"
    unknown = [key for key in record if key not in ("name", "email")]
    assert set(unknown) <= set(single[1])  # the endpoint names each key as a field
    # the bulk answer names them in one message (many records each with other made-up keys
    # must not make the answer many times the body: tests/ingest/test_skipped_groups.py)
    assert bulk[1] == {"non_field_errors": [f"Unknown keys: {', '.join(unknown)}."]}
