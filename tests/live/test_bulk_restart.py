"""A Bulk API 2.0 ingest job survives ``kill -9`` of the server mid-job: every row applied exactly once.

A 200,000-row Account insert (``AccountNumber`` = row number) is uploaded and closed; once some internal batches
have committed (and not all), the server process is killed with SIGKILL and a new ``interlink up`` is started on
the same data directory. The restarted worker must pick the job up after its last committed batch and finish it:
200,000 processed, none failed, 200,000 distinct ids in ``successfulResults`` and every row number stored once.
"""

from __future__ import annotations

import csv
import io
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from interlink.testing import API_VERSION, LiveServer, live_server

pytestmark = pytest.mark.live

ROWS = 200_000
BATCH = 10_000
ENV = {"INTERLINK_BULK_BATCH_SIZE": str(BATCH)}
TERMINAL = ("JobComplete", "Failed", "Aborted")


def session_for(server: LiveServer) -> requests.Session:
    session = requests.Session()
    session.verify = server.ca_bundle
    session.trust_env = False  # REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE would override `verify`
    session.headers["Authorization"] = f"Bearer {server.token()}"
    return session


def base(server: LiveServer) -> str:
    return f"{server.url}/services/data/v{API_VERSION}"


def job_info(session: requests.Session, server: LiveServer, job_id: str) -> dict[str, Any]:
    response = session.get(f"{base(server)}/jobs/ingest/{job_id}", timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def soql(session: requests.Session, server: LiveServer, query: str) -> dict[str, Any]:
    response = session.get(f"{base(server)}/query", params={"q": query}, timeout=120)
    assert response.status_code == 200, response.text
    return response.json()


def bulk_query_rows(session: requests.Session, server: LiveServer, query: str) -> list[dict[str, str]]:
    """Every row of a Bulk API 2.0 query job, following ``Sforce-Locator``."""
    created = session.post(f"{base(server)}/jobs/query", json={"operation": "query", "query": query}, timeout=60)
    assert created.status_code == 200, created.text
    job_id = created.json()["id"]
    deadline = time.monotonic() + 120
    while True:
        state = session.get(f"{base(server)}/jobs/query/{job_id}", timeout=60).json()["state"]
        if state in TERMINAL:
            break
        assert time.monotonic() < deadline, f"query job {job_id} still {state}"
        time.sleep(0.2)
    assert state == "JobComplete"
    rows: list[dict[str, str]] = []
    locator = ""
    while True:
        params = {"locator": locator} if locator else {}
        page = session.get(f"{base(server)}/jobs/query/{job_id}/results", params=params, timeout=120)
        assert page.status_code == 200, page.text
        found = list(csv.DictReader(io.StringIO(page.text)))
        assert len(found) == int(page.headers["Sforce-NumberOfRecords"])
        rows.extend(found)
        locator = page.headers["Sforce-Locator"]
        if locator == "null":
            return rows


def test_ingest_job_resumes_after_kill_9(tmp_path: Path) -> None:
    started = time.monotonic()
    data_dir = tmp_path / "org"
    prefix = "br" + uuid.uuid4().hex[:8]
    payload = ("Name,AccountNumber\n" + "".join(f"{prefix}-{n},{n}\n" for n in range(ROWS))).encode()

    with live_server(data_dir, env=ENV) as server:
        session = session_for(server)
        created = session.post(f"{base(server)}/jobs/ingest", json={"object": "Account", "operation": "insert"},
                               timeout=60)
        assert created.status_code == 200, created.text
        job_id = created.json()["id"]
        uploaded = session.put(f"{base(server)}/jobs/ingest/{job_id}/batches", data=payload,
                               headers={"Content-Type": "text/csv"}, timeout=120)
        assert uploaded.status_code == 201, uploaded.text
        closed = session.patch(f"{base(server)}/jobs/ingest/{job_id}", json={"state": "UploadComplete"}, timeout=60)
        assert closed.status_code == 200, closed.text

        # Wait until a few batches have committed, then kill the process while the rest are pending.
        deadline = time.monotonic() + 120
        while True:
            info = job_info(session, server, job_id)
            processed = info["numberRecordsProcessed"]
            assert info["state"] not in TERMINAL, (
                f"the job finished ({info['state']}, {processed} processed) before it could be killed mid-job: "
                "use more rows or a smaller INTERLINK_BULK_BATCH_SIZE")
            if processed >= 3 * BATCH:
                break
            assert time.monotonic() < deadline, f"no progress: {info}"
            time.sleep(0.05)
        server.process.kill()  # SIGKILL: no shutdown hooks, the batch in hand is lost mid-transaction
        server.process.wait()
        assert 0 < processed < ROWS

    with live_server(data_dir, env=ENV) as restarted:
        session = session_for(restarted)
        deadline = time.monotonic() + 180
        while True:
            info = job_info(session, restarted, job_id)
            if info["state"] in TERMINAL:
                break
            assert time.monotonic() < deadline, f"the job did not finish after the restart: {info}"
            time.sleep(0.25)
        assert info["state"] == "JobComplete", info
        assert info["numberRecordsProcessed"] == ROWS, info
        assert info["numberRecordsFailed"] == 0, info

        results = session.get(f"{base(restarted)}/jobs/ingest/{job_id}/successfulResults", timeout=120)
        assert results.status_code == 200
        success = list(csv.DictReader(io.StringIO(results.text)))
        assert len(success) == ROWS
        ids = {row["sf__Id"] for row in success}
        assert len(ids) == ROWS, "successfulResults lists some record id more than once"
        assert all(row["sf__Created"] == "true" for row in success)
        assert sorted(int(row["AccountNumber"]) for row in success) == list(range(ROWS)), \
            "successfulResults must list every uploaded row exactly once"
        failed = session.get(f"{base(restarted)}/jobs/ingest/{job_id}/failedResults", timeout=60)
        assert list(csv.DictReader(io.StringIO(failed.text))) == []

        where = f"WHERE Name LIKE '{prefix}-%'"
        assert soql(session, restarted, f"SELECT COUNT() FROM Account {where}")["totalSize"] == ROWS
        twice = soql(session, restarted, f"SELECT AccountNumber, COUNT(Id) n FROM Account {where} "
                                         "GROUP BY AccountNumber HAVING COUNT(Id) > 1")
        assert twice["records"] == [], f"rows applied more than once: {twice['records'][:5]}"
        distinct = soql(session, restarted, f"SELECT COUNT_DISTINCT(AccountNumber) n FROM Account {where}")
        assert distinct["records"][0]["n"] == ROWS, "some rows were lost"

        # The stored records are exactly the ones successfulResults names, row number for row number.
        stored = bulk_query_rows(session, restarted, f"SELECT Id, AccountNumber FROM Account {where}")
        assert len(stored) == ROWS
        assert {row["Id"]: row["AccountNumber"] for row in stored} == {
            row["sf__Id"]: row["AccountNumber"] for row in success}
    print(f"bulk restart test took {time.monotonic() - started:.1f}s")
