"""Running a GraphQL request against an org: queries through the SOQL engine, mutations through the write path.

A mutation operation runs in ONE unit of work: when any mutation field fails (``allOrNone``, the platform's
default and the only mode supported) everything rolls back and the response carries the errors and no data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from graphql import (
    ExecutionResult,
    GraphQLError,
    GraphQLResolveInfo,
    execute_sync,
    get_operation_ast,
    parse,
    validate,
    validate_schema,
)
from graphql.language import OperationType

from interlink.errors import InterlinkError
from interlink.graphql import compiler
from interlink.graphql.literals import quote
from interlink.graphql.schema import Resolvers, schema_for
from interlink.metadata.model import ObjectDef, Schema

if TYPE_CHECKING:
    from interlink.app.org import Org
    from interlink.records.context import Context


@dataclass
class GraphQLContext:
    org: Org
    context: Context
    url_prefix: str
    model: Schema  # the caller's view of the org's schema, which their GraphQL schema was built from


def _ctx(info: GraphQLResolveInfo) -> GraphQLContext:
    return info.context  # type: ignore[no-any-return]


def _interlink_error(error: InterlinkError, info: GraphQLResolveInfo | None = None) -> GraphQLError:
    return GraphQLError(error.message, info.field_nodes if info else None, path=info.path.as_list() if info else None,
                        original_error=error,
                        extensions={"ErrorType": "DataFetchingException", "errorCode": error.error_code,
                                    "fields": list(error.fields)})


def _connection(obj: ObjectDef) -> Any:
    def resolve(_root: Any, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
        gctx = _ctx(info)
        plan = compiler.connection_plan(info, gctx.model, obj, list(info.field_nodes), args)
        try:
            page = gctx.org.query.execute(compiler.soql(plan), gctx.context, batch_size=plan.first,
                                          offset=plan.offset, url_prefix=gctx.url_prefix)
        except InterlinkError as error:
            raise _interlink_error(error, info) from None
        nodes = [compiler.shape_record(r, plan.record) for r in page.records]
        return compiler.connection_result(nodes, plan.offset, has_next=not page.done, total=page.total_size)

    return resolve


def _record(payload: dict[str, Any], info: GraphQLResolveInfo) -> dict[str, Any] | None:
    """``Record`` of a create/update payload: the written record, read back through SOQL (same transaction)."""
    record_id = payload.get("Id")
    obj: ObjectDef = payload["object"]
    if not record_id:
        return None
    gctx = _ctx(info)
    plan = compiler.ConnectionPlan(obj, compiler.record_plan(info, gctx.model, obj, list(info.field_nodes)), 1, 0,
                                   "", "", False)
    text = compiler.soql(plan, where=f"Id = {quote(record_id)}")
    try:
        page = gctx.org.query.execute(text, gctx.context, batch_size=1, url_prefix=gctx.url_prefix)
    except InterlinkError as error:
        raise _interlink_error(error, info) from None
    return compiler.shape_record(page.records[0], plan.record) if page.records else None


def _raise_first(results: list[Any], info: GraphQLResolveInfo) -> None:
    for result in results:
        if result.errors:
            raise _interlink_error(result.errors[0], info)


def _create(obj: ObjectDef) -> Any:
    def resolve(_root: Any, info: GraphQLResolveInfo, input: dict[str, Any]) -> dict[str, Any]:
        gctx = _ctx(info)
        try:
            results = gctx.org.records.create(gctx.context, obj.name, [dict(input[obj.name])], all_or_none=True)
        except InterlinkError as error:
            raise _interlink_error(error, info) from None
        _raise_first(results, info)
        return {"Id": results[0].id, "object": obj}

    return resolve


def _update(obj: ObjectDef) -> Any:
    def resolve(_root: Any, info: GraphQLResolveInfo, input: dict[str, Any]) -> dict[str, Any]:
        gctx = _ctx(info)
        values = {**input[obj.name], "Id": input["Id"]}
        try:
            results = gctx.org.records.update(gctx.context, obj.name, [values], all_or_none=True)
        except InterlinkError as error:
            raise _interlink_error(error, info) from None
        _raise_first(results, info)
        return {"Id": results[0].id, "object": obj, "success": True}

    return resolve


def _delete(obj: ObjectDef) -> Any:
    def resolve(_root: Any, info: GraphQLResolveInfo, input: dict[str, Any]) -> dict[str, Any]:
        gctx = _ctx(info)
        try:
            results = gctx.org.records.delete(gctx.context, [input["Id"]], all_or_none=True, object_name=obj.name)
        except InterlinkError as error:
            raise _interlink_error(error, info) from None
        _raise_first(results, info)
        return {"Id": results[0].id or input["Id"]}

    return resolve


NOTHING_TO_QUERY = ("There is no object you may query: your profile and permission sets grant read access on no "
                    "queryable object")

RESOLVERS = Resolvers(connection=_connection, create=_create, update=_update, delete=_delete, record=_record)


class _RollBack(Exception):
    def __init__(self, result: ExecutionResult) -> None:
        super().__init__("graphql mutation failed")
        self.result = result


def format_error(error: GraphQLError, error_type: str) -> dict[str, Any]:
    body: dict[str, Any] = {"message": error.message,
                            "locations": [{"line": loc.line, "column": loc.column} for loc in error.locations or []],
                            "path": error.path}
    extensions = dict(error.extensions or {})
    original = error.original_error
    if isinstance(original, InterlinkError) and "errorCode" not in extensions:
        extensions |= {"errorCode": original.error_code, "fields": list(original.fields)}
    extensions.setdefault("ErrorType", error_type)
    body["extensions"] = extensions
    return body


def run(org: Org, context: Context, query: str, variables: dict[str, Any] | None = None,
        operation_name: str | None = None, *, url_prefix: str = "/services/data/v66.0/sobjects") -> dict[str, Any]:
    """Execute one GraphQL request; always answers ``{"data": ..., "errors": [...]}``.

    The schema is ``context``'s: what they may not read is not in it (see :mod:`interlink.graphql.schema`)."""
    model = org.query.schema_for(context)
    schema = schema_for(model, RESOLVERS)
    if validate_schema(schema):  # checked once per schema (graphql-core keeps the answer on it)
        # Only a caller who may query no object at all: GraphQL has no valid schema without one.
        return {"data": None, "errors": [format_error(GraphQLError(NOTHING_TO_QUERY), "ValidationError")]}
    try:
        document = parse(query)
    except GraphQLError as error:
        return {"data": None, "errors": [format_error(error, "InvalidSyntax")]}
    problems = validate(schema, document)
    if problems:
        return {"data": None, "errors": [format_error(e, "ValidationError") for e in problems]}
    operation = get_operation_ast(document, operation_name)
    gctx = GraphQLContext(org, context, url_prefix, model)

    def execute() -> ExecutionResult:
        result = execute_sync(schema, document, context_value=gctx, variable_values=variables,
                              operation_name=operation_name)
        return result

    if operation is not None and operation.operation is OperationType.MUTATION:
        try:
            with org.records.unit_of_work(context):
                result = execute()
                if result.errors:
                    raise _RollBack(result)
        except _RollBack as rollback:
            result = ExecutionResult(None, rollback.result.errors)
    else:
        result = execute()
    return {"data": result.data,
            "errors": [format_error(e, "DataFetchingException") for e in result.errors or []]}
