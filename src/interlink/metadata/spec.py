"""Object specs: the plain-dict form every metadata loader produces and the store persists.

A spec is what a YAML file under ``metadata/objects/`` holds (see ``docs/metadata.md``)::

    name: Invoice__c
    label: Invoice
    labelPlural: Invoices
    nameField: {label: Invoice Number, type: autonumber, displayFormat: "INV-{0000}"}
    fields:
      - {name: Amount__c, type: currency, precision: 16, scale: 2, required: true}
      - {name: Account__c, type: lookup, referenceTo: Account, childRelationshipName: Invoices}

``build_object`` validates a spec and turns it into an :class:`ObjectDef` with the system fields
added; ``object_to_spec`` goes back, so a deployed schema can be stored and reloaded exactly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from interlink.errors import MetadataError
from interlink.metadata.history import build_history_object, check_history
from interlink.metadata.model import (
    TYPE_ALIASES,
    FieldDef,
    FieldType,
    ObjectDef,
    PicklistValue,
)

Spec = dict[str, Any]

_API_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_DEFAULT_LENGTHS = {
    FieldType.STRING: 255,
    FieldType.TEXTAREA: 255,
    FieldType.EMAIL: 80,
    FieldType.PHONE: 40,
    FieldType.URL: 255,
    FieldType.PICKLIST: 255,
    FieldType.MULTIPICKLIST: 4099,
    FieldType.ID: 18,
    FieldType.REFERENCE: 18,
}
_LONG_TEXT_ALIASES = {"longtextarea": 32768, "longtext": 32768, "richtextarea": 32768, "html": 32768}

_FIELD_KEYS = {
    "name", "type", "label", "length", "precision", "scale", "required", "unique", "externalId",
    "caseSensitive", "defaultValue", "values", "restricted", "referenceTo", "relationshipName",
    "childRelationshipName", "cascadeDelete", "displayFormat", "startNumber", "nameField", "createable",
    "updateable", "description", "helpText", "visibleLines", "externalName", "referenceTargetField",
    "trackHistory",
}
_OBJECT_KEYS = {
    "name", "label", "labelPlural", "keyPrefix", "description", "nameField", "fields", "standard",
    "owner", "createable", "updateable", "deletable", "queryable", "searchable", "publishBehavior",
    "changeDataCapture", "dataSource", "externalName", "externalKey", "enableHistory", "sharingModel",
    "grantAccessUsingHierarchies",
}
SHARING_MODELS = ("Private", "Read", "ReadWrite", "ControlledByParent")
PUBLISH_BEHAVIORS = ("PublishImmediately", "PublishAfterCommit")
# Fields every platform event has (describe order), set by the bus when the event is published.
EVENT_SYSTEM_FIELDS = ("ReplayId", "CreatedDate", "CreatedById", "EventUuid")


def _where(source: str, *path: object) -> str:
    location = ".".join(str(p) for p in path if p != "")
    return f"{source}: {location}" if location else source


def _as_bool(value: Any, source: str, *path: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    raise MetadataError(f"{_where(source, *path)}: expected true or false, got {value!r}")


def _as_int(value: Any, source: str, *path: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise MetadataError(f"{_where(source, *path)}: expected a whole number, got {value!r}")
    try:
        return int(value)
    except ValueError:
        raise MetadataError(f"{_where(source, *path)}: expected a whole number, got {value!r}") from None


def _picklist(raw: Any, source: str, *path: object) -> tuple[PicklistValue, ...]:
    if not isinstance(raw, list) or not raw:
        raise MetadataError(f"{_where(source, *path)}: a picklist needs a non-empty list of values")
    values: list[PicklistValue] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        if isinstance(item, str | int | float) and not isinstance(item, bool):
            entry = PicklistValue(value=str(item), label=str(item))
        elif isinstance(item, Mapping) and "value" in item:
            entry = PicklistValue(
                value=str(item["value"]),
                label=str(item.get("label", item["value"])),
                default=_as_bool(item.get("default", False), source, *path, index, "default"),
                active=_as_bool(item.get("active", True), source, *path, index, "active"),
            )
        else:
            raise MetadataError(f"{_where(source, *path, index)}: a picklist value is a string or {{value, label}}")
        if entry.value in seen:
            raise MetadataError(f"{_where(source, *path, index)}: duplicate picklist value {entry.value!r}")
        seen.add(entry.value)
        values.append(entry)
    return tuple(values)


def build_field(raw: Mapping[str, Any], source: str, path: tuple[object, ...], *, custom_object: bool) -> FieldDef:
    """Validate one field spec and return its :class:`FieldDef`."""
    if not isinstance(raw, Mapping):
        raise MetadataError(f"{_where(source, *path)}: a field is a mapping of keys, got {type(raw).__name__}")
    unknown = set(raw) - _FIELD_KEYS
    if unknown:
        raise MetadataError(f"{_where(source, *path)}: unknown key(s) {', '.join(sorted(unknown))}")
    name = raw.get("name")
    if not isinstance(name, str) or not _API_NAME.match(name):
        raise MetadataError(f"{_where(source, *path, 'name')}: a field needs an API name, got {name!r}")
    type_name = str(raw.get("type", "")).replace("_", "").lower()
    if "type" not in raw:
        raise MetadataError(f"{_where(source, *path, 'type')}: field {name} has no type (an entry without one may "
                            "only change a field the object already has, such as {name: Industry, trackHistory: "
                            "true})")
    if type_name not in TYPE_ALIASES:
        known = ", ".join(sorted(TYPE_ALIASES))
        raise MetadataError(f"{_where(source, *path, 'type')}: unknown field type {raw.get('type')!r} (known: {known})")
    ftype = TYPE_ALIASES[type_name]
    custom = name.endswith("__c")
    if custom_object and not custom and name != "Name":
        raise MetadataError(f"{_where(source, *path, 'name')}: custom fields end in __c: {name}")

    length = _as_int(raw.get("length", _LONG_TEXT_ALIASES.get(type_name, _DEFAULT_LENGTHS.get(ftype, 0))),
                     source, *path, "length")
    if ftype in (FieldType.STRING,) and not 1 <= length <= 255 and type_name != "autonumber":
        raise MetadataError(f"{_where(source, *path, 'length')}: text length must be 1..255, got {length}")
    if ftype is FieldType.TEXTAREA and not 1 <= length <= 131072:
        raise MetadataError(f"{_where(source, *path, 'length')}: long text length must be 1..131072, got {length}")

    precision = _as_int(raw.get("precision", 18), source, *path, "precision")
    scale = _as_int(raw.get("scale", 0 if ftype is FieldType.INT else 2), source, *path, "scale")
    if ftype in (FieldType.DOUBLE, FieldType.CURRENCY, FieldType.PERCENT, FieldType.INT) and not (
        1 <= precision <= 18 and 0 <= scale <= precision
    ):
        raise MetadataError(f"{_where(source, *path)}: precision must be 1..18 and scale 0..precision")

    picklist: tuple[PicklistValue, ...] = ()
    if ftype in (FieldType.PICKLIST, FieldType.MULTIPICKLIST):
        picklist = _picklist(raw.get("values"), source, *path, "values")
    elif "values" in raw:
        raise MetadataError(f"{_where(source, *path, 'values')}: only picklists have values")

    reference_to: tuple[str, ...] = ()
    master_detail = type_name == "masterdetail"
    if ftype is FieldType.REFERENCE:
        targets = raw.get("referenceTo")
        if isinstance(targets, str):
            targets = [targets]
        if not targets or not all(isinstance(t, str) and _API_NAME.match(t) for t in targets):
            raise MetadataError(f"{_where(source, *path, 'referenceTo')}: a lookup names the object(s) it points to")
        reference_to = tuple(targets)

    auto_number = type_name == "autonumber"
    display_format = raw.get("displayFormat")
    if auto_number:
        display_format = str(display_format or "{0}")
        if not re.search(r"\{0+\}", display_format):
            raise MetadataError(f"{_where(source, *path, 'displayFormat')}: must contain {{0}} or {{000}}")
        length = 30

    relationship_name = raw.get("relationshipName")
    if ftype is FieldType.REFERENCE and relationship_name is None:
        relationship_name = name[:-3] + "__r" if custom else (name[:-2] if name.endswith("Id") else name)
    child_name = raw.get("childRelationshipName")
    if ftype is FieldType.REFERENCE and custom and child_name and not str(child_name).endswith("__r"):
        child_name = f"{child_name}__r"

    required = _as_bool(raw.get("required", master_detail), source, *path, "required")
    default_value = raw.get("defaultValue")
    if ftype is FieldType.BOOLEAN and default_value is None:
        default_value = False
    if ftype in (FieldType.PICKLIST,) and default_value is None:
        default_value = next((v.value for v in picklist if v.default), None)
    if ftype is FieldType.PICKLIST and default_value is not None and str(default_value) not in {
        v.value for v in picklist
    }:
        raise MetadataError(f"{_where(source, *path, 'defaultValue')}: {default_value!r} is not one of the values")

    target_field = raw.get("referenceTargetField")
    if type_name == "externallookup":
        target_field = target_field or "ExternalId"
    if type_name == "indirectlookup" and not target_field:
        raise MetadataError(f"{_where(source, *path, 'referenceTargetField')}: an indirect lookup names the "
                            "parent's unique external-id field it matches on")
    if target_field is not None and (ftype is not FieldType.REFERENCE or not _API_NAME.match(str(target_field))):
        raise MetadataError(f"{_where(source, *path, 'referenceTargetField')}: only lookups match on a parent field")
    external_name = raw.get("externalName")
    if external_name is not None and not isinstance(external_name, str):
        raise MetadataError(f"{_where(source, *path, 'externalName')}: the remote column name is text")

    writable_default = not auto_number
    return FieldDef(
        name=name,
        type=ftype,
        label=str(raw.get("label") or _label_from_name(name)),
        length=length if ftype not in (FieldType.INT, FieldType.DOUBLE, FieldType.CURRENCY,
                                        FieldType.PERCENT, FieldType.BOOLEAN, FieldType.DATE,
                                        FieldType.DATETIME, FieldType.TIME) else 0,
        precision=precision if ftype in (FieldType.DOUBLE, FieldType.CURRENCY, FieldType.PERCENT,
                                          FieldType.INT) else 0,
        scale=scale if ftype in (FieldType.DOUBLE, FieldType.CURRENCY, FieldType.PERCENT) else 0,
        required=required,
        unique=_as_bool(raw.get("unique", False), source, *path, "unique"),
        external_id=_as_bool(raw.get("externalId", False), source, *path, "externalId"),
        case_sensitive=_as_bool(raw.get("caseSensitive", False), source, *path, "caseSensitive"),
        default_value=default_value,
        picklist_values=picklist,
        restricted_picklist=_as_bool(raw.get("restricted", False), source, *path, "restricted"),
        reference_to=reference_to,
        relationship_name=relationship_name if ftype is FieldType.REFERENCE else None,
        child_relationship_name=str(child_name) if child_name else None,
        master_detail=master_detail,
        cascade_delete=_as_bool(raw.get("cascadeDelete", master_detail), source, *path, "cascadeDelete"),
        auto_number=auto_number,
        display_format=display_format if auto_number else None,
        start_number=_as_int(raw.get("startNumber", 1), source, *path, "startNumber"),
        name_field=_as_bool(raw.get("nameField", False), source, *path, "nameField"),
        createable=_as_bool(raw.get("createable", writable_default), source, *path, "createable"),
        updateable=_as_bool(raw.get("updateable", writable_default), source, *path, "updateable"),
        custom=custom,
        description=str(raw.get("description", "")),
        help_text=str(raw.get("helpText", "")),
        external_name=external_name,
        reference_target_field=str(target_field) if target_field else None,
        track_history=_as_bool(raw.get("trackHistory", False), source, *path, "trackHistory"),
    )


def _label_from_name(name: str) -> str:
    base = name.removesuffix("__c").removesuffix("Id") or name
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", base).replace("_", " ").strip()


def _system_fields(obj_name: str, owner: bool) -> list[FieldDef]:
    audit_user = ("User",)
    fields = [
        FieldDef("Id", FieldType.ID, "Record ID", length=18, createable=False, updateable=False),
    ]
    if owner:
        fields.append(
            FieldDef("OwnerId", FieldType.REFERENCE, "Owner ID", length=18, reference_to=("User",),
                     relationship_name="Owner", required=True, updateable=True)
        )
    fields += [
        FieldDef("IsDeleted", FieldType.BOOLEAN, "Deleted", default_value=False, createable=False, updateable=False),
        FieldDef("CreatedDate", FieldType.DATETIME, "Created Date", createable=False, updateable=False),
        FieldDef("CreatedById", FieldType.REFERENCE, "Created By ID", length=18, reference_to=audit_user,
                 relationship_name="CreatedBy", createable=False, updateable=False),
        FieldDef("LastModifiedDate", FieldType.DATETIME, "Last Modified Date", createable=False, updateable=False),
        FieldDef("LastModifiedById", FieldType.REFERENCE, "Last Modified By ID", length=18,
                 reference_to=audit_user, relationship_name="LastModifiedBy", createable=False, updateable=False),
        FieldDef("SystemModstamp", FieldType.DATETIME, "System Modstamp", createable=False, updateable=False),
    ]
    return fields


def _raw_fields(spec: Mapping[str, Any], source: str) -> list[Any]:
    """A spec's ``fields``: a list of field specs, or a mapping name -> field spec made into one."""
    raw_fields = spec.get("fields", [])
    if isinstance(raw_fields, Mapping):
        raw_fields = [{"name": key, **(value or {})} for key, value in raw_fields.items()]
    if not isinstance(raw_fields, list):
        raise MetadataError(f"{_where(source, 'fields')}: fields is a list (or a mapping name -> field)")
    return raw_fields


def _event_system_fields() -> list[FieldDef]:
    return [
        FieldDef("ReplayId", FieldType.STRING, "Replay ID", length=255, createable=False, updateable=False),
        FieldDef("CreatedDate", FieldType.DATETIME, "Created Date", createable=False, updateable=False),
        FieldDef("CreatedById", FieldType.REFERENCE, "Created By ID", length=18, reference_to=("User",),
                 relationship_name="CreatedBy", createable=False, updateable=False),
        FieldDef("EventUuid", FieldType.STRING, "Event UUID", length=36, createable=False, updateable=False),
    ]


def _build_event(spec: Mapping[str, Any], source: str, name: str, key_prefix: str) -> ObjectDef:
    """A platform event: custom fields only (no Id, owner or name field), plus the event system fields."""
    for key in ("nameField", "owner", "changeDataCapture", "enableHistory"):
        if key in spec:
            raise MetadataError(f"{_where(source, key)}: platform events have no {key}")
    behavior = str(spec.get("publishBehavior", "PublishImmediately"))
    if behavior not in PUBLISH_BEHAVIORS:
        raise MetadataError(f"{_where(source, 'publishBehavior')}: expected one of {', '.join(PUBLISH_BEHAVIORS)}, "
                            f"got {behavior!r}")
    raw_fields = _raw_fields(spec, source)
    system = _event_system_fields()
    seen = {f.name.lower() for f in system}
    declared: list[FieldDef] = []
    for index, raw in enumerate(raw_fields):
        fdef = build_field(raw, source, ("fields", index), custom_object=True)
        if not fdef.name.endswith("__c"):
            raise MetadataError(f"{_where(source, 'fields', index, 'name')}: platform event fields are custom "
                                f"(end in __c): {fdef.name}")
        if fdef.track_history:
            raise MetadataError(f"{_where(source, 'fields', index, 'trackHistory')}: platform events keep no history")
        if fdef.type not in _EVENT_FIELD_TYPES:
            raise MetadataError(f"{_where(source, 'fields', index, 'type')}: platform event fields are checkbox, "
                                f"date, datetime, number, text or long text; got {fdef.type.value}")
        if fdef.name.lower() in seen:
            raise MetadataError(f"{source}: field {fdef.name} is declared twice")
        seen.add(fdef.name.lower())
        declared.append(fdef)
    label = str(spec.get("label") or _label_from_name(name.removesuffix("__e")))
    return ObjectDef(
        name=name, label=label, label_plural=str(spec.get("labelPlural") or label + "s"), key_prefix=key_prefix,
        fields=tuple(system + declared), custom=True, createable=True, updateable=False, deletable=False,
        queryable=False, searchable=False, description=str(spec.get("description", "")), kind="event",
        publish_behavior=behavior,
    )


_EVENT_FIELD_TYPES = frozenset({FieldType.BOOLEAN, FieldType.DATE, FieldType.DATETIME, FieldType.DOUBLE,
                                FieldType.INT, FieldType.CURRENCY, FieldType.PERCENT, FieldType.STRING,
                                FieldType.TEXTAREA, FieldType.REFERENCE, FieldType.PICKLIST})


def _external_system_fields(external_key: str | None) -> list[FieldDef]:
    return [
        FieldDef("Id", FieldType.ID, "Record ID", length=18, createable=False, updateable=False),
        # The remote key: given on create when the source does not assign it, never changed afterwards.
        FieldDef("ExternalId", FieldType.STRING, "External ID", length=255, external_id=True, unique=True,
                 createable=True, updateable=False, external_name=external_key),
        FieldDef("DisplayUrl", FieldType.URL, "Display URL", length=1000, createable=False, updateable=False),
    ]


EXTERNAL_SYSTEM_FIELDS = ("Id", "ExternalId", "DisplayUrl")


def _build_external(spec: Mapping[str, Any], source: str, name: str, key_prefix: str) -> ObjectDef:
    """An external object: Id, ExternalId (the remote key) and DisplayUrl, plus custom fields mapped to remote
    columns; its rows live in the data source named by ``dataSource``."""
    for key in ("owner", "changeDataCapture", "publishBehavior", "enableHistory"):
        if key in spec:
            raise MetadataError(f"{_where(source, key)}: external objects have no {key}")
    data_source = spec.get("dataSource")
    if not isinstance(data_source, str) or not _API_NAME.match(data_source):
        raise MetadataError(f"{_where(source, 'dataSource')}: an external object names its data source, "
                            f"got {data_source!r}")
    raw_fields = _raw_fields(spec, source)
    external_key = spec.get("externalKey")
    if external_key is not None and not isinstance(external_key, str):
        raise MetadataError(f"{_where(source, 'externalKey')}: the remote key column's name is text")
    system = _external_system_fields(external_key)
    seen = {f.name.lower() for f in system}
    declared: list[FieldDef] = []
    for index, raw in enumerate(raw_fields):
        fdef = build_field(raw, source, ("fields", index), custom_object=True)
        if fdef.track_history:
            raise MetadataError(f"{_where(source, 'fields', index, 'trackHistory')}: external objects keep no "
                                "history")
        if fdef.name.lower() in seen:
            raise MetadataError(f"{source}: field {fdef.name} is declared twice (or is a system field)")
        seen.add(fdef.name.lower())
        declared.append(fdef)
    if sum(1 for f in declared if f.name_field) > 1:
        raise MetadataError(f"{source}: more than one name field")
    if not any(f.name_field for f in declared):
        system[1] = system[1].with_changes(name_field=True)
    label = str(spec.get("label") or _label_from_name(name.removesuffix("__x")))
    external_name = spec.get("externalName") or name.removesuffix("__x")
    writable = _as_bool(spec.get("updateable", False), source, "updateable")
    return ObjectDef(
        name=name, label=label, label_plural=str(spec.get("labelPlural") or label + "s"), key_prefix=key_prefix,
        fields=tuple(system + declared), custom=True,
        createable=_as_bool(spec.get("createable", writable), source, "createable"), updateable=writable,
        deletable=_as_bool(spec.get("deletable", writable), source, "deletable"),
        queryable=True, searchable=_as_bool(spec.get("searchable", False), source, "searchable"),
        description=str(spec.get("description", "")), kind="external", data_source=data_source,
        external_name=str(external_name),
    )


def build_object(spec: Mapping[str, Any], source: str = "<spec>") -> ObjectDef:
    """Validate an object spec and return its :class:`ObjectDef`, system fields included.

    Raises :class:`MetadataError` naming the file and key at fault.
    """
    if not isinstance(spec, Mapping):
        raise MetadataError(f"{source}: an object is a mapping of keys")
    if "historyOf" in spec:
        return build_history_object(spec, source)
    unknown = set(spec) - _OBJECT_KEYS
    if unknown:
        raise MetadataError(f"{source}: unknown key(s) {', '.join(sorted(unknown))}")
    name = spec.get("name")
    if not isinstance(name, str) or not _API_NAME.match(name):
        raise MetadataError(f"{_where(source, 'name')}: an object needs an API name, got {name!r}")
    standard = _as_bool(spec.get("standard", False), source, "standard")
    custom = name.endswith("__c")
    if not standard and not custom and not name.endswith(("__e", "__x")):
        raise MetadataError(f"{_where(source, 'name')}: custom objects end in __c: {name}")
    key_prefix = spec.get("keyPrefix")
    if not isinstance(key_prefix, str) or not re.match(r"^[a-zA-Z0-9]{3}$", key_prefix):
        raise MetadataError(f"{_where(source, 'keyPrefix')}: a 3-character key prefix is required, got {key_prefix!r}")
    if name.endswith("__e"):
        return _build_event(spec, source, name, key_prefix)
    if name.endswith("__x"):
        return _build_external(spec, source, name, key_prefix)
    for key in ("dataSource", "externalName", "externalKey"):
        if key in spec:
            raise MetadataError(f"{_where(source, key)}: only external objects (Name__x) have a {key}")
    if "publishBehavior" in spec:
        raise MetadataError(f"{_where(source, 'publishBehavior')}: only platform events (Name__e) publish")
    owner = _as_bool(spec.get("owner", True), source, "owner")

    raw_fields = _raw_fields(spec, source)
    track_owner = False
    for index, raw in enumerate(list(raw_fields)):
        # {name: OwnerId, trackHistory: true}: the one system field that can be tracked.
        if isinstance(raw, Mapping) and str(raw.get("name", "")).lower() == "ownerid" and "type" not in raw:
            if set(raw) - {"name", "trackHistory"} or not owner:
                raise MetadataError(f"{_where(source, 'fields', index)}: OwnerId is a system field; only its "
                                    "trackHistory can be set")
            track_owner = _as_bool(raw.get("trackHistory", False), source, "fields", index, "trackHistory")
            raw_fields = [r for r in raw_fields if r is not raw]

    declared: list[FieldDef] = []
    name_spec = spec.get("nameField")
    if name_spec is not None:
        if not isinstance(name_spec, Mapping):
            raise MetadataError(f"{_where(source, 'nameField')}: nameField is a mapping")
        nf = {"name": "Name", "type": "string", "length": 80, "required": True, **name_spec, "nameField": True}
        if str(nf.get("type", "")).lower() == "autonumber":
            nf["required"] = False
        declared.append(build_field(nf, source, ("nameField",), custom_object=False))

    for index, raw in enumerate(raw_fields):
        declared.append(build_field(raw, source, ("fields", index), custom_object=not standard))
    if not standard and not any(f.name_field for f in declared):
        declared.insert(0, FieldDef("Name", FieldType.STRING, f"{spec.get('label', name)} Name", length=80,
                                    required=True, name_field=True))

    system = _system_fields(name, owner)
    if track_owner:
        system = [f.with_changes(track_history=True) if f.name == "OwnerId" else f for f in system]
    system_names = {f.name.lower() for f in system}
    seen: set[str] = set()
    for fdef in declared:
        lowered = fdef.name.lower()
        if lowered in system_names:
            raise MetadataError(f"{source}: {fdef.name} is a system field and cannot be declared")
        if lowered in seen:
            raise MetadataError(f"{source}: field {fdef.name} is declared twice")
        seen.add(lowered)
    if sum(1 for f in declared if f.name_field) > 1:
        raise MetadataError(f"{source}: more than one name field")

    label = str(spec.get("label") or _label_from_name(name))
    tracks = track_owner or any(f.track_history for f in declared)
    # Most standard objects (Case, Asset, ...) have no history switch of their own: tracking a field enables it.
    enable_history = _as_bool(spec.get("enableHistory", tracks and standard), source, "enableHistory")
    obj = ObjectDef(
        name=name,
        label=label,
        label_plural=str(spec.get("labelPlural") or label + "s"),
        key_prefix=key_prefix,
        fields=tuple(system[:1] + declared + system[1:]),
        custom=custom,
        createable=_as_bool(spec.get("createable", True), source, "createable"),
        updateable=_as_bool(spec.get("updateable", True), source, "updateable"),
        deletable=_as_bool(spec.get("deletable", True), source, "deletable"),
        queryable=_as_bool(spec.get("queryable", True), source, "queryable"),
        searchable=_as_bool(spec.get("searchable", True), source, "searchable"),
        description=str(spec.get("description", "")),
        change_data_capture=_as_bool(spec.get("changeDataCapture", False), source, "changeDataCapture"),
        enable_history=enable_history,
        sharing_model=_sharing_model(spec.get("sharingModel"), source),
        grant_access_using_hierarchies=_hierarchies(spec, source, custom),
    )
    check_history(obj, source)
    return obj


def _sharing_model(value: Any, source: str) -> str:
    if value in (None, ""):
        return ""
    if value not in SHARING_MODELS:
        raise MetadataError(f"{_where(source, 'sharingModel')}: one of {', '.join(SHARING_MODELS)}, got {value!r}")
    return str(value)


def _hierarchies(spec: Mapping[str, Any], source: str, custom: bool) -> bool:
    """``grantAccessUsingHierarchies`` (default true): only custom objects may switch it off, as on the platform."""
    grant = _as_bool(spec.get("grantAccessUsingHierarchies", True), source, "grantAccessUsingHierarchies")
    if not grant and not custom:
        raise MetadataError(f"{_where(source, 'grantAccessUsingHierarchies')}: standard objects always grant access "
                            "using the role hierarchy; only custom objects (__c) can switch it off")
    return grant


def merge_specs(base: Mapping[str, Any], extension: Mapping[str, Any], source: str) -> Spec:
    """Add an extension's fields (and label overrides) to a base spec, e.g. custom fields on Account."""
    merged: Spec = dict(base)
    base_fields = list(_field_list(base.get("fields", [])))
    names = {str(f.get("name", "")).lower() for f in base_fields}
    for index, raw in enumerate(_field_list(extension.get("fields", []))):
        fname = str(raw.get("name", ""))
        if fname.lower() in names:
            # A full definition replaces the field; an entry without a type only changes some of its keys.
            base_fields = [(raw if "type" in raw else {**f, **raw}) if str(f.get("name", "")).lower() == fname.lower()
                           else f for f in base_fields]
        else:
            if base.get("standard") and not fname.endswith("__c") and not (fname.lower() == "ownerid"
                                                                         and "type" not in raw):
                raise MetadataError(f"{_where(source, 'fields', index, 'name')}: fields added to a standard "
                                    f"object must be custom (end in __c): {fname}")
            base_fields.append(dict(raw))
            names.add(fname.lower())
    merged["fields"] = base_fields
    for key in ("label", "labelPlural", "description", "changeDataCapture", "enableHistory", "sharingModel",
                "grantAccessUsingHierarchies"):
        if key in extension:
            merged[key] = extension[key]
    return merged


def _field_list(raw: Any) -> list[dict[str, Any]]:
    if isinstance(raw, Mapping):
        return [{"name": key, **(value or {})} for key, value in raw.items()]
    return [dict(item) for item in raw or []]


def field_to_spec(fdef: FieldDef) -> dict[str, Any]:
    """The spec dict for one declared field (inverse of :func:`build_field`)."""
    type_name = "autonumber" if fdef.auto_number else (
        "masterdetail" if fdef.master_detail else fdef.type.value)
    spec: dict[str, Any] = {"name": fdef.name, "type": type_name, "label": fdef.label}
    if fdef.type in (FieldType.STRING, FieldType.TEXTAREA, FieldType.EMAIL, FieldType.PHONE, FieldType.URL,
                     FieldType.PICKLIST, FieldType.MULTIPICKLIST) and not fdef.auto_number:
        spec["length"] = fdef.length
    if fdef.type in (FieldType.DOUBLE, FieldType.CURRENCY, FieldType.PERCENT, FieldType.INT):
        spec["precision"] = fdef.precision
        if fdef.type is not FieldType.INT:
            spec["scale"] = fdef.scale
    for key, value, default in (
        ("required", fdef.required, fdef.master_detail),
        ("unique", fdef.unique, False),
        ("externalId", fdef.external_id, False),
        ("caseSensitive", fdef.case_sensitive, False),
        ("restricted", fdef.restricted_picklist, False),
        ("nameField", fdef.name_field, False),
        ("cascadeDelete", fdef.cascade_delete, fdef.master_detail),
        ("createable", fdef.createable, not fdef.auto_number),
        ("updateable", fdef.updateable, not fdef.auto_number),
    ):
        if value != default:
            spec[key] = value
    if fdef.default_value is not None and not (fdef.type is FieldType.BOOLEAN and fdef.default_value is False):
        spec["defaultValue"] = fdef.default_value
    if fdef.picklist_values:
        spec["values"] = [
            {"value": v.value, "label": v.label, "default": v.default, "active": v.active}
            for v in fdef.picklist_values
        ]
    if fdef.reference_to:
        spec["referenceTo"] = list(fdef.reference_to)
        spec["relationshipName"] = fdef.relationship_name
        if fdef.child_relationship_name:
            spec["childRelationshipName"] = fdef.child_relationship_name
    if fdef.auto_number:
        spec["displayFormat"] = fdef.display_format
        spec["startNumber"] = fdef.start_number
    if fdef.description:
        spec["description"] = fdef.description
    if fdef.help_text:
        spec["helpText"] = fdef.help_text
    if fdef.external_name:
        spec["externalName"] = fdef.external_name
    if fdef.reference_target_field:
        spec["referenceTargetField"] = fdef.reference_target_field
    if fdef.track_history:
        spec["trackHistory"] = True
    return spec


def object_to_spec(obj: ObjectDef) -> Spec:
    """The spec that rebuilds ``obj`` exactly through :func:`build_object`."""
    if obj.history_of:
        return {"name": obj.name, "historyOf": obj.history_of, "keyPrefix": obj.key_prefix, "label": obj.label,
                "labelPlural": obj.label_plural}
    if obj.is_event:
        event: Spec = {"name": obj.name, "label": obj.label, "labelPlural": obj.label_plural,
                       "keyPrefix": obj.key_prefix, "publishBehavior": obj.publish_behavior,
                       "fields": [field_to_spec(f) for f in obj.fields if f.name not in EVENT_SYSTEM_FIELDS]}
        if obj.description:
            event["description"] = obj.description
        return event
    if obj.is_external:
        external: Spec = {"name": obj.name, "label": obj.label, "labelPlural": obj.label_plural,
                          "keyPrefix": obj.key_prefix, "dataSource": obj.data_source,
                          "externalName": obj.external_name,
                          "externalKey": next(f.external_name for f in obj.fields if f.name == "ExternalId"),
                          "fields": [field_to_spec(f) for f in obj.fields if f.name not in EXTERNAL_SYSTEM_FIELDS]}
        for key, value in (("createable", obj.createable), ("updateable", obj.updateable),
                           ("deletable", obj.deletable), ("searchable", obj.searchable)):
            external[key] = value
        if obj.description:
            external["description"] = obj.description
        return external
    system = {"Id", "OwnerId", "IsDeleted", "CreatedDate", "CreatedById", "LastModifiedDate",
              "LastModifiedById", "SystemModstamp"}
    declared = [f for f in obj.fields if f.name not in system]
    spec: Spec = {
        "name": obj.name,
        "label": obj.label,
        "labelPlural": obj.label_plural,
        "keyPrefix": obj.key_prefix,
        "standard": not obj.custom,
        "owner": obj.has_field("OwnerId"),
        "fields": [field_to_spec(f) for f in declared],
    }
    owner_field = obj.field("OwnerId")
    if owner_field is not None and owner_field.track_history:
        spec["fields"].append({"name": "OwnerId", "trackHistory": True})
    for key, value in (("createable", obj.createable), ("updateable", obj.updateable),
                       ("deletable", obj.deletable), ("queryable", obj.queryable),
                       ("searchable", obj.searchable)):
        if not value:
            spec[key] = False
    if obj.description:
        spec["description"] = obj.description
    if obj.change_data_capture:
        spec["changeDataCapture"] = True
    if obj.enable_history:
        spec["enableHistory"] = True
    if obj.sharing_model:
        spec["sharingModel"] = obj.sharing_model
    if not obj.grant_access_using_hierarchies:
        spec["grantAccessUsingHierarchies"] = False
    return spec
