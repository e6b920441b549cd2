"""The REST sObject API driven in-process, as simple-salesforce and other clients use it.

Every test runs on SQLite and PostgreSQL through the ``client`` fixture. Opening an org costs about a
second on PostgreSQL, so this module overrides ``org`` with one org per backend for the whole module
(its project declares the custom objects below); ``client`` stays per test, with its own token. Tests
stay independent by creating their own records with unique values and by counting records before and
after. The few that need a pristine org (autonumber sequence, request limit) open their own.

Tests assert what a client sees: status, body shape, headers, and that a rejected request changes nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
from sqlalchemy import func, select, update
from starlette.testclient import TestClient

from interlink import ids
from interlink.testing import backend_org, local_org, rest_client

V = "/services/data/v66.0"

INVOICE_YAML = """\
label: Invoice
nameField: {label: Invoice Number, type: autonumber, displayFormat: "INV-{0000}"}
fields:
  - {name: Status__c, type: picklist, restricted: true, values: [Draft, Paid], defaultValue: Draft}
  - {name: Code__c, type: text, length: 40, externalId: true, unique: true}
  - {name: Ref__c, type: text, length: 40, externalId: true}
  - {name: Account__c, type: lookup, referenceTo: Account, childRelationshipName: Invoices}
  - {name: Amount__c, type: currency, precision: 16, scale: 2}
"""

LINE_YAML = """\
label: Invoice Line
nameField: {label: Line Number, type: autonumber, displayFormat: "L-{0000}"}
fields:
  - {name: Invoice__c, type: masterdetail, referenceTo: Invoice__c, childRelationshipName: Lines}
  - {name: Quantity__c, type: number, precision: 10, scale: 0}
"""


# -- helpers ---------------------------------------------------------------------------------------------------

def sob(path: str = "", version: str = V) -> str:
    return f"{version}/sobjects/{path}"


def assert_error(response: Any, status: int, code: str, fields: list[str] | None = None) -> dict[str, Any]:
    """The platform's error body: a JSON array of {message, errorCode, fields}; returns the first."""
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body, list) and body, body
    for error in body:
        assert set(error) == {"message", "errorCode", "fields"}, error
        assert isinstance(error["message"], str) and error["message"]
        assert isinstance(error["fields"], list)
    assert body[0]["errorCode"] == code, body
    if fields is not None:
        assert body[0]["fields"] == fields, body
    return body[0]


def create(client: TestClient, obj: str, data: dict[str, Any]) -> str:
    response = client.post(sob(f"{obj}/"), json=data)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def live_count(org: Any, obj: str) -> int:
    """Records of ``obj`` not in the recycle bin, straight from the store."""
    table = org.store.table(obj)
    with org.store.read() as conn:
        return conn.execute(select(func.count()).select_from(table).where(table.c.IsDeleted.is_not(True))).scalar()


def token_of(client: TestClient) -> str:
    return client.headers["Authorization"].split(" ", 1)[1]


def http_date(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC), usegmt=True)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


OBJECTS = {"Invoice__c": INVOICE_YAML, "Line__c": LINE_YAML}  # Invoice__c and its master-detail child Line__c


@pytest.fixture(scope="module")
def org(store_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One org per backend for this module (overrides conftest's per-test ``org``), with the custom objects."""
    root = tmp_path_factory.mktemp(f"rest-{store_backend}")
    with backend_org(root, store_backend, OBJECTS, unavailable=pytest.skip) as opened:
        yield opened


# -- versions and resources ------------------------------------------------------------------------------------

def test_versions_list_needs_no_auth(org: Any) -> None:
    with rest_client(org, authorised=False) as anonymous:
        response = anonymous.get("/services/data/")
        assert anonymous.get("/services/data").json() == response.json()
    assert response.status_code == 200
    versions = {v["version"]: v for v in response.json()}
    assert versions["59.0"] == {"label": "Winter '24", "url": "/services/data/v59.0", "version": "59.0"}
    assert versions["66.0"] == {"label": "Spring '26", "url": "/services/data/v66.0", "version": "66.0"}
    assert versions["60.0"]["label"] == "Spring '24"
    assert versions["64.0"]["label"] == "Summer '25"
    assert "Sforce-Limit-Info" not in response.headers


def test_resources_of_a_version(client: TestClient, org: Any) -> None:
    response = client.get(f"{V}/")
    assert response.status_code == 200
    body = response.json()
    assert body["sobjects"] == f"{V}/sobjects"
    assert body["limits"] == f"{V}/limits"
    admin = org.directory.user_by_username("admin@interlink.local")
    assert body["identity"] == f"https://testserver/id/{org.org_id}/{admin.id}"


def test_unsupported_version_is_not_found(client: TestClient) -> None:
    error = assert_error(client.get("/services/data/v99.0/sobjects"), 404, "NOT_FOUND")
    assert error["message"] == "The requested resource does not exist"


def test_latest_alias_serves_the_newest_version(client: TestClient) -> None:
    newest = client.get("/services/data/").json()[-1]["version"]
    response = client.get("/services/data/latest/")
    assert response.status_code == 200
    assert response.json()["sobjects"] == f"/services/data/v{newest}/sobjects"
    assert client.get("/services/data/latest/sobjects/Account/describe").json()["name"] == "Account"


# -- authentication --------------------------------------------------------------------------------------------

def test_missing_authorization_is_invalid_session(org: Any) -> None:
    with rest_client(org, authorised=False) as anonymous:
        response = anonymous.get(sob("Account/describe"))
    assert response.status_code == 401
    assert response.json() == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID",
                                "fields": []}]


def test_garbage_token_is_invalid_session(org: Any) -> None:
    with rest_client(org, authorised=False) as anonymous:
        response = anonymous.get(sob(""), headers={"Authorization": "Bearer not-a-real-token"})
    assert_error(response, 401, "INVALID_SESSION_ID")


def test_revoked_token_is_invalid_session(client: TestClient, org: Any) -> None:
    assert client.get(sob("")).status_code == 200
    assert org.tokens.revoke(token_of(client))
    assert_error(client.get(sob("")), 401, "INVALID_SESSION_ID")


# -- describe --------------------------------------------------------------------------------------------------

def test_describe_global(client: TestClient) -> None:
    response = client.get(f"{V}/sobjects")
    assert response.status_code == 200
    body = response.json()
    assert body["encoding"] == "UTF-8"
    assert body["maxBatchSize"] == 200
    account = next(s for s in body["sobjects"] if s["name"] == "Account")
    assert account["keyPrefix"] == "001"
    assert account["custom"] is False
    assert account["urls"]["sobject"] == f"{V}/sobjects/Account"


def test_sobject_basic_info(client: TestClient) -> None:
    response = client.get(sob("Account/"))
    assert response.status_code == 200
    body = response.json()
    assert body["objectDescribe"]["name"] == "Account"
    assert body["objectDescribe"]["keyPrefix"] == "001"
    assert isinstance(body["recentItems"], list)


def test_sobject_describe(client: TestClient) -> None:
    response = client.get(sob("Account/describe"))
    assert response.status_code == 200
    body = response.json()
    fields = {f["name"]: f for f in body["fields"]}
    assert fields["Id"]["type"] == "id"
    assert fields["Name"]["type"] == "string" and fields["Name"]["length"] == 255
    contacts = next(r for r in body["childRelationships"] if r["relationshipName"] == "Contacts")
    assert contacts["childSObject"] == "Contact"
    assert contacts["field"] == "AccountId"
    assert "Last-Modified" in response.headers


def test_describe_unknown_object_is_not_found(client: TestClient) -> None:
    assert_error(client.get(sob("Nope__c/describe")), 404, "NOT_FOUND")
    assert_error(client.get(sob("Nope__c/")), 404, "NOT_FOUND")


def test_describe_not_modified_since_a_future_date(client: TestClient) -> None:
    future = http_date(datetime.now(UTC) + timedelta(days=1))
    response = client.get(sob("Account/describe"), headers={"If-Modified-Since": future})
    assert response.status_code == 304
    assert response.content == b""
    past = http_date(datetime(2000, 1, 1, tzinfo=UTC))
    assert client.get(sob("Account/describe"), headers={"If-Modified-Since": past}).status_code == 200


# -- create / read / update / delete -------------------------------------------------------------------------

def test_create_with_and_without_trailing_slash(client: TestClient, org: Any) -> None:
    before = live_count(org, "Account")
    for path in (sob("Account/"), sob("Account")):
        response = client.post(path, json={"Name": "Acme"})
        assert response.status_code == 201, response.text
        body = response.json()
        assert set(body) == {"id", "success", "errors"}
        assert body["success"] is True and body["errors"] == []
        assert len(body["id"]) == 18 and body["id"].startswith("001")
    assert live_count(org, "Account") == before + 2


def test_get_record(client: TestClient) -> None:
    record_id = create(client, "Account", {"Name": "Acme", "Industry": "Banking", "NumberOfEmployees": 12})
    response = client.get(sob(f"Account/{record_id}"))
    assert response.status_code == 200
    body = response.json()
    assert next(iter(body)) == "attributes"
    assert body["attributes"] == {"type": "Account", "url": f"{V}/sobjects/Account/{record_id}"}
    assert body["Id"] == record_id and len(body["Id"]) == 18
    assert body["Name"] == "Acme" and body["Industry"] == "Banking" and body["NumberOfEmployees"] == 12
    assert body["IsDeleted"] is False
    assert body["CreatedDate"].endswith("+0000")
    assert "Last-Modified" in response.headers


def test_get_record_selected_fields(client: TestClient) -> None:
    record_id = create(client, "Account", {"Name": "Acme", "Industry": "Banking", "Phone": "555"})
    body = client.get(sob(f"Account/{record_id}"), params={"fields": "Name,Industry"}).json()
    assert set(body) == {"attributes", "Id", "Name", "Industry"}
    assert body["Industry"] == "Banking"
    assert_error(client.get(sob(f"Account/{record_id}"), params={"fields": "Name,Bogus"}), 400, "INVALID_FIELD")


def test_get_record_by_15_character_id(client: TestClient) -> None:
    record_id = create(client, "Account", {"Name": "Acme"})
    response = client.get(sob(f"Account/{record_id[:15]}"))
    assert response.status_code == 200
    assert response.json()["Id"] == record_id


def test_update_record(client: TestClient) -> None:
    record_id = create(client, "Account", {"Name": "Acme"})
    response = client.patch(sob(f"Account/{record_id}"), json={"Name": "Acme Corp", "NumberOfEmployees": 5})
    assert response.status_code == 204
    assert response.content == b""
    body = client.get(sob(f"Account/{record_id}")).json()
    assert body["Name"] == "Acme Corp" and body["NumberOfEmployees"] == 5


def test_delete_record(client: TestClient, org: Any) -> None:
    record_id = create(client, "Account", {"Name": "Acme"})
    before = live_count(org, "Account")
    response = client.delete(sob(f"Account/{record_id}"))
    assert response.status_code == 204
    assert response.content == b""
    # The platform's code for a record in the recycle bin is not pinned down by the reference; the status is.
    gone = client.get(sob(f"Account/{record_id}"))
    assert gone.status_code == 404
    assert gone.json()[0]["errorCode"] in ("NOT_FOUND", "ENTITY_IS_DELETED")
    assert live_count(org, "Account") == before - 1


def test_delete_twice_is_entity_is_deleted(client: TestClient) -> None:
    record_id = create(client, "Account", {"Name": "Acme"})
    assert client.delete(sob(f"Account/{record_id}")).status_code == 204
    assert_error(client.delete(sob(f"Account/{record_id}")), 404, "ENTITY_IS_DELETED")


def test_update_deleted_record_is_entity_is_deleted(client: TestClient) -> None:
    record_id = create(client, "Account", {"Name": "Acme"})
    assert client.delete(sob(f"Account/{record_id}")).status_code == 204
    assert_error(client.patch(sob(f"Account/{record_id}"), json={"Name": "B"}), 404, "ENTITY_IS_DELETED")


def test_id_of_another_object_is_malformed(client: TestClient) -> None:
    contact_id = create(client, "Contact", {"LastName": "Lovelace"})
    error = assert_error(client.get(sob(f"Account/{contact_id}")), 400, "MALFORMED_ID", ["Id"])
    assert error["message"] == f"Account ID: id value of incorrect type: {contact_id}"
    assert_error(client.patch(sob(f"Account/{contact_id}"), json={"Name": "x"}), 400, "MALFORMED_ID", ["Id"])
    assert_error(client.delete(sob(f"Account/{contact_id}")), 400, "MALFORMED_ID", ["Id"])
    assert client.get(sob(f"Contact/{contact_id}")).json()["LastName"] == "Lovelace"


def test_non_id_segment_is_unknown_external_id_field(client: TestClient) -> None:
    error = assert_error(client.get(sob("Account/notanid")), 404, "NOT_FOUND")
    assert error["message"] == "Provided external ID field does not exist or is not accessible: notanid"


def test_missing_record_is_not_found(client: TestClient) -> None:
    assert_error(client.get(sob(f"Account/{ids.new_id('001')}")), 404, "NOT_FOUND")


# -- errors: nothing changes ------------------------------------------------------------------------------------

def test_malformed_json_is_a_parser_error(client: TestClient, org: Any) -> None:
    before = live_count(org, "Account")
    response = client.post(sob("Account/"), content=b'{"Name": "Acme",',
                           headers={"Content-Type": "application/json"})
    assert_error(response, 400, "JSON_PARSER_ERROR")
    assert live_count(org, "Account") == before


def test_string_for_a_number_is_a_parser_error(client: TestClient, org: Any) -> None:
    before = live_count(org, "Account")
    response = client.post(sob("Account/"), json={"Name": "Acme", "NumberOfEmployees": "abc"})
    assert_error(response, 400, "JSON_PARSER_ERROR", ["NumberOfEmployees"])
    assert live_count(org, "Account") == before


def test_array_body_is_a_parser_error(client: TestClient, org: Any) -> None:
    before = live_count(org, "Account")
    assert_error(client.post(sob("Account/"), json=[{"Name": "Acme"}]), 400, "JSON_PARSER_ERROR")
    assert live_count(org, "Account") == before


def test_unknown_field_is_invalid_field(client: TestClient, org: Any) -> None:
    before = live_count(org, "Account")
    error = assert_error(client.post(sob("Account/"), json={"Name": "Acme", "Bogus__c": 1}), 400, "INVALID_FIELD")
    assert error["message"] == "No such column 'Bogus__c' on sobject of type Account"
    assert live_count(org, "Account") == before
    record_id = create(client, "Account", {"Name": "Acme"})
    assert_error(client.patch(sob(f"Account/{record_id}"), json={"Name": "B", "Bogus__c": 1}), 400, "INVALID_FIELD")
    assert client.get(sob(f"Account/{record_id}")).json()["Name"] == "Acme"


def test_system_fields_are_not_writable(client: TestClient, org: Any) -> None:
    before = live_count(org, "Account")
    response = client.post(sob("Account/"), json={"Name": "Acme", "CreatedDate": "2020-01-01T00:00:00Z"})
    assert_error(response, 400, "INVALID_FIELD_FOR_INSERT_UPDATE", ["CreatedDate"])
    response = client.post(sob("Account/"), json={"Name": "Acme", "Id": ids.new_id("001")})
    assert_error(response, 400, "INVALID_FIELD_FOR_INSERT_UPDATE", ["Id"])
    assert live_count(org, "Account") == before


def test_required_field_missing(client: TestClient, org: Any) -> None:
    accounts, opportunities = live_count(org, "Account"), live_count(org, "Opportunity")
    assert_error(client.post(sob("Account/"), json={"Industry": "Banking"}), 400, "REQUIRED_FIELD_MISSING",
                 ["Name"])
    error = assert_error(client.post(sob("Opportunity/"), json={"Name": "Deal"}), 400, "REQUIRED_FIELD_MISSING")
    assert sorted(error["fields"]) == ["CloseDate", "StageName"]
    assert (live_count(org, "Account"), live_count(org, "Opportunity")) == (accounts, opportunities)


def test_clearing_a_required_field_is_refused(client: TestClient) -> None:
    record_id = create(client, "Account", {"Name": "Acme"})
    assert_error(client.patch(sob(f"Account/{record_id}"), json={"Name": None}), 400, "REQUIRED_FIELD_MISSING",
                 ["Name"])
    assert client.get(sob(f"Account/{record_id}")).json()["Name"] == "Acme"


def test_string_too_long(client: TestClient, org: Any) -> None:
    before = live_count(org, "Account")
    assert_error(client.post(sob("Account/"), json={"Name": "x" * 256}), 400, "STRING_TOO_LONG", ["Name"])
    assert live_count(org, "Account") == before
    assert client.post(sob("Account/"), json={"Name": "x" * 255}).status_code == 201


def test_restricted_picklist(client: TestClient, org: Any) -> None:
    before = live_count(org, "Invoice__c")
    response = client.post(sob("Invoice__c/"), json={"Status__c": "Void"})
    assert_error(response, 400, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", ["Status__c"])
    assert live_count(org, "Invoice__c") == before
    record_id = create(client, "Invoice__c", {})
    assert client.get(sob(f"Invoice__c/{record_id}")).json()["Status__c"] == "Draft"
    assert client.patch(sob(f"Invoice__c/{record_id}"), json={"Status__c": "Paid"}).status_code == 204
    assert_error(client.patch(sob(f"Invoice__c/{record_id}"), json={"Status__c": "Void"}), 400,
                 "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", ["Status__c"])
    assert client.get(sob(f"Invoice__c/{record_id}")).json()["Status__c"] == "Paid"


def test_unique_external_id_is_duplicate_value(client: TestClient, org: Any) -> None:
    code = unique("D")
    create(client, "Invoice__c", {"Code__c": code})
    before = live_count(org, "Invoice__c")
    assert_error(client.post(sob("Invoice__c/"), json={"Code__c": code}), 400, "DUPLICATE_VALUE", ["Code__c"])
    # Text external ids compare case-insensitively unless declared case-sensitive.
    assert_error(client.post(sob("Invoice__c/"), json={"Code__c": code.upper()}), 400, "DUPLICATE_VALUE",
                 ["Code__c"])
    assert live_count(org, "Invoice__c") == before


def test_lookup_to_a_missing_record(client: TestClient, org: Any) -> None:
    before = live_count(org, "Contact")
    response = client.post(sob("Contact/"), json={"LastName": "Lovelace", "AccountId": ids.new_id("001")})
    assert_error(response, 400, "INVALID_CROSS_REFERENCE_KEY", ["AccountId"])
    assert live_count(org, "Contact") == before


def test_lookup_to_a_record_of_the_wrong_object(client: TestClient, org: Any) -> None:
    other = create(client, "Contact", {"LastName": "Other"})
    before = live_count(org, "Contact")
    response = client.post(sob("Contact/"), json={"LastName": "Lovelace", "AccountId": other})
    assert_error(response, 400, "FIELD_INTEGRITY_EXCEPTION", ["AccountId"])
    assert live_count(org, "Contact") == before


def test_lookup_to_a_deleted_record(client: TestClient) -> None:
    account_id = create(client, "Account", {"Name": "Gone"})
    assert client.delete(sob(f"Account/{account_id}")).status_code == 204
    response = client.post(sob("Contact/"), json={"LastName": "Lovelace", "AccountId": account_id})
    assert_error(response, 400, "INVALID_CROSS_REFERENCE_KEY", ["AccountId"])


def test_put_on_a_record_is_method_not_allowed(client: TestClient) -> None:
    record_id = create(client, "Account", {"Name": "Acme"})
    response = client.put(sob(f"Account/{record_id}"), json={"Name": "B"})
    assert_error(response, 405, "METHOD_NOT_ALLOWED")
    assert "PATCH" in response.headers["Allow"]
    assert client.get(sob(f"Account/{record_id}")).json()["Name"] == "Acme"


def test_request_limit_exceeded(tmp_path: Path, store_url: str) -> None:
    with local_org(tmp_path / "limited", store=store_url, daily_api_requests=3) as limited, \
            rest_client(limited) as limited_client:
        for _ in range(3):
            assert limited_client.get(sob("")).status_code == 200
        response = limited_client.get(sob(""))
        assert_error(response, 403, "REQUEST_LIMIT_EXCEEDED")
        assert_error(limited_client.post(sob("Account/"), json={"Name": "Acme"}), 403, "REQUEST_LIMIT_EXCEEDED")
        assert live_count(limited, "Account") == 0
        # The version list is not an API call and stays available.
        assert limited_client.get("/services/data/").status_code == 200


# -- upsert by external id -------------------------------------------------------------------------------------

def test_upsert_creates_then_updates(client: TestClient) -> None:
    code = unique("U")
    first = client.patch(sob(f"Invoice__c/Code__c/{code}"), json={"Amount__c": 10})
    assert first.status_code == 201, first.text
    created = first.json()
    assert created == {"id": created["id"], "success": True, "errors": [], "created": True}
    second = client.patch(sob(f"Invoice__c/Code__c/{code}"), json={"Amount__c": 20})
    assert second.status_code == 200, second.text
    assert second.json() == {"id": created["id"], "success": True, "errors": [], "created": False}
    record = client.get(sob(f"Invoice__c/{created['id']}")).json()
    assert record["Amount__c"] == 20 and record["Code__c"] == code


def test_upsert_update_on_v45_answers_204(client: TestClient) -> None:
    v45, code = "/services/data/v45.0", unique("V")
    assert client.patch(sob(f"Invoice__c/Code__c/{code}", v45), json={"Amount__c": 1}).status_code == 201
    response = client.patch(sob(f"Invoice__c/Code__c/{code}", v45), json={"Amount__c": 2})
    assert response.status_code == 204
    assert response.content == b""
    assert client.get(sob(f"Invoice__c/Code__c/{code}")).json()["Amount__c"] == 2


def test_upsert_value_encoded_with_quote_plus(client: TestClient) -> None:
    value = f"A/1 x {uuid.uuid4().hex[:6]}"
    encoded = quote_plus(value)
    assert encoded.startswith("A%2F1+x+")
    response = client.patch(sob(f"Invoice__c/Code__c/{encoded}"), json={"Amount__c": 5})
    assert response.status_code == 201, response.text
    record_id = response.json()["id"]
    assert client.get(sob(f"Invoice__c/{record_id}")).json()["Code__c"] == value
    found = client.get(sob(f"Invoice__c/Code__c/{encoded}"))
    assert found.status_code == 200 and found.json()["Id"] == record_id
    again = client.patch(sob(f"Invoice__c/Code__c/{encoded}"), json={"Amount__c": 6})
    assert again.status_code == 200 and again.json()["id"] == record_id


def test_several_matches_answer_300_with_urls(client: TestClient, org: Any) -> None:
    ref = unique("R")
    first = create(client, "Invoice__c", {"Ref__c": ref, "Amount__c": 1})
    second = create(client, "Invoice__c", {"Ref__c": ref, "Amount__c": 1})
    before = live_count(org, "Invoice__c")
    expected = sorted(f"{V}/sobjects/Invoice__c/{i}" for i in (first, second))
    response = client.get(sob(f"Invoice__c/Ref__c/{ref}"))
    assert response.status_code == 300
    assert sorted(response.json()) == expected
    response = client.patch(sob(f"Invoice__c/Ref__c/{ref}"), json={"Amount__c": 99})
    assert response.status_code == 300
    assert sorted(response.json()) == expected
    assert client.delete(sob(f"Invoice__c/Ref__c/{ref}")).status_code == 300
    assert live_count(org, "Invoice__c") == before
    assert all(client.get(sob(f"Invoice__c/{i}")).json()["Amount__c"] == 1 for i in (first, second))


def test_upsert_on_unknown_external_id_field(client: TestClient, org: Any) -> None:
    before = live_count(org, "Invoice__c")
    error = assert_error(client.patch(sob("Invoice__c/Bogus__c/1"), json={"Amount__c": 1}), 404, "NOT_FOUND")
    assert error["message"] == "Provided external ID field does not exist or is not accessible: Bogus__c"
    # A field that exists but is not an external id is refused the same way.
    assert_error(client.patch(sob("Invoice__c/Amount__c/1"), json={"Status__c": "Paid"}), 404, "NOT_FOUND")
    assert live_count(org, "Invoice__c") == before


def test_get_and_delete_by_external_id(client: TestClient, org: Any) -> None:
    code = unique("G")
    record_id = create(client, "Invoice__c", {"Code__c": code, "Amount__c": 3})
    before = live_count(org, "Invoice__c")
    response = client.get(sob(f"Invoice__c/Code__c/{code}"))
    assert response.status_code == 200
    body = response.json()
    assert body["Id"] == record_id
    assert body["attributes"]["url"] == f"{V}/sobjects/Invoice__c/{record_id}"
    assert_error(client.get(sob(f"Invoice__c/Code__c/{unique('nope')}")), 404, "NOT_FOUND")
    assert client.delete(sob(f"Invoice__c/Code__c/{code}")).status_code == 204
    assert_error(client.get(sob(f"Invoice__c/Code__c/{code}")), 404, "NOT_FOUND")
    assert_error(client.get(sob(f"Invoice__c/{record_id}")), 404, "NOT_FOUND")
    assert live_count(org, "Invoice__c") == before - 1


def test_upsert_update_only_does_not_create(client: TestClient, org: Any) -> None:
    before = live_count(org, "Invoice__c")
    response = client.patch(sob(f"Invoice__c/Code__c/{unique('O')}"), params={"updateOnly": "true"},
                            json={"Amount__c": 1})
    assert_error(response, 404, "NOT_FOUND")
    assert live_count(org, "Invoice__c") == before


def test_post_to_id_path_creates(client: TestClient, org: Any) -> None:
    before = live_count(org, "Account")
    response = client.post(sob("Account/Id"), json={"Name": "Acme"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["success"] is True and body["id"].startswith("001")
    assert client.get(sob(f"Account/{body['id']}")).json()["Name"] == "Acme"
    assert live_count(org, "Account") == before + 1


def test_parent_by_external_id_in_body(client: TestClient, org: Any) -> None:
    code = unique("P")
    invoice_id = create(client, "Invoice__c", {"Code__c": code})
    line_id = create(client, "Line__c", {"Invoice__r": {"Code__c": code}, "Quantity__c": 2})
    assert client.get(sob(f"Line__c/{line_id}")).json()["Invoice__c"] == invoice_id
    before = live_count(org, "Line__c")
    response = client.post(sob("Line__c/"), json={"Invoice__r": {"Code__c": unique("Z")}, "Quantity__c": 1})
    assert_error(response, 400, "INVALID_CROSS_REFERENCE_KEY", ["Invoice__c"])
    assert live_count(org, "Line__c") == before


def test_master_detail_child_requires_parent(client: TestClient, org: Any) -> None:
    before = live_count(org, "Line__c")
    assert_error(client.post(sob("Line__c/"), json={"Quantity__c": 1}), 400, "REQUIRED_FIELD_MISSING",
                 ["Invoice__c"])
    assert live_count(org, "Line__c") == before


# -- replication: updated / deleted ----------------------------------------------------------------------------

def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


def _stamp(org: Any, obj: str, record_id: str) -> datetime:
    table = org.store.table(obj)
    with org.store.read() as conn:
        return conn.execute(select(table.c.SystemModstamp).where(table.c.Id == record_id)).scalar()


def _backdate(org: Any, obj: str, record_id: str, minutes: int) -> None:
    """Move a record's SystemModstamp back, as if it had been saved ``minutes`` ago."""
    stamp = _stamp(org, obj, record_id) - timedelta(minutes=minutes)
    table = org.store.table(obj)
    with org.store.write() as conn:
        conn.execute(update(table).where(table.c.Id == record_id).values(SystemModstamp=stamp))


def _window(hours_before: float, hours_after: float) -> dict[str, str]:
    now = datetime.now(UTC)
    return {"start": _iso(now - timedelta(hours=hours_before)), "end": _iso(now + timedelta(hours=hours_after))}


def test_updated_window(client: TestClient, org: Any) -> None:
    older = create(client, "Account", {"Name": "Older"})
    _backdate(org, "Account", older, 5)
    fresh = create(client, "Account", {"Name": "Fresh"})
    response = client.get(sob("Account/updated/"), params=_window(1, 1))
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"ids", "latestDateCovered"}
    assert older in body["ids"]
    # The end is clamped to now and rounded down to the minute, as the platform does: a record saved in the
    # current minute shows up only once that minute is over.
    covered = datetime.strptime(body["latestDateCovered"], "%Y-%m-%dT%H:%M:%S.%f%z")
    assert covered.second == 0 and covered <= datetime.now(UTC)
    assert (fresh in body["ids"]) == (_stamp(org, "Account", fresh) < covered.replace(tzinfo=None))


def test_updated_window_that_ended_earlier_is_empty(client: TestClient, org: Any) -> None:
    older = create(client, "Account", {"Name": "Older"})
    _backdate(org, "Account", older, 5)
    response = client.get(sob("Account/updated/"), params=_window(2, -1))
    assert response.status_code == 200, response.text
    assert response.json()["ids"] == []


def test_updated_window_with_simple_salesforce_encoding(client: TestClient, org: Any) -> None:
    older = create(client, "Account", {"Name": "Older"})
    _backdate(org, "Account", older, 5)
    now = datetime.now(UTC)
    start = (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H%%3A%M%%3A%S%%2B00%%3A00")
    end = (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H%%3A%M%%3A%S%%2B00%%3A00")
    response = client.get(sob(f"Account/updated/?start={start}&end={end}"))
    assert response.status_code == 200, response.text
    assert older in response.json()["ids"]


def test_deleted_window(client: TestClient, org: Any) -> None:
    gone = create(client, "Account", {"Name": "Gone"})
    kept = create(client, "Account", {"Name": "Kept"})
    assert client.delete(sob(f"Account/{gone}")).status_code == 204
    _backdate(org, "Account", gone, 5)
    response = client.get(sob("Account/deleted/"), params=_window(1, 1))
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"deletedRecords", "earliestDateAvailable", "latestDateCovered"}
    deleted = {r["id"]: r["deletedDate"] for r in body["deletedRecords"]}
    assert gone in deleted and kept not in deleted
    assert deleted[gone].endswith("+0000")
    assert body["earliestDateAvailable"] <= body["latestDateCovered"]
    assert gone not in client.get(sob("Account/updated/"), params=_window(1, 1)).json()["ids"]


def test_replication_start_older_than_30_days(client: TestClient) -> None:
    params = _window(31 * 24, 0)
    assert_error(client.get(sob("Account/updated/"), params=params), 400, "INVALID_REPLICATION_DATE", ["start"])
    assert_error(client.get(sob("Account/deleted/"), params=params), 400, "INVALID_REPLICATION_DATE", ["start"])


def test_replication_missing_parameter(client: TestClient) -> None:
    response = client.get(sob("Account/updated/"), params={"start": _iso(datetime.now(UTC))})
    assert response.status_code == 400
    assert response.json()[0]["fields"] == ["end"]
    assert client.get(sob("Account/deleted/")).status_code == 400


# -- conditional requests --------------------------------------------------------------------------------------

def test_if_unmodified_since_in_the_past_refuses_update(client: TestClient) -> None:
    record_id = create(client, "Account", {"Name": "Acme"})
    past = http_date(datetime(2000, 1, 1, tzinfo=UTC))
    response = client.patch(sob(f"Account/{record_id}"), json={"Name": "Changed"},
                            headers={"If-Unmodified-Since": past})
    assert response.status_code == 412
    assert client.get(sob(f"Account/{record_id}")).json()["Name"] == "Acme"
    future = http_date(datetime.now(UTC) + timedelta(days=1))
    response = client.patch(sob(f"Account/{record_id}"), json={"Name": "Changed"},
                            headers={"If-Unmodified-Since": future})
    assert response.status_code == 204
    assert client.get(sob(f"Account/{record_id}")).json()["Name"] == "Changed"


def test_if_modified_since_on_a_record(client: TestClient) -> None:
    record_id = create(client, "Account", {"Name": "Acme"})
    response = client.get(sob(f"Account/{record_id}"))
    last_modified = response.headers["Last-Modified"]
    assert last_modified.endswith(" GMT")
    future = http_date(datetime.now(UTC) + timedelta(days=1))
    not_modified = client.get(sob(f"Account/{record_id}"), headers={"If-Modified-Since": future})
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert client.get(sob(f"Account/{record_id}"), headers={"If-Modified-Since": last_modified}).status_code == 304
    past = http_date(datetime(2000, 1, 1, tzinfo=UTC))
    assert client.get(sob(f"Account/{record_id}"), headers={"If-Modified-Since": past}).status_code == 200


def test_invalid_conditional_header(client: TestClient) -> None:
    record_id = create(client, "Account", {"Name": "Acme"})
    response = client.patch(sob(f"Account/{record_id}"), json={"Name": "B"},
                            headers={"If-Unmodified-Since": "yesterday"})
    assert response.status_code == 400
    assert client.get(sob(f"Account/{record_id}")).json()["Name"] == "Acme"


# -- limits and headers ----------------------------------------------------------------------------------------

def _usage(response: Any) -> tuple[int, int]:
    header = response.headers["Sforce-Limit-Info"]
    assert header.startswith("api-usage=")
    used, allocation = header.removeprefix("api-usage=").split(";")[0].split("/")
    return int(used), int(allocation)


def test_limit_info_header_counts_up(client: TestClient) -> None:
    first = _usage(client.get(sob("")))
    second = _usage(client.post(sob("Account/"), json={"Name": "Acme"}))
    error = _usage(client.get(sob("Nope__c/")))
    assert second == (first[0] + 1, first[1])
    assert error == (first[0] + 2, first[1])
    assert first[1] == 100_000


def test_limits_resource(client: TestClient) -> None:
    response = client.get(f"{V}/limits/")
    assert response.status_code == 200
    used, allocation = _usage(response)
    daily = response.json()["DailyApiRequests"]
    assert daily == {"Max": allocation, "Remaining": allocation - used}
    assert client.get(f"{V}/limits").json()["DailyApiRequests"]["Remaining"] == allocation - used - 1


def test_pretty_print(client: TestClient) -> None:
    plain = client.get(f"{V}/limits/")
    pretty = client.get(f"{V}/limits/", headers={"X-PrettyPrint": "1"})
    assert b"\n" not in plain.content
    assert pretty.content.startswith(b"{\n  ")
    assert json.loads(pretty.content)["DailyApiRequests"]["Max"] == plain.json()["DailyApiRequests"]["Max"]


# -- platform-computed values ----------------------------------------------------------------------------------

def test_case_number_autonumber_and_default_status(tmp_path: Path, store_url: str) -> None:
    with local_org(tmp_path / "fresh", store=store_url) as fresh, rest_client(fresh) as fresh_client:
        first = create(fresh_client, "Case", {"Subject": "One"})
        second = create(fresh_client, "Case", {"Subject": "Two"})
        one = fresh_client.get(sob(f"Case/{first}")).json()
        two = fresh_client.get(sob(f"Case/{second}")).json()
        assert (one["CaseNumber"], two["CaseNumber"]) == ("00000001", "00000002")
        assert one["Status"] == "New"
        assert_error(fresh_client.patch(sob(f"Case/{first}"), json={"CaseNumber": "99"}), 400,
                     "INVALID_FIELD_FOR_INSERT_UPDATE", ["CaseNumber"])


def test_contact_compound_name(client: TestClient) -> None:
    record_id = create(client, "Contact", {"FirstName": "Ada", "LastName": "Byron"})
    assert client.get(sob(f"Contact/{record_id}")).json()["Name"] == "Ada Byron"
    assert client.patch(sob(f"Contact/{record_id}"), json={"LastName": "Lovelace"}).status_code == 204
    assert client.get(sob(f"Contact/{record_id}")).json()["Name"] == "Ada Lovelace"
    assert_error(client.post(sob("Contact/"), json={"LastName": "X", "Name": "Y"}), 400,
                 "INVALID_FIELD_FOR_INSERT_UPDATE", ["Name"])


def test_delete_cascades_to_master_detail_children_and_undelete_restores(client: TestClient, org: Any) -> None:
    invoice_id = create(client, "Invoice__c", {"Code__c": unique("C")})
    line_id = create(client, "Line__c", {"Invoice__c": invoice_id, "Quantity__c": 1})
    other_invoice = create(client, "Invoice__c", {"Code__c": unique("C")})
    other_line = create(client, "Line__c", {"Invoice__c": other_invoice, "Quantity__c": 1})
    assert client.delete(sob(f"Invoice__c/{invoice_id}")).status_code == 204
    assert_error(client.get(sob(f"Line__c/{line_id}")), 404, "NOT_FOUND")
    assert client.get(sob(f"Line__c/{other_line}")).status_code == 200
    results = org.records.undelete(org.admin_context(), [invoice_id])
    assert results[0].success
    assert client.get(sob(f"Invoice__c/{invoice_id}")).status_code == 200
    assert client.get(sob(f"Line__c/{line_id}")).json()["Invoice__c"] == invoice_id
