"""Events as JSON for people and JSON-speaking clients: field names instead of bitmaps, ISO dates instead of
epoch numbers. Used by the CLI (``interlink events tail``), the console's event streams and the legacy
Streaming API (CometD), which all show the same event the same way.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from interlink.bus import avro
from interlink.metadata.model import FieldDef, FieldType

if TYPE_CHECKING:
    from interlink.bus.bus import EventBus
    from interlink.bus.model import StoredEvent


def _fielddef_for(doc: str, types: list[Any]) -> FieldDef | None:
    """A stand-in FieldDef for a schema field whose object field is gone or changed type (from its doc)."""
    kind = doc.rsplit(":", 1)[-1]
    if kind == "DateTime" and "long" in types:
        return FieldDef("x", FieldType.DATETIME)
    if kind == "Date" and "int" in types:
        return FieldDef("x", FieldType.DATE)
    return None


class EventJson:
    """Decodes stored events of one bus into JSON-ready dicts (schemas are cached per schema id)."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self._schemas: dict[str, list[dict[str, Any]]] = {}

    def _fields(self, schema_id: str) -> list[dict[str, Any]]:
        found = self._schemas.get(schema_id)
        if found is None:
            text = self.bus.registry.json_of(schema_id)
            found = json.loads(text)["fields"] if text else []
            self._schemas[schema_id] = found
        return found

    @staticmethod
    def _value(fdef: FieldDef | None, spec: dict[str, Any], value: Any) -> Any:
        if value is None:
            return None
        types = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
        if fdef is None or avro.avro_type(fdef) not in types:
            fdef = _fielddef_for(str(spec.get("doc", "")), types)
        return avro.from_avro_value(fdef, value)

    def payload(self, event: StoredEvent) -> dict[str, Any]:
        """The decoded payload; change events get field names in the header and only non-null body fields."""
        record = self.bus.decode(event)
        fields = self._fields(event.schema_id)
        schema = self.bus.store.schema
        header = record.get("ChangeEventHeader")
        if header is None:  # a platform event: every field
            obj = schema.object(event.topic.removeprefix("/event/"))
            return {spec["name"]: self._value(obj.field(spec["name"]) if obj else None, spec,
                                              record.get(spec["name"])) for spec in fields}
        names = [spec["name"] for spec in fields]  # bitmap position n is schema field n (0 is the header)

        def field_names(bitmaps: list[str]) -> list[str]:
            decoded: list[str] = []
            for bitmap in bitmaps:
                if not bitmap.startswith("0x"):  # a compound field's "n-0x..." entry: kept as it is
                    decoded.append(bitmap)
                    continue
                decoded += [names[p] if p < len(names) else f"#{p}" for p in avro.bitmap_positions(bitmap)]
            return decoded

        header = dict(header)
        for key in ("changedFields", "nulledFields", "diffFields"):
            header[key] = field_names(header.get(key) or [])
        obj = schema.object(header["entityName"])
        body = {spec["name"]: self._value(obj.field(spec["name"]) if obj else None, spec, record[spec["name"]])
                for spec in fields[1:] if record.get(spec["name"]) is not None}
        return {"ChangeEventHeader": header, **body}
