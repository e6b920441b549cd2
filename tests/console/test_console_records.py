"""Console "Objects and records": the objects index, list views (filters, sort, pages), record detail with related
lists, and create / edit / delete through the records service (triggers and validation as on the API)."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from console_helpers import login  # type: ignore[import-not-found]
from starlette.testclient import TestClient

from interlink.api.app import build_app
from interlink.testing import local_org

DASH = "\N{EN DASH}"

GADGET = """\
name: Gadget__c
label: Gadget
labelPlural: Gadgets
nameField: {label: Gadget Name, type: text}
fields:
  - {name: Colors__c, type: multipicklist, values: [Red, Green, Blue]}
  - {name: Size__c, type: picklist, values: [S, M, L], restricted: true}
  - {name: Qty__c, type: int, precision: 6}
  - {name: Price__c, type: currency, precision: 10, scale: 2}
  - {name: Active__c, type: checkbox}
  - {name: Due__c, type: date}
  - {name: Seen__c, type: datetime}
  - {name: Notes__c, type: textarea, length: 1000}
  - {name: Account__c, type: lookup, referenceTo: Account, relationshipName: Account__r, childRelationshipName: Gadgets}
"""

ALERT = """\
label: Alert
publishBehavior: PublishImmediately
fields:
  - {name: Message__c, type: text, length: 255}
"""

TRIGGER = '''\
from interlink.automation import trigger


@trigger("Account", before=["insert", "update"])
def account_rules(ctx):
    for record in ctx.new:
        if "forbidden" in (record["Name"] or "").lower():
            ctx.add_error(record, "Forbidden names are not allowed", field="Name")
        if record["Description"] == "stamp":
            record["Site"] = "stamped by trigger"
'''


@pytest.fixture
def org(tmp_path: Path) -> Iterator[Any]:
    project = tmp_path / "project"
    (project / "metadata" / "objects").mkdir(parents=True)
    (project / "triggers").mkdir()
    (project / "metadata" / "objects" / "Gadget__c.yaml").write_text(GADGET)
    (project / "metadata" / "objects" / "Alert__e.yaml").write_text(ALERT)
    (project / "triggers" / "rules.py").write_text(TRIGGER)
    with local_org(tmp_path / "org", project_dir=project) as opened:
        yield opened


@pytest.fixture
def client(org: Any) -> Iterator[TestClient]:
    with TestClient(build_app(org), base_url="https://testserver") as logged_in:
        logged_in.csrf = login(logged_in)  # type: ignore[attr-defined]
        yield logged_in


def _create(org: Any, object_name: str, records: list[dict[str, Any]]) -> list[str]:
    results = org.records.create(org.admin_context(), object_name, records, all_or_none=True)
    assert all(r.success for r in results), [r.errors for r in results]
    return [r.id for r in results]


def _one(org: Any, soql: str) -> dict[str, Any]:
    records = org.query.execute(soql, org.admin_context()).records
    assert len(records) == 1, records
    return records[0]  # type: ignore[no-any-return]


def _rows(page: str) -> list[str]:
    """The record names of a list view's grid, in order (each row's first cell links to the record)."""
    body = page.split('<table class="grid records">', 1)[1].split("</table>", 1)[0]
    return [html.unescape(m) for m in re.findall(r'<tr>\s*<td><a href="/console/r/[^"]+">([^<]*)</a>', body)]


def _error_text(page: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", page))


# -- the objects index ------------------------------------------------------------------------------------------


def test_objects_index_marks_kinds_and_counts_stored_records(client: TestClient, org: Any) -> None:
    _create(org, "Account", [{"Name": "A1"}, {"Name": "A2"}, {"Name": "A3"}])
    page = client.get("/console/objects")
    assert page.status_code == 200
    account = re.search(r'<a href="/console/o/Account">Accounts</a>.*?</tr>', page.text, re.S)
    assert account and 'class="num">3<' in account.group(0) and "Stored" in account.group(0)
    alert = re.search(r'<a href="/console/o/Alert__e">.*?</tr>', page.text, re.S)
    assert alert and "Platform event" in alert.group(0)
    assert 'href="/console/o/Gadget__c"' in page.text


def test_a_platform_event_has_no_records_and_points_to_event_streams(client: TestClient) -> None:
    page = client.get("/console/o/Alert__e")
    assert page.status_code == 200
    assert "platform event" in page.text and 'href="/console/events"' in page.text
    assert "<table" not in page.text


def test_unknown_objects_and_ids_answer_404_with_the_error_page(client: TestClient, org: Any) -> None:
    for url in ("/console/o/Nope__c", "/console/r/001000000000000AAA", "/console/r/not-an-id",
                "/console/r/001000000000000AAA/edit", "/console/o/Nope__c/new"):
        page = client.get(url)
        assert page.status_code == 404, url
        assert "NOT_FOUND" in page.text and "Back to the console" in page.text
    gone = _create(org, "Account", [{"Name": "Gone"}])[0]
    org.records.delete(org.admin_context(), [gone])
    assert client.get(f"/console/r/{gone}").status_code == 404  # deleted records are not shown


# -- list views -------------------------------------------------------------------------------------------------


def test_list_view_shows_default_columns_sorted_by_name_and_the_soql_it_ran(client: TestClient, org: Any) -> None:
    _create(org, "Account", [{"Name": "Cobalt", "Industry": "Banking", "Phone": "+1 555"},
                             {"Name": "acme", "Industry": "Energy"}, {"Name": "Bolt"}])
    page = client.get("/console/o/Account")
    assert page.status_code == 200
    assert _rows(page.text) == ["acme", "Bolt", "Cobalt"]
    soql = html.unescape(re.search(r'<p class="soql">.*?<code>(.*?)</code>', page.text, re.S).group(1))  # type: ignore[union-attr]
    assert soql.startswith("SELECT Id, Name, ") and soql.endswith("FROM Account ORDER BY Name ASC")
    assert "LastModifiedDate" in soql and f"Rows 1{DASH}3 of 3" in page.text
    assert "/console/soql?q=SELECT" in page.text  # open the same query in the workbench


def test_clicking_a_column_header_sorts_server_side(client: TestClient, org: Any) -> None:
    _create(org, "Account", [{"Name": "Small", "AnnualRevenue": 10}, {"Name": "Big", "AnnualRevenue": 900},
                             {"Name": "Mid", "AnnualRevenue": 50}])
    page = client.get("/console/o/Account")
    header = re.search(r'data-field="AnnualRevenue"[^>]*>\s*<a href="([^"]+)"', page.text)
    assert header, "the Annual Revenue header is a sort link"
    ascending = client.get(html.unescape(header.group(1)))
    assert _rows(ascending.text) == ["Small", "Mid", "Big"]
    assert "ORDER BY AnnualRevenue ASC" in html.unescape(ascending.text)
    again = re.search(r'data-field="AnnualRevenue"[^>]*>\s*<a href="([^"]+)"', ascending.text)
    descending = client.get(html.unescape(again.group(1)))  # type: ignore[union-attr]
    assert _rows(descending.text) == ["Big", "Mid", "Small"]
    assert 'aria-sort="descending"' in descending.text


def test_filters_compile_to_escaped_soql(client: TestClient, org: Any) -> None:
    _create(org, "Account", [{"Name": "O'Brien & Sons", "AnnualRevenue": 100}, {"Name": "Other", "AnnualRevenue": 50},
                             {"Name": "50% Off", "AnnualRevenue": 7}, {"Name": "Omega", "AnnualRevenue": 1}])
    quoted = client.get("/console/o/Account", params={"ff": "Name", "fo": "eq", "fv": "O'Brien & Sons"})
    assert _rows(quoted.text) == ["O'Brien & Sons"]
    assert "WHERE (Name = 'O\\'Brien & Sons')" in html.unescape(quoted.text)
    like = client.get("/console/o/Account", params={"ff": "Name", "fo": "contains", "fv": "%"})
    assert _rows(like.text) == ["50% Off"]  # % is matched literally, not as a wildcard
    both = client.get("/console/o/Account", params=[("ff", "AnnualRevenue"), ("fo", "gt"), ("fv", "6"),
                                                    ("ff", "Name"), ("fo", "starts"), ("fv", "O")])
    assert _rows(both.text) == ["O'Brien & Sons", "Other"]
    remove = re.findall(r'<a class="remove" href="([^"]+)"', both.text)
    assert len(remove) == 2
    # removing the name filter keeps the revenue one
    assert _rows(client.get(html.unescape(remove[1])).text) == ["50% Off", "O'Brien & Sons", "Other"]


def test_injection_attempts_in_filters_are_plain_values(client: TestClient, org: Any) -> None:
    _create(org, "Account", [{"Name": "Acme"}, {"Name": "Bolt"}])
    for attempt in ("' OR Name != '", "x' OR Id != null OR Name = 'y", "\\' OR Name != \\'", "') OR (Name != '"):
        page = client.get("/console/o/Account", params={"ff": "Name", "fo": "eq", "fv": attempt})
        assert page.status_code == 200, page.text
        assert _rows(page.text) == [], attempt
        assert "No records match." in page.text
    # a field name that is not a field is refused, never copied into the query
    page = client.get("/console/o/Account", params={"ff": "Name = 'x' OR Name", "fo": "eq", "fv": "x"})
    assert page.status_code == 400 and "INVALID_FIELD" in page.text
    page = client.get("/console/o/Account", params={"ff": "Name", "fo": "OR", "fv": "x"})
    assert page.status_code == 400 and "Unknown filter operator" in page.text


def test_a_bad_filter_value_shows_the_error_and_runs_nothing(client: TestClient, org: Any) -> None:
    _create(org, "Account", [{"Name": "Acme", "AnnualRevenue": 5}])
    page = client.get("/console/o/Account", params={"ff": "AnnualRevenue", "fo": "gt", "fv": "lots"})
    assert page.status_code == 400
    assert "INVALID_FILTER" in page.text and "not a valid currency value: lots" in _error_text(page.text)
    assert 'value="lots"' in page.text  # the filter stays on the form to be fixed
    assert '<p class="soql">' not in page.text  # no query ran
    assert _rows(page.text) == []
    dates = client.get("/console/o/Account", params={"ff": "CreatedDate", "fo": "ge", "fv": "LAST_N_DAYS:7"})
    assert _rows(dates.text) == ["Acme"] and "CreatedDate >= LAST_N_DAYS:7" in html.unescape(dates.text)
    nulls = client.get("/console/o/Account", params={"ff": "Industry", "fo": "null", "fv": ""})
    assert _rows(nulls.text) == ["Acme"] and "Industry = null" in nulls.text


def test_columns_can_be_chosen(client: TestClient, org: Any) -> None:
    _create(org, "Account", [{"Name": "Acme", "BillingCity": "Paris", "Rating": "Hot"}])
    page = client.get("/console/o/Account", params=[("col", "Name"), ("col", "BillingCity"), ("col", "Rating"),
                                                    ("col", "Bogus__c")])
    headers = re.findall(r'<th[^>]*data-field="([^"]+)"', page.text)
    assert headers == ["Name", "BillingCity", "Rating"]
    assert ">Paris<" in page.text and ">Hot<" in page.text
    assert "Ignored unknown or unsortable fields: Bogus__c" in page.text


def test_list_views_page_through_query_locators(client: TestClient, org: Any) -> None:
    _create(org, "Account", [{"Name": f"Account {n:02d}"} for n in range(1, 8)])
    first = client.get("/console/o/Account", params={"size": "3"})
    assert _rows(first.text) == ["Account 01", "Account 02", "Account 03"]
    assert f"Rows 1{DASH}3 of 7" in first.text
    next_url = html.unescape(re.search(r'rel="next" href="([^"]+)"', first.text).group(1))  # type: ignore[union-attr]
    assert "cursor=01g" in next_url
    second = client.get(next_url)
    assert _rows(second.text) == ["Account 04", "Account 05", "Account 06"] and f"Rows 4{DASH}6 of 7" in second.text
    third = client.get(html.unescape(re.search(r'rel="next" href="([^"]+)"', second.text).group(1)))  # type: ignore[union-attr]
    assert _rows(third.text) == ["Account 07"] and 'rel="next"' not in third.text
    back = client.get(html.unescape(re.search(r'rel="prev" href="([^"]+)"', third.text).group(1)))  # type: ignore[union-attr]
    assert _rows(back.text) == ["Account 04", "Account 05", "Account 06"]
    # a locator only serves the view it was made for
    cursor = next_url.split("cursor=")[1]
    other = client.get("/console/o/Account", params={"size": "3", "sort": "Name", "dir": "desc", "cursor": cursor})
    assert other.status_code == 400 and "INVALID_QUERY_LOCATOR" in other.text


def test_references_show_the_parents_name_and_link_to_it(client: TestClient, org: Any) -> None:
    account = _create(org, "Account", [{"Name": "Parent Co"}])[0]
    _create(org, "Contact", [{"LastName": "Lovelace", "FirstName": "Ada", "AccountId": account}])
    page = client.get("/console/o/Contact")
    assert _rows(page.text) == ["Ada Lovelace"]
    assert f'<a href="/console/r/{account}">Parent Co</a>' in page.text


# -- record detail --------------------------------------------------------------------------------------------------


def test_detail_shows_every_field_with_labels_and_related_lists(client: TestClient, org: Any) -> None:
    account = _create(org, "Account", [{"Name": "Acme", "Industry": "Energy", "AnnualRevenue": 1234567,
                                         "Website": "https://acme.example"}])[0]
    _create(org, "Contact", [{"LastName": f"Person {n}", "AccountId": account} for n in range(1, 8)])
    _create(org, "Gadget__c", [{"Name": "Widget", "Account__c": account, "Qty__c": 3}])
    page = client.get(f"/console/r/{account}")
    assert page.status_code == 200
    text = page.text
    assert "<h1>Acme</h1>" in text
    assert re.search(r'data-field="Industry">\s*<dt title="Industry">Industry</dt>\s*<dd[^>]*>Energy</dd>', text)
    assert re.search(r'data-field="AnnualRevenue">.*?1,234,567</dd>', text, re.S)
    assert 'href="https://acme.example" rel="noopener noreferrer"' in text
    admin = org.directory.user_by_username("admin@interlink.local")
    assert f'<a href="/console/r/{admin.id}">' in text  # Owner and Created By link to the user by name
    contacts = re.search(r'data-relationship="Contacts">.*?</section>', text, re.S).group(0)  # type: ignore[union-attr]
    assert contacts.count('<a href="/console/r/003') == 5 and ">5+<" in contacts
    assert f"/console/o/Contact?ff=AccountId&amp;fo=eq&amp;fv={account}" in contacts
    gadgets = re.search(r'data-relationship="Gadgets__r">.*?</section>', text, re.S).group(0)  # type: ignore[union-attr]
    assert ">Widget</a>" in gadgets
    assert f"/console/o/Gadget__c/new?Account__c={account}" in gadgets
    view_all = client.get(f"/console/o/Contact?ff=AccountId&fo=eq&fv={account}")
    assert len(_rows(view_all.text)) == 7
    new_gadget = client.get(f"/console/o/Gadget__c/new?Account__c={account}")
    assert f'name="Account__c" value="{account}"' in new_gadget.text  # pre-filled from the related list


def test_detail_accepts_15_character_ids(client: TestClient, org: Any) -> None:
    account = _create(org, "Account", [{"Name": "Short Id"}])[0]
    assert "<h1>Short Id</h1>" in client.get(f"/console/r/{account[:15]}").text


# -- create / edit / delete -------------------------------------------------------------------------------------


def test_create_form_has_an_input_per_field_type(client: TestClient) -> None:
    page = client.get("/console/o/Gadget__c/new")
    assert page.status_code == 200
    text = page.text
    assert re.search(r'<input id="f-Name" type="text" name="Name"', text)
    assert '<input id="f-Qty__c" type="number" step="1" name="Qty__c"' in text
    assert '<input id="f-Price__c" type="number" step="0.01" name="Price__c"' in text
    assert '<input id="f-Active__c" type="checkbox" name="Active__c" value="true"' in text
    assert '<input id="f-Due__c" type="date" name="Due__c"' in text
    assert '<input id="f-Seen__c" type="datetime-local" step="1" name="Seen__c"' in text
    assert '<textarea id="f-Notes__c" name="Notes__c"' in text
    assert re.search(r'<select id="f-Size__c" name="Size__c">\s*<option value="">--None--</option>'
                     r'\s*<option value="S">S</option>', text)
    assert '<select id="f-Colors__c" name="Colors__c" multiple' in text
    assert 'name="Account__c"' in text and "Id of the Account" in text
    assert "<script>" not in text


def test_create_saves_through_the_records_service_and_runs_triggers(client: TestClient, org: Any) -> None:
    response = client.post("/console/o/Account/new", data={
        "csrf": client.csrf, "Name": "Console Co", "Industry": "Energy", "AnnualRevenue": "2500",  # type: ignore[attr-defined]
        "Description": "stamp", "Site": ""}, follow_redirects=False)
    assert response.status_code == 303
    record_id = response.headers["location"].split("/console/r/")[1].split("?")[0]
    saved = _one(org, f"SELECT Name, Industry, AnnualRevenue, Site, OwnerId FROM Account WHERE Id = '{record_id}'")
    assert (saved["Name"], saved["Industry"], saved["AnnualRevenue"]) == ("Console Co", "Energy", 2500)
    assert saved["Site"] == "stamped by trigger"  # the before-insert trigger ran
    assert saved["OwnerId"] == org.directory.user_by_username("admin@interlink.local").id
    detail = client.get(response.headers["location"])
    assert "The record was created." in detail.text and "<h1>Console Co</h1>" in detail.text


def test_create_typed_fields(client: TestClient, org: Any) -> None:
    account = _create(org, "Account", [{"Name": "Owner Co"}])[0]
    # a multi-select sends one pair per chosen value
    response = client.post("/console/o/Gadget__c/new", content=urlencode([
        ("csrf", client.csrf), ("Name", "G-1"), ("Colors__c", "Red"), ("Colors__c", "Blue"),  # type: ignore[attr-defined]
        ("Size__c", "M"), ("Qty__c", "12"), ("Price__c", "9.99"), ("Active__c", "true"), ("Due__c", "2025-03-01"),
        ("Seen__c", "2025-03-01T10:30"), ("Notes__c", "line 1\r\nline 2"), ("Account__c", account)]),
        headers={"Content-Type": "application/x-www-form-urlencoded"}, follow_redirects=False)
    assert response.status_code == 303, _error_text(response.text)
    saved = _one(org, "SELECT Id, Colors__c, Size__c, Qty__c, Price__c, Active__c, Due__c, Seen__c, Notes__c, "
                      "Account__c FROM Gadget__c")
    assert saved == {**saved, "Colors__c": "Red;Blue", "Size__c": "M", "Qty__c": 12, "Price__c": 9.99,
                     "Active__c": True, "Due__c": "2025-03-01", "Seen__c": "2025-03-01T10:30:00.000+0000",
                     "Notes__c": "line 1\nline 2", "Account__c": account}
    # unchecking a checkbox and emptying a multi-select send the hidden empty inputs; fields not posted stay
    form = client.get(f"/console/r/{saved['Id']}/edit").text
    assert '<input type="hidden" name="Active__c" value="">' in form
    assert '<input type="hidden" name="Colors__c" value="">' in form
    response = client.post(f"/console/r/{saved['Id']}/edit", data={"csrf": client.csrf, "Active__c": "",  # type: ignore[attr-defined]
                                                                     "Colors__c": ""}, follow_redirects=False)
    assert response.status_code == 303
    edited = _one(org, "SELECT Colors__c, Active__c, Qty__c, Notes__c FROM Gadget__c")
    assert (edited["Colors__c"], edited["Active__c"], edited["Qty__c"], edited["Notes__c"]) == (
        None, False, 12, "line 1\nline 2")


def test_validation_errors_keep_the_input_highlight_the_field_and_save_nothing(client: TestClient, org: Any) -> None:
    before = org.query.execute("SELECT COUNT() FROM Account", org.admin_context()).total_size
    # the records service's own validation (a restricted value, a required field)
    missing = client.post("/console/o/Account/new", data={"csrf": client.csrf, "Name": "", "Site": "kept"})  # type: ignore[attr-defined]
    assert missing.status_code == 400
    assert "Nothing was saved." in missing.text and "REQUIRED_FIELD_MISSING" in missing.text
    assert re.search(r'class="formfield invalid"[^>]*data-field="Name"', missing.text)
    assert 'name="Site" value="kept"' in missing.text
    # a trigger's error, with the field it names
    refused = client.post("/console/o/Account/new", data={"csrf": client.csrf, "Name": "Forbidden Inc",  # type: ignore[attr-defined]
                                                          "Phone": "+1 555 0100"})
    assert refused.status_code == 400
    assert "FIELD_CUSTOM_VALIDATION_EXCEPTION" in refused.text and "Forbidden names are not allowed" in refused.text
    assert 'name="Name" value="Forbidden Inc"' in refused.text and 'value="+1 555 0100"' in refused.text
    bad_type = client.post("/console/o/Gadget__c/new", data={"csrf": client.csrf, "Name": "G", "Qty__c": "many"})  # type: ignore[attr-defined]
    assert bad_type.status_code == 400 and re.search(r'class="formfield invalid"[^>]*data-field="Qty__c"',
                                                     bad_type.text)
    assert org.query.execute("SELECT COUNT() FROM Account", org.admin_context()).total_size == before
    assert org.query.execute("SELECT COUNT() FROM Gadget__c", org.admin_context()).total_size == 0


def test_edit_updates_only_what_changed(client: TestClient, org: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    record_id = _create(org, "Account", [{"Name": "Before", "Industry": "Energy", "NumberOfEmployees": 10,
                                          "Description": "keep\nme"}])[0]
    form = client.get(f"/console/r/{record_id}/edit")
    assert form.status_code == 200
    assert 'name="Name" value="Before"' in form.text
    assert re.search(r'<option value="Energy" selected>', form.text)
    assert re.search(r'name="_modified" value="[^"]+"', form.text)
    modified = re.search(r'name="_modified" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
    sent: list[Any] = []
    update = org.records.update
    monkeypatch.setattr(org.records, "update", lambda *args, **kwargs: sent.append(args[2]) or update(*args, **kwargs))
    response = client.post(f"/console/r/{record_id}/edit", data={
        "csrf": client.csrf, "_modified": modified, "Name": "After", "Industry": "Energy",  # type: ignore[attr-defined]
        "NumberOfEmployees": "10", "Description": "keep\r\nme", "OwnerId": org.admin_context().user_id},
        follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].endswith("?done=saved")
    saved = _one(org, f"SELECT Name, Industry, NumberOfEmployees, Description FROM Account WHERE Id = '{record_id}'")
    assert (saved["Name"], saved["Industry"], saved["NumberOfEmployees"]) == ("After", "Energy", 10)
    assert saved["Description"] == "keep\nme"
    assert sent == [[{"Name": "After", "Id": record_id}]]  # only the changed field went to the records service
    page = client.get(response.headers["location"])
    assert "Your changes were saved." in page.text and "<h1>After</h1>" in page.text


def test_edit_clears_emptied_fields_and_reports_unchanged_saves(client: TestClient, org: Any) -> None:
    record_id = _create(org, "Account", [{"Name": "Acme", "Industry": "Energy"}])[0]
    owner = org.admin_context().user_id
    unchanged = client.post(f"/console/r/{record_id}/edit", data={"csrf": client.csrf, "Name": "Acme",  # type: ignore[attr-defined]
                                                                  "Industry": "Energy", "OwnerId": owner},
                            follow_redirects=False)
    assert unchanged.headers["location"].endswith("?done=unchanged")
    cleared = client.post(f"/console/r/{record_id}/edit", data={"csrf": client.csrf, "Name": "Acme",  # type: ignore[attr-defined]
                                                                "Industry": "", "OwnerId": owner},
                          follow_redirects=False)
    assert cleared.status_code == 303
    assert _one(org, f"SELECT Industry FROM Account WHERE Id = '{record_id}'")["Industry"] is None


def test_edit_validation_error_changes_nothing(client: TestClient, org: Any) -> None:
    record_id = _create(org, "Account", [{"Name": "Stays", "Phone": "1"}])[0]
    response = client.post(f"/console/r/{record_id}/edit", data={
        "csrf": client.csrf, "Name": "Forbidden name", "Phone": "2",  # type: ignore[attr-defined]
        "OwnerId": org.admin_context().user_id})
    assert response.status_code == 400
    assert "Forbidden names are not allowed" in response.text
    assert 'name="Name" value="Forbidden name"' in response.text and 'name="Phone" value="2"' in response.text
    assert re.search(r'class="formfield invalid"[^>]*data-field="Name"', response.text)
    saved = _one(org, f"SELECT Name, Phone FROM Account WHERE Id = '{record_id}'")
    assert (saved["Name"], saved["Phone"]) == ("Stays", "1")


def test_edit_over_a_newer_change_is_refused(client: TestClient, org: Any) -> None:
    record_id = _create(org, "Account", [{"Name": "Original"}])[0]
    form = client.get(f"/console/r/{record_id}/edit")
    modified = re.search(r'name="_modified" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
    import time

    time.sleep(0.01)
    org.records.update(org.admin_context(), "Account", [{"Id": record_id, "Name": "Someone else"}])
    response = client.post(f"/console/r/{record_id}/edit", data={
        "csrf": client.csrf, "_modified": modified, "Name": "Mine",  # type: ignore[attr-defined]
        "OwnerId": org.admin_context().user_id})
    assert response.status_code == 400 and "PRECONDITION_FAILED" in response.text
    assert _one(org, f"SELECT Name FROM Account WHERE Id = '{record_id}'")["Name"] == "Someone else"


def test_read_only_fields_are_shown_not_editable(client: TestClient, org: Any) -> None:
    contact = _create(org, "Contact", [{"LastName": "Hopper", "FirstName": "Grace"}])[0]
    form = client.get(f"/console/r/{contact}/edit")
    assert re.search(r'class="formfield readonly"[^>]*data-field="Name"', form.text)
    assert 'name="Name"' not in form.text and "Grace Hopper" in form.text
    assert 'name="LastName" value="Hopper"' in form.text
    # posting a read-only field anyway does not write it
    response = client.post(f"/console/r/{contact}/edit", data={
        "csrf": client.csrf, "LastName": "Hopper", "FirstName": "Grace", "Name": "Hacked",  # type: ignore[attr-defined]
        "OwnerId": org.admin_context().user_id}, follow_redirects=False)
    assert response.status_code == 303
    assert _one(org, f"SELECT Name FROM Contact WHERE Id = '{contact}'")["Name"] == "Grace Hopper"


def test_delete_asks_for_confirmation_and_returns_to_the_list(client: TestClient, org: Any) -> None:
    record_id = _create(org, "Account", [{"Name": "Doomed"}])[0]
    detail = client.get(f"/console/r/{record_id}")
    assert re.search(rf'<form method="post" action="/console/r/{record_id}/delete" data-confirm="[^"]+Doomed',
                     detail.text)
    response = client.post(f"/console/r/{record_id}/delete", data={"csrf": client.csrf},  # type: ignore[attr-defined]
                           follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/console/o/Account?done=deleted"
    assert "The record was deleted." in client.get(response.headers["location"]).text
    assert org.query.execute("SELECT COUNT() FROM Account", org.admin_context()).total_size == 0
    assert org.query.execute("SELECT COUNT() FROM Account", org.admin_context(),
                             include_deleted=True).total_size == 1  # in the recycle bin, as from the API


def test_writes_without_the_csrf_token_are_refused(client: TestClient, org: Any) -> None:
    record_id = _create(org, "Account", [{"Name": "Safe"}])[0]
    owner = org.admin_context().user_id
    for url, data in ((f"/console/r/{record_id}/delete", {}),
                      (f"/console/r/{record_id}/edit", {"Name": "Hacked", "OwnerId": owner}),
                      ("/console/o/Account/new", {"Name": "Injected"})):
        for token in (None, "forged"):
            body = {**data, **({"csrf": token} if token else {})}
            response = client.post(url, data=body, follow_redirects=False)
            assert response.status_code == 403, url
            assert "INVALID_CSRF_TOKEN" in response.text
    names = [r["Name"] for r in org.query.execute("SELECT Name FROM Account", org.admin_context()).records]
    assert names == ["Safe"]


def test_pages_need_a_login(org: Any) -> None:
    with TestClient(build_app(org), base_url="https://testserver") as anonymous:
        for url in ("/console/objects", "/console/o/Account", "/console/r/001000000000000AAA"):
            response = anonymous.get(url, follow_redirects=False)
            assert response.status_code == 303 and response.headers["location"].startswith("/console/login?next=")
        posted = anonymous.post("/console/o/Account/new", data={"Name": "x"}, follow_redirects=False)
        assert posted.status_code == 303
    assert org.query.execute("SELECT COUNT() FROM Account", org.admin_context()).total_size == 0
