"""Record sharing beyond the organization-wide default: groups, sharing rules, manual shares, ControlledByParent.

What one user may see (or edit) of an object is **one SQL condition** on its table, which the query engine adds to
every query (root, parent joins, child subqueries, semi-joins: :meth:`UserAccess.row_filter`) and the write path
probes for the records it is about to change (:meth:`UserAccess.editable_ids`). For a ``Private`` object (or a
``Read`` one, for edits) it is the OR of:

- ``OwnerId IN (:owners)``: the user's records and those of the users in the roles below theirs;
- ``t.Id IN (SELECT s.<ParentId> FROM <Object>Share s WHERE s.UserOrGroupId IN (:principals))``: manual shares
  to the user, to a group they belong to, or to a subordinate (the hierarchy grants upwards); for edits only
  shares with Edit (or All); Opportunity, Case and Contact records also follow their account's ``AccountShare``
  (its ``OpportunityAccessLevel``, ...), as on the platform. An uncorrelated subquery: both databases run it once
  per statement (an index range scan on ``UserOrGroupId``) and probe its result, where a correlated ``EXISTS``
  would run once per candidate row (measured in ``bench/sharing.py``);
- one term per sharing rule that shares the object with one of the user's principals: a criteria-based rule adds
  its condition, compiled by the SOQL compiler (:func:`interlink.soql.compiler.compile_condition`); an owner-based
  rule adds ``OwnerId IN (:users of the source group)``. Rules with Read access are left out of the edit condition;
- for an opportunity, case or contact, one more term for the Account rules reaching the user whose child access
  level for it (``accountSettings``) is Read or Edit: ``AccountId IN (SELECT Id FROM Account WHERE <their
  criteria> OR OwnerId IN (:owners))``, the rules' own conditions on an alias of the account table.

A ``ControlledByParent`` object's condition is ``EXISTS`` over its parent's table with the parent's condition (or
its own owner, for a Contact without an account); a share object's rows follow their parent record the same way.

The user's *principals* (their id, their subordinates' ids and every group any of them is in: public groups,
directly or through nested groups and role groups, and the groups of their roles; a public group whose
``DoesIncludeBosses`` is false counts only when the user is in it themselves) and the rules that reach them are
computed with the rest of their permissions and cached with them (:class:`interlink.security.access.AccessService`),
so the condition holds only literal ids and stays a plain predicate the database plans with its indexes: share
tables are indexed on their parent lookup. A custom object whose "Grant Access Using Hierarchies" is off
(``grantAccessUsingHierarchies: false``) uses the user's own principals instead: ``OwnerId IN (:the user)``, and
shares and rules reaching the user or the groups they are in themselves. Nothing is precomputed per record, so a
record's visibility is right the moment it (or a share) is written, with nothing to recalculate.

Sharing rules are deployed from ``metadata/sharingRules/<Object>.yaml`` and SFDX source (:mod:`interlink.app.sharing`,
:mod:`interlink.metadata.sfdx_sharing`) and kept,
resolved to group ids, in the store's key/value space under :data:`RULES_KEY`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Connection, FromClause, exists, literal, or_, select

from interlink.errors import DmlError, InterlinkError
from interlink.metadata.model import ObjectDef
from interlink.metadata.sharing import (
    STANDARD_SHARES,
    parent_field,
    share_fields,
    share_object_name,
    share_parent,
)
from interlink.soql.compiler import compile_condition
from interlink.store.database import Store

if TYPE_CHECKING:
    from interlink.records.hooks import SaveEvent
    from interlink.security.access import UserAccess

RULES_KEY = "sharing_rules"
READ_LEVELS = ("Read", "Edit", "All")
EDIT_LEVELS = ("Edit", "All")
#: Children whose records follow their account's AccountShare (its <Child>AccessLevel field).
IMPLICIT_CHILDREN = {"Opportunity": "OpportunityAccessLevel", "Case": "CaseAccessLevel",
                     "Contact": "ContactAccessLevel"}
MAX_PARENT_DEPTH = 4


@dataclass(frozen=True)
class SharingRule:
    """One deployed sharing rule, resolved: groups (public, role, role and subordinates) by id."""

    object: str
    name: str
    type: str  # criteria | owner
    shared_with: str  # a Group id
    access: str  # Read | Edit
    criteria: str = ""  # criteria rules: a SOQL condition on the object's fields
    owned_by: str = ""  # owner rules: a Group id whose members' records are shared
    # Account rules: the access they give to the matching accounts' opportunities, cases and contacts (the
    # platform's accountSettings): Read, Edit, or "" (None).
    opportunity_access: str = ""
    case_access: str = ""
    contact_access: str = ""

    def child_access(self, child: str) -> str:
        """The access an Account rule gives to ``child`` (Opportunity, Case, Contact) records: Read, Edit or ""."""
        return {"Opportunity": self.opportunity_access, "Case": self.case_access,
                "Contact": self.contact_access}.get(child, "")


def load_rules(store: Store) -> list[SharingRule]:
    raw = store.kv_get(RULES_KEY)
    if not raw:
        return []
    return [SharingRule(**entry) for entry in json.loads(raw.decode())]


def rules_fingerprint(store: Store) -> str:
    return str(hash(store.kv_get(RULES_KEY) or b""))


def save_rules(store: Store, conn: Connection, rules: Iterable[SharingRule]) -> None:
    store.kv_put(conn, RULES_KEY, json.dumps([asdict(r) for r in rules], sort_keys=True).encode())


# -- who is in which group ---------------------------------------------------------------------------------------


class Membership:
    """A snapshot of groups, group members, roles and users' roles: who is in which group."""

    def __init__(self, groups: Mapping[str, tuple[str, str | None]], members: Mapping[str, set[str]],
                 role_parent: Mapping[str, str | None], user_role: Mapping[str, str | None],
                 without_bosses: Iterable[str] = ()) -> None:
        self.groups = groups  # group id -> (Type, RelatedId)
        self.members = members  # group id -> user and group ids
        self.role_parent = role_parent
        self.user_role = user_role
        # Public groups with DoesIncludeBosses false: what is shared with them reaches their members only.
        self.without_bosses = frozenset(without_bosses)

    @classmethod
    def load(cls, store: Store, conn: Connection) -> Membership:
        tables = store.tables
        groups: dict[str, tuple[str, str | None]] = {}
        members: dict[str, set[str]] = {}
        role_parent: dict[str, str | None] = {}
        user_role: dict[str, str | None] = {}
        without_bosses: set[str] = set()
        if "group" in tables and "groupmember" in tables:
            group, member = tables["group"], tables["groupmember"]
            for row in conn.execute(select(group.c.Id, group.c.Type, group.c.RelatedId, group.c.DoesIncludeBosses)
                                    .where(group.c.IsDeleted.is_not(True))):
                groups[row.Id] = (row.Type or "Regular", row.RelatedId)
                if (row.Type or "Regular") == "Regular" and row.DoesIncludeBosses is False:
                    without_bosses.add(row.Id)  # role groups always reach the hierarchy above their users
            for row in conn.execute(select(member.c.GroupId, member.c.UserOrGroupId)
                                    .where(member.c.IsDeleted.is_not(True))):
                members.setdefault(row.GroupId, set()).add(row.UserOrGroupId)
        if "userrole" in tables:
            roles = tables["userrole"]
            for row in conn.execute(select(roles.c.Id, roles.c.ParentRoleId).where(roles.c.IsDeleted.is_not(True))):
                role_parent[row.Id] = row.ParentRoleId
        users = tables.get("user")
        if users is not None and "UserRoleId" in users.c and role_parent:
            for row in conn.execute(select(users.c.Id, users.c.UserRoleId).where(users.c.UserRoleId.is_not(None))):
                user_role[row.Id] = row.UserRoleId
        return cls(groups, members, role_parent, user_role, without_bosses)

    def _roles_above(self, role: str | None) -> list[str]:
        """``role`` and the roles above it."""
        chain: list[str] = []
        while role and role not in chain and len(chain) < 100:
            chain.append(role)
            role = self.role_parent.get(role)
        return chain

    def groups_of(self, user_ids: Iterable[str]) -> set[str]:
        """Every group any of ``user_ids`` is in: role groups, and public groups directly or through others."""
        found: set[str] = set()
        for user_id in user_ids:
            chain = self._roles_above(self.user_role.get(user_id))
            for group_id, (kind, related) in self.groups.items():
                if (kind == "Role" and chain and related == chain[0]) or (
                        kind == "RoleAndSubordinates" and related in chain):
                    found.add(group_id)
        inside = set(user_ids) | found
        changed = True
        while changed:  # nested groups: a group is in every group that has it as a member
            changed = False
            for group_id, belonging in self.members.items():
                if group_id not in inside and belonging & inside:
                    inside.add(group_id)
                    found.add(group_id)
                    changed = True
        return found

    def users_of(self, group_id: str) -> set[str]:
        """The users in a group (role groups and nested groups included)."""
        users: set[str] = set()
        seen: set[str] = set()
        pending = [group_id]
        while pending:
            current = pending.pop()
            if current in seen:
                continue
            seen.add(current)
            kind, related = self.groups.get(current, ("Regular", None))
            if kind in ("Role", "RoleAndSubordinates") and related:
                for user_id, role in self.user_role.items():
                    if role == related or (kind == "RoleAndSubordinates" and related in self._roles_above(role)):
                        users.add(user_id)
            for member in self.members.get(current, ()):
                (pending.append(member) if member in self.groups else users.add(member))
        return users


@dataclass(frozen=True)
class UserSharing:
    """What sharing grants one user beyond ownership: principals and the rules that reach them, by object.

    ``principals`` count the role hierarchy: the user, their subordinates, the groups the user is in, and the groups
    a subordinate is in unless the group's ``DoesIncludeBosses`` is false. ``own_principals`` do not: the user and
    the groups they are in themselves; they serve custom objects whose "Grant Access Using Hierarchies" is off.
    """

    principals: frozenset[str]
    rules: Mapping[str, tuple[tuple[SharingRule, frozenset[str]], ...]]  # object (lower) -> (rule, owners)
    own_principals: frozenset[str] = frozenset()

    @classmethod
    def compute(cls, store: Store, user_id: str, subordinates: Iterable[str] = ()) -> UserSharing:
        """For ``user_id``, whose ``subordinates`` are the users in the roles below theirs."""
        subordinates = set(subordinates) - {user_id}
        rules = load_rules(store)
        with store.read() as conn:
            membership = Membership.load(store, conn)
        own = frozenset({user_id} | membership.groups_of({user_id}))
        below = membership.groups_of(subordinates) - membership.without_bosses if subordinates else set()
        principals = own | subordinates | below
        reaching: dict[str, list[tuple[SharingRule, frozenset[str]]]] = {}
        for rule in rules:
            if rule.shared_with not in principals:
                continue
            owners = frozenset(membership.users_of(rule.owned_by)) if rule.type == "owner" else frozenset()
            reaching.setdefault(rule.object.lower(), []).append((rule, owners))
        return cls(principals, {name: tuple(found) for name, found in reaching.items()}, own)


NO_SHARING = UserSharing(frozenset(), {})


# -- the condition --------------------------------------------------------------------------------------------


class SharingFilter:
    """Builds the SQL condition of one user's record access (see the module's docstring)."""

    def __init__(self, access: UserAccess, store: Store | None, sharing: UserSharing) -> None:
        self.access = access
        self.store = store
        self.sharing = sharing

    def hierarchy(self, obj: ObjectDef) -> bool:
        """Whether the role hierarchy grants access to ``obj``'s records ("Grant Access Using Hierarchies")."""
        full = self.store.schema.object(obj.name) if self.store is not None else None
        return (full or obj).grant_access_using_hierarchies

    def owners_for(self, obj: ObjectDef) -> frozenset[str]:
        """Whose records of ``obj`` are the user's: theirs and, unless the object's hierarchy is off, those of the
        users in the roles below theirs."""
        access = self.access
        return frozenset(access.owners) if self.hierarchy(obj) else frozenset({access.user_id})

    def principals_for(self, obj: ObjectDef) -> frozenset[str]:
        """The ids shares and rules of ``obj`` reach the user through (see :class:`UserSharing`)."""
        if self.hierarchy(obj):
            return self.sharing.principals | self.access.owners
        return self.sharing.own_principals | {self.access.user_id}

    def condition(self, table: FromClause, obj: ObjectDef, *, edit: bool,
                  depth: int = 0) -> ColumnElement[bool] | None:
        """The rows of ``table`` (``obj``'s table or an alias) the user may see (edit); None: all of them."""
        access = self.access
        if access.everything:
            return None
        if self.store is None:  # no store to share through: ownership and the role hierarchy only
            return table.c.OwnerId.in_(sorted(self.owners_for(obj))) if access._shared_rows_only(obj, edit=edit) \
                else None
        full = self.store.schema.object(obj.name) or obj  # ``obj`` may be the user's view of it (FLS)
        parent_name = share_parent(full.name)
        if parent_name is not None:  # a share object's rows follow their record
            parent = self.store.schema.object(parent_name)
            if parent is None or depth >= MAX_PARENT_DEPTH:
                return None
            return self._through_parent(table, table.c[share_fields(parent.name)[0]], parent, edit, depth)
        model = full.sharing_model or "ReadWrite"
        object_access = access.object(full)
        if model == "ControlledByParent":
            if object_access.modify_all or (not edit and object_access.view_all):
                return None
            field_name = parent_field(full)
            parent = None
            if field_name is not None:
                target = full.field(field_name)
                parent = self.store.schema.object(target.reference_to[0]) if target is not None else None
            if parent is None or depth >= MAX_PARENT_DEPTH:
                return None
            through = self._through_parent(table, table.c[field_name], parent, edit, depth)
            if full.has_field("OwnerId"):  # a Contact without an account is its owner's
                own = table.c.OwnerId.in_(sorted(self.owners_for(full)))
                return own if through is None else or_(own, through)
            return through
        if not access._shared_rows_only(full, edit=edit):
            return None
        return or_(table.c.OwnerId.in_(sorted(self.owners_for(full))), *self._grants(table, full, edit))

    def _through_parent(self, table: FromClause, key: Any, parent: ObjectDef, edit: bool,
                        depth: int) -> ColumnElement[bool] | None:
        assert self.store is not None
        parent_table = self.store.tables.get(parent.name.lower())
        if parent_table is None:
            return None
        alias = parent_table.alias()
        inner = self.condition(alias, parent, edit=edit, depth=depth + 1)
        if inner is None:
            return key.is_not(None)
        return exists(select(literal(1)).select_from(alias).where(alias.c.Id == key, inner))

    def _grants(self, table: FromClause, obj: ObjectDef, edit: bool) -> list[ColumnElement[bool]]:
        assert self.store is not None
        reachable = self.principals_for(obj)
        principals = sorted(reachable)
        levels = EDIT_LEVELS if edit else READ_LEVELS
        grants: list[ColumnElement[bool]] = []
        share_table = self.store.tables.get(share_object_name(obj.name).lower())
        if share_table is not None:
            parent_key, level = share_fields(obj.name)
            share = share_table.alias()
            grants.append(table.c.Id.in_(select(share.c[parent_key]).where(
                share.c.UserOrGroupId.in_(principals), share.c[level].in_(levels), share.c.IsDeleted.is_not(True))))
        child_level = IMPLICIT_CHILDREN.get(obj.name)
        account_shares = self.store.tables.get(STANDARD_SHARES["Account"][0].lower())
        if child_level is not None and account_shares is not None and obj.has_field("AccountId"):
            share = account_shares.alias()
            grants.append(table.c.AccountId.in_(select(share.c.AccountId).where(
                share.c.UserOrGroupId.in_(principals), share.c[child_level].in_(levels),
                share.c.IsDeleted.is_not(True))))
        if child_level is not None and obj.has_field("AccountId"):
            grants.extend(self._account_rule_grants(table, obj, levels))
        for rule, owners in self.sharing.rules.get(obj.name.lower(), ()):
            if (edit and rule.access != "Edit") or rule.shared_with not in reachable:
                continue
            matched = self._rule_condition(rule, owners, obj, table)
            if matched is not None:
                grants.append(matched)
        return grants

    def _rule_condition(self, rule: SharingRule, owners: frozenset[str], obj: ObjectDef,
                        table: FromClause) -> ColumnElement[bool] | None:
        """The rows of ``table`` (``obj``'s table or an alias) ``rule`` shares: its owners' records, or those its
        criteria match; None when it shares nothing (no owners, or a criteria whose fields are gone: deploys check
        rules)."""
        assert self.store is not None
        if rule.type == "owner":
            return table.c.OwnerId.in_(sorted(owners)) if owners else None
        try:
            return compile_condition(rule.criteria, obj, self.store.schema, self.store.tables, table)
        except InterlinkError:
            return None

    def _account_rule_grants(self, table: FromClause, obj: ObjectDef,
                             levels: tuple[str, ...]) -> list[ColumnElement[bool]]:
        """An opportunity, case or contact whose account an Account rule reaching the user shares with a child
        access level (its ``accountSettings``): ``AccountId IN (SELECT Id FROM Account WHERE <the rules>)``."""
        assert self.store is not None
        rules = [(rule, owners) for rule, owners in self.sharing.rules.get("account", ())
                 if rule.child_access(obj.name) in levels]
        account = self.store.schema.object("Account")
        account_table = self.store.tables.get("account")
        if not rules or account is None or account_table is None:
            return []
        alias = account_table.alias()
        matches = [m for rule, owners in rules if (m := self._rule_condition(rule, owners, account, alias)) is not None]
        if not matches:
            return []
        return [table.c.AccountId.in_(select(alias.c.Id).where(or_(*matches), alias.c.IsDeleted.is_not(True)))]

    def allowed_ids(self, obj: ObjectDef, rows: Iterable[Mapping[str, Any]], *, edit: bool,
                    conn: Connection | None = None) -> set[str]:
        """The ids among ``rows`` (stored records of ``obj``) the user may see (edit)."""
        rows = list(rows)
        ids = {str(r["Id"]) for r in rows if r.get("Id")}
        if self.store is None:
            if not self.access._shared_rows_only(obj, edit=edit):
                return ids
            owners = self.owners_for(obj)
            return {str(r["Id"]) for r in rows if r.get("Id") and r.get("OwnerId") in owners}
        if not ids:
            return ids
        table = self.store.tables.get(obj.name.lower())
        if table is None:
            return ids
        condition = self.condition(table, obj, edit=edit)
        if condition is None:
            return ids
        full = self.store.schema.object(obj.name) or obj
        if full.has_field("OwnerId") and share_parent(full.name) is None:
            owners = self.owners_for(full)
            mine = {str(r["Id"]) for r in rows if r.get("Id") and r.get("OwnerId") in owners}
        else:
            mine = set()
        rest = sorted(ids - mine)
        if not rest:
            return mine
        statement = select(table.c.Id).where(table.c.Id.in_(rest), condition)
        if conn is not None:
            return mine | {row.Id for row in conn.execute(statement)}
        with self.store.read() as reader:
            return mine | {row.Id for row in reader.execute(statement)}


# -- manual shares: who may create, change and delete them ------------------------------------------------------


def manual_share_guard(store: Store) -> Callable[[SaveEvent], None]:
    """A before-save hook on share objects: API callers create Manual shares only (Read or Edit), and only for
    records they own, own through the role hierarchy, or may modify all of (the platform's rule)."""

    def guard(event: SaveEvent) -> None:
        parent_name = share_parent(event.object.name)
        access = event.context.enforced
        if parent_name is None or access is None:
            return
        parent_key, level = share_fields(parent_name)
        for index, new in enumerate(event.new):
            if event.operation == "insert":
                if (new.get("RowCause") or "Manual") != "Manual":
                    event.errors.setdefault(index, []).append(DmlError(
                        "RowCause: only Manual shares can be created through the API", ["RowCause"],
                        error_code="FIELD_INTEGRITY_EXCEPTION"))
                new["RowCause"] = "Manual"
            if event.operation in ("insert", "update") and new.get(level) == "All":
                event.errors.setdefault(index, []).append(DmlError(
                    f"{level}: All is the owner's access; share Read or Edit", [level],
                    error_code="FIELD_INTEGRITY_EXCEPTION"))
        parent = store.schema.object(parent_name)
        if parent is None or access.everything or access.object(parent).modify_all:
            return
        parents = {index: (new.get(parent_key) or (event.old[index] or {}).get(parent_key))
                   for index, new in enumerate(event.new)}
        table = store.tables[parent.name.lower()]
        wanted = sorted({p for p in parents.values() if p})
        owners = {row.Id: row.OwnerId for row in event.uow.conn.execute(
            select(table.c.Id, table.c.OwnerId).where(table.c.Id.in_(wanted)))} if wanted else {}
        mine = access.sharing.owners_for(parent)
        for index, parent_id in parents.items():
            if owners.get(parent_id) not in mine:
                event.errors.setdefault(index, []).append(DmlError(
                    "insufficient access rights on cross-reference id", [parent_key],
                    error_code="INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY"))

    return guard
