"""Flows that update another record by its id (``update: {object, id, values}``): the platform's Update Records
element filtered on Id, in record-triggered and platform-event-triggered flows; and the sample org's UI Update flows."""

from __future__ import annotations

from pathlib import Path

import pytest

from interlink.errors import MetadataError
from interlink.testing import backend_org, local_org

PAYMENT = {"Payment__e": """\
label: Payment
fields:
  - {name: CaseId__c, type: text, length: 18}
  - {name: Amount__c, type: number, precision: 16, scale: 2}
"""}


def write_flow(root: Path, name: str, text: str) -> None:
    folder = root / "project" / "metadata" / "flows"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(text)


def test_an_event_flow_updates_the_record_the_event_names(tmp_path: Path) -> None:
    write_flow(tmp_path, "Record_Payment", """\
object: Payment__e
trigger: event
actions:
  - update:
      object: Case
      id: "{!$Record.CaseId__c}"
      values: {Status: Working, Description: "Paid {!$Record.Amount__c}"}
""")
    with backend_org(tmp_path, "sqlite", PAYMENT, bulk_workers=0) as org:
        context = org.admin_context()
        (case,) = org.records.create(context, "Case", [{"Subject": "Paying"}])
        org.records.create(context, "Payment__e", [{"CaseId__c": case.id, "Amount__c": 12.5},
                                                   {"CaseId__c": "500000000000000AAA", "Amount__c": 1},
                                                   {"Amount__c": 2}])
        while org.event_flows.run_once("test"):
            pass
        (row,) = org.query.execute(f"SELECT Status, Description FROM Case WHERE Id = '{case.id}'", context).records
        assert (row["Status"], row["Description"]) == ("Working", "Paid 12.5")
        # The events naming no case or a missing one failed alone (logged); the checkpoint moved past them.
        assert not org.event_flows.run_once("test")


def test_a_record_flow_updates_a_parent_by_id_in_the_same_transaction(tmp_path: Path) -> None:
    write_flow(tmp_path, "Touch_Account", """\
object: Contact
trigger: create
actions:
  - update:
      object: Account
      id: "{!$Record.AccountId}"
      values: {Description: "Latest contact: {!$Record.LastName}"}
""")
    with backend_org(tmp_path, "sqlite", {}, bulk_workers=0) as org:
        context = org.admin_context()
        (account,) = org.records.create(context, "Account", [{"Name": "Acme"}])
        (made,) = org.records.create(context, "Contact", [{"LastName": "Lovelace", "AccountId": account.id}])
        assert made.success
        (row,) = org.query.execute("SELECT Description FROM Account", context).records
        assert row["Description"] == "Latest contact: Lovelace"
        (orphan,) = org.records.create(context, "Contact", [{"LastName": "Alone"}])  # no account: nothing to update
        assert orphan.success


@pytest.mark.parametrize(("flow", "message"), [
    ("object: Case\ntrigger: update\ntiming: before\nactions:\n"
     "  - update: {object: Account, id: \"{!$Record.AccountId}\", values: {Rating: Hot}}\n",
     "before-save flow can only update the triggering record"),
    ("object: Payment__e\ntrigger: event\nactions:\n  - update: {Amount__c: 1}\n",
     "update one by id"),
    ("object: Payment__e\ntrigger: event\nactions:\n"
     "  - update: {object: Nope__c, id: \"{!$Record.CaseId__c}\", values: {Status: New}}\n",
     "is not an object"),
    ("object: Payment__e\ntrigger: event\nactions:\n"
     "  - update: {object: Case, id: \"{!$Record.Nope__c}\", values: {Status: New}}\n",
     "has no field Nope__c"),
    ("object: Payment__e\ntrigger: event\nactions:\n"
     "  - update: {object: Case, id: \"{!$Record.CaseId__c}\", values: {Nope: 1}}\n",
     "Case has no field Nope"),
])
def test_bad_updates_by_id_are_refused_when_flows_load(tmp_path: Path, flow: str, message: str) -> None:
    write_flow(tmp_path, "Bad", flow)
    with pytest.raises(MetadataError, match=message), backend_org(tmp_path, "sqlite", PAYMENT, bulk_workers=0):
        pass


def test_the_sample_org_records_payments_and_announces_successful_closes(tmp_path: Path) -> None:
    with local_org(tmp_path / "org", sample_data=True, bulk_workers=0) as org:
        context = org.admin_context()
        (case,) = org.records.create(context, "Case", [{"Subject": "Paying by phone"}])
        org.records.create(context, "Payment_Received__e",
                           [{"CaseId__c": case.id, "Amount__c": 120.5, "Status__c": "Paid"}])
        while org.event_flows.run_once("test"):
            pass
        (row,) = org.query.execute(f"SELECT Payment_Status__c, Payment_Amount__c FROM Case WHERE Id = '{case.id}'",
                                   context).records
        assert (row["Payment_Status__c"], row["Payment_Amount__c"]) == ("Paid", 120.5)
        topic = org.bus.topic("/event/Case_Closed__e")
        start = org.bus.latest_replay_id(topic)
        org.records.update(context, "Case", [{"Id": case.id, "Status": "Closed", "Resolution__c": "Unsuccessful"}])
        org.records.update(context, "Case", [{"Id": case.id, "Resolution__c": "Successful"}])
        org.records.update(context, "Case", [{"Id": case.id, "Subject": "Still closed, still successful"}])
        events = [org.bus.decode(e) for e in org.bus.read(topic, start, 10)]
        assert [(e["CaseId__c"], e["Resolution__c"]) for e in events] == [(case.id, "Successful")]
        assert events[0]["OwnerId__c"] == context.user_id
