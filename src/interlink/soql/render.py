"""Writing SOQL text: literals quoted so no value can change the query, and the pushdown filter tree as a WHERE
clause (the cross-org adapter sends it to another org; the OData producer builds its queries with the same
quoting).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from interlink.soql.external import AllOf, AnyOf, Compare, Filter, In, Negate

_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f", '"': '\\"'}
_OPERATORS = {"eq": "=", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


def quote(text: str) -> str:
    """A SOQL string literal: ``'O\\'Brien'``."""
    return "'" + "".join(_ESCAPES.get(char, char) for char in text) + "'"


def like_pattern(text: str, *, prefix: bool, suffix: bool) -> str:
    """A LIKE literal matching ``text`` literally (``%`` and ``_`` in it escaped), with wildcards around it."""
    escaped = "".join(_ESCAPES.get(char, char) for char in text).replace("%", "\\%").replace("_", "\\_")
    return "'" + ("%" if prefix else "") + escaped + ("%" if suffix else "") + "'"


def literal(value: Any) -> str:
    """``value`` as a SOQL literal (strings quoted, dates and datetimes unquoted ISO, null, booleans)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime):
        moment = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
        return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{moment.microsecond // 1000:03d}" if moment.microsecond
                                                       else "") + "Z"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return quote(value.isoformat())
    return quote(str(value))


def render_filter(node: Filter) -> str:
    """The filter tree as a SOQL condition."""
    if isinstance(node, AllOf):
        return " AND ".join(f"({render_filter(i)})" for i in node.items) if node.items else "Id != null"
    if isinstance(node, AnyOf):
        return " OR ".join(f"({render_filter(i)})" for i in node.items) if node.items else "Id = null"
    if isinstance(node, Negate):
        return f"NOT ({render_filter(node.item)})"
    if isinstance(node, In):
        values = ", ".join(literal(v) for v in node.values)
        return f"{node.column} {'NOT IN' if node.negated else 'IN'} ({values})"
    assert isinstance(node, Compare)
    if node.op in _OPERATORS:
        return f"{node.column} {_OPERATORS[node.op]} {literal(node.value)}"
    text = str(node.value)
    pattern = like_pattern(text, prefix=node.op in ("endswith", "contains"), suffix=node.op in ("startswith",
                                                                                               "contains"))
    return f"{node.column} LIKE {pattern}"


__all__ = ["like_pattern", "literal", "quote", "render_filter"]
