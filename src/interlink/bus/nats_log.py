"""The event log on NATS JetStream (``nats://host:port[?prefix=NAME&duplicate_window=SECONDS]``), for several
processes sharing one bus.

Channels to streams and subjects
    Each channel family is one stream, ``<PREFIX>_EVENT``, ``<PREFIX>_DATA`` and ``<PREFIX>_CHN``, holding the
    subjects ``<prefix>.<family>.>``; a topic is one subject in its family's stream::

        /event/Order__e           -> <prefix>.event.Order__e        (stream <PREFIX>_EVENT)
        /data/AccountChangeEvent  -> <prefix>.data.AccountChangeEvent (stream <PREFIX>_DATA)
        /data/Sales__chn          -> <prefix>.chn.Sales__chn         (stream <PREFIX>_CHN)

    Reading a whole family (``/data/ChangeEvents``) reads the stream; reading a topic filters on its subject.

Replay ids are stream sequences
    A replay id is the message's sequence in its family's stream: strictly increasing and never reused,
    even after purges, but numbered per family (the SQLite log numbers every family from one sequence).
    ``bounds`` comes from the stream state (``first_seq - 1`` .. ``last_seq``); retention is the stream's
    ``max_age``, and ``purge`` additionally cuts a stream below the first event created after a cutoff.

Connections and event loops
    nats-py is asyncio-only and a connection belongs to one event loop, while appends come synchronously
    from the records layer (worker threads, and the server's own event loop, which therefore cannot host the
    connection those appends wait on) and cursors are pulled from whichever event loop serves a subscriber.
    So there are two kinds of connection, each touched only from its own loop:

    * the home connection, on a private event loop in a daemon thread: synchronous methods (``append``,
      ``read``, ``bounds``, ``purge`` ...) submit coroutines to it with ``run_coroutine_threadsafe`` and
      wait;
    * one guest connection per event loop that calls ``append_async`` or ``Cursor.fetch``, opened on first
      use and living on that loop, so the Pub/Sub API's hot path never hands work to another thread (a
      hand-off costs milliseconds under load: the two threads take turns on the GIL). A guard task closes
      it when its loop shuts down (``asyncio.run`` cancels every task on the way out), ``close`` closes the
      ones whose loops still run.

Modules
    This one is the ``BusBackend``: names, streams, the loop thread and the connections per loop.
    ``nats_client`` is the connection (nats-py below its public API, the message body format, appends and
    their acknowledgements); ``nats_cursor`` is reading (cursors on ephemeral pull consumers).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import threading
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit, urlunsplit

from nats.errors import Error as NatsError

from interlink.bus.backend import Bounds, BusBackend, Cursor
from interlink.bus.model import FAMILIES, NewEvent, Selector, StoredEvent, family_of, parse_topic
from interlink.bus.nats_client import _API, _NS, _Conn, _created_ms, _stored_event
from interlink.bus.nats_cursor import NatsCursor, _Puller
from interlink.errors import BusUnavailable, ConfigurationError

T = TypeVar("T")

_PREFIX_RE = re.compile(r"^[A-Za-z0-9_-]+$")

# JetStream API error codes this module acts on.
_ERR_NO_MESSAGE_FOUND = 10037
_ERR_STREAM_NAME_IN_USE = 10058
_ERR_STREAM_NOT_FOUND = 10059


class NatsLog(BusBackend):
    """A ``BusBackend`` on NATS JetStream: one stream per channel family, replay id = stream sequence."""

    name = "nats"

    def __init__(self, url: str, *, prefix: str = "INTERLINK", retention_seconds: float = 72 * 3600,
                 connect_timeout: float = 2.0, request_timeout: float = 5.0, cursor_idle_seconds: float = 120.0,
                 duplicate_window_seconds: float = 120.0, cursor_stall_seconds: float = 10.0) -> None:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        unknown = set(query) - {"prefix", "duplicate_window"}
        if unknown:
            raise ConfigurationError(f"unknown NATS bus option(s) {', '.join(sorted(unknown))} in {url!r}: "
                                     "use prefix=NAME and duplicate_window=SECONDS")
        prefix = query.get("prefix", [prefix])[-1]
        if not _PREFIX_RE.match(prefix):
            raise ConfigurationError(f"bad NATS bus prefix {prefix!r} in {url!r}: use letters, digits, '_' and '-'")
        if "duplicate_window" in query:
            try:
                duplicate_window_seconds = float(query["duplicate_window"][-1])
            except ValueError:
                duplicate_window_seconds = -1
            if duplicate_window_seconds <= 0:
                raise ConfigurationError(f"bad duplicate_window in {url!r}: a number of seconds above 0")
        self.url = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        self.prefix = prefix
        self.retention_seconds = retention_seconds
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self.cursor_idle_seconds = cursor_idle_seconds
        self.cursor_stall_seconds = cursor_stall_seconds  # a cursor finding nothing this long checks the stream
        self.duplicate_window_seconds = duplicate_window_seconds
        self._subject_root = prefix.lower()
        self._stream_root = prefix.upper()
        self._subjects: dict[str, str] = {}
        self._subject_bytes: dict[str, bytes] = {}
        self._topics: dict[bytes, str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._home: _Conn | None = None  # on the loop thread: synchronous calls
        self._guests: dict[asyncio.AbstractEventLoop, _Conn] = {}  # on the loops of async callers
        self._joining: dict[asyncio.AbstractEventLoop, asyncio.Task[_Conn]] = {}
        self._guests_lock = threading.Lock()
        self._closing = False

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

    def _subject_of(self, topic: str) -> bytes:
        """``subject`` as bytes, for the wire (TopicNotFound if malformed)."""
        found = self._subject_bytes.get(topic)
        if found is None:
            found = self.subject(topic).encode()
            if len(self._subject_bytes) < 100_000:
                self._subject_bytes[topic] = found
        return found

    def _topic_of(self, subject: bytes) -> str:
        """The topic of a delivered message's subject, ``<prefix>.<family>.<Name>``."""
        found = self._topics.get(subject)
        if found is None:
            _root, family, local = [*subject.decode(errors="replace").split(".", 2), "", ""][:3]
            found = f"/event/{local}" if family == "event" else f"/data/{local}"
            if len(self._topics) < 100_000:
                self._topics[subject] = found
        return found

    def _target(self, selector: Selector) -> tuple[str, str | None]:
        """(stream, filter subject or None for the whole stream) of a selector."""
        if selector.topic is None:
            return self.stream_name(selector.family), None
        return self.stream_name(family_of(selector.topic)), self.subject(selector.topic)

    # -- connections and loops ------------------------------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop thread and wait for it (from any thread but that loop's own)."""
        loop = self._loop
        if loop is None or self._home is None:
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

    def _home_conn(self) -> _Conn:
        home = self._home
        if home is None:
            raise RuntimeError("the NATS event bus is not open")
        return home

    async def _here(self) -> _Conn:
        """The connection of the running loop (the home one on the loop thread), connecting it on first use."""
        loop = asyncio.get_running_loop()
        home = self._home_conn()
        if loop is home.loop:
            return home
        conn = self._guests.get(loop)
        if conn is not None and not conn.closing:
            return conn
        joining = self._joining.get(loop)
        if joining is None:
            joining = self._joining[loop] = loop.create_task(self._join(loop))

            def joined(task: asyncio.Task[_Conn]) -> None:
                self._joining.pop(loop, None)
                if not task.cancelled():
                    task.exception()  # retrieved even when every caller gave up waiting

            joining.add_done_callback(joined)
        return await asyncio.shield(joining)

    async def _join(self, loop: asyncio.AbstractEventLoop) -> _Conn:
        conn = _Conn(self, loop)
        try:
            await conn.connect()
        except ConfigurationError as error:
            raise BusUnavailable(str(error)) from error
        with self._guests_lock:
            refused = self._home is None or self._closing
            if not refused:
                self._guests[loop] = conn
        if refused:
            await conn.close()
            raise RuntimeError("the NATS event bus is not open")
        conn.guard = loop.create_task(self._guard(conn))
        return conn

    async def _guard(self, conn: _Conn) -> None:
        """Close a guest connection with its loop: ``asyncio.run`` cancels every task on the way out."""
        try:
            await conn.closed
        finally:
            with self._guests_lock:
                if self._guests.get(conn.loop) is conn:
                    del self._guests[conn.loop]
            if not conn.nc.is_closed:
                conn.abort()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.nc.close(), 1.0)

    def _close_guest(self, conn: _Conn) -> None:
        loop = conn.loop
        if loop.is_closed():
            return  # its guard closed the connection on the way out
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:  # closed synchronously from inside that loop: end its work now, close in the background
            conn.abort()
            if not conn.closed.done():
                conn.closed.set_result(None)  # the guard closes the connection
        elif loop.is_running():
            future = asyncio.run_coroutine_threadsafe(conn.close(), loop)
            with contextlib.suppress(Exception):
                future.result(self.request_timeout + 2)
        # A loop that is neither running nor closed closes the connection with its guard when it shuts down.

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
        if self._home is not None:
            return
        self._closing = False
        self._start_loop()
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(self._open(), self._loop)
        try:
            self._home = future.result(self.connect_timeout + self.request_timeout * (len(FAMILIES) + 2) + 1)
        except BaseException:
            future.cancel()
            self._stop_loop()
            raise

    async def _open(self) -> _Conn:
        conn = _Conn(self, asyncio.get_running_loop())
        await conn.connect()
        try:
            try:
                await conn.api(f"{_API}.INFO", None)
            except BusUnavailable as error:
                raise ConfigurationError(f"the NATS server at {self.url} does not answer JetStream requests "
                                         f"({error}); start nats-server with JetStream enabled (-js)") from error
            for family in FAMILIES:
                await self._ensure_stream(conn, family)
        except BaseException:
            conn.closing = True
            with contextlib.suppress(Exception):
                await conn.nc.close()
            raise
        return conn

    def _stream_config(self, family: str) -> dict[str, Any]:
        max_age = max(0, int(self.retention_seconds * _NS))
        window = int(self.duplicate_window_seconds * _NS)
        if max_age:
            window = min(window, max_age)
        return {"name": self.stream_name(family), "subjects": [self.family_subjects(family)], "retention": "limits",
                "storage": "file", "discard": "old", "max_age": max_age, "duplicate_window": window,
                "max_msgs": -1, "max_bytes": -1, "max_msg_size": -1, "max_consumers": -1, "num_replicas": 1}

    async def _ensure_stream(self, conn: _Conn, family: str) -> None:
        config = self._stream_config(family)
        name = config["name"]
        try:
            await conn.api(f"{_API}.STREAM.CREATE.{name}", config)
        except BusUnavailable as error:
            if error.err_code != _ERR_STREAM_NAME_IN_USE:
                raise ConfigurationError(f"cannot create JetStream stream {name} on {self.url}: {error}") from error
            try:
                await conn.api(f"{_API}.STREAM.UPDATE.{name}", config)
            except BusUnavailable as update_error:
                raise ConfigurationError(f"JetStream stream {name} on {self.url} exists with a configuration that "
                                         f"cannot be updated: {update_error}") from update_error

    def close(self) -> None:
        """Drain and close every connection, then stop the loop thread."""
        if self._loop is None:
            return
        self._closing = True
        try:
            with self._guests_lock:
                guests = list(self._guests.values())
                self._guests.clear()
            for conn in guests:
                self._close_guest(conn)
            home = self._home
            if home is not None:
                future = asyncio.run_coroutine_threadsafe(home.close(), self._loop)
                with contextlib.suppress(Exception):
                    future.result(self.request_timeout + 2)
        finally:
            self._home = None
            self._stop_loop()

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
        """A JetStream API request on the home connection."""
        return await self._home_conn().api(subject, body)

    # -- writing ---------------------------------------------------------------------------------------------

    def append(self, events: Sequence[NewEvent], *, dedupe: bool = False) -> list[int]:
        """Publish in order and wait for JetStream's acknowledgements (durable on return).

        Every message appended here carries ``Nats-Msg-Id`` = event uuid, so an event re-published within the
        stream's duplicate window (``duplicate_window_seconds``, 2 minutes) is answered with its original
        sequence whatever ``dedupe`` says; older duplicates cannot be detected (JetStream keeps no index of
        uuids), so a relay re-run later than that stores them again (at least once, not exactly once).
        """
        if not events:
            return []
        return self._run(self._home_conn().append(events, msg_ids=True))

    async def append_async(self, events: Sequence[NewEvent]) -> list[int]:
        """Like ``append``, on the caller's loop and without ``Nats-Msg-Id``: these events (the Pub/Sub API's)
        are never re-relayed."""
        if not events:
            return []
        conn = await self._here()
        try:
            return await conn.append(events, msg_ids=False)
        except NatsError as error:
            raise BusUnavailable(f"NATS event bus at {self.url}: {type(error).__name__}: {error}") from error

    # -- reading ---------------------------------------------------------------------------------------------

    def read(self, selector: Selector, after: int, limit: int) -> list[StoredEvent]:
        if limit <= 0:
            return []
        return self._run(self._read(selector, after, limit))

    async def _read(self, selector: Selector, after: int, limit: int) -> list[StoredEvent]:
        stream, subject = self._target(selector)
        puller = _Puller(self._home_conn(), stream, subject, after, idle_seconds=max(5.0, self.request_timeout * 2))
        try:
            return await puller.fetch(limit, 0.0, after, read_ahead=False)
        finally:
            await puller.close()

    def _stored(self, subject: bytes, reply: bytes, data: bytes, _headers: bytes | None) -> StoredEvent:
        """A delivered message as a StoredEvent (headers play no part); the replay id is the stream sequence in
        its ack subject."""
        tokens = reply.split(b".")
        # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>, or the form with domain and
        # account hash after ACK (nats-server 2.10+): two tokens more before the stream.
        seq = int(tokens[5] if len(tokens) == 9 else tokens[7])
        return _stored_event(seq, self._topics.get(subject) or self._topic_of(subject), data)

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
        return NatsCursor(self, stream, subject, after)

    # -- retention -------------------------------------------------------------------------------------------

    def purge(self, older_than_ms: int) -> int:
        """Cut each stream below the first event created at or after ``older_than_ms``; returns how many went.

        Creation times are taken as increasing along a stream (they are stamped when an event is
        published), so the cut is found by binary search over the creation times in the message bodies with
        O(log n) message gets; an event re-relayed long after its creation can make the cut land a little
        earlier or later than the SQLite log's (which cuts below its newest too-old event). JetStream's own
        ``max_age`` already drops events by the time they were stored.
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
        head = base64.b64decode(message.get("data", "")[:12])  # 9 bytes: the version and the creation time
        return int(message["seq"]), _created_ms(head)
