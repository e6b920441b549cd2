"""The web console at ``/console``: login, navigation and the sections' routes, on the API's TLS port.

Each section is a module with a ``routes()`` function; this module mounts them under ``/console`` together
with login, logout, the home page and the static files.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from interlink.console import session
from interlink.console.render import STATIC, is_secure, org_of, page, render, with_headers
from interlink.console.session import ConsoleUser
from interlink.security.logins import RESTRICTED_MESSAGES, STATUS_API_ONLY, LoginRefused

API_ONLY_MESSAGE = ("This user is an API-only (integration) user: it can use the APIs but cannot log in to the "
                    "console.")


def _safe_next(target: str | None) -> str:
    """Only same-console redirects after login (no open redirect to another site)."""
    if target and target.startswith("/console") and not target.startswith("//") and "\\" not in target:
        return target
    return "/console/"


async def login_page(request: Request) -> Response:
    org = org_of(request)
    try:
        session.current_user(org, request)
        return with_headers(RedirectResponse(_safe_next(request.query_params.get("next")), 303), request)
    except Exception:
        pass
    return _login_form(request, error="", status=200, username="")


def _login_form(request: Request, *, error: str, status: int, username: str) -> Response:
    token = session.new_login_csrf()
    response = render(request, "login.html", None, status=status, error=error, login_csrf=token,
                      next=_safe_next(request.query_params.get("next")), username=username)
    response.set_cookie(session.LOGIN_CSRF_COOKIE, token, httponly=True, secure=is_secure(request),
                        samesite="strict", path="/console/login")
    return response


async def login_submit(request: Request) -> Response:
    org = org_of(request)
    form = await session.form_data(request)
    username = str(form.get("username", ""))
    if not session.login_csrf_ok(request, str(form.get("csrf", ""))):
        return _login_form(request, error="Your login form expired; please try again.", status=403,
                           username=username)
    try:
        token = session.login(org, username, str(form.get("password", "")), request)
    except LoginRefused as refused:
        # A locked-out or inactive user reads like a wrong password; only a right password of an API-only
        # user learns why it cannot come in.
        told = refused.status == STATUS_API_ONLY or refused.status in RESTRICTED_MESSAGES
        message = API_ONLY_MESSAGE if refused.status == STATUS_API_ONLY else RESTRICTED_MESSAGES.get(
            refused.status, "Please check your username and password.")
        return _login_form(request, error=message, status=403 if told else 401, username=username)
    response = RedirectResponse(_safe_next(str(form.get("next", "")) or None), 303)
    session.set_session_cookie(response, token, secure=is_secure(request))
    response.delete_cookie(session.LOGIN_CSRF_COOKIE, path="/console/login")
    return with_headers(response, request)


@page
async def logout(request: Request, user: ConsoleUser) -> Response:
    org_of(request).tokens.revoke(user.token)
    response = RedirectResponse("/console/login", 303)
    session.clear_session_cookie(response, secure=is_secure(request))
    return response


@page
async def home(request: Request, user: ConsoleUser) -> Response:
    org = org_of(request)
    objects = sorted((obj for obj in org.query.schema_for(user.context) if not obj.is_event),
                     key=lambda obj: obj.label.lower())
    return render(request, "home.html", user, section="/console/", objects=objects,
                  store_backend=org.store.backend, bus_backend=org.bus.backend.name or "sqlite")


def routes() -> list[BaseRoute]:
    """Every console route, mounted under ``/console``."""
    from interlink.console import sections

    return [
        Route("/console", lambda request: RedirectResponse("/console/", 307), methods=["GET", "HEAD"]),
        Mount("/console", routes=[
            Route("/", home, methods=["GET", "HEAD"]),
            Route("/login", login_page, methods=["GET", "HEAD"]),
            Route("/login", login_submit, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Mount("/static", app=StaticFiles(directory=str(STATIC)), name="console-static"),
            *sections.routes(),
        ]),
    ]
