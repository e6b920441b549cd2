"""Interlink's own API for what the platform shows in Setup: the callout and outbound-message queues.

    GET  /interlink/v1/callouts[?state=Queued|Delivered|Dead&limit=N]   newest first, with every attempt
    GET  /interlink/v1/callouts/{id}
    POST /interlink/v1/callouts/{id}/retry                               queue a dead callout again
    GET  /interlink/v1/outbound[?state=...&limit=N]                      outbound-message notifications
    GET  /interlink/v1/openapi.json[?version=66.0&objects=A,B]           OpenAPI 3.0 document of the REST API

Authenticated with the same bearer tokens as the data API (the user needs API Enabled; the queues need View Setup,
a retry Modify All Data); errors in the platform's shape.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from interlink.api import openapi
from interlink.api.app import bearer_token, supported_versions
from interlink.api.http import client_ip, error_response, instance_url, json_response, require_api
from interlink.errors import InsufficientAccess, InterlinkError, InvalidHeaderError, NotFoundError

if TYPE_CHECKING:
    from interlink.app.org import Org

STATES = ("Queued", "Delivered", "Dead")


def _filters(request: Request) -> tuple[str | None, int]:
    state = request.query_params.get("state")
    if state is not None and state not in STATES:
        raise InvalidHeaderError(f"state is one of {', '.join(STATES)}, not {state!r}", ["state"])
    raw = request.query_params.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise InvalidHeaderError(f"limit is a whole number from 1 to 1000, not {raw!r}", ["limit"])
    return state, int(raw)


def routes() -> list[Route]:
    def guarded(handler, permission: str | None = None):  # type: ignore[no-untyped-def]
        """A valid session of a user with API Enabled (and ``permission``, a system permission, when given)."""

        async def run(request: Request) -> Response:
            org: Org = request.app.state.org
            try:
                session = org.tokens.validate(bearer_token(request), client_ip(request))
                context = require_api(org.context_for(session.user_id, app_id=session.app_id))
                access = context.enforced
                if permission is not None and access is not None and not access.has(permission):
                    raise InsufficientAccess(f"This operation needs the {permission} permission")
                org.usage.count()
                request.state.context = context
                return await handler(request, org)
            except InterlinkError as error:
                return error_response(error)

        return run

    async def callouts(request: Request, org: Org) -> Response:
        state, limit = _filters(request)
        return json_response({"callouts": org.callouts.list(state=state, limit=limit)})

    async def callout(request: Request, org: Org) -> Response:
        found = org.callouts.get(request.path_params["id"])
        if found is None:
            raise NotFoundError()
        return json_response(found)

    async def retry(request: Request, org: Org) -> Response:
        if not org.callouts.retry(request.path_params["id"]):
            raise NotFoundError(f"{request.path_params['id']} is not a dead callout")
        return json_response(org.callouts.get(request.path_params["id"]))

    async def outbound(request: Request, org: Org) -> Response:
        state, limit = _filters(request)
        return json_response({"notifications": org.outbound.list(state=state, limit=limit)})

    async def openapi_document(request: Request, org: Org) -> Response:
        versions = supported_versions(org)
        version = request.query_params.get("version", versions[-1]).removeprefix("v")
        if version not in versions:
            raise NotFoundError(f"API version {version} is not served: {versions[0]} to {versions[-1]}")
        # The caller's view of the schema, as describe gives it: objects and fields they may not read are left out,
        # and what they may not create or edit is read-only.
        schema = org.query.schema_for(request.state.context)
        objects = None
        if request.query_params.get("objects"):
            objects = [name.strip() for name in request.query_params["objects"].split(",") if name.strip()]
            unknown = [name for name in objects if name not in schema]
            if unknown:
                raise NotFoundError(f"No such object: {', '.join(unknown)}")
        document = openapi.build_document(schema, request.app.state.data_api.router, version=version,
                                          server_url=instance_url(request), objects=objects, org_name=org.org_name)
        return json_response(document)

    return [
        Route("/interlink/v1/openapi.json", guarded(openapi_document), methods=["GET"]),
        # Callouts and outbound messages carry other users' payloads: setup information, as on the platform.
        Route("/interlink/v1/callouts", guarded(callouts, "ViewSetup"), methods=["GET"]),
        Route("/interlink/v1/callouts/{id}", guarded(callout, "ViewSetup"), methods=["GET"]),
        Route("/interlink/v1/callouts/{id}/retry", guarded(retry, "ModifyAllData"), methods=["POST"]),
        Route("/interlink/v1/outbound", guarded(outbound, "ViewSetup"), methods=["GET"]),
    ]


__all__ = ["routes"]
