"""Lists: page numbers near the top, cursors all the way down, every ordering, nothing twice.

Each list is read the way a client reads a table: from the first page, following ``next``
(and back along ``previous``), for every ordering the list offers, with many equal values so
that the ``id`` tie-breaker is what keeps rows from being skipped or repeated.
"""

import base64
import random
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext

from orders_svc.models import Order
from products_svc.models import Product
from users_svc.models import User

pytestmark = pytest.mark.django_db(databases="__all__")

ROWS = 23


@pytest.fixture
def tables():
    """23 users, products and orders with many equal names, prices and quantities; ids with
    gaps."""
    rng = random.Random(7)
    ids = sorted(rng.sample(range(1, 200), ROWS))
    User.objects.bulk_create(
        User(id=i, name=rng.choice(["Ann", "Bob", "Cy"]), email=f"{rng.choice('ab')}@x.io")
        for i in ids
    )
    Product.objects.bulk_create(
        Product(id=i, name=rng.choice(["Pen", "Ink"]), price=Decimal(rng.choice(["1.50", "20"])))
        for i in ids
    )
    Order.objects.bulk_create(
        Order(id=i, user_id=rng.choice(ids[:3]), product_id=rng.choice(ids[:2]), quantity=q)
        for i, q in zip(ids, (rng.randint(1, 3) for _ in ids), strict=True)
    )


LISTS = {
    "users": (["id", "name", "email"], lambda r: r),
    "products": (["id", "name", "price"], lambda r: {**r, "price": Decimal(r["price"])}),
    "orders": (["id", "user_id", "product_id", "quantity"], lambda r: r),
}
ORDERINGS = [
    (resource, sign + field)
    for resource, (fields, _) in LISTS.items()
    for field in fields
    for sign in ("", "-")
]


def _expected(resource: str, ordering: str) -> list[int]:
    model = {"users": User, "products": Product, "orders": Order}[resource]
    field = ordering.lstrip("-")
    rows = sorted(model.objects.values_list(field, "id"), reverse=ordering.startswith("-"))
    return [row_id for _, row_id in rows]


def _path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


@pytest.mark.parametrize(("resource", "ordering"), ORDERINGS)
def test_following_next_then_previous_reads_every_row_once_in_order(
    api, tables, resource, ordering
):
    first = api.get(f"/{resource}/?ordering={ordering}&page_size=5").json()
    assert first["count"] == ROWS
    assert first["previous"] is None
    pages = [first]
    while pages[-1]["next"]:
        response = api.get(_path(pages[-1]["next"]))
        assert response.status_code == 200, response.content
        pages.append(response.json())
    assert len(pages) == 5  # 5 + 5 + 5 + 5 + 3
    assert all("count" not in page for page in pages[1:])  # a cursor page costs no count
    seen = [row["id"] for page in pages for row in page["results"]]
    assert seen == _expected(resource, ordering)

    back = [pages[-1]]
    while back[-1]["previous"]:
        back.append(api.get(_path(back[-1]["previous"])).json())
    assert [page["results"] for page in back] == [page["results"] for page in reversed(pages)]


def test_a_numbered_page_links_to_cursors_and_keeps_the_query(api, tables):
    page = api.get("/orders/?ordering=-quantity&page_size=4&page=2&min_quantity=2").json()
    assert page["count"] == Order.objects.filter(quantity__gte=2).count()
    for link in (page["next"], page["previous"]):
        query = parse_qs(urlsplit(link).query)
        assert "page" not in query
        assert query["ordering"] == ["-quantity"]
        assert query["min_quantity"] == ["2"]
        assert query["page_size"] == ["4"]
    previous = api.get(_path(page["previous"])).json()
    assert (
        previous["results"]
        == api.get("/orders/?ordering=-quantity&page_size=4&page=1&min_quantity=2").json()[
            "results"
        ]
    )


def test_rows_written_while_reading_are_neither_skipped_nor_repeated(api, tables):
    first = api.get("/users/?ordering=name&page_size=10").json()
    last_seen = first["results"][-1]
    User.objects.filter(id=first["results"][0]["id"]).delete()  # behind the reader
    User.objects.create(id=500, name="Zed", email="z@x.io")  # ahead of it
    rest = []
    page = first
    while page["next"]:
        page = api.get(_path(page["next"])).json()
        rest += page["results"]
    names = [(row["name"], row["id"]) for row in rest]
    assert names == sorted(names)
    assert names[0] > (last_seen["name"], last_seen["id"])
    assert ("Zed", 500) in names
    assert len(first["results"]) + len(rest) == ROWS + 1


def test_a_page_past_the_depth_a_number_reaches_is_a_400_pointing_at_cursors(api, tables, settings):
    settings.API_MAX_PAGE_DEPTH = 10
    assert api.get("/users/?page_size=5&page=2").status_code == 200
    response = api.get("/users/?page_size=5&page=3&ordering=name")
    assert response.status_code == 400
    message = response.json()["page"][0]
    assert "past row 10" in message
    assert "follow the `next` links" in message
    assert "ordering=-name" in message


def test_the_last_page_within_reach_by_number(api, tables, settings):
    last = api.get("/users/?page_size=5&page=last").json()
    assert [row["id"] for row in last["results"]] == _expected("users", "id")[20:]
    assert (last["count"], last["next"]) == (ROWS, None)
    settings.API_MAX_PAGE_DEPTH = 20
    response = api.get("/users/?page_size=5&page=last&ordering=email")
    assert response.status_code == 400
    assert "ordering=-email" in response.json()["page"][0]


def test_a_page_that_starts_within_the_depth_is_served_whole(api, tables, settings):
    """The review's case: with exactly API_MAX_PAGE_DEPTH rows, page=last (and the page that
    starts at the last row) was refused as starting past the depth."""
    settings.API_MAX_PAGE_DEPTH = 10
    tenth = _expected("users", "id")[9]
    last = api.get(f"/users/?max_id={tenth}&page_size=3&page=last").json()
    assert [row["id"] for row in last["results"]] == [tenth]
    assert (last["count"], last["next"]) == (10, None)
    across = api.get("/users/?page_size=3&page=4").json()  # starts at row 10, reads past it
    assert [row["id"] for row in across["results"]] == _expected("users", "id")[9:12]
    assert api.get("/users/?page_size=3&page=5").status_code == 400


def test_a_page_past_the_end_is_a_404(api, tables):
    response = api.get("/users/?page_size=10&page=4")
    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid page.", "code": "not_found"}


@pytest.mark.parametrize(
    ("query", "field", "says"),
    [
        ("?page_size=1001", "page_size", "from 1 to 1000"),
        ("?page_size=0", "page_size", "from 1 to 1000"),
        ("?page=0", "page", "numbered from 1"),
        ("?page=lastt", "page", "digits 0-9"),
        ("?ordering=bogus", "ordering", "Offered: id, -id, name, -name, email, -email."),
        ("?ordering=name,-email", "ordering", "Sort by one field"),
        ("?ordering=", "ordering", "Unknown ordering"),
        ("?cursor=abc", "cursor", "Not a cursor of this list"),
        ("?cursor=eyJvIjoiaWQiLCJpIjo1fQ&page=2", "cursor", "not both"),
        ("?cursor=eyJvIjoiaWQiLCJpIjo1fQ&ordering=name", "cursor", "ordering=id, not name"),
    ],
)
def test_what_a_list_does_not_offer_is_a_400_naming_it(api, tables, query, field, says):
    response = api.get(f"/users/{query}")
    assert response.status_code == 400, response.content
    assert says in response.json()[field][0]


def _cursor(**fields) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(fields)).rstrip(b"=").decode()


def test_a_cursor_holding_a_lone_surrogate_is_a_400(api, tables):
    """JSON may escape a surrogate that no UTF-8 text holds (orjson will not write one)."""
    raw = b'{"o":"name","i":1,"v":"\\ud800"}'
    cursor = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    response = api.get(f"/users/?cursor={cursor}")
    assert response.status_code == 400, response.content


@pytest.mark.parametrize(
    ("resource", "fields"),
    [
        ("users", {"o": "name", "i": 1, "v": 5}),  # a number for a text column
        ("users", {"o": "name", "i": 1}),  # no value
        ("users", {"o": "name", "i": "1", "v": "Ann"}),  # a text id
        ("users", {"o": "name", "i": 2**63, "v": "Ann"}),  # past 64 bits
        ("users", {"o": "name", "i": 1, "v": "A" * 300}),  # longer than the column
        ("users", {"o": "name", "i": 1, "v": "Ann", "x": 1}),  # an unknown key
        ("users", {"o": "quantity", "i": 1, "v": 1}),  # another list's ordering
        ("products", {"o": "price", "i": 1, "v": "NaN"}),
        ("products", {"o": "price", "i": 1, "v": 1.5}),  # money as a float
        ("orders", {"o": "quantity", "i": 1, "v": True}),
        # The review's 500s on PostgreSQL: values no row can hold, which it refused itself.
        ("users", {"o": "name", "i": 1, "v": "\u0000"}),
        ("users", {"o": "email", "i": 1, "v": "a\u0000"}),
        ("products", {"o": "price", "i": 1, "v": "1E+999999999"}),
        ("products", {"o": "price", "i": 1, "v": "1E-16384"}),
        ("products", {"o": "price", "i": 1, "v": "10000000000"}),  # 11 digits before the point
        ("products", {"o": "price", "i": 1, "v": "1.005"}),  # 3 decimals
        ("users", {"o": "name", "i": 1, "v": "Ann", "b": True}),
        ("users", {"o": "name", "i": 1, "v": "Ann", "b": 2}),
    ],
)
def test_a_forged_cursor_is_a_400_not_a_500(api, tables, resource, fields):
    response = api.get(f"/{resource}/?cursor={_cursor(**fields)}")
    assert response.status_code == 400, response.content
    assert "Not a cursor of this list" in response.json()["cursor"][0]


def test_a_cursor_made_by_hand_from_a_position_reads_from_there(api, tables):
    price, row_id = Product.objects.order_by("price", "id").values_list("price", "id")[10]
    cursor = _cursor(o="price", i=row_id, v=str(price))
    page = api.get(f"/products/?cursor={cursor}&page_size=100").json()
    assert [row["id"] for row in page["results"]] == _expected("products", "price")[11:]
    assert page["next"] is None
    assert page["previous"]


def test_the_count_stops_at_the_depth_a_page_number_reaches_and_says_so(api, tables, settings):
    """An exact count walks the whole table on every first page (12 ms for a million users on
    SQLite); like Elasticsearch's total it stops at 10,000 (here 10), and says it did."""
    settings.API_MAX_PAGE_DEPTH = 10
    with CaptureQueriesContext(connections["users"]) as queries:
        first = api.get("/users/?page_size=5").json()
    assert (first["count"], first["count_exact"]) == (10, False)
    count_sql = next(q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper())
    assert "LIMIT 11" in count_sql.upper()
    second = api.get("/users/?page_size=5&page=2").json()
    assert second["next"]  # more rows than the count says: the links go on
    assert [r["id"] for r in second["results"]] == _expected("users", "id")[5:10]
    small = api.get("/users/?page_size=5&name=Ann").json()
    assert "count_exact" not in small
    assert small["count"] == User.objects.filter(name="Ann").count()


def test_the_links_keep_the_query_string_as_the_client_wrote_it(api, tables):
    """A link of ?id__in=1,2,3 with each comma written %2C (DRF's way) was 5,957 characters
    for 1,000 ids: past the request line gunicorn takes, the server's own next was a 414."""
    ids = ",".join(map(str, _expected("users", "id")))
    page = api.get(f"/users/?id__in={ids}&page_size=2&ordering=-email").json()
    assert page["next"].startswith(f"http://testserver/users/?id__in={ids}&page_size=2&")
    assert page["next"].count("cursor=") == 1
    assert "%2C" not in page["next"]
    after = api.get(_path(page["next"])).json()
    previous = api.get(_path(after["previous"])).json()
    assert "page=" not in after["previous"]
    assert previous["results"] == page["results"]


def test_the_jobs_list_refuses_page_zero_as_the_lists_do(api):
    response = api.get("/ingest/jobs/?page=0")
    assert response.status_code == 400
    assert response.json() == {"page": ["Pages are numbered from 1."]}
