"""``org.query``: an org object's changed records, extracted by watermark over the REST query API.

The Batch Data Synchronization extract from the org side: every record whose ``SystemModstamp`` (or another
datetime field) moved since the last run, in ``(watermark, Id)`` order. The cursor is compound, so records that
share a timestamp are never skipped at a page boundary, and each page is its own query
(``WHERE (SystemModstamp > :w OR (SystemModstamp = :w AND Id > :id)) ORDER BY SystemModstamp, Id LIMIT n``), so a
restart resumes exactly after the last checkpointed record without holding a server-side cursor.

::

    source:
      type: org.query
      connection: default          # from pipelines/connections.yaml (the local org by default)
      object: Task
      fields: [Id, Subject, Status, ActivityDate, WhatId, OwnerId]
      where: "Status = 'Completed'"   # optional, and-ed with the cursor
      watermark: SystemModstamp       # a datetime field (default SystemModstamp)
      includeDeleted: true            # queryAll: deleted records come with IsDeleted = true
      start: 2026-01-01T00:00:00Z     # first run only (default: from the beginning)
      batch: 2000

Records that change during the extract move past the cursor and are read again in the same or the next run
(at-least-once); a record committed late with an older ``SystemModstamp`` than the cursor is the one case a
timestamp cursor cannot see, which is why ``SystemModstamp`` (set at commit by the org) is the default.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

from interlink.middleware.base import Message, PipelineSpecError, Source
from interlink.middleware.orgapi import OrgConnection, connection_for, require_connection

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*$")
_KEYS = {"type", "connection", "object", "fields", "where", "watermark", "includeDeleted", "start", "batch"}


def _soql_datetime(value: str) -> str:
    """A watermark (ISO text) as a SOQL datetime literal."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{moment.microsecond // 1000:03d}Z" if moment.microsecond else "Z")


class OrgQuerySource(Source):
    """Changed records of one object, oldest change first, resumable at any record."""

    name = "org.query"

    def __init__(self, connection: OrgConnection | None, *, object_name: str, fields: list[str],
                 where: str | None = None, watermark: str = "SystemModstamp", include_deleted: bool = False,
                 start: str | None = None, batch: int = 2000) -> None:
        self.connection = connection
        self.object_name = object_name
        self.watermark = watermark
        self.fields = list(dict.fromkeys(["Id", watermark, *fields, *(["IsDeleted"] if include_deleted else [])]))
        self.where = where
        self.include_deleted = include_deleted
        self.start = start
        self.batch = max(1, min(batch, 2000))
        self._cursor: tuple[str, str | None] | None = None
        self._empty_reads = 0

    def open(self, checkpoint: Any | None) -> None:
        if isinstance(checkpoint, dict) and checkpoint.get("watermark"):
            self._cursor = (str(checkpoint["watermark"]), checkpoint.get("id"))
        elif self.start:
            self._cursor = (self.start, None)
        self.exhausted = False

    def soql(self, limit: int) -> str:
        """The query for the next page after the cursor."""
        conditions = []
        if self._cursor is not None:
            watermark, record_id = _soql_datetime(self._cursor[0]), self._cursor[1]
            if record_id is None:
                conditions.append(f"{self.watermark} >= {watermark}")
            else:
                conditions.append(f"({self.watermark} > {watermark} OR ({self.watermark} = {watermark} AND "
                                  f"Id > '{record_id}'))")
        if self.where:
            conditions.append(f"({self.where})")
        text = f"SELECT {', '.join(self.fields)} FROM {self.object_name}"
        if conditions:
            text += " WHERE " + " AND ".join(conditions)
        return text + f" ORDER BY {self.watermark} ASC, Id ASC LIMIT {limit}"

    def read(self, max_messages: int, timeout: float) -> list[Message]:
        if self._empty_reads:  # polling an exhausted extract: do not spin
            time.sleep(min(max(timeout, 0.0), 1.0))
        limit = max(1, min(max_messages, self.batch))
        connection = require_connection(self.connection, "org.query")
        records = list(connection.query(self.soql(limit), include_deleted=self.include_deleted))
        if not records:
            self.exhausted = True
            self._empty_reads += 1
            return []
        self.exhausted = False
        self._empty_reads = 0
        messages = []
        for record in records:
            body = {k: v for k, v in record.items() if k != "attributes"}
            watermark, record_id = str(body.get(self.watermark)), str(body["Id"])
            self._cursor = (watermark, record_id)
            headers = {"object": self.object_name, "watermark": watermark,
                       "operation": "delete" if body.get("IsDeleted") else "upsert"}
            messages.append(Message(body=body, id=f"{record_id}@{watermark}", key=record_id, headers=headers,
                                    position={"watermark": watermark, "id": record_id}))
        return messages


def make_org_query_source(config: dict[str, Any], context: Any) -> OrgQuerySource:
    """Build the source from its pipeline config (see the module docstring)."""
    unknown = set(config) - _KEYS
    if unknown:
        raise PipelineSpecError(f"org.query source: unknown key(s) {', '.join(sorted(unknown))}")
    object_name = config.get("object")
    fields = config.get("fields") or []
    if not isinstance(object_name, str) or not _NAME.match(object_name):
        raise PipelineSpecError("org.query source: object: an object API name such as Task")
    if not isinstance(fields, list) or not all(isinstance(f, str) and _NAME.match(f) for f in fields):
        raise PipelineSpecError("org.query source: fields: a list of field names (relationship paths allowed)")
    watermark = str(config.get("watermark", "SystemModstamp"))
    if not _NAME.match(watermark):
        raise PipelineSpecError("org.query source: watermark: a datetime field name")
    start = config.get("start")
    if start is not None:
        try:
            _soql_datetime(str(start))
        except ValueError:
            raise PipelineSpecError(f"org.query source: start: an ISO datetime, not {start!r}") from None
    batch = config.get("batch", 2000)
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise PipelineSpecError("org.query source: batch: a whole number of at least 1")
    where = config.get("where")
    connection = connection_for(config, context, "org.query")
    return OrgQuerySource(connection, object_name=object_name, fields=fields,
                          where=str(where) if where else None, watermark=watermark,
                          include_deleted=bool(config.get("includeDeleted", False)),
                          start=str(start) if start is not None else None, batch=batch)


def register(registry: Any = None) -> None:
    """Register ``org.query`` with the pipeline registry (:mod:`interlink.middleware.spec` by default)."""
    if registry is None:
        from interlink.middleware import spec as registry
    registry.register_source("org.query", make_org_query_source, keys=_KEYS - {"type"}, replace=True,
                             help="an org object's changed records, by SystemModstamp watermark (REST query)")


register()

__all__ = ["OrgQuerySource", "make_org_query_source", "register"]
