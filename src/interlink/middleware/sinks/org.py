"""Org sinks: write messages to an org over its wire APIs.

- ``org.upsert``: upsert by an external id; a batch of ``bulkThreshold`` (default 2000) records or more goes
  through one Bulk API 2.0 ingest job, a smaller one through sObject Collections (200 records a call);
- ``org.publish``: publish each body as a platform event (``POST /sobjects/{Event__e}``, collections for batches);
- ``org.create`` / ``org.update``: sObject Collections create, and update by record Id.

Every message gets its own :class:`~interlink.middleware.base.Delivery`: a record the org rejected (validation,
a bad value) is a permanent failure that goes to the dead letters; a row lock, a request limit, a 5xx, a timeout
or a network failure is retryable. The message body is the record: ``attributes`` and ``ChangeEventHeader``
are never sent, and ``fields`` (an allow-list) keeps only the named fields.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from interlink.middleware.base import Delivery, Message, PermanentError, RetryableError, Sink
from interlink.middleware.orgapi import (
    OrgConnection,
    OrgRejected,
    RecordResult,
    config_error,
    connection_for,
    require_connection,
)

log = logging.getLogger(__name__)

BULK_THRESHOLD = 2000
NEVER_SENT = frozenset({"attributes", "ChangeEventHeader"})
EVENT_SYSTEM_FIELDS = frozenset({"CreatedDate", "CreatedById", "EventUuid", "ReplayId"})  # set by the org


def _delivery(result: RecordResult) -> Delivery:
    if result.success:
        return Delivery(detail={"id": result.id, "created": result.created})
    return Delivery(error=result.error, retryable=result.retryable,
                    detail={"id": result.id, "errors": result.errors})


class OrgSink(Sink):
    """The shared part of the org sinks: project each body to a record, send the batch, one Delivery each."""

    name = "org"

    def __init__(self, connection: OrgConnection | None, object_name: str, *,
                 fields: Sequence[str] | None = None) -> None:
        self.connection = connection
        self.object_name = object_name
        self.fields = list(fields) if fields else None
        self.dropped: frozenset[str] = NEVER_SENT

    def record(self, message: Message) -> dict[str, Any]:
        """The record a message's body stands for (raises PermanentError when it cannot be one)."""
        body = message.body
        if not isinstance(body, Mapping):
            raise OrgRejected(f"{self.name}: the message body is not a record: {body!r:.100}")
        if self.fields is not None:
            return {key: body[key] for key in self.fields if key in body}
        return {key: value for key, value in body.items() if key not in self.dropped}

    def send(self, connection: OrgConnection, records: list[dict[str, Any]]) -> list[RecordResult]:
        raise NotImplementedError

    def write(self, messages: Sequence[Message]) -> list[Delivery]:
        """One Delivery per message, in order; a call that failed as a whole fails every message it carried."""
        connection = require_connection(self.connection, self.name)
        deliveries: list[Delivery | None] = [None] * len(messages)
        records, positions = [], []
        failed = Delivery(error="not sent", retryable=True)
        for position, message in enumerate(messages):
            try:
                records.append(self.record(message))
                positions.append(position)
            except PermanentError as error:
                deliveries[position] = Delivery(error=str(error), retryable=False)
        if records:
            results: Sequence[RecordResult | None]
            try:
                results = self.send(connection, records)
            except (RetryableError, PermanentError) as error:
                failed = Delivery(error=str(error), retryable=isinstance(error, RetryableError))
                results = [None] * len(records)
            for position, result in zip(positions, results, strict=True):
                deliveries[position] = failed if result is None else _delivery(result)
        return [d if d is not None else failed for d in deliveries]


class OrgUpsertSink(OrgSink):
    """Upsert by ``external_id``: Bulk API 2.0 for ``bulk_threshold`` records or more, else Collections."""

    name = "org.upsert"

    def __init__(self, connection: OrgConnection | None, object_name: str, external_id: str, *,
                 bulk_threshold: int = BULK_THRESHOLD, fields: Sequence[str] | None = None) -> None:
        super().__init__(connection, object_name, fields=fields)
        self.external_id = external_id
        self.bulk_threshold = bulk_threshold
        if self.fields is not None and external_id not in self.fields:
            self.fields.append(external_id)
        self.bulk_jobs = 0  # how many batches went through Bulk API 2.0 (for reports and tests)

    def record(self, message: Message) -> dict[str, Any]:
        record = super().record(message)
        if record.get(self.external_id) in (None, ""):
            raise OrgRejected(f"org.upsert {self.object_name}: the message has no {self.external_id} "
                              "(the external id) to upsert by", error_code="REQUIRED_FIELD_MISSING")
        return record

    def send(self, connection: OrgConnection, records: list[dict[str, Any]]) -> list[RecordResult]:
        if len(records) >= self.bulk_threshold:
            self.bulk_jobs += 1
            log.info("org.upsert %s: %d records through Bulk API 2.0", self.object_name, len(records))
            return connection.bulk_upsert(self.object_name, self.external_id, records)
        return connection.upsert(self.object_name, self.external_id, records)


class OrgPublishSink(OrgSink):
    """Publish each body as a platform event (the org sets CreatedDate, CreatedById, EventUuid, ReplayId)."""

    name = "org.publish"

    def __init__(self, connection: OrgConnection | None, event: str, *, fields: Sequence[str] | None = None) -> None:
        super().__init__(connection, event, fields=fields)
        self.dropped = NEVER_SENT | EVENT_SYSTEM_FIELDS

    def send(self, connection: OrgConnection, records: list[dict[str, Any]]) -> list[RecordResult]:
        return connection.publish(self.object_name, records)


class OrgCreateSink(OrgSink):
    """Create records through sObject Collections."""

    name = "org.create"

    def send(self, connection: OrgConnection, records: list[dict[str, Any]]) -> list[RecordResult]:
        return connection.save("create", self.object_name, records)


class OrgUpdateSink(OrgSink):
    """Update records by Id (taken from ``id_field`` of the body) through sObject Collections."""

    name = "org.update"

    def __init__(self, connection: OrgConnection | None, object_name: str, *, id_field: str = "Id",
                 fields: Sequence[str] | None = None) -> None:
        super().__init__(connection, object_name, fields=fields)
        self.id_field = id_field
        if self.fields is not None and id_field not in self.fields:
            self.fields.append(id_field)

    def record(self, message: Message) -> dict[str, Any]:
        record = super().record(message)
        record_id = record.pop(self.id_field, None)
        if not record_id:
            raise OrgRejected(f"org.update {self.object_name}: the message has no {self.id_field} (the record Id)",
                              error_code="MISSING_ARGUMENT")
        return {"Id": record_id, **record}

    def send(self, connection: OrgConnection, records: list[dict[str, Any]]) -> list[RecordResult]:
        return connection.save("update", self.object_name, records)


# -- factories -----------------------------------------------------------------------------------------------------


def _text(config: Mapping[str, Any], key: str, kind: str) -> str:
    value = config.get(key)
    if not value or not isinstance(value, str):
        raise config_error(f"{kind}: {key} is required", key)
    return value


def _fields(config: Mapping[str, Any], kind: str) -> list[str] | None:
    fields = config.get("fields")
    if fields is None:
        return None
    if not isinstance(fields, list) or not all(isinstance(f, str) and f for f in fields):
        raise config_error(f"{kind}: fields is a list of field names", "fields")
    return fields


def make_upsert_sink(config: dict[str, Any], context: Any) -> OrgUpsertSink:
    """``org.upsert``: {connection, object, externalId, bulkThreshold (default 2000), fields}."""
    threshold = config.get("bulkThreshold", BULK_THRESHOLD)
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
        raise config_error(f"org.upsert: bulkThreshold is a whole number of records, not {threshold!r}",
                           "bulkThreshold")
    return OrgUpsertSink(connection_for(config, context, "org.upsert"), _text(config, "object", "org.upsert"),
                         _text(config, "externalId", "org.upsert"), bulk_threshold=threshold,
                         fields=_fields(config, "org.upsert"))


def make_publish_sink(config: dict[str, Any], context: Any) -> OrgPublishSink:
    """``org.publish``: {connection, event (Name__e), fields}."""
    return OrgPublishSink(connection_for(config, context, "org.publish"), _text(config, "event", "org.publish"),
                          fields=_fields(config, "org.publish"))


def make_create_sink(config: dict[str, Any], context: Any) -> OrgCreateSink:
    """``org.create``: {connection, object, fields}."""
    return OrgCreateSink(connection_for(config, context, "org.create"), _text(config, "object", "org.create"),
                         fields=_fields(config, "org.create"))


def make_update_sink(config: dict[str, Any], context: Any) -> OrgUpdateSink:
    """``org.update``: {connection, object, idField (default Id), fields}."""
    return OrgUpdateSink(connection_for(config, context, "org.update"), _text(config, "object", "org.update"),
                         id_field=str(config.get("idField") or "Id"), fields=_fields(config, "org.update"))


SINKS = {
    "org.upsert": (make_upsert_sink, ("connection", "object", "externalId", "bulkThreshold", "fields"),
                   "upsert records by external id (Bulk API 2.0 for big batches)"),
    "org.publish": (make_publish_sink, ("connection", "event", "fields"), "publish platform events"),
    "org.create": (make_create_sink, ("connection", "object", "fields"), "create records"),
    "org.update": (make_update_sink, ("connection", "object", "idField", "fields"), "update records by Id"),
}


def register(registry: Any = None) -> None:
    """Register the org sinks with the pipeline registry (:mod:`interlink.middleware.spec` by default)."""
    if registry is None:
        from interlink.middleware import spec as registry
    for kind, (factory, keys, help_text) in SINKS.items():
        registry.register_sink(kind, factory, keys=keys, help=help_text, replace=True)


try:
    register()
except Exception as exc:  # the registry belongs to another module: a mismatch must not break importing this one
    log.warning("the org sinks are not registered with the pipeline registry: %s", exc)


__all__ = ["OrgCreateSink", "OrgPublishSink", "OrgSink", "OrgUpdateSink", "OrgUpsertSink", "make_create_sink",
           "make_publish_sink", "make_update_sink", "make_upsert_sink", "register"]
