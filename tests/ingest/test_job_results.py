"""A finished job as Salesforce's Bulk API shows one: a small summary, and results to download.

The summary (``GET /ingest/jobs/<id>/``, the list, the 202) has counts per type and outcome
and links, and stays a few hundred bytes whatever the batch. ``results/`` streams one NDJSON
line per record, by type then index, every record in exactly one outcome; ``response/`` is the
body a synchronous ingest answers. Checked against the rows in each database.
"""

import csv
import importlib
import io
import json
import uuid

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model

from ingest import job_results, jobs
from ingest.models import IngestJob, IngestJobResultBlock
from orders_svc.models import Order
from products_svc.models import Product
from tests.ingest.job_downloads import by_outcome, response_of, results_of
from tests.ingest.test_jobs import SEED, post, wait_for
from users_svc.models import User

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True, reset_sequences=True)

OUTCOME_KEYS = ["received", "valid", "inserted", "updated", "deleted", "skipped", "unprocessed"]


def run_job(api, body, query="?async=true", content_type="application/json"):
    """Submit a batch as a job and wait until it has finished; its summary."""
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    response = api.generic("POST", f"/ingest/{query}", data, content_type=content_type)
    assert response.status_code == 202, response.content
    return wait_for(api, response["Location"])


def assert_every_record_once(results, received: dict[str, int]):
    """One line per record of the batch, by type then index, each with one outcome."""
    keys = [(line["type"], line["index"]) for line in results]
    expected = [
        (name, i) for name in ("users", "products", "orders") for i in range(received[name])
    ]
    assert keys == expected


# --- the summary -------------------------------------------------------------------------------


def test_a_finished_jobs_summary_has_its_counts_and_links_and_no_ids(api):
    job = run_job(api, SEED)
    assert job["state"] == "succeeded"
    assert "result" not in job
    assert (job["progress"], job["processed"], job["total"]) == (1.0, 30, 30)
    assert job["took_ms"] >= 0
    assert job["counts"] == {
        "users": dict(zip(OUTCOME_KEYS, [10, 9, 9, 0, 0, 1, 0], strict=True)),
        "products": dict(zip(OUTCOME_KEYS, [10, 9, 9, 0, 0, 1, 0], strict=True)),
        "orders": dict(zip(OUTCOME_KEYS, [10, 7, 7, 0, 0, 3, 0], strict=True)),
        "total": dict(zip(OUTCOME_KEYS, [30, 25, 25, 0, 0, 5, 0], strict=True)),
    }
    url = f"http://testserver/ingest/jobs/{job['id']}/"
    assert job["links"] == {
        "results": f"{url}results/",
        "skipped": f"{url}results/?outcome=skipped",
        "unprocessed": f"{url}results/?outcome=unprocessed",
        "response": f"{url}response/",
    }
    listed = api.get("/ingest/jobs/").json()["results"]
    assert listed == [job]


def test_a_queued_jobs_summary_has_no_counts_and_no_links(api, monkeypatch):
    monkeypatch.setattr(jobs, "dispatch", lambda job_id: None)
    response = post(api, SEED)
    assert response.status_code == 202
    job = response.json()
    assert (job["state"], job["counts"], job["progress"]) == ("queued", None, 0.0)
    assert set(job["links"].values()) == {None}
    assert api.get(job["url"]).json() == job  # the 202 shows the same summary as the GET


def test_the_summary_of_a_50000_record_job_is_a_few_hundred_bytes(api):
    users = [{"name": f"U{i}", "email": f"u{i}@example.com"} for i in range(50_000)]
    users[7] = {"name": "", "email": "x@example.com"}
    job = run_job(api, {"users": users})
    assert job["state"] == "succeeded", job["error"]
    assert job["counts"]["users"]["inserted"] == 49_999
    summary = api.get(job["url"]).content
    assert len(summary) < 2048, len(summary)
    assert len(api.get("/ingest/jobs/").content) < 2048
    # The results are stored compactly: ids in order and one outcome cost almost nothing (5 KB
    # on PostgreSQL, whose concurrent writers interleave the ids; 2 KB on SQLite).
    stored = IngestJobResultBlock.objects.filter(job_id=job["id"]).values_list("data", flat=True)
    assert sum(len(data) for data in stored) < 50_000  # under a byte per record
    assert len(results_of(api, job)) == 50_000


# --- per-record results ------------------------------------------------------------------------


def test_every_record_of_an_insert_only_batch_has_one_result_with_its_id(api):
    job = run_job(api, SEED)
    results = results_of(api, job)
    assert_every_record_once(results, {"users": 10, "products": 10, "orders": 10})
    assert "line" not in results[0]  # a JSON body has no lines
    assert results[0] == {
        "type": "users",
        "index": 0,
        "id": 1,
        "action": "insert",
        "outcome": "inserted",
    }
    outcomes = by_outcome(results)
    assert set(outcomes) == {"inserted", "skipped"}
    inserted = {(r["type"], r["id"]) for r in outcomes["inserted"]}
    stored = {("users", i) for i in User.objects.values_list("id", flat=True)}
    stored |= {("products", i) for i in Product.objects.values_list("id", flat=True)}
    stored |= {("orders", i) for i in Order.objects.values_list("id", flat=True)}
    assert inserted == stored
    assert [(r["type"], r["index"], r["id"]) for r in outcomes["skipped"]] == [
        ("users", 9, 10),
        ("products", 9, 10),
        ("orders", 7, 8),
        ("orders", 8, 9),
        ("orders", 9, 10),
    ]
    assert outcomes["skipped"][0]["reasons"] == {"name": ["This field may not be blank."]}
    assert "reasons" not in outcomes["inserted"][0]


def test_results_narrow_by_outcome_and_type(api):
    job = run_job(api, SEED)
    everything = results_of(api, job)
    skipped = results_of(api, job, "?outcome=skipped")
    assert skipped == [r for r in everything if r["outcome"] == "skipped"]
    assert results_of(api, api.get(job["url"]).json(), "?outcome=Skipped") == skipped  # any case
    orders = results_of(api, job, "?type=orders")
    assert orders == [r for r in everything if r["type"] == "orders"]
    both = results_of(api, job, "?type=orders&outcome=inserted")
    assert [r["id"] for r in both] == list(range(1, 8))
    assert results_of(api, job, "?outcome=deleted") == []


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("?outcome=bogus", "outcome"),
        ("?type=user", "type"),
        ("?outcome=skipped&outcome=inserted", "outcome"),
        ("?page=2", "page"),
        ("?outcomes=skipped", "outcomes"),
    ],
)
def test_the_results_refuse_unknown_values_and_parameters(api, query, named):
    job = run_job(api, {"users": [{"name": "A", "email": "a@example.com"}]})
    response = api.get(job["links"]["results"].split("?")[0] + query)
    assert response.status_code == 400, response.content
    assert named in response.json()
    assert api.get(job["links"]["response"] + "?outcome=skipped").status_code == 400


def test_results_of_an_action_batch_say_what_each_record_did(api):
    run_job(api, SEED)  # users, products 1-9; orders 1-7 (order 3 is user 3's, 4 user 4's)
    batch = {
        "users": [
            {"id": 1, "name": "Alice Smith", "email": "alice@example.com"},  # upsert: replaced
            {"id": 12, "name": "Zoe", "email": "zoe@example.com"},  # upsert: inserted
            {"id": 2, "email": "bob@new.example.com", "action": "update"},
            {"id": 3, "action": "delete"},
            {"id": 4, "action": "delete"},  # refused: order 4 points at user 4
            {"id": 5, "action": "bogus"},
            {"id": 99, "action": "update", "name": "Nobody"},
        ],
        "orders": [
            {"id": 3, "action": "delete"},
            {"id": 20, "user_id": 12, "product_id": 4, "quantity": 1},
        ],
    }
    job = run_job(api, batch, "?async=true&action=upsert")
    assert job["state"] == "succeeded", job["error"]
    results = results_of(api, job)
    assert_every_record_once(results, {"users": 7, "products": 0, "orders": 2})
    shown = [(r["type"], r["index"], r["id"], r["action"], r["outcome"]) for r in results]
    assert shown == [
        ("users", 0, 1, "upsert", "updated"),
        ("users", 1, 12, "upsert", "inserted"),
        ("users", 2, 2, "update", "updated"),
        ("users", 3, 3, "delete", "deleted"),
        ("users", 4, 4, "delete", "skipped"),
        ("users", 5, 5, "bogus", "skipped"),
        ("users", 6, 99, "update", "skipped"),
        ("orders", 0, 3, "delete", "deleted"),
        ("orders", 1, 20, "upsert", "inserted"),
    ]
    reasons = [r["reasons"] for r in results if r["outcome"] == "skipped"]
    assert "still referenced by 1 order" in reasons[0]["id"][0]
    assert "Unknown action 'bogus'" in reasons[1]["action"][0]
    assert reasons[2] == {"id": ["No user has this id."]}
    assert job["counts"]["users"] == dict(zip(OUTCOME_KEYS, [7, 4, 1, 2, 1, 3, 0], strict=True))
    assert job["counts"]["orders"] == dict(zip(OUTCOME_KEYS, [2, 2, 1, 0, 1, 0, 0], strict=True))
    assert User.objects.get(id=1).name == "Alice Smith"
    assert User.objects.get(id=2).email == "bob@new.example.com"
    assert not User.objects.filter(id=3).exists()
    assert User.objects.filter(id__in=(4, 12)).count() == 2
    assert list(Order.objects.filter(id__in=(3, 20)).values_list("id", flat=True)) == [20]


def test_an_upsert_batch_results_tell_inserted_from_replaced_across_chunks(api, settings):
    settings.INGEST_CHUNK_SIZE = 3
    run_job(api, {"users": [{"id": i, "name": f"U{i}", "email": "u@x.org"} for i in (2, 4, 6)]})
    users = [{"id": i, "name": f"New {i}", "email": "n@x.org"} for i in range(1, 9)]
    job = run_job(api, {"users": users}, "?async=true&action=upsert")
    results = results_of(api, job)
    assert [(r["id"], r["outcome"]) for r in results] == [
        (i, "updated" if i in (2, 4, 6) else "inserted") for i in range(1, 9)
    ]
    assert User.objects.count() == 8


@pytest.mark.parametrize(
    ("body", "content_type", "query", "lines"),
    [
        (
            '{"type": "user", "id": 1, "name": "Alice", "email": "alice@example.com"}\n'
            "\n"
            '{"type": "user", "name": "", "email": "bob@example.com"}\n'
            '{"type": "order", "user_id": 1, "product_id": 7, "quantity": 2}\n'
            '{"type": "product", "name": "Pen", "price": 2}\n',
            "application/x-ndjson",
            "?async=true",
            {("users", 0): 1, ("users", 1): 3, ("products", 0): 5, ("orders", 0): 4},
        ),
        (
            "id,name,email\n1,Alice,alice@example.com\n\n2,,bob@example.com\n",
            "text/csv",
            "?async=true&type=users",
            {("users", 0): 2, ("users", 1): 4},
        ),
    ],
)
def test_ndjson_and_csv_results_carry_each_records_line(api, body, content_type, query, lines):
    job = run_job(api, body, query, content_type)
    results = results_of(api, job)
    assert {(r["type"], r["index"]): r["line"] for r in results} == lines
    assert results[1]["outcome"] == "skipped"
    assert results[1]["reasons"] == {"name": ["This field may not be blank."]}


def test_a_dry_run_jobs_records_are_valid_or_skipped_and_nothing_is_written(api):
    job = run_job(api, SEED, "?async=true&dry_run=true")
    assert job["state"] == "succeeded"
    results = results_of(api, job)
    assert_every_record_once(results, {"users": 10, "products": 10, "orders": 10})
    assert {r["outcome"] for r in results} == {"valid", "skipped"}
    valid = [(r["type"], r["id"]) for r in results if r["outcome"] == "valid"]
    assert valid[:2] == [("users", 1), ("users", 2)]  # the ids they were sent with
    assert job["counts"]["users"] == dict(zip(OUTCOME_KEYS, [10, 9, 0, 0, 0, 1, 0], strict=True))
    assert (User.objects.count(), Product.objects.count(), Order.objects.count()) == (0, 0, 0)


def test_a_rejected_atomic_jobs_valid_records_say_so(api):
    batch = {"users": [{"name": "A", "email": "a@example.com"}, {"name": "", "email": "b@x.org"}]}
    job = run_job(api, batch, "?async=true&atomic=true")
    assert job["state"] == "failed"
    results = results_of(api, job)
    assert [(r["id"], r["outcome"]) for r in results] == [(None, "valid"), (None, "skipped")]
    assert job["counts"]["total"]["inserted"] == 0
    assert not User.objects.exists()


def test_results_span_stored_blocks(api, monkeypatch):
    """Blocks of 4 records: skipped records, ids and lines on both sides of each boundary."""
    monkeypatch.setattr(job_results, "BLOCK_RECORDS", 4)
    rows = [["id", "name", "email"]]
    for i in range(1, 12):
        rows.append([str(i * 1000), "" if i % 3 == 0 else f"U{i}", f"u{i}@example.com"])
    rows.append(["x7", "Bad id", "b@example.com"])
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    job = run_job(api, text.getvalue(), "?async=true&type=users", "text/csv")
    assert IngestJobResultBlock.objects.filter(job_id=job["id"]).count() == 3
    results = results_of(api, job)
    assert [r["line"] for r in results] == list(range(2, 14))
    assert [r["id"] for r in results] == [i * 1000 for i in range(1, 12)] + ["x7"]
    skipped = [r["index"] for r in results if r["outcome"] == "skipped"]
    assert skipped == [2, 5, 8, 11]
    assert results_of(api, job, "?outcome=skipped")[-1]["id"] == "x7"


# --- the synchronous body, on demand -----------------------------------------------------------


@pytest.mark.parametrize("query", ["", "&action=upsert", "&dry_run=true", "&atomic=true"])
def test_the_response_is_the_body_a_synchronous_ingest_answers(api, query):
    job = run_job(api, SEED, f"?async=true{query}")
    from_job = response_of(api, job)
    for model in (Order, Product, User):
        model.objects.all().delete()
    synchronous = post(api, SEED, f"?{query[1:]}")
    assert synchronous.status_code in (200, 422)
    expected = synchronous.json()
    from_job["took_ms"] = expected["took_ms"] = 0
    assert from_job == expected


def test_results_of_an_unfinished_or_cancelled_job_are_a_409(api, monkeypatch):
    monkeypatch.setattr(jobs, "dispatch", lambda job_id: None)
    job = post(api, SEED).json()
    url = job["url"]
    for path in ("results/", "response/"):
        response = api.get(url + path)
        assert response.status_code == 409
        assert response.json()["code"] == "not_finished"
        assert "is queued: its results are there once it has finished" in response.json()["detail"]
    api.post(url + "cancel/")
    response = api.get(url + "results/")
    assert (response.status_code, response.json()["code"]) == (409, "no_results")
    assert "was cancelled before it ran" in response.json()["detail"]
    assert api.get(f"/ingest/jobs/{uuid.uuid4()}/results/").status_code == 404


def test_a_job_finished_before_results_were_kept_shows_its_stored_body(api):
    """A job of an earlier version kept its whole result body: the migration reads its counts
    from it, and response/ serves it as it is."""
    body = post(api, SEED, "?dry_run=true").json()
    old = IngestJob.objects.create(
        owner=str(get_user_model().objects.get(username="tests").pk),
        state="succeeded",
        total=30,
        processed=30,
        chunk_size=10,
        result=json.dumps(body).encode(),
    )
    migration = importlib.import_module("ingest.migrations.0006_job_results")
    migration.counts_of_stored_results(apps, None)
    job = api.get(f"/ingest/jobs/{old.id}/").json()
    assert job["counts"]["users"]["valid"] == 9
    assert job["links"]["results"] is None
    assert response_of(api, job) == body
    response = api.get(f"/ingest/jobs/{old.id}/results/")
    assert response.status_code == 409
    assert "finished before per-record results were kept" in response.json()["detail"]
