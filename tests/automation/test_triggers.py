"""Python triggers from the project's ``triggers/`` folder, run by the one write path (SQLite and PostgreSQL)."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from interlink.app.org import Org
from interlink.errors import MetadataError
from interlink.testing import backend_org, rest_client

TRIGGERS = '''
from interlink.automation import trigger

calls = []


@trigger("Account", before=["insert", "update"])
def account_rating(ctx):
    calls.append(("account_rating", ctx.operation, len(ctx.new)))
    for record in ctx.new:
        if (record["AnnualRevenue"] or 0) > 1_000_000:
            record["Rating"] = "Hot"
        if record["Name"] == "Forbidden":
            ctx.add_error(record, "That name is taken by policy", field="Name")
        if record["Name"] == "Explode":
            raise RuntimeError("boom")


@trigger("Opportunity", after=["update"])
def closed_won_follow_up(ctx):
    tasks = [{"Subject": f"Kick-off {record['Name']}", "WhatId": record["Id"]}
             for record, old in ctx.pairs()
             if record["StageName"] == "Closed Won" and ctx.changed(record, "StageName")]
    if tasks:
        ctx.insert("Task", tasks)


@trigger("Contact", after=["insert"])
def contact_after(ctx):
    for record in ctx.new:
        if record["LastName"] == "ReadOnly":
            record["FirstName"] = "nope"
        if record["LastName"] == "Loop":
            ctx.update("Contact", [{"Id": record["Id"], "Title": "again"}])


@trigger("Contact", after=["update"])
def contact_loop(ctx):
    for record in ctx.new:
        if record["LastName"] == "Loop":
            ctx.update("Contact", [{"Id": record["Id"], "Title": (record["Title"] or "") + "!"}])


@trigger("Case", before=["delete"])
def keep_escalated_cases(ctx):
    for record in ctx.new:
        if record["Status"] == "Escalated":
            ctx.add_error(record, "Escalated cases can't be deleted")
'''


@pytest.fixture
def org(store_backend: str, tmp_path: Path) -> Iterator[Org]:
    folder = tmp_path / "project" / "triggers"
    folder.mkdir(parents=True)
    (folder / "rules.py").write_text(TRIGGERS)
    with backend_org(tmp_path, store_backend, {}, unavailable=pytest.skip, bulk_workers=0) as opened:
        yield opened


def calls() -> list[Any]:
    return sys.modules["interlink_project_triggers.rules"].calls  # type: ignore[no-any-return]


def query(org: Org, soql: str) -> list[dict[str, Any]]:
    return org.query.execute(soql, org.admin_context()).records


def test_a_before_trigger_changes_values_once_per_batch(org: Org) -> None:
    client = rest_client(org)
    calls().clear()
    body = client.post("/services/data/v66.0/composite/sobjects", json={"allOrNone": False, "records": [
        {"attributes": {"type": "Account"}, "Name": "Big", "AnnualRevenue": 5_000_000},
        {"attributes": {"type": "Account"}, "Name": "Small", "AnnualRevenue": 10}]}).json()
    assert [item["success"] for item in body] == [True, True]
    assert calls() == [("account_rating", "insert", 2)]  # bulk-safe: one call with the whole batch
    ratings = {r["Name"]: r["Rating"] for r in query(org, "SELECT Name, Rating FROM Account")}
    assert ratings == {"Big": "Hot", "Small": None}


def test_add_error_rejects_only_that_record(org: Org) -> None:
    results = org.records.create(org.admin_context(), "Account", [{"Name": "Forbidden"}, {"Name": "Fine"}])
    assert results[0].errors[0].to_save_error() == {
        "statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION", "message": "That name is taken by policy",
        "fields": ["Name"]}
    assert results[1].success
    assert [r["Name"] for r in query(org, "SELECT Name FROM Account")] == ["Fine"]


def test_an_exception_fails_the_batch_and_saves_nothing(org: Org) -> None:
    results = org.records.create(org.admin_context(), "Account", [{"Name": "Explode"}, {"Name": "Bystander"}])
    for result in results:
        (error,) = result.errors
        assert error.error_code == "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY"
        assert error.message == "account_rating: execution of BeforeInsert caused by: RuntimeError: boom"
    assert query(org, "SELECT Name FROM Account") == []


def test_an_after_trigger_runs_dml_in_the_same_transaction(org: Org) -> None:
    context = org.admin_context()
    (account,) = org.records.create(context, "Account", [{"Name": "Acme"}])
    opportunities = org.records.create(context, "Opportunity", [
        {"Name": f"Deal {i}", "StageName": "Prospecting", "CloseDate": "2026-12-31", "AccountId": account.id}
        for i in range(3)])
    org.records.update(context, "Opportunity", [
        {"Id": opportunities[0].id, "StageName": "Closed Won"},
        {"Id": opportunities[1].id, "Amount": 5},
        {"Id": opportunities[2].id, "StageName": "Closed Won"}])
    tasks = query(org, "SELECT Subject, WhatId FROM Task ORDER BY Subject")
    assert [(t["Subject"], t["WhatId"]) for t in tasks] == [
        ("Kick-off Deal 0", opportunities[0].id), ("Kick-off Deal 2", opportunities[2].id)]
    org.records.update(context, "Opportunity", [{"Id": opportunities[0].id, "Amount": 9}])  # already Closed Won
    assert len(query(org, "SELECT Id FROM Task")) == 2


def test_after_trigger_records_are_read_only(org: Org) -> None:
    (result,) = org.records.create(org.admin_context(), "Contact", [{"LastName": "ReadOnly"}])
    assert result.errors[0].error_code == "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY"
    assert "read-only in after triggers" in result.errors[0].message
    assert query(org, "SELECT Id FROM Contact WHERE LastName = 'ReadOnly'") == []


def test_triggers_that_keep_firing_each_other_stop_at_depth_16(org: Org) -> None:
    (result,) = org.records.create(org.admin_context(), "Contact", [{"LastName": "Loop"}])
    assert not result.success
    assert "maximum trigger depth exceeded" in result.errors[0].message
    assert query(org, "SELECT Id FROM Contact") == []


def test_a_before_delete_trigger_can_refuse(org: Org) -> None:
    context = org.admin_context()
    cases = org.records.create(context, "Case", [{"Subject": "A", "Status": "Escalated"}, {"Subject": "B"}])
    results = org.records.delete(context, [c.id for c in cases])  # type: ignore[misc]
    assert results[0].errors[0].message == "Escalated cases can't be deleted" and results[1].success
    assert [c["Subject"] for c in query(org, "SELECT Subject FROM Case")] == ["A"]


def test_bulk_jobs_run_triggers_too(org: Org) -> None:
    context = org.admin_context()
    job = org.bulk.create_ingest(context, {"object": "Account", "operation": "insert"})
    org.bulk.upload(context, job.id, b"Name,AnnualRevenue\nBulk Big,2000000\nForbidden,1\n")
    org.bulk.set_state(context, job.id, "V2Ingest", "UploadComplete")
    assert org.worker.run_once()
    assert org.bulk.get(job.id).records_failed == 1
    assert [(r["Name"], r["Rating"]) for r in query(org, "SELECT Name, Rating FROM Account")] == [("Bulk Big", "Hot")]


@pytest.mark.parametrize(("source", "message"), [
    ("from interlink.automation import trigger\n\n@trigger('Nope__c', before=['insert'])\ndef t(ctx):\n    pass\n",
     "trigger t is on Nope__c, which is not an object of this org"),
    ("from interlink.automation import trigger\n\n@trigger('Account', before=['upsert'])\ndef t(ctx):\n    pass\n",
     "unknown operation 'upsert'"),
    ("x = 1\ny = (\n", "rules.py:2: the trigger file does not load: SyntaxError"),
    ("import does_not_exist\n", "rules.py:1: the trigger file does not load: ModuleNotFoundError"),
])
def test_a_broken_trigger_file_is_a_clear_error(tmp_path: Path, source: str, message: str) -> None:
    folder = tmp_path / "project" / "triggers"
    folder.mkdir(parents=True)
    (folder / "rules.py").write_text(textwrap.dedent(source))
    with pytest.raises(MetadataError, match=None) as caught, backend_org(tmp_path, "sqlite", {}):
        pass
    assert message in caught.value.message
