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
        accountSettings:                  # Account rules only: access to the accounts' children
          opportunityAccessLevel: Read    # Read, Edit or None (the default)
          caseAccessLevel: None
          contactAccessLevel: Edit        # applies while Contact is not ControlledByParent
      - name: Reps_To_Support
        type: owner
        ownedBy: {role: Rep}              # records owned by the members of a group / role / role and subordinates
        sharedWith: {group: Field_Support}
        access: Edit

A group file may say ``doesIncludeBosses: false`` (the platform's "Grant Access Using Hierarchies" of a public
group, true by default): what is shared with the group then reaches its members only, not their managers.

SFDX source is read too (:mod:`interlink.metadata.sfdx_sharing`): ``groups/<Name>.group-meta.xml`` and
``sharingRules/<Object>.sharingRules-meta.xml`` in the package directories become the same mappings and take the
same path. A ``<Group>`` has no members in the Metadata API, so an SFDX group's members are left as they are.

A file is the truth for what it declares: a YAML group's members are made to match its file, and the org's sharing
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
from interlink.metadata.sfdx_sharing import load_sfdx_sharing
from interlink.metadata.sharing import SHARED_MODELS
from interlink.security.sharing import SharingRule, load_rules, save_rules
from interlink.soql.compiler import compile_condition
from interlink.soql.criteria import criteria_condition
from interlink.soql.render import quote

if TYPE_CHECKING:
    from interlink.app.org import Org

_GROUP_KEYS = {"name", "label", "description", "doesIncludeBosses", "members"}
_MEMBER_KEYS = {"users", "roles", "rolesAndSubordinates", "groups"}
_RULE_KEYS = {"name", "label", "description", "type", "criteria", "criteriaItems", "booleanFilter", "ownedBy",
              "sharedWith", "access", "accountSettings"}
#: An Account rule's ``accountSettings``: key -> the :class:`SharingRule` field that keeps it.
_CHILD_SETTINGS = {"opportunityAccessLevel": "opportunity_access", "caseAccessLevel": "case_access",
                   "contactAccessLevel": "contact_access"}
_PRINCIPAL_KINDS = {"group": "Regular", "role": "Role", "roleAndSubordinates": "RoleAndSubordinates"}


def apply_sharing_metadata(org: Org, project_dir: Path) -> list[str]:
    """Deploy the project's public groups and sharing rules; returns what changed."""
    writer = _Writer(org)
    metadata = project_dir / "metadata"
    sfdx = load_sfdx_sharing(project_dir)
    # A YAML group's members are its file's (none when it lists none); an SFDX group declares no members.
    groups = [({"members": {}, **data}, path) for data, path in documents(metadata / "groups", _GROUP_KEYS)]
    groups += sfdx.groups
    ids: dict[str, str] = {}
    for data, path in groups:  # every group first, so members may name groups in any file
        name = str(data.get("name") or path.stem)
        if name in ids:
            raise MetadataError(f"{path}: group {name} is declared twice")
        ids[name] = _group(writer, name, data, path)
    for data, path in groups:
        if "members" in data:
            _members(writer, ids[str(data.get("name") or path.stem)], data["members"] or {}, path)
    sources = [(path.stem, data, path) for data, path in documents(metadata / "sharingRules", {"rules"})]
    rules: list[SharingRule] = []
    for object_name, data, path in sources + sfdx.rules:
        for rule in _rules(org, writer, object_name, data, path):
            if any(r.object == rule.object and r.name == rule.name for r in rules):
                raise MetadataError(f"{path}: sharing rule {rule.name} of {rule.object} is declared twice")
            rules.append(rule)
    if rules != load_rules(org.store):
        with org.store.write() as conn:
            save_rules(org.store, conn, rules)
        writer.changes.append(f"sharing rules: {len(rules)} deployed")
    org.access.invalidate()
    return writer.changes


def _group(writer: _Writer, name: str, data: Mapping[str, Any], path: Path) -> str:
    bosses = data.get("doesIncludeBosses", True)
    if not isinstance(bosses, bool):
        raise MetadataError(f"{path}: doesIncludeBosses is true or false, got {bosses!r}")
    values = {"Name": str(data.get("label") or name)[:40], "DoesIncludeBosses": bosses}
    found = writer.rows(f"SELECT Id, Name, DoesIncludeBosses FROM Group WHERE DeveloperName = {quote(name)} "
                        "AND Type = 'Regular'")
    return writer.ensure("Group", found, {"DeveloperName": name, "Type": "Regular"}, values, f"group {name}",
                         str(path))


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
        children = _child_levels(obj.name, entry.get("accountSettings"), where) if "accountSettings" in entry else {}
        kind = entry.get("type")
        if kind == "criteria":
            criteria = str(entry.get("criteria") or "").strip()
            if "criteriaItems" in entry:  # the Setup page's (and SFDX source's) items instead of a condition
                if criteria:
                    raise MetadataError(f"{where}: a criteria rule has criteria or criteriaItems, not both")
                criteria = criteria_condition(_items(entry["criteriaItems"], where), entry.get("booleanFilter"),
                                              obj, obj.name, where)
            if not criteria or "ownedBy" in entry:
                raise MetadataError(f"{where}: a criteria rule has criteria (a SOQL condition) and no ownedBy")
            try:
                compile_condition(criteria, obj, org.store.schema, org.store.tables, org.store.table(obj.name))
            except InterlinkError as error:
                raise MetadataError(f"{where}.criteria: {error.message.strip()}") from error
            rules.append(SharingRule(obj.name, name, "criteria", shared_with, access, criteria=criteria, **children))
        elif kind == "owner":
            if "criteria" in entry:
                raise MetadataError(f"{where}: an owner rule has ownedBy and no criteria")
            owned_by = principal(writer, entry.get("ownedBy"), f"{where}.ownedBy")
            rules.append(SharingRule(obj.name, name, "owner", shared_with, access, owned_by=owned_by, **children))
        else:
            raise MetadataError(f"{where}: type is criteria or owner")
    return rules


def _child_levels(object_name: str, settings: Any, where: str) -> dict[str, str]:
    """An Account rule's ``accountSettings`` as :class:`SharingRule` keywords (``opportunity_access``, ...): each
    level Read, Edit or None (left out: None). The platform's AccountSharingRuleSettings."""
    if object_name != "Account":
        raise MetadataError(f"{where}.accountSettings: only Account rules share the accounts' opportunities, cases "
                            "and contacts")
    if not isinstance(settings, Mapping) or set(settings) - set(_CHILD_SETTINGS):
        raise MetadataError(f"{where}.accountSettings: a mapping of {', '.join(_CHILD_SETTINGS)}")
    levels: dict[str, str] = {}
    for key, keyword in _CHILD_SETTINGS.items():
        level = "None" if settings.get(key) is None else str(settings[key])
        if level not in ("Read", "Edit", "None"):
            raise MetadataError(f"{where}.accountSettings.{key}: Read, Edit or None, got {level}")
        levels[keyword] = "" if level == "None" else level
    return levels


def _items(value: Any, where: str) -> list[tuple[str, str, str]]:
    """``criteriaItems``: a list of ``{field, operation, value}``."""
    if not isinstance(value, list) or not all(isinstance(item, Mapping) and set(item) <= {"field", "operation",
                                                                                         "value"} for item in value):
        raise MetadataError(f"{where}: criteriaItems is a list of {{field, operation, value}}")
    return [(str(item.get("field") or ""), str(item.get("operation") or ""), str(item.get("value") or ""))
            for item in value]
