"""External data sources from metadata: ``metadata/dataSources/<Name>.yaml``, and the adapter each one needs.

::

    # metadata/dataSources/ERP.yaml
    label: ERP orders
    type: odata4            # odata4 | odata401 | odata2 | crossorg | python
    url: https://erp.example.com/odata     # or namedCredential: ERP (its URL, auth, mTLS)
    paging: server          # client (default: $top/$skip) | server (follow @odata.nextLink)
    pageSize: 500           # rows per page asked of the source (at most 2000)
    timeout: 30             # seconds per request, at most 120
    highDataVolume: false
    writable: true          # external objects of this source accept create / update / delete
    searchable: true        # SOSL reaches the source ($search)
    cacheSeconds: 0         # keep answers this long (0: every read goes to the source)

A ``python`` source names its adapter class: ``adapter: warehouse:Warehouse`` is the class ``Warehouse`` in
``<project>/adapters/warehouse.py`` (or in an importable module ``warehouse``); it subclasses
:class:`~interlink.connect.base.DataSourceConnection` and is built with the :class:`DataSource`.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from interlink.callouts.credentials import MAX_TIMEOUT, NamedCredential
from interlink.connect.base import DataSource, DataSourceConnection
from interlink.errors import MetadataError
from interlink.metadata.loader import read_yaml_files

TYPES = ("odata4", "odata401", "odata2", "crossorg", "python")
MAX_PAGE_SIZE = 2000
_KEYS = {"label", "type", "url", "namedCredential", "paging", "pageSize", "timeout", "highDataVolume", "writable",
         "searchable", "cacheSeconds", "adapter", "options", "name"}
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def load_sources(project_dir: Path) -> dict[str, DataSource]:
    """Every data source of the project, keyed by lower-cased name; a bad file fails naming file and key."""
    sources: dict[str, DataSource] = {}
    for path, data in read_yaml_files(project_dir / "metadata" / "dataSources"):
        source = parse_source(path.stem, data, str(path))
        sources[source.name.lower()] = source
    return sources


def parse_source(name: str, data: Any, where: str) -> DataSource:
    """One data source spec, validated."""
    if not isinstance(data, Mapping):
        raise MetadataError(f"{where}: a data source is a mapping of keys (type, url, ...)")
    unknown = set(data) - _KEYS
    if unknown:
        raise MetadataError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    name = str(data.get("name", name))
    if not _NAME.match(name):
        raise MetadataError(f"{where}: name: a data source needs an API name, got {name!r}")
    kind = str(data.get("type", "")).lower().replace(".", "").replace(" ", "")
    if kind not in TYPES:
        raise MetadataError(f"{where}: type: expected one of {', '.join(TYPES)}, got {data.get('type')!r}")
    url = str(data.get("url", "") or "")
    credential = data.get("namedCredential")
    if kind != "python" and not url and not credential:
        raise MetadataError(f"{where}: url: an {kind} source needs a url or a namedCredential")
    paging = str(data.get("paging", "client")).lower()
    if paging not in ("client", "server"):
        raise MetadataError(f"{where}: paging: expected client or server, got {paging!r}")
    page_size = _number(data.get("pageSize", MAX_PAGE_SIZE), where, "pageSize", int)
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise MetadataError(f"{where}: pageSize: must be 1..{MAX_PAGE_SIZE}, got {page_size}")
    timeout = _number(data.get("timeout", 30), where, "timeout", float)
    if not 0 < timeout <= MAX_TIMEOUT:
        raise MetadataError(f"{where}: timeout: must be more than 0 and at most {MAX_TIMEOUT:g} seconds")
    cache_seconds = _number(data.get("cacheSeconds", 0), where, "cacheSeconds", float)
    if cache_seconds < 0:
        raise MetadataError(f"{where}: cacheSeconds: must not be negative")
    adapter = data.get("adapter")
    if kind == "python" and (not isinstance(adapter, str) or ":" not in adapter):
        raise MetadataError(f"{where}: adapter: a python source names its class as module:Class")
    options = data.get("options", {}) or {}
    if not isinstance(options, Mapping):
        raise MetadataError(f"{where}: options: a mapping")
    return DataSource(
        name=name, type=kind, url=url, named_credential=str(credential) if credential else None,
        paging=paging,  # type: ignore[arg-type]
        page_size=page_size, timeout=timeout, high_data_volume=_flag(data, "highDataVolume", where),
        writable=_flag(data, "writable", where), searchable=_flag(data, "searchable", where),
        cache_seconds=cache_seconds, adapter=adapter if isinstance(adapter, str) else None, options=dict(options),
        label=str(data.get("label", name)), source_file=where)


def _flag(data: Mapping[str, Any], key: str, where: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise MetadataError(f"{where}: {key}: expected true or false, got {value!r}")
    return value


def _number(value: Any, where: str, key: str, kind: Callable[[Any], Any]) -> Any:
    if isinstance(value, bool):
        raise MetadataError(f"{where}: {key}: expected a number, got {value!r}")
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise MetadataError(f"{where}: {key}: expected a number, got {value!r}") from None


def source_credential(source: DataSource, credentials: Mapping[str, NamedCredential]) -> NamedCredential:
    """The named credential a source's requests go through: its own, or an unauthenticated one for its URL."""
    if source.named_credential:
        found = credentials.get(source.named_credential.lower())
        if found is None:
            raise MetadataError(f"{source.source_file}: namedCredential: there is no named credential "
                                f"{source.named_credential!r}")
        if source.url:
            return NamedCredential(found.name, _under(found.url, source.url), found.label,
                                   min(source.timeout, MAX_TIMEOUT), found.protocol, found.settings,
                                   found.secret_headers, found.secrets)
        return found
    return NamedCredential(source.name, source.url, source.label, min(source.timeout, MAX_TIMEOUT))


def _under(base: str, url: str) -> str:
    """A source URL given as a path under its named credential (``/odata/v4``) or as ``callout:Name/path``."""
    if url.startswith("callout:"):
        url = url.split("/", 1)[1] if "/" in url else ""
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", url):
        if not url.startswith(base.rstrip("/")):
            raise MetadataError(f"{url} is outside its named credential's endpoint {base}")
        return url
    return base.rstrip("/") + "/" + url.lstrip("/")


def adapter_class(source: DataSource, project_dir: Path) -> type[DataSourceConnection]:
    """The class a python source names, from ``<project>/adapters/<module>.py`` or an importable module."""
    assert source.adapter is not None
    module_name, _, class_name = source.adapter.partition(":")
    path = project_dir / "adapters" / f"{module_name}.py"
    try:
        if path.is_file():
            qualified = f"interlink_project_adapters.{module_name}"
            spec = importlib.util.spec_from_file_location(qualified, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[qualified] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except Exception as exc:  # the user's code: report, don't crash the org
        raise MetadataError(f"{source.source_file}: adapter: {source.adapter} does not load: "
                            f"{type(exc).__name__}: {exc}") from None
    found = getattr(module, class_name, None)
    if not (isinstance(found, type) and issubclass(found, DataSourceConnection)):
        raise MetadataError(f"{source.source_file}: adapter: {source.adapter} is not a DataSourceConnection class")
    return found


__all__ = ["MAX_PAGE_SIZE", "TYPES", "adapter_class", "load_sources", "parse_source", "source_credential"]
