"""Named org connections: ``<project>/pipelines/connections.yaml``, and the connection a pipeline step names.

:func:`resolve_connections` reads the file (a mapping of name -> ``{url, auth, caBundle, grpc, apiVersion, orgId}``,
secrets as ``${ENV_VAR}`` references) into :class:`~interlink.middleware.orgapi.OrgConnection`\\ s, adding the running
local org as ``local`` (and ``default``); :func:`connection_for` finds the connection a step's ``connection:`` key
names in its build context, :func:`require_connection` refuses to run a step built only for validation, and
:func:`config_error` reports a bad step key. Nothing connects until first used.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from interlink.middleware.base import PipelineSpecError
from interlink.middleware.orgapi import API_VERSION, OrgConnection
from interlink.middleware.orgauth import SECRET_KEYS, auth_from_config

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand(value: Any, env: Mapping[str, str], where: str) -> Any:
    if isinstance(value, str):
        def lookup(match: re.Match[str]) -> str:
            if match.group(1) not in env:
                raise PipelineSpecError(f"{where}: the environment variable {match.group(1)} is not set")
            return env[match.group(1)]

        return _ENV_REF.sub(lookup, value)
    if isinstance(value, Mapping):
        return {key: _expand(item, env, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, list):
        return [_expand(item, env, where) for item in value]
    return value


def connection_from_config(name: str, config: Mapping[str, Any], env: Mapping[str, str] | None = None
                           ) -> OrgConnection:
    """One connection from its ``connections.yaml`` entry; secrets must be ``${ENV_VAR}`` references."""
    where = f"connections.yaml: {name}"
    if not isinstance(config, Mapping) or not config.get("url"):
        raise PipelineSpecError(f"{where}: needs url (and auth)")
    auth_config = config.get("auth") or {}
    if not isinstance(auth_config, Mapping):
        raise PipelineSpecError(f"{where}.auth: a mapping with type and its settings")
    for key in SECRET_KEYS:
        raw = auth_config.get(key)
        if raw not in (None, "") and not (isinstance(raw, str) and _ENV_REF.fullmatch(raw.strip())):
            raise PipelineSpecError(f"{where}.auth.{key}: secrets never go in files: write ${{ENV_VAR}} and "
                                     "set the variable in the environment")
    expanded = _expand(dict(config), os.environ if env is None else env, where)
    return OrgConnection(str(expanded["url"]), auth=auth_from_config(expanded.get("auth") or {}, f"{where}.auth"),
                         ca_bundle=expanded.get("caBundle"), api_version=str(expanded.get("apiVersion", API_VERSION)),
                         grpc_target=expanded.get("grpc"), org_id=expanded.get("orgId"), name=name)


def resolve_connections(source: Any, *, local: OrgConnection | None = None,
                        env: Mapping[str, str] | None = None) -> dict[str, OrgConnection]:
    """Named connections from ``<project>/pipelines/connections.yaml``.

    ``source`` is the settings (their ``project_dir``), the file's path, or its parsed content (a mapping of
    name -> ``{url, auth, caBundle, grpc, apiVersion, orgId}``, optionally under a ``connections:`` key). ``local``
    (the running local org, built by the CLI with :meth:`OrgConnection.from_server_file`) is added as ``local``,
    and as ``default`` when the file declares no ``default``. Nothing connects until first used.
    """
    import yaml

    content: Any
    if isinstance(source, Mapping):
        content = source
    else:
        path = Path(source) if isinstance(source, (str, Path)) else \
            Path(source.project_dir) / "pipelines" / "connections.yaml"
        try:
            content = yaml.safe_load(path.read_text()) if path.is_file() else {}
        except yaml.YAMLError as exc:
            raise PipelineSpecError(f"{path}: not valid YAML: {exc}") from None
    content = content or {}
    if isinstance(content, Mapping) and isinstance(content.get("connections"), Mapping):
        content = content["connections"]
    if not isinstance(content, Mapping):
        raise PipelineSpecError("connections.yaml: a mapping of connection name -> {url, auth, ...}")
    connections = {str(name): connection_from_config(str(name), config, env) for name, config in content.items()}
    if local is not None:
        connections.setdefault("local", local)
        connections.setdefault("default", local)
    return connections


def config_error(message: str, key: str | None = None) -> PipelineSpecError:
    """A step configuration error about ``key`` (the pipeline builder adds the file and line)."""
    return PipelineSpecError(message, key=tuple(key.split(".")) if key else ())


def connection_for(config: Mapping[str, Any], context: Any, kind: str) -> OrgConnection | None:
    """The org connection a step's ``connection:`` names (default ``default``) in ``context.connections``; a raw
    ``{url, auth, ...}`` mapping there is built on the spot. None only while the pipeline is merely validated
    (``context.validating``) and the connection is not available."""
    name = str(config.get("connection") or "default")
    connections = getattr(context, "connections", None) or {}
    if name not in connections:
        if getattr(context, "validating", False):
            return None
        known = ", ".join(sorted(connections)) or "none"
        raise config_error(f"{kind}: no org connection named {name!r} (declared: {known}); declare it in "
                           "pipelines/connections.yaml, or run next to a running `interlink up`", "connection")
    found = connections[name]
    if isinstance(found, OrgConnection):
        return found
    if isinstance(found, Mapping):
        return connection_from_config(name, found)
    raise config_error(f"{kind}: connection {name!r} is not an org connection ({{url, auth}})", "connection")


def require_connection(connection: OrgConnection | None, kind: str) -> OrgConnection:
    """``connection``, or a clear error when a step built only for validation is used."""
    if connection is None:
        raise PipelineSpecError(f"{kind}: built without its org connection (validation only); it cannot run")
    return connection


__all__ = [
    "config_error",
    "connection_for",
    "connection_from_config",
    "require_connection",
    "resolve_connections",
]
