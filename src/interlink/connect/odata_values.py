"""Literal and value conversion for the OData adapter: the ``Edm`` type groups, :func:`coerce` (a value as the
Python value of a remote type), :func:`json_body` (a row as the JSON body of a create or update), and the helpers
that format numbers, quoted strings, dates, times and durations for URL literals and parse the service's date-time
and time values back, plus the short body snippet that error messages quote."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

_INTS = {"Edm.Int16": 5, "Edm.Int32": 10, "Edm.Int64": 19, "Edm.Byte": 3, "Edm.SByte": 3}
_DECIMALS = {"Edm.Decimal", "Edm.Double", "Edm.Single"}
_V2_SUFFIX = {"Edm.Int64": "L", "Edm.Decimal": "M", "Edm.Double": "d", "Edm.Single": "f"}
_DATETIMES = {"Edm.DateTimeOffset", "Edm.DateTime"}
_TIMES = {"Edm.TimeOfDay", "Edm.Time"}
_V2_TIME = re.compile(r"^-?P(?:\d+D)?T?(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?$")


def coerce(value: Any, edm: str) -> Any:
    """``value`` as the Python value of remote type ``edm`` (``'123'`` for ``Edm.Int32`` is 123); ValueError when
    it is not one."""
    if edm in _INTS:
        if isinstance(value, str):
            if not re.fullmatch(r"\s*[-+]?\d+\s*", value):
                raise ValueError(value)
            return int(value)
        if isinstance(value, float | Decimal) and value != int(value):
            raise ValueError(value)
        return int(value)
    if edm in _DECIMALS:
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
            raise ValueError(value)
        number = Decimal(str(value).strip())
        if not number.is_finite() and edm == "Edm.Decimal":
            raise ValueError(value)
        return number
    if edm == "Edm.Boolean":
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if isinstance(value, bool | int) and value in (0, 1):
            return bool(value)
        raise ValueError(value)
    if edm == "Edm.Date":
        return value.date() if isinstance(value, datetime) else value if isinstance(value, date) else \
            date.fromisoformat(str(value)[:10])
    if edm in _DATETIMES:
        if isinstance(value, datetime):
            return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
        return datetime(value.year, value.month, value.day) if isinstance(value, date) else \
            _parse_datetime(str(value))
    if edm in _TIMES:
        return value.time() if isinstance(value, datetime) else value if isinstance(value, time) else \
            _parse_time(str(value))
    if edm in ("Edm.String", "Edm.Guid"):
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, datetime):
            return f"{_iso(coerce(value, 'Edm.DateTimeOffset'))}Z"
        return _number(value) if isinstance(value, float | Decimal) else \
            value.isoformat() if isinstance(value, date | time) else str(value)
    return value


def json_body(row: dict[str, Any], types: dict[str, str], version: int) -> bytes:
    """``row`` as the JSON body of a create or update, each value written as its remote type expects."""
    parts = []
    for name, value in row.items():
        try:
            parts.append(f"{json.dumps(name)}:{_json_value(value, types.get(name), version)}")
        except (ValueError, ArithmeticError):
            raise ValueError(f"{value!r} is not a valid {types.get(name)} value for {name}") from None
    return ("{" + ",".join(parts) + "}").encode()


def _json_value(value: Any, edm: str | None, version: int) -> str:
    if value is None:
        return "null"
    if edm is not None:
        value = coerce(value, edm)
    else:
        edm = _python_edm(value, version)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        text = _number(value)
        # OData 2.0 JSON writes Int64 and Decimal as strings (JavaScript numbers would lose digits).
        return json.dumps(text) if version == 2 and edm in ("Edm.Int64", "Edm.Decimal") else text
    if isinstance(value, date):
        if edm == "Edm.Date" and version == 4:
            return json.dumps(value.isoformat()[:10])
        moment = value if isinstance(value, datetime) else datetime(value.year, value.month, value.day)
        if version == 2:
            return json.dumps(f"/Date({(moment - datetime(1970, 1, 1)) // timedelta(milliseconds=1)})/")
        return json.dumps(f"{_iso(moment)}Z")
    if isinstance(value, time):
        return json.dumps(_duration(value) if version == 2 else value.isoformat())
    return json.dumps(str(value))


def _python_edm(value: Any, version: int) -> str:
    """The remote type a Python value stands for when ``$metadata`` does not say."""
    if isinstance(value, bool):
        return "Edm.Boolean"
    if isinstance(value, int):
        return "Edm.Int64"
    if isinstance(value, float | Decimal):
        return "Edm.Decimal"
    if isinstance(value, datetime):
        return "Edm.DateTimeOffset" if version == 4 else "Edm.DateTime"
    if isinstance(value, date):
        return "Edm.Date"
    if isinstance(value, time):
        return "Edm.TimeOfDay" if version == 4 else "Edm.Time"
    return "Edm.String"


def _number(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return "NaN" if math.isnan(value) else "INF" if value > 0 else "-INF"
        return repr(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(int(value))


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _iso(moment: datetime) -> str:
    """A datetime as naive UTC ``2025-01-31T10:00:00`` (with fractions only when it has them)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    spec = "seconds" if not moment.microsecond else "milliseconds" if moment.microsecond % 1000 == 0 else "microseconds"
    return moment.isoformat(timespec=spec)


def _duration(value: time) -> str:
    return f"PT{value.hour:02d}H{value.minute:02d}M{value.second:02d}S"


def _parse_datetime(text: str) -> datetime:
    """An ISO 8601 date-time (``Z``, an offset, or 7-digit fractions as .NET writes them) as naive UTC."""
    text = re.sub(r"(\.\d{6})\d+", r"\1", text.strip())
    moment = datetime.fromisoformat(text)
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _parse_time(text: str) -> time:
    match = _V2_TIME.match(text)
    if match and text.startswith("P"):
        hours, minutes, seconds = (float(part or 0) for part in match.groups())
        return time(int(hours), int(minutes), int(seconds), round(seconds % 1 * 1_000_000))
    return time.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", text))


def _snippet(body: bytes) -> str:
    return body[:300].decode("utf-8", errors="replace")


__all__ = ["coerce", "json_body"]
