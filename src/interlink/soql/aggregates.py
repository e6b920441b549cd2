"""Aggregate and COUNT() queries: GROUP BY (plain, ROLLUP, CUBE), HAVING, GROUPING() and their ORDER BY.

``ROLLUP``/``CUBE`` compile to a ``UNION ALL`` of one grouped ``SELECT`` per grouping set (SQLite has no
``ROLLUP``), with subtotal rows sorted after the rows they total.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, Integer, func, literal, null, select, union_all
from sqlalchemy.sql.visitors import replacement_traverse

from interlink.errors import InvalidFieldError, MalformedQueryError
from interlink.metadata.describe import NOT_GROUPABLE_TYPES
from interlink.metadata.model import TEXT_TYPES
from interlink.soql import ast
from interlink.soql.compiled import CompiledQuery, FieldOut
from interlink.soql.conditions import _root_where, _Scope
from interlink.soql.functions import AGGREGATE_FUNCTIONS, DATE_FUNCTIONS, _Fold, _int_out
from interlink.soql.records import _ordered, _text_order_key
from interlink.soql.scope import _Operand


def _is_aggregate(query: ast.Query) -> bool:
    if query.group_by is not None:
        return True
    for item in query.select:
        if isinstance(item.expr, ast.Function) and item.expr.name.upper() in (AGGREGATE_FUNCTIONS | DATE_FUNCTIONS
                                                                               | {"GROUPING"}):
            return True
    return False


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
