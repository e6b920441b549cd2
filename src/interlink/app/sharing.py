"""Public groups and sharing rules: the project's ``metadata/groups`` and ``metadata/sharingRules``, deployed into
the org's ``Group`` / ``GroupMember`` records and its sharing rules on ``interlink up`` and ``interlink deploy``.

``metadata/groups/<DeveloperName>.yaml``::

    label: West Sales
    members:
      users: [ana@example.com]            # by username
      roles: [West_Rep]                   # the users in a role (by DeveloperName)
      rolesAndSubordinates: [West_Manager]  # ... and in the roles below it
      groups: [Field_Support]             # other public groups (by DeveloperName)

``metadata/sharingRules/<Object>.yaml``::

    rules:
      - name: Energy_To_West
        type: criteria
        criteria: Industry = 'Energy' AND AnnualRevenue > 1000000   # a SOQL condition on the object's fields
        sharedWith: {group: West_Sales}   # or {role: X} or {roleAndSubordinates: X}
        access: Read                      # Read or Edit
      - name: Reps_To_Support
        type: owner
        ownedBy: {role: Rep}              # records owned by the members of a group / role / role and subordinates
        sharedWith: {group: Field_Support}
        access: Edit

A file is the truth for what it declares: a group's members are made to match its file, and the org's sharing
rules are exactly those of the ``sharingRules`` files (a rule removed from its file, or a file removed, stops
granting at the next deploy). Roles and users are named, never created here: they must exist.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interlink.app.permissions import _Writer
from interlink.app.provisioning import documents
from interlink.errors import InterlinkError, MetadataError
from interlink.metadata.sharing import SHARED_MODELS
from interlink.security.sharing import SharingRule, load_rules, save_rules
from interlink.soql.compiler import compile_condition
from interlink.soql.render import quote

if TYPE_CHECKING:
    from interlink.app.org import Org

_GROUP_KEYS = {"name", "label", "description", "doesIncludeBosses", "members"}
_MEMBER_KEYS = {"users", "roles", "rolesAndSubordinates", "groups"}
_RULE_KEYS = {"name", "label", "description", "type", "criteria", "ownedBy", "sharedWith", "access"}
_PRINCIPAL_KINDS = {"group": "Regular", "role": "Role", "roleAndSubordinates": "RoleAndSubordinates"}


def apply_sharing_metadata(org: Org, project_dir: Path) -> list[str]:
    """Deploy the project's public groups and sharing rules; returns what changed."""
    writer = _Writer(org)
    metadata = project_dir / "metadata"
    groups = documents(metadata / "groups", _GROUP_KEYS)
    ids: dict[str, str] = {}
    for data, path in groups:  # every group first, so members may name groups in any file
        ids[str(data.get("name") or path.stem)] = _group(writer, str(data.get("name") or path.stem), data, path)
    for data, path in groups:
        _members(writer, ids[str(data.get("name") or path.stem)], data.get("members") or {}, path)
    rules = [rule for data, path in documents(metadata / "sharingRules", {"rules"})
             for rule in _rules(org, writer, path.stem, data, path)]
    if rules != load_rules(org.store):
        with org.store.write() as conn:
            save_rules(org.store, conn, rules)
        writer.changes.append(f"sharing rules: {len(rules)} deployed")
    org.access.invalidate()
    return writer.changes


def _group(writer: _Writer, name: str, data: Mapping[str, Any], path: Path) -> str:
    values = {"Name": str(data.get("label") or name)[:40], "DoesIncludeBosses": bool(data.get("doesIncludeBosses",
                                                                                               True))}
    found = writer.rows(f"SELECT Id, Name, DoesIncludeBosses FROM Group WHERE DeveloperName = {quote(name)} "
                        "AND Type = 'Regular'")
    if not found:
        (group_id,) = writer.create("Group", [{"DeveloperName": name, "Type": "Regular", **values}], f"{path}")
        writer.changes.append(f"created group {name}")
        return group_id
    differing = {k: v for k, v in values.items() if found[0].get(k) != v}
    if differing:
        writer.update("Group", [{"Id": found[0]["Id"], **differing}], f"{path}")
        writer.changes.append(f"updated group {name}: {', '.join(sorted(differing))}")
    return str(found[0]["Id"])


def _members(writer: _Writer, group_id: str, members: Any, path: Path) -> None:
    if not isinstance(members, Mapping) or set(members) - _MEMBER_KEYS:
        raise MetadataError(f"{path}: members is a mapping of {', '.join(sorted(_MEMBER_KEYS))}")
    wanted: set[str] = set()
    for username in members.get("users") or []:
        rows = writer.rows(f"SELECT Id FROM User WHERE Username = {quote(str(username))}")
        if not rows:
            raise MetadataError(f"{path}: members.users: no user {username}")
        wanted.add(str(rows[0]["Id"]))
    for key, kind in (("roles", "role"), ("rolesAndSubordinates", "roleAndSubordinates"), ("groups", "group")):
        for name in members.get(key) or []:
            wanted.add(principal(writer, {kind: name}, f"{path}: members.{key}"))
    wanted.discard(group_id)
    existing = {r["UserOrGroupId"]: r["Id"] for r in writer.rows(
        f"SELECT Id, UserOrGroupId FROM GroupMember WHERE GroupId = '{group_id}'")}
    added = [{"GroupId": group_id, "UserOrGroupId": member} for member in sorted(wanted - set(existing))]
    gone = [row_id for member, row_id in existing.items() if member not in wanted]
    writer.create("GroupMember", added, f"{path}")
    writer.delete(gone, f"{path}")
    if added or gone:
        writer.changes.append(f"group {path.stem}: members +{len(added)} -{len(gone)}")


def principal(writer: _Writer, spec: Any, where: str) -> str:
    """The Group id of ``{group: Name}``, ``{role: Name}`` or ``{roleAndSubordinates: Name}`` (role groups are
    created on first use, as the platform keeps one per role)."""
    if not isinstance(spec, Mapping) or len(spec) != 1 or next(iter(spec)) not in _PRINCIPAL_KINDS:
        raise MetadataError(f"{where}: name one group, role or role and its subordinates: {{group: Name}}, "
                            "{role: Name} or {roleAndSubordinates: Name}")
    kind, name = next(iter(spec.items()))
    name = str(name)
    group_type = _PRINCIPAL_KINDS[kind]
    if group_type == "Regular":
        rows = writer.rows(f"SELECT Id FROM Group WHERE DeveloperName = {quote(name)} AND Type = 'Regular'")
        if not rows:
            raise MetadataError(f"{where}: no public group {name} (metadata/groups/{name}.yaml)")
        return str(rows[0]["Id"])
    roles = writer.rows(f"SELECT Id, Name FROM UserRole WHERE DeveloperName = {quote(name)}")
    if not roles:
        raise MetadataError(f"{where}: no role {name} (roles are UserRole records, by DeveloperName)")
    role_id = str(roles[0]["Id"])
    rows = writer.rows(f"SELECT Id FROM Group WHERE Type = '{group_type}' AND RelatedId = '{role_id}'")
    if rows:
        return str(rows[0]["Id"])
    (group_id,) = writer.create("Group", [{"Name": str(roles[0]["Name"])[:40], "DeveloperName": name,
                                           "Type": group_type, "RelatedId": role_id}], where)
    return group_id


def _rules(org: Org, writer: _Writer, object_name: str, data: Mapping[str, Any], path: Path) -> list[SharingRule]:
    obj = org.store.schema.object(object_name)
    if obj is None or not obj.is_stored or not obj.has_field("OwnerId"):
        raise MetadataError(f"{path}: no object {object_name} with owners to share (the file is named after it)")
    if obj.sharing_model not in SHARED_MODELS:
        raise MetadataError(f"{path}: {obj.name}'s sharingModel is {obj.sharing_model or 'ReadWrite'}; sharing "
                            f"rules widen a Private or Read default")
    entries = data.get("rules") or []
    if not isinstance(entries, list):
        raise MetadataError(f"{path}: rules is a list")
    rules: list[SharingRule] = []
    names: set[str] = set()
    for index, entry in enumerate(entries):
        where = f"{path}: rules[{index}]"
        if not isinstance(entry, Mapping) or set(entry) - _RULE_KEYS:
            raise MetadataError(f"{where}: a rule is a mapping of {', '.join(sorted(_RULE_KEYS))}")
        name = str(entry.get("name") or "")
        if not name or name in names:
            raise MetadataError(f"{where}: every rule needs a name of its own")
        names.add(name)
        access = str(entry.get("access") or "Read")
        if access not in ("Read", "Edit"):
            raise MetadataError(f"{where}: access is Read or Edit, got {access}")
        shared_with = principal(writer, entry.get("sharedWith"), f"{where}.sharedWith")
        kind = entry.get("type")
        if kind == "criteria":
            criteria = str(entry.get("criteria") or "").strip()
            if not criteria or "ownedBy" in entry:
                raise MetadataError(f"{where}: a criteria rule has criteria (a SOQL condition) and no ownedBy")
            try:
                compile_condition(criteria, obj, org.store.schema, org.store.tables, org.store.table(obj.name))
            except InterlinkError as error:
                raise MetadataError(f"{where}.criteria: {error.message.strip()}") from error
            rules.append(SharingRule(obj.name, name, "criteria", shared_with, access, criteria=criteria))
        elif kind == "owner":
            if "criteria" in entry:
                raise MetadataError(f"{where}: an owner rule has ownedBy and no criteria")
            owned_by = principal(writer, entry.get("ownedBy"), f"{where}.ownedBy")
            rules.append(SharingRule(obj.name, name, "owner", shared_with, access, owned_by=owned_by))
        else:
            raise MetadataError(f"{where}: type is criteria or owner")
    return rules
