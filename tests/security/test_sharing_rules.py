"""Record sharing beyond the organization-wide default: public groups, sharing rules, manual shares, and objects
controlled by their parent, on SQLite and PostgreSQL, through SOQL and REST.

Account and Project__c are Private, Opportunity is Public Read Only, Contact and Milestone__c (a master-detail
child of Project__c) are Controlled by Parent. Roles: Manager above Rep; Support apart. Users: rep1, rep2 (Rep),
support (Support), west1 (in the public group West), west2 (in Nested, itself a member of West), outsider (nothing).
Rules on Account: Industry = 'Energy' is shared Read with West; records owned by Manager and below are shared Edit
with the Support role.
"""

from __future__ import annotations

import contextlib
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from interlink.api.app import build_app
from interlink.app.setup_users import create_user
from interlink.app.sharing import apply_sharing_metadata
from interlink.testing import local_org, postgres_database

API = "/services/data/v66.0"

OBJECTS = {
    "Account": "name: Account\nsharingModel: Private\n",
    "Opportunity": "name: Opportunity\nsharingModel: Read\n",
    "Contact": "name: Contact\nsharingModel: ControlledByParent\n",
    "Project__c": """\
        name: Project__c
        label: Project
        sharingModel: Private
        fields:
          - {name: Status__c, type: string, length: 40}
        """,
    "Milestone__c": """\
        name: Milestone__c
        label: Milestone
        owner: false
        sharingModel: ControlledByParent
        fields:
          - {name: Project__c, type: masterdetail, referenceTo: Project__c, relationshipName: Project,
             childRelationshipName: Milestones}
        """,
}
GROUPS = {
    "West": "label: West Sales\nmembers:\n  users: [west1@rules.test]\n  groups: [Nested]\n",
    "Nested": "label: Nested\nmembers:\n  users: [west2@rules.test]\n",
}
RULES = """\
    rules:
      - name: Energy_To_West
        type: criteria
        criteria: Industry = 'Energy' AND Name LIKE 'rep%'
        sharedWith: {group: West}
        access: Read
      - name: Reps_To_Support
        type: owner
        ownedBy: {roleAndSubordinates: Manager}
        sharedWith: {role: Support}
        access: Edit
    """


def write(project: Path, relative: str, text: str) -> None:
    path = project / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


@pytest.fixture(scope="module")
def world(store_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp(f"rules-{store_backend}")
    project = root / "project"
    for name, text in OBJECTS.items():
        write(project, f"metadata/objects/{name}.yaml", text)
    with contextlib.ExitStack() as stack:
        url = ""
        if store_backend == "postgresql":
            try:
                url = stack.enter_context(postgres_database())
            except RuntimeError as exc:
                pytest.skip(str(exc))
        org = stack.enter_context(local_org(root / "org", store=url, project_dir=project, bulk_workers=0))
        admin = org.admin_context()
        (manager_role,) = org.records.create(admin, "UserRole", [{"Name": "Manager", "DeveloperName": "Manager"}])
        (rep_role,) = org.records.create(admin, "UserRole", [{"Name": "Rep", "DeveloperName": "Rep",
                                                              "ParentRoleId": manager_role.id}])
        (support_role,) = org.records.create(admin, "UserRole", [{"Name": "Support", "DeveloperName": "Support"}])
        users: dict[str, str] = {}
        for name, role in (("rep1", rep_role.id), ("rep2", rep_role.id), ("manager", manager_role.id),
                           ("support", support_role.id), ("west1", None), ("west2", None), ("outsider", None)):
            user_id, _ = create_user(org, f"{name}@rules.test", last_name=name.title())
            if role:
                org.records.update(admin, "User", [{"Id": user_id, "UserRoleId": role}])
            users[name] = user_id
        # Roles and users exist now: deploy the groups and rules that name them.
        for name, text in GROUPS.items():
            write(project, f"metadata/groups/{name}.yaml", text)
        write(project, "metadata/sharingRules/Account.yaml", RULES)
        apply_sharing_metadata(org, project)
        ids: dict[str, str] = {}

        def create(object_name: str, key: str, **values: Any) -> str:
            (result,) = org.records.create(admin, object_name, [values])
            assert result.success, result.errors
            ids[key] = result.id
            return str(result.id)

        for owner, industry in (("rep1", "Energy"), ("rep1", "Retail"), ("rep2", "Retail"), ("outsider", "Energy")):
            key = f"{owner} {industry.lower()}"
            account = create("Account", key, Name=key, Industry=industry, OwnerId=users[owner])
            create("Contact", f"{key} contact", LastName=f"{key} contact", AccountId=account, OwnerId=users[owner])
            create("Opportunity", f"{key} deal", Name=f"{key} deal", StageName="Prospecting",
                   CloseDate="2027-01-01", AccountId=account, OwnerId=users[owner])
        create("Contact", "rep2 private contact", LastName="rep2 private contact", OwnerId=users["rep2"])
        project_id = create("Project__c", "rep1 project", Name="rep1 project", OwnerId=users["rep1"])
        create("Milestone__c", "rep1 milestone", Name="rep1 milestone", Project__c=project_id)
        app = build_app(org)
        clients = {}
        for name in users:
            client = TestClient(app, base_url="https://testserver")
            client.headers["Authorization"] = f"Bearer {org.mint_token(f'{name}@rules.test')}"
            clients[name] = client
        yield {"org": org, "users": users, "ids": ids, "clients": clients, "project": project}


def names(client: TestClient, soql: str) -> list[str]:
    response = client.get(f"{API}/query", params={"q": soql})
    assert response.status_code == 200, response.text
    return sorted(r["Name"] for r in response.json()["records"])


def count(client: TestClient, soql: str) -> int:
    response = client.get(f"{API}/query", params={"q": soql})
    assert response.status_code == 200, response.text
    return int(response.json()["totalSize"])


def test_criteria_rule_shares_matching_records_with_a_group_read_only(world: dict[str, Any]) -> None:
    c, ids = world["clients"], world["ids"]
    assert names(c["west1"], "SELECT Name FROM Account") == ["rep1 energy"]  # not outsider's: Name LIKE 'rep%'
    assert names(c["west2"], "SELECT Name FROM Account") == ["rep1 energy"]  # a member through a nested group
    assert count(c["west1"], "SELECT COUNT() FROM Account") == 1
    assert names(c["outsider"], "SELECT Name FROM Account") == ["outsider energy"]
    assert c["west1"].get(f"{API}/sobjects/Account/{ids['rep1 energy']}").status_code == 200
    assert c["west1"].get(f"{API}/sobjects/Account/{ids['rep1 retail']}").status_code == 404
    refused = c["west1"].patch(f"{API}/sobjects/Account/{ids['rep1 energy']}", json={"Phone": "1"})
    assert refused.status_code == 400 and refused.json()[0]["errorCode"] == "INSUFFICIENT_ACCESS_OR_READONLY"


def test_owner_rule_shares_a_role_s_records_with_edit(world: dict[str, Any]) -> None:
    c, ids = world["clients"], world["ids"]
    assert names(c["support"], "SELECT Name FROM Account") == ["rep1 energy", "rep1 retail", "rep2 retail"]
    assert c["support"].patch(f"{API}/sobjects/Account/{ids['rep2 retail']}",
                              json={"Phone": "2"}).status_code == 204
    assert c["support"].get(f"{API}/sobjects/Account/{ids['outsider energy']}").status_code == 404
    assert c["support"].patch(f"{API}/sobjects/Account/{ids['outsider energy']}",
                              json={"Phone": "2"}).status_code in (400, 404)


def test_manual_shares_grant_read_or_edit_until_deleted(world: dict[str, Any]) -> None:
    c, ids, users = world["clients"], world["ids"], world["users"]
    account, deal = ids["rep1 retail"], ids["rep1 retail deal"]
    assert c["outsider"].get(f"{API}/sobjects/Account/{account}").status_code == 404
    created = c["rep1"].post(f"{API}/sobjects/AccountShare", json={
        "AccountId": account, "UserOrGroupId": users["outsider"], "AccountAccessLevel": "Read",
        "OpportunityAccessLevel": "Edit"})
    assert created.status_code == 201, created.text
    share_id = created.json()["id"]
    assert share_id.startswith("00r")
    row = c["rep1"].get(f"{API}/sobjects/AccountShare/{share_id}").json()
    assert row["RowCause"] == "Manual" and row["AccountAccessLevel"] == "Read"
    assert c["outsider"].get(f"{API}/sobjects/Account/{account}").status_code == 200
    assert names(c["outsider"], "SELECT Name FROM Account") == ["outsider energy", "rep1 retail"]
    assert c["outsider"].patch(f"{API}/sobjects/Account/{account}", json={"Phone": "3"}).status_code == 400
    # OpportunityAccessLevel Edit: the account's opportunities become editable too (Opportunity is Read only).
    assert c["outsider"].patch(f"{API}/sobjects/Opportunity/{deal}", json={"NextStep": "x"}).status_code == 204
    assert c["rep1"].patch(f"{API}/sobjects/AccountShare/{share_id}",
                           json={"AccountAccessLevel": "Edit"}).status_code == 204
    assert c["outsider"].patch(f"{API}/sobjects/Account/{account}", json={"Phone": "3"}).status_code == 204
    # Shares are seen with their record, and only the record's owner (or above, or Modify All) may share it.
    assert count(c["outsider"], "SELECT COUNT() FROM AccountShare") == 1
    assert count(c["west1"], "SELECT COUNT() FROM AccountShare") == 0
    refused = c["rep2"].post(f"{API}/sobjects/AccountShare", json={
        "AccountId": account, "UserOrGroupId": users["rep2"], "AccountAccessLevel": "Edit"})
    assert refused.status_code == 400
    assert refused.json()[0]["errorCode"] in ("INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY",
                                              "INVALID_CROSS_REFERENCE_KEY")
    assert c["rep1"].delete(f"{API}/sobjects/AccountShare/{share_id}").status_code == 204
    assert c["outsider"].get(f"{API}/sobjects/Account/{account}").status_code == 404
    assert c["outsider"].patch(f"{API}/sobjects/Opportunity/{deal}", json={"NextStep": "y"}).status_code == 400


def test_manual_share_with_a_group_and_on_a_custom_object(world: dict[str, Any]) -> None:
    c, ids, org = world["clients"], world["ids"], world["org"]
    west = org.query.execute("SELECT Id FROM Group WHERE DeveloperName = 'West' AND Type = 'Regular'",
                             org.admin_context()).records[0]["Id"]
    project = ids["rep1 project"]
    assert names(c["west2"], "SELECT Name FROM Project__c") == []
    assert names(c["west2"], "SELECT Name FROM Milestone__c") == []
    created = c["rep1"].post(f"{API}/sobjects/Project__Share", json={
        "ParentId": project, "UserOrGroupId": west, "AccessLevel": "Edit"})
    assert created.status_code == 201, created.text
    assert names(c["west2"], "SELECT Name FROM Project__c") == ["rep1 project"]
    assert names(c["west2"], "SELECT Name FROM Milestone__c") == ["rep1 milestone"]  # controlled by its project
    assert c["west2"].patch(f"{API}/sobjects/Project__c/{project}", json={"Status__c": "Open"}).status_code == 204
    assert c["rep1"].delete(f"{API}/sobjects/Project__Share/{created.json()['id']}").status_code == 204
    assert names(c["west2"], "SELECT Name FROM Project__c") == []


def test_controlled_by_parent_follows_the_parent_record(world: dict[str, Any]) -> None:
    c, ids = world["clients"], world["ids"]
    assert names(c["rep1"], "SELECT Name FROM Contact") == ["rep1 energy contact", "rep1 retail contact"]
    assert names(c["rep2"], "SELECT Name FROM Contact") == ["rep2 private contact", "rep2 retail contact"]
    assert names(c["west1"], "SELECT Name FROM Contact") == ["rep1 energy contact"]  # through the rule
    assert count(c["rep1"], "SELECT COUNT() FROM Contact") == 2
    children = c["rep1"].get(f"{API}/query", params={"q": "SELECT Name, (SELECT Name FROM Contacts) FROM Account"})
    assert sorted(len(r["Contacts"]["records"]) for r in children.json()["records"]) == [1, 1]
    assert c["rep1"].get(f"{API}/sobjects/Contact/{ids['rep2 retail contact']}").status_code == 404
    assert c["rep1"].get(f"{API}/sobjects/Contact/{ids['rep1 retail contact']}").status_code == 200
    assert c["rep1"].get(f"{API}/sobjects/Milestone__c/{ids['rep1 milestone']}").status_code == 200
    assert c["rep2"].get(f"{API}/sobjects/Milestone__c/{ids['rep1 milestone']}").status_code == 404
    # Edit follows the parent's edit access: a Read rule does not let west1 change the contact; Edit lets support.
    contact = ids["rep1 energy contact"]
    assert c["west1"].patch(f"{API}/sobjects/Contact/{contact}", json={"Title": "x"}).status_code == 400
    assert c["support"].patch(f"{API}/sobjects/Contact/{contact}", json={"Title": "y"}).status_code == 204
    assert c["rep2"].delete(f"{API}/sobjects/Milestone__c/{ids['rep1 milestone']}").status_code in (400, 404)


def test_redeploying_without_a_rule_or_a_member_stops_granting(world: dict[str, Any]) -> None:
    c, org, project = world["clients"], world["org"], world["project"]
    assert names(c["support"], "SELECT Name FROM Account") == ["rep1 energy", "rep1 retail", "rep2 retail"]
    write(project, "metadata/sharingRules/Account.yaml", RULES.split("      - name: Reps_To_Support")[0])
    write(project, "metadata/groups/Nested.yaml", "label: Nested\nmembers: {}\n")
    try:
        apply_sharing_metadata(org, project)
        assert names(c["support"], "SELECT Name FROM Account") == []
        assert names(c["west2"], "SELECT Name FROM Account") == []
        assert names(c["west1"], "SELECT Name FROM Account") == ["rep1 energy"]  # the other rule stays
    finally:
        write(project, "metadata/sharingRules/Account.yaml", RULES)
        write(project, "metadata/groups/Nested.yaml", GROUPS["Nested"])
        apply_sharing_metadata(org, project)
    assert names(c["west2"], "SELECT Name FROM Account") == ["rep1 energy"]


def test_bad_rules_are_refused_at_deploy(world: dict[str, Any], tmp_path: Path) -> None:
    from interlink.errors import MetadataError

    org = world["org"]
    for text, message in (
        ("rules: [{name: R, type: criteria, criteria: 'Nope__c = 1', sharedWith: {group: West}}]", "Nope__c"),
        ("rules: [{name: R, type: owner, ownedBy: {role: Nobody}, sharedWith: {group: West}}]", "no role Nobody"),
        ("rules: [{name: R, type: criteria, criteria: \"Name = 'x'\", sharedWith: {group: West}, access: All}]",
         "Read or Edit"),
    ):
        write(tmp_path, "metadata/sharingRules/Account.yaml", text)
        with pytest.raises(MetadataError, match=message):
            apply_sharing_metadata(org, tmp_path)
    assert names(world["clients"]["west1"], "SELECT Name FROM Account") == ["rep1 energy"]  # nothing changed
