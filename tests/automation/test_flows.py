"""Record-triggered flows from ``metadata/flows/*.yaml`` (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from interlink.app.org import Org
from interlink.errors import MetadataError
from interlink.testing import backend_org

OBJECTS = {
    "Integration_Error__c": """\
label: Integration Error
fields:
  - {name: Message__c, type: textarea, length: 2000}
  - {name: Record_Id__c, type: text, length: 18}
""",
    "Order_Request__e": """\
label: Order Request
publishBehavior: PublishAfterCommit
fields:
  - {name: OpportunityId__c, type: text, length: 18}
  - {name: Amount__c, type: number, precision: 16, scale: 2}
""",
}

FLOWS = {
    "Hot_Accounts": """\
object: Account
trigger: create_or_update
timing: before
condition: "AnnualRevenue > 1000000"
actions:
  - update: {Rating: Hot, Description: "Rated by {!$User.Id}"}
""",
    "Closed_Won_Order_Request": """\
object: Opportunity
trigger: update
condition: "StageName = 'Closed Won'"
when: changed_to_meet
actions:
  - publish:
      event: Order_Request__e
      values: {OpportunityId__c: "{!$Record.Id}", Amount__c: "{!$Record.Amount}"}
  - create:
      object: Task
      values: {Subject: "Order for {!$Record.Name} (was {!$Record__Prior.StageName})", WhatId: "{!$Record.Id}"}
""",
    "Case_Follow_Up": """\
object: Case
trigger: create
condition: "Priority = 'High'"
actions:
  - create:
      object: Task
      values: {Subject: "{!$Record.Subject}", WhatId: "{!$Record.Id}", OwnerId: 005000000000000AAA}
fault:
  - create:
      object: Integration_Error__c
      values: {Name: "Case follow-up failed", Message__c: "{!$Flow.FaultMessage}", Record_Id__c: "{!$Record.Id}"}
""",
    "Contact_Without_Fault": """\
object: Contact
trigger: create
condition: "LastName = 'Broken'"
actions:
  - create: {object: Task, values: {Subject: "x", OwnerId: 005000000000000AAA}}
""",
}


def write_flows(root: Path, flows: dict[str, str]) -> None:
    folder = root / "project" / "metadata" / "flows"
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in flows.items():
        (folder / f"{name}.yaml").write_text(text)


@pytest.fixture
def org(store_backend: str, tmp_path: Path) -> Iterator[Org]:
    write_flows(tmp_path, FLOWS)
    with backend_org(tmp_path, store_backend, OBJECTS, unavailable=pytest.skip, bulk_workers=0) as opened:
        yield opened


def query(org: Org, soql: str) -> list[dict[str, Any]]:
    return org.query.execute(soql, org.admin_context()).records


def test_a_before_save_flow_sets_fields_on_matching_records(org: Org) -> None:
    context = org.admin_context()
    _big, small = org.records.create(context, "Account", [{"Name": "Big", "AnnualRevenue": 2_000_000},
                                                         {"Name": "Small", "AnnualRevenue": 5}])
    rows = {r["Name"]: r for r in query(org, "SELECT Name, Rating, Description FROM Account")}
    assert rows["Big"]["Rating"] == "Hot" and rows["Big"]["Description"] == f"Rated by {context.user_id}"
    assert rows["Small"]["Rating"] is None
    org.records.update(context, "Account", [{"Id": small.id, "AnnualRevenue": 3_000_000}])
    assert query(org, f"SELECT Rating FROM Account WHERE Id = '{small.id}'")[0]["Rating"] == "Hot"


def test_an_after_save_flow_publishes_and_creates_only_when_the_record_changes_to_meet(org: Org) -> None:
    context = org.admin_context()
    deals = org.records.create(context, "Opportunity", [
        {"Name": f"Deal {i}", "StageName": "Prospecting", "CloseDate": "2026-12-31", "Amount": 100 * (i + 1)}
        for i in range(2)])
    org.records.update(context, "Opportunity", [{"Id": d.id, "StageName": "Closed Won"} for d in deals])
    org.records.update(context, "Opportunity", [{"Id": deals[0].id, "Amount": 999}])  # still Closed Won: no rerun
    tasks = query(org, "SELECT Subject, WhatId FROM Task ORDER BY Subject")
    assert [t["Subject"] for t in tasks] == ["Order for Deal 0 (was Prospecting)", "Order for Deal 1 (was Prospecting)"]
    topic = org.bus.topic("/event/Order_Request__e")
    events = [org.bus.decode(e) for e in org.bus.read(topic, 0, 100)]
    assert sorted((e["OpportunityId__c"], e["Amount__c"]) for e in events) == sorted(
        [(deals[0].id, 100.0), (deals[1].id, 200.0)])


def test_a_failing_action_runs_the_fault_path_and_the_save_goes_on(org: Org) -> None:
    (case,) = org.records.create(org.admin_context(), "Case", [{"Subject": "Printer on fire", "Priority": "High"}])
    assert case.success
    (error,) = query(org, "SELECT Name, Message__c, Record_Id__c FROM Integration_Error__c")
    assert error["Record_Id__c"] == case.id
    assert error["Message__c"] == "INVALID_CROSS_REFERENCE_KEY: Owner ID: invalid cross reference id"
    assert query(org, "SELECT Id FROM Task") == []


def test_without_a_fault_path_the_record_fails_with_the_platform_error(org: Org) -> None:
    broken, fine = org.records.create(org.admin_context(), "Contact", [{"LastName": "Broken"}, {"LastName": "Ok"}])
    assert fine.success and not broken.success
    (error,) = broken.errors
    assert error.error_code == "CANNOT_EXECUTE_FLOW_TRIGGER"
    assert error.message.startswith(
        "We can't save this record because the \u201cContact_Without_Fault\u201d flow failed:")
    assert [c["LastName"] for c in query(org, "SELECT LastName FROM Contact")] == ["Ok"]


def test_flows_run_for_bulk_jobs(org: Org) -> None:
    context = org.admin_context()
    job = org.bulk.create_ingest(context, {"object": "Account", "operation": "insert"})
    org.bulk.upload(context, job.id, b"Name,AnnualRevenue\nBulk Big,5000000\nBulk Small,1\n")
    org.bulk.set_state(context, job.id, "V2Ingest", "UploadComplete")
    assert org.worker.run_once()
    rows = {r["Name"]: r["Rating"] for r in query(org, "SELECT Name, Rating FROM Account")}
    assert rows == {"Bulk Big": "Hot", "Bulk Small": None}


def test_a_flow_updating_its_own_record_after_save_stops_at_the_depth_limit(tmp_path: Path) -> None:
    write_flows(tmp_path, {"Echo": """\
object: Account
trigger: update
actions:
  - update: {Description: "touched at {!$Flow.CurrentDateTime}"}
"""})
    with backend_org(tmp_path, "sqlite", {}, bulk_workers=0) as org:
        context = org.admin_context()
        (account,) = org.records.create(context, "Account", [{"Name": "Loop"}])
        (result,) = org.records.update(context, "Account", [{"Id": account.id, "Phone": "1"}])
        assert not result.success and "maximum trigger depth exceeded" in result.errors[0].message


@pytest.mark.parametrize(("text", "message"), [
    ("object: Nope__c\ntrigger: create\nactions: [{update: {Name: x}}]\n", "is not an object of this org"),
    ("object: Account\ntrigger: insert\nactions: [{update: {Name: x}}]\n", "trigger: use one of"),
    ("object: Account\ntrigger: create\nactions: []\n", "needs at least one action"),
    ("object: Account\ntrigger: create\nactions: [{update: {Nope__c: x}}]\n", "Account has no field Nope__c"),
    ("object: Account\ntrigger: create\ntiming: before\nactions: [{create: {object: Task, values: {Subject: x}}}]\n",
     "a before-save flow can only update the triggering record"),
    ("object: Account\ntrigger: create\ncondition: \"Nope = 1\"\nactions: [{update: {Name: x}}]\n", "Nope"),
    ("object: Account\ntrigger: create\nactions: [{update: {Name: \"{!$Record.Nope}\"}}]\n", "has no field Nope"),
    ("object: Account\ntrigger: create\nactions: [{update: {Name: \"{!$Flow.FaultMessage}\"}}]\n",
     "$Flow.FaultMessage in fault actions"),
    ("object: Account\ntrigger: create\nchanged: [Name]\nactions: [{update: {Name: x}}]\n", "apply to update"),
    ("object: Account\ntrigger: create\nactions: [{publish: {event: Task, values: {Subject: x}}}]\n",
     "is not a platform event"),
    ("object: Account\ntrigger: create\nbogus: 1\nactions: [{update: {Name: x}}]\n", "unknown key(s) bogus"),
])
def test_a_bad_flow_file_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    write_flows(tmp_path, {"Bad": text})
    with pytest.raises(MetadataError) as caught, backend_org(tmp_path, "sqlite", {}):
        pass
    assert "Bad.yaml" in caught.value.message and message in caught.value.message


def test_the_sample_org_asks_for_an_order_when_a_deal_is_won(tmp_path: Path) -> None:
    from interlink.testing import local_org

    with local_org(tmp_path / "org", sample_data=True, bulk_workers=0) as org:
        context = org.admin_context()
        (deal,) = org.records.create(context, "Opportunity", [
            {"Name": "Won deal", "StageName": "Negotiation/Review", "CloseDate": "2026-12-31", "Amount": 1234}])
        topic = org.bus.topic("/event/Order_Request__e")
        before = len(list(org.bus.read(topic, 0, 1000)))
        org.records.update(context, "Opportunity", [{"Id": deal.id, "StageName": "Closed Won"}])
        events = [org.bus.decode(e) for e in org.bus.read(topic, 0, 1000)][before:]
        assert [(e["OpportunityId__c"], e["Amount__c"]) for e in events] == [(deal.id, 1234.0)]


def test_merge_fields_reach_parents_through_lookups(tmp_path: Path) -> None:
    write_flows(tmp_path, {"Welcome": """\
object: Contact
trigger: create
actions:
  - create:
      object: Task
      values: {Subject: "Welcome {!$Record.FirstName} of {!$Record.Account.Name} ({!$Record.Account.Owner.Name})",
               WhatId: "{!$Record.AccountId}"}
"""})
    with backend_org(tmp_path, "sqlite", {}, bulk_workers=0) as org:
        context = org.admin_context()
        (account,) = org.records.create(context, "Account", [{"Name": "Acme"}])
        org.records.create(context, "Contact", [{"FirstName": "Ada", "LastName": "L", "AccountId": account.id},
                                                {"FirstName": "Bo", "LastName": "Lonely"}])
        subjects = sorted(t["Subject"] for t in query(org, "SELECT Subject FROM Task"))
        assert subjects == ["Welcome Ada of Acme (Org Admin)", "Welcome Bo of  ()"]


def test_a_merge_field_through_an_unknown_relationship_is_refused(tmp_path: Path) -> None:
    write_flows(tmp_path, {"Bad": "object: Contact\ntrigger: create\nactions:\n"
                                  "  - create: {object: Task, values: {Subject: \"{!$Record.Employer.Name}\"}}\n"})
    with pytest.raises(MetadataError) as caught, backend_org(tmp_path, "sqlite", {}):
        pass
    assert "Contact has no relationship Employer" in caught.value.message


def test_a_decision_sends_each_record_down_its_first_matching_branch(tmp_path: Path) -> None:
    write_flows(tmp_path, {"Tiering": """\
object: Account
trigger: create
timing: before
actions:
  - decision:
      - when: "AnnualRevenue >= 1000000"
        actions:
          - update: {Rating: Hot}
      - when: "AnnualRevenue >= 10000"
        actions:
          - update: {Rating: Warm}
      - otherwise:
          - update: {Rating: Cold}
  - update: {Site: Tiered}
"""})
    with backend_org(tmp_path, "sqlite", {}, bulk_workers=0) as org:
        org.records.create(org.admin_context(), "Account", [
            {"Name": "A", "AnnualRevenue": 5_000_000}, {"Name": "B", "AnnualRevenue": 50_000}, {"Name": "C"}])
        rows = query(org, "SELECT Name, Rating, Site FROM Account ORDER BY Name")
        assert [(r["Name"], r["Rating"], r["Site"]) for r in rows] == [
            ("A", "Hot", "Tiered"), ("B", "Warm", "Tiered"), ("C", "Cold", "Tiered")]


@pytest.mark.parametrize(("decision", "message"), [
    ("  - decision: []\n", "decision takes a list of branches"),
    ("  - decision:\n      - otherwise: [{update: {Rating: Hot}}]\n      - when: \"Name = 'x'\"\n"
     "        actions: [{update: {Rating: Hot}}]\n", "otherwise comes last"),
    ("  - decision:\n      - when: \"Nope__c = 1\"\n        actions: [{update: {Rating: Hot}}]\n", "Nope__c"),
])
def test_bad_decisions_are_clear_errors(tmp_path: Path, decision: str, message: str) -> None:
    write_flows(tmp_path, {"Bad": "object: Account\ntrigger: create\nactions:\n" + decision})
    with pytest.raises(MetadataError) as caught, backend_org(tmp_path, "sqlite", {}):
        pass
    assert message in caught.value.message
