"""GET /users/export/: the users, as POST /ingest/ takes them back, filtered as the list is."""

import pytest

from tests.export_parity import assert_every_filter_selects_what_the_list_selects, exported_ids
from tests.factories import make_user
from users_svc.filters import UserFilter

pytestmark = pytest.mark.django_db(databases="__all__")


@pytest.fixture
def users():
    return [
        make_user("Alice", "alice@example.com"),
        make_user("alice", "ALICE@example.com"),
        make_user("Malice", "m@example.com"),
        make_user("Bob", "bob@example.org"),
    ]


def test_every_filter_of_the_list_selects_the_same_users(api, users):
    assert_every_filter_selects_what_the_list_selects(
        api,
        "users",
        UserFilter,
        {
            "name": ["alice", "BOB", "nobody"],
            "name_contains": ["lic", "o", "zz"],
            "email": ["alice@example.com", "bob@example.org"],
            "id__in": ["1,2,3", "2", "999999"],
            "min_id": [1, 3, 999999],
            "max_id": [2, 999999],
            "search": ["ALICE", "example.org", "zz"],
        },
    )


def test_the_filters_select_what_they_say(api, users):
    alice, lower_alice, malice, bob = users
    assert exported_ids(api, "/users/export/?name=ALICE") == [alice.id, lower_alice.id]
    assert exported_ids(api, "/users/export/?name_contains=lic") == [
        alice.id,
        lower_alice.id,
        malice.id,
    ]
    assert exported_ids(api, "/users/export/?email=alice@example.com&name=alice") == [
        alice.id,
        lower_alice.id,
    ]
    assert exported_ids(api, "/users/export/?name=Bob&format=ndjson") == [bob.id]
