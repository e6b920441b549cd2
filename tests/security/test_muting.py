"""Muting permission sets in permission set groups, and permissions deployed from SFDX source, enforced end to end.

The project has an ``sfdx-project.json``: Invoice__c comes from SFDX source, Account's fields from YAML.
- YAML group Sales_Ops = set Editor (Account read/create/edit/delete, FLS edit Public__c, read Secret__c), muted
  inline: Account delete, Secret__c read.
- SFDX group Billing = set Invoice_Editor (Invoice__c read/create/edit, FLS edit Amount__c), muted by the SFDX
  muting permission set Billing_Muted: Invoice__c create, Amount__c edit.
- SFDX set Invoice_Reader: Invoice__c read, FLS read Amount__c.
Users, all on the *Minimum Access - API Only Integrations* profile: ``muted`` (Sales_Ops), ``kept`` (Sales_Ops and
the set Secret_Reader directly: Secret__c read), ``invoices`` (Invoice_Reader), ``billing`` (Billing).
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from interlink.app.permissions import apply_permission_metadata, assign
from interlink.app.setup_users import create_user
from interlink.errors import MetadataError
from interlink.testing import local_org, rest_client

API = "/services/data/v66.0"
NS = 'xmlns="http://soap.sforce.com/2006/04/metadata"'
SOURCE = "force-app/main/default"

PROJECT = {
    "sfdx-project.json": json.dumps({"packageDirectories": [{"path": "force-app", "default": True}]}),
    "metadata/objects/Account.yaml": """\
        name: Account
        fields:
          - {name: Secret__c, type: text, length: 40}
          - {name: Public__c, type: text, length: 40}
        """,
    "metadata/permissionSets/Editor.yaml": """\
        userPermissions: [ApiEnabled]
        objectPermissions:
          Account: read, create, edit, delete
        fieldPermissions:
          Account.Public__c: edit
          Account.Secret__c: read
        """,
    "metadata/permissionSets/Secret_Reader.yaml": """\
        objectPermissions:
          Account: read
        fieldPermissions:
          Account.Secret__c: read
        """,
    "metadata/permissionSetGroups/Sales_Ops.yaml": """\
        label: Sales Ops
        permissionSets: [Editor]
        mutingPermissionSet:
          objectPermissions:
            Account: delete
          fieldPermissions:
            Account.Secret__c: read
        """,
    f"{SOURCE}/objects/Invoice__c/Invoice__c.object-meta.xml": f"""\
        <?xml version="1.0" encoding="UTF-8"?>
        <CustomObject {NS}>
            <label>Invoice</label>
            <nameField><label>Invoice Name</label><type>Text</type></nameField>
            <pluralLabel>Invoices</pluralLabel>
            <sharingModel>ReadWrite</sharingModel>
        </CustomObject>
        """,
    f"{SOURCE}/objects/Invoice__c/fields/Amount__c.field-meta.xml": f"""\
        <?xml version="1.0" encoding="UTF-8"?>
        <CustomField {NS}>
            <fullName>Amount__c</fullName><label>Amount</label><precision>10</precision><scale>2</scale>
            <type>Number</type>
        </CustomField>
        """,
    f"{SOURCE}/permissionsets/Invoice_Reader.permissionset-meta.xml": f"""\
        <?xml version="1.0" encoding="UTF-8"?>
        <PermissionSet {NS}>
            <label>Invoice Reader</label>
            <hasActivationRequired>false</hasActivationRequired>
            <fieldPermissions><editable>false</editable><field>Invoice__c.Amount__c</field>
                <readable>true</readable></fieldPermissions>
            <objectPermissions><allowCreate>false</allowCreate><allowDelete>false</allowDelete>
                <allowEdit>false</allowEdit><allowRead>true</allowRead><modifyAllRecords>false</modifyAllRecords>
                <object>Invoice__c</object><viewAllRecords>false</viewAllRecords></objectPermissions>
            <userPermissions><enabled>true</enabled><name>ApiEnabled</name></userPermissions>
        </PermissionSet>
        """,
    f"{SOURCE}/permissionsets/Invoice_Editor.permissionset-meta.xml": f"""\
        <?xml version="1.0" encoding="UTF-8"?>
        <PermissionSet {NS}>
            <label>Invoice Editor</label>
            <fieldPermissions><editable>true</editable><field>Invoice__c.Amount__c</field>
                <readable>true</readable></fieldPermissions>
            <objectPermissions><allowCreate>true</allowCreate><allowEdit>true</allowEdit>
                <allowRead>true</allowRead><object>Invoice__c</object></objectPermissions>
            <userPermissions><enabled>true</enabled><name>ApiEnabled</name></userPermissions>
        </PermissionSet>
        """,
    f"{SOURCE}/permissionsetgroups/Billing.permissionsetgroup-meta.xml": f"""\
        <?xml version="1.0" encoding="UTF-8"?>
        <PermissionSetGroup {NS}>
            <label>Billing</label>
            <mutingPermissionSets>Billing_Muted</mutingPermissionSets>
            <permissionSets>Invoice_Editor</permissionSets>
            <status>Updated</status>
        </PermissionSetGroup>
        """,
    f"{SOURCE}/mutingpermissionsets/Billing_Muted.mutingpermissionset-meta.xml": f"""\
        <?xml version="1.0" encoding="UTF-8"?>
        <MutingPermissionSet {NS}>
            <label>Billing Muted</label>
            <fieldPermissions><editable>true</editable><field>Invoice__c.Amount__c</field>
                <readable>false</readable></fieldPermissions>
            <objectPermissions><allowCreate>true</allowCreate><allowRead>false</allowRead>
                <object>Invoice__c</object></objectPermissions>
        </MutingPermissionSet>
        """,
}
USERS = {"muted": ([], ["Sales_Ops"]), "kept": (["Secret_Reader"], ["Sales_Ops"]),
         "invoices": (["Invoice_Reader"], []), "billing": ([], ["Billing"])}


def write_project(project: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = project / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("muting")
    project = root / "project"
    write_project(project, PROJECT)
    with local_org(root / "org", project_dir=project, bulk_workers=0) as org:
        clients = {}
        for name, (sets, groups) in USERS.items():
            user_id, _ = create_user(org, f"{name}@muting.test", last_name=name.title())
            assign(org, user_id, profile="Minimum Access - API Only Integrations", permission_sets=sets,
                   groups=groups)
            clients[name] = rest_client(org, f"{name}@muting.test")
        admin = org.admin_context()
        (account,) = org.records.create(admin, "Account", [{"Name": "Muted Co", "Secret__c": "s3cr3t",
                                                             "Public__c": "hello"}])
        (invoice,) = org.records.create(admin, "Invoice__c", [{"Name": "INV-1", "Amount__c": 5}])
        yield {"org": org, "project": project, "clients": clients, "account": account.id, "invoice": invoice.id}
        for client in clients.values():
            client.close()


def error_code(response: Any) -> str:
    body = response.json()
    return body[0]["errorCode"] if isinstance(body, list) else body.get("errorCode", "")


def query(client: Any, soql: str) -> Any:
    return client.get(f"{API}/query", params={"q": soql})


def test_muting_sets_are_stored_as_the_platform_does(world: dict[str, Any]) -> None:
    org = world["org"]
    admin = org.admin_context()
    muting = {r["DeveloperName"]: r for r in org.query.execute(
        "SELECT Id, DeveloperName, MasterLabel FROM MutingPermissionSet ORDER BY DeveloperName", admin).records}
    assert set(muting) == {"Billing_Muted", "Sales_Ops_Muting"}
    assert muting["Sales_Ops_Muting"]["MasterLabel"] == "Sales Ops (muted)"
    assert muting["Billing_Muted"]["MasterLabel"] == "Billing Muted"
    assert muting["Billing_Muted"]["Id"].startswith("0QM")
    components = org.query.execute("SELECT PermissionSetId FROM PermissionSetGroupComponent WHERE "
                                   "PermissionSetGroup.DeveloperName = 'Sales_Ops'", admin).records
    assert muting["Sales_Ops_Muting"]["Id"] in {r["PermissionSetId"] for r in components}
    muted_objects = org.query.execute(
        "SELECT SobjectType, PermissionsRead, PermissionsDelete FROM ObjectPermissions WHERE ParentId = "
        f"'{muting['Sales_Ops_Muting']['Id']}'", admin).records
    # What is muted, as declared: Delete only (Read stays; no grant-side implications).
    assert [(r["SobjectType"], r["PermissionsRead"], r["PermissionsDelete"]) for r in muted_objects] == [
        ("Account", False, True)]


def test_muted_object_permission_is_gone_for_the_group(world: dict[str, Any]) -> None:
    muted = world["clients"]["muted"]
    assert muted.get(f"{API}/sobjects/Account/{world['account']}").status_code == 200
    assert muted.patch(f"{API}/sobjects/Account/{world['account']}", json={"Public__c": "edited"}).status_code == 204
    deleting = muted.delete(f"{API}/sobjects/Account/{world['account']}")
    assert error_code(deleting) == "INSUFFICIENT_ACCESS_OR_READONLY"
    describe = muted.get(f"{API}/sobjects/Account/describe").json()
    assert describe["deletable"] is False and describe["updateable"] is True


def test_muted_field_permission_is_gone_for_the_group(world: dict[str, Any]) -> None:
    muted = world["clients"]["muted"]
    hidden = query(muted, "SELECT Secret__c FROM Account")
    assert hidden.status_code == 400 and error_code(hidden) == "INVALID_FIELD"
    record = muted.get(f"{API}/sobjects/Account/{world['account']}").json()
    assert "Secret__c" not in record and "Public__c" in record


def test_a_permission_granted_outside_the_group_is_kept(world: dict[str, Any]) -> None:
    kept = world["clients"]["kept"]
    found = query(kept, "SELECT Secret__c FROM Account")
    assert found.status_code == 200 and found.json()["records"][0]["Secret__c"] == "s3cr3t"
    # Secret_Reader grants no Delete: the group's Delete stays muted.
    assert error_code(kept.delete(f"{API}/sobjects/Account/{world['account']}")) == "INSUFFICIENT_ACCESS_OR_READONLY"


def test_sfdx_permission_set_is_enforced(world: dict[str, Any]) -> None:
    invoices = world["clients"]["invoices"]
    found = query(invoices, "SELECT Name, Amount__c FROM Invoice__c")
    assert found.status_code == 200 and found.json()["records"][0]["Amount__c"] == 5
    assert error_code(invoices.post(f"{API}/sobjects/Invoice__c", json={"Name": "INV-2"})) == \
        "INSUFFICIENT_ACCESS_OR_READONLY"
    # Not in the set: Account does not exist for this user.
    assert error_code(query(invoices, "SELECT Id FROM Account")) == "INVALID_TYPE"


def test_sfdx_muting_permission_set_is_enforced(world: dict[str, Any]) -> None:
    billing = world["clients"]["billing"]
    found = query(billing, "SELECT Amount__c FROM Invoice__c")
    assert found.status_code == 200 and found.json()["records"][0]["Amount__c"] == 5
    assert error_code(billing.post(f"{API}/sobjects/Invoice__c", json={"Name": "INV-3"})) == \
        "INSUFFICIENT_ACCESS_OR_READONLY"
    assert billing.patch(f"{API}/sobjects/Invoice__c/{world['invoice']}", json={"Name": "INV-1b"}).status_code == 204
    read_only = billing.patch(f"{API}/sobjects/Invoice__c/{world['invoice']}", json={"Amount__c": 7})
    assert error_code(read_only) == "INVALID_FIELD_FOR_INSERT_UPDATE"


def test_redeploying_changes_nothing(world: dict[str, Any]) -> None:
    warnings: list[str] = []
    assert apply_permission_metadata(world["org"], world["project"], warnings) == []
    assert warnings == []


def test_a_name_in_yaml_and_sfdx_source_is_an_error_naming_both(world: dict[str, Any], tmp_path: Path) -> None:
    project = tmp_path / "clash"
    files = {name: text for name, text in PROJECT.items() if "Invoice_Reader" in name or name == "sfdx-project.json"}
    files["metadata/permissionSets/Invoice_Reader.yaml"] = "objectPermissions:\n  Account: read\n"
    write_project(project, files)
    with pytest.raises(MetadataError) as raised:
        apply_permission_metadata(world["org"], project, [])
    message = str(raised.value)
    assert "permission set Invoice_Reader is defined twice" in message
    assert "Invoice_Reader.yaml" in message and "Invoice_Reader.permissionset-meta.xml" in message
