"""What operators and load balancers ask a serving process: ``/ready`` and ``/metrics``, and request timing.

- ``GET /ready`` answers 200 only when this process can serve: the store answers ``SELECT 1``, the bus answers, a
  schema is deployed and the server is not shutting down; otherwise 503 with the reasons, so a load balancer
  takes the process out. ``/health`` (in ``interlink.api.app``) stays the liveness and components report.
- ``GET /metrics`` is the Prometheus exposition of ``org.metrics`` (``interlink.app.metrics``).
- :class:`RequestMetrics` times every HTTP request and counts it by surface, method and status class. It runs on
  every REST call, so it does little: two clock reads, a prefix test or two on the path, a dict lookup.

None of these need authentication (like ``/health``); ``metrics_enabled = false`` removes ``/metrics`` and the
timing. See docs/operations.md.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from interlink.api.http import json_response
from interlink.bus.model import DATA, Selector
from interlink.store.failures import store_failure

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from interlink.app.metrics import OrgMetrics
    from interlink.app.org import Org

READY_TIMEOUT_SECONDS = 5.0

# -- surfaces ------------------------------------------------------------------------------------------------------

_DATA = "/services/data"
_DATA_RESOURCES = {"sobjects": "rest", "composite": "composite", "jobs": "bulk", "graphql": "graphql",
                   "query": "query", "queryall": "query", "search": "search", "parameterizedsearch": "search"}
_PREFIXES = (("/services/oauth2/", "oauth"), ("/services/Soap/", "soap"), ("/services/async/", "bulk"),
             ("/odata/", "odata"), ("/cometd/", "cometd"), ("/console", "console"), ("/id/", "oauth"))
_PROBES = frozenset({"/health", "/ready", "/metrics"})


def surface_of(path: str) -> str:
    """The API surface a request path belongs to (a metric label: a fixed set of values, never the path):
    rest, composite, collections, bulk, graphql, query, search, soap, oauth, odata, console, cometd,
    metrics/health or other."""
    if path.startswith(_DATA):
        # /services/data/vXX.X/<resource>/...: the resource names the surface (the version list is REST).
        if len(path) > 14 and path[14] != "/":
            return "other"
        start = path.find("/", 15) + 1  # where the resource begins (0: no resource)
        if not start:
            return "rest"
        end = path.find("/", start)
        resource = path[start:end] if end > 0 else path[start:]
        surface = _DATA_RESOURCES.get(resource) or _DATA_RESOURCES.get(resource.lower(), "rest")
        if surface == "composite" and end > 0 and path[end + 1:end + 9].lower() == "sobjects" \
                and path[end + 9:end + 10] in ("", "/"):
            return "collections"
        return surface
    for prefix, surface in _PREFIXES:
        if path.startswith(prefix):
            return surface
    return "metrics/health" if path in _PROBES else "other"


class RequestMetrics:
    """ASGI middleware: the time to answer each HTTP request (until its last byte is handed to the server) and its
    status class, by surface and method. Long polls and event streams count their whole hold time."""

    def __init__(self, app: ASGIApp, metrics: OrgMetrics) -> None:
        self.app = app
        self.record = metrics.http_request

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers when the app fails before answering

        async def answer(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, answer)
        finally:
            self.record(surface_of(scope["path"]), scope["method"], status, time.perf_counter() - started)


# -- /ready --------------------------------------------------------------------------------------------------------

_process: tuple[int, str] | None = None


def process_id() -> str:
    """This process among the ones serving the org, when it is not (yet) in the process registry:
    ``host:pid:random`` (the random part tells a restarted process with a reused pid from the one before it)."""
    global _process
    pid = os.getpid()
    if _process is None or _process[0] != pid:  # a forked child gets its own
        _process = (pid, f"{socket.gethostname()}:{pid}:{secrets.token_hex(4)}")
    return _process[1]


def readiness_problems(org: Org) -> list[str]:
    """Why this process cannot serve now (empty: it can): the store, the bus and the deployed schema."""
    problems: list[str] = []
    try:
        with org.store.read() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        failure = store_failure(exc)  # names no host or port: this endpoint needs no authentication
        problems.append(f"store: {org.store.backend} does not answer: "
                        f"{failure.message if failure is not None else type(exc).__name__}")
    try:
        org.bus.backend.bounds(Selector(DATA, None))
    except Exception as exc:
        problems.append(f"bus: {org.bus.backend.name or 'sqlite'} does not answer: {_first_line(exc)}")
    if not len(org.store.schema):
        problems.append("schema: no schema is loaded")
    return problems


def _first_line(exc: BaseException) -> str:
    message = str(exc).strip().splitlines()
    return message[0][:300] if message else type(exc).__name__


async def ready(request: Request) -> Response:
    """``GET /ready``: 200 ``{"status": "ready", ...}`` when this process can serve, else 503 with the reasons."""
    org: Org = request.app.state.org
    draining: asyncio.Event | None = getattr(request.app.state, "draining", None)
    if draining is not None and draining.is_set():
        reasons = ["draining: the server is shutting down"]
    else:
        try:  # in a thread: a store that hangs must not stall the other requests of this process
            reasons = await asyncio.wait_for(asyncio.to_thread(readiness_problems, org), READY_TIMEOUT_SECONDS)
        except TimeoutError:
            reasons = [f"store or bus: no answer within {READY_TIMEOUT_SECONDS:g} seconds"]
    # The id this process registered under (`interlink doctor` lists it), else one of its own.
    registered = getattr(getattr(request.app.state, "membership", None), "process_id", None)
    body: dict[str, Any] = {"pid": os.getpid(), "process": registered or process_id(), "org_id": org.org_id}
    if reasons:
        return json_response({"status": "unavailable", "reasons": reasons, **body}, status=503,
                             headers={"Cache-Control": "no-store"})
    return json_response({"status": "ready", **body}, headers={"Cache-Control": "no-store"})


# -- /metrics ------------------------------------------------------------------------------------------------------

async def metrics(request: Request) -> Response:
    """``GET /metrics``: the Prometheus text exposition (OpenMetrics when the ``Accept`` header asks for it)."""
    org: Org = request.app.state.org
    body, content_type = await asyncio.to_thread(org.metrics.exposition, request.headers.get("accept"))
    return Response(body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})


def routes(org: Org) -> list[Route]:
    """``/ready``, and ``/metrics`` unless the settings turn metrics off."""
    found = [Route("/ready", ready, methods=["GET", "HEAD"])]
    if org.settings.metrics_enabled:
        found.append(Route("/metrics", metrics, methods=["GET", "HEAD"]))
    return found


__all__ = ["RequestMetrics", "process_id", "readiness_problems", "ready", "routes", "surface_of"]
