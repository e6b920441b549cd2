"""Behaviour every event log shares, run against the embedded SQLite log, NATS JetStream and the memory log.

The NATS cases need a server with JetStream on 127.0.0.1:4222 and are skipped without one. Each NATS test
gets its own stream prefix and deletes its streams afterwards. Replay ids are only compared within a family:
SQLite numbers every family from one sequence, NATS numbers each family's stream on its own.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from interlink.bus.backend import Bounds, BusBackend
from interlink.bus.model import CUSTOM, DATA, EVENT, NewEvent, Selector
from interlink.bus.sqlite_log import SqliteLog

NATS_URL = "nats://127.0.0.1:4222"
HOUR_MS = 3600 * 1000


def nats_reachable(host: str = "127.0.0.1", port: int = 4222) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(params=["sqlite", "nats", "memory"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BusBackend]:
    if request.param == "memory":
        from interlink.bus.memory_log import MemoryLog

        yield MemoryLog()
        return
    if request.param == "sqlite":
        log: BusBackend = SqliteLog(tmp_path / "bus.db")
        log.open()
        try:
            yield log
        finally:
            log.close()
        return
    if not nats_reachable():
        pytest.skip(f"no NATS server with JetStream at {NATS_URL}")
    from interlink.bus.nats_log import NatsLog

    nats_log = NatsLog(NATS_URL, prefix="T" + uuid.uuid4().hex[:10])
    nats_log.open()
    try:
        yield nats_log
    finally:
        try:
            nats_log.delete_streams()
        finally:
            nats_log.close()


def now_ms() -> int:
    return int(time.time() * 1000)


def event(topic: str, payload: bytes = b"", *, created_ms: int | None = None) -> NewEvent:
    return NewEvent(topic, str(uuid.uuid4()), "schema-1", payload or uuid.uuid4().bytes * 19,
                    now_ms() if created_ms is None else created_ms)


ORDERS = Selector(EVENT, "/event/Order__e")
EVENTS = Selector(EVENT, None)


def test_append_returns_increasing_replay_ids(backend: BusBackend) -> None:
    first = backend.append([event("/event/Order__e") for _ in range(5)])
    second = backend.append([event("/event/Order__e") for _ in range(3)])
    ids = first + second
    assert len(ids) == 8
    assert ids == sorted(ids) and len(set(ids)) == 8
    assert backend.append([]) == []


def test_read_returns_what_was_appended_in_order(backend: BusBackend) -> None:
    created = now_ms() - 5000
    appended = [event("/event/Order__e", f"payload {i}".encode(), created_ms=created + i) for i in range(4)]
    ids = backend.append(appended)
    stored = backend.read(ORDERS, 0, 100)
    assert [e.replay_id for e in stored] == ids
    for new, old in zip(appended, stored, strict=True):
        assert (old.topic, old.event_uuid, old.schema_id, old.payload, old.created_ms) == (
            new.topic, new.event_uuid, new.schema_id, new.payload, new.created_ms)


def test_read_by_topic_and_by_family(backend: BusBackend) -> None:
    topics = ["/event/Order__e", "/event/Ship__e", "/data/AccountChangeEvent", "/data/ContactChangeEvent",
              "/data/Sales__chn"]
    ids = backend.append([event(topic) for topic in topics * 2])
    by_topic = {topic: [i for t, i in zip(topics * 2, ids, strict=True) if t == topic] for topic in topics}

    assert [e.replay_id for e in backend.read(ORDERS, 0, 100)] == by_topic["/event/Order__e"]
    assert [e.topic for e in backend.read(EVENTS, 0, 100)] == ["/event/Order__e", "/event/Ship__e"] * 2
    changes = backend.read(Selector(DATA, None), 0, 100)
    assert [e.topic for e in changes] == ["/data/AccountChangeEvent", "/data/ContactChangeEvent"] * 2
    assert [e.replay_id for e in changes] == sorted(e.replay_id for e in changes)
    assert [e.replay_id for e in backend.read(Selector(DATA, "/data/ContactChangeEvent"), 0, 100)] == \
        by_topic["/data/ContactChangeEvent"]
    custom = backend.read(Selector(CUSTOM, "/data/Sales__chn"), 0, 100)
    assert [e.replay_id for e in custom] == by_topic["/data/Sales__chn"]
    assert [e.replay_id for e in backend.read(Selector(CUSTOM, None), 0, 100)] == by_topic["/data/Sales__chn"]
    assert backend.read(Selector(EVENT, "/event/Nothing__e"), 0, 100) == []


def test_read_after_and_limit(backend: BusBackend) -> None:
    ids = backend.append([event("/event/Order__e") for _ in range(6)])
    assert [e.replay_id for e in backend.read(ORDERS, ids[1], 2)] == ids[2:4]
    assert [e.replay_id for e in backend.read(ORDERS, ids[3], 100)] == ids[4:]
    assert backend.read(ORDERS, ids[-1], 100) == []
    assert backend.read(ORDERS, 0, 0) == []


def test_bounds(backend: BusBackend) -> None:
    assert backend.bounds(EVENTS) == Bounds(0, 0)
    ids = backend.append([event("/event/Order__e") for _ in range(3)])
    assert backend.bounds(EVENTS) == Bounds(0, ids[-1])
    assert backend.bounds(ORDERS) == Bounds(0, ids[-1])


def test_dedupe_answers_a_stored_event_with_its_replay_id(backend: BusBackend) -> None:
    original = event("/event/Order__e")
    [first] = backend.append([original], dedupe=True)
    again = backend.append([event("/event/Order__e"), original], dedupe=True)
    assert again[1] == first and again[0] != first
    assert [e.event_uuid for e in backend.read(ORDERS, 0, 100)].count(original.event_uuid) == 1
    assert len(backend.read(ORDERS, 0, 100)) == 2


async def _append_async(backend: BusBackend) -> list[int]:
    return await backend.append_async([event("/event/Order__e") for _ in range(3)])


def test_append_async(backend: BusBackend) -> None:
    ids = asyncio.run(_append_async(backend))
    assert [e.replay_id for e in backend.read(ORDERS, 0, 100)] == ids


def test_cursor_reads_from_its_position_and_respects_limit(backend: BusBackend) -> None:
    ids = backend.append([event("/event/Order__e") for _ in range(25)])

    async def scenario() -> list[list[int]]:
        cursor = backend.cursor(ORDERS, ids[1])
        try:
            batches = []
            for _ in range(4):
                batches.append([e.replay_id for e in await cursor.fetch(10, 0)])
            assert cursor.position == ids[-1]
            return batches
        finally:
            await cursor.close()

    assert asyncio.run(scenario()) == [ids[2:12], ids[12:22], ids[22:], []]


def test_cursor_waits_and_wakes_on_append_from_another_thread(backend: BusBackend) -> None:
    [before] = backend.append([event("/event/Order__e")])
    appended: list[int] = []

    def append_later() -> None:
        time.sleep(0.3)
        appended.extend(backend.append([event("/event/Ship__e"), event("/event/Order__e")]))

    async def scenario() -> tuple[list[int], float]:
        cursor = backend.cursor(ORDERS, before)
        try:
            assert await cursor.fetch(10, 0) == []
            writer = threading.Thread(target=append_later)
            started = time.monotonic()
            writer.start()
            got = await cursor.fetch(10, 5.0)
            elapsed = time.monotonic() - started
            writer.join()
            return [e.replay_id for e in got], elapsed
        finally:
            await cursor.close()

    got, elapsed = asyncio.run(scenario())
    assert got == [appended[1]]
    assert 0.2 < elapsed < 2.0


def test_cursor_wait_times_out_empty(backend: BusBackend) -> None:
    async def scenario() -> tuple[list[object], float]:
        cursor = backend.cursor(EVENTS, 0)
        try:
            started = time.monotonic()
            got = await cursor.fetch(10, 0.3)
            return list(got), time.monotonic() - started
        finally:
            await cursor.close()

    got, elapsed = asyncio.run(scenario())
    assert got == []
    assert 0.25 < elapsed < 2.0


def test_cursor_by_family_sees_every_topic_of_it_only(backend: BusBackend) -> None:
    async def scenario() -> list[str]:
        cursor = backend.cursor(Selector(DATA, None), 0)
        try:
            backend.append([event("/data/AccountChangeEvent"), event("/event/Order__e"), event("/data/Sales__chn"),
                            event("/data/ContactChangeEvent")])
            return [e.topic for e in await cursor.fetch(10, 1.0)]
        finally:
            await cursor.close()

    assert asyncio.run(scenario()) == ["/data/AccountChangeEvent", "/data/ContactChangeEvent"]


def test_purge_removes_old_events_and_raises_the_floor(backend: BusBackend) -> None:
    old = now_ms() - 10 * HOUR_MS
    # (another family first: SQLite's head is its one sequence's, across families)
    custom_ids = backend.append([event("/data/Sales__chn", created_ms=old)])
    old_ids = backend.append([event("/event/Order__e", created_ms=old + i) for i in range(30)])
    new_ids = backend.append([event("/event/Order__e") for _ in range(20)])

    assert backend.purge(now_ms() - HOUR_MS) == 31
    assert backend.bounds(EVENTS) == Bounds(old_ids[-1], new_ids[-1])
    assert backend.bounds(Selector(CUSTOM, None)).floor == custom_ids[-1]
    assert [e.replay_id for e in backend.read(EVENTS, 0, 100)] == new_ids
    floor = backend.bounds(ORDERS).floor
    assert [e.replay_id for e in backend.read(ORDERS, floor, 100)] == new_ids
    assert [e.replay_id for e in backend.read(ORDERS, new_ids[9], 100)] == new_ids[10:]
    assert backend.purge(now_ms() - HOUR_MS) == 0
    assert backend.bounds(EVENTS).floor == old_ids[-1]


def test_purge_everything_leaves_an_empty_window_at_the_head(backend: BusBackend) -> None:
    ids = backend.append([event("/event/Order__e", created_ms=now_ms() - 10 * HOUR_MS) for _ in range(3)])
    assert backend.purge(now_ms()) == 3
    assert backend.bounds(EVENTS) == Bounds(ids[-1], ids[-1])
    assert backend.read(EVENTS, 0, 10) == []
    [later] = backend.append([event("/event/Order__e")])
    assert later > ids[-1]
    assert [e.replay_id for e in backend.read(EVENTS, 0, 10)] == [later]


def test_cursor_from_before_the_floor_starts_at_what_is_kept(backend: BusBackend) -> None:
    backend.append([event("/event/Order__e", created_ms=now_ms() - 10 * HOUR_MS) for _ in range(5)])
    kept = backend.append([event("/event/Order__e") for _ in range(5)])
    backend.purge(now_ms() - HOUR_MS)

    async def scenario() -> list[int]:
        cursor = backend.cursor(ORDERS, 0)
        try:
            return [e.replay_id for e in await cursor.fetch(100, 0)]
        finally:
            await cursor.close()

    assert asyncio.run(scenario()) == kept


def test_a_cancelled_fetch_loses_nothing(backend: BusBackend) -> None:
    async def scenario() -> list[int]:
        cursor = backend.cursor(ORDERS, 0)
        try:
            waiting = asyncio.ensure_future(cursor.fetch(10, 5.0))
            await asyncio.sleep(0.1)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            ids = await asyncio.to_thread(backend.append, [event("/event/Order__e") for _ in range(3)])
            got = [e.replay_id for e in await cursor.fetch(10, 2.0)]
            while len(got) < len(ids):
                more = await cursor.fetch(10, 1.0)
                if not more:
                    break
                got += [e.replay_id for e in more]
            assert got == ids
            return got
        finally:
            await cursor.close()

    assert len(asyncio.run(scenario())) == 3
