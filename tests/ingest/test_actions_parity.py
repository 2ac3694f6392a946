"""An update gives the same verdict and the same row in bulk and through the single-record PATCH.

``POST /ingest/?action=update`` with ``{"id": 7, <some fields>}`` and ``PATCH /<resource>/7/``
with the same fields both fill in the other fields from the stored record and judge the merged
record by the service's rule (``users_svc.rules`` …), but they get there by different roads:
the bulk one decodes with msgspec and reads the stored rows in one query per chunk
(``common.data.changes.apply_updates``), the endpoint decodes with orjson and reads the record
through the ORM. An order's user and product are checked against their services, on the bulk
road only when they change.

Hypothesis sends the same partial record both ways to two records stored alike (twins) and
checks that both are accepted or both refused with the same messages, and that both twins are
then stored alike. The values are those of ``test_rules_parity`` (wrong types, blanks, huge
numbers, numbers as strings, floats, bools, nulls, unicode, invisible, control and bidi
characters, digits of other scripts) plus ids of users and products that exist and that do not.
A record with no field at all is left out: the endpoint takes an empty PATCH (nothing changes)
while the bulk road refuses an update with nothing to update (``ingest.actions``).
"""

import json
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orders_svc.models import Order
from products_svc.models import Product
from tests.ingest.skips import skipped_records
from tests.ingest.test_rules_parity import emails, integers, names, prices
from users_svc.models import User

pytestmark = pytest.mark.django_db(databases="__all__")

# The twins (A is changed by PATCH, B in bulk) and what else exists for orders to point at.
USER_A, USER_B, PRODUCT_A, PRODUCT_B, ORDER_A, ORDER_B = 10, 11, 10, 11, 20, 21
BASE = {
    User: {"name": "Alice", "email": "alice@example.com"},
    Product: {"name": "Cable", "price": Decimal("3.50")},
    Order: {"user_id": 1, "product_id": 1, "quantity": 3},
}
TWINS = {User: (USER_A, USER_B), Product: (PRODUCT_A, PRODUCT_B), Order: (ORDER_A, ORDER_B)}
PATHS = {User: "users", Product: "products", Order: "orders"}
FIELDS = {User: ("name", "email"), Product: ("name", "price"), Order: tuple(BASE[Order])}

reference_ids = st.one_of(
    st.sampled_from([1, 2, 999, 10**15, "2", " 2 ", 2.0, 2.5, "٢", True, 0, -1]),
    integers,
)


@pytest.fixture(autouse=True)
def _writes_in_the_test_transaction(settings):
    """These tests run in one transaction per test (hypothesis runs many examples in each):
    the batch's writes must go through it, not through writer threads' own connections, which
    would wait for its lock."""
    settings.INGEST_WRITER_THREADS = False


@pytest.fixture
def twins(db):
    """Users 1 and 2, products 1 and 2 (what orders may point at), and a pair of twins of each
    kind, stored alike."""
    for i in (1, 2):
        User.objects.create(id=i, name=f"User {i}", email=f"u{i}@example.com")
        Product.objects.create(id=i, name=f"Product {i}", price=Decimal("1.00"))
    for model, ids in TWINS.items():
        for record_id in ids:
            model.objects.create(id=record_id, **BASE[model])


def _row(model, record_id: int) -> tuple:
    return model.objects.filter(id=record_id).values_list(*FIELDS[model]).get()


def _row_of(model, values: dict) -> tuple:
    return tuple(values[name] for name in FIELDS[model])


def _verdicts(api, model, fields: dict, **stored) -> tuple[tuple, tuple]:
    """Reset both twins (to ``BASE``, but for the ``stored`` values), change A by PATCH and B
    in bulk with ``fields``; what each road said (``("updated", row)`` or ``("refused",
    messages)``), the row being the stored one."""
    a, b = TWINS[model]
    base = {**BASE[model], **stored}
    model.objects.filter(id__in=(a, b)).update(**base)
    path = PATHS[model]

    single = api.patch(f"/{path}/{a}/", json.dumps(fields), content_type="application/json")
    if single.status_code == 200:
        single_verdict = ("updated", _row(model, a))
    else:
        assert single.status_code == 400, single.content
        single_verdict = ("refused", single.json())

    response = api.generic(
        "POST",
        "/ingest/?action=update",
        json.dumps({path: [{"id": b, **fields}]}),
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    section = response.json()[path]
    if section["updated_ids"] == [b]:
        assert section["skipped"] == 0
        bulk_verdict = ("updated", _row(model, b))
    else:
        [record] = skipped_records(section)
        assert (record["index"], record["id"], record["action"]) == (0, b, "update")
        bulk_verdict = ("refused", record["reasons"])
    if single_verdict[0] == bulk_verdict[0] == "refused":  # nothing changed, on either side
        assert _row(model, a) == _row(model, b) == _row_of(model, base)
    return single_verdict, bulk_verdict


def _at_least_one(**strategies):
    """Partial records: each field present (any value) or missing, at least one present."""
    return st.fixed_dictionaries({}, optional=strategies).filter(bool)


common = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


#: Stored values the twins may start from: odd but valid ones, and ones the rules refuse now
#: (written before a rule was tightened, or behind the service's back), which an update that
#: does not replace them must refuse alike on both roads.
stored_names = st.sampled_from(
    ["Alice", "Zoë", "Jean\u00a0Dupont", "👨\u200d👩\u200d👧", "x" * 255, " padded ", "a\nb", ""]
)
stored_emails = st.sampled_from(["alice@example.com", "zoë@exämple.com", "nope", "a\u202eb@x.io"])
stored_prices = st.sampled_from(
    [Decimal(p) for p in ("3.50", "0.01", "0.10", "100.00", "1234567.89", "9999999999.99", "0")]
)
stored_references = st.sampled_from([1, 2, 777])  # 777: a user or product deleted behind its back


@common
@given(fields=_at_least_one(name=names, email=emails), name=stored_names, email=stored_emails)
def test_user_updates(api, twins, fields, name, email):
    single, bulk = _verdicts(api, User, fields, name=name, email=email)
    assert single == bulk


@common
@given(fields=_at_least_one(name=names, price=prices), name=stored_names, price=stored_prices)
def test_product_updates(api, twins, fields, name, price):
    single, bulk = _verdicts(api, Product, fields, name=name, price=price)
    assert single == bulk
    if single[0] == "updated":  # equal Decimals may still differ in exponent ("10.0", "10.00")
        assert str(single[1][1]) == str(bulk[1][1])


@common
@given(
    fields=_at_least_one(user_id=reference_ids, product_id=reference_ids, quantity=integers),
    user_id=stored_references,
    product_id=stored_references,
)
def test_order_updates(api, twins, fields, user_id, product_id):
    single, bulk = _verdicts(api, Order, fields, user_id=user_id, product_id=product_id)
    assert single == bulk


@pytest.mark.parametrize(
    ("model", "fields", "verdict"),
    [
        (User, {"email": " new@example.com "}, ("updated", ("Alice", "new@example.com"))),
        (User, {"name": "\u200b"}, ("refused", {"name": ["This field may not be blank."]})),
        (Product, {"price": "1e3"}, ("updated", ("Cable", Decimal("1000.00")))),
        (Product, {"price": 0}, ("refused", {"price": ["Ensure this value is greater than 0."]})),
        (Order, {"user_id": "2"}, ("updated", (2, 1, 3))),
        (Order, {"user_id": 999}, ("refused", {"user_id": ["No user has this id."]})),
        (
            Order,
            {"user_id": 999, "product_id": 998, "quantity": 1},
            (
                "refused",
                {"user_id": ["No user has this id."], "product_id": ["No product has this id."]},
            ),
        ),
        (Order, {"quantity": 2.0}, ("updated", (1, 1, 2))),
    ],
)
def test_known_updates_get_the_same_verdict_both_ways(api, twins, model, fields, verdict):
    assert _verdicts(api, model, fields) == (verdict, verdict)


@pytest.mark.parametrize(
    ("fields", "verdict"),
    [
        ({"quantity": 5}, ("updated", (1, 777, 5))),
        ({"product_id": 777, "quantity": 5}, ("updated", (1, 777, 5))),
        ({"user_id": 2}, ("refused", {"product_id": ["No product has this id."]})),
        ({"product_id": 2}, ("updated", (1, 2, 3))),
    ],
)
def test_an_order_whose_product_was_deleted_behind_its_back_is_judged_alike(
    api, twins, fields, verdict
):
    """Product 777 is gone, its orders were left (a row changed by hand). Changing such an
    order's quantity is taken on both roads (a reference is checked when it changes: the
    endpoint checked it always and refused); changing its user is checked like a new order,
    product included; pointing it at a product that exists mends it."""
    assert _verdicts(api, Order, fields, product_id=777) == (verdict, verdict)


@pytest.mark.parametrize(
    ("model", "body"),
    [
        (User, '"name": "Bob", "pad": 1'),
        (User, '"name": "Bob", "name": "Bobby"'),
        (Product, '"price": 5, "price": 6'),
        (Order, '"quantity": 2, "user": 2'),
    ],
)
def test_an_update_with_an_unknown_or_repeated_key_is_refused_both_ways(api, twins, model, body):
    """The messages differ on purpose (the bulk answer names all unknown keys in one message,
    so that many records with made-up keys cannot make it many times the body), the verdict
    does not, and neither twin changes."""
    a, b = TWINS[model]
    path = PATHS[model]
    single = api.patch(f"/{path}/{a}/", "{" + body + "}", content_type="application/json")
    bulk = api.generic(
        "POST",
        "/ingest/?action=update",
        f'{{"{path}": [{{"id": {b}, {body}}}]}}',
        content_type="application/json",
    )
    assert single.status_code == 400
    assert bulk.status_code == 200
    assert bulk.json()[path]["updated_ids"] == []
    assert bulk.json()[path]["skipped"] == 1
    assert _row(model, a) == _row(model, b) == _row_of(model, BASE[model])
