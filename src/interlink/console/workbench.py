"""The SOQL workbench: run a query and page through a grid, see the database's plan, export the result as CSV.

    GET /console/soql?q=SOQL[&all=1][&action=run|explain][&cursor=LOCATOR]
    GET /console/soql/export?q=SOQL[&all=1]      the whole result (every page, at most EXPORT_ROW_CAP rows) as CSV

The query runs in the one query engine with the user's context, exactly as ``GET /query`` (``/queryAll`` with
``all``) and ``?explain=`` do; pages follow query locators as ``nextRecordsUrl`` does. Errors are the platform's
(``MALFORMED_QUERY`` with its line and column, ``INVALID_FIELD``, ``EXTERNAL_OBJECT_UNSUPPORTED_EXCEPTION``...)
and are shown beside the editor. The editor's history lives in the browser (``static/soql.js``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from interlink.console.objects import visible_schema
from interlink.console.render import org_of, page, render
from interlink.console.results import grid, parent_paths, to_csv
from interlink.console.session import ConsoleUser
from interlink.errors import InterlinkError, InvalidQueryLocator, MalformedQueryError
from interlink.soql.engine import DEFAULT_URL_PREFIX
from interlink.soql.parser import parse_soql

SECTION = "/console/soql"
PAGE_SIZE = 200
EXPORT_ROW_CAP = 50_000
EXPORT_BATCH = 2000
MAX_QUERY_LENGTH = 100_000  # the platform's limit on SOQL text


def _query_text(request: Request) -> str:
    text = request.query_params.get("q", "")
    if len(text) > MAX_QUERY_LENGTH:
        raise MalformedQueryError(f"The query is longer than {MAX_QUERY_LENGTH:,} characters", [])
    return text


def _include_deleted(request: Request) -> bool:
    return request.query_params.get("all", "") in ("1", "on", "true")


def _url(q: str, include_deleted: bool, **extra: str) -> str:
    pairs = [("q", q), *([("all", "1")] if include_deleted else []), *extra.items()]
    return f"{SECTION}?{urlencode(pairs)}"


def _prefixes(request: Request, user: ConsoleUser) -> frozenset[str]:
    """Key prefixes of the objects whose record pages ``user`` may open (their Ids become links)."""
    return frozenset(obj.key_prefix for obj in visible_schema(request, user) if not obj.is_event)


def _run(request: Request, user: ConsoleUser, soql: str, include_deleted: bool) -> dict[str, Any]:
    org = org_of(request)
    cursor = request.query_params.get("cursor")
    cursor_id, offset = None, 0
    if cursor:
        locator = org.cursors.resolve(cursor, user.id, DEFAULT_URL_PREFIX)
        if locator.soql != soql or locator.include_deleted != include_deleted:
            raise InvalidQueryLocator("This page belongs to another query; run the query again.")
        result = org.query.fetch_more(locator, user.context)
        cursor_id, offset = org.cursors.cursor_id(cursor), locator.offset
    else:
        result = org.query.execute(soql, user.context, include_deleted=include_deleted, batch_size=PAGE_SIZE)
    next_url = None
    if not result.done and result.locator is not None:
        if cursor_id is None:
            locator_text = org.cursors.open(result.locator, user.context.api_version)
        else:
            org.cursors.save_state(cursor_id, result.locator)
            locator_text = f"{cursor_id}-{result.locator.offset}"
        next_url = _url(soql, include_deleted, cursor=locator_text)
    return {"result": result, "offset": offset, "next_url": next_url,
            "grid": grid(result.records, _prefixes(request, user), extra=parent_paths(soql))}


@page
async def workbench(request: Request, user: ConsoleUser) -> Response:
    soql = ""
    include_deleted = _include_deleted(request)
    action = request.query_params.get("action", "run")
    values: dict[str, Any] = {"result": None, "plans": None, "error": None}
    try:
        soql = _query_text(request)
        if soql.strip():
            if action == "explain":
                values["plans"] = org_of(request).query.explain(soql, user.context,
                                                                include_deleted=include_deleted)["plans"]
            else:
                values.update(_run(request, user, soql, include_deleted))
    except InterlinkError as error:
        values["error"] = error
    error = values["error"]
    return render(request, "soql.html", user, section=SECTION, status=error.http_status if error else 200,
                  soql=soql if len(soql) <= MAX_QUERY_LENGTH else "", include_deleted=include_deleted,
                  action=action, error_body=error.wire_list() if error else None,
                  export_url=f"{SECTION}/export?" + urlencode([("q", soql), *([("all", "1")] if include_deleted
                                                                              else [])]), **values)


def _filename(soql: str) -> str:
    try:
        name = parse_soql(soql).object
    except InterlinkError:
        name = "query"
    safe = re.sub(r"[^A-Za-z0-9_]", "", name) or "query"
    return f"{safe}-{datetime.now(UTC):%Y%m%d-%H%M%S}.csv"


@page
async def export(request: Request, user: ConsoleUser) -> Response:
    """The whole result as CSV: every page, up to EXPORT_ROW_CAP rows (``X-Export-Truncated: true`` beyond)."""
    org = org_of(request)
    include_deleted = _include_deleted(request)
    try:
        soql = _query_text(request)
        if not soql.strip():
            raise MalformedQueryError("A query string has to be specified", [])
        result = org.query.execute(soql, user.context, include_deleted=include_deleted, batch_size=EXPORT_BATCH)
        records = list(result.records)
        while not result.done and result.locator is not None and len(records) < EXPORT_ROW_CAP:
            result = org.query.fetch_more(result.locator, user.context)
            records.extend(result.records)
    except InterlinkError as error:
        return render(request, "soql.html", user, section=SECTION, status=error.http_status,
                      soql=request.query_params.get("q", "")[:MAX_QUERY_LENGTH], include_deleted=include_deleted,
                      action="export", result=None, plans=None, error=error, error_body=error.wire_list(),
                      export_url=request.url.path + "?" + request.url.query)
    truncated = len(records) > EXPORT_ROW_CAP or not result.done
    records = records[:EXPORT_ROW_CAP]
    name = _filename(soql)
    return Response(to_csv(records, parent_paths(soql)), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f"attachment; filename=\"{name}\"; filename*=UTF-8''{quote(name)}",
        "X-Export-Rows": str(len(records)), "X-Export-Truncated": "true" if truncated else "false"})


def routes() -> list[BaseRoute]:
    return [
        Route("/soql", workbench, methods=["GET", "HEAD"]),
        Route("/soql/export", export, methods=["GET", "HEAD"]),
    ]


__all__ = ["EXPORT_ROW_CAP", "routes"]
