"""Which objects the OData producer exposes: the project's ``metadata/odata.yaml``.

::

    objects:
      - Account                          # read only
      - {name: Contact, writable: true}  # POST, PATCH/MERGE/PUT and DELETE too
    pageSize: 1000                       # rows per page before @odata.nextLink / __next (1..10000)

The project's file wins; an org created with ``--sample-data`` falls back to the sample org's file; with
neither, nothing is exposed (both service documents are empty). Names are checked against the deployed schema
when the service starts, so a typo stops ``interlink up`` with a message naming the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from interlink.errors import MetadataError
from interlink.metadata.loader import SAMPLE_DIR
from interlink.metadata.model import Schema

DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 10_000
_KEYS = {"objects", "pageSize"}
_OBJECT_KEYS = {"name", "writable"}


@dataclass(frozen=True)
class ExposedObject:
    """One object exposed as an entity set; ``writable`` allows create, update and delete."""

    name: str
    writable: bool = False


@dataclass(frozen=True)
class ODataConfig:
    """The exposed objects (in file order), the default page size and the file they came from."""

    objects: tuple[ExposedObject, ...] = ()
    page_size: int = DEFAULT_PAGE_SIZE
    source: str = ""


def find_config_file(project_dir: Path, *, include_sample: bool) -> Path | None:
    """The file that configures the producer: the project's, else the sample org's (when asked), else None."""
    for name in ("odata.yaml", "odata.yml"):
        candidate = project_dir / "metadata" / name
        if candidate.is_file():
            return candidate
    sample = SAMPLE_DIR / "odata.yaml"
    return sample if include_sample and sample.is_file() else None


def load_config(project_dir: Path, *, include_sample: bool = False) -> ODataConfig:
    """Read and validate the producer's configuration; MetadataError names the file and the problem."""
    path = find_config_file(project_dir, include_sample=include_sample)
    if path is None:
        return ODataConfig()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise MetadataError(f"{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    return parse_config(data, str(path))


def parse_config(data: Any, source: str) -> ODataConfig:
    """The configuration in ``data`` (the parsed YAML of ``source``)."""
    if data is None:
        return ODataConfig(source=source)
    if not isinstance(data, Mapping):
        raise MetadataError(f"{source}: expected a mapping with 'objects' (and optionally 'pageSize')")
    unknown = set(data) - _KEYS
    if unknown:
        raise MetadataError(f"{source}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    page_size = data.get("pageSize", DEFAULT_PAGE_SIZE)
    if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise MetadataError(f"{source}: pageSize must be a whole number from 1 to {MAX_PAGE_SIZE}")
    raw_objects = data.get("objects") or []
    if not isinstance(raw_objects, list):
        raise MetadataError(f"{source}: objects must be a list of object names or {{name, writable}} entries")
    objects: list[ExposedObject] = []
    seen: set[str] = set()
    for item in raw_objects:
        exposed = _exposed(item, source)
        if exposed.name.lower() in seen:
            raise MetadataError(f"{source}: {exposed.name} is listed twice")
        seen.add(exposed.name.lower())
        objects.append(exposed)
    return ODataConfig(tuple(objects), page_size, source)


def _exposed(item: Any, source: str) -> ExposedObject:
    if isinstance(item, str) and item.strip():
        return ExposedObject(item.strip())
    if isinstance(item, Mapping):
        unknown = set(item) - _OBJECT_KEYS
        if unknown:
            raise MetadataError(f"{source}: unknown key(s) {', '.join(sorted(map(str, unknown)))} in {dict(item)}")
        name = item.get("name")
        writable = item.get("writable", False)
        if not isinstance(name, str) or not name.strip():
            raise MetadataError(f"{source}: every object entry needs a name: {dict(item)}")
        if not isinstance(writable, bool):
            raise MetadataError(f"{source}: writable must be true or false for {name}")
        return ExposedObject(name.strip(), writable)
    raise MetadataError(f"{source}: an object entry is a name or {{name, writable}}, not {item!r}")


def check_against_schema(config: ODataConfig, schema: Schema) -> None:
    """Refuse objects the org does not have, or whose records are not stored and queryable."""
    for exposed in config.objects:
        obj = schema.object(exposed.name)
        if obj is None:
            raise MetadataError(f"{config.source}: {exposed.name} is not an object of this org")
        if not obj.is_stored or not obj.queryable:
            raise MetadataError(f"{config.source}: {obj.name} cannot be exposed: only stored, queryable objects "
                                "can (not platform events or external objects)")
