"""The setup audit trail: deploys, users, passwords, connected apps, secrets and permission set assignments each leave
an entry in the read-only SetupAuditTrail object, in the transaction of the change; `interlink audit` lists them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from interlink.app.org import ADMIN_USERNAME, Org
from interlink.app.provisioning import apply_identity_metadata
from interlink.errors import DestructiveChangeError
from interlink.security.audit import record_setup_change
from interlink.testing import local_org, rest_client, run_cli

V = "/services/data/v66.0"


def trail(org: Org, where: str = "") -> list[dict[str, Any]]:
    """The trail, oldest first (through SOQL, as any client reads it)."""
    page = org.query.execute(f"SELECT Action, Section, Display, CreatedById, CreatedBy.Username, DelegateUser "
                             f"FROM SetupAuditTrail {where} ORDER BY CreatedDate, Id", org.admin_context(),
                             batch_size=2000)
    return page.records


def entries(org: Org, where: str = "") -> list[tuple[str, str, str]]:
    return [(r["Action"], r["Section"], r["Display"]) for r in trail(org, where)]


def admin_id(org: Org) -> str:
    admin = org.directory.user_by_username(ADMIN_USERNAME)
    assert admin is not None
    return admin.id


def write_object(project: Path, name: str, spec: dict[str, Any]) -> None:
    folder = project / "metadata" / "objects"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))


def test_a_new_org_starts_its_trail_with_the_admin_and_the_cli_app(org: Org) -> None:
    recorded = entries(org)
    assert ("createduser", "Manage Users", f"Created new user {ADMIN_USERNAME}") in recorded
    assert ("createdconnectedapp", "Connected Apps", "Created connected app Interlink CLI") in recorded
    assert not any(action.endswith("Entity") or action.endswith("CF") for action, _, _ in recorded)  # no deploy
    assert {r["CreatedBy"]["Username"] for r in trail(org)} == {ADMIN_USERNAME}


def test_deploys_record_each_object_and_field_change(org: Org) -> None:
    project = org.settings.project_dir
    write_object(project, "Widget__c", {"fields": [{"name": "Color__c", "type": "text", "length": 10}]})
    org.store.deploy(org.load_metadata().schema)
    assert entries(org, "WHERE Section = 'Custom Objects'") == [
        ("createdEntity", "Custom Objects", "Create object Widget__c")]

    write_object(project, "Widget__c", {"fields": [{"name": "Color__c", "type": "text", "length": 20},
                                                   {"name": "Size__c", "type": "int"}]})
    write_object(project, "Account", {"fields": [{"name": "Tier__c", "type": "text"}]})
    write_object(project, "User", {"fields": [{"name": "Badge__c", "type": "text"}]})  # the table the actor is in
    org.store.deploy(org.load_metadata().schema)
    assert entries(org, "WHERE Action IN ('createdCF', 'changedCFLength')") == [
        ("createdCF", "Customize Accounts", "Add field Account.Tier__c (string)"),
        ("createdCF", "Customize Users", "Add field User.Badge__c (string)"),
        ("changedCFLength", "Custom Objects", "Widen Widget__c.Color__c 10 -> 20"),
        ("createdCF", "Custom Objects", "Add field Widget__c.Size__c (int)"),
    ]

    write_object(project, "Widget__c", {"fields": [{"name": "Size__c", "type": "int"}]})
    before = len(trail(org))
    with pytest.raises(DestructiveChangeError):
        org.store.deploy(org.load_metadata().schema)
    assert len(trail(org)) == before  # a refused deploy changes nothing, the trail included
    org.store.deploy(org.load_metadata().schema, allow_destructive=True)
    assert entries(org, "WHERE Action = 'deletedCF'") == [
        ("deletedCF", "Custom Objects", "Drop field Widget__c.Color__c (drops its data)")]
    assert {r["CreatedById"] for r in trail(org, "WHERE Section = 'Custom Objects'")} == {admin_id(org)}


def test_enabling_field_history_is_recorded(org: Org) -> None:
    write_object(org.settings.project_dir, "Case", {"enableHistory": True,
                                                     "fields": [{"name": "Status", "trackHistory": True}]})
    org.store.deploy(org.load_metadata().schema)
    recorded = entries(org, "WHERE Section = 'Customize Cases'")
    assert ("createdEntity", "Customize Cases", "Create object CaseHistory") in recorded
    assert ("changedCF", "Customize Cases", "Update field Case.Status") in recorded


def test_user_changes_through_any_path_are_recorded_as_their_caller(org: Org) -> None:
    api = rest_client(org)
    created = api.post(f"{V}/sobjects/User/", json={"Username": "rep@example.com", "LastName": "Rep",
                                                     "Email": "rep@example.com", "Alias": "rep"})
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    assert api.patch(f"{V}/sobjects/User/{user_id}", json={"Email": "rep2@example.com", "Title": "x"}
                     ).status_code == 204
    assert api.patch(f"{V}/sobjects/User/{user_id}", json={"IsActive": False}).status_code == 204
    assert api.patch(f"{V}/sobjects/User/{user_id}", json={"IsActive": True, "Username": "rep3@example.com"}
                     ).status_code == 204
    # the org's own bookkeeping (LastLoginDate) is no setup change
    org.records.update(org.admin_context().as_system(), "User", [{"Id": user_id, "LastLoginDate": "2024-01-01"}])
    assert [e for e in entries(org, "WHERE Section = 'Manage Users'") if "rep" in e[2]] == [
        ("createduser", "Manage Users", "Created new user rep@example.com"),
        ("changeduser", "Manage Users", "Changed Email of user rep@example.com"),
        ("deactivateduser", "Manage Users", "Deactivated user rep@example.com"),
        ("activateduser", "Manage Users", "Activated user rep3@example.com"),
        ("changedusername", "Manage Users", "Changed username from rep@example.com to rep3@example.com"),
    ]

    failed = api.post(f"{V}/composite", json={"allOrNone": True, "compositeRequest": [
        {"method": "POST", "url": f"{V}/sobjects/User/", "referenceId": "u",
         "body": {"Username": "ghost@example.com", "LastName": "G", "Email": "ghost@example.com", "Alias": "g"}},
        {"method": "POST", "url": f"{V}/sobjects/Account/", "referenceId": "bad", "body": {}},
    ]})
    assert failed.status_code == 200
    assert not [e for e in entries(org) if "ghost" in e[2]]  # rolled back with the user


def test_passwords_connected_apps_and_secrets(org: Org) -> None:
    user_id = org.records.create(org.admin_context(), "User", [{
        "Username": "int@example.com", "LastName": "Int", "Email": "int@example.com", "Alias": "int"}])[0].id
    assert user_id is not None
    org.directory.set_password(user_id, "first-password")  # the first password comes with the new user
    org.directory.set_password(user_id, "second-password")
    org.directory.set_password(user_id, "second-password")  # the same again is no change
    org.directory.create_app("ERP", callback_url="https://erp.example.com/cb")
    org.directory.update_app("ERP", callback_url="https://erp.example.com/cb2", run_as_user_id=user_id)
    org.secrets.set("ERP_PASSWORD", "hunter2-secret")
    org.secrets.delete("ERP_PASSWORD")
    org.secrets.delete("ERP_PASSWORD")  # nothing to delete: nothing recorded
    recorded = [e for e in entries(org) if "int@" in e[2] or "ERP" in e[2]]
    assert recorded == [
        ("createduser", "Manage Users", "Created new user int@example.com"),
        ("resetpassword", "Manage Users", "Reset password for user int@example.com"),
        ("createdconnectedapp", "Connected Apps", "Created connected app ERP"),
        ("changedconnectedapp", "Connected Apps", "Changed callback URL, run-as user of connected app ERP"),
        ("setnamedcredentialsecret", "Named Credentials", "Set secret ERP_PASSWORD"),
        ("deletednamedcredentialsecret", "Named Credentials", "Deleted secret ERP_PASSWORD"),
    ]
    assert not any("hunter2" in (r["Display"] or "") for r in trail(org))


def test_provisioning_from_project_files_is_recorded_once(org: Org, monkeypatch: pytest.MonkeyPatch) -> None:
    project = org.settings.project_dir
    (project / "metadata" / "users").mkdir(parents=True, exist_ok=True)
    (project / "metadata" / "connectedApps").mkdir(parents=True, exist_ok=True)
    (project / "metadata" / "users" / "erp.yaml").write_text(
        "username: erp@example.com\nlastName: ERP\npasswordEnv: ERP_USER_PASSWORD\n")
    (project / "metadata" / "connectedApps" / "erp.yaml").write_text(
        "name: ERP Connector\nrunAs: erp@example.com\ncallbackUrl: https://erp.example.com/cb\n")
    monkeypatch.setenv("ERP_USER_PASSWORD", "erp-password-1")
    apply_identity_metadata(org, project)
    apply_identity_metadata(org, project)  # nothing changed: nothing recorded (the password is set again)
    monkeypatch.setenv("ERP_USER_PASSWORD", "erp-password-2")
    (project / "metadata" / "users" / "erp.yaml").write_text(
        "username: erp@example.com\nlastName: ERP\npasswordEnv: ERP_USER_PASSWORD\nactive: false\n")
    apply_identity_metadata(org, project)
    assert [e for e in entries(org) if "erp" in e[2].lower()] == [
        ("createduser", "Manage Users", "Created new user erp@example.com"),
        ("createdconnectedapp", "Connected Apps", "Created connected app ERP Connector"),
        ("deactivateduser", "Manage Users", "Deactivated user erp@example.com"),
        ("resetpassword", "Manage Users", "Reset password for user erp@example.com"),
    ]


def test_permission_set_assignments_are_recorded(org: Org) -> None:
    context = org.admin_context().as_system()
    user_id = org.records.create(context, "User", [{
        "Username": "ps@example.com", "LastName": "Ps", "Email": "ps@example.com", "Alias": "ps"}])[0].id
    permission_set = org.records.create(context, "PermissionSet", [{"Name": "Invoicing", "Label": "Invoicing"}])
    assert permission_set[0].success, permission_set[0].errors
    assigned = org.records.create(context, "PermissionSetAssignment", [{
        "AssigneeId": user_id, "PermissionSetId": permission_set[0].id}])
    assert assigned[0].success, assigned[0].errors
    assert org.records.delete(context, [assigned[0].id])[0].success  # type: ignore[list-item]
    assert entries(org, "WHERE Action LIKE 'PermSet%'") == [
        ("PermSetAssign", "Manage Users", "Assigned permission set Invoicing to user ps@example.com"),
        ("PermSetUnassign", "Manage Users", "Unassigned permission set Invoicing from user ps@example.com"),
    ]


def test_record_setup_change_joins_the_callers_transaction(org: Org) -> None:
    entry = record_setup_change(org.store, "PermSetCreate", "Manage Users", "Created permission set X",
                                admin_id(org), delegate_user="support@example.com")
    assert entry is not None and entry.startswith("0Ym")
    row = trail(org, f"WHERE Id = '{entry}'")[0]
    assert (row["Action"], row["DelegateUser"], row["CreatedById"]) == ("PermSetCreate", "support@example.com",
                                                                       admin_id(org))

    class Boom(Exception):
        pass

    with pytest.raises(Boom), org.records.unit_of_work(org.admin_context()):
        record_setup_change(org.store, "PermSetCreate", "Manage Users", "Created permission set Y", admin_id(org))
        raise Boom
    assert entries(org, "WHERE Action = 'PermSetCreate'") == [
        ("PermSetCreate", "Manage Users", "Created permission set X")]


def test_the_trail_is_read_only_and_queryable(org: Org) -> None:
    api = rest_client(org)
    entry = trail(org)[0]
    entry_id = api.get(f"{V}/query", params={"q": "SELECT Id FROM SetupAuditTrail LIMIT 1"}).json()["records"][0]["Id"]
    for response in (api.post(f"{V}/sobjects/SetupAuditTrail/", json={"Action": "x"}),
                     api.patch(f"{V}/sobjects/SetupAuditTrail/{entry_id}", json={"Action": "x"}),
                     api.delete(f"{V}/sobjects/SetupAuditTrail/{entry_id}")):
        assert response.status_code == 400 and response.json()[0]["errorCode"] == "INVALID_TYPE", response.text
    described = api.get(f"{V}/sobjects/SetupAuditTrail/describe").json()
    assert described["keyPrefix"] == "0Ym" and not described["createable"]
    assert {"Action", "Section", "Display", "DelegateUser", "ResponsibleNamespacePrefix", "CreatedDate",
            "CreatedById"} <= {f["name"] for f in described["fields"]}
    got = api.get(f"{V}/query", params={"q": "SELECT CreatedBy.Username, Action FROM SetupAuditTrail "
                                             "WHERE Section = 'Manage Users' ORDER BY CreatedDate DESC LIMIT 1"})
    assert got.status_code == 200 and got.json()["records"][0]["CreatedBy"]["Username"] == ADMIN_USERNAME
    assert entry["Action"]


def test_interlink_audit_lists_the_trail(tmp_path: Path) -> None:
    data_dir = tmp_path / "org"
    with local_org(data_dir):
        pass
    secret = subprocess.run([sys.executable, "-m", "interlink.cli.main", "secrets", "set", "BILLING",
                             "--data-dir", str(data_dir)], input="s3cret-value\n", capture_output=True, text=True,
                            timeout=60, check=False)
    assert secret.returncode == 0, secret.stderr
    run_cli("apps", "create", "Billing", "--data-dir", str(data_dir))
    listed = run_cli("audit", "--json", "--data-dir", str(data_dir)).stdout.splitlines()
    newest = [json.loads(line) for line in listed]
    assert [(e["section"], e["action"], e["display"]) for e in newest[:2]] == [
        ("Connected Apps", "createdconnectedapp", "Created connected app Billing"),
        ("Named Credentials", "setnamedcredentialsecret", "Set secret BILLING")]
    assert newest[0]["user"] == ADMIN_USERNAME and newest[0]["createdDate"].endswith("+0000")
    only = run_cli("audit", "--json", "--section", "Connected Apps", "--limit", "1", "--data-dir", str(data_dir))
    assert [json.loads(line)["display"] for line in only.stdout.splitlines()] == ["Created connected app Billing"]
    table = run_cli("audit", "--data-dir", str(data_dir)).stdout
    assert "Set secret BILLING" in table and "s3cret" not in table
