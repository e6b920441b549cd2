"""The webhook source over a real socket on 127.0.0.1: HMAC, replay protection, and the durable spool."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from interlink.middleware.base import PipelineSpecError
from interlink.middleware.sources.webhook import WebhookSource, make_webhook_source

SECRET = "s3cret-webhook-key"


def context(tmp_path: Path) -> SimpleNamespace:
    return SimpleNamespace(pipeline="orders", project_dir=tmp_path, store=None, connections={})


def sign(body: bytes, timestamp: str | None = None, secret: str = SECRET) -> str:
    signed = body if timestamp is None else timestamp.encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **extra: Any) -> WebhookSource:
    monkeypatch.setenv("WEBHOOK_SECRET", SECRET)
    config = {"secret": "${WEBHOOK_SECRET}", "port": 0, "path": "/hooks/orders", **extra}
    return make_webhook_source(config, context(tmp_path))


@pytest.fixture
def source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookSource]:
    opened = build(tmp_path, monkeypatch)
    opened.open(None)
    try:
        yield opened
    finally:
        opened.close()


def post(source: WebhookSource, payload: Any, headers: dict[str, str] | None = None,
         raw: bytes | None = None) -> httpx.Response:
    body = raw if raw is not None else json.dumps(payload).encode()
    return httpx.post(source.url, content=body, headers={"Content-Type": "application/json", **(headers or {})},
                      timeout=5)


def test_a_correctly_signed_post_is_accepted_and_read_with_its_delivery_id(source: WebhookSource) -> None:
    body = json.dumps({"order": 42, "total": 9.5}).encode()
    response = post(source, None, {"X-Signature": sign(body), "X-Delivery-Id": "dlv-1"}, raw=body)
    assert response.status_code == 202
    assert response.json() == {"id": "dlv-1", "duplicate": False}
    [message] = source.read(10, 1.0)
    assert message.id == "dlv-1"
    assert message.body == {"order": 42, "total": 9.5}
    assert message.headers["path"] == "/hooks/orders"


def test_without_a_delivery_id_each_message_gets_its_own_uuid(source: WebhookSource) -> None:
    for n in range(2):
        body = json.dumps({"n": n}).encode()
        assert post(source, None, {"X-Signature": sign(body)}, raw=body).status_code == 202
    first, second = source.read(10, 1.0)
    assert len(first.id) == 32 and first.id != second.id


@pytest.mark.parametrize("signature", [
    None,                                                       # no header at all
    "sha256=" + "0" * 64,                                       # wrong digest
    "sha1=abc",                                                 # wrong format
    sign(b'{"order": 1}', secret="another-secret"),             # signed with another key
])
def test_a_bad_signature_is_refused_with_401_and_nothing_is_stored(source: WebhookSource,
                                                                   signature: str | None) -> None:
    body = b'{"order": 1}'
    headers = {"X-Signature": signature} if signature else {}
    response = post(source, None, headers, raw=body)
    assert response.status_code == 401
    assert source.spool is not None and source.spool.pending() == 0
    assert source.read(10, 0.1) == []


def test_a_signature_over_another_body_is_refused(source: WebhookSource) -> None:
    response = post(source, None, {"X-Signature": sign(b'{"amount": 1}')}, raw=b'{"amount": 1000}')
    assert response.status_code == 401
    assert source.read(10, 0.1) == []


def test_signed_bodies_that_are_not_json_objects_get_400(source: WebhookSource) -> None:
    for body in (b"not json", b"[1, 2]"):
        assert post(source, None, {"X-Signature": sign(body)}, raw=body).status_code == 400
    assert source.read(10, 0.1) == []


def test_a_redelivered_delivery_id_is_answered_202_but_spooled_once(source: WebhookSource) -> None:
    body = b'{"order": 7}'
    headers = {"X-Signature": sign(body), "X-Delivery-Id": "dlv-7"}
    assert post(source, None, headers, raw=body).json() == {"id": "dlv-7", "duplicate": False}
    assert post(source, None, headers, raw=body).json() == {"id": "dlv-7", "duplicate": True}
    assert [m.id for m in source.read(10, 0.5)] == ["dlv-7"]


def test_timestamps_outside_the_tolerance_are_refused_so_captured_requests_cannot_be_replayed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = build(tmp_path, monkeypatch, timestampHeader="X-Timestamp", tolerance=60)
    source.open(None)
    try:
        body = b'{"order": 3}'
        fresh = str(int(time.time()))
        assert post(source, None, {"X-Timestamp": fresh, "X-Signature": sign(body, fresh)}, raw=body).status_code \
            == 202
        # A request captured ten minutes ago, replayed verbatim: its signature is valid, its timestamp is stale.
        old = str(int(time.time()) - 600)
        assert post(source, None, {"X-Timestamp": old, "X-Signature": sign(body, old)}, raw=body).status_code == 401
        # Refreshing the timestamp without the secret breaks the signature (the timestamp is signed).
        assert post(source, None, {"X-Timestamp": fresh, "X-Signature": sign(body, old)}, raw=body).status_code \
            == 401
        # The timestamp header is mandatory once configured.
        assert post(source, None, {"X-Signature": sign(body)}, raw=body).status_code == 401
        assert len(source.read(10, 0.5)) == 1
    finally:
        source.close()


def test_accepted_messages_survive_a_restart_until_acknowledged(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    source = build(tmp_path, monkeypatch)
    source.open(None)
    for n in range(3):
        body = json.dumps({"n": n}).encode()
        assert post(source, None, {"X-Signature": sign(body), "X-Delivery-Id": f"d{n}"}, raw=body).status_code == 202
    read = source.read(10, 1.0)
    assert [m.body["n"] for m in read] == [0, 1, 2]
    source.acknowledge(read[0].position)  # only the first one was done before the "crash"
    checkpoint = read[0].position
    source.close()

    restarted = build(tmp_path, monkeypatch)
    restarted.open(checkpoint)
    try:
        again = restarted.read(10, 1.0)
        assert [m.id for m in again] == ["d1", "d2"]
        restarted.acknowledge(again[-1].position)
        assert restarted.spool is not None and restarted.spool.pending() == 0
    finally:
        restarted.close()

    # A third start with no checkpoint at all finds an empty spool: nothing is delivered twice.
    third = build(tmp_path, monkeypatch)
    third.open(None)
    try:
        assert third.read(10, 0.1) == []
    finally:
        third.close()


def test_a_missing_secret_is_a_configuration_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_WEBHOOK_SECRET", raising=False)
    with pytest.raises(PipelineSpecError, match="NO_SUCH_WEBHOOK_SECRET"):
        make_webhook_source({"secret": "${NO_SUCH_WEBHOOK_SECRET}"}, context(tmp_path))
    with pytest.raises(PipelineSpecError, match="secret"):
        make_webhook_source({}, context(tmp_path))
