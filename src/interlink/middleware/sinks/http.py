"""The HTTP sink: each message body sent as JSON to a URL template with POST, PUT or PATCH.

The URL may hold ``{field}`` placeholders (``{Account.Id}`` for a nested field), filled from the message body and
URL-encoded (``/`` included), so a body value cannot change the path. Header values may hold ``${ENV}``
references, expanded once when the sink is built; ``idempotencyHeader`` (e.g. ``Idempotency-Key``) carries the
message id, so a receiver that honours it ignores the redelivery of a message it already processed.

Delivery classification:

========================================  ==========================================
2xx                                        ok (``detail``: status, ``Location``)
408, 429, 5xx                              retryable (a ``Retry-After`` is quoted)
connection errors, timeouts                retryable
other 4xx, 3xx (redirects are not followed) permanent
a placeholder missing from the body       permanent
========================================  ==========================================
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from interlink.middleware.base import Delivery, Message, PipelineSpecError, Sink
from interlink.middleware.sources import duration, expand_env, require, with_connection

_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
METHODS = ("POST", "PUT", "PATCH")
RETRYABLE_STATUSES = frozenset({408, 429})


def field_value(body: Mapping[str, Any], path: str) -> Any:
    """``body[a][b]`` for ``a.b``; KeyError when a part is missing."""
    value: Any = body
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise KeyError(path)
        value = value[part]
    return value


def render_url(template: str, body: Mapping[str, Any]) -> str:
    """``template`` with each ``{field}`` replaced by the URL-encoded body value (KeyError if missing)."""

    def replace(match: re.Match[str]) -> str:
        value = field_value(body, match.group(1).strip())
        if value is None:
            raise KeyError(match.group(1))
        text = json.dumps(value) if isinstance(value, bool) else str(value)
        return quote(text, safe="")

    return _PLACEHOLDER.sub(replace, template)


def classify(response: httpx.Response) -> Delivery:
    """The delivery for an HTTP answer (see the module docstring)."""
    status = response.status_code
    if 200 <= status < 300:
        return Delivery(detail={"status": status, "location": response.headers.get("location")})
    snippet = response.text[:500].strip()
    error = f"HTTP {status} from {response.request.method} {response.request.url}: {snippet}".rstrip(": ")
    if status in RETRYABLE_STATUSES or status >= 500:
        retry_after = response.headers.get("retry-after")
        if retry_after:
            error += f" (Retry-After: {retry_after})"
        return Delivery(error=error, retryable=True, detail={"status": status})
    return Delivery(error=error, retryable=False, detail={"status": status})


class HttpSink(Sink):
    """Sends each message with one HTTP request (see the module docstring)."""

    name = "http"

    def __init__(self, *, url: str, method: str = "POST", headers: Mapping[str, str] | None = None,
                 timeout: float = 10.0, idempotency_header: str | None = None, verify: bool | str = True,
                 transport: httpx.BaseTransport | None = None) -> None:
        method = method.upper()
        if method not in METHODS:
            raise PipelineSpecError(f"http sink: method must be one of {', '.join(METHODS)}, not {method!r}")
        self.url = url
        self.method = method
        self.idempotency_header = idempotency_header
        self.client = httpx.Client(headers={"Content-Type": "application/json", **(headers or {})},
                                   timeout=timeout, verify=verify, transport=transport, follow_redirects=False)

    def send(self, message: Message) -> Delivery:
        """Send one message and classify the outcome."""
        try:
            url = render_url(self.url, message.body)
        except KeyError as exc:
            return Delivery(error=f"the URL needs field {exc.args[0]!r}, which the message does not have",
                            retryable=False)
        headers = {self.idempotency_header: message.id} if self.idempotency_header else None
        try:
            content = json.dumps(message.body, default=str).encode()
            response = self.client.request(self.method, url, content=content, headers=headers)
        except httpx.TimeoutException as exc:
            return Delivery(error=f"timed out: {self.method} {url}: {exc!r}", retryable=True)
        except httpx.TransportError as exc:  # connection refused or reset, DNS, TLS handshake...
            return Delivery(error=f"cannot reach {url}: {exc!r}", retryable=True)
        return classify(response)

    def write(self, messages: Sequence[Message]) -> list[Delivery]:
        """One request per message, in order; one delivery each."""
        return [self.send(message) for message in messages]

    def close(self) -> None:
        self.client.close()


def make_http_sink(config: dict[str, Any], context: Any) -> HttpSink:
    """Build an HTTP sink from its pipeline config (keys in docs/middleware-connectors.md)."""
    config = with_connection(config, context)
    headers = {str(name): str(expand_env(value, where=f"http sink header {name}"))
               for name, value in (config.get("headers") or {}).items()}
    verify = config.get("verify", True)
    return HttpSink(
        url=str(expand_env(require(config, "url", "http sink"), where="http sink url")),
        method=str(config.get("method", "POST")),
        headers=headers,
        timeout=duration(config, "timeout", 10.0) or 10.0,
        idempotency_header=config.get("idempotencyHeader"),
        verify=expand_env(verify) if isinstance(verify, str) else bool(verify),
    )


__all__ = ["HttpSink", "classify", "field_value", "make_http_sink", "render_url"]
