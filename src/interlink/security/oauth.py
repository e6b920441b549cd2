"""OAuth 2.0 grants as the platform's token endpoint answers them.

Grants: ``password``, ``client_credentials`` (the app's run-as user), ``refresh_token``,
``authorization_code`` (web-server flow, optional PKCE) and the JWT bearer assertion
(``urn:ietf:params:oauth:grant-type:jwt-bearer``, RS256, verified with the app's certificate).
Errors are RFC 6749 ``{"error", "error_description"}`` bodies with HTTP 400 (401 for bad clients).
Every grant that logs a user in passes the org's :class:`~interlink.security.logins.LoginPolicy` (lockout,
login history); an app with refresh-token rotation gets a new refresh token with each refresh.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select, update

from interlink.errors import InvalidSession, OAuthError
from interlink.security.apps import ConnectedApp, Directory, UserRecord
from interlink.security.logins import (
    LOGIN_TYPE_OAUTH,
    RESTRICTIONS,
    STATUS_RESTRICTED_TIME,
    LoginAttempt,
    LoginPolicy,
    LoginRefused,
)
from interlink.security.tokens import TokenService, token_hash
from interlink.store.database import Store, utcnow

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_LOGIN_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")
_CODE_TTL = timedelta(minutes=15)
_JWT_SKEW_SECONDS = 300
# The platform's answer to a login outside the profile's login IP ranges or login hours (one text for both).
RESTRICTED_DESCRIPTION = "ip restricted or invalid login hours"


class OAuthService:
    def __init__(self, store: Store, directory: Directory, tokens: TokenService, org_id: str, *,
                 logins: LoginPolicy | None = None) -> None:
        self._store = store
        self.directory = directory
        self.tokens = tokens
        self.org_id = org_id
        # The login gate of every surface (OAuth, SOAP login, the console) lives here, next to the tokens.
        self.logins = logins or LoginPolicy(store, directory)
        # Sessions obey the profile's login hours (and, when enforced on every request, its IP ranges) too.
        self.tokens.session_policy = self._session_verdict
        # Connected-app access: a user's profile name and permission set names (the org wires its AccessService
        # in), whether they may use any API client, and the org's API Access Control setting.
        self.user_grants: Callable[[str], tuple[str, frozenset[str]]] = lambda _user_id: ("", frozenset())
        self.may_use_any_client: Callable[[str], bool] = lambda _user_id: True
        self.admin_approved_apps_only = False

    def check_app_access(self, user_id: str, app: ConnectedApp) -> None:
        """OAuthError unless the user may use ``app``: an app whose Permitted Users are "Admin approved users are
        pre-authorized" admits the users of the profiles and permission sets it names; with API Access Control on
        (``admin_approved_apps_only``), other apps admit only users with Use Any API Client."""
        if app.admin_approved_only:
            profile, sets = self.user_grants(user_id)
            if profile not in app.profiles and not sets & set(app.permission_sets):
                raise OAuthError("invalid_app_access", "user is not admin approved to access this app")
        elif self.admin_approved_apps_only and not self.may_use_any_client(user_id):
            raise OAuthError("invalid_client", "app must be installed into org")

    def _session_verdict(self, user_id: str, source_ip: str | None) -> str | None:
        status = self.logins.session_refusal(user_id, source_ip)
        if status is None:
            return None
        return "end" if status == STATUS_RESTRICTED_TIME else "refuse"

    @staticmethod
    def attempt(app: ConnectedApp, source_ip: str | None, instance_url: str, *,
                uses_password: bool = True) -> LoginAttempt:
        """An OAuth login through ``app`` (LoginHistory: Remote Access 2.0, the app's name)."""
        return LoginAttempt(LOGIN_TYPE_OAUTH, app.name, source_ip, instance_url, uses_password=uses_password)

    # -- the token endpoint ------------------------------------------------------------------------------------

    def token(self, form: Mapping[str, str], basic: tuple[str, str] | None, instance_url: str, *,
              source_ip: str | None = None) -> dict[str, Any]:
        """Answer a POST to ``/services/oauth2/token`` (form fields + optional Basic client auth)."""
        grant = form.get("grant_type")
        if not grant:
            raise OAuthError("invalid_request", "grant type is missing")
        client_id = form.get("client_id") or (basic[0] if basic else None)
        client_secret = form.get("client_secret") or (basic[1] if basic else None)
        if grant == "password":
            app = self._client(client_id, client_secret, secret_required=True)
            user = self._user_by_password(form.get("username", ""), form.get("password", ""),
                                          self.attempt(app, source_ip, instance_url))
            self.check_app_access(user.id, app)
            return self.token_response(user, app, instance_url)
        if grant == "client_credentials":
            app = self._client(client_id, client_secret, secret_required=True)
            if not app.run_as_user_id:
                raise OAuthError("invalid_grant", "no client credentials user enabled")
            user = self.directory.user_by_id(app.run_as_user_id)
            if user is None:
                raise OAuthError("invalid_grant", "no client credentials user enabled")
            self._admit(user, self.attempt(app, source_ip, instance_url, uses_password=False),
                        "no client credentials user enabled")
            self.check_app_access(user.id, app)
            return self.token_response(user, app, instance_url)
        if grant == "refresh_token":
            return self._refresh(form.get("refresh_token", ""),
                                 self._client(client_id, client_secret, secret_required=False), instance_url,
                                 source_ip)
        if grant == "authorization_code":
            app = self._client(client_id, client_secret, secret_required=not form.get("code_verifier"))
            user = self._redeem_code(app, form.get("code", ""), form.get("redirect_uri", ""),
                                     form.get("code_verifier"))
            # The user logged in at the authorize page (and was checked there); the code's redeemer is the app's
            # server, so only the login hours are checked again here, not its address.
            if not self.logins.restrictions(user.id).hours_allow(self.logins.org_now()):
                raise OAuthError("invalid_grant", RESTRICTED_DESCRIPTION)
            self.check_app_access(user.id, app)
            refresh, _ = self.tokens.mint(user.id, app_id=app.id, kind="refresh", scope="api refresh_token")
            response = self.token_response(user, app, instance_url, parent=refresh)
            response["refresh_token"] = refresh
            response["scope"] = "refresh_token api"
            return response
        if grant == JWT_BEARER:
            user, app = self._jwt_user(form.get("assertion", ""), instance_url)
            self._admit(user, self.attempt(app, source_ip, instance_url, uses_password=False),
                        "user hasn't approved this consumer")
            self.check_app_access(user.id, app)
            response = self.token_response(user, app, instance_url)
            for key in ("signature", "issued_at"):
                response.pop(key, None)
            return response
        raise OAuthError("unsupported_grant_type", "grant type not supported")

    def token_response(self, user: UserRecord, app: ConnectedApp | None, instance_url: str, *,
                       parent: str | None = None) -> dict[str, Any]:
        access, _issued = self.tokens.mint(user.id, app_id=app.id if app else None, parent=parent)
        identity = f"{instance_url}/id/{self.org_id}/{user.id}"
        issued_at = str(int(time.time() * 1000))
        secret = app.consumer_secret if app else self.org_id
        signature = base64.b64encode(
            hmac.new(secret.encode(), (identity + issued_at).encode(), hashlib.sha256).digest()).decode()
        return {
            "access_token": access,
            "instance_url": instance_url,
            "id": identity,
            "token_type": "Bearer",
            "issued_at": issued_at,
            "signature": signature,
            "scope": "api",
        }

    # -- clients and users -------------------------------------------------------------------------------------

    def _client(self, client_id: str | None, secret: str | None, *, secret_required: bool) -> ConnectedApp:
        if not client_id:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        app = self.directory.app_by_key(client_id)
        if app is None:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        if (secret_required or secret) and not app.secret_matches(secret):
            raise OAuthError("invalid_client", "invalid client credentials")
        return app

    def _user_by_password(self, username: str, password: str, attempt: LoginAttempt) -> UserRecord:
        try:
            return self.logins.password_login(username, password, attempt)
        except LoginRefused as refused:
            if refused.status in RESTRICTIONS:
                raise OAuthError("invalid_grant", RESTRICTED_DESCRIPTION) from None
            # Wrong password, locked out, inactive: the platform answers them all alike.
            raise OAuthError("invalid_grant", "authentication failure") from None

    def _admit(self, user: UserRecord, attempt: LoginAttempt, description: str) -> None:
        """The login policy's check for a user a grant identified without a password."""
        try:
            self.logins.check(user, attempt)
        except LoginRefused as refused:
            if refused.status in RESTRICTIONS:
                raise OAuthError("invalid_grant", RESTRICTED_DESCRIPTION) from None
            raise OAuthError("invalid_grant", description) from None

    def _refresh(self, refresh: str, app: ConnectedApp, instance_url: str,
                 source_ip: str | None = None) -> dict[str, Any]:
        """The refresh_token grant: a new access token, and with rotation on a new refresh token too.

        The profile's login IP ranges and login hours apply to the refreshing client, as the platform's connected
        apps enforce them by default ("Enforce IP restrictions"); a refusal leaves the refresh token usable later.
        """
        expired = OAuthError("invalid_grant", "expired access/refresh token")
        try:
            user_id, app_id = self.tokens.refresh_owner(refresh)
        except InvalidSession:
            # A replaced (rotated) token presented again: revoke everything issued in its family.
            self.tokens.reject_reused(refresh)
            raise expired from None
        user = self.directory.user_by_id(user_id)
        if app_id != app.id or user is None or not user.is_active:
            raise expired
        self.check_app_access(user.id, app)  # access taken away since: no new access token
        restrictions = self.logins.restrictions(user.id)
        if not restrictions.ip_allowed(source_ip) or not restrictions.hours_allow(self.logins.org_now()):
            # Recorded like any refused login, with the policy's status.
            self._admit(user, self.attempt(app, source_ip, instance_url, uses_password=False), "")
        if not app.rotate_refresh_tokens:
            return self.token_response(user, app, instance_url, parent=refresh)
        try:
            replacement = self.tokens.rotate(refresh)
        except InvalidSession:
            raise expired from None
        response = self.token_response(user, app, instance_url, parent=replacement)
        response["refresh_token"] = replacement
        return response

    # -- web-server flow ---------------------------------------------------------------------------------------

    def issue_code(self, app: ConnectedApp, user: UserRecord, redirect_uri: str,
                   code_challenge: str | None) -> str:
        code = secrets.token_urlsafe(48)
        table = self._store.system["il_auth_code"]
        with self._store.write() as conn:
            conn.execute(table.insert().values(code_hash=token_hash(code), user_id=user.id, app_id=app.id,
                                               redirect_uri=redirect_uri, code_challenge=code_challenge,
                                               expires_at=utcnow() + _CODE_TTL, used=False))
        return code

    def check_redirect(self, app: ConnectedApp, redirect_uri: str) -> None:
        allowed = [u.strip() for u in (app.callback_url or "").split(",") if u.strip()]
        if redirect_uri not in allowed:
            raise OAuthError("redirect_uri_mismatch", "redirect_uri must match configuration")

    def _redeem_code(self, app: ConnectedApp, code: str, redirect_uri: str, verifier: str | None) -> UserRecord:
        table = self._store.system["il_auth_code"]
        with self._store.write() as conn:
            row = conn.execute(select(table).where(table.c.code_hash == token_hash(code))).first()
            if row is None or row.used or row.expires_at < utcnow() or row.app_id != app.id:
                raise OAuthError("invalid_grant", "invalid authorization code")
            conn.execute(update(table).where(table.c.code_hash == row.code_hash).values(used=True))
        if row.redirect_uri != redirect_uri:
            raise OAuthError("invalid_grant", "redirect_uri must match configuration")
        if row.code_challenge:
            if not verifier:
                raise OAuthError("invalid_grant", "invalid code verifier")
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if not hmac.compare_digest(digest, row.code_challenge):
                raise OAuthError("invalid_grant", "invalid code verifier")
        user = self.directory.user_by_id(row.user_id)
        if user is None or not user.is_active:
            raise OAuthError("invalid_grant", "inactive user")
        return user

    # -- JWT bearer --------------------------------------------------------------------------------------------

    def _jwt_user(self, assertion: str, instance_url: str) -> tuple[UserRecord, ConnectedApp]:
        if not assertion:
            raise OAuthError("invalid_request", "assertion is missing")
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise OAuthError("invalid_grant", "invalid assertion") from None
        app = self.directory.app_by_key(str(unverified.get("iss", "")))
        if app is None:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        if not app.certificate_pem:
            raise OAuthError("invalid_client", "invalid client credentials: the app has no certificate")
        key = _public_key(app.certificate_pem)
        audiences = [*_LOGIN_AUDIENCES, instance_url, instance_url.rstrip("/")]
        try:
            claims = jwt.decode(assertion, key=key, algorithms=["RS256"], audience=audiences,
                                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False})
        except jwt.InvalidAudienceError:
            raise OAuthError("invalid_grant", "audience is invalid") from None
        except jwt.PyJWTError:
            raise OAuthError("invalid_grant", "invalid assertion signature") from None
        try:
            expires = float(claims.get("exp"))  # the platform's clients send exp as a string
        except (TypeError, ValueError):
            raise OAuthError("invalid_grant", "expiration is invalid") from None
        if expires + _JWT_SKEW_SECONDS < time.time():
            raise OAuthError("invalid_grant", "expired authorization code")
        user = self.directory.user_by_username(str(claims.get("sub", "")))
        if user is None:
            raise OAuthError("invalid_grant", "user hasn't approved this consumer")
        return user, app

    # -- identity ----------------------------------------------------------------------------------------------

    def identity(self, user: UserRecord, instance_url: str, api_version: str) -> dict[str, Any]:
        """The identity document served at ``/id/{orgId}/{userId}`` and (in OIDC form) userinfo."""
        base = f"{instance_url}/services/data/v{api_version}"
        fields = user.fields
        return {
            "id": f"{instance_url}/id/{self.org_id}/{user.id}",
            "asserted_user": True,
            "user_id": user.id,
            "organization_id": self.org_id,
            "username": user.username,
            "nick_name": fields.get("CommunityNickname") or user.username.split("@")[0],
            "display_name": user.name,
            "email": user.email,
            "email_verified": True,
            "first_name": fields.get("FirstName"),
            "last_name": fields.get("LastName"),
            "timezone": fields.get("TimeZoneSidKey"),
            "active": user.is_active,
            "user_type": fields.get("UserType") or "STANDARD",
            "language": fields.get("LanguageLocaleKey"),
            "locale": fields.get("LocaleSidKey"),
            "utcOffset": 0,
            "is_app_installed": True,
            "urls": {
                "enterprise": f"{instance_url}/services/Soap/c/{api_version}/{self.org_id}",
                "partner": f"{instance_url}/services/Soap/u/{api_version}/{self.org_id}",
                "rest": f"{base}/",
                "sobjects": f"{base}/sobjects/",
                "search": f"{base}/search/",
                "query": f"{base}/query/",
                "recent": f"{base}/recent/",
                "profile": f"{instance_url}/{user.id}",
                "limits": f"{base}/limits/",
                "custom_domain": instance_url,
            },
        }

    def userinfo(self, user: UserRecord, instance_url: str, api_version: str) -> dict[str, Any]:
        doc = self.identity(user, instance_url, api_version)
        return {
            "sub": doc["id"],
            "user_id": user.id,
            "organization_id": self.org_id,
            "preferred_username": user.username,
            "nickname": doc["nick_name"],
            "name": user.name,
            "email": user.email,
            "email_verified": True,
            "given_name": doc["first_name"],
            "family_name": doc["last_name"],
            "zoneinfo": doc["timezone"],
            "locale": doc["locale"],
            "language": doc["language"],
            "active": user.is_active,
            "user_type": doc["user_type"],
            "utcOffset": 0,
            "urls": doc["urls"],
        }


def _public_key(pem: str) -> Any:
    data = pem.encode()
    if b"BEGIN CERTIFICATE" in data:
        return x509.load_pem_x509_certificate(data).public_key()
    return serialization.load_pem_public_key(data)
