"""The bulk path and the single-record endpoints give the same verdict on any record.

Both call the services' rules, but they reach them differently: the endpoints through DRF and
orjson, the bulk path through msgspec structs. Hypothesis generates good and bad records (wrong
types, blanks, huge numbers, unicode) and checks that both paths accept the same records and
give the same messages.
"""

import json

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.pipeline import ORDERS, PRODUCTS, USERS, check_records
from ingest.records import decode_batch
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

names = st.one_of(
    st.sampled_from(["Alice", "  Bob ", "", "   ", "Zoë", "x" * 255, "x" * 256, "a\x00b"]), any_json
)
emails = st.one_of(
    st.emails(),
    st.sampled_from(["alice@example.com", "nope", "a@b", "@x.com", " bob@example.com "]),
    any_json,
)
prices = st.one_of(
    st.decimals(min_value=-100, max_value=10**11, places=3, allow_nan=False).map(str),
    st.floats(min_value=-1e12, max_value=1e12),
    st.integers(-5, 10**11),
    st.sampled_from(["19.99", "0", "-50.0", "1e3", "NaN", "abc", "1.234"]),
    any_json,
)
integers = st.one_of(
    st.integers(-(2**65), 2**65),
    st.floats(-1e20, 1e20),
    st.sampled_from(["5", "5.0", " 7 ", "x", "1.5"]),
    any_json,
)


def _fields(**strategies):
    """Records with each field present (any value) or missing."""
    return st.fixed_dictionaries({}, optional=strategies)


def _verdicts(serializer_class, resource, record):
    body = json.dumps({resource.name: [record]}).encode()  # orjson cannot write ints > 64 bits
    single_data = orjson.loads(body)[resource.name][0]
    serializer = serializer_class(data=single_data)
    single = (
        None
        if serializer.is_valid()
        else {
            field: [str(message) for message in messages]
            for field, messages in serializer.errors.items()
        }
    )
    checked = check_records(getattr(decode_batch(body), resource.name), resource)
    bulk = checked.skipped[0][2] if checked.skipped else None
    return single, bulk


common = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@common
@given(_fields(name=names, email=emails))
def test_users(record):
    single, bulk = _verdicts(UserSerializer, USERS, record)
    assert single == bulk


@common
@given(_fields(name=names, price=prices))
def test_products(record):
    single, bulk = _verdicts(ProductSerializer, PRODUCTS, record)
    assert single == bulk


@common
@given(_fields(user_id=integers, product_id=integers, quantity=integers))
def test_orders_fields(record):
    single, bulk = _verdicts(OrderSerializer, ORDERS, record)
    assert single == bulk


@pytest.mark.parametrize("record", [[1, 2], "text", 5, None, True])
def test_records_that_are_not_objects_are_refused_by_both(record):
    single, bulk = _verdicts(UserSerializer, USERS, record)
    assert single is not None
    assert bulk is not None
