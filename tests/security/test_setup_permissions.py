"""System permissions that open setup: View Setup and Configuration, Manage Users; roles are not the users' to move.

Everyone reads UserRole (and Group, GroupMember); only Manage Users (or Modify All Data) changes roles, users and
permission set assignments. View Setup reads the setup objects and the audit trail; Manage Users implies it and reads
login history too.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

from interlink.app.permissions import apply_permission_metadata, assign
from interlink.app.setup_users import create_user
from interlink.testing import local_org, rest_client

API = "/services/data/v66.0"
PROJECT = {
    "metadata/permissionSets/Setup_Viewer.yaml": "userPermissions: [ApiEnabled, ViewSetup]\n",
    "metadata/permissionSets/User_Manager.yaml": "userPermissions: [ApiEnabled, ManageUsers]\n",
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("setup-perms")
    for relative, text in PROJECT.items():
        path = root / "project" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    with local_org(root / "org", project_dir=root / "project", bulk_workers=0) as org:
        clients = {}
        for name, sets in (("plain", []), ("viewer", ["Setup_Viewer"]), ("manager", ["User_Manager"])):
            user_id, _ = create_user(org, f"{name}@setup.test", last_name=name.title())
            assign(org, user_id, permission_sets=sets)
            clients[name] = rest_client(org, f"{name}@setup.test")
        (role,) = org.records.create(org.admin_context(), "UserRole", [{"Name": "Boss", "DeveloperName": "Boss"}])
        yield {"org": org, "clients": clients, "role": role.id}
        for client in clients.values():
            client.close()


def query(client: Any, soql: str) -> Any:
    return client.get(f"{API}/query", params={"q": soql})


def error_code(response: Any) -> str:
    return response.json()[0]["errorCode"]


def test_a_standard_user_reads_roles_but_cannot_create_or_move_them(world: dict[str, Any]) -> None:
    plain = world["clients"]["plain"]
    assert query(plain, "SELECT Name FROM UserRole").json()["records"][0]["Name"] == "Boss"
    created = plain.post(f"{API}/sobjects/UserRole", json={"Name": "Mine", "DeveloperName": "Mine"})
    assert created.status_code == 400 and error_code(created) == "INSUFFICIENT_ACCESS_OR_READONLY", created.text
    moved = plain.patch(f"{API}/sobjects/UserRole/{world['role']}", json={"Name": "Renamed"})
    assert moved.status_code == 400 and error_code(moved) == "INSUFFICIENT_ACCESS_OR_READONLY"
    for hidden in ("LoginHistory", "SetupAuditTrail", "PermissionSet"):
        answer = query(plain, f"SELECT Id FROM {hidden}")
        assert answer.status_code == 400 and error_code(answer) == "INVALID_TYPE", hidden
    assert world["org"].query.execute(f"SELECT Name FROM UserRole WHERE Id = '{world['role']}'",
                                      world["org"].admin_context()).records[0]["Name"] == "Boss"


def test_view_setup_reads_setup_and_the_audit_trail_but_changes_nothing(world: dict[str, Any]) -> None:
    viewer = world["clients"]["viewer"]
    for readable in ("SetupAuditTrail", "PermissionSet", "PermissionSetAssignment", "Profile", "Organization"):
        answer = query(viewer, f"SELECT Id FROM {readable} LIMIT 1")
        assert answer.status_code == 200, (readable, answer.text)
    assert error_code(query(viewer, "SELECT Id FROM LoginHistory")) == "INVALID_TYPE"
    created = viewer.post(f"{API}/sobjects/User", json={"Username": "x@setup.test", "LastName": "X",
                                                        "Email": "x@setup.test", "Alias": "x"})
    assert created.status_code == 400 and error_code(created) == "INSUFFICIENT_ACCESS_OR_READONLY"
    assert viewer.get("/interlink/v1/callouts").status_code == 200  # the queues need View Setup


def test_manage_users_creates_users_moves_roles_and_reads_login_history(world: dict[str, Any]) -> None:
    manager = world["clients"]["manager"]
    assert query(manager, "SELECT Id FROM LoginHistory LIMIT 1").status_code == 200
    assert query(manager, "SELECT Id FROM SetupAuditTrail LIMIT 1").status_code == 200  # implies View Setup
    created = manager.post(f"{API}/sobjects/User", json={"Username": "new@setup.test", "LastName": "New",
                                                         "Email": "new@setup.test", "Alias": "new"})
    assert created.status_code == 201, created.text
    (role,) = query(manager, "SELECT Id FROM UserRole WHERE DeveloperName = 'Boss'").json()["records"]
    assert manager.patch(f"{API}/sobjects/UserRole/{role['Id']}", json={"Name": "Chief"}).status_code == 204
    manager.patch(f"{API}/sobjects/UserRole/{role['Id']}", json={"Name": "Boss"})
    refused = manager.post(f"{API}/sobjects/PermissionSet", json={"Name": "Sneaky", "Label": "Sneaky"})
    assert refused.status_code == 400 and error_code(refused) == "INSUFFICIENT_ACCESS_OR_READONLY"


def test_a_redeploy_takes_back_role_grants_older_versions_gave_standard_users(world: dict[str, Any]) -> None:
    org = world["org"]
    admin = org.admin_context().as_system()
    (standard,) = org.query.execute("SELECT Id FROM PermissionSet WHERE Label = 'Standard User' "
                                    "AND IsOwnedByProfile = true", admin).records
    (old,) = org.records.create(admin, "ObjectPermissions", [{
        "ParentId": standard["Id"], "SobjectType": "UserRole", "PermissionsRead": True, "PermissionsCreate": True,
        "PermissionsEdit": True, "PermissionsDelete": True}])
    assert old.success, old.errors
    changes = apply_permission_metadata(org, org.settings.project_dir)
    assert "Standard User: object permissions -1" in changes
    assert not org.query.execute(f"SELECT Id FROM ObjectPermissions WHERE Id = '{old.id}'", admin).records
