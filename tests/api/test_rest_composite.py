"""Composite resources driven in-process: ``composite``, ``composite/batch`` and ``composite/graph``.

One org per backend for the module (opening an org costs most of a second on PostgreSQL); ``client`` stays per
test. Tests stay independent by naming the records they create with a tag unique to the test and counting
records with that tag straight from the store, so "nothing was written" is checked against the database, not
against what the API says.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from interlink.records.hooks import SaveEvent
from interlink.testing import backend_org

V = "66.0"
B = f"/services/data/v{V}"
ROLLED_BACK = "The transaction was rolled back since another operation in the same transaction failed."

INVOICE_YAML = """\
label: Invoice
fields:
  - {name: Code__c, type: text, length: 40, externalId: true, unique: true}
  - {name: Account__c, type: lookup, referenceTo: Account, childRelationshipName: Invoices}
  - {name: Amount__c, type: currency, precision: 16, scale: 2}
"""


@pytest.fixture(scope="module")
def org(store_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One org per backend for this module (overrides conftest's per-test ``org``)."""
    root = tmp_path_factory.mktemp(f"composite-{store_backend}")
    with backend_org(root, store_backend, {"Invoice__c": INVOICE_YAML}, unavailable=pytest.skip) as opened:
        yield opened


# -- helpers ---------------------------------------------------------------------------------------------------------

def tag() -> str:
    return f"cmp{uuid.uuid4().hex[:10]}"


def count(org: Any, obj: str, field: str, prefix: str) -> int:
    """Rows of ``obj`` (not deleted) whose ``field`` starts with ``prefix``, straight from the store."""
    table = org.store.table(obj)
    with org.store.read() as conn:
        return conn.execute(select(func.count()).select_from(table).where(
            table.c[field].like(f"{prefix}%"), table.c.IsDeleted.is_not(True))).scalar()


def sub(method: str, path: str, ref: str, body: Any = None, **extra: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"method": method, "url": f"{B}/{path}", "referenceId": ref, **extra}
    if body is not None:
        item["body"] = body
    return item


def composite(client: TestClient, subrequests: list[dict[str, Any]], **options: Any) -> list[dict[str, Any]]:
    response = client.post(f"{B}/composite", json={**options, "compositeRequest": subrequests})
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == ["compositeResponse"]
    for item in body["compositeResponse"]:
        assert set(item) == {"body", "httpHeaders", "httpStatusCode", "referenceId"}, item
        assert "Content-Length" not in item["httpHeaders"]
    return body["compositeResponse"]


def assert_top_error(response: Any, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body, list) and body and body[0]["errorCode"] == code, body
    return body[0]["message"]


def halted_by_rollback(item: dict[str, Any]) -> bool:
    return item["httpStatusCode"] == 400 and item["body"] == [{"errorCode": "PROCESSING_HALTED",
                                                               "message": ROLLED_BACK}]


@pytest.fixture
def commits(org: Any) -> Iterator[list[str]]:
    """Names of Accounts whose insert reached ``on_commit`` while the test ran."""
    seen: list[str] = []

    def hook(event: SaveEvent) -> None:
        seen.extend(str(record.get("Name")) for record in event.new)

    org.hooks.register("on_commit", hook, objects=["Account"])
    try:
        yield seen
    finally:
        org.hooks.unregister(hook)


# -- composite: references and results -------------------------------------------------------------------------------

def test_create_query_update_chain_with_references(org: Any, client: TestClient) -> None:
    t = tag()
    results = composite(client, [
        sub("POST", "sobjects/Account", "NewAccount", {"Name": f"{t} Acme", "Industry": "Banking"}),
        sub("POST", "sobjects/Contact", "NewContact",
            {"LastName": f"{t} Smith", "AccountId": "@{NewAccount.id}"}),
        sub("GET", f"query?q=SELECT+Id,Name,Industry+FROM+Account+WHERE+Name+LIKE+'{t}%25'", "Found"),
        sub("PATCH", "sobjects/Account/@{Found.records[0].Id}", "Renamed",
            {"Name": "@{Found.records[0].Name} (renamed)", "Description": "type @{Found.records[0].attributes.type}"}),
        sub("GET", "sobjects/Account/@{NewAccount.id}?fields=Name,Description,Industry", "Check"),
        sub("GET", "sobjects/Contact/@{NewContact.id}?fields=AccountId,LastName", "ContactCheck"),
        sub("POST", "sobjects/Contact", "Copy",  # a whole-string reference keeps its JSON type (a string here)
            {"LastName": "@{ContactCheck.LastName}", "AccountId": "@{ContactCheck.AccountId}"}),
    ])
    assert [r["httpStatusCode"] for r in results] == [201, 201, 200, 204, 200, 200, 201]
    assert [r["referenceId"] for r in results] == ["NewAccount", "NewContact", "Found", "Renamed", "Check",
                                                  "ContactCheck", "Copy"]
    account_id = results[0]["body"]["id"]
    assert results[0]["body"] == {"id": account_id, "success": True, "errors": []}
    assert results[0]["httpHeaders"] == {"Location": f"{B}/sobjects/Account/{account_id}"}
    contact_id = results[1]["body"]["id"]
    assert results[1]["httpHeaders"]["Location"] == f"{B}/sobjects/Contact/{contact_id}"
    assert results[2]["body"]["totalSize"] == 1 and results[2]["body"]["records"][0]["Id"] == account_id
    assert results[3]["body"] is None and results[3]["httpHeaders"] == {}
    check = results[4]["body"]
    assert check["Name"] == f"{t} Acme (renamed)"
    assert check["Description"] == "type Account"
    assert results[5]["body"]["AccountId"] == account_id
    copy = client.get(f"{B}/sobjects/Contact/{results[6]['body']['id']}").json()
    assert copy["LastName"] == f"{t} Smith" and copy["AccountId"] == account_id
    assert count(org, "Account", "Name", t) == 1
    assert count(org, "Contact", "LastName", t) == 2


def test_references_are_case_sensitive_and_need_a_value(org: Any, client: TestClient) -> None:
    t = tag()
    results = composite(client, [
        sub("POST", "sobjects/Account", "acc", {"Name": f"{t} A"}),
        sub("POST", "sobjects/Contact", "wrongCase", {"LastName": f"{t} C", "AccountId": "@{acc.Id}"}),
        sub("PATCH", "sobjects/Account/@{acc.id}", "upd", {"Description": "x"}),
        sub("POST", "sobjects/Contact", "noBody", {"LastName": f"{t} D", "AccountId": "@{upd.id}"}),
    ])
    assert [r["httpStatusCode"] for r in results] == [201, 400, 204, 400]
    assert results[1]["body"] == [{
        "errorCode": "PROCESSING_HALTED",
        "message": "Invalid reference specified. No value for acc.Id found in acc. Provided referenceId "
                   "('acc.Id') must start with a letter or a number, and it can contain only letters, numbers "
                   "and underscores ('_')."}]
    assert results[3]["body"][0]["message"].startswith("Invalid reference specified. No value for upd.id found "
                                                       "in upd.")
    assert count(org, "Account", "Name", t) == 1
    assert count(org, "Contact", "LastName", t) == 0


def test_reference_to_a_null_field_is_null_from_v52(org: Any, client: TestClient) -> None:
    t = tag()
    account_id = client.post(f"{B}/sobjects/Account", json={"Name": f"{t} nulls"}).json()["id"]
    results = composite(client, [
        sub("GET", f"sobjects/Account/{account_id}?fields=Name,Phone", "refAccount"),
        sub("POST", "sobjects/Contact", "newContact",
            {"LastName": "@{refAccount.Name}", "Phone": "@{refAccount.Phone}", "AccountId": account_id}),
    ])
    assert [r["httpStatusCode"] for r in results] == [200, 201]
    assert results[0]["body"]["Phone"] is None

    old = client.post("/services/data/v51.0/composite", json={"compositeRequest": [
        {**sub("GET", f"sobjects/Account/{account_id}?fields=Name,Phone", "refAccount"),
         "url": f"/services/data/v51.0/sobjects/Account/{account_id}?fields=Name,Phone"},
        {**sub("POST", "sobjects/Contact", "newContact",
               {"LastName": f"{t} old", "Phone": "@{refAccount.Phone}", "AccountId": account_id}),
         "url": "/services/data/v51.0/sobjects/Contact"},
    ]}).json()["compositeResponse"]
    assert [r["httpStatusCode"] for r in old] == [200, 400]
    assert old[1]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert count(org, "Contact", "LastName", f"{t} old") == 0


def test_upsert_by_external_id_and_headers(org: Any, client: TestClient) -> None:
    t = tag()
    results = composite(client, [
        sub("POST", "sobjects/Account", "acc", {"Name": f"{t} Upsert"}, httpHeaders={"Sforce-Auto-Assign": "FALSE"}),
        sub("PATCH", f"sobjects/Invoice__c/Code__c/{t}", "inv",
            {"Name": f"{t} inv", "Account__c": "@{acc.id}", "Amount__c": 10}),
        sub("PATCH", f"sobjects/Invoice__c/Code__c/{t}", "again", {"Amount__c": 12.5}),
        sub("GET", f"sobjects/Invoice__c/Code__c/{t}", "read"),
    ])
    assert [r["httpStatusCode"] for r in results] == [201, 201, 200, 200]
    invoice_id = results[1]["body"]["id"]
    assert results[1]["body"]["created"] is True
    assert results[1]["httpHeaders"]["Location"] == f"{B}/sobjects/Invoice__c/{invoice_id}"
    assert results[2]["body"] == {"id": invoice_id, "success": True, "errors": [], "created": False}
    assert "Location" not in results[2]["httpHeaders"]
    assert results[3]["body"]["Amount__c"] == 12.5
    assert results[3]["body"]["Account__c"] == results[0]["body"]["id"]


# -- composite: transactions -----------------------------------------------------------------------------------------

def test_all_or_none_rolls_everything_back(org: Any, client: TestClient, commits: list[str]) -> None:
    t = tag()
    before = count(org, "Account", "Name", t)
    results = composite(client, [
        sub("POST", "sobjects/Account", "first", {"Name": f"{t} one"}),
        sub("POST", "sobjects/Contact", "contact", {"LastName": f"{t} c", "AccountId": "@{first.id}"}),
        sub("PATCH", "sobjects/Account/@{first.id}", "rename", {"Name": f"{t} one renamed"}),
        sub("POST", "sobjects/Account", "bad", {"Name": f"{t} bad", "NoSuchField__c": 1}),
        sub("POST", "sobjects/Account", "never", {"Name": f"{t} never"}),
    ], allOrNone=True)
    assert [r["referenceId"] for r in results] == ["first", "contact", "rename", "bad", "never"]
    failing = results[3]
    assert failing["httpStatusCode"] == 400 and failing["body"][0]["errorCode"] == "INVALID_FIELD"
    assert all(halted_by_rollback(r) for i, r in enumerate(results) if i != 3), results
    assert all(r["httpHeaders"] == {} for i, r in enumerate(results) if i != 3)
    assert count(org, "Account", "Name", t) == before == 0
    assert count(org, "Contact", "LastName", t) == 0
    assert not [name for name in commits if name.startswith(t)]  # no on_commit hook ran for the rolled-back work

    ok = composite(client, [sub("POST", "sobjects/Account", "a", {"Name": f"{t} kept"}),
                            sub("PATCH", "sobjects/Account/@{a.id}", "b", {"Name": f"{t} kept 2"})],
                   allOrNone=True)
    assert [r["httpStatusCode"] for r in ok] == [201, 204]
    assert count(org, "Account", "Name", t) == 1
    assert f"{t} kept" in commits  # the committed request did reach on_commit


def test_all_or_none_overrides_an_inner_collection(org: Any, client: TestClient, commits: list[str]) -> None:
    t = tag()
    results = composite(client, [
        sub("POST", "sobjects/Account", "first", {"Name": f"{t} first"}),
        sub("POST", "composite/sobjects", "many", {"allOrNone": False, "records": [
            {"attributes": {"type": "Account"}, "Name": f"{t} good"},
            {"attributes": {"type": "Account"}, "Industry": "Banking"},  # Name missing
        ]}),
    ], allOrNone=True)
    assert halted_by_rollback(results[0]), results
    assert results[1]["httpStatusCode"] == 200
    assert [item["success"] for item in results[1]["body"]] == [False, False]
    assert count(org, "Account", "Name", t) == 0  # the collection's own allOrNone=false was overridden
    assert not [name for name in commits if name.startswith(t)]


def test_all_or_none_failure_in_the_first_subrequest(org: Any, client: TestClient) -> None:
    t = tag()
    results = composite(client, [
        sub("DELETE", "sobjects/Account/001000000000000AAA", "gone"),
        sub("POST", "sobjects/Account", "later", {"Name": f"{t} later"}),
    ], allOrNone=True)
    assert results[0]["httpStatusCode"] in (400, 404) and results[0]["body"][0]["errorCode"] != "PROCESSING_HALTED"
    assert halted_by_rollback(results[1])
    assert count(org, "Account", "Name", t) == 0


def test_partial_success_halts_only_dependents(org: Any, client: TestClient, commits: list[str]) -> None:
    t = tag()
    results = composite(client, [
        sub("POST", "sobjects/Account", "good", {"Name": f"{t} good"}),
        sub("POST", "sobjects/Account", "badAccount", {"Industry": "Banking"}),  # Name missing
        sub("POST", "sobjects/Contact", "dependent", {"LastName": f"{t} dep", "AccountId": "@{badAccount.id}"}),
        sub("POST", "sobjects/Contact", "independent", {"LastName": f"{t} ind", "AccountId": "@{good.id}"}),
    ], allOrNone=False)
    assert [r["httpStatusCode"] for r in results] == [201, 400, 400, 201]
    assert results[1]["body"][0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert results[2]["body"] == [{
        "errorCode": "PROCESSING_HALTED",
        "message": "Invalid reference specified. No value for badAccount.id found in badAccount. Provided "
                   "referenceId ('badAccount.id') must start with a letter or a number, and it can contain only "
                   "letters, numbers and underscores ('_')."}]
    assert count(org, "Account", "Name", t) == 1
    assert count(org, "Contact", "LastName", t) == 1
    assert f"{t} good" in commits


def test_illegal_reference_id_before_v52_fails_only_its_dependents(org: Any, client: TestClient) -> None:
    t = tag()
    v51 = "/services/data/v51.0"
    response = client.post(f"{v51}/composite", json={"allOrNone": False, "compositeRequest": [
        {"method": "POST", "url": f"{v51}/sobjects/Account/", "referenceId": "refNewAccount[1]",
         "body": {"name": f"{t} Cloudy Consulting"}},
        {"method": "POST", "url": f"{v51}/sobjects/Contact", "referenceId": "refNewContact",
         "body": {"AccountId": "@{refNewAccount[1].id}", "FirstName": "Mary", "LastName": f"{t} Smith"}},
        {"method": "POST", "url": f"{v51}/sobjects/Account/", "referenceId": "refNewAccount2",
         "body": {"name": f"{t} Easy Spaces"}},
    ]})
    results = response.json()["compositeResponse"]
    assert [r["httpStatusCode"] for r in results] == [201, 400, 201]
    assert results[0]["referenceId"] == "refNewAccount[1]"
    assert results[0]["httpHeaders"]["Location"].startswith(f"{v51}/sobjects/Account/001")
    assert results[1]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert results[1]["body"][0]["message"].startswith(
        "Invalid reference specified. No value for refNewAccount[1].id found in refNewAccount.")
    assert count(org, "Account", "Name", t) == 2


def test_composite_counts_as_one_request(org: Any, client: TestClient) -> None:
    t = tag()
    used = org.usage.used()
    composite(client, [sub("POST", "sobjects/Account", f"a{i}", {"Name": f"{t} {i}"}) for i in range(5)])
    assert org.usage.used() == used + 1


def test_collections_subrequest_and_nested_composite_refused(org: Any, client: TestClient) -> None:
    t = tag()
    results = composite(client, [
        sub("POST", "composite/sobjects", "many", {"allOrNone": False, "records": [
            {"attributes": {"type": "Account"}, "Name": f"{t} c1"},
            {"attributes": {"type": "Account"}, "Name": f"{t} c2"}]}),
        sub("POST", "composite", "nested", {"compositeRequest": []}),
        sub("POST", "composite/batch", "nestedBatch", {"batchRequests": []}),
        sub("GET", "sobjects/Account/@{many[1].id}?fields=Name", "second"),
    ])
    assert [r["httpStatusCode"] for r in results] == [200, 400, 400, 200]
    assert [item["success"] for item in results[0]["body"]] == [True, True]
    assert results[1]["body"][0]["errorCode"] == "INVALID_REQUEST"
    assert results[3]["body"]["Name"] == f"{t} c2"
    assert count(org, "Account", "Name", t) == 2


def test_collate_subrequests_is_accepted_and_get_lists_resources(client: TestClient) -> None:
    results = composite(client, [sub("GET", "limits", "limits")], collateSubrequests=False)
    assert results[0]["httpStatusCode"] == 200 and "DailyApiRequests" in results[0]["body"]
    listing = client.get(f"{B}/composite").json()
    assert listing["batch"] == f"{B}/composite/batch"
    assert listing["graph"] == f"{B}/composite/graph"


# -- composite: limits and bad input ---------------------------------------------------------------------------------

def test_more_than_25_subrequests_runs_nothing(org: Any, client: TestClient) -> None:
    t = tag()
    items = [sub("POST", "sobjects/Account", f"a{i}", {"Name": f"{t} {i}"}) for i in range(26)]
    assert composite(client, items) == [{
        "body": [{"errorCode": "LIMIT_EXCEEDED", "message": "The request can\u2019t contain more than 25 operations."}],
        "httpHeaders": {}, "httpStatusCode": 400, "referenceId": None}]
    assert count(org, "Account", "Name", t) == 0
    assert [r["httpStatusCode"] for r in composite(client, items[:25])] == [201] * 25
    assert count(org, "Account", "Name", t) == 25


def test_malformed_json_is_a_json_parser_error(client: TestClient) -> None:
    response = client.post(f"{B}/composite", content=b'{"compositeRequest": [', headers={
        "Content-Type": "application/json"})
    assert_top_error(response, 400, "JSON_PARSER_ERROR")
    assert_top_error(client.post(f"{B}/composite", json=[1, 2]), 400, "JSON_PARSER_ERROR")
    assert_top_error(client.post(f"{B}/composite", json={"allOrNone": True}), 400, "JSON_PARSER_ERROR")
    assert_top_error(client.post(f"{B}/composite", json={"allOrNone": "yes", "compositeRequest": []}), 400,
                     "JSON_PARSER_ERROR")


def test_malformed_body_inside_a_subrequest(org: Any, client: TestClient) -> None:
    t = tag()
    results = composite(client, [
        sub("POST", "sobjects/Account", "ok", {"Name": f"{t} ok"}),
        sub("POST", "sobjects/Account", "text", '{"Name": "unterminated'),
        sub("POST", "sobjects/Account", "array", [{"Name": f"{t} array"}]),
    ], allOrNone=True)
    assert results[1]["httpStatusCode"] == 400 and results[1]["body"][0]["errorCode"] == "JSON_PARSER_ERROR"
    assert halted_by_rollback(results[0]) and halted_by_rollback(results[2])
    assert count(org, "Account", "Name", t) == 0

    results = composite(client, [sub("POST", "sobjects/Account", "array", [{"Name": f"{t} array"}])])
    assert results[0]["httpStatusCode"] == 400 and results[0]["body"][0]["errorCode"] == "JSON_PARSER_ERROR"
    assert count(org, "Account", "Name", t) == 0


def _bad(tagged: str, case: str) -> list[dict[str, Any]]:
    first = sub("POST", "sobjects/Account", "first", {"Name": f"{tagged} first"})
    second = sub("POST", "sobjects/Contact", "second", {"LastName": f"{tagged} c", "AccountId": "@{first.id}"})
    if case == "unknown reference":
        second["body"]["AccountId"] = "@{nobody.id}"
    elif case == "self reference":
        second["body"]["AccountId"] = "@{second.id}"
    elif case == "forward reference":
        first["body"]["Description"] = "@{second.id}"
    elif case == "reference in url to a later subrequest":
        second = sub("GET", "sobjects/Account/@{third.id}", "second")
    elif case == "duplicate referenceId":
        second["referenceId"] = "first"
    elif case == "missing referenceId":
        del second["referenceId"]
    elif case == "missing method":
        del second["method"]
    elif case == "missing url":
        del second["url"]
    elif case == "lowercase method":
        second["method"] = "post"
    elif case == "unknown method":
        second["method"] = "FETCH"
    elif case == "url without /services/data":
        second["url"] = "v66.0/sobjects/Contact"
    elif case == "illegal referenceId":
        second["referenceId"] = "ref-2"
    elif case == "referenceId starting with underscore":
        second["referenceId"] = "_ref"
    elif case == "Authorization header":
        second["httpHeaders"] = {"Authorization": "Bearer x"}
    elif case == "content-type header":
        second["httpHeaders"] = {"content-type": "application/xml"}
    third = sub("POST", "sobjects/Account", "third", {"Name": f"{tagged} third"})
    return [first, second, third]


@pytest.mark.parametrize("case", [
    "unknown reference", "self reference", "forward reference", "reference in url to a later subrequest",
    "duplicate referenceId", "missing referenceId", "missing method", "missing url", "lowercase method",
    "unknown method", "url without /services/data", "illegal referenceId", "referenceId starting with underscore",
    "Authorization header", "content-type header",
])
@pytest.mark.parametrize("all_or_none", [False, True])
def test_bad_input_fails_the_whole_request(org: Any, client: TestClient, case: str, all_or_none: bool) -> None:
    t = tag()
    response = client.post(f"{B}/composite", json={"allOrNone": all_or_none, "compositeRequest": _bad(t, case)})
    message = assert_top_error(response, 400, "JSON_PARSER_ERROR")
    if "reference" in case and "referenceId" not in case:
        assert message.startswith("Invalid reference specified. No value for ")
    if case == "missing referenceId":
        assert message == "'referenceId' is a required field."
    if case == "illegal referenceId":
        assert message == ("Provided referenceId ('ref-2') must start with a letter or a number, and it can "
                           "contain only letters, numbers and underscores ('_').")
    assert count(org, "Account", "Name", t) == 0
    assert count(org, "Contact", "LastName", t) == 0


def test_unknown_resource_and_bad_version_are_subrequest_errors(client: TestClient) -> None:
    results = composite(client, [
        sub("GET", "nosuchresource", "missing"),
        {"method": "GET", "url": "/services/data/v12.0/limits", "referenceId": "old"},
        sub("PUT", "sobjects/Account", "put"),
    ])
    assert [r["httpStatusCode"] for r in results] == [404, 404, 405]
    assert results[0]["body"][0]["errorCode"] == "NOT_FOUND"


# -- composite/batch -------------------------------------------------------------------------------------------------

def batch(client: TestClient, requests: list[dict[str, Any]], **options: Any) -> dict[str, Any]:
    response = client.post(f"{B}/composite/batch", json={**options, "batchRequests": requests})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"hasErrors", "results"}
    for item in body["results"]:
        assert set(item) == {"statusCode", "result"}
    return body


def test_batch_runs_independent_subrequests(org: Any, client: TestClient) -> None:
    t = tag()
    account_id = client.post(f"{B}/sobjects/Account", json={"Name": f"{t} batch"}).json()["id"]
    body = batch(client, [
        {"method": "PATCH", "url": f"v{V}/sobjects/account/{account_id}", "richInput": {"Name": f"{t} NewName"}},
        {"method": "GET", "url": f"v{V}/sobjects/account/{account_id}?fields=Name"},
        {"method": "POST", "url": f"v{V}/sobjects/Account", "richInput": {"Name": f"{t} created"}},
        {"method": "GET", "url": f"v{V}/query?q=SELECT+Name+FROM+Account+WHERE+Name+LIKE+'{t}%25'+ORDER+BY+Name"},
        {"method": "GET", "url": "v59.0/limits"},
    ])
    assert body["hasErrors"] is False
    statuses = [r["statusCode"] for r in body["results"]]
    assert statuses == [204, 200, 201, 200, 200]
    assert body["results"][0]["result"] is None
    assert body["results"][1]["result"]["Name"] == f"{t} NewName"
    assert body["results"][3]["result"]["totalSize"] == 2
    assert count(org, "Account", "Name", t) == 2


def test_batch_halt_on_error(org: Any, client: TestClient) -> None:
    t = tag()
    requests = [
        {"method": "POST", "url": f"v{V}/sobjects/Account", "richInput": {"Name": f"{t} before"}},
        {"method": "POST", "url": f"v{V}/sobjects/Account", "richInput": {"Industry": "Banking"}},
        {"method": "POST", "url": f"v{V}/sobjects/Account", "richInput": {"Name": f"{t} after"}},
        {"method": "GET", "url": f"v{V}/limits"},
    ]
    halted = batch(client, requests, haltOnError=True)
    assert halted["hasErrors"] is True
    assert [r["statusCode"] for r in halted["results"]] == [201, 400, 412, 412]
    assert halted["results"][1]["result"][0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert halted["results"][2]["result"] == [{"errorCode": "BATCH_PROCESSING_HALTED",
                                               "message": "Batch processing halted per request"}]
    assert count(org, "Account", "Name", f"{t} before") == 1  # no rollback of earlier subrequests
    assert count(org, "Account", "Name", f"{t} after") == 0

    going_on = batch(client, requests)  # haltOnError defaults to false
    assert going_on["hasErrors"] is True
    assert [r["statusCode"] for r in going_on["results"]] == [201, 400, 201, 200]
    assert count(org, "Account", "Name", t) == 3


def test_batch_counts_every_subrequest(org: Any, client: TestClient) -> None:
    used = org.usage.used()
    batch(client, [{"method": "GET", "url": f"v{V}/limits"}] * 3)
    assert org.usage.used() == used + 3


def test_batch_limits_and_bad_input(org: Any, client: TestClient) -> None:
    t = tag()
    good = {"method": "POST", "url": f"v{V}/sobjects/Account", "richInput": {"Name": f"{t} x"}}
    assert_top_error(client.post(f"{B}/composite/batch", json={"batchRequests": [good] * 26}), 400,
                     "LIMIT_EXCEEDED")
    for bad in ({"method": "POST"}, {"url": f"v{V}/limits"}, {"method": "FETCH", "url": f"v{V}/limits"},
                {"method": "GET", "url": "limits"}, {**good, "binaryPartName": "b", "binaryPartNameAlias": "Body"}):
        response = client.post(f"{B}/composite/batch", json={"batchRequests": [good, bad]})
        assert_top_error(response, 400, "JSON_PARSER_ERROR")
    assert_top_error(client.post(f"{B}/composite/batch", content=b"{", headers={"Content-Type": "application/json"}),
                     400, "JSON_PARSER_ERROR")
    assert count(org, "Account", "Name", t) == 0
    nested = batch(client, [{"method": "POST", "url": f"v{V}/composite", "richInput": {"compositeRequest": []}}])
    assert nested["hasErrors"] is True and nested["results"][0]["statusCode"] == 400


# -- composite/graph -------------------------------------------------------------------------------------------------

def graph_request(client: TestClient, graphs: list[dict[str, Any]], version: str = V) -> Any:
    return client.post(f"/services/data/v{version}/composite/graph", json={"graphs": graphs})


def graphs_of(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == ["graphs"]
    for item in body["graphs"]:
        assert set(item) == {"graphId", "graphResponse", "isSuccessful"}
        assert list(item["graphResponse"]) == ["compositeResponse"]
    return body["graphs"]


def test_graph_of_500_nodes(org: Any, client: TestClient) -> None:
    t = tag()
    nodes = [sub("POST", "sobjects/Account", "acc", {"Name": f"{t} graph"})]
    nodes += [sub("POST", "sobjects/Contact", f"c{i}", {"LastName": f"{t} {i:03d}", "AccountId": "@{acc.id}"})
              for i in range(499)]
    graphs = graphs_of(graph_request(client, [{"graphId": "g500", "compositeRequest": nodes}]))
    assert graphs[0]["graphId"] == "g500" and graphs[0]["isSuccessful"] is True
    responses = graphs[0]["graphResponse"]["compositeResponse"]
    assert len(responses) == 500 and {r["httpStatusCode"] for r in responses} == {201}
    account_id = responses[0]["body"]["id"]
    assert responses[0]["httpHeaders"]["Location"] == f"{B}/sobjects/Account/{account_id}"
    assert count(org, "Contact", "LastName", t) == 499
    table = org.store.table("Contact")
    with org.store.read() as conn:
        parents = conn.execute(select(table.c.AccountId).where(table.c.LastName.like(f"{t}%")).distinct()).all()
    assert parents == [(account_id,)]


def test_two_graphs_one_fails_and_one_commits(org: Any, client: TestClient, commits: list[str]) -> None:
    t = tag()
    graphs = graphs_of(graph_request(client, [
        {"graphId": "bad1", "compositeRequest": [
            sub("POST", "sobjects/Account", "a", {"Name": f"{t} bad graph"}),
            sub("POST", "sobjects/Contact", "c", {"AccountId": "@{a.id}"}),  # LastName missing
            sub("PATCH", "sobjects/Account/@{a.id}", "u", {"Description": "never"}),
        ]},
        {"graphId": "good2", "compositeRequest": [
            sub("POST", "sobjects/Account", "a", {"Name": f"{t} good graph"}),
            sub("POST", "sobjects/Contact", "c", {"LastName": f"{t} c", "AccountId": "@{a.id}"}),
            sub("GET", "sobjects/Contact/@{c.id}", "read"),
        ]},
    ]))
    bad, good = graphs
    assert (bad["graphId"], bad["isSuccessful"]) == ("bad1", False)
    bad_responses = bad["graphResponse"]["compositeResponse"]
    assert [r["referenceId"] for r in bad_responses] == ["a", "c", "u"]
    assert bad_responses[1]["httpStatusCode"] == 400
    assert bad_responses[1]["body"][0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert halted_by_rollback(bad_responses[0]) and halted_by_rollback(bad_responses[2])
    assert (good["graphId"], good["isSuccessful"]) == ("good2", True)
    assert [r["httpStatusCode"] for r in good["graphResponse"]["compositeResponse"]] == [201, 201, 200]
    assert count(org, "Account", "Name", f"{t} bad") == 0
    assert count(org, "Account", "Name", f"{t} good") == 1
    assert count(org, "Contact", "LastName", t) == 1
    assert f"{t} bad graph" not in commits and f"{t} good graph" in commits


def test_graph_nodes_may_reference_later_nodes_but_not_cycles(org: Any, client: TestClient) -> None:
    t = tag()
    graphs = graphs_of(graph_request(client, [
        {"graphId": "order", "compositeRequest": [
            sub("POST", "sobjects/Contact", "c", {"LastName": f"{t} c", "AccountId": "@{a.id}"}),
            sub("POST", "sobjects/Account", "a", {"Name": f"{t} a"}),
        ]},
        {"graphId": "cycle", "compositeRequest": [
            sub("POST", "sobjects/Account", "x", {"Name": f"{t} x", "Description": "@{y.id}"}),
            sub("POST", "sobjects/Account", "y", {"Name": f"{t} y", "Description": "@{x.id}"}),
        ]},
        {"graphId": "unknown", "compositeRequest": [
            sub("POST", "sobjects/Account", "z", {"Name": f"{t} z", "Description": "@{nobody.id}"}),
        ]},
    ]))
    assert [g["isSuccessful"] for g in graphs] == [True, False, False]
    ordered = graphs[0]["graphResponse"]["compositeResponse"]
    assert [r["referenceId"] for r in ordered] == ["c", "a"]  # answers keep the request's order
    assert [r["httpStatusCode"] for r in ordered] == [201, 201]
    cycle = graphs[1]["graphResponse"]["compositeResponse"]
    assert cycle[0]["body"][0]["errorCode"] == "CIRCULAR_DEPENDENCY"
    unknown = graphs[2]["graphResponse"]["compositeResponse"]
    assert unknown[0]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert count(org, "Account", "Name", t) == 1
    assert count(org, "Contact", "LastName", t) == 1


def test_graph_allows_only_sobject_rows(org: Any, client: TestClient) -> None:
    t = tag()
    refused = [
        sub("GET", "query?q=SELECT+Id+FROM+Account", "q"),
        sub("GET", "limits", "l"),
        sub("POST", "composite/sobjects", "coll", {"records": []}),
        sub("PATCH", "sobjects/Account", "patchType", {"Name": "x"}),
        sub("POST", "sobjects/Account/001000000000000AAA", "postId", {"Name": "x"}),
        {"method": "POST", "url": "/services/data/v49.0/sobjects/Account", "referenceId": "old", "body": {"Name": "x"}},
    ]
    graphs = graphs_of(graph_request(client, [
        {"graphId": f"g{i}", "compositeRequest": [sub("POST", "sobjects/Account", "a", {"Name": f"{t} {i}"}), node]}
        for i, node in enumerate(refused)]))
    assert [g["isSuccessful"] for g in graphs] == [False] * len(refused)
    for item in graphs:
        first, second = item["graphResponse"]["compositeResponse"]
        assert halted_by_rollback(first)
        assert second["httpStatusCode"] == 400 and second["body"][0]["errorCode"] == "INVALID_REQUEST"
    assert_top_error(client.post(f"{B}/composite/graph", json={"graphs": [{"graphId": "p", "compositeRequest": [
        sub("PUT", "sobjects/Account", "a", {"Name": f"{t} put"})]}]}), 400, "JSON_PARSER_ERROR")
    ok = graphs_of(graph_request(client, [{"graphId": "ext", "compositeRequest": [
        sub("POST", "sobjects/Account", "a", {"Name": f"{t} ext"}),
        sub("PATCH", f"sobjects/Invoice__c/Code__c/{t}", "inv", {"Name": f"{t} inv", "Account__c": "@{a.id}"}),
        sub("GET", f"sobjects/Invoice__c/Code__c/{t}", "read"),
        sub("DELETE", "sobjects/Invoice__c/@{inv.id}", "del"),
    ]}]))
    assert [r["httpStatusCode"] for r in ok[0]["graphResponse"]["compositeResponse"]] == [201, 201, 200, 204]
    assert count(org, "Account", "Name", t) == 1


def test_graph_limits(org: Any, client: TestClient) -> None:
    t = tag()

    def account(ref: str, **extra: Any) -> dict[str, Any]:
        return sub("POST", "sobjects/Account", ref, {"Name": f"{t} {ref}", **extra})

    too_big = graphs_of(graph_request(client, [
        {"graphId": "big", "compositeRequest": [account(f"n{i}") for i in range(501)]}]))
    assert too_big[0]["isSuccessful"] is False
    assert too_big[0]["graphResponse"]["compositeResponse"] == [{
        "body": [{"errorCode": "LIMIT_EXCEEDED", "message": "Limit of 500 reached for number of Nodes in the Graph"}],
        "httpHeaders": {}, "httpStatusCode": 400, "referenceId": None}]

    chain = [account("d0")] + [account(f"d{i}", Description=f"@{{d{i - 1}.id}}") for i in range(1, 16)]
    deep = graphs_of(graph_request(client, [{"graphId": "deep", "compositeRequest": chain},
                                            {"graphId": "fine", "compositeRequest": chain[:15]}]))
    assert deep[0]["isSuccessful"] is False
    assert deep[0]["graphResponse"]["compositeResponse"][0]["body"][0]["errorCode"] == "LIMIT_EXCEEDED"
    assert deep[1]["isSuccessful"] is True
    assert count(org, "Account", "Name", t) == 15

    assert_top_error(graph_request(client, [{"graphId": f"g{i}", "compositeRequest": [account(f"m{i}")]}
                                            for i in range(76)]), 400, "LIMIT_EXCEEDED")
    assert_top_error(graph_request(client, [{"graphId": f"h{g}", "compositeRequest": [
        account(f"p{g}x{i}") for i in range(300)]} for g in range(2)]), 400, "LIMIT_EXCEEDED")
    kinds = [{"graphId": f"k{i}", "compositeRequest": [
        {"method": "POST", "url": f"/services/data/v{50 + i}.0/sobjects/Account", "referenceId": "a",
         "body": {"Name": f"{t} kind"}}]} for i in range(16)]
    assert_top_error(graph_request(client, kinds), 400, "LIMIT_EXCEEDED")
    assert count(org, "Account", "Name", t) == 15


def test_graph_bad_input(org: Any, client: TestClient) -> None:
    t = tag()
    node = sub("POST", "sobjects/Account", "a", {"Name": f"{t} a"})
    for graphs in ([{"graphId": "1", "compositeRequest": [node]}, {"graphId": "1", "compositeRequest": [node]}],
                   [{"graphId": "_1", "compositeRequest": [node]}],
                   [{"compositeRequest": [node]}],
                   [{"graphId": "1"}],
                   [{"graphId": "1", "compositeRequest": [node, node]}],
                   [{"graphId": "1", "compositeRequest": [{**node, "referenceId": "a.b"}]}]):
        assert_top_error(graph_request(client, graphs), 400, "JSON_PARSER_ERROR")
    assert_top_error(client.post(f"{B}/composite/graph", content=b'{"graphs": [}',
                                 headers={"Content-Type": "application/json"}), 400, "JSON_PARSER_ERROR")
    assert_top_error(graph_request(client, [{"graphId": "1", "compositeRequest": [node]}], "49.0"), 404, "NOT_FOUND")
    assert count(org, "Account", "Name", t) == 0


def test_graph_processing_halts_after_14_failed_graphs(org: Any, client: TestClient) -> None:
    t = tag()
    failing = [{"graphId": f"f{i}", "compositeRequest": [sub("POST", "sobjects/Account", "a", {"Description": "x"})]}
               for i in range(14)]
    later = [{"graphId": f"l{i}", "compositeRequest": [sub("POST", "sobjects/Account", "a", {"Name": f"{t} {i}"})]}
             for i in range(2)]
    graphs = graphs_of(graph_request(client, failing + later))
    assert [g["isSuccessful"] for g in graphs] == [False] * 16
    for item in graphs[:14]:
        assert item["graphResponse"]["compositeResponse"][0]["body"][0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    for item in graphs[14:]:
        body = item["graphResponse"]["compositeResponse"][0]["body"]
        assert body[0]["errorCode"] == "PROCESSING_HALTED"
    assert count(org, "Account", "Name", t) == 0

    fewer = graphs_of(graph_request(client, failing[:13] + later))
    assert [g["isSuccessful"] for g in fewer] == [False] * 13 + [True, True]
    assert count(org, "Account", "Name", t) == 2
