"""``$metadata`` documents: CSDL XML for OData 4.0 (EDMX 4.0) and OData 2.0 (EDMX 1.0, DataServiceVersion 2.0).

Both describe the same model (see model.py): one namespace, ``Interlink``, with an entity type per exposed
object keyed by ``Id``, and an entity container, also ``Interlink``, with an entity set per type.

- 4.0: navigation properties carry their type (``Interlink.Account`` or ``Collection(Interlink.Contact)``), a
  ``Partner`` and, for lookups, a ``ReferentialConstraint``; entity sets bind them with
  ``NavigationPropertyBinding``. Read-only sets say so with Capabilities annotations, and fields nobody can
  set are ``Core.Computed``.
- 2.0: each lookup between exposed objects is an ``Association`` (the parent end ``0..1``, the child end ``*``)
  with an ``AssociationSet`` in the container; navigation properties name its roles.

The documents are built with ElementTree (prefixes written literally, so no global namespace registry is
touched), so every name is escaped.
"""

from __future__ import annotations

from xml.etree import ElementTree as ET

from interlink.api.odata.model import (
    CONTAINER,
    NAMESPACE,
    ChildNav,
    EntitySet,
    ParentNav,
    Property,
    ServiceModel,
    max_length,
)
from interlink.metadata.model import FieldType

EDMX_V4 = "http://docs.oasis-open.org/odata/ns/edmx"
EDM_V4 = "http://docs.oasis-open.org/odata/ns/edm"
EDMX_V2 = "http://schemas.microsoft.com/ado/2007/06/edmx"
EDM_V2 = "http://schemas.microsoft.com/ado/2008/09/edm"
METADATA_V2 = "http://schemas.microsoft.com/ado/2007/08/dataservices/metadata"
_VOCABULARIES = {
    "Core": ("Org.OData.Core.V1", "https://oasis-tcs.github.io/odata-vocabularies/vocabularies/Org.OData.Core.V1.xml"),
    "Capabilities": ("Org.OData.Capabilities.V1",
                     "https://oasis-tcs.github.io/odata-vocabularies/vocabularies/Org.OData.Capabilities.V1.xml"),
}


def _document(root: ET.Element) -> bytes:
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _facets(element: ET.Element, prop: Property) -> None:
    fdef = prop.fdef
    if not fdef.nillable:
        element.set("Nullable", "false")
    length = max_length(fdef)
    if length is not None:
        element.set("MaxLength", str(length))
    if fdef.type in (FieldType.DOUBLE, FieldType.CURRENCY, FieldType.PERCENT) and fdef.precision > 0:
        element.set("Precision", str(fdef.precision))
        element.set("Scale", str(min(fdef.scale, fdef.precision)))


# -- OData 4.0 -----------------------------------------------------------------------------------------------------

def metadata_v4(model: ServiceModel) -> bytes:
    """The OData 4.0 ``$metadata`` document."""
    root = ET.Element("edmx:Edmx", {"Version": "4.0", "xmlns:edmx": EDMX_V4})
    for alias, (namespace, uri) in _VOCABULARIES.items():
        reference = ET.SubElement(root, "edmx:Reference", {"Uri": uri})
        ET.SubElement(reference, "edmx:Include", {"Namespace": namespace, "Alias": alias})
    services = ET.SubElement(root, "edmx:DataServices")
    schema = ET.SubElement(services, "Schema", {"xmlns": EDM_V4, "Namespace": NAMESPACE})
    for entity_set in model.sets.values():
        _entity_type_v4(schema, model, entity_set)
    container = ET.SubElement(schema, "EntityContainer", {"Name": CONTAINER})
    for entity_set in model.sets.values():
        element = ET.SubElement(container, "EntitySet", {"Name": entity_set.name, "EntityType": entity_set.type_name})
        navs: list[ParentNav | ChildNav] = [*entity_set.parents.values(), *entity_set.children.values()]
        for nav in navs:
            target = nav.target if isinstance(nav, ParentNav) else nav.child
            ET.SubElement(element, "NavigationPropertyBinding", {"Path": nav.name, "Target": target})
        if not entity_set.writable:
            for term, flag in (("InsertRestrictions", "Insertable"), ("UpdateRestrictions", "Updatable"),
                               ("DeleteRestrictions", "Deletable")):
                annotation = ET.SubElement(element, "Annotation", {"Term": f"Capabilities.{term}"})
                record = ET.SubElement(annotation, "Record")
                ET.SubElement(record, "PropertyValue", {"Property": flag, "Bool": "false"})
    return _document(root)


def _entity_type_v4(schema: ET.Element, model: ServiceModel, entity_set: EntitySet) -> None:
    entity_type = ET.SubElement(schema, "EntityType", {"Name": entity_set.name})
    key = ET.SubElement(entity_type, "Key")
    ET.SubElement(key, "PropertyRef", {"Name": "Id"})
    for prop in entity_set.properties.values():
        element = ET.SubElement(entity_type, "Property", {"Name": prop.name, "Type": prop.v4_type})
        _facets(element, prop)
        if not prop.fdef.createable and not prop.fdef.updateable:
            ET.SubElement(element, "Annotation", {"Term": "Core.Computed", "Bool": "true"})
    for nav in entity_set.parents.values():
        attributes = {"Name": nav.name, "Type": f"{NAMESPACE}.{nav.target}"}
        partner = model.partner(entity_set, nav)
        if partner is not None:
            attributes["Partner"] = partner.name
        element = ET.SubElement(entity_type, "NavigationProperty", attributes)
        ET.SubElement(element, "ReferentialConstraint", {"Property": nav.field.name, "ReferencedProperty": "Id"})
    for child in entity_set.children.values():
        attributes = {"Name": child.name, "Type": f"Collection({NAMESPACE}.{child.child})"}
        partner = model.partner(entity_set, child)
        if partner is not None:
            attributes["Partner"] = partner.name
        ET.SubElement(entity_type, "NavigationProperty", attributes)


# -- OData 2.0 -----------------------------------------------------------------------------------------------------

class _Association:
    """One lookup between exposed objects as a V2 association: its name and its two role names."""

    def __init__(self, child_set: EntitySet, nav: ParentNav, model: ServiceModel) -> None:
        self.child_set = child_set
        self.nav = nav
        self.name = f"{child_set.name}_{nav.field.name}"
        self.parent_role = nav.name
        partner = model.partner(child_set, nav)
        child_role = partner.name if partner is not None else f"{child_set.name}_{nav.field.name}_Children"
        self.child_role = child_role if child_role != self.parent_role else f"{child_role}_Children"
        self.partner = partner


def associations(model: ServiceModel) -> list[_Association]:
    """Every association of the V2 model (one per navigable lookup)."""
    return [_Association(entity_set, nav, model) for entity_set in model.sets.values()
            for nav in entity_set.parents.values()]


def metadata_v2(model: ServiceModel) -> bytes:
    """The OData 2.0 ``$metadata`` document (EDMX 1.0, ``m:DataServiceVersion="2.0"``)."""
    root = ET.Element("edmx:Edmx", {"Version": "1.0", "xmlns:edmx": EDMX_V2})
    services = ET.SubElement(root, "edmx:DataServices", {"xmlns:m": METADATA_V2, "m:DataServiceVersion": "2.0"})
    schema = ET.SubElement(services, "Schema", {"xmlns": EDM_V2, "Namespace": NAMESPACE})
    links = associations(model)
    for entity_set in model.sets.values():
        entity_type = ET.SubElement(schema, "EntityType", {"Name": entity_set.name})
        key = ET.SubElement(entity_type, "Key")
        ET.SubElement(key, "PropertyRef", {"Name": "Id"})
        for prop in entity_set.properties.values():
            element = ET.SubElement(entity_type, "Property", {"Name": prop.name, "Type": prop.v2_type})
            _facets(element, prop)
        for link in links:
            if link.child_set is entity_set:
                ET.SubElement(entity_type, "NavigationProperty", {
                    "Name": link.nav.name, "Relationship": f"{NAMESPACE}.{link.name}",
                    "FromRole": link.child_role, "ToRole": link.parent_role})
            if link.partner is not None and link.nav.target == entity_set.name:
                ET.SubElement(entity_type, "NavigationProperty", {
                    "Name": link.partner.name, "Relationship": f"{NAMESPACE}.{link.name}",
                    "FromRole": link.parent_role, "ToRole": link.child_role})
    for link in links:
        association = ET.SubElement(schema, "Association", {"Name": link.name})
        ET.SubElement(association, "End", {"Type": f"{NAMESPACE}.{link.nav.target}", "Multiplicity": "0..1",
                                           "Role": link.parent_role})
        ET.SubElement(association, "End", {"Type": link.child_set.type_name, "Multiplicity": "*",
                                           "Role": link.child_role})
        constraint = ET.SubElement(association, "ReferentialConstraint")
        principal = ET.SubElement(constraint, "Principal", {"Role": link.parent_role})
        ET.SubElement(principal, "PropertyRef", {"Name": "Id"})
        dependent = ET.SubElement(constraint, "Dependent", {"Role": link.child_role})
        ET.SubElement(dependent, "PropertyRef", {"Name": link.nav.field.name})
    container = ET.SubElement(schema, "EntityContainer", {
        "Name": CONTAINER, "m:IsDefaultEntityContainer": "true"})
    for entity_set in model.sets.values():
        ET.SubElement(container, "EntitySet", {"Name": entity_set.name, "EntityType": entity_set.type_name})
    for link in links:
        association_set = ET.SubElement(container, "AssociationSet", {
            "Name": link.name, "Association": f"{NAMESPACE}.{link.name}"})
        ET.SubElement(association_set, "End", {"EntitySet": link.nav.target, "Role": link.parent_role})
        ET.SubElement(association_set, "End", {"EntitySet": link.child_set.name, "Role": link.child_role})
    return _document(root)
