"""The NATS JetStream sink and source against the server on 127.0.0.1:4222 (skipped when it is not running).

Each test uses its own stream and subjects and deletes the stream afterwards.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import nats
import pytest

from interlink.middleware.base import Delivery, Message
from interlink.middleware.sinks.nats import NatsSink, make_nats_sink
from interlink.middleware.sources.nats import NatsLoop, NatsSource, close_connection, connect_options, make_nats_source

NATS_URL = "nats://127.0.0.1:4222"


def _nats_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 4222), timeout=0.5):
            return True
    except OSError:
        return False


needs_nats = pytest.mark.skipif(not _nats_reachable(),
                                reason=f"needs nats-server with JetStream (nats-server -js) at {NATS_URL}")


@pytest.fixture
def names() -> Iterator[SimpleNamespace]:
    token = uuid.uuid4().hex[:10]
    made = SimpleNamespace(stream=f"ILTEST_{token}", subject=f"iltest.{token}.orders")
    yield made

    async def delete() -> None:
        nc = await nats.connect(NATS_URL)
        try:
            await nc.jetstream().delete_stream(made.stream)
        except Exception:  # the test may not have created it
            pass
        finally:
            await nc.close()

    if _nats_reachable():
        asyncio.run(delete())


def context() -> SimpleNamespace:
    return SimpleNamespace(pipeline="nats-test", project_dir=None, store=None, connections={})


def sink(names: SimpleNamespace) -> NatsSink:
    return make_nats_sink({"url": NATS_URL, "subject": names.subject, "stream": names.stream, "createStream": True,
                           "storage": "memory"}, context())


def source(names: SimpleNamespace, **config: Any) -> NatsSource:
    opened = make_nats_source({"url": NATS_URL, "subject": names.subject, "stream": names.stream,
                               "durable": "workers", **config}, context())
    opened.open(None)
    return opened


def read_all(opened: NatsSource, count: int, timeout: float = 5.0) -> list[Message]:
    """Read until ``count`` distinct stream sequences came (at least once: a redelivery racing an expiring pull
    request may come twice; the source keeps one pending entry per sequence)."""
    read: dict[int, Message] = {}
    deadline = time.monotonic() + timeout
    while len(read) < count and time.monotonic() < deadline:
        for message in opened.read(count - len(read), 0.5):
            read[message.position] = message
    return list(read.values())


@needs_nats
def test_published_messages_are_consumed_and_duplicates_are_absorbed_by_the_stream(names: SimpleNamespace) -> None:
    publisher = sink(names)
    try:
        messages = [Message(body={"order": n}, id=f"order-{n}", key=f"k{n}") for n in range(5)]
        first = publisher.write(messages)
        assert all(d.ok for d in first)
        assert sorted(d.detail["sequence"] for d in first) == [1, 2, 3, 4, 5]
        again = publisher.write(messages[:2])  # a retried batch: JetStream's duplicate window answers
        assert all(d.ok and d.detail["duplicate"] for d in again)
    finally:
        publisher.close()

    consumer = source(names)
    try:
        read = read_all(consumer, 5)
        assert sorted(m.body["order"] for m in read) == [0, 1, 2, 3, 4]
        assert {m.id for m in read} == {f"order-{n}" for n in range(5)}
        assert all(m.headers["subject"] == names.subject and m.headers["delivered"] == 1 for m in read)
        consumer.acknowledge(read[-1].position)
        assert consumer.unacknowledged == []
        assert consumer.read(10, 0.3) == []  # nothing more: the duplicates were never stored
    finally:
        consumer.close()


@needs_nats
def test_a_message_not_acknowledged_is_redelivered_to_another_consumer(names: SimpleNamespace) -> None:
    publisher = sink(names)
    try:
        assert all(d.ok for d in publisher.write([Message(body={"n": n}, id=f"m{n}") for n in range(3)]))
    finally:
        publisher.close()

    worker_a = source(names, ackWait=1)
    worker_b = source(names, ackWait=1)
    try:
        read_a = read_all(worker_a, 3)
        assert [m.body["n"] for m in read_a] == [0, 1, 2]
        worker_a.acknowledge(read_a[0].position)  # it finishes the first one, then dies
        worker_a.close()

        redelivered = read_all(worker_b, 2, timeout=8.0)
        assert sorted(m.body["n"] for m in redelivered) == [1, 2]
        assert all(m.headers["delivered"] >= 2 for m in redelivered)
        worker_b.acknowledge(redelivered[-1].position)
        assert worker_b.read(10, 1.5) == []  # acknowledged: not delivered a third time
    finally:
        worker_a.close()
        worker_b.close()


@needs_nats
def test_acknowledging_a_position_acks_what_was_read_before_it_and_no_more(names: SimpleNamespace) -> None:
    publisher = sink(names)
    try:
        publisher.write([Message(body={"n": n}, id=f"m{n}") for n in range(4)])
    finally:
        publisher.close()
    consumer = source(names, ackWait=1)
    try:
        read = read_all(consumer, 4)
        consumer.acknowledge(read[1].position)
        assert consumer.unacknowledged == [read[2].position, read[3].position]
        # The two not acknowledged come back after the ack wait, to this same durable.
        again = read_all(consumer, 2, timeout=8.0)
        assert sorted(m.body["n"] for m in again) == [2, 3]
        consumer.acknowledge(again[-1].position)
    finally:
        consumer.close()


def test_an_unreachable_server_makes_the_sink_retryable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    publisher = make_nats_sink({"url": f"nats://127.0.0.1:{port}", "subject": "x", "connectTimeout": 1,
                                "connectAttempts": 2, "reconnectWait": 0.1}, context())
    try:
        [delivery] = publisher.write([Message(body={"n": 1})])
    finally:
        publisher.close()
    assert not delivery.ok and delivery.retryable


class CountingSink(NatsSink):
    """Counts the publishes waiting for their ack at once instead of publishing (no server needed)."""

    def __init__(self, max_pending: int) -> None:
        super().__init__(options=connect_options({"url": NATS_URL}), subject="x", max_pending=max_pending)
        self.waiting = self.peak = 0

    async def _publish_one(self, message: Message) -> Delivery:
        self.waiting += 1
        self.peak = max(self.peak, self.waiting)
        await asyncio.sleep(0)  # the ack is on its way: every other publish may start meanwhile
        self.waiting -= 1
        return Delivery(detail={"id": message.id})


def test_a_large_batch_is_published_with_a_bounded_number_of_acks_outstanding() -> None:
    publisher = CountingSink(max_pending=16)
    messages = [Message(body={"n": n}, id=f"m{n}") for n in range(500)]
    deliveries = asyncio.run(publisher._publish(messages))
    assert [d.detail["id"] for d in deliveries] == [m.id for m in messages], "one answer per message, in order"
    assert 1 < publisher.peak <= 16
    with pytest.raises(ValueError, match="at least 1"):
        CountingSink(max_pending=0)


@needs_nats
def test_a_batch_many_times_the_publish_window_is_stored_whole(names: SimpleNamespace) -> None:
    publisher = make_nats_sink({"url": NATS_URL, "subject": names.subject, "stream": names.stream,
                                "createStream": True, "storage": "memory"}, context())
    publisher.max_pending = 32
    try:
        deliveries = publisher.write([Message(body={"n": n}, id=f"big-{n}") for n in range(3000)])
    finally:
        publisher.close()
    assert all(d.ok for d in deliveries), next(d.error for d in deliveries if not d.ok)
    assert sorted(d.detail["sequence"] for d in deliveries) == list(range(1, 3001))

    async def stored() -> int:
        nc = await nats.connect(NATS_URL)
        try:
            return int((await nc.jetstream().stream_info(names.stream)).state.messages)
        finally:
            await nc.close()

    assert asyncio.run(stored()) == 3000


class FailingClient:
    """A connection whose close fails (NATS went away mid-close)."""

    is_closed = False

    async def close(self) -> None:
        raise ConnectionResetError("gone")


def test_closing_a_connection_stops_its_loop_even_when_the_close_fails() -> None:
    loop = NatsLoop("test-close")
    close_connection(loop, FailingClient())  # type: ignore[arg-type]
    assert loop.loop.is_closed()
    close_connection(loop, None)  # a second close is harmless
    close_connection(None, None)


@needs_nats
def test_the_source_and_the_sink_close_cleanly_and_twice(names: SimpleNamespace) -> None:
    publisher = sink(names)
    assert publisher.write([Message(body={"n": 1}, id="c1")])[0].ok
    loop = publisher._loop
    publisher.close()
    publisher.close()
    assert loop is not None and loop.loop.is_closed()
    consumer = source(names)
    loop = consumer._loop
    consumer.close()
    consumer.close()
    assert loop is not None and loop.loop.is_closed()
