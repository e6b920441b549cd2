"""The entity data model the producer serves, derived from the org's schema and ``metadata/odata.yaml``.

Each exposed object is an entity set (and an entity type) named after the object's API name, keyed by ``Id``.
Every field is a property. A lookup to another exposed object is a single-valued navigation property named
after its relationship (``Contact.Account``); the child relationship on the other side is a collection-valued
one (``Account.Contacts``). Polymorphic lookups, lookups to objects that are not exposed and relationships
whose name clashes with a property get no navigation property (the id field is still there).

Names match case-insensitively, as SOQL's do; answers use the metadata's spelling.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from interlink.api.odata.config import ODataConfig
from interlink.errors import InvalidFieldError, NotFoundError
from interlink.metadata.model import FieldDef, FieldType, ObjectDef, Schema

NAMESPACE = "Interlink"
CONTAINER = "Interlink"
ID_LENGTH = 18

_STRING_TYPES = frozenset({FieldType.STRING, FieldType.TEXTAREA, FieldType.EMAIL, FieldType.PHONE, FieldType.URL,
                           FieldType.PICKLIST, FieldType.MULTIPICKLIST, FieldType.ID, FieldType.REFERENCE})
_DECIMAL_TYPES = frozenset({FieldType.DOUBLE, FieldType.CURRENCY, FieldType.PERCENT})


@dataclass(frozen=True)
class Property:
    """A structural property: one field with its EDM types in OData 4.0 and 2.0."""

    name: str
    fdef: FieldDef

    @property
    def v4_type(self) -> str:
        return edm_type(self.fdef, 4)

    @property
    def v2_type(self) -> str:
        return edm_type(self.fdef, 2)

    @property
    def is_string(self) -> bool:
        return self.fdef.type in _STRING_TYPES


@dataclass(frozen=True)
class ParentNav:
    """A single-valued navigation property: the lookup ``field`` to the exposed object ``target``."""

    name: str
    field: FieldDef
    target: str


@dataclass(frozen=True)
class ChildNav:
    """A collection-valued navigation property: records of ``child`` whose ``field`` points here."""

    name: str
    child: str
    field: str


@dataclass
class EntitySet:
    """One exposed object, its properties and its navigation properties (keys are lower-case names)."""

    name: str
    obj: ObjectDef
    writable: bool
    properties: dict[str, Property] = field(default_factory=dict)
    parents: dict[str, ParentNav] = field(default_factory=dict)
    children: dict[str, ChildNav] = field(default_factory=dict)

    @property
    def type_name(self) -> str:
        """The qualified entity type name, e.g. ``Interlink.Account``."""
        return f"{NAMESPACE}.{self.name}"

    def property(self, name: str) -> Property:
        """The property ``name``; INVALID_FIELD when the type has none."""
        found = self.properties.get(name.lower())
        if found is None:
            raise InvalidFieldError(f"No property '{name}' exists in type '{self.type_name}'", [name])
        return found

    def navigation(self, name: str) -> ParentNav | ChildNav | None:
        lowered = name.lower()
        return self.parents.get(lowered) or self.children.get(lowered)

    def parent_for_field(self, field_name: str) -> ParentNav | None:
        return next((p for p in self.parents.values() if p.field.name.lower() == field_name.lower()), None)


class ServiceModel:
    """Every exposed entity set, built from one schema version and the producer's configuration."""

    def __init__(self, schema: Schema, config: ODataConfig) -> None:
        self.schema = schema
        self.config = config
        self.sets: dict[str, EntitySet] = {}
        for exposed in config.objects:
            obj = schema.object(exposed.name)
            if obj is None or not obj.is_stored:
                continue  # dropped by a later deploy: no longer served
            self.sets[obj.name.lower()] = EntitySet(obj.name, obj, exposed.writable,
                                                    {f.name.lower(): Property(f.name, f) for f in obj.fields})
        for entity_set in self.sets.values():
            self._add_parents(entity_set)
        for entity_set in self.sets.values():
            self._add_children(entity_set)

    def _add_parents(self, entity_set: EntitySet) -> None:
        for fdef in entity_set.obj.reference_fields:
            if (len(fdef.reference_to) != 1 or not fdef.relationship_name or fdef.reference_target_field
                    or fdef.reference_to[0].lower() not in self.sets):
                continue
            name = fdef.relationship_name
            if name.lower() in entity_set.properties or name.lower() in entity_set.parents:
                continue
            target = self.sets[fdef.reference_to[0].lower()].name
            entity_set.parents[name.lower()] = ParentNav(name, fdef, target)

    def _add_children(self, entity_set: EntitySet) -> None:
        for relation in self.schema.children_of(entity_set.name):
            child = self.sets.get(relation.child_object.lower())
            name = relation.relationship_name
            if child is None or not name:
                continue
            lowered = name.lower()
            if lowered in entity_set.properties or lowered in entity_set.parents or lowered in entity_set.children:
                continue
            if child.parent_for_field(relation.field) is None:
                continue  # polymorphic or otherwise not navigable from the child side
            entity_set.children[lowered] = ChildNav(name, child.name, relation.field)

    def entity_set(self, name: str) -> EntitySet:
        """The entity set ``name``; NOT_FOUND when it is not exposed."""
        found = self.sets.get(name.lower())
        if found is None:
            raise NotFoundError(f"Resource not found for the segment '{name}'")
        return found

    def partner(self, entity_set: EntitySet, nav: ParentNav | ChildNav) -> ParentNav | ChildNav | None:
        """The navigation property on the other side of ``nav``, when there is one."""
        if isinstance(nav, ParentNav):
            target = self.sets[nav.target.lower()]
            return next((c for c in target.children.values()
                         if c.child == entity_set.name and c.field == nav.field.name), None)
        child = self.sets[nav.child.lower()]
        return child.parent_for_field(nav.field)


def edm_type(fdef: FieldDef, version: int) -> str:
    """The EDM primitive type of a field in OData ``version`` (4 or 2)."""
    ftype = fdef.type
    if ftype in _STRING_TYPES:
        return "Edm.String"
    if ftype is FieldType.BOOLEAN:
        return "Edm.Boolean"
    if ftype is FieldType.INT:
        return "Edm.Int32"
    if ftype in _DECIMAL_TYPES:
        return "Edm.Decimal" if fdef.precision > 0 else "Edm.Double"
    if ftype is FieldType.DATE:
        return "Edm.Date" if version == 4 else "Edm.DateTime"
    if ftype is FieldType.DATETIME:
        return "Edm.DateTimeOffset" if version == 4 else "Edm.DateTime"
    if ftype is FieldType.TIME:
        return "Edm.TimeOfDay" if version == 4 else "Edm.Time"
    return "Edm.String"


def max_length(fdef: FieldDef) -> int | None:
    """The MaxLength facet of a string property (18 for ids), or None."""
    if fdef.type in (FieldType.ID, FieldType.REFERENCE):
        return ID_LENGTH if fdef.reference_target_field is None else (fdef.length or None)
    if fdef.type in _STRING_TYPES and fdef.length > 0:
        return fdef.length
    return None
