"""SOQL functions in a query level: aggregates, date functions, ``toLabel()``, and GROUP BY keys.

Holds the dialect-specific SQL functions they compile to (``_DatePart``, ``_DayOnly``, and ``_Fold`` for
case-insensitive text comparison and sorting), the value converters of their results, and ``_FunctionScope``:
the operand layer of a scope (``operand()``, ``date_function()``, ``aggregate()``, ``group_key()``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, Integer, String, distinct, func
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from interlink.errors import InvalidFieldError, MalformedQueryError
from interlink.metadata.model import NUMBER_TYPES, TEXT_TYPES, FieldDef, FieldType
from interlink.soql import ast
from interlink.soql.scope import _is_long_text, _Operand, _PathScope

AGGREGATE_FUNCTIONS = frozenset({"COUNT", "COUNT_DISTINCT", "SUM", "AVG", "MIN", "MAX"})
DATE_FUNCTIONS = frozenset({
    "CALENDAR_YEAR", "CALENDAR_QUARTER", "CALENDAR_MONTH", "DAY_IN_MONTH", "DAY_IN_WEEK", "DAY_IN_YEAR",
    "DAY_ONLY", "HOUR_IN_DAY", "WEEK_IN_MONTH", "WEEK_IN_YEAR", "FISCAL_YEAR", "FISCAL_QUARTER", "FISCAL_MONTH",
})
_DATETIME_ONLY_FUNCTIONS = frozenset({"DAY_ONLY", "HOUR_IN_DAY"})
_NUMERIC = NUMBER_TYPES | {FieldType.INT}
_ID_TYPES = frozenset({FieldType.ID, FieldType.REFERENCE})
_MINMAX_TYPES = _NUMERIC | TEXT_TYPES - {FieldType.MULTIPICKLIST, FieldType.TEXTAREA} | _ID_TYPES | {
    FieldType.DATE, FieldType.DATETIME, FieldType.TIME}


# -- dialect-specific SQL functions ------------------------------------------------------------------------------


class _DatePart(FunctionElement[int]):
    """A calendar part of a date/datetime as an integer (``CALENDAR_YEAR`` ...), compiled per dialect."""

    inherit_cache = True
    type = Integer()
    part = ""


_SQLITE_PARTS = {
    "year": "CAST(strftime('%Y', {0}) AS INTEGER)",
    "month": "CAST(strftime('%m', {0}) AS INTEGER)",
    "quarter": "((CAST(strftime('%m', {0}) AS INTEGER) + 2) / 3)",
    "day": "CAST(strftime('%d', {0}) AS INTEGER)",
    "dow": "(CAST(strftime('%w', {0}) AS INTEGER) + 1)",
    "doy": "CAST(strftime('%j', {0}) AS INTEGER)",
    "hour": "CAST(strftime('%H', {0}) AS INTEGER)",
    "week_in_month": "((CAST(strftime('%d', {0}) AS INTEGER) - 1) / 7 + 1)",
    "week_in_year": "((CAST(strftime('%j', {0}) AS INTEGER) - 1) / 7 + 1)",
}
_POSTGRES_PARTS = {
    "year": "CAST(EXTRACT(YEAR FROM {0}) AS INTEGER)",
    "month": "CAST(EXTRACT(MONTH FROM {0}) AS INTEGER)",
    "quarter": "CAST(EXTRACT(QUARTER FROM {0}) AS INTEGER)",
    "day": "CAST(EXTRACT(DAY FROM {0}) AS INTEGER)",
    "dow": "(CAST(EXTRACT(DOW FROM {0}) AS INTEGER) + 1)",
    "doy": "CAST(EXTRACT(DOY FROM {0}) AS INTEGER)",
    "hour": "CAST(EXTRACT(HOUR FROM {0}) AS INTEGER)",
    "week_in_month": "((CAST(EXTRACT(DAY FROM {0}) AS INTEGER) - 1) / 7 + 1)",
    "week_in_year": "((CAST(EXTRACT(DOY FROM {0}) AS INTEGER) - 1) / 7 + 1)",
}
_PART_CLASSES: dict[str, type[_DatePart]] = {}


def _compile_part(element: _DatePart, compiler: Any, templates: dict[str, str], **kw: Any) -> str:
    return templates[element.part].format(compiler.process(element.clauses, **kw))


for _part in _SQLITE_PARTS:
    _cls = type(f"_DatePart_{_part}", (_DatePart,), {"inherit_cache": True, "part": _part, "name": f"il_{_part}"})
    compiles(_cls, "sqlite")(lambda el, comp, **kw: _compile_part(el, comp, _SQLITE_PARTS, **kw))
    compiles(_cls)(lambda el, comp, **kw: _compile_part(el, comp, _POSTGRES_PARTS, **kw))
    _PART_CLASSES[_part] = _cls


class _DayOnly(FunctionElement[date]):
    inherit_cache = True
    type = Date()
    name = "il_day_only"


@compiles(_DayOnly, "sqlite")
def _day_only_sqlite(element: _DayOnly, compiler: Any, **kw: Any) -> str:
    return f"date({compiler.process(element.clauses, **kw)})"


@compiles(_DayOnly)
def _day_only_default(element: _DayOnly, compiler: Any, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS DATE)"


class _Fold(FunctionElement[str]):
    """``lower(x)`` compared and sorted by code point (``COLLATE "C"`` on PostgreSQL), like SQLite does."""

    inherit_cache = True
    type = String()
    name = "il_fold"


@compiles(_Fold)
def _fold_default(element: _Fold, compiler: Any, **kw: Any) -> str:
    return f"lower({compiler.process(element.clauses, **kw)})"


@compiles(_Fold, "postgresql")
def _fold_postgres(element: _Fold, compiler: Any, **kw: Any) -> str:
    return f'lower({compiler.process(element.clauses, **kw)}) COLLATE "C"'


_DATE_FUNCTION_PARTS = {
    "CALENDAR_YEAR": "year", "FISCAL_YEAR": "year", "CALENDAR_QUARTER": "quarter", "FISCAL_QUARTER": "quarter",
    "CALENDAR_MONTH": "month", "FISCAL_MONTH": "month", "DAY_IN_MONTH": "day", "DAY_IN_WEEK": "dow",
    "DAY_IN_YEAR": "doy", "HOUR_IN_DAY": "hour", "WEEK_IN_MONTH": "week_in_month", "WEEK_IN_YEAR": "week_in_year",
}


def _int_out(value: Any) -> Any:
    return None if value is None else int(value)


def _float_out(value: Any) -> Any:
    return None if value is None else float(value)


def _date_out(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def _label_converter(fdef: FieldDef) -> Callable[[Any], Any]:
    labels = {v.value: v.label or v.value for v in fdef.picklist_values}
    if fdef.type is FieldType.MULTIPICKLIST:
        return lambda value: None if value is None else ";".join(labels.get(p, p) for p in value.split(";"))
    return lambda value: None if value is None else labels.get(value, value)


class _FunctionScope(_PathScope):
    """A query level's operands: field paths plus function calls, and the keys of GROUP BY."""

    # -- operands in conditions, GROUP BY, ORDER BY -----------------------------------------------------------

    def operand(self, node: ast.FieldPath | ast.Function, *, filtering: bool = False,
                aggregate_ok: bool = False) -> _Operand:
        if isinstance(node, ast.FieldPath):
            return self.resolve(node, filtering=filtering)
        name = node.name.upper()
        if name in AGGREGATE_FUNCTIONS:
            if not aggregate_ok:
                raise self.c.fail(MalformedQueryError, "Aggregate functions are not allowed in this clause: "
                                  f"{name}", node)
            return self.aggregate(node)
        if name in DATE_FUNCTIONS:
            return self.date_function(node)
        if name == "TOLABEL":
            arg = self._single_field_arg(node)
            op = self.resolve(arg, filtering=filtering)
            if op.type not in (FieldType.PICKLIST, FieldType.MULTIPICKLIST) or op.fdef is None:
                raise self.c.fail(MalformedQueryError, f"toLabel() can only be applied to a picklist field: "
                                  f"{arg.text}", node)
            op.picklist = op.fdef
            op.convert = _label_converter(op.fdef)
            return op
        if name == "CONVERTCURRENCY":
            raise self.c.fail(MalformedQueryError, "convertCurrency() is not supported: this org does not have "
                              "multiple currencies enabled", node)
        if name == "FORMAT":
            raise self.c.fail(MalformedQueryError, "FORMAT() is not supported yet: values are returned in the "
                              "API's standard formats", node)
        if name == "CONVERTTIMEZONE":
            raise self.c.fail(MalformedQueryError, "convertTimezone() is not supported: dates and times are in UTC",
                              node)
        raise self.c.fail(MalformedQueryError, f"Unknown function: {node.name}", node)

    def _single_field_arg(self, node: ast.Function) -> ast.FieldPath:
        if len(node.args) != 1 or not isinstance(node.args[0], ast.FieldPath):
            raise self.c.fail(MalformedQueryError, f"{node.name}() takes exactly one field argument", node)
        return node.args[0]

    def date_function(self, node: ast.Function) -> _Operand:
        name = node.name.upper()
        inner = node.args[0] if len(node.args) == 1 else None
        if isinstance(inner, ast.Function) and inner.name.upper() == "CONVERTTIMEZONE":
            inner = inner.args[0] if len(inner.args) == 1 else None  # users are in UTC: a no-op
        if not isinstance(inner, ast.FieldPath):
            raise self.c.fail(MalformedQueryError, f"{node.name}() takes exactly one field argument", node)
        op = self.resolve(inner)
        allowed = {FieldType.DATETIME} if name in _DATETIME_ONLY_FUNCTIONS else {FieldType.DATE, FieldType.DATETIME}
        if op.type not in allowed:
            kind = "dateTime" if name in _DATETIME_ONLY_FUNCTIONS else "date or dateTime"
            raise self.c.fail(InvalidFieldError, f"Invalid field {inner.text} for function {name}: it needs a "
                              f"{kind} field", node)
        text = f"{name}({inner.text})"
        if name == "DAY_ONLY":
            return _Operand(_DayOnly(op.expr), FieldType.DATE, text, None, None, op.joins, op.join_keys, _date_out)
        expr = _PART_CLASSES[_DATE_FUNCTION_PARTS[name]](op.expr)
        return _Operand(expr, FieldType.INT, text, None, None, op.joins, op.join_keys, _int_out)

    def aggregate(self, node: ast.Function) -> _Operand:
        name = node.name.upper()
        if not node.args:
            if name == "COUNT":
                return _Operand(func.count(), FieldType.INT, "COUNT()", convert=_int_out)
            raise self.c.fail(MalformedQueryError, f"{name}() needs a field", node)
        arg = node.args[0]
        if len(node.args) != 1 or not isinstance(arg, ast.FieldPath):
            raise self.c.fail(MalformedQueryError, f"{name}() takes exactly one field argument", node)
        op = self.resolve(arg)
        text = f"{name}({arg.text})"
        if _is_long_text(op.fdef):
            raise self.c.fail(InvalidFieldError, f"field {arg.text} does not support aggregate operator {name}", node)
        if name == "COUNT":
            return _Operand(func.count(op.expr), FieldType.INT, text, None, None, op.joins, op.join_keys, _int_out)
        if name == "COUNT_DISTINCT":
            return _Operand(func.count(distinct(op.expr)), FieldType.INT, text, None, None, op.joins, op.join_keys,
                            _int_out)
        if name in ("SUM", "AVG"):
            if op.type not in _NUMERIC:
                raise self.c.fail(MalformedQueryError, f"field {arg.text} does not support aggregate operator "
                                  f"{name}", node)
            if name == "AVG":
                return _Operand(func.avg(op.expr), FieldType.DOUBLE, text, None, None, op.joins, op.join_keys,
                                _float_out)
            kind = FieldType.INT if op.type is FieldType.INT else FieldType.DOUBLE
            return _Operand(func.sum(op.expr), kind, text, None, None, op.joins, op.join_keys,
                            _int_out if kind is FieldType.INT else _float_out)
        if op.type not in _MINMAX_TYPES:
            raise self.c.fail(MalformedQueryError, f"field {arg.text} does not support aggregate operator {name}",
                              node)
        sql = func.min(op.expr) if name == "MIN" else func.max(op.expr)
        return _Operand(sql, op.type, text, op.fdef, op.owner, op.joins, op.join_keys, op.convert)

    # -- grouping -------------------------------------------------------------------------------------------------

    def group_key(self, node: ast.FieldPath | ast.Function) -> tuple[Any, ...]:
        if isinstance(node, ast.FieldPath):
            return ("field", ".".join(p.lower() for p in self._strip(node)))
        args = tuple(".".join(p.lower() for p in self._strip(a)) if isinstance(a, ast.FieldPath) else repr(a)
                     for a in node.args)
        return ("function", node.name.upper(), args)

    def _grouped_expr(self, node: ast.FieldPath | ast.Function, op: _Operand) -> None:
        if self.groups is None or self.group_key(node) not in self.groups:
            text = node.text if isinstance(node, ast.FieldPath) else op.name
            raise self.c.fail(MalformedQueryError, f"Field must be grouped or aggregated: {text}", node)
