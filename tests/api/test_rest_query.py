"""REST query: ``GET /query?q=``, ``/queryAll?q=``, ``/query/{locator}`` pages and ``?explain=``, on every store
backend.

One org per backend is shared by the module (opening an org costs most of a second). It declares two custom
objects: ``Row__c`` holds 2,500 numbered rows for paging (created once, never changed), ``Invoice__c`` is where
tests create the records they look at, each with a tag unique to the test.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from interlink.app.setup_users import create_user
from interlink.testing import backend_org, rest_client

V = "66.0"
B = f"/services/data/v{V}"
ROWS = 2500
LOCATOR_URL = re.compile(r"^/services/data/v(\d+\.\d)/(query|queryAll)/(01g[A-Za-z0-9]{15})-(\d+)$")

ROW_YAML = """\
name: Row__c
label: Row
labelPlural: Rows
fields:
  - {name: Seq__c, type: number, precision: 9, scale: 0}
  - {name: Ext__c, type: text, length: 40, externalId: true}
  - {name: Plain__c, type: text, length: 40}
"""

INVOICE_YAML = """\
name: Invoice__c
label: Invoice
labelPlural: Invoices
fields:
  - {name: Tag__c, type: text, length: 40}
  - {name: Amount__c, type: currency, precision: 16, scale: 2}
  - {name: Account__c, type: lookup, referenceTo: Account, childRelationshipName: Invoices}
"""


@pytest.fixture(scope="module")
def org(store_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One org per backend for this module, with Row__c (2,500 rows) and Invoice__c."""
    root = tmp_path_factory.mktemp(f"rest-query-{store_backend}")
    objects = {"Row__c": ROW_YAML, "Invoice__c": INVOICE_YAML}
    with backend_org(root, store_backend, objects, unavailable=pytest.skip) as opened:
        context = opened.admin_context()
        for start in range(0, ROWS, 1000):
            results = opened.records.create(context, "Row__c", [
                {"Name": f"Row {n:05d}", "Seq__c": n, "Ext__c": f"EXT-{n:05d}", "Plain__c": f"plain {n}"}
                for n in range(start, min(ROWS, start + 1000))])
            assert all(r.success for r in results), [r.errors for r in results if not r.success][:3]
        yield opened


@pytest.fixture(scope="module")
def client(org: Any) -> Iterator[Any]:
    with rest_client(org) as test_client:
        yield test_client


def tag() -> str:
    return "q" + uuid.uuid4().hex[:10]


def create(client: Any, object_name: str, body: dict[str, Any]) -> str:
    response = client.post(f"{B}/sobjects/{object_name}/", json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]  # type: ignore[no-any-return]


def query(client: Any, soql: str, *, resource: str = "query", version: str = V, batch: int | str | None = None,
          status: int = 200) -> Any:
    headers = {} if batch is None else {"Sforce-Query-Options": f"batchSize={batch}"}
    response = client.get(f"/services/data/v{version}/{resource}", params={"q": soql}, headers=headers)
    assert response.status_code == status, response.text
    return response.json()


def more(client: Any, url: str, status: int = 200) -> Any:
    response = client.get(url)
    assert response.status_code == status, response.text
    return response.json()


def error(body: Any) -> dict[str, Any]:
    assert isinstance(body, list) and len(body) == 1, body
    return body[0]  # type: ignore[no-any-return]


def url_of(object_name: str, record_id: str) -> str:
    return f"{B}/sobjects/{object_name}/{record_id}"


ALL_ROWS = "SELECT Id, Seq__c FROM Row__c ORDER BY Seq__c"


# -- result shape --------------------------------------------------------------------------------------------------


def test_done_result_has_no_next_records_url_and_platform_key_order(client: Any) -> None:
    t = tag()
    first = create(client, "Invoice__c", {"Name": f"{t} one", "Tag__c": t, "Amount__c": 12.5})
    response = client.get(f"{B}/query", params={"q": f"SELECT Id, Name, Amount__c FROM Invoice__c "
                                                      f"WHERE Tag__c = '{t}'"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert list(body) == ["totalSize", "done", "records"]
    assert body == {"totalSize": 1, "done": True, "records": [{
        "attributes": {"type": "Invoice__c", "url": url_of("Invoice__c", first)},
        "Id": first, "Name": f"{t} one", "Amount__c": 12.5}]}


def test_trailing_slash_and_sforce_limit_info(client: Any) -> None:
    response = client.get(f"{B}/query/", params={"q": "SELECT Id FROM Row__c WHERE Seq__c = 7"})
    assert response.status_code == 200, response.text
    assert response.json()["totalSize"] == 1
    assert re.match(r"^api-usage=\d+/\d+", response.headers["Sforce-Limit-Info"])
    response = client.get(f"{B}/queryAll/", params={"q": "SELECT Id FROM Row__c WHERE Seq__c = 7"})
    assert response.status_code == 200, response.text
    assert re.match(r"^api-usage=\d+/\d+", response.headers["Sforce-Limit-Info"])


def test_parent_objects_are_nested_records(client: Any) -> None:
    t = tag()
    account = create(client, "Account", {"Name": f"{t} Parent"})
    linked = create(client, "Invoice__c", {"Name": f"{t} linked", "Tag__c": t, "Account__c": account})
    orphan = create(client, "Invoice__c", {"Name": f"{t} orphan", "Tag__c": t})
    body = query(client, f"SELECT Id, Account__r.Name, Account__r.Owner.Name FROM Invoice__c "
                         f"WHERE Tag__c = '{t}' ORDER BY Name")
    linked_row, orphan_row = body["records"]
    assert linked_row["Id"] == linked and orphan_row["Id"] == orphan
    parent = linked_row["Account__r"]
    assert parent["attributes"] == {"type": "Account", "url": url_of("Account", account)}
    assert parent["Name"] == f"{t} Parent"
    assert parent["Owner"]["attributes"]["type"] == "User"
    assert parent["Owner"]["attributes"]["url"].startswith(f"{B}/sobjects/User/005")
    assert parent["Owner"]["Name"]
    assert orphan_row["Account__r"] is None

    contact = create(client, "Contact", {"LastName": f"{t} Ada", "AccountId": account})
    body = query(client, f"SELECT LastName, Account.Name FROM Contact WHERE Id = '{contact}'")
    assert body["records"] == [{"attributes": {"type": "Contact", "url": url_of("Contact", contact)},
                                "LastName": f"{t} Ada",
                                "Account": {"attributes": {"type": "Account", "url": url_of("Account", account)},
                                            "Name": f"{t} Parent"}}]


def test_child_subqueries_are_blocks_and_null_when_empty(client: Any) -> None:
    t = tag()
    full = create(client, "Account", {"Name": f"{t} A full"})
    empty = create(client, "Account", {"Name": f"{t} B empty"})
    ada = create(client, "Contact", {"LastName": "Ada", "AccountId": full})
    bob = create(client, "Contact", {"LastName": "Bob", "AccountId": full})
    invoice = create(client, "Invoice__c", {"Name": f"{t} inv", "Tag__c": t, "Account__c": full})
    body = query(client, f"SELECT Name, (SELECT LastName FROM Contacts ORDER BY LastName), "
                         f"(SELECT Name FROM Invoices__r) FROM Account WHERE Name LIKE '{t}%' ORDER BY Name")
    assert body["totalSize"] == 2 and body["done"] is True
    first, second = body["records"]
    assert first["attributes"] == {"type": "Account", "url": url_of("Account", full)}
    assert first["Contacts"] == {"totalSize": 2, "done": True, "records": [
        {"attributes": {"type": "Contact", "url": url_of("Contact", ada)}, "LastName": "Ada"},
        {"attributes": {"type": "Contact", "url": url_of("Contact", bob)}, "LastName": "Bob"}]}
    assert first["Invoices__r"] == {"totalSize": 1, "done": True, "records": [
        {"attributes": {"type": "Invoice__c", "url": url_of("Invoice__c", invoice)}, "Name": f"{t} inv"}]}
    assert second["attributes"]["url"] == url_of("Account", empty)
    assert second["Contacts"] is None
    assert second["Invoices__r"] is None
    assert list(second) == ["attributes", "Name", "Contacts", "Invoices__r"]


def test_aggregate_results_have_no_url(client: Any) -> None:
    t = tag()
    for name, amount in [("x", 10), ("x", 30), ("y", 5)]:
        create(client, "Invoice__c", {"Name": f"{t} {name}", "Tag__c": t, "Amount__c": amount})
    body = query(client, f"SELECT Name, COUNT(Id), SUM(Amount__c) total FROM Invoice__c WHERE Tag__c = '{t}' "
                         f"GROUP BY Name ORDER BY Name")
    assert body == {"totalSize": 2, "done": True, "records": [
        {"attributes": {"type": "AggregateResult"}, "Name": f"{t} x", "expr0": 2, "total": 40},
        {"attributes": {"type": "AggregateResult"}, "Name": f"{t} y", "expr0": 1, "total": 5}]}
    body = query(client, f"SELECT COUNT(Id), MAX(Amount__c) FROM Invoice__c WHERE Tag__c = '{t}'")
    assert body["records"] == [{"attributes": {"type": "AggregateResult"}, "expr0": 3, "expr1": 30}]


def test_count_gives_total_size_with_no_records(client: Any) -> None:
    assert query(client, "SELECT COUNT() FROM Row__c") == {"totalSize": ROWS, "done": True, "records": []}
    assert query(client, "SELECT COUNT() FROM Row__c WHERE Seq__c < 10") == {
        "totalSize": 10, "done": True, "records": []}


# -- query vs queryAll -----------------------------------------------------------------------------------------------


def test_query_all_includes_deleted_rows(client: Any) -> None:
    t = tag()
    kept = create(client, "Invoice__c", {"Name": f"{t} kept", "Tag__c": t})
    gone = create(client, "Invoice__c", {"Name": f"{t} gone", "Tag__c": t})
    assert client.delete(f"{B}/sobjects/Invoice__c/{gone}").status_code == 204
    soql = f"SELECT Id, IsDeleted FROM Invoice__c WHERE Tag__c = '{t}' ORDER BY Name"

    live = query(client, soql)
    assert live["totalSize"] == 1
    assert [(r["Id"], r["IsDeleted"]) for r in live["records"]] == [(kept, False)]

    everything = query(client, soql, resource="queryAll")
    assert everything["totalSize"] == 2
    assert [(r["Id"], r["IsDeleted"]) for r in everything["records"]] == [(gone, True), (kept, False)]
    assert everything["records"][0]["attributes"] == {"type": "Invoice__c", "url": url_of("Invoice__c", gone)}

    assert query(client, f"SELECT COUNT() FROM Invoice__c WHERE Tag__c = '{t}'", resource="queryAll")[
        "totalSize"] == 2
    assert query(client, f"SELECT COUNT() FROM Invoice__c WHERE Tag__c = '{t}' AND IsDeleted = true",
                 resource="queryAll")["totalSize"] == 1


# -- batch size and paging -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("header", "expected"), [
    (None, 2000), (200, 200), (1, 200), (199, 200), (500, 500), (2000, 2000), (2001, 2000), (100000, 2000)])
def test_batch_size_header_is_clamped(client: Any, header: int | None, expected: int) -> None:
    body = query(client, ALL_ROWS, batch=header)
    assert body["totalSize"] == ROWS
    assert body["done"] is False
    assert len(body["records"]) == expected
    match = LOCATOR_URL.match(body["nextRecordsUrl"])
    assert match, body["nextRecordsUrl"]
    assert match.group(1, 2) == (V, "query")
    assert int(match.group(4)) == expected
    assert list(body) == ["totalSize", "done", "nextRecordsUrl", "records"]


def test_paging_through_all_rows(client: Any) -> None:
    body = query(client, ALL_ROWS, batch=1000)
    pages = [body]
    while not body["done"]:
        assert body["nextRecordsUrl"].startswith(f"{B}/query/01g")
        body = more(client, body["nextRecordsUrl"])
        pages.append(body)
    assert [len(p["records"]) for p in pages] == [1000, 1000, 500]
    assert all(p["totalSize"] == ROWS for p in pages)
    assert [p["done"] for p in pages] == [False, False, True]
    assert "nextRecordsUrl" not in pages[-1]
    assert [LOCATOR_URL.match(p["nextRecordsUrl"]).group(4) for p in pages[:-1]] == ["1000", "2000"]  # type: ignore[union-attr]
    # One cursor serves every page of a result.
    assert len({LOCATOR_URL.match(p["nextRecordsUrl"]).group(3) for p in pages[:-1]}) == 1  # type: ignore[union-attr]
    seqs = [r["Seq__c"] for p in pages for r in p["records"]]
    assert seqs == list(range(ROWS))
    assert len({r["Id"] for p in pages for r in p["records"]}) == ROWS


def test_default_batch_pages_2000_then_the_rest(client: Any) -> None:
    first = query(client, "SELECT Id FROM Row__c")
    assert (first["totalSize"], first["done"], len(first["records"])) == (ROWS, False, 2000)
    response = client.get(first["nextRecordsUrl"])
    assert response.status_code == 200, response.text
    assert re.match(r"^api-usage=\d+/\d+", response.headers["Sforce-Limit-Info"])
    second = response.json()
    assert (second["totalSize"], second["done"], len(second["records"])) == (ROWS, True, ROWS - 2000)
    assert "nextRecordsUrl" not in second
    assert {r["Id"] for r in first["records"]}.isdisjoint({r["Id"] for r in second["records"]})


def test_query_all_pages_keep_deleted_rows(org: Any, client: Any) -> None:
    t = tag()
    context = org.admin_context()
    results = org.records.create(context, "Invoice__c", [{"Name": f"{t} {n:03d}", "Tag__c": t} for n in range(205)])
    assert all(r.success for r in results)
    gone, live = [r.id for r in results[:3]], [r.id for r in results[3:]]
    assert all(r.success for r in org.records.delete(context, gone))
    soql = f"SELECT Id, IsDeleted FROM Invoice__c WHERE Tag__c = '{t}' ORDER BY Name"
    body = query(client, soql, resource="queryAll", batch=200)
    assert (body["totalSize"], len(body["records"])) == (205, 200)
    # As on the platform, a queryAll page's nextRecordsUrl says query/, and queryAll/ serves the same locator.
    match = LOCATOR_URL.match(body["nextRecordsUrl"])
    assert match and match.group(2) == "query"
    for resource in ("query", "queryAll"):
        rest = more(client, f"{B}/{resource}/{match.group(3)}-{match.group(4)}")
        assert rest["done"] is True and rest["totalSize"] == 205
        assert "nextRecordsUrl" not in rest
        records = body["records"] + rest["records"]
        assert [r["Id"] for r in records] == gone + live
        assert [r["IsDeleted"] for r in records] == [True] * 3 + [False] * 202


def test_limit_caps_paging(client: Any) -> None:
    body = query(client, "SELECT Id FROM Row__c ORDER BY Seq__c LIMIT 450", batch=200)
    sizes = [len(body["records"])]
    while not body["done"]:
        body = more(client, body["nextRecordsUrl"])
        assert body["totalSize"] == 450
        sizes.append(len(body["records"]))
    assert sizes == [200, 200, 50]


def test_locator_with_a_15_character_cursor_id(client: Any) -> None:
    body = query(client, ALL_ROWS, batch=200)
    match = LOCATOR_URL.match(body["nextRecordsUrl"])
    assert match
    cursor15 = match.group(3)[:15]
    page = more(client, f"{B}/query/{cursor15}-200")
    assert [r["Seq__c"] for r in page["records"]] == list(range(200, 400))
    assert page["totalSize"] == ROWS and page["done"] is False
    following = more(client, page["nextRecordsUrl"])
    assert [r["Seq__c"] for r in following["records"]] == list(range(400, 600))
    # Any offset within the result may be asked for, also through queryAll/{locator}.
    for resource in ("query", "queryAll"):
        page = more(client, f"{B}/{resource}/{cursor15}-2400")
        assert [r["Seq__c"] for r in page["records"]] == list(range(2400, 2500))
        assert page["done"] is True and "nextRecordsUrl" not in page


def test_next_records_url_follows_the_request_version(client: Any) -> None:
    body = query(client, ALL_ROWS, version="60.0")
    assert body["nextRecordsUrl"].startswith("/services/data/v60.0/query/01g")
    assert body["records"][0]["attributes"]["url"].startswith("/services/data/v60.0/sobjects/Row__c/")
    rest = more(client, body["nextRecordsUrl"])
    assert rest["records"][0]["attributes"]["url"].startswith("/services/data/v60.0/sobjects/Row__c/")


# -- invalid locators ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("locator", [
    "garbage", "01g-2000", "01gXXXXXXXXXXXX", "01g000000000000AAA-2000", "01g000000000000AAA-x",
    "001000000000000AAA-200"])
def test_garbage_locator_is_invalid(client: Any, locator: str) -> None:
    body = more(client, f"{B}/query/{locator}", status=400)
    assert error(body)["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_offset_beyond_the_total_is_invalid(client: Any) -> None:
    body = query(client, ALL_ROWS, batch=200)
    cursor = LOCATOR_URL.match(body["nextRecordsUrl"]).group(3)  # type: ignore[union-attr]
    assert error(more(client, f"{B}/query/{cursor}-{ROWS + 1}", status=400))["errorCode"] == "INVALID_QUERY_LOCATOR"
    assert error(more(client, f"{B}/query/{cursor}-999999", status=400))["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_another_users_cursor_is_invalid(org: Any, client: Any) -> None:
    username = f"{tag()}@other.example"
    create_user(org, username, last_name="Other")
    body = query(client, ALL_ROWS, batch=200)
    with rest_client(org, username) as other:
        response = other.get(body["nextRecordsUrl"])
        assert response.status_code == 400, response.text
        assert error(response.json())["errorCode"] == "INVALID_QUERY_LOCATOR"
    assert len(more(client, body["nextRecordsUrl"])["records"]) == 200  # still the owner's


def test_legacy_versions_keep_ten_cursors_per_user(org: Any) -> None:
    username = f"{tag()}@legacy.example"
    create_user(org, username, last_name="Legacy")
    with rest_client(org, username) as legacy:
        urls = [query(legacy, ALL_ROWS, version="55.0", batch=200)["nextRecordsUrl"] for _ in range(11)]
        assert all(u.startswith("/services/data/v55.0/query/01g") for u in urls)
        assert error(more(legacy, urls[0], status=400))["errorCode"] == "INVALID_QUERY_LOCATOR"
        for url in urls[1:]:
            assert len(more(legacy, url)["records"]) == 200


def test_modern_versions_keep_every_cursor(org: Any) -> None:
    username = f"{tag()}@modern.example"
    create_user(org, username, last_name="Modern")
    with rest_client(org, username) as modern:
        urls = [query(modern, ALL_ROWS, version="56.0", batch=200)["nextRecordsUrl"] for _ in range(12)]
        for url in urls:
            assert len(more(modern, url)["records"]) == 200


# -- errors ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("params", [{}, {"q": ""}, {"q": "   "}])
def test_missing_query_is_malformed(client: Any, params: dict[str, str]) -> None:
    for resource in ("query", "queryAll"):
        response = client.get(f"{B}/{resource}", params=params)
        assert response.status_code == 400, response.text
        assert error(response.json())["errorCode"] == "MALFORMED_QUERY"


def test_malformed_soql_names_row_and_column(client: Any) -> None:
    found = error(query(client, "SELECT Id FROM", status=400))
    assert found["errorCode"] == "MALFORMED_QUERY"
    assert "Row:1:Column:15" in found["message"]
    found = error(query(client, "SELECT Id\nFROM Account WHERE Name = = 'x'", status=400))
    assert found["errorCode"] == "MALFORMED_QUERY"
    assert "Row:2:Column:" in found["message"]
    found = error(query(client, "SELEKT Id FROM Account", status=400, resource="queryAll"))
    assert found["errorCode"] == "MALFORMED_QUERY"
    assert "Row:1:Column:1" in found["message"]


def test_unknown_object_is_invalid_type(client: Any) -> None:
    found = error(query(client, "SELECT Id FROM NoSuchThing__c", status=400))
    assert found["errorCode"] == "INVALID_TYPE"
    assert "NoSuchThing__c" in found["message"]


def test_unknown_field_is_invalid_field(client: Any) -> None:
    found = error(query(client, "SELECT Id, Bogus__c FROM Row__c", status=400))
    assert found["errorCode"] == "INVALID_FIELD"
    assert "Bogus__c" in found["message"] and "Row__c" in found["message"]
    found = error(query(client, "SELECT Id FROM Row__c WHERE Nope = 1", status=400))
    assert found["errorCode"] == "INVALID_FIELD"


def test_offset_over_2000_is_out_of_range(client: Any) -> None:
    found = error(query(client, "SELECT Id FROM Row__c ORDER BY Seq__c OFFSET 2001", status=400))
    assert found["errorCode"] == "NUMBER_OUTSIDE_VALID_RANGE"
    body = query(client, "SELECT Seq__c FROM Row__c ORDER BY Seq__c LIMIT 3 OFFSET 2000")
    assert [r["Seq__c"] for r in body["records"]] == [2000, 2001, 2002]
    assert body["totalSize"] == 3


# -- explain -----------------------------------------------------------------------------------------------------------


def explain(client: Any, soql: str) -> dict[str, Any]:
    response = client.get(f"{B}/query", params={"explain": soql})
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == ["plans"] and body["plans"]
    plan = body["plans"][0]
    assert {"cardinality", "fields", "leadingOperationType", "notes", "relativeCost", "sobjectCardinality",
            "sobjectType"} <= set(plan)
    return plan  # type: ignore[no-any-return]


def test_explain_uses_an_index_for_external_ids_and_id(client: Any) -> None:
    plan = explain(client, "SELECT Id FROM Row__c WHERE Ext__c = 'EXT-00042'")
    assert plan["leadingOperationType"] == "Index"
    assert plan["sobjectType"] == "Row__c"
    assert plan["fields"] == ["Ext__c"]
    assert plan["sobjectCardinality"] >= ROWS
    row_id = query(client, "SELECT Id FROM Row__c WHERE Seq__c = 42")["records"][0]["Id"]
    plan = explain(client, f"SELECT Name FROM Row__c WHERE Id = '{row_id}'")
    assert plan["leadingOperationType"] == "Index"
    assert plan["fields"] == ["Id"]


def test_explain_scans_for_unindexed_fields(client: Any) -> None:
    plan = explain(client, "SELECT Id FROM Row__c WHERE Plain__c = 'plain 7'")
    assert plan["leadingOperationType"] == "TableScan"
    assert plan["fields"] == []
    assert plan["notes"] and plan["notes"][0]["fields"] == ["Plain__c"]
    assert plan["relativeCost"] > 0


def test_explain_of_bad_soql_is_an_error(client: Any) -> None:
    response = client.get(f"{B}/query", params={"explain": "SELECT FROM"})
    assert response.status_code == 400
    assert error(response.json())["errorCode"] == "MALFORMED_QUERY"
    response = client.get(f"{B}/query", params={"explain": "SELECT Id FROM NoSuchThing__c"})
    assert response.status_code == 400
    assert error(response.json())["errorCode"] == "INVALID_TYPE"


def age_cursor(org: Any, cursor_id: str, **delta: Any) -> None:
    """Move a cursor's timestamps into the past (as if it had been opened and last used that long ago)."""
    table = org.store.system["il_query_cursor"]
    with org.store.write() as conn:
        row = conn.execute(table.select().where(table.c.id == cursor_id)).first()
        assert row is not None
        conn.execute(update(table).where(table.c.id == cursor_id).values(
            created_at=row.created_at - timedelta(**delta), last_used_at=row.last_used_at - timedelta(**delta)))


def test_expired_cursors_are_invalid(org: Any, client: Any) -> None:
    modern = query(client, ALL_ROWS, batch=200)["nextRecordsUrl"]
    legacy = query(client, ALL_ROWS, version="55.0", batch=200)["nextRecordsUrl"]
    modern_id = LOCATOR_URL.match(modern).group(3)  # type: ignore[union-attr]
    legacy_id = LOCATOR_URL.match(legacy).group(3)  # type: ignore[union-attr]
    # A legacy cursor idle for 16 minutes is gone; a modern one lives two days.
    age_cursor(org, legacy_id, minutes=16)
    age_cursor(org, modern_id, minutes=16)
    assert error(more(client, legacy, status=400))["errorCode"] == "INVALID_QUERY_LOCATOR"
    assert len(more(client, modern)["records"]) == 200
    age_cursor(org, modern_id, days=2, minutes=1)
    assert error(more(client, modern, status=400))["errorCode"] == "INVALID_QUERY_LOCATOR"
