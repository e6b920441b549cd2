"""How the console shows and edits field values.

Records reach the console as the query engine renders them for REST (wire values: ``"2024-01-31T09:30:00.000+0000"``
for a datetime, parents as nested records), so display and form values are computed from those. A form's input
goes back to the records service as strings; the service parses and validates them exactly as it does REST
JSON, so the console has no validation of its own to drift from the API's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

from interlink import ids
from interlink.errors import InterlinkError
from interlink.metadata.model import FieldDef, FieldType, ObjectDef, Schema
from interlink.metadata.values import parse_datetime, parse_value

_INPUTS: dict[FieldType, str] = {
    FieldType.STRING: "text", FieldType.EMAIL: "email", FieldType.PHONE: "tel", FieldType.URL: "url",
    FieldType.TEXTAREA: "textarea", FieldType.PICKLIST: "select", FieldType.MULTIPICKLIST: "multiselect",
    FieldType.BOOLEAN: "checkbox", FieldType.INT: "number", FieldType.DOUBLE: "number",
    FieldType.CURRENCY: "number", FieldType.PERCENT: "number", FieldType.DATE: "date",
    FieldType.DATETIME: "datetime-local", FieldType.TIME: "time", FieldType.REFERENCE: "reference",
    FieldType.ID: "text",
}
_NUMERIC = frozenset({FieldType.INT, FieldType.DOUBLE, FieldType.CURRENCY, FieldType.PERCENT})


@dataclass(frozen=True)
class Cell:
    """One value as shown: its text, a link when it names a record, a CSS class (``num`` right-aligns)."""

    text: str
    href: str = ""
    css: str = ""


def record_href(record_id: str) -> str:
    return f"/console/r/{quote(record_id, safe='')}"


def list_href(object_name: str) -> str:
    return f"/console/o/{quote(object_name, safe='')}"


def parent_id(parent: Mapping[str, Any]) -> str | None:
    """The Id of a nested parent record (its ``attributes.url`` ends with it)."""
    url = (parent.get("attributes") or {}).get("url") or ""
    candidate = url.rsplit("/", 1)[-1] if url else parent.get("Id")
    return str(candidate) if candidate else None


def parent_label(parent: Mapping[str, Any]) -> str:
    """The first value the query selected on a parent (its name field, as the console selects it)."""
    for key, value in parent.items():
        if key != "attributes" and value is not None and not isinstance(value, dict):
            return str(value)
    return ""


def parent_name_path(schema: Schema, obj: ObjectDef, fdef: FieldDef) -> str | None:
    """``Account.Name`` for ``AccountId``: the relationship path to the parent's name field, when a query on
    ``obj`` can select it (a stored object's query cannot reach into an external parent's fields)."""
    if fdef.type is not FieldType.REFERENCE or not fdef.relationship_name or not fdef.reference_to:
        return None
    targets = [schema.object(name) for name in fdef.reference_to]
    if any(t is None or t.is_event or (obj.is_stored and t.is_external) for t in targets):
        return None
    names = {t.name_field.name if t is not None and t.name_field else "" for t in targets}
    if len(names) != 1 or "" in names:
        return None
    return f"{fdef.relationship_name}.{names.pop()}"


def _number_text(fdef: FieldDef, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if fdef.type is FieldType.INT:
        return f"{int(value):,}"
    if fdef.type is FieldType.PERCENT:
        return f"{value:g}%"
    if fdef.type is FieldType.CURRENCY or fdef.scale:
        return f"{value:,.{fdef.scale if fdef.precision else 2}f}"
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,}" if abs(value) >= 1e-4 else f"{value:g}"


def display_text(fdef: FieldDef, value: Any) -> str:
    """A wire value as text for people (datetimes in UTC, numbers grouped, checkboxes as ☑/☐)."""
    if fdef.type is FieldType.BOOLEAN:
        return "☑" if value else "☐"
    if value is None:
        return ""
    if fdef.type is FieldType.DATETIME and isinstance(value, str):
        try:
            return parse_datetime(value).strftime("%Y-%m-%d %H:%M:%S")
        except ValueError:
            return value
    if fdef.type is FieldType.TIME and isinstance(value, str):
        return value.rstrip("Z").split(".")[0]
    if fdef.type in _NUMERIC:
        return _number_text(fdef, value)
    return str(value)


def display(fdef: FieldDef, record: Mapping[str, Any]) -> Cell:
    """The cell for ``fdef`` of a REST-shaped record: references link to their parent, named by its name."""
    value = record.get(fdef.name)
    if fdef.type is FieldType.REFERENCE:
        parent = record.get(fdef.relationship_name) if fdef.relationship_name else None
        if isinstance(parent, dict):
            target = parent_id(parent)
            return Cell(parent_label(parent) or str(value or target or ""), record_href(target) if target else "")
        if value and fdef.reference_target_field is None and ids.normalize(value):
            return Cell(str(value), record_href(str(value)))
        return Cell("" if value is None else str(value))
    if fdef.type is FieldType.ID and value:
        return Cell(str(value), record_href(str(value)))
    if fdef.type is FieldType.URL and isinstance(value, str) and value.lower().startswith(("https://", "http://")):
        return Cell(value, value, "external")
    css = "num" if fdef.type in _NUMERIC else "bool" if fdef.type is FieldType.BOOLEAN else ""
    return Cell(display_text(fdef, value), "", css)


# -- forms ----------------------------------------------------------------------------------------------------


def input_kind(fdef: FieldDef) -> str:
    """Which input edits ``fdef``: an HTML input type, or ``textarea``/``select``/``multiselect``/``reference``."""
    return _INPUTS.get(fdef.type, "text")


def number_step(fdef: FieldDef) -> str:
    if fdef.type is FieldType.INT or (fdef.precision and fdef.scale == 0):
        return "1"
    return f"{10 ** -fdef.scale:.{fdef.scale}f}" if fdef.scale else "any"


def form_value(fdef: FieldDef, value: Any) -> str:
    """A wire value as the form input holds it (``datetime-local`` without zone, in UTC)."""
    if fdef.type is FieldType.BOOLEAN:
        return "true" if value else ""
    if value is None:
        return ""
    if fdef.type is FieldType.DATETIME and isinstance(value, str):
        try:
            return parse_datetime(value).strftime("%Y-%m-%dT%H:%M:%S")
        except ValueError:
            return value
    if fdef.type is FieldType.TIME and isinstance(value, str):
        return value.rstrip("Z").split(".")[0]
    if fdef.type in _NUMERIC and isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def default_form_value(fdef: FieldDef) -> str:
    """What a new record's form starts with: the field's default, or its picklist's default value."""
    if fdef.type is FieldType.BOOLEAN:
        return "true" if fdef.default_value is True or str(fdef.default_value).lower() == "true" else ""
    chosen = next((v.value for v in fdef.picklist_values if v.default and v.active), None)
    if chosen is not None:
        return chosen
    default = fdef.default_value
    if fdef.type is FieldType.DATE and isinstance(default, str) and default.upper() == "TODAY()":
        return date.today().isoformat()
    if isinstance(default, date | datetime):
        return default.isoformat()[:19]
    if default is not None and not isinstance(default, dict | list):
        return str(default)
    return ""


def submitted(fdef: FieldDef, form: Mapping[str, Sequence[str]]) -> str | None:
    """What the user entered for ``fdef``; None when the form did not have the field (it is left as it is).

    Checkboxes and multi-selects send nothing when unchecked or empty, so the console's forms put a hidden empty
    input of the same name before them: present-but-empty means "cleared".
    """
    if fdef.name not in form:
        return None
    values = form[fdef.name]
    if fdef.type is FieldType.MULTIPICKLIST:
        return ";".join(v for v in values if v)
    if fdef.type is FieldType.BOOLEAN:
        return "true" if any(v.lower() in ("true", "on", "1") for v in values) else ""
    text = values[-1] if values else ""
    if fdef.type is FieldType.TEXTAREA:
        return text.replace("\r\n", "\n")  # browsers send CRLF; stored text keeps LF
    return text.strip()


def _same(fdef: FieldDef, before: str, after: str) -> bool:
    if before == after:
        return True
    try:
        return bool(parse_value(fdef, before or None) == parse_value(fdef, after or None))
    except InterlinkError:
        return False  # the new value is not valid: send it, so the records service reports why


def to_save(fields: Sequence[FieldDef], entered: Mapping[str, str], *,
            current: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The values a form asks the records service to write.

    Creating (``current`` None): every non-empty input, checkboxes always. Editing: only the fields whose value
    changed, an emptied input as null, so triggers, flows and change events see exactly what the user changed.
    Fields missing from ``entered`` are not written.
    """
    values: dict[str, Any] = {}
    for fdef in fields:
        if fdef.name not in entered:
            continue
        text = entered[fdef.name]
        if current is None:
            if fdef.type is FieldType.BOOLEAN:
                values[fdef.name] = text == "true"
            elif text != "":
                values[fdef.name] = text
            continue
        if _same(fdef, current.get(fdef.name, ""), text):
            continue
        values[fdef.name] = (text == "true") if fdef.type is FieldType.BOOLEAN else (text if text != "" else None)
    return values


__all__ = ["Cell", "default_form_value", "display", "display_text", "form_value", "input_kind", "list_href",
           "number_step", "parent_id", "parent_label", "parent_name_path", "record_href", "submitted", "to_save"]
