"""The real, unpatched simple-salesforce ``query``, ``query_more``, ``query_all`` and ``query_all_iter`` against a
real ``interlink up`` over TLS.

Paging runs on one extra server whose org is filled in-process before it starts (5,000 ``Bulk`` Accounts and
2,050 ``Purge`` Accounts for queryAll); shape, ``format_soql`` and error tests use the session's ``live`` server
with records they create themselves, each under a tag unique to the test.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest
from simple_salesforce.format import format_soql

from interlink.testing import LiveServer, live_server, local_org

pytestmark = pytest.mark.live

BULK = 5000
PURGE = 2050
BULK_SOQL = "SELECT Id, Name FROM Account WHERE AccountNumber = 'BULK' ORDER BY Name"
PURGE_SOQL = "SELECT Id, Name, IsDeleted FROM Account WHERE AccountNumber = 'PURGE' ORDER BY Name"


def trusted_session(server: LiveServer) -> requests.Session:
    session = requests.Session()
    session.verify = server.ca_bundle
    session.trust_env = False  # REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE would override `verify`
    return session


def tag() -> str:
    return "sq" + uuid.uuid4().hex[:10]


@pytest.fixture(scope="module")
def big_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server over an org filled in-process (fast) before it starts."""
    data_dir = tmp_path_factory.mktemp("ss-query")
    with local_org(data_dir, project_dir=data_dir) as org:
        context = org.admin_context()
        batches = [("BULK", n) for n in range(BULK)] + [("PURGE", n) for n in range(PURGE)]
        for start in range(0, len(batches), 1000):
            results = org.records.create(context, "Account", [
                {"Name": f"{kind} {n:05d}", "AccountNumber": kind} for kind, n in batches[start:start + 1000]])
            assert all(r.success for r in results), [r.errors for r in results if not r.success][:3]
    with live_server(data_dir) as server:
        yield server


@pytest.fixture(scope="module")
def big(big_server: LiveServer) -> Salesforce:
    return Salesforce(instance_url=big_server.url, session_id=big_server.token(),
                      session=trusted_session(big_server))


@pytest.fixture(scope="module")
def sf(live: LiveServer) -> Salesforce:
    return Salesforce(instance_url=live.url, session_id=live.token(), session=trusted_session(live))


def names(records: list[dict[str, Any]]) -> list[str]:
    return [r["Name"] for r in records]


BULK_NAMES = [f"BULK {n:05d}" for n in range(BULK)]


# -- paging 5,000 rows ------------------------------------------------------------------------------------------------


def test_query_first_page_and_query_more_by_url(big: Salesforce) -> None:
    first = big.query(BULK_SOQL)
    assert (first["totalSize"], first["done"], len(first["records"])) == (BULK, False, 2000)
    next_url = first["nextRecordsUrl"]
    assert next_url.startswith(f"/services/data/v{big.sf_version}/query/01g")
    assert next_url.endswith("-2000")
    record = first["records"][0]
    assert record["attributes"]["type"] == "Account"
    assert record["attributes"]["url"] == f"/services/data/v{big.sf_version}/sobjects/Account/{record['Id']}"

    pages = [first]
    while not pages[-1]["done"]:
        pages.append(big.query_more(pages[-1]["nextRecordsUrl"], identifier_is_url=True))
    assert [len(p["records"]) for p in pages] == [2000, 2000, 1000]
    assert all(p["totalSize"] == BULK for p in pages)
    assert "nextRecordsUrl" not in pages[-1]
    assert names([r for p in pages for r in p["records"]]) == BULK_NAMES


def test_query_more_by_locator_id(big: Salesforce) -> None:
    first = big.query(BULK_SOQL, headers={"Sforce-Query-Options": "batchSize=1500"})
    assert len(first["records"]) == 1500
    locator = first["nextRecordsUrl"].rsplit("/", 1)[1]  # "01g...-1500": simple-salesforce builds query/{id}
    assert locator.startswith("01g") and locator.endswith("-1500")
    second = big.query_more(locator)
    assert (second["totalSize"], second["done"], len(second["records"])) == (BULK, False, 1500)
    assert names(second["records"]) == BULK_NAMES[1500:3000]
    cursor = locator.rsplit("-", 1)[0]
    last = big.query_more(f"{cursor}-4500")
    assert last["done"] is True and names(last["records"]) == BULK_NAMES[4500:]


def test_query_all_collects_every_page(big: Salesforce) -> None:
    result = big.query_all(BULK_SOQL)
    assert result["totalSize"] == BULK and result["done"] is True
    assert names(result["records"]) == BULK_NAMES
    assert len({r["Id"] for r in result["records"]}) == BULK


def test_query_all_iter_is_lazy(big_server: LiveServer, big: Salesforce) -> None:
    session = trusted_session(big_server)
    calls: list[str] = []
    session.hooks["response"].append(lambda response, *args, **kwargs: calls.append(response.url))
    client = Salesforce(instance_url=big_server.url, session_id=big.session_id, session=session)
    records = client.query_all_iter(BULK_SOQL)
    assert calls == []
    first = next(records)
    assert first["Name"] == "BULK 00000" and len(calls) == 1
    rest = [next(records) for _ in range(1999)]
    assert len(calls) == 1  # the first page is used up before the next one is asked for
    rest.append(next(records))
    assert len(calls) == 2 and "/query/01g" in calls[1]
    rest.extend(records)
    assert len(calls) == 3
    assert names([first, *rest]) == BULK_NAMES


def test_include_deleted_after_deleting_some(big: Salesforce) -> None:
    live_rows = big.query_all(PURGE_SOQL)["records"]
    assert len(live_rows) == PURGE
    doomed = [live_rows[n]["Id"] for n in (0, 1, 2000, 2049)]
    for record_id in doomed:
        assert big.Account.delete(record_id) == 204

    remaining = big.query(PURGE_SOQL)
    assert remaining["totalSize"] == PURGE - len(doomed)
    assert not {r["Id"] for r in big.query_all(PURGE_SOQL)["records"]} & set(doomed)

    first = big.query(PURGE_SOQL, include_deleted=True)
    assert (first["totalSize"], first["done"], len(first["records"])) == (PURGE, False, 2000)
    assert [r["IsDeleted"] for r in first["records"][:3]] == [True, True, False]
    locator = first["nextRecordsUrl"].rsplit("/", 1)[1]
    for rest in (big.query_more(locator, include_deleted=True),  # B/queryAll/{id}
                 big.query_more(first["nextRecordsUrl"], identifier_is_url=True)):
        assert rest["done"] is True and rest["totalSize"] == PURGE
        assert [(r["Id"], r["IsDeleted"]) for r in rest["records"]] == [
            (live_rows[n]["Id"], n in (2000, 2049)) for n in range(2000, PURGE)]

    everything = big.query_all(PURGE_SOQL, include_deleted=True)
    assert everything["totalSize"] == PURGE
    assert {r["Id"] for r in everything["records"] if r["IsDeleted"]} == set(doomed)
    count = big.query("SELECT COUNT() FROM Account WHERE AccountNumber = 'PURGE' AND IsDeleted = true",
                      include_deleted=True)
    assert (count["totalSize"], count["records"]) == (len(doomed), [])


# -- shapes, format_soql and errors on the session server ------------------------------------------------------------


def test_format_soql_strings_with_quotes(sf: Salesforce) -> None:
    t = tag()
    tricky = f"{t} O'Brien \"Quoted\" back\\slash"
    created = sf.Account.create({"Name": tricky})["id"]
    sf.Account.create({"Name": f"{t} plain"})
    soql = format_soql("SELECT Id, Name FROM Account WHERE Name = {}", tricky)
    assert "\\'" in soql and '\\"' in soql and "\\\\" in soql
    assert [(r["Id"], r["Name"]) for r in sf.query(soql)["records"]] == [(created, tricky)]
    listed = sf.query(format_soql("SELECT Name FROM Account WHERE Name IN {names} ORDER BY Name",
                                  names=[tricky, f"{t} plain", "nobody"]))
    assert names(listed["records"]) == [tricky, f"{t} plain"]
    like = sf.query(format_soql("SELECT Name FROM Account WHERE Name LIKE '{:like}%' ORDER BY Name", f"{t} O'B"))
    assert names(like["records"]) == [tricky]


def test_format_soql_datetimes_render_utc_offsets(sf: Salesforce) -> None:
    t = tag()
    before = datetime.now(UTC) - timedelta(seconds=2)
    created = sf.Account.create({"Name": f"{t} dated"})["id"]
    after = datetime.now(UTC) + timedelta(seconds=2)
    soql = format_soql("SELECT Id FROM Account WHERE Name LIKE '{:like}%' AND CreatedDate >= {} AND CreatedDate < {}",
                       t, before, after)
    assert "+00:00" in soql and "Z" not in soql.split("CreatedDate", 1)[1]
    assert [r["Id"] for r in sf.query(soql)["records"]] == [created]
    # Another zone: format_soql converts to UTC; the instant is the same.
    plus_two = timezone(timedelta(hours=2))
    soql = format_soql("SELECT Id FROM Account WHERE Name LIKE '{:like}%' AND CreatedDate > {}", t,
                       after.astimezone(plus_two))
    assert sf.query(soql)["records"] == []
    soql = format_soql("SELECT COUNT() FROM Account WHERE Name LIKE '{:like}%' AND CreatedDate = {:literal}",
                       t, "TODAY")
    assert sf.query(soql)["totalSize"] in (0, 1)  # 0 only when the UTC day turned between create and query


def test_parent_child_query(sf: Salesforce) -> None:
    t = tag()
    account = sf.Account.create({"Name": f"{t} Parent"})["id"]
    empty = sf.Account.create({"Name": f"{t} Zero"})["id"]
    ada = sf.Contact.create({"LastName": "Ada", "AccountId": account})["id"]
    bob = sf.Contact.create({"LastName": "Bob", "AccountId": account})["id"]
    base = f"/services/data/v{sf.sf_version}/sobjects"

    result = sf.query(format_soql("SELECT Name, (SELECT LastName FROM Contacts ORDER BY LastName) FROM Account "
                                  "WHERE Name LIKE '{:like}%' ORDER BY Name", t))
    parent, lonely = result["records"]
    assert parent["attributes"] == {"type": "Account", "url": f"{base}/Account/{account}"}
    assert parent["Contacts"] == {"totalSize": 2, "done": True, "records": [
        {"attributes": {"type": "Contact", "url": f"{base}/Contact/{ada}"}, "LastName": "Ada"},
        {"attributes": {"type": "Contact", "url": f"{base}/Contact/{bob}"}, "LastName": "Bob"}]}
    assert lonely["attributes"]["url"] == f"{base}/Account/{empty}"
    assert lonely["Contacts"] is None

    children = sf.query_all(format_soql("SELECT LastName, Account.Name FROM Contact WHERE Account.Name = {} "
                                        "ORDER BY LastName", f"{t} Parent"))
    assert [(r["LastName"], r["Account"]["Name"]) for r in children["records"]] == [
        ("Ada", f"{t} Parent"), ("Bob", f"{t} Parent")]
    assert children["records"][0]["Account"]["attributes"] == {"type": "Account", "url": f"{base}/Account/{account}"}


def test_aggregate_query(sf: Salesforce) -> None:
    t = tag()
    for industry, employees in [("Banking", 10), ("Banking", 30), ("Energy", 5)]:
        sf.Account.create({"Name": f"{t} {industry}", "Industry": industry, "NumberOfEmployees": employees})
    result = sf.query(format_soql(
        "SELECT Industry, COUNT(Id) n, SUM(NumberOfEmployees) FROM Account WHERE Name LIKE '{:like}%' "
        "GROUP BY Industry ORDER BY Industry", t))
    assert result == {"totalSize": 2, "done": True, "records": [
        {"attributes": {"type": "AggregateResult"}, "Industry": "Banking", "n": 2, "expr0": 40},
        {"attributes": {"type": "AggregateResult"}, "Industry": "Energy", "n": 1, "expr0": 5}]}
    count = sf.query(format_soql("SELECT COUNT() FROM Account WHERE Name LIKE '{:like}%'", t))
    assert count == {"totalSize": 3, "done": True, "records": []}


def test_errors_are_malformed_requests(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query("SELECT Id FROM")
    assert caught.value.status == 400
    assert caught.value.content[0]["errorCode"] == "MALFORMED_QUERY"
    assert "Row:1:Column:15" in caught.value.content[0]["message"]

    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query_all("SELECT Id, NoSuchField__c FROM Account")
    assert caught.value.content[0]["errorCode"] == "INVALID_FIELD"
    assert "NoSuchField__c" in caught.value.content[0]["message"]

    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query("SELECT Id FROM NoSuchThing__c", include_deleted=True)
    assert caught.value.content[0]["errorCode"] == "INVALID_TYPE"

    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query_more("01g000000000000AAA-2000")
    assert caught.value.content[0]["errorCode"] == "INVALID_QUERY_LOCATOR"
