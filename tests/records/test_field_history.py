"""Field history tracking: trackHistory/enableHistory metadata, the generated read-only history objects, and the
rows the one write path writes for every API (REST, composite, Bulk 2.0), in the same transaction as the change.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from starlette.testclient import TestClient

from interlink.app.org import Org
from interlink.errors import MetadataError
from interlink.metadata.loader import load_project
from interlink.metadata.spec import build_object, object_to_spec
from interlink.testing import backend_org, local_org, rest_client

V = "/services/data/v66.0"

ACCOUNT = """
enableHistory: true
fields:
  - {name: Industry, trackHistory: true}
  - {name: OwnerId, trackHistory: true}
  - {name: AnnualRevenue, trackHistory: true}
  - {name: Rating, trackHistory: false}
  - {name: Notes__c, type: longtextarea, trackHistory: true}
  - {name: Code__c, type: text, length: 255, trackHistory: true}
  - {name: Partner__c, type: lookup, referenceTo: Account, trackHistory: true}
  - {name: Since__c, type: date, trackHistory: true}
  - {name: Active__c, type: checkbox, trackHistory: true}
"""
INVOICE = """
label: Invoice
enableHistory: true
fields:
  - {name: Amount__c, type: currency, trackHistory: true}
  - {name: Status__c, type: picklist, values: [Draft, Sent, Paid], trackHistory: true}
  - {name: Memo__c, type: text}
"""
OPPORTUNITY = """
fields:
  - {name: StageName, trackHistory: true}
"""


@pytest.fixture
def org(tmp_path: Path, store_backend: str) -> Iterator[Org]:
    with backend_org(tmp_path, store_backend, {"Account": ACCOUNT, "Invoice__c": INVOICE,
                                                "Opportunity": OPPORTUNITY},
                     unavailable=pytest.skip, bulk_workers=0) as opened:
        yield opened


@pytest.fixture
def api(org: Org) -> TestClient:
    return rest_client(org)


def query(api: TestClient, soql: str, *, all_rows: bool = False) -> list[dict[str, Any]]:
    response = api.get(f"{V}/{'queryAll' if all_rows else 'query'}", params={"q": soql})
    assert response.status_code == 200, response.text
    return response.json()["records"]  # type: ignore[no-any-return]


def history(api: TestClient, record_id: str, *, all_rows: bool = False) -> list[tuple[Any, ...]]:
    rows = query(api, "SELECT Field, DataType, OldValue, NewValue, CreatedById FROM AccountHistory "
                      f"WHERE AccountId = '{record_id}'", all_rows=all_rows)
    return sorted(((r["Field"], r["DataType"], r["OldValue"], r["NewValue"]) for r in rows),
                  key=lambda row: row[0].lower())


def create(api: TestClient, sobject: str, body: dict[str, Any]) -> str:
    response = api.post(f"{V}/sobjects/{sobject}/", json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]  # type: ignore[no-any-return]


# -- metadata ------------------------------------------------------------------------------------------------------


def test_history_objects_are_generated_with_the_platforms_names_fields_and_prefix(org: Org, api: TestClient) -> None:
    schema = org.store.schema
    account_history = schema.object("AccountHistory")
    assert account_history is not None and account_history.history_of == "Account"
    assert [f.name for f in account_history.fields] == ["Id", "IsDeleted", "AccountId", "CreatedById", "CreatedDate",
                                                        "Field", "DataType", "OldValue", "NewValue"]
    invoice_history = schema.object("Invoice__History")
    assert invoice_history is not None and invoice_history.has_field("ParentId")
    assert schema.object("OpportunityFieldHistory") is not None  # a tracked standard field enables history
    assert schema.object("OpportunityHistory") is None and schema.object("ContactHistory") is None
    assert {o.key_prefix for o in schema if o.history_of} == {"017"}

    described = api.get(f"{V}/sobjects/AccountHistory/describe").json()
    assert (described["createable"], described["updateable"], described["deletable"], described["queryable"]) == \
        (False, False, False, True)
    assert described["keyPrefix"] == "017"
    parent = next(f for f in described["fields"] if f["name"] == "AccountId")
    assert parent["referenceTo"] == ["Account"] and parent["relationshipName"] == "Account"
    children = api.get(f"{V}/sobjects/Account/describe").json()["childRelationships"]
    assert {"childSObject": "AccountHistory", "field": "AccountId", "relationshipName": "Histories"}.items() <= \
        next(c for c in children if c["childSObject"] == "AccountHistory").items()
    custom = api.get(f"{V}/sobjects/Invoice__c/describe").json()["childRelationships"]
    assert any(c["childSObject"] == "Invoice__History" and c["relationshipName"] == "Histories" for c in custom)


def _project(tmp_path: Path, objects: dict[str, Any]) -> Path:
    folder = tmp_path / "project" / "metadata" / "objects"
    folder.mkdir(parents=True, exist_ok=True)
    for name, spec in objects.items():
        (folder / f"{name}.yaml").write_text(spec if isinstance(spec, str) else yaml.safe_dump(spec))
    return tmp_path / "project"


@pytest.mark.parametrize(("objects", "message"), [
    ({"Thing__c": {"fields": [{"name": "A__c", "type": "text", "trackHistory": True}]}},
     "Thing__c.A__c has trackHistory, but Thing__c does not enable history"),
    ({"Thing__c": {"enableHistory": True, "fields": [{"name": f"F{i}__c", "type": "text", "trackHistory": True}
                                                       for i in range(21)]}},
     "Thing__c tracks 21 fields; at most 20 fields per object can be tracked"),
    ({"Task": {"enableHistory": True}}, "Task does not support field history tracking"),
    ({"Thing__c": {"enableHistory": True, "nameField": {"type": "autonumber", "trackHistory": True}}},
     "Thing__c.Name cannot be tracked"),
    ({"Account": {"fields": [{"name": "Industry", "trackHistory": True}], "enableHistory": False}},
     "Account.Industry has trackHistory, but Account does not enable history"),
    ({"Account": {"fields": [{"name": "Nope__c", "trackHistory": True}]}}, "field Nope__c has no type"),
    ({"AccountHistory": {"label": "Mine"}}, "AccountHistory is not a standard object"),
])
def test_bad_history_metadata_is_refused_with_a_clear_error(tmp_path: Path, objects: dict[str, Any],
                                                           message: str) -> None:
    with pytest.raises(MetadataError, match=message.replace(".", r"\.").replace("(", r"\(")):
        load_project(_project(tmp_path, objects))


def test_twenty_tracked_fields_and_untracking_load(tmp_path: Path) -> None:
    fields = [{"name": f"F{i}__c", "type": "text", "trackHistory": True} for i in range(20)]
    schema = load_project(_project(tmp_path, {"Thing__c": {"enableHistory": True, "fields": fields}})).schema
    thing = schema.object("Thing__c")
    assert thing is not None and len(thing.tracked_fields) == 20
    assert schema.object("Thing__History") is not None


def test_specs_round_trip_through_the_store_format(tmp_path: Path) -> None:
    schema = load_project(_project(tmp_path, {"Account": ACCOUNT, "Invoice__c": INVOICE})).schema
    for name in ("Account", "Invoice__c", "AccountHistory", "Invoice__History"):
        obj = schema.object(name)
        assert obj is not None
        assert build_object(object_to_spec(obj), "stored") == obj, name
    account = schema.object("Account")
    assert account is not None and account.field("OwnerId").track_history  # type: ignore[union-attr]
    assert {f.name for f in account.tracked_fields} == {"Industry", "OwnerId", "AnnualRevenue", "Notes__c",
                                                         "Code__c", "Partner__c", "Since__c", "Active__c"}


def test_sfdx_source_enable_history_and_track_history(tmp_path: Path) -> None:
    project = tmp_path / "sfdx"
    base = project / "force-app" / "main" / "default" / "objects"
    (project / "sfdx-project.json").parent.mkdir(parents=True, exist_ok=True)
    (project / "sfdx-project.json").write_text('{"packageDirectories": [{"path": "force-app"}]}')
    ns = 'xmlns="http://soap.sforce.com/2006/04/metadata"'
    (base / "Ticket__c" / "fields").mkdir(parents=True)
    (base / "Ticket__c" / "Ticket__c.object-meta.xml").write_text(
        f'<CustomObject {ns}><label>Ticket</label><pluralLabel>Tickets</pluralLabel>'
        '<enableHistory>true</enableHistory><nameField><label>Ticket Name</label><type>Text</type></nameField>'
        '</CustomObject>')
    (base / "Ticket__c" / "fields" / "Priority__c.field-meta.xml").write_text(
        f'<CustomField {ns}><fullName>Priority__c</fullName><label>Priority</label><type>Text</type>'
        '<length>20</length><trackHistory>true</trackHistory></CustomField>')
    (base / "Account" / "fields").mkdir(parents=True)
    (base / "Account" / "Account.object-meta.xml").write_text(
        f'<CustomObject {ns}><enableHistory>true</enableHistory></CustomObject>')
    (base / "Account" / "fields" / "Industry.field-meta.xml").write_text(
        f'<CustomField {ns}><fullName>Industry</fullName><trackHistory>true</trackHistory><type>Picklist</type>'
        '</CustomField>')
    (base / "Account" / "fields" / "OwnerId.field-meta.xml").write_text(
        f'<CustomField {ns}><fullName>OwnerId</fullName><trackHistory>true</trackHistory><type>Lookup</type>'
        '</CustomField>')
    (base / "Account" / "fields" / "Site.field-meta.xml").write_text(
        f'<CustomField {ns}><fullName>Site</fullName><trackHistory>false</trackHistory></CustomField>')
    (base / "Task" / "fields").mkdir(parents=True)
    (base / "Task" / "Task.object-meta.xml").write_text(
        f'<CustomObject {ns}><enableHistory>true</enableHistory></CustomObject>')
    loaded = load_project(project)
    ticket = loaded.schema.object("Ticket__c")
    account = loaded.schema.object("Account")
    assert ticket is not None and ticket.enable_history and [f.name for f in ticket.tracked_fields] == ["Priority__c"]
    assert account is not None and {f.name for f in account.tracked_fields} == {"Industry", "OwnerId"}
    assert account.field("Industry").picklist_values  # type: ignore[union-attr]  # only trackHistory changed
    assert loaded.schema.object("Ticket__History") is not None and loaded.schema.object("AccountHistory") is not None
    assert any("Task.object-meta.xml: enableHistory ignored" in w for w in loaded.warnings)
    assert any("Account.Site ignored" in w for w in loaded.warnings)


# -- writing -------------------------------------------------------------------------------------------------------


def test_rest_create_and_update_write_one_row_per_changed_tracked_field(org: Org, api: TestClient) -> None:
    partner = create(api, "Account", {"Name": "Partner"})
    account = create(api, "Account", {"Name": "Acme", "Industry": "Banking", "AnnualRevenue": 1000,
                                      "Since__c": "2024-01-31", "Code__c": "A" * 255})
    assert history(api, account) == [("created", None, None, None)]

    response = api.patch(f"{V}/sobjects/Account/{account}", json={
        "Industry": "Energy", "AnnualRevenue": 1000.0, "Rating": "Hot", "Notes__c": "n" * 300,
        "Partner__c": partner, "Since__c": "2024-02-29", "Active__c": True, "Code__c": "B" * 255})
    assert response.status_code == 204, response.text
    rows = history(api, account)
    assert rows == [
        ("Active__c", "Boolean", "false", "true"),
        ("Code__c", "Text", "A" * 255, "B" * 255),
        ("created", None, None, None),
        ("Industry", "DynamicEnum", "Banking", "Energy"),
        ("Notes__c", "TextArea", None, None),  # a long text area: changed, values not kept
        ("Partner__c", "EntityId", None, partner),
        ("Since__c", "DateOnly", "2024-01-31", "2024-02-29"),
    ]  # AnnualRevenue did not change (1000 == 1000.0), Rating is not tracked

    user = api.get(f"{V}/query", params={"q": "SELECT Id FROM User"}).json()["records"][0]["Id"]
    owner = org.records.create(org.admin_context().as_system(), "User", [{
        "Username": "rep@example.com", "LastName": "Rep", "Email": "rep@example.com", "Alias": "rep"}])[0].id
    assert api.patch(f"{V}/sobjects/Account/{account}", json={"OwnerId": owner}).status_code == 204
    owner_row = query(api, f"SELECT Field, DataType, OldValue, NewValue, CreatedById, CreatedDate FROM AccountHistory "
                           f"WHERE AccountId = '{account}' AND Field = 'Owner'")
    assert [(r["DataType"], r["OldValue"], r["NewValue"]) for r in owner_row] == [("EntityId", user, owner)]
    record = api.get(f"{V}/sobjects/Account/{account}").json()
    assert owner_row[0]["CreatedById"] == user and owner_row[0]["CreatedDate"] == record["LastModifiedDate"]


def test_histories_child_subquery_and_custom_object_history(org: Org, api: TestClient) -> None:
    invoice = create(api, "Invoice__c", {"Name": "INV-1", "Amount__c": 10, "Status__c": "Draft"})
    api.patch(f"{V}/sobjects/Invoice__c/{invoice}", json={"Amount__c": 12.5, "Status__c": "Sent", "Memo__c": "x"})
    rows = query(api, "SELECT Name, (SELECT Field, OldValue, NewValue FROM Histories) FROM Invoice__c")
    assert sorted(((h["Field"], h["OldValue"], h["NewValue"]) for h in rows[0]["Histories"]["records"]),
                  key=lambda row: row[0].lower()) == [
        ("Amount__c", "10.0", "12.5"), ("created", None, None), ("Status__c", "Draft", "Sent")]
    parents = query(api, "SELECT Parent.Name, Field FROM Invoice__History WHERE Field = 'Status__c'")
    assert parents[0]["Parent"]["Name"] == "INV-1"
    got = api.get(f"{V}/sobjects/Invoice__History/{rows[0]['Histories']['records'][0]['attributes']['url'][-18:]}")
    assert got.status_code == 200 and got.json()["ParentId"] == invoice

    account = create(api, "Account", {"Name": "Acme", "Industry": "Banking"})
    api.patch(f"{V}/sobjects/Account/{account}", json={"Industry": "Energy"})
    nested = query(api, "SELECT Name, (SELECT Field, OldValue, NewValue FROM Histories WHERE Field = 'Industry') "
                        "FROM Account WHERE Name = 'Acme'")
    assert [(h["Field"], h["OldValue"], h["NewValue"]) for h in nested[0]["Histories"]["records"]] == [
        ("Industry", "Banking", "Energy")]


def test_history_objects_are_read_only_to_every_api(org: Org, api: TestClient) -> None:
    account = create(api, "Account", {"Name": "Acme"})
    row_id = query(api, "SELECT Id FROM AccountHistory")[0]["Id"]
    refused = [
        api.post(f"{V}/sobjects/AccountHistory/", json={"AccountId": account, "Field": "Name"}),
        api.patch(f"{V}/sobjects/AccountHistory/{row_id}", json={"Field": "Name"}),
        api.delete(f"{V}/sobjects/AccountHistory/{row_id}"),
    ]
    for response in refused:
        assert response.status_code == 400, response.text
        assert response.json()[0]["errorCode"] == "INVALID_TYPE"
    collection = api.post(f"{V}/composite/sobjects", json={"allOrNone": False, "records": [
        {"attributes": {"type": "Invoice__History"}, "Field": "Amount__c"}]})
    assert collection.json()[0]["errors"][0]["statusCode"] == "INVALID_TYPE"
    assert len(query(api, "SELECT Id FROM AccountHistory")) == 1
    # the replication resources answer (history rows never change: their CreatedDate is their modstamp)
    now = datetime.now(UTC)
    window = {"start": (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "end": (now + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    for resource, key in (("updated", "ids"), ("deleted", "deletedRecords")):
        answer = api.get(f"{V}/sobjects/AccountHistory/{resource}/", params=window)
        assert answer.status_code == 200 and key in answer.json(), answer.text


def test_ids_of_history_objects_sharing_017_resolve_to_their_object(org: Org, api: TestClient) -> None:
    create(api, "Account", {"Name": "Acme"})
    create(api, "Invoice__c", {"Name": "INV-1"})
    account_row = query(api, "SELECT Id FROM AccountHistory")[0]["Id"]
    invoice_row = query(api, "SELECT Id FROM Invoice__History")[0]["Id"]
    assert account_row[:3] == invoice_row[:3] == "017"
    assert org.store.object_for_id(account_row).name == "AccountHistory"  # type: ignore[union-attr]
    assert org.store.object_for_id(invoice_row).name == "Invoice__History"  # type: ignore[union-attr]
    assert org.store.object_for_id("017000000000000AAA") is None


def test_history_objects_capture_no_change_events(org: Org) -> None:
    with pytest.raises(MetadataError, match="AccountHistory is not an object that can capture changes"):
        org.bus.channels.enable("AccountHistory")


def test_rolled_back_composite_leaves_no_history(org: Org, api: TestClient) -> None:
    account = create(api, "Account", {"Name": "Acme", "Industry": "Banking"})
    response = api.post(f"{V}/composite", json={"allOrNone": True, "compositeRequest": [
        {"method": "PATCH", "url": f"{V}/sobjects/Account/{account}", "referenceId": "up",
         "body": {"Industry": "Energy"}},
        {"method": "POST", "url": f"{V}/sobjects/Invoice__c/", "referenceId": "bad",
         "body": {"Name": "X", "Amount__c": "not a number"}},
    ]})
    assert response.status_code == 200
    assert api.get(f"{V}/sobjects/Account/{account}").json()["Industry"] == "Banking"
    assert history(api, account) == [("created", None, None, None)]

    response = api.post(f"{V}/composite", json={"allOrNone": True, "compositeRequest": [
        {"method": "PATCH", "url": f"{V}/sobjects/Account/{account}", "referenceId": "up",
         "body": {"Industry": "Energy"}},
        {"method": "POST", "url": f"{V}/sobjects/Invoice__c/", "referenceId": "ok", "body": {"Name": "Y"}},
    ]})
    assert all(r["httpStatusCode"] < 300 for r in response.json()["compositeResponse"])
    assert history(api, account) == [("created", None, None, None), ("Industry", "DynamicEnum", "Banking", "Energy")]


def test_partial_save_keeps_history_only_for_saved_records(org: Org, api: TestClient) -> None:
    response = api.post(f"{V}/composite/sobjects", json={"allOrNone": False, "records": [
        {"attributes": {"type": "Invoice__c"}, "Name": "good", "Status__c": "Draft"},
        {"attributes": {"type": "Invoice__c"}, "Name": "bad", "Amount__c": "not a number"},
    ]})
    results = response.json()
    assert results[0]["success"] and not results[1]["success"]
    rows = query(api, "SELECT ParentId, Field FROM Invoice__History")
    assert [(r["ParentId"], r["Field"]) for r in rows] == [(results[0]["id"], "created")]


def test_bulk_2_ingest_writes_history(org: Org, api: TestClient) -> None:
    accounts = [create(api, "Account", {"Name": f"A{i}", "Industry": "Banking"}) for i in range(3)]
    job = api.post(f"{V}/jobs/ingest", json={"object": "Account", "operation": "update", "lineEnding": "LF"}).json()
    body = "Id,Industry\n" + "".join(f"{a},Energy\n" for a in accounts)
    assert api.put(f"{V}/jobs/ingest/{job['id']}/batches", content=body.encode(),
                   headers={"Content-Type": "text/csv"}).status_code == 201
    api.patch(f"{V}/jobs/ingest/{job['id']}", json={"state": "UploadComplete"})
    while org.worker.run_once():
        pass
    info = api.get(f"{V}/jobs/ingest/{job['id']}").json()
    assert (info["state"], info["numberRecordsProcessed"], info["numberRecordsFailed"]) == ("JobComplete", 3, 0)
    for account in accounts:
        assert ("Industry", "DynamicEnum", "Banking", "Energy") in history(api, account)
    results = api.get(f"{V}/jobs/ingest/{job['id']}/successfulResults/").text
    assert len(list(csv.DictReader(io.StringIO(results)))) == 3


def test_delete_undelete_and_hard_delete_carry_the_history(org: Org, api: TestClient) -> None:
    account = create(api, "Account", {"Name": "Acme", "Industry": "Banking"})
    api.patch(f"{V}/sobjects/Account/{account}", json={"Industry": "Energy"})
    assert api.delete(f"{V}/sobjects/Account/{account}").status_code == 204
    assert history(api, account) == []  # in the recycle bin with its record
    assert len(history(api, account, all_rows=True)) == 2
    assert org.records.undelete(org.admin_context(), [account])[0].success
    assert len(history(api, account)) == 2
    other = create(api, "Account", {"Name": "Other"})
    assert org.records.hard_delete(org.admin_context(), [account])[0].success
    assert history(api, account, all_rows=True) == []
    assert len(history(api, other)) == 1


def test_enabling_history_on_a_deployed_org_and_reopening_it(tmp_path: Path, store_url: str) -> None:
    project = _project(tmp_path, {"Lead": "fields:\n  - {name: Company__c, type: text}\n"})
    data_dir = tmp_path / "org"
    with local_org(data_dir, store=store_url, project_dir=project) as org:
        assert org.store.schema.object("LeadHistory") is None
        (project / "metadata" / "objects" / "Lead.yaml").write_text(
            "enableHistory: true\nfields:\n  - {name: Company__c, type: text, trackHistory: true}\n")
        plan = org.store.deploy(org.load_metadata().schema)
        assert "create object LeadHistory" in [c.description for c in plan.changes]
        context = org.admin_context()
        lead = org.records.create(context, "Lead", [{"LastName": "Lee", "Company": "X", "Company__c": "a"}])[0].id
        org.records.update(context, "Lead", [{"Id": lead, "Company__c": "b"}])
    with local_org(data_dir, store=store_url, project_dir=project) as reopened:
        history_object = reopened.store.schema.object("LeadHistory")
        assert history_object is not None and history_object.history_of == "Lead"
        assert reopened.store.plan(reopened.load_metadata().schema).changes == []
        page = reopened.query.execute("SELECT Field, OldValue, NewValue FROM LeadHistory",
                                      reopened.admin_context())
        assert sorted((r["Field"], r["OldValue"], r["NewValue"]) for r in page.records) == [
            ("Company__c", "a", "b"), ("created", None, None)]
    (project / "metadata" / "objects" / "Lead.yaml").write_text("fields:\n  - {name: Company__c, type: text}\n")
    with local_org(data_dir, store=store_url, project_dir=project) as kept:
        # turning history off is destructive (it drops the history): interlink up keeps it until deploy allows it
        assert kept.store.schema.object("LeadHistory") is not None
        assert any("drop object LeadHistory" in w for w in kept.bootstrap.warnings)
        lead_id = kept.query.execute("SELECT Id FROM Lead", kept.admin_context()).records[0]["Id"]
        kept.records.update(kept.admin_context(), "Lead", [{"Id": lead_id, "Company__c": "c"}])
        assert len(kept.query.execute("SELECT Id FROM LeadHistory", kept.admin_context()).records) == 2
