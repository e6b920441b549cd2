"""Prometheus metrics of a serving process: what the surfaces and the bus count, and what a scrape reads.

Two kinds of figures:

- **Counted as things happen** (process-wide ``prometheus_client`` objects, built on first use): HTTP requests
  by surface (timed by ``interlink.api.operations.RequestMetrics``), Pub/Sub RPCs (a gRPC interceptor from
  :meth:`OrgMetrics.pubsub_interceptors`), events appended to the bus (``EventBus.appended``) and events handed
  to Pub/Sub and CometD subscribers.
- **Read at scrape time** (:class:`_ScrapeCollector`): job queue depth, which lives in the shared database and is
  therefore the same whichever process answers, and the answering process's connection pools.

Several API processes behind one port use prometheus_client's multiprocess mode: the supervisor calls
:func:`setup_multiprocess` before it starts them, every process then writes its samples to its own files in
that directory, and ``/metrics`` (whichever process answers) adds them up. The scrape-time gauges never go
to those files, so they are reported once, not once per process.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from prometheus_client import values as prometheus_values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics import Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.pool import QueuePool

from interlink.bus.model import CUSTOM, EVENT, NewEvent
from interlink.callouts.queue import QUEUED

if TYPE_CHECKING:
    from interlink.app.org import Org

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
NAMESPACE = "interlink"

# Label values (kept few: a label never carries a raw path, a user input or an id).
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
PUBSUB_RPCS = frozenset({"Subscribe", "Publish", "PublishStream", "GetTopic", "GetSchema", "ManagedSubscribe"})
EVENT_KINDS = {EVENT: "platform_event", CUSTOM: "custom_channel"}  # anything else: change_event

# Seconds. REST calls take milliseconds; CometD long polls are held up to 110 s, Bulk uploads may take minutes.
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
# Unary RPCs take milliseconds; a stream is observed once, when it ends, so its lifetime needs the long buckets.
RPC_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
               3600.0, 14400.0)


# -- several processes ---------------------------------------------------------------------------------------------

def setup_multiprocess(run_dir: Path) -> Path:
    """Put this process (and the processes it starts afterwards) in multiprocess mode: ``run_dir/metrics`` is
    created, or emptied of a previous run's files, and named by ``PROMETHEUS_MULTIPROC_DIR``. Returns it.

    Call it in the supervisor before starting the API processes: they inherit the variable (a forked child
    inherits the switched value class too). Metrics recorded in this process before the call are dropped;
    those recorded after it go to the directory.
    """
    directory = Path(run_dir) / "metrics"
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink(missing_ok=True)
    os.environ[MULTIPROC_ENV] = str(directory)
    # prometheus_client picks its value class (in memory, or mmap-backed files) when it is first imported, and
    # looks it up again each time a metric (or a labelled child) is created: choose again now, and drop the
    # objects built before, so everything from here on is file-backed.
    prometheus_values.ValueClass = prometheus_values.get_value_class()
    _reset_instruments()
    return directory


def child_exited(pid: int) -> None:
    """Forget an exited API process's live gauges (open Pub/Sub streams); its counters keep counting in the
    totals, as Prometheus expects of counters. Call it from the supervisor when it reaps a child."""
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        mark_process_dead(pid, path)


def multiprocess_dir() -> Path | None:
    """The directory the processes' samples are shared in, or None when this process reports alone."""
    path = os.environ.get(MULTIPROC_ENV)
    return Path(path) if path else None


# -- the process-wide metric objects -----------------------------------------------------------------------------

class _Instruments:
    """Every counted metric of this process, and the labelled children already looked up (``labels()`` costs
    more than an observation; the label sets are few and bounded)."""

    def __init__(self) -> None:
        # No `_created` series: they double what is sent and nothing here reads them (multiprocess mode has none).
        disable_created_metrics()
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.http_duration = Histogram(
            "http_request_duration_seconds", "Time to answer an HTTP request, by API surface and method.",
            ["surface", "method"], namespace=NAMESPACE, buckets=HTTP_BUCKETS, registry=registry)
        self.http_requests = Counter(
            "http_requests", "HTTP requests answered, by API surface, method and status class.",
            ["surface", "method", "status_class"], namespace=NAMESPACE, registry=registry)
        self.rpc_duration = Histogram(
            "pubsub_rpc_duration_seconds", "Duration of Pub/Sub API calls: unary calls until answered, streams "
            "(Subscribe, ManagedSubscribe, PublishStream) from start to end.",
            ["rpc"], namespace=NAMESPACE, buckets=RPC_BUCKETS, registry=registry)
        self.streams = Gauge(
            "pubsub_streams_active", "Pub/Sub API streams open now, by RPC.", ["rpc"], namespace=NAMESPACE,
            registry=registry, multiprocess_mode="livesum")
        self.published = Counter(
            "events_published", "Events appended to the event bus, by kind (platform_event, change_event, "
            "custom_channel).", ["kind"], namespace=NAMESPACE, registry=registry)
        self.delivered = Counter(
            "events_delivered", "Events sent to subscribers, by surface (pubsub, cometd).", ["surface"],
            namespace=NAMESPACE, registry=registry)
        if multiprocess_dir() is None:  # per-process figures mean little once samples are added up
            ProcessCollector(namespace=NAMESPACE, registry=registry)
            PlatformCollector(registry=registry)
        self.http_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self.rpc_children: dict[str, Any] = {}
        self.stream_children: dict[str, Any] = {}
        self.published_children: dict[str, Any] = {}
        self.delivered_children: dict[str, Any] = {}

    def http(self, surface: str, method: str, status: int) -> tuple[Any, Any]:
        """The (duration, count) children of a request's labels; kept for the methods HTTP defines (any other
        method is counted as OTHER and looked up each time, so a client cannot grow the cache)."""
        label = method if method in HTTP_METHODS else "OTHER"
        found = (self.http_duration.labels(surface, label),
                 self.http_requests.labels(surface, label, f"{status // 100}xx"))
        if label == method:
            self.http_children[(surface, method, status)] = found
        return found


_lock = threading.Lock()
_current: _Instruments | None = None


def _instruments() -> _Instruments:
    """The process's metric objects, built on first use (so after :func:`setup_multiprocess` when it is called)."""
    global _current
    found = _current
    if found is None:
        with _lock:
            if _current is None:
                _current = _Instruments()
            found = _current
    return found


def _reset_instruments() -> None:
    global _current, _failure_logged
    with _lock:
        _current = None
        _failure_logged = False


def _child(cache: dict[str, Any], metric: Any, label: str) -> Any:
    """``metric.labels(label)``, looked up once."""
    child = cache.get(label)
    if child is None:
        child = cache[label] = metric.labels(label)
    return child


_failure_logged = False


def _recording_failed(exc: Exception) -> None:
    """A metric could not be recorded (in multiprocess mode: its directory is gone, the disk is full): say so
    once, and let the request, the publish or the delivery go on."""
    global _failure_logged
    if not _failure_logged:
        _failure_logged = True
        log.error("metrics: cannot record (%s); further failures are not logged", exc, exc_info=exc)


# -- what an org's surfaces call ----------------------------------------------------------------------------------

class OrgMetrics:
    """The metrics of one serving org: recording methods for the surfaces and the bus, and the exposition."""

    def __init__(self, org: Org) -> None:
        self.org = org

    @property
    def enabled(self) -> bool:
        return bool(self.org.settings.metrics_enabled)

    # -- recording (cheap: called on every request; a metric that cannot be written never fails the caller) ------

    def http_request(self, surface: str, method: str, status: int, seconds: float) -> None:
        """One HTTP request answered (``surface`` is one of a fixed set; an unusual method is counted as OTHER)."""
        try:
            instruments = _current or _instruments()
            found = instruments.http_children.get((surface, method, status))
            if found is None:
                found = instruments.http(surface, method, status)
            found[0].observe(seconds)
            found[1].inc()
        except Exception as exc:
            _recording_failed(exc)

    def rpc_finished(self, rpc: str, seconds: float) -> None:
        """A Pub/Sub call ended (a unary call answered, a stream closed)."""
        try:
            instruments = _instruments()
            _child(instruments.rpc_children, instruments.rpc_duration, rpc).observe(seconds)
        except Exception as exc:
            _recording_failed(exc)

    def stream_opened(self, rpc: str, delta: int = 1) -> None:
        try:
            instruments = _instruments()
            _child(instruments.stream_children, instruments.streams, rpc).inc(delta)
        except Exception as exc:
            _recording_failed(exc)

    def stream_closed(self, rpc: str) -> None:
        self.stream_opened(rpc, -1)

    def events_appended(self, events: Sequence[NewEvent]) -> None:
        """Events appended to the bus (``EventBus.appended`` calls this with every batch)."""
        try:
            counts: dict[str, int] = {}
            for event in events:
                kind = EVENT_KINDS.get(event.family, "change_event")
                counts[kind] = counts.get(kind, 0) + 1
            instruments = _instruments()
            for kind, count in counts.items():
                _child(instruments.published_children, instruments.published, kind).inc(count)
        except Exception as exc:
            _recording_failed(exc)

    def events_delivered(self, surface: str, count: int) -> None:
        """``count`` events sent to a subscriber of ``surface`` (``pubsub`` or ``cometd``)."""
        if count <= 0:
            return
        try:
            instruments = _instruments()
            _child(instruments.delivered_children, instruments.delivered, surface).inc(count)
        except Exception as exc:
            _recording_failed(exc)

    def pubsub_interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        """What the Pub/Sub server should be built with: the timing interceptor, when metrics are enabled."""
        return [PubSubInterceptor(self)] if self.enabled else []

    # -- the exposition ----------------------------------------------------------------------------------------------

    def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """The ``/metrics`` answer, body and content type, in the format ``accept`` asks for (Prometheus text by
        default, OpenMetrics on request). Reads the database: call it off the event loop."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry()), content_type

    def registry(self) -> Collector:
        """Everything a scrape reports: this process's metrics, or every process's when they share a directory,
        plus the gauges read now."""
        shared = multiprocess_dir()
        counted: Collector = (MultiProcessCollector(None, str(shared)) if shared is not None
                              else _instruments().registry)
        return _Scrape([counted, _ScrapeCollector(self.org)])


class _Scrape(Collector):
    """Collectors reported together (what ``generate_latest`` needs is ``collect()``)."""

    def __init__(self, parts: list[Collector]) -> None:
        self.parts = parts

    def collect(self) -> Iterator[Metric]:
        for part in self.parts:
            yield from part.collect()


class _ScrapeCollector(Collector):
    """Gauges computed when a scrape asks, in the answering process: job queue depth (shared by every process, in
    the database) and this process's database connection pools."""

    def __init__(self, org: Org) -> None:
        self.org = org

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(f"{NAMESPACE}_job_queue_depth",
                                  "Background work waiting or running, by kind and state (read from the store "
                                  "at scrape time).", labels=["kind", "state"])
        try:
            for kind, state, count in job_queue_depth(self.org):
                depth.add_metric([kind, state], count)
        except Exception as exc:  # the store is down: say so in the log, report the rest
            log.warning("metrics: cannot read the job queues: %s", exc)
        yield depth
        connections = GaugeMetricFamily(f"{NAMESPACE}_db_pool_connections",
                                        "Connections of this process's database pools, by pool and state "
                                        "(checked_out, idle).", labels=["pool", "state"])
        size = GaugeMetricFamily(f"{NAMESPACE}_db_pool_size",
                                 "Connections a pool keeps open (it may open more, up to its overflow, under load).",
                                 labels=["pool"])
        for name, pool in _pools(self.org):
            connections.add_metric([name, "checked_out"], pool.checkedout())
            connections.add_metric([name, "idle"], pool.checkedin())
            size.add_metric([name], pool.size())
        yield connections
        yield size


def job_queue_depth(org: Org) -> list[tuple[str, str, int]]:
    """(kind, state, count) of the org's background work: Bulk API jobs queued or running; callouts and outbound
    messages due now, waiting for a later retry, or being sent (claimed by a worker)."""
    bulk = org.bulk.queue()
    found = [("bulk", "queued", bulk.queued), ("bulk", "running", bulk.running)]
    now = org.callouts.clock()
    system = org.store.system
    with org.store.read() as conn:
        for kind, table in (("callout", system["il_callout"]), ("outbound_message", system["il_om_notification"])):
            claimed = and_(table.c.claimed_until.is_not(None), table.c.claimed_until >= now)
            unclaimed = or_(table.c.claimed_until.is_(None), table.c.claimed_until < now)
            due = and_(unclaimed, table.c.next_attempt_at <= now)
            row = conn.execute(select(func.count(), func.sum(case((claimed, 1), else_=0)),
                                      func.sum(case((due, 1), else_=0))).where(table.c.state == QUEUED)).one()
            total, running, due_now = (int(value or 0) for value in row)
            found += [(kind, "due", due_now), (kind, "waiting", total - running - due_now), (kind, "running", running)]
    return found


def _pools(org: Org) -> list[tuple[str, QueuePool]]:
    """This process's pooled engines: ``primary`` (PostgreSQL: one engine), or ``write`` and ``read`` (SQLite; its
    per-thread readers of hot primary-key reads are kept outside the pool and not counted)."""
    store = org.store
    engines = [("primary", store.write_engine)] if store.read_engine is store.write_engine else [
        ("write", store.write_engine), ("read", store.read_engine)]
    return [(name, engine.pool) for name, engine in engines if isinstance(engine.pool, QueuePool)]


# -- Pub/Sub ------------------------------------------------------------------------------------------------------

def rpc_name(method: str) -> str:
    """``/eventbus.v1.PubSub/Subscribe`` -> ``Subscribe``; a method of no known RPC -> ``other``."""
    name = method.rsplit("/", 1)[-1]
    return name if name in PUBSUB_RPCS else "other"


class PubSubInterceptor(grpc.aio.ServerInterceptor):
    """Times every Pub/Sub call: a unary call until it is answered, a stream from its start to its end (its
    messages are counted by ``interlink_events_published_total`` and ``interlink_events_delivered_total``), and
    keeps the number of open streams."""

    def __init__(self, metrics: OrgMetrics) -> None:
        self.metrics = metrics

    async def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails],
                                                             Awaitable[grpc.RpcMethodHandler]],
                                handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        rpc = rpc_name(handler_call_details.method)
        metrics = self.metrics
        serializers = {"request_deserializer": handler.request_deserializer,
                       "response_serializer": handler.response_serializer}
        if not handler.response_streaming:
            unary = handler.stream_unary if handler.request_streaming else handler.unary_unary

            async def answer(request: Any, context: grpc.aio.ServicerContext) -> Any:
                started = time.perf_counter()
                try:
                    return await unary(request, context)
                finally:
                    metrics.rpc_finished(rpc, time.perf_counter() - started)

            make = (grpc.stream_unary_rpc_method_handler if handler.request_streaming
                    else grpc.unary_unary_rpc_method_handler)
            return make(answer, **serializers)
        streaming = handler.stream_stream if handler.request_streaming else handler.unary_stream

        async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            started = time.perf_counter()
            metrics.stream_opened(rpc)
            try:
                async for response in streaming(request, context):
                    yield response
            finally:
                metrics.stream_closed(rpc)
                metrics.rpc_finished(rpc, time.perf_counter() - started)

        make = (grpc.stream_stream_rpc_method_handler if handler.request_streaming
                else grpc.unary_stream_rpc_method_handler)
        return make(stream, **serializers)


__all__ = ["MULTIPROC_ENV", "OrgMetrics", "PubSubInterceptor", "child_exited", "job_queue_depth",
           "multiprocess_dir", "rpc_name", "setup_multiprocess"]
