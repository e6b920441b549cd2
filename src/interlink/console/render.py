"""Rendering for the console: Jinja2 templates, security headers, and the two error shapes.

Pages are server-rendered HTML; the console's JSON endpoints (``/console/api/...``) answer errors in the
platform's body ``[{"message", "errorCode", "fields"}]``, like the REST API. No inline script runs on any
page (the Content-Security-Policy forbids it): data for scripts travels in ``data-`` attributes or
``<script type="application/json">`` blocks, behaviour lives in ``/console/static/*.js``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import jinja2
import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from interlink.api.http import error_response, json_response, unexpected_error_response
from interlink.console.session import ConsoleUser, check_csrf, current_user
from interlink.errors import InterlinkError, InvalidSession

if TYPE_CHECKING:
    from interlink.app.org import Org

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
HSTS = "max-age=31536000; includeSubDomains"

# The console's sections, in navigation order: (path under /console, label).
NAV = [
    ("/console/", "Home"),
    ("/console/objects", "Objects"),
    ("/console/soql", "SOQL"),
    ("/console/events", "Event streams"),
    ("/console/jobs", "Jobs"),
    ("/console/pipelines", "Pipelines"),
    ("/console/limits", "Limits & health"),
]


def _format_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "✓" if value else ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)


def _tojson(value: Any) -> jinja2.utils.markupsafe.Markup:
    """JSON safe inside ``<script type="application/json">`` (no ``</script>`` breakout)."""
    text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return jinja2.utils.markupsafe.Markup(text)


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["value"] = _format_value
    env.filters["json"] = _tojson
    env.filters["urlpart"] = lambda s: quote(str(s), safe="")
    return env


def is_secure(request: Request) -> bool:
    return request.url.scheme == "https"


def with_headers(response: Response, request: Request) -> Response:
    response.headers.update(SECURITY_HEADERS)
    if is_secure(request):
        response.headers["Strict-Transport-Security"] = HSTS
    return response


def org_of(request: Request) -> Org:
    return request.app.state.org  # type: ignore[no-any-return]


def render(request: Request, template: str, user: ConsoleUser | None, status: int = 200, **values: Any) -> Response:
    """A console page: the template with the navigation, the user and the CSRF token filled in."""
    org = org_of(request)
    section = values.pop("section", "")
    html = environment().get_template(template).render(
        request=request, user=user, csrf=user.csrf if user else "", nav=NAV, section=section,
        org_name=org.org_name, org_id=org.org_id, **values)
    return with_headers(HTMLResponse(html, status_code=status), request)


Handler = Callable[[Request, ConsoleUser], Awaitable[Response]]


def page(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """An HTML page for logged-in users: redirects to the login page otherwise; CSRF-checked on POST;
    errors the code raises on purpose are shown on the page's error template with their status."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        org = org_of(request)
        try:
            user = current_user(org, request)
        except InvalidSession:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return with_headers(RedirectResponse(f"/console/login?next={quote(target, safe='')}", 303), request)
        try:
            await check_csrf(request, user)
            return with_headers(await handler(request, user), request)
        except InterlinkError as error:
            return render(request, "error.html", user, status=error.http_status, error=error)
        except Exception as exc:  # the page says so; the log has the traceback
            log.exception("console page failed", exc_info=exc)
            return render(request, "error.html", user, status=500,
                          error=InterlinkError(f"An unexpected error occurred: {type(exc).__name__}"))

    return endpoint


def api(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A JSON endpoint for the console's scripts: session cookie auth, CSRF on writes, platform error bodies."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        org = org_of(request)
        try:
            user = current_user(org, request)
            await check_csrf(request, user)
            return with_headers(await handler(request, user), request)
        except InterlinkError as error:
            return with_headers(error_response(error), request)
        except Exception as exc:
            return with_headers(unexpected_error_response(exc), request)

    return endpoint


__all__ = ["NAV", "STATIC", "api", "environment", "is_secure", "json_response", "org_of", "page", "render",
           "with_headers"]
