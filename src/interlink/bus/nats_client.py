"""The connection layer of the NATS event log: nats-py below its public API, the message body, one connection.

The hot path below nats-py's public API
    The client is a small subclass of nats-py's: the log's own subscriptions (the acknowledgement inbox and
    the cursors' inboxes) get the raw subject, reply, body and header bytes straight from the protocol
    parser (itself a quicker one for runs of messages), with no ``Msg`` object, queue or task per message,
    and a batch of events goes out as one pre-built run of ``PUB`` commands. Acknowledgements are matched
    to their batch by the token in their subject and their sequence is read without a JSON parser.

Messages
    The subject gives the topic; the body is a compact binary prefix followed by the Avro payload, so that
    neither side spends time on NATS headers (encoding ``HPUB`` and parsing headers into dicts costs more
    than everything else about a message)::

        version (1 byte, = 1) | created ms (8, big-endian) | schema id length (1) | event uuid length (1)
        | schema id (UTF-8) | event uuid (UTF-8) | payload

    Events appended synchronously (the records layer's outbox relay, which may re-relay them after a crash)
    also carry ``Nats-Msg-Id`` = event uuid, so JetStream's duplicate window answers a re-relayed event with
    its original sequence; events from ``append_async`` (the Pub/Sub API's Publish, always fresh) do not.

Connections
    A ``_Conn`` is one client on one event loop, touched only from that loop: it connects, makes JetStream
    API requests, appends (waiting for the acknowledgements on its inbox) and keeps the cursors' pullers
    that read through it, so that closing it ends their work.

Outages
    nats-py reconnects by itself (forever, every half second) and would queue everything published meanwhile,
    sending it after the reconnect, long after its append was reported as failed. So nothing is queued: while
    the connection is down appends and JetStream requests fail at once with BusUnavailable (nothing sent), and
    when it drops, appends still waiting for their acknowledgement fail at once too (their commands taken back
    out of the outgoing buffer when still there: certainly not stored; otherwise "may or may not be stored",
    which the outbox's re-relay with ``Nats-Msg-Id`` settles). The cursors' pullers are told, so that they
    replace their consumers (see ``nats_cursor``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
import time
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from nats import errors as nats_errors
from nats.aio.client import Client
from nats.aio.subscription import Subscription
from nats.errors import NoRespondersError, ProtocolError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.protocol.parser import AWAITING_CONTROL_LINE, Parser

from interlink.bus.model import NewEvent, StoredEvent
from interlink.errors import BusUnavailable, ConfigurationError

if TYPE_CHECKING:
    from interlink.bus.nats_cursor import _Puller
    from interlink.bus.nats_log import NatsLog

log = logging.getLogger(__name__)

_NS = 1_000_000_000
_OUTAGE_LOG_SECONDS = 30.0  # while the server is unreachable, one warning per connection this often
_API = "$JS.API"

# The body prefix: version, created ms, schema id length, event uuid length (then the schema id, the uuid and
# the payload).
_BODY_VERSION = 1
_BODY_HEAD = struct.Struct(">BqBB")
_BODY_HEAD_SIZE = _BODY_HEAD.size

H_MSG_ID = "Nats-Msg-Id"  # the header of synchronously appended events (the duplicate window's key)
_MSG_ID_HEADER = b"NATS/1.0\r\n" + H_MSG_ID.encode() + b": %s\r\n\r\n"
_STATUS_PREFIX = b"NATS/1.0 "  # an inline status (a pull request's end, a heartbeat, no responders)

# (subject, reply, body, raw headers or None) of a message, as the protocol parser hands it over.
RawHandler = Callable[[bytes, bytes, bytes, "bytes | None"], None]


# -- the protocol --------------------------------------------------------------------------------------------


class _Parser(Parser):
    """nats-py's protocol parser, with a quicker path for runs of ``MSG``/``HMSG`` (nearly all a busy bus reads).

    Whole messages are cut out of the chunk read by offset, instead of by regular expression and deleting
    each from the front of the buffer, and a message for a raw handler (``_Client.subscribe_raw``) goes
    straight to it; anything else (``INFO``, ``PING``, ``+OK``, ``-ERR`` ...), and a message the stock
    parser is in the middle of, is left to the stock parser.
    """

    def reset(self) -> None:
        super().reset()
        self.wanted = 0  # bytes the partial message at the start of ``buf`` needs before it is worth a look

    async def parse(self, data: bytes = b"") -> None:
        buf = self.buf
        if self.state != AWAITING_CONTROL_LINE:
            await super().parse(data)
            return
        if buf:
            if len(buf) + len(data) < self.wanted:
                buf.extend(data)
                return
            data = bytes(buf) + data
            buf.clear()
        self.wanted = 0
        process = self.nc._process_msg
        handlers: dict[int, RawHandler] = getattr(self.nc, "_raw_handlers", {})
        size = len(data)
        pos = 0
        try:
            while pos < size:
                if data.startswith(b"MSG ", pos):
                    headed = False
                elif data.startswith(b"HMSG ", pos):
                    headed = True
                else:
                    break
                end = data.find(b"\r\n", pos)
                if end < 0:
                    break
                args = data[pos:end].split()
                try:
                    if headed:  # HMSG <subject> <sid> [reply] <header bytes> <total bytes>
                        subject, sid, reply = args[1], int(args[2]), args[3] if len(args) == 6 else b""
                        header_size, total = int(args[-2]), int(args[-1])
                    else:  # MSG <subject> <sid> [reply] <bytes>
                        subject, sid, reply = args[1], int(args[2]), args[3] if len(args) == 5 else b""
                        header_size, total = 0, int(args[-1])
                    if len(args) not in ((5, 6) if headed else (4, 5)) or not 0 <= header_size <= total:
                        raise ValueError(args)
                except (ValueError, IndexError):
                    raise ProtocolError("nats: malformed MSG") from None
                start = end + 2
                stop = start + total
                if stop + 2 > size:
                    self.wanted = stop + 2 - pos
                    break
                pos = stop + 2
                payload = data[start + header_size:stop]
                headers = data[start:start + header_size] if headed else None
                handler = handlers.get(sid)
                if handler is None:
                    await process(sid, subject, reply, payload, headers)
                else:  # one of ours: straight to it (what _Client._process_msg would do, without a coroutine)
                    try:
                        handler(subject, reply, payload, headers)
                    except Exception:
                        log.exception("NATS event bus: handling a message on %r failed", subject)
        finally:
            if pos < size:
                buf.extend(memoryview(data)[pos:])
        if buf and not (buf.startswith(b"MSG ") or buf.startswith(b"HMSG ")):
            self.wanted = 0
            await super().parse()


class _Client(Client):
    """nats-py's client, plus subscriptions whose messages go to a plain function as raw bytes.

    ``_process_msg``, ``_send_command`` and the parser (``_ps``) are nats-py internals (stable since nats-py
    2.0): a raw handler runs inside the protocol parser, so it must be quick and must not raise (errors are
    logged and dropped).
    """

    def __init__(self) -> None:
        super().__init__()
        self._ps = _Parser(self)
        self._raw_handlers: dict[int, RawHandler] = {}

    async def subscribe_raw(self, subject: str, handler: RawHandler) -> Subscription:
        subscription = await self.subscribe(subject, pending_bytes_limit=0)
        self._raw_handlers[subscription._id] = handler
        return subscription

    async def unsubscribe_raw(self, subscription: Subscription) -> None:
        self._raw_handlers.pop(subscription._id, None)
        await subscription.unsubscribe()

    async def _process_msg(self, sid: int, subject: bytes, reply: bytes, data: bytes,
                           headers: bytes | None) -> None:  # type: ignore[override]
        handler = self._raw_handlers.get(sid)
        if handler is None:
            await super()._process_msg(sid, subject, reply, data, headers)  # type: ignore[arg-type]
            return
        try:
            handler(subject, reply, data, headers)
        except Exception:
            log.exception("NATS event bus: handling a message on %r failed", subject)

    async def publish_raw(self, commands: bytes, count: int, payload_bytes: int) -> None:
        """Send pre-built ``PUB``/``HPUB`` commands (the checks of ``publish``, without its per-message work).

        Unlike ``publish``, nothing is queued while the connection is down: nats-py would send it after the
        reconnect, long after its append was reported as failed (and a stale pull request is useless).
        """
        if self.is_closed:
            raise nats_errors.ConnectionClosedError
        if self.is_draining_pubs:
            raise nats_errors.ConnectionDrainingError
        if not self.is_connected:
            raise nats_errors.ConnectionReconnectingError
        self.stats["out_msgs"] += count
        self.stats["out_bytes"] += payload_bytes
        await self._send_command(commands)
        if self._flush_queue is not None and self._flush_queue.empty():
            await self._flush_pending()

    def withdraw(self, commands: bytes) -> bool:
        """Take ``commands`` (the very object given to ``publish_raw``) back out of the outgoing buffer; False when
        they were already written to the socket (or never queued)."""
        pending = self._pending
        for index, queued in enumerate(pending):
            if queued is commands:
                del pending[index]
                self._pending_data_size = max(0, self._pending_data_size - len(commands))
                return True
        return False


# -- the message body ----------------------------------------------------------------------------------------


def _body(event: NewEvent) -> bytes:
    """An event's message body: the binary prefix, then the payload."""
    schema, event_uuid = event.schema_id.encode(), event.event_uuid.encode()
    try:
        head = _BODY_HEAD.pack(_BODY_VERSION, event.created_ms, len(schema), len(event_uuid))
    except struct.error:
        raise ValueError(f"cannot store event {event.event_uuid!r} on NATS: its schema id and uuid are limited to "
                         "255 bytes each") from None
    return b"".join((head, schema, event_uuid, event.payload))


def _stored_event(seq: int, topic: str, data: bytes) -> StoredEvent:
    """The event in a message body, stored at ``seq``. A body not in this format (published into the subject by
    something else) is all payload."""
    if data[:1] == b"\x01" and len(data) >= _BODY_HEAD_SIZE:
        _version, created, schema_length, uuid_length = _BODY_HEAD.unpack_from(data)
        start = _BODY_HEAD_SIZE + schema_length
        end = start + uuid_length
        if len(data) >= end:
            return StoredEvent(seq, topic, data[start:end].decode(errors="replace"),
                               data[_BODY_HEAD_SIZE:start].decode(errors="replace"), data[end:], created)
    return StoredEvent(seq, topic, "", "", data, 0)


def _created_ms(head: bytes) -> int:
    """The creation time in the first 9 bytes of a body (version and created ms); 0 for a body of another format."""
    if len(head) >= 9 and head[0] == _BODY_VERSION:
        return int.from_bytes(head[1:9], "big", signed=True)
    return 0


# -- a connection --------------------------------------------------------------------------------------------


class _Batch:
    """The acknowledgements one append waits for: tokens ``base`` .. ``base + len(seqs) - 1``."""

    __slots__ = ("base", "commands", "future", "remaining", "seqs", "topics")

    def __init__(self, base: int, topics: list[str], future: asyncio.Future[list[int]]) -> None:
        self.base = base
        self.topics = topics
        self.seqs = [0] * len(topics)
        self.remaining = len(topics)
        self.future = future
        self.commands = b""  # what was handed to the client: taken back if still unsent when the append fails


class _Conn:
    """A connection and the event loop it lives on: its acknowledgement inbox, appends in flight and cursors."""

    def __init__(self, log: NatsLog, loop: asyncio.AbstractEventLoop) -> None:
        self.log = log
        self.loop = loop
        self.nc = _Client()
        self.ready = False  # connected (until then, errors are the caller's to report)
        self.closing = False
        self.closed: asyncio.Future[None] = loop.create_future()
        self.guard: asyncio.Task[None] | None = None
        self.ack_root = b""
        self.acks: dict[int, _Batch] = {}
        self.next_token = 1
        self.pullers: weakref.WeakSet[_Puller] = weakref.WeakSet()
        self.outage_since: float | None = None  # monotonic time the connection was lost (None: connected)
        self._error_logged_at = 0.0

    async def connect(self) -> None:
        """Connect (ConfigurationError if the server is unreachable) and subscribe to the acknowledgement inbox."""
        log_, nc = self.log, self.nc
        last_error: list[BaseException] = []

        async def on_error(error: Exception) -> None:
            last_error.append(error)
            if self.ready and not self.closing and not log_._closing:
                # While the server is down every reconnect attempt (two a second) fails: say so now and then.
                now = time.monotonic()
                if now - self._error_logged_at >= _OUTAGE_LOG_SECONDS:
                    self._error_logged_at = now
                    log.warning("NATS event bus %s: %s", log_.url, error)

        async def on_disconnect() -> None:
            if self.outage_since is None:
                self.outage_since = time.monotonic()
            self._connection_lost()
            if self.ready and not self.closing and not log_._closing:
                log.warning("NATS event bus disconnected from %s; reconnecting", log_.url)

        async def on_reconnect() -> None:
            down = time.monotonic() - self.outage_since if self.outage_since is not None else 0.0
            self.outage_since = None
            self._error_logged_at = 0.0
            log.warning("NATS event bus reconnected to %s after %.1fs", log_.url, down)

        try:
            await asyncio.wait_for(
                nc.connect(servers=[log_.url], name="interlink",
                           connect_timeout=log_.connect_timeout,  # type: ignore[arg-type]
                           allow_reconnect=True, max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                           error_cb=on_error, disconnected_cb=on_disconnect, reconnected_cb=on_reconnect),
                log_.connect_timeout)
            ack_root = nc.new_inbox() + "."
            self.ack_root = ack_root.encode()
            await nc.subscribe_raw(ack_root + "*", self._on_ack)
            self.ready = True
        except (Exception, asyncio.CancelledError) as error:
            self.closing = True
            with contextlib.suppress(Exception):
                await nc.close()
            if isinstance(error, asyncio.CancelledError):
                raise
            cause = last_error[-1] if isinstance(error, TimeoutError) and last_error else error
            detail = f"{type(cause).__name__}: {cause}" if str(cause) else "no answer"
            raise ConfigurationError(f"cannot reach the NATS server at {log_.url} within {log_.connect_timeout:g}s "
                                     f"({detail}); check the bus URL or start nats-server "
                                     "with JetStream (-js)") from error

    @property
    def connected(self) -> bool:
        return self.nc.is_connected

    def unreachable(self) -> BusUnavailable:
        """The error of an operation refused because the connection is down (nothing was sent)."""
        down = f" for {time.monotonic() - self.outage_since:.1f}s" if self.outage_since is not None else ""
        return BusUnavailable(f"the NATS event bus at {self.log.url} is unreachable{down} (reconnecting); "
                              "nothing was sent, try again later")

    async def api(self, subject: str, body: dict[str, Any] | None) -> dict[str, Any]:
        """One JetStream API request; BusUnavailable carries JetStream's error (``err_code``) or the timeout.

        Refused at once while the connection is down (nats-py would queue the request until the reconnect)."""
        log_ = self.log
        if not self.nc.is_connected:
            raise self.unreachable()
        payload = json.dumps(body).encode() if body is not None else b""
        try:
            reply = await self.nc.request(subject, payload, timeout=log_.request_timeout)
        except NatsTimeoutError:
            raise BusUnavailable(f"the NATS server at {log_.url} did not answer {subject} within "
                                 f"{log_.request_timeout:g}s") from None
        except NoRespondersError:
            raise BusUnavailable(f"nothing answers {subject} on {log_.url}: is JetStream enabled?") from None
        answer: dict[str, Any] = json.loads(reply.data)
        error = answer.get("error")
        if error:
            raise BusUnavailable(f"{subject}: {error.get('description', error)}",
                                 err_code=int(error.get("err_code", 0)))
        return answer

    def _connection_lost(self) -> None:
        """The connection is lost: acknowledgements still owed will never come (the server sends them once, to a
        connection that is gone), so the appends waiting for them fail now. Commands still in the outgoing buffer
        are taken back (nats-py would send them after the reconnect): those events are certainly not stored.
        The cursors' pullers start new consumers (messages sent to them meanwhile are lost too)."""
        for puller in list(self.pullers):
            puller.connection_lost()
        batches = {id(batch): batch for batch in self.acks.values()}
        self.acks.clear()
        for batch in batches.values():
            if batch.future.done():
                continue
            if batch.commands and self.nc.withdraw(batch.commands):
                message = (f"the connection to the NATS server at {self.log.url} was lost before these events were "
                           "sent; nothing was stored, try again later")
            else:
                message = (f"the connection to the NATS server at {self.log.url} was lost before it acknowledged "
                           f"{batch.remaining} of {len(batch.topics)} events; they may or may not be stored")
            batch.future.set_exception(BusUnavailable(message))

    def abort(self) -> None:
        """End the fetches and appends in progress (on this connection's loop)."""
        self.closing = True
        for puller in list(self.pullers):
            puller.abort()
        for batch in self.acks.values():
            if not batch.future.done():
                batch.future.set_exception(BusUnavailable("the NATS event bus closed before the server acknowledged"))
        self.acks.clear()

    async def close(self) -> None:
        """Drain and close (on this connection's loop)."""
        self.abort()
        try:
            await asyncio.wait_for(self.nc.drain(), self.log.request_timeout)
        except Exception:
            with contextlib.suppress(Exception):
                await self.nc.close()
        finally:
            if not self.closed.done():
                self.closed.set_result(None)

    # -- writing ---------------------------------------------------------------------------------------------

    async def append(self, events: Sequence[NewEvent], *, msg_ids: bool) -> list[int]:
        """Publish ``events`` (with ``Nats-Msg-Id`` when ``msg_ids``) and wait for every acknowledgement."""
        log, nc = self.log, self.nc
        # Everything is encoded (and malformed topics fail) before anything is sent.
        root, base, limit = self.ack_root, self.next_token, nc.max_payload
        commands: list[bytes] = []
        payload_bytes = 0
        for token, event in enumerate(events, base):
            subject, body = log._subject_of(event.topic), _body(event)
            if len(body) > limit:
                raise BusUnavailable(f"event {event.event_uuid} is {len(body)} bytes on the wire; the NATS server "
                                     f"at {log.url} takes at most {limit}")
            if msg_ids:
                if "\r" in event.event_uuid or "\n" in event.event_uuid:
                    raise ValueError(f"bad event uuid {event.event_uuid!r}")
                header = _MSG_ID_HEADER % event.event_uuid.encode()
                commands.append(b"HPUB %s %s%d %d %d\r\n" % (subject, root, token, len(header),
                                                              len(header) + len(body)))
                commands.append(header)
            else:
                commands.append(b"PUB %s %s%d %d\r\n" % (subject, root, token, len(body)))
            commands.append(body)
            commands.append(b"\r\n")
            payload_bytes += len(body)
        count = len(events)
        self.next_token = base + count
        if not nc.is_connected:
            raise self.unreachable()
        batch = _Batch(base, [event.topic for event in events], asyncio.get_running_loop().create_future())
        batch.commands = b"".join(commands)
        acks = self.acks
        for token in range(base, base + count):
            acks[token] = batch
        try:
            # One command run, queued without yielding: a batch's messages are contiguous in their streams (as
            # in the SQLite log) even with other appends in flight on this connection.
            await nc.publish_raw(batch.commands, count, payload_bytes)
            try:
                return await asyncio.wait_for(batch.future, log.request_timeout)
            except TimeoutError:
                if nc.withdraw(batch.commands):
                    raise BusUnavailable(f"the NATS server at {log.url} could not be sent {count} events within "
                                         f"{log.request_timeout:g}s; nothing was stored") from None
                raise BusUnavailable(f"the NATS server at {log.url} did not acknowledge {batch.remaining} of "
                                     f"{count} events within {log.request_timeout:g}s; they may or may not "
                                     "be stored") from None
        finally:
            if batch.remaining:
                for token in range(base, base + count):
                    acks.pop(token, None)
            if batch.future.done() and not batch.future.cancelled():
                batch.future.exception()  # retrieved: a failed batch reports its first error only

    def _on_ack(self, subject: bytes, _reply: bytes, data: bytes, headers: bytes | None) -> None:
        """A PubAck (``{"stream":"S","seq":12}``, maybe ``"duplicate":true``), an error, or no responders."""
        try:
            token = int(subject[len(self.ack_root):])
        except ValueError:
            return
        batch = self.acks.pop(token, None)
        if batch is None:
            return
        future = batch.future
        if future.done():
            return
        index = token - batch.base
        start = data.find(b'"seq":')
        if start >= 0 and b'"error"' not in data:
            start += 6
            end = data.find(b",", start)
            try:
                batch.seqs[index] = int(data[start:end] if end >= 0 else data[start:].rstrip(b"} \r\n"))
            except ValueError:
                pass
            else:
                batch.remaining -= 1
                if not batch.remaining:
                    future.set_result(batch.seqs)
                return
        topic = batch.topics[index]
        if not data and headers and headers.startswith(_STATUS_PREFIX + b"503"):
            future.set_exception(BusUnavailable(f"no JetStream stream on {self.log.url} stores {topic} (was it "
                                                "deleted?)"))
            return
        try:
            answer = json.loads(data)
            error = answer.get("error") or {"description": f"no sequence in {data[:200]!r}"}
        except (ValueError, AttributeError):
            future.set_exception(BusUnavailable(f"unexpected acknowledgement for {topic}: {data[:200]!r}"))
            return
        future.set_exception(BusUnavailable(f"JetStream refused an event on {topic}: "
                                            f"{error.get('description', error)}",
                                            err_code=int(error.get("err_code", 0))))

