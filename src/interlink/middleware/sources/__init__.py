"""Sources: where a pipeline's messages come from.

Each connector lives in its own module and exposes a factory ``make_<kind>_source(config, context)``:

========== ===========================================================
``webhook`` JSON POSTs to a local HTTP endpoint, HMAC-verified, spooled
``sql``     rows of a table or query past a (watermark, id) cursor
``files``   rows of CSV / JSON / JSONL files matching a glob
``nats``    a NATS JetStream durable pull consumer
``schedule`` cron ticks
========== ===========================================================

:func:`register_all` registers them with the pipeline registry; the modules are imported only when a pipeline
uses them, so a pipeline without NATS never imports nats-py. The small helpers below (``${ENV}`` expansion,
named connections, the state folder, required keys) are shared by the source and sink connectors.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from interlink.middleware.base import PipelineSpecError

#: source kind -> (module, factory function)
CONNECTORS: dict[str, tuple[str, str]] = {
    "webhook": ("interlink.middleware.sources.webhook", "make_webhook_source"),
    "sql": ("interlink.middleware.sources.sql", "make_sql_source"),
    "files": ("interlink.middleware.sources.files", "make_files_source"),
    "nats": ("interlink.middleware.sources.nats", "make_nats_source"),
    "schedule": ("interlink.middleware.sources.schedule", "make_schedule_source"),
}


#: source kind -> the configuration keys it accepts (the registry refuses others, naming the key)
KEYS: dict[str, frozenset[str]] = {
    "webhook": frozenset({"host", "port", "path", "secret", "allowUnsigned", "signatureHeader", "algorithm",
                          "signaturePrefix", "timestampHeader", "tolerance", "deliveryIdHeader", "dedupeWindow",
                          "maxBodyBytes", "spool"}),
    "sql": frozenset({"connection", "url", "table", "query", "schema", "watermark", "id", "batchSize", "overlap",
                      "start"}),
    "files": frozenset({"folder", "pattern", "format", "after", "processedFolder", "encoding", "delimiter"}),
    "nats": frozenset({"connection", "url", "servers", "user", "password", "token", "credentials",
                       "connectTimeout", "connectAttempts", "reconnectWait", "maxReconnectAttempts", "stream",
                       "subject", "durable", "createStream", "streamSubjects", "maxAge", "duplicateWindow",
                       "storage", "ackWait", "maxDeliver", "deliverPolicy"}),
    "schedule": frozenset({"cron", "timezone", "catchUp"}),
}


def lazy_factory(module: str, function: str) -> Callable[[dict[str, Any], Any], Any]:
    """A factory that imports ``module`` on its first call and calls ``function(config, context)``."""

    def factory(config: dict[str, Any], context: Any) -> Any:
        return getattr(importlib.import_module(module), function)(config, context)

    factory.__name__ = function
    factory.__qualname__ = function
    return factory


_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_env(value: Any, *, where: str = "config") -> Any:
    """Replace each ``${NAME}`` in a string with the environment variable ``NAME`` (other values unchanged).

    A missing variable is a :class:`PipelineSpecError` naming it, never an empty secret.
    """
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise PipelineSpecError(f"{where}: environment variable {name} is not set")
        return os.environ[name]

    return _ENV_REFERENCE.sub(replace, value)


def with_connection(config: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """``config`` merged over the named connection it refers to (``connection: NAME``), if any.

    A connection is either a URL string (it becomes ``url``) or a mapping of keys (``url``, ``headers`` ...);
    the step's own keys win.
    """
    merged: dict[str, Any] = {}
    name = config.get("connection")
    if name:
        connections = getattr(context, "connections", None) or {}
        if name not in connections:
            raise PipelineSpecError(f"connection {name!r} is not defined")
        found = connections[name]
        if isinstance(found, str):
            merged["url"] = found
        elif isinstance(found, Mapping):
            merged.update(found)
        else:
            merged.update({key: value for key, value in vars(found).items() if not key.startswith("_")})
    merged.update(config)
    return merged


def config_error(message: str, key: str) -> PipelineSpecError:
    """A configuration error about ``key``; the pipeline builder adds the file, line and step path."""
    return PipelineSpecError(message, key=(key,))


def require(config: Mapping[str, Any], key: str, kind: str) -> Any:
    """``config[key]``, or a :class:`PipelineSpecError` saying the ``kind`` connector needs it."""
    value = config.get(key)
    if value is None or value == "":
        raise config_error(f"{kind}: the {key!r} setting is required", key)
    return value


def duration(config: Mapping[str, Any], key: str, default: float | None) -> float | None:
    """``config[key]`` in seconds: a number or text such as ``500ms``, ``30s``, ``5m``, ``2h``; ``default`` if
    unset."""
    from interlink.middleware.spec import parse_duration

    value = config.get(key)
    if value is None or value == "":
        return default
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise config_error(str(exc), key) from None


def state_dir(context: Any) -> Path:
    """The folder where connectors keep local state (spools): the context's data dir, else
    ``<project>/.interlink/middleware``, else ``./.interlink/middleware``."""
    data_dir = getattr(context, "data_dir", None)
    if data_dir:
        return Path(data_dir) / "middleware"
    project_dir = getattr(context, "project_dir", None)
    return Path(project_dir or ".") / ".interlink" / "middleware"


def sqlalchemy_url(url: str) -> str:
    """A database URL as SQLAlchemy wants it: ``postgresql://`` means the psycopg 3 driver."""
    url = expand_env(url, where="url")
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def register_all(registry: Any) -> None:
    """Register every source connector of this package with ``registry`` (a module or object that has
    ``register_source(kind, factory)``, such as ``interlink.middleware.spec``)."""
    for kind, (module, function) in CONNECTORS.items():
        registry.register_source(kind, lazy_factory(module, function), keys=KEYS[kind])


__all__ = ["CONNECTORS", "KEYS", "config_error", "duration", "expand_env", "lazy_factory", "register_all", "require",
           "sqlalchemy_url", "state_dir", "with_connection"]
