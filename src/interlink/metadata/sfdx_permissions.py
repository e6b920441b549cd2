"""Salesforce DX source -> permission documents: profiles, permission sets, permission set groups and muting
permission sets, as the mappings ``metadata/profiles``, ``metadata/permissionSets`` and
``metadata/permissionSetGroups`` YAML files hold, so that one deploy path handles both sources.

Each package directory of ``sfdx-project.json`` is searched for::

    <pkg>/**/profiles/<Name>.profile-meta.xml                          (or <Name>.profile)
    <pkg>/**/permissionsets/<Name>.permissionset-meta.xml              (or <Name>.permissionset)
    <pkg>/**/permissionsetgroups/<Name>.permissionsetgroup-meta.xml    (or <Name>.permissionsetgroup)
    <pkg>/**/mutingpermissionsets/<Name>.mutingpermissionset-meta.xml  (or <Name>.mutingpermissionset)

The file name is the name (URL-decoded: ``Custom%3A Marketing Profile`` is ``Custom: Marketing Profile``). What is
read, in the YAML shape::

    <userPermissions><enabled>true</enabled><name>ApiEnabled</name>           -> userPermissions: [ApiEnabled]
    <objectPermissions><object>Account</object><allowRead>true</allowRead>... -> objectPermissions:
                                                                                   {Account: {read: true, ...}}
    <fieldPermissions><field>Account.X__c</field><readable>true</readable>... -> fieldPermissions:
                                                                                   {Account.X__c: {read: true, ...}}
    <loginIpRanges><startAddress/><endAddress/><description/>   (profiles)     -> loginIpRanges: [{start, end, ...}]
    <loginHours><mondayStart>480</mondayStart><mondayEnd>1080</mondayEnd>     -> loginHours:
                                                                                   {monday: {start: "08:00", ...}}
    <label>, <description>                                                     -> label, description
    <permissionSets>, <mutingPermissionSets>    (groups)                       -> permissionSets, mutingPermissionSets

Disabled user permissions and object or field entries granting nothing are left out. Everything else a retrieved
file holds (``<custom>``, ``<userLicense>``, layout assignments, tab visibilities, class accesses, record type
visibilities, ``<hasActivationRequired>``, ``<license>``, a group's ``<status>``, ...) is ignored. In a muting
permission set a ``true`` value mutes that permission in its group. Files for the platform's built-in profiles
(``Admin``, ``Standard``, ``Minimum Access - ...``) are skipped with a warning: built-in profiles are not changed
from source. Which names the org knows (objects, fields, user permissions) is checked by the deploy
(:mod:`interlink.app.permissions`), which skips unknown ones from source with a warning. Malformed XML raises
:class:`MetadataError` naming the file.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interlink.errors import MetadataError
from interlink.metadata.sfdx import _Q, _bool, _int, _parse, _text, component_files, find_package_directories

__all__ = ["BUILT_IN_PROFILE_FILES", "KINDS", "PermissionDocuments", "load_sfdx_permissions", "read_permission_file"]

#: (folder, root element, suffixes): the suffix ``-meta.xml`` of source format, or none (Metadata API format).
KINDS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("profiles", "Profile", (".profile-meta.xml", ".profile")),
    ("permissionsets", "PermissionSet", (".permissionset-meta.xml", ".permissionset")),
    ("permissionsetgroups", "PermissionSetGroup", (".permissionsetgroup-meta.xml", ".permissionsetgroup")),
    ("mutingpermissionsets", "MutingPermissionSet", (".mutingpermissionset-meta.xml", ".mutingpermissionset")),
)
#: Names of the platform's built-in profiles as retrieved (and as Interlink names its own): never changed from source.
BUILT_IN_PROFILE_FILES = frozenset({"Admin", "Standard", "System Administrator", "Standard User"})
_MINIMUM_ACCESS = ("Minimum Access", "MinimumAccess")

_OBJECT_FLAGS = (("allowRead", "read"), ("allowCreate", "create"), ("allowEdit", "edit"), ("allowDelete", "delete"),
                 ("viewAllRecords", "viewAll"), ("modifyAllRecords", "modifyAll"))
_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

Document = tuple[str, dict[str, Any], Path]


@dataclass
class PermissionDocuments:
    """The ``(name, mapping, path)`` of each file found, by kind, in the order found."""

    profiles: list[Document] = field(default_factory=list)
    permission_sets: list[Document] = field(default_factory=list)
    groups: list[Document] = field(default_factory=list)
    muting_sets: list[Document] = field(default_factory=list)

    def of_kind(self, folder: str) -> list[Document]:
        return {"profiles": self.profiles, "permissionsets": self.permission_sets,
                "permissionsetgroups": self.groups, "mutingpermissionsets": self.muting_sets}[folder]


def load_sfdx_permissions(project_dir: Path) -> tuple[PermissionDocuments, list[str]]:
    """Every profile, permission set, permission set group and muting permission set of the project's package
    directories, and warnings about the files skipped. [] of each when there is no ``sfdx-project.json``."""
    found = PermissionDocuments()
    warnings: list[str] = []
    seen: dict[tuple[str, str], Path] = {}
    for package_dir in find_package_directories(Path(project_dir)):
        for folder, _tag, suffixes in KINDS:
            for path, name in component_files(package_dir, folder, suffixes):
                earlier = seen.get((folder, name.lower()))
                if earlier is not None:
                    raise MetadataError(f"{path}: {name} is also defined by {earlier}")
                seen[(folder, name.lower())] = path
                if folder == "profiles" and _built_in(name):
                    warnings.append(f"{path}: skipped: {name} is a built-in profile, and built-in profiles are "
                                    "not changed from source (give your profile another name, or use a permission "
                                    "set)")
                    continue
                found.of_kind(folder).append((name, read_permission_file(path, folder), path))
    return found, warnings


def read_permission_file(path: Path, folder: str) -> dict[str, Any]:
    """One file as the YAML loader's mapping; ``folder`` is its kind (``profiles``, ``permissionsets``, ...)."""
    root_tag = next(tag for kind, tag, _suffixes in KINDS if kind == folder)
    root = _parse(path, root_tag)
    data: dict[str, Any] = {}
    for key in ("label", "description"):
        value = _text(root, key)
        if value is not None and not (key == "label" and folder == "profiles"):
            data[key] = value
    if folder == "permissionsetgroups":
        data["permissionSets"] = _texts(root, "permissionSets")
        data["mutingPermissionSets"] = _texts(root, "mutingPermissionSets")
        return data
    data.update(_grants(root, path))
    if folder == "profiles":
        ranges = [_ip_range(entry, path) for entry in root.findall(_Q + "loginIpRanges")]
        if ranges:
            data["loginIpRanges"] = ranges
        hours = root.find(_Q + "loginHours")
        if hours is not None:
            data["loginHours"] = _login_hours(hours, path)
    return data


# -- built-in profiles ------------------------------------------------------------------------------------------


def _built_in(name: str) -> bool:
    return name in BUILT_IN_PROFILE_FILES or name.startswith(_MINIMUM_ACCESS)


# -- elements ----------------------------------------------------------------------------------------------------


def _texts(root: ET.Element, name: str) -> list[str]:
    return [(e.text or "").strip() for e in root.findall(_Q + name) if (e.text or "").strip()]


def _grants(root: ET.Element, path: Path) -> dict[str, Any]:
    """userPermissions, objectPermissions and fieldPermissions: only what is enabled."""
    users: list[str] = []
    for entry in root.findall(_Q + "userPermissions"):
        name = _text(entry, "name")
        if name is None:
            raise MetadataError(f"{path}: a <userPermissions> has no <name>")
        if _bool(entry, "enabled", path) and name not in users:
            users.append(name)
    objects: dict[str, dict[str, bool]] = {}
    for entry in root.findall(_Q + "objectPermissions"):
        object_name = _text(entry, "object")
        if object_name is None:
            raise MetadataError(f"{path}: an <objectPermissions> has no <object>")
        flags = {key: bool(_bool(entry, xml_name, path)) for xml_name, key in _OBJECT_FLAGS}
        if any(flags.values()):
            earlier = objects.get(object_name, {})
            objects[object_name] = {key: value or earlier.get(key, False) for key, value in flags.items()}
    fields: dict[str, dict[str, bool]] = {}
    for entry in root.findall(_Q + "fieldPermissions"):
        field_path = _text(entry, "field")
        if field_path is None:
            raise MetadataError(f"{path}: a <fieldPermissions> has no <field>")
        read, edit = bool(_bool(entry, "readable", path)), bool(_bool(entry, "editable", path))
        if read or edit:
            earlier = fields.get(field_path, {})
            fields[field_path] = {"read": read or earlier.get("read", False),
                                  "edit": edit or earlier.get("edit", False)}
    grants: dict[str, Any] = {}
    if users:
        grants["userPermissions"] = users
    if objects:
        grants["objectPermissions"] = objects
    if fields:
        grants["fieldPermissions"] = fields
    return grants


def _ip_range(entry: ET.Element, path: Path) -> dict[str, str]:
    start, end = _text(entry, "startAddress"), _text(entry, "endAddress")
    if start is None or end is None:
        raise MetadataError(f"{path}: a <loginIpRanges> needs a <startAddress> and an <endAddress>")
    found = {"start": start, "end": end}
    description = _text(entry, "description")
    if description is not None:
        found["description"] = description
    return found


def _login_hours(hours: ET.Element, path: Path) -> dict[str, dict[str, str]]:
    """``<mondayStart>480</mondayStart><mondayEnd>1080</mondayEnd>`` (minutes after midnight) -> 08:00-18:00."""
    days: dict[str, dict[str, str]] = {}
    for day in _DAYS:
        start, end = _int(hours, f"{day}Start", path), _int(hours, f"{day}End", path)
        if start is None and end is None:
            continue
        if start is None or end is None:
            raise MetadataError(f"{path}: <loginHours>: {day}Start and {day}End go together")
        for minutes, element in ((start, f"{day}Start"), (end, f"{day}End")):
            if not 0 <= minutes <= 24 * 60:
                raise MetadataError(f"{path}: <loginHours>: <{element}> {minutes} is not minutes after midnight "
                                    "(0 to 1440)")
        days[day] = {"start": _clock(start), "end": _clock(end)}
    return days


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"
