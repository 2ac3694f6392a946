"""The API root, the OpenAPI schema and the two docs pages, which must work with no internet."""

import re

import pytest
import yaml
from django.core.management import call_command
from django.test import Client, override_settings

pytestmark = pytest.mark.django_db(databases="__all__")

DOC_PAGES = ["/api/docs/", "/api/redoc/"]


def test_root_points_a_newcomer_to_every_resource_and_the_docs(api):
    body = api.get("/").json()
    for name, path in [
        ("users", "/users/"),
        ("products", "/products/"),
        ("orders", "/orders/"),
        ("docs", "/api/docs/"),
        ("redoc", "/api/redoc/"),
        ("schema", "/api/schema/"),
    ]:
        assert body[name].endswith(path)


@pytest.mark.parametrize("page", DOC_PAGES)
def test_doc_pages_load_only_assets_served_by_this_app(page):
    client = Client()
    response = client.get(page)
    assert response.status_code == 200
    html = response.content.decode()
    # No CDN or font service anywhere: every URL in the page is relative to this server.
    assert not re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html), html
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    assert assets, "the page should load its scripts from /static/"
    for asset in assets:
        asset_response = client.get(asset)
        assert asset_response.status_code == 200, asset
        assert b"".join(
            asset_response.streaming_content
            if asset_response.streaming
            else [asset_response.content]
        )


def test_swagger_ui_does_not_call_the_public_validator():
    html = Client().get("/api/docs/").content.decode()
    assert '"validatorUrl": null' in html


def _schema() -> dict:
    return yaml.safe_load(Client().get("/api/schema/").content)


def test_schema_lists_every_endpoint_with_summaries_and_examples():
    schema = _schema()
    for path in [
        "/users/",
        "/users/{id}/",
        "/products/",
        "/products/{id}/",
        "/orders/",
        "/orders/{id}/",
    ]:
        assert path in schema["paths"], path
        for operation in schema["paths"][path].values():
            assert operation.get("summary"), (path, operation.get("operationId"))
    for component in ("User", "Product", "Order", "UserRequest", "ProductRequest", "OrderRequest"):
        assert component in schema["components"]["schemas"], component
    create_user = schema["paths"]["/users/"]["post"]
    assert "examples" in create_user["requestBody"]["content"]["application/json"]
    assert {"201", "400"} <= set(create_user["responses"])
    assert "409" in schema["paths"]["/users/{id}/"]["delete"]["responses"]


def test_schema_validates(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "s.yaml"))
    assert (tmp_path / "s.yaml").read_text().startswith("openapi: 3")


def test_schema_documents_the_ingest_endpoint_with_its_result_format():
    operation = _schema()["paths"]["/ingest/"]["post"]
    assert operation["summary"]
    assert {"200", "400", "409", "413", "415", "422", "503"} <= set(operation["responses"])
    assert "examples" in operation["requestBody"]["content"]["application/json"]
    assert "examples" in operation["responses"]["200"]["content"]["application/json"]
    parameters = {(p["in"], p["name"]) for p in operation["parameters"]}
    assert {("query", "dry_run"), ("query", "atomic"), ("header", "Idempotency-Key")} <= parameters
    result = _schema()["components"]["schemas"]["IngestResponse"]["properties"]
    assert {"errors", "users", "products", "orders", "committed"} <= set(result)


def _operations(schema: dict):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if method != "parameters":
                yield path, method.upper(), operation


def test_schema_gives_reads_no_padlock_and_writes_a_key():
    # Swagger UI draws an optional key ([{"tokenAuth": []}, {}]) as a closed padlock and a
    # required one, before Authorize, as an open one: reads looked locked and writes open.
    for path, method, operation in _operations(_schema()):
        if path.startswith("/ingest/jobs/"):  # a client's own jobs: reading them needs its key
            assert operation["security"] == [{"tokenAuth": []}], (method, path)
        elif method == "GET":
            assert "security" not in operation, (method, path)
        else:
            assert operation["security"] == [{"tokenAuth": []}], (method, path)


def test_schema_says_how_to_get_a_key_and_send_it():
    schema = _schema()
    scheme = schema["components"]["securitySchemes"]["tokenAuth"]
    # Bearer: Swagger UI's dialog takes the key alone (an apiKey scheme wanted "Token <key>").
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert "manage.py create_api_token NAME" in scheme["description"]
    assert list(schema["components"]["securitySchemes"]) == ["tokenAuth"]
    assert "manage.py create_api_token NAME" in schema["info"]["description"]
    assert "**Authorize**" in schema["info"]["description"]


@override_settings(API_READS_REQUIRE_TOKEN=True)
def test_reads_carry_the_padlock_when_they_need_a_key():
    assert _schema()["paths"]["/users/"]["get"]["security"] == [{"tokenAuth": []}]


def test_every_operation_documents_the_errors_its_plumbing_gives():
    for path, method, operation in _operations(_schema()):
        codes = set(operation["responses"])
        assert {"400", "401", "429", "503"} <= codes, (method, path, codes)
        if "{id}" in path:
            assert "404" in codes, (method, path)
        if "requestBody" in operation:
            assert {"413", "415"} <= codes, (method, path)
        assert "Retry-After" in operation["responses"]["429"]["headers"], (method, path)
    paths = _schema()["paths"]
    for resource in ("users", "products"):
        assert "409" in paths[f"/{resource}/{{id}}/"]["delete"]["responses"]
    error = paths["/users/{id}/"]["get"]["responses"]["404"]["content"]["application/json"]
    assert error["schema"] == {"$ref": "#/components/schemas/Error"}


def test_summaries_use_the_right_article():
    paths = _schema()["paths"]
    assert paths["/users/{id}/"]["get"]["summary"] == "Get a user"
    assert paths["/users/"]["post"]["summary"] == "Create a user"
    assert paths["/orders/"]["post"]["summary"] == "Create an order"
    assert paths["/products/{id}/"]["delete"]["summary"] == "Delete a product"


def test_ingest_declares_async_beside_the_other_query_parameters():
    parameters = _schema()["paths"]["/ingest/"]["post"]["parameters"]
    declared = {p["name"]: p for p in parameters if p["in"] == "query"}
    assert {"action", "dry_run", "atomic", "async", "type"} == set(declared)
    assert declared["async"]["schema"] == {"type": "boolean"}
