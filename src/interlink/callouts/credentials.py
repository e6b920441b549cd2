"""Named credentials: where the org may call out to, and how it authenticates there.

::

    # metadata/namedCredentials/Billing.yaml
    label: Billing service
    url: https://billing.example.com/api      # every callout through this credential stays under this URL
    timeoutSeconds: 10                        # default 10, at most 120
    auth:
      protocol: basic                         # none | basic | header | bearer | oauth_client_credentials
      username: interlink
      password: ${BILLING_PASSWORD}           # secrets come from the environment, never from the file

OAuth 2.0 client credentials (``tokenUrl``, ``clientId``, ``clientSecret``, optional ``scope``) and the JWT bearer
grant (``tokenUrl``, ``issuer``, ``subject``, ``audience``, ``privateKey`` as a PEM secret, optional ``scope``; the
assertion is signed RS256 and lives 3 minutes) fetch an access token when one is needed, keep it until a minute
before it expires, and fetch a new one after a 401.

A callout names a credential and a path (``callout:Billing/orders``); it can reach nothing else, so a flow cannot
be turned into a way to call arbitrary hosts. Secrets are ``${ENVIRONMENT_VARIABLE}`` or ``${secret:NAME}`` (the
org's encrypted secret store, :mod:`interlink.security.secrets`), read when a callout is made. They are never
returned by an API or written to a log, and the attempt history keeps no request headers.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import logging
import os
import re
import ssl
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urljoin, urlsplit

from interlink.errors import ConfigurationError, MetadataError

log = logging.getLogger(__name__)

PROTOCOLS = ("none", "basic", "header", "bearer", "oauth_client_credentials", "oauth_jwt_bearer", "aws_sigv4")
DEFAULT_TIMEOUT, MAX_TIMEOUT = 10.0, 120.0
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_SECRET = re.compile(r"^\$\{(secret:|user:)?([A-Za-z_][A-Za-z0-9_]*)\}$")
PRINCIPAL_TYPES = ("NamedPrincipal", "PerUserPrincipal")


@dataclass(frozen=True)
class NamedCredential:
    name: str
    url: str
    label: str = ""
    timeout: float = DEFAULT_TIMEOUT
    protocol: str = "none"
    settings: Mapping[str, str] = field(default_factory=dict)
    secret_headers: tuple[str, ...] = ()
    # Reads a stored secret by name (``${secret:NAME}``); the org's encrypted secret store.
    secrets: Callable[[str], str | None] | None = field(default=None, compare=False, repr=False)
    # The principal (interlink.callouts.principals): NamedPrincipal, one identity for everyone, or
    # PerUserPrincipal, each running user's own ``${user:NAME}`` secrets, for users a permission set grants it to.
    principal_type: str = "NamedPrincipal"
    principal: str = "NamedPrincipal"
    granted_to: frozenset[str] = frozenset()  # lower-cased names of the permission sets granting the principal
    user_id: str | None = None  # the running user a per-user credential is bound to for one callout

    @property
    def per_user(self) -> bool:
        return self.principal_type == "PerUserPrincipal"

    @property
    def principal_id(self) -> str:
        """``<credential>-<principal>``: how permission sets name the principal (externalCredentialPrincipals)."""
        return f"{self.name}-{self.principal}"

    def endpoint(self, path: str) -> str:
        """The URL of ``path`` under this credential; a path that would leave it is refused (and logged)."""
        base = self.url.rstrip("/") + "/"
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", path) or path.startswith("//"):
            raise _refused(CalloutRefused(f"callout:{self.name} takes a path, not a URL ({path!r})"))
        target = urljoin(base, path.lstrip("/"))
        base_parts, target_parts = urlsplit(base), urlsplit(target)
        # A ".." the receiver would decode ("%2e%2e", "..%2f", "..\\") climbs out as surely as a plain one.
        segments = unquote(path.split("?", 1)[0]).replace("\\", "/").split("/")
        if (target_parts.scheme, target_parts.netloc) != (base_parts.scheme, base_parts.netloc) or \
                not target_parts.path.startswith(base_parts.path) or ".." in segments:
            raise _refused(CalloutRefused(f"{path!r} leaves the endpoint of callout:{self.name} ({self.url})"))
        return target

    def auth_headers(self, method: str = "GET", url: str = "", body: bytes | None = None,
                     headers: Mapping[str, str] | None = None) -> dict[str, str]:
        """Authentication headers for one request, with secrets read now (AWS SigV4 signs the request itself)."""
        if self.protocol == "aws_sigv4":
            return sigv4_headers(method, url, dict(headers or {}), body or b"", access_key=_secret(self, "accessKey"),
                                 secret_key=_secret(self, "secretKey"), region=self.settings["region"],
                                 service=self.settings["service"])
        if self.protocol == "basic":
            pair = f"{_secret(self, 'username')}:{_secret(self, 'password')}".encode()
            return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
        if self.protocol == "header":
            return {self.settings["header"]: _secret(self, "value")}
        if self.protocol == "bearer":
            return {"Authorization": f"Bearer {_secret(self, 'token')}"}
        if self.protocol in ("oauth_client_credentials", "oauth_jwt_bearer"):
            return {"Authorization": f"Bearer {_oauth_token(self)}"}
        return {}

    def tls(self) -> ssl.SSLContext | None:
        """The SSL context for mutual TLS or a private CA (``clientCertificate`` / ``clientKey`` secrets, ``caBundle``),
        or None for the system's default trust."""
        cert, key, bundle = (self.settings.get(k) for k in ("clientCertificate", "clientKey", "caBundle"))
        if not (cert or bundle):
            return None
        try:
            context = ssl.create_default_context(cafile=bundle) if bundle else ssl.create_default_context()
        except (OSError, ssl.SSLError) as exc:
            raise CalloutRefused(f"callout:{self.name}: cannot use caBundle {bundle}: {exc}") from None
        if cert and key:
            # load_cert_chain reads files: the PEMs live in a private directory only while they are loaded.
            with tempfile.TemporaryDirectory(prefix="interlink-mtls-") as folder:
                cert_path, key_path = Path(folder) / "cert.pem", Path(folder) / "key.pem"
                pems = ((cert_path, _secret(self, "clientCertificate")), (key_path, _secret(self, "clientKey")))
                for path, value in pems:
                    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                    with os.fdopen(descriptor, "w") as handle:
                        handle.write(value)
                try:
                    context.load_cert_chain(cert_path, key_path)
                except (OSError, ssl.SSLError) as exc:
                    raise CalloutRefused(f"callout:{self.name}: the client certificate or key is not usable: "
                                         f"{exc}") from None
        return context

    def forget_token(self) -> None:
        """Drop a cached OAuth token (the service answered 401: it was revoked or expired early)."""
        _tokens.pop(_token_key(self), None)


class CalloutRefused(ConfigurationError):
    """A callout the org may not make (unknown credential, a URL outside it, a missing secret)."""

    error_code = "CALLOUT_NOT_ALLOWED"


def _refused(error: CalloutRefused) -> CalloutRefused:
    log.warning("refused a callout: %s", error.message)
    return error


def sigv4_headers(method: str, url: str, headers: dict[str, str], body: bytes, *, access_key: str, secret_key: str,
                  region: str, service: str, now: datetime | None = None) -> dict[str, str]:
    """AWS Signature Version 4 for one request: ``Authorization``, ``X-Amz-Date`` and ``X-Amz-Content-Sha256``.

    Signs the method, path, sorted query, the ``host``, ``x-amz-*`` and given headers, and the payload's SHA-256.
    """
    moment = now or datetime.now(UTC)
    stamp, day = moment.strftime("%Y%m%dT%H%M%SZ"), moment.strftime("%Y%m%d")
    parts = urlsplit(url)
    payload_hash = hashlib.sha256(body).hexdigest()
    signed = {k.lower(): " ".join(str(v).split()) for k, v in headers.items()}
    signed.update({"host": parts.netloc, "x-amz-date": stamp})
    if service == "s3":
        signed["x-amz-content-sha256"] = payload_hash
    names = sorted(signed)
    query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
                     for k, v in sorted(parse_qsl(parts.query, keep_blank_values=True)))
    canonical = "\n".join([method.upper(), quote(parts.path or "/", safe="/-_.~"), query,
                           "".join(f"{name}:{signed[name]}\n" for name in names), ";".join(names), payload_hash])
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = f"AWS4{secret_key}".encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    answer = {"X-Amz-Date": stamp, "Authorization": f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
                                                    f"SignedHeaders={';'.join(names)}, Signature={signature}"}
    if service == "s3":
        answer["X-Amz-Content-Sha256"] = payload_hash
    return answer


_tokens: dict[tuple[str, str, str], tuple[str, float]] = {}  # (credential, token URL, user) -> (token, expiry)


def _token_key(credential: NamedCredential) -> tuple[str, str, str]:
    # A per-user principal's tokens are each user's own.
    return credential.name.lower(), credential.settings.get("tokenUrl", ""), credential.user_id or ""


def _oauth_token(credential: NamedCredential) -> str:
    """A client-credentials access token for ``credential`` (cached until a minute before it expires)."""
    import time

    import httpx

    cached = _tokens.get(_token_key(credential))
    if cached is not None and cached[1] > time.monotonic():
        return cached[0]
    auth: tuple[str, str] | None = None
    if credential.protocol == "oauth_jwt_bearer":
        form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": _assertion(credential)}
    else:
        form = {"grant_type": "client_credentials"}
        auth = (_secret(credential, "clientId"), _secret(credential, "clientSecret"))
    if credential.settings.get("scope"):
        form["scope"] = credential.settings["scope"]
    try:
        response = httpx.post(credential.settings["tokenUrl"], data=form, timeout=credential.timeout, auth=auth)
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise CalloutRefused(f"callout:{credential.name}: the token endpoint failed: {exc}") from None
    token = body.get("access_token") if isinstance(body, dict) else None
    if response.status_code != 200 or not isinstance(token, str):
        detail = body.get("error_description") or body.get("error") if isinstance(body, dict) else response.text
        raise CalloutRefused(f"callout:{credential.name}: no access token (HTTP {response.status_code}: {detail})")
    lifetime = float(body.get("expires_in") or 3600)
    _tokens[_token_key(credential)] = (token, time.monotonic() + max(lifetime - 60, 0))
    return token


def _assertion(credential: NamedCredential) -> str:
    """The signed JWT of the JWT bearer grant (RS256, three minutes)."""
    import time

    import jwt

    now = int(time.time())
    claims = {"iss": credential.settings["issuer"], "sub": credential.settings["subject"],
              "aud": credential.settings["audience"], "iat": now, "exp": now + 180}
    try:
        return jwt.encode(claims, _secret(credential, "privateKey"), algorithm="RS256")
    except (ValueError, TypeError, jwt.PyJWTError) as exc:
        raise CalloutRefused(f"callout:{credential.name}: the private key cannot sign: {exc}") from None


def _secret(credential: NamedCredential, key: str) -> str:
    raw = credential.settings.get(key, "")
    match = _SECRET.match(raw)
    if match is None:
        return raw
    if match.group(1) == "user:":  # ${user:NAME}: the running user's own secret (a per-user principal)
        from interlink.callouts.principals import user_secret_name

        if not credential.user_id:
            raise _refused(CalloutRefused(f"callout:{credential.name} uses the per-user principal "
                                          f"{credential.principal_id}: a callout through it needs a running user"))
        value = credential.secrets(user_secret_name(match.group(2), credential.user_id)) \
            if credential.secrets is not None else None
        if value is None:
            raise _refused(CalloutRefused(
                f"callout:{credential.name}: user {credential.user_id} has no credential for the principal "
                f"{credential.principal_id} (its {key}): set it with `interlink secrets set {match.group(2)} "
                "--user USERNAME`"))
        return value
    if match.group(1):  # ${secret:NAME}: the org's encrypted secret store
        value = credential.secrets(match.group(2)) if credential.secrets is not None else None
        if value is None:
            raise CalloutRefused(f"callout:{credential.name} needs the secret {match.group(2)} (its {key}): set it "
                                 f"with `interlink secrets set {match.group(2)}`")
        return value
    value = os.environ.get(match.group(2))
    if value is None:
        raise CalloutRefused(f"callout:{credential.name} needs the environment variable {match.group(2)} "
                             f"(its {key})")
    return value


def load_credentials(project_dir: Path,
                     secrets: Callable[[str], str | None] | None = None) -> dict[str, NamedCredential]:
    """Read ``metadata/namedCredentials/*.yaml``; errors name the file and the key."""
    from interlink.callouts.principals import load_principal_access
    from interlink.metadata.loader import read_yaml_files

    found: dict[str, NamedCredential] = {}
    for path, data in read_yaml_files(project_dir / "metadata" / "namedCredentials"):
        credential = dataclasses.replace(_credential(str(path), path.stem, data), secrets=secrets)
        found[credential.name.lower()] = credential
    return load_principal_access(project_dir, found)


def _credential(source: str, stem: str, data: Any) -> NamedCredential:
    if not isinstance(data, dict):
        raise MetadataError(f"{source}: a named credential holds a mapping (url, auth, ...)")
    unknown = set(data) - {"label", "url", "timeoutSeconds", "auth", "name", "tls", "principal"}
    if unknown:
        raise MetadataError(f"{source}: unknown key(s) {', '.join(sorted(unknown))}")
    name = str(data.get("name") or stem)
    if not _NAME.match(name):
        raise MetadataError(f"{source}: {name!r} is not a valid credential name")
    url = data.get("url")
    parts = urlsplit(str(url or ""))
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise MetadataError(f"{source}: url: an http(s) URL such as https://billing.example.com/api")
    timeout = data.get("timeoutSeconds", DEFAULT_TIMEOUT)
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not 0 < timeout <= MAX_TIMEOUT:
        raise MetadataError(f"{source}: timeoutSeconds: between 1 and {int(MAX_TIMEOUT)} seconds")
    auth = data.get("auth") or {"protocol": "none"}
    if not isinstance(auth, dict) or auth.get("protocol", "none") not in PROTOCOLS:
        raise MetadataError(f"{source}: auth: protocol is one of {', '.join(PROTOCOLS)}")
    protocol = auth.get("protocol", "none")
    needed = {"none": set(), "basic": {"username", "password"}, "header": {"header", "value"},
              "bearer": {"token"}, "oauth_client_credentials": {"tokenUrl", "clientId", "clientSecret"},
              "oauth_jwt_bearer": {"tokenUrl", "issuer", "subject", "audience", "privateKey"},
              "aws_sigv4": {"accessKey", "secretKey", "region", "service"}}[protocol]
    optional = {"scope"} if protocol.startswith("oauth_") else set()
    settings = {k: str(v) for k, v in auth.items() if k != "protocol"}
    missing = needed - set(settings)
    if missing or set(settings) - needed - optional:
        takes = ", ".join(sorted(needed | optional)) or "nothing"
        raise MetadataError(f"{source}: auth: protocol {protocol} takes {takes}")
    if protocol.startswith("oauth_") and urlsplit(settings["tokenUrl"]).scheme not in ("https", "http"):
        raise MetadataError(f"{source}: auth.tokenUrl: an http(s) URL")
    for key in ("password", "value", "token", "clientSecret", "privateKey", "secretKey"):
        if key in settings and not _SECRET.match(settings[key]):
            raise MetadataError(f"{source}: auth.{key}: give secrets as ${{ENVIRONMENT_VARIABLE}}, ${{secret:NAME}} "
                                "or ${user:NAME}, never in the file")
    tls = data.get("tls") or {}
    if not isinstance(tls, dict) or set(tls) - {"clientCertificate", "clientKey", "caBundle"} or \
            bool(tls.get("clientCertificate")) != bool(tls.get("clientKey")):
        raise MetadataError(f"{source}: tls: clientCertificate and clientKey (secrets, together) and/or caBundle")
    for key in ("clientCertificate", "clientKey"):
        if key in tls and not _SECRET.match(str(tls[key])):
            raise MetadataError(f"{source}: tls.{key}: give it as ${{secret:NAME}} or ${{ENVIRONMENT_VARIABLE}}")
    settings.update({k: str(v) for k, v in tls.items()})
    principal_type, principal = _principal(source, data.get("principal"), settings)
    secret_headers = ("Authorization",) if protocol in ("basic", "bearer", "oauth_client_credentials",
                                                        "oauth_jwt_bearer", "aws_sigv4") else \
        (settings["header"],) if protocol == "header" else ()
    return NamedCredential(name, str(url), str(data.get("label") or name), float(timeout), protocol, settings,
                           secret_headers, principal_type=principal_type, principal=principal)


def _principal(source: str, raw: Any, settings: Mapping[str, str]) -> tuple[str, str]:
    """``principal: {type: PerUserPrincipal, name: PerUser}`` (the default: a named principal)."""
    raw = raw if raw is not None else {"type": "NamedPrincipal"}
    if not isinstance(raw, dict) or set(raw) - {"type", "name"} or raw.get("type") not in PRINCIPAL_TYPES:
        raise MetadataError(f"{source}: principal: {{type: NamedPrincipal | PerUserPrincipal, name: NAME}}")
    kind = str(raw["type"])
    name = str(raw.get("name") or ("PerUser" if kind == "PerUserPrincipal" else "NamedPrincipal"))
    if not re.match(r"^[A-Za-z][A-Za-z0-9_]*$", name):
        raise MetadataError(f"{source}: principal.name: letters, digits and _ (not {name!r})")
    per_user = [key for key, value in settings.items() if (m := _SECRET.match(value)) and m.group(1) == "user:"]
    if kind == "PerUserPrincipal" and not per_user:
        raise MetadataError(f"{source}: principal: a per-user principal takes each user's own secrets: give them as "
                            "${user:NAME} in auth (or tls)")
    if kind != "PerUserPrincipal" and per_user:
        raise MetadataError(f"{source}: auth.{per_user[0]}: ${{user:NAME}} is a user's own secret: it needs "
                            "principal: {type: PerUserPrincipal}")
    return kind, name


__all__ = ["DEFAULT_TIMEOUT", "MAX_TIMEOUT", "PROTOCOLS", "CalloutRefused", "NamedCredential", "load_credentials"]
