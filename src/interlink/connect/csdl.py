"""CSDL (``$metadata``) parsing for the OData adapter: :func:`parse_csdl` reads an OData 4.x or 2.0 EDMX document
(refusing DTDs, resolving aliases, base types and out-of-line annotations, SAP and Capabilities restrictions) into
:class:`~interlink.connect.base.ExternalTable` values, one per entity set with a single-property key, plus an
:class:`EntitySetInfo` per set (its key and each property's remote type) and notes on the sets it skipped."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

from interlink.connect.base import DataSource, ExternalColumn, ExternalTable
from interlink.connect.odata_values import _DATETIMES, _DECIMALS, _INTS, _TIMES, _snippet
from interlink.errors import ExternalObjectError

_EDMX = {"http://docs.oasis-open.org/odata/ns/edmx": 4, "http://schemas.microsoft.com/ado/2007/06/edmx": 2}
_EDM = {"http://docs.oasis-open.org/odata/ns/edm"} | {
    f"http://schemas.microsoft.com/ado/{year}/edm" for year in ("2006/04", "2007/05", "2008/09", "2009/11")}
_SAP = "{http://www.sap.com/Protocols/SAPData}"
_CORE, _CAPABILITIES = "Org.OData.Core.V1", "Org.OData.Capabilities.V1"


@dataclass(frozen=True)
class EntitySetInfo:
    """What the adapter keeps of one entity set: its key and each property's remote type (a 2.0 ``Edm.DateTime``
    shown as a date, ``sap:display-format="Date"``, is kept as ``Edm.Date``)."""

    key: str | None
    types: dict[str, str]


def parse_csdl(document: bytes, source: DataSource) -> tuple[list[ExternalTable], dict[str, EntitySetInfo], list[str]]:
    """Tables, the remote types per entity set, and notes on skipped sets, from a ``$metadata`` document."""
    name = source.name
    # The document is untrusted: no DTDs, so no entity expansion (billion laughs) and no external entities.
    if re.search(rb"<!\s*(DOCTYPE|ENTITY)", document, re.I):
        raise ExternalObjectError(f"{name}: $metadata declares a DTD or entities, which are refused")
    try:
        root = ET.fromstring(document)
    except ET.ParseError as exc:
        raise ExternalObjectError(f"{name}: $metadata is not valid XML: {exc}") from None
    namespace, _, local = root.tag[1:].partition("}")
    if local != "Edmx" or namespace not in _EDMX:
        raise ExternalObjectError(f"{name}: $metadata is not an OData EDMX document: {_snippet(document)}")
    version = 2 if source.type == "odata2" else 4
    if _EDMX[namespace] != version:
        found = "2.0 (EDMX 1.0)" if _EDMX[namespace] == 2 else "4.x"
        raise ExternalObjectError(f"{name}: $metadata is OData {found}, but the data source's type is {source.type}")
    return _Csdl(root, source, version).tables()


class _Csdl:
    """One parsed CSDL document: entity types, containers, aliases and out-of-line annotations."""

    def __init__(self, root: ET.Element, source: DataSource, version: int) -> None:
        self.source, self.version = source, version
        self.aliases = {"Core": _CORE, "Capabilities": _CAPABILITIES}
        self.types: dict[str, ET.Element] = {}
        self.sets: list[tuple[str, ET.Element]] = []
        self.annotations: dict[str, list[ET.Element]] = {}
        for element in root.iter():
            if _local(element) == "Include" and element.get("Alias"):
                self.aliases[element.get("Alias", "")] = element.get("Namespace", "")
        schemas = [e for e in root.iter() if _local(e) == "Schema" and e.tag[1:].partition("}")[0] in _EDM]
        for schema in schemas:
            if schema.get("Alias"):
                self.aliases[schema.get("Alias", "")] = schema.get("Namespace", "")
        for schema in schemas:
            namespace = schema.get("Namespace", "")
            for child in schema:
                kind = _local(child)
                if kind == "EntityType":
                    self.types[f"{namespace}.{child.get('Name')}"] = child
                elif kind == "EntityContainer":
                    self.sets += [(f"{namespace}.{child.get('Name')}", s) for s in child if _local(s) == "EntitySet"]
                elif kind == "Annotations":
                    target = self.qualify(child.get("Target", ""))
                    self.annotations.setdefault(target, []).extend(a for a in child if _local(a) == "Annotation")

    def qualify(self, name: str) -> str:
        """``name`` with a leading alias replaced by its namespace (``Core.Description``, ``self.Order/Id``)."""
        head, slash, tail = name.partition("/")
        prefix, dot, last = head.rpartition(".")
        return (f"{self.aliases.get(prefix, prefix)}{dot}{last}" if dot else head) + slash + tail

    def annotation(self, element: ET.Element, target: str, term: str) -> ET.Element | None:
        inline = [a for a in element if _local(a) == "Annotation"]
        return next((a for a in inline + self.annotations.get(target, [])
                     if self.qualify(a.get("Term", "")) == term), None)

    def description(self, element: ET.Element, target: str) -> str | None:
        label = element.get(f"{_SAP}label")
        found = self.annotation(element, target, f"{_CORE}.Description")
        if label or found is None:
            return label
        return found.get("String") or next((e.text for e in found.iter() if _local(e) == "String"), None)

    def restriction(self, entity_set: ET.Element, target: str, term: str, member: str) -> list[str]:
        """A Capabilities record's member as text values (``Searchable`` -> ["false"], property paths)."""
        found = self.annotation(entity_set, target, f"{_CAPABILITIES}.{term}")
        for value in found.iter() if found is not None else ():
            if _local(value) == "PropertyValue" and value.get("Property") == member:
                if value.get("Bool") is not None:
                    return [value.get("Bool", "")]
                return [(e.text or "").strip() for e in value.iter() if _local(e) in ("Bool", "PropertyPath")]
        return []

    def properties(self, type_name: str,
                   seen: frozenset[str] = frozenset()) -> tuple[list[str], list[tuple[str, ET.Element]]]:
        """The key names and (owner type, Property) pairs of an entity type, base types first."""
        entity_type = self.types.get(type_name)
        if entity_type is None or type_name in seen:
            return [], []
        keys, props = self.properties(self.qualify(entity_type.get("BaseType", "")), seen | {type_name}) \
            if entity_type.get("BaseType") else ([], [])
        own_keys = [ref.get("Name", "") for key in entity_type if _local(key) == "Key"
                    for ref in key if _local(ref) == "PropertyRef"]
        props = props + [(type_name, p) for p in entity_type if _local(p) == "Property"]
        return own_keys or keys, props

    def tables(self) -> tuple[list[ExternalTable], dict[str, EntitySetInfo], list[str]]:
        tables, infos, notes = [], {}, []
        for container, entity_set in self.sets:
            set_name, type_name = entity_set.get("Name", ""), self.qualify(entity_set.get("EntityType", ""))
            keys, props = self.properties(type_name)
            if not props:
                notes.append(f"entity set {set_name} skipped: its type {type_name} is not in $metadata")
                continue
            if len(keys) != 1 or "/" in keys[0]:
                notes.append(f"entity set {set_name} skipped: composite key ({', '.join(keys)}) is not supported"
                             if len(keys) > 1 else f"entity set {set_name} skipped: no single-property key")
                continue
            target = f"{container}/{set_name}"
            non_filterable = set(self.restriction(entity_set, target, "FilterRestrictions", "NonFilterableProperties"))
            non_sortable = set(self.restriction(entity_set, target, "SortRestrictions", "NonSortableProperties"))
            columns = [self.column(owner, prop, prop.get("Name", "") == keys[0], non_filterable, non_sortable)
                       for owner, prop in props]
            infos[set_name] = EntitySetInfo(keys[0], {p.get("Name", ""): "Edm.Date" if p.get(f"{_SAP}display-format")
                                                      == "Date" else p.get("Type", "") for _, p in props})
            label = self.description(entity_set, target) or self.description(self.types[type_name], type_name) or \
                set_name
            searchable = self.version == 4 and \
                self.restriction(entity_set, target, "SearchRestrictions", "Searchable") != ["false"]
            locked = all(entity_set.get(f"{_SAP}{flag}") == "false" for flag in ("creatable", "updatable", "deletable"))
            tables.append(ExternalTable(set_name, keys[0], tuple(columns), label=label, label_plural=label,
                                        searchable=searchable, writable=self.source.writable and not locked))
        return tables, infos, notes

    def column(self, owner: str, prop: ET.Element, is_key: bool, non_filterable: set[str],
               non_sortable: set[str]) -> ExternalColumn:
        """One property as a column of the closest type."""
        name, edm = prop.get("Name", ""), prop.get("Type", "")
        label = self.description(prop, f"{owner}/{name}") or name
        facets: dict[str, Any] = {}
        max_length, precision, scale = prop.get("MaxLength", ""), prop.get("Precision", ""), prop.get("Scale", "")
        if edm == "Edm.String":
            long_text = not max_length.isdigit() or int(max_length) > 255
            facets = {"type": "textarea" if long_text else "string",
                      "length": int(max_length) if max_length.isdigit() else 131072 if long_text else 255}
        elif edm in _INTS:
            facets = {"type": "int", "precision": _INTS[edm]}
        elif edm in _DECIMALS:
            # Double and Single carry no facets; six decimals keep their usual values readable.
            default_scale = 0 if edm == "Edm.Decimal" and not scale else 6
            facets = {"type": "double", "precision": int(precision) if precision.isdigit() else 18,
                      "scale": int(scale) if scale.isdigit() else default_scale}
        elif edm == "Edm.Boolean":
            facets = {"type": "boolean"}
        elif edm == "Edm.Date" or (edm == "Edm.DateTime" and prop.get(f"{_SAP}display-format") == "Date"):
            facets = {"type": "date"}
        elif edm in _DATETIMES:
            facets = {"type": "datetime"}
        elif edm in _TIMES:
            facets = {"type": "time"}
        elif edm == "Edm.Guid":
            facets = {"type": "string", "length": 36}
        return ExternalColumn(
            name, label=label, nullable=not is_key and prop.get("Nullable", "true") != "false",
            filterable=name not in non_filterable and prop.get(f"{_SAP}filterable") != "false",
            sortable=name not in non_sortable and prop.get(f"{_SAP}sortable") != "false", **facets)


def _local(element: ET.Element) -> str:
    return element.tag.rpartition("}")[2] if isinstance(element.tag, str) else ""


__all__ = ["EntitySetInfo", "parse_csdl"]
