"""The NATS source: a durable pull consumer on a JetStream stream, acknowledged explicitly.

nats-py is asynchronous and the pipeline runtime is not: the client runs on an event loop in a background
thread (:class:`NatsLoop`) and each call crosses over with ``asyncio.run_coroutine_threadsafe``.

On :meth:`NatsSource.open` the source connects, creates the stream (``createStream: true``) and binds the
durable consumer (creating it with ``ackWait`` / ``maxDeliver`` / ``deliverPolicy`` if it does not exist).
:meth:`NatsSource.read` fetches up to ``max_messages``; the messages stay un-acknowledged, kept by stream
sequence, until :meth:`NatsSource.acknowledge` is called with a position (a stream sequence) and acks every
message read up to it, in read order. A worker killed before acknowledging loses nothing: the server
redelivers its messages after ``ackWait`` to whichever process pulls from the durable next. The durable
consumer, not the runtime's checkpoint, is where the source resumes (the checkpoint is not needed).

Message bodies are the JSON objects published (a JSON value that is not an object becomes ``{"value": ...}``,
bytes that are not JSON ``{"data": <text>}``); the id is the ``Nats-Msg-Id`` header if present, else
``<stream>:<sequence>``; the key is the ``Interlink-Key`` header the NATS sink sets, if any. When the publisher
forwarded the message's headers (the NATS sink's ``forwardHeaders``, as the distributed runtime does), the
``Interlink-Headers`` header (tagged JSON) gives them back, over the NATS ones of the same name.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Coroutine
from typing import Any, TypeVar

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import (
    ConnectionClosedError,
    ConnectionReconnectingError,
    NoRespondersError,
    NoServersError,
    OutboundBufferLimitError,
    StaleConnectionError,
)
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext, api
from nats.js.errors import NoStreamResponseError, NotFoundError, ServerError, ServiceUnavailableError

from interlink.middleware.base import Message, PipelineSpecError, Source
from interlink.middleware.sources import duration, expand_env, require, with_connection
from interlink.middleware.store import decode_json

T = TypeVar("T")

log = logging.getLogger(__name__)

MSG_ID_HEADER = "Nats-Msg-Id"
#: the message's business key, set by the NATS sink
KEY_HEADER = "Interlink-Key"
#: the message's own headers as tagged JSON (:func:`interlink.middleware.store.encode_json`), when forwarded
HEADERS_HEADER = "Interlink-Headers"
#: failures that say "NATS is away or slow right now", not "this request is wrong": worth trying again
RETRYABLE_ERRORS: tuple[type[BaseException], ...] = (
    NatsTimeoutError, asyncio.TimeoutError, concurrent.futures.TimeoutError, ConnectionClosedError,
    ConnectionReconnectingError, StaleConnectionError, NoRespondersError, NoServersError, NoStreamResponseError,
    OutboundBufferLimitError, ServiceUnavailableError, ServerError, OSError)


class NatsLoop:
    """An asyncio loop in a daemon thread, for calling nats-py from synchronous code."""

    def __init__(self, name: str = "nats") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=f"interlink-{name}", daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coroutine`` on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        """Stop the loop and its thread."""
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


def connect_options(config: dict[str, Any]) -> dict[str, Any]:
    """Connection settings from a connector config (``url``, ``user``, ``password``, ``token``, ``credentials``,
    ``connectTimeout``, ``connectAttempts``, ``reconnectWait``, ``maxReconnectAttempts``); secrets may be
    ``${ENV}`` references. :func:`open_connection` takes them."""
    urls = config.get("url") or config.get("servers") or "nats://127.0.0.1:4222"
    if isinstance(urls, str):
        urls = [part.strip() for part in urls.split(",") if part.strip()]
    options: dict[str, Any] = {
        "servers": [expand_env(url, where="nats url") for url in urls],
        "connect_timeout": duration(config, "connectTimeout", 5.0),
        "reconnect_time_wait": duration(config, "reconnectWait", 2.0),
        "max_reconnect_attempts": int(config.get("maxReconnectAttempts", 60)),
        "connect_attempts": max(1, int(config.get("connectAttempts", 3))),
    }
    for key, option in (("user", "user"), ("password", "password"), ("token", "token"),
                        ("credentials", "user_credentials")):
        if config.get(key):
            options[option] = expand_env(str(config[key]), where=f"nats {key}")
    return options


async def _log_error(error: Exception) -> None:
    log.warning("nats: %s", error or type(error).__name__)


async def open_connection(options: dict[str, Any]) -> Client:
    """Connect with :func:`connect_options`' settings.

    nats-py retries the first connection up to ``max_reconnect_attempts`` times (60 x 2 s by default) and never
    gives up when it is 0, whatever ``allow_reconnect`` says; so the first connection gets ``connect_attempts``
    tries, and the reconnection limit is set once connected.
    """
    settings = dict(options)
    reconnects = settings.pop("max_reconnect_attempts")
    attempts = settings.pop("connect_attempts")
    client = await nats.connect(**settings, max_reconnect_attempts=max(1, attempts - 1), error_cb=_log_error)
    client.options["max_reconnect_attempts"] = reconnects
    return client


def close_connection(loop: NatsLoop | None, client: Client | None, *, timeout: float = 10.0) -> None:
    """Close ``client`` (if it is open) on ``loop``, then stop ``loop``: how every NATS connector lets go.

    Closing is best effort: a connection that cannot be closed cleanly (NATS went away) is logged and dropped,
    and the loop's thread is stopped whatever happened, so a failed close never leaks a thread.
    """
    if loop is None:
        return
    try:
        if client is not None and not client.is_closed:
            loop.run(client.close(), timeout=timeout)
    except Exception as exc:
        log.warning("nats: closing the connection failed: %r", exc)
    finally:
        loop.stop()


async def ensure_stream(js: JetStreamContext, name: str, subjects: list[str], config: dict[str, Any]) -> None:
    """Create stream ``name`` on ``subjects`` unless it exists (an existing stream is left as it is);
    ``config`` is :func:`stream_config`'s, plus ``retention`` (``limits``, ``interest`` or ``workqueue``)."""
    try:
        await js.stream_info(name)
        return
    except NotFoundError:
        pass
    storage = api.StorageType.MEMORY if config.get("storage") == "memory" else api.StorageType.FILE
    retention = api.RetentionPolicy(config["retention"]) if config.get("retention") else None
    await js.add_stream(api.StreamConfig(name=name, subjects=subjects, storage=storage, retention=retention,
                                         max_age=config.get("maxAge") or None,
                                         duplicate_window=config.get("duplicateWindow") or None))


def stream_config(config: dict[str, Any]) -> dict[str, Any]:
    """The settings of a stream the connector creates: ``maxAge`` and ``duplicateWindow`` (durations),
    ``storage`` (file or memory)."""
    return {"maxAge": duration(config, "maxAge", None), "duplicateWindow": duration(config, "duplicateWindow", None),
            "storage": str(config.get("storage", "file"))}


def message_body(data: bytes) -> dict[str, Any]:
    """A NATS payload as a message body (see the module docstring)."""
    try:
        value = json.loads(data) if data else {}
    except ValueError:
        return {"data": data.decode("utf-8", errors="replace")}
    return value if isinstance(value, dict) else {"value": value}


class NatsSource(Source):
    """Messages of a JetStream durable pull consumer (see the module docstring)."""

    name = "nats"

    def __init__(self, *, options: dict[str, Any], stream: str, subject: str, durable: str,
                 create_stream: bool = False, stream_subjects: list[str] | None = None,
                 stream_config: dict[str, Any] | None = None, ack_wait: float = 30.0, max_deliver: int = -1,
                 deliver_policy: str = "all", max_ack_pending: int | None = None) -> None:
        self.options = options
        self.stream = stream
        self.subject = subject
        self.durable = durable
        self.create_stream = create_stream
        self.stream_subjects = stream_subjects or [subject]
        self.stream_config = stream_config or {}
        self.ack_wait = ack_wait
        self.max_deliver = max_deliver
        #: how many messages the consumer lets be delivered and unacknowledged at once (None: the server's
        #: default, 1000), across every process bound to the durable
        self.max_ack_pending = max_ack_pending
        try:
            self.deliver_policy = api.DeliverPolicy(deliver_policy)
        except ValueError:
            raise PipelineSpecError(f"nats source: unknown deliverPolicy {deliver_policy!r}") from None
        self._loop: NatsLoop | None = None
        self._nc: Client | None = None
        self._subscription: Any = None
        self._pending: OrderedDict[int, Msg] = OrderedDict()  # stream sequence -> message, in read order

    def open(self, checkpoint: Any | None) -> None:
        """Connect and bind the durable consumer (the server keeps its position; ``checkpoint`` is not used)."""
        self._loop = NatsLoop(f"nats-source-{self.durable}")
        try:
            self._loop.run(self._open(), timeout=self.connect_deadline(self.options))
        except BaseException:
            self.close()
            raise

    @staticmethod
    def connect_deadline(options: dict[str, Any]) -> float:
        """How long connecting may take with ``options`` (all attempts), plus room for the JetStream calls."""
        attempts = int(options["connect_attempts"])
        return attempts * (float(options["connect_timeout"]) + float(options["reconnect_time_wait"])) + 10

    async def _open(self) -> None:
        self._nc = await open_connection(self.options)
        js = self._nc.jetstream()
        if self.create_stream:
            await ensure_stream(js, self.stream, self.stream_subjects, self.stream_config)
        config = api.ConsumerConfig(ack_policy=api.AckPolicy.EXPLICIT, ack_wait=self.ack_wait,
                                    max_deliver=self.max_deliver, deliver_policy=self.deliver_policy,
                                    max_ack_pending=self.max_ack_pending)
        self._subscription = await js.pull_subscribe(self.subject, durable=self.durable, stream=self.stream,
                                                     config=config)

    async def _fetch(self, batch: int, timeout: float) -> list[Msg]:
        try:
            return list(await self._subscription.fetch(batch, timeout=max(timeout, 0.05)))
        except (TimeoutError, NatsTimeoutError):
            return []

    def read(self, max_messages: int, timeout: float) -> list[Message]:
        """Up to ``max_messages`` messages, waiting up to ``timeout`` seconds; they stay un-acked until
        :meth:`acknowledge`."""
        if self._loop is None or self._subscription is None:
            raise RuntimeError("nats source is not open")
        fetched = self._loop.run(self._fetch(max(1, max_messages), timeout), timeout=max(timeout, 0.05) + 30)
        messages = []
        for msg in fetched:
            message = self._message_of(msg)
            self._pending.pop(message.position, None)  # a redelivery replaces the earlier delivery of the message
            self._pending[message.position] = msg
            messages.append(message)
        return messages

    def _message_of(self, msg: Msg) -> Message:
        """The pipeline message of one NATS message (position: its stream sequence)."""
        metadata = msg.metadata
        sequence = int(metadata.sequence.stream)
        nats_headers = dict(msg.headers or {})
        message_id = nats_headers.get(MSG_ID_HEADER) or f"{metadata.stream}:{sequence}"
        headers: dict[str, Any] = {"subject": msg.subject, "stream": metadata.stream, "stream_sequence": sequence,
                                   "delivered": metadata.num_delivered, "nats_headers": nats_headers}
        forwarded = nats_headers.get(HEADERS_HEADER)
        if forwarded:
            try:
                original = decode_json(forwarded)
            except ValueError:
                log.warning("nats source %s: message %s has unreadable %s", self.durable, message_id,
                            HEADERS_HEADER)
            else:
                if isinstance(original, dict):
                    headers.update(original)
        return Message(body=message_body(msg.data), id=message_id, headers=headers, position=sequence,
                       key=nats_headers.get(KEY_HEADER) or None)

    async def _ack(self, messages: list[Msg]) -> None:
        for msg in messages:
            await msg.ack()
        if self._nc is not None:
            await self._nc.flush()

    def acknowledge(self, position: Any) -> None:
        """Ack every message read up to (and including) the one at stream sequence ``position``."""
        if position is None or self._loop is None or int(position) not in self._pending:
            return
        done: list[Msg] = []
        while self._pending:
            sequence, msg = self._pending.popitem(last=False)
            done.append(msg)
            if sequence == int(position):
                break
        self._loop.run(self._ack(done), timeout=30)

    @property
    def unacknowledged(self) -> list[int]:
        """The stream sequences read and not acknowledged yet."""
        return list(self._pending)

    def close(self) -> None:
        """Disconnect (the durable consumer stays; un-acked messages are redelivered after ``ackWait``)."""
        close_connection(self._loop, self._nc)
        self._loop = self._nc = self._subscription = None
        self._pending.clear()


def make_nats_source(config: dict[str, Any], context: Any) -> NatsSource:
    """Build a NATS JetStream source from its pipeline config (keys in docs/middleware-connectors.md)."""
    config = with_connection(config, context)
    subject = str(require(config, "subject", "nats source"))
    pipeline = getattr(context, "pipeline", None) or "pipeline"
    durable = str(config.get("durable") or f"interlink-{pipeline}").replace(".", "_").replace(" ", "_")
    subjects = config.get("streamSubjects")
    return NatsSource(
        options=connect_options(config),
        stream=str(require(config, "stream", "nats source")),
        subject=subject,
        durable=durable,
        create_stream=bool(config.get("createStream", False)),
        stream_subjects=[str(s) for s in subjects] if subjects else None,
        stream_config=stream_config(config),
        ack_wait=duration(config, "ackWait", 30.0) or 30.0,
        max_deliver=int(config.get("maxDeliver", -1)),
        deliver_policy=str(config.get("deliverPolicy", "all")),
    )


__all__ = ["HEADERS_HEADER", "KEY_HEADER", "MSG_ID_HEADER", "RETRYABLE_ERRORS", "NatsLoop", "NatsSource",
           "close_connection", "connect_options", "ensure_stream", "make_nats_source", "message_body",
           "open_connection", "stream_config"]
