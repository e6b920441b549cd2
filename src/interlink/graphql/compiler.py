"""GraphQL selections -> ONE SOQL query per top-level connection, and SOQL records -> GraphQL result trees.

A connection's selection is walked once: value fields become SOQL fields, parent relationships become
``Parent.Field`` paths, child connections become child subqueries with their own WHERE / ORDER BY / LIMIT.
Literal values from arguments are rendered by :mod:`interlink.graphql.literals`; field and relationship names come
from the schema (never from the caller), so the SOQL text cannot be shaped by argument values.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

from graphql import GraphQLError, GraphQLObjectType, GraphQLResolveInfo, GraphQLSkipDirective
from graphql.execution.values import get_argument_values, get_directive_values
from graphql.language import (
    FieldNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    ObjectValueNode,
    SelectionSetNode,
    ValueNode,
)
from graphql.type import GraphQLIncludeDirective

from interlink.graphql.literals import LiteralError, quote, soql_literal
from interlink.metadata.model import FieldDef, ObjectDef, Schema

DEFAULT_FIRST = 10
MAX_FIRST = 2000
_OPERATORS = {"eq": "=", "ne": "!=", "lt": "<", "lte": "<=", "gt": ">", "gte": ">=", "like": "LIKE"}


# -- cursors ---------------------------------------------------------------------------------------------------


def encode_cursor(position: int) -> str:
    """The platform's opaque cursor: base64 of ``v1:<position>``."""
    return base64.b64encode(f"v1:{position}".encode()).decode()


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.b64decode(cursor.encode(), validate=True).decode()
        prefix, _, number = text.partition(":")
        position = int(number)
        if prefix != "v1" or position < 0:
            raise ValueError
        return position
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise GraphQLError(f"Invalid cursor: {cursor}") from None


# -- plans ------------------------------------------------------------------------------------------------------


@dataclass
class RecordPlan:
    obj: ObjectDef
    fields: list[str] = field(default_factory=lambda: ["Id"])
    parents: dict[str, RecordPlan] = field(default_factory=dict)
    children: dict[str, ConnectionPlan] = field(default_factory=dict)


@dataclass
class ConnectionPlan:
    obj: ObjectDef
    record: RecordPlan
    first: int
    offset: int
    where: str
    order_by: str
    wants_total: bool


def _collect(info: GraphQLResolveInfo, nodes: list[FieldNode]) -> dict[str, list[FieldNode]]:
    """The sub-fields selected under ``nodes`` (fragments expanded, @skip/@include applied), by field name."""
    out: dict[str, list[FieldNode]] = {}

    def walk(selection_set: SelectionSetNode | None) -> None:
        if selection_set is None:
            return
        for sel in selection_set.selections:
            skip = get_directive_values(GraphQLSkipDirective, sel, info.variable_values)
            include = get_directive_values(GraphQLIncludeDirective, sel, info.variable_values)
            if (skip and skip.get("if")) or (include and not include.get("if")):
                continue
            if isinstance(sel, FieldNode):
                out.setdefault(sel.name.value, []).append(sel)
            elif isinstance(sel, InlineFragmentNode):
                walk(sel.selection_set)
            elif isinstance(sel, FragmentSpreadNode):
                fragment = info.fragments.get(sel.name.value)
                if fragment is not None:
                    walk(fragment.selection_set)

    for node in nodes:
        walk(node.selection_set)
    return out


def record_plan(info: GraphQLResolveInfo, model: Schema, obj: ObjectDef, nodes: list[FieldNode], *,
                allow_children: bool = True) -> RecordPlan:
    plan = RecordPlan(obj)
    gql_type = info.schema.get_type(obj.name)
    assert isinstance(gql_type, GraphQLObjectType)
    for name, fnodes in _collect(info, nodes).items():
        gql_field = gql_type.fields.get(name)
        meta = (gql_field.extensions or {}).get("interlink") if gql_field is not None else None
        if not meta:
            continue
        if meta[0] == "field" and meta[1] not in plan.fields:
            plan.fields.append(meta[1])
        elif meta[0] == "parent":
            target = model.object(meta[1])
            assert target is not None
            plan.parents[name] = record_plan(info, model, target, fnodes, allow_children=False)
        elif meta[0] == "child":
            if not allow_children:
                raise GraphQLError(f"Child relationship {name} cannot be queried below a parent relationship "
                                   "or another child relationship.", fnodes)
            child = model.object(meta[1])
            assert child is not None and gql_field is not None
            args = get_argument_values(gql_field, fnodes[0], info.variable_values)
            plan.children[name] = connection_plan(info, model, child, fnodes, args, child_level=True)
    return plan


def connection_plan(info: GraphQLResolveInfo, model: Schema, obj: ObjectDef, nodes: list[FieldNode],
                    args: dict[str, Any], *, child_level: bool = False) -> ConnectionPlan:
    first = args.get("first")
    first = DEFAULT_FIRST if first is None else first
    if not 1 <= first <= MAX_FIRST:
        raise GraphQLError(f"The value of 'first' must be between 1 and {MAX_FIRST}, not {first}.", nodes)
    after = args.get("after")
    offset = decode_cursor(after) + 1 if after else 0
    selected = _collect(info, nodes)
    node_fields = [n for edge in selected.get("edges", []) for n in _collect(info, [edge]).get("node", [])]
    record = record_plan(info, model, obj, node_fields, allow_children=not child_level)
    try:
        where = render_where(model, obj, args.get("where") or {})
    except LiteralError as exc:
        raise GraphQLError(f"Invalid filter value: {exc}", nodes) from None
    ast_order = next((a.value for a in nodes[0].arguments or () if a.name.value == "orderBy"), None)
    order_by = ", ".join(render_order(model, obj, args.get("orderBy") or {}, ast_order))
    return ConnectionPlan(obj, record, first, offset, where, order_by, "totalCount" in selected)


# -- SOQL text --------------------------------------------------------------------------------------------------


def _parent_def(obj: ObjectDef, relationship: str) -> FieldDef | None:
    return next((f for f in obj.reference_fields if f.relationship_name == relationship), None)


def render_where(model: Schema, obj: ObjectDef, where: dict[str, Any], prefix: str = "") -> str:
    parts: list[str] = []
    for key, value in where.items():
        if value is None:
            continue
        if key in ("and", "or"):
            rendered = [r for r in (render_where(model, obj, item, prefix) for item in value if item) if r]
            if rendered:
                parts.append("(" + f" {key.upper()} ".join(f"({r})" for r in rendered) + ")")
        elif key == "not":
            inner = render_where(model, obj, value, prefix)
            if inner:
                parts.append(f"(NOT ({inner}))")
        elif (fdef := obj.field(key)) is not None:
            parts.extend(_render_operators(prefix + fdef.name, fdef, value))
        elif (pdef := _parent_def(obj, key)) is not None:
            target = model.object(pdef.reference_to[0])
            assert target is not None
            inner = render_where(model, target, value, f"{prefix}{key}.")
            if inner:
                parts.append(f"({inner})")
    return " AND ".join(parts)


def _render_operators(path: str, fdef: FieldDef, operators: dict[str, Any]) -> list[str]:
    out = []
    for op, value in operators.items():
        if op in ("in", "nin"):
            if value is None:
                raise LiteralError(f"'{op}' needs a list of values")
            if not value:  # IN () matches nothing, NOT IN () everything: Id is never null
                out.append("Id = null" if op == "in" else "Id != null")
                continue
            values = ", ".join(soql_literal(v, fdef.type) for v in value)
            out.append(f"{path} {'IN' if op == 'in' else 'NOT IN'} ({values})")
        elif op == "like":
            out.append(f"{path} LIKE {soql_literal(value, fdef.type) if value is None else _quoted(value)}")
        else:
            if value is None and op not in ("eq", "ne"):
                raise LiteralError(f"'{op}' needs a value")
            out.append(f"{path} {_OPERATORS[op]} {soql_literal(value, fdef.type)}")
    return out


def _quoted(value: Any) -> str:
    if not isinstance(value, str):
        raise LiteralError(f"expected a String, got {value!r}")
    return quote(value)


def render_order(model: Schema, obj: ObjectDef, order: dict[str, Any], ast: ValueNode | None,
                 prefix: str = "") -> list[str]:
    """ORDER BY items, in the order the query wrote the keys (coercion sorts them by definition)."""
    positions: dict[str, int] = {}
    children: dict[str, ValueNode] = {}
    if isinstance(ast, ObjectValueNode):
        for index, item in enumerate(ast.fields):
            positions[item.name.value] = index
            children[item.name.value] = item.value
    out: list[str] = []
    for key in sorted(order, key=lambda k: positions.get(k, len(positions))):
        clause = order[key]
        if clause is None:
            continue
        if (fdef := obj.field(key)) is not None:
            text = f"{prefix}{fdef.name} {clause.get('order') or 'ASC'}"
            if clause.get("nulls"):
                text += f" NULLS {clause['nulls']}"
            out.append(text)
        elif (pdef := _parent_def(obj, key)) is not None:
            target = model.object(pdef.reference_to[0])
            assert target is not None
            out.extend(render_order(model, target, clause, children.get(key), f"{prefix}{key}."))
    return out


def _select_items(plan: RecordPlan, prefix: str = "") -> list[str]:
    items = [prefix + name for name in plan.fields]
    for relationship, parent in plan.parents.items():
        items.extend(_select_items(parent, f"{prefix}{relationship}."))
    for relationship, child in plan.children.items():
        items.append(f"({soql(child, relationship, nested=True)})")
    return list(dict.fromkeys(items))


def soql(plan: ConnectionPlan, source: str | None = None, *, nested: bool = False,
         where: str | None = None) -> str:
    """The SOQL text of a connection (``source`` is the child relationship name for a subquery)."""
    text = f"SELECT {', '.join(_select_items(plan.record))} FROM {source or plan.obj.name}"
    condition = where if where is not None else plan.where
    if condition:
        text += f" WHERE {condition}"
    if plan.order_by:
        text += f" ORDER BY {plan.order_by}"
    if nested and not plan.wants_total:
        text += f" LIMIT {plan.offset + plan.first + 1}"
    return text


# -- results ------------------------------------------------------------------------------------------------------


def shape_record(record: dict[str, Any], plan: RecordPlan) -> dict[str, Any]:
    """Turn a REST-shaped record into what the GraphQL types resolve from (child results -> connections)."""
    for relationship, parent in plan.parents.items():
        value = record.get(relationship)
        if isinstance(value, dict):
            shape_record(value, parent)
    for relationship, child in plan.children.items():
        result = record.get(relationship)
        rows = list(result.get("records", [])) if isinstance(result, dict) else []
        window = rows[child.offset:child.offset + child.first]
        record[relationship] = connection_result(
            [shape_record(r, child.record) for r in window], child.offset,
            has_next=len(rows) > child.offset + child.first, total=len(rows))
    return record


def connection_result(nodes: list[dict[str, Any]], offset: int, *, has_next: bool, total: int) -> dict[str, Any]:
    edges = [{"node": node, "cursor": encode_cursor(offset + i)} for i, node in enumerate(nodes)]
    return {
        "edges": edges,
        "pageInfo": {"hasNextPage": has_next, "hasPreviousPage": offset > 0,
                     "startCursor": edges[0]["cursor"] if edges else None,
                     "endCursor": edges[-1]["cursor"] if edges else None},
        "totalCount": total,
    }
