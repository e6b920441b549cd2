"""Render the schema as the platform's REST describe JSON.

Pure functions from :mod:`interlink.metadata.model` values to plain dicts, shaped key for key like
the real resources (``/services/data/vXX.X/sobjects``, ``.../sobjects/X/`` and
``.../sobjects/X/describe``), so clients that read describe (simple-salesforce, ETL tools, code
generators) see what they expect. Keys come out in the platform's order, which is alphabetical for
every describe object; the results contain only JSON types (str, int, bool, None, list, dict).

``api_version`` may be given as ``"59.0"`` or ``"v59.0"``.
"""

from __future__ import annotations

from typing import Any

from interlink.metadata.model import (
    AUDIT_FIELDS,
    NUMBER_TYPES,
    SOAP_TYPES,
    TEXT_TYPES,
    FieldDef,
    FieldType,
    ObjectDef,
    Schema,
)

__all__ = [
    "MASTER_RECORD_TYPE_ID",
    "basic_info",
    "describe_field",
    "describe_global",
    "describe_global_entry",
    "describe_sobject",
]

MASTER_RECORD_TYPE_ID = "012000000000000AAA"
"""The id every org gives the implicit Master record type."""

MAX_BATCH_SIZE = 200

# Objects whose Name is a compound of the person-name parts (describe's ``extraTypeInfo: personname``).
PERSON_NAME_OBJECTS = frozenset({"Contact", "Lead", "User"})
PERSON_NAME_PARTS = frozenset({"Salutation", "FirstName", "MiddleName", "LastName", "Suffix"})
# Objects the platform can merge records of.
MERGEABLE_OBJECTS = frozenset({"Account", "Contact", "Lead", "Case"})
# Setup-like objects without page layouts or triggers.
NON_LAYOUTABLE_OBJECTS = frozenset({"Organization"})
NON_TRIGGERABLE_OBJECTS = frozenset({"Organization"})

# Long text areas (over this length) can't be filtered, sorted or aggregated.
SHORT_TEXT_LIMIT = 255
NOT_GROUPABLE_TYPES = frozenset(
    {
        FieldType.DOUBLE,
        FieldType.CURRENCY,
        FieldType.PERCENT,
        FieldType.DATETIME,
        FieldType.TEXTAREA,
        FieldType.MULTIPICKLIST,
    }
)


def _base(api_version: str) -> str:
    """``/services/data/vXX.X`` for ``"XX.X"`` or ``"vXX.X"``."""
    return f"/services/data/v{api_version.strip().removeprefix('v')}"


def _sobject_url(obj: ObjectDef, api_version: str) -> str:
    return f"{_base(api_version)}/sobjects/{obj.name}"


def _layoutable(obj: ObjectDef) -> bool:
    return obj.name not in NON_LAYOUTABLE_OBJECTS


def _sorted(mapping: dict[str, Any]) -> dict[str, Any]:
    """The mapping with its keys in the platform's (code point) order."""
    return {key: mapping[key] for key in sorted(mapping)}


def describe_global_entry(obj: ObjectDef, api_version: str) -> dict[str, Any]:
    """One entry of ``GET /services/data/vXX.X/sobjects`` (also the ``objectDescribe`` of basic info)."""
    sobject = _sobject_url(obj, api_version)
    layoutable = _layoutable(obj)
    return {
        "activateable": False,
        "associateEntityType": None,
        "associateParentEntity": None,
        "createable": obj.createable,
        "custom": obj.custom,
        "customSetting": False,
        "deepCloneable": False,
        "deletable": obj.deletable,
        "deprecatedAndHidden": False,
        "feedEnabled": False,
        "hasSubtypes": False,
        "isInterface": False,
        "isSubtype": False,
        "keyPrefix": obj.key_prefix,
        "label": obj.label,
        "labelPlural": obj.label_plural,
        "layoutable": layoutable,
        "mergeable": obj.name in MERGEABLE_OBJECTS,
        "mruEnabled": layoutable,
        "name": obj.name,
        "queryable": obj.queryable,
        "replicateable": obj.queryable,
        "retrieveable": obj.queryable,
        "searchable": obj.queryable and obj.searchable,
        "triggerable": obj.name not in NON_TRIGGERABLE_OBJECTS,
        "undeletable": obj.deletable,
        "updateable": obj.updateable,
        "urls": {
            "sobject": sobject,
            "describe": f"{sobject}/describe",
            "rowTemplate": f"{sobject}/{{ID}}",
        },
    }


def describe_global(schema: Schema, api_version: str) -> dict[str, Any]:
    """The body of ``GET /services/data/vXX.X/sobjects``: every object, sorted by name."""
    entries = [describe_global_entry(obj, api_version) for obj in schema]
    entries.sort(key=lambda entry: entry["name"])
    return {"encoding": "UTF-8", "maxBatchSize": MAX_BATCH_SIZE, "sobjects": entries}


def basic_info(obj: ObjectDef, api_version: str, recent_items: list[dict[str, Any]]) -> dict[str, Any]:
    """The body of ``GET /services/data/vXX.X/sobjects/X/``: the global entry plus recent records."""
    return {"objectDescribe": describe_global_entry(obj, api_version), "recentItems": recent_items}


def _child_relationships(obj: ObjectDef, schema: Schema) -> list[dict[str, Any]]:
    children = sorted(schema.children_of(obj.name), key=lambda c: (c.child_object, c.field))
    return [
        {
            "cascadeDelete": child.cascade_delete,
            "childSObject": child.child_object,
            "deprecatedAndHidden": False,
            "field": child.field,
            "junctionIdListNames": [],
            "junctionReferenceTo": [],
            "relationshipName": child.relationship_name,
            "restrictedDelete": False,
        }
        for child in children
    ]


def _supported_scopes(obj: ObjectDef) -> list[dict[str, str]]:
    plural = obj.label_plural.lower()
    scopes = [{"label": f"All {plural}", "name": "everything"}]
    if obj.has_field("OwnerId"):
        scopes.append({"label": f"My {plural}", "name": "mine"})
    return scopes


def describe_sobject(
    obj: ObjectDef, schema: Schema, api_version: str, *, instance_url: str = ""
) -> dict[str, Any]:
    """The body of ``GET /services/data/vXX.X/sobjects/X/describe``.

    ``instance_url`` (``scheme://host[:port]``) prefixes the ``ui*`` urls, which the platform gives as
    absolute addresses; without it they are host-relative paths.
    """
    sobject = _sobject_url(obj, api_version)
    layoutable = _layoutable(obj)
    ui = instance_url.rstrip("/")
    described = describe_global_entry(obj, api_version)
    described.update(
        {
            "actionOverrides": [],
            "childRelationships": _child_relationships(obj, schema),
            "compactLayoutable": layoutable,
            "defaultImplementation": None,
            "extendedBy": None,
            "extendsInterfaces": None,
            "fields": [describe_field(fdef, obj) for fdef in obj.fields],
            "implementedBy": None,
            "implementsInterfaces": None,
            "isInterface": False,
            "listviewable": None,
            "lookupLayoutable": None,
            "namedLayoutInfos": [],
            "networkScopeFieldName": None,
            "recordTypeInfos": [
                {
                    "active": True,
                    "available": True,
                    "defaultRecordTypeMapping": True,
                    "developerName": "Master",
                    "master": True,
                    "name": "Master",
                    "recordTypeId": MASTER_RECORD_TYPE_ID,
                    "urls": {"layout": f"{sobject}/describe/layouts/{MASTER_RECORD_TYPE_ID}"},
                }
            ],
            "searchLayoutable": layoutable,
            "sobjectDescribeOption": "FULL",
            "supportedScopes": _supported_scopes(obj),
            "urls": {
                "compactLayouts": f"{sobject}/describe/compactLayouts",
                "rowTemplate": f"{sobject}/{{ID}}",
                "approvalLayouts": f"{sobject}/describe/approvalLayouts",
                "uiDetailTemplate": f"{ui}/{{ID}}",
                "uiEditTemplate": f"{ui}/{{ID}}/e",
                "defaultValues": f"{sobject}/defaultValues?recordTypeId&fields",
                "listviews": f"{sobject}/listviews",
                "describe": f"{sobject}/describe",
                "uiNewRecord": f"{ui}/{obj.key_prefix}/e",
                "quickActions": f"{sobject}/quickActions",
                "layouts": f"{sobject}/describe/layouts",
                "sobject": sobject,
            },
        }
    )
    return _sorted(described)


def _is_long_text(fdef: FieldDef) -> bool:
    return fdef.type is FieldType.TEXTAREA and fdef.length > SHORT_TEXT_LIMIT


def _is_person_name(fdef: FieldDef, obj: ObjectDef) -> bool:
    return obj.name in PERSON_NAME_OBJECTS and fdef.name_field and fdef.name == "Name"


def _byte_length(fdef: FieldDef) -> int:
    if fdef.type in TEXT_TYPES:
        return fdef.length * 3
    if fdef.type in (FieldType.ID, FieldType.REFERENCE):
        return fdef.length  # ids are ASCII: the platform reports 18 for both
    return 0


def _nillable(fdef: FieldDef) -> bool:
    # The records pipeline always fills audit fields and autonumbers, so they are never null.
    return fdef.nillable and fdef.name not in AUDIT_FIELDS and not fdef.auto_number


def _defaulted_on_create(fdef: FieldDef) -> bool:
    return (
        fdef.type is FieldType.ID
        or fdef.name in AUDIT_FIELDS
        or fdef.name == "OwnerId"
        or fdef.type is FieldType.BOOLEAN
        or fdef.auto_number
        or fdef.default_value is not None
    )


def _id_lookup(fdef: FieldDef) -> bool:
    return (
        fdef.type is FieldType.ID
        or (fdef.name_field and fdef.name == "Name")
        or fdef.external_id
        or (fdef.unique and fdef.type in TEXT_TYPES)
    )


def _default_value(fdef: FieldDef) -> Any:
    value = fdef.default_value
    if value is None:
        return None
    if fdef.type is FieldType.BOOLEAN:
        return value if isinstance(value, bool) else str(value).strip().lower() == "true"
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _picklist_values(fdef: FieldDef) -> list[dict[str, Any]]:
    default = None if fdef.default_value is None else str(fdef.default_value)
    return [
        {
            "active": value.active,
            "defaultValue": value.default or (fdef.type is FieldType.PICKLIST and value.value == default),
            "label": value.label,
            "validFor": None,
            "value": value.value,
        }
        for value in fdef.picklist_values
    ]


def _relationship_order(fdef: FieldDef, obj: ObjectDef) -> int | None:
    """0 for an object's first master-detail field, 1 for the second (junction objects), else None."""
    if not fdef.master_detail:
        return None
    masters = [f.name for f in obj.fields if f.master_detail]
    return masters.index(fdef.name) if fdef.name in masters else 0


def _extra_type_info(fdef: FieldDef, obj: ObjectDef) -> str | None:
    if _is_person_name(fdef, obj):
        return "personname"
    if fdef.type is FieldType.TEXTAREA:
        return "plaintextarea"
    return None


def _compound_field_name(fdef: FieldDef, obj: ObjectDef) -> str | None:
    if obj.name in PERSON_NAME_OBJECTS and fdef.name in PERSON_NAME_PARTS:
        name = obj.field("Name")
        if name is not None and _is_person_name(name, obj):
            return name.name
    return None


def describe_field(fdef: FieldDef, obj: ObjectDef) -> dict[str, Any]:
    """One entry of a describe's ``fields``: the platform's 57 keys, alphabetical."""
    ftype = fdef.type
    long_text = _is_long_text(fdef)
    numeric = ftype in NUMBER_TYPES
    polymorphic = len(fdef.reference_to) > 1
    return {
        "aggregatable": not long_text,
        "aiPredictionField": False,
        "autoNumber": fdef.auto_number,
        "byteLength": _byte_length(fdef),
        "calculated": False,
        "calculatedFormula": None,
        "cascadeDelete": fdef.cascade_delete,
        "caseSensitive": fdef.case_sensitive,
        "compoundFieldName": _compound_field_name(fdef, obj),
        "controllerName": None,
        "createable": fdef.createable,
        "custom": fdef.custom,
        "defaultValue": _default_value(fdef),
        "defaultValueFormula": None,
        "defaultedOnCreate": _defaulted_on_create(fdef),
        "dependentPicklist": False,
        "deprecatedAndHidden": False,
        "digits": fdef.precision if ftype is FieldType.INT else 0,
        "displayLocationInDecimal": False,
        "encrypted": False,
        "externalId": fdef.external_id,
        "extraTypeInfo": _extra_type_info(fdef, obj),
        "filterable": not long_text,
        "filteredLookupInfo": None,
        "formulaTreatNullNumberAsZero": False,
        "groupable": ftype not in NOT_GROUPABLE_TYPES,
        "highScaleNumber": False,
        "htmlFormatted": False,
        "idLookup": _id_lookup(fdef),
        "inlineHelpText": fdef.help_text or None,
        "label": fdef.label or fdef.name,
        "length": fdef.length,
        "mask": None,
        "maskType": None,
        "name": fdef.name,
        "nameField": fdef.name_field,
        "namePointing": polymorphic,
        "nillable": _nillable(fdef),
        # Field-level security applies to optional, non-system fields (standard or custom).
        "permissionable": not (fdef.required or fdef.is_system or fdef.name_field),
        "picklistValues": _picklist_values(fdef),
        "polymorphicForeignKey": polymorphic,
        "precision": fdef.precision if numeric else 0,
        "queryByDistance": False,
        "referenceTargetField": fdef.reference_target_field,
        "referenceTo": list(fdef.reference_to),
        "relationshipName": fdef.relationship_name if ftype is FieldType.REFERENCE else None,
        "relationshipOrder": _relationship_order(fdef, obj),
        "restrictedDelete": False,
        "restrictedPicklist": fdef.restricted_picklist,
        "scale": fdef.scale if numeric else 0,
        "searchPrefilterable": False,
        "soapType": SOAP_TYPES[ftype],
        "sortable": not (long_text or ftype is FieldType.MULTIPICKLIST),
        "type": ftype.value,
        "unique": fdef.unique,
        "updateable": fdef.updateable,
        "writeRequiresMasterRead": False,
    }
