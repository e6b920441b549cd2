"""Rendering Python values (from GraphQL arguments) as SOQL literals, safely.

Every value that reaches SOQL text goes through :func:`soql_literal`, which checks the value against the field's
type and escapes strings (backslashes first, then quotes and control characters), so no argument can change the
shape of the query.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from interlink.metadata.model import FieldType

NUMERIC = frozenset({FieldType.INT, FieldType.DOUBLE, FieldType.CURRENCY, FieldType.PERCENT})

_ESCAPES = {"\\": "\\\\", "'": "\\'", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b",
            "\f": "\\f"}


class LiteralError(ValueError):
    """A value that cannot be a literal of the field's type."""


def quote(text: str) -> str:
    """``text`` as a quoted SOQL string literal."""
    return "'" + "".join(_ESCAPES.get(ch, ch) for ch in text) + "'"


def soql_literal(value: Any, ftype: FieldType) -> str:
    """``value`` as a SOQL literal for a field of type ``ftype`` (``null`` for None)."""
    if value is None:
        return "null"
    if ftype is FieldType.BOOLEAN:
        if not isinstance(value, bool):
            raise LiteralError(f"expected a Boolean, got {value!r}")
        return "TRUE" if value else "FALSE"
    if ftype in NUMERIC:
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            raise LiteralError(f"expected a number, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise LiteralError(f"expected a finite number, got {value!r}")
        if ftype is FieldType.INT and isinstance(value, float) and not value.is_integer():
            raise LiteralError(f"expected an integer, got {value!r}")
        return format(Decimal(repr(value)) if isinstance(value, float) else Decimal(value), "f")
    if ftype is FieldType.DATE:
        try:
            return date.fromisoformat(str(value)).isoformat()
        except ValueError:
            raise LiteralError(f"invalid date: {value!r}") from None
    if ftype is FieldType.DATETIME:
        return _datetime_literal(value)
    if ftype is FieldType.TIME:
        try:
            parsed = time.fromisoformat(str(value).removesuffix("Z"))
        except ValueError:
            raise LiteralError(f"invalid time: {value!r}") from None
        return parsed.strftime("%H:%M:%S.") + f"{parsed.microsecond // 1000:03d}Z"
    if not isinstance(value, str):
        raise LiteralError(f"expected a String, got {value!r}")
    return quote(value)


def _datetime_literal(value: Any) -> str:
    text = str(value).strip()
    try:
        if "T" not in text and len(text) == 10:
            parsed = datetime.combine(date.fromisoformat(text), time(), UTC)
        else:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise LiteralError(f"invalid dateTime: {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    parsed = parsed.astimezone(UTC)
    millis = parsed.microsecond // 1000
    return parsed.strftime("%Y-%m-%dT%H:%M:%S") + (f".{millis:03d}Z" if millis else "Z")
