"""Avro encoding details the Pub/Sub API's clients rely on."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import fastavro
import pytest

from interlink.bus import avro
from interlink.errors import InvalidFieldError
from interlink.metadata.model import FieldDef, FieldType
from interlink.metadata.spec import build_object


def test_bitmaps_match_the_documented_example() -> None:
    assert avro.bitmap_positions("0x650004E0") == [5, 6, 7, 10, 24, 26, 29, 30]
    assert avro.field_bitmap([5, 6, 7, 10, 24, 26, 29, 30]) == "0x650004E0"
    assert avro.field_bitmap([1]) == "0x02"  # even number of hex digits, as Java clients parse byte pairs
    assert avro.field_bitmap([8]) == "0x0100"


@pytest.mark.parametrize(("ftype", "value", "expected"), [
    (FieldType.DATETIME, datetime(2024, 1, 2, 3, 4, 5, 600000, tzinfo=UTC), 1704164645600),
    (FieldType.DATE, date(1970, 1, 11), 10),
    (FieldType.TIME, time(1, 0, 0, 5000), 3_600_005),
    (FieldType.CURRENCY, 12, 12.0),
    (FieldType.BOOLEAN, 1, True),
    (FieldType.STRING, None, None),
])
def test_values_follow_the_pub_sub_conventions(ftype: FieldType, value: object, expected: object) -> None:
    assert avro.to_avro_value(FieldDef("X__c", ftype), value) == expected


def test_event_schema_leads_with_the_system_fields_and_restamps_them() -> None:
    obj = build_object({"name": "Low_Ink__e", "keyPrefix": "e01", "fields": [
        {"name": "Printer__c", "type": "text", "length": 20}, {"name": "Level__c", "type": "number"}]})
    schema = avro.event_schema(obj)
    assert [f["name"] for f in schema["fields"]] == ["CreatedDate", "CreatedById", "EventUuid", "Printer__c",
                                                     "Level__c"]
    assert schema["name"] == "Low_Ink__e" and schema["namespace"] == "com.sforce.eventbus"
    parsed = fastavro.parse_schema(schema)
    payload = avro.encode(parsed, {"CreatedDate": 1, "CreatedById": "spoofed", "EventUuid": None,
                                   "Printer__c": "P-1", "Level__c": 0.5})
    stamped = avro.restamp_event(payload, avro.stamp_head(1700000000000, "005000000000001AAA"), "a-uuid")
    assert avro.decode(parsed, stamped) == {"CreatedDate": 1700000000000, "CreatedById": "005000000000001AAA",
                                            "EventUuid": "a-uuid", "Printer__c": "P-1", "Level__c": 0.5}
    assert avro.schema_id_of(schema) == avro.schema_id_of(dict(schema)) and len(avro.schema_id_of(schema)) == 22


def test_decode_refuses_short_and_overlong_datums() -> None:
    parsed = fastavro.parse_schema({"type": "record", "name": "R", "fields": [{"name": "a", "type": "string"}]})
    good = avro.encode(parsed, {"a": "hello"})
    with pytest.raises(InvalidFieldError):
        avro.decode(parsed, good[:-2])
    with pytest.raises(InvalidFieldError):
        avro.decode(parsed, good + b"\x00")
