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
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: marks a :meth:`Message.copy` argument that was not given (None is a value there)
_KEEP: Any = object()


class MiddlewareError(Exception):
    """A step failed on a message."""


class RetryableError(MiddlewareError):
    """A failure worth retrying: a timeout, a 5xx, a lock, a remote system that is down."""


class PermanentError(MiddlewareError):
    """A failure retries cannot fix: bad data, a 4xx validation error. The message goes to the dead letters."""


class CheckpointConflict(MiddlewareError):
    """Another worker moved the checkpoint since this one read it; this worker must not overwrite it."""


class PipelineSpecError(ValueError):
    """A pipeline definition is invalid; the message names the file, line and key.

    ``key`` is the offending key path within the step being built (``("fields", "Name")``), set by step factories;
    the builder adds the rest. Errors located in a pipeline carry its ``file`` (None for pipelines built in Python),
    the ``line`` (None when unknown) and the ``key_path`` text (``steps[1].when``; "" when the error is about the
    whole file).
    """

    def __init__(self, message: str = "", *, key: tuple[str | int, ...] = (), file: Path | None = None,
                 line: int | None = None, key_path: str = "") -> None:
        super().__init__(message)
        self.key = key
        self.file = file
        self.line = line
        self.key_path = key_path


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

    def copy(self, body: dict[str, Any] | None = None, *, id: str = _KEEP, headers: dict[str, Any] | None = None,
             position: Any = _KEEP, key: str | None = _KEEP) -> Message:
        """A new message (a processor's output): ``body`` (else a copy of this one's), and this one's id, headers (a
        copy), position and key unless given."""
        return Message(body=dict(self.body) if body is None else body, id=self.id if id is _KEEP else id,
                       headers=dict(self.headers) if headers is None else headers,
                       position=self.position if position is _KEEP else position,
                       key=self.key if key is _KEEP else key)


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
    it goes to (None: the default sink): [] drops the message (filter), several split it.

    The other methods and attributes are optional hooks with do-nothing defaults, which the runtime calls for
    stateful steps: :meth:`prepare` (look up state for a whole batch at once, such as dedupe keys), :meth:`held` and
    :meth:`tick` (messages held back, such as aggregate windows), :meth:`commit` and :meth:`rollback` (state kept
    until a batch is delivered, such as dedupe keys), :attr:`drop_metric`, :attr:`branches` and
    :attr:`routes_everything` (for metrics and validation).
    """

    name: str = "processor"
    #: what the runtime counts a dropped message as (a step counter; also pipeline-wide for filtered and deduped)
    drop_metric: str = "filtered"
    #: the branches this step may send messages to; validation checks each has a sink (or a default sink exists)
    branches: Collection[str] = ()
    #: True when every message leaves on a named branch, so the pipeline needs no default sink
    routes_everything: bool = False

    def process(self, message: Message) -> list[tuple[str | None, Message]]:
        raise NotImplementedError

    def prepare(self, messages: Sequence[Message]) -> None:
        """The messages the runtime is about to pass to :meth:`process`, one by one and in this order: a step may
        fetch what it needs for all of them at once (dedupe looks up a batch of keys in one transaction).

        Only an optimisation: :meth:`process` must give the same answers without it, and must not rely on it being
        called (a replayed message, a runtime subclass running messages one at a time). An exception here is
        ignored; :meth:`process` then does the work per message, with the step's retries.
        """

    def flush(self) -> list[tuple[str | None, Message]]:
        """Messages a stateful step holds back (aggregate windows), released at the end of a run or a window."""
        return []

    def tick(self) -> list[tuple[str | None, Message]]:
        """Held-back messages that are due now (windows that elapsed), asked for after every batch and when the
        source is idle, so they leave even when no message arrives."""
        return []

    def held(self) -> list[Message]:
        """The messages this step holds back now: the runtime never checkpoints past the position of one of them."""
        return []

    def commit(self) -> None:
        """The messages processed since the last commit are delivered (or dead-lettered): make their effects on the
        step's state durable (dedupe records its keys here)."""

    def rollback(self) -> None:
        """The batch was abandoned and will be read again: forget what :meth:`commit` would have recorded."""

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
    "CheckpointConflict",
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
