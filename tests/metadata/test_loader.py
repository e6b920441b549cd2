"""load_project: standard objects plus a project's YAML objects and SFDX source, as one schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from interlink.errors import MetadataError
from interlink.metadata.loader import load_project
from interlink.metadata.model import FieldType

NS = "http://soap.sforce.com/2006/04/metadata"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def yaml_object(project: Path, file_stem: str, text: str) -> Path:
    return write(project / "metadata" / "objects" / f"{file_stem}.yaml", text)


def sfdx_project(project: Path) -> Path:
    """An SFDX project skeleton; returns its objects folder."""
    write(project / "sfdx-project.json", json.dumps({"packageDirectories": [{"path": "force-app", "default": True}],
                                                     "sourceApiVersion": "60.0"}))
    objects = project / "force-app" / "main" / "default" / "objects"
    objects.mkdir(parents=True)
    return objects


def sfdx_object(objects: Path, name: str, label: str, *, auto_number: bool = False) -> None:
    name_field = ("<nameField><displayFormat>R-{0000}</displayFormat><label>Number</label>"
                  "<type>AutoNumber</type></nameField>" if auto_number else "")
    write(objects / name / f"{name}.object-meta.xml",
          f'<?xml version="1.0" encoding="UTF-8"?>\n<CustomObject xmlns="{NS}"><label>{label}</label>'
          f"<pluralLabel>{label}s</pluralLabel>{name_field}<deploymentStatus>Deployed</deploymentStatus>"
          "<sharingModel>ReadWrite</sharingModel></CustomObject>\n")


def sfdx_text_field(objects: Path, object_name: str, field_name: str, length: int = 50) -> None:
    write(objects / object_name / "fields" / f"{field_name}.field-meta.xml",
          f'<?xml version="1.0" encoding="UTF-8"?>\n<CustomField xmlns="{NS}"><fullName>{field_name}</fullName>'
          f"<label>{field_name}</label><length>{length}</length><type>Text</type></CustomField>\n")


INVOICE = """\
name: Invoice__c
label: Invoice
labelPlural: Invoices
nameField: {label: Invoice Number, type: autonumber, displayFormat: "INV-{0000}"}
fields:
  - {name: Amount__c, type: currency, precision: 16, scale: 2, required: true}
  - {name: Account__c, type: lookup, referenceTo: Account, childRelationshipName: Invoices}
"""


def test_yaml_custom_object(tmp_path: Path) -> None:
    path = yaml_object(tmp_path, "Invoice__c", INVOICE)
    loaded = load_project(tmp_path)
    invoice = loaded.schema.object("invoice__c")
    assert invoice is not None and invoice.custom
    assert (invoice.label, invoice.label_plural) == ("Invoice", "Invoices")
    assert invoice.key_prefix.startswith("a") and len(invoice.key_prefix) == 3
    assert invoice.field("Name").auto_number and invoice.field("Name").display_format == "INV-{0000}"
    assert invoice.field("Amount__c").type is FieldType.CURRENCY and invoice.field("Amount__c").required
    assert invoice.field("Account__c").reference_to == ("Account",)
    for system in ("Id", "OwnerId", "CreatedDate", "SystemModstamp", "IsDeleted"):
        assert invoice.has_field(system)
    assert loaded.sources["invoice__c"] == [str(path)]
    # The standard objects are all there too, and Account knows its new children.
    assert {"Account", "Contact", "Opportunity", "Case", "Task", "User"} <= {o.name for o in loaded.schema}
    assert any(c.child_object == "Invoice__c" for c in loaded.schema.children_of("Account"))


def test_yaml_extension_adds_a_custom_field_to_account(tmp_path: Path) -> None:
    yaml_object(tmp_path, "Account", "name: Account\nfields:\n  - {name: Region__c, type: text, length: 40}\n")
    loaded = load_project(tmp_path)
    account = loaded.schema.object("Account")
    assert account.key_prefix == "001" and not account.custom
    assert account.field("Region__c").length == 40
    assert account.field("Industry") is not None  # standard fields kept
    assert loaded.sources["account"][0] == "interlink:standard" and len(loaded.sources["account"]) == 2


def test_yaml_extension_file_may_omit_the_name(tmp_path: Path) -> None:
    yaml_object(tmp_path, "Contact", "fields:\n  - {name: Nickname__c, type: text}\n")
    assert load_project(tmp_path).schema.object("Contact").has_field("Nickname__c")


def test_extension_of_a_standard_object_with_a_standard_style_field_is_refused(tmp_path: Path) -> None:
    path = yaml_object(tmp_path, "Account", "name: Account\nfields:\n  - {name: Region, type: text}\n")
    with pytest.raises(MetadataError) as error:
        load_project(tmp_path)
    assert str(path) in str(error.value)
    assert "Region" in str(error.value) and "__c" in str(error.value)


def test_reference_to_an_unknown_object_names_the_file(tmp_path: Path) -> None:
    path = yaml_object(tmp_path, "Thing__c", "name: Thing__c\nlabel: Thing\nfields:\n"
                                             "  - {name: Parent__c, type: lookup, referenceTo: Nowhere__c}\n")
    with pytest.raises(MetadataError) as error:
        load_project(tmp_path)
    assert str(path) in str(error.value)
    assert "Nowhere__c" in str(error.value)


def test_yaml_syntax_error_reports_file_and_line(tmp_path: Path) -> None:
    path = yaml_object(tmp_path, "Broken__c", "name: Broken__c\nlabel: Broken\nfields:\n"
                                              "  - {name: A__c, type: text\n  - {name: B__c}\n")
    with pytest.raises(MetadataError) as error:
        load_project(tmp_path)
    message = str(error.value)
    assert message.startswith(f"{path}:")
    line = int(message[len(str(path)) + 1:].split(":", 1)[0])
    assert 4 <= line <= 5


def test_file_name_must_match_the_object_name(tmp_path: Path) -> None:
    path = yaml_object(tmp_path, "Invoices", INVOICE)
    with pytest.raises(MetadataError) as error:
        load_project(tmp_path)
    assert str(path) in str(error.value)
    assert "Invoice__c" in str(error.value) and "Invoices" in str(error.value)


def test_a_custom_object_name_must_end_in_c(tmp_path: Path) -> None:
    yaml_object(tmp_path, "Gizmo", "name: Gizmo\nlabel: Gizmo\n")
    with pytest.raises(MetadataError, match="Gizmo"):
        load_project(tmp_path)


def test_sfdx_project_is_loaded_alongside_yaml(tmp_path: Path) -> None:
    yaml_object(tmp_path, "Invoice__c", INVOICE)
    objects = sfdx_project(tmp_path)
    sfdx_object(objects, "Receipt__c", "Receipt", auto_number=True)
    sfdx_text_field(objects, "Receipt__c", "Reference__c", 30)
    sfdx_text_field(objects, "Account", "Territory__c")
    loaded = load_project(tmp_path)
    receipt = loaded.schema.object("Receipt__c")
    invoice = loaded.schema.object("Invoice__c")
    assert receipt is not None and invoice is not None
    assert receipt.label == "Receipt" and receipt.field("Name").auto_number
    assert receipt.field("Reference__c").length == 30
    assert loaded.schema.object("Account").has_field("Territory__c")
    assert receipt.key_prefix != invoice.key_prefix
    assert loaded.sources["receipt__c"][0].endswith("Receipt__c.object-meta.xml")


def test_custom_object_in_yaml_with_more_fields_in_sfdx_is_merged(tmp_path: Path) -> None:
    yaml_object(tmp_path, "Invoice__c", INVOICE)
    objects = sfdx_project(tmp_path)
    sfdx_text_field(objects, "Invoice__c", "PoNumber__c")
    invoice = load_project(tmp_path).schema.object("Invoice__c")
    assert invoice.label == "Invoice"
    assert invoice.has_field("Amount__c") and invoice.has_field("PoNumber__c")


def test_fields_only_yaml_for_a_custom_object_defined_in_sfdx_is_merged(tmp_path: Path) -> None:
    yaml_object(tmp_path, "Receipt__c", "name: Receipt__c\nfields:\n  - {name: Note__c, type: textarea}\n")
    objects = sfdx_project(tmp_path)
    sfdx_object(objects, "Receipt__c", "Receipt", auto_number=True)
    sfdx_text_field(objects, "Receipt__c", "Reference__c")
    receipt = load_project(tmp_path).schema.object("Receipt__c")
    assert receipt.label == "Receipt" and receipt.field("Name").auto_number
    assert receipt.has_field("Note__c") and receipt.has_field("Reference__c")


@pytest.mark.parametrize("auto_number", [True, False])
def test_custom_object_fully_defined_in_both_yaml_and_sfdx_is_an_error(tmp_path: Path, auto_number: bool) -> None:
    yaml_path = yaml_object(tmp_path, "Invoice__c", INVOICE)
    objects = sfdx_project(tmp_path)
    sfdx_object(objects, "Invoice__c", "Bill", auto_number=auto_number)
    with pytest.raises(MetadataError) as error:
        load_project(tmp_path)
    message = str(error.value)
    assert "Invoice__c" in message and "already defined" in message
    assert str(yaml_path) in message


def test_key_prefixes_follow_the_deployed_schema(tmp_path: Path) -> None:
    yaml_object(tmp_path, "Invoice__c", INVOICE)
    first = load_project(tmp_path).schema
    yaml_object(tmp_path, "Aaa__c", "name: Aaa__c\nlabel: First\n")
    second = load_project(tmp_path, first).schema
    assert second.object("Invoice__c").key_prefix == first.object("Invoice__c").key_prefix
    assert second.object("Aaa__c").key_prefix != first.object("Invoice__c").key_prefix
    retired = load_project(tmp_path, None, retired_prefixes=[first.object("Invoice__c").key_prefix]).schema
    assert first.object("Invoice__c").key_prefix not in {o.key_prefix for o in retired}


def test_platform_events_and_change_data_capture_in_yaml(tmp_path: Path) -> None:
    yaml_object(tmp_path, "Order_Ready__e", "publishBehavior: PublishAfterCommit\nfields:\n"
                                            "  - {name: Amount__c, type: number}\n")
    yaml_object(tmp_path, "Account", "changeDataCapture: true\n")
    write(tmp_path / "metadata" / "channels" / "Big__chn.yaml", "members:\n  - {entity: Account, filter: "
                                                               "\"Name != null\", enrichedFields: [Industry]}\n")
    loaded = load_project(tmp_path)
    event = loaded.schema.object("Order_Ready__e")
    assert event is not None and event.is_event and event.publish_behavior == "PublishAfterCommit"
    assert loaded.schema.object("Account").change_data_capture  # type: ignore[union-attr]
    assert [(name, source.endswith("Big__chn.yaml")) for name, _, source in loaded.channels] == [("Big__chn", True)]


@pytest.mark.parametrize(("text", "message"), [
    ("publishBehavior: Later\n", "PublishImmediately"),
    ("fields:\n  - {name: Plain, type: text}\n", "end in __c"),
    ("fields:\n  - {name: Many__c, type: multipicklist, values: [a]}\n", "platform event fields"),
    ("changeDataCapture: true\n", "no changeDataCapture"),
])
def test_invalid_platform_events_are_refused(tmp_path: Path, text: str, message: str) -> None:
    yaml_object(tmp_path, "Bad__e", text)
    with pytest.raises(MetadataError, match=message):
        load_project(tmp_path)


def test_sample_metadata_defines_the_pattern_events(tmp_path: Path) -> None:
    loaded = load_project(tmp_path, include_sample=True)
    for name in ("Order_Request__e", "Printer_Status__e", "Payment_Received__e", "Case_Closed__e"):
        assert loaded.schema.object(name).is_event  # type: ignore[union-attr]
    [(channel, spec, _)] = loaded.channels
    assert channel == "ChangeEvents" and spec["members"] == ["Account", "Contact", "Opportunity", "Order", "Case"]
