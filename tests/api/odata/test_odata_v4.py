"""The OData 4.0 producer (``/odata/v4/``) driven in-process, on every store backend.

The org is shared (conftest.py); each test makes its own records under a unique tag and filters on it.
Tests assert what an OData client sees: status, headers, the JSON body, and that refused requests change
nothing.
"""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree as ET

import pytest
from odata_support import PAGE_SIZE, ROWS, V4, make, make_account, tag

EDMX = "{http://docs.oasis-open.org/odata/ns/edmx}"
EDM = "{http://docs.oasis-open.org/odata/ns/edm}"


def get(client: Any, path: str, status: int = 200, **kwargs: Any) -> Any:
    response = client.get(f"{V4}/{path}", **kwargs)
    assert response.status_code == status, response.text
    return response.json() if response.headers["content-type"].startswith("application/json") else response.text


def values(client: Any, path: str, key: str = "Name") -> list[Any]:
    return [row[key] for row in get(client, path)["value"]]


def odata_error(response: Any, status: int, code: str) -> str:
    """The OData error body ``{"error": {"code", "message"}}`` with ``status``; returns the message."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    assert response.headers["OData-Version"] == "4.0"
    return str(error["message"])


# -- service document and $metadata --------------------------------------------------------------------------------

def test_service_document_lists_the_exposed_sets_only(odata: Any) -> None:
    response = odata.get(f"{V4}/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json;odata.metadata=minimal")
    assert response.headers["OData-Version"] == "4.0"
    body = response.json()
    assert body["@odata.context"].endswith("/odata/v4/$metadata")
    assert [(s["name"], s["kind"], s["url"]) for s in body["value"]] == [
        ("Account", "EntitySet", "Account"), ("Contact", "EntitySet", "Contact"),
        ("Gadget__c", "EntitySet", "Gadget__c"), ("Row__c", "EntitySet", "Row__c")]


def test_metadata_is_csdl_4_with_types_keys_and_navigation(odata: Any) -> None:
    response = odata.get(f"{V4}/$metadata")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(response.content)
    assert root.tag == f"{EDMX}Edmx" and root.get("Version") == "4.0"
    schema = root.find(f"{EDMX}DataServices/{EDM}Schema")
    assert schema is not None and schema.get("Namespace") == "Interlink"
    types = {t.get("Name"): t for t in schema.findall(f"{EDM}EntityType")}
    assert set(types) == {"Account", "Contact", "Gadget__c", "Row__c"}  # Opportunity is not exposed
    gadget = types["Gadget__c"]
    assert [r.get("Name") for r in gadget.findall(f"{EDM}Key/{EDM}PropertyRef")] == ["Id"]
    props = {p.get("Name"): p.attrib for p in gadget.findall(f"{EDM}Property")}
    assert props["Id"]["Type"] == "Edm.String" and props["Id"]["MaxLength"] == "18"
    assert props["Id"]["Nullable"] == "false"
    assert props["Tag__c"] == {"Name": "Tag__c", "Type": "Edm.String", "MaxLength": "40"}
    assert props["Notes__c"]["Type"] == "Edm.String"
    assert props["Active__c"]["Type"] == "Edm.Boolean"
    assert props["Units__c"]["Type"] == "Edm.Int32"
    assert props["Price__c"] == {"Name": "Price__c", "Type": "Edm.Decimal", "Precision": "12", "Scale": "2"}
    assert props["Share__c"]["Type"] == "Edm.Decimal" and props["Ratio__c"]["Scale"] == "4"
    assert props["Launch__c"]["Type"] == "Edm.Date"
    assert props["Seen__c"]["Type"] == "Edm.DateTimeOffset"
    assert props["Opens__c"]["Type"] == "Edm.TimeOfDay"
    assert props["Color__c"]["Type"] == props["Sizes__c"]["Type"] == props["Contact_Email__c"]["Type"] == "Edm.String"
    assert props["Account__c"]["Type"] == "Edm.String" and props["Account__c"]["MaxLength"] == "18"

    contact_navs = {n.get("Name"): n for n in types["Contact"].findall(f"{EDM}NavigationProperty")}
    assert contact_navs["Account"].get("Type") == "Interlink.Account"
    assert contact_navs["Account"].get("Partner") == "Contacts"
    constraint = contact_navs["Account"].find(f"{EDM}ReferentialConstraint")
    assert constraint is not None and constraint.attrib == {"Property": "AccountId", "ReferencedProperty": "Id"}
    account_navs = {n.get("Name"): n.get("Type") for n in types["Account"].findall(f"{EDM}NavigationProperty")}
    assert account_navs == {"Parent": "Interlink.Account", "ChildAccounts": "Collection(Interlink.Account)",
                            "Contacts": "Collection(Interlink.Contact)",
                            "Gadgets__r": "Collection(Interlink.Gadget__c)"}
    assert "Opportunities" not in account_navs  # only navigation to exposed objects

    container = schema.find(f"{EDM}EntityContainer")
    assert container is not None
    sets = {s.get("Name"): s for s in container.findall(f"{EDM}EntitySet")}
    assert {n: s.get("EntityType") for n, s in sets.items()} == {
        "Account": "Interlink.Account", "Contact": "Interlink.Contact", "Gadget__c": "Interlink.Gadget__c",
        "Row__c": "Interlink.Row__c"}
    bindings = {b.get("Path"): b.get("Target") for b in sets["Account"].findall(f"{EDM}NavigationPropertyBinding")}
    assert bindings == {"Parent": "Account", "ChildAccounts": "Account", "Contacts": "Contact",
                        "Gadgets__r": "Gadget__c"}
    read_only = [a.get("Term") for a in sets["Account"].findall(f"{EDM}Annotation")]
    assert "Capabilities.InsertRestrictions" in read_only
    assert sets["Contact"].findall(f"{EDM}Annotation") == []


# -- $filter -------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gadgets(odata_org: Any) -> dict[str, Any]:
    """Five gadgets under one tag, with an account, for the filter and order tests."""
    label = tag()
    account = make_account(odata_org, f"{label} Holding", Industry="Banking")
    rows = [
        {"Name": f"{label} Alpha", "Units__c": 1, "Price__c": 10.5, "Active__c": True, "Launch__c": "2024-01-15",
         "Seen__c": "2024-01-15T08:00:00Z", "Opens__c": "08:30:00", "Color__c": "Red", "Sizes__c": "S;M",
         "Account__c": account, "Tag__c": "100% pure"},
        {"Name": f"{label} Beta", "Units__c": 2, "Price__c": 20, "Active__c": False, "Launch__c": "2024-03-01",
         "Seen__c": "2024-03-01T12:30:00Z", "Opens__c": "09:00:00", "Color__c": "Green", "Tag__c": "under_score"},
        {"Name": f"{label} Gamma", "Units__c": 3, "Price__c": 30, "Active__c": True, "Launch__c": "2025-06-30",
         "Seen__c": "2025-06-30T23:59:59Z", "Color__c": "Blue", "Account__c": account, "Tag__c": "O'Brien"},
        {"Name": f"{label} Delta", "Units__c": 4, "Active__c": False, "Tag__c": "back\\slash"},
        {"Name": f"{label} epsilon", "Units__c": 5, "Price__c": 50, "Active__c": True},
    ]
    make(odata_org, "Gadget__c", rows)
    return {"tag": label, "account": account}


def names(odata: Any, gadgets: dict[str, Any], condition: str, **extra: str) -> list[str]:
    params = {"$filter": f"startswith(Name,'{gadgets['tag']}') and ({condition})", "$orderby": "Units__c",
              "$select": "Name", **extra}
    body = odata.get(f"{V4}/Gadget__c", params=params)
    assert body.status_code == 200, body.text
    return [row["Name"].split(" ", 1)[1] for row in body.json()["value"]]


@pytest.mark.parametrize(("condition", "expected"), [
    ("Units__c eq 2", ["Beta"]),
    ("Units__c ne 2", ["Alpha", "Gamma", "Delta", "epsilon"]),
    ("Units__c gt 3", ["Delta", "epsilon"]),
    ("Units__c ge 3", ["Gamma", "Delta", "epsilon"]),
    ("Units__c lt 2", ["Alpha"]),
    ("Units__c le 2", ["Alpha", "Beta"]),
    ("3 lt Units__c", ["Delta", "epsilon"]),
    ("Price__c gt 15.25", ["Beta", "Gamma", "epsilon"]),
    ("Price__c eq null", ["Delta"]),
    ("Price__c ne null and Units__c le 2", ["Alpha", "Beta"]),
    ("Units__c eq 1 or Units__c eq 5", ["Alpha", "epsilon"]),
    ("(Units__c eq 1 or Units__c eq 5) and Active__c eq true", ["Alpha", "epsilon"]),
    ("not (Units__c lt 4)", ["Delta", "epsilon"]),
    ("not Units__c lt 4", ["Delta", "epsilon"]),
    ("Active__c", ["Alpha", "Gamma", "epsilon"]),
    ("not Active__c", ["Beta", "Delta"]),
    ("Active__c eq false", ["Beta", "Delta"]),
    ("Units__c in (2, 4)", ["Beta", "Delta"]),
    ("Color__c in ('Red','Blue')", ["Alpha", "Gamma"]),
    ("Color__c eq 'green'", ["Beta"]),
    ("Sizes__c eq 'S;M'", ["Alpha"]),
    ("contains(Name,'ta')", ["Beta", "Delta"]),
    ("endswith(Name,'ma')", ["Gamma"]),
    ("contains(tolower(Name),'EPS')", ["epsilon"]),
    ("toupper(Name) eq toupper(Name)", None),  # two properties: refused
    ("contains(Tag__c,'%')", ["Alpha"]),
    ("contains(Tag__c,'_')", ["Beta"]),
    ("Tag__c eq 'O''Brien'", ["Gamma"]),
    ("Tag__c eq 'back\\slash'", ["Delta"]),
    ("contains(Tag__c,'\\')", ["Delta"]),
    ("Launch__c eq 2024-03-01", ["Beta"]),
    ("Launch__c ge 2024-03-01", ["Beta", "Gamma"]),
    ("Seen__c lt 2024-03-01T12:30:00Z", ["Alpha"]),
    ("Seen__c ge 2024-03-01T13:30:00+01:00", ["Beta", "Gamma"]),
    ("year(Launch__c) eq 2025", ["Gamma"]),
    ("month(Seen__c) eq 1", ["Alpha"]),
    ("Opens__c lt 09:00:00", ["Alpha"]),
    ("Opens__c eq 09:00:00", ["Beta"]),
    ("Account__r/Industry eq 'Banking'", ["Alpha", "Gamma"]),
    ("Account__r eq null", ["Beta", "Delta", "epsilon"]),
    ("startswith(Account__r/Name,'od') eq true", ["Alpha", "Gamma"]),
    ("contains(Name,'lph') eq false", ["Beta", "Gamma", "Delta", "epsilon"]),
    ("startswith(Name,'x') eq true or endswith(Name,'ta') ne false", ["Beta", "Delta"]),
])
def test_filter(odata: Any, gadgets: dict[str, Any], condition: str, expected: list[str] | None) -> None:
    if expected is None:
        response = odata.get(f"{V4}/Gadget__c", params={"$filter": condition})
        assert "two properties" in odata_error(response, 400, "MALFORMED_QUERY")
        return
    assert names(odata, gadgets, condition) == expected


def test_filter_lambda_any_and_all_over_children(odata: Any, odata_org: Any) -> None:
    label = tag()
    both = make_account(odata_org, f"{label} both")
    one = make_account(odata_org, f"{label} one")
    make_account(odata_org, f"{label} none")
    make(odata_org, "Contact", [{"LastName": f"{label}-a", "AccountId": both, "Title": "CEO"},
                                {"LastName": f"{label}-b", "AccountId": both, "Title": "CTO"},
                                {"LastName": f"{label}-c", "AccountId": one, "Title": "CEO"}])
    base = f"startswith(Name,'{label}') and "
    found = values(odata, f"Account?$filter={base}Contacts/any(c: c/Title eq 'CTO')&$orderby=Name")
    assert found == [f"{label} both"]
    found = values(odata, f"Account?$filter={base}Contacts/any()&$orderby=Name")
    assert found == [f"{label} both", f"{label} one"]
    found = values(odata, f"Account?$filter={base}Contacts/all(c: c/Title eq 'CEO')&$orderby=Name")
    assert found == [f"{label} none", f"{label} one"]


@pytest.mark.parametrize(("expression", "code", "words"), [
    ("Name eq", "MALFORMED_QUERY", "ends too early"),
    ("Name eq 'unterminated", "MALFORMED_QUERY", "Syntax error"),
    ("Name eq 'a' and", "MALFORMED_QUERY", "ends too early"),
    ("Nmae eq 'a'", "INVALID_FIELD", "No property 'Nmae' exists in type 'Interlink.Gadget__c'"),
    ("Units__c eq 'two'", "MALFORMED_QUERY", "Units__c cannot be compared with 'two'"),
    ("Name eq 5", "MALFORMED_QUERY", "it is of type text"),
    ("length(Name) eq 3", "MALFORMED_QUERY", "length() is not supported"),
    ("Units__c add 1 eq 3", "MALFORMED_QUERY", "arithmetic operator 'add' is not supported"),
    ("Name eq Tag__c", "MALFORMED_QUERY", "Comparing two properties"),
    ("Price__c gt null", "MALFORMED_QUERY", "null can only be compared with eq or ne"),
    ("Id eq guid'01234567-89ab-cdef-0123-456789abcdef'", "MALFORMED_QUERY", "guid literal"),
    ("Account__r/Nope eq 1", "INVALID_FIELD", "Nope"),
    ("true", "MALFORMED_QUERY", "only true or false"),
])
def test_bad_filter_is_400_with_a_clear_message_and_changes_nothing(odata: Any, odata_org: Any, expression: str,
                                                                     code: str, words: str) -> None:
    before = odata_org.query.execute("SELECT COUNT() FROM Gadget__c", odata_org.admin_context()).total_size
    response = odata.get(f"{V4}/Gadget__c", params={"$filter": expression})
    assert words in odata_error(response, 400, code)
    assert odata_org.query.execute("SELECT COUNT() FROM Gadget__c", odata_org.admin_context()).total_size == before


def test_filter_injection_cannot_escape_the_string_literal(odata: Any, odata_org: Any) -> None:
    label = tag()
    sneaky = "x' OR Name != '"
    make(odata_org, "Contact", [{"LastName": sneaky, "Title": label}, {"LastName": "Plain", "Title": label}])
    # The quote is data: the filter matches the one contact whose name is literally that text...
    found = get(odata, "Contact", params={"$filter": "LastName eq 'x'' OR Name != ''' and Title eq "
                                                     f"'{label}'", "$select": "LastName"})["value"]
    assert [row["LastName"] for row in found] == [sneaky]
    # ...and an OR smuggled inside a string never widens the query to the other contacts.
    found = get(odata, "Contact", params={"$filter": f"Title eq '{label}' and LastName eq 'x'' OR LastName != '''"})
    assert found["value"] == []
    response = odata.get(f"{V4}/Contact", params={"$filter": "LastName eq 'a') OR (LastName != 'b'"})
    odata_error(response, 400, "MALFORMED_QUERY")
    # A backslash is data too: unescaped, SOQL would read \' as a quote inside the string and the rest as code.
    smuggled = "LastName eq '\\' and Title eq ' OR LastName != null OR LastName = '"
    assert get(odata, "Contact", params={"$filter": smuggled})["value"] == []


# -- $orderby, $top, $skip, $count ---------------------------------------------------------------------------------

def test_orderby_with_directions_and_parent_paths(odata: Any, gadgets: dict[str, Any]) -> None:
    assert names(odata, gadgets, "Units__c gt 0", **{"$orderby": "Units__c desc"}) == [
        "epsilon", "Delta", "Gamma", "Beta", "Alpha"]
    assert names(odata, gadgets, "Units__c gt 0", **{"$orderby": "Active__c desc,Name"}) == [
        "Alpha", "epsilon", "Gamma", "Beta", "Delta"]
    ordered = names(odata, gadgets, "Units__c gt 0", **{"$orderby": "Account__r/Name desc,Units__c asc"})
    assert ordered == ["Alpha", "Gamma", "Beta", "Delta", "epsilon"]  # null is the lowest value: last when desc
    response = odata.get(f"{V4}/Gadget__c", params={"$orderby": "Nope"})
    odata_error(response, 400, "INVALID_FIELD")
    response = odata.get(f"{V4}/Gadget__c", params={"$orderby": "Name sideways"})
    odata_error(response, 400, "MALFORMED_QUERY")


def seqs(body: dict[str, Any]) -> list[int]:
    return [int(row["Seq__c"]) for row in body["value"]]


def test_top_skip_and_count(odata: Any) -> None:
    body = get(odata, "Row__c?$select=Seq__c&$orderby=Seq__c&$top=3&$skip=10&$count=true")
    assert seqs(body) == [10, 11, 12]
    assert body["@odata.count"] == ROWS
    assert "@odata.nextLink" not in body
    body = get(odata, "Row__c?$select=Seq__c&$filter=Parity__c eq 'odd'&$orderby=Seq__c desc&$top=2&$count=true")
    assert seqs(body) == [2029, 2027] and body["@odata.count"] == ROWS // 2
    assert get(odata, "Row__c/$count") == str(ROWS)
    assert get(odata, "Row__c/$count?$filter=Seq__c lt 100") == "100"
    assert "@odata.count" not in get(odata, "Row__c?$top=1")


def test_skip_beyond_the_soql_offset_cap(odata: Any) -> None:
    body = get(odata, "Row__c?$select=Seq__c&$orderby=Seq__c&$skip=2010&$top=5&$count=true")
    assert seqs(body) == [2010, 2011, 2012, 2013, 2014]
    assert body["@odata.count"] == ROWS
    body = get(odata, "Row__c?$select=Seq__c&$orderby=Seq__c&$skip=2025")
    assert seqs(body) == [2025, 2026, 2027, 2028, 2029]
    assert get(odata, "Row__c?$skip=5000")["value"] == []


@pytest.mark.parametrize("query", ["$top=-1", "$top=x", "$skip=1.5", "$count=maybe", "$search=acme",
                                   "$apply=groupby((Name))", "$skiptoken=abc"])
def test_bad_query_options_are_400(odata: Any, query: str) -> None:
    odata_error(odata.get(f"{V4}/Row__c?{query}"), 400, "MALFORMED_QUERY")


# -- server-driven paging ------------------------------------------------------------------------------------------

def follow(odata: Any, url: str, headers: dict[str, str] | None = None) -> tuple[list[int], int]:
    """Every Seq__c across the nextLinks starting at ``url``, and how many pages it took."""
    found: list[int] = []
    pages = 0
    next_url: str | None = url
    while next_url:
        response = odata.get(next_url, headers=headers or {})
        assert response.status_code == 200, response.text
        body = response.json()
        pages += 1
        found += seqs(body)
        next_url = body.get("@odata.nextLink")
        assert pages <= 50
    return found, pages


def test_next_links_page_through_every_row_once(odata: Any) -> None:
    found, pages = follow(odata, f"{V4}/Row__c?$select=Seq__c&$orderby=Seq__c")
    assert found == list(range(ROWS))
    assert pages == -(-ROWS // PAGE_SIZE)


def test_prefer_maxpagesize_with_filter_skip_top_and_count(odata: Any) -> None:
    url = f"{V4}/Row__c?$select=Seq__c&$filter=Parity__c eq 'even'&$orderby=Seq__c desc&$skip=3&$top=40&$count=true"
    first = odata.get(url, headers={"Prefer": "odata.maxpagesize=7"})
    assert first.headers["Preference-Applied"] == "odata.maxpagesize=7"
    body = first.json()
    assert len(body["value"]) == 7 and body["@odata.count"] == ROWS // 2
    assert body["@odata.nextLink"].startswith("https://testserver/odata/v4/Row__c?")
    found, pages = follow(odata, url, {"Prefer": "odata.maxpagesize=7"})
    expected = list(range(2028, -1, -2))[3:43]
    assert found == expected and len(set(found)) == 40
    assert pages == 6


def test_paging_with_expanded_children(odata: Any, odata_org: Any) -> None:
    label = tag()
    accounts = [make_account(odata_org, f"{label} {n:02d}") for n in range(5)]
    make(odata_org, "Contact", [{"LastName": f"c{n}", "AccountId": accounts[n]} for n in range(5)])
    url = (f"{V4}/Account?$filter=startswith(Name,'{label}')&$orderby=Name&$select=Name"
           "&$expand=Contacts($select=LastName)")
    seen: list[tuple[str, list[str]]] = []
    while url:
        body = odata.get(url, headers={"Prefer": "odata.maxpagesize=2"}).json()
        seen += [(row["Name"][-2:], [c["LastName"] for c in row["Contacts"]]) for row in body["value"]]
        url = body.get("@odata.nextLink")
    assert seen == [(f"{n:02d}", [f"c{n}"]) for n in range(5)]


# -- single entity and $expand -------------------------------------------------------------------------------------

def test_single_entity_by_key(odata: Any, odata_org: Any) -> None:
    label = tag()
    account = make_account(odata_org, label, Industry="Energy", NumberOfEmployees=12, AnnualRevenue=99.0)
    response = odata.get(f"{V4}/Account('{account}')")
    assert response.status_code == 200
    body = response.json()
    assert body["@odata.context"].endswith("$metadata#Account/$entity")
    assert body["Id"] == account and body["Name"] == label and body["NumberOfEmployees"] == 12
    assert body["CreatedDate"].endswith("Z") and "+" not in body["CreatedDate"]
    assert get(odata, f"Account(Id='{account[:15]}')?$select=Industry") == {
        "@odata.context": body["@odata.context"].replace("Account/$entity", "Account(Id,Industry)/$entity"),
        "Id": account, "Industry": "Energy"}
    missing = account[:3] + "000000000000"
    assert "No Account entity" in odata_error(odata.get(f"{V4}/Account('{missing}')"), 404, "NOT_FOUND")
    odata_error(odata.get(f"{V4}/Account('nonsense')"), 400, "MALFORMED_ID")
    odata_error(odata.get(f"{V4}/Nothing('{account}')"), 404, "NOT_FOUND")
    odata_error(odata.get(f"{V4}/Opportunity"), 404, "NOT_FOUND")  # exists, not exposed


def test_expand_parents_and_children_with_nested_options(odata: Any, odata_org: Any) -> None:
    label = tag()
    account = make_account(odata_org, label, Industry="Media")
    make(odata_org, "Contact", [{"LastName": f"{label}-{n}", "AccountId": account, "Title": t}
                                for n, t in enumerate(["CEO", "CTO", "CFO"])])
    body = get(odata, f"Contact?$filter=startswith(LastName,'{label}')&$orderby=LastName&$select=LastName"
                      "&$expand=Account($select=Name,Industry)")
    assert body["value"][0] == {"Id": body["value"][0]["Id"], "LastName": f"{label}-0",
                                "Account": {"Id": account, "Name": label, "Industry": "Media"}}
    body = get(odata, f"Account('{account}')?$select=Name&$expand=Contacts($select=Title;$filter=Title ne 'CTO';"
                      "$orderby=Title desc;$top=5)")
    assert [c["Title"] for c in body["Contacts"]] == ["CFO", "CEO"]
    assert set(body["Contacts"][0]) == {"Id", "Title"}
    body = get(odata, f"Account('{account}')?$expand=Contacts,Parent")
    assert len(body["Contacts"]) == 3 and body["Parent"] is None and "LastName" in body["Contacts"][0]
    body = get(odata, f"Account('{account}')?$expand=*&$select=Name")
    assert set(body) >= {"Contacts", "Gadgets__r", "ChildAccounts", "Parent"}
    odata_error(odata.get(f"{V4}/Account?$expand=Nope"), 400, "MALFORMED_QUERY")
    message = odata_error(odata.get(f"{V4}/Account?$expand=Contacts($expand=Account)"), 400, "MALFORMED_QUERY")
    assert "one level" in message


def test_navigation_urls(odata: Any, odata_org: Any) -> None:
    label = tag()
    account = make_account(odata_org, label)
    contact, orphan = make(odata_org, "Contact", [{"LastName": f"{label}-a", "AccountId": account},
                                                  {"LastName": f"{label}-b"}])
    assert values(odata, f"Account('{account}')/Contacts?$select=LastName", "LastName") == [f"{label}-a"]
    assert get(odata, f"Account('{account}')/Contacts/$count") == "1"
    assert get(odata, f"Contact('{contact}')/Account")["Name"] == label
    assert odata.get(f"{V4}/Contact('{orphan}')/Account").status_code == 204


# -- writes --------------------------------------------------------------------------------------------------------

def test_create_update_delete_on_a_writable_set(odata: Any, odata_org: Any) -> None:
    label = tag()
    account = make_account(odata_org, label)
    response = odata.post(f"{V4}/Contact", json={"LastName": label, "FirstName": "Ada", "Birthdate": "1815-12-10",
                                                  "Account@odata.bind": f"Account('{account}')"})
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["@odata.context"].endswith("$metadata#Contact/$entity")
    assert created["LastName"] == label and created["AccountId"] == account and created["Birthdate"] == "1815-12-10"
    assert response.headers["Location"] == f"https://testserver/odata/v4/Contact('{created['Id']}')"
    url = f"{V4}/Contact('{created['Id']}')"

    response = odata.patch(url, json={"Title": "Countess", "FirstName": None})
    assert response.status_code == 204 and response.content == b""
    assert get(odata, f"Contact('{created['Id']}')?$select=Title,FirstName") == {
        "@odata.context": "https://testserver/odata/v4/$metadata#Contact(Id,Title,FirstName)/$entity",
        "Id": created["Id"], "Title": "Countess", "FirstName": None}
    response = odata.patch(url, json={"Title": "Dr"}, headers={"Prefer": "return=representation"})
    assert response.status_code == 200 and response.json()["Title"] == "Dr"

    response = odata.delete(url)
    assert response.status_code == 204
    odata_error(odata.get(url), 404, "NOT_FOUND")
    odata_error(odata.delete(url), 404, "NOT_FOUND")


def test_create_with_return_minimal_and_typed_values(odata: Any) -> None:
    label = tag()
    response = odata.post(f"{V4}/Gadget__c", headers={"Prefer": "return=minimal"}, json={
        "Name": label, "Units__c": 7, "Price__c": 12.34, "Seen__c": "2024-05-01T10:15:00+02:00",
        "Opens__c": "07:45:00", "Launch__c": "2024-05-01", "Active__c": True, "Sizes__c": "S;L"})
    assert response.status_code == 204, response.text
    location = response.headers["Location"]
    assert response.headers["OData-EntityId"] == location
    body = odata.get(location).json()
    assert (body["Units__c"], body["Price__c"], body["Seen__c"], body["Opens__c"], body["Launch__c"],
            body["Active__c"], body["Sizes__c"]) == (7, 12.34, "2024-05-01T08:15:00Z", "07:45:00.000", "2024-05-01",
                                                     True, "S;L")


def test_rejected_writes_change_nothing(odata: Any, odata_org: Any) -> None:
    label = tag()
    count = f"Contact/$count?$filter=Title eq '{label}'"
    response = odata.post(f"{V4}/Contact", json={"LastName": "x", "Title": label, "Shoe__c": 42})
    odata_error(response, 400, "INVALID_FIELD")
    response = odata.post(f"{V4}/Contact", json={"FirstName": "no last name", "Title": label})
    odata_error(response, 400, "REQUIRED_FIELD_MISSING")
    response = odata.post(f"{V4}/Contact", json={"LastName": "x", "Title": label, "Account": {"Name": "deep"}})
    assert "Deep insert" in odata_error(response, 400, "INVALID_REQUEST")
    response = odata.post(f"{V4}/Contact", content=b"{not json", headers={"Content-Type": "application/json"})
    odata_error(response, 400, "JSON_PARSER_ERROR")
    assert get(odata, count) == "0"
    (contact,) = make(odata_org, "Contact", [{"LastName": label, "Title": label}])
    response = odata.patch(f"{V4}/Contact('{contact}')", json={"LastName": None, "Title": "changed"})
    odata_error(response, 400, "REQUIRED_FIELD_MISSING")
    assert get(odata, count) == "1"


def test_read_only_sets_refuse_writes_with_405(odata: Any, odata_org: Any) -> None:
    label = tag()
    account = make_account(odata_org, label)
    for response in (odata.post(f"{V4}/Account", json={"Name": label}),
                     odata.patch(f"{V4}/Account('{account}')", json={"Name": "renamed"}),
                     odata.put(f"{V4}/Account('{account}')", json={"Name": "renamed"}),
                     odata.delete(f"{V4}/Account('{account}')")):
        assert "read-only" in odata_error(response, 405, "METHOD_NOT_ALLOWED")
        assert response.headers["Allow"] == "GET, HEAD"
    assert get(odata, f"Account('{account}')?$select=Name")["Name"] == label
    assert get(odata, f"Account/$count?$filter=Name eq '{label}'") == "1"


# -- authentication ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["", "$metadata", "Account", "Account/$count"])
def test_unauthenticated_requests_are_401_with_an_odata_error(odata: Any, path: str) -> None:
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer not-a-token"}):
        response = odata.get(f"{V4}/{path}", headers=headers)
        odata_error(response, 401, "INVALID_SESSION_ID")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_without_a_config_file_nothing_is_exposed(sqlite_org: Any) -> None:
    from interlink.testing import rest_client

    with rest_client(sqlite_org) as client:
        assert client.get(f"{V4}/").json()["value"] == []
        assert client.get("/odata/v2/").json() == {"d": {"EntitySets": []}}
        schema = ET.fromstring(client.get(f"{V4}/$metadata").content).find(f"{EDMX}DataServices/{EDM}Schema")
        assert schema is not None and schema.findall(f"{EDM}EntityType") == []
        odata_error(client.get(f"{V4}/Account"), 404, "NOT_FOUND")


def test_query_engine_refusals_keep_the_reason_without_echoing_soql(odata: Any) -> None:
    response = odata.get(f"{V4}/Contact", params={"$filter": "Description eq 'x'"})  # a long text area
    assert odata_error(response, 400, "INVALID_FIELD") == "field 'Description' can not be filtered in a query call"
