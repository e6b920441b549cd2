"""Query resources: ``query``, ``queryAll``, their ``nextRecordsUrl`` pages and ``?explain=``.

    GET B/query?q=SOQL            first page (``Sforce-Query-Options: batchSize=N``, 200..2000)
    GET B/queryAll?q=SOQL         the same, including deleted (recycle bin) rows
    GET B/query/{locator}         a later page; ``locator`` is ``<cursor id>-<offset>``
    GET B/query?explain=SOQL      the plan the database chose (leading operation, cardinality, cost)

Thin: the query engine parses, compiles (with a plan cache) and runs; cursors live in the store.
"""

from __future__ import annotations

from starlette.responses import Response

from interlink.api.http import json_response
from interlink.api.resources import ApiRequest, ResourceRouter
from interlink.errors import MalformedQueryError
from interlink.soql.engine import QueryPage

_MIN_BATCH, _MAX_BATCH = 200, 2000


def batch_size(request: ApiRequest) -> int:
    """``Sforce-Query-Options: batchSize=N``, clamped to 200..2000 as the platform does (a hint, not a promise)."""
    options = request.header("sforce-query-options") or ""
    for part in options.split(","):
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == "batchsize":
            try:
                return max(_MIN_BATCH, min(_MAX_BATCH, int(value.strip())))
            except ValueError:
                return _MAX_BATCH
    return _MAX_BATCH


def _respond(request: ApiRequest, page: QueryPage, resource: str, cursor_id: str | None = None) -> Response:
    next_url = None
    if not page.done and page.locator is not None:
        if cursor_id is None:
            locator = request.org.cursors.open(page.locator, request.version)
        else:
            request.org.cursors.save_state(cursor_id, page.locator)
            locator = f"{cursor_id}-{page.locator.offset}"
        # The platform's queryAll pages point at ``query/`` too; both resources serve any cursor.
        next_url = f"{request.base_path}/query/{locator}"
    return json_response(page.to_wire(next_url), pretty=request.pretty)


async def _first_page(request: ApiRequest, resource: str) -> Response:
    include_deleted = resource == "queryAll"
    explain = request.query.get("explain")
    if explain is not None and resource == "query":
        return json_response(request.org.query.explain(explain, request.context), pretty=request.pretty)
    soql = request.query.get("q")
    if not soql or not soql.strip():
        raise MalformedQueryError("A query string has to be specified", [])
    page = request.org.query.execute(soql, request.context, include_deleted=include_deleted,
                                     batch_size=batch_size(request), url_prefix=f"{request.base_path}/sobjects")
    return _respond(request, page, resource)


async def query(request: ApiRequest) -> Response:
    return await _first_page(request, "query")


async def query_all(request: ApiRequest) -> Response:
    return await _first_page(request, "queryAll")


async def _more(request: ApiRequest, resource: str) -> Response:
    locator_text = request.params["locator"]
    locator = request.org.cursors.resolve(locator_text, request.session.user_id, f"{request.base_path}/sobjects")
    page = request.org.query.fetch_more(locator, request.context)
    return _respond(request, page, resource, cursor_id=request.org.cursors.cursor_id(locator_text))


async def query_more(request: ApiRequest) -> Response:
    return await _more(request, "query")


async def query_all_more(request: ApiRequest) -> Response:
    return await _more(request, "queryAll")


def register(router: ResourceRouter) -> None:
    router.add("query", {"GET": query})
    router.add("queryAll", {"GET": query_all})
    router.add("query/{locator}", {"GET": query_more})
    router.add("queryAll/{locator}", {"GET": query_all_more})
