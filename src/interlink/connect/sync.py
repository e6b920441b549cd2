"""``interlink connect sync``: turn a data source's tables into external object metadata.

Each remote table becomes ``metadata/objects/<Table>__x.yaml``: the table's key is the object's ``ExternalId``
(``externalKey``), and every column becomes a custom field ``<Column>__c`` mapped to it (``externalName``), with
the field type, length, precision and scale the source reports. Syncing again adds new columns and updates
types, but keeps what a person changed in the file: labels, descriptions, and fields turned into lookups,
external lookups or indirect lookups (the source cannot know those relationships).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from interlink.connect.base import DataSource, ExternalColumn, ExternalTable
from interlink.errors import MetadataError

_FIELD_TYPES = {"string": "text", "textarea": "longtextarea", "int": "number", "double": "number",
                "boolean": "checkbox", "date": "date", "datetime": "datetime", "time": "time", "url": "url"}
_KEPT_FIELD_KEYS = ("label", "description", "helpText", "referenceTo", "relationshipName", "childRelationshipName",
                    "referenceTargetField", "nameField", "externalId", "unique")


@dataclass
class SyncResult:
    """What a sync wrote: object name -> file, and the fields each one gained."""

    written: dict[str, Path] = field(default_factory=dict)
    added_fields: dict[str, list[str]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def api_name(remote: str) -> str:
    """A remote name made into an API name: letters, digits and single underscores, starting with a letter."""
    cleaned = re.sub(r"[^A-Za-z0-9]+", "_", remote).strip("_")
    cleaned = re.sub(r"_+", "_", cleaned)
    if not cleaned or not cleaned[0].isalpha():
        cleaned = "X" + cleaned
    return cleaned[:40]


def object_name(table: ExternalTable, names: dict[str, str] | None = None) -> str:
    """The external object for ``table``: ``<Table>__x``, or the name ``names`` gives it (``Orders -> Order``)."""
    chosen = (names or {}).get(table.name.lower()) or table.name
    return f"{api_name(chosen.removesuffix('__x'))}__x"


def column_field(column: ExternalColumn, *, key: bool, writable: bool) -> dict[str, Any]:
    """The field spec of one remote column."""
    spec: dict[str, Any] = {"name": f"{api_name(column.name)}__c", "type": _FIELD_TYPES.get(column.type, "text"),
                            "label": column.label or column.name, "externalName": column.name}
    if column.type == "string":
        spec["length"] = max(1, min(column.length or 255, 255))
    elif column.type == "textarea":
        spec["length"] = max(256, min(column.length or 32768, 131072))
    elif column.type == "int":
        spec.update(precision=min(max(column.precision or 18, 1), 18), scale=0)
    elif column.type == "double":
        precision = min(max(column.precision or 18, 1), 18)
        spec.update(precision=precision, scale=min(max(column.scale, 0), precision))
    elif column.type == "url":
        spec["length"] = max(1, min(column.length or 255, 255))
    if key or not writable:
        spec.update(createable=key and writable, updateable=False)
    return spec


def table_spec(source: DataSource, table: ExternalTable, existing: dict[str, Any] | None,
               name: str | None = None) -> tuple[dict[str, Any], list[str]]:
    """The object spec for ``table``, merged with the spec already in the project (kept edits win)."""
    writable = source.writable and table.writable is not False
    renamed = name is not None and name != object_name(table)
    name = name or object_name(table)
    label = name.removesuffix("__x").replace("_", " ") if renamed else table.label or table.name
    spec: dict[str, Any] = {
        "name": name, "label": label, "labelPlural": table.label_plural or label,
        "dataSource": source.name, "externalName": table.name, "externalKey": table.key,
        "createable": writable, "updateable": writable, "deletable": writable,
        "searchable": bool(source.searchable and table.searchable),
        "fields": [column_field(c, key=c.name == table.key, writable=writable) for c in table.columns],
    }
    added = [f["name"] for f in spec["fields"]]
    if existing:
        for key in ("label", "labelPlural", "description", "keyPrefix"):
            if key in existing:
                spec[key] = existing[key]
        old_fields = {str(f.get("name", "")).lower(): f for f in existing.get("fields", []) or []
                      if isinstance(f, dict)}
        merged = []
        for fresh in spec["fields"]:
            old = old_fields.pop(fresh["name"].lower(), None)
            if old is None:
                merged.append(fresh)
                continue
            added.remove(fresh["name"])
            if str(old.get("type", "")).replace("_", "").lower() in ("lookup", "externallookup", "indirectlookup",
                                                                      "reference"):
                merged.append({**old, "externalName": fresh["externalName"]})
                continue
            merged.append({**fresh, **{k: old[k] for k in _KEPT_FIELD_KEYS if k in old}})
        # Fields a person added by hand (not columns of the source) stay as they are.
        merged += [f for f in old_fields.values() if not f.get("externalName")]
        spec["fields"] = merged
    return spec, added


def write_specs(project_dir: Path, source: DataSource, tables: list[ExternalTable],
                only: list[str] | None = None, names: dict[str, str] | None = None) -> SyncResult:
    """Write (or update) one object file per table; ``only`` limits the tables by remote or object name, ``names``
    renames objects (remote table name, any case -> object name)."""
    names = {k.lower(): v for k, v in (names or {}).items()}
    folder = project_dir / "metadata" / "objects"
    folder.mkdir(parents=True, exist_ok=True)
    wanted = {n.lower() for n in only or []}
    result = SyncResult()
    for table in tables:
        name = object_name(table, names)
        if wanted and table.name.lower() not in wanted and name.lower() not in wanted:
            continue
        if not table.key:
            result.skipped.append(f"{table.name}: no single-column key")
            continue
        path = folder / f"{name}.yaml"
        existing = None
        if path.exists():
            try:
                existing = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except yaml.YAMLError as exc:
                raise MetadataError(f"{path}: invalid YAML: {exc}") from None
            if existing.get("dataSource") not in (None, source.name):
                raise MetadataError(f"{path}: {name} belongs to data source {existing.get('dataSource')}")
        spec, added = table_spec(source, table, existing, name)
        path.write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True), encoding="utf-8")
        result.written[name] = path
        result.added_fields[name] = added
    missing = wanted - {t.name.lower() for t in tables} - {object_name(t, names).lower() for t in tables}
    if missing:
        raise MetadataError(f"data source {source.name} has no table(s) {', '.join(sorted(missing))}")
    return result


__all__ = ["SyncResult", "api_name", "column_field", "object_name", "table_spec", "write_specs"]
