"""Asynchronous callouts through named credentials: queued with the save, delivered after commit, retried on a
controllable clock, dead-lettered, and mapped back onto the record (Request and Reply)."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from billing_remote import Remote  # type: ignore[import-not-found]

from interlink.app.org import Org
from interlink.callouts.credentials import CalloutRefused, NamedCredential
from interlink.errors import MetadataError
from interlink.testing import backend_org


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 29, 12, 0, 0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


FLOW = """\
object: Account
trigger: create
condition: "Type = 'Customer - Direct'"
actions:
  - callout:
      credential: Billing
      method: POST
      path: /accounts
      body: {name: "{!$Record.Name}", id: "{!$Record.Id}"}
      on_success: {AccountNumber: accountNumber}
"""

TRIGGER = """
from interlink.automation import trigger

@trigger("Contact", after=["insert"])
def notify(ctx):
    for record in ctx.new:
        count = 101 if record["LastName"] == "Many" else 1
        for _ in range(count):
            ctx.callout("Billing", "POST", "/contacts", json={"last": record["LastName"]})
"""


@pytest.fixture
def remote() -> Iterator[Remote]:
    server = Remote()
    yield server
    server.close()


def project(root: Path, remote: Remote, *, flow: str = FLOW, auth: str | None = None) -> None:
    base = root / "project"
    (base / "metadata" / "namedCredentials").mkdir(parents=True, exist_ok=True)
    (base / "metadata" / "flows").mkdir(parents=True, exist_ok=True)
    (base / "triggers").mkdir(parents=True, exist_ok=True)
    (base / "metadata" / "namedCredentials" / "Billing.yaml").write_text(auth or (
        f"url: {remote.url}\ntimeoutSeconds: 5\n"
        "auth: {protocol: basic, username: interlink, password: \"${BILLING_PASSWORD}\"}\n"))
    (base / "metadata" / "flows" / "Bill_New_Customers.yaml").write_text(flow)
    (base / "triggers" / "notify.py").write_text(TRIGGER)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def org(store_backend: str, tmp_path: Path, remote: Remote, clock: Clock,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Org]:
    monkeypatch.setenv("BILLING_PASSWORD", "s3cret-pw")
    project(tmp_path, remote)
    with backend_org(tmp_path, store_backend, {}, unavailable=pytest.skip, bulk_workers=0) as opened:
        opened.callouts.clock = clock
        opened.callouts.jitter = lambda: 1.0  # no randomness: delays are exactly 2, 4, 8 ... seconds
        yield opened


def customer(org: Org, name: str = "Acme") -> str:
    (result,) = org.records.create(org.admin_context(), "Account", [{"Name": name, "Type": "Customer - Direct"}])
    assert result.success, result.errors
    return result.id  # type: ignore[return-value]


def account_number(org: Org, record_id: str) -> Any:
    return org.query.execute(f"SELECT AccountNumber FROM Account WHERE Id = '{record_id}'",
                             org.admin_context()).records[0]["AccountNumber"]


def test_request_and_reply_stores_the_answer_on_the_record(org: Org, remote: Remote) -> None:
    record_id = customer(org)
    assert remote.requests == []  # nothing leaves the org inside the transaction
    (queued,) = org.callouts.list()
    assert queued["state"] == "Queued" and queued["source"] == "flow Bill_New_Customers"
    assert org.worker.run_once()
    (request,) = remote.requests
    assert request["path"] == "/api/accounts"
    assert json.loads(request["body"]) == {"name": "Acme", "id": record_id}
    assert request["headers"]["Authorization"] == "Basic " + base64.b64encode(b"interlink:s3cret-pw").decode()
    assert request["headers"]["Idempotency-Key"] == queued["idempotencyKey"]
    assert account_number(org, record_id) == "BA-1"
    (delivered,) = org.callouts.list()
    assert delivered["state"] == "Delivered" and [a["status"] for a in delivered["history"]] == [200]
    assert "s3cret" not in json.dumps(delivered)  # the secret is never kept


def test_a_rolled_back_save_calls_nobody(org: Org) -> None:
    results = org.records.create(org.admin_context(), "Account", [
        {"Name": "Good", "Type": "Customer - Direct"}, {"Type": "Customer - Direct"}], all_or_none=True)
    assert not any(r.success for r in results)
    assert org.callouts.list() == []


def test_failures_are_retried_with_backoff_and_the_same_idempotency_key(org: Org, remote: Remote,
                                                                        clock: Clock) -> None:
    remote.statuses = [503, 429, 200]
    record_id = customer(org)
    assert org.worker.run_once()
    assert not org.worker.run_once()  # the retry is not due yet
    clock.advance(1.9)
    assert not org.worker.run_once()
    clock.advance(0.2)  # 2 s after the first attempt
    assert org.worker.run_once()
    clock.advance(3.9)
    assert not org.worker.run_once()
    clock.advance(0.2)  # 4 s after the second
    assert org.worker.run_once()
    (callout,) = org.callouts.list()
    assert callout["state"] == "Delivered" and [a["status"] for a in callout["history"]] == [503, 429, 200]
    assert len({r["headers"]["Idempotency-Key"] for r in remote.requests}) == 1
    assert account_number(org, record_id) == "BA-3"


def test_a_client_error_is_final_and_the_record_is_untouched(org: Org, remote: Remote) -> None:
    remote.statuses = [400]
    record_id = customer(org)
    assert org.worker.run_once()
    (callout,) = org.callouts.list()
    assert (callout["state"], callout["attempts"], callout["lastError"]) == ("Dead", 1, "HTTP 400")
    assert account_number(org, record_id) is None
    assert org.callouts.retry(callout["id"])  # a person sends it again
    assert org.worker.run_once()
    assert org.callouts.get(callout["id"])["state"] == "Delivered"  # type: ignore[index]
    assert account_number(org, record_id) == "BA-2"


def test_it_gives_up_after_the_last_attempt(org: Org, remote: Remote, clock: Clock) -> None:
    org.callouts.max_attempts = 3
    remote.statuses = [500, 500, 500, 500]
    customer(org)
    for _ in range(3):
        clock.advance(3600)
        assert org.worker.run_once()
    clock.advance(3600)
    assert not org.worker.run_once()
    (callout,) = org.callouts.list(state="Dead")
    assert callout["attempts"] == 3 and len(remote.requests) == 3


def test_a_missing_secret_is_a_clear_dead_letter(org: Org, remote: Remote, monkeypatch: pytest.MonkeyPatch) -> None:
    customer(org)
    monkeypatch.delenv("BILLING_PASSWORD")
    assert org.worker.run_once()
    (callout,) = org.callouts.list()
    assert callout["state"] == "Dead" and "needs the environment variable BILLING_PASSWORD" in callout["lastError"]
    assert remote.requests == []


def test_a_trigger_over_the_callout_limit_fails_its_batch(org: Org) -> None:
    few, many = org.records.create(org.admin_context(), "Contact", [{"LastName": "One"}, {"LastName": "Many"}])
    assert not few.success and not many.success  # one batch, one transaction: 102 callouts
    assert "Too many callouts: 101" in many.errors[0].message
    assert org.callouts.list() == []
    (alone,) = org.records.create(org.admin_context(), "Contact", [{"LastName": "Solo"}])
    assert alone.success and len(org.callouts.list()) == 1


def test_callouts_stay_under_their_credential() -> None:
    named = NamedCredential("Billing", "https://billing.example.com/api")
    assert named.endpoint("/accounts/7") == "https://billing.example.com/api/accounts/7"
    for path in ("https://evil.example.com/x", "//evil.example.com/x", "../admin", "/api/../../admin"):
        with pytest.raises(CalloutRefused):
            named.endpoint(path)


def test_a_flow_calling_outside_its_credential_fails_the_save(tmp_path: Path, remote: Remote) -> None:
    project(tmp_path, remote, flow=FLOW.replace("path: /accounts", "path: https://evil.example.com/steal"))
    with backend_org(tmp_path, "sqlite", {}, bulk_workers=0) as org:
        (result,) = org.records.create(org.admin_context(), "Account", [{"Name": "X", "Type": "Customer - Direct"}])
        assert result.errors[0].error_code == "CANNOT_EXECUTE_FLOW_TRIGGER"
        assert "takes a path, not a URL" in result.errors[0].message
        assert org.callouts.list() == []


@pytest.mark.parametrize(("auth", "message"), [
    ("url: ftp://x\n", "url: an http(s) URL"),
    ("url: https://x.example\nauth: {protocol: basic, username: u, password: plain}\n",
     "give secrets as ${ENVIRONMENT_VARIABLE}"),
    ("url: https://x.example\nauth: {protocol: kerberos}\n", "protocol is one of"),
    ("url: https://x.example\ntimeoutSeconds: 500\n", "timeoutSeconds"),
])
def test_a_bad_named_credential_is_a_clear_error(tmp_path: Path, remote: Remote, auth: str, message: str) -> None:
    project(tmp_path, remote, auth=auth)
    with pytest.raises(MetadataError) as caught, backend_org(tmp_path, "sqlite", {}):
        pass
    assert "Billing.yaml" in caught.value.message and message in caught.value.message


def test_the_cli_lists_shows_and_retries_dead_callouts(tmp_path: Path, remote: Remote,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from interlink.testing import local_org, run_cli

    monkeypatch.setenv("BILLING_PASSWORD", "pw")
    project(tmp_path, remote)
    remote.statuses = [404]
    data_dir = tmp_path / "org"
    with local_org(data_dir, project_dir=tmp_path / "project", bulk_workers=0) as org:
        customer(org)
        assert org.worker.run_once()
        (dead,) = org.callouts.list(state="Dead")
    listed = run_cli("callouts", "list", "--state", "Dead", "--data-dir", str(data_dir))
    assert dead["id"] in listed.stdout and "HTTP 404" in listed.stdout
    shown = json.loads(run_cli("callouts", "show", dead["id"], "--data-dir", str(data_dir)).stdout)
    assert shown["history"][0]["status"] == 404
    run_cli("callouts", "retry", dead["id"], "--data-dir", str(data_dir))
    again = run_cli("callouts", "retry", dead["id"], "--data-dir", str(data_dir), check=False)
    assert again.returncode == 1 and "is not a dead callout" in again.stderr
    bad = run_cli("callouts", "list", "--state", "Lost", "--data-dir", str(data_dir), check=False)
    assert bad.returncode == 2


class OAuthRemote:
    """A token endpoint (client credentials) and an API that takes the current token only."""

    def __init__(self) -> None:
        self.issued: list[str] = []
        self.calls: list[str] = []
        self.revoke_first = False
        remote = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path == "/token":
                    expected = "Basic " + base64.b64encode(b"client-1:cs-secret").decode()
                    if self.headers.get("Authorization") != expected or b"grant_type=client_credentials" not in body:
                        return self._send(401, {"error": "invalid_client"})
                    remote.issued.append(f"tok-{len(remote.issued) + 1}")
                    return self._send(200, {"access_token": remote.issued[-1], "token_type": "Bearer",
                                            "expires_in": 3600})
                auth = self.headers.get("Authorization", "")
                remote.calls.append(auth)
                if remote.revoke_first and auth == "Bearer tok-1":
                    return self._send(401, {"error": "revoked"})
                if auth != f"Bearer {remote.issued[-1] if remote.issued else ''}":
                    return self._send(401, {"error": "bad token"})
                return self._send(200, {"accountNumber": "BA-OAUTH"})

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_oauth_client_credentials_fetch_cache_and_refresh_tokens(tmp_path: Path, remote: Remote, clock: Clock,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    oauth = OAuthRemote()
    oauth.revoke_first = True
    monkeypatch.setenv("BILLING_CLIENT_ID", "client-1")
    monkeypatch.setenv("BILLING_CLIENT_SECRET", "cs-secret")
    project(tmp_path, remote, auth=(
        f"url: {oauth.base}/api\nauth:\n  protocol: oauth_client_credentials\n  tokenUrl: {oauth.base}/token\n"
        "  clientId: ${BILLING_CLIENT_ID}\n  clientSecret: ${BILLING_CLIENT_SECRET}\n"))
    try:
        with backend_org(tmp_path, "sqlite", {}, bulk_workers=0) as org:
            org.callouts.clock = clock
            org.callouts.jitter = lambda: 1.0
            first = customer(org, "First")
            assert org.worker.run_once()  # tok-1 is refused (revoked): the token is dropped and the call retried
            clock.advance(2)
            assert org.worker.run_once()  # tok-2
            second = customer(org, "Second")
            assert org.worker.run_once()  # tok-2 again, from the cache
            assert oauth.issued == ["tok-1", "tok-2"]
            assert oauth.calls == ["Bearer tok-1", "Bearer tok-2", "Bearer tok-2"]
            assert account_number(org, first) == account_number(org, second) == "BA-OAUTH"
            assert "cs-secret" not in json.dumps(org.callouts.list())
    finally:
        oauth.server.shutdown()
        oauth.server.server_close()


def test_a_stored_secret_authenticates_callouts(tmp_path: Path, remote: Remote) -> None:
    project(tmp_path, remote, auth=(
        f"url: {remote.url}\nauth:\n  protocol: header\n  header: X-Api-Key\n  value: ${{secret:BILLING_KEY}}\n"))
    with backend_org(tmp_path, "sqlite", {}, bulk_workers=0) as org:
        customer(org, "Before")
        assert org.worker.run_once()
        (dead,) = org.callouts.list(state="Dead")
        assert "interlink secrets set BILLING_KEY" in dead["lastError"] and remote.requests == []
        org.secrets.set("BILLING_KEY", "k-42")
        customer(org, "After")
        assert org.worker.run_once()
        assert remote.requests[-1]["headers"]["X-Api-Key"] == "k-42"


def test_the_jwt_bearer_grant_signs_an_assertion_the_service_verifies(tmp_path: Path, remote: Remote) -> None:
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    public = key.public_key()
    seen: list[dict[str, Any]] = []

    class Token(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            from urllib.parse import parse_qs

            form = parse_qs(self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode())
            claims = jwt.decode(form["assertion"][0], public, algorithms=["RS256"], audience="https://auth.example")
            seen.append({"grant": form["grant_type"][0], **claims})
            data = json.dumps({"access_token": "jwt-token", "expires_in": 600}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_: Any) -> None:
            pass

    token_server = ThreadingHTTPServer(("127.0.0.1", 0), Token)
    threading.Thread(target=token_server.serve_forever, daemon=True).start()
    try:
        project(tmp_path, remote, auth=(
            f"url: {remote.url}\nauth:\n  protocol: oauth_jwt_bearer\n"
            f"  tokenUrl: http://127.0.0.1:{token_server.server_address[1]}/token\n"
            "  issuer: client-9\n  subject: integration@example.com\n  audience: https://auth.example\n"
            "  privateKey: ${secret:BILLING_JWT_KEY}\n"))
        with backend_org(tmp_path, "sqlite", {}, bulk_workers=0) as org:
            org.secrets.set("BILLING_JWT_KEY", pem)
            customer(org)
            assert org.worker.run_once()
            assert remote.requests[-1]["headers"]["Authorization"] == "Bearer jwt-token"
            (claims,) = seen
            assert claims["grant"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
            assert (claims["iss"], claims["sub"]) == ("client-9", "integration@example.com")
            assert claims["exp"] - claims["iat"] == 180
    finally:
        token_server.shutdown()
        token_server.server_close()


def test_aws_signature_v4_matches_the_documented_example() -> None:
    from interlink.callouts.credentials import sigv4_headers

    headers = sigv4_headers(
        "GET", "https://iam.amazonaws.com/?Version=2010-05-08&Action=ListUsers",
        {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}, b"",
        access_key="AKIDEXAMPLE", secret_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", region="us-east-1",
        service="iam", now=datetime(2015, 8, 30, 12, 36, 0))
    assert headers["X-Amz-Date"] == "20150830T123600Z"
    assert headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date, "
        "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7")


def test_an_aws_credential_signs_each_callout(tmp_path: Path, remote: Remote) -> None:
    project(tmp_path, remote, auth=(
        f"url: {remote.url}\nauth:\n  protocol: aws_sigv4\n  accessKey: AKIDEXAMPLE\n"
        "  secretKey: ${secret:AWS_SECRET}\n  region: eu-west-1\n  service: execute-api\n"))
    with backend_org(tmp_path, "sqlite", {}, bulk_workers=0) as org:
        org.secrets.set("AWS_SECRET", "shh")
        customer(org)
        assert org.worker.run_once()
        sent = remote.requests[-1]["headers"]
        assert sent["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
        assert "/eu-west-1/execute-api/aws4_request" in sent["Authorization"]
        assert "idempotency-key" in sent["Authorization"] and sent["X-Amz-Date"].endswith("Z")


def test_the_queue_api_shows_and_retries_callouts(org: Org, remote: Remote) -> None:
    from interlink.testing import rest_client

    remote.statuses = [400]
    customer(org)
    assert org.worker.run_once()
    client = rest_client(org)
    (dead,) = client.get("/interlink/v1/callouts", params={"state": "Dead"}).json()["callouts"]
    assert dead["history"][0]["status"] == 400
    assert client.get(f"/interlink/v1/callouts/{dead['id']}").json()["id"] == dead["id"]
    assert client.post(f"/interlink/v1/callouts/{dead['id']}/retry").json()["state"] == "Queued"
    assert client.post(f"/interlink/v1/callouts/{dead['id']}/retry").status_code == 404
    assert client.get("/interlink/v1/callouts", params={"state": "Lost"}).status_code == 400
    assert client.get("/interlink/v1/outbound").json() == {"notifications": []}
    client.headers.pop("Authorization")
    assert client.get("/interlink/v1/callouts").status_code == 401
