"""JSON responses and the one place REST errors are rendered.

Every REST error body is the platform's JSON array ``[{"message", "errorCode", "fields"}]`` with the
error's HTTP status; OAuth errors use RFC 6749's ``{"error", "error_description"}``.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from interlink.errors import InterlinkError, JsonParserError, MethodNotAllowed, NotModified, OAuthError
from interlink.security.login_restrictions import client_address
from interlink.store.failures import store_failure

log = logging.getLogger(__name__)

JSON_TYPE = "application/json;charset=UTF-8"


def dumps(data: Any, *, pretty: bool = False) -> bytes:
    option = orjson.OPT_NON_STR_KEYS | (orjson.OPT_INDENT_2 if pretty else 0)
    return orjson.dumps(data, option=option)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None, *,
                  pretty: bool = False) -> Response:
    return Response(dumps(data, pretty=pretty), status_code=status, headers=headers, media_type=JSON_TYPE)


def no_content(headers: dict[str, str] | None = None) -> Response:
    return Response(status_code=204, headers=headers)


def error_body(error: InterlinkError) -> Any:
    if isinstance(error, OAuthError):
        return {"error": error.error, "error_description": error.description}
    return error.wire_list()


def error_response(error: InterlinkError) -> Response:
    """Render any InterlinkError in the platform's shape and status."""
    if isinstance(error, NotModified):
        return Response(status_code=304)
    headers = {}
    if isinstance(error, MethodNotAllowed):
        headers["Allow"] = ", ".join(error.allowed)
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    return json_response(error_body(error), status=error.http_status, headers=headers)


def unexpected_error_response(exc: Exception) -> Response:
    """An exception no surface expected: a database outage or full disk as its wire error (503/507), else 500."""
    failure = store_failure(exc)
    if failure is not None:
        detail = str(exc).strip().split("\n", 1)[0]
        log.warning("%s (%s: %s)", failure.error_code, type(exc).__name__, detail)
        return error_response(failure)
    log.exception("unexpected error", exc_info=exc)
    body = [{"message": "An unexpected error occurred. Please include this ErrorId if you contact support: "
                        f"{type(exc).__name__}", "errorCode": "UNKNOWN_EXCEPTION", "fields": []}]
    return json_response(body, status=500)


def parse_json(body: bytes) -> Any:
    """Parse a request body as JSON or raise JSON_PARSER_ERROR with the position."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        line = getattr(exc, "lineno", 1)
        column = getattr(exc, "colno", 1)
        raise JsonParserError(f"Unexpected character or end of input at [line:{line}, column:{column}]: "
                              f"{exc.msg}") from None


def parse_json_object(body: bytes) -> dict[str, Any]:
    data = parse_json(body)
    if not isinstance(data, dict):
        token = "START_ARRAY" if isinstance(data, list) else "VALUE"
        raise JsonParserError(f"Cannot deserialize instance of SObject from {token} value or request may be "
                              "missing a required field at [line:1, column:1]")
    return data


def instance_url(request: Request) -> str:
    """``scheme://host[:port]`` as the client reached us: what tokens and login report back."""
    host = request.headers.get("host")
    if not host:
        server = request.scope.get("server") or ("localhost", None)
        host = f"{server[0]}:{server[1]}" if server[1] else str(server[0])
    return f"{request.scope.get('scheme', 'https')}://{host}"


def require_api(context: Any) -> Any:
    """``context`` when its user may use the API (the API Enabled permission), else API_DISABLED_FOR_ORG."""
    from interlink.errors import ApiDisabled

    access = context.enforced
    if access is not None and not access.has("ApiEnabled"):
        raise ApiDisabled()
    return context


def client_ip(request: Request) -> str | None:
    """The client's address: the socket peer, or behind one of the ``trusted_proxies`` the X-Forwarded-For hop
    before them (LoginHistory.SourceIp, and what profile login IP ranges are checked against)."""
    peer = request.client.host if request.client else None
    org = getattr(request.app.state, "org", None) if "app" in request.scope else None
    trusted = org.trusted_proxies if org is not None else ()
    if not trusted:
        return peer
    return client_address(peer, request.headers.getlist("x-forwarded-for"), trusted)
