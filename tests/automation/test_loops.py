"""Loops in flows: nested actions per item of a child relationship or a query, bulk-safe, with the flow's fault
path and the transaction's governor limits; bad loops stop the load with the file and the key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from interlink.app.org import Org
from interlink.automation import loops
from interlink.automation.flows import load_flows
from interlink.errors import MetadataError
from interlink.testing import backend_org

OBJECTS = {
    "Integration_Error__c": """\
label: Integration Error
fields:
  - {name: Message__c, type: textarea, length: 2000}
""",
    "Printer_Status__e": """\
label: Printer Status
fields:
  - {name: Account_Name__c, type: text, length: 80}
""",
}

FLOWS = {
    # A child relationship: every contact of an account that turns Hot, and a task per contact.
    "Hot_Contacts": """\
object: Account
trigger: update
condition: "Rating = 'Hot'"
when: changed_to_meet
actions:
  - loop:
      name: Each_Contact
      over: Contacts
      actions:
        - update: {object: Contact, id: "{!$Item.Id}", values: {Description: "{!$Record.Name} is hot"}}
        - decision:
            - when: "Email != null"
              actions:
                - create: {object: Task, values: {Subject: "Mail {!$Item.LastName} at {!$Item.Email}",
                                                  WhoId: "{!$Item.Id}", WhatId: "{!$Record.Id}"}}
            - otherwise:
                - create: {object: Task, values: {Subject: "Call {!$Item.LastName} ({!$Item.Account.Name})",
                                                  WhoId: "{!$Item.Id}"}}
""",
    # A query with merge fields (literals, escaped): the account's open cases.
    "Escalate_Open_Cases": """\
object: Account
trigger: update
condition: "Rating = 'Cold'"
actions:
  - loop:
      query: "SELECT Id, Subject FROM Case WHERE AccountId = {!$Record.Id} AND Status != 'Closed'"
      actions:
        - update: {object: Case, id: "{!$Item.Id}", values: {Priority: High, Description: "{!$Record.Name}"}}
""",
    # A failing nested action: the fault path runs for the record whose item failed.
    "Broken_Loop": """\
object: Account
trigger: update
condition: "Rating = 'Warm'"
actions:
  - loop:
      over: Contacts
      actions:
        - create: {object: Contact, values: {FirstName: "{!$Item.FirstName}"}}
fault:
  - create: {object: Integration_Error__c, values: {Name: "{!$Record.Name}", Message__c: "{!$Flow.FaultMessage}"}}
""",
    # Event-triggered: a query on the event's values.
    "Printer_Accounts": """\
object: Printer_Status__e
trigger: event
actions:
  - loop:
      query: "SELECT Id FROM Account WHERE Name = {!$Record.Account_Name__c}"
      actions:
        - update: {object: Account, id: "{!$Item.Id}", values: {Site: "Printer checked"}}
""",
}


def write_flows(root: Path, flows: dict[str, str]) -> Path:
    folder = root / "project" / "metadata" / "flows"
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in flows.items():
        (folder / f"{name}.yaml").write_text(text)
    return root / "project"


@pytest.fixture
def org(store_backend: str, tmp_path: Path) -> Iterator[Org]:
    write_flows(tmp_path, FLOWS)
    with backend_org(tmp_path, store_backend, OBJECTS, unavailable=pytest.skip, bulk_workers=0) as opened:
        yield opened


def query(org: Org, soql: str) -> list[dict[str, Any]]:
    return org.query.execute(soql, org.admin_context()).records


def accounts_with_contacts(org: Org, count: int) -> list[str]:
    context = org.admin_context()
    accounts = [r.id for r in org.records.create(context, "Account", [{"Name": f"Acme {i}"} for i in range(count)])]
    contacts = [{"LastName": f"Person {i}-{j}", "AccountId": account_id,
                 "Email": f"p{i}{j}@example.com" if j % 2 == 0 else None}
                for i, account_id in enumerate(accounts) for j in range(3)]
    assert all(r.success for r in org.records.create(context, "Contact", contacts))
    return [str(a) for a in accounts]


def test_a_loop_over_a_child_relationship_runs_its_actions_once_for_all_items(org: Org) -> None:
    accounts = accounts_with_contacts(org, 3)
    batches: list[int] = []
    org.hooks.register("after_save", lambda event: batches.append(len(event.new)), objects=["Contact"],
                       operations=["update"])
    results = org.records.update(org.admin_context(), "Account", [{"Id": a, "Rating": "Hot"} for a in accounts])
    assert all(r.success for r in results)
    assert batches == [9]  # bulk-safe: one update of the nine contacts, not one per contact or per account
    rows = query(org, "SELECT LastName, Description FROM Contact ORDER BY LastName")
    assert [(r["LastName"], r["Description"]) for r in rows][:2] == [("Person 0-0", "Acme 0 is hot"),
                                                                    ("Person 0-1", "Acme 0 is hot")]
    subjects = sorted(r["Subject"] for r in query(org, "SELECT Subject FROM Task"))
    assert len(subjects) == 9
    assert "Mail Person 1-2 at p12@example.com" in subjects and "Call Person 2-1 (Acme 2)" in subjects


def test_a_loop_over_a_query_uses_merge_fields_as_escaped_literals(org: Org) -> None:
    context = org.admin_context()
    (account,) = org.records.create(context, "Account", [{"Name": "O'Brien & Sons"}])
    (other,) = org.records.create(context, "Account", [{"Name": "Other"}])
    org.records.create(context, "Case", [
        {"Subject": "Open", "AccountId": account.id, "Status": "New"},
        {"Subject": "Done", "AccountId": account.id, "Status": "Closed"},
        {"Subject": "Elsewhere", "AccountId": other.id, "Status": "New"}])
    (result,) = org.records.update(context, "Account", [{"Id": account.id, "Rating": "Cold"}])
    assert result.success, result.errors
    rows = {r["Subject"]: r for r in query(org, "SELECT Subject, Priority, Description FROM Case")}
    assert (rows["Open"]["Priority"], rows["Open"]["Description"]) == ("High", "O'Brien & Sons")
    assert rows["Done"]["Priority"] != "High" and rows["Elsewhere"]["Priority"] != "High"


def test_an_event_triggered_flow_loops_over_a_query(org: Org) -> None:
    context = org.admin_context()
    org.records.create(context, "Account", [{"Name": "Printers Inc"}, {"Name": "Other"}])
    org.event_flows.prime()
    org.records.create(context, "Printer_Status__e", [{"Account_Name__c": "Printers Inc"}])
    while org.event_flows.run_once("test"):
        pass
    assert {r["Name"]: r["Site"] for r in query(org, "SELECT Name, Site FROM Account")} == {
        "Printers Inc": "Printer checked", "Other": None}


def test_a_failure_inside_a_loop_runs_the_fault_path_for_its_record(org: Org) -> None:
    accounts = accounts_with_contacts(org, 2)
    results = org.records.update(org.admin_context(), "Account", [{"Id": a, "Rating": "Warm"} for a in accounts])
    assert all(r.success for r in results)  # the fault path handled it: the save goes on
    errors = query(org, "SELECT Name, Message__c FROM Integration_Error__c ORDER BY Name")
    assert [e["Name"] for e in errors] == ["Acme 0", "Acme 1"]
    assert errors[0]["Message__c"].startswith("REQUIRED_FIELD_MISSING")
    assert len(query(org, "SELECT Id FROM Contact")) == 6  # nothing of the failed creates was kept


def test_the_iteration_limit_fails_the_records_with_the_platform_message(org: Org,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loops, "MAX_LOOP_ITEMS", 5)
    accounts = accounts_with_contacts(org, 2)  # six contacts
    results = org.records.update(org.admin_context(), "Account", [{"Id": a, "Rating": "Hot"} for a in accounts])
    (error,) = results[0].errors
    assert error.error_code == "CANNOT_EXECUTE_FLOW_TRIGGER"
    assert "Each_Contact: Too many loop iterations: 6" in error.message
    assert query(org, "SELECT Id FROM Task") == []


def test_the_query_row_limit_counts_the_loops_rows(org: Org, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loops, "MAX_QUERY_ROWS", 2)
    accounts = accounts_with_contacts(org, 1)  # three contacts
    (result,) = org.records.update(org.admin_context(), "Account", [{"Id": accounts[0], "Rating": "Hot"}])
    assert "Too many query rows: 3" in result.errors[0].message


BAD = [
    ("over: Opportunitiez", "Account has no child relationship 'Opportunitiez'"),
    ("over: Contacts\n      name: X", None),  # fine: checked by the actions below
    ("query: \"SELECT Id, Nope__c FROM Case\"", "No such column 'Nope__c'"),
    ("query: \"SELECT Subject FROM Case\"", "selects records with their Id"),
    ("query: \"SELECT Id FROM Case WHERE AccountId = {!$Record.Nope}\"", "Account has no field Nope"),
    ("collection: Answer.items", "loops over a callout's answer run in API flows"),
]


@pytest.mark.parametrize(("source", "message"), BAD)
def test_bad_loops_stop_the_load_with_the_file_and_key(tmp_path: Path, source: str, message: str | None) -> None:
    project = tmp_path / "project"
    with backend_org(tmp_path, "sqlite", OBJECTS, bulk_workers=0) as org:
        text = (f"object: Account\ntrigger: update\nactions:\n  - loop:\n      {source}\n      actions:\n"
                "        - update: {object: Contact, id: \"{!$Item.Id}\", values: {Description: \"{!$Item.Nope}\"}}\n")
        write_flows(tmp_path, {"Bad_Loop": text})
        with pytest.raises(MetadataError) as raised:
            load_flows(project, org.store.schema, kinds=org.flows.kinds)
    assert "Bad_Loop.yaml: actions[1]" in raised.value.message
    assert (message or "{!$Item.Nope}: Contact has no field Nope") in raised.value.message


@pytest.mark.parametrize(("action", "message"), [
    ("update: {Rating: Hot}", "inside a loop, update records by id"),
    ("loop: {over: Contacts, actions: []}", "loops do not nest"),
    ("create: {object: Task, values: {Subject: \"{!$Item.Title2}\"}}", "{!$Item.Title2}: Contact has no field Title2"),
])
def test_what_a_loop_may_run_is_checked(tmp_path: Path, action: str, message: str) -> None:
    with backend_org(tmp_path, "sqlite", OBJECTS, bulk_workers=0) as org:
        write_flows(tmp_path, {"Bad_Loop": "object: Account\ntrigger: update\nactions:\n  - loop:\n"
                                           f"      over: Contacts\n      actions:\n        - {action}\n"})
        with pytest.raises(MetadataError) as raised:
            load_flows(tmp_path / "project", org.store.schema, kinds=org.flows.kinds)
    assert "Bad_Loop.yaml: actions[1]" in raised.value.message and message in raised.value.message
