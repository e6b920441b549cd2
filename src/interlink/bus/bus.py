"""``EventBus``: topics, publishing, replay positions and retention over one backend.

Surfaces (REST through the records layer, the Pub/Sub API, the CLI) never touch a backend directly:
they resolve a topic here, publish through here (allocation, size limits, server-set fields) and ask
here where a subscription starts (LATEST, EARLIEST, CUSTOM with its validation against retention).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from interlink.bus import avro
from interlink.bus.backend import BusBackend, Cursor
from interlink.bus.cdc import ChangeEventBuilder
from interlink.bus.channels import CHANGE_EVENTS, ChannelDirectory
from interlink.bus.model import (
    DATA,
    EVENT,
    NewEvent,
    Selector,
    StoredEvent,
    change_event_name,
    decode_replay_id,
    family_of,
    new_event_uuids,
    parse_topic,
)
from interlink.errors import (
    ConfigurationError,
    DmlError,
    InterlinkError,
    PubSubPermissionDenied,
    ReplayIdInvalid,
    SchemaNotFound,
    TopicNotFound,
)
from interlink.metadata.model import ObjectDef
from interlink.security.limits import ApiUsage, delivery_usage, event_usage
from interlink.store.database import Store

log = logging.getLogger(__name__)

MAX_EVENT_BYTES = 1_000_000  # 1 MB per event, as the platform allows
LATEST, EARLIEST, CUSTOM = 0, 1, 2  # ReplayPreset values on the wire


@dataclass(frozen=True)
class Topic:
    """A resolved channel: what it is, who may use it, and how to read it."""

    name: str
    selector: Selector
    can_publish: bool
    schema_id: str
    event_object: ObjectDef | None = None


@dataclass
class PublishOutcome:
    """The result of publishing one event: a replay id, or an error."""

    correlation_key: str
    replay_id: int | None = None
    error: str | None = None
    event_uuid: str | None = None


def open_backend(url: str, *, retention_seconds: float) -> BusBackend:
    """The backend for a bus URL: ``sqlite:///path/bus.db``, ``nats://host:port[?prefix=NAME]`` or ``memory://``."""
    scheme = urlparse(url).scheme
    if scheme == "memory":
        from interlink.bus.memory_log import MemoryLog

        return MemoryLog()
    if scheme == "sqlite":
        from interlink.bus.sqlite_log import SqliteLog

        return SqliteLog(Path(url.removeprefix("sqlite:///")))
    if scheme in ("nats", "tls"):
        from interlink.bus.nats_log import NatsLog

        return NatsLog(url, retention_seconds=retention_seconds)
    raise ConfigurationError(f"unknown bus URL {url!r}: use nats://host:port, memory:// (tests; not durable) or "
                             "leave it empty for the embedded log")


class EventBus:
    """The org's event bus."""

    def __init__(self, store: Store, backend: BusBackend, *, retention_hours: float = 72.0,
                 hourly_allocation: int = 250_000, overflow_threshold: int = 100_000) -> None:
        self.store = store
        self.backend = backend
        self.retention_seconds = retention_hours * 3600
        self.registry = avro.SchemaRegistry(store)
        self.channels = ChannelDirectory(store)
        self.changes = ChangeEventBuilder(self.channels, self.registry, overflow_threshold=overflow_threshold)
        self.usage: ApiUsage = event_usage(store, hourly_allocation)
        self.deliveries: ApiUsage = delivery_usage(store)  # events handed to subscribers, metered only
        self._event_schemas: dict[int, tuple[ObjectDef, str, Any]] = {}
        # Called with every batch appended to the log (the org counts them for metrics): cheap, and never raising.
        self.appended: list[Callable[[Sequence[NewEvent]], None]] = []
        self._stop = threading.Event()
        self._janitor: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------

    def open(self, *, background: bool = True) -> None:
        self.backend.open()
        self.purge_expired()
        if background:
            self._janitor = threading.Thread(target=self._run_janitor, name="interlink-bus-retention", daemon=True)
            self._janitor.start()

    def close(self) -> None:
        self._stop.set()
        if self._janitor is not None:
            self._janitor.join(timeout=5)
        try:
            self.usage.flush()
            self.deliveries.flush()
        finally:
            self.backend.close()

    def _run_janitor(self) -> None:
        purged_at = time.monotonic()
        while not self._stop.wait(1.0):
            try:
                self.usage.flush()
                self.deliveries.flush()
                if time.monotonic() - purged_at >= 60:
                    purged_at = time.monotonic()
                    self.purge_expired()
            except Exception:
                log.exception("event bus housekeeping failed")

    def purge_expired(self) -> int:
        cutoff = int((time.time() - self.retention_seconds) * 1000)
        return self.backend.purge(cutoff)

    # -- topics ----------------------------------------------------------------------------------------------

    def topic(self, name: str) -> Topic:
        """Resolve ``/event/X__e``, ``/data/ChangeEvents``, ``/data/XChangeEvent`` or ``/data/X__chn``."""
        kind, local = parse_topic(name)
        schema = self.store.schema
        if kind == "event":
            obj = schema.object(local)
            if obj is None or not obj.is_event or obj.name != local:
                raise TopicNotFound(f"Topic not found: {name}")
            return Topic(name, Selector(EVENT, name), True, self.event_schema(obj)[0], obj)
        if local == CHANGE_EVENTS:
            return Topic(name, Selector(DATA, None), False, "")
        if local.endswith("__chn"):
            members = self.channels.channel(local)
            if not members:
                raise TopicNotFound(f"Topic not found: {name}")
            if members[0].channel != local:  # channel names are case-sensitive
                raise TopicNotFound(f"Topic not found: {name} (channel names are case-sensitive: "
                                    f"/data/{members[0].channel})")
            return Topic(name, Selector(family_of(name), name), False, "")
        obj = self._object_for_change_event(local)
        if obj is None:
            raise TopicNotFound(f"Topic not found: {name}")
        schema_id = self.changes.schema_for(obj, name)[0]
        return Topic(name, Selector(DATA, name), False, schema_id)

    def _object_for_change_event(self, event_name: str) -> ObjectDef | None:
        if event_name.endswith("__ChangeEvent"):
            obj = self.store.schema.object(event_name.removesuffix("__ChangeEvent") + "__c")
        elif event_name.endswith("ChangeEvent"):
            obj = self.store.schema.object(event_name.removesuffix("ChangeEvent"))
        else:
            return None
        if obj is None or obj.is_event or change_event_name(obj.name) != event_name:
            return None
        return obj

    def event_schema(self, obj: ObjectDef) -> tuple[str, Any]:
        """(schema id, parsed schema) of a platform event's current definition."""
        cached = self._event_schemas.get(id(obj))
        if cached is None or cached[0] is not obj:
            topic = f"/event/{obj.name}"
            schema_id = self.registry.register(topic, obj, avro.event_schema(obj))
            # The entry keeps the definition alive, so its id cannot be reused by another one meanwhile.
            cached = (obj, schema_id, self.registry.parsed(schema_id))
            self._event_schemas[id(obj)] = cached
        return cached[1], cached[2]

    # -- publishing ------------------------------------------------------------------------------------------

    def encode_event(self, obj: ObjectDef, values: Mapping[str, Any], user_id: str) -> NewEvent:
        """A platform event from field values (REST, composite, flows): server fields set, Avro encoded."""
        schema_id, parsed = self.event_schema(obj)
        event_uuid = str(uuid.uuid4())
        now_ms = int(time.time() * 1000)
        record: dict[str, Any] = {"CreatedDate": now_ms, "CreatedById": user_id, "EventUuid": event_uuid}
        for fdef in obj.fields:
            if fdef.name.endswith("__c"):
                record[fdef.name] = avro.to_avro_value(fdef, values.get(fdef.name))
        payload = avro.encode(parsed, record)
        if len(payload) > MAX_EVENT_BYTES:
            raise DmlError(f"The event is {len(payload)} bytes; events are limited to {MAX_EVENT_BYTES} bytes",
                           error_code="LIMIT_EXCEEDED")
        return NewEvent(f"/event/{obj.name}", event_uuid, schema_id, payload, now_ms)

    def append(self, events: Sequence[NewEvent], *, dedupe: bool = False) -> list[int]:
        """Append events (durable on return); platform events count against the hourly allocation."""
        replay_ids = self.backend.append(events, dedupe=dedupe)
        for listener in self.appended:
            listener(events)
        return replay_ids

    def reserve(self, count: int) -> None:
        """Count ``count`` platform events against the hourly allocation (LIMIT_EXCEEDED when over)."""
        if count:
            self.usage.count(count)

    async def publish_encoded(self, topic_name: str, items: Sequence[tuple[str, str, bytes]],
                              user_id: str) -> tuple[Topic, list[PublishOutcome]]:
        """Publish Avro datums from the Pub/Sub API: ``items`` are (producer id, schema id, payload)."""
        topic = self.topic(topic_name)
        if not topic.can_publish or topic.event_object is None:
            raise PubSubPermissionDenied(f"Publishing to {topic_name} is not allowed: only platform event topics "
                                         "(/event/Name__e) accept published events")
        current_id, parsed = self.event_schema(topic.event_object)
        outcomes: list[PublishOutcome] = []
        ready: list[tuple[PublishOutcome, NewEvent]] = []
        now_ms = int(time.time() * 1000)
        head = avro.stamp_head(now_ms, user_id)
        for (producer_id, schema_id, payload), event_uuid in zip(items, new_event_uuids(len(items)), strict=True):
            outcome = PublishOutcome(producer_id or event_uuid, event_uuid=event_uuid)
            outcomes.append(outcome)
            try:
                if schema_id != current_id:
                    schema = self.registry.parsed(schema_id) if schema_id else None
                    if schema is None or self.registry.topic_of(schema_id) != topic.name:
                        raise DmlError(f"Unknown schema id {schema_id!r} for {topic.name}; "
                                       f"use GetTopic to find the current one ({current_id})")
                else:
                    schema = parsed
                if len(payload) > MAX_EVENT_BYTES:
                    raise DmlError(f"The event is {len(payload)} bytes; events are limited to {MAX_EVENT_BYTES} "
                                   "bytes")
                avro.decode(schema, payload)
                stamped = avro.restamp_event(payload, head, event_uuid)
                ready.append((outcome, NewEvent(topic.name, event_uuid, schema_id, stamped, now_ms)))
            except InterlinkError as error:
                outcome.error = error.message
        if ready:
            try:
                self.reserve(len(ready))
            except InterlinkError as error:
                for outcome, _ in ready:
                    outcome.error = error.message
                return topic, outcomes
            appended = [event for _, event in ready]
            replay_ids = await self.backend.append_async(appended)
            for listener in self.appended:
                listener(appended)
            for (outcome, _), replay_id in zip(ready, replay_ids, strict=True):
                outcome.replay_id = replay_id
        return topic, outcomes

    # -- subscribing -----------------------------------------------------------------------------------------

    def start_after(self, topic: Topic, preset: int, replay_id: bytes = b"") -> int:
        """The replay id a subscription starts after, validated against what the log still keeps."""
        bounds = self.backend.bounds(topic.selector)
        if preset == EARLIEST:
            return bounds.floor
        if preset == CUSTOM:
            wanted = decode_replay_id(replay_id)
            if wanted < bounds.floor:
                raise ReplayIdInvalid(f"The Replay ID validation failed: events after replay {wanted} are past the "
                                      f"{self.retention_seconds / 3600:g}-hour retention window and were purged. "
                                      "Resubscribe with EARLIEST or LATEST.")
            if wanted > bounds.head:
                raise ReplayIdInvalid("The Replay ID validation failed: that replay id is not a position of "
                                      f"{topic.name}.")
            return wanted
        return bounds.head

    def check_access(self, topic: Topic, access: Any, *, publish: bool = False) -> None:
        """Refuse a user whose permissions (``interlink.security.access.UserAccess``; None: not enforced) do not
        allow subscribing to (or publishing on) ``topic``, as the platform does: a platform event needs Read (Create
        to publish) on the event; a change event channel needs View All on its object or View All Data; the
        all-changes and custom channels need View All Data."""
        if access is None:
            return
        if not access.has("ApiEnabled"):
            raise PubSubPermissionDenied("API access is not enabled for this user (the API Enabled permission)")
        if topic.event_object is not None:
            operation = "create" if publish else "read"
            if not access.can(topic.event_object, operation):
                raise PubSubPermissionDenied(f"You don't have permission to {'publish' if publish else 'subscribe'} "
                                             f"to {topic.name}: {operation.title()} access on "
                                             f"{topic.event_object.name} is needed")
            return
        if access.has("ViewAllData"):
            return
        local = topic.name.rsplit("/", 1)[-1]
        obj = self._object_for_change_event(local)
        if obj is not None and access.object(obj).view_all:
            return
        raise PubSubPermissionDenied(f"You don't have permission to subscribe to {topic.name}: View All Data"
                                     + (f" or View All on {obj.name}" if obj is not None else "") + " is needed")

    def latest_replay_id(self, topic: Topic) -> int:
        return self.backend.bounds(topic.selector).head

    def cursor(self, topic: Topic, after: int) -> Cursor:
        return self.backend.cursor(topic.selector, after)

    def read(self, topic: Topic, after: int, limit: int) -> list[StoredEvent]:
        return self.backend.read(topic.selector, after, limit)

    def decode(self, event: StoredEvent) -> dict[str, Any]:
        """An event's payload as a dict (for people and tests); dates stay epoch numbers."""
        parsed = self.registry.parsed(event.schema_id)
        if parsed is None:
            raise SchemaNotFound(f"Schema not found: {event.schema_id}")
        return avro.decode(parsed, event.payload)
