"""The HTTP client every external data source adapter shares: one pooled connection per source, under one base URL.

A :class:`SourceHttp` is built from a :class:`~interlink.connect.base.DataSource` and, when the source names one, a
:class:`~interlink.callouts.credentials.NamedCredential`. The base URL is then::

    named credential   source url                                  base
    none               https://erp.example.com/odata               https://erp.example.com/odata/
    ERP                "" or "callout:ERP"                         the credential's URL
    ERP                "callout:ERP/odata/v4", "odata/v4"          that path under the credential's URL (unless
                                                                   the credential's URL already ends with it)
    ERP                an absolute URL under the credential's URL  that URL

Every request stays under the base URL: relative paths are joined to it, and absolute URLs (an ``@odata.nextLink``
from the server) are accepted only with the same scheme, host, port and path prefix, so a malicious answer cannot
turn the org into a proxy for other hosts. Answers are read as a stream and refused past ``max_response_bytes``
(8 MB, the platform's limit for OData callouts). Failures are :class:`~interlink.errors.ExternalObjectError` whose
message names the source.
"""

from __future__ import annotations

import logging
import re
import ssl
from collections.abc import Mapping
from urllib.parse import quote, unquote

import httpx

from interlink.callouts.credentials import CalloutRefused, NamedCredential
from interlink.connect.base import DataSource
from interlink.errors import ConfigurationError, ExternalObjectError

log = logging.getLogger(__name__)

MAX_TIMEOUT = 120.0
MAX_RESPONSE_BYTES = 8 * 1024 * 1024
# Characters left as they are in a query option's value: OData reads "$", "'", "(", ")", ",", ":" and "/" literally,
# and a space must be %20 (a "+" in an OData URL is a plus sign, not a space).
_QUERY_SAFE = "$'(),:/@!*"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_ABSOLUTE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")

Headers = Mapping[str, str]


def encode_query(params: Mapping[str, str | int]) -> str:
    """``params`` as a query string the way OData expects it: ``$`` kept in option names, spaces as ``%20``."""
    return "&".join(f"{quote(str(name), safe='$')}={quote(str(value), safe=_QUERY_SAFE)}"
                    for name, value in params.items())


class SourceHttp:
    """A keep-alive HTTP client for one external data source (thread-safe: adapters share it across queries)."""

    def __init__(self, source: DataSource, credential: NamedCredential | None = None, *,
                 transport: httpx.BaseTransport | None = None, max_response_bytes: int = MAX_RESPONSE_BYTES) -> None:
        self.source = source
        self.credential = credential
        self.max_response_bytes = max_response_bytes
        self.timeout = min(float(source.timeout or MAX_TIMEOUT), MAX_TIMEOUT)
        self.base_url = _base_url(source, credential)
        self._base = httpx.URL(self.base_url)
        verify: ssl.SSLContext | bool = True if transport is not None else _tls(source, credential)
        self._client = httpx.Client(timeout=self.timeout, transport=transport, verify=verify, follow_redirects=False,
                                    limits=httpx.Limits(max_connections=20, max_keepalive_connections=10))

    # -- URLs ---------------------------------------------------------------------------------------------------

    def resolve(self, path_or_url: str, params: Mapping[str, str | int] | None = None) -> str:
        """The absolute URL of ``path_or_url`` (relative to the base URL) with ``params`` appended; a URL that
        leaves the base URL is an :class:`ExternalObjectError`."""
        if _ABSOLUTE.match(path_or_url) or path_or_url.startswith("//"):
            url = path_or_url
        else:
            url = str(self._base.join(path_or_url.lstrip("/")))
        try:
            target: httpx.URL | None = httpx.URL(url)
        except httpx.InvalidURL:
            target = None
        if target is None or not target.is_absolute_url or not _under(self._base, target):
            refused = ExternalObjectError(f"{self.source.name}: refused to call {path_or_url[:300]}: it is not under "
                                          f"the data source's URL {self.base_url}")
            log.warning("%s", refused.message)
            raise refused
        if params:
            url += ("&" if target.query else "?") + encode_query(params)
        return url

    # -- requests -----------------------------------------------------------------------------------------------

    def get(self, path_or_url: str, params: Mapping[str, str | int] | None = None,
            headers: Headers | None = None) -> tuple[int, Headers, bytes]:
        """GET ``path_or_url``; answers (status, headers, body)."""
        return self.request("GET", path_or_url, params=params, headers=headers)

    def post(self, path_or_url: str, body: bytes | None = None, params: Mapping[str, str | int] | None = None,
             headers: Headers | None = None) -> tuple[int, Headers, bytes]:
        """POST ``body`` to ``path_or_url``."""
        return self.request("POST", path_or_url, body=body, params=params, headers=headers)

    def patch(self, path_or_url: str, body: bytes | None = None, params: Mapping[str, str | int] | None = None,
              headers: Headers | None = None) -> tuple[int, Headers, bytes]:
        """PATCH ``path_or_url`` with ``body``."""
        return self.request("PATCH", path_or_url, body=body, params=params, headers=headers)

    def delete(self, path_or_url: str, params: Mapping[str, str | int] | None = None,
               headers: Headers | None = None) -> tuple[int, Headers, bytes]:
        """DELETE ``path_or_url``."""
        return self.request("DELETE", path_or_url, params=params, headers=headers)

    def request(self, method: str, path_or_url: str, *, body: bytes | None = None,
                params: Mapping[str, str | int] | None = None,
                headers: Headers | None = None) -> tuple[int, Headers, bytes]:
        """One request under the base URL, authenticated through the named credential; a 401 drops a cached token
        and tries once more."""
        url = self.resolve(path_or_url, params)
        status, answer_headers, content = self._send(method, url, body, headers)
        if status == 401 and self.credential is not None and self.credential.protocol != "none":
            self.credential.forget_token()
            status, answer_headers, content = self._send(method, url, body, headers)
        return status, answer_headers, content

    def _send(self, method: str, url: str, body: bytes | None, headers: Headers | None) -> tuple[int, Headers, bytes]:
        sent = dict(headers or {})
        if self.credential is not None:
            try:
                sent.update(self.credential.auth_headers(method, url, body, sent))
            except CalloutRefused as exc:
                raise ExternalObjectError(f"{self.source.name}: {exc.message}") from None
        try:
            with self._client.stream(method, url, content=body, headers=sent) as response:
                declared = response.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > self.max_response_bytes:
                    raise self._too_large(url)
                chunks, size = [], 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > self.max_response_bytes:
                        raise self._too_large(url)
                    chunks.append(chunk)
                return response.status_code, response.headers, b"".join(chunks)
        except httpx.TimeoutException:
            raise ExternalObjectError(f"{self.source.name}: no answer within {self.timeout:g} s from {url} "
                                      "(the data source's timeout)") from None
        except httpx.HTTPError as exc:
            raise ExternalObjectError(f"{self.source.name}: cannot reach {url}: {type(exc).__name__}: "
                                      f"{exc or 'connection failed'}") from None

    def _too_large(self, url: str) -> ExternalObjectError:
        limit = self.max_response_bytes
        size = f"{limit // (1024 * 1024)} MB" if limit % (1024 * 1024) == 0 else f"{limit} bytes"
        return ExternalObjectError(f"{self.source.name}: the response from {url} exceeds {size}")

    def close(self) -> None:
        """Close the pooled connections."""
        self._client.close()


def _port(url: httpx.URL) -> int | None:
    return url.port or _DEFAULT_PORTS.get(url.scheme.lower())


def _base_url(source: DataSource, credential: NamedCredential | None) -> str:
    """The source's base URL, always ending with "/" so that relative paths join under it."""
    url = (source.url or "").strip()
    if credential is None:
        parsed = httpx.URL(url) if "://" in url else None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
            raise ConfigurationError(f"{source.name}: url: an http(s) URL such as https://erp.example.com/odata/ "
                                     f"(or a named credential), not {url!r}")
        return url.rstrip("/") + "/"
    if url.lower().startswith("callout:"):
        url = url.split("/", 1)[1] if "/" in url else ""
    path = url.strip("/")
    try:
        if "://" in url:  # an absolute source URL must lie under the credential's
            base = url if _under(httpx.URL(credential.url.rstrip("/") + "/"), httpx.URL(url)) else \
                credential.endpoint(url)
        elif not path or credential.url.rstrip("/").endswith("/" + path):
            base = credential.url  # the credential already points at the source (connect.sources does that)
        else:
            base = credential.endpoint(path)
    except CalloutRefused as exc:
        raise ConfigurationError(f"{source.name}: {exc.message}") from None
    return base.rstrip("/") + "/"


def _under(base: httpx.URL, target: httpx.URL) -> bool:
    """Whether ``target`` has the scheme, host and port of ``base`` and a path under base's path."""
    if target.scheme.lower() != base.scheme.lower() or target.host.lower() != base.host.lower() or \
            _port(target) != _port(base) or target.userinfo:
        return False
    # httpx has already removed dot segments; an encoded one ("%2e%2e", "..%2F") is refused outright.
    if any(segment in ("..", ".") for segment in unquote(target.raw_path.split(b"?")[0].decode()).split("/")):
        return False
    prefix = base.path if base.path.endswith("/") else base.path + "/"
    return target.path.startswith(prefix) or target.path == prefix.rstrip("/")


def _tls(source: DataSource, credential: NamedCredential | None) -> ssl.SSLContext | bool:
    """The credential's TLS context (mutual TLS, private CA), with the source's ``caBundle`` option trusted too."""
    bundle = source.options.get("caBundle")
    try:
        context = credential.tls() if credential is not None else None
    except CalloutRefused as exc:
        raise ConfigurationError(f"{source.name}: {exc.message}") from None
    if not bundle:
        return context if context is not None else True
    try:
        if context is None:
            return ssl.create_default_context(cafile=str(bundle))
        context.load_verify_locations(cafile=str(bundle))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"{source.name}: cannot use caBundle {bundle}: {exc}") from None
    return context


__all__ = ["MAX_RESPONSE_BYTES", "MAX_TIMEOUT", "SourceHttp", "encode_query"]
