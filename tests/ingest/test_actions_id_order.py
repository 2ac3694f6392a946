"""Rows that change stored ones are written in id order, chunk by chunk, while the answer keeps
the request's order: each chunk is its own transaction, and SQLite writes every page a
transaction changed to its log at the commit, so a chunk of ids from all over the table
rewrote nearly the whole file each time (``ingest.actions._in_id_order``)."""

import pytest

from common.data import changes
from tests.ingest.test_apis import post
from users_svc.models import User

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True)

IDS = [9, 2, 7, 4, 1, 8]


@pytest.fixture
def written(monkeypatch) -> list[list[int]]:
    """The ids of each users chunk the upsert writes, in the order written."""
    chunks: list[list[int]] = []
    upsert_rows = changes.upsert_rows

    def recording(model, rows):
        if model is User:
            chunks.append([row[0] for row in rows])
        return upsert_rows(model, rows)

    monkeypatch.setattr(changes, "upsert_rows", recording)
    return chunks


def test_an_upsert_writes_its_chunks_in_id_order_and_answers_in_request_order(
    api, settings, written
):
    settings.INGEST_CHUNK_SIZE = 3
    User.objects.create(id=4, name="Old", email="old@example.com")
    users = [{"id": i, "name": f"U{i}", "email": f"u{i}@example.com"} for i in IDS]

    response = post(api, {"users": users}, "?action=upsert")

    assert response.status_code == 200, response.content
    assert written == [[1, 2, 4], [7, 8, 9]]
    body = response.json()["users"]
    assert body["inserted_ids"] == [9, 2, 7, 1, 8]  # the request's order
    assert body["updated_ids"] == [4]
    assert User.objects.get(id=4).name == "U4"
    assert sorted(User.objects.values_list("id", flat=True)) == sorted(IDS)


def test_refused_rows_keep_their_request_indexes(api, settings, written):
    settings.INGEST_CHUNK_SIZE = 2
    users = [{"id": i, "name": f"U{i}", "email": f"u{i}@example.com"} for i in IDS]
    users[1]["email"] = "not an address"  # id 2, index 1
    users[4]["name"] = " "  # id 1, index 4

    body = post(api, {"users": users}, "?action=upsert").json()["users"]

    assert written == [[4, 7], [8, 9]]
    assert body["inserted_ids"] == [9, 7, 4, 8]
    assert [(group["indexes"], group["ids"]) for group in body["skipped_groups"]] == [
        ([1], [2]),
        ([4], [1]),
    ]
