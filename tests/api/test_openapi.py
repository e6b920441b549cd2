"""GET /interlink/v1/openapi.json: an OpenAPI 3.0 document of the REST surface, from the org's metadata and router."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from interlink.api import openapi
from interlink.api.app import DataApi
from interlink.app.org import Org
from interlink.errors import InterlinkError
from interlink.testing import local_org, rest_client

URL = "/interlink/v1/openapi.json"
B = "/services/data/v66.0"


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Org]:
    with local_org(tmp_path_factory.mktemp("openapi") / "org") as opened:
        yield opened


@pytest.fixture(scope="module")
def client(org: Org) -> Iterator[TestClient]:
    with rest_client(org) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def document(client: TestClient) -> dict[str, Any]:
    response = client.get(URL)
    assert response.status_code == 200, response.text
    return response.json()


def test_it_needs_a_token(org: Org) -> None:
    with rest_client(org, authorised=False) as anonymous:
        response = anonymous.get(URL)
    assert response.status_code == 401
    assert response.json()[0]["errorCode"] == "INVALID_SESSION_ID"


def test_it_is_a_valid_openapi_3_document(document: dict[str, Any]) -> None:
    schemathesis = pytest.importorskip("schemathesis")
    schemathesis.openapi.from_dict(document).validate()
    assert document["openapi"].startswith("3.0")
    assert document["servers"] == [{"url": "https://testserver"}]
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": "An access token of the org"}
    assert document["paths"]["/services/data"]["get"]["security"] == []  # the version list needs no token


def test_every_router_resource_is_described_or_deliberately_left_out(org: Org) -> None:
    router = DataApi(org).router
    assert openapi.undescribed(router) == []
    for pattern, method in openapi.NOT_DESCRIBED:
        assert any(p == pattern and method in methods for p, methods in router.routes()), (pattern, method)


def test_every_described_operation_is_served(org: Org, document: dict[str, Any]) -> None:
    router = DataApi(org).router
    for path, operations in document["paths"].items():
        segments = [s for s in path.split("/") if s][3:]  # below /services/data/vXX.X
        if path == "/services/data":
            continue
        for method in operations:
            try:
                router.resolve(segments, method.upper())
            except InterlinkError as error:  # pragma: no cover - the assertion explains
                pytest.fail(f"{method.upper()} {path} is described but not served: {error.error_code}")


def test_the_platform_error_body_and_save_results_are_schemas(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert schemas["ErrorList"] == {"type": "array", "items": {"$ref": "#/components/schemas/Error"},
                                    "description": "The platform's error body"}
    assert set(schemas["Error"]["properties"]) == {"message", "errorCode", "fields"}
    create = document["paths"][f"{B}/sobjects/Account"]["post"]
    assert create["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SaveResult"}
    assert create["responses"]["401"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorList"}


def test_record_schemas_follow_the_field_types(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    account, create, update = schemas["Account"], schemas["AccountCreate"], schemas["AccountUpdate"]
    assert account["properties"]["NumberOfEmployees"]["type"] == "integer"
    assert account["properties"]["AnnualRevenue"]["type"] == "number"
    assert account["properties"]["IsDeleted"]["type"] == "boolean"
    assert account["properties"]["OwnerId"]["pattern"] == openapi.ID_PATTERN
    assert create["required"] == ["Name"]
    assert create["additionalProperties"] is False
    assert "CreatedDate" not in create["properties"] and "Id" not in create["properties"]
    assert create["properties"]["Name"]["maxLength"] == 255
    assert create["properties"]["Parent"]["type"] == "object"  # a parent by external id
    assert "required" not in update and update["properties"]["Id"]["pattern"] == openapi.ID_PATTERN


def test_per_object_operations_follow_what_each_object_allows(document: dict[str, Any]) -> None:
    paths = document["paths"]
    assert set(paths[f"{B}/sobjects/Account/{{id}}"]) == {"get", "patch", "delete"}
    assert "post" not in paths[f"{B}/sobjects/Organization"]  # not createable
    assert set(paths[f"{B}/sobjects/User/{{id}}"]) == {"get", "patch"}  # users are never deleted
    field = paths[f"{B}/sobjects/User/{{field}}/{{value}}"]["get"]["parameters"][0]
    assert field["schema"]["enum"] == ["Id", "Username"]
    assert paths[f"{B}/query"]["get"]["parameters"][0] == {
        "name": "q", "in": "query", "schema": {"type": "string"}, "required": True, "description": "A SOQL query"}


def test_a_version_and_a_choice_of_objects(client: TestClient) -> None:
    document = client.get(URL, params={"version": "45.0", "objects": "Contact"}).json()
    paths = document["paths"]
    assert document["info"]["version"] == "45.0"
    assert "/services/data/v45.0/sobjects/Contact/{id}" in paths
    assert not any("/Account" in path for path in paths)
    assert "/services/data/v45.0/composite/sobjects" in paths  # v42+
    assert "/services/data/v45.0/composite/sobjects/Contact/{field}" not in paths  # upsert is v46+
    assert "/services/data/v45.0/composite/graph" not in paths  # v50+
    for params, message in (({"version": "12.0"}, "API version 12.0 is not served"),
                            ({"objects": "Account,Nope__c"}, "No such object: Nope__c")):
        response = client.get(URL, params=params)
        assert response.status_code == 404
        assert response.json()[0]["message"].startswith(message)


def test_answers_match_the_document(org: Org, document: dict[str, Any]) -> None:
    """Real answers to described calls validate against the described response schemas."""
    schemathesis = pytest.importorskip("schemathesis")
    from schemathesis.checks import response_schema_conformance, status_code_conformance

    from interlink.api.app import build_app

    token = org.mint_token("admin@interlink.local")
    schema = schemathesis.openapi.from_asgi(URL, build_app(org), headers={"Authorization": f"Bearer {token}"})
    created = org.records.create(org.admin_context(), "Account", [{"Name": "Documented", "NumberOfEmployees": 3}])
    record_id = created[0].id
    calls = [
        ("/services/data/v66.0/sobjects/Account/{id}", "GET", {"path_parameters": {"id": record_id}}),
        ("/services/data/v66.0/sobjects/Account/{id}", "GET", {"path_parameters": {"id": "001000000000000AAA"}}),
        ("/services/data/v66.0/sobjects/Account", "POST", {"body": {"Name": "Made from the schema"}}),
        ("/services/data/v66.0/sobjects/Account", "POST", {"body": {"Nope__c": 1}}),
        ("/services/data/v66.0/query", "GET", {"query": {"q": "SELECT Id, Name FROM Account"}}),
        ("/services/data/v66.0/composite/sobjects", "POST", {"body": {"records": [
            {"attributes": {"type": "Account"}, "Name": "In a collection"}, {"attributes": {"type": "Account"}}]}}),
        ("/services/data/v66.0/composite/tree/Account", "POST", {"body": {"records": [
            {"attributes": {"type": "Account", "referenceId": "a1"}, "Name": "Tree"}]}}),
        ("/services/data/v66.0/limits", "GET", {}),
        ("/services/data", "GET", {}),
    ]
    for path, method, parts in calls:
        case = schema[path][method].Case(headers={"Authorization": f"Bearer {token}"}, **parts)
        response = case.call()
        case.validate_response(response, checks=[response_schema_conformance, status_code_conformance])
