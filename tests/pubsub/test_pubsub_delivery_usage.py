"""Events the Pub/Sub API hands to a subscriber are counted (per subscriber), for the console's usage charts."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from interlink.bus.model import NewEvent
from interlink.pubsub._proto import pubsub_api_pb2 as pb
from interlink.pubsub.service import PubSubService
from interlink.testing import local_org


class _Call:
    """The little of a gRPC servicer context that Subscribe uses."""

    def __init__(self, token: str) -> None:
        self.token = token

    def invocation_metadata(self) -> list[tuple[str, str]]:
        return [("accesstoken", self.token)]

    def peer(self) -> str:  # the client's address (profile login IP ranges are checked against it)
        return "ipv4:127.0.0.1:50000"

    async def abort(self, code: Any, message: str, trailing_metadata: Any = ()) -> None:
        raise AssertionError(message)


def test_subscribe_counts_delivered_events(tmp_path: Path) -> None:
    with local_org(tmp_path / "org", bulk_workers=0) as org:
        now = int(time.time() * 1000)
        org.bus.append([NewEvent("/data/AccountChangeEvent", str(uuid.uuid4()), "s", b"x", now) for _ in range(3)])
        service = PubSubService(org, keepalive_seconds=1)
        token = org.mint_token("admin@interlink.local")

        async def subscriber() -> int:
            done = asyncio.Event()

            async def requests() -> AsyncIterator[pb.FetchRequest]:
                yield pb.FetchRequest(topic_name="/data/ChangeEvents", replay_preset=pb.EARLIEST, num_requested=10)
                await done.wait()

            received = 0
            async for response in service.Subscribe(requests(), _Call(token)):  # type: ignore[arg-type]
                received += len(response.events)
                if received >= 3:
                    done.set()
                    break
            return received

        # In a thread of its own: a session's browser tests may hold a running event loop in this one.
        with ThreadPoolExecutor(1) as pool:
            assert pool.submit(asyncio.run, subscriber()).result(timeout=30) == 3
            assert pool.submit(asyncio.run, subscriber()).result(timeout=30) == 3  # another subscriber: counted again
        assert sum(org.bus.deliveries.history(5).values()) == 6
