"""Record queries: the select list, row shape, child subqueries and ORDER BY of a non-aggregate query level.

``_RecordsBuilder`` turns field paths, ``FIELDS()``, ``toLabel()``, ``TYPEOF`` and child relationship
subqueries into select columns and a :class:`~interlink.soql.compiled.RecordShape`; ``_compile_records`` makes
the main and count statements. The LIMIT/OFFSET and WITH/USING SCOPE checks and the sort keys
(``_text_order_key``, ``_ordered``) are shared with the aggregate compiler.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, bindparam, case, func, null, select

from interlink.errors import InvalidFieldError, InvalidTypeError, MalformedQueryError, RequestError
from interlink.metadata.model import TEXT_TYPES, FieldType, ObjectDef
from interlink.soql import ast
from interlink.soql.compiled import ChildOut, ChildPlan, CompiledQuery, FieldOut, Out, ParentOut, RecordShape, TypeOfOut
from interlink.soql.conditions import _root_where, _Scope, _where_join_keys
from interlink.soql.external import compile_external_child
from interlink.soql.functions import AGGREGATE_FUNCTIONS, _Fold
from interlink.soql.scope import (
    _bad_child_relationship,
    _bad_relationship,
    _Compiler,
    _converter,
    _is_long_text,
    _no_such_column,
    _Operand,
)

MAX_OFFSET = 2000
MAX_FIELDS_MACRO_LIMIT = 200


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
        if child_obj.is_external:
            self.add_external_child(sub, relationship.relationship_name, child_obj, relationship.field)
            return
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
        live = scope.live(table, child_obj) if not sub.all_rows else scope.visible(table, child_obj)
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


    def add_external_child(self, sub: ast.Query, key: str, child_obj: ObjectDef, lookup_name: str) -> None:
        """A subquery on external children: the data source answers it per page, matched on the parent's key."""
        lookup = child_obj.field(lookup_name)
        assert lookup is not None
        child = compile_external_child(sub, self.c.schema, child_obj, key, lookup, self.scope.obj)
        key_index = self.columns.add(self.scope.root.c[child.parent_field])
        index = len(self.children)
        self.children.append(ChildPlan(key, child_obj, None, key_index, None, external=child))
        self.items.append(ChildOut(key, index))


def _order_by(scope: _Scope, items: Sequence[ast.OrderItem]) -> list[Any]:
    result: list[Any] = []
    for item in items:
        op = scope.operand(item.expr)
        if _is_long_text(op.fdef) or op.type is FieldType.MULTIPICKLIST:
            name = op.fdef.name if op.fdef is not None else op.name
            raise scope.c.fail(InvalidFieldError, f"field '{name}' can not be sorted in a query call", item.expr)
        result.extend(_ordered(_text_order_key(op), item))
    return result


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
