"""What is particular to the NATS JetStream log: URLs and prefixes, streams and messages on the server, errors.

Shared log behaviour is in test_backends.py. Tests marked ``needs_nats`` use the server on 127.0.0.1:4222
(skipped when it is not running), each with its own stream prefix, deleting its streams afterwards; the
others (configuration, an unreachable server) need no server.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import nats
import pytest

from interlink.bus.model import DATA, EVENT, NewEvent, Selector, StoredEvent
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


class _Recorder:
    """What a protocol parser hands the client."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    async def _process_msg(self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None) -> None:
        self.calls.append(("msg", sid, bytes(subject), bytes(reply), bytes(data), headers and bytes(headers)))

    async def _process_ping(self) -> None:
        self.calls.append(("ping",))

    async def _process_pong(self) -> None:
        self.calls.append(("pong",))

    async def _process_info(self, info: dict[str, Any]) -> None:
        self.calls.append(("info", info))

    async def _process_err(self, message: str) -> None:
        self.calls.append(("err", message))


def _hmsg(subject: bytes, sid: int, reply: bytes, headers: bytes, body: bytes) -> bytes:
    return b"HMSG %s %d %s%d %d\r\n%s%s\r\n" % (subject, sid, reply + b" " if reply else b"", len(headers),
                                               len(headers) + len(body), headers, body)


PROTOCOL = (b"MSG a.b 1 12\r\nhello\r\nworld\r\n"
            b"MSG a.b 2 _INBOX.x.1 0\r\n\r\n"
            + _hmsg(b"a.c", 3, b"$JS.ACK.S.C.1.5.5.1.0", b"NATS/1.0\r\nK: v\r\n\r\n", b"\x01body")
            + b"PING\r\n+OK\r\n"
            + _hmsg(b"_INBOX.y.2", 4, b"", b"NATS/1.0 404\r\n\r\n", b"")
            + b"INFO {\"server_id\":\"x\"}\r\nPONG\r\n"
            b"MSG a.d 5 3\r\nend\r\n")


def _parse(parser_class: type, chunks: list[bytes]) -> list[tuple[Any, ...]]:
    client = _Recorder()
    parser = parser_class(client)

    async def feed() -> None:
        for chunk in chunks:
            await parser.parse(chunk)

    asyncio.run(feed())
    assert not parser.buf
    return client.calls


def test_the_quick_protocol_parser_reads_what_the_stock_one_does_however_the_bytes_are_cut() -> None:
    from nats.protocol.parser import Parser

    from interlink.bus.nats_client import _Parser

    expected = _parse(Parser, [PROTOCOL])
    assert [call[0] for call in expected] == ["msg", "msg", "msg", "ping", "msg", "info", "pong", "msg"]
    assert _parse(_Parser, [PROTOCOL]) == expected
    for cut in range(1, len(PROTOCOL)):
        assert _parse(_Parser, [PROTOCOL[:cut], PROTOCOL[cut:]]) == expected, cut
    assert _parse(_Parser, [PROTOCOL[i:i + 1] for i in range(len(PROTOCOL))]) == expected
    for size in (3, 7, 50):
        assert _parse(_Parser, [PROTOCOL[i:i + size] for i in range(0, len(PROTOCOL), size)]) == expected

    # Messages of a subscription with a raw handler go straight to it, with the same arguments.
    client = _Recorder()
    raw: list[tuple[Any, ...]] = []
    client._raw_handlers = {3: lambda *args: raw.append(("msg", 3, *args))}  # type: ignore[attr-defined]
    asyncio.run(_Parser(client).parse(PROTOCOL))
    assert raw == [expected[2]]
    assert client.calls == expected[:2] + expected[3:]


def test_the_quick_protocol_parser_refuses_a_malformed_message() -> None:
    from nats.errors import ProtocolError

    from interlink.bus.nats_client import _Parser

    with pytest.raises(ProtocolError):
        _parse(_Parser, [b"MSG a.b x 3\r\nabc\r\n"])


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


def body_of(sent: NewEvent) -> bytes:
    """The message body the log stores: version 1, created ms, the two lengths, schema id, uuid, payload."""
    schema, event_uuid = sent.schema_id.encode(), sent.event_uuid.encode()
    return (struct.pack(">BqBB", 1, sent.created_ms, len(schema), len(event_uuid)) + schema + event_uuid
            + sent.payload)


@needs_nats
def test_events_are_messages_with_a_binary_prefix(log: NatsLog, prefix: str) -> None:
    sent = event("/data/AccountChangeEvent")
    [replay_id] = log.append([sent])

    async def message(js: Any) -> Any:
        return await js.get_msg(f"{prefix.upper()}_DATA", replay_id)

    stored = on_server(message)
    assert stored.subject == f"{prefix.lower()}.data.AccountChangeEvent"
    assert stored.data == body_of(sent)
    assert stored.headers == {"Nats-Msg-Id": sent.event_uuid}  # for the duplicate window; nothing else


@needs_nats
def test_events_appended_async_carry_no_headers(log: NatsLog, prefix: str) -> None:
    sent = [event("/event/Order__e"), event("/event/Order__e")]
    ids = asyncio.run(log.append_async(sent))
    assert ids == [1, 2]

    async def messages(js: Any) -> list[Any]:
        return [await js.get_msg(f"{prefix.upper()}_EVENT", seq) for seq in ids]

    stored = on_server(messages)
    assert [m.data for m in stored] == [body_of(e) for e in sent]
    assert [m.headers for m in stored] == [None, None]
    assert log.read(Selector(EVENT, None), 0, 10) == [
        StoredEvent(seq, e.topic, e.event_uuid, e.schema_id, e.payload, e.created_ms)
        for seq, e in zip(ids, sent, strict=True)]


@needs_nats
def test_a_foreign_message_is_read_as_a_bare_payload(log: NatsLog, prefix: str) -> None:
    async def publish(js: Any) -> None:
        await js.publish(f"{prefix.lower()}.event.Order__e", b"not ours")

    on_server(publish)
    sent = event("/event/Order__e")
    log.append([sent])
    assert log.read(Selector(EVENT, "/event/Order__e"), 0, 10) == [
        StoredEvent(1, "/event/Order__e", "", "", b"not ours", 0),
        StoredEvent(2, "/event/Order__e", sent.event_uuid, "schema-1", sent.payload, sent.created_ms)]


@needs_nats
def test_purge_reads_creation_times_from_the_message_bodies(log: NatsLog) -> None:
    now = int(time.time() * 1000)
    old, kept = (NewEvent("/event/Order__e", str(uuid.uuid4()), "schema-1", b"\x02", created)
                 for created in (now - 30_000, now))
    log.append([old])  # with a Nats-Msg-Id header
    asyncio.run(log.append_async([kept]))  # with none
    assert log.purge(now - 1_000) == 1
    assert [e.event_uuid for e in log.read(Selector(EVENT, None), 0, 10)] == [kept.event_uuid]


@needs_nats
def test_an_event_that_cannot_be_encoded_fails_before_anything_is_sent(log: NatsLog) -> None:
    too_long = NewEvent("/event/Order__e", str(uuid.uuid4()), "s" * 256, b"\x02", int(time.time() * 1000))
    with pytest.raises(ValueError, match="255 bytes"):
        log.append([event("/event/Order__e"), too_long])
    assert log.read(Selector(EVENT, None), 0, 10) == []
    assert log.append([event("/event/Order__e")]) == [1]


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
def test_async_calls_use_a_connection_of_their_own_loop_closed_with_it(log: NatsLog) -> None:
    async def scenario() -> tuple[list[int], list[int], int]:
        ids = await log.append_async([event("/event/Order__e") for _ in range(3)])
        cursor = log.cursor(Selector(EVENT, None), 0)
        got = [e.replay_id for e in await cursor.fetch(10, 0)]
        await cursor.close()
        return ids, got, len(log._guests)

    assert asyncio.run(scenario()) == ([1, 2, 3], [1, 2, 3], 1)
    assert log._guests == {}  # closed on the way out of asyncio.run
    assert asyncio.run(scenario())[2] == 1  # and opened again by the next loop
    assert log.append([event("/event/Order__e")]) == [7]  # the home connection carries on


@needs_nats
def test_a_cursor_can_move_to_another_loop(log: NatsLog) -> None:
    ids = log.append([event("/event/Order__e") for _ in range(5)])
    cursor = log.cursor(Selector(EVENT, None), 0)

    async def fetch(limit: int) -> list[int]:
        return [e.replay_id for e in await cursor.fetch(limit, 0)]

    assert asyncio.run(fetch(2)) == ids[:2]
    assert asyncio.run(fetch(10)) == ids[2:]
    asyncio.run(cursor.close())


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


def test_url_options_are_checked() -> None:
    assert NatsLog("nats://127.0.0.1:4222?duplicate_window=3600").duplicate_window_seconds == 3600
    for bad in ("nats://127.0.0.1:4222?duplicate_window=soon", "nats://127.0.0.1:4222?duplicate_window=0",
                "nats://127.0.0.1:4222?prefx=A"):
        with pytest.raises(ConfigurationError):
            NatsLog(bad)
