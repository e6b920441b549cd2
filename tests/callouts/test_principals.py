"""Per-user principals: each running user calls out with their own credential, when a permission set grants
them the principal; otherwise nothing is sent (async: dead-lettered; sync: the action fails)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from billing_remote import Remote  # type: ignore[import-not-found]

from interlink.app.org import Org
from interlink.app.permissions import assign
from interlink.callouts.principals import user_secret_name
from interlink.errors import MetadataError
from interlink.records.context import Context
from interlink.testing import backend_org, rest_client, run_cli

CREDENTIAL = """\
url: {url}
principal: {{type: PerUserPrincipal, name: PerUser}}
auth: {{protocol: bearer, token: "${{user:BILLING_TOKEN}}"}}
"""
FLOW = """\
object: Account
trigger: create
actions:
  - callout: {credential: Billing, method: POST, path: /accounts, body: {name: "{!$Record.Name}"}}
"""
ANSWER = {"type": "object", "properties": {"accountNumber": {"type": "string"}}}
SPEC = {"openapi": "3.0.3", "info": {"title": "b", "version": "1"}, "paths": {"/accounts": {"post": {
    "operationId": "createAccount",
    "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
    "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": ANSWER}}}}}}}}


def write_project(root: Path, remote: Remote, *, grants: str = "[Billing-PerUser]") -> Path:
    import yaml

    base = root / "project" / "metadata"
    for folder in ("namedCredentials", "flows", "permissionSets", "externalServices"):
        (base / folder).mkdir(parents=True, exist_ok=True)
    (base / "namedCredentials" / "Billing.yaml").write_text(CREDENTIAL.format(url=remote.url))
    (base / "flows" / "Bill_Accounts.yaml").write_text(FLOW)
    (base / "permissionSets" / "Billing_Users.yaml").write_text(
        f"label: Billing users\nexternalCredentialPrincipals: {grants}\n")
    (base / "externalServices" / "billing.yaml").write_text(yaml.safe_dump({"credential": "Billing", "spec": SPEC}))
    return root / "project"


@pytest.fixture
def remote() -> Iterator[Remote]:
    server = Remote()
    yield server
    server.close()


@pytest.fixture
def org(store_backend: str, tmp_path: Path, remote: Remote) -> Iterator[Org]:
    write_project(tmp_path, remote)
    with backend_org(tmp_path, store_backend, {}, unavailable=pytest.skip, bulk_workers=0) as opened:
        opened.callouts.clock = lambda: datetime(2026, 11, 29, 12, 0, 0)
        yield opened


def new_user(org: Org, name: str, *, granted: bool, token: str | None) -> str:
    (result,) = org.records.create(org.admin_context(), "User", [{
        "Username": f"{name}@example.com", "LastName": name, "Email": f"{name}@example.com", "Alias": name[:8]}])
    assert result.success, result.errors
    if granted:
        assign(org, str(result.id), permission_sets=["Billing_Users"])
    if token is not None:
        org.secrets.set(user_secret_name("BILLING_TOKEN", str(result.id)), token)
    return str(result.id)


def save_as(org: Org, user_id: str, name: str) -> None:
    (result,) = org.records.create(Context(user_id, org.org_id), "Account", [{"Name": name}])
    assert result.success, result.errors


def test_each_user_calls_out_with_their_own_credential(org: Org, remote: Remote) -> None:
    alice = new_user(org, "alice", granted=True, token="alice-token-1")
    bob = new_user(org, "bob", granted=True, token="bob-token-2")
    save_as(org, alice, "From Alice")
    save_as(org, bob, "From Bob")
    while org.worker.run_once():
        pass
    sent = {json.loads(r["body"])["name"]: r["headers"]["Authorization"] for r in remote.requests}
    assert sent == {"From Alice": "Bearer alice-token-1", "From Bob": "Bearer bob-token-2"}
    shown = json.dumps(org.callouts.list()) + json.dumps([org.callouts.request(c["id"]) for c in org.callouts.list()])
    assert "token-1" not in shown and "token-2" not in shown  # no secret in what the API and console show


def test_without_access_or_without_a_credential_nothing_is_sent_and_the_callout_is_dead(org: Org,
                                                                                        remote: Remote) -> None:
    mallory = new_user(org, "mallory", granted=False, token="mallory-token")
    carol = new_user(org, "carol", granted=True, token=None)
    save_as(org, mallory, "From Mallory")
    save_as(org, carol, "From Carol")
    while org.worker.run_once():
        pass
    assert remote.requests == []
    dead = {c["state"]: c for c in org.callouts.list(state="Dead")}
    errors = sorted(c["lastError"] for c in org.callouts.list(state="Dead"))
    assert len(dead) == 1 and len(errors) == 2
    assert any("We couldn't access the credential(s)" in e and "Billing-PerUser" in e for e in errors)
    assert any(f"user {carol} has no credential for the principal Billing-PerUser" in e for e in errors)
    assert "mallory-token" not in json.dumps(org.callouts.list())


def test_the_rest_action_uses_the_callers_credential(org: Org, remote: Remote) -> None:
    client = rest_client(org)  # the admin: no permission set grants the principal yet
    base = "/services/data/v66.0/actions/custom/externalService/billing.createAccount"
    (refused,) = client.post(base, json={"inputs": [{"body": {"name": "x"}}]}).json()
    assert refused["isSuccess"] is False and refused["errors"][0]["statusCode"] == "CALLOUT_NOT_ALLOWED"
    assert remote.requests == []
    admin = org.admin_context().user_id
    assign(org, admin, permission_sets=["Billing_Users"])
    org.secrets.set(user_secret_name("BILLING_TOKEN", admin), "admin-token-9")
    (done,) = client.post(base, json={"inputs": [{"body": {"name": "x"}}]}).json()
    assert done["isSuccess"] is True and done["outputValues"]["200"] == {"accountNumber": "BA-1"}
    assert remote.requests[0]["headers"]["Authorization"] == "Bearer admin-token-9"
    assert "admin-token-9" not in json.dumps(done)


@pytest.mark.parametrize(("credential", "grants", "message"), [
    (None, "[Billing-Nobody]", "'Billing-Nobody' is not a per-user principal of a named credential"),
    ("url: http://x\nauth: {protocol: bearer, token: \"${user:T}\"}\n", "[]",
     "auth.token: ${user:NAME} is a user's own secret: it needs principal: {type: PerUserPrincipal}"),
    ("url: http://x\nprincipal: {type: PerUserPrincipal}\nauth: {protocol: bearer, token: \"${secret:T}\"}\n", "[]",
     "a per-user principal takes each user's own secrets"),
])
def test_bad_principals_stop_the_load(tmp_path: Path, remote: Remote, credential: str | None, grants: str,
                                      message: str) -> None:
    from interlink.callouts.credentials import load_credentials

    project = write_project(tmp_path, remote, grants=grants)
    if credential is not None:
        (project / "metadata" / "namedCredentials" / "Billing.yaml").write_text(credential)
    with pytest.raises(MetadataError) as raised:
        load_credentials(project)
    assert message in raised.value.message


def test_the_cli_stores_a_users_own_secret(tmp_path: Path, remote: Remote) -> None:
    write_project(tmp_path, remote)
    with backend_org(tmp_path, "sqlite", {}, bulk_workers=0) as org:
        alice = new_user(org, "alice", granted=True, token=None)
        data_dir = str(org.settings.data_dir)
    import subprocess
    import sys

    def set_secret(name: str, user: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "interlink.cli.main", "secrets", "set", name, "--user", user,
                               "--data-dir", data_dir], input="alice-cli-token\n", capture_output=True, text=True,
                              timeout=120, check=False)

    done = set_secret("BILLING_TOKEN", "alice@example.com")
    assert done.returncode == 0, done.stderr
    assert "alice-cli-token" not in done.stdout + done.stderr
    listed = run_cli("secrets", "list", "--data-dir", data_dir).stdout
    assert f"BILLING_TOKEN@{alice}" in listed and "alice-cli-token" not in listed
    unknown = set_secret("X", "nobody@example.com")
    assert unknown.returncode == 2 and "there is no user 'nobody@example.com'" in unknown.stderr


TRIGGER = """
from interlink.automation import trigger

@trigger("Contact", after=["insert"])
def notify(ctx):
    for record in ctx.new:
        ctx.callout("Billing", "POST", "/contacts", json={"name": record["LastName"]})
"""


def test_a_python_trigger_calls_out_as_the_user_who_saved(tmp_path: Path, remote: Remote) -> None:
    project = write_project(tmp_path, remote)
    (project / "triggers").mkdir(exist_ok=True)
    (project / "triggers" / "notify.py").write_text(TRIGGER)
    with backend_org(tmp_path, "sqlite", {}, bulk_workers=0) as org:
        alice = new_user(org, "alice", granted=True, token="alice-trigger-token")
        mallory = new_user(org, "mallory", granted=False, token="mallory-trigger-token")
        for user_id, name in ((alice, "Alice Contact"), (mallory, "Mallory Contact")):
            (result,) = org.records.create(Context(user_id, org.org_id), "Contact", [{"LastName": name}])
            assert result.success, result.errors
        while org.worker.run_once():
            pass
        sent = {json.loads(r["body"])["name"]: r["headers"]["Authorization"] for r in remote.requests
                if r["path"].endswith("/contacts")}
        assert sent == {"Alice Contact": "Bearer alice-trigger-token"}  # mallory's was refused: nothing sent
        refused = [c for c in org.callouts.list(state="Dead") if c["source"].startswith("trigger")]
        assert len(refused) == 1 and "We couldn't access the credential(s)" in refused[0]["lastError"]
