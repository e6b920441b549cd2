"""An open Pub/Sub subscription re-checks its session and the user's access every SESSION_CHECK_SECONDS: a revoked
token or a deactivated user ends the stream with the authentication error, not silence and not more events."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest

from interlink.app.org import Org
from interlink.app.permissions import assign
from interlink.app.setup_users import create_user
from interlink.bus.model import NewEvent
from interlink.pubsub import service as service_module
from interlink.pubsub._proto import pubsub_api_pb2 as pb
from interlink.pubsub.service import PubSubService
from interlink.testing import local_org


class Aborted(Exception):
    pass


class _Call:
    """The little of a gRPC servicer context that Subscribe uses; abort() records the status and ends the call."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.code: Any = None
        self.message = ""

    def invocation_metadata(self) -> list[tuple[str, str]]:
        return [("accesstoken", self.token)]

    def peer(self) -> str:
        return "ipv4:127.0.0.1:50000"

    async def abort(self, code: Any, message: str, trailing_metadata: Any = ()) -> None:
        self.code, self.message = code, message
        raise Aborted(message)


def publish(org: Org, count: int) -> None:
    now = int(time.time() * 1000)
    org.bus.append([NewEvent("/data/AccountChangeEvent", str(uuid.uuid4()), "s", b"x", now) for _ in range(count)])


def subscribe_until_ended(org: Org, call: _Call, end_session: Any) -> int:
    """Subscribe to the change events; after the first batch, ``end_session()``; count what arrives until the
    stream ends (it must, with an abort)."""
    service = PubSubService(org, keepalive_seconds=1)

    async def run() -> int:
        async def requests() -> AsyncIterator[pb.FetchRequest]:
            yield pb.FetchRequest(topic_name="/data/AccountChangeEvent", replay_preset=pb.EARLIEST, num_requested=50)
            await asyncio.sleep(30)

        received = 0
        with pytest.raises(Aborted):
            async for response in service.Subscribe(requests(), call):  # type: ignore[arg-type]
                if response.events and received == 0:
                    end_session()
                    publish(org, 2)  # published after the session ended: must not be delivered
                received += len(response.events)
        return received

    with ThreadPoolExecutor(1) as pool:  # a browser test may hold a running event loop in this thread
        return pool.submit(asyncio.run, asyncio.wait_for(run(), 20)).result(timeout=30)


def test_a_revoked_token_ends_an_open_subscription(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service_module, "SESSION_CHECK_SECONDS", 0.0)
    with local_org(tmp_path / "org", bulk_workers=0) as org:
        publish(org, 3)
        token = org.mint_token("admin@interlink.local")
        call = _Call(token)
        received = subscribe_until_ended(org, call, lambda: org.tokens.revoke(token))
        assert received == 3
        assert call.code == grpc.StatusCode.UNAUTHENTICATED and "invalid or expired" in call.message


def test_a_deactivated_user_or_a_permission_taken_away_ends_the_stream(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service_module, "SESSION_CHECK_SECONDS", 0.0)
    project = tmp_path / "project"
    (project / "metadata" / "permissionSets").mkdir(parents=True)
    watcher = project / "metadata" / "permissionSets" / "Watcher.yaml"
    watcher.write_text("userPermissions: [ApiEnabled, ViewAllData]\n")
    with local_org(tmp_path / "org", project_dir=project, bulk_workers=0) as org:
        publish(org, 3)
        users = {}
        for name in ("left", "demoted"):
            users[name], _ = create_user(org, f"{name}@recheck.test", last_name=name.title())
            assign(org, users[name], permission_sets=["Watcher"])

        left = _Call(org.mint_token("left@recheck.test"))
        received = subscribe_until_ended(org, left, lambda: org.records.update(
            org.admin_context(), "User", [{"Id": users["left"], "IsActive": False}]))
        assert received == 3 and left.code == grpc.StatusCode.UNAUTHENTICATED

        demoted = _Call(org.mint_token("demoted@recheck.test"))
        received = subscribe_until_ended(org, demoted, lambda: assign(org, users["demoted"], permission_sets=[],
                                                                      exact=True))
        assert received >= 3 and demoted.code == grpc.StatusCode.PERMISSION_DENIED, demoted.message
