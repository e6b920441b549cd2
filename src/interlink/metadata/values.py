"""Field values between the wire and the store.

``parse_value`` turns what a client sent (JSON or CSV text) into the Python value the store keeps,
raising the platform's errors; ``to_wire`` renders a stored value the way the platform's JSON does
(datetimes as ``2024-01-31T09:30:00.000+0000``, times as ``09:30:00.000Z``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from interlink import ids
from interlink.errors import (
    FieldIntegrityError,
    JsonParserError,
    MalformedIdError,
    RestrictedPicklist,
    StringTooLong,
)
from interlink.metadata.model import FieldDef, FieldType, ObjectDef

_DATETIME_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?$"
)
_TIME_RE = re.compile(r"^(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?\s*(Z|[+-]\d{2}:?\d{2})?$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class InvalidEmail(FieldIntegrityError):
    error_code = "INVALID_EMAIL_ADDRESS"


def _deserialize_error(fdef: FieldDef, kind: str, raw: Any) -> JsonParserError:
    token = "VALUE_STRING" if isinstance(raw, str) else (
        "VALUE_TRUE" if raw is True else "VALUE_FALSE" if raw is False else
        "VALUE_NUMBER_INT" if isinstance(raw, int) else "VALUE_NUMBER_FLOAT" if isinstance(raw, float) else
        "START_OBJECT" if isinstance(raw, dict) else "START_ARRAY" if isinstance(raw, list) else "VALUE")
    return JsonParserError(
        f"Cannot deserialize instance of {kind} from {token} value {raw} or request may be missing a required "
        f"field", [fdef.name])


def _offset(text: str | None) -> timedelta:
    if not text or text == "Z":
        return timedelta(0)
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    return sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))


def parse_datetime(text: str) -> datetime:
    """Parse an ISO-8601 datetime (``Z``, ``+0000`` or ``+00:00``) into naive UTC; ValueError if bad."""
    match = _DATETIME_RE.match(text.strip())
    if not match:
        raise ValueError(text)
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    value = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
                     int((fraction or "0")[:6].ljust(6, "0")))
    try:
        value -= _offset(zone)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise ValueError(text) from None
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def parse_date(text: str) -> date:
    match = re.match(r"^(\d{4})-(\d{2})-(\d{2})$", text.strip())
    if not match:
        # The platform accepts a datetime for a date field and keeps the date part.
        return parse_datetime(text).date()
    return date(int(match[1]), int(match[2]), int(match[3]))


def parse_time(text: str) -> time:
    match = _TIME_RE.match(text.strip())
    if not match:
        raise ValueError(text)
    hour, minute, second, fraction, _zone = match.groups()
    return time(int(hour), int(minute), int(second or 0), int((fraction or "0")[:3].ljust(3, "0")) * 1000)


def parse_value(fdef: FieldDef, raw: Any) -> Any:
    """Validate and convert one incoming value for ``fdef``; None stays None."""
    if raw is None:
        return None
    ftype = fdef.type
    if ftype is FieldType.BOOLEAN:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in {"true", "false"}:
            return raw.strip().lower() == "true"
        raise _deserialize_error(fdef, "boolean", raw)
    if ftype is FieldType.INT:
        if isinstance(raw, bool | dict | list):
            raise _deserialize_error(fdef, "int", raw)
        try:
            number = float(raw) if isinstance(raw, str) else raw
            if not isinstance(number, int | float) or not math.isfinite(number) or number != int(number):
                raise ValueError(raw)
        except ValueError:
            raise _deserialize_error(fdef, "int", raw) from None
        value = int(number)
        if abs(value) >= 10 ** max(fdef.precision, 1):
            raise FieldIntegrityError(f"{fdef.label}: value outside of valid range on numeric field: {raw}",
                                      [fdef.name], error_code="NUMBER_OUTSIDE_VALID_RANGE")
        return value
    if ftype in (FieldType.DOUBLE, FieldType.CURRENCY, FieldType.PERCENT):
        if isinstance(raw, bool | dict | list):
            raise _deserialize_error(fdef, "double", raw)
        try:
            number = float(raw)
        except (TypeError, ValueError):
            raise _deserialize_error(fdef, "double", raw) from None
        if not math.isfinite(number):
            raise _deserialize_error(fdef, "double", raw)
        integer_digits = fdef.precision - fdef.scale
        if fdef.precision and abs(number) >= 10 ** integer_digits:
            raise FieldIntegrityError(
                f"{fdef.label}: value outside of valid range on numeric field: {raw}", [fdef.name],
                error_code="NUMBER_OUTSIDE_VALID_RANGE")
        return round(number, fdef.scale) if fdef.precision else number
    if ftype is FieldType.DATE:
        if not isinstance(raw, str):
            raise _deserialize_error(fdef, "date", raw)
        try:
            return parse_date(raw)
        except ValueError:
            raise _deserialize_error(fdef, "date", raw) from None
    if ftype is FieldType.DATETIME:
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            try:
                return datetime.fromtimestamp(raw / 1000, UTC).replace(tzinfo=None)
            except (OverflowError, OSError, ValueError):  # epoch milliseconds past year 9999
                raise _deserialize_error(fdef, "datetime", raw) from None
        if not isinstance(raw, str):
            raise _deserialize_error(fdef, "datetime", raw)
        try:
            return parse_datetime(raw)
        except ValueError:
            raise _deserialize_error(fdef, "datetime", raw) from None
    if ftype is FieldType.TIME:
        if not isinstance(raw, str):
            raise _deserialize_error(fdef, "time", raw)
        try:
            return parse_time(raw)
        except ValueError:
            raise _deserialize_error(fdef, "time", raw) from None
    if ftype is FieldType.REFERENCE and fdef.reference_target_field is not None:
        # External and indirect lookups hold the parent's key value (its ExternalId or external-id field).
        if isinstance(raw, dict | list | bool):
            raise _deserialize_error(fdef, "String", raw)
        return None if raw == "" else str(raw)
    if ftype in (FieldType.ID, FieldType.REFERENCE):
        if not isinstance(raw, str):
            raise _deserialize_error(fdef, "id", raw)
        if raw == "":
            return None
        normalized = ids.normalize(raw)
        if normalized is None:
            raise MalformedIdError(f"{fdef.label}: id value of incorrect type: {raw}", [fdef.name])
        return normalized
    # Text family.
    if isinstance(raw, dict | list):
        raise _deserialize_error(fdef, "String", raw)
    text = raw if isinstance(raw, str) else (str(raw).lower() if isinstance(raw, bool) else str(raw))
    if ftype is FieldType.MULTIPICKLIST:
        parts = [p.strip() for p in text.split(";") if p.strip()]
        if fdef.restricted_picklist:
            for part in parts:
                if part not in fdef.picklist_names:
                    raise RestrictedPicklist(f"{fdef.label}: bad value for restricted picklist field: {part}",
                                             [fdef.name])
        text = ";".join(dict.fromkeys(parts))
        if text == "":
            return None
    if ftype is FieldType.PICKLIST and fdef.restricted_picklist and text not in fdef.picklist_names:
        raise RestrictedPicklist(f"{fdef.label}: bad value for restricted picklist field: {text}", [fdef.name])
    if fdef.length and len(text) > fdef.length:
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise StringTooLong(f"{fdef.label}: data value too large: {shown} (max length={fdef.length})",
                            [fdef.name])
    if ftype is FieldType.EMAIL and text and not _EMAIL_RE.match(text):
        raise InvalidEmail(f"{fdef.label}: invalid email address: {text}", [fdef.name])
    if text == "" and ftype is not FieldType.TEXTAREA:
        return None
    return text


def format_datetime(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


def format_datetime_z(value: datetime) -> str:
    """A UTC datetime as Bulk CSV, SOAP and XML write it: ``2024-01-31T09:30:00.000Z``."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def to_wire(fdef: FieldDef, value: Any) -> Any:
    """Render a stored value as the platform's JSON does."""
    if value is None:
        return False if fdef.type is FieldType.BOOLEAN else None
    if fdef.type is FieldType.DATETIME and isinstance(value, datetime):
        return format_datetime(value)
    if fdef.type is FieldType.DATE and isinstance(value, date):
        return value.isoformat()
    if fdef.type is FieldType.TIME and isinstance(value, time):
        return value.strftime("%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    if fdef.type is FieldType.BOOLEAN:
        return bool(value)
    if fdef.type is FieldType.INT:
        return int(value)
    if fdef.type in (FieldType.DOUBLE, FieldType.CURRENCY, FieldType.PERCENT):
        return float(value)
    return value


def _datetime_out(value: Any) -> Any:
    return format_datetime(value) if isinstance(value, datetime) else value


def _date_out(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def _time_out(value: Any) -> Any:
    return value.strftime("%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z" if isinstance(value, time) else value


def _bool_out(value: Any) -> bool:
    return bool(value)


def _float_out(value: Any) -> Any:
    return None if value is None else float(value)


def _int_out(value: Any) -> Any:
    return None if value is None else int(value)


_CONVERTERS: dict[FieldType, Callable[[Any], Any]] = {
    FieldType.DATETIME: _datetime_out,
    FieldType.DATE: _date_out,
    FieldType.TIME: _time_out,
    FieldType.BOOLEAN: _bool_out,
    FieldType.INT: _int_out,
    FieldType.DOUBLE: _float_out,
    FieldType.CURRENCY: _float_out,
    FieldType.PERCENT: _float_out,
}
WirePlan = tuple[tuple[str, Callable[[Any], Any] | None], ...]


def is_temporal_converter(convert: Callable[[Any], Any] | None) -> bool:
    """Whether a wire converter renders a date or a datetime (Bulk API 1.0 JSON turns those into epoch ms)."""
    return convert is _datetime_out or convert is _date_out

_plans: dict[int, tuple[ObjectDef, WirePlan]] = {}


def wire_plan(obj: ObjectDef) -> WirePlan:
    """(field name, converter or None) for every field of ``obj``, in order; ``to_wire`` without the lookups.

    Text and id fields need no conversion (None). Rendering a record is on every read's hot path, so the
    plan is computed once per object definition.
    """
    cached = _plans.get(id(obj))
    if cached is not None and cached[0] is obj:
        return cached[1]
    plan: WirePlan = tuple((f.name, _CONVERTERS.get(f.type)) for f in obj.fields)
    if len(_plans) > 4096:  # definitions are replaced on redeploy
        _plans.clear()
    _plans[id(obj)] = (obj, plan)
    return plan


__all__ = ["format_datetime", "format_datetime_z", "is_temporal_converter", "parse_date",
           "parse_datetime", "parse_time", "parse_value", "to_wire", "wire_plan"]
