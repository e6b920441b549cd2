"""The middleware's vocabulary: messages, and the source / processor / sink interfaces every step implements.

A pipeline reads :class:`Message`\\ s from one :class:`Source`, passes each through its :class:`Processor`\\ s
(which may drop it, change it, split it into several, or route it to a named branch) and hands the results to
the :class:`Sink` of their branch. The runtime owns the guarantees, so steps stay simple:

- **at least once**: a source's position (``Message.position``) is checkpointed only after every message up to it
  was acknowledged by its sink (or dead-lettered); after a crash the source resumes from the last checkpoint and
  may deliver some messages again, which ``dedupe`` or an idempotent sink absorbs;
- **retries**: a step that raises :class:`RetryableError` (or any unexpected exception) is retried with
  exponential backoff and jitter up to the step's attempt limit; :class:`PermanentError` skips the retries;
- **dead letters**: a message that still fails is stored with its error and attempt history, and the pipeline
  moves on; ``interlink dlq replay`` sends it through again after a fix;
- **back-pressure**: the runtime reads a bounded batch at a time and does not read more until the batch is
  written, so a slow sink slows the source instead of filling memory.

The middleware talks to orgs only through their wire APIs (REST, Bulk API 2.0, Pub/Sub API), never by importing
org internals, so a pipeline built against a local org runs unchanged against a production org.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


class MiddlewareError(Exception):
    """A step failed on a message."""


class RetryableError(MiddlewareError):
    """A failure worth retrying: a timeout, a 5xx, a lock, a remote system that is down."""


class PermanentError(MiddlewareError):
    """A failure retries cannot fix: bad data, a 4xx validation error. The message goes to the dead letters."""


class PipelineSpecError(ValueError):
    """A pipeline definition is invalid; the message names the file, line and key."""


@dataclass
class Message:
    """One unit of work flowing through a pipeline.

    ``id`` identifies the message at its source (an EventUuid, a replay id, ``file:line``, a row key) and is the
    default dedupe key. ``position`` is where the source resumes after this message (a replay id, a watermark, a
    file offset): the runtime checkpoints it once the message is done. ``key`` is a business or partition key
    (routing, aggregation, ordering). ``headers`` carry source metadata (topic, replay id, received time) and never
    reach a sink unless a ``map`` copies them into the body.
    """

    body: dict[str, Any]
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    headers: dict[str, Any] = field(default_factory=dict)
    position: Any = None
    key: str | None = None

    def copy(self, body: dict[str, Any] | None = None, **changes: Any) -> Message:
        """A new message with the same id, headers and position (a processor's output)."""
        return Message(body=dict(self.body) if body is None else body, id=changes.get("id", self.id),
                       headers=dict(self.headers), position=self.position, key=changes.get("key", self.key))


@dataclass
class Delivery:
    """What a sink did with one message: done (``error`` None), or failed and whether retrying may help."""

    error: str | None = None
    retryable: bool = True
    # What the sink created or matched (an org record Id, an HTTP status...), kept in the run's report.
    detail: Any = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Source:
    """Where messages come from. Subclasses implement :meth:`read`; the rest is optional."""

    name: str = "source"

    def open(self, checkpoint: Any | None) -> None:
        """Start reading after ``checkpoint`` (the last position the runtime stored; None on a first run)."""

    def read(self, max_messages: int, timeout: float) -> list[Message]:
        """Up to ``max_messages`` messages, waiting at most ``timeout`` seconds for the first; [] when there are
        none yet. A finite source (a file folder, a SQL extract) returns [] and sets :attr:`exhausted` once
        everything has been read."""
        raise NotImplementedError

    #: set by finite sources when everything has been read (``interlink pipelines run --once`` stops then)
    exhausted: bool = False

    def acknowledge(self, position: Any) -> None:
        """Everything up to ``position`` is done (a broker ack, moving a processed file away)."""

    def close(self) -> None:
        """Release connections."""


class Processor:
    """One step between source and sink. :meth:`process` answers the messages that go on, each with the branch
    it goes to (None: the default sink): [] drops the message (filter), several split it."""

    name: str = "processor"

    def process(self, message: Message) -> list[tuple[str | None, Message]]:
        raise NotImplementedError

    def flush(self) -> list[tuple[str | None, Message]]:
        """Messages a stateful step holds back (aggregate windows), released at the end of a run or a window."""
        return []

    def close(self) -> None:
        """Release resources."""


class Sink:
    """Where messages end up. :meth:`write` answers one :class:`Delivery` per message, in order."""

    name: str = "sink"

    def write(self, messages: Sequence[Message]) -> list[Delivery]:
        raise NotImplementedError

    def close(self) -> None:
        """Flush and release resources."""


__all__ = [
    "Delivery",
    "Message",
    "MiddlewareError",
    "PermanentError",
    "PipelineSpecError",
    "Processor",
    "RetryableError",
    "Sink",
    "Source",
]
