"""What is particular to the NATS JetStream log: URLs and prefixes, streams and messages on the server, errors.

Shared log behaviour is in test_backends.py. Tests marked ``needs_nats`` use the server on 127.0.0.1:4222
(skipped when it is not running), each with its own stream prefix, deleting its streams afterwards; the
others (configuration, an unreachable server) need no server.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import nats
import pytest

from interlink.bus.model import DATA, EVENT, NewEvent, Selector
from interlink.bus.nats_log import NatsLog
from interlink.errors import ConfigurationError, TopicNotFound

NATS_URL = "nats://127.0.0.1:4222"


def _nats_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 4222), timeout=0.5):
            return True
    except OSError:
        return False


needs_nats = pytest.mark.skipif(not _nats_reachable(), reason=f"no NATS server with JetStream at {NATS_URL}")


def unique_prefix() -> str:
    return "T" + uuid.uuid4().hex[:10]


@pytest.fixture
def prefix() -> str:
    return unique_prefix()


@pytest.fixture
def log(prefix: str) -> Iterator[NatsLog]:
    opened = NatsLog(NATS_URL, prefix=prefix, retention_seconds=3600, request_timeout=1.0)
    opened.open()
    try:
        yield opened
    finally:
        try:
            opened.delete_streams()
        finally:
            opened.close()


def event(topic: str, *, event_uuid: str | None = None) -> NewEvent:
    return NewEvent(topic, event_uuid or str(uuid.uuid4()), "schema-1", b"\x02hello", int(time.time() * 1000))


def on_server(action: Any) -> Any:
    """Run ``await action(js)`` with a separate nats-py connection (to look at what the log left there)."""

    async def run() -> Any:
        nc = await nats.connect(NATS_URL)
        try:
            return await action(nc.jetstream())
        finally:
            await nc.close()

    return asyncio.run(run())


# -- configuration (no server) --------------------------------------------------------------------------------


def test_prefix_from_the_url_overrides_the_argument() -> None:
    log = NatsLog("nats://127.0.0.1:4222?prefix=Org_7", prefix="IGNORED")
    assert log.prefix == "Org_7"
    assert log.url == "nats://127.0.0.1:4222"
    assert log.stream_names() == ["ORG_7_EVENT", "ORG_7_DATA", "ORG_7_CHN"]


def test_channels_map_to_family_subjects() -> None:
    log = NatsLog(NATS_URL)
    assert log.stream_names() == ["INTERLINK_EVENT", "INTERLINK_DATA", "INTERLINK_CHN"]
    assert log.subject("/event/Order__e") == "interlink.event.Order__e"
    assert log.subject("/data/AccountChangeEvent") == "interlink.data.AccountChangeEvent"
    assert log.subject("/data/Sales__chn") == "interlink.chn.Sales__chn"
    assert log.family_subjects(DATA) == "interlink.data.>"
    with pytest.raises(TopicNotFound):
        log.subject("/event/bad.name")


def test_a_prefix_that_cannot_name_a_stream_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="prefix"):
        NatsLog("nats://127.0.0.1:4222?prefix=a.b")


def test_an_unreachable_server_is_a_configuration_error_naming_the_url() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"nats://127.0.0.1:{port}"
    log = NatsLog(url, connect_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(ConfigurationError, match=url):
        log.open()
    assert time.monotonic() - started < 3
    assert not [t for t in threading.enumerate() if t.name.startswith("interlink-nats-")]
    with pytest.raises(RuntimeError, match="not open"):
        log.append([event("/event/Order__e")])


def test_using_a_log_that_is_not_open_fails_clearly() -> None:
    log = NatsLog(NATS_URL)
    with pytest.raises(RuntimeError, match="not open"):
        log.bounds(Selector(EVENT, None))
    log.close()  # closing what never opened is harmless


# -- on the server --------------------------------------------------------------------------------------------


@needs_nats
def test_open_creates_one_stream_per_family(log: NatsLog, prefix: str) -> None:
    async def infos(js: Any) -> list[Any]:
        return [await js.stream_info(name) for name in log.stream_names()]

    found = on_server(infos)
    assert [info.config.name for info in found] == [f"{prefix.upper()}_{f}" for f in ("EVENT", "DATA", "CHN")]
    assert [info.config.subjects for info in found] == [[f"{prefix.lower()}.{f}.>"] for f in ("event", "data", "chn")]
    for info in found:
        assert info.config.max_age == 3600
        assert info.config.duplicate_window == 120
        assert info.config.storage == "file"


@needs_nats
def test_the_prefix_in_the_url_names_the_streams() -> None:
    prefix = unique_prefix()
    log = NatsLog(f"{NATS_URL}?prefix={prefix}")
    log.open()
    try:
        log.append([event("/event/Order__e")])

        async def state(js: Any) -> int:
            return (await js.stream_info(f"{prefix.upper()}_EVENT")).state.messages

        assert on_server(state) == 1
    finally:
        log.delete_streams()
        log.close()


@needs_nats
def test_reopening_with_another_retention_updates_the_streams(log: NatsLog, prefix: str) -> None:
    again = NatsLog(NATS_URL, prefix=prefix, retention_seconds=7200)
    again.open()
    again.close()

    async def max_age(js: Any) -> float:
        return (await js.stream_info(f"{prefix.upper()}_DATA")).config.max_age

    assert on_server(max_age) == 7200


@needs_nats
def test_events_are_messages_with_interlink_headers(log: NatsLog, prefix: str) -> None:
    sent = event("/data/AccountChangeEvent")
    [replay_id] = log.append([sent])

    async def message(js: Any) -> Any:
        return await js.get_msg(f"{prefix.upper()}_DATA", replay_id)

    stored = on_server(message)
    assert stored.subject == f"{prefix.lower()}.data.AccountChangeEvent"
    assert stored.data == sent.payload
    assert stored.headers["Nats-Msg-Id"] == sent.event_uuid
    assert "Il-Topic" not in stored.headers and "Il-Uuid" not in stored.headers  # the subject and Nats-Msg-Id say it
    assert stored.headers["Il-Schema"] == "schema-1"
    assert stored.headers["Il-Created"] == str(sent.created_ms)


@needs_nats
def test_replay_ids_are_numbered_per_family(log: NatsLog) -> None:
    ids = log.append([event("/event/Order__e"), event("/data/AccountChangeEvent"), event("/data/Sales__chn"),
                      event("/event/Order__e")])
    assert ids == [1, 1, 1, 2]


@needs_nats
def test_the_duplicate_window_applies_without_dedupe_too(log: NatsLog) -> None:
    sent = event("/event/Order__e")
    assert log.append([sent]) == log.append([sent]) == [1]
    assert len(log.read(Selector(EVENT, None), 0, 10)) == 1


@needs_nats
def test_synchronous_calls_from_inside_another_running_loop(log: NatsLog) -> None:
    async def inside_a_loop() -> tuple[list[int], int]:
        ids = log.append([event("/event/Order__e")])
        return ids, len(log.read(Selector(EVENT, None), 0, 10))

    assert asyncio.run(inside_a_loop()) == ([1], 1)


@needs_nats
def test_a_cursor_survives_losing_its_consumer(log: NatsLog, prefix: str) -> None:
    first = log.append([event("/event/Order__e")])

    async def delete_consumers(js: Any) -> int:
        consumers = await js.consumers_info(f"{prefix.upper()}_EVENT")
        for consumer in consumers:
            await js.delete_consumer(f"{prefix.upper()}_EVENT", consumer.name)
        return len(consumers)

    async def scenario() -> list[int]:
        cursor = log.cursor(Selector(EVENT, "/event/Order__e"), 0)
        try:
            assert [e.replay_id for e in await cursor.fetch(10, 0)] == first
            assert await asyncio.to_thread(on_server, delete_consumers) == 1
            later = log.append([event("/event/Order__e")])
            got = [e.replay_id for e in await cursor.fetch(10, 3.0)]
            assert got == later
            return got
        finally:
            await cursor.close()

    assert asyncio.run(scenario()) == [2]


@needs_nats
def test_closing_a_cursor_deletes_its_consumer(log: NatsLog, prefix: str) -> None:
    async def count(js: Any) -> int:
        return len(await js.consumers_info(f"{prefix.upper()}_EVENT"))

    async def scenario() -> tuple[int, int]:
        cursor = log.cursor(Selector(EVENT, None), 0)
        await cursor.fetch(10, 0)
        during = await asyncio.to_thread(on_server, count)
        await cursor.close()
        return during, await asyncio.to_thread(on_server, count)

    assert asyncio.run(scenario()) == (1, 0)


@needs_nats
def test_a_closed_log_refuses_work() -> None:
    log = NatsLog(NATS_URL, prefix=unique_prefix())
    log.open()
    log.delete_streams()
    log.close()
    log.close()
    with pytest.raises(RuntimeError, match="not open"):
        log.append([event("/event/Order__e")])
    assert not [t for t in threading.enumerate() if t.name == f"interlink-nats-{log.prefix}"]


@needs_nats
def test_closing_the_log_ends_a_waiting_fetch(prefix: str) -> None:
    log = NatsLog(NATS_URL, prefix=prefix)
    log.open()

    async def scenario() -> float:
        cursor = log.cursor(Selector(EVENT, None), 0)
        waiting = asyncio.ensure_future(cursor.fetch(10, 10.0))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        await asyncio.to_thread(log.close)
        with pytest.raises(RuntimeError, match="closed"):
            await waiting
        await cursor.close()
        return time.monotonic() - started

    try:
        assert asyncio.run(scenario()) < 3
    finally:
        cleanup = NatsLog(NATS_URL, prefix=prefix)
        cleanup.open()
        cleanup.delete_streams()
        cleanup.close()
