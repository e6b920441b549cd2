"""Server-side request forgery through the public surfaces: a record value, an action input, a redirect or an OData
next link that tries to steer the org's outgoing requests somewhere else (another host, the cloud metadata address,
a path above the named credential's or data source's URL). Each is refused before anything is sent there, is
logged, and changes nothing.

Two local HTTP servers play the parts: ``billing`` is where the named credential points, ``evil`` is where an
attacker wants the org to go; ``evil`` must never see a request.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from interlink.app.org import Org
from interlink.connect.sync import write_specs
from interlink.testing import local_org, rest_client

B = "/services/data/v66.0"
ROOT = Path(__file__).resolve().parents[2]


class Recorder:
    """An HTTP server on 127.0.0.1 that records every request; ``answer(path)`` decides the reply."""

    def __init__(self, answer: Callable[[str], tuple[int, dict[str, str], bytes]] | None = None) -> None:
        self.requests: list[str] = []
        self.answer = answer or (lambda _path: (200, {"Content-Type": "application/json"}, b'{"ok": true}'))
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                recorder.requests.append(f"{self.command} {self.path}")
                status, headers, body = recorder.answer(self.path)
                self.send_response(status)
                for name, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = do_DELETE = _reply

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def evil() -> Iterator[Recorder]:
    server = Recorder()
    yield server
    server.close()


@pytest.fixture(scope="module")
def billing(evil: Recorder) -> Iterator[Recorder]:
    def answer(path: str) -> tuple[int, dict[str, str], bytes]:
        if "redirect" in path:
            return 302, {"Location": f"{evil.base}/steal"}, b""
        return 200, {"Content-Type": "application/json"}, json.dumps({"id": path.rsplit("/", 1)[-1]}).encode()

    server = Recorder(answer)
    yield server
    server.close()


SPEC: dict[str, Any] = {
    "openapi": "3.0.3", "info": {"title": "Billing", "version": "1"},
    "paths": {"/accounts/{accountId}": {
        "parameters": [{"name": "accountId", "in": "path", "required": True, "schema": {"type": "string"}}],
        "get": {"operationId": "getAccount", "responses": {"200": {"description": "ok"}}}}},
}

# A flow whose callout path comes straight from a record field: whatever a user types into Website is the path.
FLOW = """\
object: Account
trigger: create
actions:
  - callout:
      credential: Billing
      method: POST
      path: "{!$Record.Website}"
      body: {name: "{!$Record.Name}"}
"""


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory, billing: Recorder) -> Iterator[Org]:
    root = tmp_path_factory.mktemp("ssrf")
    project = root / "project"
    for folder in ("namedCredentials", "externalServices", "flows"):
        (project / "metadata" / folder).mkdir(parents=True)
    (project / "metadata" / "namedCredentials" / "Billing.yaml").write_text(f"url: {billing.base}/api\n")
    (project / "metadata" / "externalServices" / "billing.yaml").write_text(
        yaml.safe_dump({"credential": "Billing", "spec": SPEC}))
    (project / "metadata" / "flows" / "Call_Website.yaml").write_text(FLOW)
    with local_org(root / "org", project_dir=project, bulk_workers=0) as opened:
        yield opened


def _accounts(org: Org) -> int:
    return org.query.execute("SELECT COUNT() FROM Account", org.admin_context()).total_size


@pytest.mark.parametrize("path", [
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "https://evil.example.com/steal",
    "//169.254.169.254/latest/meta-data",
    "../admin",
    "/accounts/../../admin",
    "/%2e%2e/%2e%2e/admin",
    "/accounts/..%2f..%2f..%2fadmin",
    "/accounts/..\\..\\admin",
    "gopher://127.0.0.1:6379/_FLUSHALL",
    "file:///etc/passwd",
])
def test_a_record_value_cannot_steer_a_flow_callout(org: Org, billing: Recorder, evil: Recorder, path: str,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    before, queued = _accounts(org), len(org.callouts.list())
    with rest_client(org) as client, caplog.at_level(logging.INFO):
        response = client.post(f"{B}/sobjects/Account", json={"Name": "Steered", "Website": path})
    assert response.status_code == 400, response.text
    error = response.json()[0]
    assert error["errorCode"] == "CANNOT_EXECUTE_FLOW_TRIGGER"
    assert "takes a path, not a URL" in error["message"] or "leaves the endpoint" in error["message"]
    assert _accounts(org) == before and len(org.callouts.list()) == queued
    assert "refused a callout" in caplog.text
    assert f"refused POST {B}/sobjects/Account" in caplog.text
    assert evil.requests == [] and not any("admin" in r for r in billing.requests)


def test_a_callout_under_the_credential_still_goes_out_and_a_redirect_is_not_followed(
        org: Org, billing: Recorder, evil: Recorder) -> None:
    with rest_client(org) as client:
        for path in ("/accounts/7", "/accounts/redirect"):
            assert client.post(f"{B}/sobjects/Account", json={"Name": "Fine", "Website": path}).status_code == 201
    while org.worker.run_once():
        pass
    assert "POST /api/accounts/7" in billing.requests and "POST /api/accounts/redirect" in billing.requests
    redirected = next(c for c in org.callouts.list() if c["path"] == "/accounts/redirect")
    assert redirected["history"][0]["status"] == 302 and redirected["state"] != "Delivered"
    assert evil.requests == []


def test_action_inputs_stay_one_path_segment(org: Org, billing: Recorder, evil: Recorder,
                                             caplog: pytest.LogCaptureFixture) -> None:
    inputs = ["../../admin", "..", "//169.254.169.254/latest", "http://169.254.169.254/", "%2e%2e", "a/../../b",
              "redirect"]
    billing.requests.clear()
    with rest_client(org) as client, caplog.at_level(logging.WARNING):
        response = client.post(f"{B}/actions/custom/externalService/billing.getAccount",
                               json={"inputs": [{"accountId": value} for value in inputs]})
    assert response.status_code == 200, response.text
    results = dict(zip(inputs, response.json(), strict=True))
    assert results[".."]["isSuccess"] is False  # a bare ".." would climb: refused before sending
    assert results["redirect"]["isSuccess"] is False  # the 302 is an answer, not an instruction
    for request in billing.requests:  # whatever was sent stayed one encoded segment under /api/accounts/
        method, _, raw_path = request.partition(" ")
        assert method == "GET" and raw_path.startswith("/api/accounts/"), request
        assert "/" not in raw_path.removeprefix("/api/accounts/"), request
    assert evil.requests == []
    assert "refused a callout" in caplog.text


# -- external data sources -------------------------------------------------------------------------------------

def _erp() -> Any:
    path = ROOT / "examples" / "erp" / "odata_service.py"
    spec = importlib.util.spec_from_file_location("example_erp_odata_ssrf", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class NextLinkRewriter:
    """ASGI middleware: an OData service gone bad, whose next-page links point wherever ``target`` says."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.target: str | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self.target is None:
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: Any) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = b"".join(chunks)
            if body.startswith(b"{"):
                data = json.loads(body)
                if "@odata.nextLink" in data:
                    data["@odata.nextLink"] = self.target
                    body = json.dumps(data).encode()
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, capture)


@pytest.fixture(scope="module")
def erp() -> Iterator[tuple[str, NextLinkRewriter]]:
    module = _erp()
    rewriter = NextLinkRewriter(module.create_app(None, seed=12, max_page_size=5))
    server, url = module.serve_in_thread(rewriter)  # type: ignore[arg-type]
    yield url, rewriter
    server.should_exit = True


@pytest.fixture(scope="module")
def virtual_org(tmp_path_factory: pytest.TempPathFactory, erp: tuple[str, NextLinkRewriter]) -> Iterator[Org]:
    url, _ = erp
    root = tmp_path_factory.mktemp("ssrf-odata")
    project = root / "project"
    (project / "metadata" / "dataSources").mkdir(parents=True)
    (project / "metadata" / "dataSources" / "ERP.yaml").write_text(yaml.safe_dump({
        "type": "odata4", "url": f"{url}/odata", "paging": "server", "pageSize": 5, "timeout": 10}))
    with local_org(root / "org", project_dir=project, bulk_workers=0) as opened:
        source = opened.external.source("ERP")
        write_specs(project, source, opened.external.connection("ERP").sync(), ["Orders"], {"Orders": "Order"})
    with local_org(root / "org", project_dir=project, bulk_workers=0) as opened:
        yield opened


def test_next_links_that_leave_the_data_source_are_refused(virtual_org: Org, erp: tuple[str, NextLinkRewriter],
                                                         evil: Recorder, caplog: pytest.LogCaptureFixture) -> None:
    url, rewriter = erp
    soql = "SELECT OrderNumber__c FROM Order__x"
    with rest_client(virtual_org) as client:
        honest = client.get(f"{B}/query", params={"q": soql}).json()
        rows = len(honest["records"])
        while not honest["done"]:  # each page of ours follows the source's next link
            honest = client.get(honest["nextRecordsUrl"]).json()
            rows += len(honest["records"])
        assert rows == 12
        for target in (f"{evil.base}/steal", "http://169.254.169.254/latest/meta-data/", f"{url}/admin/secrets",
                       f"{url}/odata/../admin", f"{url}/odata/%2e%2e/admin", "//127.0.0.1:1/odata/Orders",
                       f"https://{url.removeprefix('http://')}/odata/Orders"):
            rewriter.target = target
            try:
                first = client.get(f"{B}/query", params={"q": soql})  # its next link now points elsewhere
                assert first.status_code == 200 and not first.json()["done"], first.text
                with caplog.at_level(logging.WARNING):
                    response = client.get(first.json()["nextRecordsUrl"])
            finally:
                rewriter.target = None
            assert response.status_code == 400, (target, response.text)
            error = response.json()[0]
            assert error["errorCode"] == "EXTERNAL_OBJECT_EXCEPTION", error
            assert "refused to call" in error["message"] and "not under the data source's URL" in error["message"]
            assert "refused to call" in caplog.text
    assert evil.requests == []

