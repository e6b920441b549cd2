"""WHERE and HAVING: SOQL conditions compiled to SQL with the platform's two-valued logic.

``_Scope`` (the complete query level) adds conditions to the operand layer: comparisons, ``IN`` lists, relative
date literals, ``LIKE``, ``INCLUDES``/``EXCLUDES`` on multi-select picklists and semi-/anti-joins. Also here:
the root WHERE of a query (soft-delete filter, ``USING SCOPE Mine``), the semi-join placement rules, and the
join paths a WHERE clause requires or mentions.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, String, and_, false, func, literal, not_, or_, select, true

from interlink import ids
from interlink.errors import InvalidFieldError, MalformedQueryError, RequestError
from interlink.metadata.model import TEXT_TYPES, FieldType
from interlink.metadata.values import parse_time
from interlink.soql import ast
from interlink.soql.functions import (
    _ID_TYPES,
    _NUMERIC,
    AGGREGATE_FUNCTIONS,
    DATE_FUNCTIONS,
    _Fold,
    _FunctionScope,
)
from interlink.soql.scope import _is_long_text, _Operand

_LIKE_TYPES = (TEXT_TYPES - {FieldType.MULTIPICKLIST}) | _ID_TYPES
_TYPE_WORDS = {
    FieldType.INT: "integer", FieldType.DOUBLE: "double", FieldType.CURRENCY: "currency",
    FieldType.PERCENT: "double", FieldType.DATE: "date", FieldType.DATETIME: "dateTime",
    FieldType.BOOLEAN: "boolean", FieldType.TIME: "time", FieldType.ID: "id", FieldType.REFERENCE: "id",
}


def _like_pattern(text: str) -> str:
    """A SOQL LIKE pattern (``%``, ``_``, ``\\%``, ``\\_``) as a SQL LIKE pattern with ``\\`` as the escape."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text) and text[i + 1] in "%_\\":
            out.append("\\" + text[i + 1])
            i += 2
            continue
        out.append("\\\\" if char == "\\" else char)
        i += 1
    return "".join(out)


def _like_literal(text: str) -> str:
    """Escape ``text`` so LIKE matches it literally (escape character ``\\``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class _Scope(_FunctionScope):
    """One query level over one object: path resolution, joins, conditions."""

    # -- conditions ---------------------------------------------------------------------------------------------

    def condition(self, cond: ast.Condition, negate: bool = False, *, having: bool = False) -> ColumnElement[bool]:
        if isinstance(cond, ast.And | ast.Or):
            parts = [self.condition(item, negate, having=having) for item in cond.items]
            use_and = isinstance(cond, ast.And) != negate
            return and_(*parts) if use_and else or_(*parts)
        if isinstance(cond, ast.Not):
            return self.condition(cond.item, not negate, having=having)
        if isinstance(cond, ast.Comparison):
            return self._comparison(cond, negate, having)
        if isinstance(cond, ast.InList):
            return self._in_list(cond, negate, having)
        if isinstance(cond, ast.Includes):
            return self._includes(cond, negate)
        if isinstance(cond, ast.InSubquery):
            return self._semi_join(cond, negate)
        raise self.c.fail(MalformedQueryError, f"unsupported condition: {type(cond).__name__}")

    def _left(self, node: ast.FieldPath | ast.Function, having: bool) -> _Operand:
        if having:
            op = self.operand(node, aggregate_ok=True)
            if isinstance(node, ast.FieldPath) or node.name.upper() in DATE_FUNCTIONS:
                self._grouped_expr(node, op)
            return op
        if isinstance(node, ast.Function) and node.name.upper() in AGGREGATE_FUNCTIONS:
            raise self.c.fail(MalformedQueryError, "Aggregate functions are only allowed in HAVING, not in WHERE: "
                              f"{node.name}", node)
        op = self.operand(node, filtering=True)
        if _is_long_text(op.fdef):
            raise self.c.fail(InvalidFieldError, f"field '{op.fdef.name}' can not be filtered in a query call",  # type: ignore[union-attr]
                              node)
        return op

    @staticmethod
    def _finish(core: ColumnElement[bool], negate: bool, test: ColumnElement[Any] | None) -> ColumnElement[bool]:
        """``core`` is false (or SQL null) for a null field; its negation is true for one."""
        if not negate:
            return core
        if test is None:
            return not_(core)
        return or_(not_(core), test.is_(None))

    def _type_error(self, op: _Operand, node: Any) -> RequestError:
        field_name = op.fdef.name if op.fdef is not None else op.name
        if op.type in TEXT_TYPES:
            message = (f"value of filter criterion for field '{field_name}' must be of type string and should be "
                       f"enclosed in quotes")
        elif op.type in _ID_TYPES:
            message = (f"value of filter criterion for field '{field_name}' must be of type id and should be "
                       f"enclosed in quotes")
        else:
            message = (f"value of filter criterion for field '{field_name}' must be of type "
                       f"{_TYPE_WORDS.get(op.type, op.type.value)} and should not be enclosed in quotes")
        return self.c.fail(InvalidFieldError, message, node)

    def _coerce(self, op: _Operand, value: Any, node: Any) -> Any:
        """``value`` as the Python value to compare ``op`` with; raises the platform's type errors."""
        if value is None:
            return None
        if isinstance(value, ast.Bind):
            raise self.c.fail(MalformedQueryError, f"Bind variables only allowed in Apex code: :{value.name}", node)
        kind = op.type
        if kind in _ID_TYPES:
            if not isinstance(value, str):
                raise self._type_error(op, node)
            if value == "":
                return None
            normalized = ids.normalize(value)
            if normalized is None:
                raise self.c.fail(RequestError, f"invalid ID field: {value}", node,
                                  error_code="INVALID_QUERY_FILTER_OPERATOR")
            return normalized
        if kind in TEXT_TYPES:
            if not isinstance(value, str):
                raise self._type_error(op, node)
            return None if value == "" else value
        if kind is FieldType.BOOLEAN:
            if not isinstance(value, bool):
                raise self._type_error(op, node)
            return value
        if kind in _NUMERIC:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise self._type_error(op, node)
            # Bind decimals as floats (an IN list must not take its type from an integer first value) and
            # integers past 64 bits as floats too, which both databases compare correctly.
            if kind is not FieldType.INT or not -(2**63) <= value < 2**63:
                try:
                    return float(value)
                except OverflowError:
                    raise self.c.fail(MalformedQueryError, f"Invalid number: {value}", node) from None
            return value
        if kind is FieldType.DATETIME:
            if not isinstance(value, datetime):
                raise self._type_error(op, node)
            return value
        if kind is FieldType.DATE:
            if not isinstance(value, date) or isinstance(value, datetime):
                raise self._type_error(op, node)
            return value
        if kind is FieldType.TIME:
            if not isinstance(value, str):
                raise self._type_error(op, node)
            try:
                return parse_time(value)
            except ValueError:
                raise self._type_error(op, node) from None
        return value

    def _date_range(self, op: _Operand, literal: ast.DateLiteral, node: Any) -> tuple[Any, Any]:
        if op.type not in (FieldType.DATE, FieldType.DATETIME):
            raise self._type_error(op, node)
        as_dt = op.type is FieldType.DATETIME
        return (self.c.date_param(literal, end=False, as_datetime=as_dt, node=node),
                self.c.date_param(literal, end=True, as_datetime=as_dt, node=node))

    def _equals(self, op: _Operand, value: Any, node: Any) -> ColumnElement[bool]:
        """The core of ``op = value`` for a non-null, coerced ``value``."""
        if op.type is FieldType.MULTIPICKLIST:
            return self._multipicklist_equals(op.expr, value)
        if op.picklist is not None:
            return self._label_match(op, [value])
        if op.type in TEXT_TYPES:
            return func.lower(op.expr) == func.lower(literal(value, String()))
        if op.type is FieldType.BOOLEAN and value is False:
            return or_(op.expr == false(), op.expr.is_(None))
        if op.type is FieldType.BOOLEAN:
            return op.expr == true()
        return op.expr == value

    def _label_match(self, op: _Operand, labels: Sequence[str]) -> ColumnElement[bool]:
        """``toLabel(f) = 'Label'``: the values whose label (or value) matches, case-insensitively."""
        wanted = {label.lower() for label in labels}
        assert op.picklist is not None
        values = [v.value for v in op.picklist.picklist_values
                  if (v.label or v.value).lower() in wanted or v.value.lower() in wanted]
        if not values:
            return false()
        return op.expr.in_(values)

    def _comparison(self, cond: ast.Comparison, negate: bool, having: bool) -> ColumnElement[bool]:
        op = self._left(cond.left, having)
        value = cond.value
        node = cond.left
        operator = cond.op
        if operator == "LIKE":
            if op.type not in _LIKE_TYPES:
                raise self.c.fail(RequestError, f"invalid operator on {op.type.value} field: LIKE", node,
                                  error_code="INVALID_QUERY_FILTER_OPERATOR")
            if not isinstance(value, str):
                raise self._type_error(op, node)
            pattern = _like_pattern(value)
            core = func.lower(op.expr).like(func.lower(literal(pattern, String())), escape="\\")
            return self._finish(core, negate, op.expr)
        if op.type is FieldType.MULTIPICKLIST and operator not in ("=", "!="):
            raise self.c.fail(RequestError, "invalid operator on multipicklist field", node,
                              error_code="INVALID_QUERY_FILTER_OPERATOR")
        if isinstance(value, ast.DateLiteral):
            start, end = self._date_range(op, value, node)
            expr = op.expr
            cores = {
                "=": and_(expr >= start, expr < end), "!=": and_(expr >= start, expr < end),
                "<": expr < start, "<=": expr < end, ">": expr >= end, ">=": expr >= start,
            }
            return self._finish(cores[operator], negate != (operator == "!="), expr)
        coerced = self._coerce(op, value, node)
        if coerced is None:
            if operator not in ("=", "!="):
                raise self.c.fail(MalformedQueryError, f"invalid operator for a null value: {operator}", node)
            return self._finish(op.expr.is_(None), negate != (operator == "!="), None)
        if operator in ("=", "!="):
            core = self._equals(op, coerced, node)
            two_valued = op.type is FieldType.BOOLEAN and coerced is False
            return self._finish(core, negate != (operator == "!="), None if two_valued else op.expr)
        if op.type in TEXT_TYPES:
            left: ColumnElement[Any] = _Fold(op.expr)
            right: Any = _Fold(literal(coerced, String()))
        else:
            left, right = op.expr, coerced
        core = {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[operator]
        return self._finish(core, negate, op.expr)

    def _in_list(self, cond: ast.InList, negate: bool, having: bool) -> ColumnElement[bool]:
        op = self._left(cond.left, having)
        node = cond.left
        negate = negate != cond.negated
        has_null = False
        parts: list[ColumnElement[bool]] = []
        plain: list[Any] = []
        for value in cond.values:
            if isinstance(value, ast.DateLiteral):
                start, end = self._date_range(op, value, node)
                parts.append(and_(op.expr >= start, op.expr < end))
                continue
            coerced = self._coerce(op, value, node)
            if coerced is None:
                has_null = True
            else:
                plain.append(coerced)
        if plain:
            if op.picklist is not None:
                parts.append(self._label_match(op, plain))
            elif op.type is FieldType.MULTIPICKLIST:
                parts.extend(self._multipicklist_equals(op.expr, v) for v in plain)
            elif op.type in TEXT_TYPES:
                parts.append(func.lower(op.expr).in_([func.lower(literal(v, String())) for v in plain]))
            elif op.type is FieldType.BOOLEAN:
                parts.extend(self._equals(op, v, node) for v in plain)
            else:
                parts.append(op.expr.in_(plain))
        core = or_(*parts) if len(parts) != 1 else parts[0]
        if not parts:
            core = false()
        if has_null:
            # ``f IN ('a', null)``: null is one of the listed values.
            positive = or_(core, op.expr.is_(None))
            return and_(not_(core), op.expr.is_not(None)) if negate else positive
        return self._finish(core, negate, op.expr)

    def _member(self, expr: ColumnElement[Any], member: str) -> ColumnElement[bool]:
        wrapped = literal(";", String()) + func.lower(expr) + literal(";", String())
        return wrapped.like(literal("%;" + _like_literal(member.lower()) + ";%", String()), escape="\\")

    def _split_values(self, value: str) -> list[str]:
        return list(dict.fromkeys(p.strip() for p in value.split(";") if p.strip()))

    def _multipicklist_equals(self, expr: ColumnElement[Any], value: str) -> ColumnElement[bool]:
        members = self._split_values(value)
        if not members:
            return expr.is_(None)
        separators = func.length(expr) - func.length(func.replace(expr, ";", ""))
        return and_(*[self._member(expr, m) for m in members], separators == len(members) - 1)

    def _includes(self, cond: ast.Includes, negate: bool) -> ColumnElement[bool]:
        op = self._left(cond.left, False)
        if op.type is not FieldType.MULTIPICKLIST:
            raise self.c.fail(RequestError, "INCLUDES or EXCLUDES operator only valid on multipicklist field",
                              cond.left, error_code="INVALID_QUERY_FILTER_OPERATOR")
        alternatives = []
        for value in cond.values:
            if not isinstance(value, str):
                raise self._type_error(op, cond.left)
            members = self._split_values(value)
            if members:
                alternatives.append(and_(*[self._member(op.expr, m) for m in members]))
        core = or_(*alternatives) if alternatives else false()
        return self._finish(core, negate != cond.negated, op.expr)

    def _semi_join(self, cond: ast.InSubquery, negate: bool) -> ColumnElement[bool]:
        op = self._left(cond.left, False)
        if op.type not in _ID_TYPES:
            raise self.c.fail(MalformedQueryError, f"The field {cond.left.text} can't be used in a semi-join or "
                              "anti-join: it must be an Id or a reference field", cond.left)
        sub = cond.query
        obj = self.c.object_for(sub.object)
        root = self.c.new_alias(self.c.table(obj), "s")
        scope = _Scope(self.c, obj, root, sub)
        if len(sub.select) != 1 or not isinstance(sub.select[0].expr, ast.FieldPath):
            raise self.c.fail(MalformedQueryError, "A semi-join or anti-join subquery must select exactly one Id "
                              "or reference field", cond.left)
        path = sub.select[0].expr
        selected = scope.resolve(path)
        if selected.type not in _ID_TYPES:
            raise self.c.fail(MalformedQueryError, f"The selected field '{path.text}' in a semi-join or anti-join "
                              "subquery must be an Id or a reference field", path)
        where = [selected.expr.is_not(None)]
        live = scope.live(root, obj) if not sub.all_rows else scope.visible(root, obj)
        if live is not None:
            where.append(live)
        if sub.where is not None:
            _check_semi_join_placement(self.c, sub.where, inside_semi_join=True)
            where.append(scope.condition(sub.where))
        statement = select(selected.expr).select_from(scope.from_clause()).where(*where)
        return self._finish(op.expr.in_(statement), negate != cond.negated, op.expr)


def _root_where(scope: _Scope, query: ast.Query) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    live = scope.live(scope.root, scope.obj)
    if live is not None:
        where.append(live)
    if query.using_scope is not None and query.using_scope.lower() == "mine" and scope.obj.has_field("OwnerId"):
        where.append(scope.root.c.OwnerId == (scope.c.user_id or ""))
    if query.where is not None:
        _check_semi_join_placement(scope.c, query.where)
        where.append(scope.condition(query.where))
        scope.inner = _required_joins(scope, query.where)
    return where


def _check_semi_join_placement(compiler: Any, where: ast.Condition, *, inside_semi_join: bool = False) -> None:
    """The platform allows semi-/anti-joins only as top-level ``AND`` terms, and never one inside another."""

    def walk(cond: ast.Condition, top: bool) -> None:
        if isinstance(cond, ast.InSubquery):
            if inside_semi_join:
                raise compiler.fail(MalformedQueryError, "Nesting of semi join sub-selects is not supported",
                                    cond.left)
            if not top:
                raise compiler.fail(MalformedQueryError, "Semi join sub-selects are only allowed at the top level "
                                    "WHERE expressions and not in nested WHERE expressions.", cond.left)
        elif isinstance(cond, ast.And):
            for item in cond.items:
                walk(item, top)
        elif isinstance(cond, ast.Or):
            for item in cond.items:
                walk(item, False)
        elif isinstance(cond, ast.Not):
            walk(cond.item, False)

    walk(where, True)


def _required_joins(scope: _Scope, where: ast.Condition) -> set[tuple[str, ...]]:
    """Parent paths that a top-level ``AND`` term of WHERE can only be true through.

    A comparison with a null field is false, so ``Account.Code__c = 'x'`` already drops the rows without a
    (live) Account: an inner join for that path returns the same rows, and lets the database start from the
    parent's index instead of scanning the child table (SQLite keeps a LEFT JOIN's left table outermost).
    Only plain comparisons that stay false for null qualify: not ``!=``/``NOT IN``, not a null or ``''``
    value, not booleans (``= false`` matches null), not multi-select picklists, not polymorphic paths.
    """
    keys: set[tuple[str, ...]] = set()
    for cond in where.items if isinstance(where, ast.And) else (where,):
        if isinstance(cond, ast.Comparison) and cond.op != "!=":
            values: tuple[Any, ...] = (cond.value,)
        elif isinstance(cond, ast.InList) and not cond.negated:
            values = cond.values
        else:
            continue
        if not isinstance(cond.left, ast.FieldPath) or any(v is None or v is False or v == "" for v in values):
            continue
        op = scope.resolve(cond.left)
        if (op.joins and op.type not in (FieldType.BOOLEAN, FieldType.MULTIPICKLIST)
                and all(j.alias is not None for j in op.joins)):
            keys.update(j.key for j in op.joins)
    return keys


def _where_join_keys(scope: _Scope, query: ast.Query) -> set[tuple[str, ...]]:
    """The join paths the WHERE clause needs (for the cheaper COUNT statement)."""
    keys: set[tuple[str, ...]] = set()

    def visit(cond: ast.Condition) -> None:
        if isinstance(cond, ast.And | ast.Or):
            for item in cond.items:
                visit(item)
        elif isinstance(cond, ast.Not):
            visit(cond.item)
        elif isinstance(cond, ast.Comparison | ast.InList | ast.Includes | ast.InSubquery):
            operand(cond.left)

    def operand(node: ast.FieldPath | ast.Function) -> None:
        if isinstance(node, ast.FieldPath):
            keys.update(scope.resolve(node).join_keys)
        else:
            for arg in node.args:
                operand(arg)

    if query.where is not None:
        visit(query.where)
    return keys
