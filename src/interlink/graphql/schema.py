"""The UI API GraphQL schema, generated with graphql-core from the caller's view of the org's metadata (cached).

Shape (as the platform)::

    query    { uiapi { query { Account(where, first, after, orderBy): AccountConnection } } }
    mutation { uiapi(input: {allOrNone: true}) { AccountCreate(input: {Account: {...}}) { Record { Id } }
                                                 AccountUpdate(input: {Id, Account: {...}}) { success Record { Id } }
                                                 AccountDelete(input: {Id}) { Id } } }

A record type (``Account``) has ``Id: ID``, ``ApiName``, one value wrapper per field (``Name: StringValue`` with
``value`` and ``displayValue``), its parent relationships as nested record types (``Owner: User``) and its child
relationships as connections (``Contacts(first, after, where, orderBy): ContactConnection``). Every field carries
``extensions["interlink"]`` so the compiler can map a selection back to metadata.

As on the platform, the schema follows the caller's object and field-level security: it is built from the schema
view the query engine uses for them (``QueryEngine.schema_for``), so objects and fields they may not read are not in
it (introspection does not list them; selecting one is a ``ValidationError`` like any unknown field) and mutations
follow their create, edit and delete rights. Unrestricted callers get the org's schema itself, so they share one
GraphQL schema.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

from graphql import (
    FloatValueNode,
    GraphQLArgument,
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLError,
    GraphQLField,
    GraphQLID,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLString,
    IntValueNode,
    StringValueNode,
    ValueNode,
)

from interlink.metadata.model import FieldDef, FieldType, ObjectDef, Schema

# -- scalars and value wrappers ------------------------------------------------------------------------------


def _string_scalar(name: str, serialize: Callable[[Any], Any] = str) -> GraphQLScalarType:
    def parse_value(value: Any) -> str:
        if not isinstance(value, str):
            raise GraphQLError(f"{name} cannot represent a non-string value: {value!r}")
        return value

    def parse_literal(node: ValueNode, _variables: Any = None) -> str:
        if not isinstance(node, StringValueNode):
            raise ValueError(f"{name} cannot represent a non-string value")
        return node.value

    return GraphQLScalarType(name, serialize=serialize, parse_value=parse_value, parse_literal=parse_literal)


def _number_scalar(name: str) -> GraphQLScalarType:
    def parse_value(value: Any) -> int | float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise GraphQLError(f"{name} cannot represent a non-numeric value: {value!r}")
        return value

    def parse_literal(node: ValueNode, _variables: Any = None) -> int | float:
        if isinstance(node, IntValueNode):
            return int(node.value)
        if isinstance(node, FloatValueNode):
            return float(node.value)
        raise ValueError(f"{name} cannot represent a non-numeric value")

    return GraphQLScalarType(name, serialize=lambda v: v, parse_value=parse_value, parse_literal=parse_literal)


def _datetime_out(value: Any) -> str:
    text = str(value)
    return text[:-5] + "Z" if text.endswith("+0000") else text


_SCALARS: dict[str, GraphQLScalarType] = {
    "String": GraphQLString,
    "ID": GraphQLID,
    "Boolean": GraphQLBoolean,
    "Int": GraphQLInt,
    "Double": _number_scalar("Double"),
    "Currency": _number_scalar("Currency"),
    "Percent": _number_scalar("Percent"),
    "Date": _string_scalar("Date"),
    "DateTime": _string_scalar("DateTime", _datetime_out),
    "Time": _string_scalar("Time"),
    "TextArea": _string_scalar("TextArea"),
    "LongTextArea": _string_scalar("LongTextArea"),
    "Email": _string_scalar("Email"),
    "PhoneNumber": _string_scalar("PhoneNumber"),
    "Url": _string_scalar("Url"),
    "Picklist": _string_scalar("Picklist"),
    "MultiPicklist": _string_scalar("MultiPicklist"),
}

_SCALAR_OF: dict[FieldType, str] = {
    FieldType.ID: "ID", FieldType.REFERENCE: "ID", FieldType.STRING: "String", FieldType.TEXTAREA: "TextArea",
    FieldType.EMAIL: "Email", FieldType.PHONE: "PhoneNumber", FieldType.URL: "Url", FieldType.PICKLIST: "Picklist",
    FieldType.MULTIPICKLIST: "MultiPicklist", FieldType.BOOLEAN: "Boolean", FieldType.INT: "Int",
    FieldType.DOUBLE: "Double", FieldType.CURRENCY: "Currency", FieldType.PERCENT: "Percent",
    FieldType.DATE: "Date", FieldType.DATETIME: "DateTime", FieldType.TIME: "Time",
}
_NO_ORDERING = frozenset({"Boolean", "MultiPicklist", "LongTextArea"})


def scalar_name(fdef: FieldDef) -> str:
    name = _SCALAR_OF[fdef.type]
    if name == "TextArea" and fdef.length > 255:
        return "LongTextArea"
    return name


def _wrapper_name(scalar: str) -> str:
    return f"{scalar}Value" if scalar != "PhoneNumber" else "PhoneNumberValue"


def _operators_name(scalar: str) -> str:
    return "IntegerOperators" if scalar == "Int" else f"{scalar}Operators"


# -- the builder ----------------------------------------------------------------------------------------------

Resolver = Callable[..., Any]


class Resolvers:
    """What the schema calls into (supplied by the execution layer, so this module stays declarative)."""

    def __init__(self, connection: Callable[[ObjectDef], Resolver], create: Callable[[ObjectDef], Resolver],
                 update: Callable[[ObjectDef], Resolver], delete: Callable[[ObjectDef], Resolver],
                 record: Resolver) -> None:
        self.connection = connection
        self.create = create
        self.update = update
        self.delete = delete
        self.record = record


class _Builder:
    def __init__(self, model: Schema, resolvers: Resolvers) -> None:
        # The built types' field thunks keep this builder alive, so it holds no reference to ``model``: the cache
        # below is keyed weakly by ``model`` and must let a user's superseded view die.
        self.resolvers = resolvers
        self.objects = [o for o in model if o.queryable]
        self.names = {o.name for o in self.objects}
        self.by_name = {o.name.lower(): o for o in model}
        self.child_relationships = {o.name: model.children_of(o.name) for o in self.objects}
        self.wrappers: dict[str, GraphQLObjectType] = {}
        self.operators: dict[str, GraphQLInputObjectType] = {}
        self.records: dict[str, GraphQLObjectType] = {}
        self.connections: dict[str, GraphQLObjectType] = {}
        self.filters: dict[str, GraphQLInputObjectType] = {}
        self.orderings: dict[str, GraphQLInputObjectType] = {}
        self.results_order = GraphQLEnumType("ResultsOrder", {"ASC": "ASC", "DESC": "DESC"})
        self.nulls_order = GraphQLEnumType("NullsOrder", {"FIRST": "FIRST", "LAST": "LAST"})
        self.order_clause = GraphQLInputObjectType("OrderByClause", {
            "order": GraphQLInputField(self.results_order), "nulls": GraphQLInputField(self.nulls_order)})
        self.page_info = GraphQLObjectType("PageInfo", {
            "hasNextPage": GraphQLField(GraphQLNonNull(GraphQLBoolean)),
            "hasPreviousPage": GraphQLField(GraphQLNonNull(GraphQLBoolean)),
            "startCursor": GraphQLField(GraphQLString),
            "endCursor": GraphQLField(GraphQLString),
        })

    # value wrappers and operators
    def wrapper(self, scalar: str) -> GraphQLObjectType:
        if scalar not in self.wrappers:
            self.wrappers[scalar] = GraphQLObjectType(_wrapper_name(scalar), {
                "value": GraphQLField(_SCALARS[scalar]), "displayValue": GraphQLField(GraphQLString)})
        return self.wrappers[scalar]

    def operator_type(self, scalar: str) -> GraphQLInputObjectType:
        if scalar not in self.operators:
            base = _SCALARS[scalar]
            fields = {"eq": GraphQLInputField(base), "ne": GraphQLInputField(base)}
            if scalar not in _NO_ORDERING:
                fields |= {op: GraphQLInputField(base) for op in ("lt", "lte", "gt", "gte")}
                fields |= {op: GraphQLInputField(GraphQLList(base)) for op in ("in", "nin")}
            if base is GraphQLString or scalar in ("ID", "TextArea", "Email", "PhoneNumber", "Url", "Picklist"):
                fields["like"] = GraphQLInputField(GraphQLString)
            self.operators[scalar] = GraphQLInputObjectType(_operators_name(scalar), fields)
        return self.operators[scalar]

    # per-object types
    def parent_target(self, fdef: FieldDef) -> str | None:
        if fdef.type is FieldType.REFERENCE and fdef.relationship_name and len(fdef.reference_to) == 1:
            target = self.by_name.get(fdef.reference_to[0].lower())
            if target is not None and target.name in self.names:
                return target.name
        return None

    def children(self, obj: ObjectDef) -> list[tuple[str, str, str]]:
        """(relationship name, child object, child field) of ``obj``'s child relationships."""
        seen: set[str] = set()
        out = []
        for rel in self.child_relationships.get(obj.name, ()):
            if rel.relationship_name and rel.child_object in self.names and rel.relationship_name not in seen:
                seen.add(rel.relationship_name)
                out.append((rel.relationship_name, rel.child_object, rel.field))
        return out

    def connection_args(self, name: str) -> dict[str, GraphQLArgument]:
        return {
            "first": GraphQLArgument(GraphQLInt),
            "after": GraphQLArgument(GraphQLString),
            "where": GraphQLArgument(self.filters[name]),
            "orderBy": GraphQLArgument(self.orderings[name]),
        }

    def record_type(self, obj: ObjectDef) -> GraphQLObjectType:
        def fields() -> dict[str, GraphQLField]:
            out: dict[str, GraphQLField] = {
                "Id": GraphQLField(GraphQLNonNull(GraphQLID), extensions={"interlink": ("id",)}),
                "ApiName": GraphQLField(GraphQLNonNull(GraphQLString), resolve=_api_name,
                                        extensions={"interlink": ("meta",)}),
            }
            for fdef in obj.fields:
                if fdef.name == "Id":
                    continue
                out[fdef.name] = GraphQLField(self.wrapper(scalar_name(fdef)), resolve=_value_resolver(fdef.name),
                                              extensions={"interlink": ("field", fdef.name)})
            for fdef in obj.fields:
                target = self.parent_target(fdef)
                if target and fdef.relationship_name not in out:
                    out[fdef.relationship_name or ""] = GraphQLField(
                        self.records[target], extensions={"interlink": ("parent", target, fdef.name)})
            for rel, child, _field in self.children(obj):
                if rel not in out:
                    out[rel] = GraphQLField(self.connections[child], args=self.connection_args(child),
                                            extensions={"interlink": ("child", child)})
            return out

        return GraphQLObjectType(obj.name, fields, extensions={"interlink": obj.name})

    def connection_type(self, obj: ObjectDef) -> GraphQLObjectType:
        edge = GraphQLObjectType(f"{obj.name}Edge", {
            "node": GraphQLField(self.records[obj.name]), "cursor": GraphQLField(GraphQLNonNull(GraphQLString))})
        return GraphQLObjectType(f"{obj.name}Connection", {
            "edges": GraphQLField(GraphQLList(edge)),
            "pageInfo": GraphQLField(GraphQLNonNull(self.page_info)),
            "totalCount": GraphQLField(GraphQLNonNull(GraphQLInt)),
        })

    def filter_type(self, obj: ObjectDef) -> GraphQLInputObjectType:
        def fields() -> dict[str, GraphQLInputField]:
            this = self.filters[obj.name]
            out = {"and": GraphQLInputField(GraphQLList(this)), "or": GraphQLInputField(GraphQLList(this)),
                   "not": GraphQLInputField(this)}
            for fdef in obj.fields:
                scalar = scalar_name(fdef)
                if scalar != "LongTextArea":
                    out[fdef.name] = GraphQLInputField(self.operator_type(scalar))
            for fdef in obj.fields:
                target = self.parent_target(fdef)
                if target and fdef.relationship_name not in out:
                    out[fdef.relationship_name or ""] = GraphQLInputField(self.filters[target])
            return out

        return GraphQLInputObjectType(f"{obj.name}_Filter", fields)

    def order_type(self, obj: ObjectDef) -> GraphQLInputObjectType:
        def fields() -> dict[str, GraphQLInputField]:
            out = {f.name: GraphQLInputField(self.order_clause) for f in obj.fields
                   if scalar_name(f) not in ("MultiPicklist", "LongTextArea")}
            for fdef in obj.fields:
                target = self.parent_target(fdef)
                if target and fdef.relationship_name not in out:
                    out[fdef.relationship_name or ""] = GraphQLInputField(self.orderings[target])
            return out

        return GraphQLInputObjectType(f"{obj.name}_OrderBy", fields)

    def representation(self, obj: ObjectDef, kind: str) -> GraphQLInputObjectType:
        fields = {}
        for fdef in obj.fields:
            writable = fdef.createable if kind == "Create" else fdef.updateable
            if writable and not fdef.is_system and not fdef.auto_number:
                fields[fdef.name] = GraphQLInputField(_SCALARS[scalar_name(fdef)])
        return GraphQLInputObjectType(f"{obj.name}{kind}Representation", fields)

    def mutations(self) -> GraphQLObjectType:
        delete_input = GraphQLInputObjectType("RecordDeleteInput", {"Id": GraphQLInputField(GraphQLNonNull(GraphQLID))})
        delete_payload = GraphQLObjectType("RecordDeletePayload", {"Id": GraphQLField(GraphQLID)})
        fields: dict[str, GraphQLField] = {}
        for obj in self.objects:
            record_field = GraphQLField(self.records[obj.name], resolve=self.resolvers.record)
            if obj.createable:
                rep = self.representation(obj, "Create")
                if rep.fields:
                    fields[f"{obj.name}Create"] = GraphQLField(
                        GraphQLObjectType(f"{obj.name}CreatePayload", {"Record": record_field}),
                        args={"input": GraphQLArgument(GraphQLNonNull(GraphQLInputObjectType(
                            f"{obj.name}CreateInput", {obj.name: GraphQLInputField(GraphQLNonNull(rep))})))},
                        resolve=self.resolvers.create(obj))
            if obj.updateable:
                rep = self.representation(obj, "Update")
                if rep.fields:
                    fields[f"{obj.name}Update"] = GraphQLField(
                        GraphQLObjectType(f"{obj.name}UpdatePayload", {
                            "success": GraphQLField(GraphQLBoolean), "Record": record_field}),
                        args={"input": GraphQLArgument(GraphQLNonNull(GraphQLInputObjectType(
                            f"{obj.name}UpdateInput", {"Id": GraphQLInputField(GraphQLNonNull(GraphQLID)),
                                                       obj.name: GraphQLInputField(GraphQLNonNull(rep))})))},
                        resolve=self.resolvers.update(obj))
            if obj.deletable:
                fields[f"{obj.name}Delete"] = GraphQLField(
                    delete_payload, args={"input": GraphQLArgument(GraphQLNonNull(delete_input))},
                    resolve=self.resolvers.delete(obj))
        return GraphQLObjectType("UIAPIMutations", fields)

    def build(self) -> GraphQLSchema:
        for obj in self.objects:
            self.filters[obj.name] = self.filter_type(obj)
            self.orderings[obj.name] = self.order_type(obj)
            self.records[obj.name] = self.record_type(obj)
        for obj in self.objects:
            self.connections[obj.name] = self.connection_type(obj)
        record_query = GraphQLObjectType("RecordQuery", {
            obj.name: GraphQLField(self.connections[obj.name], args=self.connection_args(obj.name),
                                   resolve=self.resolvers.connection(obj), extensions={"interlink": obj.name})
            for obj in self.objects})
        uiapi = GraphQLObjectType("UIAPI", {"query": GraphQLField(GraphQLNonNull(record_query), resolve=_empty)})
        query = GraphQLObjectType("Query", {"uiapi": GraphQLField(GraphQLNonNull(uiapi), resolve=_empty)})
        mutations = self.mutations()
        mutation = None  # a caller who may change nothing has no mutation type (a mutation is a ValidationError)
        if mutations.fields:
            mutations_input = GraphQLInputObjectType("UIAPIMutationsInput", {
                "allOrNone": GraphQLInputField(GraphQLBoolean, default_value=True)})
            mutation = GraphQLObjectType("Mutation", {
                "uiapi": GraphQLField(mutations, args={"input": GraphQLArgument(mutations_input)}, resolve=_empty)})
        return GraphQLSchema(query=query, mutation=mutation, types=list(self.wrappers.values()))


def _empty(*_args: Any, **_kwargs: Any) -> dict[str, Any]:
    return {}


def _api_name(record: dict[str, Any], _info: Any) -> str:
    return str(record.get("attributes", {}).get("type", ""))


def _value_resolver(name: str) -> Resolver:
    def resolve(record: dict[str, Any], _info: Any) -> dict[str, Any]:
        return {"value": record.get(name), "displayValue": None}

    return resolve


# One GraphQL schema per model object: the org's schema (shared by every unrestricted caller) or one user's view of
# it (``UserAccess.schema``: cached per user, replaced when their permissions change). Keyed weakly, so a schema
# goes when its model does: after a deploy, or when a user's permissions change.
_cache: weakref.WeakKeyDictionary[Schema, GraphQLSchema] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def schema_for(model: Schema, resolvers: Resolvers) -> GraphQLSchema:
    """The GraphQL schema of ``model`` (built once per model object: per deployed schema version, per user view)."""
    with _lock:
        built = _cache.get(model)
    if built is not None:
        return built
    # Built outside the lock so one user's first request does not hold up everybody else's; two concurrent first
    # requests of the same view may both build, and the first one stored wins.
    fresh = _Builder(model, resolvers).build()
    with _lock:
        return _cache.setdefault(model, fresh)


__all__ = ["Resolvers", "scalar_name", "schema_for"]
