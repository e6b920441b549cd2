"""Loading Salesforce DX source-format objects into specs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from interlink.errors import MetadataError
from interlink.metadata.model import FieldType, ObjectDef
from interlink.metadata.sfdx import (
    find_package_directories,
    load_sfdx_objects,
    load_sfdx_objects_with_warnings,
)
from interlink.metadata.spec import build_object, merge_specs

NS = "http://soap.sforce.com/2006/04/metadata"

INVOICE_OBJECT = """\
<?xml version="1.0" encoding="UTF-8"?>
<CustomObject xmlns="http://soap.sforce.com/2006/04/metadata">
    <deploymentStatus>Deployed</deploymentStatus>
    <description>Bills sent to customers.</description>
    <enableHistory>false</enableHistory>
    <label>Invoice</label>
    <nameField>
        <displayFormat>INV-{0000}</displayFormat>
        <label>Invoice Number</label>
        <startingNumber>1</startingNumber>
        <trackHistory>false</trackHistory>
        <type>AutoNumber</type>
    </nameField>
    <pluralLabel>Invoices</pluralLabel>
    <sharingModel>ControlledByParent</sharingModel>
    <visibility>Public</visibility>
</CustomObject>
"""

INVOICE_FIELDS = {
    "Account__c": """
    <fullName>Account__c</fullName>
    <label>Account</label>
    <referenceTo>Account</referenceTo>
    <relationshipLabel>Invoices</relationshipLabel>
    <relationshipName>Invoices</relationshipName>
    <relationshipOrder>0</relationshipOrder>
    <reparentableMasterDetail>false</reparentableMasterDetail>
    <trackHistory>false</trackHistory>
    <type>MasterDetail</type>
    <writeRequiresMasterRead>false</writeRequiresMasterRead>""",
    "Status__c": """
    <fullName>Status__c</fullName>
    <label>Status</label>
    <required>false</required>
    <type>Picklist</type>
    <valueSet>
        <restricted>true</restricted>
        <valueSetDefinition>
            <sorted>false</sorted>
            <value><fullName>Draft</fullName><default>true</default><label>Draft</label></value>
            <value><fullName>Sent</fullName><default>false</default><label>Sent to customer</label></value>
            <value><fullName>Paid</fullName><default>false</default><label>Paid</label></value>
        </valueSetDefinition>
    </valueSet>""",
    "Paid__c": """
    <fullName>Paid__c</fullName>
    <defaultValue>true</defaultValue>
    <label>Paid</label>
    <type>Checkbox</type>""",
    "Line_Count__c": """
    <fullName>Line_Count__c</fullName>
    <externalId>false</externalId>
    <label>Line Count</label>
    <precision>18</precision>
    <required>false</required>
    <scale>0</scale>
    <type>Number</type>
    <unique>false</unique>""",
    "Amount__c": """
    <fullName>Amount__c</fullName>
    <inlineHelpText>Total before tax.</inlineHelpText>
    <label>Amount</label>
    <precision>16</precision>
    <required>true</required>
    <scale>2</scale>
    <type>Currency</type>""",
    "Notes__c": """
    <fullName>Notes__c</fullName>
    <description>Free-form notes.</description>
    <label>Notes</label>
    <length>32768</length>
    <type>LongTextArea</type>
    <visibleLines>3</visibleLines>""",
    "Reference__c": """
    <fullName>Reference__c</fullName>
    <caseSensitive>false</caseSensitive>
    <defaultValue>"N/A"</defaultValue>
    <externalId>true</externalId>
    <label>Reference</label>
    <length>40</length>
    <required>false</required>
    <type>Text</type>
    <unique>true</unique>""",
    "Total_With_Tax__c": """
    <fullName>Total_With_Tax__c</fullName>
    <formula>Amount__c * 1.2</formula>
    <formulaTreatBlanksAs>BlankAsZero</formulaTreatBlanksAs>
    <label>Total With Tax</label>
    <precision>18</precision>
    <scale>2</scale>
    <type>Currency</type>""",
}

REGION_FIELD = """
    <fullName>Region__c</fullName>
    <label>Region</label>
    <length>100</length>
    <type>Text</type>"""

INDUSTRY_FIELD = """
    <fullName>Industry</fullName>
    <type>Picklist</type>
    <valueSet>
        <valueSetDefinition>
            <value><fullName>Banking</fullName><default>false</default><label>Banking</label></value>
        </valueSetDefinition>
    </valueSet>"""


def field_xml(body: str) -> str:
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<CustomField xmlns="{NS}">{body}\n</CustomField>\n'


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write(tmp_path / "sfdx-project.json", json.dumps({
        "packageDirectories": [{"path": "force-app", "default": True}],
        "name": "billing",
        "namespace": "",
        "sfdcLoginUrl": "https://login.salesforce.com",
        "sourceApiVersion": "60.0",
    }))
    objects = tmp_path / "force-app" / "main" / "default" / "objects"
    write(objects / "Invoice__c" / "Invoice__c.object-meta.xml", INVOICE_OBJECT)
    for name, body in INVOICE_FIELDS.items():
        write(objects / "Invoice__c" / "fields" / f"{name}.field-meta.xml", field_xml(body))
    write(objects / "Invoice__c" / "listViews" / "All.listView-meta.xml", "<ListView/>")
    write(objects / "Account" / "fields" / "Region__c.field-meta.xml", field_xml(REGION_FIELD))
    write(objects / "Account" / "fields" / "Industry.field-meta.xml", field_xml(INDUSTRY_FIELD))
    return tmp_path


def objects_dir(project: Path) -> Path:
    return project / "force-app" / "main" / "default" / "objects"


def by_name(specs: list[tuple[dict, str]]) -> dict[str, tuple[dict, str]]:
    return {spec["name"]: (spec, source) for spec, source in specs}


def build_invoice(project: Path) -> ObjectDef:
    spec, source = by_name(load_sfdx_objects(project))["Invoice__c"]
    return build_object({**spec, "keyPrefix": "a00"}, source)


def test_find_package_directories(project: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    assert find_package_directories(project) == [project / "force-app"]
    assert find_package_directories(tmp_path_factory.mktemp("no_project")) == []


def test_find_package_directories_rejects_missing_directory(tmp_path: Path) -> None:
    write(tmp_path / "sfdx-project.json", json.dumps({"packageDirectories": [{"path": "nowhere"}]}))
    with pytest.raises(MetadataError, match="nowhere"):
        find_package_directories(tmp_path)


def test_object_spec_has_no_key_prefix_and_no_owner(project: Path) -> None:
    specs = by_name(load_sfdx_objects(project))
    assert set(specs) == {"Invoice__c", "Account"}
    spec, source = specs["Invoice__c"]
    assert source.endswith("Invoice__c.object-meta.xml")
    assert "keyPrefix" not in spec
    assert spec["label"] == "Invoice"
    assert spec["labelPlural"] == "Invoices"
    assert spec["description"] == "Bills sent to customers."
    assert spec["owner"] is False
    assert spec["nameField"] == {
        "type": "autonumber", "label": "Invoice Number", "displayFormat": "INV-{0000}", "startNumber": 1,
    }
    account = next(f for f in spec["fields"] if f["name"] == "Account__c")
    assert account["childRelationshipName"] == "Invoices"
    assert "relationshipName" not in account


def test_built_object_fields(project: Path) -> None:
    obj = build_invoice(project)
    assert obj.label_plural == "Invoices"
    assert not obj.has_field("OwnerId")
    assert not obj.has_field("Total_With_Tax__c")

    name = obj.field("Name")
    assert name is not None and name.name_field and name.auto_number
    assert (name.type, name.display_format, name.start_number) == (FieldType.STRING, "INV-{0000}", 1)
    assert name.label == "Invoice Number"
    assert not name.createable and not name.required

    account = obj.field("Account__c")
    assert account is not None
    assert account.type is FieldType.REFERENCE
    assert account.master_detail and account.required and account.cascade_delete
    assert account.reference_to == ("Account",)
    assert account.relationship_name == "Account__r"
    assert account.child_relationship_name == "Invoices__r"

    status = obj.field("Status__c")
    assert status is not None
    assert status.type is FieldType.PICKLIST
    assert status.restricted_picklist
    assert [v.value for v in status.picklist_values] == ["Draft", "Sent", "Paid"]
    assert status.picklist_values[1].label == "Sent to customer"
    assert status.default_value == "Draft"
    assert not status.required

    paid = obj.field("Paid__c")
    assert paid is not None and paid.type is FieldType.BOOLEAN and paid.default_value is True

    lines = obj.field("Line_Count__c")
    # The platform describes custom Number fields as double even with scale 0.
    assert lines is not None and lines.type is FieldType.DOUBLE and (lines.precision, lines.scale) == (18, 0)

    amount = obj.field("Amount__c")
    assert amount is not None and amount.type is FieldType.CURRENCY
    assert (amount.precision, amount.scale, amount.required) == (16, 2, True)
    assert amount.help_text == "Total before tax."

    notes = obj.field("Notes__c")
    assert notes is not None and notes.type is FieldType.TEXTAREA and notes.length == 32768
    assert notes.description == "Free-form notes."

    reference = obj.field("Reference__c")
    assert reference is not None and reference.type is FieldType.STRING
    assert (reference.length, reference.default_value) == (40, "N/A")
    assert reference.external_id and reference.unique and not reference.case_sensitive


def test_warnings_for_skipped_fields(project: Path) -> None:
    specs, warnings = load_sfdx_objects_with_warnings(project)
    assert specs == load_sfdx_objects(project)
    assert any("Total_With_Tax__c" in w and "formula" in w for w in warnings)
    assert any("Account.Industry" in w and "standard" in w for w in warnings)
    assert len(warnings) == 2


def test_standard_object_extension(project: Path) -> None:
    spec, source = by_name(load_sfdx_objects(project))["Account"]
    assert set(spec) == {"name", "fields"}
    assert spec["fields"] == [{"name": "Region__c", "type": "string", "label": "Region", "length": 100}]
    assert Path(source) == objects_dir(project) / "Account"

    base = {"name": "Account", "standard": True, "keyPrefix": "001",
            "fields": [{"name": "Name", "type": "string", "nameField": True, "required": True}]}
    account = build_object(merge_specs(base, spec, source), source)
    region = account.field("Region__c")
    assert region is not None and region.custom and region.length == 100


def test_load_from_package_directory(project: Path) -> None:
    [package] = find_package_directories(project)
    assert load_sfdx_objects(package) == load_sfdx_objects(project)


def test_malformed_xml_names_the_file(project: Path) -> None:
    broken = write(objects_dir(project) / "Invoice__c" / "fields" / "Broken__c.field-meta.xml",
                   f'<CustomField xmlns="{NS}"><fullName>Broken__c</fullName><label>Oops</CustomField>')
    with pytest.raises(MetadataError) as info:
        load_sfdx_objects(project)
    assert str(broken) in str(info.value)
    assert "malformed XML" in str(info.value)


def test_doctype_is_rejected(project: Path) -> None:
    evil = write(objects_dir(project) / "Invoice__c" / "fields" / "Evil__c.field-meta.xml",
                 f'<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY e "boom">]>\n'
                 f'<CustomField xmlns="{NS}"><fullName>Evil__c</fullName><label>&e;</label>'
                 f'<type>Text</type><length>10</length></CustomField>')
    with pytest.raises(MetadataError, match="DOCTYPE") as info:
        load_sfdx_objects(project)
    assert str(evil) in str(info.value)


def test_unknown_type_names_file_and_type(project: Path) -> None:
    where = write(objects_dir(project) / "Invoice__c" / "fields" / "Site__c.field-meta.xml",
                  field_xml("<fullName>Site__c</fullName><label>Site</label><type>Location</type><scale>5</scale>"))
    with pytest.raises(MetadataError) as info:
        load_sfdx_objects(project)
    assert str(where) in str(info.value)
    assert "'Location'" in str(info.value)


def test_field_errors_name_the_field_file(project: Path) -> None:
    where = write(objects_dir(project) / "Invoice__c" / "fields" / "Code__c.field-meta.xml",
                  field_xml("<fullName>Code__c</fullName><label>Code</label><type>Text</type>"
                            "<length>300</length>"))
    with pytest.raises(MetadataError, match="length") as info:
        load_sfdx_objects(project)
    assert str(where) in str(info.value)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("<type>Number</type><precision>10</precision><scale>2</scale>",
         {"type": "double", "precision": 10, "scale": 2}),
        ("<type>TextArea</type>", {"type": "textarea"}),
        ("<type>Html</type><length>32768</length><visibleLines>25</visibleLines>",
         {"type": "html", "length": 32768, "visibleLines": 25}),
        ("<type>EncryptedText</type><length>50</length><maskChar>asterisk</maskChar>",
         {"type": "string", "length": 50}),
        ("<type>DateTime</type>", {"type": "datetime"}),
        ("<type>MultiselectPicklist</type><visibleLines>4</visibleLines><valueSet><valueSetDefinition>"
         "<value><fullName>A</fullName><default>false</default><label>Alpha</label></value>"
         "</valueSetDefinition></valueSet>",
         {"type": "multipicklist", "visibleLines": 4,
          "values": [{"value": "A", "label": "Alpha", "default": False}]}),
        ("<type>Lookup</type><referenceTo>Contact</referenceTo><relationshipName>Things</relationshipName>"
         "<deleteConstraint>SetNull</deleteConstraint>",
         {"type": "lookup", "referenceTo": "Contact", "childRelationshipName": "Things"}),
        ("<type>Text</type><length>20</length><defaultValue>'it\\'s'</defaultValue>",
         {"type": "string", "length": 20, "defaultValue": "it's"}),
    ],
)
def test_type_mapping(tmp_path: Path, body: str, expected: dict) -> None:
    write(tmp_path / "objects" / "Thing__c" / "fields" / "F__c.field-meta.xml",
          field_xml(f"<fullName>F__c</fullName>{body}"))
    specs, warnings = load_sfdx_objects_with_warnings(tmp_path)
    assert specs == [({"name": "Thing__c", "fields": [{"name": "F__c", **expected}]},
                      str(tmp_path / "objects" / "Thing__c"))]
    assert warnings == []


def test_formula_default_is_dropped_with_warning(tmp_path: Path) -> None:
    write(tmp_path / "objects" / "Thing__c" / "fields" / "Due__c.field-meta.xml",
          field_xml("<fullName>Due__c</fullName><type>Date</type><defaultValue>TODAY() + 30</defaultValue>"))
    specs, warnings = load_sfdx_objects_with_warnings(tmp_path)
    assert specs[0][0]["fields"] == [{"name": "Due__c", "type": "date"}]
    assert len(warnings) == 1 and "TODAY() + 30" in warnings[0]


def test_platform_events_load_from_sfdx_source(tmp_path: Path) -> None:
    folder = tmp_path / "force-app" / "main" / "default" / "objects" / "Low_Ink__e"
    (folder / "fields").mkdir(parents=True)
    (tmp_path / "sfdx-project.json").write_text('{"packageDirectories": [{"path": "force-app"}]}')
    ns = 'xmlns="http://soap.sforce.com/2006/04/metadata"'
    (folder / "Low_Ink__e.object-meta.xml").write_text(
        f'<?xml version="1.0"?><CustomObject {ns}><eventType>HighVolume</eventType><label>Low Ink</label>'
        "<pluralLabel>Low Inks</pluralLabel><publishBehavior>PublishAfterCommit</publishBehavior></CustomObject>")
    (folder / "fields" / "Printer_Model__c.field-meta.xml").write_text(
        f'<?xml version="1.0"?><CustomField {ns}><fullName>Printer_Model__c</fullName><label>Printer Model</label>'
        "<length>20</length><type>Text</type></CustomField>")
    from interlink.metadata.loader import load_project

    loaded = load_project(tmp_path)
    event = loaded.schema.object("Low_Ink__e")
    assert event is not None and event.is_event and event.publish_behavior == "PublishAfterCommit"
    assert event.key_prefix.startswith("e") and not event.queryable
    assert [f.name for f in event.fields] == ["ReplayId", "CreatedDate", "CreatedById", "EventUuid",
                                              "Printer_Model__c"]
    assert loaded.warnings == []
