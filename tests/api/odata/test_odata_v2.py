"""The OData 2.0 producer (``/odata/v2/``) driven in-process, on every store backend: EDMX 1.0 metadata, verbose
JSON (``d``, ``results``, ``__metadata``, ``__count``, ``__next``, ``/Date(ms)/``), 2.0 filter syntax, writes
with MERGE, and the real ``pyodata`` client over the in-process app (it takes any requests-like session).
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from xml.etree import ElementTree as ET

import pyodata
import pytest
from odata_support import PAGE_SIZE, ROWS, V2, make, make_account, tag
from pyodata.exceptions import HttpError

EDMX = "{http://schemas.microsoft.com/ado/2007/06/edmx}"
EDM = "{http://schemas.microsoft.com/ado/2008/09/edm}"
M = "{http://schemas.microsoft.com/ado/2007/08/dataservices/metadata}"


def d(client: Any, path: str, **kwargs: Any) -> Any:
    response = client.get(f"{V2}/{path}", **kwargs)
    assert response.status_code == 200, response.text
    assert response.headers["DataServiceVersion"] == "2.0"
    return response.json()["d"]


def v2_error(response: Any, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"]["lang"] == "en-US"
    return str(error["message"]["value"])


def test_metadata_is_edmx_1_with_associations(odata: Any) -> None:
    response = odata.get(f"{V2}/$metadata")
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(response.content)
    assert root.tag == f"{EDMX}Edmx" and root.get("Version") == "1.0"
    services = root.find(f"{EDMX}DataServices")
    assert services is not None and services.get(f"{M}DataServiceVersion") == "2.0"
    schema = services.find(f"{EDM}Schema")
    assert schema is not None and schema.get("Namespace") == "Interlink"
    types = {t.get("Name"): t for t in schema.findall(f"{EDM}EntityType")}
    assert set(types) == {"Account", "Contact", "Gadget__c", "Row__c"}
    props = {p.get("Name"): p.get("Type") for p in types["Gadget__c"].findall(f"{EDM}Property")}
    assert (props["Launch__c"], props["Seen__c"], props["Opens__c"], props["Price__c"], props["Units__c"],
            props["Active__c"], props["Tag__c"]) == ("Edm.DateTime", "Edm.DateTime", "Edm.Time", "Edm.Decimal",
                                                     "Edm.Int32", "Edm.Boolean", "Edm.String")
    associations = {a.get("Name"): a for a in schema.findall(f"{EDM}Association")}
    ends = {e.get("Role"): (e.get("Type"), e.get("Multiplicity"))
            for e in associations["Contact_AccountId"].findall(f"{EDM}End")}
    assert ends == {"Account": ("Interlink.Account", "0..1"), "Contacts": ("Interlink.Contact", "*")}
    navs = {n.get("Name"): (n.get("Relationship"), n.get("FromRole"), n.get("ToRole"))
            for n in types["Account"].findall(f"{EDM}NavigationProperty")}
    assert navs["Contacts"] == ("Interlink.Contact_AccountId", "Account", "Contacts")
    assert navs["Parent"] == ("Interlink.Account_ParentId", "ChildAccounts", "Parent")
    container = schema.find(f"{EDM}EntityContainer")
    assert container is not None and container.get(f"{M}IsDefaultEntityContainer") == "true"
    assert {s.get("Name") for s in container.findall(f"{EDM}EntitySet")} == set(types)
    assert "Contact_AccountId" in {s.get("Name") for s in container.findall(f"{EDM}AssociationSet")}


def test_service_document(odata: Any) -> None:
    assert d(odata, "") == {"EntitySets": ["Account", "Contact", "Gadget__c", "Row__c"]}


def test_verbose_json_entities_values_and_count(odata: Any, odata_org: Any) -> None:
    label = tag()
    account = make_account(odata_org, label)
    make(odata_org, "Gadget__c", [{"Name": label, "Price__c": 12.5, "Units__c": 3, "Launch__c": "2024-01-31",
                                   "Seen__c": "2024-01-31T09:30:00Z", "Opens__c": "08:05:30", "Active__c": True,
                                   "Account__c": account}])
    body = d(odata, f"Gadget__c?$filter=Name eq '{label}'&$inlinecount=allpages")
    assert body["__count"] == "1" and "__next" not in body
    (row,) = body["results"]
    assert row["__metadata"] == {"uri": f"https://testserver/odata/v2/Gadget__c('{row['Id']}')",
                                 "type": "Interlink.Gadget__c"}
    assert (row["Price__c"], row["Units__c"], row["Launch__c"], row["Seen__c"], row["Opens__c"], row["Active__c"]) == (
        "12.50", 3, "/Date(1706659200000)/", "/Date(1706693400000)/", "PT08H05M30S", True)
    assert row["Account__r"] == {"__deferred": {"uri": f"{row['__metadata']['uri']}/Account__r"}}
    single = d(odata, f"Gadget__c('{row['Id']}')")
    assert single["Name"] == label and single["__metadata"] == row["__metadata"]
    assert odata.get(f"{V2}/Gadget__c/$count?$filter=Name eq '{label}'").text == "1"


@pytest.mark.parametrize(("condition", "expected"), [
    ("substringof('et', Name) eq true", ["Beta"]),
    ("substringof('et', Name) eq false", ["Alpha", "Gamma"]),
    ("endswith(Name, 'AMMA') eq true", ["Gamma"]),
    ("endswith(Name, 'pha')", ["Alpha"]),
    ("Seen__c ge datetime'2024-03-01T00:00:00'", ["Beta", "Gamma"]),
    ("Seen__c lt datetimeoffset'2024-03-01T13:00:00+01:00'", ["Alpha"]),
    ("Launch__c eq datetime'2024-03-01T00:00'", ["Beta"]),
    ("Opens__c gt time'PT08H45M'", ["Beta"]),
    ("Price__c ge 20.00M and Price__c lt 25.5m", ["Beta"]),
    ("not (Units__c eq 2) and Account__c ne null", ["Alpha"]),
    ("(Units__c eq 1 or Units__c eq 3) and Price__c eq null", ["Gamma"]),
])
def test_v2_filter_syntax(odata: Any, odata_org: Any, condition: str, expected: list[str]) -> None:
    label = tag()
    account = make_account(odata_org, label)
    make(odata_org, "Gadget__c", [
        {"Name": f"{label} Alpha", "Units__c": 1, "Price__c": 10, "Seen__c": "2024-01-15T08:00:00Z",
         "Launch__c": "2024-01-15", "Opens__c": "08:30:00", "Account__c": account},
        {"Name": f"{label} Beta", "Units__c": 2, "Price__c": 20, "Seen__c": "2024-03-01T12:30:00Z",
         "Launch__c": "2024-03-01", "Opens__c": "09:00:00"},
        {"Name": f"{label} Gamma", "Units__c": 3, "Seen__c": "2025-06-30T23:59:59Z"}])
    body = d(odata, "Gadget__c", params={"$filter": f"startswith(Name,'{label}') eq true and ({condition})",
                                         "$orderby": "Units__c", "$select": "Name"})
    assert [r["Name"].split(" ")[1] for r in body["results"]] == expected


def test_select_expand_paging_and_skip(odata: Any, odata_org: Any) -> None:
    label = tag()
    account = make_account(odata_org, label, Industry="Retail")
    make(odata_org, "Contact", [{"LastName": f"{label}-{n}", "AccountId": account} for n in range(3)])
    body = d(odata, f"Contact?$filter=startswith(LastName,'{label}')&$orderby=LastName desc&$top=2&$skip=1"
                    "&$expand=Account&$select=LastName,Account/Name")
    assert [r["LastName"] for r in body["results"]] == [f"{label}-1", f"{label}-0"]
    assert body["results"][0]["Account"]["Name"] == label
    assert "Industry" not in body["results"][0]["Account"] and "Email" not in body["results"][0]
    body = d(odata, f"Account('{account}')?$expand=Contacts&$select=Name")
    assert sorted(c["LastName"] for c in body["Contacts"]["results"]) == [f"{label}-{n}" for n in range(3)]

    found: list[int] = []
    url: str | None = f"{V2}/Row__c?$select=Seq__c&$orderby=Seq__c&$inlinecount=allpages"
    while url:
        page = odata.get(url).json()["d"]
        assert page["__count"] == str(ROWS)
        found += [int(r["Seq__c"]) for r in page["results"]]
        url = page.get("__next")
    assert found == list(range(ROWS))
    assert len(d(odata, "Row__c")["results"]) == PAGE_SIZE


def test_writes_post_merge_delete(odata: Any, odata_org: Any) -> None:
    label = tag()
    account = make_account(odata_org, label)
    response = odata.post(f"{V2}/Contact", json={
        "LastName": label, "Birthdate": "/Date(-4861728000000)/",
        "Account": {"__metadata": {"uri": f"https://testserver/odata/v2/Account('{account}')"}}})
    assert response.status_code == 201, response.text
    created = response.json()["d"]
    assert created["Birthdate"] == "/Date(-4861728000000)/" and created["AccountId"] == account
    url = f"{V2}/Contact('{created['Id']}')"
    response = odata.request("MERGE", url, json={"Title": "merged"})
    assert response.status_code == 204
    response = odata.post(url, json={"Department": "tunneled"}, headers={"X-HTTP-Method": "MERGE"})
    assert response.status_code == 204
    body = d(odata, f"Contact('{created['Id']}')?$select=Title,Department")
    assert (body["Title"], body["Department"]) == ("merged", "tunneled")
    assert odata.delete(url).status_code == 204
    v2_error(odata.get(url), 404, "NOT_FOUND")
    assert "read-only" in v2_error(odata.post(f"{V2}/Account", json={"Name": "x"}), 405, "METHOD_NOT_ALLOWED")
    v2_error(odata.get(f"{V2}/Account?$filter=Name eq"), 400, "MALFORMED_QUERY")
    response = odata.get(f"{V2}/Account", headers={"Authorization": ""})
    v2_error(response, 401, "INVALID_SESSION_ID")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


# -- the pyodata client, in process --------------------------------------------------------------------------------

@pytest.fixture
def service(odata: Any) -> Any:
    return pyodata.Client("https://testserver/odata/v2/", odata)


@pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")  # pyodata posts data= to httpx
def test_pyodata_reads_metadata_and_queries(service: Any, odata_org: Any) -> None:
    assert sorted(s.name for s in service.schema.entity_sets) == ["Account", "Contact", "Gadget__c", "Row__c"]
    label = tag()
    account = make_account(odata_org, label, NumberOfEmployees=7)
    make(odata_org, "Contact", [{"LastName": f"{label}-{n}", "AccountId": account,
                                 "Birthdate": f"199{n}-01-02"} for n in range(3)])
    found = service.entity_sets.Account.get_entities().filter(f"Name eq '{label}'").top(5).execute()
    assert [(a.Name, a.NumberOfEmployees) for a in found] == [(label, 7)]
    contacts = (service.entity_sets.Contact.get_entities()
                .filter(LastName__startswith=label, Birthdate__gte=dt.datetime(1991, 1, 1, tzinfo=dt.UTC))
                .order_by("LastName").expand("Account").count(inline=True).execute())
    assert contacts.total_count == 2
    assert [(c.LastName, c.Birthdate.year, c.Account.Name) for c in contacts] == [
        (f"{label}-1", 1991, label), (f"{label}-2", 1992, label)]
    entity = service.entity_sets.Account.get_entity(account).expand("Contacts").execute()
    assert sorted(c.LastName for c in entity.Contacts) == [f"{label}-{n}" for n in range(3)]
    assert service.entity_sets.Contact.get_entities().filter(f"startswith(LastName, '{label}') eq true").count() \
        .execute() == 3
    with pytest.raises(HttpError) as failure:
        service.entity_sets.Account.create_entity().set(Name="refused").execute()
    assert failure.value.response.status_code == 405
