"""``/services/Soap/u/{version}``: the partner API's ``login()``, which many clients still call."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from interlink.api import soap
from interlink.api.http import client_ip, instance_url
from interlink.security.logins import (
    LOGIN_TYPE_SOAP,
    RESTRICTIONS,
    STATUS_RESTRICTED_TIME,
    LoginAttempt,
    LoginRefused,
)

if TYPE_CHECKING:
    from interlink.app.org import Org

_XML = soap.CONTENT_TYPE


async def partner(request: Request) -> Response:
    org: Org = request.app.state.org
    version = request.path_params["version"]
    try:
        if not org.settings.soap_login_enabled:
            raise soap.login_disabled_fault()
        unavailable = soap.login_unavailable(version)
        if unavailable is not None:
            raise unavailable
        username, password = soap.parse_login_request(await request.body())
        attempt = LoginAttempt(LOGIN_TYPE_SOAP, "N/A", client_ip(request), instance_url(request),
                               api_type="SOAP Partner", api_version=version)
        try:
            user = org.oauth.logins.password_login(username, password, attempt)
        except LoginRefused as refused:
            if refused.status in RESTRICTIONS:  # only after the right password: the profile's restrictions
                raise soap.restricted_login(refused.status == STATUS_RESTRICTED_TIME) from None
            raise soap.invalid_login() from None  # "...; or user locked out." covers every other refusal
        token, _ = org.tokens.mint(user.id, app_id=None)
    except soap.SoapFault as fault:
        return Response(soap.fault_response(fault), status_code=500, media_type=_XML)
    server_url, metadata_server_url = soap.soap_server_urls(instance_url(request), version, org.org_id)
    body = soap.login_response(
        server_url=server_url,
        metadata_server_url=metadata_server_url,
        session_id=token,
        user_id=user.id,
        org_id=org.org_id,
        org_name=org.org_name,
        username=user.username,
        user_full_name=user.name,
        user_email=user.email or user.username,
        profile_id=user.fields.get("ProfileId"),
        session_seconds_valid=org.settings.session_timeout,
    )
    return Response(body, status_code=200, media_type=_XML)


def routes() -> list[Route]:
    return [
        Route("/services/Soap/u/{version}", partner, methods=["POST"]),
        Route("/services/Soap/u/{version}/{rest:path}", partner, methods=["POST"]),
    ]
