"""Profiles, permission sets and permission set groups: the built-in ones and the project's, deployed into the org's
setup objects (``Profile``, ``PermissionSet``, ``ObjectPermissions``, ``FieldPermissions``, ``PermissionSetGroup``,
``PermissionSetGroupComponent``, ``PermissionSetAssignment``) on ``interlink up`` and ``interlink deploy``.

``metadata/profiles/<Name>.yaml`` and ``metadata/permissionSets/<Name>.yaml``::

    label: ERP Integration            # permission sets only (defaults to the name)
    description: What the ERP connector may touch
    userPermissions: [ApiEnabled, ApiUserOnly]      # ApiEnabled, ApiUserOnly, ViewAllData, ModifyAllData, ...
    objectPermissions:
      Account: read, edit             # read, create, edit, delete, viewAll, modifyAll, all, none
      Order__c: {read: true, create: true, edit: true}
    fieldPermissions:
      Account.Customer_Number__c: edit   # read, edit or none
      Order__c.Amount__c: read

``metadata/permissionSetGroups/<Name>.yaml``::

    label: Sales Ops
    permissionSets: [ERP_Integration, Reports]

A file is the truth for what it declares: deploying it again makes the records match it (permissions it no longer
lists are removed). Built-in profiles: *System Administrator* (Modify All Data), *Standard User* (every object and
custom field of the org, kept up to date on each deploy: a local convenience; on the platform new custom objects
and fields reach a profile only when granted), and *Minimum Access - API Only Integrations* (API only, nothing
else: give integration users permission sets).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from interlink.app.provisioning import documents
from interlink.errors import InterlinkError, MetadataError
from interlink.security.access import (
    ADMIN_PROFILE,
    API_ONLY_PROFILE,
    SETUP_OBJECTS,
    STANDARD_PROFILE,
    SYSTEM_PERMISSIONS,
    ObjectAccess,
    parse_field_permission,
    parse_object_permissions,
)
from interlink.security.login_restrictions import ProfileRestrictions, parse_ip_ranges, parse_login_hours
from interlink.soql.render import quote

if TYPE_CHECKING:
    from interlink.app.org import Org
    from interlink.records.context import Context

_SET_KEYS = {"name", "label", "description", "userPermissions", "objectPermissions", "fieldPermissions",
             "externalCredentialPrincipals"}  # checked and enforced by interlink.callouts.principals
_PROFILE_KEYS = _SET_KEYS - {"label", "externalCredentialPrincipals"} | {"loginIpRanges", "loginHours"}
_GROUP_KEYS = {"name", "label", "description", "permissionSets"}

BUILT_IN: dict[str, set[str]] = {
    ADMIN_PROFILE: {"ApiEnabled", "ViewAllData", "ModifyAllData", "ManageUsers", "ViewSetup"},
    STANDARD_PROFILE: {"ApiEnabled"},
    API_ONLY_PROFILE: {"ApiEnabled", "ApiUserOnly"},
}


def _raise_first(results: list[Any], where: str) -> list[str]:
    for result in results:
        if result.errors:
            error = result.errors[0]
            raise MetadataError(f"{where}: {getattr(error, 'message', error)}")
    return [r.id for r in results]


class _Writer:
    """Reads and writes the setup objects as the system (deploys bypass every permission)."""

    def __init__(self, org: Org) -> None:
        self.org = org
        self.context: Context = org.admin_context().as_system()
        self.changes: list[str] = []

    def rows(self, soql: str) -> list[dict[str, Any]]:
        return self.org.query.execute(soql, self.context, batch_size=100_000).records

    def create(self, object_name: str, values: list[dict[str, Any]], where: str) -> list[str]:
        if not values:
            return []
        return _raise_first(self.org.records.create(self.context, object_name, values, all_or_none=True), where)

    def update(self, object_name: str, values: list[dict[str, Any]], where: str) -> None:
        if values:
            _raise_first(self.org.records.update(self.context, object_name, values, all_or_none=True), where)

    def delete(self, record_ids: list[str], where: str) -> None:
        if record_ids:
            _raise_first(self.org.records.hard_delete(self.context, record_ids, all_or_none=True), where)

    # -- permission sets ----------------------------------------------------------------------------------------

    def permission_set(self, name: str, label: str, description: str, system: set[str], *,
                       profile_id: str | None = None) -> str:
        found = self.rows("SELECT Id, Label, Description, " + ", ".join(f"Permissions{p}" for p in SYSTEM_PERMISSIONS)
                          + f" FROM PermissionSet WHERE Name = {quote(name)}")
        values: dict[str, Any] = {"Label": label, "Description": description or None}
        values.update({f"Permissions{p}": p in system for p in SYSTEM_PERMISSIONS})
        if not found:
            extra = {"IsOwnedByProfile": True, "ProfileId": profile_id} if profile_id else {}
            (set_id,) = self.create("PermissionSet", [{"Name": name, **values, **extra}], f"permission set {name}")
            self.changes.append(f"created permission set {name}" if not profile_id else f"created profile {label}")
            return set_id
        row = found[0]
        differing = {k: v for k, v in values.items() if row.get(k) != v}
        if differing:
            self.update("PermissionSet", [{"Id": row["Id"], **differing}], f"permission set {name}")
            self.changes.append(f"updated permission set {label}: {', '.join(sorted(differing))}")
        return str(row["Id"])

    def object_permissions(self, set_id: str, label: str, wanted: Mapping[str, ObjectAccess], *,
                           exact: bool) -> None:
        existing = {r["SobjectType"].lower(): r for r in self.rows(
            "SELECT Id, SobjectType, PermissionsRead, PermissionsCreate, PermissionsEdit, PermissionsDelete, "
            f"PermissionsViewAllRecords, PermissionsModifyAllRecords FROM ObjectPermissions WHERE ParentId = "
            f"'{set_id}'")}
        inserts, updates, keep = [], [], set()
        for object_name, access in wanted.items():
            values = dict(zip(("PermissionsRead", "PermissionsCreate", "PermissionsEdit", "PermissionsDelete",
                               "PermissionsViewAllRecords", "PermissionsModifyAllRecords"), access.as_tuple(),
                              strict=True))
            row = existing.get(object_name.lower())
            keep.add(object_name.lower())
            if row is None:
                inserts.append({"ParentId": set_id, "SobjectType": object_name, **values})
            elif exact and any(bool(row[k]) != v for k, v in values.items()):
                updates.append({"Id": row["Id"], **values})
        self.create("ObjectPermissions", inserts, f"{label}: object permissions")
        self.update("ObjectPermissions", updates, f"{label}: object permissions")
        gone = [r["Id"] for name, r in existing.items() if name not in keep] if exact else []
        self.delete(gone, f"{label}: object permissions")
        if inserts or updates or gone:
            self.changes.append(f"{label}: object permissions +{len(inserts)} ~{len(updates)} -{len(gone)}")

    def field_permissions(self, set_id: str, label: str, wanted: Mapping[str, tuple[bool, bool]], *,
                          exact: bool) -> None:
        existing = {r["Field"].lower(): r for r in self.rows(
            f"SELECT Id, Field, PermissionsRead, PermissionsEdit FROM FieldPermissions WHERE ParentId = '{set_id}'")}
        inserts, updates, keep = [], [], set()
        for field_path, (read, edit) in wanted.items():
            row = existing.get(field_path.lower())
            keep.add(field_path.lower())
            values = {"PermissionsRead": read, "PermissionsEdit": edit}
            if row is None:
                inserts.append({"ParentId": set_id, "SobjectType": field_path.partition(".")[0], "Field": field_path,
                                **values})
            elif exact and (bool(row["PermissionsRead"]), bool(row["PermissionsEdit"])) != (read, edit):
                updates.append({"Id": row["Id"], **values})
        self.create("FieldPermissions", inserts, f"{label}: field permissions")
        self.update("FieldPermissions", updates, f"{label}: field permissions")
        gone = [r["Id"] for name, r in existing.items() if name not in keep] if exact else []
        self.delete(gone, f"{label}: field permissions")
        if inserts or updates or gone:
            self.changes.append(f"{label}: field permissions +{len(inserts)} ~{len(updates)} -{len(gone)}")

    def profile(self, name: str, description: str, system: set[str]) -> tuple[str, str]:
        """(profile id, its owned permission set id), created when missing."""
        found = self.rows(f"SELECT Id FROM Profile WHERE Name = {quote(name)}")
        if found:
            profile_id = str(found[0]["Id"])
        else:
            (profile_id,) = self.create("Profile", [{"Name": name, "Description": description or None}],
                                        f"profile {name}")
        set_id = self.permission_set(f"X{profile_id[:15]}", name, description, system, profile_id=profile_id)
        return profile_id, set_id


def _documents(folder: Path, allowed: set[str]) -> list[tuple[str, dict[str, Any], Path]]:
    """(name, mapping, path) of each file; the name is the ``name`` key or the file's stem."""
    return [(str(data.get("name") or path.stem), data, path) for data, path in documents(folder, allowed)]


def _grants(org: Org, data: Mapping[str, Any], path: Path) -> tuple[set[str], dict[str, ObjectAccess],
                                                                     dict[str, tuple[bool, bool]]]:
    schema = org.store.schema
    system = set(data.get("userPermissions") or [])
    unknown = system - set(SYSTEM_PERMISSIONS)
    if unknown:
        raise MetadataError(f"{path}: userPermissions: unknown {sorted(unknown)}; "
                            f"known: {', '.join(SYSTEM_PERMISSIONS)}")
    objects: dict[str, ObjectAccess] = {}
    for name, value in (data.get("objectPermissions") or {}).items():
        obj = schema.object(str(name))
        if obj is None:
            raise MetadataError(f"{path}: objectPermissions: no object {name}")
        try:
            objects[obj.name] = parse_object_permissions(value, f"{path}: objectPermissions.{name}")
        except InterlinkError as error:
            raise MetadataError(error.message) from error
    fields: dict[str, tuple[bool, bool]] = {}
    for key, value in (data.get("fieldPermissions") or {}).items():
        object_name, _, field_name = str(key).partition(".")
        obj = schema.object(object_name)
        fdef = obj.field(field_name) if obj is not None else None
        if obj is None or fdef is None:
            raise MetadataError(f"{path}: fieldPermissions: no field {key} (write Object.Field)")
        try:
            fields[f"{obj.name}.{fdef.name}"] = parse_field_permission(value, f"{path}: fieldPermissions.{key}")
        except InterlinkError as error:
            raise MetadataError(error.message) from error
    return system, objects, fields


def standard_user_grants(org: Org) -> tuple[dict[str, ObjectAccess], dict[str, tuple[bool, bool]]]:
    """Every object of the org except setup objects; read and edit on every custom field."""
    objects: dict[str, ObjectAccess] = {}
    fields: dict[str, tuple[bool, bool]] = {}
    for obj in org.store.schema:
        if obj.name in SETUP_OBJECTS or obj.name in ("Organization", "SetupAuditTrail", "LoginHistory"):
            continue  # setup, the audit trail and login history: administrators (View Setup, Manage Users)
        if obj.name == "User":
            objects[obj.name] = ObjectAccess(read=True)
        elif obj.is_event:
            objects[obj.name] = ObjectAccess(read=True, create=True)
        else:
            objects[obj.name] = ObjectAccess(read=True, create=obj.createable, edit=obj.updateable,
                                             delete=obj.deletable)
        for fdef in obj.fields:
            if fdef.name.endswith("__c"):
                fields[f"{obj.name}.{fdef.name}"] = (True, fdef.updateable or fdef.createable)
    objects["Profile"] = ObjectAccess(read=True)
    return objects, fields


def apply_permission_metadata(org: Org, project_dir: Path) -> list[str]:
    """Deploy the built-in profiles and the project's profiles, permission sets and groups; give users without a
    profile theirs (the admin: System Administrator). Returns what changed."""
    writer = _Writer(org)
    profiles: dict[str, str] = {}
    for name, system in BUILT_IN.items():
        profile_id, set_id = writer.profile(name, f"Built-in {name} profile", system)
        profiles[name] = profile_id
        if name == STANDARD_PROFILE:
            objects, fields = standard_user_grants(org)
            writer.object_permissions(set_id, name, objects, exact=False)
            writer.field_permissions(set_id, name, fields, exact=False)
    metadata = project_dir / "metadata"
    for name, data, path in _documents(metadata / "profiles", _PROFILE_KEYS):
        if name in BUILT_IN:
            raise MetadataError(f"{path}: {name} is a built-in profile; give yours another name")
        system, objects, fields = _grants(org, data, path)
        profile_id, set_id = writer.profile(name, str(data.get("description") or ""), system)
        profiles[name] = profile_id
        writer.object_permissions(set_id, name, objects, exact=True)
        writer.field_permissions(set_id, name, fields, exact=True)
        # Login IP ranges and login hours: kept where the login policy reads them (interlink.security.logins).
        restrictions = ProfileRestrictions(parse_ip_ranges(data.get("loginIpRanges"), str(path)),
                                           parse_login_hours(data.get("loginHours"), str(path)))
        if org.oauth.logins.set_profile_restrictions(profile_id, restrictions):
            writer.changes.append(f"{name}: login IP ranges and login hours")
    for name, data, path in _documents(metadata / "permissionSets", _SET_KEYS):
        system, objects, fields = _grants(org, data, path)
        set_id = writer.permission_set(name, str(data.get("label") or name), str(data.get("description") or ""),
                                       system)
        writer.object_permissions(set_id, name, objects, exact=True)
        writer.field_permissions(set_id, name, fields, exact=True)
    for name, data, path in _documents(metadata / "permissionSetGroups", _GROUP_KEYS):
        _apply_group(writer, name, data, path)
    _assign_default_profiles(org, writer, profiles)
    org.access.invalidate()
    return writer.changes


def _apply_group(writer: _Writer, name: str, data: Mapping[str, Any], path: Path) -> None:
    found = writer.rows(f"SELECT Id, MasterLabel FROM PermissionSetGroup WHERE DeveloperName = {quote(name)}")
    label = str(data.get("label") or name)
    if found:
        group_id = str(found[0]["Id"])
        if found[0]["MasterLabel"] != label:
            writer.update("PermissionSetGroup", [{"Id": group_id, "MasterLabel": label}], f"{path}")
    else:
        (group_id,) = writer.create("PermissionSetGroup", [{"DeveloperName": name, "MasterLabel": label,
                                                            "Description": data.get("description")}], f"{path}")
        writer.changes.append(f"created permission set group {name}")
    wanted: dict[str, str] = {}
    for set_name in data.get("permissionSets") or []:
        rows = writer.rows(f"SELECT Id FROM PermissionSet WHERE Name = {quote(str(set_name))}")
        if not rows:
            raise MetadataError(f"{path}: permissionSets: no permission set {set_name}")
        wanted[str(rows[0]["Id"])] = str(set_name)
    existing = {r["PermissionSetId"]: r["Id"] for r in writer.rows(
        f"SELECT Id, PermissionSetId FROM PermissionSetGroupComponent WHERE PermissionSetGroupId = '{group_id}'")}
    writer.create("PermissionSetGroupComponent", [{"PermissionSetGroupId": group_id, "PermissionSetId": set_id}
                                                  for set_id in wanted if set_id not in existing], f"{path}")
    writer.delete([row_id for set_id, row_id in existing.items() if set_id not in wanted], f"{path}")


def _assign_default_profiles(org: Org, writer: _Writer, profiles: Mapping[str, str]) -> None:
    from interlink.app.org import ADMIN_USERNAME

    users = org.store.tables["user"]
    with org.store.read() as conn:
        missing = conn.execute(select(users.c.Id, users.c.Username).where(users.c.ProfileId.is_(None))).all()
    updates = [{"Id": row.Id, "ProfileId": profiles[ADMIN_PROFILE if row.Username == ADMIN_USERNAME
                                                     else STANDARD_PROFILE]} for row in missing]
    writer.update("User", updates, "users without a profile")


def assign(org: Org, user_id: str, *, profile: str | None = None, permission_sets: list[str] | None = None,
           groups: list[str] | None = None, exact: bool = False) -> list[str]:
    """Set a user's profile and permission set (group) assignments by name; ``exact`` removes other assignments."""
    writer = _Writer(org)
    if profile is not None:
        rows = writer.rows(f"SELECT Id FROM Profile WHERE Name = {quote(profile)}")
        if not rows:
            raise MetadataError(f"no profile {profile!r} (see metadata/profiles/ and the built-in ones)")
        writer.update("User", [{"Id": user_id, "ProfileId": rows[0]["Id"]}], f"profile {profile}")
    existing = writer.rows("SELECT Id, PermissionSetId, PermissionSetGroupId FROM PermissionSetAssignment "
                           f"WHERE AssigneeId = '{user_id}'")
    held = {r["PermissionSetId"] or r["PermissionSetGroupId"]: r["Id"] for r in existing}
    wanted: dict[str, dict[str, str]] = {}
    for name in permission_sets or []:
        rows = writer.rows(f"SELECT Id FROM PermissionSet WHERE Name = {quote(name)} AND IsOwnedByProfile = false")
        if not rows:
            raise MetadataError(f"no permission set {name!r}")
        wanted[str(rows[0]["Id"])] = {"PermissionSetId": str(rows[0]["Id"])}
    for name in groups or []:
        rows = writer.rows(f"SELECT Id FROM PermissionSetGroup WHERE DeveloperName = {quote(name)}")
        if not rows:
            raise MetadataError(f"no permission set group {name!r}")
        wanted[str(rows[0]["Id"])] = {"PermissionSetGroupId": str(rows[0]["Id"])}
    writer.create("PermissionSetAssignment", [{"AssigneeId": user_id, **values} for key, values in wanted.items()
                                              if key not in held], "assignment")
    if exact:
        writer.delete([row_id for key, row_id in held.items() if key not in wanted], "assignment")
    org.access.invalidate()
    return writer.changes
