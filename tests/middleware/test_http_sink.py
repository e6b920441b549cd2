"""The HTTP sink against a scripted server: status classification, URL templates, headers, idempotency keys."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from interlink.middleware.base import Message, PipelineSpecError
from interlink.middleware.sinks.http import HttpSink, make_http_sink


class Script:
    """A MockTransport that answers with the next scripted status and records what it received."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status = self.statuses.pop(0)
        headers = {"Retry-After": "7"} if status == 429 else {}
        if status == 201:
            headers["Location"] = "/orders/1"
        return httpx.Response(status, json={"status": status}, headers=headers)


def context() -> SimpleNamespace:
    return SimpleNamespace(pipeline="push", project_dir=None, store=None,
                           connections={"erp": {"url": "https://erp.test/api/orders/{OrderNumber}",
                                                "headers": {"Authorization": "Bearer ${ERP_TOKEN}"}}})


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("ERP_TOKEN", "tok-123")
    yield "tok-123"


def sink_with(script: Script, **config: Any) -> HttpSink:
    sink = make_http_sink({"connection": "erp", "method": "PUT", "idempotencyHeader": "Idempotency-Key", **config},
                          context())
    sink.client = httpx.Client(headers=sink.client.headers, transport=httpx.MockTransport(script))
    return sink


def order(number: str, **extra: Any) -> Message:
    return Message(body={"OrderNumber": number, "Amount": 10, **extra}, id=f"msg-{number}")


def test_statuses_are_classified_ok_retryable_or_permanent(token: str) -> None:
    script = Script(200, 201, 429, 500, 503, 408, 400, 404, 422)
    sink = sink_with(script)
    deliveries = sink.write([order(str(n)) for n in range(9)])
    assert [d.ok for d in deliveries] == [True, True] + [False] * 7
    assert [d.retryable for d in deliveries[2:]] == [True, True, True, True, False, False, False]
    assert deliveries[1].detail == {"status": 201, "location": "/orders/1"}
    assert "Retry-After: 7" in str(deliveries[2].error)
    assert "HTTP 400" in str(deliveries[6].error)


def test_the_request_carries_the_body_the_rendered_url_secrets_and_the_idempotency_key(token: str) -> None:
    script = Script(200)
    sink = sink_with(script)
    [delivery] = sink.write([order("A/B 7?x=1")])
    assert delivery.ok
    [request] = script.requests
    assert request.method == "PUT"
    # The value is URL-encoded as one path segment: it cannot add a path or a query.
    assert str(request.url) == "https://erp.test/api/orders/A%2FB%207%3Fx%3D1"
    assert request.headers["Authorization"] == "Bearer tok-123"
    assert request.headers["Idempotency-Key"] == "msg-A/B 7?x=1"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == {"OrderNumber": "A/B 7?x=1", "Amount": 10}


def test_a_field_missing_for_the_url_is_permanent_and_sends_nothing(token: str) -> None:
    script = Script()
    sink = sink_with(script, url="https://erp.test/accounts/{Account.Id}/orders")
    [missing] = sink.write([order("1")])
    assert not missing.ok and not missing.retryable and "Account.Id" in str(missing.error)
    assert script.requests == []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_refused_connection_and_a_timeout_are_retryable(token: str) -> None:
    refused = make_http_sink({"url": f"http://127.0.0.1:{free_port()}/x", "timeout": 2}, context())
    [delivery] = refused.write([order("1")])
    assert not delivery.ok and delivery.retryable and "cannot reach" in str(delivery.error)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("read timed out", request=request)

    timing_out = make_http_sink({"url": "https://erp.test/x"}, context())
    timing_out.client = httpx.Client(transport=httpx.MockTransport(slow))
    [delivery] = timing_out.write([order("1")])
    assert not delivery.ok and delivery.retryable and "timed out" in str(delivery.error)


def test_against_a_real_local_server(token: str) -> None:
    """A uvicorn server on 127.0.0.1 returning 200, 429, 500 then 400."""
    import threading
    import time

    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    statuses = [200, 429, 500, 400]
    received: list[dict[str, Any]] = []

    async def endpoint(request: Request) -> JSONResponse:
        received.append({"body": await request.json(), "key": request.headers.get("idempotency-key")})
        return JSONResponse({}, status_code=statuses.pop(0))

    server = uvicorn.Server(uvicorn.Config(Starlette(routes=[Route("/orders/{number}", endpoint, methods=["POST"])]),
                                           host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        sink = make_http_sink({"url": f"http://127.0.0.1:{port}/orders/{{OrderNumber}}",
                               "idempotencyHeader": "Idempotency-Key"}, context())
        deliveries = sink.write([order(str(n)) for n in range(4)])
        sink.close()
    finally:
        server.should_exit = True
        thread.join(5)
    assert [(d.ok, d.retryable) for d in deliveries] == [(True, True), (False, True), (False, True), (False, False)]
    assert [r["key"] for r in received] == ["msg-0", "msg-1", "msg-2", "msg-3"]


def test_bad_configuration(token: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(PipelineSpecError, match="method"):
        make_http_sink({"url": "https://x.test", "method": "DELETE"}, context())
    monkeypatch.delenv("ERP_TOKEN")
    with pytest.raises(PipelineSpecError, match="ERP_TOKEN"):
        make_http_sink({"connection": "erp"}, context())
