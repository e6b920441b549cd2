"""The setup audit trail: who changed the org's setup, and when (the read-only ``SetupAuditTrail`` object).

:func:`record_setup_change` writes one entry; it joins the caller's open transaction, so an entry commits or rolls
back with the change it describes. What records itself here:

- deploys: each object and field created, changed or dropped (a listener on :meth:`Store.deploy`, inside the
  deploy's transaction; the deploy that creates a new org is not recorded),
- users created, changed, deactivated and reactivated (an ``after_save`` hook on ``User``, whatever the path:
  ``interlink users create``, ``metadata/users/``, the REST API), and passwords set (``interlink users password``,
  ``passwordEnv`` when the password actually changes),
- connected apps created and changed, named-credential secrets set and deleted (``interlink secrets``),
- permission set assignments given and removed (a hook on ``PermissionSetAssignment``).

Profiles and permission sets record their own changes by calling :func:`record_setup_change`. Entries are
written straight to the table: the object is read-only to every API, and writing it must not run triggers, flows
or change events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, MetaData, Table, column, func, select, table

from interlink import ids
from interlink.security.apps import ConnectedApp, Directory
from interlink.security.passwords import verify_password
from interlink.security.secrets import SecretStore
from interlink.store.database import Store, utcnow
from interlink.store.tables import object_table

if TYPE_CHECKING:
    from interlink.metadata.model import Schema
    from interlink.records.hooks import HookRegistry, SaveEvent
    from interlink.store.migrate import Change, Plan

SETUP_AUDIT_TRAIL = "SetupAuditTrail"
SETUP_AUDIT_TRAIL_PREFIX = "0Ym"
DISPLAY_LENGTH = 1000

# Sections (the Setup menu area a change belongs to).
SECTION_USERS = "Manage Users"
SECTION_CUSTOM_OBJECTS = "Custom Objects"
SECTION_CONNECTED_APPS = "Connected Apps"
SECTION_NAMED_CREDENTIALS = "Named Credentials"

# A deploy plan's change kinds -> Action.
_DEPLOY_ACTIONS = {
    "create_table": "createdEntity", "drop_table": "deletedEntity", "update_object": "changedEntity",
    "rekey": "changedEntity", "rekind": "changedEntity", "event": "changedEntity",
    "add_column": "createdCF", "drop_column": "deletedCF", "retype_column": "changedCFType",
    "resize_column": "changedCFLength", "update_field": "changedCF",
}
# User fields whose changes are setup changes (not, say, LastLoginDate).
_AUDITED_USER_FIELDS = ("Username", "Email", "FirstName", "LastName", "Alias", "CommunityNickname", "ProfileId",
                        "UserRoleId", "ManagerId", "TimeZoneSidKey", "LocaleSidKey", "LanguageLocaleKey",
                        "EmailEncodingKey", "FederationIdentifier")
_APP_SETTINGS = {"run_as_user_id": "run-as user", "certificate_pem": "certificate", "callback_url": "callback URL",
                 "consumer_secret": "consumer secret", "rotate_refresh_tokens": "refresh-token rotation"}

Actor = Callable[[], "str | None"]


def record_setup_change(store: Store, action: str, section: str | None, display: str, user_id: str | None, *,
                        delegate_user: str | None = None, namespace_prefix: str | None = None) -> str | None:
    """Add an entry to the setup audit trail; returns its id (None when the org has no SetupAuditTrail yet).

    ``action`` is the kind of change (``createduser``, ``PermSetAssign``, …), ``section`` the Setup area
    (``Manage Users``), ``display`` the sentence an administrator reads, ``user_id`` who made the change.
    Joins the open write transaction when there is one.
    """
    table = store.tables.get(SETUP_AUDIT_TRAIL.lower())
    if table is None:
        return None
    with store.write() as conn:
        return write_entries(conn, table, [(action, section, display)], user_id, delegate_user=delegate_user,
                             namespace_prefix=namespace_prefix)[0]


def write_entries(conn: Connection, table: Table, entries: Sequence[tuple[str, str | None, str]],
                  user_id: str | None, *, delegate_user: str | None = None,
                  namespace_prefix: str | None = None) -> list[str]:
    """Insert ``(action, section, display)`` entries on ``conn``; returns their ids, in order."""
    now = utcnow()
    rows = [{"Id": ids.new_id(SETUP_AUDIT_TRAIL_PREFIX), "Action": action[:120], "Section": (section or None)
             and section[:40], "Display": display[:DISPLAY_LENGTH], "DelegateUser": delegate_user,
             "ResponsibleNamespacePrefix": namespace_prefix, "IsDeleted": False, "CreatedDate": now,
             "CreatedById": user_id, "LastModifiedDate": now, "LastModifiedById": user_id, "SystemModstamp": now}
            for action, section, display in entries]
    if rows:
        conn.execute(table.insert(), rows)
    return [row["Id"] for row in rows]


# -- deploys -------------------------------------------------------------------------------------------------------


def deploy_entries(plan: Plan, target: Schema) -> list[tuple[str, str | None, str]]:
    """One entry per change of a deploy plan: ``Add field Invoice__c.Amount__c (currency)``, …"""
    entries: list[tuple[str, str | None, str]] = []
    for change in plan.changes:
        entries.append((_DEPLOY_ACTIONS.get(change.kind, "changedEntity"), _section(change, target),
                        change.description[:1].upper() + change.description[1:]))
    return entries


def _section(change: Change, target: Schema) -> str:
    obj = target.object(change.object_name)
    if obj is None or obj.custom:
        return SECTION_CUSTOM_OBJECTS
    parent = target.object(obj.history_of) if obj.history_of else obj
    return f"Customize {(parent or obj).label_plural}"


def deploy_listener(username: str) -> Callable[[Connection, Plan, Schema | None, Schema], None]:
    """A :attr:`Store.deploy_listeners` entry that records each deploy's changes, in its transaction, as made by
    ``username`` (deploys come from the CLI and ``interlink up``, which act as the org's admin)."""
    users = table("User", column("Id"), column("Username"))

    def record(conn: Connection, plan: Plan, deployed: Schema | None, target: Schema) -> None:
        obj = target.object(SETUP_AUDIT_TRAIL)
        if deployed is None or obj is None:  # the org being created: its initial schema is not a change
            return
        # Read on the deploy's own connection: another one could wait for the locks its DDL holds.
        user_id = conn.execute(select(users.c.Id).where(func.lower(users.c.Username) == username.lower())).scalar()
        write_entries(conn, object_table(obj, MetaData()), deploy_entries(plan, target), user_id)

    return record


# -- users and permission set assignments (hooks on the write path) -----------------------------------------------


def user_entries(event: SaveEvent, store: Store) -> list[tuple[str, str | None, str]]:
    """The audit entries of one batch of User inserts or updates."""
    entries: list[tuple[str, str | None, str]] = []
    profiles = _names(event.uow.conn, store.tables.get("profile"),
                      [v for i, u in enumerate(event.new) for v in (u.get("ProfileId"),
                                                                   (event.old[i] or {}).get("ProfileId"))], "Name")
    for position, user in enumerate(event.new):
        username = user.get("Username") or user.get("Id")
        before = event.old[position]
        if before is None:
            entries.append(("createduser", SECTION_USERS, f"Created new user {username}"))
            continue
        if bool(before.get("IsActive")) != bool(user.get("IsActive")):
            entries.append(("activateduser" if user.get("IsActive") else "deactivateduser", SECTION_USERS,
                            f"{'Activated' if user.get('IsActive') else 'Deactivated'} user {username}"))
        changed = [name for name in _AUDITED_USER_FIELDS if name in user and before.get(name) != user.get(name)]
        if "ProfileId" in changed:
            changed.remove("ProfileId")
            old, new = before.get("ProfileId"), user.get("ProfileId")
            entries.append(("changedprofileforuser", SECTION_USERS, f"Changed profile for user {username} from "
                            f"{profiles.get(old, old) if old else '(none)'} to "
                            f"{profiles.get(new, new) if new else '(none)'}"))
        if "Username" in changed:
            changed.remove("Username")
            entries.append(("changedusername", SECTION_USERS,
                            f"Changed username from {before.get('Username')} to {username}"))
        if changed:
            entries.append(("changeduser", SECTION_USERS, f"Changed {', '.join(changed)} of user {username}"))
    return entries


def _names(conn: Connection, table: Table | None, record_ids: Iterable[str | None], column: str) -> dict[str, str]:
    wanted = sorted({i for i in record_ids if i})
    if table is None or not wanted or column not in table.c:
        return {}
    return {row[0]: row[1] for row in conn.execute(select(table.c.Id, table.c[column]).where(table.c.Id.in_(wanted)))}


def assignment_entries(event: SaveEvent, store: Store) -> list[tuple[str, str | None, str]]:
    """The audit entries of permission set assignments given (insert) or removed (delete)."""
    if event.operation not in ("insert", "delete", "undelete"):
        return []
    conn = event.uow.conn
    users = _names(conn, store.tables.get("user"), (r.get("AssigneeId") for r in event.new), "Username")
    sets = _names(conn, store.tables.get("permissionset"), (r.get("PermissionSetId") for r in event.new), "Name")
    groups = _names(conn, store.tables.get("permissionsetgroup"),
                    (r.get("PermissionSetGroupId") for r in event.new), "DeveloperName")
    entries: list[tuple[str, str | None, str]] = []
    for record in event.new:
        granted = event.operation != "delete"
        user = users.get(record.get("AssigneeId") or "", record.get("AssigneeId"))
        if record.get("PermissionSetGroupId"):
            what = f"permission set group {groups.get(record['PermissionSetGroupId'], record['PermissionSetGroupId'])}"
            action = "PermSetGroupAssign" if granted else "PermSetGroupUnassign"
        else:
            what = f"permission set {sets.get(record.get('PermissionSetId') or '', record.get('PermissionSetId'))}"
            action = "PermSetAssign" if granted else "PermSetUnassign"
        entries.append((action, SECTION_USERS, f"{'Assigned' if granted else 'Unassigned'} {what} "
                        f"{'to' if granted else 'from'} user {user}"))
    return entries


def install_setup_audit(hooks: HookRegistry, store: Store, actor: Actor, *, deploy_user: str,
                        directory: AuditedDirectory | None = None, secrets: AuditedSecretStore | None = None) -> None:
    """Wire the audit trail (called by the composition root): hooks on User and PermissionSetAssignment, the deploy
    listener (deploys are recorded as ``deploy_user``'s), and the actor the directory and the secret store record
    changes as."""

    def users(event: SaveEvent) -> None:
        _write_hook_entries(store, event, user_entries(event, store))

    def assignments(event: SaveEvent) -> None:
        _write_hook_entries(store, event, assignment_entries(event, store))

    hooks.register("after_save", users, objects=["User"], operations=["insert", "update"])
    hooks.register("after_save", assignments, objects=["PermissionSetAssignment"])
    store.deploy_listeners.append(deploy_listener(deploy_user))
    for service in (directory, secrets):
        if service is not None:
            service.audit_actor = actor


def _write_hook_entries(store: Store, event: SaveEvent, entries: list[tuple[str, str | None, str]]) -> None:
    table = store.tables.get(SETUP_AUDIT_TRAIL.lower())
    if entries and table is not None:
        write_entries(event.uow.conn, table, entries, event.context.user_id)


# -- passwords, connected apps, secrets ------------------------------------------------------------------------------


class AuditedDirectory(Directory):
    """The user and connected-app directory, recording password resets and connected-app changes."""

    audit_actor: Actor | None = None

    def _audit(self, action: str, section: str, display: str) -> None:
        actor = self.audit_actor() if self.audit_actor is not None else None
        record_setup_change(self._store, action, section, display, actor)

    def set_password(self, user_id: str, password: str) -> None:
        table = self._store.system["il_user_credential"]
        with self._store.read() as conn:
            stored = conn.execute(select(table.c.password_hash).where(table.c.user_id == user_id)).scalar()
        # provisioning sets a passwordEnv password on every deploy: only a different password is a change
        unchanged = stored is not None and len(password) >= 8 and verify_password(password, stored)
        with self._store.write():
            super().set_password(user_id, password)
            if stored is not None and not unchanged:
                user = self.user_by_id(user_id)
                self._audit("resetpassword", SECTION_USERS,
                            f"Reset password for user {user.username if user else user_id}")

    def create_app(self, name: str, **settings: Any) -> ConnectedApp:
        with self._store.write():
            app = super().create_app(name, **settings)
            self._audit("createdconnectedapp", SECTION_CONNECTED_APPS, f"Created connected app {name}")
        return app

    def update_app(self, name: str, **values: Any) -> ConnectedApp:
        with self._store.write():
            app = super().update_app(name, **values)
            changed = ", ".join(_APP_SETTINGS.get(key, key) for key in sorted(values))
            self._audit("changedconnectedapp", SECTION_CONNECTED_APPS, f"Changed {changed} of connected app {name}")
        return app


class AuditedSecretStore(SecretStore):
    """The named-credential secret store, recording each secret set or deleted (never its value)."""

    audit_actor: Actor | None = None

    def set(self, name: str, value: str) -> None:
        with self.store.write():
            super().set(name, value)
            record_setup_change(self.store, "setnamedcredentialsecret", SECTION_NAMED_CREDENTIALS,
                                f"Set secret {name}", self.audit_actor() if self.audit_actor else None)

    def delete(self, name: str) -> bool:
        with self.store.write():
            deleted = super().delete(name)
            if deleted:
                record_setup_change(self.store, "deletednamedcredentialsecret", SECTION_NAMED_CREDENTIALS,
                                    f"Deleted secret {name}", self.audit_actor() if self.audit_actor else None)
        return deleted


__all__ = ["SETUP_AUDIT_TRAIL", "SETUP_AUDIT_TRAIL_PREFIX", "AuditedDirectory", "AuditedSecretStore",
           "deploy_entries", "deploy_listener", "install_setup_audit", "record_setup_change", "user_entries",
           "write_entries"]
