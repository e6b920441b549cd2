"""Who may do what: profiles, permission sets and permission set groups turned into one answer per user.

A user's permissions are the union of the permission set their profile owns, the permission sets assigned to them
(``PermissionSetAssignment``) and those of the permission set groups assigned to them (a group's: its sets' minus
what its ``MutingPermissionSet`` components mute, which nothing outside the group loses). Each permission set grants
object permissions (``ObjectPermissions``: read, create, edit, delete, view all, modify all), field permissions
(``FieldPermissions``: read, edit: field-level security) and system permissions (``Permissions*`` fields of the
permission set: API Enabled, API Only User, View All Data, Modify All Data, ...). All of them are records of the
org's setup objects, so they are queryable and, for administrators, writable over the API; the project's
``metadata/profiles``, ``metadata/permissionSets`` and ``metadata/permissionSetGroups`` are deployed into them.

Field-level security covers custom fields (``__c``), as on the platform: a standard field is readable when its
object is, and editable when its object is (and the field itself is). A required custom field is always readable and
editable on an object the user may read or edit. ``Modify All Data`` grants everything.

What a user may not read does not exist for them: the query engine and describe work on :meth:`UserAccess.schema`,
a view of the schema without the objects and fields the user cannot read (the platform's ``sObject type 'X' is not
supported`` and ``No such column 'F'``), and the write path resolves incoming fields against
:meth:`UserAccess.object_view`, whose fields are read-only where the user may not edit them
(``INVALID_FIELD_FOR_INSERT_UPDATE``). Record-level sharing (the organization-wide default, the role hierarchy,
groups, sharing rules, manual shares) is one SQL condition per object, built by :mod:`interlink.security.sharing`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import func, select

from interlink.errors import InsufficientAccess
from interlink.metadata.model import FieldDef, ObjectDef, Schema
from interlink.security.sharing import NO_SHARING, SharingFilter, UserSharing, rules_fingerprint
from interlink.store.database import Store

SETUP_OBJECTS = frozenset({"Profile", "PermissionSet", "PermissionSetAssignment", "ObjectPermissions",
                           "FieldPermissions", "PermissionSetGroup", "PermissionSetGroupComponent",
                           "MutingPermissionSet", "Group", "GroupMember"})
#: Setup objects every user reads whatever their profile and permission sets, as on the platform, where any
#: internal user may query Group and GroupMember (to find the group to share a record with); only administrators
#: (Modify All Data, or Modify All on them) change them.
READ_BY_EVERYONE = frozenset({"Group", "GroupMember", "UserRole"})
#: What the View Setup and Configuration permission lets a user read: the setup objects and the audit trail.
READ_WITH_VIEW_SETUP = SETUP_OBJECTS | {"SetupAuditTrail", "Organization"}
#: What Manage Users lets a user change (besides reading what View Setup reads, which it implies, and LoginHistory):
#: users, roles, and permission set assignments, as on the platform.
MANAGED_WITH_MANAGE_USERS = frozenset({"User", "UserRole", "PermissionSetAssignment"})
#: System permissions, by the suffix of their ``Permissions*`` field on PermissionSet.
SYSTEM_PERMISSIONS = ("ApiEnabled", "ApiUserOnly", "ViewAllData", "ModifyAllData", "ManageUsers", "ViewSetup",
                      "UseAnyApiClient")

#: System permissions that take something away (API Only User: no console); everything else grants.
RESTRICTIONS = frozenset({"ApiUserOnly"})

ADMIN_PROFILE = "System Administrator"
STANDARD_PROFILE = "Standard User"
API_ONLY_PROFILE = "Minimum Access - API Only Integrations"


class AccessDenied(InsufficientAccess):
    """The user's permissions do not allow the operation (the platform's INSUFFICIENT_ACCESS_OR_READONLY)."""

    error_code = "INSUFFICIENT_ACCESS_OR_READONLY"
    http_status = 400


@dataclass(frozen=True)
class ObjectAccess:
    read: bool = False
    create: bool = False
    edit: bool = False
    delete: bool = False
    view_all: bool = False
    modify_all: bool = False

    def merged(self, other: ObjectAccess) -> ObjectAccess:
        return ObjectAccess(*(a or b for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True)))

    def as_tuple(self) -> tuple[bool, ...]:
        return (self.read, self.create, self.edit, self.delete, self.view_all, self.modify_all)

    def normalised(self) -> ObjectAccess:
        """The platform's implications: modify all -> everything; delete -> edit; edit/create/view all -> read."""
        if self.modify_all:
            return ObjectAccess(True, True, True, True, True, True)
        edit = self.edit or self.delete
        return ObjectAccess(self.read or edit or self.create or self.view_all, self.create, edit, self.delete,
                            self.view_all, False)


FULL = ObjectAccess(True, True, True, True, True, True)
NONE = ObjectAccess()
OPERATIONS = {"read": 0, "create": 1, "edit": 2, "delete": 3}


class UserAccess:
    """One user's effective permissions (immutable; recomputed when permissions change)."""

    def __init__(self, user_id: str, system: frozenset[str], objects: dict[str, ObjectAccess],
                 fields: dict[str, dict[str, tuple[bool, bool]]], fingerprint: str,
                 owners: frozenset[str] = frozenset(), *, sharing: UserSharing = NO_SHARING,
                 store: Store | None = None) -> None:
        self.user_id = user_id
        # Whose records the role hierarchy shares with this user: themselves and the users in the roles below theirs.
        self.owners = owners | {user_id}
        self.system = system
        self.objects = objects  # lower-cased object name -> access
        self.fields = fields  # lower-cased object name -> lower-cased field name -> (read, edit)
        self.fingerprint = fingerprint
        self.everything = "ModifyAllData" in system
        self._schemas: dict[int, tuple[Schema, Schema]] = {}
        self._views: dict[int, tuple[ObjectDef, ObjectDef]] = {}
        self._lock = threading.Lock()
        # Groups, sharing rules and manual shares: the SQL condition of the records this user may see or edit.
        self.sharing = SharingFilter(self, store, sharing)

    def has(self, permission: str) -> bool:
        if permission in RESTRICTIONS:  # Modify All Data grants powers, not restrictions
            return permission in self.system
        return self.everything or permission in self.system

    def object(self, obj: ObjectDef) -> ObjectAccess:
        if self.everything:
            return FULL
        found = self.objects.get(obj.name.lower(), NONE)
        if obj.name in READ_BY_EVERYONE:
            found = found.merged(ObjectAccess(read=True))
        manage_users = "ManageUsers" in self.system
        if obj.name in READ_WITH_VIEW_SETUP and (manage_users or "ViewSetup" in self.system):
            found = found.merged(ObjectAccess(read=True))
        if manage_users and obj.name == "LoginHistory":
            found = found.merged(ObjectAccess(read=True))
        if manage_users and obj.name in MANAGED_WITH_MANAGE_USERS:
            found = found.merged(ObjectAccess(read=True, create=obj.createable, edit=obj.updateable,
                                              delete=obj.deletable))
        if "ViewAllData" in self.system and obj.kind != "event":
            found = found.merged(ObjectAccess(read=True, view_all=True))
        return found

    def can(self, obj: ObjectDef, operation: str) -> bool:
        return self.object(obj).as_tuple()[OPERATIONS[operation]]

    def require(self, obj: ObjectDef, operation: str) -> None:
        """INSUFFICIENT_ACCESS_OR_READONLY unless the user may ``operation`` (read/create/edit/delete) ``obj``."""
        if not self.can(obj, operation):
            raise AccessDenied(f"insufficient access rights on object id: you cannot {operation} {obj.name} records "
                               "(check the object permissions of your profile and permission sets)")

    def field(self, obj: ObjectDef, fdef: FieldDef) -> tuple[bool, bool]:
        """(readable, editable) of a field of ``obj``, before the field's own createable/updateable flags."""
        if self.everything:
            return True, True
        access = self.object(obj)
        if not access.read:
            return False, False
        writable = access.edit or access.create
        if (not fdef.custom and not fdef.name.endswith("__c")) or fdef.required or fdef.name_field:
            return True, writable
        read, edit = self.fields.get(obj.name.lower(), {}).get(fdef.name.lower(), (False, False))
        if "ViewAllData" in self.system:
            read = True
        return read or edit, edit and writable

    # -- record-level sharing ---------------------------------------------------------------------------------

    def _shared_rows_only(self, obj: ObjectDef, *, edit: bool) -> bool:
        """Whether the organization-wide default keeps ``obj``'s records to their owners (and the hierarchy above)."""
        if self.everything or not obj.has_field("OwnerId"):
            return False
        access = self.object(obj)
        if access.modify_all or (not edit and (access.view_all or "ViewAllData" in self.system)):
            return False
        model = sharing_model(obj)
        return model == "Private" or (edit and model == "Read")

    def row_filter(self, table: Any, obj: ObjectDef) -> Any:
        """The SQL condition on ``table``'s rows this user may see (None: all of them): ownership, the role
        hierarchy, sharing rules, manual shares, ControlledByParent (see :mod:`interlink.security.sharing`)."""
        return self.sharing.condition(table, obj, edit=False)

    def edit_filter(self, table: Any, obj: ObjectDef) -> Any:
        """The SQL condition on ``table``'s rows this user may edit and delete (None: all of them)."""
        return self.sharing.condition(table, obj, edit=True)

    def can_see_row(self, obj: ObjectDef, row: dict[str, Any], conn: Any = None) -> bool:
        return self._row_allowed(obj, row, edit=False, conn=conn)

    def can_edit_row(self, obj: ObjectDef, row: dict[str, Any], conn: Any = None) -> bool:
        return self._row_allowed(obj, row, edit=True, conn=conn)

    def editable_ids(self, obj: ObjectDef, rows: Any, conn: Any = None) -> set[str]:
        """The ids among ``rows`` (stored records) this user may edit and delete, in one query."""
        return self.sharing.allowed_ids(obj, rows, edit=True, conn=conn)

    def _row_allowed(self, obj: ObjectDef, row: dict[str, Any], *, edit: bool, conn: Any) -> bool:
        if not row.get("Id"):  # not a stored record: ownership only
            return not self._shared_rows_only(obj, edit=edit) or row.get("OwnerId") in self.sharing.owners_for(obj)
        return str(row["Id"]) in self.sharing.allowed_ids(obj, [row], edit=edit, conn=conn)

    def object_view(self, obj: ObjectDef) -> ObjectDef:
        """``obj`` as this user sees it: unreadable fields gone, fields they may not edit read-only."""
        if self.everything:
            return obj
        with self._lock:
            cached = self._views.get(id(obj))
            if cached is not None and cached[0] is obj:
                return cached[1]
        fields: list[FieldDef] = []
        for fdef in obj.fields:
            read, edit = self.field(obj, fdef)
            if not read:
                continue
            if not edit and (fdef.createable or fdef.updateable):
                fdef = replace(fdef, createable=False, updateable=False)
            fields.append(fdef)
        access = self.object(obj)
        view = replace(obj, fields=tuple(fields), createable=obj.createable and access.create,
                       updateable=obj.updateable and access.edit, deletable=obj.deletable and access.delete)
        with self._lock:
            self._views[id(obj)] = (obj, view)
        return view

    def schema(self, schema: Schema) -> Schema:
        """The schema without what this user cannot read (the query engine and describe work on it)."""
        if self.everything:
            return schema
        with self._lock:
            cached = self._schemas.get(id(schema))
            if cached is not None and cached[0] is schema:
                return cached[1]
        objects = [self.object_view(obj) for obj in schema if self.object(obj).read]
        view = Schema(objects, version=f"{schema.version}:{self.fingerprint}")
        with self._lock:
            self._schemas = {id(schema): (schema, view)}
        return view


# -- computing access ----------------------------------------------------------------------------------------


class AccessService:
    """Computes and caches each user's :class:`UserAccess` from the setup objects.

    A process trusts what it computed for ``cache_seconds``; then it compares a cheap fingerprint of the setup
    objects (row counts and newest modstamps) and the user's profile, and recomputes when they changed. Changes
    made through this process (:meth:`invalidate`, called by a save hook on the setup objects) apply at once.
    """

    def __init__(self, store: Store, *, cache_seconds: float = 2.0) -> None:
        self.store = store
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[UserAccess, float]] = {}
        self._lock = threading.Lock()
        self._stamp: tuple[str, float] = ("", 0.0)

    def invalidate(self) -> None:
        with self._lock:
            self._cache.clear()
            self._stamp = ("", 0.0)

    def for_user(self, user_id: str) -> UserAccess:
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(user_id)
        if cached is not None and now - cached[1] < self.cache_seconds:
            return cached[0]
        stamp = self._setup_stamp(now)
        if cached is not None and cached[0].fingerprint == stamp + ":" + self._profile_of(user_id):
            with self._lock:
                self._cache[user_id] = (cached[0], now)
            return cached[0]
        access = self._compute(user_id, stamp)
        with self._lock:
            self._cache[user_id] = (access, now)
        return access

    def _setup_stamp(self, now: float) -> str:
        with self._lock:
            if self._stamp[0] and now - self._stamp[1] < self.cache_seconds:
                return self._stamp[0]
        parts: list[str] = []
        with self.store.read() as conn:
            for name in sorted(SETUP_OBJECTS | {"UserRole", "User"}):
                table = self.store.tables.get(name.lower())
                if table is None:
                    continue
                count, newest = conn.execute(select(func.count(), func.max(table.c.SystemModstamp))).one()
                parts.append(f"{count}/{newest}")
        parts.append(rules_fingerprint(self.store))  # sharing rules live in the store's key/value space
        stamp = str(hash(tuple(parts)) & 0xFFFFFFFF)
        with self._lock:
            self._stamp = (stamp, now)
        return stamp

    def grant_names(self, user_id: str) -> tuple[str, frozenset[str]]:
        """The name of the user's profile and the names of the permission sets assigned to them, directly or
        through their permission set groups (what a connected app's Permitted Users policy names)."""
        tables = self.store.tables
        profiles, sets = tables.get("profile"), tables.get("permissionset")
        if profiles is None or sets is None or "permissionsetassignment" not in tables:
            return "", frozenset()
        profile_id = self._profile_of(user_id)
        with self.store.read() as conn:
            profile = conn.execute(select(profiles.c.Name).where(profiles.c.Id == profile_id)).scalar() \
                if profile_id else None
            direct, members = _assignments(conn, tables, user_id)
            set_ids = direct.union(*members.values())  # muting sets among them are not PermissionSet rows
            names = frozenset(r.Name for r in conn.execute(select(sets.c.Name).where(
                sets.c.Id.in_(set_ids), sets.c.IsOwnedByProfile.is_not(True)))) if set_ids else frozenset()
        return str(profile or ""), names

    def _profile_of(self, user_id: str) -> str:
        users = self.store.tables.get("user")
        if users is None:
            return ""
        with self.store.read() as conn:
            row = conn.execute(select(users.c.ProfileId).where(users.c.Id == user_id)).first()
        return (row.ProfileId if row is not None else "") or ""

    def _compute(self, user_id: str, stamp: str) -> UserAccess:
        tables = self.store.tables
        assigned_profile = self._profile_of(user_id)
        fingerprint = stamp + ":" + assigned_profile
        profile_id = assigned_profile
        with self.store.read() as conn:
            if not profile_id:  # a user without a profile gets the Standard User one
                profile = tables["profile"]
                if conn.execute(select(func.count()).select_from(profile)).scalar() == 0:
                    # Permissions were never deployed in this org (opened without a deploy): nothing to enforce yet.
                    return UserAccess(user_id, frozenset({"ModifyAllData"}), {}, {}, fingerprint)
                row = conn.execute(select(profile.c.Id).where(profile.c.Name == STANDARD_PROFILE)).first()
                profile_id = row.Id if row is not None else ""
            sets = tables["permissionset"]
            set_ids = {r.Id for r in conn.execute(select(sets.c.Id).where(
                sets.c.ProfileId == profile_id, sets.c.IsDeleted.is_(False)))} if profile_id else set()
            direct, members = _assignments(conn, tables, user_id)
            granted = _grants_of(conn, tables, set_ids | direct, sets)
            # A group grants the union of its permission sets minus what its muting permission sets mute: muting
            # never takes away what the profile, a directly assigned set or another group grants.
            muting_table = tables.get("mutingpermissionset")
            components = set().union(*members.values())
            muting = {r.Id for r in conn.execute(select(muting_table.c.Id).where(muting_table.c.Id.in_(
                components)))} if muting_table is not None and components else set()
            for component_ids in members.values():
                muted = component_ids & muting
                group = _grants_of(conn, tables, component_ids - muted, sets)
                if muted:
                    group = group.without(_grants_of(conn, tables, muted, muting_table))
                granted = granted.merged(group)
            system, objects, fields = granted.system, granted.objects, granted.fields
        objects = {name: access.normalised() for name, access in objects.items()}
        subordinates = self._subordinates(user_id)
        sharing = UserSharing.compute(self.store, user_id, subordinates)
        return UserAccess(user_id, frozenset(system), objects, fields, fingerprint, subordinates, sharing=sharing,
                          store=self.store)

    def _subordinates(self, user_id: str) -> frozenset[str]:
        """The users in the roles below ``user_id``'s (the role hierarchy), not counting the user."""
        users, roles = self.store.tables.get("user"), self.store.tables.get("userrole")
        if users is None or roles is None or "UserRoleId" not in users.c:
            return frozenset()
        with self.store.read() as conn:
            mine = conn.execute(select(users.c.UserRoleId).where(users.c.Id == user_id)).scalar()
            if not mine:
                return frozenset()
            children: dict[str, list[str]] = {}
            for row in conn.execute(select(roles.c.Id, roles.c.ParentRoleId).where(roles.c.IsDeleted.is_(False))):
                if row.ParentRoleId:
                    children.setdefault(row.ParentRoleId, []).append(row.Id)
            below: set[str] = set()
            pending = list(children.get(mine, []))
            while pending:
                role = pending.pop()
                if role not in below:
                    below.add(role)
                    pending.extend(children.get(role, []))
            if not below:
                return frozenset()
            return frozenset(r.Id for r in conn.execute(select(users.c.Id).where(users.c.UserRoleId.in_(below))))


def _assignments(conn: Any, tables: Mapping[str, Any], user_id: str) -> tuple[set[str], dict[str, set[str]]]:
    """The permission sets assigned to ``user_id`` directly, and the components (permission sets and muting
    permission sets) of each permission set group assigned to them, by group."""
    assignments = tables["permissionsetassignment"]
    direct: set[str] = set()
    group_ids: set[str] = set()
    for row in conn.execute(select(assignments.c.PermissionSetId, assignments.c.PermissionSetGroupId)
                            .where(assignments.c.AssigneeId == user_id, assignments.c.IsDeleted.is_(False))):
        if row.PermissionSetId:
            direct.add(row.PermissionSetId)
        if row.PermissionSetGroupId:
            group_ids.add(row.PermissionSetGroupId)
    members: dict[str, set[str]] = {}
    components = tables.get("permissionsetgroupcomponent")
    if group_ids and components is not None:
        for row in conn.execute(select(components.c.PermissionSetGroupId, components.c.PermissionSetId)
                                .where(components.c.PermissionSetGroupId.in_(group_ids),
                                       components.c.IsDeleted.is_(False))):
            members.setdefault(row.PermissionSetGroupId, set()).add(row.PermissionSetId)
    return direct, members


@dataclass(frozen=True)
class _Grants:
    """What some permission sets hold together: system permissions, object access by lower-cased object name,
    (read, edit) by lower-cased object and field name; as stored, before the implications (edit -> read)."""

    system: frozenset[str] = frozenset()
    objects: dict[str, ObjectAccess] = field(default_factory=dict)
    fields: dict[str, dict[str, tuple[bool, bool]]] = field(default_factory=dict)

    def merged(self, other: _Grants) -> _Grants:
        objects = dict(self.objects)
        for name, access in other.objects.items():
            objects[name] = objects.get(name, NONE).merged(access)
        fields = {name: dict(entry) for name, entry in self.fields.items()}
        for name, entry in other.fields.items():
            mine = fields.setdefault(name, {})
            for field_name, (read, edit) in entry.items():
                before = mine.get(field_name, (False, False))
                mine[field_name] = (before[0] or read, before[1] or edit)
        return _Grants(self.system | other.system, objects, fields)

    def without(self, muted: _Grants) -> _Grants:
        """These grants minus what a muting permission set mutes, and what depends on it (no Read: nothing; no Edit:
        no Delete; no Delete or View All: no Modify All; no field Read: no field Edit)."""
        objects: dict[str, ObjectAccess] = {}
        for name, access in self.objects.items():
            have, mute = access.normalised(), muted.objects.get(name, NONE)
            read = have.read and not mute.read
            edit = have.edit and read and not mute.edit
            delete = have.delete and edit and not mute.delete
            view_all = have.view_all and read and not mute.view_all
            objects[name] = ObjectAccess(read, have.create and read and not mute.create, edit, delete, view_all,
                                         have.modify_all and delete and view_all and not mute.modify_all)
        fields: dict[str, dict[str, tuple[bool, bool]]] = {}
        for name, entry in self.fields.items():
            mutes = muted.fields.get(name, {})
            fields[name] = {}
            for field_name, (read, edit) in entry.items():
                mute_read, mute_edit = mutes.get(field_name, (False, False))
                still_read = (read or edit) and not mute_read
                fields[name][field_name] = (still_read, edit and still_read and not mute_edit)
        return _Grants(self.system - muted.system, objects, fields)


def _grants_of(conn: Any, tables: Mapping[str, Any], parent_ids: set[str], parents: Any) -> _Grants:
    """The union of what the permission sets (or muting permission sets, in ``parents``) ``parent_ids`` hold."""
    if not parent_ids:
        return _Grants()
    columns = [getattr(parents.c, f"Permissions{p}") for p in SYSTEM_PERMISSIONS]
    system: set[str] = set()
    for row in conn.execute(select(*columns).where(parents.c.Id.in_(parent_ids), parents.c.IsDeleted.is_(False))):
        system.update(p for p, value in zip(SYSTEM_PERMISSIONS, row, strict=True) if value)
    objects: dict[str, ObjectAccess] = {}
    perms = tables["objectpermissions"]
    for row in conn.execute(select(perms).where(perms.c.ParentId.in_(parent_ids), perms.c.IsDeleted.is_(False))):
        granted = ObjectAccess(bool(row.PermissionsRead), bool(row.PermissionsCreate), bool(row.PermissionsEdit),
                               bool(row.PermissionsDelete), bool(row.PermissionsViewAllRecords),
                               bool(row.PermissionsModifyAllRecords))
        key = row.SobjectType.lower()
        objects[key] = objects.get(key, NONE).merged(granted)
    fields: dict[str, dict[str, tuple[bool, bool]]] = {}
    field_perms = tables["fieldpermissions"]
    for row in conn.execute(select(field_perms).where(field_perms.c.ParentId.in_(parent_ids),
                                                      field_perms.c.IsDeleted.is_(False))):
        obj_name, _, field_name = row.Field.partition(".")
        entry = fields.setdefault((obj_name or row.SobjectType).lower(), {})
        read, edit = entry.get(field_name.lower(), (False, False))
        entry[field_name.lower()] = (read or bool(row.PermissionsRead), edit or bool(row.PermissionsEdit))
    return _Grants(frozenset(system), objects, fields)


def sharing_model(obj: ObjectDef) -> str:
    """The organization-wide default: Private (owners and the role hierarchy above them), Read (everyone reads,
    owners and the hierarchy edit), ReadWrite (everyone) or ControlledByParent (as the parent record)."""
    return obj.sharing_model or "ReadWrite"


def parse_object_permissions(value: Any, where: str) -> ObjectAccess:
    """An object permission entry of a profile or permission set file: ``read``, ``"read, create, edit"``,
    ``all``, or a mapping ``{read: true, create: true, edit: true, delete: false, viewAll: false, modifyAll: false}``.
    """
    from interlink.errors import ConfigurationError

    keys = ("read", "create", "edit", "delete", "viewAll", "modifyAll")
    if isinstance(value, str):
        words = {w.strip() for w in value.replace(",", " ").split() if w.strip()}
        if words == {"all"}:
            return FULL
        if words == {"none"}:
            return NONE
        unknown = words - set(keys)
        if unknown:
            raise ConfigurationError(f"{where}: unknown object permission(s) {sorted(unknown)}; use {', '.join(keys)}, "
                                     "all or none")
        return ObjectAccess(*(k in words for k in keys)).normalised()
    if isinstance(value, dict):
        unknown = set(value) - set(keys)
        if unknown:
            raise ConfigurationError(f"{where}: unknown object permission(s) {sorted(unknown)}; use {', '.join(keys)}")
        return ObjectAccess(*(bool(value.get(k, False)) for k in keys)).normalised()
    raise ConfigurationError(f"{where}: give the permissions as text (read, create, edit, delete, viewAll, "
                             "modifyAll, all) or a mapping")


def parse_field_permission(value: Any, where: str) -> tuple[bool, bool]:
    """A field permission entry: ``read``, ``edit`` (read and edit) or ``none``."""
    from interlink.errors import ConfigurationError

    if value in ("read", "Read"):
        return True, False
    if value in ("edit", "Edit", "readEdit"):
        return True, True
    if value in ("none", "None", None, False):
        return False, False
    if isinstance(value, dict):
        read, edit = bool(value.get("read", False)), bool(value.get("edit", False))
        return read or edit, edit
    raise ConfigurationError(f"{where}: a field permission is read, edit or none")
