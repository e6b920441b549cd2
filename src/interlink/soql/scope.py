"""Per-query compile state and the path layer of a query level.

- ``_Compiler``: what a query and its subqueries share (schema, tables, alias and date-parameter counters) and
  the platform's error texts (:func:`positioned` and the ``No such column`` family).
- ``_Join`` / ``_Operand``: a parent-path join, and a resolved field, function or aggregate.
- ``_PathScope``: one query level over one object: the FROM clause with its parent joins, and field path
  resolution (including polymorphic ``What``/``Who`` paths). The function and condition layers build on it.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Date,
    DateTime,
    FromClause,
    Table,
    and_,
    bindparam,
    case,
    func,
    null,
)

from interlink.errors import (
    ExternalObjectUnsupported,
    InvalidFieldError,
    InvalidTypeError,
    MalformedQueryError,
    RequestError,
)
from interlink.metadata.describe import SHORT_TEXT_LIMIT
from interlink.metadata.model import FieldDef, FieldType, ObjectDef, Schema
from interlink.metadata.values import wire_plan
from interlink.soql import ast
from interlink.soql.compiled import Converter, DateParam
from interlink.soql.dates import UnknownDateLiteral, resolve

MAX_RELATIONSHIP_DEPTH = 5
# The caller's record-level sharing: (table or alias, object) -> the condition on its rows, None for all of them.
RowFilter = Callable[[FromClause, ObjectDef], "ColumnElement[bool] | None"]


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


def _is_long_text(fdef: FieldDef | None) -> bool:
    return fdef is not None and fdef.type is FieldType.TEXTAREA and fdef.length > SHORT_TEXT_LIMIT


class _Compiler:
    """State shared by a query and its subqueries: schema, tables, bind-parameter and alias counters."""

    def __init__(self, schema: Schema, tables: Mapping[str, Table], *, include_deleted: bool, text: str,
                 user_id: str | None, row_filter: RowFilter | None = None) -> None:
        self.schema = schema
        self.tables = tables
        self.include_deleted = include_deleted
        self.row_filter = row_filter
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
        table = self.tables.get(obj.name.lower())
        if table is None:  # an external object reached through a path of a stored object's query
            raise ExternalObjectUnsupported(f"{obj.name} is an external object: its fields cannot be reached through "
                                            "a relationship path of a query on a stored object; query it directly")
        return table

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


class _PathScope:
    """One query level over one object: the FROM clause, parent joins and field paths."""

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
        """The rows of ``table`` a query sees: not in the recycle bin (unless queryAll / ALL ROWS), and shared with
        the caller (see :meth:`visible`)."""
        visible = self.visible(table, obj)
        if self.c.include_deleted or not obj.has_field("IsDeleted"):
            return visible
        live = table.c.IsDeleted.is_not(True)
        return live if visible is None else and_(live, visible)

    def visible(self, table: FromClause, obj: ObjectDef) -> ColumnElement[bool] | None:
        """The caller's record-level sharing on ``table`` (None: every row), recycle bin or not."""
        return None if self.c.row_filter is None else self.c.row_filter(table, obj)

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
        # An external lookup holds its parent's key as text, compared as text (not as an 18-character id).
        kind = FieldType.STRING if fdef.reference_target_field is not None else fdef.type
        return _Operand(holder.c[fdef.name], kind, path.text, fdef, obj, tuple(chain), keys,  # type: ignore[union-attr]
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
