"""Values and entities in OData's JSON formats, and request bodies back into record values.

The query engine hands back records in the REST API's shape (``2024-01-31T09:30:00.000+0000``,
``09:30:00.000Z``, nested parent records, child blocks ``{totalSize, done, records}``). OData 4.0 JSON wants
``2024-01-31T09:30:00Z`` (Edm.DateTimeOffset), ``09:30:00.000`` (Edm.TimeOfDay) and Edm.Decimal as a number;
OData 2.0 verbose JSON wants ``/Date(1706693400000)/`` (Edm.DateTime, dates at midnight UTC), ``PT09H30M00S``
(Edm.Time), Edm.Decimal as a string, a ``__metadata`` object on every entity, ``__deferred`` links for
navigation properties that were not expanded and ``{"results": [...]}`` for expanded collections.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import unquote

from interlink import ids
from interlink.api.odata.model import EntitySet, ServiceModel
from interlink.api.odata.options import Selection
from interlink.errors import InvalidFieldError, MalformedIdError, RequestError
from interlink.metadata.model import FieldDef, FieldType

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_V2_DATE_RE = re.compile(r"^/Date\((-?\d+)([+-]\d{1,4})?\)/$")
_DURATION_RE = re.compile(r"^PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)(?:\.(\d+))?S)?$", re.IGNORECASE)
_KEY_RE = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*)?\((?:Id=)?'([^']*)'\)$")
_DECIMALS = frozenset({FieldType.DOUBLE, FieldType.CURRENCY, FieldType.PERCENT})


# -- outgoing values -----------------------------------------------------------------------------------------------

def _parse_wire_datetime(text: str) -> datetime:
    return datetime.strptime(text[:23], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=UTC)


def v4_value(fdef: FieldDef, value: Any) -> Any:
    """A REST wire value as OData 4.0 JSON writes it."""
    if value is None:
        return None
    if fdef.type is FieldType.DATETIME and isinstance(value, str):
        base, _, _zone = value.partition("+")
        return (base[:-4] if base.endswith(".000") else base) + "Z"
    if fdef.type is FieldType.TIME and isinstance(value, str):
        return value.rstrip("Z")
    return value


def v2_value(fdef: FieldDef, value: Any) -> Any:
    """A REST wire value as OData 2.0 verbose JSON writes it."""
    if value is None:
        return None
    if fdef.type is FieldType.DATETIME and isinstance(value, str):
        return _v2_date(_parse_wire_datetime(value))
    if fdef.type is FieldType.DATE and isinstance(value, str):
        return _v2_date(datetime.fromisoformat(value).replace(tzinfo=UTC))
    if fdef.type is FieldType.TIME and isinstance(value, str):
        hours, minutes, rest = value.rstrip("Z").split(":")
        seconds, _, fraction = rest.partition(".")
        fraction = fraction.rstrip("0")
        return f"PT{hours}H{minutes}M{seconds}{'.' + fraction if fraction else ''}S"
    if fdef.type in _DECIMALS and fdef.precision > 0 and isinstance(value, int | float):
        return f"{Decimal(repr(value)):.{fdef.scale}f}"
    return value


def _v2_date(moment: datetime) -> str:
    milliseconds = (moment - _EPOCH) // timedelta(milliseconds=1)
    return f"/Date({milliseconds})/"


def key_segment(entity_set: EntitySet, record_id: str) -> str:
    """The canonical URL segment of an entity: ``Account('001…')``."""
    return f"{entity_set.name}('{record_id}')"


def v4_entity(selection: Selection, record: dict[str, Any]) -> dict[str, Any]:
    """One engine record as an OData 4.0 entity (minimal metadata)."""
    body = {p.name: v4_value(p.fdef, record.get(p.name)) for p in selection.properties}
    for nav, parent in selection.parents:
        nested = record.get(nav.name)
        body[nav.name] = None if nested is None else v4_entity(parent, nested)
    for nav, child in selection.children:
        block = record.get(nav.name)
        body[nav.name] = [v4_entity(child.selection, row) for row in (block or {}).get("records", [])]
    return body


def v2_entity(selection: Selection, record: dict[str, Any], root: str) -> dict[str, Any]:
    """One engine record as an OData 2.0 verbose JSON entity; ``root`` is the service root URL ending in ``/``."""
    entity_set = selection.entity_set
    uri = root + key_segment(entity_set, record["Id"])
    body: dict[str, Any] = {"__metadata": {"uri": uri, "type": entity_set.type_name}}
    for prop in selection.properties:
        body[prop.name] = v2_value(prop.fdef, record.get(prop.name))
    expanded_parents = {nav.name: parent for nav, parent in selection.parents}
    expanded_children = {nav.name: child for nav, child in selection.children}
    for nav in entity_set.parents.values():
        if nav.name in expanded_parents:
            nested = record.get(nav.name)
            body[nav.name] = None if nested is None else v2_entity(expanded_parents[nav.name], nested, root)
        else:
            body[nav.name] = {"__deferred": {"uri": f"{uri}/{nav.name}"}}
    for child_nav in entity_set.children.values():
        if child_nav.name in expanded_children:
            query = expanded_children[child_nav.name]
            rows = (record.get(child_nav.name) or {}).get("records", [])
            body[child_nav.name] = {"results": [v2_entity(query.selection, row, root) for row in rows]}
        else:
            body[child_nav.name] = {"__deferred": {"uri": f"{uri}/{child_nav.name}"}}
    return body


# -- incoming bodies -----------------------------------------------------------------------------------------------

def parse_key(entity_set: EntitySet, raw: str) -> str:
    """The record id in a key predicate (``'001…'`` or ``Id='001…'``), normalized to 18 characters."""
    text = unquote(raw).strip()
    if text.startswith("Id="):
        text = text[3:]
    if len(text) >= 2 and text[0] == "'" and text[-1] == "'":
        text = text[1:-1].replace("''", "'")
    record_id = ids.normalize(text)
    if record_id is None or record_id[:3] != entity_set.obj.key_prefix:
        raise MalformedIdError(f"{entity_set.name} ID: id value of incorrect type: {text}", ["Id"])
    return record_id


def _bound_id(model: ServiceModel, target: str, reference: Any, key: str) -> str:
    """The id in an ``@odata.bind`` value or a V2 ``__metadata.uri``: ``Account('001…')`` or a URL ending so."""
    if not isinstance(reference, str):
        raise RequestError(f"{key} must be the URL of an entity, such as {target}('001…')", [key])
    segment = reference.rstrip("/").rsplit("/", 1)[-1]
    match = _KEY_RE.match(unquote(segment))
    if not match:
        raise RequestError(f"{key}: not the URL of a {target} entity: {reference}", [key])
    return parse_key(model.sets[target.lower()], f"'{match.group(1)}'")


def record_values(entity_set: EntitySet, model: ServiceModel, body: dict[str, Any], version: int) -> dict[str, Any]:
    """A create or update body as record values for the write path (field name -> REST wire value).

    Lookups can be set by id or bound to an entity (V4 ``Account@odata.bind``, V2 ``"Account": {"__metadata":
    {"uri": …}}``). Deep inserts and unknown properties are refused.
    """
    values: dict[str, Any] = {}
    for key, raw in body.items():
        if key == "__metadata" or key.startswith("@"):
            continue
        if key.endswith("@odata.bind"):
            name = key[: -len("@odata.bind")]
            nav = entity_set.parents.get(name.lower())
            if nav is None:
                raise InvalidFieldError(f"No single-valued navigation property '{name}' exists in type "
                                        f"'{entity_set.type_name}'", [name])
            values[nav.field.name] = _bound_id(model, nav.target, raw, key)
            continue
        if "@" in key:
            continue  # other instance annotations (odata.type, …)
        nav = entity_set.navigation(key)
        if nav is not None and key.lower() not in entity_set.properties:
            parent = entity_set.parents.get(key.lower())
            uri = raw.get("__metadata", {}).get("uri") if isinstance(raw, dict) and set(raw) == {"__metadata"} \
                else None
            if parent is None or uri is None:
                raise RequestError(f"Deep insert and update through {key} are not supported: write the related "
                                   "entity on its own entity set", [key])
            values[parent.field.name] = _bound_id(model, parent.target, uri, key)
            continue
        prop = entity_set.property(key)
        values[prop.name] = _incoming(prop.fdef, raw) if version == 2 else raw
    return values


def _incoming(fdef: FieldDef, raw: Any) -> Any:
    """An OData 2.0 JSON value as the write path reads values (ISO dates, ``HH:MM:SS`` times)."""
    if not isinstance(raw, str):
        return raw
    if fdef.type in (FieldType.DATETIME, FieldType.DATE):
        match = _V2_DATE_RE.match(raw)
        if match:
            moment = _EPOCH + timedelta(milliseconds=int(match.group(1)))
            if fdef.type is FieldType.DATE:
                return moment.date().isoformat()
            return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
        return raw
    if fdef.type is FieldType.TIME:
        match = _DURATION_RE.match(raw)
        if match and any(match.groups()):
            hours, minutes, seconds, fraction = match.groups()
            text = f"{int(hours or 0):02d}:{int(minutes or 0):02d}:{int(seconds or 0):02d}"
            return text + (f".{fraction[:3]}" if fraction else "")
        return raw
    return raw
