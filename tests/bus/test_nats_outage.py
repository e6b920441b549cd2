"""The NATS log through real faults, on a nats-server of each test's own (killed, stopped, restarted).

* appends while the server is down fail at once with BusUnavailable and are never stored later (nats-py would
  otherwise queue them and send them after the reconnect);
* an append the server never acknowledged fails as soon as the connection drops, not after the timeout;
* a cursor rides out the outage (fetch returns nothing, raises nothing) and resumes after its position with no
  gap and no repeat, its consumer gone with the restarted server;
* the stall watchdog: a consumer that stops delivering while the stream has newer events is replaced.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from faults import NatsProcess, nats_server
from interlink.bus.model import EVENT, NewEvent, Selector
from interlink.bus.nats_log import NatsLog
from interlink.errors import BusUnavailable

TOPIC = "/event/Order__e"


def event() -> NewEvent:
    return NewEvent(TOPIC, str(uuid.uuid4()), "schema-1", b"\x02hello", int(time.time() * 1000))


@pytest.fixture
def nats(tmp_path: Path) -> Iterator[NatsProcess]:
    with nats_server(tmp_path) as server:
        yield server


@pytest.fixture
def log(nats: NatsProcess) -> Iterator[NatsLog]:
    opened = NatsLog(nats.url, prefix="T" + uuid.uuid4().hex[:10], request_timeout=2.0, cursor_stall_seconds=0.5)
    opened.open()
    try:
        yield opened
    finally:
        opened.close()


def append_when_back(log: NatsLog, events: list[NewEvent], timeout: float = 10.0) -> list[int]:
    """Append once the log has reconnected (refused at once until then)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return log.append(events)
        except BusUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_appends_during_an_outage_fail_at_once_and_never_arrive_later(nats: NatsProcess, log: NatsLog) -> None:
    before = log.append([event(), event()])
    nats.kill()
    # Until the client has seen the connection drop, an append is written to the dead socket and refused as
    # "may or may not be stored" (the next test): wait for it, as for any outage longer than an instant.
    home = log._home
    assert home is not None
    deadline = time.monotonic() + 5
    while home.connected and time.monotonic() < deadline:
        time.sleep(0.01)
    began = time.monotonic()
    for _ in range(3):
        with pytest.raises(BusUnavailable, match="nothing was sent"):
            log.append([event()])
    assert time.monotonic() - began < 1.0
    nats.start()
    after = append_when_back(log, [event()])
    time.sleep(0.3)  # anything nats-py had queued would have been sent on the reconnect
    assert after == [before[-1] + 1]
    assert [e.replay_id for e in log.read(Selector(EVENT, TOPIC), 0, 100)] == [*before, *after]


def test_an_unacknowledged_append_fails_when_the_connection_drops(nats: NatsProcess, log: NatsLog) -> None:
    log.request_timeout = 30.0  # the failure must come from the dropped connection, not from this timeout
    assert nats.process is not None
    nats.process.send_signal(signal.SIGSTOP)  # the server reads nothing, acknowledges nothing
    stat = Path(f"/proc/{nats.process.pid}/stat")
    deadline = time.monotonic() + 5
    while stat.read_text().rsplit(")", 1)[1].split()[0] != "T" and time.monotonic() < deadline:
        time.sleep(0.01)  # the signal takes effect asynchronously
    outcome: list[BaseException | list[int]] = []

    def append() -> None:
        try:
            outcome.append(log.append([event()]))
        except BaseException as error:  # the test looks at it
            outcome.append(error)

    thread = threading.Thread(target=append)
    thread.start()
    time.sleep(0.3)
    began = time.monotonic()
    nats.kill()
    thread.join(10)
    assert not thread.is_alive()
    assert time.monotonic() - began < 3
    (error,) = outcome
    assert isinstance(error, BusUnavailable), error
    assert "lost before" in error.message


def test_a_cursor_resumes_after_its_position_when_the_server_is_restarted(nats: NatsProcess, log: NatsLog) -> None:
    first = log.append([event() for _ in range(3)])

    async def scenario() -> tuple[list[int], list[int], list[int]]:
        cursor = log.cursor(Selector(EVENT, TOPIC), 0)
        try:
            before = [e.replay_id for e in await cursor.fetch(10, 1.0)]
            await asyncio.to_thread(nats.kill)
            during: list[int] = []
            for _ in range(3):  # an idle subscription to its reader, not an error
                during += [e.replay_id for e in await cursor.fetch(10, 0.3)]
            nats.start()  # from the main thread: the server lives as long as the thread that starts it
            later = await asyncio.to_thread(append_when_back, log, [event() for _ in range(4)])
            after: list[int] = []
            deadline = time.monotonic() + 10
            while len(after) < len(later) and time.monotonic() < deadline:
                after += [e.replay_id for e in await cursor.fetch(10, 0.5)]
            assert during == []
            assert later == [first[-1] + 1 + index for index in range(4)]
            return before, after, later
        finally:
            await cursor.close()

    before, after, later = asyncio.run(scenario())
    assert before == first
    assert after == later


def test_the_watchdog_replaces_a_consumer_that_stopped_delivering(log: NatsLog) -> None:
    async def scenario() -> list[int]:
        cursor = log.cursor(Selector(EVENT, TOPIC), 0)
        try:
            assert await cursor.fetch(10, 0.2) == []
            puller = cursor._puller
            assert puller is not None and puller._sub is not None
            # The consumer is fine on the server, but its messages no longer reach the puller: the stall seen
            # with nats-py pull subscriptions after a reconnect.
            await puller.conn.nc.unsubscribe_raw(puller._sub)
            appended = await asyncio.to_thread(log.append, [event(), event()])
            got: list[int] = []
            deadline = time.monotonic() + 10
            while len(got) < len(appended) and time.monotonic() < deadline:
                got += [e.replay_id for e in await cursor.fetch(10, 0.3)]
            assert cursor._puller is not puller
            return got
        finally:
            await cursor.close()

    assert asyncio.run(scenario()) == [1, 2]
