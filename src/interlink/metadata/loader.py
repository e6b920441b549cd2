"""Load an org project's metadata into one :class:`Schema`.

Sources, merged in this order: the standard objects Interlink ships, YAML files under
``metadata/objects/``, then SFDX source format under the package directories named by
``sfdx-project.json``. A file named after a standard object adds custom fields to it. Custom objects
without a ``keyPrefix`` get the one they were deployed with, or the next free ``a..`` prefix; custom share
objects (``Invoice__Share``) all get the platform's ``02c``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from interlink.errors import MetadataError
from interlink.ids import BASE62
from interlink.metadata.history import history_objects
from interlink.metadata.model import FieldDef, ObjectDef, Schema
from interlink.metadata.sfdx import find_package_directories, load_sfdx_objects_with_warnings
from interlink.metadata.sharing import CUSTOM_SHARE_KEY_PREFIX, is_custom_share, needs_share_object, share_spec
from interlink.metadata.spec import Spec, build_object, merge_specs
from interlink.metadata.standard_objects import load_standard_specs

SAMPLE_DIR = Path(__file__).parent / "sample"


@dataclass
class LoadedMetadata:
    schema: Schema
    warnings: list[str] = field(default_factory=list)
    sources: dict[str, list[str]] = field(default_factory=dict)
    # Change-event channel files: (channel name, spec, source file).
    channels: list[tuple[str, Any, str]] = field(default_factory=list)


def read_yaml_files(folder: Path) -> list[tuple[Path, Any]]:
    """Parse every ``*.yaml`` / ``*.yml`` in ``folder`` (sorted); a syntax error names file and line."""
    if not folder.is_dir():
        return []
    parsed: list[tuple[Path, Any]] = []
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        try:
            parsed.append((path, yaml.safe_load(path.read_text(encoding="utf-8"))))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
            raise MetadataError(f"{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    return parsed


def read_yaml_specs(folder: Path) -> list[tuple[Spec, str]]:
    """Every ``*.yaml`` / ``*.yml`` under ``folder`` as (spec, source); the file stem names the object."""
    if not folder.is_dir():
        return []
    found: list[tuple[Spec, str]] = []
    for path, data in read_yaml_files(folder):
        if data is None:
            continue
        if not isinstance(data, dict):
            raise MetadataError(f"{path}: an object file holds a mapping (name, label, fields, ...)")
        data.setdefault("name", path.stem)
        if data["name"] != path.stem:
            raise MetadataError(f"{path}: name {data['name']!r} does not match the file name {path.stem!r}")
        found.append((data, str(path)))
    return found


def load_project(project_dir: Path, deployed: Schema | None = None,
                 retired_prefixes: Iterable[str] = (), *, include_sample: bool = False) -> LoadedMetadata:
    """Standard objects plus the project's YAML and SFDX objects, validated as one schema.

    ``retired_prefixes`` (of objects dropped earlier) are never assigned to a new object.
    ``include_sample`` adds the sample org's platform events and CDC selection (``--sample-data``).
    """
    specs: dict[str, Spec] = {}
    sources: dict[str, list[str]] = {}
    for spec in load_standard_specs():
        specs[spec["name"].lower()] = spec
        sources[spec["name"].lower()] = ["interlink:standard"]

    warnings: list[str] = []
    project_specs = read_yaml_specs(SAMPLE_DIR / "objects") if include_sample else []
    project_specs += read_yaml_specs(project_dir / "metadata" / "objects")
    for package_dir in find_package_directories(project_dir):
        loaded, found_warnings = load_sfdx_objects_with_warnings(package_dir)
        project_specs.extend(loaded)
        warnings.extend(found_warnings)

    for spec, source in project_specs:
        _add(specs, sources, spec, source)
    for name, spec in list(specs.items()):  # Invoice__Share for a Private or Read Invoice__c
        if needs_share_object(spec):
            share = share_spec(spec)
            if share["name"].lower() in specs:
                raise MetadataError(f"{sources[name][-1]}: {share['name']} is the share object of {spec['name']} "
                                    "and cannot be defined")
            specs[share["name"].lower()] = share
            sources[share["name"].lower()] = sources[name]

    _assign_key_prefixes(specs, deployed, retired_prefixes)
    objects = [build_object(spec, sources[name][-1]) for name, spec in specs.items()]
    for history in history_objects(objects):  # AccountHistory, Invoice__History, ... (enableHistory)
        if history.name.lower() in specs:
            raise MetadataError(f"{sources[history.name.lower()][-1]}: {history.name} is the history object of "
                                f"{history.history_of} and cannot be defined")
        sources[history.name.lower()] = sources[history.history_of.lower()]
        objects.append(history)
    schema = Schema(objects)
    _check_references(schema, sources)
    channels = [(path.stem, data, str(path)) for folder in
                ([SAMPLE_DIR / "channels"] if include_sample else []) + [project_dir / "metadata" / "channels"]
                for path, data in read_yaml_files(folder)]
    return LoadedMetadata(schema, warnings, sources, channels)


def _add(specs: dict[str, Spec], sources: dict[str, list[str]], spec: Spec, source: str) -> None:
    name = str(spec.get("name", ""))
    key = name.lower()
    existing = specs.get(key)
    is_extension = set(spec) <= {"name", "fields", "label", "labelPlural", "description", "changeDataCapture",
                                 "enableHistory", "grantAccessUsingHierarchies"}
    if existing is None:
        if not name.endswith(("__c", "__e", "__x")):
            raise MetadataError(f"{source}: {name} is not a standard object; custom objects end in __c "
                                "(platform events in __e, external objects in __x)")
        if is_extension and "label" not in spec:
            # Fields for a custom object that is defined in another file (SFDX splits them this way).
            specs[key] = {"name": name, **spec}
            sources[key] = [source]
            return
        specs[key] = dict(spec)
        sources[key] = [source]
        return

    def defines(candidate: Spec) -> bool:  # a definition of the object (label, name field...), not just fields
        # (grantAccessUsingHierarchies too: the Metadata API cannot say it, so a YAML file adds it to SFDX objects)
        return bool(set(candidate) - {"name", "fields", "grantAccessUsingHierarchies"})

    if existing.get("standard") or not defines(spec):
        specs[key] = merge_specs(existing, spec, source)
        sources[key].append(source)
        return
    if defines(existing):
        raise MetadataError(f"{source}: object {name} is already defined in {sources[key][0]}")
    merged = merge_specs(spec, existing, source)
    specs[key] = merged
    sources[key].append(source)


def _prefix_sequence(first: str = "a") -> Iterable[str]:
    for second in BASE62:
        for third in BASE62:
            yield f"{first}{second}{third}"


def _assign_key_prefixes(specs: dict[str, Spec], deployed: Schema | None, retired: Iterable[str] = ()) -> None:
    taken = {str(s["keyPrefix"]) for s in specs.values() if s.get("keyPrefix")}
    for name, spec in sorted(specs.items()):
        if spec.get("keyPrefix"):
            continue
        previous = deployed.object(name) if deployed else None
        if previous is not None and previous.key_prefix not in taken:
            spec["keyPrefix"] = previous.key_prefix
            taken.add(previous.key_prefix)
    if deployed is not None:
        taken.update(obj.key_prefix for obj in deployed)
    taken.update(retired)
    sequences = {"a": iter(_prefix_sequence("a")), "e": iter(_prefix_sequence("e")),
                 "x": iter(_prefix_sequence("x"))}
    for name, spec in sorted(specs.items()):
        if spec.get("keyPrefix"):
            continue
        if is_custom_share(str(spec.get("name") or "")):
            spec["keyPrefix"] = CUSTOM_SHARE_KEY_PREFIX  # one prefix for all of them, as on the platform
            continue
        # platform events get e.. prefixes, external objects x..
        sequence = sequences["e" if name.endswith("__e") else "x" if name.endswith("__x") else "a"]
        prefix = next(sequence)
        while prefix in taken:
            prefix = next(sequence)
        spec["keyPrefix"] = prefix
        taken.add(prefix)


def _check_references(schema: Schema, sources: dict[str, list[str]]) -> None:
    prefixes: dict[str, ObjectDef] = {}
    for obj in schema:
        first = prefixes.setdefault(obj.key_prefix, obj)
        # History objects all share 017, custom share objects 02c.
        shared = (first.history_of and obj.history_of) or (
            obj.key_prefix == CUSTOM_SHARE_KEY_PREFIX and is_custom_share(first.name) and is_custom_share(obj.name))
        if first is not obj and not shared:
            raise MetadataError(f"{sources[obj.name.lower()][-1]}: key prefix {obj.key_prefix} of {obj.name} is "
                                f"already used by {first.name}")
        for fdef in obj.reference_fields:
            for target in fdef.reference_to:
                if target not in schema:
                    raise MetadataError(f"{sources[obj.name.lower()][-1]}: {obj.name}.{fdef.name} refers to "
                                        f"unknown object {target}")
            _check_lookup_kind(schema, obj, fdef, sources[obj.name.lower()][-1])


def _check_lookup_kind(schema: Schema, obj: ObjectDef, fdef: FieldDef, source: str) -> None:
    """Lookups into or out of external objects must match on a field the parent can be found by."""
    where = f"{source}: {obj.name}.{fdef.name}"
    parents = [schema.object(t) for t in fdef.reference_to]
    external_parent = any(p is not None and p.is_external for p in parents)
    if fdef.reference_target_field is None:
        if external_parent:
            raise MetadataError(f"{where}: a lookup to an external object is an external lookup "
                                "(type: externalLookup, matched on ExternalId)")
        return
    if len(parents) != 1 or parents[0] is None:
        raise MetadataError(f"{where}: an external or indirect lookup points to exactly one object")
    parent = parents[0]
    target = parent.field(fdef.reference_target_field)
    if external_parent:
        if target is None or target.name != "ExternalId":
            raise MetadataError(f"{where}: an external lookup matches on the parent's ExternalId")
    elif not obj.is_external:
        raise MetadataError(f"{where}: only external objects have indirect lookups")
    elif target is None or not (target.external_id and target.unique):
        raise MetadataError(f"{where}: an indirect lookup matches on a unique external-id field of {parent.name}; "
                            f"{fdef.reference_target_field} is not one")


def describe_sources(loaded: LoadedMetadata) -> dict[str, Any]:
    return {name: list(files) for name, files in loaded.sources.items()}
