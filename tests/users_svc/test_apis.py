"""/users/: what a client sees, and what lands in the users database."""
# ruff: noqa: RUF001 (look-alike and invisible characters are the point of some cases)

import orjson
import pytest

from orders_svc.models import Order
from products_svc.models import Product
from tests.factories import make_order, make_product, make_user
from users_svc.models import User
from users_svc.services import users_bulk_insert

pytestmark = pytest.mark.django_db(databases="__all__")

CONTROL = (
    "Control characters (newlines, tabs, line separators and other non-printing codes) "
    "are not allowed."
)
BIDI = "Bidirectional override characters (U+202A to U+202E, U+2066 to U+2069) are not allowed."
BLANK = "This field may not be blank."
UNKNOWN = "Unknown field. The fields of a user are: name, email."


def _rows():
    """Every row of every service's database, as a client would check them."""
    return (
        list(User.objects.values_list("id", "name", "email")),
        Product.objects.count(),
        Order.objects.count(),
    )


def test_create_user_returns_201_and_writes_the_users_database(api):
    response = api.post("/users/", {"name": "  Alice ", "email": "alice@example.com"})
    assert response.status_code == 201
    body = response.json()
    assert body == {"id": body["id"], "name": "Alice", "email": "alice@example.com"}
    assert list(User.objects.using("users").values_list("name", "email")) == [
        ("Alice", "alice@example.com")
    ]


@pytest.mark.parametrize(
    ("payload", "errors"),
    [
        ({"name": "", "email": "jane@example.com"}, {"name": ["This field may not be blank."]}),
        ({"name": "   ", "email": "jane@example.com"}, {"name": ["This field may not be blank."]}),
        (
            {"name": "Jane", "email": "jane.example.com"},
            {"email": ["Enter a valid email address."]},
        ),
        ({"name": "Jane"}, {"email": ["This field is required."]}),
        ({"email": "jane@example.com"}, {"name": ["This field is required."]}),
        (
            {"name": None, "email": None},
            {"name": ["This field may not be null."], "email": ["This field may not be null."]},
        ),
        ({"name": 7, "email": "jane@example.com"}, {"name": ["Not a valid string."]}),
        (
            {"name": "x" * 256, "email": "jane@example.com"},
            {"name": ["Ensure this field has no more than 255 characters."]},
        ),
        (
            {"name": "Ja\x00ne", "email": "jane@example.com"},
            {"name": ["Null characters are not allowed."]},
        ),
    ],
)
def test_invalid_user_is_a_400_with_field_messages_and_nothing_written(api, payload, errors):
    response = api.post("/users/", payload)
    assert response.status_code == 400
    assert response.json() == errors
    assert not User.objects.exists()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            '{"name": "Jane",',
            {
                "detail": "JSON parse error - unexpected end of data: line 1 column 17 (char 16)",
                "code": "parse_error",
            },
        ),
        ("[1, 2]", {"non_field_errors": ["Expected a JSON object, got array."]}),
        ('"Jane"', {"non_field_errors": ["Expected a JSON object, got string."]}),
        ("null", {"non_field_errors": ["Expected a JSON object, got null."]}),
        ("7", {"non_field_errors": ["Expected a JSON object, got number."]}),
        ("", {"name": ["This field is required."], "email": ["This field is required."]}),
    ],
)
def test_malformed_or_wrong_shape_body_is_a_400(api, body, expected):
    response = api.generic("POST", "/users/", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == expected
    assert _rows() == ([], 0, 0)


def test_unsupported_content_type_is_a_415(api):
    response = api.generic("POST", "/users/", "name=x", content_type="text/plain")
    assert response.status_code == 415
    assert response.json() == {
        "detail": 'Unsupported media type "text/plain" in request.',
        "code": "unsupported_media_type",
    }
    assert _rows() == ([], 0, 0)


@pytest.mark.parametrize(
    ("payload", "errors"),
    [
        # Only invisible characters: blank.
        ({"name": "\u200b", "email": "jane@example.com"}, {"name": [BLANK]}),
        (
            {"name": "\u200b\u200c\u200d\u2060\ufeff", "email": "jane@example.com"},
            {"name": [BLANK]},
        ),
        ({"name": " \u3164 \u2800", "email": "jane@example.com"}, {"name": [BLANK]}),
        # Control characters and separators inside the name.
        ({"name": "Ja\nne", "email": "jane@example.com"}, {"name": [CONTROL]}),
        ({"name": "Ja\r\nne", "email": "jane@example.com"}, {"name": [CONTROL]}),
        ({"name": "Ja\tne", "email": "jane@example.com"}, {"name": [CONTROL]}),
        ({"name": "Jane\x1b[2J", "email": "jane@example.com"}, {"name": [CONTROL]}),
        ({"name": "Ja\x7fne", "email": "jane@example.com"}, {"name": [CONTROL]}),
        ({"name": "Ja\x85ne", "email": "jane@example.com"}, {"name": [CONTROL]}),
        ({"name": "Ja\u2028ne", "email": "jane@example.com"}, {"name": [CONTROL]}),
        # Bidi overrides and isolates.
        ({"name": "\u202egnp.exe", "email": "jane@example.com"}, {"name": [BIDI]}),
        ({"name": "Jane\u2066Doe", "email": "jane@example.com"}, {"name": [BIDI]}),
        # Emails go through the same text rules first.
        ({"name": "Jane", "email": '"ja\x01ne"@example.com'}, {"email": [CONTROL]}),
        ({"name": "Jane", "email": "jane@exa\u202emple.com"}, {"email": [BIDI]}),
        (
            {"name": "Ja\u202ene", "email": "jane@exa\u2067mple.com"},
            {"name": [BIDI], "email": [BIDI]},
        ),
    ],
)
def test_invisible_control_and_bidi_characters_are_a_400_and_nothing_written(api, payload, errors):
    response = api.post("/users/", payload)
    assert response.status_code == 400
    assert response.json() == errors
    assert _rows() == ([], 0, 0)


@pytest.mark.parametrize(
    "name",
    [
        "Zoë Ångström",
        "李小龍",
        "👨\u200d👩\u200d👧",
        "Jean\u00a0Dupont",
        "מרים כהן",
        "O'Brien-Smith",
    ],
)
def test_legitimate_names_are_stored_as_sent(api, name):
    response = api.post("/users/", {"name": name, "email": "jane@example.com"})
    assert response.status_code == 201
    assert response.json() == {
        "id": response.json()["id"],
        "name": name,
        "email": "jane@example.com",
    }
    assert _rows() == ([(response.json()["id"], name, "jane@example.com")], 0, 0)


def test_a_repeated_key_is_a_400_even_when_its_last_value_is_valid(api):
    # orjson keeps the last value ("Alice", valid): only the parser's own check refuses this.
    body = '{"name": "", "name": "Alice", "email": "alice@example.com"}'
    response = api.generic("POST", "/users/", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {
        "detail": "JSON parse error - the key 'name' appears more than once in an object; "
        "send each key once.",
        "code": "parse_error",
    }
    assert _rows() == ([], 0, 0)


def test_a_repeated_key_in_an_update_changes_nothing(api):
    user = make_user()
    body = '{"name": "Alicia", "email": "x@example.com", "email": "alicia@example.com"}'
    for method in ("PUT", "PATCH"):
        response = api.generic(method, f"/users/{user.id}/", body, content_type="application/json")
        assert response.status_code == 400, method
        assert "the key 'email' appears more than once" in response.json()["detail"]
    assert _rows() == ([(user.id, "Alice", "alice@example.com")], 0, 0)


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_an_unknown_field_is_a_400_naming_it_and_nothing_written(api, method):
    user = make_user()
    url = "/users/" if method == "POST" else f"/users/{user.id}/"
    payload = {"name": "Jane", "email": "jane@example.com", "pad": [{}, {}], "emial": "x"}
    response = api.generic(method, url, orjson.dumps(payload), content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"pad": [UNKNOWN], "emial": [UNKNOWN]}
    assert _rows() == ([(user.id, "Alice", "alice@example.com")], 0, 0)


def test_unknown_fields_are_reported_with_the_field_errors(api):
    response = api.post("/users/", {"name": " ", "email": "jane@example.com", "age": 7})
    assert response.status_code == 400
    assert response.json() == {"name": [BLANK], "age": [UNKNOWN]}
    assert _rows() == ([], 0, 0)


def test_an_unknown_field_in_a_form_post_is_a_400_too(api):
    body = "name=Jane&email=jane%40example.com&pad=1"
    response = api.generic(
        "POST", "/users/", body, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 400
    assert response.json() == {"pad": [UNKNOWN]}
    assert _rows() == ([], 0, 0)


def test_many_unknown_fields_name_the_first_twenty_only(api):
    payload = {"name": "Jane", "email": "jane@example.com"} | {f"k{i}": 0 for i in range(5000)}
    response = api.post("/users/", payload)
    assert response.status_code == 400
    body = response.json()
    assert body == {
        **{f"k{i}": [UNKNOWN] for i in range(20)},
        "non_field_errors": ["5000 unknown fields in all; the first 20 are named."],
    }
    assert len(response.content) < len(orjson.dumps(payload))
    assert _rows() == ([], 0, 0)


def test_an_update_may_send_back_what_it_read(api):
    user = make_user()
    read = api.get(f"/users/{user.id}/").json()
    response = api.put(f"/users/{user.id}/", {**read, "name": "Alicia"})
    assert response.status_code == 200
    assert response.json() == {"id": user.id, "name": "Alicia", "email": "alice@example.com"}
    response = api.patch(f"/users/{user.id}/", {"id": user.id, "email": "al@example.com"})
    assert response.status_code == 200
    assert _rows() == ([(user.id, "Alicia", "al@example.com")], 0, 0)


def test_an_id_that_is_not_the_records_own_is_a_400(api):
    user = make_user()
    for method in ("PUT", "PATCH"):
        for other in (user.id + 1, str(user.id), None, True):
            payload = {"id": other, "name": "Alicia", "email": "alicia@example.com"}
            response = api.generic(
                method, f"/users/{user.id}/", orjson.dumps(payload), content_type="application/json"
            )
            assert response.status_code == 400, (method, other)
            assert response.json() == {
                "id": [
                    f"This is user {user.id}: the id cannot be changed "
                    f"(send {user.id}, or leave it out)."
                ]
            }
    assert _rows() == ([(user.id, "Alice", "alice@example.com")], 0, 0)


def test_a_create_with_an_id_is_a_400_and_a_null_id_is_ignored(api):
    response = api.post("/users/", {"id": 77, "name": "Jane", "email": "jane@example.com"})
    assert response.status_code == 400
    assert response.json() == {
        "id": [
            "The id of a new user is assigned by the service; leave it out "
            "(POST /ingest/ takes records with chosen ids)."
        ]
    }
    assert _rows() == ([], 0, 0)
    response = api.post("/users/", {"id": None, "name": "Jane", "email": "jane@example.com"})
    assert response.status_code == 201
    assert _rows() == ([(response.json()["id"], "Jane", "jane@example.com")], 0, 0)


MIB = 1024 * 1024
TOO_LARGE = {
    "detail": f"Request body is larger than the limit of {MIB} bytes (API_MAX_BODY_BYTES); "
    "POST /ingest/ takes batches.",
    "code": "payload_too_large",
}


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_a_body_above_one_mib_is_a_413_naming_the_setting(api, method):
    user = make_user()
    url = "/users/" if method == "POST" else f"/users/{user.id}/"
    # The review's body: valid fields padded with an unknown field to just over the limit.
    body = b'{"name": "Jane", "email": "jane@example.com", "pad": [' + b"{}," * (MIB // 3) + b"{}]}"
    assert len(body) > MIB
    response = api.generic(method, url, body, content_type="application/json")
    assert response.status_code == 413
    assert response.json() == TOO_LARGE
    assert _rows() == ([(user.id, "Alice", "alice@example.com")], 0, 0)


def test_a_form_body_above_the_limit_is_a_413_naming_the_setting_too(api):
    body = "name=Jane&email=jane%40example.com&pad=" + "x" * MIB
    response = api.generic(
        "POST", "/users/", body, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 413
    assert response.json() == TOO_LARGE
    assert _rows() == ([], 0, 0)


def test_a_body_within_the_limit_is_read(api):
    body = b'{"name": "Jane", "email": "jane@example.com"}' + b" " * (MIB - 100)
    response = api.generic("POST", "/users/", body, content_type="application/json")
    assert response.status_code == 201
    assert _rows() == ([(response.json()["id"], "Jane", "jane@example.com")], 0, 0)


def test_the_body_limit_is_configurable(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    response = api.post(
        "/users/", {"name": "J" * 200, "email": "jane@example.com", "x": "y" * 3000}
    )
    assert response.status_code == 413
    assert response.json()["detail"].startswith(
        "Request body is larger than the limit of 2048 bytes (API_MAX_BODY_BYTES)"
    )
    assert _rows() == ([], 0, 0)


def test_list_is_paginated_filtered_and_ordered(api):
    for name, email in [
        ("Alice", "alice@example.com"),
        ("Bob", "bob@example.com"),
        ("alice", "alice2@example.com"),
        ("Charlie", "c@example.com"),
    ]:
        make_user(name, email)
    body = api.get("/users/").json()
    assert body["count"] == 4
    assert [u["name"] for u in body["results"]] == ["Alice", "Bob", "alice", "Charlie"]

    assert [u["email"] for u in api.get("/users/?name=ALICE").json()["results"]] == [
        "alice@example.com",
        "alice2@example.com",
    ]
    assert [u["name"] for u in api.get("/users/?email=BOB@example.com").json()["results"]] == [
        "Bob"
    ]
    assert [u["name"] for u in api.get("/users/?name_contains=har").json()["results"]] == [
        "Charlie"
    ]
    assert [u["name"] for u in api.get("/users/?ordering=-id").json()["results"]] == [
        "Charlie",
        "alice",
        "Bob",
        "Alice",
    ]

    page = api.get("/users/?page_size=3&page=2").json()
    assert page["count"] == 4
    assert [u["name"] for u in page["results"]] == ["Charlie"]
    assert page["previous"]
    assert page["next"] is None


def test_retrieve_and_404s(api):
    user = make_user()
    assert api.get(f"/users/{user.id}/").json() == {
        "id": user.id,
        "name": "Alice",
        "email": "alice@example.com",
    }
    response = api.get("/users/999999/")
    assert response.status_code == 404
    assert response.json() == {"detail": "No User matches the given query.", "code": "not_found"}
    for url in ("/users/abc/", "/users/99999999999999999999999/", "/users/١٠/"):
        response = api.get(url)
        assert response.status_code == 404, url
        assert response.json() == {
            "detail": f"No endpoint at {url}. See / for the list.",
            "code": "not_found",
        }
    response = api.get("/users/?page=99")
    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid page.", "code": "not_found"}


@pytest.mark.usefixtures("id_counters_restored")
def test_the_largest_id_has_its_url_and_one_above_it_is_a_404(api):
    """Ids take up to 19 digits (2**63-1); a larger number is no record, never an overflow."""
    largest = 2**63 - 1
    users_bulk_insert([(largest, "Max", "max@example.com")])
    assert api.get(f"/users/{largest}/").json()["id"] == largest
    assert api.patch(f"/users/{largest}/", {"name": "Maxi"}, format="json").status_code == 200
    for too_large in (largest + 1, 10**19 - 1):
        response = api.get(f"/users/{too_large}/")
        assert response.status_code == 404, too_large
        assert response.json() == {
            "detail": "No User matches the given query.",
            "code": "not_found",
        }
    assert api.delete(f"/users/{largest}/").status_code == 204
    assert not User.objects.exists()


def test_put_replaces_and_patch_changes_one_field(api):
    user = make_user()
    response = api.put(f"/users/{user.id}/", {"name": "Alicia", "email": "alicia@example.com"})
    assert response.status_code == 200
    assert response.json() == {"id": user.id, "name": "Alicia", "email": "alicia@example.com"}
    response = api.patch(f"/users/{user.id}/", {"email": "al@example.com"})
    assert response.status_code == 200
    assert response.json()["name"] == "Alicia"
    user.refresh_from_db()
    assert (user.name, user.email) == ("Alicia", "al@example.com")


def test_put_without_a_field_and_bad_patch_are_400s_and_change_nothing(api):
    user = make_user()
    response = api.put(f"/users/{user.id}/", {"name": "Alicia"})
    assert response.status_code == 400
    assert response.json() == {"email": ["This field is required."]}
    response = api.patch(f"/users/{user.id}/", {"name": " "})
    assert response.status_code == 400
    assert response.json() == {"name": [BLANK]}
    response = api.patch(f"/users/{user.id}/", {"name": "\u200b"})
    assert response.status_code == 400
    assert response.json() == {"name": [BLANK]}
    assert _rows() == ([(user.id, "Alice", "alice@example.com")], 0, 0)


def test_delete_unreferenced_user(api):
    user = make_user()
    assert api.delete(f"/users/{user.id}/").status_code == 204
    assert not User.objects.exists()
    assert api.delete(f"/users/{user.id}/").status_code == 404


def test_delete_referenced_user_is_a_409_saying_how_many_orders(api):
    user, product = make_user(), make_product()
    make_order(user.id, product.id)
    make_order(user.id, product.id, quantity=3)
    response = api.delete(f"/users/{user.id}/")
    assert response.status_code == 409
    body = response.json()
    assert body["references"] == {"orders": 2}
    assert body["detail"] == (
        f"User {user.id} is still referenced by 2 orders; delete or change those first."
    )
    assert User.objects.filter(id=user.id).exists()
    assert Order.objects.count() == 2


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("?nam=alice", "nam"),
        ("?serch=alice", "serch"),
        ("?name=a&name=b", "name"),
        ("?page=1&page=2", "page"),
        ("?user_id__in=1,2", "user_id__in"),
    ],
)
def test_a_list_refuses_unknown_and_repeated_query_parameters(api, query, named):
    response = api.get(f"/users/{query}")
    assert response.status_code == 400, response.content
    assert named in response.json()


def test_a_list_takes_its_filters_ordering_and_page(api):
    response = api.get("/users/?name=alice&name_contains=li&ordering=-name&page=1&page_size=5")
    assert response.status_code == 200, response.content
    assert api.get("/users/1/?format=json").status_code == 404  # no such user, but no 400


@pytest.mark.parametrize(
    "query", ["?page=%D9%A2", "?page_size=%D9%A1", "?page=%EF%BC%91", "?page=-1"]
)
def test_page_numbers_and_sizes_take_ascii_digits_only(api, query):
    response = api.get(f"/users/{query}")
    assert response.status_code == 400, response.content
    assert query[1:].split("=")[0] in response.json()
