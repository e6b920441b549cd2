"""What one HTTP request may cost the server, on every surface of the HTTPS app, and a log line for each refusal.

- **Size.** Each surface has a body limit (:func:`body_limit`): Bulk uploads ``bulk_max_upload_mb``, OAuth and SOAP
  login 64 KB, everything else ``request_max_body_mb``. A ``Content-Length`` above the limit is refused before any
  of the body is read. A body without one (chunked) is counted as it arrives and refused when it passes the limit,
  so no more than the limit is ever held in memory (the server itself buffers at most 64 KB ahead of the app).
- **Time.** A body must arrive within ``request_body_timeout`` seconds plus one second for every
  ``request_body_min_rate`` bytes received (the rule of Apache's mod_reqtimeout): a client that trickles bytes
  (slow-loris, R-U-Dead-Yet) is answered 408 and disconnected, while a slow but honest upload keeps going. Headers
  are bounded before any app sees a request, in the server's HTTP protocol (``interlink.app.server``).
- **Shape.** Refusals use the surface's own error shape: the REST error list (413 ``EXCEEDED_MAX_SIZE_REQUEST``,
  408 ``REQUEST_TIMEOUT``; a Bulk upload: 400 ``CLIENTINPUTERROR``, as the Bulk API answers an upload over its
  limit), an OAuth error, a SOAP fault or a Bulk API 1.0 error. A 408 closes the connection. After a 413 the
  server goes on reading and discarding what the client still sends (nothing of it is kept), so a client that
  writes its whole body before reading, as most HTTP libraries do, gets the answer instead of a reset; the
  header deadline of the next request bounds how long that lasts.
- **Log.** Every 4xx answer (and every SOAP fault) is logged once, naming the method, the path (never the query
  string, which may carry a token), the client address, the status and the error code and message. Refusals
  about who is calling or what a call may cost (401, 403, 408, 413, OAuth and SOAP login failures) are logged
  at WARNING, other refusals (bad input, unknown resources) at INFO.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from starlette.datastructures import Headers
from starlette.responses import Response

from interlink.api import soap
from interlink.api.http import error_response
from interlink.errors import ClientInputError, InterlinkError, OAuthError, RequestTimeout, RequestTooLarge

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from interlink.settings import Settings

log = logging.getLogger(__name__)

MB = 1024 * 1024
FORM_LIMIT = 64 * 1024  # OAuth forms: a token request is well under 8 KB, a JWT assertion a few KB
_BULK_UPLOAD = re.compile(r"^/services/data/[^/]+/jobs/ingest/[^/]+/batches/?$", re.IGNORECASE)
_WARNING_STATUSES = frozenset({401, 403, 408, 413, 429, 431})
_FAULT = re.compile(rb"<faultcode>([^<]*)</faultcode>\s*<faultstring>([^<]*)</faultstring>")


def body_limit(path: str, settings: Settings) -> tuple[str, int]:
    """The surface serving ``path`` (``rest``, ``bulk``, ``bulk_v1``, ``oauth``, ``soap``) and its body limit in
    bytes."""
    if path.startswith("/services/oauth2/"):
        return "oauth", FORM_LIMIT
    if path.startswith("/services/Soap/"):
        return "soap", soap.MAX_REQUEST_BYTES
    if path.startswith("/services/async/"):
        return "bulk_v1", settings.bulk_max_upload_mb * MB
    if _BULK_UPLOAD.match(path):
        return "bulk", settings.bulk_max_upload_mb * MB
    return "rest", settings.request_max_body_mb * MB


def _size(limit: int) -> str:
    if limit % MB == 0:
        return f"{limit // MB} MB"
    return f"{limit // 1024} KB" if limit % 1024 == 0 else f"{limit} bytes"


def too_large(surface: str, limit: int) -> Exception:
    """The surface's error for a body over ``limit`` bytes."""
    message = f"The request body exceeds the limit of {_size(limit)}"
    if surface == "oauth":
        return OAuthError("invalid_request", message, 413)
    if surface == "soap":
        return soap.SoapFault(soap.CLIENT_EXCEPTION_CODE, f"{message}.", fault_code="soapenv:Client")
    if surface in ("bulk", "bulk_v1"):  # what the Bulk APIs answer for an upload over their limit
        return ClientInputError(f"The upload exceeds the limit of {limit} bytes per upload")
    return RequestTooLarge(message)


def too_slow(surface: str) -> Exception:
    """The surface's error for a body that did not arrive in time."""
    message = "The request body did not arrive in time"
    if surface == "oauth":
        return OAuthError("invalid_request", message, 408)
    if surface == "soap":
        return soap.SoapFault(soap.CLIENT_EXCEPTION_CODE, f"{message}.", fault_code="soapenv:Client")
    return RequestTimeout(message)


def render(surface: str, error: Exception, headers: Headers) -> Response:
    """``error`` as the surface answers it."""
    if isinstance(error, soap.SoapFault):
        return Response(soap.fault_response(error), status_code=error.http_status, media_type=soap.CONTENT_TYPE)
    assert isinstance(error, InterlinkError)
    if surface == "bulk_v1":
        from interlink.api.bulk_v1 import error_answer

        return error_answer(headers.get("content-type", ""), error)
    return error_response(error)


@dataclass
class _Exchange:
    """What the guard knows about one request and its answer."""

    surface: str
    body_done: bool
    received: int = 0
    status: int = 0
    started: bool = False
    logged: bool = False
    refusal: Exception | None = None
    too_slow: bool = False


class RequestGuard:
    """ASGI middleware: body size and time limits for every HTTP request, and a log line for every refusal."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        surface, limit = body_limit(scope["path"], self.settings)
        declared = headers.get("content-length")
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        exchange = _Exchange(surface, body_done=not chunked and declared in (None, "", "0"))
        answer = self._answer(scope, exchange, send)
        if declared is not None and declared.isdigit() and int(declared) > limit:
            exchange.refusal = too_large(surface, limit)
            await render(surface, exchange.refusal, headers)(scope, receive, answer)
            return
        try:
            await self.app(scope, self._body(exchange, receive, limit), answer)
        except Exception as exc:  # a refusal raised by _body that no handler rendered
            if exc is not exchange.refusal or exchange.started:
                raise
            await render(surface, exc, headers)(scope, receive, answer)

    def _body(self, exchange: _Exchange, receive: Receive, limit: int) -> Receive:
        loop = asyncio.get_running_loop()
        started = loop.time()
        timeout = self.settings.request_body_timeout
        rate = max(self.settings.request_body_min_rate, 1)

        async def guarded() -> Message:
            if exchange.body_done:
                return await receive()
            remaining = started + timeout + exchange.received / rate - loop.time()
            try:
                if remaining <= 0:
                    raise TimeoutError
                async with asyncio.timeout(remaining):
                    message = await receive()
            except TimeoutError:
                exchange.too_slow = True
                exchange.refusal = too_slow(exchange.surface)
                raise exchange.refusal from None
            if message["type"] == "http.request":
                exchange.received += len(message.get("body", b""))
                if exchange.received > limit:
                    exchange.refusal = too_large(exchange.surface, limit)
                    raise exchange.refusal
                if not message.get("more_body", False):
                    exchange.body_done = True
            else:  # http.disconnect
                exchange.body_done = True
            return message

        return guarded

    def _answer(self, scope: Scope, exchange: _Exchange, send: Send) -> Send:
        async def answer(message: Message) -> None:
            if message["type"] == "http.response.start":
                exchange.started = True
                exchange.status = message["status"]
                if exchange.too_slow:  # a client too slow to send its body gets no more of the server's time
                    message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            elif message["type"] == "http.response.body" and not exchange.logged:
                exchange.logged = True
                _log_refusal(scope, exchange, message.get("body", b""))
            await send(message)

        return answer


def _log_refusal(scope: Scope, exchange: _Exchange, body: bytes) -> None:
    status = exchange.status
    path = scope["path"]
    soap_fault = exchange.surface == "soap" and status >= 400
    if not (400 <= status < 500 or soap_fault):
        return
    login = exchange.surface == "oauth" or soap_fault
    level = logging.WARNING if status in _WARNING_STATUSES or login or exchange.refusal else logging.INFO
    if not log.isEnabledFor(level):
        return
    client = (scope.get("client") or ("?", 0))[0]
    code, message = _error_of(body)
    log.log(level, "refused %s %s from %s: %d %s%s", scope["method"], _printable(path, 300), client, status,
            code or "-", f" ({_printable(message, 300)})" if message else "")


def _error_of(body: bytes) -> tuple[str, str]:
    """The error code and message of an error body, whatever the surface's shape."""
    if body[:1] in (b"[", b"{") and len(body) <= FORM_LIMIT:
        try:
            data: Any = orjson.loads(body)
        except orjson.JSONDecodeError:
            return "", ""
        if isinstance(data, list) and data and isinstance(data[0], dict):
            data = data[0]
        if isinstance(data, dict) and isinstance(data.get("error"), dict):  # OData: {"error": {"code", ...}}
            data = data["error"]
            return str(data.get("code") or ""), str(data.get("message") or "")
        if isinstance(data, dict):
            code = data.get("errorCode") or data.get("error") or data.get("exceptionCode") or ""
            message = data.get("message") or data.get("error_description") or data.get("exceptionMessage") or ""
            return str(code), str(message)
        return "", ""
    fault = _FAULT.search(body[:4096])
    if fault:
        return fault.group(1).decode("utf-8", "replace"), fault.group(2).decode("utf-8", "replace")
    return "", ""


def _printable(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with control characters escaped (callers choose what it holds)."""
    cut = text[:limit] + ("…" if len(text) > limit else "")
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in cut)


__all__ = ["FORM_LIMIT", "RequestGuard", "body_limit", "render", "too_large", "too_slow"]
