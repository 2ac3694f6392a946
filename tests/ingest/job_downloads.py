"""Reading a finished job's downloads through the API, as a client does.

A job's summary links to its per-record results (NDJSON, ``links.results``) and to the body a
synchronous ingest would have answered (``links.response``); both are streamed. These helpers
fetch them with a test client (``rest_framework.test.APIClient``) or over HTTP (``tests.live``)
and decode them.
"""

import json
import urllib.request
from typing import Any

from tests import live


def _streamed(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def results_of(client, job: dict[str, Any], query: str = "") -> list[dict[str, Any]]:
    """Every line of the job's NDJSON results (``query``: e.g. ``"?outcome=skipped"``)."""
    url = job["links"]["results"]
    assert url, f"job {job['id']} ({job['state']}) has no results link"
    response = client.get(url + query)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/x-ndjson"
    return [json.loads(line) for line in _streamed(response).splitlines()]


def response_of(client, job: dict[str, Any]) -> dict[str, Any]:
    """The job's synchronous-style body (``links.response``), decoded."""
    url = job["links"]["response"]
    assert url, f"job {job['id']} ({job['state']}) has no response link"
    response = client.get(url)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    return json.loads(_streamed(response))


def live_results_of(job: dict[str, Any], token: str, query: str = "") -> list[dict[str, Any]]:
    """``results_of`` over HTTP (a gunicorn of ``tests.live``)."""
    request = urllib.request.Request(
        job["links"]["results"] + query, headers={"Authorization": f"Token {token}"}
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        assert response.headers["Content-Type"] == "application/x-ndjson"
        return [json.loads(line) for line in response.read().splitlines()]


def live_response_of(job: dict[str, Any], token: str) -> dict[str, Any]:
    """``response_of`` over HTTP (a gunicorn of ``tests.live``)."""
    status, headers, body = live.request("GET", job["links"]["response"], token=token)
    assert status == 200, body
    assert headers["Content-Type"] == "application/json"
    return body


def by_outcome(results: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The result lines grouped by outcome, each group in the stream's order."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for record in results:
        grouped.setdefault(record["outcome"], []).append(record)
    return grouped
