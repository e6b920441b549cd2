"""Avro schemas for platform events and change events, their ids, and encoding to and from records.

Payloads on the bus are raw Avro binary datums (no container header), written with the schema whose id
travels beside them, as the Pub/Sub API carries them. Schema ids are fingerprints of the schema JSON,
so the same definition always has the same id and a changed one gets a new id; every schema an event
was written with is kept in the store (``il_event_schema``) so old events stay decodable.

Value conventions follow the platform's Pub/Sub encoding: text, picklists and ids are strings, dates are
days since the epoch (int), datetimes milliseconds since the epoch (long), times milliseconds after
midnight; custom and record fields are ``["null", T]`` unions defaulting to null.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import threading
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time
from typing import Any

import fastavro
from sqlalchemy import select

from interlink.errors import InvalidFieldError
from interlink.metadata.model import FieldDef, FieldType, ObjectDef
from interlink.store.database import Store, utcnow

NAMESPACE = "com.sforce.eventbus"
CHANGE_TYPES = ("CREATE", "UPDATE", "DELETE", "UNDELETE", "GAP_CREATE", "GAP_UPDATE", "GAP_DELETE",
                "GAP_UNDELETE", "GAP_OVERFLOW", "SNAPSHOT")
# Record fields a change event body leaves out: the id travels in the header's recordIds.
CHANGE_BODY_SKIP = frozenset({"Id", "IsDeleted", "SystemModstamp"})
_EPOCH_DAY = date(1970, 1, 1)

_AVRO_TYPES: dict[FieldType, str] = {
    FieldType.BOOLEAN: "boolean",
    FieldType.INT: "int",
    FieldType.DOUBLE: "double",
    FieldType.CURRENCY: "double",
    FieldType.PERCENT: "double",
    FieldType.DATE: "int",
    FieldType.DATETIME: "long",
    FieldType.TIME: "long",
}
_DOC_TYPES: dict[FieldType, str] = {
    FieldType.REFERENCE: "EntityId", FieldType.ID: "EntityId", FieldType.DATETIME: "DateTime", FieldType.DATE: "Date",
    FieldType.BOOLEAN: "Boolean", FieldType.INT: "Int", FieldType.DOUBLE: "Double", FieldType.CURRENCY: "Currency",
    FieldType.PERCENT: "Percent", FieldType.TIME: "Time", FieldType.TEXTAREA: "Text", FieldType.PICKLIST: "Picklist",
    FieldType.MULTIPICKLIST: "MultiPicklist",
}


def avro_type(fdef: FieldDef) -> str:
    return _AVRO_TYPES.get(fdef.type, "string")


def _field(fdef: FieldDef, kind: str) -> dict[str, Any]:
    return {"name": fdef.name, "type": ["null", avro_type(fdef)], "default": None,
            "doc": f"{kind}:{_DOC_TYPES.get(fdef.type, 'Text')}"}


def event_schema(obj: ObjectDef) -> dict[str, Any]:
    """The Avro schema of a platform event: CreatedDate, CreatedById, EventUuid, then its custom fields."""
    fields: list[dict[str, Any]] = [
        {"name": "CreatedDate", "type": "long", "doc": "CreatedDate:DateTime"},
        {"name": "CreatedById", "type": "string", "doc": "CreatedBy:EntityId"},
        {"name": "EventUuid", "type": ["null", "string"], "default": None, "doc": "EventUuid:Text"},
    ]
    fields += [_field(f, "data") for f in obj.fields if f.name.endswith("__c")]
    return {"type": "record", "name": obj.name, "namespace": NAMESPACE, "fields": fields}


def change_header_schema() -> dict[str, Any]:
    strings = {"type": "array", "items": "string"}
    return {"type": "record", "name": "ChangeEventHeader", "namespace": NAMESPACE, "fields": [
        {"name": "entityName", "type": "string"},
        {"name": "recordIds", "type": strings},
        {"name": "changeType", "type": {"type": "enum", "name": "ChangeType", "namespace": NAMESPACE,
                                        "symbols": list(CHANGE_TYPES)}},
        {"name": "changeOrigin", "type": "string"},
        {"name": "transactionKey", "type": "string"},
        {"name": "sequenceNumber", "type": "int"},
        {"name": "commitTimestamp", "type": "long"},
        {"name": "commitNumber", "type": "long"},
        {"name": "commitUser", "type": "string"},
        {"name": "nulledFields", "type": strings},
        {"name": "diffFields", "type": strings},
        {"name": "changedFields", "type": strings},
    ]}


def change_body_fields(obj: ObjectDef) -> list[FieldDef]:
    """The record fields a change event carries, in schema order (position + 1 in the bitmaps)."""
    return [f for f in obj.fields if f.name not in CHANGE_BODY_SKIP]


def change_schema(obj: ObjectDef, event_name: str) -> dict[str, Any]:
    """``AccountChangeEvent``: the ChangeEventHeader (field 0), then every record field as a nullable union."""
    fields: list[dict[str, Any]] = [{"name": "ChangeEventHeader", "type": change_header_schema(),
                                     "doc": "Data:ChangeEventHeader"}]
    fields += [_field(f, "Data") for f in change_body_fields(obj)]
    return {"type": "record", "name": event_name, "namespace": NAMESPACE, "fields": fields}


def schema_id_of(schema: Mapping[str, Any]) -> str:
    """A 22-character fingerprint of the schema's canonical JSON (like the platform's opaque ids)."""
    canonical = json.dumps(schema, sort_keys=True, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()[:16]).decode().rstrip("=")


def field_bitmap(positions: Iterable[int]) -> str:
    """The Pub/Sub bitmap string for field positions: ``0x`` + big-endian hex, even length, upper case."""
    number = 0
    for position in positions:
        number |= 1 << position
    return "0x" + number.to_bytes(max(1, (number.bit_length() + 7) // 8), "big").hex().upper()


def bitmap_positions(bitmap: str) -> list[int]:
    """Inverse of :func:`field_bitmap` (for tests and tools)."""
    number = int(bitmap[2:], 16)
    return [i for i in range(number.bit_length()) if number >> i & 1]


# -- values ----------------------------------------------------------------------------------------------


def to_avro_value(fdef: FieldDef, value: Any) -> Any:
    """A record value (as the records layer holds it) in the Avro convention of the field's type."""
    if value is None:
        return None
    kind = fdef.type
    if kind is FieldType.DATETIME:
        if isinstance(value, datetime):
            moment = value if value.tzinfo else value.replace(tzinfo=UTC)
            return int(moment.timestamp() * 1000)
        return int(value)
    if kind is FieldType.DATE:
        return (value - _EPOCH_DAY).days if isinstance(value, date) else int(value)
    if kind is FieldType.TIME:
        if isinstance(value, time):
            return ((value.hour * 60 + value.minute) * 60 + value.second) * 1000 + value.microsecond // 1000
        return int(value)
    if kind is FieldType.BOOLEAN:
        return bool(value)
    if kind is FieldType.INT:
        return int(value)
    if kind in (FieldType.DOUBLE, FieldType.CURRENCY, FieldType.PERCENT):
        return float(value)
    return value if isinstance(value, str) else str(value)


def iso_from_epoch_ms(epoch_ms: int) -> str:
    """``2026-11-28T23:52:51.973Z``: how the REST API writes datetimes, from Avro's epoch milliseconds."""
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def from_avro_value(fdef: FieldDef | None, value: Any) -> Any:
    """An Avro value back as the JSON a person reads (ISO dates), for the CLI and tests."""
    if value is None or fdef is None:
        return value
    if fdef.type is FieldType.DATETIME:
        return iso_from_epoch_ms(value)
    if fdef.type is FieldType.DATE:
        return date.fromordinal(_EPOCH_DAY.toordinal() + value).isoformat()
    if fdef.type is FieldType.TIME:
        seconds, millis = divmod(int(value), 1000)
        minutes, second = divmod(seconds, 60)
        hour, minute = divmod(minutes, 60)
        return f"{hour:02d}:{minute:02d}:{second:02d}.{millis:03d}Z"
    return value


# -- registry --------------------------------------------------------------------------------------------


class SchemaRegistry:
    """Schemas by id and by topic, persisted in the store the first time they are used."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._by_id: dict[str, tuple[str, Any]] = {}  # schema id -> (json, parsed)
        # (topic, id(ObjectDef)) -> (the definition, kept alive so its id is not reused; its schema id)
        self._current: dict[tuple[str, int], tuple[ObjectDef, str]] = {}

    def register(self, topic: str, obj: ObjectDef, schema: dict[str, Any]) -> str:
        """The id of ``schema`` for ``topic``, stored if new. Cached per object definition."""
        key = (topic, id(obj))
        cached = self._current.get(key)
        if cached is not None and cached[0] is obj:
            return cached[1]
        schema_id = schema_id_of(schema)
        with self._lock:
            if schema_id not in self._by_id:
                text = json.dumps(schema, separators=(",", ":"))
                parsed = fastavro.parse_schema(json.loads(text))
                table = self._store.system["il_event_schema"]
                with self._store.write() as conn:
                    if conn.execute(select(table.c.schema_id).where(table.c.schema_id == schema_id)).first() is None:
                        conn.execute(table.insert().values(schema_id=schema_id, topic=topic, schema_json=text,
                                                           created_at=utcnow()))
                self._by_id[schema_id] = (text, parsed)
            self._current[key] = (obj, schema_id)
        return schema_id

    def topic_of(self, schema_id: str) -> str | None:
        """The topic a schema was registered for (an event must be published with its own topic's schema)."""
        table = self._store.system["il_event_schema"]
        with self._store.read() as conn:
            return conn.execute(select(table.c.topic).where(table.c.schema_id == schema_id)).scalar()

    def json_of(self, schema_id: str) -> str | None:
        found = self._load(schema_id)
        return found[0] if found else None

    def parsed(self, schema_id: str) -> Any:
        found = self._load(schema_id)
        return found[1] if found else None

    def _load(self, schema_id: str) -> tuple[str, Any] | None:
        found = self._by_id.get(schema_id)
        if found is not None:
            return found
        table = self._store.system["il_event_schema"]
        with self._store.read() as conn:
            text = conn.execute(select(table.c.schema_json).where(table.c.schema_id == schema_id)).scalar()
        if text is None:
            return None
        parsed = fastavro.parse_schema(json.loads(text))
        with self._lock:
            self._by_id[schema_id] = (text, parsed)
        return self._by_id[schema_id]


def encode(parsed_schema: Any, record: Mapping[str, Any]) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, parsed_schema, record)
    return buffer.getvalue()


def decode(parsed_schema: Any, payload: bytes) -> dict[str, Any]:
    """Decode a whole datum; trailing bytes or a short datum is an error."""
    buffer = io.BytesIO(payload)
    try:
        record = fastavro.schemaless_reader(buffer, parsed_schema, None)
    except (EOFError, ValueError, IndexError, UnicodeDecodeError, TypeError, StopIteration) as exc:
        raise InvalidFieldError(f"The event payload does not match its Avro schema: {exc}") from None
    if buffer.tell() != len(payload):
        raise InvalidFieldError("The event payload does not match its Avro schema: "
                                f"{len(payload) - buffer.tell()} bytes left over")
    return record  # type: ignore[return-value]


# -- the fixed event prefix (CreatedDate, CreatedById, EventUuid) ----------------------------------------------


def _write_long(value: int) -> bytes:
    encoded = bytearray()
    number = (value << 1) ^ (value >> 63)
    while number & ~0x7F:
        encoded.append((number & 0x7F) | 0x80)
        number >>= 7
    encoded.append(number)
    return bytes(encoded)


def _read_long(payload: bytes, position: int) -> tuple[int, int]:
    shift = 0
    number = 0
    while True:
        byte = payload[position]
        position += 1
        number |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
    return (number >> 1) ^ -(number & 1), position


def _write_string(value: str) -> bytes:
    raw = value.encode()
    return _write_long(len(raw)) + raw


def stamp_head(created_ms: int, user_id: str) -> bytes:
    """The encoded CreatedDate and CreatedById, shared by every event of one publish call."""
    return _write_long(created_ms) + _write_string(user_id)


def event_prefix(created_ms: int, user_id: str, event_uuid: str) -> bytes:
    """The encoded first three fields of every platform event datum."""
    return stamp_head(created_ms, user_id) + _UUID_BRANCH + _write_string(event_uuid)


_UUID_BRANCH = _write_long(1)  # the union branch of EventUuid: ["null", "string"] -> string


def restamp_event(payload: bytes, head: bytes, event_uuid: str) -> bytes:
    """Replace a published datum's CreatedDate, CreatedById and EventUuid with the server's values.

    ``head`` is :func:`stamp_head`. The three fields lead every event schema, so the rest of the datum is
    kept byte for byte (the payload was validated against its schema before this).
    """
    _, position = _read_long(payload, 0)
    length, position = _read_long(payload, position)
    position += length
    branch, position = _read_long(payload, position)
    if branch == 1:
        length, position = _read_long(payload, position)
        position += length
    return head + _UUID_BRANCH + _write_string(event_uuid) + payload[position:]
