"""SOQL conditions evaluated in memory, against one record's values.

Change-event channel filters (``Amount > 10000 AND StageName = 'Closed Won'``) and flow entry conditions use the
WHERE syntax people already know; they are parsed by the SOQL parser and evaluated here with SOQL's semantics
(null compares false, text compares case-insensitively) on the record's own fields.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

from interlink.errors import InterlinkError, MetadataError
from interlink.metadata.model import ObjectDef
from interlink.soql import ast


def parse_condition(entity: str, expression: str, what: str = "filter") -> ast.Condition:
    """Parse ``expression`` as the WHERE clause of a query on ``entity``; MetadataError when malformed."""
    from interlink.soql.parser import parse_soql

    try:
        query = parse_soql(f"SELECT Id FROM {entity} WHERE {expression}")
    except InterlinkError as exc:
        raise MetadataError(f"{what} for {entity} is not a valid condition: {exc.message}") from None
    assert query.where is not None
    return query.where


def check_condition_fields(obj: ObjectDef, condition: ast.Condition, source: str) -> None:
    """Conditions in memory reach the record's own fields only (no parent paths, no functions)."""
    for path in _paths(condition):
        if len(path.parts) != 1 or not obj.has_field(path.parts[0]):
            raise MetadataError(f"{source}: conditions use fields of {obj.name} itself; got {'.'.join(path.parts)}")


def _paths(condition: Any) -> Iterable[ast.FieldPath]:
    if isinstance(condition, ast.And | ast.Or):
        for item in condition.items:
            yield from _paths(item)
    elif isinstance(condition, ast.Not):
        yield from _paths(condition.item)
    elif isinstance(condition, ast.Comparison | ast.InList | ast.Includes):
        if not isinstance(condition.left, ast.FieldPath):
            raise MetadataError("conditions compare fields, not functions")
        yield condition.left
    else:
        raise MetadataError("conditions support comparisons, IN, INCLUDES, AND, OR and NOT")


def _value(values: Mapping[str, Any], name: str) -> Any:
    if name in values:
        return values[name]
    lowered = name.lower()
    return next((v for k, v in values.items() if k.lower() == lowered), None)


def _comparable(left: Any, right: Any) -> tuple[Any, Any]:
    if isinstance(left, str) and isinstance(right, str):
        return left.lower(), right.lower()
    if isinstance(left, datetime) and isinstance(right, datetime):
        return left.replace(tzinfo=None), right.replace(tzinfo=None)
    if isinstance(left, date) and isinstance(right, datetime):
        return left, right.date()
    if (not isinstance(left, bool) and isinstance(left, int | float)) or hasattr(left, "as_integer_ratio"):
        try:
            return float(left), float(right)
        except (TypeError, ValueError):
            return left, right
    return left, right


def _like(value: Any, pattern: Any) -> bool:
    if not isinstance(value, str) or not isinstance(pattern, str):
        return False
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE | re.DOTALL) is not None


def evaluate(condition: ast.Condition, values: Mapping[str, Any]) -> bool:
    """SOQL condition semantics over one record's values (null compares false, text is case-insensitive)."""
    if isinstance(condition, ast.And):
        return all(evaluate(item, values) for item in condition.items)
    if isinstance(condition, ast.Or):
        return any(evaluate(item, values) for item in condition.items)
    if isinstance(condition, ast.Not):
        return not evaluate(condition.item, values)
    assert isinstance(condition, ast.Comparison | ast.InList | ast.Includes)
    assert isinstance(condition.left, ast.FieldPath)
    actual = _value(values, condition.left.parts[0])
    if isinstance(condition, ast.Includes):
        chosen = {v.lower() for v in str(actual or "").split(";") if v}
        hit = any(all(p.lower() in chosen for p in option.split(";")) for option in condition.values)
        return hit != condition.negated
    if isinstance(condition, ast.InList):
        hit = actual is not None and any(_equal(actual, v) for v in condition.values)
        return hit != condition.negated
    op, expected = condition.op, condition.value
    if op == "=":
        return actual is None if expected is None else _equal(actual, expected)
    if op == "!=":
        return actual is not None if expected is None else not _equal(actual, expected)
    if actual is None or expected is None:
        return False
    if op == "LIKE":
        return _like(actual, expected)
    left, right = _comparable(actual, expected)
    try:
        return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]
    except TypeError:
        return False


def _equal(actual: Any, expected: Any) -> bool:
    if actual is None:
        return False
    left, right = _comparable(actual, expected)
    return bool(left == right)


__all__ = ["check_condition_fields", "evaluate", "parse_condition"]
