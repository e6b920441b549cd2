"""Screenshots of every console page, for the docs: ``make screenshots`` (or ``python tools/screenshots.py``).

Starts a throw-away ``interlink up --sample-data`` over TLS, gives it something to show (Bulk jobs, API traffic,
record changes, and a short middleware pipeline run over the org's change events, with a few dead letters), logs
in with headless Chromium (Playwright) and saves one PNG per page under ``docs/screenshots/``. Pages come from the
console's navigation plus the list below (records, a job, a dead letter, the live pages); a page that answers 404
or an error (a section not built yet) is skipped with a warning, never a failure.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-dev-shm-usage"]
V = "/services/data/v66.0"

# Pages beside the navigation: (file name, path, or a function of the seeded data answering the path, or the
# first link matching a selector on another page).
Locator = tuple[str, str]  # (page, selectors of a link on it, the preferred first, separated by " || ")
EXTRA_PAGES: list[tuple[str, str | Callable[[dict[str, Any]], str | None] | Locator]] = [
    ("object-list", "/console/o/Account"),
    ("record", lambda seeded: f"/console/r/{seeded['account']}" if seeded.get("account") else None),
    ("soql-results", "/console/soql?q=SELECT+Name%2C+Industry%2C+AnnualRevenue+FROM+Account+ORDER+BY+Name"),
    ("job", lambda seeded: f"/console/jobs/bulk/{seeded['job']}" if seeded.get("job") else None),
    ("callout", ("/console/jobs", "#callouts tr:has(td.num:text-matches('^[2-9]$')) a || #callouts tbody a")),
    ("outbound-message", ("/console/jobs", "#outbound tr:has(td.num:text-matches('^[2-9]$')) a || #outbound tbody a")),
    ("dead-letter", lambda seeded: f"/console/dead-letters/{seeded['letter']}" if seeded.get("letter") else None),
    ("live", "/console/live"),
    ("live-case", lambda seeded: f"/console/live/cases/{seeded['case']}" if seeded.get("case") else None),
    ("live-manager", "/console/live/manager"),
]

# A small project beside the sample data: flows that call a billing service on every new account (a bearer token,
# redacted in the console) and send won opportunities to an ERP as outbound messages; both remotes are local and
# answer 503 now and then, so the attempt histories show retries.
PROJECT = {
    "metadata/namedCredentials/Billing.yaml": """\
label: Billing
url: {remote}/api
timeoutSeconds: 5
auth: {{protocol: bearer, token: "${{BILLING_TOKEN}}"}}
""",
    "metadata/namedCredentials/ERP.yaml": """\
label: ERP
url: {remote}/erp
timeoutSeconds: 5
""",
    "metadata/flows/Bill_New_Accounts.yaml": """\
object: Account
trigger: create
actions:
  - callout:
      credential: Billing
      method: POST
      path: /accounts
      body: {{name: "{{!$Record.Name}}", id: "{{!$Record.Id}}"}}
""",
    "metadata/flows/Won_To_ERP.yaml": """\
object: Opportunity
trigger: update
condition: "StageName = 'Closed Won'"
when: changed_to_meet
actions:
  - outbound_message: {{name: Opportunity_To_ERP}}
""",
    "metadata/outboundMessages/Opportunity_To_ERP.yaml": """\
object: Opportunity
fields: [Name, Amount, StageName]
credential: ERP
path: /notifications
""",
}


class Remote:
    """The billing service and the ERP listener: every third request answers 503."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        count = [0]

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                count[0] += 1
                if count[0] % 3 == 0:
                    status, body, kind = 503, b"busy: try again later", "text/plain"
                elif self.path.startswith("/erp"):
                    status, kind = 200, "text/xml"
                    body = (b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>'
                            b"<notificationsResponse><Ack>true</Ack></notificationsResponse></soapenv:Body>"
                            b"</soapenv:Envelope>")
                else:
                    status, body, kind = 201, b'{"accountNumber": "BA-%d"}' % count[0], "application/json"
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def write_project(folder: Path, remote: Remote) -> None:
    for name, text in PROJECT.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.format(remote=remote.url))


PIPELINE = """\
name: account-changes
description: Account changes from the org's change events, checked and written to JSON Lines files
source: {type: org.pubsub, topic: /data/AccountChangeEvent, replay: earliest}
steps:
  - {type: map, keep: true, fields: {Employees: "NumberOfEmployees"}}
  - {type: validate, schema: {type: object, properties: {NumberOfEmployees: {type: [number, "null"], minimum: 0}}}}
sink: {type: files, folder: outbox}
retry: {attempts: 2, backoff: 100ms}
"""


def _nav_pages() -> list[tuple[str, str]]:
    from interlink.console.render import NAV

    pages = []
    for path, _label in NAV:
        name = path.removeprefix("/console/").strip("/").replace("/", "-") or "home"
        pages.append((name, path))
    return pages


class Org:
    """The REST API of the live org, as a client would call it."""

    def __init__(self, live: Any) -> None:
        trust = ssl.create_default_context(cafile=live.ca_bundle)
        self.http = httpx.Client(base_url=live.url, verify=trust, timeout=30,
                                 headers={"Authorization": f"Bearer {live.token()}"})

    def query(self, soql: str) -> list[dict[str, Any]]:
        answer = self.http.get(f"{V}/query", params={"q": soql})
        answer.raise_for_status()
        return list(answer.json()["records"])

    def bulk_insert(self, obj: str, csv: bytes, *, close: bool = True) -> str:
        job = self.http.post(f"{V}/jobs/ingest", json={"object": obj, "operation": "insert"}).json()
        self.http.put(f"{V}/jobs/ingest/{job['id']}/batches", content=csv, headers={"Content-Type": "text/csv"})
        if close:
            self.http.patch(f"{V}/jobs/ingest/{job['id']}", json={"state": "UploadComplete"})
        return str(job["id"])


def seed(org: Org) -> dict[str, Any]:
    """Jobs and traffic for the Jobs and Limits pages; the ids the extra pages need."""
    contacts = b"FirstName,LastName,Email\n" + b"".join(
        b"Sam,Sample%03d,sam%03d@example.com\n" % (i, i) for i in range(400))
    job = org.bulk_insert("Contact", contacts)
    org.bulk_insert("Account", b"Name,NumberOfEmployees\nNorthwind,120\nContoso,lots\n")
    org.http.post(f"{V}/jobs/query", json={"operation": "query", "query": "SELECT Id, Name, Email FROM Contact"})
    org.bulk_insert("Lead", b"LastName,Company\nDoe,Doe Ltd\n", close=False)
    for number in range(3):
        org.http.post(f"{V}/sobjects/Account/", json={"Name": f"Wayne Enterprises {number + 1}"})
    for opportunity in org.query("SELECT Id FROM Opportunity WHERE IsClosed = false LIMIT 2"):
        org.http.patch(f"{V}/sobjects/Opportunity/{opportunity['Id']}", json={"StageName": "Closed Won"})
    for _ in range(12):
        org.query("SELECT Id, Name FROM Account LIMIT 5")
    accounts = org.query("SELECT Id FROM Account ORDER BY Name LIMIT 1")
    cases = org.query("SELECT Id FROM Case ORDER BY CreatedDate LIMIT 1")
    return {"job": job, "account": accounts[0]["Id"] if accounts else None,
            "case": cases[0]["Id"] if cases else None}


@contextlib.contextmanager
def pipeline_running(live: Any, org: Org, seconds: float) -> Iterator[None]:
    """``interlink pipelines run account-changes`` against the live org while accounts change (some of them into
    a negative head count, which the pipeline dead-letters); stopped (Ctrl-C) on exit."""
    (live.data_dir / "pipelines").mkdir(exist_ok=True)
    (live.data_dir / "pipelines" / "account-changes.yaml").write_text(PIPELINE)
    env = {**os.environ, "INTERLINK_PROJECT_DIR": str(live.data_dir)}
    log = (live.data_dir / "pipelines.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "interlink.cli.main", "pipelines", "run", "account-changes",
                                "--data-dir", str(live.data_dir)], stdout=log, stderr=subprocess.STDOUT, env=env)
    stop = threading.Event()

    def changes() -> None:
        accounts = [row["Id"] for row in org.query("SELECT Id FROM Account")]
        number = 0
        while not stop.wait(0.4):
            number += 1
            account = accounts[number % len(accounts)]
            employees = -number if number % 9 == 0 else 10 * number
            with contextlib.suppress(httpx.HTTPError):
                org.http.patch(f"{V}/sobjects/Account/{account}", json={"NumberOfEmployees": employees})

    writer = threading.Thread(target=changes, daemon=True)
    writer.start()
    try:
        time.sleep(seconds)
        yield
    finally:
        stop.set()
        writer.join(timeout=5)
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        log.close()


def dead_letter(live: Any) -> str | None:
    from interlink.middleware.store import MiddlewareStore

    path = live.data_dir / "middleware.db"
    if not path.exists():
        return None
    with MiddlewareStore.open_url(f"sqlite:///{path}") as store:
        letters = store.dead_letters(limit=1)
    return letters[0].id if letters else None


def shoot(live: Any, seeded: dict[str, Any], out: Path, *, width: int, height: int,
          pages: list[tuple[str, str]] | None = None) -> list[str]:
    """Log in and save a PNG of each page; answers the warnings (pages skipped)."""
    from playwright.sync_api import sync_playwright

    from interlink.testing import ADMIN_PASSWORD

    known = [*_nav_pages(), *((name, path(seeded) if callable(path) else path) for name, path in EXTRA_PAGES)]
    wanted = known if not pages else [(name, path or dict(known).get(name)) for name, path in pages]
    warnings: list[str] = []
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        context = browser.new_context(ignore_https_errors=True, viewport={"width": width, "height": height},
                                      device_scale_factor=1)
        page = context.new_page()
        page.set_default_timeout(15_000)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{live.url}/console/login")
        page.fill("input[name=username]", "admin@interlink.local")
        page.fill("input[name=password]", ADMIN_PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{live.url}/console/")
        for name, path in wanted:
            if isinstance(path, tuple):
                page.goto(f"{live.url}{path[0]}")
                links = [page.locator(selector).first for selector in path[1].split(" || ")]
                path = next((link.get_attribute("href") for link in links if link.count()), None)
            if path is None:
                warnings.append(f"{name}: nothing to show (no data for it)")
                continue
            response = page.goto(f"{live.url}{path}")
            status = response.status if response is not None else 0
            if status >= 400:
                warnings.append(f"{name}: {path} answered {status}; no screenshot (not built yet?)")
                continue
            page.wait_for_load_state("networkidle")
            time.sleep(0.8)  # charts draw after load
            target = out / f"{name}.png"
            page.screenshot(path=str(target), full_page=False)
            warnings += [f"{name}: script error: {error}" for error in errors]
            errors.clear()
            print(f"saved {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}")
        browser.close()
    return warnings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots", help="where the PNGs go")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=860)
    parser.add_argument("--pipeline-seconds", type=float, default=40.0,
                        help="how long the example pipeline runs before the screenshots (0: no pipeline)")
    parser.add_argument("--page", action="append", default=[], metavar="NAME[=PATH]",
                        help="only these pages (repeatable): a known one (jobs, callout, ...) or NAME=/console/...")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"error: {CHROMIUM} is missing (apt-get install chromium)", file=sys.stderr)
        return 2
    from interlink.testing import live_server

    pages = [(item.partition("=")[0], item.partition("=")[2] or None) for item in args.page] or None
    remote = Remote()
    with tempfile.TemporaryDirectory(prefix="interlink-screens-") as tmp:
        write_project(Path(tmp) / "org", remote)
        with live_server(Path(tmp) / "org", extra_args=("--sample-data",),
                         env={"BILLING_TOKEN": "demo-secret-token"}) as live:
            warnings = _run(live, args, pages)
    remote.close()
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _run(live: Any, args: argparse.Namespace, pages: Any) -> list[str]:
    org = Org(live)
    try:
        seeded = seed(org)
        if args.pipeline_seconds <= 0:
            return shoot(live, seeded, args.out, width=args.width, height=args.height, pages=pages)
        with pipeline_running(live, org, args.pipeline_seconds):
            seeded["letter"] = dead_letter(live)
            return shoot(live, seeded, args.out, width=args.width, height=args.height, pages=pages)
    finally:
        org.http.close()


if __name__ == "__main__":
    sys.exit(main())
