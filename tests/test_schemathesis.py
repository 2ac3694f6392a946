"""Schemathesis against the service's own OpenAPI schema, in-process: generated requests for
every operation, valid and invalid; no response may be a server error or break the schema."""

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from config.wsgi import application

CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


@schemathesis.serializer("application/x-ndjson")
def _ndjson(ctx, value) -> bytes:
    """The schema declares NDJSON bodies as strings: send generated text as it is, and anything
    else (negative tests generate other types) as a JSON line."""
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        value = json.dumps(value)
    return value.encode("utf-8", "surrogatepass")


def served(environ, start_response):
    """The app as a WSGI server runs it: the response read whole, then closed. werkzeug's client,
    which schemathesis uses, never calls ``close()``, and an export gives its slot back only
    there (``common.http.export_slots``): the exports after the second would be 503s."""
    result = application(environ, start_response)
    try:
        return [b"".join(result)]
    finally:
        if hasattr(result, "close"):
            result.close()


# The schema view needs no database, so the schema can be read when the module is collected.
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", served)


# Ingest writes on its own threads: run outside a test transaction, like the ingest tests.
@pytest.mark.django_db(databases="__all__", transaction=True)
@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,  # the same requests on every run: a failure can be replayed
)
def test_the_api_keeps_its_own_schema(case, api_token):
    case.call_and_validate(headers={"Authorization": f"Token {api_token}"}, checks=CHECKS)
