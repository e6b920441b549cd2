"""OAuth 2.0 endpoints: token, revoke, introspect, userinfo, identity URLs and the authorize page."""

from __future__ import annotations

import base64
import binascii
import html
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from interlink.api.http import client_ip, error_response, instance_url, json_response
from interlink.errors import InterlinkError, InvalidSession, NotFoundError, OAuthError
from interlink.security.logins import RESTRICTED_MESSAGES, LoginRefused

if TYPE_CHECKING:
    from interlink.app.org import Org


def _org(request: Request) -> Org:
    return request.app.state.org  # type: ignore[no-any-return]


async def _form(request: Request) -> dict[str, str]:
    body = (await request.body()).decode("utf-8", "replace")
    form = dict(parse_qsl(body, keep_blank_values=True))
    for key, value in request.query_params.items():
        form.setdefault(key, value)
    return form


def _basic(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip()).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthError("invalid_client", "invalid client credentials", 401) from None
    client_id, _, secret = decoded.partition(":")
    return client_id, secret


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() in ("bearer", "oauth") and value.strip():
        return value.strip()
    token = request.query_params.get("oauth_token") or request.query_params.get("access_token")
    if token:
        return token
    raise InvalidSession("Bad_OAuth_Token")


async def token(request: Request) -> Response:
    try:
        form = await _form(request)
        body = _org(request).oauth.token(form, _basic(request), instance_url(request), source_ip=client_ip(request))
    except InterlinkError as error:
        return error_response(error)
    return json_response(body, headers={"Cache-Control": "no-cache,must-revalidate,max-age=0,no-store,private"})


async def revoke(request: Request) -> Response:
    form = await _form(request)
    value = form.get("token")
    if not value:
        return error_response(OAuthError("unsupported_token_type", "this token type is not supported"))
    if not _org(request).tokens.revoke(value):
        return error_response(OAuthError("invalid_token", "invalid token"))
    return Response(status_code=200)


async def introspect(request: Request) -> Response:
    org = _org(request)
    try:
        form = await _form(request)
        basic = _basic(request)
        client_id = form.get("client_id") or (basic[0] if basic else None)
        secret = form.get("client_secret") or (basic[1] if basic else None)
        app = org.directory.app_by_key(client_id or "")
        if app is None or not app.secret_matches(secret):
            raise OAuthError("invalid_client", "invalid client credentials", 401)
    except InterlinkError as error:
        return error_response(error)
    body = org.tokens.introspect(form.get("token", ""))
    token_app_id = body.pop("app_id", None)
    if body.get("active"):
        user = org.directory.user_by_id(str(body.pop("user_id")))
        base = instance_url(request)
        token_app = next((a for a in org.directory.apps() if a.id == token_app_id), None)
        body.update({"client_id": token_app.consumer_key if token_app else None,
                     "username": user.username if user else None,
                     "sub": f"{base}/id/{org.org_id}/{user.id if user else ''}"})
    else:
        body.pop("user_id", None)
    return json_response(body)


def _current_user(request: Request):  # type: ignore[no-untyped-def]
    org = _org(request)
    session = org.tokens.validate(_bearer(request), client_ip(request))
    user = org.directory.user_by_id(session.user_id)
    if user is None:
        raise InvalidSession()
    return org, user


async def userinfo(request: Request) -> Response:
    try:
        org, user = _current_user(request)
    except InvalidSession:
        return Response("Bad_OAuth_Token", status_code=403, media_type="text/plain")
    return json_response(org.oauth.userinfo(user, instance_url(request), org.settings.api_max_version))


async def identity(request: Request) -> Response:
    try:
        org, user = _current_user(request)
    except InvalidSession:
        return Response("Bad_OAuth_Token", status_code=403, media_type="text/plain")
    if request.path_params["org_id"][:15] != org.org_id[:15] or request.path_params["user_id"][:15] != user.id[:15]:
        # The platform lets any valid session read any identity URL of its own org.
        other = org.directory.user_by_id(request.path_params["user_id"])
        if other is None or request.path_params["org_id"][:15] != org.org_id[:15]:
            return error_response(NotFoundError())
        user = other
    return json_response(org.oauth.identity(user, instance_url(request), org.settings.api_max_version))


_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Log in | Interlink</title>
<style>body{{font-family:system-ui,sans-serif;background:#f3f3f3;display:flex;justify-content:center;padding-top:8vh}}
form{{background:#fff;padding:2rem 2.5rem;border-radius:8px;box-shadow:0 2px 8px #0002;min-width:320px}}
label{{display:block;margin-top:1rem;font-size:.9rem}}input{{width:100%;padding:.5rem;margin-top:.3rem;box-sizing:border-box}}
button{{margin-top:1.5rem;width:100%;padding:.6rem;background:#0176d3;color:#fff;border:0;border-radius:4px}}
.error{{color:#ba0517;margin-top:1rem}}</style></head><body><form method="post">
<h1>Interlink</h1><p>Allow <b>{app}</b> to access your org?</p>{error}
<label>Username<input name="username" autocomplete="username" required></label>
<label>Password<input name="password" type="password" autocomplete="current-password" required></label>
{hidden}<button type="submit">Log In and Allow</button></form></body></html>"""


async def authorize(request: Request) -> Response:
    """The web-server flow's login page: GET shows it, POST checks the user and redirects with a code."""
    org = _org(request)
    params = await _form(request) if request.method == "POST" else dict(request.query_params)
    app = org.directory.app_by_key(params.get("client_id", ""))
    redirect_uri = params.get("redirect_uri", "")
    if app is None:
        return HTMLResponse("<h1>error=invalid_client_id</h1><p>client identifier invalid</p>", status_code=400)
    try:
        org.oauth.check_redirect(app, redirect_uri)
    except OAuthError as error:
        return HTMLResponse(f"<h1>error={error.error}</h1><p>{html.escape(error.description)}</p>",
                            status_code=400)
    state = params.get("state")
    if params.get("response_type", "code") != "code":
        return _redirect(redirect_uri, {"error": "unsupported_response_type",
                                        "error_description": "response type not supported", "state": state})
    error_html = ""
    if request.method == "POST":
        attempt = org.oauth.attempt(app, client_ip(request), instance_url(request))
        try:
            user = org.oauth.logins.password_login(params.get("username", ""), params.get("password", ""), attempt)
        except LoginRefused as refused:
            # Locked out or inactive reads the same as a wrong password: nothing to learn for a guesser. The
            # profile's restrictions are told (only the right password gets that far).
            message = RESTRICTED_MESSAGES.get(refused.status, "Please check your username and password.")
            error_html = f'<p class="error">{html.escape(message)}</p>'
        else:
            try:
                org.oauth.check_app_access(user.id, app)
            except OAuthError as error:
                return _redirect(redirect_uri, {"error": error.error, "error_description": error.description,
                                                "state": state})
            code = org.oauth.issue_code(app, user, redirect_uri, params.get("code_challenge"))
            return _redirect(redirect_uri, {"code": code, "state": state})
    keep = ("response_type", "client_id", "redirect_uri", "state", "code_challenge", "code_challenge_method",
            "scope")
    hidden = "".join(f'<input type="hidden" name="{k}" value="{html.escape(params[k])}">'
                     for k in keep if params.get(k) is not None)
    return HTMLResponse(_PAGE.format(app=html.escape(app.name), error=error_html, hidden=hidden),
                        status_code=200 if not error_html else 401)


def _redirect(uri: str, params: dict[str, str | None]) -> RedirectResponse:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return RedirectResponse(f"{uri}{'&' if '?' in uri else '?'}{query}", status_code=302)


def routes() -> list[Route]:
    return [
        Route("/services/oauth2/token", token, methods=["POST"]),
        Route("/services/oauth2/revoke", revoke, methods=["GET", "POST"]),
        Route("/services/oauth2/introspect", introspect, methods=["POST"]),
        Route("/services/oauth2/userinfo", userinfo, methods=["GET", "POST"]),
        Route("/services/oauth2/authorize", authorize, methods=["GET", "POST"]),
        Route("/id/{org_id}/{user_id}", identity, methods=["GET", "POST"]),
    ]
