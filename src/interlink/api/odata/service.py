"""The OData producer's HTTP surface: ``/odata/v4/`` (OData 4.0 JSON) and ``/odata/v2/`` (OData 2.0 verbose JSON,
or Atom XML when the request asks for it: see atom.py).

Paths under each root (``S`` = an exposed entity set, ``N`` = a navigation property)::

    GET                       ./  and  ./$metadata          service document, CSDL
    GET, POST                 ./S                           query (all system query options), create
    GET                       ./S/$count                    count (honours $filter), text/plain
    GET, PATCH, PUT, MERGE,   ./S('001…')                   one entity ($select, $expand), update, delete
      DELETE
    GET                       ./S('001…')/N  and  …/N/$count related entities

Thin, like the REST surface: authenticate with the REST Bearer token, count the request, translate the query
options into SOQL (options.py, filter.py) for the one query engine, write through the records service, and
render errors in one place, in OData's shape with the Interlink error's code.

Server-driven paging is offset paging: a page holds at most ``pageSize`` rows (or ``Prefer:
odata.maxpagesize=n``), and ``@odata.nextLink`` / ``__next`` repeat the request with ``$skiptoken`` = the rows
already delivered. Each page re-runs the (cached) SOQL plan at its offset with the engine's stable ``Id``
tiebreak, so pages neither overlap nor leave gaps while the data holds still, and any API process can serve any
page: nothing is kept on the server.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from interlink.api.app import bearer_token
from interlink.api.http import client_ip, instance_url, parse_json_object, require_api
from interlink.api.odata import atom, csdl
from interlink.api.odata.config import MAX_PAGE_SIZE, ODataConfig
from interlink.api.odata.model import ChildNav, EntitySet, ParentNav, ServiceModel
from interlink.api.odata.options import Selection, build_plan, check_options, non_negative
from interlink.api.odata.render import key_segment, parse_key, record_values, v2_entity, v4_entity
from interlink.errors import (
    InterlinkError,
    InvalidFieldError,
    MalformedQueryError,
    MethodNotAllowed,
    MultipleErrors,
    NotFoundError,
    RequestError,
)
from interlink.records.context import Context
from interlink.soql.render import quote as soql_quote

if TYPE_CHECKING:
    from interlink.app.org import Org
    from interlink.soql.engine import QueryPage

log = logging.getLogger(__name__)

V4_JSON = "application/json;odata.metadata=minimal"
V2_JSON = "application/json;charset=utf-8"
XML = "application/xml;charset=utf-8"
_PATH_RE = re.compile(r"^(?P<set>[A-Za-z_][A-Za-z0-9_]*)(?:\((?P<key>[^)]*)\))?"
                      r"(?:/(?P<nav>[A-Za-z_][A-Za-z0-9_]*))?(?P<count>/\$count)?/?$")
_ENTITY_OPTIONS = ("$select", "$expand", "$format")
_READ_METHODS = ["GET", "HEAD"]
_WRITE_METHODS = ("POST", "PATCH", "PUT", "MERGE", "DELETE")
_URL_SAFE = "$,()'/:=*"
_VIEW_CACHE = 256  # per-user models kept (each is a few dicts over the user's cached view of the schema)


@dataclass
class _Call:
    """One authenticated OData request: version, context, the resolved path and the query options."""

    request: Request
    version: int
    context: Context
    model: ServiceModel
    method: str
    params: Mapping[str, str]
    atom: bool = False  # OData 2.0 Atom XML instead of verbose JSON

    @property
    def root(self) -> str:
        """The service root URL, ending in ``/``."""
        return f"{instance_url(self.request)}/odata/v{self.version}/"


class ODataService:
    """Both OData services over one org; the model follows schema deploys and project reloads (the org holds the
    configuration: ``Org.odata_config``, loaded with the rest of the project's code)."""

    def __init__(self, org: Org) -> None:
        self.org = org
        self._model: ServiceModel | None = None
        self._model_config: ODataConfig | None = None
        self._views: dict[tuple[str, str], ServiceModel] = {}  # (user id, schema view version) -> model

    @property
    def config(self) -> ODataConfig:
        return self.org.odata_config  # type: ignore[no-any-return]

    def model(self, context: Context | None = None) -> ServiceModel:
        """The model for the schema deployed now (rebuilt after a deploy), as ``context``'s caller sees it.

        A caller whose permissions are enforced gets the model of their view of the schema: objects they cannot
        read are not entity sets and fields they cannot read are not properties (absent from ``$metadata``, from
        entities, and unknown to ``$select`` and ``$filter``), as describe leaves them out on the platform.
        """
        schema = self.org.store.schema
        if self._model is None or self._model.schema is not schema or self._model_config is not self.config:
            self._model = ServiceModel(schema, self.config)
            self._model_config = self.config
            self._views.clear()
        access = context.enforced if context is not None else None
        if access is None or access.everything:
            return self._model
        view = access.schema(schema)
        key = (access.user_id, view.version)
        cached = self._views.get(key)
        if cached is None or cached.schema is not view or cached.config is not self.config:
            if len(self._views) >= _VIEW_CACHE:
                self._views.clear()
            cached = self._views[key] = ServiceModel(view, self.config)
        return cached

    # -- entry -----------------------------------------------------------------------------------------------------

    async def handle(self, request: Request, version: int) -> Response:
        """Authenticate, dispatch on the path, render any error in OData's shape."""
        use_atom = version == 2 and atom.wants_atom(request.query_params, request.headers)
        try:
            session = self.org.tokens.validate(bearer_token(request), client_ip(request))
            self.org.usage.count()
            method = request.method.upper()
            tunneled = request.headers.get("x-http-method")
            if method == "POST" and tunneled:
                method = tunneled.strip().upper()  # OData 2.0 clients tunnel MERGE, PUT and DELETE through POST
            context = require_api(self.org.context_for(session.user_id, api_version=self.org.settings.api_max_version,
                                                       app_id=session.app_id))
            call = _Call(request, version, context, self.model(context), method, request.query_params, use_atom)
            return await self._dispatch(call, request.path_params.get("rest", ""))
        except InterlinkError as error:
            return error_response(error, version, as_atom=use_atom)
        except Exception as exc:
            log.exception("unexpected error in the OData service", exc_info=exc)
            return error_response(InterlinkError(f"An unexpected error occurred: {type(exc).__name__}"), version,
                                  as_atom=use_atom)

    async def _dispatch(self, call: _Call, rest: str) -> Response:
        path = rest.strip("/")
        if path == "":
            self._only(call, _READ_METHODS)
            return self._service_document(call)
        if path == "$metadata":
            self._only(call, _READ_METHODS)
            document = csdl.metadata_v4(call.model) if call.version == 4 else csdl.metadata_v2(call.model)
            return Response(document, media_type=XML, headers=_version_headers(call.version))
        if path.startswith("$"):
            raise NotFoundError(f"{path} is not supported")
        match = _PATH_RE.match(path)
        if not match:
            raise NotFoundError(f"Resource not found for the segment '{path}'")
        entity_set = call.model.entity_set(match["set"])
        key, nav_name, counting = match["key"], match["nav"], bool(match["count"])
        if key is None:
            if nav_name is not None:
                raise NotFoundError(f"Resource not found for the segment '{nav_name}'")
            if counting:
                self._only(call, _READ_METHODS)
                return self._count(call, entity_set, ())
            if call.method == "POST":
                return await self._create(call, entity_set)
            self._only(call, [*_READ_METHODS, "POST"] if entity_set.writable else _READ_METHODS, entity_set)
            return self._collection(call, entity_set, ())
        record_id = parse_key(entity_set, key)
        if nav_name is not None:
            self._only(call, _READ_METHODS)
            return self._navigate(call, entity_set, record_id, nav_name, counting)
        if counting:
            raise NotFoundError("$count applies to collections")
        if call.method in ("PATCH", "PUT", "MERGE"):
            return await self._update(call, entity_set, record_id)
        if call.method == "DELETE":
            return self._delete(call, entity_set, record_id)
        self._only(call, _READ_METHODS + (["PATCH", "PUT", "MERGE", "DELETE"] if entity_set.writable else []),
                   entity_set)
        return self._entity(call, entity_set, record_id)

    @staticmethod
    def _only(call: _Call, allowed: list[str], entity_set: EntitySet | None = None) -> None:
        if call.method in allowed:
            return
        error = MethodNotAllowed(call.method, allowed)
        if entity_set is not None and not entity_set.writable and call.method in _WRITE_METHODS:
            error.message = (f"The entity set {entity_set.name} is read-only: expose it with writable: true in "
                             "metadata/odata.yaml to allow changes")
        raise error

    # -- reads -----------------------------------------------------------------------------------------------------

    def _service_document(self, call: _Call) -> Response:
        names = [s.name for s in call.model.sets.values()]
        if call.version == 4:
            return _json({"@odata.context": f"{call.root}$metadata",
                          "value": [{"name": n, "kind": "EntitySet", "url": n} for n in names]}, 4)
        if call.atom:
            return Response(atom.service_document(names, call.root), media_type=atom.SERVICE,
                            headers=_version_headers(2))
        return _json({"d": {"EntitySets": names}}, 2)

    def _page_size(self, call: _Call) -> tuple[int, bool]:
        """Rows per page, and whether it came from ``Prefer: odata.maxpagesize``."""
        for preference in _preferences(call.request):
            name, _, value = preference.partition("=")
            if name.strip().lower() in ("odata.maxpagesize", "maxpagesize"):
                try:
                    wanted = int(value.strip().strip('"'))
                except ValueError:
                    continue
                if wanted >= 1:
                    return min(wanted, MAX_PAGE_SIZE), True
        return self.config.page_size, False

    def _run(self, call: _Call, soql: str, *, batch_size: int = 1, offset: int = 0) -> QueryPage:
        try:
            return self.org.query.execute(soql, call.context, batch_size=batch_size, offset=offset,
                                          url_prefix=f"/odata/v{call.version}")
        except InterlinkError as error:
            # SOQL errors echo the query with a caret under the culprit; the OData caller never wrote that
            # query, so keep the reason alone ("field 'Description' can not be filtered in a query call").
            if error.message.startswith("\n") and "ERROR at Row" in error.message:
                error.message = error.message.rstrip().rsplit("\n", 1)[-1]
                error.args = (error.message,)
            raise

    def _collection(self, call: _Call, entity_set: EntitySet, conditions: tuple[str, ...],
                    path: str | None = None) -> Response:
        plan = build_plan(entity_set, call.model, call.params, call.version, conditions=conditions)
        delivered = _skiptoken(call.params)
        page_size, preferred = self._page_size(call)
        page = self._run(call, plan.soql, batch_size=page_size, offset=plan.engine_offset + delivered)
        count: int | None = None
        if plan.count:
            count = page.total_size if plan.top is None and plan.skip == 0 \
                else self._run(call, plan.count_soql()).total_size
        next_link = None if page.done else _next_link(call, delivered + len(page.records))
        headers = _version_headers(call.version)
        if preferred:
            headers["Preference-Applied"] = f"odata.maxpagesize={page_size}"
        if call.version == 4:
            body: dict[str, Any] = {"@odata.context": _context_url(call, entity_set, plan.selection)}
            if count is not None:
                body["@odata.count"] = count
            body["value"] = [v4_entity(plan.selection, r) for r in page.records]
            if next_link:
                body["@odata.nextLink"] = next_link
            return _json(body, 4, headers=headers)
        if call.atom:
            document = atom.feed_document(plan.selection, page.records, call.root, path or entity_set.name,
                                          count=count, next_link=next_link)
            return Response(document, media_type=atom.FEED, headers=headers)
        results: dict[str, Any] = {"results": [v2_entity(plan.selection, r, call.root) for r in page.records]}
        if count is not None:
            results["__count"] = str(count)
        if next_link:
            results["__next"] = next_link
        return _json({"d": results}, 2, headers=headers)

    def _count(self, call: _Call, entity_set: EntitySet, conditions: tuple[str, ...]) -> Response:
        check_options(call.params, call.version)
        plan = build_plan(entity_set, call.model, {k: v for k, v in call.params.items() if k == "$filter"},
                          call.version, conditions=conditions)
        total = self._run(call, plan.count_soql()).total_size
        return Response(str(total), media_type="text/plain", headers=_version_headers(call.version))

    def _read_entity(self, call: _Call, entity_set: EntitySet, record_id: str,
                     params: Mapping[str, str] | None = None) -> tuple[Selection, dict[str, Any]]:
        check_options(call.params, call.version)
        options = {k: v for k, v in (call.params if params is None else params).items() if k in _ENTITY_OPTIONS}
        plan = build_plan(entity_set, call.model, options, call.version,
                          conditions=(f"Id = {soql_quote(record_id)}",))
        page = self._run(call, plan.soql)
        if not page.records:
            raise NotFoundError(f"No {entity_set.name} entity has the key '{record_id}'")
        return plan.selection, page.records[0]

    def _entity(self, call: _Call, entity_set: EntitySet, record_id: str, *, status: int = 200,
                headers: dict[str, str] | None = None, params: Mapping[str, str] | None = None) -> Response:
        selection, record = self._read_entity(call, entity_set, record_id, params)
        merged = {**_version_headers(call.version), **(headers or {})}
        if call.version == 4:
            body = {"@odata.context": _context_url(call, entity_set, selection) + "/$entity",
                    **v4_entity(selection, record)}
            return _json(body, 4, status=status, headers=merged)
        if call.atom:
            return Response(atom.entry_document(selection, record, call.root), status_code=status,
                            media_type=atom.ENTRY, headers=merged)
        return _json({"d": v2_entity(selection, record, call.root)}, 2, status=status, headers=merged)

    def _navigate(self, call: _Call, entity_set: EntitySet, record_id: str, nav_name: str,
                  counting: bool) -> Response:
        nav = entity_set.navigation(nav_name)
        if nav is None:
            raise NotFoundError(f"No navigation property '{nav_name}' exists in type '{entity_set.type_name}'")
        if isinstance(nav, ChildNav):
            self._read_entity(call, entity_set, record_id, {"$select": "Id"})  # 404 for an unknown parent
            child = call.model.sets[nav.child.lower()]
            condition = (f"{nav.field} = {soql_quote(record_id)}",)
            if counting:
                return self._count(call, child, condition)
            return self._collection(call, child, condition, f"{key_segment(entity_set, record_id)}/{nav.name}")
        if counting:
            raise NotFoundError("$count applies to collections")
        assert isinstance(nav, ParentNav)
        _selection, record = self._read_entity(call, entity_set, record_id, {"$select": nav.field.name})
        parent_id = record.get(nav.field.name)
        if parent_id is None:
            if call.version == 4:
                return Response(status_code=204, headers=_version_headers(4))
            raise NotFoundError(f"The {entity_set.name} entity has no {nav.name}")
        return self._entity(call, call.model.sets[nav.target.lower()], parent_id)

    # -- writes ----------------------------------------------------------------------------------------------------

    def _writable(self, call: _Call, entity_set: EntitySet) -> None:
        if not entity_set.writable:
            self._only(call, _READ_METHODS, entity_set)

    async def _body(self, call: _Call, entity_set: EntitySet) -> dict[str, Any]:
        if call.version == 2:
            atom.refuse_xml_body(call.request.headers.get("content-type"))  # writes read JSON only
        body = parse_json_object(await call.request.body())
        if call.version == 2 and set(body) == {"d"} and isinstance(body["d"], dict):
            body = body["d"]  # some 2.0 clients wrap the entity as the responses do
        return record_values(entity_set, call.model, body, call.version)

    async def _create(self, call: _Call, entity_set: EntitySet) -> Response:
        self._writable(call, entity_set)
        values = await self._body(call, entity_set)
        if "Id" in values:
            raise InvalidFieldError("Id is assigned by the org: leave it out of a new entity", ["Id"])
        results = self.org.records.create(call.context, entity_set.obj.name, [values], all_or_none=True)
        _raise_first(results)
        record_id = results[0].id
        assert record_id is not None
        location = call.root + key_segment(entity_set, record_id)
        headers = {"Location": location}
        if call.version == 4 and "return=minimal" in _preferences(call.request):
            return Response(status_code=204, headers={**_version_headers(4), **headers, "OData-EntityId": location,
                                                      "Preference-Applied": "return=minimal"})
        return self._entity(call, entity_set, record_id, status=201, headers=headers, params={})

    async def _update(self, call: _Call, entity_set: EntitySet, record_id: str) -> Response:
        self._writable(call, entity_set)
        values = await self._body(call, entity_set)
        body_id = values.pop("Id", None)
        if body_id is not None and parse_key(entity_set, f"'{body_id}'") != record_id:
            raise InvalidFieldError("The Id in the body does not match the key in the URL", ["Id"])
        results = self.org.records.update(call.context, entity_set.obj.name, [{**values, "Id": record_id}],
                                          all_or_none=True)
        _raise_first(results)
        if call.version == 4 and "return=representation" in _preferences(call.request):
            return self._entity(call, entity_set, record_id, headers={"Preference-Applied": "return=representation"},
                                params={})
        return Response(status_code=204, headers=_version_headers(call.version))

    def _delete(self, call: _Call, entity_set: EntitySet, record_id: str) -> Response:
        self._writable(call, entity_set)
        self._read_entity(call, entity_set, record_id, {"$select": "Id"})  # 404 when absent or deleted
        results = self.org.records.delete(call.context, [record_id], all_or_none=True,
                                          object_name=entity_set.obj.name)
        _raise_first(results)
        return Response(status_code=204, headers=_version_headers(call.version))


# -- helpers -------------------------------------------------------------------------------------------------------

def _raise_first(results: list[Any]) -> None:
    for result in results:
        if len(result.errors) == 1:
            raise result.errors[0]
        if result.errors:
            raise MultipleErrors(result.errors)


def _preferences(request: Request) -> list[str]:
    return [part.strip().lower() for header in request.headers.getlist("prefer") for part in header.split(",")]


def _skiptoken(params: Mapping[str, str]) -> int:
    try:
        return non_negative(params, "$skiptoken") or 0
    except MalformedQueryError:
        raise MalformedQueryError("$skiptoken is not one this service issued: follow the nextLink as given",
                                  ["$skiptoken"]) from None


def _next_link(call: _Call, delivered: int) -> str:
    """The request's URL with ``$skiptoken`` set to the rows delivered so far."""
    items = [(k, v) for k, v in call.request.query_params.multi_items() if k != "$skiptoken"]
    items.append(("$skiptoken", str(delivered)))
    path = call.request.url.path
    return f"{instance_url(call.request)}{path}?{urlencode(items, quote_via=quote, safe=_URL_SAFE)}"


def _context_url(call: _Call, entity_set: EntitySet, selection: Selection) -> str:
    url = f"{call.root}$metadata#{entity_set.name}"
    if call.params.get("$select") or selection.parents or selection.children:
        items = [p.name for p in selection.properties] if call.params.get("$select") else ["*"]
        items += [f"{nav.name}()" for nav, _ in selection.parents]
        items += [f"{nav.name}()" for nav, _ in selection.children]
        url += f"({','.join(items)})"
    return url


def _version_headers(version: int) -> dict[str, str]:
    return {"OData-Version": "4.0"} if version == 4 else {"DataServiceVersion": "2.0"}


def _json(body: Any, version: int, *, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    merged = {**_version_headers(version), **(headers or {})}
    return Response(orjson.dumps(body), status_code=status, headers=merged,
                    media_type=V4_JSON if version == 4 else V2_JSON)


def error_body(error: InterlinkError, version: int) -> dict[str, Any]:
    """OData's error object: ``{"error": {"code", "message", …}}`` (2.0: message is ``{lang, value}``)."""
    if version == 2:
        return {"error": {"code": error.error_code, "message": {"lang": "en-US", "value": error.message}}}
    detail: dict[str, Any] = {"code": error.error_code, "message": error.message}
    if error.fields:
        detail["target"] = error.fields[0]
    if isinstance(error, MultipleErrors):
        detail["details"] = [{"code": e.error_code, "message": e.message, **({"target": e.fields[0]} if e.fields
                                                                              else {})} for e in error.errors]
    return {"error": detail}


def error_response(error: InterlinkError, version: int, *, as_atom: bool = False) -> Response:
    """Any Interlink error as an OData error response with the error's HTTP status (2.0: XML when ``as_atom``)."""
    headers = _version_headers(version)
    status = error.http_status if 400 <= error.http_status < 600 else 400
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="interlink"'
    if isinstance(error, MethodNotAllowed):
        headers["Allow"] = ", ".join(error.allowed)
    if isinstance(error, RequestError) and status == 300:
        status = 400
    if as_atom and version == 2:
        return Response(atom.error_document(error.error_code, error.message), status_code=status, headers=headers,
                        media_type=XML)
    return _json(error_body(error, version), version, status=status, headers=headers)


_ALL_METHODS = ["GET", "HEAD", "POST", "PATCH", "PUT", "MERGE", "DELETE"]


def routes(org: Org) -> list[Route]:
    """The producer's routes for the org's HTTPS app (``/odata/v4/…`` and ``/odata/v2/…``)."""
    service = ODataService(org)

    async def v4(request: Request) -> Response:
        return await service.handle(request, 4)

    async def v2(request: Request) -> Response:
        return await service.handle(request, 2)

    return [
        Route("/odata/v4", v4, methods=_ALL_METHODS),
        Route("/odata/v4/{rest:path}", v4, methods=_ALL_METHODS),
        Route("/odata/v2", v2, methods=_ALL_METHODS),
        Route("/odata/v2/{rest:path}", v2, methods=_ALL_METHODS),
    ]
