"""Bulk API 1.0 (``/services/async/XX.X/job...``) over HTTP, in-process on SQLite.

The client authenticates with ``X-SFDC-Session`` as simple-salesforce and the Data Loader do. The worker is not
started (``bulk_workers=0``): each test runs ``org.worker.run_once()`` itself, so every step is deterministic.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import orjson
import pytest
from starlette.testclient import TestClient

import interlink.jobs.classic as classic_module
from interlink.app.org import Org
from interlink.testing import backend_org, rest_client

A = "/services/async/66.0"
NS = "http://www.force.com/2009/06/asyncapi/dataload"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XML = {"Content-Type": "application/xml; charset=UTF-8"}
CSV = {"Content-Type": "text/csv; charset=UTF-8"}
JSON = {"Content-Type": "application/json"}

OBJECTS = {
    "Account": """\
fields:
  - {name: Ext__c, type: text, length: 40, externalId: true, unique: true}
""",
}


@pytest.fixture
def org(tmp_path: Path) -> Iterator[Org]:
    with backend_org(tmp_path, "sqlite", OBJECTS, bulk_workers=0) as opened:
        yield opened


@pytest.fixture
def api(org: Org) -> TestClient:
    client = rest_client(org)  # no lifespan: the test runs the worker itself
    token = client.headers.pop("Authorization").split(" ", 1)[1]
    client.headers["X-SFDC-Session"] = token  # Bulk API 1.0 clients send the session id in this header only
    return client


# -- helpers -------------------------------------------------------------------------------------------------

def run_all(org: Org) -> int:
    runs = 0
    while org.worker.run_once():
        runs += 1
    return runs


def local(tag: str) -> str:
    return tag.rpartition("}")[2]


def parse_xml(data: bytes | str) -> ET.Element:
    return ET.fromstring(data.encode() if isinstance(data, str) else data)


def flat(element: ET.Element) -> dict[str, str]:
    """The child elements of ``element`` by local name (text), for jobInfo, batchInfo and error."""
    return {local(child.tag): (child.text or "") for child in element}


def xml_body(response: Any, root: str) -> dict[str, str]:
    assert response.headers["content-type"].startswith("application/xml"), response.headers["content-type"]
    element = parse_xml(response.content)
    assert element.tag == f"{{{NS}}}{root}", element.tag
    return flat(element)


def job_xml(operation: str, obj: str, content_type: str, **extra: str) -> bytes:
    fields = "".join(f"<{k}>{v}</{k}>" for k, v in {"operation": operation, "object": obj, **extra,
                                                  "contentType": content_type}.items())
    return f'<?xml version="1.0" encoding="UTF-8"?><jobInfo xmlns="{NS}">{fields}</jobInfo>'.encode()


def create_json_job(api: TestClient, operation: str, obj: str = "Account", **extra: Any) -> str:
    response = api.post(f"{A}/job", json={"operation": operation, "object": obj, "contentType": "JSON", **extra})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def create_xml_job(api: TestClient, operation: str, obj: str, content_type: str) -> str:
    response = api.post(f"{A}/job", content=job_xml(operation, obj, content_type), headers=XML)
    assert response.status_code == 201, response.text
    return xml_body(response, "jobInfo")["id"]


def add_json_batch(api: TestClient, job_id: str, body: bytes) -> str:
    response = api.post(f"{A}/job/{job_id}/batch", content=body, headers=JSON)
    assert response.status_code == 201, response.text
    assert response.json()["state"] == "Queued"
    return str(response.json()["id"])


def json_batch(api: TestClient, job_id: str, batch_id: str) -> dict[str, Any]:
    response = api.get(f"{A}/job/{job_id}/batch/{batch_id}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def insert_accounts(org: Org, api: TestClient, records: list[dict[str, Any]]) -> list[str]:
    job_id = create_json_job(api, "insert")
    batch_id = add_json_batch(api, job_id, orjson.dumps(records))
    run_all(org)
    results = api.get(f"{A}/job/{job_id}/batch/{batch_id}/result").json()
    assert all(r["success"] for r in results), results
    return [str(r["id"]) for r in results]


def soql(org: Org, query: str) -> list[dict[str, Any]]:
    return org.query.execute(query, org.admin_context()).records


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


# -- XML jobs -------------------------------------------------------------------------------------------------

def test_xml_job_with_parent_by_external_id_and_nil_values(org: Org, api: TestClient) -> None:
    [parent_id] = insert_accounts(org, api, [{"Name": "Parent", "Ext__c": "P-1"}])

    created = api.post(f"{A}/job", content=job_xml("insert", "Contact", "XML"), headers=XML)
    assert created.status_code == 201, created.text
    job = xml_body(created, "jobInfo")
    assert job["id"].startswith("750") and len(job["id"]) == 18
    assert (job["operation"], job["object"], job["state"], job["contentType"]) == ("insert", "Contact", "Open", "XML")
    assert (job["concurrencyMode"], job["apiVersion"], job["numberBatchesTotal"]) == ("Parallel", "66.0", "0")

    batch = (f'<?xml version="1.0" encoding="UTF-8"?><sObjects xmlns="{NS}" xmlns:xsi="{XSI}">'
             "<sObject><LastName>Nested &amp; Co</LastName><Title>Boss</Title>"
             "<Account><Ext__c>P-1</Ext__c></Account></sObject>"
             '<sObject><LastName>Nil</LastName><Title xsi:nil="true"/></sObject>'
             "<sObject><Title>no last name</Title></sObject>"
             "</sObjects>").encode()
    added = api.post(f"{A}/job/{job['id']}/batch", content=batch, headers=XML)
    assert added.status_code == 201, added.text
    info = xml_body(added, "batchInfo")
    assert (info["jobId"], info["state"]) == (job["id"], "Queued") and info["id"].startswith("751")
    assert api.get(f"{A}/job/{job['id']}/batch/{info['id']}/request").content == batch

    assert run_all(org) == 1
    done = xml_body(api.get(f"{A}/job/{job['id']}/batch/{info['id']}"), "batchInfo")
    assert (done["state"], done["numberRecordsProcessed"], done["numberRecordsFailed"]) == ("Completed", "3", "1")

    result = api.get(f"{A}/job/{job['id']}/batch/{info['id']}/result")
    assert result.status_code == 200 and result.headers["content-type"].startswith("application/xml")
    root = parse_xml(result.content)
    assert root.tag == f"{{{NS}}}results"
    results = list(root)
    assert [local(r.tag) for r in results] == ["result"] * 3
    ok = [flat(r) for r in results[:2]]
    assert all((r["success"], r["created"]) == ("true", "true") and r["id"].startswith("003") for r in ok), ok
    failed = results[2]
    assert (failed.findtext(f"{{{NS}}}success"), failed.findtext(f"{{{NS}}}created")) == ("false", "false")
    [error] = failed.findall(f"{{{NS}}}errors")
    assert flat(error) == {"fields": "LastName", "message": "Required fields are missing: [LastName]",
                           "statusCode": "REQUIRED_FIELD_MISSING"}, ET.tostring(error)

    stored = {r["LastName"]: r for r in soql(org, "SELECT LastName, Title, AccountId FROM Contact")}
    assert set(stored) == {"Nested & Co", "Nil"}
    assert (stored["Nested & Co"]["AccountId"], stored["Nested & Co"]["Title"]) == (parent_id, "Boss")
    assert (stored["Nil"]["AccountId"], stored["Nil"]["Title"]) == (None, None)

    # xsi:nil="true" in an update clears the field.
    update = create_xml_job(api, "update", "Contact", "XML")
    contact_id = ok[0]["id"]
    clear = (f'<sObjects xmlns="{NS}" xmlns:xsi="{XSI}"><sObject><Id>{contact_id}</Id>'
             '<Title xsi:nil="true"/></sObject></sObjects>').encode()
    assert api.post(f"{A}/job/{update}/batch", content=clear, headers=XML).status_code == 201
    run_all(org)
    assert soql(org, f"SELECT Title FROM Contact WHERE Id = '{contact_id}'")[0]["Title"] is None

    job_after = xml_body(api.get(f"{A}/job/{job['id']}"), "jobInfo")
    assert (job_after["numberBatchesCompleted"], job_after["numberBatchesTotal"]) == ("1", "1")
    assert (job_after["numberRecordsProcessed"], job_after["numberRecordsFailed"]) == ("3", "1")
    listing = parse_xml(api.get(f"{A}/job/{job['id']}/batch").content)
    assert local(listing.tag) == "batchInfoList" and [flat(b)["id"] for b in listing] == [info["id"]]


def test_xml_relationship_in_the_documented_sobject_wrapper(org: Org, api: TestClient) -> None:
    """The Bulk API guide ("Relationship Fields in Records") writes a parent reference in XML as
    ``<RelationshipName><sObject><IndexedFieldName>value</IndexedFieldName></sObject></RelationshipName>``."""
    [parent_id] = insert_accounts(org, api, [{"Name": "Parent", "Ext__c": "P-2"}])
    job_id = create_xml_job(api, "insert", "Contact", "XML")
    batch = (f'<sObjects xmlns="{NS}"><sObject><LastName>Wrapped</LastName>'
             "<Account><sObject><Ext__c>P-2</Ext__c></sObject></Account></sObject></sObjects>").encode()
    added = api.post(f"{A}/job/{job_id}/batch", content=batch, headers=XML)
    batch_id = xml_body(added, "batchInfo")["id"]
    run_all(org)
    result = api.get(f"{A}/job/{job_id}/batch/{batch_id}/result").text
    assert "<success>true</success>" in result, (
        "POST job/{id}/batch with <Account><sObject><Ext__c>P-2</Ext__c></sObject></Account> (the documented XML "
        f"relationship syntax) must link the contact to the account with Ext__c P-2; the result was {result}")
    assert soql(org, "SELECT AccountId FROM Contact WHERE LastName = 'Wrapped'")[0]["AccountId"] == parent_id


def test_concurrency_mode_serial_is_kept(api: TestClient) -> None:
    created = api.post(f"{A}/job", content=job_xml("insert", "Account", "XML", concurrencyMode="Serial"),
                       headers=XML)
    assert created.status_code == 201, created.text
    job = xml_body(created, "jobInfo")
    assert job["concurrencyMode"] == "Serial", (
        "POST job with <concurrencyMode>Serial</concurrencyMode> must answer a jobInfo with concurrencyMode Serial "
        f"(the platform keeps the requested mode); it answered {job['concurrencyMode']}")
    assert xml_body(api.get(f"{A}/job/{job['id']}"), "jobInfo")["concurrencyMode"] == "Serial"


# -- CSV jobs -------------------------------------------------------------------------------------------------

def test_csv_job_batches_and_results(org: Org, api: TestClient) -> None:
    job_id = create_xml_job(api, "insert", "Account", "CSV")
    data = 'Name,Ext__c,Description\r\n"Csv, One",C-1,"said ""hi""\nand left"\r\nCsv Two,C-2,\r\n,C-3,nameless\r\n'
    added = api.post(f"{A}/job/{job_id}/batch", content=data.encode(), headers=CSV)
    assert added.status_code == 201, added.text
    info = xml_body(added, "batchInfo")  # a CSV job's batchInfo is XML
    assert info["state"] == "Queued"
    assert xml_body(api.get(f"{A}/job/{job_id}/batch/{info['id']}"), "batchInfo")["state"] == "Queued"

    run_all(org)
    done = xml_body(api.get(f"{A}/job/{job_id}/batch/{info['id']}"), "batchInfo")
    assert (done["state"], done["numberRecordsProcessed"], done["numberRecordsFailed"]) == ("Completed", "3", "1")
    result = api.get(f"{A}/job/{job_id}/batch/{info['id']}/result")
    assert result.status_code == 200 and result.headers["content-type"].startswith("text/csv")
    assert result.text.split("\n", 1)[0] == '"Id","Success","Created","Error"'
    rows = csv_rows(result.text)
    assert [(r["Success"], r["Created"]) for r in rows] == [("true", "true"), ("true", "true"), ("false", "false")]
    assert all(r["Id"].startswith("001") and r["Error"] == "" for r in rows[:2]), rows
    assert rows[2]["Id"] == ""
    assert rows[2]["Error"] == "REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:Name --", rows[2]

    stored = {r["Ext__c"]: r for r in soql(org, "SELECT Name, Ext__c, Description FROM Account WHERE Ext__c != null")}
    assert {k: (r["Name"], r["Description"]) for k, r in stored.items()} == {
        "C-1": ("Csv, One", 'said "hi"\nand left'), "C-2": ("Csv Two", None)}

    # An upsert in CSV says Created false for a match, true for a new record.
    upsert = api.post(f"{A}/job", content=job_xml("upsert", "Account", "CSV", externalIdFieldName="Ext__c"),
                      headers=XML)
    assert xml_body(upsert, "jobInfo")["externalIdFieldName"] == "Ext__c"
    upsert_id = xml_body(upsert, "jobInfo")["id"]
    batch_id = xml_body(api.post(f"{A}/job/{upsert_id}/batch", content=b"Ext__c,Name\nC-2,Renamed\nC-9,Nine\n",
                                 headers=CSV), "batchInfo")["id"]
    run_all(org)
    upserted = csv_rows(api.get(f"{A}/job/{upsert_id}/batch/{batch_id}/result").text)
    assert [(r["Id"], r["Success"], r["Created"]) for r in upserted] == [
        (rows[1]["Id"], "true", "false"), (upserted[1]["Id"], "true", "true")]


# -- failed batches ---------------------------------------------------------------------------------------------

def test_malformed_json_batch_fails(org: Org, api: TestClient) -> None:
    job_id = create_json_job(api, "insert")
    batch_id = add_json_batch(api, job_id, b'[{"Name": "Broken"')
    run_all(org)
    batch = json_batch(api, job_id, batch_id)
    assert batch["state"] == "Failed", batch
    assert batch["stateMessage"].startswith("InvalidBatch : "), batch
    assert (batch["numberRecordsProcessed"], batch["numberRecordsFailed"]) == (0, 0)
    job = api.get(f"{A}/job/{job_id}").json()
    assert (job["numberBatchesFailed"], job["numberBatchesTotal"], job["state"]) == (1, 1, "Open")
    failed_result = api.get(f"{A}/job/{job_id}/batch/{batch_id}/result", headers=JSON)
    assert failed_result.status_code == 400 and failed_result.json()["exceptionCode"] == "InvalidBatch"
    assert soql(org, "SELECT Id FROM Account") == []


def test_invalid_soql_batch_fails(org: Org, api: TestClient) -> None:
    job_id = create_json_job(api, "query")
    bad_syntax = add_json_batch(api, job_id, b"SELEKT Id FROM Account")
    bad_field = add_json_batch(api, job_id, b"SELECT Id, Bogus__c FROM Account")
    run_all(org)
    for batch_id in (bad_syntax, bad_field):
        batch = json_batch(api, job_id, batch_id)
        assert batch["state"] == "Failed" and batch["stateMessage"].startswith("InvalidBatch : "), batch
    assert "Bogus__c" in json_batch(api, job_id, bad_field)["stateMessage"]
    assert api.get(f"{A}/job/{job_id}").json()["numberBatchesFailed"] == 2


def test_failed_query_state_message_has_the_platform_prefix(org: Org, api: TestClient) -> None:
    """The platform writes a query batch's failure as ``InvalidBatch : Failed to process query: CODE: ...``
    (e.g. ``InvalidBatch : Failed to process query: INVALID_FIELD: select ... No such column ...``), which tools
    parse for the error code."""
    job_id = create_json_job(api, "query")
    batch_id = add_json_batch(api, job_id, b"SELECT Id, Bogus__c FROM Account")
    run_all(org)
    message = json_batch(api, job_id, batch_id)["stateMessage"]
    assert message.startswith("InvalidBatch : Failed to process query: INVALID_FIELD: "), (
        "a query batch with an unknown column must fail with stateMessage 'InvalidBatch : Failed to process query: "
        f"INVALID_FIELD: ...'; it was {message!r}")


def test_batch_over_10000_records_fails(org: Org, api: TestClient) -> None:
    job_id = create_json_job(api, "insert")
    batch_id = add_json_batch(api, job_id, orjson.dumps([{"Name": f"Many {n}"} for n in range(10_001)]))
    csv_job = create_xml_job(api, "insert", "Account", "CSV")
    csv_data = "Name\n" + "".join(f"Row {n}\n" for n in range(10_001))
    csv_batch = xml_body(api.post(f"{A}/job/{csv_job}/batch", content=csv_data.encode(), headers=CSV),
                         "batchInfo")["id"]
    run_all(org)
    batch = json_batch(api, job_id, batch_id)
    assert batch["state"] == "Failed" and batch["stateMessage"].startswith("InvalidBatch : "), batch
    assert batch["numberRecordsProcessed"] == 0
    assert "10000" in batch["stateMessage"].replace(",", ""), batch["stateMessage"]
    csv_info = xml_body(api.get(f"{A}/job/{csv_job}/batch/{csv_batch}"), "batchInfo")
    assert csv_info["state"] == "Failed", csv_info
    assert org.query.execute("SELECT COUNT() FROM Account", org.admin_context()).total_size == 0


# -- query jobs ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("content_type", ["CSV", "XML"])
def test_query_job_results(org: Org, api: TestClient, content_type: str) -> None:
    ids = insert_accounts(org, api, [{"Name": f"Query {n}", "Ext__c": f"Q-{n}", "NumberOfEmployees": n}
                                     for n in range(3)])
    job_id = create_xml_job(api, "query", "Account", content_type)
    soql_text = b"SELECT Id, Name, NumberOfEmployees, Owner.Name FROM Account WHERE Name LIKE 'Query%' ORDER BY Name"
    added = api.post(f"{A}/job/{job_id}/batch", content=soql_text, headers=CSV if content_type == "CSV" else XML)
    assert added.status_code == 201, added.text
    batch_id = xml_body(added, "batchInfo")["id"]
    assert api.get(f"{A}/job/{job_id}/batch/{batch_id}/request").content == soql_text
    closed = api.post(f"{A}/job/{job_id}", content=f'<jobInfo xmlns="{NS}"><state>Closed</state></jobInfo>'.encode(),
                      headers=XML)
    assert xml_body(closed, "jobInfo")["state"] == "Closed"

    run_all(org)
    info = xml_body(api.get(f"{A}/job/{job_id}/batch/{batch_id}"), "batchInfo")
    assert (info["state"], info["numberRecordsProcessed"]) == ("Completed", "3")
    listing = api.get(f"{A}/job/{job_id}/batch/{batch_id}/result")
    assert listing.status_code == 200 and listing.headers["content-type"].startswith("application/xml")
    root = parse_xml(listing.content)
    assert root.tag == f"{{{NS}}}result-list"
    result_ids = [r.text or "" for r in root]
    assert len(result_ids) == 1 and result_ids[0].startswith("752")
    assert [local(r.tag) for r in root] == ["result"]

    data = api.get(f"{A}/job/{job_id}/batch/{batch_id}/result/{result_ids[0]}")
    assert data.status_code == 200
    if content_type == "CSV":
        assert data.headers["content-type"].startswith("text/csv")
        assert data.text.split("\n", 1)[0] == '"Id","Name","NumberOfEmployees","Owner.Name"'
        rows = csv_rows(data.text)
        assert [(r["Id"], r["Name"], r["NumberOfEmployees"]) for r in rows] == [
            (ids[n], f"Query {n}", str(n)) for n in range(3)]
        assert all(r["Owner.Name"] for r in rows)
    else:
        assert data.headers["content-type"].startswith("application/xml")
        result = parse_xml(data.content)
        assert result.tag == f"{{{NS}}}queryResult"
        records = result.findall(f"{{{NS}}}records")
        assert len(records) == 3
        assert [r.get(f"{{{XSI}}}type") for r in records] == ["sObject"] * 3
        values = [(r.findtext(f"{{{NS}}}type"), r.findtext(f"{{{NS}}}Id"), r.findtext(f"{{{NS}}}Name"),
                   r.findtext(f"{{{NS}}}NumberOfEmployees")) for r in records]
        assert values == [("Account", ids[n], f"Query {n}", str(n)) for n in range(3)]
        owner = records[0].find(f"{{{NS}}}Owner")
        assert owner is not None and owner.findtext(f"{{{NS}}}type") == "User" and owner.findtext(f"{{{NS}}}Name")

    unknown = api.get(f"{A}/job/{job_id}/batch/{batch_id}/result/752000000000000AAA")
    assert unknown.status_code == 400 and xml_body(unknown, "error")["exceptionCode"] == "InvalidBatch"


# -- job states ---------------------------------------------------------------------------------------------------

def test_closed_job_refuses_batches(org: Org, api: TestClient) -> None:
    job_id = create_json_job(api, "insert")
    add_json_batch(api, job_id, b'[{"Name": "Before close"}]')
    closed = api.post(f"{A}/job/{job_id}", json={"state": "Closed"})
    assert closed.status_code == 200 and closed.json()["state"] == "Closed"
    late = api.post(f"{A}/job/{job_id}/batch", content=b'[{"Name": "After close"}]', headers=JSON)
    assert late.status_code == 400, late.text
    assert late.json()["exceptionCode"] == "InvalidJobState", late.json()
    again = api.post(f"{A}/job/{job_id}", json={"state": "Closed"})
    assert again.status_code == 400 and again.json()["exceptionCode"] == "InvalidJobState"
    run_all(org)  # the batch added while the job was open is still processed
    assert [r["Name"] for r in soql(org, "SELECT Name FROM Account")] == ["Before close"]
    assert api.get(f"{A}/job/{job_id}").json()["numberBatchesCompleted"] == 1


def test_abort_leaves_queued_batches_not_processed(org: Org, api: TestClient) -> None:
    job_id = create_json_job(api, "insert")
    first = add_json_batch(api, job_id, b'[{"Name": "Aborted 1"}]')
    second = add_json_batch(api, job_id, b'[{"Name": "Aborted 2"}, {"Name": "Aborted 3"}]')
    aborted = api.post(f"{A}/job/{job_id}", json={"state": "Aborted"})
    assert aborted.status_code == 200 and aborted.json()["state"] == "Aborted"
    assert aborted.json()["numberBatchesQueued"] == 0
    for batch_id in (first, second):
        assert json_batch(api, job_id, batch_id)["state"] == "NotProcessed"
    assert run_all(org) == 0
    assert org.worker.run_once() is False
    for batch_id in (first, second):
        batch = json_batch(api, job_id, batch_id)
        assert (batch["state"], batch["numberRecordsProcessed"]) == ("NotProcessed", 0), batch
    assert soql(org, "SELECT Id FROM Account") == []
    job = api.get(f"{A}/job/{job_id}").json()
    assert (job["state"], job["numberRecordsProcessed"], job["numberBatchesTotal"]) == ("Aborted", 0, 2)
    late = api.post(f"{A}/job/{job_id}/batch", content=b'[{"Name": "Late"}]', headers=JSON)
    assert late.status_code == 400 and late.json()["exceptionCode"] == "InvalidJobState"


# -- errors ---------------------------------------------------------------------------------------------------------

def test_invalid_session_is_an_xml_error(api: TestClient) -> None:
    response = api.post(f"{A}/job", content=job_xml("insert", "Account", "XML"),
                        headers={**XML, "X-SFDC-Session": "00D000000000000!bogus"})
    assert response.status_code == 400, response.text
    error = xml_body(response, "error")
    assert error["exceptionCode"] == "InvalidSessionId" and error["exceptionMessage"], error
    missing = TestClient(api.app, base_url="https://testserver").get(f"{A}/job/750000000000000AAA")
    assert missing.status_code == 400 and xml_body(missing, "error")["exceptionCode"] == "InvalidSessionId"


def test_unknown_version_is_an_invalid_url(api: TestClient) -> None:
    for version in ("12.0", "99.0", "v66.0", "latest"):
        response = api.post(f"/services/async/{version}/job", content=job_xml("insert", "Account", "XML"),
                            headers=XML)
        assert response.status_code == 400, (version, response.text)
        assert xml_body(response, "error")["exceptionCode"] == "InvalidUrl", (version, response.text)


def test_unknown_job_object_and_batch(api: TestClient) -> None:
    unknown_object = api.post(f"{A}/job", json={"operation": "insert", "object": "Nope__c", "contentType": "JSON"})
    assert unknown_object.status_code == 400
    assert unknown_object.json()["exceptionCode"] == "InvalidJob" and "Nope__c" in unknown_object.json()[
        "exceptionMessage"]
    unknown_job = api.get(f"{A}/job/750000000000000AAA", headers=JSON)
    assert unknown_job.status_code == 400 and unknown_job.json()["exceptionCode"] == "InvalidJob"
    job_id = create_json_job(api, "insert")
    unknown_batch = api.get(f"{A}/job/{job_id}/batch/751000000000000AAA", headers=JSON)
    assert unknown_batch.status_code == 400 and unknown_batch.json()["exceptionCode"] == "InvalidBatch"


def test_batch_results_before_completed_are_an_invalid_batch(org: Org, api: TestClient) -> None:
    job_id = create_json_job(api, "insert")
    batch_id = add_json_batch(api, job_id, b'[{"Name": "Early"}]')
    early = api.get(f"{A}/job/{job_id}/batch/{batch_id}/result", headers=JSON)
    assert early.status_code == 400, early.text
    assert early.json()["exceptionCode"] == "InvalidBatch", early.json()
    run_all(org)
    [result] = api.get(f"{A}/job/{job_id}/batch/{batch_id}/result").json()
    assert (result["success"], result["created"], result["errors"]) == (True, True, [])


# -- durability -----------------------------------------------------------------------------------------------------

class SimulatedCrash(BaseException):
    """Not an Exception: nothing in the worker catches it, as with a process that dies mid-batch."""


def test_a_crash_mid_batch_is_processed_exactly_once_after_release(org: Org, api: TestClient,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    real_apply = classic_module.apply_bodies
    calls: list[int] = []

    def crash_once(*args: Any, **kwargs: Any) -> Any:
        results = real_apply(*args, **kwargs)  # the records are written in the batch's transaction ...
        calls.append(len(results))
        if len(calls) == 1:
            raise SimulatedCrash()  # ... which never commits
        return results

    monkeypatch.setattr(classic_module, "apply_bodies", crash_once)
    job_id = create_json_job(api, "insert")
    batch_id = add_json_batch(api, job_id, orjson.dumps([{"Name": f"Crash {n}"} for n in range(5)]))

    with pytest.raises(SimulatedCrash):
        org.worker.run_once()
    assert calls == [5]
    batch = json_batch(api, job_id, batch_id)
    assert (batch["state"], batch["numberRecordsProcessed"]) == ("InProgress", 0), batch
    assert soql(org, "SELECT Id FROM Account") == [], "the crashed batch's records must have been rolled back"
    assert org.worker.run_once() is False, "the batch is still leased: nobody may take it before release"

    assert org.worker.release_orphans() == 1
    assert org.worker.run_once() is True
    assert org.worker.run_once() is False
    assert calls == [5, 5]
    batch = json_batch(api, job_id, batch_id)
    assert (batch["state"], batch["numberRecordsProcessed"], batch["numberRecordsFailed"]) == ("Completed", 5, 0)
    job = api.get(f"{A}/job/{job_id}").json()
    assert (job["numberRecordsProcessed"], job["numberBatchesCompleted"], job["numberBatchesInProgress"]) == (5, 1, 0)
    names = sorted(r["Name"] for r in soql(org, "SELECT Name FROM Account"))
    assert names == [f"Crash {n}" for n in range(5)]
    results = api.get(f"{A}/job/{job_id}/batch/{batch_id}/result").json()
    assert len(results) == 5 and all(r["success"] and r["created"] for r in results)
    assert {r["id"] for r in results} == {r["Id"] for r in soql(org, "SELECT Id FROM Account")}


def test_query_results_split_into_several_files(org: Org, api: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(classic_module, "QUERY_RESULT_ROWS", 2)  # 100,000 rows a file on the platform
    insert_accounts(org, api, [{"Name": f"Split {n}"} for n in range(5)])
    job_id = create_json_job(api, "query")
    batch_id = add_json_batch(api, job_id, b"SELECT Name FROM Account ORDER BY Name")
    run_all(org)
    assert json_batch(api, job_id, batch_id)["numberRecordsProcessed"] == 5
    result_ids = api.get(f"{A}/job/{job_id}/batch/{batch_id}/result").json()
    assert len(result_ids) == 3 and len(set(result_ids)) == 3, result_ids
    files = [api.get(f"{A}/job/{job_id}/batch/{batch_id}/result/{rid}").json() for rid in result_ids]
    assert [[r["Name"] for r in records] for records in files] == [["Split 0", "Split 1"], ["Split 2", "Split 3"],
                                                                   ["Split 4"]]


def test_a_crash_mid_query_batch_is_run_again_after_release(org: Org, api: TestClient,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A query batch changes no data, so a worker that dies after writing some result files leaves a batch that
    the next worker runs again from the start (as Bulk API 2.0 query jobs are)."""
    monkeypatch.setattr(classic_module, "QUERY_RESULT_ROWS", 2)
    insert_accounts(org, api, [{"Name": f"Resume {n}"} for n in range(5)])
    engine = org.worker.classic.bulk.query
    real_stream = engine.stream_records
    crashed: list[bool] = []

    def crash_after_first_file(*args: Any, **kwargs: Any) -> Iterator[list[dict[str, Any]]]:
        for chunk in real_stream(*args, **kwargs):
            for number, record in enumerate(chunk):
                yield [record]
                if number == 2 and not crashed:  # the first result file (2 rows) is committed by now
                    crashed.append(True)
                    raise SimulatedCrash()

    monkeypatch.setattr(engine, "stream_records", crash_after_first_file)
    job_id = create_json_job(api, "query")
    batch_id = add_json_batch(api, job_id, b"SELECT Name FROM Account ORDER BY Name")
    with pytest.raises(SimulatedCrash):
        org.worker.run_once()
    assert json_batch(api, job_id, batch_id)["state"] == "InProgress"
    assert org.worker.release_orphans() == 1
    assert org.worker.run_once() is True
    batch = json_batch(api, job_id, batch_id)
    assert (batch["state"], batch["numberRecordsProcessed"]) == ("Completed", 5), (
        "after release_orphans() the next run_once() must run the interrupted query batch again and complete it; "
        f"the batch is {batch['state']}: {batch.get('stateMessage', '')[:160]}")
    result_ids = api.get(f"{A}/job/{job_id}/batch/{batch_id}/result").json()
    names = [r["Name"] for rid in result_ids for r in api.get(f"{A}/job/{job_id}/batch/{batch_id}/result/{rid}").json()]
    assert names == [f"Resume {n}" for n in range(5)]
    assert api.get(f"{A}/job/{job_id}").json()["numberRecordsProcessed"] == 5


def test_a_serial_job_runs_its_batches_one_at_a_time_in_order(org: Org, api: TestClient) -> None:
    job_id = create_json_job(api, "insert", concurrencyMode="Serial")
    first = add_json_batch(api, job_id, orjson.dumps([{"Name": "S1"}]))
    second = add_json_batch(api, job_id, orjson.dumps([{"Name": "S2"}]))
    claimed = org.worker._claim_batch()
    assert claimed is not None and claimed[1].id == first
    assert org.worker._claim_batch() is None  # the second waits for the first
    org.worker.batches.run(*claimed, org.worker._context(claimed[0]), org.worker.worker_id)
    assert run_all(org) == 1 and json_batch(api, job_id, second)["state"] == "Completed"


def test_json_query_results_carry_dates_as_epoch_milliseconds(org: Org, api: TestClient) -> None:
    insert_accounts(org, api, [{"Name": "Dated"}])
    job_id = create_json_job(api, "query")
    batch_id = add_json_batch(api, job_id, b"SELECT Name, CreatedDate, Owner.CreatedDate FROM Account")
    run_all(org)
    base = f"{A}/job/{job_id}/batch/{batch_id}/result"
    (result_id,) = api.get(base).json()
    (record,) = api.get(f"{base}/{result_id}").json()
    assert isinstance(record["CreatedDate"], int) and record["CreatedDate"] > 1_700_000_000_000
    assert isinstance(record["Owner"]["CreatedDate"], int)


def test_malformed_xml_is_a_client_error_or_a_failed_batch(org: Org, api: TestClient) -> None:
    refused = api.post(f"{A}/job", content=b"<jobInfo><operation>insert", headers=XML)
    assert refused.status_code == 400 and xml_body(refused, "error")["exceptionCode"] == "ClientInputError"
    job_id = create_xml_job(api, "insert", "Account", "XML")
    added = api.post(f"{A}/job/{job_id}/batch", content=b"<sObjects><sObject><Name>x</sObjects>", headers=XML)
    batch_id = xml_body(added, "batchInfo")["id"]
    run_all(org)
    info = xml_body(api.get(f"{A}/job/{job_id}/batch/{batch_id}"), "batchInfo")
    assert info["state"] == "Failed" and info["stateMessage"].startswith("InvalidBatch : Failed to parse XML")
