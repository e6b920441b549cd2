"""Reading the NATS event log: a subscriber's cursor and the ephemeral pull consumer behind it.

A cursor is one ephemeral pull consumer (no acks, starting after its position, filtered to the topic when
there is one, in memory, dropped by the server after ``cursor_idle_seconds`` without pulls) and one inbox
subscription, on the connection of the loop it is fetched from. A fetch is one ``no_wait`` pull request for
the whole batch; only when nothing is pending does it long-poll for the first event (then ``no_wait`` again
for the rest of the batch). A fetch that hands out a full batch asks for the next one before returning, so it
is on its way while the caller delivers this one. ``NatsLog.read`` is a cursor used once.

A cursor outlives its consumers: a server that is down, restarted or stalled costs a subscriber time, never an
event (see ``NatsCursor``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from collections import deque
from typing import TYPE_CHECKING, Any

from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError

from interlink.bus.backend import Cursor
from interlink.bus.model import StoredEvent
from interlink.bus.nats_client import _API, _NS, _STATUS_PREFIX
from interlink.errors import BusUnavailable

if TYPE_CHECKING:
    from interlink.bus.nats_client import _Conn
    from interlink.bus.nats_log import NatsLog

log = logging.getLogger(__name__)

_MAX_PULL_BATCH = 500  # messages per pull request: bounds what one request can buffer (NATS payloads are <= 1 MB)
# JetStream API error codes this module acts on.
_ERR_CONSUMER_NOT_FOUND = 10014
_ERR_NO_MESSAGE_FOUND = 10037


class NatsCursor(Cursor):
    """A subscriber's read position: an ephemeral pull consumer on the connection of the loop it is fetched from.

    The position only moves with the events ``fetch`` returns, so whatever happens to the consumer behind it
    (dropped by a server restart, stalled after a reconnect) a fresh one started right after the position
    continues without a gap or a repeat:

    * while the server is unreachable, ``fetch`` returns nothing after waiting (the subscriber stays connected
      and gets its keep-alives) and drops its consumer; the next fetch once the connection is back starts a new
      one;
    * a watchdog: when fetches have found nothing for ``NatsLog.cursor_stall_seconds`` the cursor asks the
      stream for the newest sequence of its topic; if that is past the position, the consumer is stalled (a pull
      consumer can stop delivering after a reconnect while its server-side state looks fine) and is recreated.
      A check that finds nothing newer doubles the time to the next one (up to 8 times), so idle subscriptions
      cost little.
    """

    def __init__(self, log: NatsLog, stream: str, subject: str | None, after: int) -> None:
        self._log = log
        self._stream = stream
        self._subject = subject
        self.position = max(0, after)
        self._puller: _Puller | None = None
        self._closed = False
        self._checked_at = time.monotonic()  # the last time events arrived or the watchdog found none missing
        self._check_every = log.cursor_stall_seconds
        self._outage = False  # the last fetch found the server unreachable (logged once per outage)

    async def fetch(self, limit: int, wait: float) -> list[StoredEvent]:
        if limit <= 0:
            return []
        if self._closed:
            raise RuntimeError("the cursor is closed")
        began = time.monotonic()
        try:
            conn = await self._log._here()
        except BusUnavailable as error:  # no connection for this loop yet, and the server cannot be reached
            return await self._unreachable(None, error, wait)
        if not conn.connected:
            return await self._unreachable(conn, conn.unreachable(), wait)
        puller = self._puller
        if puller is None or puller.conn is not conn:
            if puller is not None:  # fetched from another loop than before
                puller.discard()
            puller = self._puller = _Puller(conn, self._stream, self._subject, self.position,
                                            idle_seconds=self._log.cursor_idle_seconds)
        try:
            events = await puller.fetch(limit, wait, self.position)
        except (BusUnavailable, NatsError) as error:
            if isinstance(error, BusUnavailable) and error.err_code:
                raise  # JetStream answered, and refused (the stream is gone ...): not an outage
            return await self._unreachable(conn, error, max(0.0, wait - (time.monotonic() - began)))
        if self._outage:
            self._outage = False
            log.info("NATS cursor on %s is reading again after %d", self._subject or self._stream, self.position)
        if events:
            self.position = events[-1].replay_id
            self._checked_at = time.monotonic()
            self._check_every = self._log.cursor_stall_seconds
        elif time.monotonic() - self._checked_at >= self._check_every:
            events = await self._watchdog(conn, limit)
        return events

    async def _unreachable(self, conn: _Conn | None, error: BaseException, wait: float) -> list[StoredEvent]:
        """Nothing can be read now: drop the consumer (the next fetch starts a new one after the position) and wait
        up to ``wait`` for the connection to come back. A subscriber sees an idle subscription, not an error."""
        if not self._outage:
            self._outage = True
            log.warning("NATS cursor on %s cannot read after %d (%s: %s); resuming from there once the server is "
                        "back", self._subject or self._stream, self.position, type(error).__name__, error)
        puller, self._puller = self._puller, None
        if puller is not None:
            puller.abort()
            with contextlib.suppress(Exception):
                await puller.close()  # best effort: an ephemeral consumer expires anyway
        # Disconnected: back as soon as the connection is. Connected (JetStream itself is not answering yet, as
        # just after a server restart): the whole wait, so a subscription loop does not spin.
        down = conn is None or not conn.connected
        deadline = time.monotonic() + wait
        while not self._closed and not (down and conn is not None and conn.connected):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            await asyncio.sleep(min(0.1, remaining))
        self._checked_at = time.monotonic()  # the watchdog starts over once reading works again
        self._check_every = self._log.cursor_stall_seconds
        return []

    async def _watchdog(self, conn: _Conn, limit: int) -> list[StoredEvent]:
        """Nothing came for a while: if the stream holds newer events of this topic, the consumer is stalled, and
        a new one reads them now."""
        try:
            head = await self._head(conn)
        except BusUnavailable as error:
            log.debug("NATS cursor watchdog on %s: %s", self._subject or self._stream, error)
            return []
        self._checked_at = time.monotonic()
        if head <= self.position:
            self._check_every = min(self._check_every * 2, self._log.cursor_stall_seconds * 8)
            return []
        self._check_every = self._log.cursor_stall_seconds
        log.warning("NATS cursor on %s is stalled at %d while the stream holds events up to %d; recreating its "
                    "consumer", self._subject or self._stream, self.position, head)
        puller, self._puller = self._puller, None
        if puller is not None:
            puller.abort()
            with contextlib.suppress(Exception):
                await puller.close()
        puller = self._puller = _Puller(conn, self._stream, self._subject, self.position,
                                        idle_seconds=self._log.cursor_idle_seconds)
        events = await puller.fetch(limit, 0.0, self.position)
        if events:
            self.position = events[-1].replay_id
        return events

    async def _head(self, conn: _Conn) -> int:
        """The newest sequence of this cursor's topic (of the whole stream when it reads a family)."""
        if self._subject is None:
            state = (await conn.api(f"{_API}.STREAM.INFO.{self._stream}", None))["state"]
            return int(state.get("last_seq", 0))
        try:
            answer = await conn.api(f"{_API}.STREAM.MSG.GET.{self._stream}", {"last_by_subj": self._subject})
        except BusUnavailable as error:
            if error.err_code == _ERR_NO_MESSAGE_FOUND:
                return 0
            raise
        return int(answer["message"]["seq"])

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        puller, self._puller = self._puller, None
        if puller is None:
            return
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if here is not puller.conn.loop:
            puller.discard()
            return
        with contextlib.suppress(RuntimeError, BusUnavailable, NatsError):
            await puller.close()


class _Puller:
    """One ephemeral pull consumer and the inbox its messages arrive on. Lives on (and only on) its connection's
    loop.

    Messages delivered by the server but not yet handed out wait raw in ``_buffer`` (so a cancelled fetch
    loses nothing); events taken for a fetch that has not returned wait in ``_staged``. ``position`` is the
    last replay id handed out; a caller whose position differs (it lost a batch, or moved) gets a fresh
    consumer starting right after its own position. A consumer the server dropped (idle too long, server
    restart) is recreated the same way.

    A fetch that hands out a full batch sends the ``no_wait`` request for the next one before returning, so
    while the caller delivers this batch the next is already on its way (at most one batch read ahead); the
    next fetch first waits for that request to end. A fetch that may wait, right after the server said it
    had nothing (``_dry``), goes straight to the long poll.
    """

    def __init__(self, conn: _Conn, stream: str, subject: str | None, position: int, *, idle_seconds: float) -> None:
        self.conn = conn
        self._log = conn.log
        self._stream = stream
        self._subject = subject
        self.position = max(0, position)
        self._idle = idle_seconds
        self._consumer: str | None = None
        self._next_subject = b""
        self._sub: Subscription | None = None
        self._inbox = ""
        self._buffer: deque[tuple[bytes, bytes, bytes, bytes | None]] = deque()
        self._staged: list[StoredEvent] = []
        self._current = b""  # reply subject of the pull request in flight
        self._status: bytes | None = None  # its terminal status (404 no messages, 408 expired, 409 ...)
        self._received = 0  # messages delivered so far
        self._target = 0  # ``_received`` once it has all it asked for
        self._deadline = 0.0  # when it counts as unanswered
        self._dry = False  # the last request ended with the server having nothing more
        self._waiter: asyncio.Future[None] | None = None
        self._tokens = itertools.count(1)
        self._contact = 0.0
        self._suspect = False
        self._stale = False  # the connection dropped since the consumer was made: make a new one
        self._closed = False
        self._lock = asyncio.Lock()
        conn.pullers.add(self)

    # -- consumer lifecycle ----------------------------------------------------------------------------------

    async def _create(self) -> None:
        await self._drop()
        self._buffer.clear()
        self._staged.clear()
        self._current, self._dry = b"", False
        nc = self.conn.nc
        self._inbox = nc.new_inbox() + "."
        self._sub = await nc.subscribe_raw(self._inbox + "*", self._on_message)
        name = "il_" + uuid.uuid4().hex[:22]
        config: dict[str, Any] = {
            "name": name, "deliver_policy": "by_start_sequence", "opt_start_seq": self.position + 1,
            "ack_policy": "none", "replay_policy": "instant", "inactive_threshold": int(self._idle * _NS),
            "mem_storage": True, "num_replicas": 1}
        create = f"{_API}.CONSUMER.CREATE.{self._stream}.{name}"
        if self._subject is not None:
            config["filter_subject"] = self._subject
            create += "." + self._subject
        await self.conn.api(create, {"stream_name": self._stream, "config": config})
        self._consumer = name
        self._next_subject = f"{_API}.CONSUMER.MSG.NEXT.{self._stream}.{name}".encode()
        self._contact = time.monotonic()
        self._suspect = self._stale = False

    async def _drop(self) -> None:
        """Forget the current consumer and inbox (deleting the consumer is best effort: it expires anyway)."""
        sub, self._sub = self._sub, None
        consumer, self._consumer = self._consumer, None
        nc = self.conn.nc
        if sub is not None:
            with contextlib.suppress(Exception):
                await nc.unsubscribe_raw(sub)
        if consumer is not None and not nc.is_closed:
            with contextlib.suppress(Exception):
                await self.conn.api(f"{_API}.CONSUMER.DELETE.{self._stream}.{consumer}", None)

    async def _ensure(self) -> None:
        if self._consumer is None:
            await self._create()
            return
        if self._suspect or time.monotonic() - self._contact > self._idle / 2:
            try:
                await self.conn.api(f"{_API}.CONSUMER.INFO.{self._stream}.{self._consumer}", None)
            except BusUnavailable as error:
                if error.err_code != _ERR_CONSUMER_NOT_FOUND:
                    raise
                log.info("NATS consumer %s on %s is gone; recreating it after %d", self._consumer, self._stream,
                         self.position)
                self._consumer = None  # nothing left to delete
                await self._create()
                return
            self._contact = time.monotonic()
            self._suspect = False

    def abort(self) -> None:
        """End a fetch in progress and refuse further ones (the bus is closing)."""
        self._closed = True
        self._wake()

    def connection_lost(self) -> None:
        """The connection dropped (called by it). Whatever the server sent meanwhile is lost, the pull request in
        flight with it, and a restarted server has forgotten the consumer: the fetch in progress ends with what it
        has, and the next one starts a new consumer right after the position."""
        self._stale = True
        self._wake()

    async def close(self) -> None:
        self.abort()
        await self._drop()
        self._buffer.clear()
        self._staged.clear()

    def discard(self) -> None:
        """Close from another thread or loop than this puller's (best effort: an idle consumer expires anyway)."""
        self.abort()
        loop = self.conn.loop
        if loop.is_running():
            asyncio.run_coroutine_threadsafe(self.close(), loop)

    # -- messages --------------------------------------------------------------------------------------------

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _on_message(self, subject: bytes, reply: bytes, data: bytes, headers: bytes | None) -> None:
        """A raw message on the inbox (called by the protocol parser: quick, never raising)."""
        if not data and headers is not None and headers.startswith(_STATUS_PREFIX):
            status = headers[9:12]
            if status != b"100" and subject == self._current:
                self._status = status
                self._wake()
            return  # heartbeats, and the end of requests we stopped waiting for
        self._buffer.append((subject, reply, data, headers))
        self._dry = False
        self._received += 1
        if self._received >= self._target:
            self._wake()

    async def _request(self, batch: int, expires: float | None) -> None:
        """Send a pull request for ``batch`` events (``no_wait``, or waiting up to ``expires`` s)."""
        reply = f"{self._inbox}{next(self._tokens)}".encode()
        if expires is None:
            request = b'{"batch":%d,"no_wait":true}' % batch
            # A no_wait request is answered at once unless the consumer is gone (the server then stays silent).
            grace = min(1.0, self._log.request_timeout)
        else:
            request = b'{"batch":%d,"expires":%d}' % (batch, max(int(expires * _NS), 1_000_000))
            grace = expires + self._log.request_timeout
        self._current, self._status, self._target = reply, None, self._received + batch
        self._deadline = time.monotonic() + grace
        await self.conn.nc.publish_raw(b"PUB %s %s %d\r\n%s\r\n" % (self._next_subject, reply, len(request), request),
                                       1, len(request))

    def _in_flight(self) -> bool:
        return bool(self._current) and self._status is None and self._received < self._target and not self._closed

    async def _settle(self) -> None:
        """Wait for the request in flight to end: all it asked for buffered, the server ending it, or no answer
        in time (then the consumer is suspect)."""
        if not self._current:
            return
        try:
            if self._in_flight():
                remaining = self._deadline - time.monotonic()
                if remaining > 0:
                    loop = asyncio.get_running_loop()
                    waiter = self._waiter = loop.create_future()
                    timer = loop.call_later(remaining, self._wake)
                    try:
                        await waiter
                    finally:
                        timer.cancel()
                        self._waiter = None
                if self._in_flight():
                    self._suspect = True
                    return
            self._contact = time.monotonic()
            if self._status in (b"404", b"408"):
                self._dry = not self._buffer
            elif self._status is not None:
                log.debug("pull from %s ended with status %s", self._next_subject, self._status)
                self._suspect = True
        finally:
            self._current = b""

    async def _pull(self, batch: int, expires: float | None) -> None:
        """Ask for ``batch`` events and wait for the request to end (see ``_settle``)."""
        if not self._closed:
            await self._request(batch, expires)
            await self._settle()

    def _stage(self, limit: int) -> bool:
        """Move buffered events into ``_staged`` up to ``limit``; True when the buffer ran dry first."""
        staged, buffer, stored = self._staged, self._buffer, self._log._stored
        last = staged[-1].replay_id if staged else self.position
        while len(staged) < limit:
            if not buffer:
                return True
            event = stored(*buffer.popleft())
            if event.replay_id > last:
                staged.append(event)
                last = event.replay_id
        return False

    async def fetch(self, limit: int, wait: float, position: int, *, read_ahead: bool = True) -> list[StoredEvent]:
        """Up to ``limit`` events after ``position``, waiting up to ``wait`` s for the first one."""
        async with self._lock:
            if self._closed:
                raise RuntimeError("the cursor is closed")
            if position != self.position or self._consumer is None or self._stale:
                self.position = max(0, position)
                await self._create()
            else:
                await self._settle()  # the read-ahead of the last fetch
                await self._ensure()
            if wait <= 0 or not self._dry or self._buffer or self._staged:
                await self._fill(limit)
            if not self._staged and wait > 0 and not self._stale:
                if self._suspect:
                    await self._ensure()
                await self._pull(1, wait)
                if self._stage(limit) and self._staged:
                    await self._fill(limit)
            if self._closed:
                raise RuntimeError("the cursor is closed")
            if read_ahead and len(self._staged) >= limit and len(self._buffer) < limit and not self._stale:
                await self._request(min(limit, _MAX_PULL_BATCH), None)
            events, self._staged = self._staged[:limit], self._staged[limit:]
            if events:
                self.position = events[-1].replay_id
            return events

    async def _fill(self, limit: int) -> None:
        """Stage what the server has right now, up to ``limit`` (one round trip per ``_MAX_PULL_BATCH``)."""
        retried = False
        while self._stage(limit) and not self._closed and not self._stale:
            if self._suspect:  # the last request went unanswered: check (and recreate) the consumer once
                if retried:
                    return
                retried = True
                await self._ensure()
            await self._pull(min(limit - len(self._staged), _MAX_PULL_BATCH), None)
            if self._status is not None:  # the server had fewer than asked for
                self._stage(limit)
                return
