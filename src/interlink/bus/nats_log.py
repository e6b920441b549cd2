"""The event log on NATS JetStream (``nats://host:port[?prefix=NAME]``), for several processes sharing one bus.

Channels to streams and subjects
    Each channel family is one stream, ``<PREFIX>_EVENT``, ``<PREFIX>_DATA`` and ``<PREFIX>_CHN``, holding the
    subjects ``<prefix>.<family>.>``; a topic is one subject in its family's stream::

        /event/Order__e           -> <prefix>.event.Order__e        (stream <PREFIX>_EVENT)
        /data/AccountChangeEvent  -> <prefix>.data.AccountChangeEvent (stream <PREFIX>_DATA)
        /data/Sales__chn          -> <prefix>.chn.Sales__chn         (stream <PREFIX>_CHN)

    Reading a whole family (``/data/ChangeEvents``) reads the stream; reading a topic filters on its subject.
    The payload is the message body; the subject gives the topic, ``Nats-Msg-Id`` is the event uuid (so
    JetStream's duplicate window drops a re-relayed event), and the schema id and creation time travel in
    ``Il-*`` headers.

Replay ids are stream sequences
    A replay id is the message's sequence in its family's stream: strictly increasing and never reused,
    even after purges, but numbered per family (the SQLite log numbers every family from one sequence).
    ``bounds`` comes from the stream state (``first_seq - 1`` .. ``last_seq``); retention is the stream's
    ``max_age``, and ``purge`` additionally cuts a stream below the first event created after a cutoff.

Why a loop thread of its own
    nats-py is asyncio-only, while appends come synchronously from the records layer's worker threads and
    cursors are pulled from whichever event loop serves a subscriber. One daemon thread runs a private
    event loop that owns the connection; synchronous methods submit coroutines to it with
    ``run_coroutine_threadsafe`` and wait, async ones (``append_async``, ``Cursor.fetch``) await the same
    future wrapped for their own loop, so they never block it. Nothing touches the connection from outside
    that loop.

Reading
    A cursor is one ephemeral pull consumer (no acks, starting after its position, filtered to the topic
    when there is one, in memory, dropped by the server after ``cursor_idle_seconds`` without pulls) and one
    inbox subscription. A fetch is one ``no_wait`` pull request for the whole batch; only when nothing is
    pending does it long-poll for the first event (then ``no_wait`` again for the rest of the batch).
    ``read`` is a cursor used once.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import logging
import re
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit, urlunsplit

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError

from interlink.bus.backend import Bounds, BusBackend, Cursor
from interlink.bus.model import FAMILIES, NewEvent, Selector, StoredEvent, family_of, parse_topic
from interlink.errors import BusUnavailable, ConfigurationError

log = logging.getLogger(__name__)

T = TypeVar("T")

_NS = 1_000_000_000
_API = "$JS.API"
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_MAX_PULL_BATCH = 500  # messages per pull request: bounds what one request can buffer (NATS payloads are <= 1 MB)

# JetStream API error codes this module acts on.
_ERR_CONSUMER_NOT_FOUND = 10014
_ERR_NO_MESSAGE_FOUND = 10037
_ERR_STREAM_NAME_IN_USE = 10058
_ERR_STREAM_NOT_FOUND = 10059

# Headers on every event message.
H_TOPIC, H_UUID, H_SCHEMA, H_CREATED, H_MSG_ID = "Il-Topic", "Il-Uuid", "Il-Schema", "Il-Created", "Nats-Msg-Id"


class NatsLog(BusBackend):
    """A ``BusBackend`` on NATS JetStream: one stream per channel family, replay id = stream sequence."""

    name = "nats"

    def __init__(self, url: str, *, prefix: str = "INTERLINK", retention_seconds: float = 72 * 3600,
                 connect_timeout: float = 2.0, request_timeout: float = 5.0, cursor_idle_seconds: float = 120.0,
                 duplicate_window_seconds: float = 120.0) -> None:
        parts = urlsplit(url)
        prefix = parse_qs(parts.query).get("prefix", [prefix])[-1]
        if not _PREFIX_RE.match(prefix):
            raise ConfigurationError(f"bad NATS bus prefix {prefix!r} in {url!r}: use letters, digits, '_' and '-'")
        self.url = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        self.prefix = prefix
        self.retention_seconds = retention_seconds
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self.cursor_idle_seconds = cursor_idle_seconds
        self.duplicate_window_seconds = duplicate_window_seconds
        self._subject_root = prefix.lower()
        self._stream_root = prefix.upper()
        self._subjects: dict[str, str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._nc: Client | None = None
        self._ack_root = ""
        self._acks: dict[str, tuple[asyncio.Future[int], str]] = {}
        self._tokens = itertools.count(1)
        self._append_lock: asyncio.Lock | None = None
        self._last_error: BaseException | None = None
        self._closing = False
        self._pullers: weakref.WeakSet[_Puller] = weakref.WeakSet()

    # -- names -----------------------------------------------------------------------------------------------

    def stream_name(self, family: str) -> str:
        """The stream holding a family: ``INTERLINK_EVENT``, ``INTERLINK_DATA``, ``INTERLINK_CHN``."""
        return f"{self._stream_root}_{family.upper()}"

    def stream_names(self) -> list[str]:
        """Every stream this bus uses, one per family."""
        return [self.stream_name(family) for family in FAMILIES]

    def family_subjects(self, family: str) -> str:
        """The wildcard of a family's subjects: ``interlink.event.>``."""
        return f"{self._subject_root}.{family}.>"

    def subject(self, topic: str) -> str:
        """A topic's subject: ``/event/Order__e`` -> ``interlink.event.Order__e``; TopicNotFound if malformed."""
        found = self._subjects.get(topic)
        if found is None:
            _kind, local = parse_topic(topic)
            found = f"{self._subject_root}.{family_of(topic)}.{local}"
            if len(self._subjects) < 100_000:
                self._subjects[topic] = found
        return found

    def _target(self, selector: Selector) -> tuple[str, str | None]:
        """(stream, filter subject or None for the whole stream) of a selector."""
        if selector.topic is None:
            return self.stream_name(selector.family), None
        return self.stream_name(family_of(selector.topic)), self.subject(selector.topic)

    # -- the loop thread -------------------------------------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the NATS loop and wait for it (from any thread but that loop's own)."""
        loop = self._loop
        if loop is None or self._nc is None:
            coro.close()
            raise RuntimeError("the NATS event bus is not open")
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("synchronous NatsLog methods cannot be called from the bus's own event loop")
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        limit = timeout if timeout is not None else self.request_timeout * 4 + 1
        try:
            return future.result(limit)
        except TimeoutError:
            if future.done():
                raise
            future.cancel()
            raise BusUnavailable(f"the NATS server at {self.url} did not answer within {limit:g}s") from None
        except NatsError as error:
            raise BusUnavailable(f"NATS event bus at {self.url}: {type(error).__name__}: {error}") from error

    async def _bridge(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` on the NATS loop from another event loop, without blocking that loop."""
        loop = self._loop
        if loop is None or self._nc is None:
            coro.close()
            raise RuntimeError("the NATS event bus is not open")
        try:
            if asyncio.get_running_loop() is loop:
                return await coro
            return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))
        except NatsError as error:
            raise BusUnavailable(f"NATS event bus at {self.url}: {type(error).__name__}: {error}") from error

    def _start_loop(self) -> None:
        loop = asyncio.new_event_loop()
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            started.set()
            try:
                loop.run_forever()
            finally:
                pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
                for task in pending:
                    task.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        thread = threading.Thread(target=run, name=f"interlink-nats-{self.prefix}", daemon=True)
        thread.start()
        started.wait()
        self._loop, self._thread = loop, thread

    def _stop_loop(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            if thread is not threading.current_thread():
                thread.join(timeout=10)

    # -- lifecycle -------------------------------------------------------------------------------------------

    def open(self) -> None:
        """Connect (ConfigurationError if the server is unreachable) and create or update the streams."""
        if self._nc is not None:
            return
        self._closing = False
        self._last_error = None
        self._start_loop()
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(self._open(), self._loop)
        try:
            self._nc = future.result(self.connect_timeout + self.request_timeout * (len(FAMILIES) + 2) + 1)
        except BaseException:
            future.cancel()
            self._stop_loop()
            raise

    async def _open(self) -> Client:
        nc = Client()

        async def on_error(error: Exception) -> None:
            self._last_error = error
            if self._nc is not None and not self._closing:
                log.warning("NATS event bus %s: %s", self.url, error)

        async def on_disconnect() -> None:
            if self._nc is not None and not self._closing:
                log.warning("NATS event bus disconnected from %s; reconnecting", self.url)

        async def on_reconnect() -> None:
            log.info("NATS event bus reconnected to %s", self.url)

        try:
            await asyncio.wait_for(
                nc.connect(servers=[self.url], name="interlink",
                           connect_timeout=self.connect_timeout,  # type: ignore[arg-type]
                           allow_reconnect=True, max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                           error_cb=on_error, disconnected_cb=on_disconnect, reconnected_cb=on_reconnect),
                self.connect_timeout)
        except (Exception, asyncio.CancelledError) as error:
            with contextlib.suppress(Exception):
                await nc.close()
            if isinstance(error, asyncio.CancelledError):
                raise
            cause = self._last_error if isinstance(error, TimeoutError) and self._last_error else error
            detail = f"{type(cause).__name__}: {cause}" if str(cause) else "no answer"
            raise ConfigurationError(f"cannot reach the NATS server at {self.url} within {self.connect_timeout:g}s "
                                     f"({detail}); check the bus URL or start nats-server "
                                     "with JetStream (-js)") from error
        try:
            try:
                await self._api_on(nc, f"{_API}.INFO", None)
            except BusUnavailable as error:
                raise ConfigurationError(f"the NATS server at {self.url} does not answer JetStream requests "
                                         f"({error}); start nats-server with JetStream enabled (-js)") from error
            for family in FAMILIES:
                await self._ensure_stream(nc, family)
            self._ack_root = nc.new_inbox() + "."
            await nc.subscribe(self._ack_root + "*", cb=self._on_ack, pending_bytes_limit=0)
            self._append_lock = asyncio.Lock()
        except BaseException:
            with contextlib.suppress(Exception):
                await nc.close()
            raise
        return nc

    def _stream_config(self, family: str) -> dict[str, Any]:
        max_age = max(0, int(self.retention_seconds * _NS))
        window = int(self.duplicate_window_seconds * _NS)
        if max_age:
            window = min(window, max_age)
        return {"name": self.stream_name(family), "subjects": [self.family_subjects(family)], "retention": "limits",
                "storage": "file", "discard": "old", "max_age": max_age, "duplicate_window": window,
                "max_msgs": -1, "max_bytes": -1, "max_msg_size": -1, "max_consumers": -1, "num_replicas": 1}

    async def _ensure_stream(self, nc: Client, family: str) -> None:
        config = self._stream_config(family)
        name = config["name"]
        try:
            await self._api_on(nc, f"{_API}.STREAM.CREATE.{name}", config)
        except BusUnavailable as error:
            if error.err_code != _ERR_STREAM_NAME_IN_USE:
                raise ConfigurationError(f"cannot create JetStream stream {name} on {self.url}: {error}") from error
            try:
                await self._api_on(nc, f"{_API}.STREAM.UPDATE.{name}", config)
            except BusUnavailable as update_error:
                raise ConfigurationError(f"JetStream stream {name} on {self.url} exists with a configuration that "
                                         f"cannot be updated: {update_error}") from update_error

    def close(self) -> None:
        """Drain and close the connection, then stop the loop thread."""
        if self._loop is None:
            return
        self._closing = True
        try:
            if self._nc is not None:
                future = asyncio.run_coroutine_threadsafe(self._close(self._nc), self._loop)
                with contextlib.suppress(Exception):
                    future.result(self.request_timeout + 2)
        finally:
            self._nc = None
            self._stop_loop()

    async def _close(self, nc: Client) -> None:
        for puller in list(self._pullers):
            puller.abort()
        for future, _subject in self._acks.values():
            if not future.done():
                future.set_exception(BusUnavailable("the NATS event bus closed before the server acknowledged"))
        self._acks.clear()
        try:
            await asyncio.wait_for(nc.drain(), self.request_timeout)
        except Exception:
            await nc.close()

    def delete_streams(self) -> None:
        """Delete this bus's streams and everything in them (tests and ``reset`` tools)."""
        self._run(self._delete_streams())

    async def _delete_streams(self) -> None:
        for name in self.stream_names():
            try:
                await self._api(f"{_API}.STREAM.DELETE.{name}", None)
            except BusUnavailable as error:
                if error.err_code != _ERR_STREAM_NOT_FOUND:
                    raise

    # -- JetStream API ---------------------------------------------------------------------------------------

    async def _api(self, subject: str, body: dict[str, Any] | None) -> dict[str, Any]:
        assert self._nc is not None, "the NATS event bus is not open"
        return await self._api_on(self._nc, subject, body)

    async def _api_on(self, nc: Client, subject: str, body: dict[str, Any] | None) -> dict[str, Any]:
        """One JetStream API request; BusUnavailable carries JetStream's error (``err_code``) or the timeout."""
        payload = json.dumps(body).encode() if body is not None else b""
        try:
            reply = await nc.request(subject, payload, timeout=self.request_timeout)
        except NatsTimeoutError:
            raise BusUnavailable(f"the NATS server at {self.url} did not answer {subject} within "
                               f"{self.request_timeout:g}s") from None
        except NoRespondersError:
            raise BusUnavailable(f"nothing answers {subject} on {self.url}: is JetStream enabled?") from None
        answer: dict[str, Any] = json.loads(reply.data)
        error = answer.get("error")
        if error:
            raise BusUnavailable(f"{subject}: {error.get('description', error)}",
                                 err_code=int(error.get("err_code", 0)))
        return answer

    # -- writing ---------------------------------------------------------------------------------------------

    def append(self, events: Sequence[NewEvent], *, dedupe: bool = False) -> list[int]:
        """Publish in order and wait for JetStream's acknowledgements (durable on return).

        Every message carries ``Nats-Msg-Id`` = event uuid, so an event re-published within the stream's
        duplicate window (``duplicate_window_seconds``, 2 minutes) is answered with its original sequence
        whatever ``dedupe`` says; older duplicates cannot be detected (JetStream keeps no index of uuids), so a
        relay re-run later than that stores them again (at least once, not exactly once).
        """
        if not events:
            return []
        return self._run(self._append(events))

    async def append_async(self, events: Sequence[NewEvent]) -> list[int]:
        if not events:
            return []
        return await self._bridge(self._append(events))

    async def _append(self, events: Sequence[NewEvent]) -> list[int]:
        nc, lock = self._nc, self._append_lock
        assert nc is not None and lock is not None, "the NATS event bus is not open"
        subjects = [self.subject(event.topic) for event in events]  # malformed topics fail before anything is sent
        loop = asyncio.get_running_loop()
        pending: list[tuple[str, asyncio.Future[int]]] = []
        try:
            async with lock:  # one batch's messages are contiguous in their streams, as in the SQLite log
                for event, subject in zip(events, subjects, strict=True):
                    token = str(next(self._tokens))
                    future: asyncio.Future[int] = loop.create_future()
                    self._acks[token] = (future, subject)
                    pending.append((token, future))
                    # The topic is the subject and the uuid is Nats-Msg-Id: every header costs microseconds.
                    await nc.publish(subject, event.payload, reply=self._ack_root + token, headers={
                        H_MSG_ID: event.event_uuid, H_SCHEMA: event.schema_id, H_CREATED: str(event.created_ms)})
            _done, waiting = await asyncio.wait([future for _, future in pending], timeout=self.request_timeout)
            if waiting:
                raise BusUnavailable(f"the NATS server at {self.url} did not acknowledge {len(waiting)} of "
                                   f"{len(pending)} events within {self.request_timeout:g}s; they may or may not "
                                   "be stored")
            return [future.result() for _, future in pending]
        finally:
            for token, future in pending:
                self._acks.pop(token, None)
                if not future.done():
                    future.cancel()
                elif not future.cancelled():
                    future.exception()  # retrieved: a failed batch reports its first error only

    async def _on_ack(self, msg: Msg) -> None:
        entry = self._acks.pop(msg.subject[len(self._ack_root):], None)
        if entry is None:
            return
        future, subject = entry
        if future.done():
            return
        headers = msg.headers
        if not msg.data and headers and headers.get("Status") == "503":
            future.set_exception(BusUnavailable(f"no JetStream stream on {self.url} stores {subject} (was it "
                                              "deleted?)"))
            return
        try:
            answer = json.loads(msg.data)
        except ValueError:
            future.set_exception(BusUnavailable(f"unexpected acknowledgement for {subject}: {msg.data[:200]!r}"))
            return
        error = answer.get("error")
        if error:
            future.set_exception(BusUnavailable(f"JetStream refused an event on {subject}: "
                                              f"{error.get('description', error)}",
                                              err_code=int(error.get("err_code", 0))))
        else:
            future.set_result(int(answer["seq"]))

    # -- reading ---------------------------------------------------------------------------------------------

    def read(self, selector: Selector, after: int, limit: int) -> list[StoredEvent]:
        if limit <= 0:
            return []
        return self._run(self._read(selector, after, limit))

    async def _read(self, selector: Selector, after: int, limit: int) -> list[StoredEvent]:
        stream, subject = self._target(selector)
        puller = _Puller(self, stream, subject, after, idle_seconds=max(5.0, self.request_timeout * 2))
        try:
            return await puller.fetch(limit, 0.0, after)
        finally:
            await puller.close()

    def bounds(self, selector: Selector) -> Bounds:
        """The family stream's window: events after ``first_seq - 1`` are kept; ``last_seq`` is the head."""
        stream, _subject = self._target(selector)
        state = self._run(self._api(f"{_API}.STREAM.INFO.{stream}", None))["state"]
        head = int(state.get("last_seq", 0))
        if int(state.get("messages", 0)) == 0:
            return Bounds(head, head)
        return Bounds(max(0, int(state["first_seq"]) - 1), head)

    def cursor(self, selector: Selector, after: int) -> Cursor:
        stream, subject = self._target(selector)
        return NatsCursor(self, _Puller(self, stream, subject, after, idle_seconds=self.cursor_idle_seconds))

    # -- retention -------------------------------------------------------------------------------------------

    def purge(self, older_than_ms: int) -> int:
        """Cut each stream below the first event created at or after ``older_than_ms``; returns how many went.

        Creation times are taken as increasing along a stream (they are stamped when an event is
        published), so the cut is found by binary search over ``Il-Created`` with O(log n) message gets; an
        event re-relayed long after its creation can make the cut land a little earlier or later than the
        SQLite log's (which cuts below its newest too-old event). JetStream's own ``max_age`` already drops
        events by the time they were stored.
        """
        removed = 0
        for family in FAMILIES:
            removed += self._run(self._purge_family(family, older_than_ms), timeout=self.request_timeout * 80 + 1)
        return removed

    async def _purge_family(self, family: str, cutoff_ms: int) -> int:
        stream = self.stream_name(family)
        state = (await self._api(f"{_API}.STREAM.INFO.{stream}", None))["state"]
        if int(state.get("messages", 0)) == 0:
            return 0
        first = await self._created_at_or_after(stream, family, int(state["first_seq"]))
        if first is None or first[1] >= cutoff_ms:
            return 0
        low, high = first[0], int(state["last_seq"]) + 1  # low: created before the cutoff; from high on: not
        while high - low > 1:
            middle = (low + high) // 2
            found = await self._created_at_or_after(stream, family, middle)
            if found is None or found[0] >= high or found[1] >= cutoff_ms:
                high = middle
            else:
                low = found[0]
        answer = await self._api(f"{_API}.STREAM.PURGE.{stream}", {"seq": low + 1})
        return int(answer.get("purged", 0))

    async def _created_at_or_after(self, stream: str, family: str, seq: int) -> tuple[int, int] | None:
        """(sequence, created ms) of the first message at or after ``seq``; None past the end."""
        try:
            answer = await self._api(f"{_API}.STREAM.MSG.GET.{stream}",
                                     {"seq": seq, "next_by_subj": self.family_subjects(family)})
        except BusUnavailable as error:
            if error.err_code == _ERR_NO_MESSAGE_FOUND:
                return None
            raise
        message = answer["message"]
        created = 0
        if message.get("hdrs"):
            for line in base64.b64decode(message["hdrs"]).decode(errors="replace").split("\r\n")[1:]:
                key, _, value = line.partition(":")
                if key.strip() == H_CREATED:
                    with contextlib.suppress(ValueError):
                        created = int(value.strip())
                    break
        return int(message["seq"]), created


class NatsCursor(Cursor):
    """A subscriber's read position: an ephemeral pull consumer on the NATS loop, fetched from any loop."""

    def __init__(self, log: NatsLog, puller: _Puller) -> None:
        self._log = log
        self._puller = puller
        self.position = puller.position
        self._closed = False

    async def fetch(self, limit: int, wait: float) -> list[StoredEvent]:
        if limit <= 0:
            return []
        if self._closed:
            raise RuntimeError("the cursor is closed")
        events = await self._log._bridge(self._puller.fetch(limit, wait, self.position))
        if events:
            self.position = events[-1].replay_id
        return events

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(RuntimeError, BusUnavailable):
            await self._log._bridge(self._puller.close())


class _Puller:
    """One ephemeral pull consumer and the inbox its messages arrive on. Lives on (and only on) the NATS loop.

    Events delivered by the server but not yet handed out wait in ``_buffer`` (so a cancelled fetch loses
    nothing); events taken for a fetch that has not returned wait in ``_staged``. ``position`` is the last
    replay id handed out; a caller whose position differs (it lost a batch, or moved) gets a fresh consumer
    starting right after its own position. A consumer the server dropped (idle too long, server restart) is
    recreated the same way.
    """

    def __init__(self, log: NatsLog, stream: str, subject: str | None, position: int, *, idle_seconds: float) -> None:
        self._log = log
        self._stream = stream
        self._subject = subject
        self.position = max(0, position)
        self._idle = idle_seconds
        self._consumer: str | None = None
        self._next_subject = ""
        self._sub: Subscription | None = None
        self._inbox = ""
        self._generation = 0
        self._buffer: deque[Msg] = deque()
        self._staged: list[StoredEvent] = []
        self._signal = asyncio.Event()
        self._current = ""  # token of the pull request being waited for
        self._status: str | None = None  # its terminal status (404 no messages, 408 expired, 409 ...)
        self._tokens = itertools.count(1)
        self._contact = 0.0
        self._suspect = False
        self._closed = False
        self._lock = asyncio.Lock()
        log._pullers.add(self)

    # -- consumer lifecycle ----------------------------------------------------------------------------------

    async def _create(self) -> None:
        await self._drop()
        self._generation += 1
        generation = self._generation
        self._buffer.clear()
        self._staged.clear()
        nc = self._log._nc
        assert nc is not None, "the NATS event bus is not open"

        async def on_message(msg: Msg) -> None:
            if generation == self._generation:
                self._on_message(msg)

        self._inbox = nc.new_inbox() + "."
        self._sub = await nc.subscribe(self._inbox + "*", cb=on_message, pending_bytes_limit=0)
        name = "il_" + uuid.uuid4().hex[:22]
        config: dict[str, Any] = {
            "name": name, "deliver_policy": "by_start_sequence", "opt_start_seq": self.position + 1,
            "ack_policy": "none", "replay_policy": "instant", "inactive_threshold": int(self._idle * _NS),
            "mem_storage": True, "num_replicas": 1}
        create = f"{_API}.CONSUMER.CREATE.{self._stream}.{name}"
        if self._subject is not None:
            config["filter_subject"] = self._subject
            create += "." + self._subject
        await self._log._api(create, {"stream_name": self._stream, "config": config})
        self._consumer = name
        self._next_subject = f"{_API}.CONSUMER.MSG.NEXT.{self._stream}.{name}"
        self._contact = time.monotonic()
        self._suspect = False

    async def _drop(self) -> None:
        """Forget the current consumer and inbox (deleting the consumer is best effort: it expires anyway)."""
        self._generation += 1
        sub, self._sub = self._sub, None
        consumer, self._consumer = self._consumer, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        if consumer is not None and self._log._nc is not None and not self._log._nc.is_closed:
            with contextlib.suppress(Exception):
                await self._log._api(f"{_API}.CONSUMER.DELETE.{self._stream}.{consumer}", None)

    async def _ensure(self) -> None:
        if self._consumer is None:
            await self._create()
            return
        if self._suspect or time.monotonic() - self._contact > self._idle / 2:
            try:
                await self._log._api(f"{_API}.CONSUMER.INFO.{self._stream}.{self._consumer}", None)
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
        self._signal.set()

    async def close(self) -> None:
        self.abort()
        await self._drop()
        self._buffer.clear()
        self._staged.clear()

    # -- messages --------------------------------------------------------------------------------------------

    def _on_message(self, msg: Msg) -> None:
        headers = msg.headers
        if not msg.data and headers is not None and "Status" in headers:
            if headers["Status"] != "100" and msg.subject[len(self._inbox):] == self._current:
                self._status = headers["Status"]
                self._signal.set()
            return  # heartbeats, and the end of requests we stopped waiting for
        self._buffer.append(msg)
        self._signal.set()

    async def _pull(self, batch: int, expires: float | None) -> None:
        """Ask for ``batch`` events (``no_wait``, or waiting up to ``expires`` s); return once they are buffered,
        the server ended the request, or it did not answer at all (then the consumer is suspect)."""
        nc = self._log._nc
        if self._closed or nc is None:
            return
        token = str(next(self._tokens))
        self._current, self._status = token, None
        target = len(self._buffer) + batch
        request: dict[str, Any] = {"batch": batch}
        if expires is None:
            request["no_wait"] = True
        else:
            request["expires"] = max(int(expires * _NS), 1_000_000)
        try:
            await nc.publish(self._next_subject, json.dumps(request).encode(), reply=self._inbox + token)
            # A no_wait request is answered at once unless the consumer is gone (the server then stays silent).
            grace = self._log.request_timeout if expires is not None else min(1.0, self._log.request_timeout)
            deadline = time.monotonic() + (expires or 0.0) + grace
            while self._status is None and len(self._buffer) < target and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._suspect = True
                    return
                self._signal.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._signal.wait(), remaining)
            self._contact = time.monotonic()
            if self._status not in (None, "404", "408"):
                log.debug("pull from %s ended with status %s", self._next_subject, self._status)
                self._suspect = True
        finally:
            self._current = ""

    def _stage(self, limit: int) -> bool:
        """Move buffered events into ``_staged`` up to ``limit``; True when the buffer ran dry first."""
        last = self._staged[-1].replay_id if self._staged else self.position
        while len(self._staged) < limit:
            if not self._buffer:
                return True
            event = _stored(self._buffer.popleft())
            if event.replay_id > last:
                self._staged.append(event)
                last = event.replay_id
        return False

    async def fetch(self, limit: int, wait: float, position: int) -> list[StoredEvent]:
        """Up to ``limit`` events after ``position``, waiting up to ``wait`` s for the first one."""
        async with self._lock:
            if self._closed:
                raise RuntimeError("the cursor is closed")
            if position != self.position or self._consumer is None:
                self.position = max(0, position)
                await self._create()
            else:
                await self._ensure()
            await self._fill(limit)
            if not self._staged and wait > 0:
                if self._suspect:
                    await self._ensure()
                await self._pull(1, wait)
                if self._stage(limit) and self._staged:
                    await self._fill(limit)
            if self._closed:
                raise RuntimeError("the cursor is closed")
            events, self._staged = self._staged[:limit], self._staged[limit:]
            if events:
                self.position = events[-1].replay_id
            return events

    async def _fill(self, limit: int) -> None:
        """Stage what the server has right now, up to ``limit`` (one round trip per ``_MAX_PULL_BATCH``)."""
        retried = False
        while self._stage(limit) and not self._closed:
            if self._suspect:  # the last request went unanswered: check (and recreate) the consumer once
                if retried:
                    return
                retried = True
                await self._ensure()
            await self._pull(min(limit - len(self._staged), _MAX_PULL_BATCH), None)
            if self._status is not None:  # the server had fewer than asked for
                self._stage(limit)
                return


def _stored(msg: Msg) -> StoredEvent:
    """A delivered message as a StoredEvent; the replay id is the stream sequence in its ack subject."""
    tokens = msg.reply.split(".")
    # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>, or the form with domain and
    # account hash after ACK (nats-server 2.10+): two tokens more before the stream.
    seq = int(tokens[5] if len(tokens) == 9 else tokens[7])
    headers = msg.headers or {}
    topic = headers.get(H_TOPIC)
    if topic is None:  # the subject is <prefix>.<family>.<Name>
        _root, family, local = [*msg.subject.split(".", 2), "", ""][:3]
        topic = f"/event/{local}" if family == "event" else f"/data/{local}"
    return StoredEvent(seq, topic, headers.get(H_UUID) or headers.get(H_MSG_ID, ""), headers.get(H_SCHEMA, ""),
                       msg.data, int(headers.get(H_CREATED) or 0))
