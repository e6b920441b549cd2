"""REST search: ``GET /search?q=<SOSL>`` and ``parameterizedSearch`` (GET and POST), on every store backend.

One org per backend is shared by the module; each test searches for words unique to it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from interlink.testing import backend_org, rest_client

B = "/services/data/v66.0"


@pytest.fixture(scope="module")
def org(store_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    root = tmp_path_factory.mktemp(f"rest-search-{store_backend}")
    with backend_org(root, store_backend, unavailable=pytest.skip) as opened:
        yield opened


@pytest.fixture(scope="module")
def client(org: Any) -> Iterator[Any]:
    with rest_client(org) as test_client:
        yield test_client


def tag() -> str:
    return "r" + uuid.uuid4().hex[:10]


def create(client: Any, object_name: str, body: dict[str, Any]) -> str:
    response = client.post(f"{B}/sobjects/{object_name}/", json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]  # type: ignore[no-any-return]


def search(client: Any, q: str, version: str = "66.0") -> Any:
    return client.get(f"/services/data/v{version}/search/", params={"q": q})


@pytest.fixture(scope="module")
def data(client: Any) -> dict[str, str]:
    t = tag()
    ids = {"t": t}
    ids["widgets"] = create(client, "Account", {"Name": f"{t} Widgets", "Industry": "Banking",
                                                 "Phone": "+1 415 555 0100"})
    ids["gadgets"] = create(client, "Account", {"Name": f"{t} Gadgets", "Industry": "Technology",
                                                 "Description": "makes widgets too"})
    ids["ada"] = create(client, "Contact", {"FirstName": "Ada", "LastName": f"Lovelace{t}",
                                            "Email": f"ada@{t}.example", "AccountId": ids["widgets"]})
    return ids


# -- SOSL -----------------------------------------------------------------------------------------------------------


def test_search_answers_search_records_with_ids(client: Any, data: dict[str, str]) -> None:
    t = data["t"]
    response = search(client, f"FIND {{{t}}}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert list(body) == ["searchRecords"]
    assert {r["Id"] for r in body["searchRecords"]} == {data["widgets"], data["gadgets"], data["ada"]}
    for record in body["searchRecords"]:
        kind = record["attributes"]["type"]
        assert record == {"attributes": {"type": kind, "url": f"{B}/sobjects/{kind}/{record['Id']}"},
                          "Id": record["Id"]}


def test_before_v37_the_answer_is_a_bare_array(client: Any, data: dict[str, str]) -> None:
    body = search(client, f"FIND {{Lovelace{data['t']}}}", "36.0").json()
    assert body == [{"attributes": {"type": "Contact", "url": f"/services/data/v36.0/sobjects/Contact/{data['ada']}"},
                     "Id": data["ada"]}]


def test_returning_fields_where_order_and_limits(client: Any, data: dict[str, str]) -> None:
    t = data["t"]
    body = search(client, f"FIND {{{t}* OR widgets}} IN ALL FIELDS RETURNING Contact(Name, Email, Account.Name), "
                          f"Account(Name, Industry WHERE Name LIKE '{t}%' ORDER BY Name)").json()
    records = body["searchRecords"]
    assert [r["attributes"]["type"] for r in records] == ["Contact", "Account", "Account"]
    assert records[0]["Name"] == f"Ada Lovelace{t}"
    assert records[0]["Email"] == f"ada@{t}.example"
    assert records[0]["Account"]["Name"] == f"{t} Widgets"
    assert records[0]["Account"]["attributes"]["type"] == "Account"
    assert [(r["Name"], r["Industry"]) for r in records[1:]] == [(f"{t} Gadgets", "Technology"),
                                                                  (f"{t} Widgets", "Banking")]

    filtered = search(client, f"FIND {{{t}}} RETURNING Account(Name WHERE Industry = 'Banking')").json()
    assert [r["Name"] for r in filtered["searchRecords"]] == [f"{t} Widgets"]

    limited = search(client, f"FIND {{{t}}} RETURNING Account(Name ORDER BY Name DESC LIMIT 1)").json()
    assert [r["Name"] for r in limited["searchRecords"]] == [f"{t} Widgets"]

    overall = search(client, f"FIND {{{t}}} RETURNING Account(Id), Contact(Id) LIMIT 2").json()
    assert [r["attributes"]["type"] for r in overall["searchRecords"]] == ["Account", "Account"]


def test_relevance_orders_records_within_an_object(client: Any, data: dict[str, str]) -> None:
    records = search(client, f"FIND {{widgets}} RETURNING Account(Name WHERE Name LIKE '{data['t']}%')").json()
    assert [r["Name"] for r in records["searchRecords"]] == [f"{data['t']} Widgets", f"{data['t']} Gadgets"]


def test_search_groups_over_rest(client: Any, data: dict[str, str]) -> None:
    t = data["t"]
    assert {r["Id"] for r in search(client, f"FIND {{{t}}} IN NAME FIELDS").json()["searchRecords"]} == {
        data["widgets"], data["gadgets"]}  # the contact's name is "Ada Lovelace<tag>": one word, not <tag>
    assert [r["Id"] for r in search(client, f"FIND {{{t}}} IN EMAIL FIELDS").json()["searchRecords"]] == [
        data["ada"]]
    phone = search(client, f"FIND {{4155550100}} IN PHONE FIELDS RETURNING Account(Id WHERE Name LIKE '{t}%')")
    assert [r["Id"] for r in phone.json()["searchRecords"]] == [data["widgets"]]


def test_with_metadata_labels(client: Any, data: dict[str, str]) -> None:
    body = search(client, f"FIND {{Lovelace{data['t']}}} RETURNING Contact(Name, Email) WITH METADATA='LABELS'").json()
    assert body["metadata"] == {"entityMetadata": [{"entityName": "Contact", "fieldMetadata": [
        {"label": "Full Name", "name": "Name"}, {"label": "Email", "name": "Email"}]}]}


def test_nothing_found_is_an_empty_list(client: Any) -> None:
    response = search(client, f"FIND {{{tag()}}}")
    assert response.status_code == 200
    assert response.json() == {"searchRecords": []}


@pytest.mark.parametrize("q, message", [
    ("FIND Acme", "No search term found. The search term must be enclosed in braces."),
    ("FIND {a}", "search term must be longer than one character"),
    ("FIND {x*}", "search term must be longer than one character"),
    ("FIND {acme} RETURNING", "unexpected token: '<EOF>'"),
    ("FIND {acme AND NOT}", "unexpected token: '<EOF>'"),
    ("FIND {acme} IN NOWHERE FIELDS", "unexpected token: 'NOWHERE'"),
    ("SELECT Id FROM Account", "unexpected token: 'SELECT'"),
    ("", "No search term found"),
])
def test_malformed_searches_are_400_malformed_search(client: Any, q: str, message: str) -> None:
    response = search(client, q)
    assert response.status_code == 400
    [error] = response.json()
    assert error["errorCode"] == "MALFORMED_SEARCH"
    assert message in error["message"]
    assert error["fields"] == []


def test_missing_q_is_malformed(client: Any) -> None:
    response = client.get(f"{B}/search")
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "MALFORMED_SEARCH"


def test_bad_returning_objects_and_fields(client: Any) -> None:
    response = search(client, "FIND {acme} RETURNING Nope__c")
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "INVALID_TYPE"
    response = search(client, "FIND {acme} RETURNING Account(Nope__c)")
    assert response.status_code == 400
    [error] = response.json()
    assert error["errorCode"] == "INVALID_FIELD"
    assert error["message"].startswith("\nFIND {acme} RETURNING Account(Nope__c)\n")
    assert "ERROR at Row:1:Column:31" in error["message"]
    response = search(client, "FIND {acme} RETURNING Account(Id WHERE Name = )")
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "MALFORMED_SEARCH"


def test_search_is_listed_and_methods_checked(client: Any) -> None:
    resources = client.get(f"{B}/").json()
    assert resources["search"] == f"{B}/search"
    assert resources["parameterizedSearch"] == f"{B}/parameterizedSearch"
    assert client.post(f"{B}/search", json={}).status_code == 405


def test_the_index_follows_rest_writes(client: Any) -> None:
    t = tag()
    record_id = create(client, "Account", {"Name": f"{t} Before"})
    assert [r["Id"] for r in search(client, f"FIND {{{t}}}").json()["searchRecords"]] == [record_id]
    assert client.patch(f"{B}/sobjects/Account/{record_id}", json={"Name": "Renamed"}).status_code == 204
    assert search(client, f"FIND {{{t}}}").json()["searchRecords"] == []
    assert client.patch(f"{B}/sobjects/Account/{record_id}", json={"Name": f"{t} Again"}).status_code == 204
    assert client.delete(f"{B}/sobjects/Account/{record_id}").status_code == 204
    assert search(client, f"FIND {{{t}}}").json()["searchRecords"] == []


# -- parameterizedSearch --------------------------------------------------------------------------------------------


def test_parameterized_search_get(client: Any, data: dict[str, str]) -> None:
    t = data["t"]
    response = client.get(f"{B}/parameterizedSearch/", params={
        "q": t, "sobject": "Account", "Account.fields": "Id,Name", "Account.limit": "10", "in": "ALL"})
    assert response.status_code == 200
    records = response.json()["searchRecords"]
    assert {(r["Id"], r["Name"]) for r in records} == {(data["widgets"], f"{t} Widgets"),
                                                        (data["gadgets"], f"{t} Gadgets")}
    assert all(set(r) == {"attributes", "Id", "Name"} for r in records)

    everything = client.get(f"{B}/parameterizedSearch", params={"q": t}).json()["searchRecords"]
    assert {r["Id"] for r in everything} == {data["widgets"], data["gadgets"], data["ada"]}

    two = client.get(f"{B}/parameterizedSearch", params=[
        ("q", t), ("sobject", "Contact"), ("sobject", "Account"), ("defaultLimit", "1"), ("Contact.fields", "Email"),
        ("Account.where", "Industry = 'Banking'"), ("Account.fields", "Name"), ("in", "all")]).json()
    assert [(r["attributes"]["type"], r.get("Email") or r.get("Name")) for r in two["searchRecords"]] == [
        ("Contact", f"ada@{t}.example"), ("Account", f"{t} Widgets")]

    email = client.get(f"{B}/parameterizedSearch", params={"q": f"ada@{t}.example", "in": "EMAIL"}).json()
    assert [r["Id"] for r in email["searchRecords"]] == [data["ada"]]


def test_parameterized_search_post(client: Any, data: dict[str, str]) -> None:
    t = data["t"]
    response = client.post(f"{B}/parameterizedSearch", json={
        "q": f"{t}*", "sobjects": [{"name": "Account", "fields": ["Id", "Name"], "limit": 10,
                                    "where": "Industry = 'Technology'"}],
        "in": "ALL", "overallLimit": 100})
    assert response.status_code == 200
    assert response.json() == {"searchRecords": [{
        "attributes": {"type": "Account", "url": f"{B}/sobjects/Account/{data['gadgets']}"},
        "Id": data["gadgets"], "Name": f"{t} Gadgets"}]}

    ordered = client.post(f"{B}/parameterizedSearch", json={
        "q": t, "fields": ["Name"], "metadata": "LABELS",
        "sobjects": [{"name": "Account", "orderBy": [{"field": "Name", "ascending": False}]}]}).json()
    assert [r["Name"] for r in ordered["searchRecords"]] == [f"{t} Widgets", f"{t} Gadgets"]
    assert ordered["metadata"]["entityMetadata"][0]["entityName"] == "Account"

    capped = client.post(f"{B}/parameterizedSearch", json={"q": t, "overallLimit": 1}).json()
    assert len(capped["searchRecords"]) == 1


@pytest.mark.parametrize("body, code", [
    ({"q": "x"}, "MALFORMED_SEARCH"),
    ({"sobjects": [{"name": "Account"}]}, "MALFORMED_SEARCH"),
    ({"q": "acme", "in": "EVERYWHERE"}, "MALFORMED_SEARCH"),
    ({"q": "acme", "sobjects": [{"name": "Account", "where": "Name = 'x') , Contact(Id"}]}, "MALFORMED_SEARCH"),
    ({"q": "acme", "sobjects": [{"name": "Account", "fields": ["Id FROM Contact"]}]}, "MALFORMED_SEARCH"),
    ({"q": "acme", "sobjects": [{"name": "Account", "limit": "lots"}]}, "MALFORMED_SEARCH"),
    ({"q": "acme", "sobjects": [{"name": "Nope__c"}]}, "INVALID_TYPE"),
    ({"q": "acme", "sobjects": [{"name": "Account", "fields": ["Nope__c"]}]}, "INVALID_FIELD"),
    ({"q": "acme", "sobjects": "Account"}, "MALFORMED_SEARCH"),
])
def test_parameterized_search_errors(client: Any, body: dict[str, Any], code: str) -> None:
    response = client.post(f"{B}/parameterizedSearch", json=body)
    assert response.status_code == 400, response.text
    assert response.json()[0]["errorCode"] == code


def test_parameterized_search_get_errors(client: Any) -> None:
    response = client.get(f"{B}/parameterizedSearch", params={"q": "a"})
    assert response.status_code == 400
    assert response.json()[0] == {"message": "search term must be longer than one character",
                                  "errorCode": "MALFORMED_SEARCH", "fields": []}
    assert client.get(f"{B}/parameterizedSearch").json()[0]["errorCode"] == "MALFORMED_SEARCH"
    bad_json = client.post(f"{B}/parameterizedSearch", content=b"{nope", headers={"content-type": "application/json"})
    assert bad_json.status_code == 400
    assert bad_json.json()[0]["errorCode"] == "JSON_PARSER_ERROR"
