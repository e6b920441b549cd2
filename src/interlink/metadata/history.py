"""Field history tracking: which objects may keep a history, and the read-only history objects themselves.

An object with ``enableHistory: true`` gets a history object generated from its definition when the schema is
loaded, named as the platform names it::

    Account      -> AccountHistory            (AccountId -> Account, child relationship Histories)
    Opportunity  -> OpportunityFieldHistory   (OpportunityId)
    Invoice__c   -> Invoice__History          (ParentId -> Invoice__c)

Every history object has the platform's fields (Id, the parent lookup, Field, DataType, OldValue, NewValue,
CreatedDate, CreatedById, IsDeleted), shares the platform's key prefix ``017``, and is read-only to every API:
the write path fills it (:mod:`interlink.records.field_history`). It is deployed, stored and reloaded like any
other object; its spec only names its parent (``historyOf``), so :func:`build_history_object` rebuilds it the
same way every time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from interlink.errors import MetadataError
from interlink.metadata.model import FieldDef, FieldType, ObjectDef

HISTORY_KEY_PREFIX = "017"
MAX_TRACKED_FIELDS = 20  # the platform's default per object (Field Audit Trail raises it to 60)
# Standard objects whose fields the platform can track (custom objects always can).
HISTORY_STANDARD_OBJECTS = frozenset({"Account", "Asset", "Case", "Contact", "Lead", "Opportunity", "Order",
                                      "OrderItem", "PricebookEntry", "Product2"})
HISTORY_RELATIONSHIP = "Histories"
CREATED = "created"  # the Field value of the row written when a record is created
# Fields the platform never tracks: kept by the system, or computed.
_UNTRACKABLE = frozenset({"Id", "IsDeleted", "CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById",
                          "SystemModstamp"})


def history_object_name(parent: str) -> str:
    """``Account`` -> ``AccountHistory``, ``Opportunity`` -> ``OpportunityFieldHistory``, ``Foo__c`` ->
    ``Foo__History``."""
    if parent.endswith("__c"):
        return parent[:-3] + "__History"
    if parent == "Opportunity":
        return "OpportunityFieldHistory"  # OpportunityHistory is the platform's stage history, another object
    return parent + "History"


def history_parent_field(parent: str) -> str:
    """The history object's lookup to the changed record: ``AccountId``, or ``ParentId`` for custom objects."""
    return "ParentId" if parent.endswith("__c") else parent + "Id"


def history_spec(parent: ObjectDef) -> dict[str, Any]:
    """The spec of ``parent``'s history object (what the store keeps; rebuilt by :func:`build_history_object`)."""
    label = f"{parent.label} Field History" if parent.name == "Opportunity" else f"{parent.label} History"
    return {"name": history_object_name(parent.name), "historyOf": parent.name, "keyPrefix": HISTORY_KEY_PREFIX,
            "label": label, "labelPlural": label}


def build_history_object(spec: Mapping[str, Any], source: str) -> ObjectDef:
    """The history object a ``historyOf`` spec describes: fixed fields, read-only, prefix ``017``."""
    unknown = set(spec) - {"name", "historyOf", "keyPrefix", "label", "labelPlural"}
    if unknown:
        raise MetadataError(f"{source}: unknown key(s) {', '.join(sorted(unknown))}")
    parent = str(spec.get("historyOf") or "")
    name = str(spec.get("name") or "")
    if not parent or name != history_object_name(parent):
        raise MetadataError(f"{source}: {name or '(unnamed)'} is not the history object of {parent or '(none)'}")
    label = str(spec.get("label") or f"{parent} History")
    custom = parent.endswith("__c")
    parent_field = history_parent_field(parent)

    def read_only(fdef: FieldDef) -> FieldDef:
        return fdef.with_changes(createable=False, updateable=False)

    fields = [
        FieldDef("Id", FieldType.ID, f"{label} ID", length=18),
        FieldDef("IsDeleted", FieldType.BOOLEAN, "Deleted", default_value=False),
        FieldDef(parent_field, FieldType.REFERENCE, "Parent ID" if custom else f"{parent} ID", length=18,
                 reference_to=(parent,), relationship_name="Parent" if custom else parent,
                 child_relationship_name=HISTORY_RELATIONSHIP, required=True),
        FieldDef("CreatedById", FieldType.REFERENCE, "Created By ID", length=18, reference_to=("User",),
                 relationship_name="CreatedBy"),
        FieldDef("CreatedDate", FieldType.DATETIME, "Created Date"),
        # The platform describes Field and DataType as restricted picklists and the values as anyType; here
        # they are text, and values are kept as their text (a lookup's id, a date as 2024-01-31, ...).
        FieldDef("Field", FieldType.STRING, "Changed Field", length=255, required=True),
        FieldDef("DataType", FieldType.STRING, "Data Type", length=40),
        FieldDef("OldValue", FieldType.STRING, "Old Value", length=255),
        FieldDef("NewValue", FieldType.STRING, "New Value", length=255),
    ]
    return ObjectDef(
        name=name, label=label, label_plural=str(spec.get("labelPlural") or label),
        key_prefix=str(spec.get("keyPrefix") or HISTORY_KEY_PREFIX), fields=tuple(read_only(f) for f in fields),
        custom=custom, createable=False, updateable=False, deletable=False, queryable=True, searchable=False,
        description=f"The history of changes to the tracked fields of {parent} records.", history_of=parent,
    )


def check_history(obj: ObjectDef, source: str) -> None:
    """The rules of ``enableHistory`` and ``trackHistory`` for one stored object."""
    tracked = [f for f in obj.fields if f.track_history]
    if not obj.enable_history and not tracked:
        return
    if not obj.custom and obj.name not in HISTORY_STANDARD_OBJECTS:
        raise MetadataError(f"{source}: {obj.name} does not support field history tracking (custom objects and "
                            f"{', '.join(sorted(HISTORY_STANDARD_OBJECTS))} do)")
    if tracked and not obj.enable_history:
        raise MetadataError(f"{source}: {obj.name}.{tracked[0].name} has trackHistory, but {obj.name} does not "
                            "enable history (enableHistory: true)")
    for fdef in tracked:
        if fdef.name in _UNTRACKABLE or fdef.auto_number:
            raise MetadataError(f"{source}: {obj.name}.{fdef.name} cannot be tracked (system and autonumber "
                                "fields are not tracked)")
    if len(tracked) > MAX_TRACKED_FIELDS:
        raise MetadataError(f"{source}: {obj.name} tracks {len(tracked)} fields; at most {MAX_TRACKED_FIELDS} "
                            "fields per object can be tracked")


def history_objects(objects: Iterable[ObjectDef]) -> list[ObjectDef]:
    """The history object of every object that enables history."""
    return [build_history_object(history_spec(obj), f"history of {obj.name}")
            for obj in objects if obj.enable_history and obj.is_stored and not obj.history_of]


def history_field_name(fdef: FieldDef) -> str:
    """The ``Field`` a history row names: a standard lookup by its relationship (``OwnerId`` -> ``Owner``),
    anything else by its API name."""
    if fdef.type is FieldType.REFERENCE and not fdef.custom and fdef.name.endswith("Id") and fdef.relationship_name:
        return fdef.relationship_name
    return fdef.name


__all__ = ["CREATED", "HISTORY_KEY_PREFIX", "HISTORY_RELATIONSHIP", "HISTORY_STANDARD_OBJECTS",
           "MAX_TRACKED_FIELDS", "build_history_object", "check_history", "history_field_name",
           "history_object_name", "history_objects", "history_parent_field", "history_spec"]
