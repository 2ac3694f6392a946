"""Keyset reads (common.data.streams): every row once, in key order, in bounded chunks, one
short query each, never OFFSET, and what a walk sees of rows changed while it runs."""

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext

from common.data.streams import keyset_chunks
from tests.factories import make_user
from users_svc.models import User

pytestmark = pytest.mark.django_db(databases="__all__")

FIELDS = ("id", "name")


def _users(*ids: int) -> None:
    for user_id in ids:
        make_user(f"U{user_id}", f"u{user_id}@example.com", id=user_id)


def test_every_row_once_in_key_order_in_chunks_of_at_most_the_size():
    _users(50, 2, 7, 1, 30, 2**62)
    with CaptureQueriesContext(connections["users"]) as queries:
        chunks = list(keyset_chunks(User.objects.all(), fields=FIELDS, chunk_size=4))
    assert chunks == [
        [(1, "U1"), (2, "U2"), (7, "U7"), (30, "U30")],
        [(50, "U50"), (2**62, "U4611686018427387904")],
    ]
    assert len(queries) == 2
    for query in queries:
        assert "LIMIT 4" in query["sql"]
        assert "OFFSET" not in query["sql"]
    assert '"id" > 30' in queries[1]["sql"]


def test_a_table_that_fills_its_last_chunk_takes_one_more_query_that_finds_nothing():
    _users(1, 2, 3, 4)
    with CaptureQueriesContext(connections["users"]) as queries:
        chunks = list(keyset_chunks(User.objects.all(), fields=FIELDS, chunk_size=2))
    assert [len(chunk) for chunk in chunks] == [2, 2]
    assert len(queries) == 3


def test_an_empty_table_is_no_chunk_and_one_query():
    with CaptureQueriesContext(connections["users"]) as queries:
        assert list(keyset_chunks(User.objects.all(), fields=FIELDS, chunk_size=10)) == []
    assert len(queries) == 1


def test_nothing_is_read_before_the_first_chunk_is_asked_for_nor_after_the_reader_stops():
    _users(1, 2, 3, 4, 5)
    with CaptureQueriesContext(connections["users"]) as queries:
        chunks = keyset_chunks(User.objects.all(), fields=FIELDS, chunk_size=2)
        assert len(queries) == 0
        assert next(chunks) == [(1, "U1"), (2, "U2")]
        chunks.close()
        assert list(chunks) == []
    assert len(queries) == 1


def test_the_querysets_filters_and_not_its_ordering_hold_in_every_chunk():
    _users(1, 2, 3, 4, 5, 6)
    User.objects.filter(id__in=[2, 5]).update(name="skip")
    odd_first = User.objects.exclude(name="skip").order_by("-name")
    chunks = list(keyset_chunks(odd_first, fields=FIELDS, chunk_size=2))
    assert chunks == [[(1, "U1"), (3, "U3")], [(4, "U4"), (6, "U6")]]


def test_rows_come_as_tuples_not_model_instances():
    _users(1)
    ((row,),) = keyset_chunks(User.objects.all(), fields=("id", "name", "email"), chunk_size=5)
    assert type(row) is tuple
    assert row == (1, "U1", "u1@example.com")


def test_a_walk_is_not_a_snapshot_but_no_row_comes_twice_or_out_of_order():
    _users(*range(1, 11))
    chunks = keyset_chunks(User.objects.all(), fields=FIELDS, chunk_size=3)
    seen = list(next(chunks))  # 1, 2, 3
    # Meanwhile: rows before the walk's position deleted (an OFFSET page would shift and skip
    # one), a row ahead changed and one ahead deleted, a row inserted behind and one ahead.
    User.objects.filter(id__in=[1, 2]).delete()
    User.objects.filter(id=5).update(name="changed")
    User.objects.filter(id=8).delete()
    make_user("behind", "behind@example.com", id=2)
    make_user("ahead", "ahead@example.com", id=11)
    for chunk in chunks:
        seen.extend(chunk)
    assert [row[0] for row in seen] == [1, 2, 3, 4, 5, 6, 7, 9, 10, 11]
    names = dict(seen)
    assert names[2] == "U2"  # the new row 2 was behind: the walk still has the old one
    assert names[5] == "changed"
    assert names[11] == "ahead"
