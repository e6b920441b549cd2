"""Values the bus passes around: events to append, stored events, replay positions, channels."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from interlink.errors import ReplayIdCorrupted, TopicNotFound

# Channel families: each has its own log (a JetStream stream on NATS), so a subscription to all change
# events never reads platform events, and custom channels keep their own filtered, enriched copies.
EVENT = "event"   # /event/Name__e
DATA = "data"     # /data/<Entity>ChangeEvent, read together as /data/ChangeEvents
CUSTOM = "chn"    # /data/Name__chn
FAMILIES = (EVENT, DATA, CUSTOM)

REPLAY_ID_BYTES = 8


def new_event_uuids(count: int) -> list[str]:
    """``count`` random (version 4) UUID strings: one ``os.urandom`` call for all, about 4x cheaper than uuid4()."""
    raw = bytearray(os.urandom(16 * count))
    uuids = []
    for start in range(0, 16 * count, 16):
        raw[start + 6] = (raw[start + 6] & 0x0F) | 0x40  # version 4
        raw[start + 8] = (raw[start + 8] & 0x3F) | 0x80  # RFC 4122 variant
        text = raw[start:start + 16].hex()
        uuids.append(f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}")
    return uuids


def encode_replay_id(replay_id: int) -> bytes:
    """The opaque bytes a client sees for a replay position (8 bytes, big-endian)."""
    return replay_id.to_bytes(REPLAY_ID_BYTES, "big")


def decode_replay_id(raw: bytes) -> int:
    """Back from the opaque bytes; anything that is not one of ours is 'corrupted', as the platform says."""
    if len(raw) != REPLAY_ID_BYTES:
        raise ReplayIdCorrupted("The Replay ID is corrupted or not valid for this topic: "
                                f"expected {REPLAY_ID_BYTES} bytes, got {len(raw)}")
    return int.from_bytes(raw, "big")


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event ready to append: its channel, identity, schema and Avro payload."""

    topic: str
    event_uuid: str
    schema_id: str
    payload: bytes
    created_ms: int

    @property
    def family(self) -> str:
        return family_of(self.topic)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event in the log, with its replay position."""

    replay_id: int
    topic: str
    event_uuid: str
    schema_id: str
    payload: bytes
    created_ms: int


@dataclass(frozen=True, slots=True)
class Selector:
    """What a subscription reads: one topic, or every topic of a family (``topic`` None)."""

    family: str
    topic: str | None

    @property
    def name(self) -> str:
        return self.topic or "/data/ChangeEvents"


_TOPIC = re.compile(r"^/(event|data)/([A-Za-z][A-Za-z0-9_]*)$")


def family_of(topic: str) -> str:
    if topic.startswith("/event/"):
        return EVENT
    return CUSTOM if topic.endswith("__chn") else DATA


def parse_topic(topic: str) -> tuple[str, str]:
    """Split ``/event/X__e`` or ``/data/Y`` into (kind, name); TopicNotFound when it has neither form."""
    match = _TOPIC.match(topic or "")
    if match is None:
        raise TopicNotFound(f"Topic not found: {topic!r}; topics look like /event/Name__e or "
                            "/data/AccountChangeEvent")
    return match.group(1), match.group(2)


def change_event_name(object_name: str) -> str:
    """``Account`` -> ``AccountChangeEvent``; ``Invoice__c`` -> ``Invoice__ChangeEvent``."""
    if object_name.endswith("__c"):
        return object_name[:-3] + "__ChangeEvent"
    return object_name + "ChangeEvent"


def change_event_topic(object_name: str) -> str:
    return "/data/" + change_event_name(object_name)
