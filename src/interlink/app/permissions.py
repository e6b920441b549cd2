"""Profiles, permission sets and permission set groups: the built-in ones and the project's, deployed into the org's
setup objects (``Profile``, ``PermissionSet``, ``ObjectPermissions``, ``FieldPermissions``, ``PermissionSetGroup``,
``MutingPermissionSet``, ``PermissionSetGroupComponent``, ``PermissionSetAssignment``) on ``interlink up`` and
``interlink deploy``.

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
    mutingPermissionSet:              # optional: what the group's sets grant that its members do not get
      label: Sales Ops muted           # name: <Group>_Muting unless ``name`` says otherwise
      userPermissions: [ModifyAllData]
      objectPermissions:
        Account: delete               # mutes Delete (and Modify All, which needs it); ``read`` mutes everything
      fieldPermissions:
        Account.Customer_Number__c: edit   # mutes Edit; ``read`` mutes Read (and so Edit)

The same from SFDX source (``profiles/``, ``permissionsets/``, ``permissionsetgroups/``, ``mutingpermissionsets/``
of the package directories; see :mod:`interlink.metadata.sfdx_permissions`): one deploy path for both, except that
objects, fields and user permissions the org does not have are skipped with a warning in source files (retrieved
files name hundreds) and are errors in YAML files (written by hand). A name defined by both is an error.

A file is the truth for what it declares: deploying it again makes the records match it (permissions it no longer
lists are removed). Built-in profiles: *System Administrator* (Modify All Data), *Standard User* (every object and
custom field of the org, kept up to date on each deploy: a local convenience; on the platform new custom objects
and fields reach a profile only when granted), and *Minimum Access - API Only Integrations* (API only, nothing
else: give integration users permission sets).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from interlink.app.provisioning import documents
from interlink.errors import InterlinkError, MetadataError
from interlink.metadata.sfdx_permissions import load_sfdx_permissions
from interlink.security.access import (
    ADMIN_PROFILE,
    API_ONLY_PROFILE,
    FULL,
    NONE,
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
_GROUP_KEYS = {"name", "label", "description", "permissionSets", "mutingPermissionSet"}
_MUTING_KEYS = {"name", "label", "description", "userPermissions", "objectPermissions", "fieldPermissions"}
_OBJECT_KEYS = ("read", "create", "edit", "delete", "viewAll", "modifyAll")

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
        extra = {"IsOwnedByProfile": True, "ProfileId": profile_id} if profile_id else {}
        return self.ensure("PermissionSet", found, {"Name": name, **extra}, values,
                           f"profile {label}" if profile_id else f"permission set {name}")

    def ensure(self, object_name: str, found: list[dict[str, Any]], identity: Mapping[str, Any],
               values: Mapping[str, Any], what: str, where: str | None = None) -> str:
        """The id of the record ``found`` (a query's rows) holds, updated to ``values``; created with ``identity``
        and ``values`` when ``found`` is empty. Records what changed; errors name ``where`` (default ``what``)."""
        if not found:
            (record_id,) = self.create(object_name, [{**identity, **values}], where or what)
            self.changes.append(f"created {what}")
            return record_id
        row = found[0]
        differing = {k: v for k, v in values.items() if row.get(k) != v}
        if differing:
            self.update(object_name, [{"Id": row["Id"], **differing}], where or what)
            self.changes.append(f"updated {what}: {', '.join(sorted(differing))}")
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

    def revoke_objects(self, set_id: str, label: str, object_names: Iterable[str]) -> None:
        """Remove the set's object permissions on ``object_names``."""
        names = ", ".join(quote(name) for name in object_names)
        gone = [r["Id"] for r in self.rows(f"SELECT Id FROM ObjectPermissions WHERE ParentId = '{set_id}' "
                                           f"AND SobjectType IN ({names})")]
        self.delete(gone, f"{label}: object permissions")
        if gone:
            self.changes.append(f"{label}: object permissions -{len(gone)}")

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

    def muting_set(self, name: str, label: str, system: set[str]) -> str:
        """A MutingPermissionSet (what its group's sets grant and its members do not get), created when missing."""
        found = self.rows("SELECT Id, MasterLabel, " + ", ".join(f"Permissions{p}" for p in SYSTEM_PERMISSIONS)
                          + f" FROM MutingPermissionSet WHERE DeveloperName = {quote(name)}")
        values: dict[str, Any] = {"MasterLabel": label}
        values.update({f"Permissions{p}": p in system for p in SYSTEM_PERMISSIONS})
        return self.ensure("MutingPermissionSet", found, {"DeveloperName": name}, values,
                           f"muting permission set {name}")


@dataclass(frozen=True)
class _Doc:
    """One profile, permission set, group or muting permission set: from a YAML file, or from SFDX source."""

    name: str
    data: Mapping[str, Any]
    path: Path
    source: bool = False  # SFDX: what the org does not have is skipped with a warning, not an error


def _documents(folder: Path, allowed: set[str]) -> list[_Doc]:
    """The YAML files of ``folder``; a document's name is its ``name`` key or the file's stem."""
    return [_Doc(str(data.get("name") or path.stem), data, path) for data, path in documents(folder, allowed)]


def _combined(kind: str, yaml_docs: list[_Doc], source_docs: list[tuple[str, dict[str, Any], Path]]) -> list[_Doc]:
    """The YAML and SFDX documents of one kind; a name defined twice is an error naming both files."""
    found: dict[str, _Doc] = {}
    for doc in [*yaml_docs, *(_Doc(name, data, path, source=True) for name, data, path in source_docs)]:
        earlier = found.get(doc.name.lower())
        if earlier is not None:
            raise MetadataError(f"{kind} {doc.name} is defined twice: in {earlier.path} and in {doc.path}")
        found[doc.name.lower()] = doc
    return list(found.values())


def _yaml_groups(folder: Path) -> tuple[list[_Doc], list[_Doc]]:
    """The groups of ``metadata/permissionSetGroups`` and the muting permission sets they declare inline."""
    groups: list[_Doc] = []
    muting: list[_Doc] = []
    for doc in _documents(folder, _GROUP_KEYS):
        inline = doc.data.get("mutingPermissionSet")
        if inline is None:
            groups.append(doc)
            continue
        if not isinstance(inline, Mapping) or not set(inline) <= _MUTING_KEYS:
            raise MetadataError(f"{doc.path}: mutingPermissionSet takes {', '.join(sorted(_MUTING_KEYS))}")
        name = str(inline.get("name") or f"{doc.name}_Muting")
        muting.append(_Doc(name, {"label": f"{doc.data.get('label') or doc.name} (muted)", **inline}, doc.path))
        groups.append(_Doc(doc.name, {**doc.data, "mutingPermissionSets": [name]}, doc.path))
    return groups, muting


def _grants(org: Org, doc: _Doc, warnings: list[str], *, muting: bool = False) -> tuple[
        set[str], dict[str, ObjectAccess], dict[str, tuple[bool, bool]]]:
    """The user, object and field permissions ``doc`` grants (``muting``: mutes), checked against the org.

    What the org does not have is an error in a YAML file and skipped with one warning per file in SFDX source.
    """
    schema = org.store.schema
    data, path = doc.data, doc.path
    skipped: dict[str, list[str]] = {}
    system = {str(name) for name in data.get("userPermissions") or []}
    unknown = system - set(SYSTEM_PERMISSIONS)
    if unknown and not doc.source:
        raise MetadataError(f"{path}: userPermissions: unknown {sorted(unknown)}; "
                            f"known: {', '.join(SYSTEM_PERMISSIONS)}")
    if unknown:
        skipped["user permission(s) Interlink does not model"] = sorted(unknown)
        system -= unknown
    objects: dict[str, ObjectAccess] = {}
    for name, value in (data.get("objectPermissions") or {}).items():
        obj = schema.object(str(name))
        if obj is None and doc.source:
            skipped.setdefault("object permission(s) on objects the org does not have", []).append(str(name))
            continue
        if obj is None:
            raise MetadataError(f"{path}: objectPermissions: no object {name}")
        where = f"{path}: objectPermissions.{name}"
        objects[obj.name] = _muted_object(value, where) if muting else _checked(parse_object_permissions, value, where)
    fields: dict[str, tuple[bool, bool]] = {}
    for key, value in (data.get("fieldPermissions") or {}).items():
        object_name, _, field_name = str(key).partition(".")
        obj = schema.object(object_name)
        fdef = obj.field(field_name) if obj is not None else None
        if (obj is None or fdef is None) and doc.source:
            skipped.setdefault("field permission(s) on fields the org does not have", []).append(str(key))
            continue
        if obj is None or fdef is None:
            raise MetadataError(f"{path}: fieldPermissions: no field {key} (write Object.Field)")
        where = f"{path}: fieldPermissions.{key}"
        fields[f"{obj.name}.{fdef.name}"] = _muted_field(value, where) if muting else _checked(
            parse_field_permission, value, where)
    for what, names in skipped.items():
        shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
        warnings.append(f"{path}: skipped {len(names)} {what}: {shown}")
    return system, objects, fields


def _checked(parse: Any, value: Any, where: str) -> Any:
    try:
        return parse(value, where)
    except InterlinkError as error:
        raise MetadataError(error.message) from error


def _muted_object(value: Any, where: str) -> ObjectAccess:
    """What a muting permission set mutes on an object: the permissions it names, without the implications a grant
    has (muting Delete leaves Edit and Read)."""
    if isinstance(value, str):
        words = {w.strip() for w in value.replace(",", " ").split() if w.strip()}
        if words in ({"all"}, {"none"}):
            return FULL if words == {"all"} else NONE
        flags = dict.fromkeys(words, True)
    elif isinstance(value, Mapping):
        flags = {str(k): bool(v) for k, v in value.items()}
    else:
        raise MetadataError(f"{where}: give the muted permissions as text (read, create, edit, delete, viewAll, "
                            "modifyAll, all) or a mapping")
    unknown = set(flags) - set(_OBJECT_KEYS)
    if unknown:
        raise MetadataError(f"{where}: unknown object permission(s) {sorted(unknown)}; use {', '.join(_OBJECT_KEYS)}")
    return ObjectAccess(*(flags.get(k, False) for k in _OBJECT_KEYS))


def _muted_field(value: Any, where: str) -> tuple[bool, bool]:
    """(mute Read, mute Edit): ``read`` (Read, and so Edit too), ``edit`` (Edit only), ``none``, or a mapping."""
    if value in ("read", "Read"):
        return True, False
    if value in ("edit", "Edit"):
        return False, True
    if value in ("none", "None", None, False):
        return False, False
    if isinstance(value, Mapping) and set(value) <= {"read", "edit"}:
        return bool(value.get("read", False)), bool(value.get("edit", False))
    raise MetadataError(f"{where}: a muted field permission is read, edit or none")


#: Objects the Standard User profile gets no object permissions on (besides the setup objects): everyone reads
#: roles; View Setup reads the organization and the audit trail; Manage Users reads login history and changes roles.
NOT_FOR_STANDARD_USERS = ("Organization", "SetupAuditTrail", "LoginHistory", "UserRole")


def standard_user_grants(org: Org) -> tuple[dict[str, ObjectAccess], dict[str, tuple[bool, bool]]]:
    """Every object of the org except setup objects; read and edit on every custom field."""
    objects: dict[str, ObjectAccess] = {}
    fields: dict[str, tuple[bool, bool]] = {}
    for obj in org.store.schema:
        if obj.name in SETUP_OBJECTS or obj.name in NOT_FOR_STANDARD_USERS:
            continue  # setup, roles, the audit trail and login history: View Setup and Manage Users decide
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


def apply_permission_metadata(org: Org, project_dir: Path, warnings: list[str] | None = None) -> list[str]:
    """Deploy the built-in profiles and the project's profiles, permission sets, muting permission sets and groups,
    from YAML and SFDX source; give users without a profile theirs (the admin: System Administrator). Returns what
    changed; what source files name that the org does not have is added to ``warnings`` (by default the org's
    bootstrap report, which ``interlink up`` prints)."""
    if warnings is None:
        warnings = org.bootstrap.warnings
    metadata = project_dir / "metadata"
    # Everything is read and checked for clashes before anything is written.
    source, source_warnings = load_sfdx_permissions(project_dir)
    warnings.extend(source_warnings)
    profile_docs = _combined("profile", _documents(metadata / "profiles", _PROFILE_KEYS), source.profiles)
    set_docs = _combined("permission set", _documents(metadata / "permissionSets", _SET_KEYS),
                         source.permission_sets)
    yaml_groups, yaml_muting = _yaml_groups(metadata / "permissionSetGroups")
    group_docs = _combined("permission set group", yaml_groups, source.groups)
    muting_docs = _combined("muting permission set", yaml_muting, source.muting_sets)
    for doc in profile_docs:
        if doc.name in BUILT_IN:
            raise MetadataError(f"{doc.path}: {doc.name} is a built-in profile; give yours another name")

    writer = _Writer(org)
    profiles: dict[str, str] = {}
    for name, system in BUILT_IN.items():
        profile_id, set_id = writer.profile(name, f"Built-in {name} profile", system)
        profiles[name] = profile_id
        if name == STANDARD_PROFILE:
            objects, fields = standard_user_grants(org)
            writer.object_permissions(set_id, name, objects, exact=False)
            writer.field_permissions(set_id, name, fields, exact=False)
            # Grants older versions gave (create/edit/delete on UserRole let a user move roles: no more).
            writer.revoke_objects(set_id, name, NOT_FOR_STANDARD_USERS)
    for doc in profile_docs:
        system, objects, fields = _grants(org, doc, warnings)
        profile_id, set_id = writer.profile(doc.name, str(doc.data.get("description") or ""), system)
        profiles[doc.name] = profile_id
        writer.object_permissions(set_id, doc.name, objects, exact=True)
        writer.field_permissions(set_id, doc.name, fields, exact=True)
        # Login IP ranges and login hours: kept where the login policy reads them (interlink.security.logins).
        restrictions = ProfileRestrictions(parse_ip_ranges(doc.data.get("loginIpRanges"), str(doc.path)),
                                           parse_login_hours(doc.data.get("loginHours"), str(doc.path)))
        if org.oauth.logins.set_profile_restrictions(profile_id, restrictions):
            writer.changes.append(f"{doc.name}: login IP ranges and login hours")
    for doc in set_docs:
        system, objects, fields = _grants(org, doc, warnings)
        set_id = writer.permission_set(doc.name, str(doc.data.get("label") or doc.name),
                                       str(doc.data.get("description") or ""), system)
        writer.object_permissions(set_id, doc.name, objects, exact=True)
        writer.field_permissions(set_id, doc.name, fields, exact=True)
    for doc in muting_docs:
        system, objects, fields = _grants(org, doc, warnings, muting=True)
        set_id = writer.muting_set(doc.name, str(doc.data.get("label") or doc.name), system)
        writer.object_permissions(set_id, doc.name, objects, exact=True)
        writer.field_permissions(set_id, doc.name, fields, exact=True)
    for doc in group_docs:
        _apply_group(writer, doc.name, doc.data, doc.path)
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
    # Its components: the permission sets it unites and the muting permission sets taking from them.
    wanted: dict[str, str] = {}
    for key, soql in (("permissionSets", "SELECT Id FROM PermissionSet WHERE Name = {}"),
                      ("mutingPermissionSets", "SELECT Id FROM MutingPermissionSet WHERE DeveloperName = {}")):
        for set_name in data.get(key) or []:
            rows = writer.rows(soql.format(quote(str(set_name))))
            if not rows:
                what = "muting permission set" if key == "mutingPermissionSets" else "permission set"
                raise MetadataError(f"{path}: {key}: no {what} {set_name}")
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
