"""Bulk API 2.0 jobs in-process, on SQLite and PostgreSQL: lifecycle, results, bad input, durability, limits.

The worker runs on the test's thread (``org.worker.run_once()``), so every step is deterministic.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from interlink.app.org import Org
from interlink.errors import InterlinkError, UnableToLockRow
from interlink.jobs.ingest import ColumnPlan, LeaseLost, run_batch
from interlink.jobs.worker import JobWorker
from interlink.records.context import Context
from interlink.testing import backend_org

OBJECTS = {
    "Account": """\
changeDataCapture: true
fields:
  - {name: Ext__c, type: text, length: 40, externalId: true, unique: true}
  - {name: Tier__c, type: picklist, restricted: true, values: [Gold, Silver]}
""",
    "Visit__c": """\
name: Visit__c
label: Visit
fields:
  - {name: Account__c, type: masterdetail, referenceTo: Account, childRelationshipName: Visits}
  - {name: When__c, type: datetime}
  - {name: On__c, type: date}
  - {name: Score__c, type: int, precision: 4}
""",
}


@pytest.fixture
def org(store_backend: str, tmp_path: Path) -> Iterator[Org]:
    with backend_org(tmp_path, store_backend, OBJECTS, unavailable=pytest.skip, bulk_workers=0,
                     bulk_batch_size=3) as opened:
        yield opened


def admin(org: Org) -> Context:
    return org.admin_context()


def ingest(org: Org, operation: str, data: str | list[str], obj: str = "Account", **options: Any) -> str:
    """Create, upload (one or several pieces), close and run an ingest job; returns its id."""
    context = admin(org)
    job = org.bulk.create_ingest(context, {"object": obj, "operation": operation, **options})
    for piece in [data] if isinstance(data, str) else data:
        org.bulk.upload(context, job.id, piece.encode())
    org.bulk.set_state(context, job.id, "V2Ingest", "UploadComplete")
    while org.worker.run_once():
        pass
    return job.id


def results(org: Org, job_id: str, kind: str) -> str:
    return b"".join(org.bulk.ingest_results(job_id, kind)).decode()


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def accounts(org: Org, where: str = "") -> list[dict[str, Any]]:
    page = org.query.execute(f"SELECT Id, Name, Ext__c, Industry, AnnualRevenue FROM Account {where} ORDER BY Name",
                             admin(org))
    return page.records


# -- the lifecycle -------------------------------------------------------------------------------------------------


def test_insert_job_processes_every_batch_and_reports_results(org: Org) -> None:
    data = "Name,Industry,AnnualRevenue\n" + "".join(f"Acme {i},Energy,{i}\n" for i in range(7))
    job_id = ingest(org, "insert", data)
    job = org.bulk.get(job_id)
    assert (job.state, job.records_processed, job.records_failed, job.batches_done) == ("JobComplete", 7, 0, 3)
    wire = job.to_wire()
    assert wire["jobType"] == "V2Ingest" and wire["numberRecordsProcessed"] == 7 and "contentUrl" not in wire
    success = results(org, job_id, "success")
    assert success.splitlines()[0] == '"sf__Id","sf__Created",Name,Industry,AnnualRevenue'
    parsed = rows(success)
    assert len(parsed) == 7 and all(r["sf__Created"] == "true" and r["sf__Id"].startswith("001") for r in parsed)
    assert {r["Name"] for r in parsed} == {f"Acme {i}" for i in range(7)}
    assert results(org, job_id, "failure") == '"sf__Id","sf__Error",Name,Industry,AnnualRevenue\n'
    assert results(org, job_id, "unprocessed") == "Name,Industry,AnnualRevenue\n"
    assert len(accounts(org)) == 7


def test_failed_rows_keep_their_original_values_and_the_error(org: Org) -> None:
    data = ('Name,Tier__c,Industry\n"Quoted, ""comma""",Gold,"two\nlines"\n,Gold,Energy\nBad tier,Bronze,Energy\n')
    job_id = ingest(org, "insert", data)
    assert org.bulk.get(job_id).records_failed == 2
    success = rows(results(org, job_id, "success"))
    assert success[0]["Name"] == 'Quoted, "comma"' and success[0]["Industry"] == "two\nlines"
    failed = {r["Tier__c"] + r["Name"]: r for r in rows(results(org, job_id, "failure"))}
    assert failed["Gold"]["sf__Error"] == "REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:Name --"
    assert failed["Gold"]["sf__Id"] == ""
    assert failed["BronzeBad tier"]["sf__Error"].startswith("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST:")


def test_upsert_reports_created_and_updated(org: Org) -> None:
    ingest(org, "insert", "Name,Ext__c\nOld,E-1\n")
    job_id = ingest(org, "upsert", "Ext__c,Name\nE-1,Renamed\nE-2,Fresh\n", externalIdFieldName="Ext__c")
    created = {r["Ext__c"]: r["sf__Created"] for r in rows(results(org, job_id, "success"))}
    assert created == {"E-1": "false", "E-2": "true"}
    assert [(a["Name"], a["Ext__c"]) for a in accounts(org)] == [("Fresh", "E-2"), ("Renamed", "E-1")]


def test_upsert_on_id_updates_known_ids_and_inserts_rows_without_one(org: Org) -> None:
    job_id = ingest(org, "insert", "Name\nFirst\n")
    first = rows(results(org, job_id, "success"))[0]["sf__Id"]
    upserted = ingest(org, "upsert", f"Id,Name\n{first},Renamed\n,Brand new\n", externalIdFieldName="Id")
    created = {r["Name"]: r["sf__Created"] for r in rows(results(org, upserted, "success"))}
    assert created == {"Renamed": "false", "Brand new": "true"}
    assert [a["Name"] for a in accounts(org)] == ["Brand new", "Renamed"]


def test_a_value_of_the_wrong_type_is_reported_in_csv_terms(org: Org) -> None:
    job_id = ingest(org, "insert", "Name,NumberOfEmployees,AnnualRevenue\nOk,5,1\nBad,lots,2\n")
    (failed,) = rows(results(org, job_id, "failure"))
    assert failed["sf__Error"] == ("INVALID_TYPE_ON_FIELD_IN_RECORD:Employees: value not of required type: lots:"
                                   "NumberOfEmployees --")


def test_update_blank_leaves_a_field_and_na_nulls_it(org: Org) -> None:
    job_id = ingest(org, "insert", "Name,Industry,AnnualRevenue\nKeep,Energy,5\n")
    record_id = rows(results(org, job_id, "success"))[0]["sf__Id"]
    ingest(org, "update", f"Id,Industry,AnnualRevenue\n{record_id},,#N/A\n")
    (account,) = accounts(org)
    assert account["Industry"] == "Energy" and account["AnnualRevenue"] is None


def test_delete_goes_to_the_recycle_bin_and_hard_delete_removes(org: Org) -> None:
    job_id = ingest(org, "insert", "Name\nA\nB\n")
    a_id, b_id = (r["sf__Id"] for r in rows(results(org, job_id, "success")))
    deleted = ingest(org, "delete", f"Id\n{a_id}\n001000000000000AAA\n")
    assert org.bulk.get(deleted).records_failed == 1
    assert rows(results(org, deleted, "success"))[0]["sf__Created"] == "false"
    everything = org.query.execute("SELECT Id, IsDeleted FROM Account", admin(org), include_deleted=True).records
    assert {(r["Id"], r["IsDeleted"]) for r in everything} == {(a_id, True), (b_id, False)}
    ingest(org, "hardDelete", f"Id\n{a_id}\n{b_id}\n")
    assert org.query.execute("SELECT Id FROM Account", admin(org), include_deleted=True).records == []


def test_relationship_columns_resolve_parents_by_external_id(org: Org) -> None:
    ingest(org, "insert", "Name,Ext__c\nParent,P-1\n")
    data = ("Name,Account__r.Ext__c,When__c,On__c,Score__c\n"
            "V1,P-1,2024-01-31T09:30:00.000Z,2024-01-31,7\nV2,P-404,2024-01-31T10:00:00+02:00,2024-02-01,8\n")
    job_id = ingest(org, "insert", data, obj="Visit__c")
    failed = rows(results(org, job_id, "failure"))
    assert len(failed) == 1 and failed[0]["Name"] == "V2"
    assert failed[0]["sf__Error"].startswith("INVALID_CROSS_REFERENCE_KEY:Foreign key external ID: P-404 not found")
    (visit,) = org.query.execute("SELECT Name, Account__r.Name, When__c, On__c, Score__c FROM Visit__c",
                                 admin(org)).records
    assert visit["Account__r"]["Name"] == "Parent"
    assert (visit["When__c"], visit["On__c"], visit["Score__c"]) == ("2024-01-31T09:30:00.000+0000", "2024-01-31", 7)


def test_several_uploads_with_tab_delimiter_and_crlf(org: Org) -> None:
    pieces = ["Name\tIndustry\r\nT1\tEnergy\r\n", "Name\tIndustry\r\nT2\tRetail\r\nT3\t\r\n"]
    job_id = ingest(org, "insert", pieces, columnDelimiter="TAB", lineEnding="CRLF")
    job = org.bulk.get(job_id)
    assert (job.uploads, job.records_processed) == (2, 3)
    success = results(org, job_id, "success")
    assert success.startswith('"sf__Id"\t"sf__Created"\tName\tIndustry\r\n')
    assert [a["Name"] for a in accounts(org)] == ["T1", "T2", "T3"]


def test_change_events_come_from_the_bulk_api(org: Org) -> None:
    ingest(org, "insert", "Name\nEvented\n")
    topic = org.bus.topic("/data/AccountChangeEvent")
    (event,) = [org.bus.decode(e) for e in org.bus.read(topic, 0, 100)]
    header = event["ChangeEventHeader"]
    assert header["changeType"] == "CREATE" and header["changeOrigin"] == "com/salesforce/api/bulkapi/66.0"


# -- bad input changes nothing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("operation", "data", "message"), [
    ("insert", "Name,Nope__c\nX,1\n", "InvalidBatch : Field name not found : Nope__c"),
    ("insert", "Name,Industry\nX\n", "ClientInputError : The uploaded CSV has 1 values in record 1 but the header "
                                      "has 2 columns"),
    ("insert", 'Name\n"unterminated\n', "ClientInputError : The uploaded CSV is malformed"),
    ("insert", "Name\r\nX\r\n", "ClientInputError : LineEnding is invalid on user data. Current LineEnding "
                                 "setting is LF"),
    ("insert", "", "ClientInputError : The uploaded data is empty"),
    ("insert", "Name,name\nX,Y\n", "ClientInputError : The uploaded CSV header names the column name twice"),
    ("insert", b"Name\n\xff\xfe\n", "ClientInputError : The uploaded data is not valid UTF-8"),
    ("update", "Name\nX\n", "ClientInputError : An update job needs an Id column"),
    ("delete", "Id,Name\n001000000000000AAA,X\n", "ClientInputError : A delete job takes one column, Id"),
    ("insert", "Name,Owner.Nope\nX,Y\n", "InvalidBatch : Field name not found : Owner.Nope"),
    ("insert", ["Name\nX\n", "Name,Industry\nY,Z\n"], "ClientInputError : Every upload of a job must have the "
                                                       "same header"),
])
def test_bad_data_fails_the_job_with_the_platform_message_and_changes_nothing(
        org: Org, operation: str, data: str | bytes | list[str], message: str) -> None:
    context = admin(org)
    job = org.bulk.create_ingest(context, {"object": "Account", "operation": operation})
    for piece in data if isinstance(data, list) else [data]:
        org.bulk.upload(context, job.id, piece if isinstance(piece, bytes) else piece.encode())  # accepted (201)
    assert "errorMessage" not in org.bulk.get(job.id).to_wire()
    assert org.bulk.set_state(context, job.id, "V2Ingest", "UploadComplete").state == "UploadComplete"
    assert org.worker.run_once()
    failed = org.bulk.get(job.id)
    assert failed.state == "Failed" and failed.records_processed == 0
    assert failed.to_wire()["errorMessage"].startswith(message)
    assert accounts(org) == []
    assert results(org, job.id, "success").count("\n") == 1


@pytest.mark.parametrize(("body", "code"), [
    ({"object": "Nope__c", "operation": "insert"}, "INVALIDENTITY"),
    ({"object": "Account", "operation": "merge"}, "INVALIDJOB"),
    ({"operation": "insert"}, "INVALIDJOB"),
    ({"object": "Account", "operation": "upsert"}, "INVALIDJOB"),
    ({"object": "Account", "operation": "upsert", "externalIdFieldName": "Name"}, "INVALIDJOB"),
    ({"object": "Account", "operation": "insert", "columnDelimiter": "COLON"}, "INVALIDJOB"),
    ({"object": "Account", "operation": "insert", "lineEnding": "CR"}, "INVALIDJOB"),
    ({"object": "Account", "operation": "insert", "contentType": "JSON"}, "INVALIDJOB"),
    ({"object": "Account", "operation": 7}, "INVALIDJOB"),
])
def test_a_bad_job_request_creates_nothing(org: Org, body: dict[str, Any], code: str) -> None:
    with pytest.raises(InterlinkError) as caught:
        org.bulk.create_ingest(admin(org), body)
    assert caught.value.error_code == code
    assert org.bulk.list("V2Ingest")[0] == []


def test_state_rules(org: Org) -> None:
    context = admin(org)
    job = org.bulk.create_ingest(context, {"object": "Account", "operation": "insert"})
    org.bulk.upload(context, job.id, b"Name\nA\n")
    with pytest.raises(InterlinkError, match="only a finished job can be deleted"):
        org.bulk.delete(job.id, "V2Ingest")
    with pytest.raises(InterlinkError) as caught:
        org.bulk.set_state(context, job.id, "V2Ingest", "JobComplete")
    assert caught.value.error_code == "INVALIDJOBSTATE"
    org.bulk.set_state(context, job.id, "V2Ingest", "UploadComplete")
    with pytest.raises(InterlinkError) as caught:
        org.bulk.upload(context, job.id, b"Name\nB\n")
    assert caught.value.error_code == "INVALIDJOBSTATE"
    assert org.worker.run_once()
    with pytest.raises(InterlinkError) as caught:
        org.bulk.set_state(context, job.id, "V2Ingest", "Aborted")
    assert caught.value.error_code == "INVALIDJOBSTATE"
    with pytest.raises(InterlinkError) as caught:
        org.bulk.get(job.id, "V2Query")
    assert caught.value.error_code == "NOT_FOUND"
    org.bulk.delete(job.id, "V2Ingest")
    with pytest.raises(InterlinkError) as caught:
        org.bulk.get(job.id)
    assert caught.value.error_code == "NOT_FOUND"
    assert [a["Name"] for a in accounts(org)] == ["A"]  # deleting a job keeps the records it loaded


def test_a_job_closed_without_data_fails_clearly(org: Org) -> None:
    context = admin(org)
    job = org.bulk.create_ingest(context, {"object": "Account", "operation": "insert"})
    closed = org.bulk.set_state(context, job.id, "V2Ingest", "UploadComplete")
    assert closed.state == "Failed" and "No data" in (closed.error_message or "")


def test_aborting_an_open_job_leaves_every_record_unprocessed(org: Org) -> None:
    context = admin(org)
    job = org.bulk.create_ingest(context, {"object": "Account", "operation": "insert"})
    org.bulk.upload(context, job.id, b"Name\nA\nB\n")
    assert org.bulk.set_state(context, job.id, "V2Ingest", "Aborted").state == "Aborted"
    assert not org.worker.run_once()
    assert results(org, job.id, "unprocessed") == 'Name\n"A"\n"B"\n'
    assert accounts(org) == []


def test_aborting_mid_job_stops_after_the_batch_in_hand(org: Org) -> None:
    context = admin(org)
    job = org.bulk.create_ingest(context, {"object": "Account", "operation": "insert"})
    org.bulk.upload(context, job.id, ("Name\n" + "".join(f"N{i}\n" for i in range(8))).encode())
    org.bulk.set_state(context, job.id, "V2Ingest", "UploadComplete")

    def abort_after_first(_job: Any, batch_no: int) -> None:
        if batch_no == 0:
            with org.store.write() as conn:  # joins the batch's transaction: commits with it
                table = org.store.system["il_bulk_job"]
                conn.execute(update(table).where(table.c.id == job.id).values(state="Aborted"))

    org.worker.before_batch_commit = abort_after_first
    assert org.worker.run_once()
    stored = org.bulk.get(job.id)
    assert (stored.state, stored.batches_done, stored.records_processed) == ("Aborted", 1, 3)
    assert results(org, job.id, "unprocessed") == "Name\n" + "".join(f'"N{i}"\n' for i in range(3, 8))
    assert len(accounts(org)) == 3


# -- durability ------------------------------------------------------------------------------------------------


class Crash(BaseException):
    """A process dying in the middle of a batch (not an Exception: nothing catches it)."""


def test_a_crash_mid_job_resumes_after_the_last_committed_batch(org: Org) -> None:
    context = admin(org)
    job = org.bulk.create_ingest(context, {"object": "Account", "operation": "insert"})
    org.bulk.upload(context, job.id, ("Name\n" + "".join(f"C{i}\n" for i in range(10))).encode())
    org.bulk.set_state(context, job.id, "V2Ingest", "UploadComplete")

    def crash_in_batch_two(_job: Any, batch_no: int) -> None:
        if batch_no == 2:
            raise Crash()

    org.worker.before_batch_commit = crash_in_batch_two
    with pytest.raises(Crash):
        org.worker.run_once()
    stored = org.bulk.get(job.id)
    assert (stored.state, stored.batches_done) == ("InProgress", 2)
    assert len(accounts(org)) == 6  # batch 2 rolled back with the crash
    # A new process: its worker takes the orphaned job over and finishes it.
    successor = JobWorker(org.bulk, org.records, org.query, org.worker.context_for, threads=0)
    assert not successor.run_once()  # the dead worker's lease has not run out yet
    assert successor.release_orphans() == 1
    assert successor.run_once()
    stored = org.bulk.get(job.id)
    assert (stored.state, stored.records_processed, stored.batches_done) == ("JobComplete", 10, 4)
    names = [a["Name"] for a in accounts(org)]
    assert sorted(names) == sorted(f"C{i}" for i in range(10))  # each exactly once
    assert len(rows(results(org, job.id, "success"))) == 10


def test_a_job_whose_worker_died_is_taken_over_when_the_lease_runs_out(org: Org) -> None:
    context = admin(org)
    job = org.bulk.create_ingest(context, {"object": "Account", "operation": "insert"})
    org.bulk.upload(context, job.id, ("Name\n" + "".join(f"T{i}\n" for i in range(7))).encode())
    org.bulk.set_state(context, job.id, "V2Ingest", "UploadComplete")
    org.worker.lease_seconds = 0.5

    def die_in_batch_one(_job: Any, batch_no: int) -> None:
        if batch_no == 1:
            raise Crash()

    org.worker.before_batch_commit = die_in_batch_one
    with pytest.raises(Crash):
        org.worker.run_once()
    other = JobWorker(org.bulk, org.records, org.query, org.worker.context_for, threads=0)
    deadline = time.monotonic() + 10
    while not other.run_once():  # no orphan release: the other process waits for the lease to run out
        assert time.monotonic() < deadline, "the job was never taken over"
        time.sleep(0.1)
    stored = org.bulk.get(job.id)
    assert (stored.state, stored.records_processed, stored.batches_done) == ("JobComplete", 7, 3)
    assert sorted(a["Name"] for a in accounts(org)) == sorted(f"T{i}" for i in range(7))


@pytest.mark.parametrize("failure", [
    UnableToLockRow("unable to obtain exclusive access to this record or 1 records"),
    RuntimeError("database went away"),
])
def test_a_failing_batch_is_retried_and_counted(org: Org, failure: Exception) -> None:
    org.worker.retry_delay = 0.0
    failures = iter([True, True])

    def flaky(_job: Any, batch_no: int) -> None:
        if batch_no == 1 and next(failures, False):
            raise failure

    org.worker.before_batch_commit = flaky
    job_id = ingest(org, "insert", "Name\n" + "".join(f"R{i}\n" for i in range(5)))
    stored = org.bulk.get(job_id)
    assert (stored.state, stored.retries, stored.records_processed) == ("JobComplete", 2, 5)
    assert len(accounts(org)) == 5


def test_a_worker_that_lost_its_lease_commits_nothing(org: Org) -> None:
    context = admin(org)
    job = org.bulk.create_ingest(context, {"object": "Account", "operation": "insert"})
    org.bulk.upload(context, job.id, b"Name\nL1\nL2\nL3\nL4\n")
    org.bulk.set_state(context, job.id, "V2Ingest", "UploadComplete")
    claimed = org.worker.claim()
    assert claimed is not None
    plan = ColumnPlan(org.store.schema.object("Account"), org.store.schema, ["Name"], "insert", None)  # type: ignore[arg-type]
    with pytest.raises(LeaseLost):
        run_batch(org.records, org.bulk.parts, claimed, plan, admin(org), 0, [["L1"], ["L2"]],
                  worker_id="someone-else", lease_seconds=30)
    assert accounts(org) == [] and org.bulk.parts.infos(job.id, "success") == []
    outcome = run_batch(org.records, org.bulk.parts, claimed, plan, admin(org), 0, [["L1"], ["L2"]],
                        worker_id=org.worker.worker_id, lease_seconds=30)
    assert (outcome.processed, outcome.failed) == (2, 0)
    with pytest.raises(LeaseLost):  # batch 0 again: never applied twice
        run_batch(org.records, org.bulk.parts, claimed, plan, admin(org), 0, [["L1"], ["L2"]],
                  worker_id=org.worker.worker_id, lease_seconds=30)
    assert [a["Name"] for a in accounts(org)] == ["L1", "L2"]


# -- limits ----------------------------------------------------------------------------------------------------


def test_daily_record_and_batch_allocations(tmp_path: Path) -> None:
    with backend_org(tmp_path, "sqlite", OBJECTS, bulk_workers=0, bulk_batch_size=2, bulk_daily_records=5,
                     bulk_daily_batches=2) as org:
        context = admin(org)
        job = org.bulk.create_ingest(context, {"object": "Account", "operation": "insert"})
        with pytest.raises(InterlinkError) as caught:
            org.bulk.upload(context, job.id, b"Name\n1\n2\n3\n4\n5\n6\n")
        assert caught.value.error_code == "EXCEEDEDQUOTA" and caught.value.http_status == 403
        org.bulk.upload(context, job.id, b"Name\n1\n2\n3\n4\n5\n")
        with pytest.raises(InterlinkError) as caught:
            org.bulk.set_state(context, job.id, "V2Ingest", "UploadComplete")  # 3 batches > 2
        assert caught.value.error_code == "EXCEEDEDQUOTA"
        assert org.bulk.get(job.id).state == "Open"


# -- query jobs ------------------------------------------------------------------------------------------------


def run_query(org: Org, soql: str, operation: str = "query", **options: Any) -> str:
    job = org.bulk.create_query(admin(org), {"operation": operation, "query": soql, **options})
    assert job.state == "UploadComplete"
    assert org.worker.run_once()
    return job.id


def page_text(org: Org, job_id: str, locator: str | None, max_records: int | None) -> tuple[str, int, str | None]:
    page = org.bulk.query_results(job_id, "66.0", locator=locator, max_records=max_records)
    return b"".join(page.chunks).decode(), page.records, page.next_locator


def test_query_job_pages_with_locators(org: Org) -> None:
    ingest(org, "insert", "Name,Industry\n" + "".join(f"Q{i:02d},Energy\n" for i in range(25)))
    job_id = run_query(org, "SELECT Name, Industry, Owner.Name FROM Account ORDER BY Name")
    job = org.bulk.get(job_id)
    assert (job.state, job.records_processed) == ("JobComplete", 25)
    seen: list[str] = []
    locator = None
    pages = 0
    while True:
        text, count, locator = page_text(org, job_id, locator, 10)
        lines = text.splitlines()
        assert lines[0] == '"Name","Industry","Owner.Name"' and len(lines) == count + 1
        seen += [line.split(",")[0].strip('"') for line in lines[1:]]
        pages += 1
        if locator is None:
            break
    assert pages == 3 and seen == [f"Q{i:02d}" for i in range(25)]
    links, following = org.bulk.result_pages(job_id, "66.0", max_records=10, locator=None)
    assert len(links) == 3 and following is None


def test_query_all_sees_deleted_rows_and_values_are_bulk_formatted(org: Org) -> None:
    job_id = ingest(org, "insert", "Name,AnnualRevenue\nGone,12\nHere,\n")
    gone = next(r["sf__Id"] for r in rows(results(org, job_id, "success")) if r["Name"] == "Gone")
    org.records.delete(admin(org), [gone])
    plain = run_query(org, "SELECT Name FROM Account ORDER BY Name")
    assert page_text(org, plain, None, None)[0] == '"Name"\n"Here"\n'
    everything = run_query(org, "SELECT Name, AnnualRevenue, IsDeleted FROM Account ORDER BY Name", "queryAll")
    text = page_text(org, everything, None, None)[0]
    assert text == '"Name","AnnualRevenue","IsDeleted"\n"Gone","12.0","true"\n"Here","","false"\n'


@pytest.mark.parametrize(("soql", "fragment"), [
    ("SELECT COUNT() FROM Account", "not supported by the Bulk API"),
    ("SELECT Industry, COUNT(Id) FROM Account GROUP BY Industry", "not supported by the Bulk API"),
    ("SELECT Name FROM Account LIMIT 5 OFFSET 2", "OFFSET"),
    ("SELECT Name, (SELECT Name FROM Visits__r) FROM Account", "Child relationship"),
    ("SELECT Nope FROM Account", "Nope"),
])
def test_queries_the_bulk_api_refuses(org: Org, soql: str, fragment: str) -> None:
    with pytest.raises(InterlinkError) as caught:
        org.bulk.create_query(admin(org), {"operation": "query", "query": soql})
    assert fragment in caught.value.message
    assert org.bulk.list("V2Query")[0] == []


def test_query_results_need_a_complete_job_and_the_same_version(org: Org) -> None:
    job = org.bulk.create_query(admin(org), {"operation": "query", "query": "SELECT Name FROM Account"})
    with pytest.raises(InterlinkError) as caught:
        org.bulk.query_results(job.id, "66.0", locator=None, max_records=None)
    assert caught.value.error_code == "INVALIDJOBSTATE"
    org.worker.run_once()
    with pytest.raises(InterlinkError) as caught:
        org.bulk.query_results(job.id, "60.0", locator=None, max_records=None)
    assert caught.value.http_status == 409
    with pytest.raises(InterlinkError) as caught:
        org.bulk.query_results(job.id, "66.0", locator="%%%", max_records=None)
    assert caught.value.error_code == "INVALIDLOCATOR"


def test_daily_query_job_allocation(tmp_path: Path) -> None:
    with backend_org(tmp_path, "sqlite", OBJECTS, bulk_workers=0, bulk_daily_query_jobs=1) as org:
        org.bulk.create_query(admin(org), {"operation": "query", "query": "SELECT Name FROM Account"})
        with pytest.raises(InterlinkError) as caught:
            org.bulk.create_query(admin(org), {"operation": "query", "query": "SELECT Name FROM Account"})
        assert caught.value.error_code == "EXCEEDEDQUOTA"


def test_job_list_pages(org: Org) -> None:
    for _ in range(3):
        org.bulk.create_ingest(admin(org), {"object": "Account", "operation": "insert"})
    first, after = org.bulk.list("V2Ingest", limit=2)
    assert len(first) == 2 and after == first[-1].id
    rest, after = org.bulk.list("V2Ingest", after=after, limit=2)
    assert len(rest) == 1 and after is None


def test_old_finished_jobs_are_purged(org: Org) -> None:
    job_id = ingest(org, "insert", "Name\nOld\n")
    table = org.store.system["il_bulk_job"]
    with org.store.write() as conn:
        conn.execute(update(table).where(table.c.id == job_id).values(
            system_modstamp=org.bulk.get(job_id).system_modstamp.replace(year=2020)))
    assert org.bulk.purge() == 1
    assert org.bulk.parts.infos(job_id, "success") == []
