"""Share objects and the parents of ``ControlledByParent`` objects: the metadata side of record sharing.

The platform keeps who a record is shared with, beyond the organization-wide default, in a *share object* per
object, named and shaped as the platform names and shapes them::

    Account      -> AccountShare      (AccountId, UserOrGroupId, AccountAccessLevel, OpportunityAccessLevel,
                                       CaseAccessLevel, ContactAccessLevel, RowCause)   packaged standard objects
    Opportunity  -> OpportunityShare  (OpportunityId, UserOrGroupId, OpportunityAccessLevel, RowCause)
    Case         -> CaseShare         (CaseId, UserOrGroupId, CaseAccessLevel, RowCause)
    Contact      -> ContactShare      (ContactId, UserOrGroupId, ContactAccessLevel, RowCause)
    Invoice__c   -> Invoice__Share    (ParentId, UserOrGroupId, AccessLevel, RowCause)      generated here

A custom object gets its share object when its ``sharingModel`` is ``Private`` or ``Read`` (as on the platform:
a public read/write object has nothing to share). The generated spec is an ordinary object spec, so it is
deployed, stored and reloaded like any other object. As on the platform, every custom share object's ids begin
with ``02c`` (:data:`CUSTOM_SHARE_KEY_PREFIX`, assigned by the loader): an id is routed to its object by probing
the share tables (:meth:`interlink.store.database.Store.object_for_id`), as for the history objects' ``017``. A
share object deployed before it had ``02c`` keeps the prefix it has (changing it would orphan its ids).
"""

from __future__ import annotations

from typing import Any

from interlink.metadata.model import ObjectDef

#: Standard share objects: parent -> (share object, its lookup to the parent, its access level field).
STANDARD_SHARES: dict[str, tuple[str, str, str]] = {
    "Account": ("AccountShare", "AccountId", "AccountAccessLevel"),
    "Opportunity": ("OpportunityShare", "OpportunityId", "OpportunityAccessLevel"),
    "Case": ("CaseShare", "CaseId", "CaseAccessLevel"),
    "Contact": ("ContactShare", "ContactId", "ContactAccessLevel"),
}
#: Standard objects whose ``ControlledByParent`` default follows this lookup (custom ones: their master-detail).
STANDARD_PARENTS = {"Contact": "AccountId", "Order": "AccountId", "OrderItem": "OrderId",
                    "Opportunity": "AccountId", "Case": "AccountId", "Asset": "AccountId"}
SHARED_MODELS = ("Private", "Read")
#: The key prefix of every custom share object (``Invoice__Share``, ``Project__Share``, ...), as on the platform.
CUSTOM_SHARE_KEY_PREFIX = "02c"


def share_object_name(parent: str) -> str:
    """``Account`` -> ``AccountShare``, ``Invoice__c`` -> ``Invoice__Share``."""
    if parent in STANDARD_SHARES:
        return STANDARD_SHARES[parent][0]
    return parent[:-3] + "__Share" if parent.endswith("__c") else parent + "Share"


def share_fields(parent: str) -> tuple[str, str]:
    """(lookup to the parent, access level field) of ``parent``'s share object."""
    if parent in STANDARD_SHARES:
        return STANDARD_SHARES[parent][1], STANDARD_SHARES[parent][2]
    return "ParentId", "AccessLevel"


def share_parent(name: str) -> str | None:
    """The object a share object shares (``AccountShare`` -> ``Account``), None if ``name`` is not one."""
    for parent, (share, _, _) in STANDARD_SHARES.items():
        if name.lower() == share.lower():
            return parent
    if name.endswith("__Share"):
        return name[:-7] + "__c"
    return None


def is_custom_share(name: str) -> bool:
    """Whether ``name`` is a custom object's share object (``Invoice__Share``): they all share ``02c``."""
    return name.endswith("__Share")


def share_spec(parent: dict[str, Any]) -> dict[str, Any]:
    """The spec of a custom object's share object (``Invoice__c`` -> ``Invoice__Share``)."""
    name = str(parent["name"])
    label = str(parent.get("label") or name[:-3].replace("_", " "))
    return {
        "name": share_object_name(name), "standard": True, "owner": False, "searchable": False,
        "label": f"{label} Share", "labelPlural": f"{label} Shares",
        "description": f"Who {name} records are shared with beyond the organization-wide default (manual shares).",
        "fields": [
            {"name": "ParentId", "type": "reference", "label": "Parent ID", "referenceTo": name,
             "relationshipName": "Parent", "childRelationshipName": "Shares", "required": True,
             "cascadeDelete": True, "updateable": False},
            {"name": "UserOrGroupId", "type": "reference", "label": "User/Group ID", "referenceTo": ["User", "Group"],
             "relationshipName": "UserOrGroup", "required": True, "updateable": False},
            {"name": "AccessLevel", "type": "picklist", "label": "Access Level", "values": ["Read", "Edit", "All"],
             "restricted": True, "required": True},
            {"name": "RowCause", "type": "picklist", "label": "Row Cause",
             "values": ["Owner", "Manual", "Rule", "ImplicitChild", "ImplicitParent", "Team"], "restricted": True,
             "defaultValue": "Manual", "updateable": False},
        ],
    }


def needs_share_object(spec: dict[str, Any]) -> bool:
    """Whether a custom object's spec gets a generated share object (sharingModel Private or Read)."""
    name = str(spec.get("name") or "")
    return name.endswith("__c") and spec.get("sharingModel") in SHARED_MODELS and spec.get("owner", True) is not False


def parent_field(obj: ObjectDef) -> str | None:
    """The lookup a ``ControlledByParent`` object's records follow: the first master-detail field, or the
    platform's parent of a standard object (Contact -> AccountId); None when it has neither."""
    for fdef in obj.reference_fields:
        if fdef.master_detail and len(fdef.reference_to) == 1:
            return fdef.name
    name = STANDARD_PARENTS.get(obj.name)
    return name if name is not None and obj.has_field(name) else None


__all__ = ["CUSTOM_SHARE_KEY_PREFIX", "SHARED_MODELS", "STANDARD_PARENTS", "STANDARD_SHARES", "is_custom_share",
           "needs_share_object", "parent_field", "share_fields", "share_object_name", "share_parent", "share_spec"]
