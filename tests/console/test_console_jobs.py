"""The console's Jobs section: Bulk jobs with progress, downloads and Abort; callouts and outbound messages with
their attempt history (credentials redacted), retry and discard."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from interlink.callouts.credentials import NamedCredential
from interlink.callouts.outbound import OutboundMessage
from interlink.callouts.queue import Delivery
from interlink.testing import local_org, rest_client

V = "/services/data/v66.0"


@pytest.fixture
def console_org(tmp_path: Path):  # type: ignore[no-untyped-def]
    """An org without background workers: the tests run jobs and deliveries themselves, one step at a time."""
    with local_org(tmp_path / "org", bulk_workers=0) as org:
        yield org


@pytest.fixture
def api(console_org, browser) -> TestClient:  # type: ignore[no-untyped-def]
    return rest_client(console_org)


def _ingest(api: TestClient, csv: bytes, *, close: bool = True, obj: str = "Account") -> str:
    job = api.post(f"{V}/jobs/ingest", json={"object": obj, "operation": "insert"}).json()
    assert api.put(f"{V}/jobs/ingest/{job['id']}/batches", content=csv,
                   headers={"Content-Type": "text/csv"}).status_code == 201
    if close:
        api.patch(f"{V}/jobs/ingest/{job['id']}", json={"state": "UploadComplete"})
    return str(job["id"])


def _run_jobs(org) -> None:  # type: ignore[no-untyped-def]
    while org.worker.run_once():
        pass


def test_jobs_page_lists_bulk_jobs_with_state_counts_and_progress(console_org, browser, api) -> None:  # type: ignore[no-untyped-def]
    done = _ingest(api, b"Name,NumberOfEmployees\nAcme,10\nGlobex,not-a-number\nInitech,5\n")
    waiting = _ingest(api, b"Name\nLater\n")
    query = api.post(f"{V}/jobs/query", json={"operation": "query", "query": "SELECT Id, Name FROM Account"}).json()
    # Run the first job only; the second stays UploadComplete (queued) and is shown as running.
    assert console_org.worker.run_once()  # the oldest job first
    data = browser.get("/console/api/jobs").json()
    by_id = {job["id"]: job for job in data["bulk"]}
    assert by_id[done]["state"] == "JobComplete"
    assert (by_id[done]["recordsProcessed"], by_id[done]["recordsFailed"]) == (3, 1)
    assert by_id[done]["percent"] == 100 and not by_id[done]["active"]
    assert [link["kind"] for link in by_id[done]["downloads"]] == ["success", "failure", "unprocessed"]
    assert by_id[waiting]["state"] == "UploadComplete" and by_id[waiting]["active"]
    assert by_id[waiting]["percent"] == 0 and by_id[waiting]["canAbort"]
    assert by_id[query["id"]]["progress"] is None  # a running query's size is not known yet
    assert data["active"] is True and data["signature"]

    page = browser.get("/console/jobs")
    assert page.status_code == 200
    assert f'href="/console/jobs/bulk/{done}"' in page.text
    assert '<progress max="100" value="100"' in page.text
    assert 'data-active="true"' in page.text  # the page polls while a job runs
    assert '<script src="/console/static/jobs.js" defer></script>' in page.text
    assert "<script>" not in page.text

    _run_jobs(console_org)
    after = browser.get("/console/api/jobs").json()
    assert after["active"] is False and after["signature"] != data["signature"]


def test_downloads_are_the_bulk_api_result_files(console_org, browser, api) -> None:  # type: ignore[no-untyped-def]
    job_id = _ingest(api, b"Name,NumberOfEmployees\nAcme,10\nGlobex,not-a-number\n")
    _run_jobs(console_org)
    for kind, resource in (("success", "successfulResults"), ("failure", "failedResults"),
                           ("unprocessed", "unprocessedrecords")):
        mine = browser.get(f"/console/jobs/bulk/{job_id}/results/{kind}")
        theirs = api.get(f"{V}/jobs/ingest/{job_id}/{resource}")
        assert mine.status_code == 200, mine.text
        assert mine.content == theirs.content
        assert mine.headers["content-type"].startswith("text/csv")
        assert mine.headers["content-disposition"].startswith("attachment;")
    assert "Globex" in browser.get(f"/console/jobs/bulk/{job_id}/results/failure").text

    query = api.post(f"{V}/jobs/query", json={"operation": "query", "query": "SELECT Name FROM Account"}).json()
    _run_jobs(console_org)
    mine = browser.get(f"/console/jobs/bulk/{query['id']}/results/query")
    assert mine.status_code == 200
    assert mine.content == api.get(f"{V}/jobs/query/{query['id']}/results").content
    assert mine.text.splitlines()[0] == '"Name"' and "Acme" in mine.text
    # A result kind the job does not have, and a job that does not exist, are 404 pages.
    assert browser.get(f"/console/jobs/bulk/{query['id']}/results/success").status_code == 404
    assert browser.get("/console/jobs/bulk/750000000000000AAA/results/success").status_code == 404


def test_job_detail_page_shows_the_job_info(console_org, browser, api) -> None:  # type: ignore[no-untyped-def]
    job_id = _ingest(api, b"Name\nAcme\n")
    _run_jobs(console_org)
    page = browser.get(f"/console/jobs/bulk/{job_id}")
    assert page.status_code == 200
    assert "numberRecordsProcessed" in page.text and "JobComplete" in page.text
    assert f'href="/console/jobs/bulk/{job_id}/results/success"' in page.text
    assert "Abort job" not in page.text  # a finished job cannot be aborted
    assert browser.get(f"/console/api/jobs/bulk/{job_id}").json()["state"] == "JobComplete"


def test_abort_needs_csrf_and_goes_through_the_job_service(console_org, browser, api) -> None:  # type: ignore[no-untyped-def]
    job_id = _ingest(api, b"Name\nAcme\n", close=False)
    page = browser.get(f"/console/jobs/bulk/{job_id}")
    assert "Abort job" in page.text
    refused = browser.post(f"/console/jobs/bulk/{job_id}/abort", data={"csrf": "forged"})
    assert refused.status_code == 403
    assert api.get(f"{V}/jobs/ingest/{job_id}").json()["state"] == "Open"
    done = browser.post(f"/console/jobs/bulk/{job_id}/abort", data={"csrf": browser.csrf}, follow_redirects=False)
    assert done.status_code == 303
    assert done.headers["location"] == f"/console/jobs/bulk/{job_id}?flash=aborted"
    assert api.get(f"{V}/jobs/ingest/{job_id}").json()["state"] == "Aborted"
    assert "The job was aborted." in browser.get(done.headers["location"]).text
    again = browser.post(f"/console/jobs/bulk/{job_id}/abort", data={"csrf": browser.csrf})
    assert again.status_code == 400  # INVALIDJOBSTATE, shown on the error page
    assert "already Aborted" in again.text


def test_classic_jobs_are_listed_with_batches_and_downloads(console_org, browser, api) -> None:  # type: ignore[no-untyped-def]
    headers = {"X-SFDC-Session": api.headers["authorization"].split()[1], "Content-Type": "application/json"}
    job = api.post("/services/async/66.0/job", json={"operation": "insert", "object": "Account",
                                                     "contentType": "JSON"}, headers=headers).json()
    api.post(f"/services/async/66.0/job/{job['id']}/batch", json=[{"Name": "Classic Co"}], headers=headers)
    _run_jobs(console_org)
    listed = {j["id"]: j for j in browser.get("/console/api/jobs").json()["bulk"]}[job["id"]]
    assert listed["jobType"] == "Classic" and listed["batches"]["completed"] == 1 and listed["percent"] == 100
    page = browser.get(f"/console/jobs/bulk/{job['id']}")
    links = re.findall(r'href="(/console/jobs/bulk/[^"]+/batches/[^"]+)"', page.text)
    assert [link.rsplit("/", 1)[1] for link in links] == ["request", "result"]
    result = browser.get(links[1])
    assert result.headers["content-type"].startswith("application/json")
    assert result.json()[0]["success"] is True
    aborted = browser.post(f"/console/jobs/bulk/{job['id']}/abort", data={"csrf": browser.csrf})
    assert aborted.status_code == 200
    assert api.get(f"/services/async/66.0/job/{job['id']}", headers=headers).json()["state"] == "Aborted"


# -- callouts and outbound messages -------------------------------------------------------------------------------


class Sender:
    """A remote that answers from a script; records what it was sent."""

    def __init__(self, *answers: Delivery) -> None:
        self.answers = list(answers)
        self.sent: list[dict[str, Any]] = []

    def __call__(self, method: str, url: str, headers: dict[str, str], body: bytes | None, timeout: float,
                 tls: Any = None) -> Delivery:
        self.sent.append({"method": method, "url": url, "headers": headers, "body": body})
        return self.answers.pop(0) if self.answers else Delivery(200, b'{"ok": true}', None, 3)


@pytest.fixture
def billing(console_org, api, monkeypatch: pytest.MonkeyPatch) -> Sender:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("BILLING_TOKEN", "tok-live-123")
    credential = NamedCredential("Billing", "https://billing.example.com/api", protocol="header",
                                 settings={"header": "X-Billing-Key", "value": "${BILLING_TOKEN}"},
                                 secret_headers=("X-Billing-Key",))
    console_org.callouts.credentials["billing"] = credential
    sender = Sender(Delivery(503, b"busy, try later", None, 12), Delivery(None, b"", "ConnectError: refused", 4))
    console_org.callouts.sender = sender
    return sender


def _queue_callout(org, headers: dict[str, str]) -> str:  # type: ignore[no-untyped-def]
    with org.store.write() as conn:
        return org.callouts.enqueue(conn, {}, org.admin_context(), credential="Billing", method="POST",  # type: ignore[no-any-return]
                                    path="/accounts", body={"name": "Acme"}, headers=headers, source="flow:Bill")


def test_callout_history_shows_attempts_and_never_credentials(console_org, browser, billing) -> None:  # type: ignore[no-untyped-def]
    callout_id = _queue_callout(console_org, {"Authorization": "Bearer flow-secret", "X-Trace": "t-1",
                                              "X-Billing-Key": "typed-in-secret"})
    assert console_org.callouts.run_once("test")
    console_org.callouts.retry_now(callout_id)
    assert console_org.callouts.run_once("test")
    sent = billing.sent[0]["headers"]
    assert sent["Authorization"] == "Bearer flow-secret" and sent["X-Billing-Key"] == "tok-live-123"

    listed = browser.get("/console/api/jobs").json()["callouts"]
    assert [(c["id"], c["state"], c["attempts"]) for c in listed] == [(callout_id, "Queued", 2)]
    assert "history" not in listed[0]
    page = browser.get(f"/console/jobs/callouts/{callout_id}")
    assert page.status_code == 200
    text = page.text
    for secret in ("flow-secret", "typed-in-secret", "tok-live-123"):
        assert secret not in text
    assert "X-Trace" in text and "t-1" in text and "********" in text
    assert "https://billing.example.com/api/accounts" in text
    assert "busy, try later" in text and "503" in text and "12 ms" in text  # attempt 1
    assert "ConnectError: refused" in text and "no answer" in text  # attempt 2
    assert "{&#34;name&#34;: &#34;Acme&#34;}" in text  # the body, escaped
    jobs_page = browser.get("/console/jobs").text
    assert f'href="/console/jobs/callouts/{callout_id}"' in jobs_page and "POST callout:Billing/accounts" in jobs_page


def test_callout_retry_and_discard_need_csrf(console_org, browser, billing) -> None:  # type: ignore[no-untyped-def]
    callout_id = _queue_callout(console_org, {})
    assert console_org.callouts.run_once("test")  # 503: waits for a retry
    waiting = console_org.callouts.get(callout_id)["nextAttemptAt"]
    assert browser.post(f"/console/jobs/callouts/{callout_id}/retry", data={"csrf": "x"}).status_code == 403
    assert console_org.callouts.get(callout_id)["nextAttemptAt"] == waiting
    retried = browser.post(f"/console/jobs/callouts/{callout_id}/retry", data={"csrf": browser.csrf},
                           follow_redirects=False)
    assert retried.headers["location"] == f"/console/jobs/callouts/{callout_id}?flash=retried"
    assert console_org.callouts.get(callout_id)["nextAttemptAt"] < waiting
    assert browser.post(f"/console/jobs/callouts/{callout_id}/discard", data={"csrf": "x"}).status_code == 403
    discarded = browser.post(f"/console/jobs/callouts/{callout_id}/discard", data={"csrf": browser.csrf})
    assert "Discarded: it will not be sent again." in discarded.text
    assert console_org.callouts.get(callout_id)["state"] == "Discarded"
    assert not console_org.callouts.run_once("test")  # nothing is due any more
    again = browser.post(f"/console/jobs/callouts/{callout_id}/retry", data={"csrf": browser.csrf})
    assert "could not be sent again" in again.text
    assert browser.post("/console/jobs/callouts/0Cq000000000000AAA/retry",
                        data={"csrf": browser.csrf}).status_code == 404


def test_outbound_notifications_with_history_retry_and_discard(console_org, browser, billing, api) -> None:  # type: ignore[no-untyped-def]
    console_org.outbound.definitions["order_to_erp"] = OutboundMessage(
        "Order_To_ERP", "Account", ("Id", "Name"), "Billing", "/notifications", "test", session_user="x")
    console_org.outbound.session = lambda username: "SESSION-SECRET-TOKEN"
    account = api.post(f"{V}/sobjects/Account/", json={"Name": "Acme"}).json()["id"]
    with console_org.store.write() as conn:
        (first, second) = console_org.outbound.enqueue(conn, "Order_To_ERP", [account, account])
    assert console_org.outbound.run_once("test")  # 503 for both (one message)
    assert b"SESSION-SECRET-TOKEN" in billing.sent[0]["body"]
    listed = browser.get("/console/api/jobs").json()["outbound"]
    assert {(n["id"], n["state"], n["attempts"]) for n in listed} == {(first, "Queued", 1), (second, "Queued", 1)}
    page = browser.get(f"/console/jobs/outbound/{first}")
    assert page.status_code == 200
    assert "Order_To_ERP" in page.text and "busy, try later" in page.text
    assert "https://billing.example.com/api/notifications" in page.text
    assert "SESSION-SECRET-TOKEN" not in page.text and "tok-live-123" not in page.text

    assert browser.post(f"/console/jobs/outbound/{second}/discard", data={"csrf": "no"}).status_code == 403
    browser.post(f"/console/jobs/outbound/{second}/discard", data={"csrf": browser.csrf})
    browser.post(f"/console/jobs/outbound/{first}/retry", data={"csrf": browser.csrf})
    assert console_org.outbound.run_once("test")  # the retry is due at once; it meets the refused connection
    states = {n["id"]: n for n in console_org.outbound.list()}
    assert states[second]["state"] == "Discarded" and states[second]["attempts"] == 1
    assert states[first]["attempts"] == 2 and states[first]["lastError"] == "ConnectError: refused"
