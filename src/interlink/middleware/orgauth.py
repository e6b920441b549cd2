"""How an :class:`~interlink.middleware.orgapi.OrgConnection` gets its access token from an org.

An :class:`Auth` strategy logs in and answers :class:`Credentials`: a :class:`StaticToken` minted elsewhere (it
cannot be refreshed), or an OAuth 2.0 grant run against the org's token endpoint (:class:`ClientCredentials`,
:class:`UsernamePassword`, :class:`JwtBearer`), which the connection runs again once when the org answers 401
``INVALID_SESSION_ID``. :func:`auth_from_config` builds one from the ``auth:`` mapping of a ``connections.yaml``
entry, whose secrets (:data:`SECRET_KEYS`) must be ``${ENV_VAR}`` references. Failures are the org errors of
:mod:`interlink.middleware.orgapi`: :class:`~interlink.middleware.orgapi.OrgUnavailable` when the token endpoint
cannot be reached or fails, :class:`~interlink.middleware.orgapi.OrgAuthError` when it refuses the credentials.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from interlink.middleware.base import PipelineSpecError

#: the keys of an ``auth:`` mapping that hold secrets (never written in files: ``${ENV_VAR}`` references only)
SECRET_KEYS = ("token", "clientSecret", "password", "privateKey")


@dataclass
class Credentials:
    """A login's outcome: the access token, and what the token endpoint said about the org."""

    access_token: str
    instance_url: str | None = None
    org_id: str | None = None


class Auth:
    """How a connection gets an access token. ``refreshable``: whether a 401 may be cured by logging in again."""

    refreshable = True
    login_url: str | None = None  # the token endpoint's host when it is not the instance (login.salesforce.com)

    def login(self, http: httpx.Client, url: str) -> Credentials:
        raise NotImplementedError

    def _grant(self, http: httpx.Client, url: str, form: dict[str, str]) -> Credentials:
        from interlink.middleware.orgapi import OrgAuthError, OrgUnavailable  # the API module builds on this one

        endpoint = f"{(self.login_url or url).rstrip('/')}/services/oauth2/token"
        try:
            response = http.post(endpoint, data=form)
        except httpx.HTTPError as exc:
            raise OrgUnavailable(f"cannot reach {endpoint}: {exc or type(exc).__name__}") from None
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code >= 500:
            raise OrgUnavailable(f"{endpoint} answered {response.status_code}", status=response.status_code)
        if response.status_code != 200 or not isinstance(body, dict) or "access_token" not in body:
            error = body.get("error", f"HTTP {response.status_code}") if isinstance(body, dict) else "error"
            detail = body.get("error_description", response.text[:200]) if isinstance(body, dict) else ""
            raise OrgAuthError(f"{form['grant_type']} login at {endpoint} failed: {error}: {detail}",
                               error_code=str(error), status=response.status_code)
        identity = str(body.get("id") or "")
        parts = identity.rstrip("/").split("/")
        org_id = parts[-2] if len(parts) >= 2 and "/id/" in identity else None
        return Credentials(str(body["access_token"]), body.get("instance_url"), org_id)


@dataclass
class StaticToken(Auth):
    """A token minted elsewhere (``interlink token``, ``sf org display``); it cannot be refreshed."""

    token: str
    refreshable = False

    def login(self, http: httpx.Client, url: str) -> Credentials:
        return Credentials(self.token)


@dataclass
class ClientCredentials(Auth):
    """OAuth 2.0 client credentials: the connected app's run-as user."""

    client_id: str
    client_secret: str
    login_url: str | None = None

    def login(self, http: httpx.Client, url: str) -> Credentials:
        return self._grant(http, url, {"grant_type": "client_credentials", "client_id": self.client_id,
                                       "client_secret": self.client_secret})


@dataclass
class UsernamePassword(Auth):
    """OAuth 2.0 username-password (the password with the security token appended, where the org needs one)."""

    client_id: str
    client_secret: str
    username: str
    password: str
    login_url: str | None = None

    def login(self, http: httpx.Client, url: str) -> Credentials:
        return self._grant(http, url, {"grant_type": "password", "client_id": self.client_id,
                                       "client_secret": self.client_secret, "username": self.username,
                                       "password": self.password})


@dataclass
class JwtBearer(Auth):
    """OAuth 2.0 JWT bearer: an RS256 assertion signed with the private key of the app's certificate."""

    client_id: str
    username: str
    private_key: str
    audience: str | None = None  # default: the login URL (https://login.salesforce.com for production)
    login_url: str | None = None

    def login(self, http: httpx.Client, url: str) -> Credentials:
        import jwt

        claims = {"iss": self.client_id, "sub": self.username, "exp": int(time.time()) + 180,
                  "aud": self.audience or (self.login_url or url).rstrip("/")}
        assertion = jwt.encode(claims, self.private_key, algorithm="RS256")
        return self._grant(http, url, {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                                       "assertion": assertion})


def auth_from_config(config: Mapping[str, Any], where: str = "auth") -> Auth:
    """An :class:`Auth` from a connection's ``auth:`` mapping (``type`` token|client_credentials|password|jwt)."""

    def need(key: str) -> str:
        value = config.get(key)
        if value in (None, ""):
            raise PipelineSpecError(f"{where}: type {kind} needs {key}")
        return str(value)

    kind = str(config.get("type", "token"))
    login_url = config.get("loginUrl")
    if kind == "token":
        return StaticToken(need("token"))
    if kind == "client_credentials":
        return ClientCredentials(need("clientId"), need("clientSecret"), login_url)
    if kind == "password":
        return UsernamePassword(need("clientId"), need("clientSecret"), need("username"), need("password"),
                                login_url)
    if kind == "jwt":
        key = config.get("privateKey")
        if not key and config.get("privateKeyFile"):
            key = Path(str(config["privateKeyFile"])).expanduser().read_text()
        if not key:
            raise PipelineSpecError(f"{where}: type jwt needs privateKey (${{ENV_VAR}}) or privateKeyFile")
        return JwtBearer(need("clientId"), need("username"), str(key), config.get("audience"), login_url)
    raise PipelineSpecError(f"{where}: type is token, client_credentials, password or jwt, not {kind!r}")


__all__ = [
    "SECRET_KEYS",
    "Auth",
    "ClientCredentials",
    "Credentials",
    "JwtBearer",
    "StaticToken",
    "UsernamePassword",
    "auth_from_config",
]
