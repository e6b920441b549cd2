"""Checks on incoming values that need no database: names, writability, types, required fields.

The records service calls these per record before anything is written; each returns the platform's
error so one bad record never stops the others from being judged.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from interlink.errors import (
    DmlError,
    InterlinkError,
    InvalidFieldError,
    InvalidFieldForInsertUpdate,
    InvalidTypeError,
    RequiredFieldMissing,
)
from interlink.metadata.model import FieldDef, FieldType, ObjectDef
from interlink.metadata.values import parse_value

# A parent named by one of its external ids instead of its Id: {"Account": {"Ext__c": "A-1"}}.
ParentRef = tuple[FieldDef, str, str, Any]  # (reference field, parent object, ext field, ext value)


def _not_writable(names: list[str]) -> InvalidFieldForInsertUpdate:
    return InvalidFieldForInsertUpdate(
        f"Unable to create/update fields: {', '.join(names)}. Please check the security settings of this field "
        "and verify that it is read/write for your profile or permission set.",
        names,
    )


def resolve(obj: ObjectDef, values: dict[str, Any], *, creating: bool,
            system_mode: bool = False) -> tuple[dict[str, Any], list[ParentRef]]:
    """Map incoming keys to fields and parse each value; raise the first error found.

    ``attributes`` is ignored, as the platform does. Relationship keys holding an object are resolved
    later through the parent's external id.
    """
    parsed: dict[str, Any] = {}
    parents: list[ParentRef] = []
    not_writable: list[str] = []
    for key, raw in values.items():
        if key == "attributes":
            continue
        fdef = obj.field(key)
        if fdef is None:
            ref = obj.relationship(key)
            if ref is not None and isinstance(raw, dict):
                parents.append(_parent_ref(obj, ref, key, raw))
                continue
            raise InvalidFieldError(f"No such column '{key}' on sobject of type {obj.name}", [key])
        if fdef.is_system and fdef.name != "Id" and not system_mode:
            not_writable.append(fdef.name)
            continue
        if fdef.name == "Id":
            if creating:
                raise InvalidFieldForInsertUpdate("Record ID: cannot specify Id in an insert call", ["Id"])
            continue  # the id in an update body is the record being updated; the caller checks it matches
        if not system_mode and not (fdef.createable if creating else fdef.updateable):
            not_writable.append(fdef.name)
            continue
        parsed[fdef.name] = parse_value(fdef, raw)
    if not_writable:
        raise _not_writable(not_writable)
    return parsed, parents


def _parent_ref(obj: ObjectDef, fdef: FieldDef, key: str, raw: dict[str, Any]) -> ParentRef:
    pairs = [(k, v) for k, v in raw.items() if k != "attributes"]
    if len(pairs) != 1:
        raise InvalidFieldError(
            f"{obj.name}.{key}: a relationship by external id names exactly one external id field", [key])
    target = fdef.reference_to[0]
    attributes = raw.get("attributes")
    if isinstance(attributes, dict) and attributes.get("type"):
        target = str(attributes["type"])
    if target.lower() not in {t.lower() for t in fdef.reference_to}:
        raise InvalidTypeError(f"{obj.name}.{key}: {target} is not a valid parent of {fdef.name}", [key])
    return fdef, target, pairs[0][0], pairs[0][1]


def apply_defaults(obj: ObjectDef, record: dict[str, Any], owner_id: str) -> None:
    """Fill defaults for fields the caller did not send (create only)."""
    for fdef in obj.fields:
        if fdef.name in record:
            continue
        if fdef.name == "OwnerId":
            record["OwnerId"] = owner_id
        elif fdef.default_value is not None and not fdef.auto_number:
            record[fdef.name] = parse_default(fdef)


def parse_default(fdef: FieldDef) -> Any:
    value = fdef.default_value
    if fdef.type is FieldType.DATE and isinstance(value, str) and value.upper() == "TODAY()":
        return date.today()
    if isinstance(value, date) and fdef.type is FieldType.DATE:
        return value
    return parse_value(fdef, value)


# The standard opportunity stages: (default probability %, forecast category, IsClosed, IsWon), as a new org has
# them. A stage outside this table (a project's own picklist value) is open and keeps the probability given.
OPPORTUNITY_STAGES: dict[str, tuple[int, str, bool, bool]] = {
    "Prospecting": (10, "Pipeline", False, False),
    "Qualification": (10, "Pipeline", False, False),
    "Needs Analysis": (20, "Pipeline", False, False),
    "Value Proposition": (50, "Pipeline", False, False),
    "Id. Decision Makers": (60, "Pipeline", False, False),
    "Perception Analysis": (70, "Pipeline", False, False),
    "Proposal/Price Quote": (75, "Pipeline", False, False),
    "Negotiation/Review": (90, "Pipeline", False, False),
    "Closed Won": (100, "Closed", True, True),
    "Closed Lost": (0, "Omitted", True, False),
}


def _opportunity_stage(obj: ObjectDef, record: dict[str, Any], previous: dict[str, Any] | None) -> None:
    """IsClosed, IsWon, the stage's default probability and forecast category, and ExpectedRevenue."""
    stage_changed = "StageName" in record and (previous is None or record["StageName"] != previous.get("StageName"))
    if stage_changed:
        stage = OPPORTUNITY_STAGES.get(str(record["StageName"]))
        probability, forecast, closed, won = stage if stage else (None, None, False, False)
        record["IsClosed"], record["IsWon"] = closed, won
        if probability is not None and "Probability" not in record and obj.has_field("Probability"):
            record["Probability"] = probability
        if forecast is not None and "ForecastCategoryName" not in record and obj.has_field("ForecastCategoryName"):
            record["ForecastCategoryName"] = forecast
    if obj.has_field("ExpectedRevenue") and ("Amount" in record or "Probability" in record):
        merged = {**(previous or {}), **record}
        amount, probability = merged.get("Amount"), merged.get("Probability")
        record["ExpectedRevenue"] = (None if amount is None or probability is None
                                     else round(float(amount) * float(probability) / 100, 2))


def compute_derived(obj: ObjectDef, record: dict[str, Any], previous: dict[str, Any] | None = None) -> None:
    """Platform-computed fields: the compound Name of people (Contact, Lead, User); an opportunity's stage flags."""
    if obj.name == "Opportunity" and obj.has_field("IsClosed"):
        _opportunity_stage(obj, record, previous)
    name_field = obj.field("Name")
    if name_field is None or name_field.createable or not obj.has_field("LastName"):
        return
    merged = {**(previous or {}), **record}
    if "FirstName" in record or "LastName" in record or previous is None:
        full = " ".join(p for p in (merged.get("FirstName"), merged.get("LastName")) if p)
        record["Name"] = full[: name_field.length] or None


def missing_required(obj: ObjectDef, record: dict[str, Any], *, creating: bool) -> RequiredFieldMissing | None:
    """REQUIRED_FIELD_MISSING listing every required field that is null."""
    missing = [
        f.name
        for f in obj.fields
        if f.required and not f.auto_number and f.name not in ("Id",)
        and (f.name in record or creating) and record.get(f.name) in (None, "")
    ]
    if not missing:
        return None
    return RequiredFieldMissing(f"Required fields are missing: [{', '.join(missing)}]", missing)


def format_autonumber(fdef: FieldDef, number: int, today: date) -> str:
    """Render an autonumber display format such as ``INV-{YYYY}-{0000}``."""
    fmt = fdef.display_format or "{0}"
    fmt = fmt.replace("{YYYY}", f"{today.year:04d}").replace("{YY}", f"{today.year % 100:02d}")
    fmt = fmt.replace("{MM}", f"{today.month:02d}").replace("{DD}", f"{today.day:02d}")
    return re.sub(r"\{(0+)\}", lambda m: str(number).zfill(len(m.group(1))), fmt)


def as_dml_error(error: Exception) -> InterlinkError:
    """Per-record errors are InterlinkErrors; anything else is reported without leaking internals."""
    if isinstance(error, InterlinkError):
        return error
    return DmlError(f"{type(error).__name__}: {error}", error_code="UNKNOWN_EXCEPTION")
