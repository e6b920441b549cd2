"""``composite``, ``composite/batch`` and ``composite/graph`` through the real, unpatched simple-salesforce.

simple-salesforce has no composite helper; users call ``sf.restful('composite', method='POST', json=...)``, which
returns the parsed JSON of a 2xx answer and raises ``SalesforceMalformedRequest`` for a 400. The server is the
session's ``live`` fixture; every test names its records with a tag of its own and checks what was written with
SOQL through the same client.
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

ROLLED_BACK = "The transaction was rolled back since another operation in the same transaction failed."


def trusted_session(server: LiveServer) -> requests.Session:
    session = requests.Session()
    session.verify = server.ca_bundle
    session.trust_env = False  # REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE would override `verify`
    return session


@pytest.fixture(scope="module")
def sf(live: LiveServer) -> Salesforce:
    return Salesforce(instance_url=live.url, session_id=live.token(), session=trusted_session(live))


def tag() -> str:
    return "lc" + uuid.uuid4().hex[:10]


def url(sf: Salesforce, path: str) -> str:
    return f"/services/data/v{sf.sf_version}/{path}"


def count(sf: Salesforce, obj: str, field: str, prefix: str) -> int:
    return sf.query(f"SELECT Id FROM {obj} WHERE {field} LIKE '{prefix}%'")["totalSize"]


def test_composite_create_query_update_with_references(sf: Salesforce) -> None:
    t = tag()
    result = sf.restful("composite", method="POST", json={"allOrNone": True, "compositeRequest": [
        {"method": "POST", "url": url(sf, "sobjects/Account"), "referenceId": "refAccount",
         "body": {"Name": f"{t} Sample Account"}},
        {"method": "POST", "url": url(sf, "sobjects/Contact"), "referenceId": "refContact",
         "body": {"LastName": f"{t} Sample Contact", "AccountId": "@{refAccount.id}"},
         "httpHeaders": {"Sforce-Auto-Assign": "FALSE"}},
        {"method": "GET", "referenceId": "refQuery",
         "url": url(sf, "query?q=SELECT+Id,Name+FROM+Contact+WHERE+AccountId='@{refAccount.id}'")},
        {"method": "PATCH", "url": url(sf, "sobjects/Contact/@{refQuery.records[0].Id}"), "referenceId": "refUpdate",
         "body": {"FirstName": "Updated", "Title": "was @{refQuery.records[0].Name}"}},
    ]})
    responses = result["compositeResponse"]
    assert [r["httpStatusCode"] for r in responses] == [201, 201, 200, 204]
    assert [r["referenceId"] for r in responses] == ["refAccount", "refContact", "refQuery", "refUpdate"]
    account_id = responses[0]["body"]["id"]
    contact_id = responses[1]["body"]["id"]
    assert responses[0]["httpHeaders"] == {"Location": url(sf, f"sobjects/Account/{account_id}")}
    assert responses[2]["body"]["records"][0]["Id"] == contact_id
    contact = sf.Contact.get(contact_id)
    assert contact["AccountId"] == account_id
    assert contact["FirstName"] == "Updated"
    assert contact["Title"] == f"was {t} Sample Contact"


def test_all_or_none_failure_writes_nothing(sf: Salesforce) -> None:
    t = tag()
    result = sf.restful("composite", method="POST", json={"allOrNone": True, "compositeRequest": [
        {"method": "POST", "url": url(sf, "sobjects/Account"), "referenceId": "acc", "body": {"Name": f"{t} A"}},
        {"method": "POST", "url": url(sf, "sobjects/Contact"), "referenceId": "con",
         "body": {"LastName": f"{t} C", "AccountId": "@{acc.id}"}},
        {"method": "POST", "url": url(sf, "sobjects/Contact"), "referenceId": "bad",
         "body": {"FirstName": "No last name", "AccountId": "@{acc.id}"}},
    ]})
    responses = result["compositeResponse"]
    assert responses[2]["httpStatusCode"] == 400
    assert responses[2]["body"][0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    for item in responses[:2]:
        assert item["httpStatusCode"] == 400
        assert item["body"] == [{"errorCode": "PROCESSING_HALTED", "message": ROLLED_BACK}]
    assert count(sf, "Account", "Name", t) == 0
    assert count(sf, "Contact", "LastName", t) == 0


def test_partial_success_without_all_or_none(sf: Salesforce) -> None:
    t = tag()
    result = sf.restful("composite", method="POST", json={"compositeRequest": [
        {"method": "POST", "url": url(sf, "sobjects/Account"), "referenceId": "bad", "body": {"Phone": "1"}},
        {"method": "POST", "url": url(sf, "sobjects/Contact"), "referenceId": "dependent",
         "body": {"LastName": f"{t} dep", "AccountId": "@{bad.id}"}},
        {"method": "POST", "url": url(sf, "sobjects/Account"), "referenceId": "good", "body": {"Name": f"{t} ok"}},
    ]})
    responses = result["compositeResponse"]
    assert [r["httpStatusCode"] for r in responses] == [400, 400, 201]
    assert responses[1]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert responses[1]["body"][0]["message"].startswith(
        "Invalid reference specified. No value for bad.id found in bad.")
    assert count(sf, "Account", "Name", t) == 1
    assert count(sf, "Contact", "LastName", t) == 0


def _bad_requests(sf: Salesforce, t: str) -> dict[str, list[dict[str, Any]]]:
    def account(ref: str, **body: Any) -> dict[str, Any]:
        return {"method": "POST", "url": url(sf, "sobjects/Account"), "referenceId": ref,
                "body": {"Name": f"{t} {ref}", **body}}

    return {
        "unknown reference": [account("a"), account("b", ParentId="@{nobody.id}")],
        "circular reference": [account("a", ParentId="@{b.id}"), account("b", ParentId="@{a.id}")],
        "self reference": [account("a", ParentId="@{a.id}")],
        "duplicate referenceId": [account("a"), account("a")],
        "illegal referenceId": [account("a"), account("b-1")],
        "forbidden header": [{**account("a"), "httpHeaders": {"Content-Type": "text/plain"}}],
    }


def test_bad_input_answers_the_platform_error_and_writes_nothing(sf: Salesforce) -> None:
    t = tag()
    for case, subrequests in _bad_requests(sf, t).items():
        with pytest.raises(SalesforceMalformedRequest) as caught:
            sf.restful("composite", method="POST", json={"compositeRequest": subrequests})
        assert caught.value.status == 400, case
        assert caught.value.content[0]["errorCode"] == "JSON_PARSER_ERROR", case

    too_many = [{"method": "POST", "url": url(sf, "sobjects/Account"), "referenceId": f"a{i}",
                 "body": {"Name": f"{t} {i}"}} for i in range(26)]
    result = sf.restful("composite", method="POST", json={"compositeRequest": too_many})
    assert result == {"compositeResponse": [{
        "body": [{"errorCode": "LIMIT_EXCEEDED", "message": "The request can\u2019t contain more than 25 operations."}],
        "httpHeaders": {}, "httpStatusCode": 400, "referenceId": None}]}

    malformed = sf.restful("composite", method="POST", json={"allOrNone": True, "compositeRequest": [
        {"method": "POST", "url": url(sf, "sobjects/Account"), "referenceId": "ok", "body": {"Name": f"{t} ok"}},
        {"method": "POST", "url": url(sf, "sobjects/Account"), "referenceId": "broken", "body": '{"Name": '},
    ]})["compositeResponse"]
    assert malformed[1]["body"][0]["errorCode"] == "JSON_PARSER_ERROR"
    assert malformed[0]["body"] == [{"errorCode": "PROCESSING_HALTED", "message": ROLLED_BACK}]

    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.restful("composite", method="POST", data='{"compositeRequest": [',
                   headers={"Content-Type": "application/json"})
    assert caught.value.content[0]["errorCode"] == "JSON_PARSER_ERROR"
    assert count(sf, "Account", "Name", t) == 0


def test_batch_with_halt_on_error(sf: Salesforce) -> None:
    t = tag()
    account_id = sf.Account.create({"Name": f"{t} batch"})["id"]
    v = f"v{sf.sf_version}"
    result = sf.restful("composite/batch", method="POST", json={"haltOnError": True, "batchRequests": [
        {"method": "PATCH", "url": f"{v}/sobjects/account/{account_id}", "richInput": {"Name": f"{t} NewName"}},
        {"method": "GET", "url": f"{v}/sobjects/account/{account_id}?fields=Name"},
        {"method": "GET", "url": f"{v}/sobjects/account/001000000000000AAA"},
        {"method": "POST", "url": f"{v}/sobjects/Account", "richInput": {"Name": f"{t} never"}},
    ]})
    assert result["hasErrors"] is True
    assert [r["statusCode"] for r in result["results"]] == [204, 200, 404, 412]
    assert result["results"][1]["result"]["Name"] == f"{t} NewName"
    assert result["results"][3]["result"][0]["errorCode"] == "BATCH_PROCESSING_HALTED"
    assert count(sf, "Account", "Name", t) == 1


def test_graph_of_500_nodes_and_a_failing_graph(sf: Salesforce) -> None:
    t = tag()
    nodes = [{"method": "POST", "url": url(sf, "sobjects/Account"), "referenceId": "acc",
              "body": {"Name": f"{t} graph"}}]
    nodes += [{"method": "POST", "url": url(sf, "sobjects/Contact"), "referenceId": f"c{i}",
               "body": {"LastName": f"{t} {i:03d}", "AccountId": "@{acc.id}"}} for i in range(499)]
    result = sf.restful("composite/graph", method="POST", json={"graphs": [{"graphId": "g1",
                                                                              "compositeRequest": nodes}]})
    assert result["graphs"][0]["graphId"] == "g1"
    assert result["graphs"][0]["isSuccessful"] is True
    assert len(result["graphs"][0]["graphResponse"]["compositeResponse"]) == 500
    assert count(sf, "Contact", "LastName", t) == 499

    u = tag()
    result = sf.restful("composite/graph", method="POST", json={"graphs": [
        {"graphId": "fails", "compositeRequest": [
            {"method": "POST", "url": url(sf, "sobjects/Account"), "referenceId": "a", "body": {"Name": f"{u} x"}},
            {"method": "POST", "url": url(sf, "sobjects/Contact"), "referenceId": "c",
             "body": {"AccountId": "@{a.id}"}}]},
        {"graphId": "commits", "compositeRequest": [
            {"method": "POST", "url": url(sf, "sobjects/Account"), "referenceId": "a", "body": {"Name": f"{u} y"}}]},
    ]})
    fails, commits = result["graphs"]
    assert fails["isSuccessful"] is False and commits["isSuccessful"] is True
    assert fails["graphResponse"]["compositeResponse"][0]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert fails["graphResponse"]["compositeResponse"][1]["body"][0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert [r["Name"] for r in sf.query(f"SELECT Name FROM Account WHERE Name LIKE '{u}%'")["records"]] == [f"{u} y"]
