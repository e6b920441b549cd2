"""The HTTPS API as one ASGI app: REST data API, OAuth 2.0, SOAP login, identity and health.

Surfaces are thin: authenticate, count the request, hand an :class:`ApiRequest` to a resource handler,
render errors in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from interlink.api import actions as actions_api
from interlink.api import bulk as bulk_api
from interlink.api import collections as collections_api
from interlink.api import composite as composite_api
from interlink.api import graphql_api, oauth_routes, query, search, soap_routes, sobjects
from interlink.api.http import (
    client_ip,
    dumps,
    error_response,
    instance_url,
    json_response,
    require_api,
    unexpected_error_response,
)
from interlink.api.resources import VERSION_RE, ApiRequest, ResourceRouter, split_path
from interlink.bus.model import DATA, Selector
from interlink.errors import InterlinkError, InvalidSession, NotFoundError
from interlink.store.failures import driver_errors, store_failure

if TYPE_CHECKING:
    from interlink.app.org import Org

log = logging.getLogger(__name__)

_FLUSH_SECONDS = 1.0


def release_label(version: str) -> str:
    """The release name of an API version: 59.0 -> "Winter '24", 66.0 -> "Spring '26"."""
    cycle, season = divmod(int(float(version)) - 32, 3)
    return f"{('Winter', 'Spring', 'Summer')[season]} '{15 + cycle:02d}"


def supported_versions(org: Org) -> list[str]:
    low = int(float(org.settings.api_min_version))
    high = int(float(org.settings.api_max_version))
    return [f"{v}.0" for v in range(low, high + 1)]


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() in ("bearer", "oauth") and value.strip():
        return value.strip()
    session_header = request.headers.get("x-sfdc-session")
    if session_header:
        return session_header.strip()
    raise InvalidSession()


class DataApi:
    """``/services/data``: versions, then every resource under ``/services/data/vXX.X/``."""

    def __init__(self, org: Org) -> None:
        self.org = org
        self.router = ResourceRouter()
        sobjects.register(self.router)
        search.register(self.router)
        query.register(self.router)
        collections_api.register(self.router)
        composite_api.register(self.router)
        graphql_api.register(self.router)
        bulk_api.register(self.router)
        actions_api.register(self.router)
        self.router.add("limits", {"GET": self.limits})
        self.router.add("", {"GET": self.resources})
        self._versions = set(supported_versions(org))

    async def versions(self, request: Request) -> Response:
        return json_response([
            {"label": release_label(v), "url": f"/services/data/v{v}", "version": v}
            for v in supported_versions(self.org)
        ])

    async def dispatch(self, request: Request) -> Response:
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        segments = split_path(raw_path.decode("latin-1"))[2:]
        version = self._version(segments[0])
        session = self.org.tokens.validate(bearer_token(request), client_ip(request))
        used, allocation = self.org.usage.count()
        limit_header = {"Sforce-Limit-Info": f"api-usage={used}/{allocation}"}
        try:
            handler, params = self.router.resolve(segments[1:], request.method)
            api_request = ApiRequest(
                org=self.org,
                session=session,
                context=require_api(self.org.context_for(session.user_id, api_version=version,
                                                         app_id=session.app_id, client=_call_client(request))),
                version=version,
                method=request.method.upper(),
                segments=segments[1:],
                query=request.query_params,
                headers=request.headers,
                body=await request.body(),
                instance_url=instance_url(request),
                params=params,
                dispatcher=self,
            )
            response = await handler(api_request)
        except InterlinkError as error:
            response = error_response(error)
        except ClientDisconnect:
            log.info("%s %s: the client went away before sending its whole body", request.method, request.url.path)
            return Response(status_code=400)
        except Exception as exc:
            response = unexpected_error_response(exc)
        response.headers.update(limit_header)
        return response

    async def call(self, parent: ApiRequest, method: str, url: str, body: Any = None,
                   headers: Mapping[str, str] | None = None) -> SubResponse:
        """Run one REST call in-process on behalf of ``parent`` (composite, batch and graph subrequests).

        ``url`` is a path under ``/services/data/vXX.X/`` (the ``/services/data/`` prefix may be left out, as
        composite batch does) with an optional query string. The subrequest shares the parent's session and,
        when the parent opened one, its unit of work. Errors come back in the platform's body, never raised.
        """
        path, _, query_string = url.partition("?")
        segments = split_path(path)
        if len(segments) >= 2 and [s.lower() for s in segments[:2]] == ["services", "data"]:
            segments = segments[2:]
        try:
            if not segments:
                raise NotFoundError()
            version = self._version(segments[0])
            handler, params = self.router.resolve(segments[1:], method)
            merged_headers = {k.lower(): v for k, v in parent.headers.items()}
            merged_headers.update({k.lower(): v for k, v in (headers or {}).items()})
            sub_request = ApiRequest(
                org=self.org, session=parent.session, context=parent.context.with_version(version),
                version=version, method=method.upper(), segments=segments[1:],
                query=QueryParams(query_string), headers=merged_headers,
                body=b"" if body is None else dumps(body), instance_url=parent.instance_url, params=params,
                dispatcher=self)
            response = await handler(sub_request)
        except InterlinkError as error:
            response = error_response(error)
        raw = bytes(response.body) if response.body else b""
        return SubResponse(response.status_code, {k: v for k, v in response.headers.items()
                                                  if k.lower() not in ("content-length", "content-type")},
                           orjson.loads(raw) if raw else None)

    def _version(self, segment: str) -> str:
        if segment.lower() == "latest":
            return supported_versions(self.org)[-1]
        match = VERSION_RE.match(segment)
        if not match or match.group(1) not in self._versions:
            raise NotFoundError()
        return match.group(1)

    async def resources(self, request: ApiRequest) -> Response:
        base = request.base_path
        body = {name: f"{base}/{name}" for name in self.router.top_level}
        body["identity"] = f"{request.instance_url}/id/{self.org.org_id}/{request.session.user_id}"
        return json_response(body, pretty=request.pretty)

    async def limits(self, request: ApiRequest) -> Response:
        return json_response(org_limits(self.org), pretty=request.pretty)


def org_limits(org: Org) -> dict[str, dict[str, int]]:
    """The ``/limits`` figures: each allocation's ``Max`` and what ``Remaining`` of it (also shown by the console)."""
    used = org.usage.used()
    allocation = org.usage.allocation
    published = org.bus.usage.used()
    hourly = org.bus.usage.allocation
    bulk = org.bulk
    limits = bulk.limits
    return {
        "DailyApiRequests": {"Max": allocation, "Remaining": max(allocation - used, 0)},
        "DailyBulkApiBatches": {"Max": limits.daily_batches,
                                "Remaining": max(limits.daily_batches - bulk.batches_used(), 0)},
        "DailyBulkV2QueryJobs": {"Max": limits.daily_query_jobs,
                                 "Remaining": max(limits.daily_query_jobs - bulk.query_jobs_used(), 0)},
        "HourlyODataCallout": {"Max": org.external.usage.allocation,
                               "Remaining": max(org.external.usage.allocation - org.external.usage.used(), 0)},
        "HourlyPublishedPlatformEvents": {"Max": hourly, "Remaining": max(hourly - published, 0)},
    }


@dataclass
class SubResponse:
    """What an in-process call answered: status, headers (without length and type) and the parsed JSON body."""

    status: int
    headers: dict[str, str]
    body: Any


def _call_client(request: Request) -> str:
    options = request.headers.get("sforce-call-options", "")
    for part in options.split(","):
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == "client":
            return value.strip()
    return ""


async def health(request: Request) -> Response:
    status, components = health_report(request.app.state.org)
    return json_response({"status": status, "components": components}, status=200 if status == "ok" else 503)


def health_report(org: Org) -> tuple[str, dict[str, dict[str, object]]]:
    """``/health``: the overall status (ok or error) and each component's (also shown by the console)."""
    components: dict[str, dict[str, object]] = {}
    healthy = True
    try:
        with org.store.read() as conn:
            conn.execute(text("SELECT 1"))
        components["store"] = {"status": "ok", "backend": org.store.backend}
    except Exception as exc:
        healthy = False
        failure = store_failure(exc)  # its message names no host or port (unauthenticated endpoint)
        components["store"] = {"status": "error", "backend": org.store.backend,
                               "error": failure.message if failure is not None else type(exc).__name__}
    try:
        head = org.bus.backend.bounds(Selector(DATA, None)).head
        components["bus"] = {"status": "ok", "backend": org.bus.backend.name or "sqlite", "latest_replay_id": head}
    except Exception as exc:
        healthy = False
        components["bus"] = {"status": "error", "backend": org.bus.backend.name or "sqlite", "error": str(exc)}
    components["metadata"] = {"status": "ok" if len(org.store.schema) else "error",
                              "objects": len(org.store.schema)}
    components["auth"] = {"status": "ok", "org_id": org.org_id}
    try:
        queue = org.bulk.queue()
        components["bulk_jobs"] = {"status": "ok", "running": queue.running, "queued": queue.queued,
                                   "oldest_wait_seconds": round(queue.oldest_wait, 1)}
    except Exception as exc:
        components["bulk_jobs"] = {"status": "error", "error": str(exc)}
    # A project file that no longer loads: the server keeps running the last good configuration (degraded).
    components["project"] = {"status": "ok"} if org.project_error is None else {
        "status": "degraded", "error": org.project_error}
    status = "ok" if healthy and len(org.store.schema) else "error"
    return status, components


def build_app(org: Org) -> Starlette:
    """The ASGI app serving ``org``."""
    from interlink.api import admin, bulk_v1, cometd, odata, operations  # they build on this module's helpers
    from interlink.api.guard import RequestGuard
    from interlink.console.app import routes as console_routes

    data = DataApi(org)

    async def data_entry(request: Request) -> Response:
        try:
            return await data.dispatch(request)
        except InterlinkError as error:
            return error_response(error)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        stop = asyncio.Event()
        # This process in the org's process registry (`interlink doctor`): heartbeats from the flusher.
        membership = org.processes.membership("api", {
            "jobs": org.settings.bulk_workers > 0, "port": org.settings.port, "grpc_port": org.settings.grpc_port,
            "listen": org.settings.host, "bus": org.bus.backend.name})

        async def flusher() -> None:
            while not stop.is_set():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), _FLUSH_SECONDS)
                changed = False
                try:
                    # In a thread: a flush may wait for the store's write lock (on SQLite another process can hold
                    # it for a whole Bulk batch), and requests must not wait with it.
                    changed = await asyncio.to_thread(org.upkeep)
                except Exception as exc:
                    failure = store_failure(exc)  # an outage: one line a second, not a traceback
                    if failure is None:
                        log.exception("background flush failed")
                    else:
                        log.warning("background flush failed: %s", failure.message)
                # Never raises; writes every few seconds (at once after a deploy).
                await asyncio.to_thread(membership.beat, force=changed)

        task = asyncio.create_task(flusher())
        membership.start()
        _app.state.membership = membership  # /ready reports its process id
        org.start_workers()
        try:
            yield
        finally:
            stop.set()
            await task
            await asyncio.to_thread(org.stop_workers)
            membership.stop()

    routes = [  # the data API first: it serves nearly every request, and routes are tried in order
        Route("/services/data/{version}/{rest:path}", data_entry, methods=_ALL_METHODS),
        Route("/services/data/{version}", data_entry, methods=_ALL_METHODS),
        Route("/services/data", data.versions, methods=["GET", "HEAD"]),
        Route("/services/data/", data.versions, methods=["GET", "HEAD"]),
        Route("/health", health, methods=["GET", "HEAD"]),
        *operations.routes(org),  # /ready, /metrics
        *oauth_routes.routes(),
        *soap_routes.routes(),
        *bulk_v1.routes(),
        *admin.routes(),
        *odata.routes(org),
        *cometd.routes(org),
        *console_routes(),
    ]
    middleware = [Middleware(RequestGuard, settings=org.settings)]
    if org.settings.metrics_enabled:  # outermost: it times the guard's refusals too
        middleware.insert(0, Middleware(operations.RequestMetrics, metrics=org.metrics))
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={
        InterlinkError: _render_error, 404: _not_found, 405: _not_allowed,
        **dict.fromkeys(driver_errors(), _render_unexpected)}, middleware=middleware)
    app.state.org = org
    app.state.data_api = data  # its router describes the REST surface (GET /interlink/v1/openapi.json)
    # Set when the server starts shutting down: long-lived responses (SSE, CometD long polls) end at once.
    app.state.draining = asyncio.Event()
    return app


_ALL_METHODS = ["GET", "HEAD", "POST", "PATCH", "PUT", "DELETE"]


async def _render_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, InterlinkError)
    return error_response(exc)


async def _render_unexpected(_request: Request, exc: Exception) -> Response:
    """A database error outside a surface's own handling (authentication, health ...): 503/507 when the database is
    unreachable or full, else the 500 body."""
    return unexpected_error_response(exc)


async def _not_found(_request: Request, _exc: Exception) -> Response:
    return error_response(NotFoundError())


async def _not_allowed(request: Request, _exc: Exception) -> Response:
    from interlink.errors import MethodNotAllowed

    return error_response(MethodNotAllowed(request.method, ["GET"]))
