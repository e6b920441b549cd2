"""Event streams for browsers: Server-Sent Events at ``/console/stream/{channel}``, authenticated by the session.

The channel is any topic of the bus without its leading slash: ``event/Payment_Received__e``,
``data/ChangeEvents``, ``data/CaseChangeEvent``, ``data/Sales__chn``. Each event goes out as one SSE message::

    id: 42
    event: event
    data: {"channel": "/event/Payment_Received__e", "topic": "/event/Payment_Received__e", "replayId": 42,
           "time": "2026-11-29T10:00:00.000Z", "schemaId": "...", "eventUuid": "...", "payload": {...}}

The ``id`` is the replay id, so a browser's EventSource resends it as ``Last-Event-ID`` when it reconnects and the
stream resumes right after it. A new stream starts at ``?replay=LATEST`` (the default), ``EARLIEST`` or after a
replay id. A replay id the bus no longer keeps (past retention) answers one ``event: error`` message carrying the
platform's message, then ends. Idle streams get a comment every :data:`HEARTBEAT_SECONDS` (proxies and browsers
keep the connection); every stream ends after :data:`MAX_STREAM_SECONDS` or when the server shuts down, and the
EventSource reconnects where it was. A stream whose session ends (logout, expiry) says so with an ``error`` event
within :data:`SESSION_CHECK_SECONDS` and ends. A user holds at most :data:`MAX_STREAMS_PER_USER` streams at once.

The live pages of the UI Update pattern (``interlink.console.live``) use the same machinery with several topics in
one stream and server-side filters; their ids list one replay id per topic (``"42,97"``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from interlink.api.http import client_ip, error_response, unexpected_error_response
from interlink.bus.avro import iso_from_epoch_ms
from interlink.bus.bus import CUSTOM, EARLIEST, LATEST, Topic
from interlink.bus.model import encode_replay_id
from interlink.bus.view import EventJson
from interlink.console.render import org_of, with_headers
from interlink.console.session import ConsoleUser, current_user
from interlink.errors import InterlinkError, InvalidSession, ReplayIdCorrupted, ReplayIdInvalid, RequestError

if TYPE_CHECKING:
    from interlink.app.org import Org
    from interlink.bus.backend import Cursor
    from interlink.bus.model import StoredEvent

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 15.0
MAX_STREAM_SECONDS = 600.0  # then the EventSource reconnects with Last-Event-ID: no connection lives forever
WAIT_SECONDS = 1.0  # the longest a stream waits for events before it looks at the clock and the server again
BATCH = 100  # events read at a time per topic of a stream
MAX_STREAMS_PER_USER = 10
MAX_STREAMS = 500  # every user of this process together
RETRY_MS = 2_000  # how soon an EventSource reconnects after a stream ends
ERROR_RETRY_MS = 60_000  # after an error event (scripts close the EventSource; others should not hammer)
MAX_LIMIT = 10_000
SESSION_CHECK_SECONDS = 30.0  # a stream of a session that logged out (or expired) ends within this


class TooManyStreams(InterlinkError):
    """A user (or the process) has as many open event streams as it may."""

    error_code = "REQUEST_LIMIT_EXCEEDED"
    http_status = 429


def check_can_read(org: Org, user: ConsoleUser, topic: Topic) -> None:
    """The one place a console user's right to read a topic's events is checked (every stream and page calls it):
    the same rule as the Pub/Sub API's (:meth:`interlink.bus.bus.EventBus.check_access`)."""
    org.bus.check_access(topic, user.context.enforced)


# -- replay positions -----------------------------------------------------------------------------------------


def parse_replay_id(text: str) -> int:
    """A replay id as people and EventSource write it: decimal (``42``) or hex (``0x2a``)."""
    raw = text.strip()
    try:
        value = int(raw[2:], 16) if raw.lower().startswith("0x") else int(raw, 10)
    except ValueError:
        value = -1
    if not 0 <= value < 2 ** 63:
        raise ReplayIdCorrupted(f"The Replay ID is corrupted or not valid for this topic: {text!r} is not LATEST, "
                                "EARLIEST or a replay id")
    return value


def start_after(org: Org, topic: Topic, replay: str) -> int:
    """Where a stream of ``topic`` starts for ``replay`` (LATEST, EARLIEST or a replay id to resume after).

    ReplayIdInvalid when the id is past retention or not a position of the topic, ReplayIdCorrupted when it is no id.
    """
    chosen = replay.strip().upper()
    if chosen in ("", "LATEST"):
        return org.bus.start_after(topic, LATEST)
    if chosen == "EARLIEST":
        return org.bus.start_after(topic, EARLIEST)
    return org.bus.start_after(topic, CUSTOM, encode_replay_id(parse_replay_id(replay)))


def start_positions(org: Org, topics: Sequence[Topic], replay: str) -> list[int]:
    """Starting positions of a several-topic stream: ``replay`` is LATEST, EARLIEST or one id per topic (``"4,9"``)."""
    chosen = replay.strip()
    if chosen.upper() in ("", "LATEST", "EARLIEST"):
        return [start_after(org, topic, chosen) for topic in topics]
    parts = chosen.split(",")
    if len(parts) != len(topics):
        raise ReplayIdCorrupted(f"The Replay ID is corrupted or not valid for this stream: {replay!r} does not "
                                f"give one replay id for each of its {len(topics)} topics")
    return [start_after(org, topic, part) for topic, part in zip(topics, parts, strict=True)]


def position_id(positions: Sequence[int]) -> str:
    return ",".join(str(position) for position in positions)


# -- streams ----------------------------------------------------------------------------------------------------

# A stream's filter and shaper: the message of one event (channel, replayId, payload...) -> what the browser gets,
# or None to keep it from the browser. Filters run on the server, so what they drop never leaves it.
Shape = Callable[[dict[str, Any]], dict[str, Any] | None]


@dataclass
class Source:
    """One topic of a stream, where it starts, and what of it the browser may see."""

    topic: Topic
    after: int
    shape: Shape | None = None


class StreamRegistry:
    """Counts open streams per user (one per app; requests may run on several threads under the test client)."""

    def __init__(self, *, per_user: int, total: int) -> None:
        self.per_user = per_user
        self.total = total
        self._lock = threading.Lock()
        self._open: dict[str, int] = {}

    def acquire(self, user_id: str) -> None:
        with self._lock:
            mine = self._open.get(user_id, 0)
            if mine >= self.per_user:
                raise TooManyStreams(f"You have {mine} event streams open, the most one user may have; close a "
                                     "console tab or page that streams events, then try again")
            if sum(self._open.values()) >= self.total:
                raise TooManyStreams(f"The server has {self.total} event streams open, the most it serves; "
                                     "try again later")
            self._open[user_id] = mine + 1

    def release(self, user_id: str) -> None:
        with self._lock:
            left = self._open.get(user_id, 0) - 1
            if left > 0:
                self._open[user_id] = left
            else:
                self._open.pop(user_id, None)

    def count(self, user_id: str | None = None) -> int:
        with self._lock:
            return self._open.get(user_id, 0) if user_id else sum(self._open.values())


_REGISTRY_LOCK = threading.Lock()


def registry_of(request: Request) -> StreamRegistry:
    """The app's stream registry (made on first use)."""
    state = request.app.state
    with _REGISTRY_LOCK:
        found: StreamRegistry | None = getattr(state, "console_streams", None)
        if found is None:
            found = StreamRegistry(per_user=MAX_STREAMS_PER_USER, total=MAX_STREAMS)
            state.console_streams = found
    return found


def _server_draining(request: Request) -> bool:
    draining = getattr(request.app.state, "draining", None)
    return bool(draining is not None and draining.is_set())


def _sse(data: Any, *, event: str | None = None, event_id: str | None = None) -> bytes:
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if event is not None:
        lines.append(f"event: {event}")
    lines.append("data: " + orjson.dumps(data, default=str, option=orjson.OPT_NON_STR_KEYS).decode())
    return ("\n".join(lines) + "\n\n").encode()


class EventStreamResponse(StreamingResponse):
    """An SSE response that gives back its slot in the registry however the stream ends (client gone, shutdown)."""

    def __init__(self, body: AsyncIterator[bytes], release: Callable[[], None]) -> None:
        super().__init__(body, media_type="text/event-stream",
                         headers={"X-Accel-Buffering": "no", "Cache-Control": "no-store"})
        self._body = body
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()
            aclose = getattr(self._body, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):  # its cursors close in its finally; a failure frees nothing
                    await aclose()


class _Stream:
    """Reads a stream's sources and writes SSE messages until the limit, the lifetime or the server ends it."""

    def __init__(self, request: Request, org: Org, user: ConsoleUser, sources: Sequence[Source],
                 limit: int | None) -> None:
        self.request = request
        self.org = org
        self.user = user
        self.sources = list(sources)
        self.limit = limit
        self.view = EventJson(org.bus)
        self.positions = [source.after for source in sources]
        self.cursors: list[Cursor] = []

    def event_id(self) -> str:
        return position_id(self.positions)

    def session_error(self) -> InterlinkError | None:
        """Why the stream's session no longer counts (logged out, expired, user deactivated, outside its login
        hours, or, with ``enforce_ip_ranges_every_request``, from an address outside its profile's ranges), or None."""
        try:
            session = self.org.tokens.validate(self.user.token, client_ip(self.request))
            user = self.org.directory.user_by_id(session.user_id)
            if user is None or not user.is_active:
                raise InvalidSession()
        except InterlinkError as error:
            return error
        return None

    def message(self, source: Source, event: StoredEvent) -> dict[str, Any] | None:
        message: dict[str, Any] = {
            "channel": source.topic.name, "topic": event.topic, "replayId": event.replay_id,
            "time": iso_from_epoch_ms(event.created_ms), "schemaId": event.schema_id, "eventUuid": event.event_uuid}
        try:
            message["payload"] = self.view.payload(event)
        except InterlinkError as error:
            message["payload"] = None
            message["error"] = error.message
        if source.shape is None:
            return message
        try:
            return source.shape(message)
        except Exception:  # a filter that fails on one event must not end (and so replay forever) the stream
            log.exception("event stream filter failed on %s replay %s; the event is not sent", event.topic,
                          event.replay_id)
            return None

    async def run(self) -> AsyncIterator[bytes]:
        yield f"retry: {RETRY_MS}\n: subscribed {self.event_id()}\n\n".encode()
        self.cursors = [self.org.bus.cursor(source.topic, source.after) for source in self.sources]
        started = written = checked = time.monotonic()
        sent_id = self.event_id()
        delivered = 0
        try:
            while not _server_draining(self.request) and time.monotonic() - started < MAX_STREAM_SECONDS:
                if time.monotonic() - checked >= SESSION_CHECK_SECONDS:
                    checked = time.monotonic()
                    ended = self.session_error()
                    if ended is not None:
                        yield f"retry: {ERROR_RETRY_MS}\n".encode() + _sse(ended.to_wire(), event="error")
                        return
                for index, events in await self._next():
                    source = self.sources[index]
                    for event in events:
                        self.positions[index] = event.replay_id
                        message = self.message(source, event)
                        if message is None:
                            continue
                        sent_id = self.event_id()
                        yield _sse(message, event="event", event_id=sent_id)
                        written = time.monotonic()
                        delivered += 1
                        self.org.bus.deliveries.add(1)  # metered like Pub/Sub deliveries (Limits page)
                        if self.limit is not None and delivered >= self.limit:
                            return
                if self.event_id() != sent_id:
                    # Events the filters held back still move the position: an id-only message moves the
                    # browser's Last-Event-ID without an event, so a reconnect does not read them again.
                    sent_id = self.event_id()
                    yield f"id: {sent_id}\n\n".encode()
                    written = time.monotonic()
                if time.monotonic() - written >= HEARTBEAT_SECONDS:
                    yield b": heartbeat\n\n"
                    written = time.monotonic()
        finally:
            for cursor in self.cursors:
                try:
                    await cursor.close()
                except Exception:  # a cursor that cannot close cleanly holds nothing we could free
                    log.debug("closing an event cursor failed", exc_info=True)

    async def _next(self) -> list[tuple[int, list[StoredEvent]]]:
        """The next events of any source, waiting up to WAIT_SECONDS for the first."""
        if len(self.cursors) == 1:
            events = await self.cursors[0].fetch(BATCH, WAIT_SECONDS)
            return [(0, events)] if events else []
        found = []
        for index, cursor in enumerate(self.cursors):
            events = await cursor.fetch(BATCH, 0)
            if events:
                found.append((index, events))
        if found:
            return found
        waits = {asyncio.ensure_future(cursor.fetch(BATCH, WAIT_SECONDS)): index
                 for index, cursor in enumerate(self.cursors)}
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
            await asyncio.wait(waits)
        for task, index in waits.items():
            # A fetch that finished as it was cancelled has moved its cursor: its events are delivered, not lost.
            if not task.cancelled() and task.result():
                found.append((index, task.result()))
        return sorted(found, key=lambda item: item[0])


def parse_limit(request: Request) -> int | None:
    raw = request.query_params.get("limit")
    if raw is None or raw == "":
        return None
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise RequestError(f"limit: a number of events from 1 to {MAX_LIMIT}", ["limit"])
    return limit


def open_stream(request: Request, org: Org, user: ConsoleUser, sources: Sequence[Source],
                limit: int | None = None) -> Response:
    """The SSE response streaming ``sources`` to ``user`` (TooManyStreams when the user has too many open)."""
    registry = registry_of(request)
    registry.acquire(user.id)
    stream = _Stream(request, org, user, sources, limit)
    return with_headers(EventStreamResponse(stream.run(), lambda: registry.release(user.id)), request)


def error_stream(request: Request, error: InterlinkError) -> Response:
    """A stream that says why it cannot start (``event: error`` with the platform's code and message) and ends."""

    async def body() -> AsyncIterator[bytes]:
        yield f"retry: {ERROR_RETRY_MS}\n".encode() + _sse(error.to_wire(), event="error")

    return with_headers(StreamingResponse(body(), media_type="text/event-stream",
                                          headers={"Cache-Control": "no-store"}), request)


def replay_of(request: Request) -> str:
    """Where a stream starts: the EventSource's Last-Event-ID on a reconnect, else ``?replay=`` (LATEST)."""
    return request.headers.get("last-event-id") or request.query_params.get("replay") or "LATEST"


# What a stream reads, for a user and a request: its topics, each with its filter (None: every event).
Plan = Callable[["Org", ConsoleUser, Request], Sequence[tuple[Topic, "Shape | None"]]]


async def serve(request: Request, plan: Plan) -> Response:
    """An SSE endpoint: the session's user, ``plan``'s topics (each read permission checked), the starting
    positions (Last-Event-ID, else ``?replay=``), then the stream. Errors before the stream starts answer in the
    platform's JSON shape (401 without a session, 404 for an unknown topic); a replay id past retention answers an
    SSE ``error`` event."""
    org = org_of(request)
    try:
        user = current_user(org, request)
        chosen = list(plan(org, user, request))
        for topic, _shape in chosen:
            check_can_read(org, user, topic)
        limit = parse_limit(request)
        try:
            positions = start_positions(org, [topic for topic, _ in chosen], replay_of(request))
        except ReplayIdInvalid as error:
            return error_stream(request, error)
        sources = [Source(topic, after, shape) for (topic, shape), after in zip(chosen, positions, strict=True)]
        return open_stream(request, org, user, sources, limit)
    except InterlinkError as error:
        return with_headers(error_response(error), request)
    except Exception as exc:
        return with_headers(unexpected_error_response(exc), request)


async def stream_endpoint(request: Request) -> Response:
    """``GET /console/stream/{channel}``: one topic's events as SSE."""

    def plan(org: Org, user: ConsoleUser, request: Request) -> list[tuple[Topic, Shape | None]]:
        return [(org.bus.topic("/" + request.path_params["channel"].strip("/")), None)]

    return await serve(request, plan)


def routes() -> list[BaseRoute]:
    return [Route("/stream/{channel:path}", stream_endpoint, methods=["GET"])]
