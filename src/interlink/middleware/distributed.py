"""Pipelines on a NATS bus: each pipeline split into a feeder and workers that share a JetStream work queue.

``interlink pipelines run --bus nats://…`` and ``interlink worker --bus nats://…`` run the two halves of a pipeline,
built from the connectors that already exist (one mechanism for every pipeline):

- the **feeder** is the pipeline's source and a NATS sink that publishes every message (body, id, key and headers)
  to the work-queue stream ``IL_PIPE_<name>`` (subject ``interlink.pipeline.<name>``, retention WorkQueue) with
  ``Nats-Msg-Id: <message id>``. The runtime checkpoints the source only after JetStream acknowledged every
  publish of the batch (at most ``max_pending_publishes`` wait for their ack at once), so nothing read is lost; a
  publish repeated after a crash falls in the stream's duplicate window and is stored once. A publish that fails
  retryably (NATS down) is tried again until it succeeds or the feeder stops: an outage holds the feeder back
  instead of dead-lettering what it read. The feeder's checkpoint lives in the JetStream KV bucket
  ``IL_MW_CHECKPOINTS`` (compare-and-set on the KV revision, copied to the middleware store after each save:
  :mod:`interlink.middleware.natskv`);
- the **worker** half is a NATS source on that stream, bound to ONE durable pull consumer shared by every worker
  (explicit acks, ``ack_wait``, ``max_ack_pending`` messages unacknowledged at most across all workers), then the
  pipeline's steps and sinks. The runtime acknowledges a message only after
  its sink did (or it was dropped or dead-lettered), so a worker killed mid-message leaves it unacknowledged and
  JetStream redelivers it to another worker after ``ack_wait``. While a worker is alive it tells JetStream it is
  still working on what it holds (``in_progress`` every ``ack_wait / 3``), so a slow batch is not redelivered
  meanwhile; ``ack_wait`` is the time to notice a dead worker, not a limit on a batch. It stops doing so for a
  message held longer than ``max_hold`` (10 x ``ack_wait`` by default), so a worker stuck in a step does not keep
  its messages forever. On a clean shutdown the runtime finishes its batch and the source naks what it still
  holds, for immediate redelivery.

A message delivered more than ``max_deliver`` times without an acknowledgement (each worker that took it died or
was stuck on it) is dead-lettered on its next delivery, through the runtime, filed at the pipeline's first step so
``interlink dlq replay`` runs it through the whole pipeline. Failures the runtime sees (exceptions, sink errors)
follow the pipeline's own retries and dead letters, exactly as embedded; the message is then acknowledged.

Dedupe keys, dead letters and runs stay in the middleware store, which every process shares (PostgreSQL across
machines; one SQLite file works for processes of one machine). The workers keep no checkpoint: the durable
consumer is where they resume. A pipeline's ``distributed:`` mapping (``ackWait``, ``maxDeliver``,
``maxAckPending``) overrides the process's settings for it (:meth:`BusSettings.for_pipeline`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import datetime as dt
import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interlink.middleware.base import Delivery, Message, Sink
from interlink.middleware.natskv import CHECKPOINT_BUCKET, KvCheckpointStore, check_bucket_name
from interlink.middleware.runtime import PipelineRunner, RunReport, run_runners
from interlink.middleware.sinks.nats import MAX_PENDING, NatsSink
from interlink.middleware.sources.nats import NatsSource, connect_options
from interlink.middleware.spec import Pipeline
from interlink.middleware.store import Checkpoint, MiddlewareStore

log = logging.getLogger("interlink.middleware.distributed")

STREAM_PREFIX = "IL_PIPE_"
SUBJECT_PREFIX = "interlink.pipeline."
#: the header a worker's message carries: how many times the work queue delivered it (1 on the first delivery)
DELIVERED_HEADER = "interlink.delivered"
#: JetStream's own delivery limit is this much above ``max_deliver``: the delivery after the last allowed one is
#: the one that dead-letters the message, and one spare delivery covers a worker dying just then
_SPARE_DELIVERIES = 2
#: messages of a pipeline delivered to workers and not acknowledged yet, at most, by default (JetStream's own
#: default, 1000, would cap what all the workers of a pipeline hold together below a few large batches)
MAX_ACK_PENDING = 20_000


def is_nats_bus(url: str | None) -> bool:
    """Whether ``url`` names a NATS server (``nats://`` or ``tls://``, possibly several separated by commas)."""
    return bool(url) and str(url).strip().lower().startswith(("nats://", "tls://"))


@dataclass(frozen=True)
class BusSettings:
    """How pipelines use the bus: the NATS URL, the consumers' ack wait (seconds), delivery limit and how many
    messages may be unacknowledged at once, how long a worker may keep a message in progress (``max_hold``
    seconds; None: 10 x ``ack_wait``), the streams' storage, the KV bucket of the feeders' checkpoints (None: the
    middleware store only) and how many publishes of a feeder may wait for their ack at once."""

    url: str
    ack_wait: float = 30.0
    max_deliver: int = 5
    storage: str = "file"
    max_hold: float | None = None
    max_ack_pending: int = MAX_ACK_PENDING
    checkpoint_bucket: str | None = CHECKPOINT_BUCKET
    max_pending_publishes: int = MAX_PENDING

    @property
    def hold_limit(self) -> float:
        """Seconds a worker keeps telling JetStream it is still on a message."""
        return self.max_hold if self.max_hold is not None else 10 * self.ack_wait

    def __post_init__(self) -> None:
        if not is_nats_bus(self.url):
            raise ValueError(f"distributed pipelines need a NATS bus (nats://host:port), not {self.url!r}")
        if self.ack_wait <= 0:
            raise ValueError("ack wait must be positive")
        if self.max_deliver < 1:
            raise ValueError("max deliver must be at least 1")
        if self.max_ack_pending < 1:
            raise ValueError("max ack pending must be at least 1")
        if self.max_pending_publishes < 1:
            raise ValueError("max pending publishes must be at least 1")
        if self.checkpoint_bucket is not None:
            check_bucket_name(self.checkpoint_bucket)

    def for_pipeline(self, pipeline: Pipeline) -> BusSettings:
        """These settings with ``pipeline``'s own ``distributed:`` ones (ack wait, max deliver, max ack pending)
        in place of the process's; ``max_ack_pending`` is at least the pipeline's batch, so that one worker's
        batch always fits."""
        options = pipeline.distributed_options
        ack_wait = self.ack_wait if options.ack_wait is None else options.ack_wait
        max_deliver = self.max_deliver if options.max_deliver is None else options.max_deliver
        max_ack_pending = self.max_ack_pending if options.max_ack_pending is None else options.max_ack_pending
        return dataclasses.replace(self, ack_wait=ack_wait, max_deliver=max_deliver,
                                   max_ack_pending=max(max_ack_pending, pipeline.batch))

    def checkpoint_store(self, store: MiddlewareStore, stop_event: threading.Event | None = None) -> MiddlewareStore:
        """``store`` with its checkpoints in the KV bucket (:class:`KvCheckpointStore`), or ``store`` itself when
        :attr:`checkpoint_bucket` is None. The caller closes what it gets when it is not ``store``."""
        if self.checkpoint_bucket is None:
            return store
        return KvCheckpointStore(store, options=self.options, bucket=self.checkpoint_bucket, storage=self.storage,
                                 stop_event=stop_event)

    @property
    def options(self) -> dict[str, Any]:
        """Connection settings for the NATS connectors."""
        return connect_options({"url": self.url})


@dataclass(frozen=True)
class WorkQueue:
    """The JetStream names of one pipeline's work queue."""

    stream: str
    subject: str
    durable: str

    @classmethod
    def of(cls, pipeline: str) -> WorkQueue:
        """``IL_PIPE_<name>``, ``interlink.pipeline.<name>`` and the workers' durable ``interlink-workers-<name>``.

        Stream and consumer names may not contain ``.``: a name that needs changing gets a hash of the original,
        so ``a.b`` and ``a_b`` keep separate streams.
        """
        token = re.sub(r"[^A-Za-z0-9_-]", "_", pipeline)
        if token != pipeline:
            token += "_" + hashlib.sha1(pipeline.encode()).hexdigest()[:8]
        return cls(stream=f"{STREAM_PREFIX}{token}", subject=f"{SUBJECT_PREFIX}{pipeline}",
                   durable=f"interlink-workers-{token}")

    def stream_config(self, bus: BusSettings) -> dict[str, Any]:
        """What :func:`~interlink.middleware.sources.nats.ensure_stream` creates; the same for every process."""
        return {"retention": "workqueue", "storage": bus.storage, "maxAge": None, "duplicateWindow": None}


# -- the feeder --------------------------------------------------------------------------------------------------

class UntilPublished(Sink):
    """The feeder's sink: publishes through a NATS sink and tries retryable failures again (backoff up to
    ``max_backoff``) until they are published or ``stop_event`` is set. Permanent failures (a message over the
    server's maximum) are answered at once and dead-lettered by the runtime."""

    name = "feed"

    def __init__(self, inner: NatsSink, stop_event: threading.Event, *, backoff: float = 0.5,
                 max_backoff: float = 15.0) -> None:
        self.inner = inner
        self.stop_event = stop_event
        self.backoff = backoff
        self.max_backoff = max_backoff

    def write(self, messages: Sequence[Message]) -> list[Delivery]:
        """Publish ``messages``; answers when all are published (or failed permanently), or the feeder stops."""
        results = list(self.inner.write(messages))
        delay = self.backoff
        while not self.stop_event.is_set():
            retry = [index for index, delivery in enumerate(results) if not delivery.ok and delivery.retryable]
            if not retry:
                break
            log.warning("feeding %s: %d message(s) not published (%s); trying again in %.1fs", self.inner.subject,
                        len(retry), results[retry[0]].error, delay)
            if self.stop_event.wait(delay):
                break
            delay = min(self.max_backoff, delay * 2)
            for index, delivery in zip(retry, self.inner.write([messages[i] for i in retry]), strict=True):
                results[index] = delivery
        return results

    def close(self) -> None:
        self.inner.close()


def feeder_pipeline(pipeline: Pipeline, bus: BusSettings, stop_event: threading.Event) -> Pipeline:
    """The feeder half of ``pipeline``: its source, no steps, and a sink publishing to the work queue."""
    queue = WorkQueue.of(pipeline.name)
    publisher = NatsSink(options=bus.options, subject=queue.subject, stream=queue.stream, create_stream=True,
                         stream_subjects=[queue.subject], stream_config=queue.stream_config(bus),
                         forward_headers=True, max_pending=bus.max_pending_publishes)
    return dataclasses.replace(pipeline, steps=[], sink=UntilPublished(publisher, stop_event), sinks={})


class FeederRunner(PipelineRunner):
    """Runs a feeder (see :func:`feeder_pipeline`); its metrics are labelled ``<pipeline>:feed`` so they do not
    mix with a worker's of the same pipeline. Its checkpoint lives in the bus's KV bucket
    (:meth:`BusSettings.checkpoint_store`), whose connection is closed when a run ends. :attr:`finished` is set
    when a run ends."""

    def __init__(self, pipeline: Pipeline, store: MiddlewareStore, bus: BusSettings, **options: Any) -> None:
        stop_event = options.pop("stop_event", None) or threading.Event()
        bus = bus.for_pipeline(pipeline)
        super().__init__(feeder_pipeline(pipeline, bus, stop_event), bus.checkpoint_store(store, stop_event),
                         stop_event=stop_event, **options)
        self.finished = threading.Event()

    def run(self, once: bool = False, *, idle_timeout: float | None = None) -> Any:
        try:
            return super().run(once, idle_timeout=idle_timeout)
        finally:
            if isinstance(self.store, KvCheckpointStore):
                self.store.close()
            self.finished.set()

    def metrics(self) -> dict[str, Any]:
        snapshot = super().metrics()
        snapshot["pipeline"] = f"{self.name}:feed"
        return snapshot


# -- the workers -------------------------------------------------------------------------------------------------

class WorkQueueSource(NatsSource):
    """A worker's source: the shared durable consumer of a pipeline's work queue (see the module docstring).

    With ``feeder_done`` (a worker running next to its feeder, ``--once``), :attr:`exhausted` becomes true once
    the feeder finished and the consumer has nothing pending or unacknowledged.
    """

    name = "work-queue"

    def __init__(self, queue: WorkQueue, bus: BusSettings, *, feeder_done: threading.Event | None = None) -> None:
        super().__init__(options=bus.options, stream=queue.stream, subject=queue.subject, durable=queue.durable,
                         create_stream=True, stream_subjects=[queue.subject], stream_config=queue.stream_config(bus),
                         ack_wait=bus.ack_wait, max_deliver=bus.max_deliver + _SPARE_DELIVERIES,
                         max_ack_pending=bus.max_ack_pending)
        self.feeder_done = feeder_done
        #: messages of the stream not delivered yet, as of the last message fetched (None before the first)
        self.queue_pending: int | None = None
        self.hold_limit = bus.hold_limit
        self._heartbeat: concurrent.futures.Future[None] | None = None
        self._held_since: dict[int, float] = {}  # stream sequence -> when this worker got it (monotonic)

    async def _open(self) -> None:
        await super()._open()
        await self._align_consumer()

    async def _align_consumer(self) -> None:
        """Bring an existing consumer's ack wait, delivery limit and max ack pending to this process's (the newest
        start wins): a consumer created by an older Interlink, with JetStream's default of 1000 unacknowledged
        messages, is updated in place, keeping its position."""
        info = await self._subscription.consumer_info()
        config = info.config
        if (abs(float(config.ack_wait or 0) - self.ack_wait) < 0.001 and config.max_deliver == self.max_deliver
                and config.max_ack_pending == self.max_ack_pending):
            return
        log.warning("work queue %s: consumer %s had ack wait %ss, max deliver %s and max ack pending %s; setting "
                    "%ss, %s and %s", self.stream, self.durable, config.ack_wait, config.max_deliver,
                    config.max_ack_pending, self.ack_wait, self.max_deliver, self.max_ack_pending)
        assert self._nc is not None
        try:
            await self._nc.jetstream().add_consumer(self.stream, config=dataclasses.replace(
                config, ack_wait=self.ack_wait, max_deliver=self.max_deliver, max_ack_pending=self.max_ack_pending))
        except Exception as exc:  # an older server that cannot update: keep the consumer as it is
            log.warning("work queue %s: cannot update consumer %s: %s", self.stream, self.durable, exc)

    def open(self, checkpoint: Any | None) -> None:
        """Connect, bind the shared consumer and start telling JetStream the held messages are in progress."""
        super().open(checkpoint)
        assert self._loop is not None
        self._heartbeat = asyncio.run_coroutine_threadsafe(self._beat(max(0.2, self.ack_wait / 3)), self._loop.loop)

    async def _beat(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            try:
                held = list(self._pending.items())
            except RuntimeError:  # read or acknowledged meanwhile: next beat
                continue
            for sequence, msg in held:
                if now - self._held_since.get(sequence, now) > self.hold_limit:
                    continue  # stuck on it: let JetStream give it to another worker
                try:
                    await msg.in_progress()
                except Exception:  # acknowledged meanwhile, or the connection is down (then redelivery is right)
                    log.debug("in-progress of a work queue message failed", exc_info=True)

    def read(self, max_messages: int, timeout: float) -> list[Message]:
        messages = super().read(max_messages, timeout)
        now = time.monotonic()
        for message in messages:
            self._held_since[message.position] = now
        return messages

    def acknowledge(self, position: Any) -> None:
        super().acknowledge(position)
        for sequence in [sequence for sequence in self._held_since if sequence not in self._pending]:
            del self._held_since[sequence]

    def _message_of(self, msg: Any) -> Message:
        message = super()._message_of(msg)
        message.headers[DELIVERED_HEADER] = int(msg.metadata.num_delivered)
        self.queue_pending = int(msg.metadata.num_pending)
        return message

    @property  # type: ignore[override]
    def exhausted(self) -> bool:
        """True when the feeder finished and the work queue is drained (only with ``feeder_done``)."""
        if self.feeder_done is None or not self.feeder_done.is_set() or self._pending or self._loop is None:
            return False
        try:
            info = self._loop.run(self._subscription.consumer_info(), timeout=10)
        except Exception:
            return False
        self.queue_pending = int(info.num_pending or 0)
        return not info.num_pending and not info.num_ack_pending

    async def _nak(self, messages: list[Any]) -> None:
        for msg in messages:
            try:
                await msg.nak()
            except Exception:
                log.debug("nak of a work queue message failed", exc_info=True)
        if self._nc is not None and not self._nc.is_closed:
            await self._nc.flush()

    def close(self) -> None:
        """Stop the heartbeat, nak what is still held (another worker gets it at once) and disconnect."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None
        if self._loop is not None and self._pending:
            held = list(self._pending.values())
            log.info("work queue %s: handing %d unfinished message(s) back", self.stream, len(held))
            try:
                self._loop.run(self._nak(held), timeout=10)
            except Exception:
                log.warning("work queue %s: nak failed; redelivery after the ack wait", self.stream)
        self._held_since.clear()
        super().close()


def worker_pipeline(pipeline: Pipeline, bus: BusSettings, *, feeder_done: threading.Event | None = None) -> Pipeline:
    """The worker half of ``pipeline``: the work queue as source, then its steps and sinks, unchanged."""
    source = WorkQueueSource(WorkQueue.of(pipeline.name), bus.for_pipeline(pipeline), feeder_done=feeder_done)
    return dataclasses.replace(pipeline, source=source)


class ConsumerPositionStore(MiddlewareStore):
    """The middleware store (the same engine and connections) except that the workers' checkpoints stay in memory.

    Every worker of a pipeline runs it at once; the durable consumer keeps their position, and a shared checkpoint
    row would make them fail each other's compare-and-set. Dead letters, dedupe keys and runs are shared.
    """

    def __init__(self, shared: MiddlewareStore) -> None:  # no super().__init__: share, do not reconnect
        self.__dict__.update(shared.__dict__)
        self._positions: dict[tuple[str, str], Checkpoint] = {}

    def load_checkpoint(self, pipeline: str, source: str = "source") -> Checkpoint | None:
        return self._positions.get((pipeline, source))

    def save_checkpoint(self, pipeline: str, position: Any, *, expected_version: int, source: str = "source") -> int:
        version = expected_version + 1
        self._positions[(pipeline, source)] = Checkpoint(pipeline, source, position, version, self.clock())
        return version

    def close(self) -> None:
        """Nothing to release: the shared store owns the connections."""


class WorkerRunner(PipelineRunner):
    """Runs a worker half (see :func:`worker_pipeline`), dead-lettering messages delivered too often."""

    def __init__(self, pipeline: Pipeline, store: MiddlewareStore, bus: BusSettings, *,
                 feeder_done: threading.Event | None = None, **options: Any) -> None:
        bus = bus.for_pipeline(pipeline)
        super().__init__(worker_pipeline(pipeline, bus, feeder_done=feeder_done), ConsumerPositionStore(store),
                         **options)
        self.max_deliver = bus.max_deliver
        self.ack_wait = bus.ack_wait

    @property
    def queue_pending(self) -> int | None:
        """Messages of the work queue not delivered yet, as last seen (None before the first fetch)."""
        source = self.pipeline.source
        return source.queue_pending if isinstance(source, WorkQueueSource) else None

    def _admit(self, message: Message) -> bool:
        """A message read from the work queue too many times goes to the dead letters instead of the steps."""
        delivered = message.headers.get(DELIVERED_HEADER)
        if isinstance(delivered, int) and delivered > self.max_deliver:
            built = self.build()
            # Filed at the first step, so `interlink dlq replay` runs it through the whole pipeline again.
            step = built.steps[0].name if built.steps else "worker"
            error = (f"delivered {delivered} times without being acknowledged (max deliver {self.max_deliver}): "
                     f"every worker that took it died or hung for more than the ack wait ({self.ack_wait:g}s)")
            now = dt.datetime.fromtimestamp(self.clock(), dt.UTC).isoformat(timespec="milliseconds")
            self._dead_letter(step, 0, None, message, [{"at": now.replace("+00:00", "Z"), "error": error}])
            return False
        return True


# -- building the runners of a process ----------------------------------------------------------------------------

def build_runners(pipelines: Sequence[Pipeline], store: MiddlewareStore, bus: BusSettings, *, feeders: bool,
                  workers: bool, once: bool = False, connections: Mapping[str, Any] | None = None,
                  project_dir: Path | None = None, stop_event: threading.Event | None = None,
                  idle_timeout: float = 5.0) -> list[PipelineRunner]:
    """The runners of one process: a feeder per pipeline (``interlink pipelines run``) and/or a worker per pipeline
    (``interlink worker``, or the local worker of ``pipelines run``), all sharing ``stop_event``.

    With ``once``, a feeder stops when its source is exhausted or idle for ``idle_timeout``, and a worker next to
    it when the feeder finished and the work queue is drained (it waits for redeliveries of messages other workers
    held); a worker without a feeder runs until stopped.
    """
    event = stop_event or threading.Event()
    common: dict[str, Any] = {"connections": connections, "project_dir": project_dir, "stop_event": event}
    runners: list[PipelineRunner] = []
    for pipeline in pipelines:
        feeder = FeederRunner(pipeline, store, bus, idle_timeout=idle_timeout, **common) if feeders else None
        if feeder is not None:
            runners.append(feeder)
        if workers:
            drained = feeder.finished if (feeder is not None and once) else None
            # A worker next to its feeder stops on the drained queue, never on mere idleness.
            runners.append(WorkerRunner(pipeline, store, bus, feeder_done=drained,
                                        idle_timeout=float("inf") if drained else idle_timeout, **common))
    return runners


def role_of(runner: PipelineRunner) -> str:
    """``feeder``, ``worker`` or ``""`` (a whole pipeline run embedded): for status lines and reports."""
    return "feeder" if isinstance(runner, FeederRunner) else "worker" if isinstance(runner, WorkerRunner) else ""


def run_together(runners: Sequence[PipelineRunner], *, once: bool = False,
                 monitor: Callable[[], None] | None = None, monitor_interval: float = 0.5) -> list[RunReport]:
    """Run feeders and workers until all finish (see :func:`~interlink.middleware.runtime.run_runners`)."""
    return run_runners(runners, once=once, monitor=monitor, monitor_interval=monitor_interval)


def check_store_for_workers(store: MiddlewareStore) -> str | None:
    """Why ``store`` cannot be shared by worker processes (an in-memory SQLite database), else None."""
    if store.backend == "sqlite" and store.url.rstrip("/") in ("sqlite:", "sqlite:///:memory:"):
        return ("an in-memory SQLite middleware store cannot be shared with other processes: use a file "
                "(sqlite:///path, workers of one machine) or --middleware-store postgresql://…")
    return None


__all__ = [
    "DELIVERED_HEADER",
    "MAX_ACK_PENDING",
    "BusSettings",
    "ConsumerPositionStore",
    "FeederRunner",
    "UntilPublished",
    "WorkQueue",
    "WorkQueueSource",
    "WorkerRunner",
    "build_runners",
    "check_store_for_workers",
    "feeder_pipeline",
    "is_nats_bus",
    "role_of",
    "run_together",
    "worker_pipeline",
]
