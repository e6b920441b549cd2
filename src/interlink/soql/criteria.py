"""A sharing rule's criteria items (``field``, ``operation``, ``value``, as SFDX source and the Setup page hold them)
as one SOQL condition, which the deploy then compiles like a YAML rule's ``criteria``.

Items are ANDed, or combined as the rule's ``booleanFilter`` says (``1 AND (2 OR 3)``); a value with commas is any
of its parts (``equals`` ``Energy,Retail`` is ``IN ('Energy', 'Retail')``), as on the platform. Values are typed by
the field (numbers and booleans bare, text quoted with :func:`interlink.soql.render.quote`), so no value can change
the condition's shape.
"""

from __future__ import annotations

import re
from datetime import datetime

from interlink.errors import MetadataError
from interlink.metadata.model import FieldType, ObjectDef
from interlink.soql.render import like_pattern, quote

__all__ = ["criteria_condition"]

_COMPARISONS = {"equals": "=", "notEqual": "!=", "lessThan": "<", "greaterThan": ">", "lessOrEqual": "<=",
                "greaterOrEqual": ">="}
_LIKES = {"contains": (True, True), "notContain": (True, True), "startsWith": (False, True)}
_NUMBERS = frozenset({FieldType.INT, FieldType.DOUBLE, FieldType.CURRENCY, FieldType.PERCENT})
_FILTER_TOKEN = re.compile(r"\s*(\d+|AND\b|OR\b|NOT\b|\(|\))", re.IGNORECASE)
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?(Z|[+-]\d{2}:?\d{2})$")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")


def criteria_condition(items: list[tuple[str, str, str]], boolean_filter: str | None, obj: ObjectDef | None,
                       object_name: str, where: str) -> str:
    """The SOQL condition of a criteria rule's ``(field, operation, value)`` items, combined by ``boolean_filter``
    (``1 AND (2 OR 3)``; all items ANDed without one). Values are typed by ``obj``'s fields."""
    if not items:
        raise MetadataError(f"{where}: a criteria rule needs <criteriaItems>")
    conditions = [_item(field_name, operation, value, obj, object_name, f"{where}: criteriaItems[{index + 1}]")
                  for index, (field_name, operation, value) in enumerate(items)]
    if not boolean_filter:
        return " AND ".join(f"({c})" for c in conditions) if len(conditions) > 1 else conditions[0]
    return _combine(boolean_filter, conditions, f"{where}: <booleanFilter>")


def _combine(boolean_filter: str, conditions: list[str], where: str) -> str:
    parts: list[str] = []
    position, depth = 0, 0
    text = boolean_filter.strip()
    while position < len(text):
        match = _FILTER_TOKEN.match(text, position)
        if match is None:
            raise MetadataError(f"{where}: cannot read {text!r} at {text[position:]!r}: use item numbers, AND, OR, "
                                "NOT and parentheses")
        token = match.group(1).upper()
        position = match.end()
        if token.isdigit():
            number = int(token)
            if not 1 <= number <= len(conditions):
                raise MetadataError(f"{where}: {text!r} names item {number}; there are {len(conditions)}")
            parts.append(f"({conditions[number - 1]})")
            continue
        depth += {"(": 1, ")": -1}.get(token, 0)
        if depth < 0:
            raise MetadataError(f"{where}: unbalanced parentheses in {text!r}")
        parts.append(token)
        while position < len(text) and text[position].isspace():
            position += 1
    if depth:
        raise MetadataError(f"{where}: unbalanced parentheses in {text!r}")
    return " ".join(parts).replace("( ", "(").replace(" )", ")")


def _item(field_name: str, operation: str, value: str, obj: ObjectDef | None, object_name: str,
          where: str) -> str:
    if field_name.lower().startswith(object_name.lower() + "."):
        field_name = field_name[len(object_name) + 1:]
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", field_name):
        raise MetadataError(f"{where}: <field> is a field of {object_name}, got {field_name!r}")
    fdef = obj.field(field_name) if obj is not None else None
    kind = fdef.type if fdef is not None else FieldType.STRING
    values = [part.strip() for part in value.split(",")] if value else []
    if operation not in _COMPARISONS and operation not in _LIKES and operation not in ("includes", "excludes"):
        raise MetadataError(f"{where}: operation {operation!r} is not supported; use equals, notEqual, lessThan, "
                            "greaterThan, lessOrEqual, greaterOrEqual, contains, notContain, startsWith, includes "
                            "or excludes")
    operator = _COMPARISONS.get(operation, "")
    if not values:  # an empty value: the field is (not) blank
        if operator in ("=", "!="):
            return f"{field_name} {operator} null"
        raise MetadataError(f"{where}: {operation} needs a <value>")
    if operator:
        literals = [_literal(part, kind, where) for part in values]
        if len(literals) == 1:
            return f"{field_name} {operator} {literals[0]}"
        if operator in ("=", "!="):
            return f"{field_name} {'IN' if operator == '=' else 'NOT IN'} ({', '.join(literals)})"
        return " OR ".join(f"{field_name} {operator} {literal}" for literal in literals)
    if operation in _LIKES:
        prefix, suffix = _LIKES[operation]
        likes = [f"{field_name} LIKE {like_pattern(part, prefix=prefix, suffix=suffix)}" for part in values]
        if operation == "notContain":
            return " AND ".join(f"(NOT {like})" for like in likes)
        return " OR ".join(likes)
    return f"{field_name} {operation.upper()} ({', '.join(quote(part) for part in values)})"


def _literal(text: str, kind: FieldType, where: str) -> str:
    """``text`` as a SOQL literal of a field of type ``kind``."""
    if kind is FieldType.BOOLEAN:
        if text.lower() not in ("true", "false"):
            raise MetadataError(f"{where}: a checkbox is compared with true or false, got {text!r}")
        return text.lower()
    if kind in _NUMBERS:
        if not _NUMBER.match(text):
            raise MetadataError(f"{where}: a number field is compared with a number, got {text!r}")
        return text
    if kind is FieldType.DATE:
        return _date(text, where)
    if kind is FieldType.DATETIME:
        if _ISO_DATETIME.match(text):
            return text
        return _date(text, where) + "T00:00:00Z"
    return quote(text)


def _date(text: str, where: str) -> str:
    if _ISO_DATE.match(text):
        return text
    try:  # the Setup page's M/D/YYYY, as retrieved
        return datetime.strptime(text, "%m/%d/%Y").date().isoformat()
    except ValueError:
        raise MetadataError(f"{where}: a date is YYYY-MM-DD or M/D/YYYY, got {text!r}") from None
