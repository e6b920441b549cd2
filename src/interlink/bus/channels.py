"""Which objects' changes go where: the ChangeEvents channel and custom ``__chn`` channels.

Membership lives in the store (``il_channel_member``), written by two sources: the deployed metadata
(``changeDataCapture: true`` on an object, ``metadata/channels/*.yaml``) and people (``interlink cdc
enable``). A deploy replaces the metadata rows and leaves the hand-made ones alone.

A member may carry a filter (a SOQL condition such as ``Amount > 10000 AND StageName = 'Closed Won'``),
evaluated against the record's values after the change (before it, for deletes), and enriched fields,
whose values every update event carries even when they did not change.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, select

from interlink.bus.model import change_event_topic
from interlink.errors import MetadataError
from interlink.metadata.model import Schema
from interlink.soql import ast
from interlink.soql.memory import check_condition_fields, evaluate, parse_condition
from interlink.store.change_log import sync_triggers
from interlink.store.database import Store

CHANGE_EVENTS = "ChangeEvents"
_CHANNEL_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*__chn$")


@dataclass(frozen=True)
class Member:
    channel: str
    entity: str
    filter: str | None = None
    enriched_fields: tuple[str, ...] = ()
    source: str = "metadata"
    condition: ast.Condition | None = field(default=None, compare=False, repr=False)

    @property
    def topic(self) -> str:
        return change_event_topic(self.entity) if self.channel == CHANGE_EVENTS else f"/data/{self.channel}"

    def matches(self, values: Mapping[str, Any]) -> bool:
        return self.condition is None or evaluate(self.condition, values)


def member_from_spec(channel: str, raw: Any, schema: Schema, source: str, *, origin: str = "metadata") -> Member:
    """One member of a channel file (an object name, or ``{entity, filter, enrichedFields}``), validated.

    ``source`` names the file for error messages; ``origin`` is who declared it (``metadata`` or ``cli``).
    """
    if isinstance(raw, str):
        raw = {"entity": raw}
    if not isinstance(raw, Mapping) or not isinstance(raw.get("entity"), str):
        raise MetadataError(f"{source}: a channel member is an object name or {{entity, filter, enrichedFields}}")
    unknown = set(raw) - {"entity", "filter", "enrichedFields"}
    if unknown:
        raise MetadataError(f"{source}: unknown key(s) {', '.join(sorted(unknown))} in a channel member")
    obj = schema.object(raw["entity"])
    if obj is None or not obj.is_stored or obj.history_of:  # history objects have no change events
        raise MetadataError(f"{source}: {raw['entity']} is not an object that can capture changes")
    enriched = raw.get("enrichedFields") or []
    if not isinstance(enriched, list) or any(not isinstance(f, str) or not obj.has_field(f) for f in enriched):
        raise MetadataError(f"{source}: enrichedFields must list fields of {obj.name}")
    expression = raw.get("filter")
    condition = None
    if expression is not None:
        if not isinstance(expression, str) or not expression.strip():
            raise MetadataError(f"{source}: filter must be a non-empty condition")
        condition = parse_condition(obj.name, expression)
        check_condition_fields(obj, condition, source)
    return Member(channel, obj.name, expression, tuple(obj.field(f).name for f in enriched),  # type: ignore[union-attr]
                  origin, condition)


# -- the directory -------------------------------------------------------------------------------------------


class ChannelDirectory:
    """Channel members from the store, cached briefly (another process may run ``interlink cdc``)."""

    def __init__(self, store: Store, *, refresh_seconds: float = 2.0) -> None:
        self._store = store
        self._refresh_seconds = refresh_seconds
        self._lock = threading.Lock()
        self._loaded_at = 0.0
        self._schema_version: object = None
        self._by_entity: dict[str, list[Member]] = {}
        self._channels: dict[str, list[Member]] = {}

    def members_for(self, entity: str) -> list[Member]:
        self._refresh()
        return self._by_entity.get(entity.lower(), [])

    def channel(self, name: str) -> list[Member] | None:
        """The members of a channel (ChangeEvents or X__chn), or None when no such channel exists."""
        self._refresh()
        return self._channels.get(name.lower())

    def channels(self) -> dict[str, list[Member]]:
        self._refresh()
        return dict(self._channels)

    def invalidate(self) -> None:
        self._loaded_at = 0.0

    def _refresh(self) -> None:
        schema = self._store.schema
        if time.monotonic() - self._loaded_at < self._refresh_seconds and self._schema_version is schema:
            return
        with self._lock:
            table = self._store.system["il_channel_member"]
            with self._store.read() as conn:
                rows = conn.execute(select(table)).all()
            by_entity: dict[str, list[Member]] = {}
            channels: dict[str, list[Member]] = {CHANGE_EVENTS.lower(): []}
            for row in rows:
                obj = schema.object(row.entity)
                if obj is None:
                    continue  # the object was dropped; its membership no longer means anything
                condition = parse_condition(obj.name, row.filter) if row.filter else None
                member = Member(row.channel, obj.name, row.filter, tuple(json.loads(row.enriched_json or "[]")),
                                row.source, condition)
                if any(m.channel == member.channel for m in by_entity.get(obj.name.lower(), [])):
                    continue  # declared both in metadata and by hand: one member
                by_entity.setdefault(obj.name.lower(), []).append(member)
                channels.setdefault(row.channel.lower(), []).append(member)
            self._by_entity, self._channels = by_entity, channels
            self._schema_version = schema
            self._loaded_at = time.monotonic()

    # -- changes -------------------------------------------------------------------------------------------

    def replace_metadata_members(self, members: list[Member]) -> None:
        """Make the metadata-declared rows exactly ``members`` (a deploy); hand-made rows stay."""
        table = self._store.system["il_channel_member"]
        with self._store.write() as conn:
            conn.execute(table.delete().where(table.c.source == "metadata"))
            manual = {(r.channel.lower(), r.entity.lower()) for r in conn.execute(select(table.c.channel,
                                                                                          table.c.entity))}
            rows = [_row(m) for m in members if (m.channel.lower(), m.entity.lower()) not in manual]
            if rows:
                conn.execute(table.insert(), rows)
        self.invalidate()
        self.sync_triggers()

    def enable(self, entity: str, channel: str = CHANGE_EVENTS, *, filter: str | None = None,
               enriched_fields: Iterable[str] = ()) -> Member:
        """Add (or redefine) a hand-made member; validated like metadata."""
        if channel != CHANGE_EVENTS and not _CHANNEL_NAME.match(channel):
            raise MetadataError(f"channel names are ChangeEvents or end in __chn: {channel}")
        if channel == CHANGE_EVENTS and filter:
            raise MetadataError("filters belong on custom channels (__chn), not on ChangeEvents")
        spec: dict[str, Any] = {"entity": entity, "enrichedFields": list(enriched_fields)}
        if filter:
            spec["filter"] = filter
        member = member_from_spec(channel, spec, self._store.schema, "interlink cdc", origin="cli")
        table = self._store.system["il_channel_member"]
        with self._store.write() as conn:
            conn.execute(table.delete().where(and_(table.c.channel == channel, table.c.entity == member.entity)))
            conn.execute(table.insert().values(**_row(member)))
        self.invalidate()
        self.sync_triggers()
        return member

    def disable(self, entity: str, channel: str = CHANGE_EVENTS) -> bool:
        """Remove a member, whatever declared it (a metadata member returns on the next deploy)."""
        obj = self._store.schema.object(entity)
        name = obj.name if obj is not None else entity
        table = self._store.system["il_channel_member"]
        with self._store.write() as conn:
            removed = conn.execute(table.delete().where(and_(table.c.channel == channel,
                                                             table.c.entity == name))).rowcount
        self.invalidate()
        self.sync_triggers()
        return bool(removed)

    def sync_triggers(self) -> None:
        """Log changes made outside the write path on exactly the member objects' tables (for GAP events)."""
        entities = {m.entity for members in self.channels().values() for m in members}
        sync_triggers(self._store, sorted(entities))

    def any_members(self) -> bool:
        self._refresh()
        return bool(self._by_entity)


def _row(member: Member) -> dict[str, Any]:
    return {"channel": member.channel, "entity": member.entity, "filter": member.filter,
            "enriched_json": json.dumps(list(member.enriched_fields)), "source": member.source}


def metadata_members(schema: Schema, channel_specs: list[tuple[str, Any, str]]) -> list[Member]:
    """Members declared by metadata: objects with ``changeDataCapture: true`` and channel files."""
    members = [Member(CHANGE_EVENTS, obj.name) for obj in schema if obj.change_data_capture and not obj.is_event]
    for name, spec, source in channel_specs:
        if name != CHANGE_EVENTS and not _CHANNEL_NAME.match(name):
            raise MetadataError(f"{source}: channel files are ChangeEvents.yaml or Name__chn.yaml")
        if not isinstance(spec, Mapping) or not isinstance(spec.get("members"), list):
            raise MetadataError(f"{source}: a channel file holds members: [...]")
        unknown = set(spec) - {"members", "label", "description"}
        if unknown:
            raise MetadataError(f"{source}: unknown key(s) {', '.join(sorted(unknown))}")
        for raw in spec["members"]:
            member = member_from_spec(name, raw, schema, source)
            if name == CHANGE_EVENTS and member.filter:
                raise MetadataError(f"{source}: filters belong on custom channels (__chn), not on ChangeEvents")
            members = [m for m in members if not (m.channel == name and m.entity == member.entity)]
            members.append(member)
    return members
