"""The standard objects every org starts with (Account, Contact, Opportunity, ...).

Each one is an object spec (see :mod:`interlink.metadata.spec`) kept as a YAML file in the packaged
``interlink/metadata/standard/`` folder, one file per object. This module only reads them; turning a
spec into an :class:`~interlink.metadata.model.ObjectDef` is :func:`~interlink.metadata.spec.build_object`'s
job.
"""

from __future__ import annotations

import copy
import functools
from importlib.resources import files
from typing import Any

import yaml

from interlink.errors import MetadataError

STANDARD_PACKAGE = "interlink.metadata"
STANDARD_FOLDER = "standard"


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available: ~10x faster


def load_standard_specs() -> list[dict[str, Any]]:
    """Return the spec dict of every packaged standard object, ordered by file name.

    The files are parsed once per process; callers get their own copies to change freely.
    Raises :class:`MetadataError` if a file is not a YAML mapping.
    """
    return copy.deepcopy(_parsed_specs())


@functools.cache
def _parsed_specs() -> list[dict[str, Any]]:
    folder = files(STANDARD_PACKAGE) / STANDARD_FOLDER
    specs: list[dict[str, Any]] = []
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if not entry.is_file() or not entry.name.endswith(".yaml"):
            continue
        spec = yaml.load(entry.read_text(encoding="utf-8"), Loader=_Loader)
        if not isinstance(spec, dict):
            raise MetadataError(f"standard/{entry.name}: expected a mapping of object keys")
        specs.append(spec)
    return specs
