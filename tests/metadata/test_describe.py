"""Describe rendering: the shapes REST clients read from /sobjects and /sobjects/X/describe."""

from __future__ import annotations

import json
from typing import Any

import pytest

from interlink.metadata.describe import (
    basic_info,
    describe_field,
    describe_global,
    describe_global_entry,
    describe_sobject,
)
from interlink.metadata.model import ObjectDef, Schema
from interlink.metadata.spec import build_object
from interlink.metadata.standard_objects import load_standard_specs

VERSION = "59.0"
BASE = "/services/data/v59.0"

FIELD_KEYS = [
    "aggregatable", "aiPredictionField", "autoNumber", "byteLength", "calculated", "calculatedFormula",
    "cascadeDelete", "caseSensitive", "compoundFieldName", "controllerName", "createable", "custom",
    "defaultValue", "defaultValueFormula", "defaultedOnCreate", "dependentPicklist", "deprecatedAndHidden",
    "digits", "displayLocationInDecimal", "encrypted", "externalId", "extraTypeInfo", "filterable",
    "filteredLookupInfo", "formulaTreatNullNumberAsZero", "groupable", "highScaleNumber", "htmlFormatted",
    "idLookup", "inlineHelpText", "label", "length", "mask", "maskType", "name", "nameField", "namePointing",
    "nillable", "permissionable", "picklistValues", "polymorphicForeignKey", "precision", "queryByDistance",
    "referenceTargetField", "referenceTo", "relationshipName", "relationshipOrder", "restrictedDelete",
    "restrictedPicklist", "scale", "searchPrefilterable", "soapType", "sortable", "type", "unique",
    "updateable", "writeRequiresMasterRead",
]
GLOBAL_KEYS = [
    "activateable", "associateEntityType", "associateParentEntity", "createable", "custom", "customSetting",
    "deepCloneable", "deletable", "deprecatedAndHidden", "feedEnabled", "hasSubtypes", "isInterface",
    "isSubtype", "keyPrefix", "label", "labelPlural", "layoutable", "mergeable", "mruEnabled", "name",
    "queryable", "replicateable", "retrieveable", "searchable", "triggerable", "undeletable", "updateable",
    "urls",
]
DESCRIBE_ONLY_KEYS = {
    "actionOverrides", "childRelationships", "compactLayoutable", "defaultImplementation", "extendedBy",
    "extendsInterfaces", "fields", "implementedBy", "implementsInterfaces", "listviewable",
    "lookupLayoutable", "namedLayoutInfos", "networkScopeFieldName", "recordTypeInfos", "searchLayoutable",
    "sobjectDescribeOption", "supportedScopes",
}

INVOICE_SPEC: dict[str, Any] = {
    "name": "Invoice__c",
    "label": "Invoice",
    "labelPlural": "Invoices",
    "keyPrefix": "a00",
    "nameField": {"label": "Invoice Number", "type": "autonumber", "displayFormat": "INV-{0000}"},
    "fields": [
        {"name": "Account__c", "type": "lookup", "referenceTo": "Account",
         "childRelationshipName": "Invoices"},
        {"name": "Status__c", "type": "picklist", "restricted": True,
         "values": [{"value": "Draft", "default": True}, "Sent", {"value": "Paid", "label": "Paid in full"}]},
        {"name": "External_Id__c", "type": "text", "length": 40, "externalId": True, "unique": True},
        {"name": "Amount__c", "type": "currency", "precision": 16, "scale": 2, "required": True,
         "helpText": "Total including tax"},
        {"name": "Lines__c", "type": "int", "precision": 9},
        {"name": "Notes__c", "type": "longtextarea"},
        {"name": "Tags__c", "type": "multipicklist", "values": ["A", "B"]},
        {"name": "Paid__c", "type": "checkbox"},
    ],
}
LINE_SPEC: dict[str, Any] = {
    "name": "Invoice_Line__c",
    "label": "Invoice Line",
    "keyPrefix": "a01",
    "owner": False,
    "fields": [
        {"name": "Invoice__c", "type": "masterdetail", "referenceTo": "Invoice__c",
         "childRelationshipName": "Lines"},
    ],
}


@pytest.fixture(scope="module")
def schema() -> Schema:
    objects = [build_object(spec, f"standard/{spec['name']}") for spec in load_standard_specs()]
    objects += [build_object(INVOICE_SPEC, "invoice"), build_object(LINE_SPEC, "line")]
    return Schema(objects)


def _obj(schema: Schema, name: str) -> ObjectDef:
    obj = schema.object(name)
    assert obj is not None
    return obj


def _fields(described: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in described["fields"]}


def test_describe_global_lists_sorted_objects_with_urls(schema: Schema) -> None:
    body = describe_global(schema, VERSION)
    assert body["encoding"] == "UTF-8"
    assert body["maxBatchSize"] == 200
    names = [entry["name"] for entry in body["sobjects"]]
    assert names == sorted(names)
    assert len(names) == len(schema)
    account = next(entry for entry in body["sobjects"] if entry["name"] == "Account")
    assert list(account) == GLOBAL_KEYS
    assert account["keyPrefix"] == "001"
    assert account["urls"] == {
        "sobject": f"{BASE}/sobjects/Account",
        "describe": f"{BASE}/sobjects/Account/describe",
        "rowTemplate": f"{BASE}/sobjects/Account/{{ID}}",
    }
    assert account["queryable"] and account["createable"] and account["searchable"]
    assert account["mergeable"] and account["layoutable"] and account["triggerable"]


def test_global_entry_version_prefix_and_flags(schema: Schema) -> None:
    org = describe_global_entry(_obj(schema, "Organization"), "v61.0")
    assert org["urls"]["sobject"] == "/services/data/v61.0/sobjects/Organization"
    assert org["createable"] is False and org["deletable"] is False and org["undeletable"] is False
    assert org["layoutable"] is False and org["triggerable"] is False
    invoice = describe_global_entry(_obj(schema, "Invoice__c"), VERSION)
    assert invoice["custom"] is True and invoice["keyPrefix"] == "a00"
    assert invoice["associateEntityType"] is None and invoice["associateParentEntity"] is None


def test_basic_info_wraps_entry_and_recent_items(schema: Schema) -> None:
    recent = [{"attributes": {"type": "Account", "url": f"{BASE}/sobjects/Account/001000000000001AAA"},
               "Id": "001000000000001AAA", "Name": "Acme"}]
    info = basic_info(_obj(schema, "Account"), VERSION, recent)
    assert list(info) == ["objectDescribe", "recentItems"]
    assert info["objectDescribe"] == describe_global_entry(_obj(schema, "Account"), VERSION)
    assert info["recentItems"] == recent


def test_account_describe_top_level_shape(schema: Schema) -> None:
    described = describe_sobject(_obj(schema, "Account"), schema, VERSION, instance_url="https://org.local:8443")
    assert set(described) == set(GLOBAL_KEYS) | DESCRIBE_ONLY_KEYS
    assert list(described) == sorted(described)
    assert described["sobjectDescribeOption"] == "FULL"
    assert described["isInterface"] is False
    assert described["recordTypeInfos"] == [{
        "active": True, "available": True, "defaultRecordTypeMapping": True, "developerName": "Master",
        "master": True, "name": "Master", "recordTypeId": "012000000000000AAA",
        "urls": {"layout": f"{BASE}/sobjects/Account/describe/layouts/012000000000000AAA"},
    }]
    assert described["supportedScopes"] == [{"label": "All accounts", "name": "everything"},
                                            {"label": "My accounts", "name": "mine"}]
    urls = described["urls"]
    assert list(urls) == ["compactLayouts", "rowTemplate", "approvalLayouts", "uiDetailTemplate",
                          "uiEditTemplate", "defaultValues", "listviews", "describe", "uiNewRecord",
                          "quickActions", "layouts", "sobject"]
    assert urls["describe"] == f"{BASE}/sobjects/Account/describe"
    assert urls["uiNewRecord"] == "https://org.local:8443/001/e"
    assert urls["uiDetailTemplate"] == "https://org.local:8443/{ID}"


def test_account_child_relationships(schema: Schema) -> None:
    described = describe_sobject(_obj(schema, "Account"), schema, VERSION)
    children = {(c["childSObject"], c["field"]): c for c in described["childRelationships"]}
    contacts = children[("Contact", "AccountId")]
    assert contacts == {
        "cascadeDelete": True, "childSObject": "Contact", "deprecatedAndHidden": False, "field": "AccountId",
        "junctionIdListNames": [], "junctionReferenceTo": [], "relationshipName": "Contacts",
        "restrictedDelete": False,
    }
    assert children[("Invoice__c", "Account__c")]["relationshipName"] == "Invoices__r"
    assert children[("Account", "ParentId")]["relationshipName"] == "ChildAccounts"
    order = [(c["childSObject"], c["field"]) for c in described["childRelationships"]]
    assert order == sorted(order)


def test_master_detail_child_and_field(schema: Schema) -> None:
    invoice = describe_sobject(_obj(schema, "Invoice__c"), schema, VERSION)
    lines = next(c for c in invoice["childRelationships"] if c["childSObject"] == "Invoice_Line__c")
    assert lines["cascadeDelete"] is True and lines["relationshipName"] == "Lines__r"
    line = _fields(describe_sobject(_obj(schema, "Invoice_Line__c"), schema, VERSION))
    assert line["Invoice__c"]["relationshipOrder"] == 0
    assert line["Invoice__c"]["cascadeDelete"] is True
    assert line["Invoice__c"]["nillable"] is False
    assert line["Invoice__c"]["relationshipName"] == "Invoice__r"
    # an unowned custom object offers only the "everything" scope
    assert describe_sobject(_obj(schema, "Invoice_Line__c"), schema, VERSION)["supportedScopes"] == [
        {"label": "All invoice lines", "name": "everything"}
    ]


def test_id_field(schema: Schema) -> None:
    fields = _fields(describe_sobject(_obj(schema, "Account"), schema, VERSION))
    id_field = fields["Id"]
    assert id_field["type"] == "id"
    assert id_field["soapType"] == "tns:ID"
    assert id_field["length"] == 18 and id_field["byteLength"] == 18
    assert id_field["nillable"] is False
    assert id_field["createable"] is False and id_field["updateable"] is False
    assert id_field["idLookup"] is True and id_field["defaultedOnCreate"] is True
    assert id_field["filterable"] and id_field["sortable"] and id_field["groupable"]


def test_contact_name_is_person_name(schema: Schema) -> None:
    fields = _fields(describe_sobject(_obj(schema, "Contact"), schema, VERSION))
    name = fields["Name"]
    assert name["extraTypeInfo"] == "personname"
    assert name["createable"] is False and name["updateable"] is False
    assert name["nameField"] is True and name["idLookup"] is True
    assert fields["FirstName"]["compoundFieldName"] == "Name"
    assert fields["LastName"]["compoundFieldName"] == "Name"
    assert fields["Email"]["compoundFieldName"] is None
    account = _obj(schema, "Account")
    account_name_def = account.field("Name")
    assert account_name_def is not None
    account_name = describe_field(account_name_def, account)
    assert account_name["extraTypeInfo"] is None and account_name["nillable"] is False


def test_picklist_values_rendered(schema: Schema) -> None:
    fields = _fields(describe_sobject(_obj(schema, "Invoice__c"), schema, VERSION))
    status = fields["Status__c"]
    assert status["type"] == "picklist" and status["soapType"] == "xsd:string"
    assert status["restrictedPicklist"] is True
    assert status["picklistValues"] == [
        {"active": True, "defaultValue": True, "label": "Draft", "validFor": None, "value": "Draft"},
        {"active": True, "defaultValue": False, "label": "Sent", "validFor": None, "value": "Sent"},
        {"active": True, "defaultValue": False, "label": "Paid in full", "validFor": None, "value": "Paid"},
    ]
    assert status["defaultValue"] == "Draft" and status["defaultedOnCreate"] is True
    assert status["byteLength"] == 765
    industry = _fields(describe_sobject(_obj(schema, "Account"), schema, VERSION))["Industry"]
    assert industry["restrictedPicklist"] is False
    assert {"Banking", "Technology"} <= {v["value"] for v in industry["picklistValues"]}
    tags = fields["Tags__c"]
    assert tags["type"] == "multipicklist" and tags["filterable"] is True
    assert tags["sortable"] is False and tags["groupable"] is False


def test_reference_fields(schema: Schema) -> None:
    contact = _fields(describe_sobject(_obj(schema, "Contact"), schema, VERSION))
    account_id = contact["AccountId"]
    assert account_id["type"] == "reference" and account_id["soapType"] == "tns:ID"
    assert account_id["referenceTo"] == ["Account"]
    assert account_id["relationshipName"] == "Account"
    assert account_id["relationshipOrder"] is None
    assert account_id["polymorphicForeignKey"] is False
    owner = contact["OwnerId"]
    assert owner["referenceTo"] == ["User"] and owner["relationshipName"] == "Owner"
    assert owner["defaultedOnCreate"] is True and owner["nillable"] is False
    assert owner["polymorphicForeignKey"] is False
    assert contact["CreatedById"]["nillable"] is False
    invoice = _fields(describe_sobject(_obj(schema, "Invoice__c"), schema, VERSION))
    assert invoice["Account__c"]["referenceTo"] == ["Account"]
    assert invoice["Account__c"]["relationshipName"] == "Account__r"
    assert invoice["Account__c"]["custom"] is True
    task = _fields(describe_sobject(_obj(schema, "Task"), schema, VERSION))
    assert task["WhoId"]["referenceTo"] == ["Contact", "Lead"]
    assert task["WhoId"]["polymorphicForeignKey"] is True and task["WhoId"]["namePointing"] is True


def test_custom_field_rules(schema: Schema) -> None:
    fields = _fields(describe_sobject(_obj(schema, "Invoice__c"), schema, VERSION))
    name = fields["Name"]
    assert name["autoNumber"] is True and name["createable"] is False and name["updateable"] is False
    assert name["defaultedOnCreate"] is True and name["nillable"] is False and name["idLookup"] is True
    ext = fields["External_Id__c"]
    assert ext["externalId"] is True and ext["unique"] is True and ext["idLookup"] is True
    assert ext["length"] == 40 and ext["byteLength"] == 120 and ext["permissionable"] is True
    amount = fields["Amount__c"]
    assert (amount["type"], amount["soapType"]) == ("currency", "xsd:double")
    assert (amount["precision"], amount["scale"], amount["digits"]) == (16, 2, 0)
    assert amount["length"] == 0 and amount["byteLength"] == 0
    assert amount["groupable"] is False and amount["aggregatable"] is True
    assert amount["nillable"] is False and amount["permissionable"] is False
    assert amount["inlineHelpText"] == "Total including tax"
    lines = fields["Lines__c"]
    assert (lines["type"], lines["soapType"], lines["digits"], lines["precision"]) == ("int", "xsd:int", 9, 0)
    notes = fields["Notes__c"]
    assert notes["type"] == "textarea" and notes["extraTypeInfo"] == "plaintextarea"
    assert not (notes["filterable"] or notes["sortable"] or notes["groupable"] or notes["aggregatable"])
    paid = fields["Paid__c"]
    assert paid["defaultValue"] is False and paid["nillable"] is False
    assert paid["defaultedOnCreate"] is True and paid["soapType"] == "xsd:boolean"
    assert fields["Status__c"]["inlineHelpText"] is None


def test_short_textarea_and_audit_fields(schema: Schema) -> None:
    fields = _fields(describe_sobject(_obj(schema, "Account"), schema, VERSION))
    street = fields["BillingStreet"]
    assert street["extraTypeInfo"] == "plaintextarea"
    assert street["filterable"] and street["sortable"] and not street["groupable"]
    created = fields["CreatedDate"]
    assert (created["type"], created["soapType"]) == ("datetime", "xsd:dateTime")
    assert created["defaultedOnCreate"] is True and created["groupable"] is False
    assert created["createable"] is False and created["permissionable"] is False


@pytest.mark.parametrize(
    "name", ["Account", "Contact", "Task", "Organization", "Invoice__c", "Invoice_Line__c"]
)
def test_every_field_has_the_same_alphabetical_keys(schema: Schema, name: str) -> None:
    described = describe_sobject(_obj(schema, name), schema, VERSION)
    assert described["fields"]
    for field in described["fields"]:
        assert list(field) == FIELD_KEYS, field["name"]


def test_describe_is_json_serialisable(schema: Schema) -> None:
    for obj in schema:
        described = describe_sobject(obj, schema, VERSION)
        assert json.loads(json.dumps(described)) == described
    body = describe_global(schema, VERSION)
    assert json.loads(json.dumps(body)) == body
