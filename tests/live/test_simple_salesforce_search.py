"""The real, unpatched simple-salesforce ``search`` and ``quick_search`` against a real ``interlink up``.

The server is the session's ``live`` fixture (sample data on: Acme Corporation and friends).
"""

from __future__ import annotations

import contextlib
import uuid

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceResourceNotFound

from interlink.testing import LiveServer

pytestmark = pytest.mark.live


def trusted_session(server: LiveServer) -> requests.Session:
    session = requests.Session()
    session.verify = server.ca_bundle
    session.trust_env = False  # REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE would override `verify`
    return session


@pytest.fixture(scope="module")
def sf(live: LiveServer) -> Salesforce:
    return Salesforce(instance_url=live.url, session_id=live.token(), session=trusted_session(live))


def test_search_finds_the_sample_data(sf: Salesforce) -> None:
    result = sf.search("FIND {Acme} IN ALL FIELDS RETURNING Account(Name, Industry), Contact(Name, Email)")
    records = result["searchRecords"]
    accounts = [r for r in records if r["attributes"]["type"] == "Account"]
    contacts = [r for r in records if r["attributes"]["type"] == "Contact"]
    assert [(a["Name"], a["Industry"]) for a in accounts] == [("Acme Corporation", "Manufacturing")]
    assert {c["Email"] for c in contacts} >= {"ada@acme.example", "grace@acme.example"}
    assert records.index(accounts[0]) < records.index(contacts[0])  # RETURNING order
    account_id = accounts[0]["attributes"]["url"].rsplit("/", 1)[-1]
    assert accounts[0]["attributes"]["url"] == f"/services/data/v{sf.sf_version}/sobjects/Account/{account_id}"
    assert sf.Account.get(account_id)["Name"] == "Acme Corporation"


def test_quick_search_wraps_the_term_in_find(sf: Salesforce) -> None:
    result = sf.quick_search("Lovelace")
    assert [r["attributes"]["type"] for r in result["searchRecords"]] == ["Contact"]
    assert set(result["searchRecords"][0]) == {"attributes", "Id"}
    assert sf.quick_search("Umbr*")["searchRecords"]  # prefix search: Umbrella Health and its cases


def test_search_sees_records_created_through_the_api(sf: Salesforce) -> None:
    word = "ss" + uuid.uuid4().hex[:10]
    created = sf.Account.create({"Name": f"{word} Imports", "Phone": "(650) 555-0123"})
    with contextlib.suppress(SalesforceResourceNotFound):
        found = sf.search(f"FIND {{{word}}} RETURNING Account(Id, Name, Phone)")["searchRecords"]
        assert found == [{"attributes": {"type": "Account",
                                         "url": f"/services/data/v{sf.sf_version}/sobjects/Account/{created['id']}"},
                          "Id": created["id"], "Name": f"{word} Imports", "Phone": "(650) 555-0123"}]
        by_phone = sf.search(f"FIND {{6505550123}} IN PHONE FIELDS RETURNING Account(Id WHERE Name LIKE '{word}%')")
        assert [r["Id"] for r in by_phone["searchRecords"]] == [created["id"]]
        sf.Account.delete(created["id"])
        assert sf.quick_search(word)["searchRecords"] == []


def test_nothing_found(sf: Salesforce) -> None:
    assert sf.quick_search("zz" + uuid.uuid4().hex) == {"searchRecords": []}


def test_malformed_search_raises_malformed_request(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.quick_search("a")
    assert caught.value.status == 400
    assert caught.value.content[0]["errorCode"] == "MALFORMED_SEARCH"
    assert caught.value.content[0]["message"] == "search term must be longer than one character"
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.search("FIND Acme")
    assert caught.value.content[0]["errorCode"] == "MALFORMED_SEARCH"


def test_parameterized_search_through_restful(sf: Salesforce) -> None:
    result = sf.restful("parameterizedSearch/", params={"q": "Globex", "sobject": "Account",
                                                         "Account.fields": "Id,Name", "Account.limit": "10"})
    assert [r["Name"] for r in result["searchRecords"]] == ["Globex"]
    posted = sf.restful("parameterizedSearch/", method="POST", data=(
        '{"q": "Initech", "sobjects": [{"name": "Account", "fields": ["Name", "Industry"]}], "in": "NAME"}'))
    assert [(r["Name"], r["Industry"]) for r in posted["searchRecords"]] == [("Initech", "Banking")]
