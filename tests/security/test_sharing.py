"""Record-level sharing: organization-wide defaults, ownership and the role hierarchy, on every read and write.

Account is Private and Opportunity is Public Read Only in this project. Roles: Boss above Manager above Rep. Users:
rep1 and rep2 (Rep), manager (Manager), boss (Boss), loner (no role), auditor (no role, a permission set with View All
on Account). All are Standard Users otherwise.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from interlink.api.app import build_app
from interlink.app.permissions import assign
from interlink.app.setup_users import create_user
from interlink.testing import local_org

API = "/services/data/v66.0"

PROJECT = {
    "metadata/objects/Account.yaml": "name: Account\nsharingModel: Private\n",
    "metadata/objects/Opportunity.yaml": "name: Opportunity\nsharingModel: Read\n",
    "metadata/permissionSets/Auditor.yaml": """\
        label: Auditor
        objectPermissions:
          Account: read, viewAll
        """,
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("sharing")
    project = root / "project"
    for relative, text in PROJECT.items():
        path = project / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    with local_org(root / "org", project_dir=project, bulk_workers=0) as org:
        admin = org.admin_context()
        (boss_role,) = org.records.create(admin, "UserRole", [{"Name": "Boss", "DeveloperName": "Boss"}])
        (manager_role,) = org.records.create(admin, "UserRole", [{"Name": "Manager", "DeveloperName": "Manager",
                                                                  "ParentRoleId": boss_role.id}])
        (rep_role,) = org.records.create(admin, "UserRole", [{"Name": "Rep", "DeveloperName": "Rep",
                                                              "ParentRoleId": manager_role.id}])
        users: dict[str, str] = {}
        for name, role in (("rep1", rep_role.id), ("rep2", rep_role.id), ("manager", manager_role.id),
                           ("boss", boss_role.id), ("loner", None), ("auditor", None)):
            user_id, _ = create_user(org, f"{name}@share.test", last_name=name.title())
            if role:
                org.records.update(admin, "User", [{"Id": user_id, "UserRoleId": role}])
            users[name] = user_id
        assign(org, users["auditor"], permission_sets=["Auditor"])
        records = {}
        for owner in ("rep1", "rep2"):
            (account,) = org.records.create(admin, "Account", [{"Name": f"{owner} account", "OwnerId": users[owner]}])
            (deal,) = org.records.create(admin, "Opportunity", [{
                "Name": f"{owner} deal", "StageName": "Prospecting", "CloseDate": "2027-01-01",
                "AccountId": account.id, "OwnerId": users[owner]}])
            records[owner] = account.id
            records[f"{owner}-deal"] = deal.id
        app = build_app(org)
        clients = {}
        for name in users:
            client = TestClient(app, base_url="https://testserver")
            client.headers["Authorization"] = f"Bearer {org.mint_token(f'{name}@share.test')}"
            clients[name] = client
        yield {"org": org, "users": users, "records": records, "clients": clients}


def names(client: TestClient, soql: str) -> list[str]:
    response = client.get(f"{API}/query", params={"q": soql})
    assert response.status_code == 200, response.text
    return sorted(r["Name"] for r in response.json()["records"])


def test_private_records_are_seen_by_owners_and_the_hierarchy_above(world: dict[str, Any]) -> None:
    c = world["clients"]
    assert names(c["rep1"], "SELECT Name FROM Account") == ["rep1 account"]
    assert names(c["rep2"], "SELECT Name FROM Account") == ["rep2 account"]
    assert names(c["manager"], "SELECT Name FROM Account") == ["rep1 account", "rep2 account"]
    assert names(c["boss"], "SELECT Name FROM Account") == ["rep1 account", "rep2 account"]
    assert names(c["loner"], "SELECT Name FROM Account") == []
    assert names(c["auditor"], "SELECT Name FROM Account") == ["rep1 account", "rep2 account"]  # View All
    count = c["rep1"].get(f"{API}/query", params={"q": "SELECT COUNT() FROM Account"}).json()["totalSize"]
    assert count == 1


def test_rest_reads_of_someone_else_s_private_record_are_not_found(world: dict[str, Any]) -> None:
    c, records = world["clients"], world["records"]
    assert c["rep1"].get(f"{API}/sobjects/Account/{records['rep1']}").status_code == 200
    assert c["rep1"].get(f"{API}/sobjects/Account/{records['rep2']}").status_code == 404
    assert c["manager"].get(f"{API}/sobjects/Account/{records['rep2']}").status_code == 200
    by_ids = c["rep1"].get(f"{API}/composite/sobjects/Account",
                           params={"ids": f"{records['rep1']},{records['rep2']}", "fields": "Name"}).json()
    assert by_ids[0]["Name"] == "rep1 account" and by_ids[1] is None


def test_writes_need_the_record_shared(world: dict[str, Any]) -> None:
    c, records, org = world["clients"], world["records"], world["org"]
    refused = c["rep1"].patch(f"{API}/sobjects/Account/{records['rep2']}", json={"Phone": "1"})
    assert refused.status_code == 400 and refused.json()[0]["errorCode"] == "INSUFFICIENT_ACCESS_OR_READONLY"
    assert c["rep1"].delete(f"{API}/sobjects/Account/{records['rep2']}").status_code == 400
    assert c["manager"].patch(f"{API}/sobjects/Account/{records['rep2']}", json={"Phone": "2"}).status_code == 204
    assert c["auditor"].patch(f"{API}/sobjects/Account/{records['rep2']}", json={"Phone": "3"}).status_code == 400
    phone = org.query.execute(f"SELECT Phone FROM Account WHERE Id = '{records['rep2']}'",
                              org.admin_context()).records[0]["Phone"]
    assert phone == "2"


def test_public_read_only_lets_everyone_read_and_owners_edit(world: dict[str, Any]) -> None:
    c, records = world["clients"], world["records"]
    assert names(c["rep1"], "SELECT Name FROM Opportunity") == ["rep1 deal", "rep2 deal"]
    assert c["rep1"].patch(f"{API}/sobjects/Opportunity/{records['rep2-deal']}",
                           json={"NextStep": "x"}).status_code == 400
    assert c["rep2"].patch(f"{API}/sobjects/Opportunity/{records['rep2-deal']}",
                           json={"NextStep": "x"}).status_code == 204
    assert c["manager"].patch(f"{API}/sobjects/Opportunity/{records['rep2-deal']}",
                              json={"NextStep": "y"}).status_code == 204


def test_relationships_respect_sharing(world: dict[str, Any]) -> None:
    rep1 = world["clients"]["rep1"]
    deals = rep1.get(f"{API}/query", params={"q": "SELECT Name, Account.Name FROM Opportunity ORDER BY Name"}).json()
    by_name = {r["Name"]: r["Account"] for r in deals["records"]}
    assert by_name["rep1 deal"]["Name"] == "rep1 account"
    assert by_name["rep2 deal"] is None  # a parent the user may not see
    children = rep1.get(f"{API}/query", params={"q": "SELECT Name, (SELECT Name FROM Opportunities) FROM Account"})
    assert [r["Name"] for r in children.json()["records"]] == ["rep1 account"]


def test_role_changes_apply(world: dict[str, Any]) -> None:
    org, users = world["org"], world["users"]
    admin = org.admin_context()
    assert names(world["clients"]["loner"], "SELECT Name FROM Account") == []
    manager_role = org.query.execute("SELECT Id FROM UserRole WHERE DeveloperName = 'Manager'",
                                     admin).records[0]["Id"]
    org.records.update(admin, "User", [{"Id": users["loner"], "UserRoleId": manager_role}])
    assert names(world["clients"]["loner"], "SELECT Name FROM Account") == ["rep1 account", "rep2 account"]
    org.records.update(admin, "User", [{"Id": users["loner"], "UserRoleId": None}])
    assert names(world["clients"]["loner"], "SELECT Name FROM Account") == []
