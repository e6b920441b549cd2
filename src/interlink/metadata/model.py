"""Object and field definitions: the org's schema as frozen values.

Loaders (YAML, SFDX source) produce these; the store turns them into tables, the records pipeline
validates against them and describe renders them. Names are case-insensitive on the wire, so lookups
go through :meth:`ObjectDef.field` and :meth:`Schema.object`, which fold case.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any


class FieldType(enum.StrEnum):
    """Field types as describe reports them (``type``)."""

    ID = "id"
    STRING = "string"
    TEXTAREA = "textarea"
    EMAIL = "email"
    PHONE = "phone"
    URL = "url"
    PICKLIST = "picklist"
    MULTIPICKLIST = "multipicklist"
    BOOLEAN = "boolean"
    INT = "int"
    DOUBLE = "double"
    CURRENCY = "currency"
    PERCENT = "percent"
    DATE = "date"
    DATETIME = "datetime"
    TIME = "time"
    REFERENCE = "reference"


# Aliases accepted in YAML and SFDX metadata -> describe type. ``longtextarea`` and ``html`` are
# textareas with a larger length; ``autonumber`` is a string the platform fills in.
TYPE_ALIASES: dict[str, FieldType] = {
    "id": FieldType.ID,
    "string": FieldType.STRING,
    "text": FieldType.STRING,
    "textarea": FieldType.TEXTAREA,
    "longtextarea": FieldType.TEXTAREA,
    "longtext": FieldType.TEXTAREA,
    "richtextarea": FieldType.TEXTAREA,
    "html": FieldType.TEXTAREA,
    "email": FieldType.EMAIL,
    "phone": FieldType.PHONE,
    "url": FieldType.URL,
    "picklist": FieldType.PICKLIST,
    "multipicklist": FieldType.MULTIPICKLIST,
    "multiselectpicklist": FieldType.MULTIPICKLIST,
    "boolean": FieldType.BOOLEAN,
    "checkbox": FieldType.BOOLEAN,
    "int": FieldType.INT,
    "integer": FieldType.INT,
    "double": FieldType.DOUBLE,
    "number": FieldType.DOUBLE,
    "currency": FieldType.CURRENCY,
    "percent": FieldType.PERCENT,
    "date": FieldType.DATE,
    "datetime": FieldType.DATETIME,
    "time": FieldType.TIME,
    "reference": FieldType.REFERENCE,
    "lookup": FieldType.REFERENCE,
    "externallookup": FieldType.REFERENCE,
    "indirectlookup": FieldType.REFERENCE,
    "masterdetail": FieldType.REFERENCE,
    "autonumber": FieldType.STRING,
}

SOAP_TYPES: dict[FieldType, str] = {
    FieldType.ID: "tns:ID",
    FieldType.STRING: "xsd:string",
    FieldType.TEXTAREA: "xsd:string",
    FieldType.EMAIL: "xsd:string",
    FieldType.PHONE: "xsd:string",
    FieldType.URL: "xsd:string",
    FieldType.PICKLIST: "xsd:string",
    FieldType.MULTIPICKLIST: "xsd:string",
    FieldType.BOOLEAN: "xsd:boolean",
    FieldType.INT: "xsd:int",
    FieldType.DOUBLE: "xsd:double",
    FieldType.CURRENCY: "xsd:double",
    FieldType.PERCENT: "xsd:double",
    FieldType.DATE: "xsd:date",
    FieldType.DATETIME: "xsd:dateTime",
    FieldType.TIME: "xsd:time",
    FieldType.REFERENCE: "tns:ID",
}

TEXT_TYPES = frozenset(
    {
        FieldType.STRING,
        FieldType.TEXTAREA,
        FieldType.EMAIL,
        FieldType.PHONE,
        FieldType.URL,
        FieldType.PICKLIST,
        FieldType.MULTIPICKLIST,
    }
)
NUMBER_TYPES = frozenset({FieldType.DOUBLE, FieldType.CURRENCY, FieldType.PERCENT})

# Fields every object has, maintained by the records pipeline, never writable by callers.
SYSTEM_FIELDS = (
    "Id",
    "IsDeleted",
    "CreatedDate",
    "CreatedById",
    "LastModifiedDate",
    "LastModifiedById",
    "SystemModstamp",
)
AUDIT_FIELDS = frozenset({"CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById", "SystemModstamp"})


@dataclass(frozen=True, slots=True)
class PicklistValue:
    value: str
    label: str
    default: bool = False
    active: bool = True


@dataclass(frozen=True, slots=True)
class FieldDef:
    """One field of an object.

    ``createable``/``updateable`` false means callers may not set the field (system, formula-like or
    autonumber fields); the records pipeline may still write it.
    """

    name: str
    type: FieldType
    label: str = ""
    length: int = 0
    precision: int = 0
    scale: int = 0
    required: bool = False
    unique: bool = False
    external_id: bool = False
    case_sensitive: bool = False
    default_value: Any = None
    picklist_values: tuple[PicklistValue, ...] = ()
    restricted_picklist: bool = False
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    child_relationship_name: str | None = None
    master_detail: bool = False
    cascade_delete: bool = False
    auto_number: bool = False
    display_format: str | None = None
    start_number: int = 1
    name_field: bool = False
    createable: bool = True
    updateable: bool = True
    custom: bool = False
    description: str = ""
    help_text: str = ""
    # External objects: the remote column this field maps to (None: the field's own name).
    external_name: str | None = None
    # The parent field a lookup matches on: None for Id (a lookup), ``ExternalId`` for an external lookup,
    # a unique external-id field for an indirect lookup.
    reference_target_field: str | None = None
    # Field history tracking (``trackHistory``): changes are written to the object's history object.
    track_history: bool = False

    @property
    def nillable(self) -> bool:
        """Describe's ``nillable``: whether null is a legal value (booleans never are)."""
        return not (self.required or self.type is FieldType.BOOLEAN or self.type is FieldType.ID)

    @property
    def is_system(self) -> bool:
        return self.name in SYSTEM_FIELDS

    @property
    def picklist_names(self) -> frozenset[str]:
        return frozenset(v.value for v in self.picklist_values if v.active)

    def with_changes(self, **changes: Any) -> FieldDef:
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class ChildRelationship:
    child_object: str
    field: str
    relationship_name: str | None
    cascade_delete: bool


@dataclass(frozen=True)
class ObjectDef:
    """One object (sObject type) with its fields in declaration order."""

    name: str
    label: str
    label_plural: str
    key_prefix: str
    fields: tuple[FieldDef, ...]
    custom: bool = False
    createable: bool = True
    updateable: bool = True
    deletable: bool = True
    queryable: bool = True
    searchable: bool = True
    description: str = ""
    # "object" (records in a table) or "event" (a platform event: published to the bus, never stored).
    kind: str = "object"
    # Platform events: "PublishImmediately" or "PublishAfterCommit".
    publish_behavior: str = ""
    # Change Data Capture selected for this object in its metadata (``changeDataCapture: true``).
    change_data_capture: bool = False
    # External objects (``Name__x``): the data source and the remote table (entity set) that hold the rows.
    data_source: str = ""
    external_name: str = ""
    # Field history: this object keeps a history object (``enableHistory``) ...
    enable_history: bool = False
    # Record-level sharing default (organization-wide default): Private, Read, ReadWrite or ControlledByParent;
    # "" is ReadWrite.
    sharing_model: str = ""
    # "Grant Access Using Hierarchies": whether the users above a record's owner (and above the users it is shared
    # with) in the role hierarchy get its access. Always on for standard objects; custom ones may switch it off.
    grant_access_using_hierarchies: bool = True
    # ... or is one: the object whose tracked fields it records (AccountHistory -> Account).
    history_of: str = ""
    _by_lower: Mapping[str, FieldDef] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_lower", {f.name.lower(): f for f in self.fields})

    def field(self, name: str) -> FieldDef | None:
        """The field called ``name`` (case-insensitive), or None."""
        return self._by_lower.get(name.lower())

    def has_field(self, name: str) -> bool:
        return name.lower() in self._by_lower

    @property
    def is_event(self) -> bool:
        """A platform event (``Name__e``): published to the event bus, never stored as records."""
        return self.kind == "event"

    @property
    def is_external(self) -> bool:
        """An external object (``Name__x``): rows live in a remote system and are read and written live."""
        return self.kind == "external"

    @property
    def is_stored(self) -> bool:
        """Whether the org keeps this object's records in a table (neither an event nor an external object)."""
        return self.kind == "object"

    @property
    def tracked_fields(self) -> list[FieldDef]:
        """The fields whose changes go to the history object (none unless history is enabled)."""
        return [f for f in self.fields if f.track_history] if self.enable_history else []

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    @property
    def name_field(self) -> FieldDef | None:
        return next((f for f in self.fields if f.name_field), None)

    @property
    def external_id_fields(self) -> list[FieldDef]:
        return [f for f in self.fields if f.external_id]

    @property
    def reference_fields(self) -> list[FieldDef]:
        return [f for f in self.fields if f.type is FieldType.REFERENCE]

    def relationship(self, name: str) -> FieldDef | None:
        """The lookup whose relationship name is ``name`` (``Account`` for ``AccountId``; case-insensitive)."""
        lowered = name.lower()
        return next((f for f in self.reference_fields if (f.relationship_name or "").lower() == lowered), None)


class Schema:
    """The set of objects an org knows, looked up case-insensitively by name or key prefix."""

    def __init__(self, objects: Iterable[ObjectDef], version: str = "") -> None:
        self._objects: dict[str, ObjectDef] = {}
        self._by_prefix: dict[str, ObjectDef] = {}
        # Prefixes several objects share: every history object has 017, every custom share object 02c.
        self._sharing: dict[str, list[ObjectDef]] = {}
        for obj in objects:
            lowered = obj.name.lower()
            if lowered in self._objects:
                raise ValueError(f"object defined twice: {obj.name}")
            self._objects[lowered] = obj
            self._by_prefix[obj.key_prefix] = obj
            self._sharing.setdefault(obj.key_prefix, []).append(obj)
        self.version = version
        self._children = self._index_children()

    def _index_children(self) -> dict[str, list[ChildRelationship]]:
        children: dict[str, list[ChildRelationship]] = {}
        for obj in self._objects.values():
            for fdef in obj.reference_fields:
                for target in fdef.reference_to:
                    children.setdefault(target.lower(), []).append(
                        ChildRelationship(obj.name, fdef.name, fdef.child_relationship_name, fdef.cascade_delete)
                    )
        return children

    def object(self, name: str) -> ObjectDef | None:
        return self._objects.get(name.lower())

    def by_prefix(self, prefix: str) -> ObjectDef | None:
        return self._by_prefix.get(prefix)

    def objects_with_prefix(self, prefix: str) -> list[ObjectDef]:
        """Every object whose ids start with ``prefix``: one, except for the history objects (``017``) and the
        custom share objects (``02c``)."""
        return list(self._sharing.get(prefix, ()))

    def children_of(self, name: str) -> list[ChildRelationship]:
        return list(self._children.get(name.lower(), ()))

    def __iter__(self) -> Iterator[ObjectDef]:
        return iter(sorted(self._objects.values(), key=lambda o: o.name))

    def __len__(self) -> int:
        return len(self._objects)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._objects

