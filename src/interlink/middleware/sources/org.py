"""The ``org.pubsub`` source: events of an org's Pub/Sub API topic (platform events, Change Data Capture).

Two layers. :class:`Subscription` is the streaming client (used by :meth:`OrgConnection.subscribe`): a reader
thread holds one ``Subscribe`` call open, decodes each event's Avro payload with its schema (``GetSchema``,
cached per schema id) and queues it; :meth:`Subscription.poll` hands events out and asks the org for more as they
are consumed (flow control: never more than ``batch`` requested-but-unconsumed events). Keep-alives (empty
FetchResponses) move the resume position to their ``latest_replay_id``. A **watchdog** reopens a stream that has
been silent (keep-alives included) for ``watchdog`` seconds, after the last replay id received: pull
subscriptions are known to stall without an error. Transient failures reopen with backoff; an expired token is
refreshed once; refusals (unknown topic, bad replay id) end the subscription with an
:class:`~interlink.middleware.orgapi.OrgRejected` (:class:`~interlink.middleware.orgapi.ReplayIdInvalid` for
replay ids).

:class:`OrgPubSubSource` turns events into :class:`~interlink.middleware.base.Message`\\ s whose position is the
replay id (hex), and applies the ``fallback`` policy when the org refuses to resume after the stored one.
"""

from __future__ import annotations

import io
import logging
import queue
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from interlink.middleware.base import Message, MiddlewareError, PermanentError, RetryableError, Source
from interlink.middleware.orgapi import (
    OrgConnection,
    OrgRejected,
    OrgUnavailable,
    ReplayIdInvalid,
    config_error,
    connection_for,
    grpc_failure,
    require_connection,
)

log = logging.getLogger(__name__)

MAX_CREDIT = 100  # the Pub/Sub API caps a subscription's outstanding requested events at 100
PRESETS = {"latest": 0, "earliest": 1, "custom": 2}  # eventbus.v1.ReplayPreset
_NESTED_BITMAP = re.compile(r"(\d+)-(0x[0-9A-Fa-f]+)")


@dataclass
class ReceivedEvent:
    """One decoded event: the payload as a dict (dates stay epoch numbers), with its replay id and ids."""

    topic: str
    replay_id: bytes
    event_id: str  # ProducerEvent.id
    schema_id: str
    payload: dict[str, Any]

    @property
    def change_event_header(self) -> dict[str, Any] | None:
        """The ChangeEventHeader of a change event (field names in changedFields / nulledFields / diffFields)."""
        header = self.payload.get("ChangeEventHeader")
        return header if isinstance(header, dict) else None

    @property
    def event_uuid(self) -> str | None:
        """The EventUuid of a platform event (else the producer event id)."""
        return self.payload.get("EventUuid") or self.event_id or None


def _positions(bitmap: str) -> list[int]:
    number = int(bitmap[2:] or "0", 16)
    return [i for i in range(number.bit_length()) if number >> i & 1]


def _record_fields(avro_type: Any) -> list[str]:
    for member in avro_type if isinstance(avro_type, list) else [avro_type]:
        if isinstance(member, dict) and member.get("type") == "record":
            return [f["name"] for f in member.get("fields", [])]
    return []


def expand_field_bitmaps(header: dict[str, Any], schema: dict[str, Any]) -> None:
    """Replace the bitmaps of changedFields / nulledFields / diffFields (``0x..`` over the top-level fields,
    ``N-0x..`` over compound field N's fields) with field names (``Name.LastName`` for nested ones)."""
    fields = schema.get("fields", [])
    names = [f["name"] for f in fields]
    for key in ("changedFields", "nulledFields", "diffFields"):
        expanded: list[str] = []
        for value in header.get(key) or []:
            nested = _NESTED_BITMAP.fullmatch(value)
            if value.startswith("0x"):
                expanded.extend(names[i] for i in _positions(value) if i < len(names))
            elif nested and int(nested.group(1)) < len(fields):
                parent = int(nested.group(1))
                children = _record_fields(fields[parent]["type"])
                expanded.extend(f"{names[parent]}.{children[i]}" for i in _positions(nested.group(2))
                                if i < len(children))
            else:
                expanded.append(value)
        if key in header:
            header[key] = expanded


def _feed(first: Any, requests: queue.Queue[Any]) -> Iterator[Any]:
    """The request side of a Subscribe call: the first FetchRequest, then top-ups until None."""
    yield first
    while (item := requests.get()) is not None:
        yield item


class Subscription:
    """A Pub/Sub API subscription to one topic; iterate it (blocking) or :meth:`poll` it (bounded waits).

    ``replay_preset`` is ``latest``, ``earliest`` or ``custom`` (with ``replay_id``: start after it). ``batch``
    (1..100) bounds the requested-but-unconsumed events. ``watchdog`` (seconds, None to disable) reopens a silent
    stream; keep it above the org's keep-alive interval (270 s on the platform). ``reopened`` and ``stalls`` count
    reopened streams and watchdog firings. Errors surface from :meth:`poll` in order after the events before them.
    """

    def __init__(self, connection: OrgConnection, topic: str, replay_preset: str = "latest",
                 replay_id: bytes | None = None, batch: int = 100, *, watchdog: float | None = 300.0,
                 max_reconnects: int = 5) -> None:
        preset = "custom" if replay_id is not None else replay_preset.lower()
        if preset not in PRESETS or (preset == "custom" and replay_id is None):
            raise ValueError(f"replay_preset is latest, earliest or custom (with replay_id), not {replay_preset!r}")
        self.connection = connection
        self.topic = topic
        self.batch = max(1, min(int(batch), MAX_CREDIT))
        self.watchdog = watchdog
        self.max_reconnects = max_reconnects
        self.resume_after: bytes | None = None  # the last replay id received (event or keep-alive)
        self.reopened = 0
        self.stalls = 0
        self._start = (preset, replay_id)
        self._events: queue.Queue[ReceivedEvent | BaseException] = queue.Queue()
        self._failure: BaseException | None = None
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._call: Any = None
        self._requests: queue.Queue[Any] | None = None
        self._outstanding = 0
        self._stalled = False
        self._last_activity = time.monotonic()
        info = connection.topic(topic)  # an unknown topic fails here, clearly, not in a thread
        if not info.can_subscribe:
            raise OrgRejected(f"the org does not allow subscribing to {topic}", error_code="PERMISSION_DENIED")
        self._reader = threading.Thread(target=self._run, name=f"pubsub {topic}", daemon=True)
        self._reader.start()
        if watchdog:
            threading.Thread(target=self._watch, name=f"pubsub watchdog {topic}", daemon=True).start()

    # -- consumer side --------------------------------------------------------------------------------------

    def poll(self, max_events: int = 100, timeout: float = 1.0) -> list[ReceivedEvent]:
        """Up to ``max_events`` events, waiting at most ``timeout`` seconds for the first; raises the error that
        ended the subscription once the events before it were handed out."""
        events: list[ReceivedEvent] = []
        deadline = time.monotonic() + timeout
        self._top_up()
        while len(events) < max_events and self._failure is None and not self._closed.is_set():
            remaining = deadline - time.monotonic()
            try:
                item = self._events.get(timeout=remaining) if not events and remaining > 0 \
                    else self._events.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, BaseException):
                self._failure = item
            else:
                events.append(item)
        if not events and self._failure is not None:
            raise self._failure
        self._top_up()
        return events

    def __iter__(self) -> Iterator[ReceivedEvent]:
        while not self._closed.is_set():
            yield from self.poll(self.batch, 1.0)

    def close(self) -> None:
        """End the subscription (the call is cancelled; queued events are dropped)."""
        self._closed.set()
        with self._lock:
            call, requests = self._call, self._requests
        if requests is not None:
            requests.put(None)
        if call is not None:
            call.cancel()
        if threading.current_thread() is not self._reader:
            self._reader.join(timeout=5)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _top_up(self) -> None:
        """Ask for more events once at least half a batch was consumed (or nothing is outstanding)."""
        from interlink.pubsub._proto import pubsub_api_pb2 as pb

        with self._lock:
            if self._requests is None:
                return
            want = self.batch - self._outstanding - self._events.qsize()
            if want <= 0 or (self._outstanding > 0 and want < self.batch // 2):
                return
            self._outstanding += want
            self._requests.put(pb.FetchRequest(num_requested=want))

    # -- the stream -----------------------------------------------------------------------------------------

    def _first_request(self) -> Any:
        from interlink.pubsub._proto import pubsub_api_pb2 as pb

        credit = max(0, self.batch - self._events.qsize())
        if self.resume_after is not None:
            return pb.FetchRequest(topic_name=self.topic, replay_preset=pb.CUSTOM, replay_id=self.resume_after,
                                   num_requested=credit)
        preset, replay_id = self._start
        return pb.FetchRequest(topic_name=self.topic, replay_preset=PRESETS[preset], replay_id=replay_id or b"",
                               num_requested=credit)

    def _run(self) -> None:
        import grpc

        failures, refreshed = 0, False
        while not self._closed.is_set():
            requests: queue.Queue[Any] = queue.Queue()
            first = self._first_request()
            token = ""
            ended: grpc.RpcError | None = None
            problem: MiddlewareError | None = None
            with self._lock:
                self._stalled = False
            try:
                token = self.connection.access_token()
                call = self.connection._stub().Subscribe(_feed(first, requests),
                                                         metadata=self.connection.grpc_metadata(token))
                with self._lock:
                    self._call, self._requests = call, requests
                    self._outstanding = first.num_requested
                    self._last_activity = time.monotonic()
                for response in call:
                    self._receive(response)
                    failures, refreshed = 0, False
            except grpc.RpcError as error:
                ended = error
            except MiddlewareError as error:  # the login or a schema lookup failed
                problem = error
            except Exception as error:  # a payload that does not decode: stop rather than skip it
                problem = OrgRejected(f"Subscribe {self.topic}: cannot decode an event: {error!r}")
            finally:
                requests.put(None)
                with self._lock:
                    self._call = self._requests = None
            if self._closed.is_set():
                return
            if self._stalled:
                self.stalls += 1
                log.warning("Pub/Sub %s: no response (not even a keep-alive) for %ss: the stream is stalled; "
                            "reopening after replay id %s", self.topic, self.watchdog,
                            self.resume_after.hex() if self.resume_after else "(start)")
            elif ended is not None and ended.code() == grpc.StatusCode.UNAUTHENTICATED and not refreshed:
                refreshed = True
                try:
                    self.connection.refresh(token)
                except MiddlewareError as error:
                    self._end(error)
                    return
            else:
                if problem is None:
                    problem = grpc_failure(ended, f"Subscribe {self.topic}") if ended is not None else \
                        OrgUnavailable(f"Subscribe {self.topic}: the org ended the stream")
                failures += 1
                if isinstance(problem, PermanentError) or failures > self.max_reconnects:
                    self._end(problem)
                    return
                delay = min(0.25 * 2 ** failures, 10.0)
                log.warning("Pub/Sub %s: %s; reopening in %.1fs", self.topic, problem, delay)
                if self._closed.wait(delay):
                    return
            self.reopened += 1

    def _receive(self, response: Any) -> None:
        import fastavro

        with self._lock:
            self._last_activity = time.monotonic()
            self._outstanding = response.pending_num_requested
        for item in response.events:
            parsed, schema = self.connection.schema(item.event.schema_id)
            payload = fastavro.schemaless_reader(io.BytesIO(item.event.payload), parsed)
            if isinstance(payload, dict) and isinstance(payload.get("ChangeEventHeader"), dict):
                expand_field_bitmaps(payload["ChangeEventHeader"], schema)
            self._events.put(ReceivedEvent(self.topic, bytes(item.replay_id), item.event.id, item.event.schema_id,
                                           payload if isinstance(payload, dict) else {"value": payload}))
            self.resume_after = bytes(item.replay_id)
        if response.latest_replay_id:
            self.resume_after = bytes(response.latest_replay_id)

    def _end(self, error: BaseException) -> None:
        self._events.put(error)

    def _watch(self) -> None:
        assert self.watchdog
        interval = max(0.05, min(1.0, self.watchdog / 4))
        while not self._closed.wait(interval) and self._reader.is_alive():
            with self._lock:
                call = self._call
                stalled = (call is not None and not self._stalled
                           and time.monotonic() - self._last_activity > self.watchdog)
                if stalled:
                    self._stalled = True
            if stalled:
                call.cancel()


# -- the source ------------------------------------------------------------------------------------------------


class OrgPubSubSource(Source):
    """Messages from an org topic; the position (checkpoint) is the replay id as hex.

    ``replay`` (latest|earliest) is where a first run starts. ``fallback`` is what happens when the org refuses to
    resume after the stored replay id (outside retention, unknown, corrupted): ``fail`` raises
    :class:`ReplayIdInvalid` and reads nothing; ``earliest`` / ``latest`` log a warning, record the fallback in
    :attr:`fallbacks` (and a ``replay_fallback`` header on the next message) and resubscribe from there.
    """

    name = "org.pubsub"

    def __init__(self, connection: OrgConnection | None, topic: str, *, replay: str = "latest", fallback: str = "fail",
                 batch: int = 100, watchdog: float | None = 300.0, max_reconnects: int = 5) -> None:
        self.connection = connection
        self.topic = topic
        self.replay = replay
        self.fallback = fallback
        self.batch = batch
        self.watchdog = watchdog
        self.max_reconnects = max_reconnects
        self.subscription: Subscription | None = None
        self.fallbacks: list[dict[str, Any]] = []
        self._position: str | None = None  # the checkpoint, then the last message's replay id
        self._start: tuple[str, bytes | None] = (replay, None)  # where a (re)subscription starts
        self._announce: str | None = None

    def open(self, checkpoint: Any | None) -> None:
        """Subscribe after ``checkpoint`` (a replay id as hex), or from ``replay`` on a first run."""
        self.close()
        self._position = str(checkpoint) if checkpoint else None
        if self._position is None:
            self._subscribe(self.replay, None)
            return
        try:
            replay_id = bytes.fromhex(self._position)
        except ValueError:
            replay_id = self._position.encode()  # not hex: the org will call it corrupted, and fallback applies
        self._subscribe("custom", replay_id)

    def _subscribe(self, preset: str, replay_id: bytes | None) -> None:
        connection = require_connection(self.connection, self.name)
        self._start = (preset, replay_id)
        self.subscription = None
        self.subscription = connection.subscribe(self.topic, preset, replay_id, self.batch, watchdog=self.watchdog,
                                                 max_reconnects=self.max_reconnects)

    def _drop(self) -> None:
        """Forget a subscription that gave up (the org was unavailable too long); the next read resubscribes
        after the last replay id it received."""
        if self.subscription is not None:
            if self.subscription.resume_after is not None:
                self._start = ("custom", self.subscription.resume_after)
            self.subscription.close()
            self.subscription = None

    def read(self, max_messages: int, timeout: float) -> list[Message]:
        """Up to ``max_messages`` events as messages, waiting at most ``timeout`` seconds for the first."""
        if self.subscription is None:
            self._subscribe(*self._start)
        assert self.subscription is not None
        deadline = time.monotonic() + timeout
        try:
            events = self.subscription.poll(max_messages, timeout)
        except ReplayIdInvalid as error:
            self._fall_back(error)
            assert self.subscription is not None
            events = self.subscription.poll(max_messages, max(0.0, deadline - time.monotonic()))
        except RetryableError:
            self._drop()
            raise
        return [self._message(event) for event in events]

    def _fall_back(self, error: ReplayIdInvalid) -> None:
        where = self._position or "(the stream's last position)"
        if self.fallback not in ("earliest", "latest"):
            raise ReplayIdInvalid(
                f"org.pubsub {self.topic}: the org refused to resume after replay id {where}: {error}. "
                "fallback is 'fail', so nothing is skipped silently: set fallback: earliest (replay all the org "
                "still keeps) or latest (only new events), or reset the pipeline's checkpoint",
                error_code=error.error_code) from error
        log.warning("org.pubsub %s: the org refused to resume after replay id %s (%s); falling back to %s: "
                    "events past the retention window are lost%s", self.topic, where, error, self.fallback,
                    ", and so are those published since" if self.fallback == "latest" else "")
        self.fallbacks.append({"topic": self.topic, "from": where, "to": self.fallback, "reason": str(error),
                               "at": time.time()})
        self._announce = self.fallback
        if self.subscription is not None:
            self.subscription.close()
        self._position = None
        self._subscribe(self.fallback, None)

    def _message(self, event: ReceivedEvent) -> Message:
        body = dict(event.payload)
        header = event.change_event_header
        position = event.replay_id.hex()
        key = None
        if header is not None and header.get("transactionKey"):
            message_id = f"{header['transactionKey']}:{header.get('sequenceNumber')}"
            timestamp = header.get("commitTimestamp")
            key = next(iter(header.get("recordIds") or []), None)
        else:
            message_id = event.event_uuid or position
            timestamp = body.get("CreatedDate")
        headers: dict[str, Any] = {"topic": self.topic, "replay_id": position, "timestamp": timestamp,
                                   "schema_id": event.schema_id}
        if self._announce:
            headers["replay_fallback"], self._announce = self._announce, None
        self._position = position
        return Message(body=body, id=str(message_id), headers=headers, position=position, key=key)

    def close(self) -> None:
        """End the subscription."""
        if self.subscription is not None:
            self.subscription.close()
            self.subscription = None


SOURCE_KEYS = ("connection", "topic", "replay", "fallback", "batch", "watchdog")


def make_pubsub_source(config: dict[str, Any], context: Any) -> OrgPubSubSource:
    """``org.pubsub``: {connection (default "default"), topic, replay: latest|earliest, fallback:
    fail|earliest|latest (default fail), batch (1..100), watchdog (seconds, 0 disables; default 300)}."""
    topic = config.get("topic")
    if not topic:
        raise config_error("org.pubsub: topic is required (/event/Name__e, /data/AccountChangeEvent)", "topic")
    replay = str(config.get("replay", "latest")).lower()
    fallback = str(config.get("fallback", "fail")).lower()
    if replay not in ("latest", "earliest"):
        raise config_error(f"org.pubsub: replay is latest or earliest, not {replay!r}", "replay")
    if fallback not in ("fail", "earliest", "latest"):
        raise config_error(f"org.pubsub: fallback is fail, earliest or latest, not {fallback!r}", "fallback")
    try:
        batch = int(config.get("batch", MAX_CREDIT))
    except (TypeError, ValueError):
        raise config_error("org.pubsub: batch is a whole number from 1 to 100", "batch") from None
    if not 1 <= batch <= MAX_CREDIT:
        raise config_error(f"org.pubsub: batch is 1..{MAX_CREDIT}, not {batch}", "batch")
    try:
        watchdog = float(config.get("watchdog", 300))
    except (TypeError, ValueError):
        raise config_error("org.pubsub: watchdog is a number of seconds (0 disables it)", "watchdog") from None
    return OrgPubSubSource(connection_for(config, context, "org.pubsub"), str(topic), replay=replay,
                           fallback=fallback, batch=batch, watchdog=watchdog or None)


def register(registry: Any = None) -> None:
    """Register ``org.pubsub`` with the pipeline registry (:mod:`interlink.middleware.spec` by default)."""
    if registry is None:
        from interlink.middleware import spec as registry
    registry.register_source("org.pubsub", make_pubsub_source, keys=SOURCE_KEYS, replace=True,
                             help="events of an org's Pub/Sub API topic (platform events, change events)")


try:
    register()
except Exception as exc:  # the registry belongs to another module: a mismatch must not break importing this one
    log.warning("org.pubsub is not registered with the pipeline registry: %s", exc)


__all__ = ["OrgPubSubSource", "ReceivedEvent", "Subscription", "expand_field_bitmaps", "make_pubsub_source",
           "register"]
