"""The Bulk API 2.0 surface over HTTP (in-process): status codes, bodies, headers, multipart, error shapes."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from interlink.app.org import Org
from interlink.testing import backend_org, rest_client

B = "/services/data/v66.0/jobs"


@pytest.fixture
def org(tmp_path: Path) -> Iterator[Org]:
    with backend_org(tmp_path, "sqlite", {}, bulk_workers=0) as opened:
        yield opened


@pytest.fixture
def api(org: Org) -> TestClient:
    return rest_client(org)  # no lifespan: the test runs the worker itself


def run_jobs(org: Org) -> None:
    while org.worker.run_once():
        pass


def error(response: Any) -> dict[str, Any]:
    body = response.json()
    assert isinstance(body, list) and set(body[0]) == {"errorCode", "message", "fields"}
    return body[0]  # type: ignore[no-any-return]


def test_ingest_round_trip(org: Org, api: TestClient) -> None:
    created = api.post(f"{B}/ingest", json={"object": "Account", "operation": "insert", "lineEnding": "LF"})
    assert created.status_code == 200
    job = created.json()
    assert job["state"] == "Open" and job["id"].startswith("750") and job["apiVersion"] == 66.0
    assert job["contentUrl"] == f"services/data/v66.0/jobs/ingest/{job['id']}/batches"
    put = api.put(f"{B}/ingest/{job['id']}/batches", content=b"Name\nHttp One\nHttp Two\n",
                  headers={"Content-Type": "text/csv"})
    assert put.status_code == 201 and put.content == b""
    closed = api.patch(f"{B}/ingest/{job['id']}", json={"state": "UploadComplete"})
    assert closed.status_code == 200 and closed.json()["state"] == "UploadComplete"
    run_jobs(org)
    info = api.get(f"{B}/ingest/{job['id']}").json()
    assert info["state"] == "JobComplete" and info["numberRecordsProcessed"] == 2 and info["numberRecordsFailed"] == 0
    for key in ("retries", "totalProcessingTime", "apiActiveProcessingTime", "jobType"):
        assert key in info
    success = api.get(f"{B}/ingest/{job['id']}/successfulResults/")
    assert success.status_code == 200 and success.headers["content-type"].startswith("text/csv")
    assert len(list(csv.DictReader(io.StringIO(success.text)))) == 2
    # simple-salesforce asks for unprocessedRecords; the platform documents unprocessedrecords: both work.
    for path in ("unprocessedRecords", "unprocessedrecords"):
        assert api.get(f"{B}/ingest/{job['id']}/{path}").text == "Name\n"
    assert api.delete(f"{B}/ingest/{job['id']}").status_code == 204
    assert error(api.get(f"{B}/ingest/{job['id']}"))["errorCode"] == "NOT_FOUND"


def test_multipart_create_uploads_and_queues(org: Org, api: TestClient) -> None:
    boundary = "BOUNDARY"
    body = (f"--{boundary}\r\nContent-Type: application/json\r\nContent-Disposition: form-data; name=\"job\"\r\n\r\n"
            '{"object":"Contact","contentType":"CSV","operation":"insert","lineEnding":"CRLF"}\r\n'
            f"--{boundary}\r\nContent-Type: text/csv\r\nContent-Disposition: form-data; name=\"content\"; "
            "filename=\"content\"\r\n\r\nLastName,FirstName\r\nLovelace,Ada\r\n"
            f"\r\n--{boundary}--\r\n").encode()
    response = api.post(f"{B}/ingest", content=body,
                        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert response.status_code == 200 and response.json()["state"] == "UploadComplete"
    run_jobs(org)
    info = api.get(f"{B}/ingest/{response.json()['id']}").json()
    assert (info["state"], info["numberRecordsProcessed"]) == ("JobComplete", 1)


def test_errors_are_platform_shaped_and_change_nothing(org: Org, api: TestClient) -> None:
    unknown = api.post(f"{B}/ingest", json={"object": "Nope__c", "operation": "insert"})
    assert unknown.status_code == 400 and error(unknown)["errorCode"] == "INVALIDENTITY"
    broken = api.post(f"{B}/ingest", content=b"{not json", headers={"Content-Type": "application/json"})
    assert broken.status_code == 400 and error(broken)["errorCode"] == "JSON_PARSER_ERROR"
    job = api.post(f"{B}/ingest", json={"object": "Account", "operation": "insert"}).json()
    wrong_state = api.patch(f"{B}/ingest/{job['id']}", json={"state": "Closed"})
    assert wrong_state.status_code == 400 and error(wrong_state)["errorCode"] == "INVALIDJOBSTATE"
    assert api.get(f"{B}/ingest/750000000000000AAA").status_code == 404
    assert api.get(f"{B}/ingest/not-an-id").status_code == 404
    assert api.post(f"{B}/ingest/{job['id']}/batches").status_code == 405
    assert org.query.execute("SELECT COUNT() FROM Account", org.admin_context()).total_size == 0


def test_an_unknown_column_is_accepted_then_fails_the_job_as_on_the_platform(org: Org, api: TestClient) -> None:
    job = api.post(f"{B}/ingest", json={"object": "Account", "operation": "insert"}).json()
    assert api.put(f"{B}/ingest/{job['id']}/batches", content=b"Name,Bogus\nX,Y\n").status_code == 201
    assert api.patch(f"{B}/ingest/{job['id']}", json={"state": "UploadComplete"}).json()["state"] == "UploadComplete"
    run_jobs(org)
    info = api.get(f"{B}/ingest/{job['id']}").json()
    assert (info["state"], info["errorMessage"]) == ("Failed", "InvalidBatch : Field name not found : Bogus")
    assert info["numberRecordsProcessed"] == 0
    assert api.get(f"{B}/ingest/{job['id']}/unprocessedrecords").text == 'Name,Bogus\n"X","Y"\n'


def test_query_job_results_pages_and_headers(org: Org, api: TestClient) -> None:
    api.post("/services/data/v66.0/composite/sobjects", json={"allOrNone": True, "records": [
        {"attributes": {"type": "Account"}, "Name": f"Page {i}"} for i in range(5)]})
    # simple-salesforce sends Accept: text/csv when creating a query job and parses the answer as JSON.
    created = api.post(f"{B}/query", json={"operation": "query", "query": "SELECT Name FROM Account ORDER BY Name"},
                       headers={"Accept": "text/csv"})
    assert created.status_code == 200 and created.json()["state"] == "UploadComplete"
    job_id = created.json()["id"]
    not_ready = api.get(f"{B}/query/{job_id}/results")
    assert not_ready.status_code == 400 and error(not_ready)["errorCode"] == "INVALIDJOBSTATE"
    run_jobs(org)
    names: list[str] = []
    locator = None
    while True:
        params: dict[str, Any] = {"maxRecords": 2, **({"locator": locator} if locator else {})}
        page = api.get(f"{B}/query/{job_id}/results", params=params)
        assert page.status_code == 200
        count = int(page.headers["Sforce-NumberOfRecords"])
        lines = page.text.splitlines()
        assert lines[0] == '"Name"' and len(lines) == count + 1
        names += [line.strip('"') for line in lines[1:]]
        locator = page.headers["Sforce-Locator"]
        if locator == "null":
            break
    assert names == [f"Page {i}" for i in range(5)]
    pages = api.get(f"{B}/query/{job_id}/resultPages", params={"maxRecords": 2}).json()
    assert pages["done"] is True and len(pages["resultPages"]) == 3
    first = api.get(pages["resultPages"][2]["resultUrl"])
    assert first.headers["Sforce-NumberOfRecords"] == "1" and first.text.splitlines()[1] == '"Page 4"'
    other_version = api.get(f"/services/data/v60.0/jobs/query/{job_id}/results")
    assert other_version.status_code == 409
    bad = api.get(f"{B}/query/{job_id}/results", params={"maxRecords": "lots"})
    assert bad.status_code == 400
    listing = api.get(f"{B}/query").json()
    assert listing["done"] is True and [j["id"] for j in listing["records"]] == [job_id]
    assert api.get(f"{B}/ingest").json()["records"] == []


def test_malformed_soql_is_refused_at_create(api: TestClient) -> None:
    response = api.post(f"{B}/query", json={"operation": "query", "query": "SELEKT Name FROM Account"})
    assert response.status_code == 400 and error(response)["errorCode"] == "MALFORMED_QUERY"


def test_limits_report_bulk_allocations(api: TestClient) -> None:
    limits = api.get("/services/data/v66.0/limits").json()
    assert limits["DailyBulkApiBatches"] == {"Max": 15000, "Remaining": 15000}
    assert limits["DailyBulkV2QueryJobs"]["Max"] == 10000


def test_health_reports_the_job_queue(org: Org, api: TestClient) -> None:
    job = api.post(f"{B}/ingest", json={"object": "Account", "operation": "insert"}).json()
    api.put(f"{B}/ingest/{job['id']}/batches", content=b"Name\nQueued\n")
    api.patch(f"{B}/ingest/{job['id']}", json={"state": "UploadComplete"})
    queue = api.get("/health").json()["components"]["bulk_jobs"]
    assert (queue["status"], queue["queued"], queue["running"]) == ("ok", 1, 0)
    run_jobs(org)
    assert api.get("/health").json()["components"]["bulk_jobs"]["queued"] == 0
