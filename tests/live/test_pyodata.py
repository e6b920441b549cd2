"""The real, unpatched ``pyodata`` client (OData 2.0) against a real ``interlink up`` over TLS.

The session's ``live`` server runs with ``--sample-data``, so the sample org's ``metadata/odata.yaml`` exposes
Account, Contact (writable), Opportunity, Order and Case. Each test works on records under a tag of its own:
an Account made through the REST API (Account is read-only over OData) and Contacts made through pyodata.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pyodata
import pytest
import requests
from pyodata.exceptions import HttpError

from interlink.testing import API_VERSION, LiveServer

pytestmark = pytest.mark.live

CONTACTS = 12


@pytest.fixture(scope="module")
def session(live: LiveServer) -> Iterator[requests.Session]:
    """A requests session that trusts the server's CA and sends the REST Bearer token."""
    with requests.Session() as opened:
        opened.verify = live.ca_bundle
        opened.trust_env = False  # REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE would override `verify`
        opened.headers["Authorization"] = "Bearer " + live.token()
        yield opened


@pytest.fixture(scope="module")
def service(live: LiveServer, session: requests.Session) -> Any:
    return pyodata.Client(f"{live.url}/odata/v2/", session)


@pytest.fixture(scope="module")
def family(live: LiveServer, session: requests.Session, service: Any) -> dict[str, Any]:
    """One account (through REST) with CONTACTS contacts (through pyodata), under a tag of its own."""
    label = "po" + uuid.uuid4().hex[:10]
    response = session.post(f"{live.url}/services/data/v{API_VERSION}/sobjects/Account/",
                            json={"Name": label, "Industry": "Energy"})
    assert response.status_code == 201, response.text
    account = response.json()["id"]
    contacts = [service.entity_sets.Contact.create_entity().set(LastName=f"{label}-{n:02d}", AccountId=account)
                .execute() for n in range(CONTACTS)]
    return {"tag": label, "account": account, "contacts": [c.Id for c in contacts]}


def test_metadata_lists_the_sample_sets(service: Any) -> None:
    assert sorted(s.name for s in service.schema.entity_sets) == ["Account", "Case", "Contact", "Opportunity",
                                                                  "Order"]
    contact = service.schema.entity_type("Contact")
    assert "Account" in [n.name for n in contact.nav_proprties]
    assert contact.proprty("Birthdate").typ.name == "Edm.DateTime"


def test_filter_top_and_get_entity_by_key(service: Any, family: dict[str, Any]) -> None:
    found = service.entity_sets.Account.get_entities().filter(f"Name eq '{family['tag']}'").top(5).execute()
    assert [(a.Id, a.Name, a.Industry) for a in found] == [(family["account"], family["tag"], "Energy")]
    entity = service.entity_sets.Account.get_entity(family["account"]).execute()
    assert entity.Name == family["tag"] and entity.CreatedDate.tzinfo is not None
    contact = service.entity_sets.Contact.get_entity(family["contacts"][3]).execute()
    assert contact.LastName == f"{family['tag']}-03"


def test_skip_top_count_and_server_paging(service: Any, family: dict[str, Any]) -> None:
    query = f"startswith(LastName, '{family['tag']}') eq true"
    page = (service.entity_sets.Contact.get_entities().filter(query).order_by("LastName").skip(4).top(3)
            .count(inline=True).execute())
    assert [c.LastName[-2:] for c in page] == ["04", "05", "06"] and page.total_count == CONTACTS
    assert service.entity_sets.Contact.get_entities().filter(query).count().execute() == CONTACTS

    request = service.entity_sets.Contact.get_entities().filter(query).order_by("LastName")
    request.add_headers({"Prefer": "odata.maxpagesize=5"})
    batch = request.execute()
    names = [c.LastName for c in batch]
    pages = 1
    while batch.next_url:
        following = service.entity_sets.Contact.get_entities().next_url(batch.next_url)
        following.add_headers({"Prefer": "odata.maxpagesize=5"})
        batch = following.execute()
        names += [c.LastName for c in batch]
        pages += 1
    assert names == [f"{family['tag']}-{n:02d}" for n in range(CONTACTS)] and pages == 3


def test_expand_both_ways_and_navigate(service: Any, family: dict[str, Any]) -> None:
    contacts = (service.entity_sets.Contact.get_entities().filter(f"LastName eq '{family['tag']}-00'")
                .expand("Account").execute())
    assert [(c.LastName, c.Account.Name) for c in contacts] == [(f"{family['tag']}-00", family["tag"])]
    account = service.entity_sets.Account.get_entity(family["account"]).expand("Contacts").execute()
    assert sorted(c.Id for c in account.Contacts) == sorted(family["contacts"])
    related = account.nav("Contacts").get_entities().filter(f"LastName eq '{family['tag']}-07'").execute()
    assert [c.Id for c in related] == [family["contacts"][7]]


def test_writes_and_read_only_sets(service: Any, family: dict[str, Any]) -> None:
    contact_id = family["contacts"][0]
    service.entity_sets.Contact.update_entity(contact_id).set(Title="Engineer").execute()
    assert service.entity_sets.Contact.get_entity(contact_id).execute().Title == "Engineer"
    extra = service.entity_sets.Contact.create_entity().set(LastName=f"{family['tag']}-extra").execute()
    service.entity_sets.Contact.delete_entity(extra.Id).execute()
    with pytest.raises(HttpError) as missing:
        service.entity_sets.Contact.get_entity(extra.Id).execute()
    assert missing.value.response.status_code == 404
    with pytest.raises(HttpError) as refused:
        service.entity_sets.Account.update_entity(family["account"]).set(Name="renamed").execute()
    assert refused.value.response.status_code == 405
    assert refused.value.response.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


def test_odata_v4_over_tls(live: LiveServer, session: requests.Session, family: dict[str, Any]) -> None:
    response = session.get(f"{live.url}/odata/v4/Account", params={
        "$filter": f"Name eq '{family['tag']}'", "$select": "Name", "$expand": "Contacts($select=LastName;$top=2)",
        "$count": "true"})
    assert response.status_code == 200 and response.headers["OData-Version"] == "4.0"
    body = response.json()
    assert body["@odata.count"] == 1
    assert [len(a["Contacts"]) for a in body["value"]] == [2]
    unauthenticated = requests.get(f"{live.url}/odata/v4/Account", verify=live.ca_bundle)
    assert unauthenticated.status_code == 401 and unauthenticated.headers["WWW-Authenticate"].startswith("Bearer")
