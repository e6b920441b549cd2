"""OData 2.0 Atom XML on ``/odata/v2/`` (atom.py), driven in-process on every store backend: format selection
(``$format``, ``Accept``), feeds with ``m:count`` and next links, typed properties and nulls, single entries,
``$expand`` as ``m:inline``, the AtomPub service document, XML error documents and the 415 for Atom bodies.
Every document is parsed with ElementTree.
"""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree as ET

import pytest
from odata_support import ROWS, V2, make, make_account, tag

from interlink.api.odata.atom import atom_value, wants_atom
from interlink.metadata.model import FieldDef, FieldType

A = "{http://www.w3.org/2005/Atom}"
D = "{http://schemas.microsoft.com/ado/2007/08/dataservices}"
M = "{http://schemas.microsoft.com/ado/2007/08/dataservices/metadata}"
APP = "{http://www.w3.org/2007/app}"
XML_NS = "{http://www.w3.org/XML/1998/namespace}"
RELATED = "http://schemas.microsoft.com/ado/2007/08/dataservices/related/"
SCHEME = "http://schemas.microsoft.com/ado/2007/08/dataservices/scheme"
ROOT = "https://testserver/odata/v2/"
ATOM_ACCEPT = {"Accept": "application/atom+xml"}


def atom(client: Any, path: str, kind: str = "feed", **kwargs: Any) -> ET.Element:
    """GET ``path`` asking for Atom; the parsed document, after checking status and headers."""
    kwargs.setdefault("headers", ATOM_ACCEPT)
    response = client.get(f"{V2}/{path}", **kwargs)
    assert response.status_code == 200, response.text
    assert response.headers["DataServiceVersion"] == "2.0"
    assert response.headers["content-type"] == f"application/atom+xml;type={kind};charset=utf-8"
    root = ET.fromstring(response.content)
    assert root.tag == f"{A}{kind}" and root.get(f"{XML_NS}base") == ROOT
    return root


def properties(entry: ET.Element) -> dict[str, ET.Element]:
    props = entry.find(f"{A}content/{M}properties")
    assert props is not None and entry.find(f"{A}content").get("type") == "application/xml"  # type: ignore[union-attr]
    return {element.tag.removeprefix(D): element for element in props}


def nav_link(entry: ET.Element, name: str) -> ET.Element:
    (link,) = [link for link in entry.findall(f"{A}link") if link.get("rel") == RELATED + name]
    return link


def xml_error(response: Any, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(response.content)
    assert root.tag == f"{M}error" and root.findtext(f"{M}code") == code
    message = root.find(f"{M}message")
    assert message is not None and message.get(f"{XML_NS}lang") == "en-US" and message.text
    return message.text


def test_feed_shape_count_and_typed_properties(odata: Any, odata_org: Any) -> None:
    label = tag()
    account = make_account(odata_org, label)
    (gadget,) = make(odata_org, "Gadget__c", [{
        "Name": label, "Price__c": 12.5, "Units__c": 3, "Launch__c": "2024-01-31", "Seen__c": "2024-01-31T09:30:00Z",
        "Opens__c": "08:05:30", "Active__c": True, "Account__c": account,
        "Notes__c": "<b>&amp;</b> \"quoted\" 'single'\r\nline two ]]>"}])
    feed = atom(odata, f"Gadget__c?$filter=Name eq '{label}'&$inlinecount=allpages")
    assert feed.findtext(f"{A}id") == f"{ROOT}Gadget__c"
    title = feed.find(f"{A}title")
    assert title is not None and (title.get("type"), title.text) == ("text", "Gadget__c")
    assert (feed.findtext(f"{A}updated") or "").endswith("Z")
    (self_link,) = [link for link in feed.findall(f"{A}link") if link.get("rel") == "self"]
    assert self_link.get("href") == "Gadget__c"
    assert feed.findtext(f"{M}count") == "1"
    assert not [link for link in feed.findall(f"{A}link") if link.get("rel") == "next"]
    (entry,) = feed.findall(f"{A}entry")
    uri = f"{ROOT}Gadget__c('{gadget}')"
    assert entry.findtext(f"{A}id") == uri
    category = entry.find(f"{A}category")
    assert category is not None and (category.get("term"), category.get("scheme")) == ("Interlink.Gadget__c", SCHEME)
    (edit,) = [link for link in entry.findall(f"{A}link") if link.get("rel") == "edit"]
    assert edit.get("href") == f"Gadget__c('{gadget}')"
    parent = nav_link(entry, "Account__r")
    assert (parent.get("type"), parent.get("href")) == ("application/atom+xml;type=entry",
                                                        f"Gadget__c('{gadget}')/Account__r")
    assert parent.find(f"{M}inline") is None

    props = properties(entry)
    typed = {name: (props[name].get(f"{M}type"), props[name].text) for name in (
        "Id", "Name", "Price__c", "Units__c", "Launch__c", "Seen__c", "Opens__c", "Active__c", "Account__c")}
    assert typed == {
        "Id": (None, gadget), "Name": (None, label), "Price__c": ("Edm.Decimal", "12.50"),
        "Units__c": ("Edm.Int32", "3"), "Launch__c": ("Edm.DateTime", "2024-01-31T00:00:00"),
        "Seen__c": ("Edm.DateTime", "2024-01-31T09:30:00"), "Opens__c": ("Edm.Time", "PT08H05M30S"),
        "Active__c": ("Edm.Boolean", "true"), "Account__c": (None, account)}
    assert props["Notes__c"].text == "<b>&amp;</b> \"quoted\" 'single'\r\nline two ]]>"  # escaped, \r kept
    assert props["Ratio__c"].attrib == {f"{M}type": "Edm.Decimal", f"{M}null": "true"}
    assert props["Color__c"].attrib == {f"{M}null": "true"} and props["Color__c"].text is None
    assert next(iter(props)) == "Id"


@pytest.mark.parametrize(("query", "accept", "expected"), [
    ("", "application/atom+xml", "atom"),
    ("", "application/xml", "atom"),
    ("", "application/atom+xml,application/atomsvc+xml,application/xml", "atom"),
    ("", "application/atom+xml;q=0.9, application/xml;q=0.8, */*;q=0.1", "atom"),
    ("", "application/json;q=0.5, application/xml", "atom"),
    ("", "application/xml;q=0.5, application/json", "json"),
    ("", "application/json", "json"),
    ("", "*/*", "json"),
    ("", None, "json"),
    ("", "text/html", "json"),
    ("$format=atom", "application/json", "atom"),
    ("$format=xml", None, "atom"),
    ("$format=json", "application/atom+xml", "json"),
])
def test_format_selection(odata: Any, query: str, accept: str | None, expected: str) -> None:
    headers = {"Accept": accept} if accept else {}
    response = odata.get(f"{V2}/Account?$top=1&{query}", headers=headers)
    assert response.status_code == 200, response.text
    if expected == "json":
        assert response.headers["content-type"] == "application/json;charset=utf-8"
        assert "results" in response.json()["d"]
    else:
        assert response.headers["content-type"] == "application/atom+xml;type=feed;charset=utf-8"
        assert ET.fromstring(response.content).tag == f"{A}feed"


def test_wants_atom_without_accept_header_keeps_json() -> None:
    assert not wants_atom({}, {})
    assert not wants_atom({"$format": "JSON"}, {"accept": "application/xml"})
    assert wants_atom({"$format": "application/atom+xml"}, {})
    assert not wants_atom({}, {"accept": "application/xml;q=oops, application/json"})


def test_v4_ignores_atom_requests(odata: Any) -> None:
    response = odata.get("/odata/v4/Account?$top=1&$format=atom", headers=ATOM_ACCEPT)
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")


def test_next_links_page_through_every_row(odata: Any) -> None:
    found: list[int] = []
    url: str | None = f"{ROOT}Row__c?$select=Seq__c&$orderby=Seq__c&$inlinecount=allpages&$format=atom"
    pages = 0
    while url:
        feed = atom(odata, url.removeprefix(f"{ROOT}"))
        pages += 1
        assert feed.findtext(f"{M}count") == str(ROWS)
        for entry in feed.findall(f"{A}entry"):
            value = properties(entry)["Seq__c"]
            assert value.get(f"{M}type") == "Edm.Decimal"
            found.append(int(value.text or ""))
        nexts = [link.get("href") for link in feed.findall(f"{A}link") if link.get("rel") == "next"]
        assert len(nexts) <= 1
        url = nexts[0] if nexts else None
        assert url is None or (url.startswith(ROOT) and "$format=atom" in url and "&" in url)
    assert found == list(range(ROWS)) and pages == 5


def test_single_entry_and_parent_navigation(odata: Any, odata_org: Any) -> None:
    label = tag()
    account = make_account(odata_org, label, NumberOfEmployees=7)
    (contact,) = make(odata_org, "Contact", [{"LastName": label, "AccountId": account}])
    entry = atom(odata, f"Account('{account}')?$format=atom", "entry", headers={})
    assert entry.findtext(f"{A}id") == f"{ROOT}Account('{account}')"
    assert entry.find(f"{A}category").get("term") == "Interlink.Account"  # type: ignore[union-attr]
    props = properties(entry)
    assert (props["Name"].text, props["NumberOfEmployees"].text) == (label, "7")
    assert props["NumberOfEmployees"].get(f"{M}type") == "Edm.Int32"
    contacts = nav_link(entry, "Contacts")
    assert (contacts.get("type"), contacts.get("href")) == ("application/atom+xml;type=feed",
                                                          f"Account('{account}')/Contacts")
    parent = atom(odata, f"Contact('{contact}')/Account", "entry")
    assert parent.findtext(f"{A}id") == f"{ROOT}Account('{account}')"
    children = atom(odata, f"Account('{account}')/Contacts?$inlinecount=allpages")
    assert children.findtext(f"{A}id") == f"{ROOT}Account('{account}')/Contacts"
    assert children.findtext(f"{A}title") == "Contacts" and children.findtext(f"{M}count") == "1"
    assert [e.findtext(f"{A}id") for e in children.findall(f"{A}entry")] == [f"{ROOT}Contact('{contact}')"]


def test_expand_inline_feed_and_entry(odata: Any, odata_org: Any) -> None:
    label = tag()
    account = make_account(odata_org, label)
    make(odata_org, "Contact", [{"LastName": f"{label}-{n}", "AccountId": account} for n in range(3)])
    make(odata_org, "Contact", [{"LastName": f"{label}-orphan"}])
    entry = atom(odata, f"Account('{account}')?$expand=Contacts&$select=Name", "entry")
    assert set(properties(entry)) == {"Id", "Name"}
    inline = nav_link(entry, "Contacts").find(f"{M}inline/{A}feed")
    assert inline is not None and inline.findtext(f"{A}id") == f"{ROOT}Account('{account}')/Contacts"
    names = sorted(properties(e)["LastName"].text or "" for e in inline.findall(f"{A}entry"))
    assert names == [f"{label}-{n}" for n in range(3)]
    assert nav_link(entry, "Parent").find(f"{M}inline") is None  # not expanded: a plain link

    feed = atom(odata, f"Contact?$filter=startswith(LastName,'{label}')&$orderby=LastName&$expand=Account"
                       "&$select=LastName,Account/Name")
    inlines = [nav_link(e, "Account").find(f"{M}inline") for e in feed.findall(f"{A}entry")]
    assert all(i is not None for i in inlines) and len(inlines) == 4
    parents = [i.find(f"{A}entry") for i in inlines if i is not None]
    assert [None if p is None else properties(p)["Name"].text for p in parents] == [label] * 3 + [None]


def test_service_document(odata: Any) -> None:
    response = odata.get(f"{V2}/", headers=ATOM_ACCEPT)
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/atomsvc+xml")
    service = ET.fromstring(response.content)
    assert service.tag == f"{APP}service" and service.get(f"{XML_NS}base") == ROOT
    hrefs = [c.get("href") for c in service.findall(f"{APP}workspace/{APP}collection")]
    assert hrefs == ["Account", "Contact", "Gadget__c", "Row__c"]
    assert odata.get(f"{V2}/").json()["d"]["EntitySets"] == hrefs


def test_errors_are_xml_documents(odata: Any, odata_org: Any) -> None:
    xml_error(odata.get(f"{V2}/Account?$filter=Name eq&$format=atom"), 400, "MALFORMED_QUERY")
    xml_error(odata.get(f"{V2}/Account('001000000000000AAA')", headers=ATOM_ACCEPT), 404, "NOT_FOUND")
    xml_error(odata.get(f"{V2}/Nope", headers={"Accept": "application/xml"}), 404, "NOT_FOUND")
    response = odata.get(f"{V2}/Account?$format=xml", headers={"Authorization": ""})
    xml_error(response, 401, "INVALID_SESSION_ID")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    response = odata.post(f"{V2}/Account?$format=atom", json={"Name": "x"})
    assert "read-only" in xml_error(response, 405, "METHOD_NOT_ALLOWED")
    assert response.headers["Allow"] == "GET, HEAD"
    # JSON stays the default for errors
    assert odata.get(f"{V2}/Nope").json()["error"]["code"] == "NOT_FOUND"


def test_writes_take_json_bodies_and_answer_atom_when_asked(odata: Any) -> None:
    label = tag()
    body = (f'<entry xmlns="http://www.w3.org/2005/Atom"><content type="application/xml"><m:properties '
            f'xmlns:m="{M[1:-1]}" xmlns:d="{D[1:-1]}"><d:LastName>{label}</d:LastName></m:properties></content>'
            "</entry>")
    response = odata.post(f"{V2}/Contact", content=body.encode(),
                          headers={"Content-Type": "application/atom+xml;type=entry", **ATOM_ACCEPT})
    assert "JSON" in xml_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")
    response = odata.post(f"{V2}/Contact", content=body.encode(), headers={"Content-Type": "application/xml"})
    assert response.status_code == 415 and response.json()["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
    response = odata.post(f"{V2}/Contact", json={"LastName": label}, headers=ATOM_ACCEPT)
    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == "application/atom+xml;type=entry;charset=utf-8"
    entry = ET.fromstring(response.content)
    assert properties(entry)["LastName"].text == label
    assert response.headers["Location"] == entry.findtext(f"{A}id")
    assert odata.delete(response.headers["Location"].removeprefix("https://testserver")).status_code == 204


def test_atom_values() -> None:
    text = FieldDef(name="T__c", type=FieldType.TEXTAREA)
    assert atom_value(text, "a\x00b\x1fc\ud800d\te") == "a\ufffdb\ufffdc\ufffdd\te"
    stamp = FieldDef(name="S__c", type=FieldType.DATETIME)
    assert atom_value(stamp, "2024-01-31T09:30:00.250+0000") == "2024-01-31T09:30:00.250"
    assert atom_value(stamp, None) is None
    number = FieldDef(name="N__c", type=FieldType.DOUBLE)
    assert (atom_value(number, 1.5), atom_value(number, float("inf")), atom_value(number, 4)) == ("1.5", "INF", "4")
