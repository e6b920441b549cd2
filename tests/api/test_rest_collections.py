"""sObject Collections (``B/composite/sobjects``) and sObject Tree (``B/composite/tree``), driven in-process.

Every test runs on SQLite and PostgreSQL. One org per backend for the module (its project declares
``Gadget__c`` with a unique external id ``Sku__c`` and a lookup to Account); ``client`` stays per test.
Tests create their own records under a tag unique to the test and count by that tag, so they stay
independent. They assert what a client sees: status, the body's shape and order, and that a rejected or
rolled-back request wrote nothing.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.datastructures import Headers
from starlette.testclient import TestClient

from interlink import ids
from interlink.api.app import DataApi
from interlink.api.resources import ApiRequest
from interlink.records.hooks import SaveEvent
from interlink.testing import backend_org

V = "/services/data/v66.0"
COLL = f"{V}/composite/sobjects"
TREE = f"{V}/composite/tree"
ROLLED_BACK = "ALL_OR_NONE_OPERATION_ROLLED_BACK"

GADGET_YAML = """\
label: Gadget
fields:
  - {name: Sku__c, type: text, length: 40, externalId: true, unique: true}
  - {name: Price__c, type: currency, precision: 16, scale: 2}
  - {name: Account__c, type: lookup, referenceTo: Account, childRelationshipName: Gadgets}
"""


@pytest.fixture(scope="module")
def org(store_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One org per backend for this module (overrides conftest's per-test ``org``)."""
    root = tmp_path_factory.mktemp(f"collections-{store_backend}")
    with backend_org(root, store_backend, {"Gadget__c": GADGET_YAML}, unavailable=pytest.skip) as opened:
        yield opened


# -- helpers ---------------------------------------------------------------------------------------------------

def tag() -> str:
    return "co" + uuid.uuid4().hex[:10]


def acc(name: str, **fields: Any) -> dict[str, Any]:
    return {"attributes": {"type": "Account"}, "Name": name, **fields}


def con(last: str | None, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"attributes": {"type": "Contact"}, **fields}
    if last is not None:
        body["LastName"] = last
    return body


def query(client: TestClient, soql: str) -> list[dict[str, Any]]:
    response = client.get(f"{V}/query", params={"q": soql})
    assert response.status_code == 200, response.text
    return response.json()["records"]


def count(client: TestClient, obj: str, field: str, prefix: str) -> int:
    return len(query(client, f"SELECT Id FROM {obj} WHERE {field} LIKE '{prefix}%'"))


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """The platform's REST error body: a JSON array of {message, errorCode, fields}."""
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body, list) and body, body
    assert set(body[0]) == {"message", "errorCode", "fields"}, body
    assert body[0]["errorCode"] == code, body
    return body[0]


def assert_ok(item: dict[str, Any], prefix: str) -> str:
    assert item["success"] is True and item["errors"] == [], item
    assert item["id"].startswith(prefix) and len(item["id"]) == 18, item
    return item["id"]


def assert_failed(item: dict[str, Any], code: str, fields: list[str] | None = None) -> dict[str, Any]:
    """A failed item: ``success`` false and errors with ``statusCode`` (not ``errorCode``)."""
    assert item["success"] is False, item
    assert item["errors"], item
    for error in item["errors"]:
        assert set(error) == {"statusCode", "message", "fields"}, error
        assert isinstance(error["message"], str) and error["message"]
    assert item["errors"][0]["statusCode"] == code, item
    if fields is not None:
        assert item["errors"][0]["fields"] == fields, item
    return item["errors"][0]


def create(client: TestClient, records: list[dict[str, Any]], all_or_none: bool = False) -> list[dict[str, Any]]:
    response = client.post(COLL, json={"allOrNone": all_or_none, "records": records})
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body, list) and len(body) == len(records)
    return body


# -- create ----------------------------------------------------------------------------------------------------

def test_create_mixed_types_in_request_order(client: TestClient) -> None:
    t = tag()
    body = create(client, [acc(f"{t}-1"), con(f"{t}-c1"), acc(f"{t}-2"), {"attributes": {"type": "Gadget__c"},
                                                                           "Name": "g", "Sku__c": f"{t}-g"}])
    assert [set(item) for item in body] == [{"id", "success", "errors"}] * 4
    first, contact, second, gadget = (item["id"] for item in body)
    assert_ok(body[0], "001"), assert_ok(body[1], "003"), assert_ok(body[2], "001")
    assert gadget[:3] == ids.normalize(gadget)[:3] and gadget[:3] not in ("001", "003")
    names = {r["Id"]: r["Name"] for r in query(client, f"SELECT Id, Name FROM Account WHERE Name LIKE '{t}%'")}
    assert names == {first: f"{t}-1", second: f"{t}-2"}
    assert query(client, f"SELECT LastName FROM Contact WHERE Id = '{contact}'")[0]["LastName"] == f"{t}-c1"


def test_create_partial_success(client: TestClient) -> None:
    t = tag()
    body = create(client, [acc(f"{t}-ok"), con(None, FirstName="NoLast"), acc(f"{t}-bad", Bogus__c=1),
                           acc(f"{t}-ok2")])
    assert_ok(body[0], "001")
    assert "id" not in body[1]
    assert_failed(body[1], "REQUIRED_FIELD_MISSING", ["LastName"])
    assert_failed(body[2], "INVALID_FIELD", ["Bogus__c"])
    assert_ok(body[3], "001")
    assert count(client, "Account", "Name", t) == 2


def test_create_all_or_none_rolls_back_every_chunk(client: TestClient, org: Any) -> None:
    """A failure in the third chunk undoes the chunks already written, and their change events never fire."""
    t = tag()
    committed: list[str] = []

    def on_commit(event: SaveEvent) -> None:
        committed.extend(str(row.get("Name") or row.get("LastName")) for row in event.new)

    org.hooks.register("on_commit", on_commit)
    try:
        body = create(client, [acc(f"{t}-1"), acc(f"{t}-2"), con(f"{t}-c"), acc(f"{t}-3", Bogus__c=1),
                               acc(f"{t}-4")], all_or_none=True)
    finally:
        org.hooks.unregister(on_commit)
    for index in (0, 1, 2, 4):
        assert "id" not in body[index], body[index]
        assert_failed(body[index], ROLLED_BACK)
    assert_failed(body[3], "INVALID_FIELD")
    assert count(client, "Account", "Name", t) == 0
    assert count(client, "Contact", "LastName", t) == 0
    assert not [name for name in committed if name.startswith(t)]


def test_create_all_or_none_success(client: TestClient) -> None:
    t = tag()
    body = create(client, [acc(f"{t}-1"), con(f"{t}-c")], all_or_none=True)
    assert_ok(body[0], "001"), assert_ok(body[1], "003")
    assert count(client, "Account", "Name", t) == 1


def test_create_all_or_none_reports_every_invalid_record(client: TestClient) -> None:
    t = tag()
    body = create(client, [con(None), acc(f"{t}-ok"), {"Name": "no attributes"}], all_or_none=True)
    assert_failed(body[0], "REQUIRED_FIELD_MISSING")
    assert_failed(body[1], ROLLED_BACK)
    assert_failed(body[2], "INVALID_TYPE")
    assert count(client, "Account", "Name", t) == 0


def test_create_rejects_ids_and_missing_or_unknown_types(client: TestClient) -> None:
    t = tag()
    existing = assert_ok(create(client, [acc(f"{t}-x")])[0], "001")
    body = create(client, [acc(f"{t}-id", Id=existing), {"Name": f"{t}-none"},
                           {"attributes": {"url": "/x"}, "Name": f"{t}-notype"},
                           {"attributes": {"type": "Nope__c"}, "Name": f"{t}-unknown"}, acc(f"{t}-ok")])
    assert_failed(body[0], "INVALID_FIELD_FOR_INSERT_UPDATE", ["Id"])
    assert_failed(body[1], "INVALID_TYPE")
    assert_failed(body[2], "INVALID_TYPE")
    assert_failed(body[3], "INVALID_TYPE")
    assert_ok(body[4], "001")
    assert count(client, "Account", "Name", t) == 2


def test_create_limit_200_records(client: TestClient) -> None:
    t = tag()
    response = client.post(COLL, json={"records": [acc(f"{t}-{n:03d}") for n in range(201)]})
    error = assert_error(response, 400, "EXCEEDED_ID_LIMIT")
    assert "200" in error["message"]
    assert count(client, "Account", "Name", t) == 0
    body = create(client, [acc(f"{t}-{n:03d}") for n in range(200)])
    assert all(item["success"] for item in body)
    assert len({item["id"] for item in body}) == 200
    assert count(client, "Account", "Name", t) == 200


def test_create_at_most_ten_chunks(client: TestClient) -> None:
    t = tag()
    eleven = [acc(f"{t}-a{n}") if n % 2 == 0 else con(f"{t}-c{n}") for n in range(11)]
    error = assert_error(client.post(COLL, json={"records": eleven}), 400, "INVALID_BATCH_REQUEST")
    assert "10 chunks" in error["message"]
    assert count(client, "Account", "Name", t) == 0
    # The same eleven records sorted by type are two chunks.
    body = create(client, sorted(eleven, key=lambda r: r["attributes"]["type"]))
    assert all(item["success"] for item in body)
    ten = eleven[:10]
    assert all(item["success"] for item in create(client, ten))


def test_create_malformed_requests(client: TestClient) -> None:
    assert_error(client.post(COLL, content=b"{not json", headers={"Content-Type": "application/json"}), 400,
                 "JSON_PARSER_ERROR")
    assert_error(client.post(COLL, json=[acc("x")]), 400, "JSON_PARSER_ERROR")
    assert_error(client.post(COLL, json={"allOrNone": True}), 400, "MISSING_ARGUMENT")
    assert_error(client.post(COLL, json={"records": {"a": 1}}), 400, "JSON_PARSER_ERROR")
    assert_error(client.post(COLL, json={"records": ["x"]}), 400, "JSON_PARSER_ERROR")
    assert_error(client.post(COLL, json={"allOrNone": 3, "records": []}), 400, "JSON_PARSER_ERROR")
    assert client.post(COLL, json={"records": []}).json() == []


def test_collections_need_v42_and_upsert_v46(client: TestClient) -> None:
    assert_error(client.post("/services/data/v41.0/composite/sobjects", json={"records": []}), 404, "NOT_FOUND")
    assert client.post("/services/data/v42.0/composite/sobjects", json={"records": []}).status_code == 200
    assert_error(client.patch("/services/data/v45.0/composite/sobjects/Gadget__c/Sku__c", json={"records": []}),
                 404, "NOT_FOUND")
    assert_error(client.post("/services/data/v33.0/composite/tree/Account", json={"records": []}), 404,
                 "NOT_FOUND")


def test_wrong_method_is_405(client: TestClient) -> None:
    response = client.put(COLL, json={"records": []})
    assert_error(response, 405, "METHOD_NOT_ALLOWED")
    assert set(response.headers["Allow"].split(", ")) == {"DELETE", "PATCH", "POST"}


# -- update ----------------------------------------------------------------------------------------------------

def test_update_mixed_types_partial_success(client: TestClient) -> None:
    t = tag()
    a1, c1, a2 = (item["id"] for item in create(client, [acc(f"{t}-1"), con(f"{t}-c"), acc(f"{t}-2")]))
    missing_account = "001" + "0" * 9 + "ZZZ"
    response = client.patch(COLL, json={"allOrNone": False, "records": [
        {"attributes": {"type": "Account"}, "id": a1, "Name": f"{t}-1b"},
        {"attributes": {"type": "Contact"}, "id": c1, "Title": "Boss"},
        {"attributes": {"type": "Account"}, "Name": f"{t}-noid"},
        {"attributes": {"type": "Account"}, "id": a2, "Bogus__c": 1},
        {"attributes": {"type": "Account"}, "id": c1, "Name": "wrong type"},
        {"attributes": {"type": "Account"}, "id": missing_account, "Name": "ghost"},
        {"id": a2, "Name": "no type"},
    ]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body[0] == {"id": a1, "success": True, "errors": []}
    assert body[1] == {"id": c1, "success": True, "errors": []}
    assert_failed(body[2], "MISSING_ARGUMENT", ["Id"])
    assert_failed(body[3], "INVALID_FIELD")
    assert body[3]["id"] == a2
    assert_failed(body[4], "MALFORMED_ID")
    assert body[5]["success"] is False and body[5]["errors"]
    assert_failed(body[6], "INVALID_TYPE")
    rows = {r["Id"]: r["Name"] for r in query(client, f"SELECT Id, Name FROM Account WHERE Name LIKE '{t}%'")}
    assert rows == {a1: f"{t}-1b", a2: f"{t}-2"}
    assert query(client, f"SELECT Title FROM Contact WHERE Id = '{c1}'")[0]["Title"] == "Boss"


def test_update_all_or_none_changes_nothing(client: TestClient) -> None:
    t = tag()
    a1, c1 = (item["id"] for item in create(client, [acc(f"{t}-1"), con(f"{t}-c")]))
    response = client.patch(COLL, json={"allOrNone": True, "records": [
        {"attributes": {"type": "Account"}, "id": a1, "Name": f"{t}-changed"},
        {"attributes": {"type": "Contact"}, "id": c1, "LastName": None},
    ]})
    body = response.json()
    assert response.status_code == 200
    assert body[0]["id"] == a1
    assert_failed(body[0], ROLLED_BACK)
    assert_failed(body[1], "REQUIRED_FIELD_MISSING")
    assert query(client, f"SELECT Name FROM Account WHERE Id = '{a1}'")[0]["Name"] == f"{t}-1"


def test_update_limit(client: TestClient) -> None:
    records = [{"attributes": {"type": "Account"}, "id": "001" + "0" * 15, "Name": "x"}] * 201
    assert_error(client.patch(COLL, json={"records": records}), 400, "EXCEEDED_ID_LIMIT")


# -- upsert ----------------------------------------------------------------------------------------------------

def gadget(sku: str | None, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"attributes": {"type": "Gadget__c"}, "Name": "gadget", **fields}
    if sku is not None:
        body["Sku__c"] = sku
    return body


def upsert(client: TestClient, records: list[dict[str, Any]], all_or_none: bool = False) -> list[dict[str, Any]]:
    response = client.patch(f"{COLL}/Gadget__c/Sku__c", json={"allOrNone": all_or_none, "records": records})
    assert response.status_code == 200, response.text
    return response.json()


def test_upsert_creates_and_updates(client: TestClient) -> None:
    t = tag()
    first = upsert(client, [gadget(f"{t}-1", Price__c=1)])[0]
    assert first["created"] is True and first["success"] is True
    body = upsert(client, [gadget(f"{t}-1", Price__c=2), gadget(f"{t}-2", Price__c=3), gadget(None, Price__c=4),
                           gadget(f"{t}-3", Bogus__c=1), {"attributes": {"type": "Account"}, "Sku__c": f"{t}-x"}])
    assert body[0] == {"id": first["id"], "success": True, "errors": [], "created": False}
    assert body[1]["created"] is True and body[1]["success"] is True
    assert_failed(body[2], "MISSING_ARGUMENT")
    assert_failed(body[3], "INVALID_FIELD")
    assert_failed(body[4], "INVALID_TYPE")
    assert all(item["created"] is False for item in body[2:])
    prices = {r["Sku__c"]: r["Price__c"]
              for r in query(client, f"SELECT Sku__c, Price__c FROM Gadget__c WHERE Sku__c LIKE '{t}%'")}
    assert prices == {f"{t}-1": 2, f"{t}-2": 3}


def test_upsert_all_or_none(client: TestClient) -> None:
    t = tag()
    existing = upsert(client, [gadget(f"{t}-1", Price__c=1)])[0]["id"]
    body = upsert(client, [gadget(f"{t}-1", Price__c=9), gadget(f"{t}-2", Price__c=9),
                           gadget(f"{t}-3", Price__c="not a number")], all_or_none=True)
    assert body[0]["id"] == existing
    assert_failed(body[0], ROLLED_BACK)
    assert "id" not in body[1]
    assert_failed(body[1], ROLLED_BACK)
    assert body[2]["success"] is False and body[2]["errors"][0]["statusCode"] != ROLLED_BACK
    rows = query(client, f"SELECT Sku__c, Price__c FROM Gadget__c WHERE Sku__c LIKE '{t}%'")
    assert rows and [(r["Sku__c"], r["Price__c"]) for r in rows] == [(f"{t}-1", 1)]


def test_upsert_bad_external_id_field(client: TestClient) -> None:
    assert_error(client.patch(f"{COLL}/Gadget__c/Price__c", json={"records": [gadget("x")]}), 404, "NOT_FOUND")
    assert_error(client.patch(f"{COLL}/Nope__c/Sku__c", json={"records": []}), 404, "NOT_FOUND")
    assert_error(client.patch(f"{COLL}/Gadget__c/Sku__c", json={"records": [gadget(f"x{n}") for n in range(201)]}),
                 400, "EXCEEDED_ID_LIMIT")


# -- delete ----------------------------------------------------------------------------------------------------

def test_delete_partial_success(client: TestClient) -> None:
    t = tag()
    a1, c1, a2 = (item["id"] for item in create(client, [acc(f"{t}-1"), con(f"{t}-c"), acc(f"{t}-2")]))
    response = client.delete(COLL, params={"ids": f"{a1},{c1},notanid", "allOrNone": "false"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body[0] == {"id": a1, "success": True, "errors": []}
    assert body[1] == {"id": c1, "success": True, "errors": []}
    assert_failed(body[2], "MALFORMED_ID")
    assert [r["Id"] for r in query(client, f"SELECT Id FROM Account WHERE Name LIKE '{t}%'")] == [a2]
    again = client.delete(COLL, params={"ids": a1}).json()
    assert_failed(again[0], "ENTITY_IS_DELETED")


def test_delete_all_or_none(client: TestClient) -> None:
    t = tag()
    a1, a2 = (item["id"] for item in create(client, [acc(f"{t}-1"), acc(f"{t}-2")]))
    missing = "001" + "0" * 9 + "ZZZ"
    body = client.delete(COLL, params={"ids": f"{a1},{missing},{a2}", "allOrNone": "true"}).json()
    assert_failed(body[0], ROLLED_BACK)
    assert body[0]["id"] == a1
    assert_failed(body[1], "NOT_FOUND")
    assert_failed(body[2], ROLLED_BACK)
    assert count(client, "Account", "Name", t) == 2


def test_delete_limits_and_arguments(client: TestClient) -> None:
    assert_error(client.delete(COLL, params={"ids": ",".join(["001" + "0" * 15] * 201)}), 400, "EXCEEDED_ID_LIMIT")
    assert_error(client.delete(COLL), 400, "MISSING_ARGUMENT")
    assert_error(client.delete(COLL, params={"ids": "001" + "0" * 15, "allOrNone": "maybe"}), 400,
                 "JSON_PARSER_ERROR")


# -- retrieve --------------------------------------------------------------------------------------------------

def test_retrieve_get_with_nulls(client: TestClient) -> None:
    t = tag()
    a1, c1, a2 = (item["id"] for item in create(client, [acc(f"{t}-1", Industry="Energy"), con(f"{t}-c"),
                                                         acc(f"{t}-2")]))
    missing = "001" + "0" * 9 + "ZZZ"
    response = client.get(f"{COLL}/Account", params={"ids": f"{a1},{missing},{c1},bogus,{a2[:15]}",
                                                     "fields": "Name,Industry"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body[1] is None and body[2] is None and body[3] is None
    assert body[0] == {"attributes": {"type": "Account", "url": f"{V}/sobjects/Account/{a1}"},
                       "Name": f"{t}-1", "Industry": "Energy", "Id": a1}
    assert list(body[0]) == ["attributes", "Name", "Industry", "Id"]
    assert body[4]["Id"] == a2 and body[4]["Industry"] is None


def test_retrieve_post_body(client: TestClient) -> None:
    t = tag()
    a1, a2 = (item["id"] for item in create(client, [acc(f"{t}-1"), acc(f"{t}-2")]))
    client.delete(COLL, params={"ids": a2})
    response = client.post(f"{COLL}/Account", json={"ids": [a1, a2], "fields": ["Id", "Name"]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body[1] is None
    assert body[0] == {"attributes": {"type": "Account", "url": f"{V}/sobjects/Account/{a1}"}, "Id": a1,
                       "Name": f"{t}-1"}


def test_retrieve_errors(client: TestClient) -> None:
    some = "001" + "0" * 15
    assert_error(client.get(f"{COLL}/Account", params={"ids": some, "fields": "Name,Nope__c"}), 400, "INVALID_FIELD")
    assert_error(client.post(f"{COLL}/Account", json={"ids": [some], "fields": ["Nope__c"]}), 400, "INVALID_FIELD")
    assert_error(client.get(f"{COLL}/Account", params={"fields": "Name"}), 400, "MISSING_ARGUMENT")
    assert_error(client.get(f"{COLL}/Account", params={"ids": some}), 400, "MISSING_ARGUMENT")
    assert_error(client.get(f"{COLL}/Nope__c", params={"ids": some, "fields": "Name"}), 404, "NOT_FOUND")
    assert_error(client.post(f"{COLL}/Account", json={"ids": "x", "fields": ["Name"]}), 400, "JSON_PARSER_ERROR")
    assert_error(client.post(f"{COLL}/Account", json={"ids": [some] * 2001, "fields": ["Name"]}), 400,
                 "EXCEEDED_ID_LIMIT")


# -- inside an enclosing unit of work (as a composite request runs it) ----------------------------------------

def test_all_or_none_inside_an_enclosing_unit_of_work(org: Any) -> None:
    """Undoing a collection inside a larger transaction keeps the rest of it and drops only its own events."""
    t = tag()
    api = DataApi(org)
    context = org.admin_context()
    session = type("S", (), {"user_id": context.user_id, "app_id": None})()
    parent = ApiRequest(org=org, session=session, context=context, version="66.0", method="POST",  # type: ignore[arg-type]
                        segments=[], query={}, headers=Headers({}), dispatcher=api)
    committed: list[str] = []

    def on_commit(event: SaveEvent) -> None:
        committed.extend(str(row.get("Name")) for row in event.new)

    org.hooks.register("on_commit", on_commit)
    try:
        with org.records.unit_of_work(context):
            kept = org.records.create(context, "Account", [{"Name": f"{t}-kept"}])
            assert kept[0].success
            answer = asyncio.run(api.call(parent, "POST", f"{V}/composite/sobjects", {
                "allOrNone": True, "records": [acc(f"{t}-undone"), con(None)]}))
    finally:
        org.hooks.unregister(on_commit)
    assert answer.status == 200
    assert_failed(answer.body[0], ROLLED_BACK)
    assert_failed(answer.body[1], "REQUIRED_FIELD_MISSING")
    with org.store.read() as conn:
        from sqlalchemy import select

        table = org.store.table("Account")
        names = set(conn.execute(select(table.c.Name).where(table.c.Name.like(f"{t}%"))).scalars())
    assert names == {f"{t}-kept"}
    assert [n for n in committed if n.startswith(t)] == [f"{t}-kept"]


# -- sObject Tree ----------------------------------------------------------------------------------------------

def tree_record(obj: str, ref: str, **fields: Any) -> dict[str, Any]:
    return {"attributes": {"type": obj, "referenceId": ref}, **fields}


def test_tree_account_contacts_cases(client: TestClient) -> None:
    t = tag()
    body = {"records": [
        tree_record("Account", "acme", Name=f"{t}-acme", Contacts={"records": [
            tree_record("Contact", "jane", LastName=f"{t}-jane", Cases={"records": [
                tree_record("Case", "case1", Subject=f"{t}-s1"), tree_record("Case", "case2", Subject=f"{t}-s2")]}),
            tree_record("Contact", "joe", LastName=f"{t}-joe")]},
            Cases={"records": [tree_record("Case", "case3", Subject=f"{t}-s3")]}),
        tree_record("Account", "globex", Name=f"{t}-globex"),
    ]}
    response = client.post(f"{TREE}/Account", json=body)
    assert response.status_code == 201, response.text
    data = response.json()
    assert data["hasErrors"] is False
    assert all(set(item) == {"referenceId", "id"} for item in data["results"])
    by_ref = {item["referenceId"]: item["id"] for item in data["results"]}
    assert [item["referenceId"] for item in data["results"]][:2] == ["acme", "globex"]
    assert set(by_ref) == {"acme", "globex", "jane", "joe", "case1", "case2", "case3"}
    assert by_ref["acme"].startswith("001") and by_ref["jane"].startswith("003") and by_ref["case1"].startswith("500")
    contacts = {r["LastName"]: r["AccountId"]
                for r in query(client, f"SELECT LastName, AccountId FROM Contact WHERE LastName LIKE '{t}%'")}
    assert contacts == {f"{t}-jane": by_ref["acme"], f"{t}-joe": by_ref["acme"]}
    cases = {r["Subject"]: (r["ContactId"], r["AccountId"])
             for r in query(client, f"SELECT Subject, ContactId, AccountId FROM Case WHERE Subject LIKE '{t}%'")}
    assert cases == {f"{t}-s1": (by_ref["jane"], None), f"{t}-s2": (by_ref["jane"], None),
                     f"{t}-s3": (None, by_ref["acme"])}


def test_tree_failure_writes_nothing(client: TestClient) -> None:
    t = tag()
    body = {"records": [
        tree_record("Account", "ref1", Name=f"{t}-a", Contacts={"records": [
            tree_record("Contact", "ref2", LastName=f"{t}-ok", Cases={"records": [
                tree_record("Case", "ref3", Subject=f"{t}-case", Bogus__c="x")]}),
            tree_record("Contact", "ref4", LastName=f"{t}-ok2")]}),
    ]}
    response = client.post(f"{TREE}/Account", json=body)
    assert response.status_code == 400, response.text
    data = response.json()
    assert data["hasErrors"] is True
    assert [item["referenceId"] for item in data["results"]] == ["ref3"]
    error = data["results"][0]["errors"][0]
    assert set(error) == {"statusCode", "message", "fields"} and error["fields"] == ["Bogus__c"]
    assert count(client, "Account", "Name", t) == 0
    assert count(client, "Contact", "LastName", t) == 0
    assert count(client, "Case", "Subject", t) == 0


def test_tree_failure_at_the_second_level(client: TestClient) -> None:
    t = tag()
    body = {"records": [tree_record("Account", "a1", Name=f"{t}-a", Contacts={"records": [
        tree_record("Contact", "c1", FirstName="x"), tree_record("Contact", "c2", LastName=f"{t}-fine")]})]}
    data = client.post(f"{TREE}/Account", json=body).json()
    assert data == {"hasErrors": True, "results": [{"referenceId": "c1", "errors": [
        {"statusCode": "REQUIRED_FIELD_MISSING", "message": "Required fields are missing: [LastName]",
         "fields": ["LastName"]}]}]}
    assert count(client, "Account", "Name", t) == 0


def test_tree_unrelated_records_of_one_type(client: TestClient) -> None:
    t = tag()
    body = {"records": [tree_record("Account", f"r{n}", Name=f"{t}-{n:03d}") for n in range(200)]}
    response = client.post(f"{TREE}/Account", json=body)
    assert response.status_code == 201, response.text
    assert [item["referenceId"] for item in response.json()["results"]] == [f"r{n}" for n in range(200)]
    assert count(client, "Account", "Name", t) == 200


def test_tree_limits(client: TestClient) -> None:
    t = tag()
    too_many = {"records": [tree_record("Account", f"r{n}", Name=f"{t}-{n}") for n in range(201)]}
    assert_error(client.post(f"{TREE}/Account", json=too_many), 400, "EXCEEDED_ID_LIMIT")
    nested: dict[str, Any] = tree_record("Account", "l6", Name=f"{t}-6")
    for level in range(5, 0, -1):
        nested = tree_record("Account", f"l{level}", Name=f"{t}-{level}", ChildAccounts={"records": [nested]})
    assert_error(client.post(f"{TREE}/Account", json={"records": [nested]}), 400, "INVALID_INPUT")
    five_deep = nested["ChildAccounts"]["records"][0]
    assert client.post(f"{TREE}/Account", json={"records": [five_deep]}).status_code == 201
    six_types = {"records": [tree_record("Account", "a", Name=f"{t}-x", **{
        rel: {"records": [tree_record(obj, f"r-{obj}")]}
        for rel, obj in (("Contacts", "Contact"), ("Cases", "Case"), ("Opportunities", "Opportunity"),
                         ("Assets", "Asset"), ("Orders", "Order"))})]}
    assert_error(client.post(f"{TREE}/Account", json=six_types), 400, "INVALID_INPUT")
    assert count(client, "Account", "Name", f"{t}-x") == 0


def test_tree_invalid_records(client: TestClient) -> None:
    t = tag()
    duplicate = {"records": [tree_record("Account", "same", Name=f"{t}-1"),
                             tree_record("Account", "same", Name=f"{t}-2")]}
    response = client.post(f"{TREE}/Account", json=duplicate)
    assert response.status_code == 400
    assert response.json()["results"][0]["referenceId"] == "same"
    assert response.json()["results"][0]["errors"][0]["statusCode"] == "INVALID_INPUT"
    wrong_root = client.post(f"{TREE}/Account", json={"records": [tree_record("Contact", "c", LastName="x")]})
    assert wrong_root.status_code == 400
    assert wrong_root.json()["results"][0]["errors"][0]["statusCode"] == "INVALID_TYPE"
    unknown_rel = client.post(f"{TREE}/Account", json={"records": [tree_record(
        "Account", "a", Name=f"{t}-3", Widgets={"records": [tree_record("Contact", "c", LastName="x")]})]})
    assert unknown_rel.status_code == 400
    assert unknown_rel.json()["results"] == [{"referenceId": "a", "errors": [
        {"statusCode": "INVALID_FIELD", "message": "No such child relationship 'Widgets' on sobject of type Account",
         "fields": ["Widgets"]}]}]
    with_id = client.post(f"{TREE}/Account", json={"records": [tree_record("Account", "a", Name="x",
                                                                           Id="001" + "0" * 15)]})
    assert with_id.status_code == 400
    assert with_id.json()["results"][0]["errors"][0]["statusCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    assert count(client, "Account", "Name", t) == 0


def test_tree_malformed_requests(client: TestClient) -> None:
    assert_error(client.post(f"{TREE}/Account", json={"records": [{"attributes": {"type": "Account"}, "Name": "x"}]}),
                 400, "INVALID_INPUT")
    assert_error(client.post(f"{TREE}/Account", json={}), 400, "MISSING_ARGUMENT")
    assert_error(client.post(f"{TREE}/Account", json={"records": "x"}), 400, "JSON_PARSER_ERROR")
    assert_error(client.post(f"{TREE}/Account", json={"records": []}), 400, "INVALID_INPUT")
    assert_error(client.post(f"{TREE}/Nope__c", json={"records": []}), 404, "NOT_FOUND")
    assert_error(client.get(f"{TREE}/Account"), 405, "METHOD_NOT_ALLOWED")


def test_tree_custom_child_relationship(client: TestClient) -> None:
    t = tag()
    child = tree_record("Gadget__c", "g", Name="g", Sku__c=f"{t}-g")
    response = client.post(f"{TREE}/Account", json={"records": [tree_record(
        "Account", "a", Name=f"{t}-a", Gadgets__r={"records": [child]})]})
    assert response.status_code == 201, response.text
    by_ref = {item["referenceId"]: item["id"] for item in response.json()["results"]}
    rows = query(client, f"SELECT Account__c FROM Gadget__c WHERE Sku__c = '{t}-g'")
    assert rows[0]["Account__c"] == by_ref["a"]
