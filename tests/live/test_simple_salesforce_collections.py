"""sObject Collections and sObject Tree through the real, unpatched simple-salesforce against ``interlink up``.

simple-salesforce has no collections helper; clients call them through ``Salesforce.restful()``, which is
what these tests do, on the session's ``live`` server (sample data on). Each test tags its records so it can
count exactly what it wrote.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from interlink.testing import LiveServer

pytestmark = pytest.mark.live

ROLLED_BACK = "ALL_OR_NONE_OPERATION_ROLLED_BACK"


@pytest.fixture(scope="module")
def sf(live: LiveServer) -> Salesforce:
    session = requests.Session()
    session.verify = live.ca_bundle
    session.trust_env = False  # REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE would override `verify`
    return Salesforce(instance_url=live.url, session_id=live.token(), session=session)


def tag() -> str:
    return "sc" + uuid.uuid4().hex[:10]


def names(sf: Salesforce, obj: str, field: str, prefix: str) -> dict[str, str]:
    """Id -> ``field`` of the ``obj`` records whose ``field`` starts with ``prefix``."""
    result = sf.query_all(f"SELECT Id, {field} FROM {obj} WHERE {field} LIKE '{prefix}%'")
    return {r["Id"]: r[field] for r in result["records"]}


def acc(name: str, **fields: Any) -> dict[str, Any]:
    return {"attributes": {"type": "Account"}, "Name": name, **fields}


def test_create_mixed_types_with_partial_success(sf: Salesforce) -> None:
    t = tag()
    body = sf.restful("composite/sobjects", method="POST", json={"allOrNone": False, "records": [
        acc(f"{t}-1"),
        {"attributes": {"type": "Contact"}, "LastName": f"{t}-c", "FirstName": "Ada"},
        {"attributes": {"type": "Contact"}, "FirstName": "NoLastName"},
        acc(f"{t}-2"),
    ]})
    assert [item["success"] for item in body] == [True, True, False, True]
    assert body[0]["id"].startswith("001") and body[1]["id"].startswith("003") and body[3]["id"].startswith("001")
    assert "id" not in body[2]
    assert body[2]["errors"] == [{"statusCode": "REQUIRED_FIELD_MISSING",
                                  "message": "Required fields are missing: [LastName]", "fields": ["LastName"]}]
    assert set(names(sf, "Account", "Name", t)) == {body[0]["id"], body[3]["id"]}
    assert list(names(sf, "Contact", "LastName", t)) == [body[1]["id"]]


def test_create_all_or_none_writes_nothing(sf: Salesforce) -> None:
    t = tag()
    body = sf.restful("composite/sobjects", method="POST", json={"allOrNone": True, "records": [
        acc(f"{t}-1"), {"attributes": {"type": "Contact"}, "LastName": f"{t}-c"}, acc(f"{t}-2", Bogus__c=1)]})
    assert [item["errors"][0]["statusCode"] for item in body] == [ROLLED_BACK, ROLLED_BACK, "INVALID_FIELD"]
    assert all(item["success"] is False and "id" not in item for item in body)
    assert names(sf, "Account", "Name", t) == {}
    assert names(sf, "Contact", "LastName", t) == {}


def test_update_upsert_retrieve_delete(sf: Salesforce) -> None:
    t = tag()
    created = sf.restful("composite/sobjects", method="POST",
                         json={"records": [acc(f"{t}-1"), acc(f"{t}-2"), acc(f"{t}-3")]})
    a1, a2, a3 = (item["id"] for item in created)

    updated = sf.restful("composite/sobjects", method="PATCH", json={"allOrNone": False, "records": [
        {"attributes": {"type": "Account"}, "id": a1, "Industry": "Energy"},
        {"attributes": {"type": "Account"}, "Name": "no id"}]})
    assert updated[0] == {"id": a1, "success": True, "errors": []}
    assert updated[1]["errors"][0]["statusCode"] == "MISSING_ARGUMENT"

    upserted = sf.restful("composite/sobjects/Account/Id", method="PATCH", json={"records": [
        {"attributes": {"type": "Account"}, "Id": a2, "Industry": "Banking"}]})
    assert upserted == [{"id": a2, "success": True, "errors": [], "created": False}]

    fetched = sf.restful("composite/sobjects/Account", params={"ids": f"{a1},{a2},001000000000000AAA",
                                                               "fields": "Id,Name,Industry"})
    assert [r and (r["Id"], r["Name"], r["Industry"]) for r in fetched] == [
        (a1, f"{t}-1", "Energy"), (a2, f"{t}-2", "Banking"), None]
    url = f"/services/data/v{sf.sf_version}/sobjects/Account/{a1}"
    assert fetched[0]["attributes"] == {"type": "Account", "url": url}
    posted = sf.restful("composite/sobjects/Account", method="POST", json={"ids": [a3], "fields": ["Name"]})
    assert posted[0]["Name"] == f"{t}-3"
    with pytest.raises(SalesforceMalformedRequest) as bad_field:
        sf.restful("composite/sobjects/Account", params={"ids": a1, "fields": "Name,Nope__c"})
    assert bad_field.value.content[0]["errorCode"] == "INVALID_FIELD"

    deleted = sf.restful("composite/sobjects", method="DELETE", params={"ids": f"{a1},{a2}", "allOrNone": "false"})
    assert deleted == [{"id": a1, "success": True, "errors": []}, {"id": a2, "success": True, "errors": []}]
    assert set(names(sf, "Account", "Name", t)) == {a3}


def test_collection_limit(sf: Salesforce) -> None:
    t = tag()
    with pytest.raises(SalesforceMalformedRequest) as too_many:
        sf.restful("composite/sobjects", method="POST", json={"records": [acc(f"{t}-{n}") for n in range(201)]})
    assert too_many.value.content[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    assert names(sf, "Account", "Name", t) == {}


def test_tree_account_contacts_cases(sf: Salesforce) -> None:
    t = tag()
    body = sf.restful("composite/tree/Account", method="POST", json={"records": [{
        "attributes": {"type": "Account", "referenceId": "acct"}, "Name": f"{t}-acct",
        "Contacts": {"records": [{
            "attributes": {"type": "Contact", "referenceId": "ada"}, "LastName": f"{t}-ada",
            "Cases": {"records": [
                {"attributes": {"type": "Case", "referenceId": "case1"}, "Subject": f"{t}-broken"},
                {"attributes": {"type": "Case", "referenceId": "case2"}, "Subject": f"{t}-slow"}]}}]}}]})
    assert body["hasErrors"] is False
    by_ref = {item["referenceId"]: item["id"] for item in body["results"]}
    assert set(by_ref) == {"acct", "ada", "case1", "case2"}
    contact = sf.Contact.get(by_ref["ada"])
    assert contact["AccountId"] == by_ref["acct"]
    cases = sf.query(f"SELECT Subject, ContactId FROM Case WHERE Subject LIKE '{t}%' ORDER BY Subject")["records"]
    assert [(c["Subject"], c["ContactId"]) for c in cases] == [(f"{t}-broken", by_ref["ada"]),
                                                              (f"{t}-slow", by_ref["ada"])]


def test_failing_tree_writes_nothing(sf: Salesforce) -> None:
    t = tag()
    with pytest.raises(SalesforceMalformedRequest) as failed:
        sf.restful("composite/tree/Account", method="POST", json={"records": [{
            "attributes": {"type": "Account", "referenceId": "acct"}, "Name": f"{t}-acct",
            "Contacts": {"records": [
                {"attributes": {"type": "Contact", "referenceId": "good"}, "LastName": f"{t}-good"},
                {"attributes": {"type": "Contact", "referenceId": "bad"}, "FirstName": "NoLastName"}]}}]})
    assert failed.value.status == 400
    assert failed.value.content == {"hasErrors": True, "results": [{"referenceId": "bad", "errors": [
        {"statusCode": "REQUIRED_FIELD_MISSING", "message": "Required fields are missing: [LastName]",
         "fields": ["LastName"]}]}]}
    assert names(sf, "Account", "Name", t) == {}
    assert names(sf, "Contact", "LastName", t) == {}
