"""The Jobs page in headless Chromium against a live `interlink up`: a Bulk job created through the REST API
appears, runs and reaches JobComplete on the page by itself, with a full progress bar and its result files."""

from __future__ import annotations

import ssl

import httpx
from console_helpers import open_console  # type: ignore[import-not-found]

V = "/services/data/v66.0"


def test_a_rest_bulk_job_reaches_job_complete_on_the_jobs_page(chromium, live_console) -> None:  # type: ignore[no-untyped-def]
    trust = ssl.create_default_context(cafile=live_console.ca_bundle)
    http = httpx.Client(base_url=live_console.url, verify=trust, timeout=20,
                        headers={"Authorization": f"Bearer {live_console.token()}"})
    job = http.post(f"{V}/jobs/ingest", json={"object": "Contact", "operation": "insert"}).json()
    rows = b"LastName,Email\n" + b"".join(b"Browser%d,b%d@example.com\n" % (i, i) for i in range(300))
    assert http.put(f"{V}/jobs/ingest/{job['id']}/batches", content=rows,
                    headers={"Content-Type": "text/csv"}).status_code == 201
    page = open_console(chromium, live_console)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(f"{live_console.url}/console/jobs")
        row = f'tr[data-job-id="{job["id"]}"]'
        assert page.locator(f"{row} [data-state-badge]").inner_text() == "Open"
        # Closing the job through the API queues it; the page notices, follows it and shows the outcome.
        http.patch(f"{V}/jobs/ingest/{job['id']}", json={"state": "UploadComplete"})
        page.wait_for_selector(f"{row} [data-state-badge]:text-is('JobComplete')", timeout=30_000)
        assert page.locator(f"{row} progress").get_attribute("value") == "100"
        assert page.locator(f'{row} [data-field="recordsProcessed"]').inner_text() == "300"
        link = page.locator(f"{row} a:text-is('Successful')")
        assert link.get_attribute("href") == f"/console/jobs/bulk/{job['id']}/results/success"
        with page.expect_download() as download:
            link.click()
        content = download.value.path().read_text()
        assert content.startswith('"sf__Id","sf__Created"') and content.count("\n") == 301
        assert errors == []
    finally:
        page.context.close()
        http.close()
