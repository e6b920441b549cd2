"""The SOQL compiler and engine over a fixed sample data set, on every store backend.

One org per backend is shared by the module (see ``org``); the data set is created once through
``org.records`` and never changed by the tests (queries only). Relative date literals are evaluated against a
pinned "today", 2024-05-15 (a Wednesday; weeks start on Sunday 2024-05-12).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy import text

from interlink.errors import InterlinkError, QueryTimeout
from interlink.soql import ast
from interlink.soql import parser as soql_parser
from interlink.soql.compiler import compile_query
from interlink.soql.dates import resolve
from interlink.soql.engine import QueryEngine, QueryPage
from interlink.testing import backend_org

TODAY = date(2024, 5, 15)

WIDGET_YAML = """\
name: Widget__c
label: Widget
labelPlural: Widgets
nameField: {label: Widget Name, type: text}
fields:
  - {name: Colors__c, type: multipicklist, values: [Red, Green, Blue, Yellow]}
  - name: Size__c
    type: picklist
    values: [{value: S, label: Small}, {value: M, label: Medium}, {value: L, label: Large}]
  - {name: Qty__c, type: int, precision: 6}
  - {name: Price__c, type: currency, precision: 10, scale: 2}
  - {name: Active__c, type: checkbox}
  - {name: Due__c, type: date}
  - {name: Seen__c, type: datetime}
  - {name: Code__c, type: text, length: 40, externalId: true}
  - {name: Account__c, type: lookup, referenceTo: Account, childRelationshipName: Widgets}
"""

ACCOUNTS = [
    {"Name": "Acme Corp", "Industry": "Technology", "AnnualRevenue": 5_000_000, "NumberOfEmployees": 250,
     "Type": "Customer - Direct", "Rating": "Hot", "BillingCity": "Paris"},
    {"Name": "Bolt Industries", "Industry": "Manufacturing", "AnnualRevenue": 1_200_000, "NumberOfEmployees": 80,
     "Type": "Prospect", "Rating": "Warm", "BillingCity": "Berlin"},
    {"Name": "Cobalt Bank", "Industry": "Banking", "AnnualRevenue": 9_000_000, "NumberOfEmployees": 1200,
     "Type": "Customer - Direct", "Rating": "Hot", "BillingCity": "paris"},
    {"Name": "delta labs", "Industry": "Technology", "NumberOfEmployees": 12, "Type": "Prospect",
     "Rating": "Cold"},
    {"Name": "Echo 100% Foods", "Industry": "Food & Beverage", "AnnualRevenue": 300_000,
     "Description": "Has_underscore"},
    {"Name": "Foxtrot_Ltd", "AnnualRevenue": 0, "NumberOfEmployees": 5},
]
ALL_ACCOUNTS = ["Acme Corp", "Bolt Industries", "Cobalt Bank", "delta labs", "Echo 100% Foods", "Foxtrot_Ltd"]


@pytest.fixture(scope="module")
def org(store_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One org per backend for this module, with a Widget__c custom object."""
    root = tmp_path_factory.mktemp(f"soql-{store_backend}")
    with backend_org(root, store_backend, {"Widget__c": WIDGET_YAML}, unavailable=pytest.skip) as opened:
        yield opened


def _create(org: Any, ctx: Any, object_name: str, records: list[dict[str, Any]]) -> list[str]:
    results = org.records.create(ctx, object_name, records)
    assert all(r.success for r in results), [r.errors for r in results]
    return [r.id for r in results]


@pytest.fixture(scope="module")
def data(org: Any) -> dict[str, str]:
    """The fixed sample data set; returns ids by record name."""
    ctx = org.admin_context()
    found: dict[str, str] = {}
    account_ids = _create(org, ctx, "Account", [dict(a) for a in ACCOUNTS])
    found.update(zip(ALL_ACCOUNTS, account_ids, strict=True))
    org.records.update(ctx, "Account", [{"Id": found["Cobalt Bank"], "ParentId": found["Acme Corp"]}])
    contacts = [
        {"FirstName": "Ann", "LastName": "Archer", "AccountId": found["Acme Corp"], "Email": "ann@acme.test",
         "Birthdate": "1990-05-15", "LeadSource": "Web"},
        {"FirstName": "Bob", "LastName": "Baker", "AccountId": found["Acme Corp"], "LeadSource": "Phone Inquiry",
         "Birthdate": "1985-01-20"},
        {"FirstName": "Cara", "LastName": "Cole", "AccountId": found["Cobalt Bank"]},
        {"FirstName": "Dan", "LastName": "Diaz"},
        {"FirstName": "Eve", "LastName": "Evans", "AccountId": found["Bolt Industries"]},
    ]
    contact_ids = _create(org, ctx, "Contact", contacts)
    found.update(zip(["Ann", "Bob", "Cara", "Dan", "Eve"], contact_ids, strict=True))
    org.records.update(ctx, "Contact", [{"Id": found["Cara"], "ReportsToId": found["Ann"]}])
    opps = [
        {"Name": "Acme Big Deal", "AccountId": found["Acme Corp"], "Amount": 500000, "StageName": "Closed Won",
         "CloseDate": "2024-05-10"},
        {"Name": "Acme Renewal", "AccountId": found["Acme Corp"], "Amount": 120000, "StageName": "Prospecting",
         "CloseDate": "2024-05-15"},
        {"Name": "Bolt Expansion", "AccountId": found["Bolt Industries"], "Amount": 75000,
         "StageName": "Negotiation/Review", "CloseDate": "2024-06-20"},
        {"Name": "Cobalt Platform", "AccountId": found["Cobalt Bank"], "Amount": 900000,
         "StageName": "Closed Lost", "CloseDate": "2024-02-01"},
        {"Name": "Orphan Opp", "StageName": "Prospecting", "CloseDate": "2025-01-15"},
    ]
    found.update(zip([o["Name"] for o in opps], _create(org, ctx, "Opportunity", opps), strict=True))
    cases = [
        {"Subject": "Login broken", "AccountId": found["Acme Corp"], "ContactId": found["Ann"]},
        {"Subject": "Invoice question", "AccountId": found["Bolt Industries"]},
    ]
    found.update(zip([c["Subject"] for c in cases], _create(org, ctx, "Case", cases), strict=True))
    tasks = [
        {"Subject": "Call Acme", "WhatId": found["Acme Corp"], "WhoId": found["Ann"]},
        {"Subject": "Send quote", "WhatId": found["Acme Big Deal"]},
        {"Subject": "Follow up case", "WhatId": found["Login broken"], "WhoId": found["Bob"]},
        {"Subject": "Plan week"},
    ]
    found.update(zip([t["Subject"] for t in tasks], _create(org, ctx, "Task", tasks), strict=True))
    widgets = [
        {"Name": "W1", "Colors__c": "Red;Green", "Size__c": "S", "Qty__c": 10, "Price__c": 9.99,
         "Active__c": True, "Due__c": "2024-05-14", "Seen__c": "2024-05-15T08:00:00Z", "Code__c": "W-001",
         "Account__c": found["Acme Corp"]},
        {"Name": "W2", "Colors__c": "Blue", "Size__c": "M", "Qty__c": 20, "Price__c": 19.5, "Active__c": False,
         "Due__c": "2024-05-16", "Seen__c": "2024-05-14T23:59:59Z", "Code__c": "w-002",
         "Account__c": found["Bolt Industries"]},
        {"Name": "W3", "Colors__c": "Red;Blue;Yellow", "Size__c": "L", "Qty__c": 5, "Price__c": 100,
         "Active__c": True, "Due__c": "2024-04-30", "Seen__c": "2024-05-12T00:00:00Z",
         "Account__c": found["Acme Corp"]},
        {"Name": "W4"},
        {"Name": "W5", "Colors__c": "Green;Yellow", "Size__c": "S", "Qty__c": 15, "Due__c": "2024-05-15",
         "Seen__c": "2024-05-16T00:00:00Z"},
    ]
    found.update(zip([w["Name"] for w in widgets], _create(org, ctx, "Widget__c", widgets), strict=True))
    # In the recycle bin: an account and (by cascade) its contact.
    zed = _create(org, ctx, "Account", [{"Name": "Zed Deleted", "Industry": "Technology"}])[0]
    gus = _create(org, ctx, "Contact", [{"LastName": "Gus", "AccountId": zed}])[0]
    assert all(r.success for r in org.records.delete(ctx, [zed]))
    found.update({"Zed Deleted": zed, "Gus": gus})
    return found


@pytest.fixture(scope="module")
def engine(org: Any, data: dict[str, str]) -> QueryEngine:
    return QueryEngine(org.store, today=lambda: TODAY)


@pytest.fixture(scope="module")
def ctx(org: Any) -> Any:
    return org.admin_context()


def run(engine: QueryEngine, ctx: Any, soql: str, **kwargs: Any) -> QueryPage:
    return engine.execute(soql, ctx, **kwargs)


def strip(record: Any) -> Any:
    """A record without its ``attributes`` (recursively), for compact comparisons."""
    if isinstance(record, dict):
        return {k: strip(v) for k, v in record.items() if k != "attributes"}
    if isinstance(record, list):
        return [strip(r) for r in record]
    return record


def rows(engine: QueryEngine, ctx: Any, soql: str, **kwargs: Any) -> list[dict[str, Any]]:
    return strip(run(engine, ctx, soql, **kwargs).records)  # type: ignore[no-any-return]


def column(engine: QueryEngine, ctx: Any, soql: str, key: str = "Name", **kwargs: Any) -> list[Any]:
    return [r[key] for r in run(engine, ctx, soql, **kwargs).records]


def error(engine: QueryEngine, ctx: Any, soql: str, **kwargs: Any) -> InterlinkError:
    with pytest.raises(InterlinkError) as info:
        run(engine, ctx, soql, **kwargs)
    return info.value


# -- shape ------------------------------------------------------------------------------------------------------


def test_records_have_the_rest_shape_with_fields_in_select_order(engine: QueryEngine, ctx: Any,
                                                                 data: dict[str, str]) -> None:
    page = run(engine, ctx, "SELECT Industry, Name, Id FROM Account WHERE Name = 'Acme Corp'")
    assert page.total_size == 1 and page.done and page.next_offset is None and page.locator is None
    record = page.records[0]
    assert list(record) == ["attributes", "Industry", "Name", "Id"]
    assert record["attributes"] == {"type": "Account",
                                    "url": f"/services/data/v66.0/sobjects/Account/{data['Acme Corp']}"}
    assert record["Id"] == data["Acme Corp"] and len(record["Id"]) == 18
    assert page.to_wire() == {"totalSize": 1, "done": True, "records": [record]}


def test_the_url_has_the_id_even_when_it_is_not_selected_and_the_prefix_is_configurable(
        engine: QueryEngine, ctx: Any, data: dict[str, str]) -> None:
    page = run(engine, ctx, "SELECT Name FROM Account WHERE Name = 'Bolt Industries'",
               url_prefix="/services/data/v59.0/sobjects")
    assert page.records == [{"attributes": {"type": "Account",
                                            "url": f"/services/data/v59.0/sobjects/Account/{data['Bolt Industries']}"},
                             "Name": "Bolt Industries"}]


def test_names_are_case_insensitive_and_come_back_as_defined(engine: QueryEngine, ctx: Any) -> None:
    page = run(engine, ctx, "select id, NAME, annualrevenue, numberofemployees from ACCOUNT where name = 'acme corp'")
    record = page.records[0]
    assert record["attributes"]["type"] == "Account"
    assert list(record)[1:] == ["Id", "Name", "AnnualRevenue", "NumberOfEmployees"]
    assert record["AnnualRevenue"] == 5_000_000.0 and isinstance(record["AnnualRevenue"], float)
    assert record["NumberOfEmployees"] == 250 and isinstance(record["NumberOfEmployees"], int)


def test_values_use_the_platform_json_formats(engine: QueryEngine, ctx: Any) -> None:
    [w1] = rows(engine, ctx, "SELECT Active__c, Due__c, Seen__c, Price__c, Qty__c, Colors__c FROM Widget__c "
                              "WHERE Name = 'W1'")
    assert w1 == {"Active__c": True, "Due__c": "2024-05-14", "Seen__c": "2024-05-15T08:00:00.000+0000",
                  "Price__c": 9.99, "Qty__c": 10, "Colors__c": "Red;Green"}
    [w4] = rows(engine, ctx, "SELECT Active__c, Due__c, Seen__c, Price__c FROM Widget__c WHERE Name = 'W4'")
    assert w4 == {"Active__c": False, "Due__c": None, "Seen__c": None, "Price__c": None}


def test_object_alias_and_object_name_prefixes(engine: QueryEngine, ctx: Any) -> None:
    assert column(engine, ctx, "SELECT a.Name FROM Account a WHERE a.Industry = 'Banking'") == ["Cobalt Bank"]
    assert column(engine, ctx, "SELECT Account.Name FROM Account WHERE Account.Industry = 'Banking'") == [
        "Cobalt Bank"]


# -- errors on names ------------------------------------------------------------------------------------------


def test_unknown_object_is_invalid_type_with_the_platform_message(engine: QueryEngine, ctx: Any) -> None:
    exc = error(engine, ctx, "SELECT Id FROM Foo")
    assert exc.error_code == "INVALID_TYPE"
    assert exc.message.endswith(
        "sObject type 'Foo' is not supported. If you are attempting to use a custom object, be sure to append the "
        "'__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.")
    assert "ERROR at Row:1:Column:16" in exc.message


def test_unknown_field_is_invalid_field_with_position(engine: QueryEngine, ctx: Any) -> None:
    exc = error(engine, ctx, "SELECT Id, Foo FROM Account")
    assert exc.error_code == "INVALID_FIELD"
    assert exc.message == (
        "\nSELECT Id, Foo FROM Account\n           ^\nERROR at Row:1:Column:12\n"
        "No such column 'Foo' on entity 'Account'. If you are attempting to use a custom field, be sure to append "
        "the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate "
        "names.")


def test_unknown_field_in_where_and_on_a_parent(engine: QueryEngine, ctx: Any) -> None:
    assert "No such column 'Nope' on entity 'Account'" in error(
        engine, ctx, "SELECT Id FROM Contact WHERE Account.Nope = 1").message
    exc = error(engine, ctx, "SELECT Id FROM Contact WHERE Bogus.Name = 'x'")
    assert exc.error_code == "INVALID_FIELD"
    assert "Didn't understand relationship 'Bogus' in field path" in exc.message


def test_duplicate_fields_are_refused(engine: QueryEngine, ctx: Any) -> None:
    exc = error(engine, ctx, "SELECT Name, name FROM Account")
    assert (exc.error_code, exc.message.split("\n")[-1]) == ("INVALID_FIELD", "duplicate field selected: name")
    assert error(engine, ctx, "SELECT Id, FIELDS(STANDARD) FROM Account").error_code == "INVALID_FIELD"


def test_custom_objects_fields_and_relationships(engine: QueryEngine, ctx: Any) -> None:
    assert rows(engine, ctx, "SELECT Name, Account__r.Name FROM Widget__c WHERE Account__c != null "
                              "ORDER BY Name") == [
        {"Name": "W1", "Account__r": {"Name": "Acme Corp"}},
        {"Name": "W2", "Account__r": {"Name": "Bolt Industries"}},
        {"Name": "W3", "Account__r": {"Name": "Acme Corp"}},
    ]
    assert error(engine, ctx, "SELECT Id FROM Widget").error_code == "INVALID_TYPE"


# -- FIELDS() -----------------------------------------------------------------------------------------------------


def test_fields_standard_custom_and_all(org: Any, engine: QueryEngine, ctx: Any) -> None:
    widget = org.store.schema.object("Widget__c")
    [standard] = run(engine, ctx, "SELECT FIELDS(STANDARD) FROM Widget__c WHERE Name = 'W1'").records
    assert list(standard)[1:] == [f.name for f in widget.fields if not f.custom]
    [custom] = run(engine, ctx, "SELECT FIELDS(CUSTOM) FROM Widget__c WHERE Name = 'W1' LIMIT 10").records
    assert list(custom)[1:] == [f.name for f in widget.fields if f.custom]
    [everything] = run(engine, ctx, "SELECT FIELDS(ALL) FROM Widget__c WHERE Name = 'W1' LIMIT 200").records
    assert list(everything)[1:] == widget.field_names
    assert run(engine, ctx, "SELECT Name, FIELDS(CUSTOM) FROM Widget__c LIMIT 1").records[0]["Name"]


@pytest.mark.parametrize("soql", [
    "SELECT FIELDS(ALL) FROM Account",
    "SELECT FIELDS(CUSTOM) FROM Widget__c",
    "SELECT FIELDS(ALL) FROM Account LIMIT 201",
])
def test_unbounded_fields_need_a_limit_of_at_most_200(engine: QueryEngine, ctx: Any, soql: str) -> None:
    exc = error(engine, ctx, soql)
    assert exc.error_code == "MALFORMED_QUERY"
    assert "The SOQL FIELDS function must have a LIMIT of at most 200" in exc.message


# -- parent relationships --------------------------------------------------------------------------------------


def test_parent_paths_nest_records_and_empty_lookups_are_null(engine: QueryEngine, ctx: Any,
                                                              data: dict[str, str]) -> None:
    page = run(engine, ctx, "SELECT Name, Account.Name, Account.Parent.Name, Id, Account.Industry FROM Contact "
                            "ORDER BY LastName")
    first = page.records[0]
    assert list(first) == ["attributes", "Name", "Account", "Id"]
    assert first["Account"] == {
        "attributes": {"type": "Account", "url": f"/services/data/v66.0/sobjects/Account/{data['Acme Corp']}"},
        "Name": "Acme Corp", "Parent": None, "Industry": "Technology"}
    assert strip(page.records) == [
        {"Name": "Ann Archer", "Account": {"Name": "Acme Corp", "Parent": None, "Industry": "Technology"},
         "Id": data["Ann"]},
        {"Name": "Bob Baker", "Account": {"Name": "Acme Corp", "Parent": None, "Industry": "Technology"},
         "Id": data["Bob"]},
        {"Name": "Cara Cole", "Account": {"Name": "Cobalt Bank", "Parent": {"Name": "Acme Corp"},
                                          "Industry": "Banking"}, "Id": data["Cara"]},
        {"Name": "Dan Diaz", "Account": None, "Id": data["Dan"]},
        {"Name": "Eve Evans", "Account": {"Name": "Bolt Industries", "Parent": None, "Industry": "Manufacturing"},
         "Id": data["Eve"]},
    ]


def test_five_levels_of_parents_are_allowed_and_six_are_not(engine: QueryEngine, ctx: Any) -> None:
    [cara] = rows(engine, ctx, "SELECT Account.Parent.Owner.Manager.Manager.Name FROM Contact "
                               "WHERE LastName = 'Cole'")
    assert cara == {"Account": {"Parent": {"Owner": {"Manager": None}}}}
    exc = error(engine, ctx, "SELECT Account.Parent.Parent.Parent.Parent.Parent.Name FROM Contact")
    assert exc.error_code == "MALFORMED_QUERY"


def test_owner_and_self_lookups(engine: QueryEngine, ctx: Any) -> None:
    [cara] = rows(engine, ctx, "SELECT ReportsTo.Name, Owner.Name, CreatedBy.Name FROM Contact "
                               "WHERE LastName = 'Cole'")
    assert cara == {"ReportsTo": {"Name": "Ann Archer"}, "Owner": {"Name": "Org Admin"},
                    "CreatedBy": {"Name": "Org Admin"}}


def test_polymorphic_relationships_take_the_type_from_the_id(engine: QueryEngine, ctx: Any,
                                                            data: dict[str, str]) -> None:
    page = run(engine, ctx, "SELECT Subject, What.Name, What.Type, Who.Name, What.Id FROM Task ORDER BY Subject")
    by_subject = {r["Subject"]: r for r in page.records}
    call = by_subject["Call Acme"]
    assert call["What"] == {"attributes": {"type": "Account",
                                           "url": f"/services/data/v66.0/sobjects/Account/{data['Acme Corp']}"},
                            "Name": "Acme Corp", "Type": "Account", "Id": data["Acme Corp"]}
    assert call["Who"]["attributes"]["type"] == "Contact" and call["Who"]["Name"] == "Ann Archer"
    assert strip(by_subject["Send quote"]["What"]) == {"Name": "Acme Big Deal", "Type": "Opportunity",
                                                       "Id": data["Acme Big Deal"]}
    # Case's name field is CaseNumber: What.Name is the target's name field.
    assert by_subject["Follow up case"]["What"]["attributes"]["type"] == "Case"
    assert by_subject["Plan week"]["What"] is None and by_subject["Plan week"]["Who"] is None
    assert column(engine, ctx, "SELECT Subject FROM Task WHERE What.Type = 'Opportunity'", "Subject") == [
        "Send quote"]
    assert column(engine, ctx, "SELECT Subject FROM Task WHERE What.Name LIKE 'acme%' ORDER BY Subject",
                  "Subject") == ["Call Acme", "Send quote"]


def test_typeof_selects_fields_per_type(engine: QueryEngine, ctx: Any) -> None:
    page = run(engine, ctx, "SELECT Subject, TYPEOF What WHEN Account THEN Name, Industry "
                            "WHEN Opportunity THEN Amount, StageName ELSE Id END FROM Task ORDER BY Subject")
    by_subject = {r["Subject"]: strip(r) for r in page.records}
    assert by_subject["Call Acme"]["What"] == {"Name": "Acme Corp", "Industry": "Technology"}
    assert by_subject["Send quote"]["What"] == {"Amount": 500000.0, "StageName": "Closed Won"}
    assert set(by_subject["Follow up case"]["What"]) == {"Id"}
    assert by_subject["Plan week"]["What"] is None


# -- child relationships ---------------------------------------------------------------------------------------


def test_child_subqueries_nest_blocks_and_empty_ones_are_null(engine: QueryEngine, ctx: Any) -> None:
    page = run(engine, ctx, "SELECT Name, (SELECT LastName, Account.Name FROM Contacts ORDER BY LastName DESC) "
                            "FROM Account WHERE Name IN ('Acme Corp', 'delta labs') ORDER BY Name")
    acme, delta = page.records
    assert acme["Contacts"]["totalSize"] == 2 and acme["Contacts"]["done"] is True
    assert acme["Contacts"]["records"][0]["attributes"]["type"] == "Contact"
    assert strip(acme["Contacts"]) == {"totalSize": 2, "done": True, "records": [
        {"LastName": "Baker", "Account": {"Name": "Acme Corp"}},
        {"LastName": "Archer", "Account": {"Name": "Acme Corp"}}]}
    assert delta["Contacts"] is None


def test_child_subqueries_filter_and_limit_per_parent(engine: QueryEngine, ctx: Any) -> None:
    records = rows(engine, ctx, "SELECT Name, (SELECT Name FROM Opportunities WHERE Amount > 100000 "
                                "ORDER BY Amount DESC LIMIT 1), (SELECT Subject FROM Cases) FROM Account "
                                "WHERE Name IN ('Acme Corp', 'Bolt Industries', 'Cobalt Bank') ORDER BY Name")
    assert records == [
        {"Name": "Acme Corp", "Opportunities": {"totalSize": 1, "done": True, "records": [{"Name": "Acme Big Deal"}]},
         "Cases": {"totalSize": 1, "done": True, "records": [{"Subject": "Login broken"}]}},
        {"Name": "Bolt Industries", "Opportunities": None,
         "Cases": {"totalSize": 1, "done": True, "records": [{"Subject": "Invoice question"}]}},
        {"Name": "Cobalt Bank",
         "Opportunities": {"totalSize": 1, "done": True, "records": [{"Name": "Cobalt Platform"}]},
         "Cases": None},
    ]


def test_custom_and_polymorphic_child_relationships(engine: QueryEngine, ctx: Any) -> None:
    [acme] = rows(engine, ctx, "SELECT (SELECT Name FROM Widgets__r ORDER BY Name), "
                               "(SELECT Subject FROM Tasks) FROM Account WHERE Name = 'Acme Corp'")
    assert acme["Widgets__r"]["records"] == [{"Name": "W1"}, {"Name": "W3"}]
    assert acme["Tasks"]["records"] == [{"Subject": "Call Acme"}]


def test_unknown_child_relationship_is_invalid_type(engine: QueryEngine, ctx: Any) -> None:
    exc = error(engine, ctx, "SELECT Name, (SELECT Id FROM Contact) FROM Account")
    assert exc.error_code == "INVALID_TYPE"
    assert "Didn't understand relationship 'Contact' in FROM part of query call" in exc.message


# -- WHERE ------------------------------------------------------------------------------------------------------

WHERE_CASES = [
    # text: = and IN are case-insensitive
    ("Name = 'ACME CORP'", ["Acme Corp"]),
    ("BillingCity = 'Paris'", ["Acme Corp", "Cobalt Bank"]),
    ("BillingCity IN ('PARIS', 'nowhere')", ["Acme Corp", "Cobalt Bank"]),
    ("Name IN ('bolt industries', 'Delta Labs')", ["Bolt Industries", "delta labs"]),
    # != and NOT IN include nulls
    ("Industry != 'Technology'", ["Bolt Industries", "Cobalt Bank", "Echo 100% Foods", "Foxtrot_Ltd"]),
    ("Industry NOT IN ('Technology', 'Banking')", ["Bolt Industries", "Echo 100% Foods", "Foxtrot_Ltd"]),
    ("Industry = null", ["Foxtrot_Ltd"]),
    ("Industry != null", ["Acme Corp", "Bolt Industries", "Cobalt Bank", "delta labs", "Echo 100% Foods"]),
    ("Industry IN ('Banking', null)", ["Cobalt Bank", "Foxtrot_Ltd"]),
    ("Rating = ''", ["Echo 100% Foods", "Foxtrot_Ltd"]),
    # numbers
    ("NumberOfEmployees > 80", ["Acme Corp", "Cobalt Bank"]),
    ("NumberOfEmployees >= 80", ["Acme Corp", "Bolt Industries", "Cobalt Bank"]),
    ("NumberOfEmployees < 80", ["delta labs", "Foxtrot_Ltd"]),
    ("NumberOfEmployees <= 12", ["delta labs", "Foxtrot_Ltd"]),
    ("NumberOfEmployees IN (5, 250)", ["Acme Corp", "Foxtrot_Ltd"]),
    ("AnnualRevenue = 0", ["Foxtrot_Ltd"]),
    ("AnnualRevenue >= 1200000.0", ["Acme Corp", "Bolt Industries", "Cobalt Bank"]),
    ("AnnualRevenue < 1e6", ["Echo 100% Foods", "Foxtrot_Ltd"]),
    # text ranges are case-insensitive
    ("Name > 'c'", ["Cobalt Bank", "delta labs", "Echo 100% Foods", "Foxtrot_Ltd"]),
    ("Name < 'D'", ["Acme Corp", "Bolt Industries", "Cobalt Bank"]),
    # LIKE: case-insensitive, % and _ wildcards, \% and \_ literal
    ("Name LIKE 'acme%'", ["Acme Corp"]),
    ("Name LIKE '%LABS'", ["delta labs"]),
    ("Name LIKE '_olt%'", ["Bolt Industries"]),
    ("Name LIKE '%100\\%%'", ["Echo 100% Foods"]),
    ("Name LIKE '%\\_%'", ["Foxtrot_Ltd"]),
    ("Name LIKE '%t_L%'", ["Foxtrot_Ltd"]),
    ("NOT Name LIKE 'a%'", ["Bolt Industries", "Cobalt Bank", "delta labs", "Echo 100% Foods", "Foxtrot_Ltd"]),
    # boolean logic and parentheses
    ("Industry = 'Technology' AND NumberOfEmployees > 100", ["Acme Corp"]),
    ("Industry = 'Banking' OR Rating = 'Cold'", ["Cobalt Bank", "delta labs"]),
    ("(Industry = 'Technology' OR Industry = 'Banking') AND Rating = 'Hot'", ["Acme Corp", "Cobalt Bank"]),
    ("NOT (Industry = 'Technology')", ["Bolt Industries", "Cobalt Bank", "Echo 100% Foods", "Foxtrot_Ltd"]),
    ("NOT (NumberOfEmployees > 80)", ["Bolt Industries", "delta labs", "Echo 100% Foods", "Foxtrot_Ltd"]),
    ("NOT (Industry != 'Technology')", ["Acme Corp", "delta labs"]),
    ("NOT (Industry IN ('Technology') OR Rating = 'Hot')", ["Bolt Industries", "Echo 100% Foods", "Foxtrot_Ltd"]),
    # picklists compare case-insensitively too
    ("Type = 'prospect'", ["Bolt Industries", "delta labs"]),
    # parent fields
    ("Parent.Name = 'Acme Corp'", ["Cobalt Bank"]),
    ("Parent.Name = null", ["Acme Corp", "Bolt Industries", "delta labs", "Echo 100% Foods", "Foxtrot_Ltd"]),
    ("Owner.Name = 'Org Admin' AND Industry = 'Banking'", ["Cobalt Bank"]),
    # semi-joins and anti-joins
    ("Id IN (SELECT AccountId FROM Contact)", ["Acme Corp", "Bolt Industries", "Cobalt Bank"]),
    ("Id NOT IN (SELECT AccountId FROM Contact)", ["delta labs", "Echo 100% Foods", "Foxtrot_Ltd"]),
    ("Id IN (SELECT AccountId FROM Opportunity WHERE StageName = 'Closed Won')", ["Acme Corp"]),
    ("Id IN (SELECT ParentId FROM Account)", ["Acme Corp"]),
    ("Id IN (SELECT WhatId FROM Task) AND Id IN (SELECT AccountId FROM Case)", ["Acme Corp"]),
]


@pytest.mark.parametrize(("where", "expected"), WHERE_CASES, ids=[c[0] for c in WHERE_CASES])
def test_where_on_accounts(engine: QueryEngine, ctx: Any, where: str, expected: list[str]) -> None:
    assert sorted(column(engine, ctx, f"SELECT Name FROM Account WHERE {where}"), key=str.lower) == expected


WIDGET_CASES = [
    ("Active__c = true", ["W1", "W3"]),
    ("Active__c = false", ["W2", "W4", "W5"]),
    ("Active__c != true", ["W2", "W4", "W5"]),
    ("NOT (Active__c = false)", ["W1", "W3"]),
    ("Colors__c INCLUDES ('Red')", ["W1", "W3"]),
    ("Colors__c INCLUDES ('red;yellow')", ["W3"]),
    ("Colors__c INCLUDES ('Green', 'Blue')", ["W1", "W2", "W3", "W5"]),
    ("Colors__c EXCLUDES ('Red')", ["W2", "W4", "W5"]),
    ("Colors__c EXCLUDES ('Red;Blue', 'Green')", ["W2", "W4"]),
    ("Colors__c = 'Green;Red'", ["W1"]),
    ("Colors__c = 'Green'", []),
    ("Colors__c != 'Blue'", ["W1", "W3", "W4", "W5"]),
    ("Colors__c = null", ["W4"]),
    ("Code__c = 'W-002'", ["W2"]),
    ("Price__c > 10", ["W2", "W3"]),
    ("Qty__c IN (5, 20)", ["W2", "W3"]),
    # dates and datetimes (with offsets)
    ("Due__c = 2024-05-14", ["W1"]),
    ("Due__c >= 2024-05-15", ["W2", "W5"]),
    ("Seen__c > 2024-05-15T00:00:00Z", ["W1", "W5"]),
    ("Seen__c < 2024-05-15T02:00:00+02:00", ["W2", "W3"]),
    ("Seen__c = 2024-05-15T10:00:00+02:00", ["W1"]),
    # relative date literals on a date field (today is 2024-05-15)
    ("Due__c = TODAY", ["W5"]),
    ("Due__c = YESTERDAY", ["W1"]),
    ("Due__c = TOMORROW", ["W2"]),
    ("Due__c = LAST_MONTH", ["W3"]),
    ("Due__c = THIS_WEEK", ["W1", "W2", "W5"]),
    ("Due__c < THIS_WEEK", ["W3"]),
    ("Due__c > TODAY", ["W2"]),
    ("Due__c >= TODAY", ["W2", "W5"]),
    ("Due__c <= TODAY", ["W1", "W3", "W5"]),
    ("Due__c != TODAY", ["W1", "W2", "W3", "W4"]),
    ("Due__c = LAST_N_DAYS:1", ["W1", "W5"]),
    ("Due__c = NEXT_N_DAYS:1", ["W2"]),
    ("Due__c = N_DAYS_AGO:15", ["W3"]),
    ("Due__c IN (YESTERDAY, TOMORROW)", ["W1", "W2"]),
    # ... and on a datetime field (UTC days)
    ("Seen__c = TODAY", ["W1"]),
    ("Seen__c = YESTERDAY", ["W2"]),
    ("Seen__c > TODAY", ["W5"]),
    ("Seen__c = THIS_WEEK", ["W1", "W2", "W3", "W5"]),
    ("Seen__c = LAST_WEEK", []),
    ("Seen__c < YESTERDAY", ["W3"]),
    # toLabel compares labels
    ("toLabel(Size__c) = 'Medium'", ["W2"]),
    ("toLabel(Size__c) IN ('small', 'Large')", ["W1", "W3", "W5"]),
    # date functions in WHERE
    ("CALENDAR_MONTH(Due__c) = 4", ["W3"]),
    ("DAY_IN_MONTH(Due__c) >= 14", ["W1", "W2", "W3", "W5"]),
    ("DAY_ONLY(Seen__c) = 2024-05-14", ["W2"]),
    ("HOUR_IN_DAY(Seen__c) = 8", ["W1"]),
    ("Account__r.Industry = 'Manufacturing'", ["W2"]),
]


@pytest.mark.parametrize(("where", "expected"), WIDGET_CASES, ids=[c[0] for c in WIDGET_CASES])
def test_where_on_widgets(engine: QueryEngine, ctx: Any, where: str, expected: list[str]) -> None:
    assert sorted(column(engine, ctx, f"SELECT Name FROM Widget__c WHERE {where}")) == expected


OPPORTUNITY_DATES = [
    ("THIS_QUARTER", ["Acme Big Deal", "Acme Renewal", "Bolt Expansion"]),
    ("LAST_QUARTER", ["Cobalt Platform"]),
    ("NEXT_QUARTER", []),
    ("NEXT_YEAR", ["Orphan Opp"]),
    ("THIS_YEAR", ["Acme Big Deal", "Acme Renewal", "Bolt Expansion", "Cobalt Platform"]),
    ("THIS_FISCAL_YEAR", ["Acme Big Deal", "Acme Renewal", "Bolt Expansion", "Cobalt Platform"]),
    ("THIS_FISCAL_QUARTER", ["Acme Big Deal", "Acme Renewal", "Bolt Expansion"]),
    ("NEXT_MONTH", ["Bolt Expansion"]),
    ("THIS_MONTH", ["Acme Big Deal", "Acme Renewal"]),
    ("LAST_WEEK", ["Acme Big Deal"]),
    ("LAST_N_MONTHS:4", ["Cobalt Platform"]),
    ("N_QUARTERS_AGO:1", ["Cobalt Platform"]),
    ("NEXT_N_QUARTERS:3", ["Orphan Opp"]),
    ("LAST_90_DAYS", ["Acme Big Deal", "Acme Renewal"]),
    ("NEXT_90_DAYS", ["Bolt Expansion"]),
    ("LAST_N_WEEKS:1", ["Acme Big Deal"]),
    ("NEXT_N_YEARS:1", ["Orphan Opp"]),
    ("N_YEARS_AGO:0", ["Acme Big Deal", "Acme Renewal", "Bolt Expansion", "Cobalt Platform"]),
]


@pytest.mark.parametrize(("literal", "expected"), OPPORTUNITY_DATES, ids=[c[0] for c in OPPORTUNITY_DATES])
def test_date_literals_on_close_dates(engine: QueryEngine, ctx: Any, literal: str, expected: list[str]) -> None:
    assert sorted(column(engine, ctx, f"SELECT Name FROM Opportunity WHERE CloseDate = {literal}")) == expected


def test_date_literals_follow_the_clock_of_the_cached_plan(org: Any, ctx: Any, data: dict[str, str]) -> None:
    clock = {"today": TODAY}
    engine = QueryEngine(org.store, today=lambda: clock["today"])
    soql = "SELECT Name FROM Widget__c WHERE Due__c = TODAY"
    assert column(engine, ctx, soql) == ["W5"]
    clock["today"] = date(2024, 5, 16)
    assert column(engine, ctx, soql) == ["W2"]
    assert engine.misses == 1 and engine.hits == 1


def test_ids_are_normalized_and_case_safe(engine: QueryEngine, ctx: Any, data: dict[str, str]) -> None:
    acme = data["Acme Corp"]
    assert column(engine, ctx, f"SELECT Name FROM Account WHERE Id = '{acme[:15]}'") == ["Acme Corp"]
    assert column(engine, ctx, f"SELECT Name FROM Account WHERE Id = '{acme.lower()}'") == ["Acme Corp"]
    assert column(engine, ctx, f"SELECT LastName FROM Contact WHERE AccountId IN ('{acme[:15]}') "
                               "ORDER BY LastName", "LastName") == ["Archer", "Baker"]
    exc = error(engine, ctx, "SELECT Id FROM Account WHERE Id = 'nope'")
    assert (exc.error_code, exc.message.split("\n")[-1]) == ("INVALID_QUERY_FILTER_OPERATOR",
                                                              "invalid ID field: nope")


@pytest.mark.parametrize(("soql", "code", "message"), [
    ("SELECT Id FROM Account WHERE NumberOfEmployees = '5'", "INVALID_FIELD",
     "value of filter criterion for field 'NumberOfEmployees' must be of type integer and should not be enclosed "
     "in quotes"),
    ("SELECT Id FROM Account WHERE Name = 5", "INVALID_FIELD",
     "value of filter criterion for field 'Name' must be of type string and should be enclosed in quotes"),
    ("SELECT Id FROM Account WHERE CreatedDate > 2024-01-01", "INVALID_FIELD",
     "value of filter criterion for field 'CreatedDate' must be of type dateTime and should not be enclosed in "
     "quotes"),
    ("SELECT Id FROM Opportunity WHERE CloseDate > 2024-01-01T00:00:00Z", "INVALID_FIELD",
     "value of filter criterion for field 'CloseDate' must be of type date and should not be enclosed in quotes"),
    ("SELECT Id FROM Widget__c WHERE Active__c = 'true'", "INVALID_FIELD",
     "value of filter criterion for field 'Active__c' must be of type boolean and should not be enclosed in "
     "quotes"),
    ("SELECT Id FROM Account WHERE Name = TODAY", "INVALID_FIELD",
     "value of filter criterion for field 'Name' must be of type string and should be enclosed in quotes"),
    ("SELECT Id FROM Account WHERE NumberOfEmployees LIKE '5%'", "INVALID_QUERY_FILTER_OPERATOR",
     "invalid operator on int field: LIKE"),
    ("SELECT Id FROM Account WHERE Name INCLUDES ('a')", "INVALID_QUERY_FILTER_OPERATOR",
     "INCLUDES or EXCLUDES operator only valid on multipicklist field"),
    ("SELECT Id FROM Widget__c WHERE Colors__c LIKE 'R%'", "INVALID_QUERY_FILTER_OPERATOR",
     "invalid operator on multipicklist field: LIKE"),
    ("SELECT Id FROM Account WHERE Description = 'x'", "INVALID_FIELD",
     "field 'Description' can not be filtered in a query call"),
    ("SELECT Id FROM Account WHERE Name IN (SELECT Id FROM Contact)", "MALFORMED_QUERY",
     "The field Name can't be used in a semi-join or anti-join: it must be an Id or a reference field"),
    ("SELECT Id FROM Account WHERE Id IN (SELECT Name FROM Contact)", "MALFORMED_QUERY",
     "The selected field 'Name' in a semi-join or anti-join subquery must be an Id or a reference field"),
    ("SELECT Id FROM Account WHERE COUNT(Id) > 1", "MALFORMED_QUERY",
     "Aggregate functions are only allowed in HAVING, not in WHERE: COUNT"),
    ("SELECT Id FROM Account WHERE Name = :name", "MALFORMED_QUERY",
     "Bind variables only allowed in Apex code: :name"),
    ("SELECT Id FROM Account LIMIT :n", "MALFORMED_QUERY", "Bind variables only allowed in Apex code"),
])
def test_filter_errors(engine: QueryEngine, ctx: Any, soql: str, code: str, message: str) -> None:
    exc = error(engine, ctx, soql)
    assert (exc.error_code, exc.message.split("\n")[-1]) == (code, message)


# -- ORDER BY, LIMIT, OFFSET -------------------------------------------------------------------------------------

ORDER_CASES = [
    ("Name", ALL_ACCOUNTS),
    ("Name DESC", list(reversed(ALL_ACCOUNTS))),
    ("AnnualRevenue", ["delta labs", "Foxtrot_Ltd", "Echo 100% Foods", "Bolt Industries", "Acme Corp",
                       "Cobalt Bank"]),
    ("AnnualRevenue NULLS LAST", ["Foxtrot_Ltd", "Echo 100% Foods", "Bolt Industries", "Acme Corp", "Cobalt Bank",
                                  "delta labs"]),
    ("AnnualRevenue DESC", ["Cobalt Bank", "Acme Corp", "Bolt Industries", "Echo 100% Foods", "Foxtrot_Ltd",
                            "delta labs"]),
    ("AnnualRevenue DESC NULLS FIRST", ["delta labs", "Cobalt Bank", "Acme Corp", "Bolt Industries",
                                        "Echo 100% Foods", "Foxtrot_Ltd"]),
    ("Industry, Name DESC", ["Foxtrot_Ltd", "Cobalt Bank", "Echo 100% Foods", "Bolt Industries", "delta labs",
                             "Acme Corp"]),
    # picklists sort in their defined order: Hot, Warm, Cold
    ("Rating NULLS LAST, Name", ["Acme Corp", "Cobalt Bank", "Bolt Industries", "delta labs", "Echo 100% Foods",
                                 "Foxtrot_Ltd"]),
    ("Parent.Name NULLS LAST, Name", ["Cobalt Bank", "Acme Corp", "Bolt Industries", "delta labs",
                                      "Echo 100% Foods", "Foxtrot_Ltd"]),
]


@pytest.mark.parametrize(("order", "expected"), ORDER_CASES, ids=[c[0] for c in ORDER_CASES])
def test_order_by(engine: QueryEngine, ctx: Any, order: str, expected: list[str]) -> None:
    assert column(engine, ctx, f"SELECT Name FROM Account ORDER BY {order}") == expected


def test_limit_and_offset(engine: QueryEngine, ctx: Any) -> None:
    page = run(engine, ctx, "SELECT Name FROM Account ORDER BY Name LIMIT 2 OFFSET 1")
    assert [r["Name"] for r in page.records] == ["Bolt Industries", "Cobalt Bank"]
    assert page.total_size == 2 and page.done
    assert column(engine, ctx, "SELECT Name FROM Account ORDER BY Name OFFSET 4") == ALL_ACCOUNTS[4:]
    assert run(engine, ctx, "SELECT Name FROM Account LIMIT 0").records == []
    assert run(engine, ctx, "SELECT Name FROM Account ORDER BY Name OFFSET 10").total_size == 0


def test_offset_over_2000_is_refused(engine: QueryEngine, ctx: Any) -> None:
    exc = error(engine, ctx, "SELECT Name FROM Account OFFSET 2001")
    assert (exc.error_code, exc.message) == ("NUMBER_OUTSIDE_VALID_RANGE", "Maximum SOQL offset allowed is 2000")
    assert run(engine, ctx, "SELECT Name FROM Account OFFSET 2000").records == []


def test_unsortable_fields_are_refused(engine: QueryEngine, ctx: Any) -> None:
    assert error(engine, ctx, "SELECT Id FROM Account ORDER BY Description").error_code == "INVALID_FIELD"
    assert error(engine, ctx, "SELECT Id FROM Widget__c ORDER BY Colors__c").error_code == "INVALID_FIELD"


# -- aggregates ----------------------------------------------------------------------------------------------------


def test_count_returns_only_a_total(engine: QueryEngine, ctx: Any) -> None:
    page = run(engine, ctx, "SELECT COUNT() FROM Account")
    assert page.to_wire() == {"totalSize": 6, "done": True, "records": []}
    assert run(engine, ctx, "SELECT COUNT() FROM Account WHERE Industry = 'Technology'").total_size == 2
    assert run(engine, ctx, "SELECT COUNT() FROM Account LIMIT 4").total_size == 4
    assert run(engine, ctx, "SELECT COUNT() FROM Contact GROUP BY AccountId").total_size == 4
    assert error(engine, ctx, "SELECT COUNT(), Name FROM Account").error_code == "MALFORMED_QUERY"


def test_grouped_aggregates_with_expr_names_and_aliases(engine: QueryEngine, ctx: Any) -> None:
    page = run(engine, ctx, "SELECT Industry, COUNT(Id), SUM(AnnualRevenue) total, MAX(NumberOfEmployees), "
                            "AVG(AnnualRevenue) FROM Account WHERE Industry != null GROUP BY Industry "
                            "ORDER BY Industry")
    assert page.records[0] == {"attributes": {"type": "AggregateResult"}, "Industry": "Banking", "expr0": 1,
                               "total": 9_000_000.0, "expr1": 1200, "expr2": 9_000_000.0}
    assert strip(page.records) == [
        {"Industry": "Banking", "expr0": 1, "total": 9_000_000.0, "expr1": 1200, "expr2": 9_000_000.0},
        {"Industry": "Food & Beverage", "expr0": 1, "total": 300_000.0, "expr1": None, "expr2": 300_000.0},
        {"Industry": "Manufacturing", "expr0": 1, "total": 1_200_000.0, "expr1": 80, "expr2": 1_200_000.0},
        {"Industry": "Technology", "expr0": 2, "total": 5_000_000.0, "expr1": 250, "expr2": 5_000_000.0},
    ]
    assert page.total_size == 4 and page.done


def test_aggregates_without_group_by(engine: QueryEngine, ctx: Any) -> None:
    assert rows(engine, ctx, "SELECT COUNT(Id), COUNT(Industry), COUNT_DISTINCT(Industry), MIN(Name), "
                             "MAX(CreatedDate) latest, SUM(NumberOfEmployees) FROM Account")[0] | {"latest": 1} == {
        "expr0": 6, "expr1": 5, "expr2": 4, "expr3": "Acme Corp", "latest": 1, "expr4": 1547}
    [row] = rows(engine, ctx, "SELECT MIN(CloseDate), MAX(CloseDate), SUM(Amount) FROM Opportunity")
    assert row == {"expr0": "2024-02-01", "expr1": "2025-01-15", "expr2": 1_595_000.0}
    [empty] = rows(engine, ctx, "SELECT COUNT(Id), SUM(Amount) FROM Opportunity WHERE Name = 'none'")
    assert empty == {"expr0": 0, "expr1": None}


def test_having_and_ordering_by_an_aggregate(engine: QueryEngine, ctx: Any) -> None:
    assert rows(engine, ctx, "SELECT AccountId, COUNT(Id) c FROM Contact GROUP BY AccountId "
                             "HAVING COUNT(Id) > 1") == [{"AccountId": rows(
                                 engine, ctx, "SELECT Id FROM Account WHERE Name = 'Acme Corp'")[0]["Id"], "c": 2}]
    assert rows(engine, ctx, "SELECT StageName, SUM(Amount) s FROM Opportunity GROUP BY StageName "
                             "HAVING SUM(Amount) > 100000 ORDER BY SUM(Amount) DESC") == [
        {"StageName": "Closed Lost", "s": 900000.0}, {"StageName": "Closed Won", "s": 500000.0},
        {"StageName": "Prospecting", "s": 120000.0}]
    assert column(engine, ctx, "SELECT Industry FROM Account GROUP BY Industry HAVING Industry LIKE 'T%'",
                  "Industry") == ["Technology"]


def test_group_by_a_parent_field_keeps_the_field_name(engine: QueryEngine, ctx: Any) -> None:
    assert rows(engine, ctx, "SELECT Account.Name, COUNT(Id) FROM Contact GROUP BY Account.Name "
                             "ORDER BY Account.Name NULLS LAST") == [
        {"Name": "Acme Corp", "expr0": 2}, {"Name": "Bolt Industries", "expr0": 1},
        {"Name": "Cobalt Bank", "expr0": 1}, {"Name": None, "expr0": 1}]


def test_group_by_rollup_and_grouping(engine: QueryEngine, ctx: Any) -> None:
    assert rows(engine, ctx, "SELECT Rating, COUNT(Id) cnt FROM Account WHERE Rating != null "
                             "GROUP BY ROLLUP(Rating)") == [
        {"Rating": "Hot", "cnt": 2}, {"Rating": "Warm", "cnt": 1}, {"Rating": "Cold", "cnt": 1},
        {"Rating": None, "cnt": 4}]
    records = rows(engine, ctx, "SELECT Type, Rating, COUNT(Id), GROUPING(Rating) g FROM Account "
                                "WHERE Type != null GROUP BY ROLLUP(Type, Rating)")
    assert records == [
        {"Type": "Prospect", "Rating": "Warm", "expr0": 1, "g": 0},
        {"Type": "Prospect", "Rating": "Cold", "expr0": 1, "g": 0},
        {"Type": "Prospect", "Rating": None, "expr0": 2, "g": 1},
        {"Type": "Customer - Direct", "Rating": "Hot", "expr0": 2, "g": 0},
        {"Type": "Customer - Direct", "Rating": None, "expr0": 2, "g": 1},
        {"Type": None, "Rating": None, "expr0": 4, "g": 1},
    ]
    cube = rows(engine, ctx, "SELECT Type, Rating, COUNT(Id) FROM Account WHERE Type != null "
                             "GROUP BY CUBE(Type, Rating)")
    assert len(cube) == 3 + 2 + 3 + 1 and cube[-1] == {"Type": None, "Rating": None, "expr0": 4}
    assert rows(engine, ctx, "SELECT Type, COUNT(Id) FROM Account GROUP BY ROLLUP(Type) "
                             "HAVING Type != 'Prospect' AND COUNT(Id) > 1") == [
        {"Type": None, "expr0": 2}, {"Type": "Customer - Direct", "expr0": 2}, {"Type": None, "expr0": 6}]
    paged = run(engine, ctx, "SELECT Rating, COUNT(Id) FROM Account GROUP BY ROLLUP(Rating) "
                             "ORDER BY COUNT(Id) DESC", batch_size=2)
    assert (paged.total_size, len(paged.records), paged.done) == (5, 2, False)
    assert strip(paged.records) == [{"Rating": None, "expr0": 6}, {"Rating": None, "expr0": 2}]


def test_date_functions_group_and_select(engine: QueryEngine, ctx: Any) -> None:
    assert rows(engine, ctx, "SELECT CALENDAR_YEAR(CloseDate), CALENDAR_QUARTER(CloseDate) q, COUNT(Id) "
                             "FROM Opportunity GROUP BY CALENDAR_YEAR(CloseDate), CALENDAR_QUARTER(CloseDate) "
                             "ORDER BY CALENDAR_YEAR(CloseDate), CALENDAR_QUARTER(CloseDate)") == [
        {"expr0": 2024, "q": 1, "expr1": 1}, {"expr0": 2024, "q": 2, "expr1": 3}, {"expr0": 2025, "q": 1, "expr1": 1}]
    assert rows(engine, ctx, "SELECT DAY_ONLY(Seen__c) d, COUNT(Id) FROM Widget__c WHERE Seen__c != null "
                             "GROUP BY DAY_ONLY(Seen__c) ORDER BY DAY_ONLY(Seen__c) DESC") == [
        {"d": "2024-05-16", "expr0": 1}, {"d": "2024-05-15", "expr0": 1}, {"d": "2024-05-14", "expr0": 1},
        {"d": "2024-05-12", "expr0": 1}]
    [row] = rows(engine, ctx, "SELECT CALENDAR_MONTH(Due__c) m, DAY_IN_MONTH(Due__c) d, DAY_IN_WEEK(Due__c) w, "
                              "DAY_IN_YEAR(Due__c) y, WEEK_IN_MONTH(Due__c) wm, WEEK_IN_YEAR(Due__c) wy, "
                              "FISCAL_YEAR(Due__c) fy, HOUR_IN_DAY(Seen__c) h FROM Widget__c WHERE Name = 'W1' "
                              "GROUP BY CALENDAR_MONTH(Due__c), DAY_IN_MONTH(Due__c), DAY_IN_WEEK(Due__c), "
                              "DAY_IN_YEAR(Due__c), WEEK_IN_MONTH(Due__c), WEEK_IN_YEAR(Due__c), "
                              "FISCAL_YEAR(Due__c), HOUR_IN_DAY(Seen__c)")
    # 2024-05-14 is a Tuesday (3 with Sunday = 1), day 135 of the year.
    assert row == {"m": 5, "d": 14, "w": 3, "y": 135, "wm": 2, "wy": 20, "fy": 2024, "h": 8}


@pytest.mark.parametrize(("soql", "code", "message"), [
    ("SELECT Name, COUNT(Id) FROM Account", "MALFORMED_QUERY", "Field must be grouped or aggregated: Name"),
    ("SELECT Name, COUNT(Id) FROM Account GROUP BY Industry", "MALFORMED_QUERY",
     "Field must be grouped or aggregated: Name"),
    ("SELECT CALENDAR_YEAR(CreatedDate) FROM Account", "MALFORMED_QUERY",
     "Field must be grouped or aggregated: CALENDAR_YEAR(CreatedDate)"),
    ("SELECT CreatedDate, COUNT(Id) FROM Account GROUP BY CreatedDate", "INVALID_FIELD",
     "field 'CreatedDate' can not be grouped in a query call"),
    ("SELECT SUM(Name) FROM Account", "MALFORMED_QUERY", "field Name does not support aggregate operator SUM"),
    ("SELECT HOUR_IN_DAY(CloseDate), COUNT(Id) FROM Opportunity GROUP BY HOUR_IN_DAY(CloseDate)", "INVALID_FIELD",
     "Invalid field CloseDate for function HOUR_IN_DAY: it needs a dateTime field"),
    ("SELECT Industry, COUNT(Id) FROM Account GROUP BY Industry HAVING Name = 'x'", "MALFORMED_QUERY",
     "Field must be grouped or aggregated: Name"),
    ("SELECT COUNT(Id) i, MAX(Name) I FROM Account", "INVALID_FIELD", "duplicate alias: I"),
])
def test_aggregate_errors(engine: QueryEngine, ctx: Any, soql: str, code: str, message: str) -> None:
    exc = error(engine, ctx, soql)
    assert (exc.error_code, exc.message.split("\n")[-1]) == (code, message)


# -- functions, clauses ----------------------------------------------------------------------------------------------


def test_tolabel_returns_picklist_labels(engine: QueryEngine, ctx: Any) -> None:
    assert rows(engine, ctx, "SELECT Name, toLabel(Size__c) FROM Widget__c ORDER BY Name") == [
        {"Name": "W1", "Size__c": "Small"}, {"Name": "W2", "Size__c": "Medium"}, {"Name": "W3", "Size__c": "Large"},
        {"Name": "W4", "Size__c": None}, {"Name": "W5", "Size__c": "Small"}]


@pytest.mark.parametrize(("soql", "fragment"), [
    ("SELECT convertCurrency(AnnualRevenue) FROM Account", "convertCurrency() is not supported"),
    ("SELECT FORMAT(AnnualRevenue) FROM Account", "FORMAT() is not supported"),
    ("SELECT Name FROM Account WITH DATA CATEGORY Geography__c AT usa__c", "WITH DATA CATEGORY is not supported"),
    ("SELECT Name FROM Account USING SCOPE Team", "USING SCOPE Team is not supported"),
    ("SELECT Name, (SELECT Id, (SELECT Id FROM Cases) FROM Contacts) FROM Account",
     "Nesting of child relationship subqueries is not supported"),
])
def test_refused_features_say_so(engine: QueryEngine, ctx: Any, soql: str, fragment: str) -> None:
    exc = error(engine, ctx, soql)
    assert exc.error_code in ("MALFORMED_QUERY", "INVALID_TYPE")
    assert fragment in exc.message


def test_accepted_clauses_do_not_change_results(engine: QueryEngine, ctx: Any) -> None:
    expected = column(engine, ctx, "SELECT Name FROM Account ORDER BY Name")
    for suffix in ("WITH SECURITY_ENFORCED ORDER BY Name", "WITH USER_MODE ORDER BY Name",
                   "ORDER BY Name FOR UPDATE", "ORDER BY Name FOR VIEW", "USING SCOPE Everything ORDER BY Name"):
        assert column(engine, ctx, f"SELECT Name FROM Account {suffix}") == expected, suffix
    assert column(engine, ctx, "SELECT Name FROM Account USING SCOPE Mine ORDER BY Name") == expected


# -- deleted records -------------------------------------------------------------------------------------------------


def test_deleted_records_are_left_out_unless_asked_for(engine: QueryEngine, ctx: Any) -> None:
    assert "Zed Deleted" not in column(engine, ctx, "SELECT Name FROM Account")
    assert "Gus" not in column(engine, ctx, "SELECT LastName FROM Contact", "LastName")
    with_deleted = rows(engine, ctx, "SELECT Name, IsDeleted FROM Account WHERE Name LIKE 'Zed%'",
                        include_deleted=True)
    assert with_deleted == [{"Name": "Zed Deleted", "IsDeleted": True}]
    assert column(engine, ctx, "SELECT Name FROM Account WHERE Name LIKE 'Zed%' ALL ROWS") == ["Zed Deleted"]
    [zed] = rows(engine, ctx, "SELECT Name, (SELECT LastName FROM Contacts) FROM Account WHERE Name = 'Zed Deleted'",
                 include_deleted=True)
    assert zed["Contacts"]["records"] == [{"LastName": "Gus"}]
    [gus] = rows(engine, ctx, "SELECT Account.Name FROM Contact WHERE LastName = 'Gus'", include_deleted=True)
    assert gus == {"Account": {"Name": "Zed Deleted"}}
    assert run(engine, ctx, "SELECT COUNT() FROM Account").total_size == 6
    assert run(engine, ctx, "SELECT COUNT() FROM Account", include_deleted=True).total_size == 7
    assert column(engine, ctx, "SELECT Name FROM Account WHERE Id IN (SELECT AccountId FROM Contact "
                               "WHERE LastName = 'Gus')", include_deleted=False) == []


# -- the plan cache ------------------------------------------------------------------------------------------------


def test_a_repeated_query_is_neither_parsed_nor_compiled_again(org: Any, ctx: Any, data: dict[str, str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    original = soql_parser.parse_soql

    def counting(text: str) -> ast.Query:
        calls.append(text)
        return original(text)

    monkeypatch.setattr(soql_parser, "parse_soql", counting)
    engine = QueryEngine(org.store, today=lambda: TODAY)
    soql = "SELECT Name FROM Account WHERE Industry = 'Technology' ORDER BY Name"
    first = run(engine, ctx, soql)
    second = run(engine, ctx, soql)
    assert first.records == second.records and len(first.records) == 2
    assert calls == [soql]
    assert (engine.misses, engine.hits) == (1, 1)
    run(engine, ctx, soql, include_deleted=True)  # queryAll: its own plan
    assert len(calls) == 2
    run(engine, dataclasses.replace(ctx, user_id="005000000000001AAA"), soql)  # another user: its own plan
    assert len(calls) == 3
    run(engine, ctx, soql)
    assert len(calls) == 3


def test_the_plan_cache_is_bounded(org: Any, ctx: Any, data: dict[str, str]) -> None:
    engine = QueryEngine(org.store, cache_size=3)
    for n in range(5):
        run(engine, ctx, f"SELECT Id FROM Account LIMIT {n + 1}")
    assert len(engine._cache) == 3
    run(engine, ctx, "SELECT Id FROM Account LIMIT 5")
    assert engine.hits == 1


# -- paging --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def leads(org: Any) -> list[str]:
    """5000 leads, for paging."""
    ctx = org.admin_context()
    created: list[str] = []
    for start in range(0, 5000, 1000):
        created += _create(org, ctx, "Lead", [{"LastName": f"Lead {n:05d}", "Company": f"Co {n % 7}",
                                               "Status": "Open - Not Contacted"}
                                              for n in range(start, start + 1000)])
    return created


def test_5000_rows_come_in_pages_with_the_total_on_every_page(engine: QueryEngine, ctx: Any,
                                                              leads: list[str]) -> None:
    soql = "SELECT Id, LastName FROM Lead ORDER BY Company"
    page = run(engine, ctx, soql)
    seen = [r["Id"] for r in page.records]
    assert (page.total_size, len(page.records), page.done, page.next_offset) == (5000, 2000, False, 2000)
    assert page.locator is not None and page.locator.offset == 2000 and page.locator.total_size == 5000
    pages = [page]
    while not page.done:
        assert page.locator is not None
        page = engine.fetch_more(page.locator, ctx)
        pages.append(page)
        seen += [r["Id"] for r in page.records]
    assert [len(p.records) for p in pages] == [2000, 2000, 1000]
    assert [p.total_size for p in pages] == [5000, 5000, 5000]
    assert pages[-1].next_offset is None and pages[-1].locator is None
    assert sorted(seen) == sorted(leads) and len(set(seen)) == 5000


def test_pages_by_offset_and_batch_size(engine: QueryEngine, ctx: Any, leads: list[str]) -> None:
    soql = "SELECT LastName FROM Lead WHERE LastName LIKE 'Lead 00%' ORDER BY LastName"
    first = run(engine, ctx, soql, batch_size=300)
    assert (first.total_size, len(first.records), first.next_offset) == (1000, 300, 300)
    last = run(engine, ctx, soql, batch_size=300, offset=900)
    assert [r["LastName"] for r in last.records] == [f"Lead {n:05d}" for n in range(900, 1000)]
    assert last.done and last.total_size == 1000
    limited = run(engine, ctx, "SELECT Id FROM Lead LIMIT 2500", batch_size=2000)
    assert (limited.total_size, len(limited.records), limited.done) == (2500, 2000, False)
    assert limited.locator is not None
    rest = engine.fetch_more(limited.locator, ctx)
    assert (len(rest.records), rest.done, rest.total_size) == (500, True, 2500)
    assert run(engine, ctx, "SELECT COUNT() FROM Lead").total_size == 5000
    grouped = rows(engine, ctx, "SELECT Company, COUNT(Id) FROM Lead GROUP BY Company ORDER BY Company")
    assert [g["Company"] for g in grouped] == [f"Co {n}" for n in range(7)]
    assert sum(g["expr0"] for g in grouped) == 5000


def test_totals_count_through_parent_joins_when_the_page_is_full(engine: QueryEngine, ctx: Any) -> None:
    page = run(engine, ctx, "SELECT LastName, Account.Name FROM Contact WHERE Account.Industry = 'Technology' "
                            "ORDER BY LastName", batch_size=1)
    assert (page.total_size, page.done, strip(page.records)) == (2, False, [
        {"LastName": "Archer", "Account": {"Name": "Acme Corp"}}])
    page = run(engine, ctx, "SELECT Subject FROM Task WHERE What.Name LIKE 'Acme%' OR Who.Name = 'Bob Baker'",
               batch_size=1)
    assert (page.total_size, page.done) == (3, False)
    page = run(engine, ctx, "SELECT LastName FROM Contact WHERE CALENDAR_YEAR(convertTimezone(Account.CreatedDate)) "
                            "> 2000", batch_size=1)
    assert (page.total_size, page.done) == (4, False)
    page = run(engine, ctx, "SELECT Name FROM Account WHERE Id IN (SELECT AccountId FROM Contact) ORDER BY Name",
               batch_size=2, offset=2)
    assert (page.total_size, page.done, [r["Name"] for r in page.records]) == (3, True, ["Cobalt Bank"])


def test_child_blocks_on_later_pages(org: Any, engine: QueryEngine, ctx: Any, data: dict[str, str]) -> None:
    soql = "SELECT Name, (SELECT LastName FROM Contacts ORDER BY LastName) FROM Account ORDER BY Name"
    pages = [run(engine, ctx, soql, batch_size=2)]
    while not pages[-1].done:
        pages.append(engine.fetch_more(pages[-1].locator, ctx))  # type: ignore[arg-type]
    records = [strip(r) for p in pages for r in p.records]
    assert [r["Name"] for r in records] == ALL_ACCOUNTS
    assert records[2]["Contacts"]["records"] == [{"LastName": "Cole"}]


# -- explain, timeouts -----------------------------------------------------------------------------------------------


def test_explain_reports_index_use(engine: QueryEngine, ctx: Any, data: dict[str, str]) -> None:
    by_id = engine.explain(f"SELECT Id FROM Account WHERE Id = '{data['Acme Corp']}'", ctx)
    [plan] = by_id["plans"]
    assert set(plan) == {"cardinality", "fields", "leadingOperationType", "notes", "relativeCost",
                         "sobjectCardinality", "sobjectType"}
    assert plan["leadingOperationType"] == "Index" and plan["fields"] == ["Id"]
    assert plan["sobjectType"] == "Account" and plan["sobjectCardinality"] == 7
    lookup = engine.explain(f"SELECT Id FROM Contact WHERE AccountId = '{data['Acme Corp']}'", ctx)["plans"][0]
    assert lookup["leadingOperationType"] == "Index" and lookup["fields"] == ["AccountId"]
    scan = engine.explain("SELECT Id FROM Account WHERE BillingCity = 'Paris'", ctx)["plans"][0]
    assert scan["leadingOperationType"] == "TableScan"
    assert scan["notes"] == [{"description": "Not considering filter for optimization because unindexed",
                              "fields": ["BillingCity"], "tableEnumOrId": "Account"}]


def test_queries_time_out(org: Any, ctx: Any, leads: list[str]) -> None:
    engine = QueryEngine(org.store, timeout_seconds=1e-9)
    slow = ("SELECT Id FROM Lead WHERE LastName LIKE '%9%' AND Id NOT IN (SELECT Id FROM Lead WHERE Company = "
            "'x') ORDER BY Company DESC, LastName")
    if org.store.backend == "sqlite":
        with pytest.raises(QueryTimeout) as info:
            engine.execute(slow, ctx)
        assert info.value.error_code == "QUERY_TIMEOUT"
        assert info.value.message == "Your query request was running for too long."
    else:
        engine.timeout_seconds = 0.05
        with pytest.raises(QueryTimeout), org.store.read() as conn, engine._deadline(conn):
            conn.execute(text("SELECT pg_sleep(1)"))
    # The connection is usable again afterwards, and a normal engine is unaffected.
    assert QueryEngine(org.store).execute("SELECT COUNT() FROM Lead", ctx).total_size == 5000


# -- the compiler on its own ----------------------------------------------------------------------------------------


def test_compile_query_takes_a_hand_built_tree(org: Any, data: dict[str, str]) -> None:
    query = ast.Query(select=(ast.SelectItem(ast.FieldPath(("Name",))),), object="account",
                      where=ast.Comparison(ast.FieldPath(("Industry",)), "=", "Banking"))
    compiled = compile_query(query, org.store.schema, org.store.tables, include_deleted=False)
    assert compiled.kind == "records" and compiled.object.name == "Account"
    with org.store.read() as conn:
        names = [row[0] for row in conn.execute(compiled.statement)]
    assert names == ["Cobalt Bank"]
    sql = str(compiled.statement.compile(dialect=org.store.read_engine.dialect))
    assert "Banking" not in sql  # values are bound, never pasted


def test_multi_line_queries_report_the_row_and_column(engine: QueryEngine, ctx: Any) -> None:
    exc = error(engine, ctx, "SELECT Id,\n  Nope\nFROM Account")
    assert "ERROR at Row:2:Column:3" in exc.message and exc.message.startswith("\n  Nope\n  ^\n")


# -- date literal ranges (no database) --------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "n", "start", "end"), [
    ("TODAY", None, date(2024, 5, 15), date(2024, 5, 16)),
    ("YESTERDAY", None, date(2024, 5, 14), date(2024, 5, 15)),
    ("TOMORROW", None, date(2024, 5, 16), date(2024, 5, 17)),
    ("THIS_WEEK", None, date(2024, 5, 12), date(2024, 5, 19)),
    ("LAST_WEEK", None, date(2024, 5, 5), date(2024, 5, 12)),
    ("NEXT_WEEK", None, date(2024, 5, 19), date(2024, 5, 26)),
    ("THIS_MONTH", None, date(2024, 5, 1), date(2024, 6, 1)),
    ("LAST_MONTH", None, date(2024, 4, 1), date(2024, 5, 1)),
    ("NEXT_MONTH", None, date(2024, 6, 1), date(2024, 7, 1)),
    ("THIS_QUARTER", None, date(2024, 4, 1), date(2024, 7, 1)),
    ("LAST_QUARTER", None, date(2024, 1, 1), date(2024, 4, 1)),
    ("NEXT_QUARTER", None, date(2024, 7, 1), date(2024, 10, 1)),
    ("THIS_YEAR", None, date(2024, 1, 1), date(2025, 1, 1)),
    ("LAST_YEAR", None, date(2023, 1, 1), date(2024, 1, 1)),
    ("NEXT_YEAR", None, date(2025, 1, 1), date(2026, 1, 1)),
    ("LAST_90_DAYS", None, date(2024, 2, 15), date(2024, 5, 16)),
    ("NEXT_90_DAYS", None, date(2024, 5, 16), date(2024, 8, 14)),
    ("LAST_N_DAYS", 7, date(2024, 5, 8), date(2024, 5, 16)),
    ("NEXT_N_DAYS", 7, date(2024, 5, 16), date(2024, 5, 23)),
    ("N_DAYS_AGO", 3, date(2024, 5, 12), date(2024, 5, 13)),
    ("LAST_N_WEEKS", 2, date(2024, 4, 28), date(2024, 5, 12)),
    ("NEXT_N_WEEKS", 2, date(2024, 5, 19), date(2024, 6, 2)),
    ("N_WEEKS_AGO", 1, date(2024, 5, 5), date(2024, 5, 12)),
    ("LAST_N_MONTHS", 2, date(2024, 3, 1), date(2024, 5, 1)),
    ("NEXT_N_MONTHS", 8, date(2024, 6, 1), date(2025, 2, 1)),
    ("N_MONTHS_AGO", 5, date(2023, 12, 1), date(2024, 1, 1)),
    ("LAST_N_QUARTERS", 2, date(2023, 10, 1), date(2024, 4, 1)),
    ("NEXT_N_QUARTERS", 1, date(2024, 7, 1), date(2024, 10, 1)),
    ("N_QUARTERS_AGO", 2, date(2023, 10, 1), date(2024, 1, 1)),
    ("LAST_N_YEARS", 2, date(2022, 1, 1), date(2024, 1, 1)),
    ("NEXT_N_YEARS", 1, date(2025, 1, 1), date(2026, 1, 1)),
    ("N_YEARS_AGO", 1, date(2023, 1, 1), date(2024, 1, 1)),
    ("THIS_FISCAL_QUARTER", None, date(2024, 4, 1), date(2024, 7, 1)),
    ("LAST_FISCAL_YEAR", None, date(2023, 1, 1), date(2024, 1, 1)),
    ("NEXT_N_FISCAL_QUARTERS", 2, date(2024, 7, 1), date(2025, 1, 1)),
    ("N_FISCAL_YEARS_AGO", 1, date(2023, 1, 1), date(2024, 1, 1)),
])
def test_date_literal_ranges(name: str, n: int | None, start: date, end: date) -> None:
    assert resolve(ast.DateLiteral(name, n), TODAY) == (start, end)


def test_fiscal_years_starting_in_april() -> None:
    today = date(2024, 2, 15)
    assert resolve(ast.DateLiteral("THIS_FISCAL_YEAR"), today, fiscal_start_month=4) == (date(2023, 4, 1),
                                                                                           date(2024, 4, 1))
    assert resolve(ast.DateLiteral("THIS_FISCAL_QUARTER"), today, fiscal_start_month=4) == (date(2024, 1, 1),
                                                                                              date(2024, 4, 1))
    assert resolve(ast.DateLiteral("LAST_WEEK"), date(2024, 5, 12)) == (date(2024, 5, 5), date(2024, 5, 12))
