"""The NATS sink: each message body published as JSON to a JetStream subject, and the publish acknowledged.

Every publish carries ``Nats-Msg-Id: <message id>``: JetStream answers a second publish of the same id within
the stream's duplicate window (2 minutes by default, ``duplicateWindow`` when the sink creates the stream)
with the original sequence instead of storing it again, so a batch retried after a crash does not duplicate
messages in the stream. A batch is published concurrently, with at most ``max_pending`` publishes waiting for
their ``PubAck`` at once (256 by default): a batch of 50,000 does not fire 50,000 publishes that then time out
waiting for the server; :meth:`NatsSink.write` answers once every message of the batch has its answer. The
message's key goes in ``Interlink-Key``; with ``forwardHeaders: true`` its headers go too, as tagged JSON in
``Interlink-Headers``, so a NATS source reading the subject gets the message back with the same id, key and headers
(the distributed runtime relies on it).

Delivery classification: a ``PubAck`` is ok (``detail``: stream, sequence, duplicate); a timeout, a lost
connection or no stream listening on the subject is retryable; any other JetStream API error (a message over
the stream's size limits, a sealed stream, an expected stream mismatch) and a payload over the server's maximum
are permanent.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Sequence
from typing import Any

from nats.aio.client import Client
from nats.errors import MaxPayloadError
from nats.js.errors import APIError

from interlink.middleware.base import Delivery, Message, Sink
from interlink.middleware.sources import duration, require, with_connection
from interlink.middleware.sources.nats import (
    HEADERS_HEADER,
    KEY_HEADER,
    MSG_ID_HEADER,
    RETRYABLE_ERRORS,
    NatsLoop,
    NatsSource,
    close_connection,
    connect_options,
    ensure_stream,
    open_connection,
    stream_config,
)
from interlink.middleware.store import encode_json

#: publishes waiting for their acknowledgement at once, by default
MAX_PENDING = 256


class NatsSink(Sink):
    """Publishes to a JetStream subject (see the module docstring)."""

    name = "nats"

    def __init__(self, *, options: dict[str, Any], subject: str, stream: str | None = None,
                 create_stream: bool = False, stream_subjects: list[str] | None = None,
                 stream_config: dict[str, Any] | None = None, timeout: float = 5.0,
                 forward_headers: bool = False, max_pending: int = MAX_PENDING) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self.options = options
        self.subject = subject
        self.stream = stream
        self.create_stream = create_stream
        self.stream_subjects = stream_subjects or [subject]
        self.stream_config = stream_config or {}
        self.timeout = timeout
        self.forward_headers = forward_headers
        self.max_pending = max_pending
        self._loop: NatsLoop | None = None
        self._nc: Client | None = None

    def _connect(self) -> None:
        if self._nc is not None:
            return
        loop = NatsLoop("nats-sink")
        try:
            loop.run(self._open(), timeout=NatsSource.connect_deadline(self.options))
        except BaseException:
            close_connection(loop, self._nc)
            self._nc = None
            raise
        self._loop = loop

    async def _open(self) -> None:
        self._nc = await open_connection(self.options)
        if self.create_stream and self.stream:
            await ensure_stream(self._nc.jetstream(), self.stream, self.stream_subjects, self.stream_config)

    async def _publish_one(self, message: Message) -> Delivery:
        assert self._nc is not None
        headers = {MSG_ID_HEADER: message.id}
        if message.key is not None:
            headers[KEY_HEADER] = message.key
        try:
            if self.forward_headers and message.headers:
                headers[HEADERS_HEADER] = encode_json(message.headers)  # ASCII, one line: a valid header value
            payload = json.dumps(message.body, default=str).encode()
            ack = await self._nc.jetstream().publish(self.subject, payload, timeout=self.timeout,
                                                     stream=self.stream, headers=headers)
        except MaxPayloadError as exc:
            return Delivery(error=f"message too large for the NATS server: {exc}", retryable=False)
        except RETRYABLE_ERRORS as exc:
            return Delivery(error=f"publish to {self.subject} failed: {exc!r}", retryable=True)
        except APIError as exc:
            return Delivery(error=f"JetStream refused the message on {self.subject}: {exc}", retryable=False)
        return Delivery(detail={"stream": ack.stream, "sequence": ack.seq, "duplicate": bool(ack.duplicate)})

    async def _publish(self, messages: Sequence[Message]) -> list[Delivery]:
        """Publish every message, at most :attr:`max_pending` waiting for their ack at once; answers when all
        are answered (each publish's own ``timeout`` starts when it is sent, not while it waits for a slot)."""
        slots = asyncio.Semaphore(self.max_pending)

        async def publish(message: Message) -> Delivery:
            async with slots:
                return await self._publish_one(message)

        return list(await asyncio.gather(*(publish(message) for message in messages)))

    def write(self, messages: Sequence[Message]) -> list[Delivery]:
        """Publish the batch (see :meth:`_publish`); one delivery per message, in order."""
        if not messages:
            return []
        try:
            self._connect()
        except Exception as exc:  # connecting failed: every message may succeed later
            return [Delivery(error=f"cannot connect to NATS: {exc!r}", retryable=True) for _ in messages]
        assert self._loop is not None
        # Each wave of max_pending publishes takes at most `timeout` (a publish times out on its own after it).
        waves = math.ceil(len(messages) / self.max_pending)
        return self._loop.run(self._publish(messages), timeout=self.timeout * (waves + 1) + 30)

    def close(self) -> None:
        """Disconnect."""
        close_connection(self._loop, self._nc)
        self._loop = self._nc = None


def make_nats_sink(config: dict[str, Any], context: Any) -> NatsSink:
    """Build a NATS JetStream sink from its pipeline config (keys in docs/middleware-connectors.md)."""
    config = with_connection(config, context)
    subjects = config.get("streamSubjects")
    return NatsSink(
        options=connect_options(config),
        subject=str(require(config, "subject", "nats sink")),
        stream=config.get("stream"),
        create_stream=bool(config.get("createStream", False)),
        stream_subjects=[str(s) for s in subjects] if subjects else None,
        stream_config=stream_config(config),
        timeout=duration(config, "timeout", 5.0) or 5.0,
        forward_headers=bool(config.get("forwardHeaders", False)),
    )


__all__ = ["MAX_PENDING", "NatsSink", "make_nats_sink"]
