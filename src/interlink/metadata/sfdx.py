"""Salesforce DX source format -> object specs.

Reads the ``objects/`` folders of an SFDX project (``force-app/main/default/objects/...``) and turns
each ``<Obj>.object-meta.xml`` plus its ``fields/*.field-meta.xml`` into the spec dict that
:func:`interlink.metadata.spec.build_object` understands (see ``spec.py``)::

    objects/Invoice__c/Invoice__c.object-meta.xml      -> {"name": "Invoice__c", "label": ..., "fields": []}
    objects/Invoice__c/fields/Amount__c.field-meta.xml -> one entry of "fields"
    objects/Account/fields/Region__c.field-meta.xml    -> {"name": "Account", "fields": [...]} (extension)

Source format carries no key prefix, so specs never have ``keyPrefix``; the caller assigns one. A
folder without an ``.object-meta.xml`` (custom fields on a standard object, or fields of a custom
object defined in another package directory) and every standard object folder produce an
*extension spec* holding only ``name`` and ``fields``, to be merged with ``merge_specs``.

Formula fields, roll-up summaries and a few other things Interlink cannot model yet are skipped and
reported as warnings by :func:`load_sfdx_objects_with_warnings`; anything malformed or of an unknown
type raises :class:`MetadataError` naming the file.
"""

from __future__ import annotations

import json
import math
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from urllib.parse import unquote
from xml.parsers import expat

from interlink.errors import MetadataError
from interlink.metadata.history import HISTORY_STANDARD_OBJECTS
from interlink.metadata.spec import SHARING_MODELS, Spec, build_field
from interlink.xmlsafe import XmlDeclarationError, check_untrusted_xml

__all__ = [
    "METADATA_NAMESPACE",
    "find_package_directories",
    "load_sfdx_objects",
    "load_sfdx_objects_with_warnings",
]

METADATA_NAMESPACE = "http://soap.sforce.com/2006/04/metadata"
_Q = "{" + METADATA_NAMESPACE + "}"

OBJECT_SUFFIX = ".object-meta.xml"
FIELD_SUFFIX = ".field-meta.xml"

# CustomField <type> -> spec type. Number stays double even with scale 0, as the platform describes it.
FIELD_TYPES: dict[str, str] = {
    "Text": "string",
    "TextArea": "textarea",
    "LongTextArea": "longtextarea",
    "Html": "html",
    "EncryptedText": "string",
    "Email": "email",
    "Phone": "phone",
    "Url": "url",
    "Checkbox": "boolean",
    "Number": "double",
    "Currency": "currency",
    "Percent": "percent",
    "Date": "date",
    "DateTime": "datetime",
    "Time": "time",
    "Picklist": "picklist",
    "MultiselectPicklist": "multipicklist",
    "Lookup": "lookup",
    "MasterDetail": "masterdetail",
    "AutoNumber": "autonumber",
}
_NAME_FIELD_TYPES = {"Text": "string", "AutoNumber": "autonumber"}
_TEXT_SPEC_TYPES = {"string", "textarea", "longtextarea", "html", "email", "phone", "url", "picklist",
                    "multipicklist"}
_NUMBER_SPEC_TYPES = {"int", "double", "currency", "percent"}
_SKIPPED_DIRS = {"node_modules"}
# A formula string literal: "..." or '...' with backslash escapes, and nothing around it.
_STRING_LITERAL = re.compile(r"""^(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')$""", re.DOTALL)
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t"}


# --------------------------------------------------------------------------------------------------
# sfdx-project.json


def find_package_directories(project_dir: Path) -> list[Path]:
    """The package directories ``sfdx-project.json`` lists, in order; [] when there is no such file."""
    project_dir = Path(project_dir)
    config = project_dir / "sfdx-project.json"
    if not config.is_file():
        return []
    try:
        data = json.loads(config.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise MetadataError(f"{config}: cannot read sfdx-project.json: {exc}") from None
    entries = data.get("packageDirectories") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise MetadataError(f"{config}: packageDirectories must be a list of {{\"path\": ...}} entries")
    result: list[Path] = []
    for index, entry in enumerate(entries):
        raw = entry.get("path") if isinstance(entry, dict) else None
        if not isinstance(raw, str) or not raw.strip():
            raise MetadataError(f"{config}: packageDirectories.{index}.path: expected a relative path, "
                                f"got {raw!r}")
        relative = Path(raw.strip().replace("\\", "/"))
        if relative.is_absolute():
            raise MetadataError(f"{config}: packageDirectories.{index}.path: must be relative, got {raw!r}")
        path = project_dir / relative
        if not path.is_dir():
            raise MetadataError(f"{config}: packageDirectories.{index}.path: {path} does not exist")
        if path not in result:
            result.append(path)
    return result


# --------------------------------------------------------------------------------------------------
# Loading


def load_sfdx_objects(root: Path) -> list[tuple[Spec, str]]:
    """Every object under ``root`` as ``(spec, source)`` pairs, warnings dropped.

    See :func:`load_sfdx_objects_with_warnings`.
    """
    specs, _warnings = load_sfdx_objects_with_warnings(root)
    return specs


def load_sfdx_objects_with_warnings(root: Path) -> tuple[list[tuple[Spec, str]], list[str]]:
    """Find every ``objects/<Obj>/`` folder under ``root`` and turn it into a spec.

    Returns the ``(spec, source path)`` pairs, sorted by folder, and warnings about what was skipped
    (formula and roll-up summary fields, standard fields, unsupported object kinds, ...).
    """
    root = Path(root)
    if not root.is_dir():
        raise MetadataError(f"{root}: not a directory")
    specs: list[tuple[Spec, str]] = []
    warnings: list[str] = []
    for obj_dir in _object_dirs(root):
        loaded = _load_object_dir(obj_dir, warnings)
        if loaded is not None:
            specs.append(loaded)
    return specs, warnings


def component_files(root: Path, folder: str, suffixes: tuple[str, ...]) -> list[tuple[Path, str]]:
    """(path, component name) of every file under ``root`` in a folder named ``folder`` whose name ends in one of
    ``suffixes`` (the first that matches: put ``-meta.xml`` ones first), sorted by path. Names are URL-decoded, as
    retrieved files encode them (``Custom%3A Sales.profile-meta.xml``)."""
    found: list[tuple[Path, str]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in _SKIPPED_DIRS)
        if Path(dirpath).name != folder:
            continue
        for filename in sorted(filenames):
            suffix = next((s for s in suffixes if filename.endswith(s)), None)
            if suffix is not None and len(filename) > len(suffix):
                found.append((Path(dirpath) / filename, unquote(filename[: -len(suffix)])))
    return sorted(found)


def _object_dirs(root: Path) -> list[Path]:
    """Folders ``.../objects/<Obj>/`` holding an ``<Obj>.object-meta.xml`` or a ``fields/`` folder."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in _SKIPPED_DIRS)
        current = Path(dirpath)
        if current.parent.name != "objects":
            continue
        if f"{current.name}{OBJECT_SUFFIX}" in filenames or "fields" in dirnames:
            found.append(current)
    return sorted(found)


def _load_object_dir(obj_dir: Path, warnings: list[str]) -> tuple[Spec, str] | None:
    name = obj_dir.name
    object_file = obj_dir / f"{name}{OBJECT_SUFFIX}"
    custom = name.endswith(("__c", "__e"))
    if not custom and "__" in name:
        # __mdt, __b, __x, __kav, ... : not plain custom objects or platform events.
        warnings.append(f"{obj_dir}: {name} skipped: only custom objects (__c), platform events (__e) and "
                        "standard objects are supported")
        return None

    fields: list[dict[str, Any]] = []
    for field_file in sorted((obj_dir / "fields").glob(f"*{FIELD_SUFFIX}")):
        field = _field_spec(field_file, name, warnings)
        if field is not None:
            fields.append(field)

    if custom and object_file.is_file():
        spec = _object_spec(object_file, name, warnings)
        spec["fields"] = fields
        return spec, str(object_file)
    # Standard object (whether or not its .object-meta.xml is in source: of that file only <enableHistory>
    # is read), or more fields of a custom object defined elsewhere.
    extension: Spec = {"name": name, "fields": fields}
    if not custom and object_file.is_file():
        enable_history = _bool(_parse(object_file, "CustomObject"), "enableHistory", object_file)
        if enable_history is not None and name in HISTORY_STANDARD_OBJECTS:
            extension["enableHistory"] = enable_history
        elif enable_history:
            warnings.append(f"{object_file}: enableHistory ignored: Interlink keeps field history for custom "
                            f"objects and {', '.join(sorted(HISTORY_STANDARD_OBJECTS))}")
    if not fields and "enableHistory" not in extension:
        return None
    return extension, str(obj_dir)


# --------------------------------------------------------------------------------------------------
# XML


def _parse(path: Path, root_tag: str) -> ET.Element:
    """Parse one metadata file, rejecting DOCTYPE/entity declarations, and check its root element."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MetadataError(f"{path}: cannot read: {exc}") from None
    # A first pass with expat on its own: it stops at any DOCTYPE or entity declaration before
    # ElementTree would expand anything, and reports malformed XML with line and column.
    try:
        check_untrusted_xml(data)
    except XmlDeclarationError:
        raise MetadataError(f"{path}: DOCTYPE and entity declarations are not allowed in metadata files") \
            from None
    except expat.ExpatError as exc:
        raise MetadataError(f"{path}: malformed XML: {exc}") from None
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise MetadataError(f"{path}: malformed XML: {exc}") from None
    if root.tag != _Q + root_tag:
        raise MetadataError(f"{path}: expected a <{root_tag}> element in namespace {METADATA_NAMESPACE}, "
                            f"got {root.tag!r}")
    return root


def _text(elem: ET.Element, name: str) -> str | None:
    """Stripped text of the child element ``name``; None when absent or empty."""
    child = elem.find(_Q + name)
    if child is None:
        return None
    text = (child.text or "").strip()
    return text or None


def _bool(elem: ET.Element, name: str, path: Path) -> bool | None:
    text = _text(elem, name)
    if text is None:
        return None
    if text.lower() not in {"true", "false"}:
        raise MetadataError(f"{path}: <{name}>: expected true or false, got {text!r}")
    return text.lower() == "true"


def _int(elem: ET.Element, name: str, path: Path) -> int | None:
    text = _text(elem, name)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise MetadataError(f"{path}: <{name}>: expected a whole number, got {text!r}") from None


# --------------------------------------------------------------------------------------------------
# CustomObject


def _object_spec(path: Path, name: str, warnings: list[str]) -> Spec:
    root = _parse(path, "CustomObject")
    spec: Spec = {"name": name}
    for xml_name, key in (("label", "label"), ("pluralLabel", "labelPlural"), ("description", "description")):
        value = _text(root, xml_name)
        if value is not None:
            spec[key] = value

    if name.endswith("__e"):
        behavior = _text(root, "publishBehavior")
        if behavior is not None:
            spec["publishBehavior"] = behavior
        return spec
    name_elem = root.find(_Q + "nameField")
    if name_elem is not None:
        spec["nameField"] = _name_field_spec(name_elem, path)
    if _text(root, "sharingModel") == "ControlledByParent":
        spec["owner"] = False  # master-detail children have no owner
    enable_history = _bool(root, "enableHistory", path)
    if enable_history:
        spec["enableHistory"] = True
    # "Grant Access Using Hierarchies" has no CustomObject element (Setup only): a YAML file next to the source
    # adds grantAccessUsingHierarchies: false (see the loader).
    sharing = _text(root, "sharingModel")
    if sharing in SHARING_MODELS:
        spec["sharingModel"] = sharing
    if _text(root, "customSettingsType") is not None:
        warnings.append(f"{path}: {name} is a custom setting; it is loaded as a plain custom object")
    return spec


def _name_field_spec(elem: ET.Element, path: Path) -> dict[str, Any]:
    sf_type = _text(elem, "type") or "Text"
    spec_type = _NAME_FIELD_TYPES.get(sf_type)
    if spec_type is None:
        raise MetadataError(f"{path}: <nameField>: type must be Text or AutoNumber, got {sf_type!r}")
    spec: dict[str, Any] = {"type": spec_type}
    label = _text(elem, "label")
    if label is not None:
        spec["label"] = label
    if spec_type == "autonumber":
        display_format = _text(elem, "displayFormat")
        if display_format is not None:
            spec["displayFormat"] = display_format
        start = _int(elem, "startingNumber", path)
        if start is not None:
            spec["startNumber"] = start
    return spec


# --------------------------------------------------------------------------------------------------
# CustomField


def _field_spec(path: Path, object_name: str, warnings: list[str]) -> dict[str, Any] | None:
    """The spec of one ``.field-meta.xml``, or None (with a warning) when it is skipped."""
    root = _parse(path, "CustomField")
    file_name = path.name.removesuffix(FIELD_SUFFIX)
    name = _text(root, "fullName") or file_name
    if name != file_name:
        raise MetadataError(f"{path}: <fullName> {name!r} does not match the file name {file_name!r}")
    where = f"{path}: {object_name}.{name}"

    if not name.endswith("__c"):
        if _bool(root, "trackHistory", path) and object_name in HISTORY_STANDARD_OBJECTS:
            return {"name": name, "trackHistory": True}  # field history on a standard field (Industry, OwnerId)
        warnings.append(f"{where} ignored: standard fields cannot be changed from source")
        return None
    if _text(root, "formula") is not None:
        warnings.append(f"{where} skipped: formula fields are not supported yet")
        return None
    sf_type = _text(root, "type")
    if sf_type is None:
        raise MetadataError(f"{path}: field {name} has no <type>")
    if sf_type == "Summary":
        warnings.append(f"{where} skipped: roll-up summary fields are not supported yet")
        return None
    spec_type = FIELD_TYPES.get(sf_type)
    if spec_type is None:
        supported = ", ".join(sorted(FIELD_TYPES))
        raise MetadataError(f"{path}: field {name} has unsupported type {sf_type!r} (supported: {supported})")

    scale = _int(root, "scale", path)
    spec: dict[str, Any] = {"name": name, "type": spec_type}

    label = _text(root, "label")
    if label is not None:
        spec["label"] = label
    for xml_name in ("length", "precision", "visibleLines"):
        value = _int(root, xml_name, path)
        if value is not None:
            spec[xml_name] = value
    if scale is not None:
        spec["scale"] = scale

    master_detail = spec_type == "masterdetail"
    # A master-detail field is always required; its <required> (if any) says nothing.
    flags = ("unique", "externalId", "caseSensitive") if master_detail else (
        "required", "unique", "externalId", "caseSensitive")
    for xml_name in flags:
        value = _bool(root, xml_name, path)
        if value is not None:
            spec[xml_name] = value

    description = _text(root, "description")
    if description is not None:
        spec["description"] = description
    if _bool(root, "trackHistory", path):
        spec["trackHistory"] = True
    help_text = _text(root, "inlineHelpText")
    if help_text is not None:
        spec["helpText"] = help_text

    if spec_type in ("lookup", "masterdetail"):
        _relationship(root, spec, path, where, warnings)
    if spec_type == "autonumber":
        display_format = _text(root, "displayFormat")
        if display_format is not None:
            spec["displayFormat"] = display_format
        start = _int(root, "startingNumber", path)
        if start is not None:
            spec["startNumber"] = start
    if spec_type in ("picklist", "multipicklist"):
        values, restricted = _picklist(root, path)
        if not values:
            if root.find(f"{_Q}valueSet/{_Q}valueSetName") is not None:
                warnings.append(f"{where} skipped: picklists using a global value set are not supported yet")
            else:
                warnings.append(f"{where} skipped: the picklist has no values")
            return None
        spec["values"] = values
        if restricted is not None:
            spec["restricted"] = restricted

    raw_default = _text(root, "defaultValue")
    if raw_default is not None:
        default = _default_value(raw_default, spec_type)
        if default is None:
            warnings.append(f"{where}: default value {raw_default!r} is a formula; it is ignored")
        else:
            spec["defaultValue"] = default

    # Validate now so that a problem names this file rather than an index into the object's fields.
    build_field(spec, str(path), (), custom_object=object_name.endswith("__c"))
    return spec


def _relationship(
    root: ET.Element, spec: dict[str, Any], path: Path, where: str, warnings: list[str]
) -> None:
    targets = [(e.text or "").strip() for e in root.findall(_Q + "referenceTo") if (e.text or "").strip()]
    if not targets:
        raise MetadataError(f"{path}: field {spec['name']} needs a <referenceTo>")
    spec["referenceTo"] = targets[0] if len(targets) == 1 else targets
    # In source, <relationshipName> is the child relationship as the parent sees it (Invoices);
    # the parent-side name (Account__r) is derived by build_field from the field name.
    child_name = _text(root, "relationshipName")
    if child_name is not None:
        spec["childRelationshipName"] = child_name
    if spec["type"] == "lookup":
        constraint = _text(root, "deleteConstraint")
        if constraint == "Cascade":
            spec["cascadeDelete"] = True
        elif constraint == "Restrict":
            warnings.append(f"{where}: deleteConstraint Restrict is not enforced; "
                            "deleting the parent clears the field")
        elif constraint not in (None, "SetNull"):
            raise MetadataError(f"{path}: <deleteConstraint>: expected SetNull, Restrict or Cascade, "
                                f"got {constraint!r}")
        if root.find(_Q + "lookupFilter") is not None:
            warnings.append(f"{where}: lookup filter is not enforced")


def _picklist(root: ET.Element, path: Path) -> tuple[list[dict[str, Any]], bool | None]:
    """Picklist values and ``restricted`` from ``<valueSet>`` (or the pre-API-38 ``<picklist>``)."""
    value_set = root.find(_Q + "valueSet")
    if value_set is not None:
        definition = value_set.find(_Q + "valueSetDefinition")
        entries = definition.findall(_Q + "value") if definition is not None else []
        restricted = _bool(value_set, "restricted", path)
    else:
        legacy = root.find(_Q + "picklist")
        entries = legacy.findall(_Q + "picklistValues") if legacy is not None else []
        restricted = _bool(legacy, "restrictedPicklist", path) if legacy is not None else None
    values: list[dict[str, Any]] = []
    for entry in entries:
        value = _text(entry, "fullName")
        if value is None:
            raise MetadataError(f"{path}: a picklist value has no <fullName>")
        item: dict[str, Any] = {"value": value, "label": _text(entry, "label") or value,
                                "default": bool(_bool(entry, "default", path))}
        if _bool(entry, "isActive", path) is False:
            item["active"] = False
        values.append(item)
    return values, restricted


def _default_value(raw: str, spec_type: str) -> Any:
    """A literal default from a ``<defaultValue>`` formula; None when it is not a plain literal."""
    if spec_type == "boolean":
        return raw.lower() == "true" if raw.lower() in {"true", "false"} else None
    if spec_type in _TEXT_SPEC_TYPES:
        match = _STRING_LITERAL.match(raw)
        if match is None:
            return None
        body = match.group(1) if match.group(1) is not None else match.group(2)
        return _ESCAPE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)
    if spec_type in _NUMBER_SPEC_TYPES:
        try:
            number = float(raw)
        except ValueError:
            return None
        if not math.isfinite(number):
            return None
        if spec_type == "int":
            return int(number) if number.is_integer() else None
        return number
    return None  # dates, times, lookups: only formulas such as TODAY()
