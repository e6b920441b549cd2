"""Console sessions: org users log in with their password and get an HttpOnly cookie holding a session token.

The cookie's token is an ordinary access token (scope ``console``) minted by the token service, so session
timeout, revocation and user deactivation work the same as on the API. Every state-changing request must
carry the session's CSRF token (form field ``csrf`` or header ``X-CSRF-Token``); it is derived from the
session token, so it cannot be guessed without the cookie and needs no storage. The login form itself is
protected by a double-submit cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from interlink.api.http import client_ip
from interlink.errors import InterlinkError, InvalidSession
from interlink.records.context import Context
from interlink.security.apps import UserRecord
from interlink.security.logins import BROWSER_APPLICATION, LOGIN_TYPE_APPLICATION, LoginAttempt
from interlink.security.tokens import Session

if TYPE_CHECKING:
    from interlink.app.org import Org

COOKIE = "il_console"
LOGIN_CSRF_COOKIE = "il_login_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf"
SCOPE = "console"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class CsrfError(InterlinkError):
    error_code = "INVALID_CSRF_TOKEN"
    http_status = 403


@dataclass(frozen=True)
class ConsoleUser:
    """The logged-in user of one console request."""

    user: UserRecord
    session: Session
    token: str
    context: Context

    @property
    def id(self) -> str:
        return self.user.id

    @property
    def csrf(self) -> str:
        return csrf_token(self.token)


def csrf_token(session_token: str) -> str:
    return hmac.new(session_token.encode(), b"interlink-console-csrf", hashlib.sha256).hexdigest()


def login(org: Org, username: str, password: str, request: Request | None = None) -> str:
    """A new console session token, through the org's login policy (lockout, API-only users, login history).

    Raises :class:`~interlink.security.logins.LoginRefused` (its ``status`` says why) when the policy refuses.
    """
    attempt = LoginAttempt(
        LOGIN_TYPE_APPLICATION, BROWSER_APPLICATION,
        source_ip=client_ip(request) if request is not None else None,
        login_url=f"{request.url.scheme}://{request.url.netloc}" if request is not None else None,
        browser=(request.headers.get("user-agent") or None) if request is not None else None)
    user = org.oauth.logins.password_login(username.strip(), password, attempt)
    token, _ = org.tokens.mint(user.id, scope=SCOPE)
    return token


def logout(org: Org, request: Request) -> None:
    token = request.cookies.get(COOKIE)
    if token:
        org.tokens.revoke(token)


def current_user(org: Org, request: Request) -> ConsoleUser:
    """The request's user; INVALID_SESSION_ID when the cookie is missing, expired or revoked."""
    token = request.cookies.get(COOKIE, "")
    session = org.tokens.validate(token, client_ip(request))
    user = org.directory.user_by_id(session.user_id)
    if user is None or not user.is_active:
        raise InvalidSession()
    context = org.context_for(user.id, client="console")
    return ConsoleUser(user, session, token, context)


async def check_csrf(request: Request, user: ConsoleUser) -> None:
    """Refuse a state-changing request without the session's CSRF token."""
    if request.method.upper() in _SAFE_METHODS:
        return
    supplied = request.headers.get(CSRF_HEADER, "")
    if not supplied and request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        supplied = (await form_data(request)).get(CSRF_FIELD, "")
    if not supplied or not hmac.compare_digest(supplied, user.csrf):
        raise CsrfError("The request is missing a valid CSRF token; reload the page and try again.")


async def form_data(request: Request, *, limit: int = 4 * 1024 * 1024) -> dict[str, str]:
    """A urlencoded form body (the console's forms post nothing else); the body is read once and cached."""
    body = await request.body()
    if len(body) > limit:
        raise InterlinkError(f"The form is larger than {limit // (1024 * 1024)} MB", error_code="REQUEST_TOO_LARGE")
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def set_session_cookie(response: Response, token: str, *, secure: bool) -> None:
    response.set_cookie(COOKIE, token, httponly=True, secure=secure, samesite="lax", path="/console")


def clear_session_cookie(response: Response, *, secure: bool) -> None:
    response.delete_cookie(COOKIE, path="/console", secure=secure, httponly=True, samesite="lax")


def new_login_csrf() -> str:
    return secrets.token_urlsafe(24)


def login_csrf_ok(request: Request, supplied: str) -> bool:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    return bool(expected) and hmac.compare_digest(expected, supplied)
