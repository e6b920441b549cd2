"""Sinks: where a pipeline's messages end up.

Each connector lives in its own module and exposes a factory ``make_<kind>_sink(config, context)``:

======== ==============================================================
``http`` POST / PUT / PATCH JSON to a URL template
``sql``  upsert into a table by key columns (SQLite, PostgreSQL)
``files`` JSONL or CSV files, written then atomically renamed
``nats`` JetStream publish with ``Nats-Msg-Id`` de-duplication
======== ==============================================================

:func:`register_all` registers them with the pipeline registry; the modules are imported only when a pipeline
uses them.
"""

from __future__ import annotations

from typing import Any

from interlink.middleware.sources import lazy_factory

#: sink kind -> (module, factory function)
CONNECTORS: dict[str, tuple[str, str]] = {
    "http": ("interlink.middleware.sinks.http", "make_http_sink"),
    "sql": ("interlink.middleware.sinks.sql", "make_sql_sink"),
    "files": ("interlink.middleware.sinks.files", "make_files_sink"),
    "nats": ("interlink.middleware.sinks.nats", "make_nats_sink"),
}


#: sink kind -> the configuration keys it accepts (the registry refuses others, naming the key)
KEYS: dict[str, frozenset[str]] = {
    "http": frozenset({"connection", "url", "method", "headers", "timeout", "idempotencyHeader", "verify"}),
    "sql": frozenset({"connection", "url", "table", "schema", "keys", "key", "columns"}),
    "files": frozenset({"folder", "format", "prefix", "rotateBytes", "columns", "fsync", "encoding"}),
    "nats": frozenset({"connection", "url", "servers", "user", "password", "token", "credentials",
                       "connectTimeout", "connectAttempts", "reconnectWait", "maxReconnectAttempts", "subject",
                       "stream", "createStream", "streamSubjects", "maxAge", "duplicateWindow", "storage",
                       "timeout", "forwardHeaders"}),
}


def register_all(registry: Any) -> None:
    """Register every sink connector of this package with ``registry`` (a module or object that has
    ``register_sink(kind, factory)``, such as ``interlink.middleware.spec``)."""
    for kind, (module, function) in CONNECTORS.items():
        registry.register_sink(kind, lazy_factory(module, function), keys=KEYS[kind])


__all__ = ["CONNECTORS", "KEYS", "register_all"]
