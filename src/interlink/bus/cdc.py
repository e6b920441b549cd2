"""Change Data Capture: turn one transaction's committed record changes into change events.

Every change of an object that is a member of a change-event channel becomes one event per channel,
with the platform's ChangeEventHeader. Changes in one transaction share a ``transactionKey`` and number
``sequenceNumber`` from 1. Consecutive changes of the same object with identical content (a mass update
setting one field, a cascade of deletes) merge into one event listing several ``recordIds``. Past
``overflow_threshold`` changes in one transaction, the rest are summarised as header-only
``GAP_OVERFLOW`` events, one per object and change type.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from interlink.bus import avro
from interlink.bus.channels import ChannelDirectory, Member
from interlink.bus.model import NewEvent, change_event_name
from interlink.metadata.model import FieldDef, ObjectDef

CHANGE_TYPES = {"insert": "CREATE", "update": "UPDATE", "delete": "DELETE", "undelete": "UNDELETE"}
GAP_TYPES = {"insert": "GAP_CREATE", "update": "GAP_UPDATE", "delete": "GAP_DELETE"}
_NOT_REPORTED = frozenset({"SystemModstamp", "IsDeleted", "Id"})


@dataclass
class RecordChange:
    """One committed change, as the records layer describes it."""

    operation: str  # insert | update | delete | undelete
    obj: ObjectDef
    record_id: str
    values: dict[str, Any]  # the record after the change (before it, for deletes)
    changed_fields: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Origin:
    user_id: str
    change_origin: str  # com/salesforce/api/rest/66.0;client=x, or "" for internal changes


class CommitNumbers:
    """Increasing commit numbers (the header's diagnostic SCN), unique within the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0

    def next(self) -> int:
        with self._lock:
            self._last = max(self._last + 1, time.time_ns() // 1000)
            return self._last


def change_origin(api_version: str, client: str, *, internal: bool, api: str = "rest") -> str:
    if internal:
        return ""
    origin = f"com/salesforce/api/{api}/{api_version}"
    return f"{origin};client={client}" if client else origin


class ChangeEventBuilder:
    """Builds the change events of a transaction (pure apart from schema registration)."""

    def __init__(self, channels: ChannelDirectory, registry: avro.SchemaRegistry, *,
                 overflow_threshold: int = 100_000) -> None:
        self.channels = channels
        self.registry = registry
        self.overflow_threshold = overflow_threshold
        self.commit_numbers = CommitNumbers()
        self._plans: dict[tuple[str, int], _Plan] = {}

    def schema_for(self, obj: ObjectDef, topic: str) -> tuple[str, Any, list[str]]:
        """(schema id, parsed schema, body field names) of ``obj``'s change event."""
        plan = self._plan(obj, topic)
        return plan.schema_id, plan.parsed, plan.names

    def _plan(self, obj: ObjectDef, topic: str) -> _Plan:
        key = (obj.name, id(obj))
        plan = self._plans.get(key)
        if plan is None or plan.obj is not obj:
            schema = avro.change_schema(obj, change_event_name(obj.name))
            schema_id = self.registry.register(topic, obj, schema)
            fields = avro.change_body_fields(obj)
            plan = _Plan(obj, schema_id, self.registry.parsed(schema_id), [f.name for f in fields], fields,
                         {f.name: index + 1 for index, f in enumerate(fields)})
            self._plans[key] = plan
        return plan

    def build(self, changes: Sequence[RecordChange], origin: Origin) -> list[NewEvent]:
        """The events for one committed transaction, in commit order."""
        if not changes:
            return []
        now_ms = int(time.time() * 1000)
        commit_number = self.commit_numbers.next()
        transaction_key = str(uuid.uuid4())
        sequence = itertools.count(1)
        events: list[NewEvent] = []
        normal = changes[:self.overflow_threshold]
        for change_group in _merge(normal):
            first = change_group[0]
            for member in self.channels.members_for(first.obj.name):
                matching = [c for c in change_group if member.matches(c.values)]
                # Enriched values differ per record, so such members get one event per record.
                for batch in ([matching] if not member.enriched_fields else [[c] for c in matching]):
                    if batch:
                        events.append(self._event(member, batch, origin, transaction_key, next(sequence),
                                                  now_ms, commit_number))
        overflow: dict[tuple[str, str], RecordChange] = {}
        for change in changes[self.overflow_threshold:]:
            overflow.setdefault((change.obj.name, change.operation), change)
        for change in overflow.values():
            for member in self.channels.members_for(change.obj.name):
                events.append(self._event(member, [change], origin, transaction_key, next(sequence), now_ms,
                                          commit_number, change_type="GAP_OVERFLOW"))
        return events

    def build_gaps(self, groups: Sequence[tuple[ObjectDef, str, list[str]]]) -> list[NewEvent]:
        """Header-only GAP events for changes made outside the write path: (object, operation, record ids) each.

        Filters cannot be evaluated without the values, so every channel the object belongs to gets them.
        """
        events: list[NewEvent] = []
        if not groups:
            return events
        now_ms = int(time.time() * 1000)
        commit_number = self.commit_numbers.next()
        transaction_key = str(uuid.uuid4())
        sequence = itertools.count(1)
        origin = Origin("", "")
        for obj, operation, record_ids in groups:
            for member in self.channels.members_for(obj.name):
                for start in range(0, len(record_ids), 100):
                    chunk = [RecordChange(operation, obj, r, {}) for r in record_ids[start:start + 100]]
                    events.append(self._event(member, chunk, origin, transaction_key, next(sequence), now_ms,
                                              commit_number, change_type=GAP_TYPES[operation]))
        return events

    def _event(self, member: Member, group: list[RecordChange], origin: Origin, transaction_key: str,
               sequence_number: int, now_ms: int, commit_number: int, *, change_type: str | None = None) -> NewEvent:
        first = group[0]
        obj = first.obj
        topic = member.topic
        plan = self._plan(obj, topic)
        schema_id, parsed, body_fields, positions = plan.schema_id, plan.parsed, plan.names, plan.positions
        change_type = change_type or CHANGE_TYPES[first.operation]
        body: dict[str, Any] = dict.fromkeys(body_fields)
        changed: list[str] = []
        nulled: list[str] = []
        if change_type in ("CREATE", "UNDELETE"):
            values = first.values
            for fdef in plan.fields:
                value = values.get(fdef.name)
                if value is not None:
                    body[fdef.name] = avro.to_avro_value(fdef, value)
        elif change_type == "UPDATE":
            changed = [f for f in first.changed_fields if f in positions]
            nulled = [f for f in changed if first.values.get(f) is None]
            for name in {*changed, *member.enriched_fields}:
                if name in positions:
                    body[name] = avro.to_avro_value(obj.field(name), first.values.get(name))  # type: ignore[arg-type]
        header = {
            "entityName": obj.name,
            "recordIds": [] if change_type == "GAP_OVERFLOW" else [c.record_id for c in group],
            "changeType": change_type,
            "changeOrigin": origin.change_origin,
            "transactionKey": transaction_key,
            "sequenceNumber": sequence_number,
            "commitTimestamp": now_ms,
            "commitNumber": commit_number,
            "commitUser": origin.user_id,
            "nulledFields": [avro.field_bitmap(positions[f] for f in nulled)] if nulled else [],
            "diffFields": [],
            "changedFields": [avro.field_bitmap(positions[f] for f in changed)] if changed else [],
        }
        if change_type.startswith("GAP_"):
            body = dict.fromkeys(body_fields)
        body["ChangeEventHeader"] = header
        return NewEvent(topic, str(uuid.uuid4()), schema_id, avro.encode(parsed, body), now_ms)


@dataclass(frozen=True)
class _Plan:
    """What encoding one object's change events needs, worked out once per definition (which it keeps alive,
    so the id it is cached under cannot be reused by a newer definition)."""

    obj: ObjectDef
    schema_id: str
    parsed: Any
    names: list[str]
    fields: list[FieldDef]
    positions: dict[str, int]


def _merge(changes: Sequence[RecordChange]) -> list[list[RecordChange]]:
    """Group consecutive changes of one object whose events would be identical but for the record id."""
    groups: list[list[RecordChange]] = []
    for change in changes:
        if groups and _same_content(groups[-1][0], change):
            groups[-1].append(change)
        else:
            groups.append([change])
    return groups


def _same_content(left: RecordChange, right: RecordChange) -> bool:
    if left.obj is not right.obj or left.operation != right.operation:
        return False
    if left.operation == "delete":
        return True
    if left.operation != "update" or left.changed_fields != right.changed_fields:
        return False
    return all(left.values.get(f) == right.values.get(f) for f in left.changed_fields if f not in _NOT_REPORTED)
