"""Profiles, permission sets, permission set groups and muting permission sets read from SFDX source."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from interlink.errors import MetadataError
from interlink.metadata.sfdx_permissions import load_sfdx_permissions, read_permission_file
from interlink.testing import local_org

XML_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n'


def xml(root: str, body: str) -> str:
    return (f'{XML_HEAD}<{root} xmlns="http://soap.sforce.com/2006/04/metadata">\n{textwrap.dedent(body)}'
            f"</{root}>\n")


PROFILE = xml("Profile", """\
    <custom>true</custom>
    <description>Marketing users</description>
    <userLicense>Salesforce</userLicense>
    <layoutAssignments><layout>Account-Account Layout</layout></layoutAssignments>
    <tabVisibilities><tab>standard-Account</tab><visibility>DefaultOn</visibility></tabVisibilities>
    <classAccesses><apexClass>Util</apexClass><enabled>true</enabled></classAccesses>
    <recordTypeVisibilities><default>true</default><recordType>Account.Retail</recordType>
        <visible>true</visible></recordTypeVisibilities>
    <userPermissions><enabled>true</enabled><name>ApiEnabled</name></userPermissions>
    <userPermissions><enabled>false</enabled><name>ViewSetup</name></userPermissions>
    <userPermissions><enabled>true</enabled><name>ConvertLeads</name></userPermissions>
    <objectPermissions>
        <allowCreate>true</allowCreate><allowDelete>false</allowDelete><allowEdit>true</allowEdit>
        <allowRead>true</allowRead><modifyAllRecords>false</modifyAllRecords><object>Account</object>
        <viewAllRecords>true</viewAllRecords>
    </objectPermissions>
    <objectPermissions>
        <allowCreate>false</allowCreate><allowDelete>false</allowDelete><allowEdit>false</allowEdit>
        <allowRead>false</allowRead><modifyAllRecords>false</modifyAllRecords><object>Lead</object>
        <viewAllRecords>false</viewAllRecords>
    </objectPermissions>
    <fieldPermissions><editable>false</editable><field>Account.Region__c</field><readable>true</readable>
    </fieldPermissions>
    <fieldPermissions><editable>true</editable><field>Account.Score__c</field><readable>true</readable>
    </fieldPermissions>
    <fieldPermissions><editable>false</editable><field>Account.Hidden__c</field><readable>false</readable>
    </fieldPermissions>
    <loginIpRanges><description>Office</description><endAddress>10.0.0.255</endAddress>
        <startAddress>10.0.0.0</startAddress></loginIpRanges>
    <loginIpRanges><endAddress>2001:db8::ffff</endAddress><startAddress>2001:db8::</startAddress></loginIpRanges>
    <loginHours>
        <mondayEnd>1080</mondayEnd><mondayStart>480</mondayStart>
        <tuesdayEnd>1440</tuesdayEnd><tuesdayStart>0</tuesdayStart>
    </loginHours>
""")

PERMISSION_SET = xml("PermissionSet", """\
    <description>What the ERP connector may touch</description>
    <hasActivationRequired>false</hasActivationRequired>
    <label>ERP Integration</label>
    <license>Salesforce</license>
    <objectPermissions>
        <allowCreate>false</allowCreate><allowDelete>false</allowDelete><allowEdit>false</allowEdit>
        <allowRead>true</allowRead><modifyAllRecords>false</modifyAllRecords><object>Invoice__c</object>
        <viewAllRecords>false</viewAllRecords>
    </objectPermissions>
    <fieldPermissions><editable>true</editable><field>Invoice__c.Amount__c</field><readable>true</readable>
    </fieldPermissions>
    <userPermissions><enabled>true</enabled><name>ApiEnabled</name></userPermissions>
""")

GROUP = xml("PermissionSetGroup", """\
    <description>Sales operations</description>
    <label>Sales Ops</label>
    <mutingPermissionSets>Sales_Ops_Muted</mutingPermissionSets>
    <permissionSets>ERP_Integration</permissionSets>
    <permissionSets>Reports</permissionSets>
    <status>Updated</status>
""")

MUTING = xml("MutingPermissionSet", """\
    <label>Sales Ops Muted</label>
    <objectPermissions>
        <allowCreate>false</allowCreate><allowDelete>true</allowDelete><allowEdit>false</allowEdit>
        <allowRead>false</allowRead><modifyAllRecords>false</modifyAllRecords><object>Account</object>
        <viewAllRecords>false</viewAllRecords>
    </objectPermissions>
    <fieldPermissions><editable>true</editable><field>Account.Score__c</field><readable>false</readable>
    </fieldPermissions>
    <userPermissions><enabled>true</enabled><name>ModifyAllData</name></userPermissions>
""")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    write(root / "sfdx-project.json", json.dumps({"packageDirectories": [{"path": "force-app", "default": True}]}))
    return root


def default_dir(project: Path) -> Path:
    return project / "force-app" / "main" / "default"


def test_profile_elements(project: Path) -> None:
    path = write(default_dir(project) / "profiles" / "Marketing.profile-meta.xml", PROFILE)
    assert read_permission_file(path, "profiles") == {
        "description": "Marketing users",
        # Only enabled user permissions; which ones the org models is the deploy's business.
        "userPermissions": ["ApiEnabled", "ConvertLeads"],
        # An object or field entry granting nothing is left out.
        "objectPermissions": {"Account": {"read": True, "create": True, "edit": True, "delete": False,
                                          "viewAll": True, "modifyAll": False}},
        "fieldPermissions": {"Account.Region__c": {"read": True, "edit": False},
                             "Account.Score__c": {"read": True, "edit": True}},
        "loginIpRanges": [{"start": "10.0.0.0", "end": "10.0.0.255", "description": "Office"},
                          {"start": "2001:db8::", "end": "2001:db8::ffff"}],
        "loginHours": {"monday": {"start": "08:00", "end": "18:00"}, "tuesday": {"start": "00:00", "end": "24:00"}},
    }


def test_permission_set_elements(project: Path) -> None:
    path = write(default_dir(project) / "permissionsets" / "ERP_Integration.permissionset-meta.xml", PERMISSION_SET)
    assert read_permission_file(path, "permissionsets") == {
        "label": "ERP Integration",
        "description": "What the ERP connector may touch",
        "userPermissions": ["ApiEnabled"],
        "objectPermissions": {"Invoice__c": {"read": True, "create": False, "edit": False, "delete": False,
                                             "viewAll": False, "modifyAll": False}},
        "fieldPermissions": {"Invoice__c.Amount__c": {"read": True, "edit": True}},
    }


def test_group_and_muting_set_elements(project: Path) -> None:
    group = write(default_dir(project) / "permissionsetgroups" / "Sales_Ops.permissionsetgroup-meta.xml", GROUP)
    assert read_permission_file(group, "permissionsetgroups") == {
        "label": "Sales Ops", "description": "Sales operations", "permissionSets": ["ERP_Integration", "Reports"],
        "mutingPermissionSets": ["Sales_Ops_Muted"]}
    muting = write(default_dir(project) / "mutingpermissionsets" / "Sales_Ops_Muted.mutingpermissionset-meta.xml",
                   MUTING)
    # True values are what the set mutes, kept as written (no implications).
    assert read_permission_file(muting, "mutingpermissionsets") == {
        "label": "Sales Ops Muted",
        "userPermissions": ["ModifyAllData"],
        "objectPermissions": {"Account": {"read": False, "create": False, "edit": False, "delete": True,
                                          "viewAll": False, "modifyAll": False}},
        "fieldPermissions": {"Account.Score__c": {"read": False, "edit": True}},
    }


def test_load_finds_every_kind_in_every_package_directory(project: Path) -> None:
    (project / "sfdx-project.json").write_text(json.dumps(
        {"packageDirectories": [{"path": "force-app"}, {"path": "extra"}]}))
    write(default_dir(project) / "profiles" / "Custom%3A Marketing Profile.profile-meta.xml", PROFILE)
    write(default_dir(project) / "permissionsets" / "ERP_Integration.permissionset-meta.xml", PERMISSION_SET)
    write(project / "extra" / "permissionsetgroups" / "Sales_Ops.permissionsetgroup-meta.xml", GROUP)
    # Metadata API format suffixes too.
    write(project / "extra" / "mutingpermissionsets" / "Sales_Ops_Muted.mutingpermissionset", MUTING)
    write(project / "extra" / "permissionsets" / "Reports.permissionset", PERMISSION_SET)
    write(default_dir(project) / "permissionsets" / "notes.txt", "not metadata")
    found, warnings = load_sfdx_permissions(project)
    assert warnings == []
    assert [name for name, _data, _path in found.profiles] == ["Custom: Marketing Profile"]
    assert [name for name, _data, _path in found.permission_sets] == ["ERP_Integration", "Reports"]
    assert [name for name, _data, _path in found.groups] == ["Sales_Ops"]
    assert [name for name, _data, _path in found.muting_sets] == ["Sales_Ops_Muted"]


def test_no_sfdx_project_means_nothing(tmp_path: Path) -> None:
    found, warnings = load_sfdx_permissions(tmp_path)
    assert (found.profiles, found.permission_sets, found.groups, found.muting_sets, warnings) == ([], [], [], [], [])


@pytest.mark.parametrize("name", ["Admin", "Standard", "System Administrator", "Standard User",
                                  "Minimum Access - Salesforce", "MinimumAccess"])
def test_built_in_profiles_are_skipped_with_a_warning(project: Path, name: str) -> None:
    write(default_dir(project) / "profiles" / f"{name}.profile-meta.xml", PROFILE)
    found, warnings = load_sfdx_permissions(project)
    assert found.profiles == []
    assert len(warnings) == 1 and "built-in profiles are not changed from source" in warnings[0]
    assert f"{name}.profile-meta.xml" in warnings[0]


def test_malformed_xml_names_the_file(project: Path) -> None:
    path = write(default_dir(project) / "permissionsets" / "Broken.permissionset-meta.xml",
                 xml("PermissionSet", "<label>Broken</label>\n<objectPermissions><object>Account</object>\n"))
    with pytest.raises(MetadataError, match="malformed XML") as raised:
        load_sfdx_permissions(project)
    assert str(raised.value).startswith(f"{path}: ")
    path.write_text(xml("CustomObject", "<label>x</label>\n"))
    with pytest.raises(MetadataError, match="expected a <PermissionSet> element"):
        load_sfdx_permissions(project)


def test_entries_missing_their_name_and_bad_values_are_errors(project: Path) -> None:
    folder = default_dir(project) / "profiles"
    cases = {
        "<objectPermissions><allowRead>true</allowRead></objectPermissions>": "has no <object>",
        "<fieldPermissions><readable>true</readable></fieldPermissions>": "has no <field>",
        "<userPermissions><enabled>true</enabled></userPermissions>": "has no <name>",
        "<objectPermissions><object>Account</object><allowRead>yes</allowRead></objectPermissions>":
            "expected true or false",
        "<loginHours><mondayStart>480</mondayStart></loginHours>": "mondayStart and mondayEnd go together",
        "<loginHours><mondayStart>0</mondayStart><mondayEnd>1500</mondayEnd></loginHours>": "0 to 1440",
        "<loginIpRanges><startAddress>10.0.0.1</startAddress></loginIpRanges>": "needs a <startAddress>",
    }
    for body, message in cases.items():
        path = write(folder / "Custom.profile-meta.xml", xml("Profile", body + "\n"))
        with pytest.raises(MetadataError, match=message) as raised:
            load_sfdx_permissions(project)
        assert str(path) in str(raised.value)


def test_the_same_name_twice_is_an_error(project: Path) -> None:
    (project / "sfdx-project.json").write_text(json.dumps(
        {"packageDirectories": [{"path": "force-app"}, {"path": "extra"}]}))
    write(default_dir(project) / "permissionsets" / "ERP.permissionset-meta.xml", PERMISSION_SET)
    write(project / "extra" / "permissionsets" / "ERP.permissionset", PERMISSION_SET)
    with pytest.raises(MetadataError, match="ERP is also defined by"):
        load_sfdx_permissions(project)


def test_deploy_skips_what_the_org_does_not_have_with_warnings(project: Path, tmp_path: Path) -> None:
    """Retrieved files name many objects, fields and user permissions Interlink does not have: skipped, warned."""
    write(project / "metadata" / "objects" / "Account.yaml",
          "name: Account\nfields:\n  - {name: Region__c, type: text, length: 40}\n")
    write(default_dir(project) / "profiles" / "Custom%3A Marketing.profile-meta.xml", xml("Profile", """\
        <userPermissions><enabled>true</enabled><name>ApiEnabled</name></userPermissions>
        <userPermissions><enabled>true</enabled><name>ConvertLeads</name></userPermissions>
        <objectPermissions><allowRead>true</allowRead><object>Account</object></objectPermissions>
        <objectPermissions><allowRead>true</allowRead><object>Campaign</object></objectPermissions>
        <fieldPermissions><readable>true</readable><field>Account.Region__c</field></fieldPermissions>
        <fieldPermissions><readable>true</readable><field>Account.Nope__c</field></fieldPermissions>
        <fieldPermissions><readable>true</readable><field>Campaign.Budget__c</field></fieldPermissions>
        """))
    with local_org(tmp_path / "org", project_dir=project, bulk_workers=0) as org:
        warnings = "\n".join(org.bootstrap.warnings)
        assert "skipped 1 user permission(s) Interlink does not model: ConvertLeads" in warnings
        assert "skipped 1 object permission(s) on objects the org does not have: Campaign" in warnings
        assert ("skipped 2 field permission(s) on fields the org does not have: Account.Nope__c, Campaign.Budget__c"
                in warnings)
        admin = org.admin_context()
        (profile,) = org.query.execute("SELECT Id FROM Profile WHERE Name = 'Custom: Marketing'", admin).records
        (owned,) = org.query.execute(f"SELECT Id, PermissionsApiEnabled FROM PermissionSet WHERE ProfileId = "
                                     f"'{profile['Id']}'", admin).records
        assert owned["PermissionsApiEnabled"] is True
        objects = org.query.execute(f"SELECT SobjectType, PermissionsRead FROM ObjectPermissions WHERE ParentId = "
                                    f"'{owned['Id']}'", admin).records
        assert [(r["SobjectType"], r["PermissionsRead"]) for r in objects] == [("Account", True)]
        fields = org.query.execute(f"SELECT Field FROM FieldPermissions WHERE ParentId = '{owned['Id']}'",
                                   admin).records
        assert [r["Field"] for r in fields] == ["Account.Region__c"]
