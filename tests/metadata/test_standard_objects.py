"""The packaged standard objects: every YAML file builds, and looks like the platform's object."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import pytest
import yaml

from interlink.metadata.model import FieldDef, FieldType, ObjectDef, Schema
from interlink.metadata.spec import build_object, object_to_spec
from interlink.metadata.standard_objects import load_standard_specs

EXPECTED_PREFIXES = {
    "User": "005",
    "Account": "001",
    "Contact": "003",
    "Lead": "00Q",
    "Opportunity": "006",
    "Order": "801",
    "OrderItem": "802",
    "Product2": "01t",
    "Pricebook2": "01s",
    "PricebookEntry": "01u",
    "Case": "500",
    "Asset": "02i",
    "Task": "00T",
    "Organization": "00D",
    "LoginHistory": "0Ya",
    "SetupAuditTrail": "0Ym",
    "Profile": "00e",
    "PermissionSet": "0PS",
    "PermissionSetAssignment": "0Pa",
    "PermissionSetGroup": "0PG",
    "PermissionSetGroupComponent": "0PH",
    "MutingPermissionSet": "0QM",
    "ObjectPermissions": "110",
    "FieldPermissions": "01k",
    "UserRole": "00E",
    "Group": "00G",
    "GroupMember": "011",
    "AccountShare": "00r",
    "OpportunityShare": "00t",
    "CaseShare": "01n",
    "ContactShare": "03s",
}
# Objects the platform defines without a name field.
WITHOUT_NAME_FIELD = {"LoginHistory", "SetupAuditTrail", "PermissionSetAssignment", "PermissionSetGroupComponent",
                      "ObjectPermissions", "FieldPermissions", "GroupMember", "AccountShare", "OpportunityShare",
                      "CaseShare", "ContactShare"}
SETUP_OBJECTS = {"Profile", "PermissionSet", "PermissionSetAssignment", "PermissionSetGroup",
                 "PermissionSetGroupComponent", "ObjectPermissions", "FieldPermissions", "MutingPermissionSet"}
SYSTEM_FIELDS = {"Id", "IsDeleted", "CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById",
                 "SystemModstamp"}


def _yaml_files() -> list[Any]:
    folder = files("interlink.metadata") / "standard"
    return sorted((f for f in folder.iterdir() if f.name.endswith(".yaml")), key=lambda f: f.name)


@pytest.fixture(scope="module")
def objects() -> dict[str, ObjectDef]:
    built: dict[str, ObjectDef] = {}
    for entry in _yaml_files():
        obj = build_object(yaml.safe_load(entry.read_text(encoding="utf-8")), f"standard/{entry.name}")
        built[obj.name] = obj
    return built


@pytest.fixture(scope="module")
def schema(objects: dict[str, ObjectDef]) -> Schema:
    return Schema(objects.values())


def _field(obj: ObjectDef, name: str) -> FieldDef:
    fdef = obj.field(name)
    assert fdef is not None, f"{obj.name}.{name} is missing"
    return fdef


def _values(fdef: FieldDef) -> list[str]:
    return [v.value for v in fdef.picklist_values]


# --- the folder as a whole ----------------------------------------------------------------------


@pytest.mark.parametrize("entry", _yaml_files(), ids=lambda f: f.name)
def test_each_file_is_a_standard_object_named_after_its_file(entry: Any) -> None:
    spec = yaml.safe_load(entry.read_text(encoding="utf-8"))
    obj = build_object(spec, entry.name)
    assert entry.name == f"{obj.name}.yaml"
    assert spec["standard"] is True
    assert not obj.custom
    assert obj.label and obj.label_plural


def test_exactly_the_expected_objects_with_platform_key_prefixes(objects: dict[str, ObjectDef]) -> None:
    assert {name: obj.key_prefix for name, obj in objects.items()} == EXPECTED_PREFIXES
    prefixes = [obj.key_prefix for obj in objects.values()]
    assert len(prefixes) == len(set(prefixes))


def test_schema_indexes_objects_by_prefix(schema: Schema) -> None:
    assert len(schema) == len(EXPECTED_PREFIXES)
    for name, prefix in EXPECTED_PREFIXES.items():
        found = schema.by_prefix(prefix)
        assert found is not None and found.name == name


def test_every_object_has_system_fields_and_one_name_field(objects: dict[str, ObjectDef]) -> None:
    for obj in objects.values():
        assert set(obj.field_names) >= SYSTEM_FIELDS, obj.name
        assert obj.field_names[0] == "Id"
        assert sum(1 for f in obj.fields if f.name_field) == (obj.name not in WITHOUT_NAME_FIELD), obj.name


def test_owner_field_only_where_the_platform_has_one(objects: dict[str, ObjectDef]) -> None:
    without_owner = {"User", "Organization", "OrderItem", "PricebookEntry", "Product2", "Pricebook2", "LoginHistory",
                     "SetupAuditTrail", "UserRole", "Group", "GroupMember", "AccountShare", "OpportunityShare",
                     "CaseShare", "ContactShare", *SETUP_OBJECTS}
    for obj in objects.values():
        assert obj.has_field("OwnerId") is (obj.name not in without_owner), obj.name
    owner = _field(objects["Account"], "OwnerId")
    assert owner.reference_to == ("User",) and owner.relationship_name == "Owner"


def test_every_reference_points_at_a_known_object(objects: dict[str, ObjectDef]) -> None:
    for obj in objects.values():
        for fdef in obj.reference_fields:
            for target in fdef.reference_to:
                assert target in objects, f"{obj.name}.{fdef.name} -> {target}"
            assert fdef.relationship_name, f"{obj.name}.{fdef.name}"


def test_child_relationship_names_are_unique_per_parent(schema: Schema) -> None:
    for obj in schema:
        names = [c.relationship_name for c in schema.children_of(obj.name) if c.relationship_name]
        assert len(names) == len(set(names)), (obj.name, names)


def test_specs_round_trip_through_object_to_spec(objects: dict[str, ObjectDef]) -> None:
    for obj in objects.values():
        assert build_object(object_to_spec(obj), obj.name) == obj


def test_loader_returns_every_packaged_spec_sorted() -> None:
    specs = load_standard_specs()
    names = [spec["name"] for spec in specs]
    assert names == sorted(names, key=lambda n: f"{n}.yaml")
    assert set(names) == set(EXPECTED_PREFIXES)
    assert all(isinstance(spec, dict) and spec["standard"] is True for spec in specs)


# --- relationships users query -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("child", "field", "parent", "relationship", "child_relationship"),
    [
        ("Contact", "AccountId", "Account", "Account", "Contacts"),
        ("Opportunity", "AccountId", "Account", "Account", "Opportunities"),
        ("Case", "AccountId", "Account", "Account", "Cases"),
        ("Case", "ContactId", "Contact", "Contact", "Cases"),
        ("Asset", "AccountId", "Account", "Account", "Assets"),
        ("Order", "AccountId", "Account", "Account", "Orders"),
        ("OrderItem", "OrderId", "Order", "Order", "OrderItems"),
        ("PricebookEntry", "Product2Id", "Product2", "Product2", "PricebookEntries"),
        ("PricebookEntry", "Pricebook2Id", "Pricebook2", "Pricebook2", "PricebookEntries"),
        ("Account", "ParentId", "Account", "Parent", "ChildAccounts"),
        ("User", "ManagerId", "User", "Manager", "ManagedUsers"),
    ],
)
def test_lookup_relationships(objects: dict[str, ObjectDef], child: str, field: str, parent: str,
                              relationship: str, child_relationship: str) -> None:
    fdef = _field(objects[child], field)
    assert fdef.type is FieldType.REFERENCE
    assert fdef.reference_to == (parent,)
    assert fdef.relationship_name == relationship
    assert fdef.child_relationship_name == child_relationship


def test_account_children_are_listed_by_relationship_name(schema: Schema) -> None:
    names = {c.relationship_name for c in schema.children_of("Account")}
    assert {"Contacts", "Opportunities", "Cases", "Assets", "Orders", "Tasks", "ChildAccounts"} <= names


def test_task_who_and_what_are_polymorphic(objects: dict[str, ObjectDef]) -> None:
    task = objects["Task"]
    who = _field(task, "WhoId")
    what = _field(task, "WhatId")
    assert who.reference_to == ("Contact", "Lead") and who.relationship_name == "Who"
    assert set(what.reference_to) == {"Account", "Opportunity", "Case", "Asset", "Order", "Product2"}
    assert what.relationship_name == "What"
    assert who.child_relationship_name == what.child_relationship_name == "Tasks"


def test_order_item_is_a_detail_of_order(objects: dict[str, ObjectDef]) -> None:
    order_id = _field(objects["OrderItem"], "OrderId")
    assert order_id.master_detail and order_id.cascade_delete and order_id.required
    assert not order_id.updateable


# --- name fields ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obj_name", "field", "display_format"),
    [("Case", "CaseNumber", "{00000000}"), ("Order", "OrderNumber", "{00000000}"),
     ("OrderItem", "OrderItemNumber", "{0000000000}")],
)
def test_autonumber_name_fields(objects: dict[str, ObjectDef], obj_name: str, field: str,
                                display_format: str) -> None:
    name_field = objects[obj_name].name_field
    assert name_field is not None and name_field.name == field
    assert name_field.auto_number and name_field.type is FieldType.STRING
    assert name_field.display_format == display_format
    assert not name_field.createable and not name_field.updateable and not name_field.required


@pytest.mark.parametrize("obj_name", ["Contact", "Lead", "User"])
def test_person_names_are_computed_from_first_and_last(objects: dict[str, ObjectDef], obj_name: str) -> None:
    obj = objects[obj_name]
    name = obj.name_field
    assert name is not None and name.name == "Name"
    assert name.length == 121 and not name.createable and not name.updateable and not name.required
    last = _field(obj, "LastName")
    assert last.required and last.length == 80
    assert not _field(obj, "FirstName").required


@pytest.mark.parametrize("obj_name", ["Account", "Opportunity", "Product2", "Pricebook2", "Asset"])
def test_plain_name_fields_are_required(objects: dict[str, ObjectDef], obj_name: str) -> None:
    name = objects[obj_name].name_field
    assert name is not None and name.name == "Name"
    assert name.required and name.createable and name.updateable


def test_task_subject_is_an_optional_name_field(objects: dict[str, ObjectDef]) -> None:
    subject = objects["Task"].name_field
    assert subject is not None and subject.name == "Subject"
    assert subject.length == 255 and not subject.required


# --- required fields, picklists and defaults --------------------------------------------------------


def test_opportunity_stage_and_close_date(objects: dict[str, ObjectDef]) -> None:
    opp = objects["Opportunity"]
    stage = _field(opp, "StageName")
    assert stage.type is FieldType.PICKLIST and stage.required
    assert {"Prospecting", "Id. Decision Makers", "Proposal/Price Quote", "Closed Won", "Closed Lost"} \
        <= set(_values(stage))
    close = _field(opp, "CloseDate")
    assert close.type is FieldType.DATE and close.required
    for read_only in ("IsClosed", "IsWon", "ExpectedRevenue"):
        fdef = _field(opp, read_only)
        assert not fdef.createable and not fdef.updateable
    assert _field(opp, "Amount").type is FieldType.CURRENCY
    assert _field(opp, "Probability").type is FieldType.PERCENT


@pytest.mark.parametrize(
    ("obj_name", "field", "values", "default"),
    [
        ("Lead", "Status", ["Open - Not Contacted", "Working - Contacted", "Closed - Converted",
                            "Closed - Not Converted"], "Open - Not Contacted"),
        ("Order", "Status", ["Draft", "Activated"], "Draft"),
        ("Case", "Status", ["New", "Working", "Escalated", "Closed"], "New"),
        ("Case", "Priority", ["High", "Medium", "Low"], "Medium"),
        ("Task", "Status", ["Not Started", "In Progress", "Completed", "Waiting on someone else",
                            "Deferred"], "Not Started"),
        ("Task", "Priority", ["High", "Normal", "Low"], "Normal"),
    ],
)
def test_required_picklists_with_defaults(objects: dict[str, ObjectDef], obj_name: str, field: str,
                                          values: list[str], default: str) -> None:
    fdef = _field(objects[obj_name], field)
    assert fdef.type is FieldType.PICKLIST and fdef.required
    assert _values(fdef) == values
    assert fdef.default_value == default
    assert [v.value for v in fdef.picklist_values if v.default] == [default]


def test_case_origin_and_other_picklists(objects: dict[str, ObjectDef]) -> None:
    assert _values(_field(objects["Case"], "Origin")) == ["Phone", "Email", "Web"]
    industry = _values(_field(objects["Account"], "Industry"))
    assert {"Banking", "Food & Beverage", "Not For Profit", "Technology", "Other"} <= set(industry)
    assert _values(_field(objects["Asset"], "Status")) == ["Purchased", "Shipped", "Installed",
                                                            "Registered", "Obsolete"]
    assert "Mr." in _values(_field(objects["Contact"], "Salutation"))


@pytest.mark.parametrize(
    ("obj_name", "fields"),
    [
        ("Lead", ["LastName", "Company", "Status"]),
        ("Order", ["AccountId", "EffectiveDate", "Status"]),
        ("OrderItem", ["OrderId", "Quantity", "UnitPrice", "PricebookEntryId"]),
        ("PricebookEntry", ["Pricebook2Id", "Product2Id", "UnitPrice"]),
        ("User", ["Username", "LastName", "Email", "Alias", "TimeZoneSidKey", "LocaleSidKey",
                  "EmailEncodingKey", "LanguageLocaleKey"]),
    ],
)
def test_required_fields(objects: dict[str, ObjectDef], obj_name: str, fields: list[str]) -> None:
    for name in fields:
        assert _field(objects[obj_name], name).required, f"{obj_name}.{name}"


@pytest.mark.parametrize(
    ("obj_name", "fields"),
    [
        ("Case", ["IsClosed", "ClosedDate"]),
        ("Task", ["IsClosed"]),
        ("OrderItem", ["TotalPrice", "ListPrice"]),
        ("Order", ["TotalAmount"]),
        ("PricebookEntry", ["Name", "ProductCode"]),
        ("Pricebook2", ["IsStandard"]),
    ],
)
def test_read_only_fields(objects: dict[str, ObjectDef], obj_name: str, fields: list[str]) -> None:
    for name in fields:
        fdef = _field(objects[obj_name], name)
        assert not fdef.createable and not fdef.updateable, f"{obj_name}.{name}"


def test_user_defaults_and_uniqueness(objects: dict[str, ObjectDef]) -> None:
    user = objects["User"]
    assert not user.deletable
    username = _field(user, "Username")
    assert username.unique and username.length == 80
    assert _field(user, "Alias").length == 8
    assert _field(user, "IsActive").default_value is True
    assert _field(user, "TimeZoneSidKey").default_value == "America/Los_Angeles"
    assert _field(user, "LocaleSidKey").default_value == "en_US"
    assert _field(user, "EmailEncodingKey").default_value == "UTF-8"
    assert _field(user, "LanguageLocaleKey").default_value == "en_US"
    assert _field(user, "UserType").default_value == "Standard"


def test_organization_is_read_only(objects: dict[str, ObjectDef]) -> None:
    org = objects["Organization"]
    assert not org.createable and not org.updateable and not org.deletable and org.queryable
    for name in ("Name", "OrganizationType", "IsSandbox", "InstanceName", "NamespacePrefix",
                 "TimeZoneSidKey", "LanguageLocaleKey", "DefaultLocaleSidKey"):
        fdef = _field(org, name)
        assert not fdef.createable and not fdef.updateable
    assert _field(org, "IsSandbox").type is FieldType.BOOLEAN


# --- types and lengths users notice in describe -----------------------------------------------------


@pytest.mark.parametrize(
    ("obj_name", "field", "ftype", "length"),
    [
        ("Account", "Name", FieldType.STRING, 255),
        ("Account", "BillingStreet", FieldType.TEXTAREA, 255),
        ("Account", "BillingCity", FieldType.STRING, 40),
        ("Account", "Description", FieldType.TEXTAREA, 32000),
        ("Account", "Website", FieldType.URL, 255),
        ("Account", "Phone", FieldType.PHONE, 40),
        ("Contact", "Email", FieldType.EMAIL, 80),
        ("Contact", "MailingPostalCode", FieldType.STRING, 20),
        ("Lead", "Company", FieldType.STRING, 255),
        ("Opportunity", "Name", FieldType.STRING, 120),
        ("Case", "Subject", FieldType.STRING, 255),
        ("User", "Email", FieldType.EMAIL, 128),
    ],
)
def test_text_types_and_lengths(objects: dict[str, ObjectDef], obj_name: str, field: str,
                                ftype: FieldType, length: int) -> None:
    fdef = _field(objects[obj_name], field)
    assert fdef.type is ftype and fdef.length == length


def test_number_and_date_types(objects: dict[str, ObjectDef]) -> None:
    account = objects["Account"]
    assert _field(account, "AnnualRevenue").type is FieldType.CURRENCY
    assert _field(account, "NumberOfEmployees").type is FieldType.INT
    assert _field(objects["Contact"], "Birthdate").type is FieldType.DATE
    assert _field(objects["Asset"], "Quantity").type is FieldType.DOUBLE
    assert _field(objects["Asset"], "InstallDate").type is FieldType.DATE
    assert _field(objects["Task"], "CallDurationInSeconds").type is FieldType.INT
    assert _field(objects["Case"], "ClosedDate").type is FieldType.DATETIME


def test_no_compound_address_fields(objects: dict[str, ObjectDef]) -> None:
    for obj in objects.values():
        for name in ("BillingAddress", "ShippingAddress", "MailingAddress", "OtherAddress", "Address"):
            assert not obj.has_field(name), f"{obj.name}.{name}"


def test_labels_match_the_platform(objects: dict[str, ObjectDef]) -> None:
    labels = {name: (obj.label, obj.label_plural) for name, obj in objects.items()}
    assert labels["Opportunity"] == ("Opportunity", "Opportunities")
    assert labels["OrderItem"] == ("Order Product", "Order Products")
    assert labels["Pricebook2"] == ("Price Book", "Price Books")
    assert labels["PricebookEntry"] == ("Price Book Entry", "Price Book Entries")
    assert labels["Product2"] == ("Product", "Products")
    assert _field(objects["Contact"], "AccountId").label == "Account ID"
    assert _field(objects["Account"], "Name").label == "Account Name"
