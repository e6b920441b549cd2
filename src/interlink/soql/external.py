"""SOQL on external objects: what can be pushed down to the data source, and the plan that carries it.

An external object's rows live in another system, so a query on one compiles not into SQL but into an
:class:`ExternalPlan`: the selected fields, a filter tree, sort keys, ``LIMIT``/``OFFSET`` and ``COUNT()``, all
named by field API name (the connect layer maps them to remote columns and hands them to the adapter).
Everything is pushed down or refused: a query the source could not answer exactly fails with
EXTERNAL_OBJECT_UNSUPPORTED_EXCEPTION rather than being filtered locally behind the user's back.

Lookups are joined by the engine, not the source: ``Account__r.Name`` on an external object reads the parents
through the ordinary query engine (by Id, or by the parent field an indirect or external lookup matches on), and
a child subquery on an external object (``SELECT Name, (SELECT OrderNumber__c FROM Orders__r) FROM Account``)
asks the source for the children of a whole page of parents at once, with an ``in`` filter on the lookup.

Relative date literals stay in the tree until :func:`bind_dates` resolves them for the current day, so a cached
plan stays right across midnight.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any, Literal

from interlink.errors import ExternalObjectUnsupported, InvalidFieldError, MalformedQueryError
from interlink.metadata.model import NUMBER_TYPES, TEXT_TYPES, FieldDef, FieldType, ObjectDef, Schema
from interlink.soql import ast
from interlink.soql.dates import as_datetimes, resolve

# -- the pushdown tree (shared with the adapters through interlink.connect.base) -----------------------------------

CompareOp = Literal["eq", "ne", "lt", "le", "gt", "ge", "startswith", "endswith", "contains"]


@dataclass(frozen=True)
class Compare:
    """``column <op> value``; ``eq`` / ``ne`` with None test for null."""

    column: str
    op: CompareOp
    value: Any


@dataclass(frozen=True)
class In:
    """``column in (values)`` (``negated``: not in)."""

    column: str
    values: tuple[Any, ...]
    negated: bool = False


@dataclass(frozen=True)
class AllOf:
    items: tuple[Filter, ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Filter, ...]


@dataclass(frozen=True)
class Negate:
    item: Filter


Filter = Compare | In | AllOf | AnyOf | Negate


@dataclass(frozen=True)
class SortKey:
    column: str
    descending: bool = False
    nulls_last: bool | None = None  # None: the source's default


# -- the plan -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParentSelect:
    """``Rel__r.Field`` paths of one lookup: the engine reads these parents through the query engine."""

    key: str  # the relationship name as the record shows it
    lookup: FieldDef  # the lookup field on the external object
    parent: ObjectDef
    fields: tuple[FieldDef, ...]


@dataclass(frozen=True)
class ExternalChild:
    """A child subquery on an external object under a parent query: run per page with an ``in`` filter."""

    key: str  # the child relationship name
    plan: ExternalPlan | None  # None: the children are stored records, queried with ``stored``
    lookup: FieldDef  # the child's lookup to the parent
    parent_field: str  # the parent field the lookup holds (Id, ExternalId or an external-id field)
    # Stored children of an external parent (an external lookup on a stored object): the subquery, FROM the
    # child object, that the engine runs through the ordinary compiler with an IN filter on the lookup.
    stored: ast.Query | None = None


@dataclass(frozen=True)
class ExternalPlan:
    """A query on one external object, ready for the connect layer."""

    object: ObjectDef
    kind: Literal["records", "count"]
    fields: tuple[FieldDef, ...]  # root fields, in select order (Id is always fetched)
    parents: tuple[ParentSelect, ...] = ()
    children: tuple[ExternalChild, ...] = ()
    filter: Filter | None = None
    order_by: tuple[SortKey, ...] = ()
    limit: int | None = None
    offset: int = 0
    # the select-list order of fields, parents and children (their keys), as the record shows them
    order: tuple[str, ...] = ()
    search: str | None = None
    notes: tuple[str, ...] = field(default=())

    def with_filter(self, extra: Filter) -> ExternalPlan:
        """This plan with ``extra`` and-ed onto its filter."""
        combined = extra if self.filter is None else AllOf((self.filter, extra))
        return replace(self, filter=combined)


_OPS: dict[str, CompareOp] = {"=": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}
MAX_OFFSET = 2000


def _unsupported(obj: ObjectDef, what: str) -> ExternalObjectUnsupported:
    return ExternalObjectUnsupported(f"{obj.name}: {what} cannot be sent to external data source "
                                     f"{obj.data_source}, so the query is refused rather than filtered locally")


def compile_external(query: ast.Query, schema: Schema, obj: ObjectDef) -> ExternalPlan:
    """Compile a query whose FROM object is the external object ``obj``."""
    return _Builder(schema, obj).build(query, allow_children=True)


def compile_external_child(sub: ast.Query, schema: Schema, child: ObjectDef, key: str, lookup: FieldDef,
                           parent: ObjectDef) -> ExternalChild:
    """A child subquery (``(SELECT ... FROM Orders__r)``) whose child object is external."""
    plan = _Builder(schema, child).build(sub, allow_children=False)
    if plan.kind == "count":
        raise MalformedQueryError("COUNT() is not supported in child relationship subqueries")
    if plan.offset:
        raise _unsupported(child, "OFFSET in a child subquery")
    if lookup not in plan.fields:  # fetched to group the children by parent, not shown
        plan = replace(plan, fields=(*plan.fields, lookup))
    target = lookup.reference_target_field or "Id"
    if parent.field(target) is None:  # pragma: no cover - metadata checks lookups at load
        raise InvalidFieldError(f"{parent.name} has no field {target}")
    return ExternalChild(key, plan, lookup, target)


class _Builder:
    def __init__(self, schema: Schema, obj: ObjectDef) -> None:
        self.schema = schema
        self.obj = obj

    def field(self, path: ast.FieldPath) -> FieldDef:
        parts = list(path.parts)
        if len(parts) > 1 and parts[0].lower() == self.obj.name.lower():
            parts = parts[1:]
        if len(parts) != 1:
            raise _unsupported(self.obj, f"the relationship path {path.text} in a filter or sort")
        fdef = self.obj.field(parts[0])
        if fdef is None:
            raise InvalidFieldError(f"No such column '{path.text}' on entity '{self.obj.name}'. If you are "
                                    "attempting to use a custom field, be sure to append the '__c' after the "
                                    "custom field name. Please reference your WSDL or the describe call for the "
                                    "appropriate names.")
        return fdef

    def build(self, query: ast.Query, *, allow_children: bool) -> ExternalPlan:
        obj = self.obj
        if query.group_by is not None or query.having is not None:
            raise _unsupported(obj, "GROUP BY")
        if query.using_scope is not None:
            raise _unsupported(obj, f"USING SCOPE {query.using_scope}")
        if query.all_rows:
            raise _unsupported(obj, "ALL ROWS")
        if isinstance(query.limit, ast.Bind) or isinstance(query.offset, ast.Bind):
            raise MalformedQueryError("Bind variables only allowed in Apex code")
        if query.offset is not None and query.offset > MAX_OFFSET:
            raise MalformedQueryError(f"Maximum SOQL offset allowed is {MAX_OFFSET}",
                                      error_code="NUMBER_OUTSIDE_VALID_RANGE")
        for clause in query.with_clauses:
            if clause.upper() not in ("SECURITY_ENFORCED", "USER_MODE", "SYSTEM_MODE"):
                raise MalformedQueryError(f"WITH {clause} is not supported")
        where = None if query.where is None else self.condition(query.where)
        order = tuple(self.sort(item) for item in query.order_by)
        limit, offset = query.limit, query.offset or 0
        assert not isinstance(limit, ast.Bind)
        count = [i for i in query.select if isinstance(i.expr, ast.Function) and i.expr.name.upper() == "COUNT"
                 and not i.expr.args]
        if count:
            if len(query.select) != 1:
                raise MalformedQueryError("COUNT() must be the only element in the SELECT list")
            return ExternalPlan(obj, "count", (), filter=where, limit=limit, offset=offset)
        fields: list[FieldDef] = []
        parents: dict[str, ParentSelect] = {}
        children: list[ExternalChild] = []
        order_keys: list[str] = []
        seen: set[str] = set()

        def mark(name: str) -> None:
            if name.lower() in seen:
                raise InvalidFieldError(f"duplicate field selected: {name}")
            seen.add(name.lower())

        for item in query.select:
            expr = item.expr
            if isinstance(expr, ast.FieldsMacro):
                for fdef in obj.fields:
                    if (expr.kind == "CUSTOM" and not fdef.custom) or (expr.kind == "STANDARD" and fdef.custom):
                        continue
                    mark(fdef.name)
                    fields.append(fdef)
                    order_keys.append(fdef.name)
            elif isinstance(expr, ast.FieldPath) and (len(expr.parts) == 1 or (
                    len(expr.parts) == 2 and expr.parts[0].lower() == obj.name.lower())):
                fdef = self.field(expr)
                mark(fdef.name)
                fields.append(fdef)
                order_keys.append(fdef.name)
            elif isinstance(expr, ast.FieldPath) and len(expr.parts) == 2:
                mark(expr.text)
                self.parent_path(expr, parents, order_keys)
            elif isinstance(expr, ast.SubQuery) and allow_children:
                child = self.child(expr.query)
                mark(child.key)
                children.append(child)
                order_keys.append(child.key)
            elif isinstance(expr, ast.SubQuery):
                raise MalformedQueryError(f"Nesting of child relationship subqueries is not supported: "
                                          f"{expr.query.object}")
            elif isinstance(expr, ast.Function):
                raise _unsupported(obj, f"the function {expr.name}()")
            else:
                raise _unsupported(obj, "this select item")
        return ExternalPlan(obj, "records", tuple(fields), tuple(parents.values()), tuple(children), where, order,
                            limit, offset, tuple(order_keys))

    def parent_path(self, path: ast.FieldPath, parents: dict[str, ParentSelect], order_keys: list[str]) -> None:
        relationship, name = path.parts
        lookup = next((f for f in self.obj.reference_fields
                       if (f.relationship_name or "").lower() == relationship.lower()), None)
        if lookup is None:
            raise InvalidFieldError(f"Didn't understand relationship '{relationship}' in field path. If you are "
                                    "attempting to use a custom relationship, be sure to append the '__r' after "
                                    "the custom relationship name. Please reference your WSDL or the describe "
                                    "call for the appropriate names.")
        if len(lookup.reference_to) != 1:
            raise _unsupported(self.obj, f"the polymorphic relationship {relationship}")
        parent = self.schema.object(lookup.reference_to[0])
        assert parent is not None
        fdef = parent.field(name)
        if fdef is None:
            raise InvalidFieldError(f"No such column '{name}' on entity '{parent.name}'. If you are attempting to "
                                    "use a custom field, be sure to append the '__c' after the custom field name. "
                                    "Please reference your WSDL or the describe call for the appropriate names.")
        key = lookup.relationship_name or relationship
        existing = parents.get(key.lower())
        if existing is None:
            parents[key.lower()] = ParentSelect(key, lookup, parent, (fdef,))
            order_keys.append(key)
        else:
            parents[key.lower()] = replace(existing, fields=(*existing.fields, fdef))

    def child(self, sub: ast.Query) -> ExternalChild:
        name = sub.object
        relationship = next((r for r in self.schema.children_of(self.obj.name)
                             if r.relationship_name and r.relationship_name.lower() == name.lower()), None)
        if relationship is None:
            raise MalformedQueryError(f"Didn't understand relationship '{name}' in FROM part of query call.")
        child_obj = self.schema.object(relationship.child_object)
        assert child_obj is not None and relationship.relationship_name is not None
        lookup = child_obj.field(relationship.field)
        assert lookup is not None
        if not child_obj.is_external:  # stored records with an external lookup to this object
            return ExternalChild(relationship.relationship_name, None, lookup, lookup.reference_target_field or "Id",
                                 replace(sub, object=child_obj.name))
        return compile_external_child(sub, self.schema, child_obj, relationship.relationship_name, lookup, self.obj)

    def sort(self, item: ast.OrderItem) -> SortKey:
        if not isinstance(item.expr, ast.FieldPath):
            raise _unsupported(self.obj, "ORDER BY on a function")
        fdef = self.field(item.expr)
        return SortKey(fdef.name, item.descending, item.nulls_last)

    # -- conditions ------------------------------------------------------------------------------------------

    def condition(self, node: ast.Condition) -> Filter:
        if isinstance(node, ast.And):
            return AllOf(tuple(self.condition(i) for i in node.items))
        if isinstance(node, ast.Or):
            return AnyOf(tuple(self.condition(i) for i in node.items))
        if isinstance(node, ast.Not):
            return Negate(self.condition(node.item))
        if isinstance(node, ast.Comparison):
            if not isinstance(node.left, ast.FieldPath):
                raise _unsupported(self.obj, f"a filter on the function {node.left.name}()")
            fdef = self.field(node.left)
            value = self.value(fdef, node.value)
            if node.op == "LIKE":
                return self.like(fdef, value)
            if isinstance(value, ast.DateLiteral) or value is not None or node.op in ("=", "!="):
                return Compare(fdef.name, _OPS[node.op], value)
            raise MalformedQueryError(f"{fdef.name} {node.op} null is not a valid filter")
        if isinstance(node, ast.InList):
            if not isinstance(node.left, ast.FieldPath):
                raise _unsupported(self.obj, f"a filter on the function {node.left.name}()")
            fdef = self.field(node.left)
            values = tuple(self.value(fdef, v) for v in node.values)
            if any(isinstance(v, ast.DateLiteral) for v in values):
                raise _unsupported(self.obj, "relative date literals in IN lists")
            return In(fdef.name, values, node.negated)
        if isinstance(node, ast.Includes):
            raise _unsupported(self.obj, "INCLUDES / EXCLUDES")
        if isinstance(node, ast.InSubquery):
            raise _unsupported(self.obj, "a semi-join (IN (SELECT ...))")
        raise _unsupported(self.obj, "this filter")  # pragma: no cover

    def like(self, fdef: FieldDef, value: Any) -> Filter:
        if fdef.type not in TEXT_TYPES and fdef.type is not FieldType.ID and fdef.reference_target_field is None:
            raise InvalidFieldError(f"invalid operator on {fdef.name}: LIKE works on text fields")
        if not isinstance(value, str):
            raise MalformedQueryError("LIKE needs a quoted string")
        # Split into literal text and wildcards (\% and \_ are literal): only a leading and/or trailing % push down.
        pieces: list[str | None] = []  # None: a % wildcard
        index = 0
        while index < len(value):
            char = value[index]
            if char == "\\" and index + 1 < len(value):
                pieces.append(value[index + 1])
                index += 2
                continue
            if char == "_":
                raise _unsupported(self.obj, f"the LIKE pattern {value!r} (only 'a%', '%a' and '%a%')")
            pieces.append(None if char == "%" else char)
            index += 1
        starts = bool(pieces) and pieces[0] is None
        ends = len(pieces) > 1 and pieces[-1] is None
        middle = pieces[int(starts):len(pieces) - int(ends)]
        if any(p is None for p in middle):
            raise _unsupported(self.obj, f"the LIKE pattern {value!r} (only 'a%', '%a' and '%a%')")
        inner = "".join(p for p in middle if p is not None)
        if starts and ends:
            return Compare(fdef.name, "contains", inner)
        if ends:
            return Compare(fdef.name, "startswith", inner)
        if starts:
            return Compare(fdef.name, "endswith", inner)
        return Compare(fdef.name, "eq", inner)

    def value(self, fdef: FieldDef, value: ast.Value) -> Any:
        """Check a literal fits the field's type (as the platform does) and return it."""
        if value is None:
            return None
        if isinstance(value, ast.Bind):
            raise MalformedQueryError("Bind variables only allowed in Apex code")
        ftype = fdef.type
        wanted: str | None = None
        if ftype in TEXT_TYPES or ftype in (FieldType.ID, FieldType.REFERENCE):
            wanted = None if isinstance(value, str) else "string"
        elif ftype is FieldType.BOOLEAN:
            wanted = None if isinstance(value, bool) else "boolean"
        elif ftype in NUMBER_TYPES or ftype is FieldType.INT:
            wanted = None if isinstance(value, int | float) and not isinstance(value, bool) else "number"
        elif ftype is FieldType.DATE:
            ok = isinstance(value, ast.DateLiteral) or (isinstance(value, date) and not isinstance(value, datetime))
            wanted = None if ok else "date"
        elif ftype is FieldType.DATETIME:
            wanted = None if isinstance(value, datetime | ast.DateLiteral) else "datetime"
        if wanted is not None:
            quoted = wanted in ("number", "boolean", "date", "datetime")
            raise InvalidFieldError(f"value of filter criterion for field '{fdef.name}' must be of type {wanted}"
                                    + (" and should not be enclosed in quotes" if quoted else ""))
        return value


# -- binding relative dates ------------------------------------------------------------------------------------------


def bind_dates(node: Filter | None, obj: ObjectDef, today: date, fiscal_start_month: int = 1) -> Filter | None:
    """``node`` with each relative date literal (``TODAY``, ``LAST_N_DAYS:7``) replaced by its range for ``today``."""
    if node is None:
        return None
    if isinstance(node, AllOf):
        return AllOf(tuple(bind_dates(i, obj, today, fiscal_start_month) for i in node.items))  # type: ignore[misc]
    if isinstance(node, AnyOf):
        return AnyOf(tuple(bind_dates(i, obj, today, fiscal_start_month) for i in node.items))  # type: ignore[misc]
    if isinstance(node, Negate):
        return Negate(bind_dates(node.item, obj, today, fiscal_start_month))  # type: ignore[arg-type]
    if not isinstance(node, Compare) or not isinstance(node.value, ast.DateLiteral):
        return node
    start, end = resolve(node.value, today, fiscal_start_month=fiscal_start_month)
    fdef = obj.field(node.column)
    if fdef is not None and fdef.type is FieldType.DATETIME:
        start, end = as_datetimes((start, end))  # type: ignore[assignment]
    column = node.column
    match node.op:
        case "eq":
            return AllOf((Compare(column, "ge", start), Compare(column, "lt", end)))
        case "ne":
            return AnyOf((Compare(column, "lt", start), Compare(column, "ge", end)))
        case "lt":
            return Compare(column, "lt", start)
        case "le":
            return Compare(column, "lt", end)
        case "gt":
            return Compare(column, "ge", end)
        case _:
            return Compare(column, "ge", start)


def has_date_literals(node: Filter | None) -> bool:
    if node is None:
        return False
    if isinstance(node, AllOf | AnyOf):
        return any(has_date_literals(i) for i in node.items)
    if isinstance(node, Negate):
        return has_date_literals(node.item)
    return isinstance(node, Compare) and isinstance(node.value, ast.DateLiteral)


__all__ = [
    "AllOf",
    "AnyOf",
    "Compare",
    "CompareOp",
    "ExternalChild",
    "ExternalPlan",
    "Filter",
    "In",
    "Negate",
    "ParentSelect",
    "SortKey",
    "bind_dates",
    "compile_external",
    "compile_external_child",
    "has_date_literals",
]
