"""Salesforce DX source for public groups and sharing rules -> the mappings of ``metadata/groups/*.yaml`` and
``metadata/sharingRules/<Object>.yaml``, so :mod:`interlink.app.sharing` deploys both through one path.

Found anywhere under the package directories ``sfdx-project.json`` lists (or with the Metadata API format's
suffixes, ``.group`` and ``.sharingRules``)::

    groups/West_Sales.group-meta.xml               -> {name: West_Sales, label: West Sales, doesIncludeBosses: ...}
    sharingRules/Account.sharingRules-meta.xml     -> (Account, {rules: [...]})

A ``<Group>`` carries no members in the Metadata API, so an SFDX group's members are left as they are in the org
(the YAML file's ``members`` is the truth for a YAML group). ``<sharingCriteriaRules>`` and
``<sharingOwnerRules>`` become ``type: criteria`` and ``type: owner`` rules; ``<sharedTo>`` / ``<sharedFrom>``
name a ``group``, ``role`` or ``roleAndSubordinates`` (``roleAndSubordinatesInternal`` is read as
``roleAndSubordinates``: a local org has no portal users); an Account rule's ``<accountSettings>`` becomes
``accountSettings``. ``<criteriaItems>`` (``field``, ``operation``, ``value``) and ``<booleanFilter>`` are kept as
``criteriaItems`` and ``booleanFilter``; the deploy turns them into one SOQL condition
(:func:`interlink.soql.criteria.criteria_condition`: this layer knows nothing of SOQL) and compiles it.

Guest, territory and other rule kinds, and ``sharedTo`` kinds Interlink has no groups for (all internal users,
portal roles, territories, queues, managers), are refused with the file and rule named: a rule silently granting
less than it says would be worse than a failed deploy.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interlink.errors import MetadataError
from interlink.metadata.sfdx import _Q, _bool, _parse, _text, component_files, find_package_directories

__all__ = ["GROUP_SUFFIX", "RULES_SUFFIX", "SfdxSharing", "load_sfdx_sharing"]

GROUP_SUFFIX = ".group-meta.xml"
RULES_SUFFIX = ".sharingRules-meta.xml"
#: Source format first, then the Metadata API format's (``West_Sales.group``, ``Account.sharingRules``).
_GROUP_SUFFIXES = (GROUP_SUFFIX, ".group")
_RULES_SUFFIXES = (RULES_SUFFIX, ".sharingRules")
_SHARED_TO = {"group": "group", "role": "role", "roleAndSubordinates": "roleAndSubordinates",
              "roleAndSubordinatesInternal": "roleAndSubordinates"}
_RULE_KINDS = {"sharingCriteriaRules": "criteria", "sharingOwnerRules": "owner"}
_UNSUPPORTED_KINDS = ("sharingGuestRules", "sharingTerritoryRules")


@dataclass
class SfdxSharing:
    """What a project's SFDX source declares: groups as ``(mapping, path)``, rules as ``(object, mapping, path)``."""

    groups: list[tuple[dict[str, Any], Path]] = field(default_factory=list)
    rules: list[tuple[str, dict[str, Any], Path]] = field(default_factory=list)


def load_sfdx_sharing(project_dir: Path) -> SfdxSharing:
    """Every ``groups/*.group-meta.xml`` and ``sharingRules/*.sharingRules-meta.xml`` of the project's package
    directories, as the mappings of their YAML equivalents."""
    found = SfdxSharing()
    for package_dir in find_package_directories(project_dir):
        for path, name in component_files(package_dir, "groups", _GROUP_SUFFIXES):
            found.groups.append((_group(path, name), path))
        for path, object_name in component_files(package_dir, "sharingRules", _RULES_SUFFIXES):
            rules = _rules(path)
            if rules:  # a retrieved project holds an empty file for every object: nothing to deploy
                found.rules.append((object_name, {"rules": rules}, path))
    return found


# -- groups ----------------------------------------------------------------------------------------------------


def _group(path: Path, name: str) -> dict[str, Any]:
    root = _parse(path, "Group")
    data: dict[str, Any] = {"name": name, "label": _text(root, "name") or name}
    description = _text(root, "description")
    if description is not None:
        data["description"] = description
    bosses = _bool(root, "doesIncludeBosses", path)
    data["doesIncludeBosses"] = True if bosses is None else bosses
    return data


# -- sharing rules ---------------------------------------------------------------------------------------------


def _rules(path: Path) -> list[dict[str, Any]]:
    root = _parse(path, "SharingRules")
    for kind in _UNSUPPORTED_KINDS:
        if root.find(_Q + kind) is not None:
            raise MetadataError(f"{path}: <{kind}> are not supported (criteria and owner rules are)")
    rules: list[dict[str, Any]] = []
    for element in root:
        tag = element.tag.removeprefix(_Q)
        kind = _RULE_KINDS.get(tag)
        if kind is None:
            continue
        name = _text(element, "fullName")
        where = f"{path}: <{tag}> {name or '(no fullName)'}"
        if not name:
            raise MetadataError(f"{where}: a rule needs a <fullName>")
        rule: dict[str, Any] = {"name": name, "type": kind, "access": _text(element, "accessLevel") or "Read",
                                "sharedWith": _principal(element, "sharedTo", where)}
        for key in ("label", "description"):
            value = _text(element, key)
            if value is not None:
                rule[key] = value
        settings = element.find(_Q + "accountSettings")
        if settings is not None:
            rule["accountSettings"] = {key: _text(settings, key) or "None" for key in
                                       ("opportunityAccessLevel", "caseAccessLevel", "contactAccessLevel")}
        if kind == "owner":
            rule["ownedBy"] = _principal(element, "sharedFrom", where)
        else:
            # Turned into a SOQL condition by the deploy (interlink.soql.criteria), which knows SOQL's quoting.
            rule["criteriaItems"] = [{key: _text(item, key) or "" for key in ("field", "operation", "value")}
                                     for item in element.findall(_Q + "criteriaItems")]
            rule["booleanFilter"] = _text(element, "booleanFilter")
        rules.append(rule)
    return rules


def _principal(element: ET.Element, tag: str, where: str) -> dict[str, str]:
    holder = element.find(_Q + tag)
    children = [] if holder is None else [(child.tag.removeprefix(_Q), (child.text or "").strip()) for child in holder]
    if len(children) != 1 or not children[0][1]:
        raise MetadataError(f"{where}: <{tag}> names one group, role or role and subordinates")
    kind, name = children[0]
    if kind not in _SHARED_TO:
        raise MetadataError(f"{where}: <{tag}><{kind}> is not supported; share with a group, role or "
                            "roleAndSubordinates")
    return {_SHARED_TO[kind]: name}
