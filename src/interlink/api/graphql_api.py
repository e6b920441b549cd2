"""``POST /services/data/vXX.X/graphql`` (API 56.0+): the UI API GraphQL endpoint, a thin adapter.

Body ``{"query", "variables"?, "operationName"?}``; the answer is always HTTP 200 with ``{"data", "errors"}``,
as the platform does, including for syntax and validation errors.
"""

from __future__ import annotations

from starlette.responses import Response

from interlink.api.http import json_response, parse_json_object
from interlink.api.resources import ApiRequest, ResourceRouter
from interlink.errors import NotFoundError

MIN_VERSION = 56.0


async def graphql(request: ApiRequest) -> Response:
    if float(request.version) < MIN_VERSION:
        raise NotFoundError()
    body = parse_json_object(request.body)
    query = body.get("query")
    variables = body.get("variables")
    operation_name = body.get("operationName")
    if not isinstance(query, str) or not query.strip():
        return json_response({"data": None, "errors": [{"message": "A query string has to be specified",
                                                         "locations": [], "path": None,
                                                         "extensions": {"ErrorType": "InvalidSyntax"}}]})
    if variables is not None and not isinstance(variables, dict):
        variables = None
    from interlink.graphql import run  # graphql-core costs ~150 ms to import: load it on first use, not at start

    result = run(request.org, request.context, query, variables,
                 operation_name if isinstance(operation_name, str) else None,
                 url_prefix=f"{request.base_path}/sobjects")
    return json_response(result, pretty=request.pretty)


def register(router: ResourceRouter) -> None:
    router.add("graphql", {"POST": graphql})
