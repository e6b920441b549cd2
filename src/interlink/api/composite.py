"""Composite resources: ``composite``, ``composite/batch`` and ``composite/graph``.

Paths (``B`` = ``/services/data/vXX.X``)::

    GET   B/composite          the composite resources this org serves
    POST  B/composite          ≤25 dependent subrequests, ``@{ref.path}`` references, ``allOrNone``
    POST  B/composite/batch    ≤25 independent subrequests (relative ``vXX.X/...`` urls, ``richInput``), ``haltOnError``
    POST  B/composite/graph    ≤75 graphs of sObject-row nodes, ≤500 nodes; each graph one all-or-nothing transaction

Every subrequest runs in-process through the data API's dispatcher (``request.dispatcher.call``), so it is the
same handler, checks and errors as a plain REST call. Transactions come from the records layer: with
``allOrNone`` (and for every graph) all subrequests run inside one ``org.records.unit_of_work``; the first failing
subrequest (status ≥ 400) raises out of it, which rolls back every write and drops every after-commit hook.

Limits and how they answer (what the platform is known to send, and this module's choices where it isn't):

- composite with more than 25 subrequests: HTTP 200 with one ``LIMIT_EXCEEDED`` entry whose ``referenceId`` is
  null ("The request can't contain ..." with a curly apostrophe), as captured from the platform; nothing runs.
- a malformed request (bad JSON, missing ``referenceId``/``method``/``url``, an illegal or duplicate referenceId,
  a forbidden ``httpHeaders`` entry, a reference to a referenceId no earlier subrequest defines): HTTP 400
  ``JSON_PARSER_ERROR`` and nothing runs. (Missing referenceId and illegal referenceId messages are the
  platform's; the others follow their wording.) Below v52 references are only checked as they run, and one that
  can't be resolved fails its own subrequest, as the platform did then.
- a reference that finds no value when it runs (its target failed, answered 204, or lacks the field; a null
  field counts as missing below v52): that subrequest answers 400 ``PROCESSING_HALTED`` "Invalid reference
  specified. No value for ref.path found in ref. ...".
- graph: more than 75 graphs, or more than 500 nodes or 15 distinct node kinds in the payload: HTTP 400
  ``LIMIT_EXCEEDED``; more than 500 nodes in one graph or a reference chain deeper than 15: that graph fails with
  one ``LIMIT_EXCEEDED`` entry (``referenceId`` null), as captured from the platform for the node limit.
- batch with more than 25 subrequests: HTTP 400 ``LIMIT_EXCEEDED`` (the platform's code and text are not
  confirmed).
- a composite resource as a subrequest (``composite``, ``composite/batch|graph|tree``; composite may call
  ``composite/sobjects``), and a graph node outside sObject rows: that subrequest answers 400
  ``INVALID_REQUEST`` (for a graph node the graph fails). Graph nodes may reference later nodes (they run in
  dependency order); a cycle fails the graph with ``CIRCULAR_DEPENDENCY``.
- not enforced: the platform's "at most 5 of the 25 may be collections or queries".

API usage: composite and graph count as the one request the data API already counted. Batch counts every
subrequest, as the platform documents ("each subrequest counts against rate limits"): the outer request counted
the first, and each further subrequest calls ``org.usage.count()`` before it runs (403 ``REQUEST_LIMIT_EXCEEDED``
for that subrequest once the allocation is used up).
"""

from __future__ import annotations

import dataclasses
import heapq
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import orjson
from starlette.responses import Response

from interlink.api.http import json_response, parse_json, unexpected_error_response
from interlink.api.resources import VERSION_RE, ApiRequest, ResourceRouter, split_path
from interlink.errors import InterlinkError, JsonParserError, NotFoundError, RequestError, RequestLimitExceeded

MAX_COMPOSITE = 25
MAX_BATCH = 25
MAX_GRAPHS = 75
MAX_GRAPH_NODES = 500
MAX_PAYLOAD_NODES = 500
MAX_GRAPH_DEPTH = 15
MAX_NODE_KINDS = 15
MAX_FAILED_GRAPHS = 14

_COMPOSITE_METHODS = frozenset({"POST", "PUT", "PATCH", "GET", "DELETE"})
_GRAPH_METHODS = frozenset({"POST", "PATCH", "GET", "DELETE"})
_BATCH_METHODS = frozenset({"POST", "PUT", "PATCH", "GET", "DELETE", "HEAD"})
_FORBIDDEN_HEADERS = frozenset({"accept", "authorization", "content-type"})

_REFERENCE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]*$")
_GRAPH_ID = re.compile(r"^[A-Za-z0-9]")
_URL_PREFIX = re.compile(r"^/services/data/v(\d{2,3}\.\d)/")
_BATCH_URL = re.compile(r"^(?:/services/data/)?v(\d{2,3}\.\d)/")
# @{name.field}, @{name.records[0].Id}, @{name.a.b}: a name, then at least one .field or [index] step.
_REFERENCE = re.compile(r"@\{([^{}.\[\]]+)((?:\.[^{}.\[\]]+|\[\d+\])+)\}")
_STEP = re.compile(r"\.([^{}.\[\]]+)|\[(\d+)\]")

ROLLED_BACK = "The transaction was rolled back since another operation in the same transaction failed."
BATCH_HALTED = "Batch processing halted per request"
TOO_MANY_OPERATIONS = f"The request can\u2019t contain more than {MAX_COMPOSITE} operations."


class LimitExceeded(RequestError):
    error_code = "LIMIT_EXCEEDED"


# -- parsed requests ---------------------------------------------------------------------------------------------

@dataclass
class Subrequest:
    """One composite or graph node as sent: references still unresolved."""

    method: str
    url: str
    reference_id: str
    body: Any = None
    has_body: bool = False
    headers: dict[str, str] = field(default_factory=dict)

    def references(self) -> list[re.Match[str]]:
        found: list[re.Match[str]] = []
        _collect(self.url, found)
        if self.has_body:
            _collect(self.body, found)
        for value in self.headers.values():
            _collect(value, found)
        return found


def _collect(value: Any, found: list[re.Match[str]]) -> None:
    if isinstance(value, str):
        found.extend(_REFERENCE.finditer(value))
    elif isinstance(value, dict):
        for item in value.values():
            _collect(item, found)
    elif isinstance(value, list):
        for item in value:
            _collect(item, found)


def _field(item: Mapping[str, Any], name: str) -> tuple[bool, Any]:
    """``item[name]``, matching the key case-insensitively (the docs' own examples spell ``referenceID``)."""
    if name in item:
        return True, item[name]
    lowered = name.lower()
    for key, value in item.items():
        if key.lower() == lowered:
            return True, value
    return False, None


def _required_string(item: Mapping[str, Any], name: str) -> str:
    present, value = _field(item, name)
    if not present or value is None or (isinstance(value, str) and not value):
        raise JsonParserError(f"'{name}' is a required field.")
    if not isinstance(value, str):
        raise JsonParserError(f"'{name}' must be a string.")
    return value


def _flag(payload: Mapping[str, Any], name: str, default: bool) -> bool:
    present, value = _field(payload, name)
    if not present or value is None:
        return default
    if not isinstance(value, bool):
        raise JsonParserError(f"Cannot deserialize value of type `boolean` from {type(value).__name__} for "
                              f"'{name}'")
    return value


def _parse_payload(request: ApiRequest) -> dict[str, Any]:
    payload = parse_json(request.body)
    if not isinstance(payload, dict):
        token = "START_ARRAY" if isinstance(payload, list) else "VALUE"
        raise JsonParserError(f"Cannot deserialize instance of the request body from {token} value at "
                              "[line:1, column:1]")
    return payload


def _list_field(payload: Mapping[str, Any], name: str) -> list[Any]:
    present, value = _field(payload, name)
    if not present or value is None:
        raise JsonParserError(f"'{name}' is a required field.")
    if not isinstance(value, list):
        raise JsonParserError(f"'{name}' must be an array.")
    return value


def _check_reference_id(reference_id: str, version: str) -> None:
    if float(version) >= 52.0 and not _REFERENCE_ID.match(reference_id):
        raise JsonParserError(f"Provided referenceId ('{reference_id}') must start with a letter or a number, "
                              "and it can contain only letters, numbers and underscores ('_').")


def _parse_subrequest(item: Any, version: str, methods: frozenset[str]) -> Subrequest:
    if not isinstance(item, dict):
        raise JsonParserError("Each subrequest must be a JSON object.")
    reference_id = _required_string(item, "referenceId")
    _check_reference_id(reference_id, version)
    method = _required_string(item, "method")
    if method not in methods:  # case-sensitive, as the platform's
        raise JsonParserError(f"Invalid HTTP method '{method}' for subrequest '{reference_id}'. Allowed are "
                              f"{', '.join(sorted(methods))} (case-sensitive).")
    url = _required_string(item, "url")
    if not _URL_PREFIX.match(url):
        raise JsonParserError(f"The url of subrequest '{reference_id}' must start with /services/data/vXX.X/: "
                              f"{url}")
    has_body, body = _field(item, "body")
    present, raw_headers = _field(item, "httpHeaders")
    headers: dict[str, str] = {}
    if present and raw_headers is not None:
        if not isinstance(raw_headers, dict) or not all(isinstance(v, str) for v in raw_headers.values()):
            raise JsonParserError(f"'httpHeaders' of subrequest '{reference_id}' must map header names to "
                                  "strings.")
        for name, value in raw_headers.items():
            if name.lower() in _FORBIDDEN_HEADERS:
                raise JsonParserError(f"The {name} header isn't allowed in a subrequest ('{reference_id}'); "
                                      "subrequests inherit Accept, Authorization and Content-Type from the "
                                      "top-level request.")
            headers[name] = value
    return Subrequest(method, url, reference_id, body, has_body and body is not None, headers)


def _parse_subrequests(items: list[Any], version: str, methods: frozenset[str]) -> list[Subrequest]:
    subrequests: list[Subrequest] = []
    seen: set[str] = set()
    for item in items:
        sub = _parse_subrequest(item, version, methods)
        if sub.reference_id in seen:
            raise JsonParserError(f"Duplicate referenceId '{sub.reference_id}': each subrequest needs its own.")
        seen.add(sub.reference_id)
        subrequests.append(sub)
    return subrequests


# -- references ----------------------------------------------------------------------------------------------------

class Unresolved(Exception):
    """A reference with no value: its target is unknown, failed, or lacks the field."""

    def __init__(self, match: re.Match[str]) -> None:
        super().__init__(match.group(0))
        self.name = match.group(1)
        self.expression = match.group(1) + match.group(2)


def invalid_reference_message(expression: str, name: str) -> str:
    return (f"Invalid reference specified. No value for {expression} found in {name}. Provided referenceId "
            f"('{expression}') must start with a letter or a number, and it can contain only letters, numbers "
            "and underscores ('_').")


def _lookup(results: Mapping[str, Any], match: re.Match[str], version: str) -> Any:
    name, path = match.group(1), match.group(2)
    if name not in results:
        raise Unresolved(match)
    value = results[name]
    for step in _STEP.finditer(path):
        key, index = step.group(1), step.group(2)
        if key is not None:
            if not isinstance(value, dict) or key not in value:  # case-sensitive: ``id`` after POST, ``Id`` after GET
                raise Unresolved(match)
            value = value[key]
        else:
            position = int(index)
            if not isinstance(value, list) or position >= len(value):
                raise Unresolved(match)
            value = value[position]
    if value is None and float(version) < 52.0:  # v52+: a reference to a null field is null
        raise Unresolved(match)
    return value


def _as_text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return orjson.dumps(value).decode()


def substitute(value: Any, resolve: Callable[[re.Match[str]], Any], *, in_url: bool = False) -> Any:
    """Replace every reference in ``value`` (strings, recursively through objects and arrays).

    A string that is one whole reference takes the referenced value with its JSON type; a reference inside a
    longer string is spliced in as text (percent-encoded inside a url).
    """
    if isinstance(value, str):
        if "@{" not in value:
            return value
        whole = _REFERENCE.fullmatch(value)
        if whole is not None and not in_url:
            return resolve(whole)

        def splice(match: re.Match[str]) -> str:
            text = _as_text(resolve(match))
            return quote(text, safe="") if in_url else text

        return _REFERENCE.sub(splice, value)
    if isinstance(value, dict):
        return {key: substitute(item, resolve) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute(item, resolve) for item in value]
    return value


# -- running subrequests --------------------------------------------------------------------------------------------

@dataclass
class Outcome:
    """A subrequest's answer in wire terms."""

    status: int
    headers: dict[str, str]
    body: Any

    @property
    def failed(self) -> bool:
        return self.status >= 400


def halted(message: str = ROLLED_BACK) -> Outcome:
    return Outcome(400, {}, [{"errorCode": "PROCESSING_HALTED", "message": message}])


def _error_outcome(error: InterlinkError) -> Outcome:
    return Outcome(error.http_status, {}, error.wire_list())


_HEADER_NAMES = {"etag": "ETag"}


def _wire_headers(headers: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in ("content-length", "content-type", "sforce-limit-info"):
            continue
        out[_HEADER_NAMES.get(lowered, "-".join(p[:1].upper() + p[1:] for p in lowered.split("-")))] = value
    return out


def _path_segments(url: str) -> list[str]:
    """The segments after ``/services/data`` (the version first), with the query string dropped."""
    segments = split_path(url.partition("?")[0])
    if len(segments) >= 2 and [s.lower() for s in segments[:2]] == ["services", "data"]:
        segments = segments[2:]
    return segments


def _composite_family(segments: list[str], *, allow_collections: bool) -> bool:
    """Is this url one of the composite resources (which can't be nested)?"""
    if len(segments) < 2 or segments[1].lower() != "composite":
        return False
    return not (allow_collections and len(segments) >= 3 and segments[2].lower() == "sobjects")


def _location(request: ApiRequest, segments: list[str], body: Any) -> str | None:
    """``Location`` for a subrequest that created a record under ``sobjects/{type}``."""
    if not isinstance(body, dict) or not isinstance(body.get("id"), str):
        return None
    if len(segments) < 3 or segments[1].lower() != "sobjects":
        return None
    match = VERSION_RE.match(segments[0])
    if match is None:
        return None
    obj = request.org.store.schema.object(segments[2])
    name = obj.name if obj is not None else segments[2]
    return f"/services/data/v{match.group(1)}/sobjects/{name}/{body['id']}"


async def call(request: ApiRequest, method: str, url: str, body: Any, headers: Mapping[str, str] | None,
               *, allow_collections: bool = True) -> Outcome:
    """Run one subrequest through the data API; never raises for what a handler answers."""
    segments = _path_segments(url)
    if _composite_family(segments, allow_collections=allow_collections):
        return _error_outcome(RequestError(f"Composite resources can't be nested in a subrequest: {url}",
                                           error_code="INVALID_REQUEST"))
    dispatcher = request.dispatcher
    if dispatcher is None:  # pragma: no cover - the data API always sets it
        raise RuntimeError("composite resources need the data API's dispatcher")
    try:
        answer = await dispatcher.call(request, method, url, body, headers)
    except InterlinkError as error:
        return _error_outcome(error)
    except Exception as exc:  # a handler bug answers 500 for this subrequest, like the plain REST call would
        rendered = unexpected_error_response(exc)
        return Outcome(500, {}, orjson.loads(bytes(rendered.body)))
    wire_headers = _wire_headers(answer.headers)
    if answer.status == 201:
        location = _location(request, segments, answer.body)
        if location is not None:
            wire_headers["Location"] = location
    return Outcome(answer.status, wire_headers, answer.body)


async def run_subrequest(request: ApiRequest, sub: Subrequest, results: Mapping[str, Any]) -> Outcome:
    """Resolve ``sub``'s references against earlier successful ``results`` and run it."""
    def resolve(match: re.Match[str]) -> Any:
        return _lookup(results, match, request.version)

    try:
        url = substitute(sub.url, resolve, in_url=True)
        body = substitute(sub.body, resolve) if sub.has_body else None
        headers = {name: _as_text(substitute(value, resolve)) for name, value in sub.headers.items()}
    except Unresolved as missing:
        return halted(invalid_reference_message(missing.expression, missing.name))
    return await call(request, sub.method, url, body, headers)


def entry(outcome: Outcome, reference_id: str | None) -> dict[str, Any]:
    return {"body": outcome.body, "httpHeaders": outcome.headers, "httpStatusCode": outcome.status,
            "referenceId": reference_id}


class _RollBack(Exception):
    """Leaves a unit of work so it rolls back; carries the failing subrequest's position."""

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.index = index


async def run_all_or_none(request: ApiRequest, subs: list[Subrequest]) -> tuple[list[Outcome], bool]:
    """Run ``subs`` in order in ONE transaction; on the first failure roll everything back.

    Returns one outcome per subrequest (the failing one's own error, PROCESSING_HALTED for every other) and
    whether everything committed.
    """
    outcomes: list[Outcome] = []
    results: dict[str, Any] = {}
    try:
        with request.org.records.unit_of_work(request.context):
            for index, sub in enumerate(subs):
                outcome = await run_subrequest(request, _all_or_none_collections(sub), results)
                outcomes.append(outcome)
                if outcome.failed or _failed_inside_200(outcome):
                    raise _RollBack(index)
                results[sub.reference_id] = outcome.body
    except _RollBack as rollback:
        return [outcomes[i] if i == rollback.index else halted() for i in range(len(subs))], False
    return outcomes, True


def _all_or_none_collections(sub: Subrequest) -> Subrequest:
    """The composite's ``allOrNone: true`` overrides an sObject Collections subrequest's own flag."""
    path, _, query = sub.url.partition("?")
    if "/composite/sobjects" not in path.lower():
        return sub
    if sub.method == "DELETE":
        kept = [p for p in query.split("&") if p and not p.lower().startswith("allornone=")]
        return dataclasses.replace(sub, url=f"{path}?{'&'.join([*kept, 'allOrNone=true'])}")
    if isinstance(sub.body, dict):
        return dataclasses.replace(sub, body={**sub.body, "allOrNone": True})
    return sub


def _failed_inside_200(outcome: Outcome) -> bool:
    """Failures reported inside an HTTP 200: a collections answer with a failed record, or a GraphQL answer
    with errors. Either fails an all-or-none composite."""
    body = outcome.body
    if isinstance(body, list):
        return any(isinstance(item, dict) and item.get("success") is False for item in body)
    return isinstance(body, dict) and "data" in body and bool(body.get("errors"))


def _check_references_defined(subs: list[Subrequest]) -> None:
    """v52+: every reference names a subrequest that comes earlier (unknown, self and forward ones fail)."""
    earlier: set[str] = set()
    for sub in subs:
        for match in sub.references():
            if match.group(1) not in earlier:
                expression = match.group(1) + match.group(2)
                raise JsonParserError(invalid_reference_message(expression, match.group(1)))
        earlier.add(sub.reference_id)


def _min_version(request: ApiRequest, version: float) -> None:
    if float(request.version) < version:
        raise NotFoundError()


# -- POST composite ----------------------------------------------------------------------------------------------

async def composite(request: ApiRequest) -> Response:
    _min_version(request, 38.0)
    payload = _parse_payload(request)
    all_or_none = _flag(payload, "allOrNone", False)
    _flag(payload, "collateSubrequests", float(request.version) >= 49.0)  # accepted; order is always kept
    items = _list_field(payload, "compositeRequest")
    if len(items) > MAX_COMPOSITE:
        body = [{"errorCode": "LIMIT_EXCEEDED", "message": TOO_MANY_OPERATIONS}]
        return json_response({"compositeResponse": [entry(Outcome(400, {}, body), None)]}, pretty=request.pretty)
    subs = _parse_subrequests(items, request.version, _COMPOSITE_METHODS)
    if float(request.version) >= 52.0:
        _check_references_defined(subs)
    if all_or_none:
        outcomes, _ = await run_all_or_none(request, subs)
    else:
        outcomes = []
        results: dict[str, Any] = {}
        for sub in subs:  # each subrequest is its own transaction: successes commit as they go
            outcome = await run_subrequest(request, sub, results)
            outcomes.append(outcome)
            if not outcome.failed:
                results[sub.reference_id] = outcome.body
    return json_response({"compositeResponse": [entry(o, s.reference_id) for o, s in zip(outcomes, subs,
                                                                                           strict=True)]},
                         pretty=request.pretty)


async def composite_resources(request: ApiRequest) -> Response:
    """``GET B/composite``: the composite resources this org routes."""
    router = getattr(request.dispatcher, "router", None)
    names = []
    for name in ("tree", "batch", "sobjects", "graph"):
        if router is None:
            break
        if any(_routed(router, ["composite", name, *extra]) for extra in ([], ["Account"])):
            names.append(name)
    return json_response({name: f"{request.base_path}/composite/{name}" for name in names}, pretty=request.pretty)


def _routed(router: ResourceRouter, segments: list[str]) -> bool:
    try:
        router.resolve(segments, "POST")
    except NotFoundError:
        return False
    except InterlinkError:
        return True  # routed, just not for POST
    return True


# -- POST composite/batch ----------------------------------------------------------------------------------------

@dataclass
class BatchItem:
    method: str
    url: str
    body: Any


def _parse_batch_item(item: Any) -> BatchItem:
    if not isinstance(item, dict):
        raise JsonParserError("Each batch subrequest must be a JSON object.")
    method = _required_string(item, "method")
    if method.upper() not in _BATCH_METHODS:
        raise JsonParserError(f"Invalid HTTP method '{method}' in a batch subrequest.")
    url = _required_string(item, "url")
    if not _BATCH_URL.match(url):
        raise JsonParserError(f"Invalid url in a batch subrequest: {url} (expected vXX.X/<resource>).")
    if _field(item, "binaryPartName")[0] or _field(item, "binaryPartNameAlias")[0]:
        raise JsonParserError("Binary parts need a multipart batch request, which this org doesn't accept.")
    present, rich_input = _field(item, "richInput")
    return BatchItem(method.upper(), url, rich_input if present else None)


async def batch(request: ApiRequest) -> Response:
    _min_version(request, 34.0)
    payload = _parse_payload(request)
    halt_on_error = _flag(payload, "haltOnError", False)
    items = _list_field(payload, "batchRequests")
    if len(items) > MAX_BATCH:
        raise LimitExceeded(f"The request can\u2019t contain more than {MAX_BATCH} operations.")
    parsed = [_parse_batch_item(item) for item in items]
    results: list[dict[str, Any]] = []
    stop = False
    for index, item in enumerate(parsed):
        if stop:
            results.append({"statusCode": 412, "result": [{"errorCode": "BATCH_PROCESSING_HALTED",
                                                           "message": BATCH_HALTED}]})
            continue
        try:
            if index:  # the outer request counted the first subrequest
                request.org.usage.count()
            outcome = await call(request, item.method, item.url, item.body, None, allow_collections=False)
        except RequestLimitExceeded as error:
            outcome = _error_outcome(error)
        results.append({"statusCode": outcome.status, "result": outcome.body})
        if outcome.failed and halt_on_error:
            stop = True
    has_errors = any(r["statusCode"] >= 400 for r in results)
    return json_response({"hasErrors": has_errors, "results": results}, pretty=request.pretty)


# -- POST composite/graph ----------------------------------------------------------------------------------------

@dataclass
class Graph:
    graph_id: str
    nodes: list[Subrequest]
    error: Outcome | None = None  # set when the graph fails before running (limits, unsupported nodes)


def _node_shape_error(sub: Subrequest) -> str | None:
    """Graph nodes may only touch sObject rows; returns why ``sub`` can't be a node, or None."""
    segments = _path_segments(sub.url)
    match = VERSION_RE.match(segments[0]) if segments else None
    if match is None:
        return f"Invalid url: {sub.url}"
    if float(match.group(1)) < 50.0:
        return f"Composite graph nodes need API version 50.0 or later: {sub.url}"
    rest = segments[1:]
    if not rest or rest[0].lower() != "sobjects":
        return f"Composite graph supports only sObject resources: {sub.url}"
    allowed = {2: {"POST"}, 3: {"GET", "PATCH", "DELETE"}, 4: {"GET", "PATCH", "POST", "DELETE"}}.get(len(rest))
    if allowed is None or sub.method not in allowed:
        return f"Composite graph doesn't support {sub.method} {sub.url}"
    return None


def _node_kind(sub: Subrequest) -> tuple[str, str, str]:
    segments = _path_segments(sub.url)
    return (segments[0], sub.method, segments[2].lower() if len(segments) > 2 else "")


def _graph_limit(message: str) -> Outcome:
    return Outcome(400, {}, [{"errorCode": "LIMIT_EXCEEDED", "message": message}])


def _order(graph: Graph) -> tuple[list[int], Outcome | None, int | None]:
    """Nodes in an order where every reference points back; or the error and the node it belongs to.

    References may point at any node of the same graph; a reference to a name the graph doesn't define, or a
    cycle, fails the graph. The reference chain may be at most 15 nodes deep.
    """
    index_of = {sub.reference_id: i for i, sub in enumerate(graph.nodes)}
    needs: list[set[int]] = []
    for position, sub in enumerate(graph.nodes):
        wanted: set[int] = set()
        for match in sub.references():
            target = index_of.get(match.group(1))
            if target is None:
                message = invalid_reference_message(match.group(1) + match.group(2), match.group(1))
                return [], halted(message), position
            if target == position:
                return [], _cycle(sub.reference_id, [sub.reference_id]), position
            wanted.add(target)
        needs.append(wanted)
    # Kahn's algorithm, always taking the earliest ready node: nodes run in the request's order except where a
    # reference makes a node wait for a later one.
    waiting = [len(wanted) for wanted in needs]
    dependents: list[list[int]] = [[] for _ in graph.nodes]
    for position, wanted in enumerate(needs):
        for target in wanted:
            dependents[target].append(position)
    ready = [i for i, n in enumerate(waiting) if n == 0]
    heapq.heapify(ready)
    depth: dict[int, int] = {}
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        depth[i] = 1 + max((depth[j] for j in needs[i]), default=0)
        if depth[i] > MAX_GRAPH_DEPTH:
            return [], _graph_limit(f"Limit of {MAX_GRAPH_DEPTH} reached for depth of the Graph"), None
        order.append(i)
        for dependent in dependents[i]:
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                heapq.heappush(ready, dependent)
    if len(order) < len(graph.nodes):
        stuck = [i for i in range(len(graph.nodes)) if i not in depth]
        return [], _cycle(graph.nodes[stuck[0]].reference_id, [graph.nodes[i].reference_id for i in stuck]), stuck[0]
    return order, None, None


def _cycle(reference_id: str, involved: list[str]) -> Outcome:
    return Outcome(400, {}, [{"errorCode": "CIRCULAR_DEPENDENCY",
                              "message": f"Circular reference detected in the graph at '{reference_id}' "
                                         f"(involving {', '.join(involved)})."}])


def _parse_graphs(request: ApiRequest, items: list[Any]) -> list[Graph]:
    if len(items) > MAX_GRAPHS:
        raise LimitExceeded(f"Limit of {MAX_GRAPHS} reached for number of Graphs in the Payload")
    graphs: list[Graph] = []
    seen: set[str] = set()
    for item in items:
        if not isinstance(item, dict):
            raise JsonParserError("Each graph must be a JSON object.")
        graph_id = _required_string(item, "graphId")
        if not _GRAPH_ID.match(graph_id):
            raise JsonParserError(f"Provided graphId ('{graph_id}') must start with a letter or a number.")
        if graph_id in seen:
            raise JsonParserError(f"Duplicate graphId '{graph_id}': each graph needs its own.")
        seen.add(graph_id)
        nodes = _parse_subrequests(_list_field(item, "compositeRequest"), request.version, _GRAPH_METHODS)
        if not nodes:
            raise JsonParserError(f"'compositeRequest' of graph '{graph_id}' has no nodes.")
        graph = Graph(graph_id, nodes)
        if len(nodes) > MAX_GRAPH_NODES:
            graph.error = _graph_limit(f"Limit of {MAX_GRAPH_NODES} reached for number of Nodes in the Graph")
        graphs.append(graph)
    counted = [g for g in graphs if g.error is None]
    if sum(len(g.nodes) for g in counted) > MAX_PAYLOAD_NODES:
        raise LimitExceeded(f"Limit of {MAX_PAYLOAD_NODES} reached for number of Nodes in the Payload")
    kinds = {_node_kind(sub) for g in counted for sub in g.nodes}
    if len(kinds) > MAX_NODE_KINDS:
        raise LimitExceeded(f"Limit of {MAX_NODE_KINDS} reached for number of distinct Nodes in the Payload")
    return graphs


def _graph_response(graph: Graph, responses: list[dict[str, Any]], successful: bool) -> dict[str, Any]:
    return {"graphId": graph.graph_id, "graphResponse": {"compositeResponse": responses},
            "isSuccessful": successful}


def _failed_before_running(graph: Graph, failing: Outcome, position: int | None) -> dict[str, Any]:
    if position is None:  # a graph-wide limit: one entry without a referenceId
        return _graph_response(graph, [entry(failing, None)], False)
    return _graph_response(graph, [entry(failing if i == position else halted(), sub.reference_id)
                                   for i, sub in enumerate(graph.nodes)], False)


async def _run_graph(request: ApiRequest, graph: Graph) -> dict[str, Any]:
    if graph.error is not None:
        return _failed_before_running(graph, graph.error, None)
    for position, sub in enumerate(graph.nodes):
        problem = _node_shape_error(sub)
        if problem is not None:
            return _failed_before_running(
                graph, _error_outcome(RequestError(problem, error_code="INVALID_REQUEST")), position)
    order, failing, position = _order(graph)
    if failing is not None:
        return _failed_before_running(graph, failing, position)
    ordered = [graph.nodes[i] for i in order]
    outcomes, committed = await run_all_or_none(request, ordered)
    by_position = dict(zip(order, outcomes, strict=True))
    responses = [entry(by_position[i], sub.reference_id) for i, sub in enumerate(graph.nodes)]
    return _graph_response(graph, responses, committed)


async def graph(request: ApiRequest) -> Response:
    _min_version(request, 50.0)
    payload = _parse_payload(request)
    graphs = _parse_graphs(request, _list_field(payload, "graphs"))
    answers: list[dict[str, Any]] = []
    failures = 0
    for current in graphs:
        if failures >= MAX_FAILED_GRAPHS:
            message = (f"Processing halted: the request reached the limit of {MAX_FAILED_GRAPHS} failed graphs, "
                       "so this graph wasn't executed.")
            answers.append(_graph_response(current, [entry(halted(message), sub.reference_id)
                                                      for sub in current.nodes], False))
            continue
        answer = await _run_graph(request, current)
        if not answer["isSuccessful"]:
            failures += 1
        answers.append(answer)
    return json_response({"graphs": answers}, pretty=request.pretty)


def register(router: ResourceRouter) -> None:
    router.add("composite", {"GET": composite_resources, "POST": composite})
    router.add("composite/batch", {"POST": batch})
    router.add("composite/graph", {"POST": graph})
