"""Record sharing, the remaining pieces: Account rules' child access levels (accountSettings), public groups that do
not include bosses, custom objects whose hierarchy does not grant access, groups every user may read, the custom
share objects' 02c key prefix, and sharing rules and groups from SFDX source.

Account, Opportunity, Case and Contact are Private. Project__c is Private; Secret__c is Private with "Grant Access
Using Hierarchies" off. Roles: Manager above Rep. Users: rep (Rep), manager (Manager), west (in the public group
West), support (in Support), loner (no role, owns most records), minimal (the minimum-access API profile).
Groups: Bossless (rep, doesIncludeBosses false) and Bossy (rep). Rules on Account: Energy accounts are shared Read
with West, with Edit on their opportunities, Read on their cases and nothing on their contacts; accounts owned by
the Rep role are shared Read with Support, with Read on their contacts. On Secret__c: names starting 'shared' are
shared Read with the Rep role.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from interlink.api.app import build_app
from interlink.app.permissions import assign
from interlink.app.setup_users import create_user
from interlink.app.sharing import apply_sharing_metadata
from interlink.errors import MetadataError
from interlink.metadata.model import FieldDef, FieldType, ObjectDef, Schema
from interlink.metadata.spec import build_object
from interlink.soql.criteria import criteria_condition
from interlink.store.migrate import plan_changes
from interlink.testing import backend_org

API = "/services/data/v66.0"

OBJECTS = {
    "Account": "name: Account\nsharingModel: Private\n",
    "Opportunity": "name: Opportunity\nsharingModel: Private\n",
    "Case": "name: Case\nsharingModel: Private\n",
    "Contact": "name: Contact\nsharingModel: Private\n",
    "Project__c": "name: Project__c\nlabel: Project\nsharingModel: Private\n",
    "Secret__c": "name: Secret__c\nlabel: Secret\nsharingModel: Private\ngrantAccessUsingHierarchies: false\n",
}
GROUPS = {
    "West": "label: West\nmembers:\n  users: [west@more.test]\n",
    "Support": "label: Support\nmembers:\n  users: [support@more.test]\n",
    "Bossless": "label: Bossless\ndoesIncludeBosses: false\nmembers:\n  users: [rep@more.test]\n",
    "Bossy": "label: Bossy\nmembers:\n  users: [rep@more.test]\n",
}
RULES = {
    "Account": """\
        rules:
          - name: Energy_To_West
            type: criteria
            criteria: Industry = 'Energy'
            sharedWith: {group: West}
            access: Read
            accountSettings: {opportunityAccessLevel: Edit, caseAccessLevel: Read, contactAccessLevel: None}
          - name: Reps_To_Support
            type: owner
            ownedBy: {role: Rep}
            sharedWith: {group: Support}
            access: Read
            accountSettings: {contactAccessLevel: Read}
        """,
    "Secret__c": """\
        rules:
          - name: Shared_To_Reps
            type: criteria
            criteria: Name LIKE 'shared%'
            sharedWith: {role: Rep}
            access: Read
        """,
}


def write(project: Path, relative: str, text: str) -> None:
    path = project / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


@pytest.fixture(scope="module")
def world(store_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp(f"sharing-more-{store_backend}")
    project = root / "project"
    objects = {name: textwrap.dedent(text) for name, text in OBJECTS.items()}
    with backend_org(root, store_backend, objects, unavailable=pytest.skip, bulk_workers=0) as org:
        admin = org.admin_context()
        (manager_role,) = org.records.create(admin, "UserRole", [{"Name": "Manager", "DeveloperName": "Manager"}])
        (rep_role,) = org.records.create(admin, "UserRole", [{"Name": "Rep", "DeveloperName": "Rep",
                                                              "ParentRoleId": manager_role.id}])
        users: dict[str, str] = {}
        for name, role in (("rep", rep_role.id), ("manager", manager_role.id), ("west", None), ("support", None),
                           ("loner", None), ("minimal", None)):
            user_id, _ = create_user(org, f"{name}@more.test", last_name=name.title())
            if role:
                org.records.update(admin, "User", [{"Id": user_id, "UserRoleId": role}])
            users[name] = user_id
        assign(org, users["minimal"], profile="Minimum Access - API Only Integrations")
        for name, text in GROUPS.items():
            write(project, f"metadata/groups/{name}.yaml", text)
        for name, text in RULES.items():
            write(project, f"metadata/sharingRules/{name}.yaml", text)
        apply_sharing_metadata(org, project)
        ids: dict[str, str] = {}

        def create(object_name: str, key: str, **values: Any) -> str:
            (result,) = org.records.create(admin, object_name, [values])
            assert result.success, result.errors
            ids[key] = str(result.id)
            return str(result.id)

        for owner, industry in (("rep", "Energy"), ("loner", "Energy"), ("loner", "Retail")):
            key = f"{owner} {industry.lower()}"
            account = create("Account", key, Name=key, Industry=industry, OwnerId=users[owner])
            create("Opportunity", f"{key} deal", Name=f"{key} deal", StageName="Prospecting",
                   CloseDate="2027-01-01", AccountId=account, OwnerId=users[owner])
            create("Case", f"{key} case", Subject=f"{key} case", AccountId=account, OwnerId=users[owner])
            create("Contact", f"{key} contact", LastName=f"{key} contact", AccountId=account, OwnerId=users[owner])
        for owner, name in (("rep", "rep secret"), ("loner", "shared secret"), ("loner", "loner secret"),
                            ("manager", "manager secret")):
            create("Secret__c", name, Name=name, OwnerId=users[owner])
        for owner, name in (("rep", "rep project"), ("loner", "loner project")):
            create("Project__c", name, Name=name, OwnerId=users[owner])
        app = build_app(org)
        clients = {}
        for name in users:
            client = TestClient(app, base_url="https://testserver")
            client.headers["Authorization"] = f"Bearer {org.mint_token(f'{name}@more.test')}"
            clients[name] = client
        yield {"org": org, "users": users, "ids": ids, "clients": clients, "project": project}


def values(client: TestClient, soql: str, field: str = "Name") -> list[str]:
    response = client.get(f"{API}/query", params={"q": soql})
    assert response.status_code == 200, response.text
    return sorted(str(r[field]) for r in response.json()["records"])


def group_id(client: TestClient, name: str) -> str:
    response = client.get(f"{API}/query", params={"q": f"SELECT Id FROM Group WHERE DeveloperName = '{name}'"})
    assert response.status_code == 200, response.text
    return str(response.json()["records"][0]["Id"])


# -- 1. Account rules' child access levels -----------------------------------------------------------------------


def test_account_criteria_rule_shares_the_accounts_children_at_their_levels(world: dict[str, Any]) -> None:
    c, ids = world["clients"], world["ids"]
    assert values(c["west"], "SELECT Name FROM Account") == ["loner energy", "rep energy"]
    # opportunityAccessLevel Edit: seen and editable; caseAccessLevel Read: seen, not editable; contact None.
    assert values(c["west"], "SELECT Name FROM Opportunity") == ["loner energy deal", "rep energy deal"]
    assert values(c["west"], "SELECT Subject FROM Case", "Subject") == ["loner energy case", "rep energy case"]
    assert values(c["west"], "SELECT Name FROM Contact") == []
    assert c["west"].patch(f"{API}/sobjects/Opportunity/{ids['loner energy deal']}",
                           json={"NextStep": "call"}).status_code == 204
    refused = c["west"].patch(f"{API}/sobjects/Case/{ids['loner energy case']}", json={"Subject": "x"})
    assert refused.status_code == 400 and refused.json()[0]["errorCode"] == "INSUFFICIENT_ACCESS_OR_READONLY"
    assert c["west"].get(f"{API}/sobjects/Opportunity/{ids['loner retail deal']}").status_code == 404
    # The same condition in a child subquery and a semi-join.
    nested = c["west"].get(f"{API}/query", params={
        "q": "SELECT Name, (SELECT Name FROM Opportunities) FROM Account ORDER BY Name"}).json()["records"]
    assert [len(r["Opportunities"]["records"]) for r in nested] == [1, 1]
    assert values(c["west"], "SELECT Name FROM Opportunity WHERE AccountId IN (SELECT Id FROM Account)") == [
        "loner energy deal", "rep energy deal"]


def test_account_owner_rule_shares_contacts_only_where_it_says(world: dict[str, Any]) -> None:
    c, ids = world["clients"], world["ids"]
    assert values(c["support"], "SELECT Name FROM Account") == ["rep energy"]
    assert values(c["support"], "SELECT Name FROM Contact") == ["rep energy contact"]
    assert values(c["support"], "SELECT Name FROM Opportunity") == []  # no opportunityAccessLevel: None
    assert c["support"].patch(f"{API}/sobjects/Contact/{ids['rep energy contact']}",
                              json={"Title": "x"}).status_code == 400
    assert values(c["loner"], "SELECT Name FROM Opportunity") == ["loner energy deal", "loner retail deal"]


def test_account_settings_are_checked_at_deploy(world: dict[str, Any], tmp_path: Path) -> None:
    org = world["org"]
    for relative, text, message in (
        ("metadata/sharingRules/Project__c.yaml",
         "rules: [{name: R, type: criteria, criteria: \"Name = 'x'\", sharedWith: {group: West}, "
         "accountSettings: {opportunityAccessLevel: Read}}]", "only Account rules"),
        ("metadata/sharingRules/Account.yaml",
         "rules: [{name: R, type: criteria, criteria: \"Name = 'x'\", sharedWith: {group: West}, "
         "accountSettings: {caseAccessLevel: All}}]", "Read, Edit or None"),
        ("metadata/sharingRules/Account.yaml",
         "rules: [{name: R, type: criteria, criteria: \"Name = 'x'\", sharedWith: {group: West}, "
         "accountSettings: {leadAccessLevel: Read}}]", "opportunityAccessLevel"),
        ("metadata/groups/Odd.yaml", "label: Odd\ndoesIncludeBosses: 'no'\n", "true or false"),
        ("metadata/sharingRules/Account.yaml",
         "rules: [{name: R, type: criteria, criteria: \"Name = 'x'\", sharedWith: {group: West}, "
         "criteriaItems: [{field: Name, operation: equals, value: x}]}]", "not both"),
        ("metadata/sharingRules/Account.yaml",
         "rules: [{name: R, type: criteria, sharedWith: {group: West}, criteriaItems: [Name]}]", "a list of"),
        ("metadata/sharingRules/Account.yaml",
         "rules: [{name: R, type: criteria, sharedWith: {group: West}, "
         "criteriaItems: [{field: Nope__c, operation: equals, value: x}]}]", "Nope__c"),
    ):
        write(tmp_path / relative.replace("/", "_"), relative, text)
        with pytest.raises(MetadataError, match=message):
            apply_sharing_metadata(org, tmp_path / relative.replace("/", "_"))
    assert values(world["clients"]["west"], "SELECT Name FROM Account") == ["loner energy", "rep energy"]


# -- 2. DoesIncludeBosses and Grant Access Using Hierarchies ------------------------------------------------------


def test_a_group_without_bosses_shares_with_its_members_only(world: dict[str, Any]) -> None:
    c, ids = world["clients"], world["ids"]
    project = ids["loner project"]
    bossless, bossy = group_id(c["loner"], "Bossless"), group_id(c["loner"], "Bossy")
    assert values(c["manager"], "SELECT Name FROM Project__c") == ["rep project"]  # the hierarchy: rep's
    created = c["loner"].post(f"{API}/sobjects/Project__Share", json={
        "ParentId": project, "UserOrGroupId": bossless, "AccessLevel": "Read"})
    assert created.status_code == 201, created.text
    assert values(c["rep"], "SELECT Name FROM Project__c") == ["loner project", "rep project"]
    assert values(c["manager"], "SELECT Name FROM Project__c") == ["rep project"]  # not through rep's group
    assert c["manager"].get(f"{API}/sobjects/Project__c/{project}").status_code == 404
    # The same share with a group that includes bosses reaches the manager above its member.
    second = c["loner"].post(f"{API}/sobjects/Project__Share", json={
        "ParentId": project, "UserOrGroupId": bossy, "AccessLevel": "Read"})
    assert second.status_code == 201, second.text
    assert values(c["manager"], "SELECT Name FROM Project__c") == ["loner project", "rep project"]
    for share in (created, second):
        assert c["loner"].delete(f"{API}/sobjects/Project__Share/{share.json()['id']}").status_code == 204
    assert values(c["rep"], "SELECT Name FROM Project__c") == ["rep project"]


def test_an_object_without_hierarchy_access_keeps_managers_to_their_own_principals(world: dict[str, Any]) -> None:
    c, ids = world["clients"], world["ids"]
    # Ownership: the manager does not see (or edit) the rep's secret; each sees their own.
    assert values(c["rep"], "SELECT Name FROM Secret__c") == ["rep secret", "shared secret"]  # + the Rep rule
    assert values(c["manager"], "SELECT Name FROM Secret__c") == ["manager secret"]  # not rep's, nor the rule
    assert c["manager"].get(f"{API}/sobjects/Secret__c/{ids['rep secret']}").status_code == 404
    assert c["manager"].patch(f"{API}/sobjects/Secret__c/{ids['rep secret']}",
                              json={"Name": "x"}).status_code in (400, 404)
    # Nor may the manager share it: sharing needs the record's owner, or someone above them where that counts.
    refused = c["manager"].post(f"{API}/sobjects/Secret__Share", json={
        "ParentId": ids["rep secret"], "UserOrGroupId": world["users"]["loner"], "AccessLevel": "Read"})
    assert refused.status_code == 400
    assert refused.json()[0]["errorCode"] == "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY"
    # Manual shares to the rep, or to a group that includes bosses, reach the rep only.
    for principal in (world["users"]["rep"], group_id(c["loner"], "Bossy")):
        created = c["loner"].post(f"{API}/sobjects/Secret__Share", json={
            "ParentId": ids["loner secret"], "UserOrGroupId": principal, "AccessLevel": "Edit"})
        assert created.status_code == 201, created.text
        assert values(c["rep"], "SELECT Name FROM Secret__c") == ["loner secret", "rep secret", "shared secret"]
        assert values(c["manager"], "SELECT Name FROM Secret__c") == ["manager secret"]
        assert c["rep"].patch(f"{API}/sobjects/Secret__c/{ids['loner secret']}",
                              json={"Name": "loner secret"}).status_code == 204
        assert c["loner"].delete(f"{API}/sobjects/Secret__Share/{created.json()['id']}").status_code == 204


def test_only_custom_objects_can_switch_the_hierarchy_off_and_a_redeploy_applies_it() -> None:
    with pytest.raises(MetadataError, match="standard objects always grant"):
        build_object({"name": "Account", "standard": True, "keyPrefix": "001", "fields": [],
                      "grantAccessUsingHierarchies": False}, "Account.yaml")
    spec = {"name": "Thing__c", "keyPrefix": "a01", "fields": [], "sharingModel": "Private"}
    before = build_object(spec, "Thing__c.yaml")
    after = build_object({**spec, "grantAccessUsingHierarchies": False}, "Thing__c.yaml")
    assert before.grant_access_using_hierarchies and not after.grant_access_using_hierarchies
    plan = plan_changes(Schema([before]), Schema([after]))
    assert [c.kind for c in plan.changes] == ["update_object"]  # kept, so the next start has it
    assert not plan_changes(Schema([after]), Schema([after])).changes


# -- 3. Groups readable by everyone ------------------------------------------------------------------------------


def test_every_user_may_read_groups_and_members_but_not_change_them(world: dict[str, Any]) -> None:
    c = world["clients"]
    for name in ("loner", "minimal"):
        found = values(c[name], "SELECT DeveloperName FROM Group WHERE Type = 'Regular'", "DeveloperName")
        assert {"Bossless", "Bossy", "Support", "West"} <= set(found)
        members = values(c[name], "SELECT UserOrGroupId FROM GroupMember WHERE Group.DeveloperName = 'West'",
                         "UserOrGroupId")
        assert members == [world["users"]["west"]]
        refused = c[name].post(f"{API}/sobjects/Group", json={"Name": "Mine", "DeveloperName": "Mine"})
        assert refused.status_code in (400, 403), refused.text


# -- 4. The 02c key prefix of custom share objects --------------------------------------------------------------


def test_custom_share_objects_share_the_02c_prefix_and_ids_still_find_their_object(world: dict[str, Any]) -> None:
    c, ids, org = world["clients"], world["ids"], world["org"]
    for name in ("Project__Share", "Secret__Share"):
        assert c["loner"].get(f"{API}/sobjects/{name}/describe").json()["keyPrefix"] == "02c"
    project_share = c["loner"].post(f"{API}/sobjects/Project__Share", json={
        "ParentId": ids["loner project"], "UserOrGroupId": world["users"]["west"], "AccessLevel": "Read"})
    secret_share = c["loner"].post(f"{API}/sobjects/Secret__Share", json={
        "ParentId": ids["loner secret"], "UserOrGroupId": world["users"]["west"], "AccessLevel": "Read"})
    project_id, secret_id = project_share.json()["id"], secret_share.json()["id"]
    assert project_id.startswith("02c") and secret_id.startswith("02c")
    assert c["loner"].get(f"{API}/sobjects/Project__Share/{project_id}").json()["ParentId"] == ids["loner project"]
    assert c["loner"].get(f"{API}/sobjects/Secret__Share/{project_id}").status_code == 404
    assert org.store.object_for_id(project_id).name == "Project__Share"  # type: ignore[union-attr]
    assert org.store.object_for_id(secret_id).name == "Secret__Share"  # type: ignore[union-attr]
    # A delete by ids alone (sObject Collections) finds each id's object.
    deleted = c["loner"].delete(f"{API}/composite/sobjects", params={"ids": f"{project_id},{secret_id}"})
    assert deleted.status_code == 200 and all(r["success"] for r in deleted.json()), deleted.text
    assert values(c["west"], "SELECT Name FROM Project__c") == []


# -- SFDX source ------------------------------------------------------------------------------------------------


ACCOUNT = ObjectDef("Account", "Account", "Accounts", "001", (
    FieldDef("Name", FieldType.STRING, "Name"), FieldDef("Industry", FieldType.PICKLIST, "Industry"),
    FieldDef("AnnualRevenue", FieldType.CURRENCY, "Annual Revenue"),
    FieldDef("IsActive__c", FieldType.BOOLEAN, "Active"), FieldDef("Since__c", FieldType.DATE, "Since"),
    FieldDef("Tags__c", FieldType.MULTIPICKLIST, "Tags")))


@pytest.mark.parametrize(("operation", "field", "value", "expected"), [
    ("equals", "Industry", "Energy", "Industry = 'Energy'"),
    ("equals", "Industry", "Energy,Retail", "Industry IN ('Energy', 'Retail')"),
    ("equals", "Industry", "", "Industry = null"),
    ("notEqual", "Industry", "O'Brien", "Industry != 'O\\'Brien'"),
    ("notEqual", "Industry", "A,B", "Industry NOT IN ('A', 'B')"),
    ("lessThan", "AnnualRevenue", "100", "AnnualRevenue < 100"),
    ("greaterThan", "AnnualRevenue", "1000.5", "AnnualRevenue > 1000.5"),
    ("lessOrEqual", "Since__c", "1/31/2024", "Since__c <= 2024-01-31"),
    ("greaterOrEqual", "Since__c", "2024-01-31", "Since__c >= 2024-01-31"),
    ("equals", "IsActive__c", "True", "IsActive__c = true"),
    ("contains", "Name", "50%", "Name LIKE '%50\\%%'"),
    ("notContain", "Name", "x", "(NOT Name LIKE '%x%')"),
    ("startsWith", "Account.Name", "Big", "Name LIKE 'Big%'"),
    ("includes", "Tags__c", "a,b", "Tags__c INCLUDES ('a', 'b')"),
    ("excludes", "Tags__c", "a", "Tags__c EXCLUDES ('a')"),
])
def test_sfdx_criteria_items_become_soql(operation: str, field: str, value: str, expected: str) -> None:
    assert criteria_condition([(field, operation, value)], None, ACCOUNT, "Account", "f") == expected


def test_sfdx_boolean_filter_and_bad_items() -> None:
    items = [("Industry", "equals", "Energy"), ("AnnualRevenue", "greaterThan", "10"), ("Name", "startsWith", "B")]
    assert criteria_condition(items, "1 AND (2 OR 3)", ACCOUNT, "Account", "f") == (
        "(Industry = 'Energy') AND ((AnnualRevenue > 10) OR (Name LIKE 'B%'))")
    assert criteria_condition(items[:2], None, ACCOUNT, "Account", "f") == (
        "(Industry = 'Energy') AND (AnnualRevenue > 10)")
    for filter_text, message in (("1 AND 4", "names item 4"), ("1 AND (2", "unbalanced"),
                                 ("1; DROP", "cannot read")):
        with pytest.raises(MetadataError, match=message):
            criteria_condition(items, filter_text, ACCOUNT, "Account", "f")
    for item, message in ((("AnnualRevenue", "equals", "lots"), "a number"), (("Name", "within", "x"), "within"),
                          (("Name) OR (Id", "equals", "x"), "a field of Account")):
        with pytest.raises(MetadataError, match=message):
            criteria_condition([item], None, ACCOUNT, "Account", "f")


SFDX_GROUP = """\
    <?xml version="1.0" encoding="UTF-8"?>
    <Group xmlns="http://soap.sforce.com/2006/04/metadata">
        <doesIncludeBosses>false</doesIncludeBosses>
        <name>Energy Analysts</name>
    </Group>
    """
SFDX_RULES = """\
    <?xml version="1.0" encoding="UTF-8"?>
    <SharingRules xmlns="http://soap.sforce.com/2006/04/metadata">
        <sharingCriteriaRules>
            <fullName>Big_Energy</fullName>
            <accessLevel>Read</accessLevel>
            <accountSettings>
                <caseAccessLevel>None</caseAccessLevel>
                <contactAccessLevel>None</contactAccessLevel>
                <opportunityAccessLevel>Read</opportunityAccessLevel>
            </accountSettings>
            <label>Big Energy</label>
            <sharedTo><group>Analysts</group></sharedTo>
            <booleanFilter>1 AND (2 OR 3)</booleanFilter>
            <criteriaItems><field>Industry</field><operation>equals</operation><value>Energy,Utilities</value>
            </criteriaItems>
            <criteriaItems><field>AnnualRevenue</field><operation>greaterThan</operation><value>1000</value>
            </criteriaItems>
            <criteriaItems><field>Name</field><operation>startsWith</operation><value>Big</value></criteriaItems>
        </sharingCriteriaRules>
        <sharingOwnerRules>
            <fullName>Reps_To_Analysts</fullName>
            <accessLevel>Edit</accessLevel>
            <label>Reps to analysts</label>
            <sharedTo><group>Analysts</group></sharedTo>
            <sharedFrom><roleAndSubordinatesInternal>Manager</roleAndSubordinatesInternal></sharedFrom>
        </sharingOwnerRules>
    </SharingRules>
    """


def test_sfdx_groups_and_sharing_rules_deploy_through_the_same_path(world: dict[str, Any], tmp_path: Path) -> None:
    org, c, users = world["org"], world["clients"], world["users"]
    project = tmp_path / "sfdx"
    write(project, "sfdx-project.json", '{"packageDirectories": [{"path": "force-app", "default": true}]}')
    write(project, "force-app/main/default/groups/Analysts.group-meta.xml", SFDX_GROUP)
    write(project, "force-app/main/default/sharingRules/Account.sharingRules-meta.xml", SFDX_RULES)
    write(project, "force-app/main/default/sharingRules/Lead.sharingRules-meta.xml",
          '<SharingRules xmlns="http://soap.sforce.com/2006/04/metadata"/>')  # empty, as retrieved
    admin = org.admin_context()
    apply_sharing_metadata(org, project)
    try:
        analysts = group_id(c["loner"], "Analysts")
        group = org.query.execute(f"SELECT Name, DoesIncludeBosses FROM Group WHERE Id = '{analysts}'",
                                  admin).records[0]
        assert (group["Name"], group["DoesIncludeBosses"]) == ("Energy Analysts", False)
        (member,) = org.records.create(admin, "GroupMember", [{"GroupId": analysts, "UserOrGroupId": users["west"]}])
        assert member.success, member.errors
        big = org.records.create(admin, "Account", [
            {"Name": "Big energy", "Industry": "Utilities", "OwnerId": users["loner"]},
            {"Name": "Small energy", "Industry": "Energy", "AnnualRevenue": 10, "OwnerId": users["loner"]}])
        (deal,) = org.records.create(admin, "Opportunity", [{
            "Name": "big deal", "StageName": "Prospecting", "CloseDate": "2027-01-01", "AccountId": big[0].id,
            "OwnerId": users["loner"]}])
        # The project's rules are now the SFDX ones: the criteria rule (Big energy) and the owner rule (the rep's).
        assert values(c["west"], "SELECT Name FROM Account") == ["Big energy", "rep energy"]
        assert "big deal" in values(c["west"], "SELECT Name FROM Opportunity")
        assert c["west"].patch(f"{API}/sobjects/Account/{world['ids']['rep energy']}",
                               json={"Phone": "1"}).status_code == 204  # Edit, from the owner rule
        apply_sharing_metadata(org, project)  # a redeploy keeps the SFDX group's members (it declares none)
        assert values(c["west"], "SELECT Name FROM Account") == ["Big energy", "rep energy"]
        org.records.delete(admin, [str(deal.id), *(str(r.id) for r in big)])
    finally:
        apply_sharing_metadata(org, world["project"])
    assert values(c["west"], "SELECT Name FROM Account") == ["loner energy", "rep energy"]


def test_sfdx_objects_take_the_hierarchy_switch_from_yaml_and_share_objects_get_02c(tmp_path: Path) -> None:
    from interlink.metadata.loader import load_project

    write(tmp_path, "sfdx-project.json", '{"packageDirectories": [{"path": "force-app"}]}')
    for name in ("Vault__c", "Ledger__c"):
        write(tmp_path, f"force-app/main/default/objects/{name}/{name}.object-meta.xml", f"""\
            <CustomObject xmlns="http://soap.sforce.com/2006/04/metadata">
                <label>{name[:-3]}</label><pluralLabel>{name[:-3]}s</pluralLabel>
                <nameField><label>Name</label><type>Text</type></nameField>
                <sharingModel>Private</sharingModel>
            </CustomObject>
            """)
    write(tmp_path, "metadata/objects/Vault__c.yaml", "name: Vault__c\ngrantAccessUsingHierarchies: false\n")
    schema = load_project(tmp_path).schema
    vault, ledger = schema.object("Vault__c"), schema.object("Ledger__c")
    assert vault is not None and ledger is not None
    assert vault.label == "Vault" and not vault.grant_access_using_hierarchies
    assert ledger.grant_access_using_hierarchies
    assert {o.name for o in schema.objects_with_prefix("02c")} == {"Vault__Share", "Ledger__Share"}
    write(tmp_path, "metadata/objects/Account.yaml", "name: Account\ngrantAccessUsingHierarchies: false\n")
    with pytest.raises(MetadataError, match="standard objects always grant"):
        load_project(tmp_path)
