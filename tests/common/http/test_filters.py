"""The filters a DRF user reaches for work, or are a 400: never silently ignored."""

import pytest

from tests.factories import make_order, make_product, make_user

pytestmark = pytest.mark.django_db(databases="__all__")


@pytest.fixture
def rows():
    users = [
        make_user("Alice", "alice@example.com"),
        make_user("Bob", "bob@alice.org"),
        make_user("Carol", "carol@example.com"),
    ]
    products = [make_product("Laptop", "1000"), make_product("Lamp", "20"), make_product("Pen")]
    orders = [
        make_order(users[0].id, products[0].id, 1),
        make_order(users[1].id, products[1].id, 2),
        make_order(users[2].id, products[2].id, 3),
        make_order(users[2].id, products[0].id, 4),
    ]
    return users, products, orders


def _ids(api, path: str) -> list[int]:
    response = api.get(path)
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def test_id_sets_and_ranges(api, rows):
    users, products, orders = rows
    u = [user.id for user in users]
    assert _ids(api, f"/users/?id__in={u[2]},{u[0]},999") == [u[0], u[2]]
    assert _ids(api, f"/users/?min_id={u[1]}") == u[1:]
    assert _ids(api, f"/users/?min_id={u[0]}&max_id={u[1]}") == u[:2]
    p = [product.id for product in products]
    assert _ids(api, f"/products/?id__in={p[1]}") == [p[1]]
    o = [order.id for order in orders]
    assert _ids(api, f"/orders/?user_id__in={u[2]},{u[1]}") == o[1:]
    assert _ids(api, f"/orders/?product_id__in={p[0]}&ordering=-quantity") == [o[3], o[0]]
    assert _ids(api, f"/orders/?id__in={o[0]},{o[3]}&max_quantity=3") == [o[0]]


def test_search_looks_in_names_and_emails(api, rows):
    users, products, _ = rows
    assert _ids(api, "/users/?search=ALICE") == [users[0].id, users[1].id]  # a name, an email
    assert _ids(api, "/products/?search=la") == [products[0].id, products[1].id]


@pytest.mark.parametrize(
    ("path", "field", "says"),
    [
        ("/users/?name=", "name", "Empty: give a value"),
        ("/users/?search=%20", "search", "Empty: give a value"),
        ("/orders/?user_id=", "user_id", "Empty: give a value"),
        ("/users/?id__in=", "id__in", "Empty: give a value"),
        ("/users/?id__in=1,,2", "id__in", "An empty id between commas"),
        ("/users/?id__in=1,abc", "id__in", "Enter a whole number."),
        ("/users/?id__in=1,0", "id__in", "greater than or equal to 1"),
        ("/orders/?user_id__in=1,%D9%A2", "user_id__in", "Enter a whole number."),
        ("/users/?min_id=x", "min_id", "Enter a whole number."),
        ("/users/?id__in=" + ",".join(map(str, range(1, 1002))), "id__in", "At most 1000 ids"),
    ],
)
def test_a_bad_or_empty_filter_is_a_400_naming_it(api, rows, path, field, says):
    response = api.get(path)
    assert response.status_code == 400, response.content
    assert says in str(response.json()[field])


@pytest.mark.parametrize(
    ("path", "named"),
    [
        ("/orders/?search=1", "search"),  # orders hold numbers only: no text to search
        ("/users/?user_id__in=1", "user_id__in"),
        ("/products/?email=a@b.c", "email"),
        ("/users/?id__gte=2", "id__gte"),
    ],
)
def test_a_filter_a_list_does_not_have_is_a_400_listing_those_it_has(api, rows, path, named):
    response = api.get(path)
    assert response.status_code == 400
    message = response.json()[named][0]
    assert message.startswith("Unknown query parameter. This endpoint takes: ")
    assert "id__in" in message
    assert "cursor" in message


def test_an_unknown_format_is_a_400_naming_the_formats(api, rows):
    """DRF answered ?format=csv with a 404 "Not found.", as if the URL did not exist."""
    response = api.get("/users/?format=csv")
    assert response.status_code == 400
    assert response.json()["format"] == [
        "Must be one of json, api, not 'csv'. The whole table as CSV or NDJSON: /users/export/."
    ]
    user = rows[0][0]
    assert api.get(f"/users/{user.id}/?format=xml").json()["format"] == [
        "Must be one of json, api, not 'xml'."
    ]
    assert api.get("/users/?format=json").status_code == 200


@pytest.mark.parametrize(
    "path", ["/users/?name=%ff", "/orders/?user_id=1&x=%C3", "/ingest/jobs/?state=%e9"]
)
def test_a_query_string_that_is_not_utf8_is_a_400(api, rows, path):
    """Django read %ff as U+FFFD and the list searched for that; bodies refuse such bytes."""
    response = api.get(path)
    assert response.status_code == 400, response.content
    assert response.json()["non_field_errors"][0].startswith("The query string is not UTF-8")


def test_utf8_text_in_a_query_string_is_read_as_sent(api):
    from tests.factories import make_user

    make_user("Zoë", "zoe@example.com")
    assert _ids(api, "/users/?name=zo%C3%AB")  # any case, the UTF-8 of ë
