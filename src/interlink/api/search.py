"""Search resources: SOSL and parameterized search over the full-text index.

Paths (``B`` = ``/services/data/vXX.X``)::

    GET        B/search?q=FIND {Acme} RETURNING Account(Name)     SOSL
    GET, POST  B/parameterizedSearch?q=Acme&sobject=Account&Account.fields=Id,Name&Account.limit=10

Both answer ``{"searchRecords": [...]}`` (a bare array before v37.0), plus ``"metadata"`` with
``WITH METADATA = 'LABELS'`` / ``metadata=LABELS``. Parameterized searches are turned into the same
:class:`~interlink.soql.sosl.SearchPlan` a SOSL statement gives, so both run the same way.
"""

from __future__ import annotations

import re
import threading
import weakref
from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from interlink.api.http import json_response, parse_json
from interlink.api.resources import ApiRequest, ResourceRouter
from interlink.errors import JsonParserError, MalformedSearchError
from interlink.soql import sosl
from interlink.soql.sosl import Returning, SearchPlan

if TYPE_CHECKING:
    from interlink.app.org import Org
    from interlink.soql.engine import QueryEngine

_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*\Z")
_FIELD_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)*\Z")
_FUNCTION_FIELD_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*\(\s*[A-Za-z][A-Za-z0-9_.]*\s*\)\Z")
_SCOPES = {"ALL", "NAME", "EMAIL", "PHONE", "SIDEBAR"}
_FIRST_WRAPPED_VERSION = 37.0
_SEARCH_PLAN_CACHE = 32


# -- running and rendering -----------------------------------------------------------------------------------------


# One engine per org for RETURNING clauses: each search's ``Id IN (...)`` is a new statement, so these plans
# get their own small cache instead of crowding out the REST query plans.
_engines: weakref.WeakKeyDictionary[Org, QueryEngine] = weakref.WeakKeyDictionary()
_engines_lock = threading.Lock()


def _soql_runner(request: ApiRequest) -> sosl.SoqlRunner | None:
    """Runs the SOQL of RETURNING field lists through the query engine, as the calling user."""
    try:
        from interlink.soql.engine import QueryEngine
    except ImportError:  # pragma: no cover - the engine ships with the org
        return None
    org = request.org
    with _engines_lock:
        engine = _engines.get(org)
        if engine is None or engine.store is not org.store:
            # Same settings as the org's own engine, when it has one (timeout, clock, fiscal year).
            shared = next((e for e in (getattr(org, n, None) for n in ("query", "query_engine"))
                           if isinstance(e, QueryEngine)), None)
            options: dict[str, Any] = {} if shared is None else {
                "timeout_seconds": shared.timeout_seconds, "today": shared.today,
                "fiscal_start_month": shared.fiscal_start_month}
            engine = _engines[org] = QueryEngine(org.store, cache_size=_SEARCH_PLAN_CACHE, **options)
            engine.external = getattr(shared, "external", None)
    url_prefix = f"{request.base_path}/sobjects"

    def run(soql: str) -> list[dict[str, Any]]:
        return engine.execute(soql, request.context, batch_size=sosl.MAX_LIMIT, url_prefix=url_prefix).records

    return run


def run_plan(request: ApiRequest, plan: SearchPlan) -> Response:
    external = getattr(request.org, "external", None)
    result = sosl.execute(request.org.store, plan, _soql_runner(request), request.base_path,
                          None if external is None else external.search_ids, schema=request.schema)
    records = [record for _obj, record in result.records]
    if float(request.version) < _FIRST_WRAPPED_VERSION:
        return json_response(records, pretty=request.pretty)
    body: dict[str, Any] = {"searchRecords": records}
    if plan.metadata:
        body["metadata"] = {"entityMetadata": _entity_metadata(request, result)}
    return json_response(body, pretty=request.pretty)


def _entity_metadata(request: ApiRequest, result: sosl.SearchResult) -> list[dict[str, Any]]:
    entities = []
    for name, fields in result.fields.items():
        obj = request.schema.object(name)
        if obj is None:
            continue
        described = []
        for field_name in fields:
            fdef = obj.field(field_name) if _FIELD_RE.match(field_name) else None
            if fdef is not None:
                described.append({"label": fdef.label or fdef.name, "name": fdef.name})
        entities.append({"entityName": obj.name, "fieldMetadata": described})
    return entities


async def search(request: ApiRequest) -> Response:
    """``GET B/search?q=<SOSL>``."""
    text = request.query.get("q")
    if not text or not text.strip():
        raise MalformedSearchError(sosl.NO_TERM)
    plan = sosl.parse_sosl(text)
    return run_plan(request, plan)


# -- parameterized search ------------------------------------------------------------------------------------------


def _get_list(query: Any, name: str) -> list[str]:
    """Every value of a (case-insensitive) query parameter; ``sobject`` may also list names with commas."""
    wanted = name.lower()
    multi_items = getattr(query, "multi_items", None)
    items = multi_items() if multi_items is not None else list(query.items())
    values: list[str] = []
    for key, value in items:
        if key.lower() != wanted:
            continue
        if wanted == "sobject":
            values.extend(v for v in value.split(",") if v.strip())
        else:
            values.append(value)
    return values


def _get(query: Any, name: str) -> str | None:
    values = _get_list(query, name)
    return values[-1] if values else None


def _int(value: Any, name: str, maximum: int = sosl.MAX_LIMIT) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise MalformedSearchError(f"Invalid value for {name}: {value}") from None
    if number < 0:
        raise MalformedSearchError(f"Invalid value for {name}: {value}")
    return min(number, maximum)


def _fields(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list):
        raise MalformedSearchError(f"{where} must be a list of field names")
    fields: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise MalformedSearchError(f"{where} must be a list of field names")
        name = item.strip()
        if not name:
            continue
        if not (_FIELD_RE.match(name) or _FUNCTION_FIELD_RE.match(name)):
            raise MalformedSearchError(f"Invalid field in {where}: {name}")
        fields.append(name)
    return tuple(fields)


def _scope(value: Any) -> str:
    scope = str(value or "ALL").strip().upper()
    if scope not in _SCOPES:
        raise MalformedSearchError(f"Invalid value for in: {value}. Use ALL, NAME, EMAIL, PHONE or SIDEBAR")
    return scope


def _checked_specs(specs: list[Returning]) -> tuple[Returning, ...]:
    """Check each object's WHERE / ORDER BY text by parsing the equivalent RETURNING clause, so a value cannot
    reach beyond its own object (``where=x) , Contact(Id``)."""
    if not specs:
        return ()
    parts = []
    for spec in specs:
        if not _NAME_RE.match(spec.object_name):
            raise MalformedSearchError(f"Invalid sobject name: {spec.object_name}")
        body = ", ".join(spec.fields) or "Id"
        if spec.where is not None:
            body += f" WHERE {spec.where}"
        if spec.order_by is not None:
            body += f" ORDER BY {spec.order_by}"
        parts.append(f"{spec.object_name}({body})")
    parsed = sosl.parse_sosl("FIND {xx} RETURNING " + ", ".join(parts)).returning
    if len(parsed) != len(specs):
        raise MalformedSearchError("Invalid where or orderBy in a parameterized search")
    for given, got in zip(specs, parsed, strict=True):
        if (given.where or "").strip() != (got.where or "") or (given.order_by or "").strip() != (got.order_by or ""):
            raise MalformedSearchError("Invalid where or orderBy in a parameterized search")
    return tuple(specs)


def _order_text(value: Any) -> str | None:
    """``orderBy``: ``"Name DESC"`` or ``[{"field": "Name", "ascending": false, "nullsLast": true}]``."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value.strip()
    items = value if isinstance(value, list) else [value]
    parts = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("field"), str):
            raise MalformedSearchError("orderBy items need a field")
        part = item["field"].strip()
        if item.get("ascending") is False:
            part += " DESC"
        if "nullsLast" in item:
            part += " NULLS LAST" if item["nullsLast"] else " NULLS FIRST"
        parts.append(part)
    return ", ".join(parts)


def _parameterized_plan(q: Any, scope: Any, sobjects: list[dict[str, Any]], fields: tuple[str, ...],
                        default_limit: int | None, overall: int | None, offset: int | None,
                        metadata: Any) -> SearchPlan:
    if not isinstance(q, str) or not q.strip():
        raise MalformedSearchError("Missing the search string: add q=<search string>")
    expr = sosl.parse_parameterized_term(q)
    specs = []
    for item in sobjects:
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            raise MalformedSearchError("Each sobject needs a name")
        limit = _int(item.get("limit"), f"{name}.limit")
        where = item.get("where")
        if where is not None and not isinstance(where, str):
            raise MalformedSearchError(f"{name}.where must be a string")
        own_fields = _fields(item.get("fields"), f"{name}.fields") or fields
        specs.append(Returning(name.strip(), own_fields, where.strip() if where else None,
                               _order_text(item.get("orderBy")),
                               limit if limit is not None else default_limit,
                               offset if len(sobjects) == 1 else None))
    if offset and len(sobjects) != 1:
        raise MalformedSearchError("offset needs exactly one sobject")
    if metadata is not None and str(metadata).upper() not in ("", "LABELS"):
        raise MalformedSearchError(f"Invalid value for metadata: {metadata}. Use LABELS")
    return SearchPlan(expr, sosl.SCOPES[_scope(scope)], _checked_specs(specs), overall,
                      bool(metadata) and str(metadata).upper() == "LABELS", None, q)


async def parameterized_search_get(request: ApiRequest) -> Response:
    """``GET B/parameterizedSearch?q=...&sobject=Account&Account.fields=Id,Name&Account.limit=10&in=ALL``."""
    query = request.query
    sobjects = []
    for name in _get_list(query, "sobject"):
        name = name.strip()
        sobjects.append({"name": name, "fields": _get(query, f"{name}.fields"), "limit": _get(query, f"{name}.limit"),
                         "where": _get(query, f"{name}.where"), "orderBy": _get(query, f"{name}.orderBy")})
    plan = _parameterized_plan(
        _get(query, "q"), _get(query, "in"), sobjects, _fields(_get(query, "fields"), "fields"),
        _int(_get(query, "defaultLimit"), "defaultLimit"), _int(_get(query, "overallLimit"), "overallLimit"),
        _int(_get(query, "offset"), "offset"), _get(query, "metadata"))
    return run_plan(request, plan)


async def parameterized_search_post(request: ApiRequest) -> Response:
    """``POST B/parameterizedSearch`` with ``{"q", "sobjects": [{"name", "fields", "limit", "where"}], "in",
    "fields", "defaultLimit", "overallLimit", "offset", "metadata"}``."""
    body = parse_json(request.body or b"{}")
    if not isinstance(body, dict):
        raise JsonParserError("Expected a JSON object with q")
    sobjects = body.get("sobjects") or []
    if not isinstance(sobjects, list) or not all(isinstance(s, dict) for s in sobjects):
        raise MalformedSearchError("sobjects must be a list of {\"name\": ...} objects")
    plan = _parameterized_plan(
        body.get("q"), body.get("in"), sobjects, _fields(body.get("fields"), "fields"),
        _int(body.get("defaultLimit"), "defaultLimit"), _int(body.get("overallLimit"), "overallLimit"),
        _int(body.get("offset"), "offset"), body.get("metadata"))
    return run_plan(request, plan)


def register(router: ResourceRouter) -> None:
    router.add("search", {"GET": search})
    router.add("parameterizedSearch", {"GET": parameterized_search_get, "POST": parameterized_search_post})


__all__ = ["register", "run_plan"]
