"""The SOQL compiler: a syntax tree (:class:`~interlink.soql.ast.Query`) to SQLAlchemy Core, plus a row plan.

``compile_query`` resolves every name against the org's :class:`Schema` (case-insensitively, quoting the
user's spelling in errors, as the platform does) and produces a :class:`CompiledQuery`:

- ``statement``: the ordered main ``SELECT`` without paging (the engine adds ``LIMIT``/``OFFSET`` per page). Its
  ``ORDER BY`` always ends with a deterministic tiebreak (the record ``Id``; the group keys for aggregates), so
  pages of a re-executed plan are stable.
- ``count_statement``: ``SELECT count(*)`` over the same filter, for ``totalSize`` when a page is full.
- ``shape`` / ``columns``: where each output value sits in a result row, and how to render it (the platform's
  JSON formatting from :mod:`interlink.metadata.values`).
- ``children``: one statement per child relationship subquery, run once per page with the page's parent ids.

Design notes:

- Parent paths (``Account.Owner.Name``, up to 5 relationships) become ``LEFT OUTER JOIN``\\s on aliased tables,
  one per distinct path. A polymorphic relationship (``Task.What``) joins each target object that has the asked
  field and ``COALESCE``\\s them (ids are unique across objects, so at most one matches); ``Type`` comes from the
  id's key prefix and ``Name`` from each target's name field. Polymorphic paths stop there: no deeper paths
  (``TYPEOF`` selects per-type fields).
- Conditions use the platform's two-valued logic: a comparison with a null field is false, so ``f != 'x'``,
  ``NOT IN``, ``EXCLUDES`` and ``NOT (...)`` match records where ``f`` is null. Text ``=``/``IN``/``LIKE`` are
  case-insensitive (``lower()`` on both sides, which the ``lower(column)`` indexes on unique and external-id
  fields serve); ids are normalised to 18 characters and compared exactly, so the primary key and lookup indexes
  serve them.
- Relative date literals become named bind parameters whose values :meth:`CompiledQuery.parameters` computes
  for the current day, so a cached plan stays right across midnight.
- ``ROLLUP``/``CUBE`` run as a ``UNION ALL`` of one grouped ``SELECT`` per grouping set on both dialects
  (SQLite has no ``ROLLUP``); subtotal rows sort after the rows they total, as on the platform.
- Values only ever reach SQL as bound parameters; identifiers come from metadata, never from query text.
- ``WITH SECURITY_ENFORCED`` / ``WITH USER_MODE`` are accepted and have no effect until the security model
  (object and field permissions, sharing) exists; ``FOR VIEW/REFERENCE/UPDATE`` are accepted and ignored.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Date,
    DateTime,
    FromClause,
    Integer,
    Select,
    String,
    Table,
    and_,
    bindparam,
    case,
    distinct,
    false,
    func,
    literal,
    not_,
    null,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.visitors import replacement_traverse

from interlink import ids
from interlink.errors import InvalidFieldError, InvalidTypeError, MalformedQueryError, RequestError
from interlink.metadata.describe import NOT_GROUPABLE_TYPES, SHORT_TEXT_LIMIT
from interlink.metadata.model import NUMBER_TYPES, TEXT_TYPES, FieldDef, FieldType, ObjectDef, Schema
from interlink.metadata.values import parse_time, wire_plan
from interlink.soql import ast
from interlink.soql.dates import UnknownDateLiteral, as_datetimes, resolve

MAX_OFFSET = 2000
MAX_FIELDS_MACRO_LIMIT = 200
MAX_RELATIONSHIP_DEPTH = 5

AGGREGATE_FUNCTIONS = frozenset({"COUNT", "COUNT_DISTINCT", "SUM", "AVG", "MIN", "MAX"})
DATE_FUNCTIONS = frozenset({
    "CALENDAR_YEAR", "CALENDAR_QUARTER", "CALENDAR_MONTH", "DAY_IN_MONTH", "DAY_IN_WEEK", "DAY_IN_YEAR",
    "DAY_ONLY", "HOUR_IN_DAY", "WEEK_IN_MONTH", "WEEK_IN_YEAR", "FISCAL_YEAR", "FISCAL_QUARTER", "FISCAL_MONTH",
})
_DATETIME_ONLY_FUNCTIONS = frozenset({"DAY_ONLY", "HOUR_IN_DAY"})
_NUMERIC = NUMBER_TYPES | {FieldType.INT}
_ID_TYPES = frozenset({FieldType.ID, FieldType.REFERENCE})
_LIKE_TYPES = (TEXT_TYPES - {FieldType.MULTIPICKLIST}) | _ID_TYPES
_MINMAX_TYPES = _NUMERIC | TEXT_TYPES - {FieldType.MULTIPICKLIST, FieldType.TEXTAREA} | _ID_TYPES | {
    FieldType.DATE, FieldType.DATETIME, FieldType.TIME}
_TYPE_WORDS = {
    FieldType.INT: "integer", FieldType.DOUBLE: "double", FieldType.CURRENCY: "currency",
    FieldType.PERCENT: "double", FieldType.DATE: "date", FieldType.DATETIME: "dateTime",
    FieldType.BOOLEAN: "boolean", FieldType.TIME: "time", FieldType.ID: "id", FieldType.REFERENCE: "id",
}


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


# -- the compiled plan -------------------------------------------------------------------------------------------


Converter = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class FieldOut:
    """One output value: ``record[key] = convert(row[index])``."""

    key: str
    index: int
    convert: Converter = None


@dataclass(slots=True)
class ParentOut:
    """A nested parent record; null when ``row[id_index]`` is null.

    ``type_name`` is None for a polymorphic relationship: the type comes from the id's key prefix.
    """

    key: str
    id_index: int
    type_name: str | None
    prefixes: Mapping[str, str]
    items: list[Out] = field(default_factory=list)


@dataclass(slots=True)
class TypeOfOut:
    """``TYPEOF rel WHEN A THEN ... ELSE ... END``: the nested record's fields depend on the parent's type."""

    key: str
    id_index: int
    prefixes: Mapping[str, str]
    variants: dict[str, list[FieldOut]]
    otherwise: list[FieldOut]


@dataclass(frozen=True, slots=True)
class ChildOut:
    """A child relationship block: ``CompiledQuery.children[child]`` grouped by this record's id."""

    key: str
    child: int


Out = FieldOut | ParentOut | TypeOfOut | ChildOut


@dataclass(slots=True)
class RecordShape:
    type_name: str
    id_index: int
    items: list[Out]


@dataclass
class ChildPlan:
    """One child relationship subquery: run with ``parent_ids`` bound to the page's parent record ids."""

    key: str
    object: ObjectDef
    statement: Select[Any]
    parent_index: int
    shape: RecordShape


@dataclass(frozen=True)
class DateParam:
    """A bind parameter holding one end of a relative date literal's range."""

    name: str
    literal: ast.DateLiteral
    end: bool
    as_datetime: bool


@dataclass
class CompiledQuery:
    kind: Literal["records", "aggregate", "count"]
    object: ObjectDef
    statement: Select[Any]
    count_statement: Select[Any]
    limit: int | None
    offset: int
    shape: RecordShape | None = None
    columns: list[FieldOut] = field(default_factory=list)
    children: list[ChildPlan] = field(default_factory=list)
    date_params: list[DateParam] = field(default_factory=list)
    filter_fields: list[str] = field(default_factory=list)
    fiscal_start_month: int = 1
    notes: list[str] = field(default_factory=list)

    def parameters(self, today: date) -> dict[str, Any]:
        """Bind values for the relative date literals, for the given current (UTC) date."""
        values: dict[str, Any] = {}
        for param in self.date_params:
            bounds = resolve(param.literal, today, fiscal_start_month=self.fiscal_start_month)
            if param.as_datetime:
                bounds = as_datetimes(bounds)  # type: ignore[assignment]
            values[param.name] = bounds[1] if param.end else bounds[0]
        return values


# -- errors --------------------------------------------------------------------------------------------------


def positioned(message: str, text: str, line: int, column: int) -> str:
    """The platform's error text: the query line, a caret under the column, ``ERROR at Row:r:Column:c``."""
    if not text or line <= 0 or column <= 0:
        return message
    lines = text.splitlines() or [text]
    shown = lines[line - 1] if line <= len(lines) else text
    return f"\n{shown}\n{' ' * (column - 1)}^\nERROR at Row:{line}:Column:{column}\n{message}"


def _no_such_column(name: str, obj_name: str) -> str:
    return (f"No such column '{name}' on entity '{obj_name}'. If you are attempting to use a custom field, be sure "
            f"to append the '__c' after the custom field name. Please reference your WSDL or the describe call for "
            f"the appropriate names.")


def _bad_relationship(name: str) -> str:
    return (f"Didn't understand relationship '{name}' in field path. If you are attempting to use a custom "
            f"relationship, be sure to append the '__r' after the custom relationship name. Please reference your "
            f"WSDL or the describe call for the appropriate names.")


def _unsupported_type(name: str) -> str:
    return (f"sObject type '{name}' is not supported. If you are attempting to use a custom object, be sure to "
            f"append the '__c' after the entity name. Please reference your WSDL or the describe call for the "
            f"appropriate names.")


def _bad_child_relationship(name: str) -> str:
    return (f"Didn't understand relationship '{name}' in FROM part of query call. If you are attempting to use a "
            f"custom relationship, be sure to append the '__r' after the custom relationship name. Please reference "
            f"your WSDL or the describe call for the appropriate names.")


# -- compilation ---------------------------------------------------------------------------------------------


@dataclass
class _Join:
    key: tuple[str, ...]
    relationship: str
    fdef: FieldDef
    fk: ColumnElement[Any]
    obj: ObjectDef | None  # None: polymorphic
    alias: FromClause | None = None
    on: ColumnElement[bool] | None = None
    parent: _Join | None = None
    targets: dict[str, tuple[ObjectDef, FromClause, ColumnElement[bool], tuple[str, ...]]] = field(
        default_factory=dict)

    @property
    def polymorphic(self) -> bool:
        return self.obj is None


@dataclass
class _Operand:
    """A resolved field, function or aggregate: its SQL, its type and how to render it."""

    expr: ColumnElement[Any]
    type: FieldType
    name: str  # as the user wrote it, for messages
    fdef: FieldDef | None = None
    owner: ObjectDef | None = None
    joins: tuple[_Join, ...] = ()
    join_keys: tuple[tuple[str, ...], ...] = ()
    convert: Converter = None
    polymorphic_type: bool = False
    picklist: FieldDef | None = None  # toLabel(field)


def _converter(obj: ObjectDef, fdef: FieldDef) -> Converter:
    for name, convert in wire_plan(obj):
        if name == fdef.name:
            return convert
    return None


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


def _is_long_text(fdef: FieldDef | None) -> bool:
    return fdef is not None and fdef.type is FieldType.TEXTAREA and fdef.length > SHORT_TEXT_LIMIT


class _Compiler:
    """State shared by a query and its subqueries: schema, tables, bind-parameter and alias counters."""

    def __init__(self, schema: Schema, tables: Mapping[str, Table], *, include_deleted: bool, text: str,
                 user_id: str | None) -> None:
        self.schema = schema
        self.tables = tables
        self.include_deleted = include_deleted
        self.text = text
        self.user_id = user_id
        self.date_params: list[DateParam] = []
        self._aliases = itertools.count()
        self._relationships: dict[str, dict[str, FieldDef]] = {}

    # errors

    def fail(self, cls: type[RequestError], message: str, node: Any = None, *, error_code: str | None = None,
             position: tuple[int, int] | None = None) -> RequestError:
        line, column = position or (getattr(node, "line", 0), getattr(node, "column", 0))
        return cls(positioned(message, self.text, line, column), error_code=error_code)

    # names

    def new_alias(self, table: Table, prefix: str) -> FromClause:
        return table.alias(f"{prefix}{next(self._aliases)}")

    def table(self, obj: ObjectDef) -> Table:
        return self.tables[obj.name.lower()]

    def relationship(self, obj: ObjectDef, name: str) -> FieldDef | None:
        index = self._relationships.get(obj.name)
        if index is None:
            index = {f.relationship_name.lower(): f for f in obj.reference_fields if f.relationship_name}
            self._relationships[obj.name] = index
        return index.get(name.lower())

    def object_for(self, name: str) -> ObjectDef:
        obj = self.schema.object(name)
        if obj is None or not obj.queryable or name.lower() not in self.tables:
            raise self.fail(InvalidTypeError, _unsupported_type(name), position=self._locate_from(name))
        return obj

    def _locate_from(self, name: str) -> tuple[int, int]:
        """Row and column of ``FROM name`` at parenthesis depth 0 (the AST has no position for it)."""
        text = self.text
        if not text:
            return 0, 0
        depth = 0
        in_string = False
        i = 0
        pattern = re.compile(r"FROM\s+" + re.escape(name) + r"\b", re.IGNORECASE)
        while i < len(text):
            char = text[i]
            if in_string:
                if char == "\\":
                    i += 2
                    continue
                if char == "'":
                    in_string = False
            elif char == "'":
                in_string = True
            elif char == "(":
                depth += 1
            elif char == ")":
                depth -= 1
            elif depth == 0 and char in "fF":
                match = pattern.match(text, i)
                if match and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
                    start = match.end() - len(name)
                    line = text.count("\n", 0, start) + 1
                    column = start - (text.rfind("\n", 0, start) + 1) + 1
                    return line, column
            i += 1
        return 0, 0

    # date literals

    def date_param(self, literal: ast.DateLiteral, *, end: bool, as_datetime: bool, node: Any) -> Any:
        try:
            resolve(literal, date(2000, 1, 1))
        except UnknownDateLiteral:
            raise self.fail(MalformedQueryError, f"unexpected token: {literal.name}", node) from None
        name = f"il_date_{len(self.date_params)}"
        self.date_params.append(DateParam(name, literal, end, as_datetime))
        return bindparam(name, type_=DateTime() if as_datetime else Date())


class _Scope:
    """One query level over one object: path resolution, joins, conditions."""

    def __init__(self, compiler: _Compiler, obj: ObjectDef, root: FromClause, query: ast.Query,
                 *, prefixes: Sequence[str] = ()) -> None:
        self.c = compiler
        self.obj = obj
        self.root = root
        self.query = query
        self.prefixes = {p.lower() for p in (*prefixes, query.alias, obj.name) if p}
        self.joins: dict[tuple[str, ...], _Join] = {}
        self.inner: set[tuple[str, ...]] = set()  # parent paths the WHERE clause requires (see _required_joins)
        self.filter_fields: list[str] = []
        # Aggregate context: group key -> expression (None outside aggregate queries).
        self.groups: dict[tuple[Any, ...], ColumnElement[Any]] | None = None

    # -- from clause ----------------------------------------------------------------------------------------

    def live(self, table: FromClause, obj: ObjectDef) -> ColumnElement[bool] | None:
        if self.c.include_deleted or not obj.has_field("IsDeleted"):
            return None
        return table.c.IsDeleted.is_not(True)

    def from_clause(self, keys: set[tuple[str, ...]] | None = None) -> FromClause:
        """The root joined with every parent path (or only those in ``keys`` and their ancestors)."""
        needed: set[tuple[str, ...]] | None = None
        if keys is not None:
            needed = set()
            for key in keys:
                for size in range(1, len(key) + 1):
                    needed.add(key[:size])
        result: FromClause = self.root
        for join in self.joins.values():
            if join.alias is not None and (needed is None or join.key in needed):
                attach = result.join if join.key in self.inner else result.outerjoin  # type: ignore[attr-defined]
                result = attach(join.alias, join.on)
            for target_key_obj in join.targets.values():
                _obj, alias, on, key = target_key_obj
                if needed is None or key in needed:
                    result = result.outerjoin(alias, on)  # type: ignore[attr-defined]
        return result

    def _join(self, parent: _Join | None, fdef: FieldDef, key: tuple[str, ...]) -> _Join:
        existing = self.joins.get(key)
        if existing is not None:
            return existing
        holder = parent.alias if parent is not None else self.root
        fk = holder.c[fdef.name]  # type: ignore[union-attr]
        targets = [t for t in (self.c.schema.object(name) for name in fdef.reference_to) if t is not None]
        if len(fdef.reference_to) == 1 and targets:
            target = targets[0]
            alias = self.c.new_alias(self.c.table(target), "p")
            on = alias.c.Id == fk
            live = self.live(alias, target)
            join = _Join(key, fdef.relationship_name or fdef.name, fdef, fk, target, alias,
                         on if live is None else and_(on, live), parent)
        else:
            join = _Join(key, fdef.relationship_name or fdef.name, fdef, fk, None, None, None, parent)
        self.joins[key] = join
        return join

    def _target(self, join: _Join, target: ObjectDef) -> FromClause:
        found = join.targets.get(target.name)
        if found is None:
            alias = self.c.new_alias(self.c.table(target), "p")
            on = alias.c.Id == join.fk
            live = self.live(alias, target)
            found = (target, alias, on if live is None else and_(on, live), (*join.key, target.name.lower()))
            join.targets[target.name] = found
        return found[1]

    def prefixes_for(self, join: _Join) -> dict[str, str]:
        result = {}
        for name in join.fdef.reference_to:
            target = self.c.schema.object(name)
            if target is not None:
                result[target.key_prefix] = target.name
        return result

    # -- paths --------------------------------------------------------------------------------------------------

    def _strip(self, path: ast.FieldPath) -> list[str]:
        parts = list(path.parts)
        if len(parts) > 1 and parts[0].lower() in self.prefixes and self.c.relationship(self.obj, parts[0]) is None:
            parts = parts[1:]
        return parts

    def resolve(self, path: ast.FieldPath, *, filtering: bool = False) -> _Operand:
        parts = self._strip(path)
        if len(parts) - 1 > MAX_RELATIONSHIP_DEPTH:
            raise self.c.fail(MalformedQueryError, f"Cannot follow more than {MAX_RELATIONSHIP_DEPTH} levels of "
                              f"relationships in field path: {path.text}", path)
        obj = self.obj
        join: _Join | None = None
        chain: list[_Join] = []
        key: tuple[str, ...] = ()
        for rel in parts[:-1]:
            fdef = None if join is not None and join.polymorphic else self.c.relationship(obj, rel)
            if fdef is None:
                raise self.c.fail(InvalidFieldError, _bad_relationship(rel), path)
            key = (*key, rel.lower())
            join = self._join(join, fdef, key)
            chain.append(join)
            if join.obj is not None:
                obj = join.obj
        last = parts[-1]
        keys = tuple(j.key for j in chain)
        if join is not None and join.polymorphic:
            return self._polymorphic_field(join, last, path, tuple(chain))
        fdef = obj.field(last)
        if fdef is None:
            raise self.c.fail(InvalidFieldError, _no_such_column(last, obj.name), path)
        holder = join.alias if join is not None else self.root
        if filtering and join is None:
            self.filter_fields.append(fdef.name)
        return _Operand(holder.c[fdef.name], fdef.type, path.text, fdef, obj, tuple(chain), keys,  # type: ignore[union-attr]
                        _converter(obj, fdef))

    def _polymorphic_field(self, join: _Join, name: str, path: ast.FieldPath,
                           chain: tuple[_Join, ...]) -> _Operand:
        lowered = name.lower()
        keys = tuple(j.key for j in chain)
        targets = [t for t in (self.c.schema.object(n) for n in join.fdef.reference_to) if t is not None]
        if lowered == "id":
            id_def = FieldDef("Id", FieldType.ID)
            return _Operand(join.fk, FieldType.ID, path.text, id_def, None, chain, keys)
        if lowered == "type":
            prefix_case = case(self.prefixes_for(join), value=func.substr(join.fk, 1, 3), else_=null())
            type_def = FieldDef("Type", FieldType.STRING)
            return _Operand(prefix_case, FieldType.STRING, path.text, type_def, None, chain, keys,
                            polymorphic_type=True)
        found: list[tuple[ObjectDef, FieldDef]] = []
        for target in targets:
            fdef = target.name_field if lowered == "name" else target.field(name)
            if fdef is not None:
                found.append((target, fdef))
        if not found:
            raise self.c.fail(InvalidFieldError, _no_such_column(name, "Name"), path)
        first_obj, first = found[0]
        columns = []
        target_keys = []
        for target, fdef in found:
            alias = self._target(join, target)
            columns.append(alias.c[fdef.name])
            target_keys.append(join.targets[target.name][3])
        expr = columns[0] if len(columns) == 1 else func.coalesce(*columns)
        out_def = FieldDef("Name" if lowered == "name" else first.name, first.type)
        return _Operand(expr, first.type, path.text, out_def, first_obj, chain, (*keys, *target_keys),
                        _converter(first_obj, first))

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
        live = scope.live(root, obj) if not sub.all_rows else None
        if live is not None:
            where.append(live)
        if sub.where is not None:
            _check_semi_join_placement(self.c, sub.where, inside_semi_join=True)
            where.append(scope.condition(sub.where))
        statement = select(selected.expr).select_from(scope.from_clause()).where(*where)
        return self._finish(op.expr.in_(statement), negate != cond.negated, op.expr)

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


# -- select lists ----------------------------------------------------------------------------------------------


class _Columns:
    def __init__(self) -> None:
        self.items: list[ColumnElement[Any]] = []

    def add(self, expr: ColumnElement[Any]) -> int:
        self.items.append(expr)
        return len(self.items) - 1

    def labelled(self) -> list[ColumnElement[Any]]:
        return [expr.label(f"c{i}") for i, expr in enumerate(self.items)]


def _check_paging(compiler: _Compiler, query: ast.Query) -> tuple[int | None, int]:
    limit, offset = query.limit, query.offset
    if isinstance(limit, ast.Bind) or isinstance(offset, ast.Bind):
        raise compiler.fail(MalformedQueryError, "Bind variables only allowed in Apex code")
    if offset is not None and offset > MAX_OFFSET:
        raise compiler.fail(RequestError, f"Maximum SOQL offset allowed is {MAX_OFFSET}",
                            error_code="NUMBER_OUTSIDE_VALID_RANGE")
    if (limit is not None and limit < 0) or (offset is not None and offset < 0):
        raise compiler.fail(MalformedQueryError, "LIMIT and OFFSET must not be negative")
    return limit, offset or 0


def _check_clauses(compiler: _Compiler, query: ast.Query) -> list[str]:
    notes = []
    for clause in query.with_clauses:
        upper = clause.upper()
        if upper in ("SECURITY_ENFORCED", "USER_MODE", "SYSTEM_MODE"):
            notes.append(f"WITH {upper} accepted: object and field permissions are not enforced yet")
            continue
        raise compiler.fail(MalformedQueryError, f"WITH {clause} is not supported")
    if query.using_scope is not None and query.using_scope.lower() not in ("everything", "mine"):
        raise compiler.fail(MalformedQueryError, f"USING SCOPE {query.using_scope} is not supported: use "
                            "Everything or Mine")
    return notes


def _text_order_key(op: _Operand) -> list[ColumnElement[Any]]:
    """Sort keys for ``op``: picklists by definition order, text case-insensitively, the rest as stored."""
    fdef = op.fdef
    if op.picklist is None and fdef is not None and op.type is FieldType.PICKLIST and fdef.picklist_values:
        ranks = [(op.expr == v.value, i) for i, v in enumerate(fdef.picklist_values)]
        rank = case((op.expr.is_(None), null()), *ranks, else_=len(fdef.picklist_values))
        return [rank, _Fold(op.expr)]
    if op.type in TEXT_TYPES:
        return [_Fold(op.expr)]
    return [op.expr]


def _ordered(keys: list[ColumnElement[Any]], item: ast.OrderItem) -> list[Any]:
    nulls_last = item.nulls_last if item.nulls_last is not None else item.descending
    result = []
    for key in keys:
        directed = key.desc() if item.descending else key.asc()
        result.append(directed.nulls_last() if nulls_last else directed.nulls_first())
    return result


class _RecordsBuilder:
    """Builds the select list, shape and children of a non-aggregate query."""

    def __init__(self, scope: _Scope, columns: _Columns, *, allow_children: bool) -> None:
        self.scope = scope
        self.c = scope.c
        self.columns = columns
        self.allow_children = allow_children
        self.seen: set[str] = set()
        self.parents: dict[tuple[str, ...], ParentOut] = {}
        self.id_index: int | None = None
        self.items: list[Out] = []
        self.children: list[ChildPlan] = []

    def build(self, query: ast.Query) -> RecordShape:
        for item in query.select:
            expr = item.expr
            if item.alias is not None and not isinstance(expr, ast.Function):
                raise self.c.fail(MalformedQueryError, f"Only aggregate expressions use field aliasing: "
                                  f"{item.alias}")
            if isinstance(expr, ast.FieldPath):
                self.add_path(expr)
            elif isinstance(expr, ast.FieldsMacro):
                self.add_macro(expr, query)
            elif isinstance(expr, ast.SubQuery):
                if not self.allow_children:
                    raise self.c.fail(MalformedQueryError, "Nesting of child relationship subqueries is not "
                                      f"supported: {expr.query.object}")
                self.add_child(expr.query)
            elif isinstance(expr, ast.TypeOf):
                self.add_typeof(expr)
            elif isinstance(expr, ast.Function):
                self.add_function(expr, item.alias)
            else:  # pragma: no cover - the AST has no other select items
                raise self.c.fail(MalformedQueryError, "unsupported select item")
        if self.id_index is None:
            self.id_index = self.columns.add(self.scope.root.c.Id)
        return RecordShape(self.scope.obj.name, self.id_index, self.items)

    def _mark(self, name: str, node: Any = None, shown: str | None = None) -> None:
        lowered = name.lower()
        if lowered in self.seen:
            raise self.c.fail(InvalidFieldError, f"duplicate field selected: {shown or name}", node)
        self.seen.add(lowered)

    def _container(self, op: _Operand) -> list[Out]:
        items = self.items
        for join in op.joins:
            parent = self.parents.get(join.key)
            if parent is None:
                if join.polymorphic:
                    parent = ParentOut(join.relationship, self.columns.add(join.fk), None,
                                       self.scope.prefixes_for(join))
                else:
                    assert join.alias is not None and join.obj is not None
                    parent = ParentOut(join.relationship, self.columns.add(join.alias.c.Id), join.obj.name, {})
                self.parents[join.key] = parent
                items.append(parent)
            items = parent.items
        return items

    def add_path(self, path: ast.FieldPath) -> None:
        op = self.scope.resolve(path)
        assert op.fdef is not None
        canonical = ".".join([*(j.relationship for j in op.joins), op.fdef.name])
        self._mark(canonical, path, path.text)
        index = self.columns.add(op.expr)
        if not op.joins and op.fdef.name == "Id":
            self.id_index = index
        self._container(op).append(FieldOut(op.fdef.name, index, op.convert))

    def add_macro(self, macro: ast.FieldsMacro, query: ast.Query) -> None:
        if macro.kind in ("ALL", "CUSTOM") and (not isinstance(query.limit, int)
                                                 or query.limit > MAX_FIELDS_MACRO_LIMIT):
            raise self.c.fail(MalformedQueryError, f"The SOQL FIELDS function must have a LIMIT of at most "
                              f"{MAX_FIELDS_MACRO_LIMIT}")
        for fdef in self.scope.obj.fields:
            if (macro.kind == "STANDARD" and fdef.custom) or (macro.kind == "CUSTOM" and not fdef.custom):
                continue
            self.add_path(ast.FieldPath((fdef.name,)))

    def add_function(self, node: ast.Function, alias: str | None) -> None:
        name = node.name.upper()
        if name != "TOLABEL":  # others make an aggregate query, or are refused by operand()
            self.scope.operand(node)
            raise self.c.fail(MalformedQueryError, f"Field must be grouped or aggregated: {node.name}", node)
        op = self.scope.operand(node)
        assert op.fdef is not None
        canonical = ".".join([*(j.relationship for j in op.joins), op.fdef.name])
        self._mark(alias or canonical, node)
        index = self.columns.add(op.expr)
        self._container(op).append(FieldOut(alias or op.fdef.name, index, op.convert))

    def add_typeof(self, node: ast.TypeOf) -> None:
        fdef = self.c.relationship(self.scope.obj, node.relationship)
        if fdef is None:
            raise self.c.fail(InvalidFieldError, _bad_relationship(node.relationship))
        self._mark(fdef.relationship_name or node.relationship)
        key = (node.relationship.lower(),)
        join = self.scope._join(None, fdef, key)
        prefixes = self.scope.prefixes_for(join)
        variants: dict[str, list[FieldOut]] = {}
        for when in node.whens:
            target = self.c.schema.object(when.object_name)
            if target is None or target.name not in fdef.reference_to:
                raise self.c.fail(InvalidTypeError, f"TYPEOF: {when.object_name} is not a type of "
                                  f"{fdef.relationship_name}")
            if join.polymorphic:
                alias = self.scope._target(join, target)
            else:
                assert join.alias is not None
                alias = join.alias
            outs = []
            for path in when.fields:
                field_def = target.field(path.parts[-1]) if len(path.parts) == 1 else None
                if field_def is None:
                    raise self.c.fail(InvalidFieldError, _no_such_column(path.text, target.name), path)
                outs.append(FieldOut(field_def.name, self.columns.add(alias.c[field_def.name]),
                                     _converter(target, field_def)))
            variants[target.name] = outs
        otherwise = []
        for path in node.else_fields:
            op = self.scope.resolve(ast.FieldPath((node.relationship, *path.parts), path.line, path.column))
            assert op.fdef is not None
            otherwise.append(FieldOut(op.fdef.name, self.columns.add(op.expr), op.convert))
        self.items.append(TypeOfOut(join.relationship, self.columns.add(join.fk), prefixes, variants, otherwise))

    def add_child(self, sub: ast.Query) -> None:
        parent = self.scope.obj
        name = sub.object
        if "." in name:
            head, _, tail = name.rpartition(".")
            if head.lower() in self.scope.prefixes:
                name = tail
        relationship = next((r for r in self.c.schema.children_of(parent.name)
                             if r.relationship_name and r.relationship_name.lower() == name.lower()), None)
        if relationship is None:
            raise self.c.fail(InvalidTypeError, _bad_child_relationship(sub.object))
        assert relationship.relationship_name is not None
        self._mark(relationship.relationship_name)
        child_obj = self.c.schema.object(relationship.child_object)
        assert child_obj is not None
        if sub.group_by is not None or any(isinstance(i.expr, ast.Function) and i.expr.name.upper()
                                           in AGGREGATE_FUNCTIONS for i in sub.select):
            raise self.c.fail(MalformedQueryError, "Aggregate functions are not supported in child relationship "
                              "subqueries")
        _check_clauses(self.c, sub)
        limit, offset = _check_paging(self.c, sub)
        table = self.c.table(child_obj)
        scope = _Scope(self.c, child_obj, table, sub, prefixes=(relationship.relationship_name,))
        columns = _Columns()
        builder = _RecordsBuilder(scope, columns, allow_children=False)
        shape = builder.build(sub)
        fk = table.c[relationship.field]
        parent_index = columns.add(fk)
        where: list[ColumnElement[bool]] = [fk.in_(bindparam("parent_ids", expanding=True))]
        live = scope.live(table, child_obj) if not sub.all_rows else None
        if live is not None:
            where.append(live)
        if sub.where is not None:
            where.append(scope.condition(sub.where))
        order = _order_by(scope, sub.order_by)
        order.append(table.c.Id.asc())
        statement = select(*columns.labelled()).select_from(scope.from_clause()).where(*where)
        if limit is not None or offset:
            row_number = func.row_number().over(partition_by=fk, order_by=order).label("il_rn")
            inner = statement.add_columns(row_number).subquery("il_children")
            keep = [inner.c.il_rn > offset]
            if limit is not None:
                keep.append(inner.c.il_rn <= offset + limit)
            statement = (select(*[inner.c[f"c{i}"] for i in range(len(columns.items))]).where(*keep)
                         .order_by(inner.c[f"c{parent_index}"], inner.c.il_rn))
        else:
            statement = statement.order_by(*order)
        index = len(self.children)
        self.children.append(ChildPlan(relationship.relationship_name, child_obj, statement, parent_index, shape))
        self.items.append(ChildOut(relationship.relationship_name, index))


def _order_by(scope: _Scope, items: Sequence[ast.OrderItem]) -> list[Any]:
    result: list[Any] = []
    for item in items:
        op = scope.operand(item.expr)
        if _is_long_text(op.fdef) or op.type is FieldType.MULTIPICKLIST:
            name = op.fdef.name if op.fdef is not None else op.name
            raise scope.c.fail(InvalidFieldError, f"field '{name}' can not be sorted in a query call", item.expr)
        result.extend(_ordered(_text_order_key(op), item))
    return result


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


def _is_aggregate(query: ast.Query) -> bool:
    if query.group_by is not None:
        return True
    for item in query.select:
        if isinstance(item.expr, ast.Function) and item.expr.name.upper() in (AGGREGATE_FUNCTIONS | DATE_FUNCTIONS
                                                                               | {"GROUPING"}):
            return True
    return False


def _compile_records(scope: _Scope, query: ast.Query, limit: int | None, offset: int) -> CompiledQuery:
    columns = _Columns()
    builder = _RecordsBuilder(scope, columns, allow_children=True)
    shape = builder.build(query)
    where = _root_where(scope, query)
    where_keys = _where_join_keys(scope, query)
    order = _order_by(scope, query.order_by)
    if not any(isinstance(i.expr, ast.FieldPath) and [p.lower() for p in scope._strip(i.expr)] == ["id"]
               for i in query.order_by):
        order.append(scope.root.c.Id.asc())  # deterministic pages
    statement = select(*columns.labelled()).select_from(scope.from_clause()).where(*where).order_by(*order)
    count = select(func.count()).select_from(scope.from_clause(where_keys)).where(*where)
    return CompiledQuery("records", scope.obj, statement, count, limit, offset, shape=shape,
                         children=builder.children)


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


@dataclass
class _AggItem:
    kind: Literal["group", "aggregate", "grouping"]
    group: int = -1
    expr: ColumnElement[Any] | None = None


def _compile_aggregate(scope: _Scope, query: ast.Query, limit: int | None, offset: int) -> CompiledQuery:
    c = scope.c
    group_nodes = list(query.group_by.items) if query.group_by is not None else []
    kind = query.group_by.kind if query.group_by is not None else "PLAIN"
    group_exprs: list[ColumnElement[Any]] = []
    group_ops: list[_Operand] = []
    scope.groups = {}
    for node in group_nodes:
        if isinstance(node, ast.Function) and node.name.upper() not in DATE_FUNCTIONS:
            raise c.fail(MalformedQueryError, f"Cannot group by the function {node.name}", node)
        op = scope.operand(node)
        if isinstance(node, ast.FieldPath) and op.fdef is not None and op.type in NOT_GROUPABLE_TYPES:
            raise c.fail(InvalidFieldError, f"field '{op.fdef.name}' can not be grouped in a query call", node)
        key = scope.group_key(node)
        if key in scope.groups:
            raise c.fail(MalformedQueryError, f"duplicate field in GROUP BY: {op.name}", node)
        scope.groups[key] = op.expr
        group_exprs.append(op.expr)
        group_ops.append(op)
    group_index = {key: i for i, key in enumerate(scope.groups)}

    outputs: list[tuple[FieldOut, _AggItem]] = []
    seen: set[str] = set()
    expr_counter = itertools.count()
    for item in query.select:
        expr = item.expr
        if isinstance(expr, ast.FieldPath):
            op = scope.operand(expr)
            scope._grouped_expr(expr, op)
            assert op.fdef is not None
            name = item.alias or op.fdef.name
            agg = _AggItem("group", group_index[scope.group_key(expr)])
            convert = op.convert
        elif isinstance(expr, ast.Function):
            fname = expr.name.upper()
            if fname == "COUNT" and not expr.args:
                raise c.fail(MalformedQueryError, "COUNT() must be the only element in the SELECT list", expr)
            if fname == "GROUPING":
                if kind == "PLAIN":
                    raise c.fail(MalformedQueryError, "GROUPING() needs GROUP BY ROLLUP or CUBE", expr)
                arg = scope._single_field_arg(expr)
                key = scope.group_key(arg)
                if key not in group_index:
                    raise c.fail(MalformedQueryError, f"GROUPING() field must be grouped: {arg.text}", expr)
                agg = _AggItem("grouping", group_index[key])
                convert = _int_out
            elif fname in DATE_FUNCTIONS:
                op = scope.operand(expr)
                scope._grouped_expr(expr, op)
                agg = _AggItem("group", group_index[scope.group_key(expr)])
                convert = op.convert
            elif fname in AGGREGATE_FUNCTIONS:
                op = scope.aggregate(expr)
                agg = _AggItem("aggregate", expr=op.expr)
                convert = op.convert
            else:
                op = scope.operand(expr)
                raise c.fail(MalformedQueryError, f"Field must be grouped or aggregated: {expr.name}", expr)
            name = item.alias or f"expr{next(expr_counter)}"
        else:
            raise c.fail(MalformedQueryError, "Only fields and aggregate functions can be selected in an "
                         "aggregate query")
        if name.lower() in seen:
            raise c.fail(InvalidFieldError, f"duplicate alias: {name}")
        seen.add(name.lower())
        outputs.append((FieldOut(name, len(outputs), convert), agg))

    where = _root_where(scope, query)
    having = scope.condition(query.having, having=True) if query.having is not None else None
    order_specs: list[tuple[ast.OrderItem, _Operand, _AggItem]] = []
    for item in query.order_by:
        node = item.expr
        if isinstance(node, ast.Function) and node.name.upper() in AGGREGATE_FUNCTIONS:
            op = scope.aggregate(node)
            order_specs.append((item, op, _AggItem("aggregate", expr=op.expr)))
        else:
            op = scope.operand(node)
            scope._grouped_expr(node, op)
            order_specs.append((item, op, _AggItem("group", group_index[scope.group_key(node)])))

    from_clause = scope.from_clause()
    if kind == "PLAIN":
        select_list = [_agg_expr(a, None, group_exprs).label(f"c{i}") for i, (_out, a) in enumerate(outputs)]
        statement = select(*select_list).select_from(from_clause).where(*where)
        if group_exprs:
            statement = statement.group_by(*group_exprs)
        if having is not None:
            statement = statement.having(having)
        order: list[Any] = []
        for item, op, _agg in order_specs:
            order.extend(_ordered(_text_order_key(op), item))
        for op in group_ops:  # deterministic pages
            order.extend(key.asc().nulls_first() for key in _text_order_key(op))
        statement = statement.order_by(*order)
        counted = statement.order_by(None).subquery()
    else:
        n = len(group_exprs)
        if kind == "ROLLUP":
            sets = [tuple(range(size)) for size in range(n, -1, -1)]
        else:
            sets = sorted((tuple(s) for size in range(n, -1, -1) for s in itertools.combinations(range(n), size)),
                          key=lambda s: -len(s))
        branches = []
        width = len(outputs)
        for active in sets:
            cols = [_agg_expr(a, active, group_exprs).label(f"c{i}") for i, (_o, a) in enumerate(outputs)]
            cols += [(_agg_expr(a, active, group_exprs)).label(f"o{i}") for i, (_it, _op, a)
                     in enumerate(order_specs)]
            cols += [(key if g in active else null()).label(f"g{g}_{k}") for g in range(n)
                     for k, key in enumerate(_text_order_key(group_ops[g]))]
            cols += [literal(0 if g in active else 1, Integer()).label(f"f{g}") for g in range(n)]
            branch = select(*cols).select_from(from_clause).where(*where)
            if active:
                branch = branch.group_by(*[group_exprs[g] for g in active])
            if having is not None:
                branch = branch.having(_without_groups(having, [group_exprs[g] for g in range(n)
                                                                if g not in active]))
            branches.append(branch)
        union = union_all(*branches).subquery("il_grouping_sets")
        order = []
        for i, (item, op, _agg) in enumerate(order_specs):
            keys = [union.c[f"o{i}"]]
            if op.type in TEXT_TYPES:
                keys = [_Fold(union.c[f"o{i}"])]
            order.extend(_ordered(keys, item))
        for g in range(n):  # subtotals after the rows they total; groups in sort order
            order.append(union.c[f"f{g}"].asc())
            order.extend(union.c[f"g{g}_{k}"].asc().nulls_first()
                         for k in range(len(_text_order_key(group_ops[g]))))
        statement = select(*[union.c[f"c{i}"] for i in range(width)]).order_by(*order)
        counted = union
    count = select(func.count()).select_from(counted)
    return CompiledQuery("aggregate", scope.obj, statement, count, limit, offset,
                         columns=[out for out, _agg in outputs])


def _without_groups(clause: ColumnElement[bool], inactive: list[ColumnElement[Any]]) -> ColumnElement[bool]:
    """``clause`` with the group expressions a grouping set leaves out replaced by NULL (as they output)."""
    if not inactive:
        return clause

    def replace(element: Any) -> Any:
        for expr in inactive:
            if element is expr or (isinstance(element, ColumnElement) and element.compare(expr)):
                return null()
        return None

    return replacement_traverse(clause, {}, replace)  # type: ignore[no-any-return]


def _agg_expr(item: _AggItem, active: tuple[int, ...] | None, groups: list[ColumnElement[Any]]) -> ColumnElement[Any]:
    if item.kind == "aggregate":
        assert item.expr is not None
        return item.expr
    if item.kind == "grouping":
        return literal(0 if active is None or item.group in active else 1, Integer())
    if active is not None and item.group not in active:
        return null()
    return groups[item.group]


def _compile_count(scope: _Scope, query: ast.Query, limit: int | None, offset: int) -> CompiledQuery:
    where = _root_where(scope, query)
    if query.group_by is not None:
        group_exprs = [scope.operand(node).expr for node in query.group_by.items]
        grouped = select(*group_exprs).select_from(scope.from_clause()).where(*where).group_by(*group_exprs)
        if query.having is not None:
            scope.groups = {scope.group_key(node): expr for node, expr in zip(query.group_by.items, group_exprs,
                                                                              strict=True)}
            grouped = grouped.having(scope.condition(query.having, having=True))
        statement = select(func.count()).select_from(grouped.subquery())
    else:
        if query.having is not None:
            raise scope.c.fail(MalformedQueryError, "HAVING needs GROUP BY or aggregate functions")
        statement = select(func.count()).select_from(scope.from_clause()).where(*where)
    return CompiledQuery("count", scope.obj, statement, statement, limit, offset)


def compile_query(query: ast.Query, schema: Schema, tables: Mapping[str, Table], *, include_deleted: bool = False,
                  user_id: str | None = None, fiscal_start_month: int = 1) -> CompiledQuery:
    """Compile ``query`` against ``schema`` and its ``tables`` (keyed by lower-cased object name).

    ``include_deleted`` (queryAll) or the query's ``ALL ROWS`` keeps records in the recycle bin; otherwise
    ``IsDeleted`` rows are left out everywhere (root, parents, children, semi-joins). ``user_id`` serves
    ``USING SCOPE Mine``. Raises MALFORMED_QUERY, INVALID_FIELD, INVALID_TYPE, INVALID_QUERY_FILTER_OPERATOR
    and NUMBER_OUTSIDE_VALID_RANGE errors as the platform does.
    """
    compiler = _Compiler(schema, tables, include_deleted=include_deleted or query.all_rows, text=query.text,
                         user_id=user_id)
    obj = compiler.object_for(query.object)
    notes = _check_clauses(compiler, query)
    limit, offset = _check_paging(compiler, query)
    scope = _Scope(compiler, obj, compiler.table(obj), query)
    count_only = [item for item in query.select if isinstance(item.expr, ast.Function)
                  and item.expr.name.upper() == "COUNT" and not item.expr.args]
    if count_only:
        if len(query.select) != 1:
            raise compiler.fail(MalformedQueryError, "COUNT() must be the only element in the SELECT list")
        compiled = _compile_count(scope, query, limit, offset)
    elif _is_aggregate(query):
        compiled = _compile_aggregate(scope, query, limit, offset)
    else:
        if query.having is not None:
            raise compiler.fail(MalformedQueryError, "HAVING needs GROUP BY or aggregate functions")
        compiled = _compile_records(scope, query, limit, offset)
    compiled.date_params = compiler.date_params
    compiled.filter_fields = list(dict.fromkeys(scope.filter_fields))
    compiled.fiscal_start_month = fiscal_start_month
    compiled.notes = notes
    return compiled


__all__ = [
    "AGGREGATE_FUNCTIONS",
    "DATE_FUNCTIONS",
    "MAX_OFFSET",
    "ChildOut",
    "ChildPlan",
    "CompiledQuery",
    "DateParam",
    "FieldOut",
    "Out",
    "ParentOut",
    "RecordShape",
    "TypeOfOut",
    "compile_query",
    "positioned",
]
