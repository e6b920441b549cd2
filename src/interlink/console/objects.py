"""The console's "Objects" section: every object of the org the user may read, and list views of their records.

    GET /console/objects          stored, external and event objects, with record counts for stored ones
    GET /console/o/{Object}       a list view: columns, filters, sort and pages, run as SOQL by the query engine

A list view is one SOQL query (see :mod:`interlink.console.listview`) executed with the user's context by the
same engine and cursors as the REST query resource, so what a user sees here is what the API would answer them;
later pages follow the query locator exactly as ``nextRecordsUrl`` does.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from interlink.console.fields import display, list_href
from interlink.console.listview import OPERATORS, ListView, sortable
from interlink.console.render import org_of, page, render
from interlink.console.session import ConsoleUser
from interlink.errors import InterlinkError, InvalidQueryLocator, NotFoundError
from interlink.metadata.model import NUMBER_TYPES, FieldType, ObjectDef, Schema
from interlink.soql.engine import DEFAULT_URL_PREFIX, QueryPage

SECTION = "/console/objects"


def object_or_404(request: Request, name: str, user: ConsoleUser) -> ObjectDef:
    """The object as ``user`` may see it (without the fields they may not read); 404 when it does not exist for
    them."""
    obj = visible_schema(request, user).object(name)
    if obj is None:
        raise NotFoundError(f"There is no object called {name} in this org.")
    return obj


def visible_schema(request: Request, user: ConsoleUser) -> Schema:
    """The org's schema without what ``user`` may not read (the query engine's view of it): every object list,
    picker and lookup of the console uses it, so an object they may not open is never offered."""
    return org_of(request).query.schema_for(user.context)


def kind_label(obj: ObjectDef) -> str:
    if obj.is_event:
        return "Platform event"
    if obj.is_external:
        return f"External ({obj.data_source})" if obj.data_source else "External"
    return "Stored"


@page
async def objects_index(request: Request, user: ConsoleUser) -> Response:
    org = org_of(request)
    rows: list[dict[str, Any]] = []
    for obj in sorted(visible_schema(request, user), key=lambda o: (o.label_plural or o.label).lower()):
        count: int | None = None
        if obj.is_stored and obj.queryable:
            try:
                count = org.query.execute(f"SELECT COUNT() FROM {obj.name}", user.context).total_size
            except InterlinkError:
                count = None  # e.g. a data source that cannot count: the row still links to the object
        rows.append({"obj": obj, "kind": kind_label(obj), "count": count})
    return render(request, "objects.html", user, section=SECTION, rows=rows)


def _run(request: Request, user: ConsoleUser, view: ListView) -> tuple[QueryPage, int, str | None, str | None]:
    """The page the request asks for: (page, its first row's offset, next page's locator, previous page's)."""
    org = org_of(request)
    soql = view.soql()
    cursor = request.query_params.get("cursor")
    cursor_id = None
    offset = 0
    if cursor:
        locator = org.cursors.resolve(cursor, user.id, DEFAULT_URL_PREFIX)
        if locator.soql != soql:
            raise InvalidQueryLocator("This page belongs to another list view; start from its first page.")
        result = org.query.fetch_more(locator, user.context)
        cursor_id, offset = org.cursors.cursor_id(cursor), locator.offset
    else:
        result = org.query.execute(soql, user.context, batch_size=view.page_size)
    next_locator = None
    if not result.done and result.locator is not None:
        if cursor_id is None:
            next_locator = org.cursors.open(result.locator, user.context.api_version)
        else:
            org.cursors.save_state(cursor_id, result.locator)
            next_locator = f"{cursor_id}-{result.locator.offset}"
    previous = None
    if offset > 0:
        start = max(0, offset - view.page_size)
        previous = f"{cursor_id}-{start}" if start else ""
    return result, offset, next_locator, previous


def _url(obj: ObjectDef, pairs: list[tuple[str, str]]) -> str:
    query = urlencode(pairs)
    return list_href(obj.name) + (f"?{query}" if query else "")


def raw_filters(request: Request) -> list[tuple[str, str, str]]:
    """The filter rows as typed (field, operator, value), kept for the form even when one is invalid."""
    params = request.query_params
    names, ops, values = params.getlist("ff"), params.getlist("fo"), params.getlist("fv")
    rows = []
    for index, name in enumerate(names):
        if name.strip():
            rows.append((name, ops[index] if index < len(ops) else "eq", values[index] if index < len(values) else ""))
    return rows


class _WithoutFilters:
    """The request's query parameters minus the filters (the page's columns and sort after a bad filter)."""

    def __init__(self, request: Request) -> None:
        self._params = request.query_params

    def get(self, key: str, default: str | None = None) -> str | None:
        return self._params.get(key, default)

    def getlist(self, key: str) -> list[str]:
        return [] if key in ("ff", "fo", "fv") else self._params.getlist(key)


@page
async def list_view(request: Request, user: ConsoleUser) -> Response:
    obj = object_or_404(request, request.path_params["object"], user)
    if obj.is_event:
        return render(request, "object_list.html", user, section=SECTION, obj=obj, kind=kind_label(obj),
                      event=True)
    error: InterlinkError | None = None
    try:
        view = ListView.from_params(visible_schema(request, user), obj, request.query_params)
    except InterlinkError as exc:  # a bad filter: show it with its message, run nothing
        error = exc
        view = ListView.from_params(visible_schema(request, user), obj, _WithoutFilters(request))
    filter_error = error is not None
    typed = raw_filters(request)
    values: dict[str, Any] = {"rows": [], "total": None, "offset": 0, "next_url": None, "previous_url": None}
    if error is None:
        try:
            result, offset, next_locator, previous = _run(request, user, view)
        except InterlinkError as exc:  # e.g. EXTERNAL_OBJECT_UNSUPPORTED_EXCEPTION from a data source
            error = exc
        else:
            values.update(
                rows=[{"id": r.get("Id"), "cells": [display(f, r) for f in view.columns]} for r in result.records],
                total=result.total_size, offset=offset,
                next_url=_url(obj, [*view.params(), ("cursor", next_locator)]) if next_locator else None,
                previous_url=None if previous is None else
                _url(obj, [*view.params(), *([("cursor", previous)] if previous else [])]))
    headers = [{"field": fdef, "num": fdef.type in NUMBER_TYPES or fdef.type is FieldType.INT,
                "sorted": ("desc" if view.descending else "asc") if view.sort is fdef else "",
                "href": _url(obj, view.params(sort=fdef, descending=view.sort is fdef and not view.descending))
                if sortable(fdef) else ""}
               for fdef in view.columns]
    base = view.params(filters=False)
    filters = [{"field": name, "op": op, "value": value,
                "remove": _url(obj, [*base, *_filter_pairs(typed, skip=index)])}
               for index, (name, op, value) in enumerate(typed)]
    soql = view.soql() if not filter_error else ""  # nothing ran: show no query rather than a misleading one
    return render(request, "object_list.html", user, section=SECTION, obj=obj, kind=kind_label(obj), event=False,
                  view=view, soql=soql, error=error, headers=headers, filters=filters, operators=OPERATORS,
                  fields=sorted(obj.fields, key=lambda f: f.label.lower()), chosen={f.name for f in view.columns},
                  workbench="/console/soql?" + urlencode({"q": soql}), status=error.http_status if error else 200,
                  notice="The record was deleted." if request.query_params.get("done") == "deleted" else "",
                  **values)


def _filter_pairs(rows: list[tuple[str, str, str]], *, skip: int) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for index, (name, op, value) in enumerate(rows):
        if index != skip:
            pairs += [("ff", name), ("fo", op), ("fv", value)]
    return pairs


def routes() -> list[BaseRoute]:
    return [
        Route("/objects", objects_index, methods=["GET", "HEAD"]),
        Route("/o/{object}", list_view, methods=["GET", "HEAD"]),
    ]


__all__ = ["kind_label", "object_or_404", "routes", "visible_schema"]
