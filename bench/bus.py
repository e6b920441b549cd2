"""Benchmark: the event bus end to end through the Pub/Sub API, against raw NATS JetStream and raw gRPC streaming.

Run ``python bench/bus.py`` (or ``make bench``). In one run it measures, on one machine:

1. **Baselines**

   * *raw NATS*: nats-py publishing 300-byte messages to a throwaway JetStream stream (file storage, deleted
     afterwards) with acknowledgements, 4 concurrent publishers each sending batches of 100 ``publish_async``
     calls and awaiting the batch's acks: acked messages/second, the median of 3 windows of 50,000.
   * *raw gRPC stream*: a minimal ``grpc.aio`` server in a subprocess (this script with ``--raw-grpc-server``,
     the same TLS as Interlink) streaming pre-built ``FetchResponse`` messages (100 events of 300 bytes each) to
     the same subscriber Interlink is measured with (``Subscribe``, ``num_requested=100``, more asked for as each
     batch arrives): events/second delivered.
   * *raw gRPC relay*: the same subprocess as an in-memory bus. ``Publish`` appends to a Python list and answers,
     ``Subscribe`` streams what was published. It is measured exactly as Interlink is (below). It is the floor of
     the client, gRPC and TLS costs with no validation, storage or authentication.
   * fastavro encode and decode rates of the payload, for context.

2. **Interlink**, a real ``interlink up`` (sample data) started by :func:`interlink.testing.live_server`, once with
   the embedded bus (SQLite) and once with ``--bus nats://...?prefix=BENCH<random>`` (skipped with a reason when
   NATS is unreachable or the server does not start with it; its streams are deleted afterwards):

   * *throughput*: a publisher process (``multiprocessing``, so its CPU does not fight the subscriber for one GIL)
     sends N events of ``/event/Case_Closed__e`` (Avro, 300 bytes, ``Resolution__c`` padded) through ``Publish``
     in batches of 100 pre-encoded events, 4 calls in flight, while a subscriber in this process (``Subscribe``
     LATEST, started and checked live before) counts them. Published events/s runs from the first ``Publish`` to
     the last acknowledgement; delivered events/s from the first ``Publish`` to the last event received.
   * *latency*: the publisher sends 1,000 events/s (a batch of 10 every 10 ms) for a few seconds; each payload
     ends with its ``time.time_ns()`` send time, and the subscriber takes receive time minus send time: p50, p99
     and max in ms.

The table shows each target's rates, latency and server CPU, then the ratios with the goals: embedded delivered
>= 0.7 x raw NATS publish, NATS-backend delivered >= 0.5 x raw NATS publish, and p99 < 20 ms at 1,000 events/s.

Flags: ``--events N``, ``--warmup-events N``, ``--latency-seconds S``, ``--rate R``, ``--concurrency N``,
``--nats URL``, ``--no-nats``, ``--quick`` (10,000 events, 3 s of latency), ``--json``. The default run takes
about 30 seconds on the 2-core development machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import io
import json
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

import fastavro
import grpc

from interlink.pubsub._proto import pubsub_api_pb2 as pb
from interlink.pubsub._proto import pubsub_api_pb2_grpc as pb_grpc

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:  # ``python bench/bus.py`` has it already; an importer may not
    sys.path.insert(0, str(BENCH_DIR))

import rest_get  # noqa: E402  (bench/rest_get.py: CPU accounting from /proc, percentiles)

TOPIC = "/event/Case_Closed__e"
PAYLOAD_BYTES = 300
BATCH = 100  # events per Publish call and per FetchResponse (the Pub/Sub API's credit cap)
MAX_CREDIT = 100
LATENCY_BATCH = 10  # events per Publish call in the latency test (every LATENCY_BATCH / rate seconds)
DEFAULT_NATS = "nats://127.0.0.1:4222"
PREBUILT_TOPIC = "/raw/prebuilt/"  # the raw gRPC server streams pre-built responses for this topic
DELIVERY_WAIT_S = 5.0  # how long delivery may lag the last acknowledged publish before events count as lost
BASELINE_MIN_EVENTS = 50_000  # raw NATS and the raw stream take well under a second for this; fewer is noise

EMBEDDED_GOAL = 0.7  # embedded delivered events/s / raw NATS acked publishes/s
NATS_GOAL = 0.5  # NATS-backend delivered events/s / raw NATS acked publishes/s
P99_GOAL_MS = 20.0  # p99 publish-to-receive latency at 1,000 events/s

# Phase tags: the byte before the last 19 of every payload (the last 19 are a send time or filler), so the
# subscriber can tell probe, warm-up, measured and latency events apart without decoding them.
PROBE, WARM, MEASURED, LATENCY = b"P", b"W", b"M", b"L"
STAMP_DIGITS = 19


# -- payloads ----------------------------------------------------------------------------------------------------


def case_closed_schema() -> dict[str, Any]:
    """The Avro schema Interlink gives /event/Case_Closed__e (checked against the server's in each run)."""
    def custom(name: str) -> dict[str, Any]:
        return {"name": name, "type": ["null", "string"], "default": None, "doc": "data:Text"}

    return {"type": "record", "name": "Case_Closed__e", "namespace": "com.sforce.eventbus", "fields": [
        {"name": "CreatedDate", "type": "long", "doc": "CreatedDate:DateTime"},
        {"name": "CreatedById", "type": "string", "doc": "CreatedBy:EntityId"},
        {"name": "EventUuid", "type": ["null", "string"], "default": None, "doc": "EventUuid:Text"},
        custom("CaseId__c"), custom("OwnerId__c"), custom("Resolution__c")]}


def _record(resolution: str) -> dict[str, Any]:
    # CreatedById and EventUuid have the lengths the server stamps in, so the stored datum keeps the size.
    return {"CreatedDate": int(time.time() * 1000), "CreatedById": "005000000000000AAA",
            "EventUuid": str(uuid.UUID(int=0)), "CaseId__c": "500000000000001AAA", "OwnerId__c": "005000000000001AAA",
            "Resolution__c": resolution}


def _encode(parsed: Any, record: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, parsed, record)
    return buffer.getvalue()


def build_payload(parsed: Any, tag: bytes, size: int = PAYLOAD_BYTES) -> bytes:
    """An Avro datum of exactly ``size`` bytes whose ``Resolution__c`` (the last field) ends with ``tag`` + 19 zeros.

    Its last 19 bytes can be overwritten with a send time (``b"%019d" % time.time_ns()``) without re-encoding.
    """
    suffix = tag.decode() + "0" * STAMP_DIGITS
    pad = 0
    for _ in range(4):  # the string's length prefix may grow by a byte as the padding does
        missing = size - len(_encode(parsed, _record("r" * pad + suffix)))
        if missing == 0 or pad + missing < 0:
            break
        pad += missing
    resolution = "r" * pad + suffix
    payload = _encode(parsed, _record(resolution))
    if len(payload) != size:
        raise RuntimeError(f"could not build a {size}-byte payload (got {len(payload)})")
    return payload


def stamp(template: bytes, send_ns: int) -> bytes:
    return template[:-STAMP_DIGITS] + b"%019d" % send_ns


def avro_rates(parsed: Any, payload: bytes, seconds: float = 0.4) -> tuple[float, float]:
    """fastavro schemaless encode and decode rates (datums/s) of the benchmark payload."""
    record = fastavro.schemaless_reader(io.BytesIO(payload), parsed, None)
    rates = []
    for work in (lambda: _encode(parsed, record), lambda: fastavro.schemaless_reader(io.BytesIO(payload), parsed,
                                                                                       None)):
        done = 0
        start = time.perf_counter()
        while True:
            for _ in range(1000):
                work()
            done += 1000
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                break
        rates.append(done / elapsed)
    return rates[0], rates[1]


# -- results -----------------------------------------------------------------------------------------------------


@dataclass
class TargetResult:
    """What one target measured (None: not measured)."""

    target: str
    published_per_s: float | None = None
    delivered_per_s: float | None = None
    events: int = 0  # events measured for throughput
    delivered: int = 0
    errors: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    latency_events: int = 0
    latency_rate: float | None = None  # the send rate the publisher achieved during the latency test
    ack_p50_ms: float | None = None  # Publish round trip during the latency test
    ack_p99_ms: float | None = None
    server_cpu_us_per_event: float | None = None
    busy: dict[str, float] = field(default_factory=dict)  # CPU seconds / wall seconds per process, throughput
    skipped: str | None = None
    note: str = ""


@dataclass
class BusReport:
    cpu_count: int
    load_average: float  # the 1-minute load average when the run started: other work on the machine skews it
    events: int
    baseline_events: int  # raw NATS publishes and raw stream events (at least BASELINE_MIN_EVENTS)
    warmup_events: int
    latency_seconds: float
    rate: float
    concurrency: int
    payload_bytes: int
    avro_encode_per_s: float
    avro_decode_per_s: float
    results: dict[str, TargetResult]

    def _ratio(self, mine: str, base: str, kind: str = "delivered_per_s", base_kind: str | None = None
               ) -> float | None:
        a, b = self.results.get(mine), self.results.get(base)
        if a is None or b is None:
            return None
        top, bottom = getattr(a, kind), getattr(b, base_kind or kind)
        return top / bottom if top and bottom else None

    def ratios(self) -> dict[str, float | None]:
        return {
            "embedded_vs_raw_nats": self._ratio("embedded", "raw NATS", "delivered_per_s", "published_per_s"),
            "nats_vs_raw_nats": self._ratio("NATS", "raw NATS", "delivered_per_s", "published_per_s"),
            "embedded_vs_raw_stream": self._ratio("embedded", "raw gRPC stream"),
            "nats_vs_raw_stream": self._ratio("NATS", "raw gRPC stream"),
            "embedded_vs_raw_relay": self._ratio("embedded", "raw gRPC relay"),
            "nats_vs_raw_relay": self._ratio("NATS", "raw gRPC relay"),
            "nats_vs_embedded": self._ratio("NATS", "embedded"),
        }

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["ratios"] = {k: None if v is None else round(v, 4) for k, v in self.ratios().items()}
        data["goals"] = {"embedded_vs_raw_nats": EMBEDDED_GOAL, "nats_vs_raw_nats": NATS_GOAL,
                         "p99_ms": P99_GOAL_MS}
        return data


# -- the subscriber (this process) -------------------------------------------------------------------------------


class Subscriber:
    """``Subscribe`` with pull flow control: 100 requested at first, then as many more as each response carried.

    Counts events per phase tag and keeps the monotonic time of the last response per tag; in latency mode
    it also records receive - send (ns) of every ``LATENCY`` event.
    """

    def __init__(self, stub: pb_grpc.PubSubStub, metadata: Sequence[tuple[str, str]], topic: str) -> None:
        self._stub = stub
        self._metadata = tuple(metadata)
        self._topic = topic
        self.counts: dict[bytes, int] = {}
        self.last: dict[bytes, float] = {}
        self.latencies_ns: list[int] = []
        self.first_payload: bytes | None = None
        self._credit: asyncio.Queue[int | None] = asyncio.Queue()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._call: Any = None
        self.error: BaseException | None = None

    async def _requests(self) -> AsyncIterator[pb.FetchRequest]:
        yield pb.FetchRequest(topic_name=self._topic, replay_preset=pb.LATEST, num_requested=MAX_CREDIT)
        while True:
            more = await self._credit.get()
            if more is None:
                return
            yield pb.FetchRequest(topic_name=self._topic, num_requested=more)

    def start(self) -> None:
        self._call = self._stub.Subscribe(self._requests(), metadata=self._metadata)
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        counts, last, latencies = self.counts, self.last, self.latencies_ns
        try:
            async for response in self._call:
                events = response.events
                if not events:
                    continue
                now, now_ns = time.monotonic(), time.time_ns()
                self._credit.put_nowait(len(events))
                first_payload = events[0].event.payload
                if self.first_payload is None:
                    self.first_payload = first_payload
                first_tag = first_payload[-20:-19]
                last_tag = events[-1].event.payload[-20:-19]
                if first_tag == last_tag and first_tag != LATENCY:  # one phase: count without touching each event
                    counts[first_tag] = counts.get(first_tag, 0) + len(events)
                    last[first_tag] = now
                else:
                    for consumer in events:
                        payload = consumer.event.payload
                        tag = payload[-20:-19]
                        counts[tag] = counts.get(tag, 0) + 1
                        last[tag] = now
                        if tag == LATENCY:
                            latencies.append(now_ns - int(payload[-STAMP_DIGITS:]))
                self._changed.set()
        except asyncio.CancelledError:
            raise
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                self.error = error
        finally:
            self._changed.set()

    def count(self, tag: bytes) -> int:
        return self.counts.get(tag, 0)

    async def wait_for(self, condition: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.error is not None:
                raise RuntimeError(f"the subscription failed: {self.error}")
            if self._task is not None and self._task.done():
                raise RuntimeError("the subscription ended")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        return True

    async def stop(self) -> None:
        self._credit.put_nowait(None)
        if self._call is not None:
            self._call.cancel()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                await self._task


# -- the publisher (a child process) -----------------------------------------------------------------------------


@dataclass
class GrpcTarget:
    """How a publisher process reaches a Pub/Sub server (picklable for ``multiprocessing``)."""

    address: str
    ca_bundle: str
    metadata: tuple[tuple[str, str], ...]
    topic: str
    schema_id: str
    templates: dict[bytes, bytes]  # phase tag -> payload template


def _channel(address: str, ca_bundle: str) -> grpc.aio.Channel:
    credentials = grpc.ssl_channel_credentials(root_certificates=Path(ca_bundle).read_bytes())
    return grpc.aio.secure_channel(address, credentials, options=[("grpc.max_receive_message_length",
                                                                    16 * 1024 * 1024)])


async def publish_throughput(stub: pb_grpc.PubSubStub, target: GrpcTarget, tag: bytes, count: int,
                             concurrency: int) -> dict[str, Any]:
    """Publish ``count`` events in batches of 100 from ``concurrency`` pipelined calls; acks and timing."""
    payload = target.templates[tag]
    request = pb.PublishRequest(topic_name=target.topic, events=[
        pb.ProducerEvent(id=f"e{i}", schema_id=target.schema_id, payload=payload) for i in range(BATCH)])
    calls = iter(range(-(-count // BATCH)))
    acked = errors = 0
    first_error = ""

    async def worker() -> None:
        nonlocal acked, errors, first_error
        for _ in calls:
            try:
                response = await stub.Publish(request, metadata=target.metadata, timeout=60)
            except grpc.aio.AioRpcError as error:
                errors += BATCH
                first_error = first_error or f"{error.code().name}: {error.details()}"
                continue
            failed = sum(1 for result in response.results if result.HasField("error"))
            if failed and not first_error:
                first_error = next(r.error.msg for r in response.results if r.HasField("error"))
            errors += failed
            acked += len(response.results) - failed

    start = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"start": start, "end": time.monotonic(), "acked": acked, "errors": errors, "first_error": first_error}


async def publish_steady(stub: pb_grpc.PubSubStub, target: GrpcTarget, rate: float, seconds: float
                         ) -> dict[str, Any]:
    """Publish ``rate`` events/s (a call of LATENCY_BATCH every LATENCY_BATCH / rate s), each stamped with its
    send time; the calls are not awaited before the next tick, so a slow ack does not delay the schedule."""
    template = target.templates[LATENCY]
    interval = LATENCY_BATCH / rate
    ticks = max(1, round(seconds / interval))
    acks: list[float] = []
    outcome = {"acked": 0, "errors": 0, "first_error": ""}
    pending: set[asyncio.Task[None]] = set()
    ids = [f"l{i}" for i in range(LATENCY_BATCH)]

    async def send(request: pb.PublishRequest) -> None:
        sent = time.perf_counter()
        try:
            response = await stub.Publish(request, metadata=target.metadata, timeout=60)
        except grpc.aio.AioRpcError as error:
            outcome["errors"] += LATENCY_BATCH
            outcome["first_error"] = outcome["first_error"] or f"{error.code().name}: {error.details()}"
            return
        acks.append((time.perf_counter() - sent) * 1000.0)
        failed = sum(1 for result in response.results if result.HasField("error"))
        outcome["errors"] += failed
        outcome["acked"] += len(response.results) - failed

    start = time.monotonic() + 0.02
    lag = 0.0
    for tick in range(ticks):
        due = start + tick * interval
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            lag = max(lag, -delay)
        send_ns = time.time_ns()
        payload = stamp(template, send_ns)
        request = pb.PublishRequest(topic_name=target.topic, events=[
            pb.ProducerEvent(id=i, schema_id=target.schema_id, payload=payload) for i in ids])
        task = asyncio.create_task(send(request))
        pending.add(task)
        task.add_done_callback(pending.discard)
    elapsed = time.monotonic() - start
    if pending:
        await asyncio.gather(*pending)
    acks.sort()
    return {**outcome, "sent": ticks * LATENCY_BATCH, "rate": ticks * LATENCY_BATCH / elapsed if elapsed else 0.0,
            "ack_p50_ms": rest_get._percentile(acks, 0.50), "ack_p99_ms": rest_get._percentile(acks, 0.99),
            "max_lag_ms": lag * 1000.0}


async def _publisher(conn: multiprocessing.connection.Connection, target: GrpcTarget) -> None:
    async with _channel(target.address, target.ca_bundle) as channel:
        await channel.channel_ready()
        stub = pb_grpc.PubSubStub(channel)
        conn.send(("ready", os.getpid()))
        while True:
            command = await asyncio.to_thread(conn.recv)
            if command[0] == "throughput":
                conn.send(await publish_throughput(stub, target, command[1], command[2], command[3]))
            elif command[0] == "latency":
                conn.send(await publish_steady(stub, target, command[1], command[2]))
            else:
                return


def publisher_main(conn: multiprocessing.connection.Connection, target: GrpcTarget) -> None:
    """The publisher process: run the commands ``conn`` sends until ``("stop",)``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops this process
    try:
        asyncio.run(_publisher(conn, target))
    except Exception as exc:
        with contextlib.suppress(OSError):
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
        raise


class Publisher:
    """A publisher process and its command pipe."""

    def __init__(self, target: GrpcTarget) -> None:
        context = multiprocessing.get_context("spawn")  # no fork: grpc and a running event loop do not survive it
        self._conn, child = context.Pipe()
        self.process = context.Process(target=publisher_main, args=(child, target), daemon=True,
                                       name="bench-bus-publisher")
        self.process.start()
        child.close()

    async def _receive(self, timeout: float) -> Any:
        def receive() -> Any:
            if not self._conn.poll(timeout):
                raise RuntimeError(f"the publisher process did not answer within {timeout:g}s")
            return self._conn.recv()

        answer = await asyncio.to_thread(receive)
        if isinstance(answer, tuple) and answer and answer[0] == "error":
            raise RuntimeError(f"the publisher process failed: {answer[1]}")
        return answer

    async def ready(self) -> None:
        await self._receive(60)

    async def run(self, *command: Any, timeout: float = 300) -> dict[str, Any]:
        self._conn.send(command)
        return await self._receive(timeout)  # type: ignore[no-any-return]

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.send(("stop",))
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self._conn.close()


# -- measuring one Pub/Sub server ------------------------------------------------------------------------------


def _cpu(pid: int | None) -> float | None:
    return rest_get.process_cpu_seconds(pid) if pid else None


def find_process(name: str) -> int | None:
    """The pid of a process whose command name is ``name`` (for the NATS server's CPU time), or None."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == name:
                    return int(entry.name)
    return None


async def measure_pubsub(name: str, target: GrpcTarget, *, events: int, warmup: int, rate: float,
                         latency_seconds: float, concurrency: int, server_pid: int | None,
                         extra_pids: dict[str, int | None] | None = None,
                         say: Callable[[str], None] = lambda _m: None) -> TargetResult:
    """Throughput and latency through a Pub/Sub server, with a publisher process and a subscriber here."""
    result = TargetResult(name)
    publisher = Publisher(target)
    try:
        async with _channel(target.address, target.ca_bundle) as channel:
            stub = pb_grpc.PubSubStub(channel)
            subscriber = Subscriber(stub, target.metadata, target.topic)
            subscriber.start()
            try:
                # Live check: LATEST starts wherever the log is when the server handles the first request, so
                # probe until one probe arrives.
                probe = pb.PublishRequest(topic_name=target.topic, events=[
                    pb.ProducerEvent(id="probe", schema_id=target.schema_id, payload=target.templates[PROBE])])
                deadline = time.monotonic() + 20
                while subscriber.count(PROBE) == 0:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the subscription never received a probe event")
                    answer = await stub.Publish(probe, metadata=target.metadata, timeout=10)
                    if answer.results and answer.results[0].HasField("error"):
                        raise RuntimeError(f"publishing a probe failed: {answer.results[0].error.msg}")
                    await subscriber.wait_for(lambda: subscriber.count(PROBE) > 0, 0.3)
                await publisher.ready()

                say(f"{name}: warm-up ({warmup:,} events), then {events:,} events in batches of {BATCH}, "
                    f"{concurrency} calls in flight ...")
                if warmup:
                    await publisher.run("throughput", WARM, warmup, concurrency)
                    await subscriber.wait_for(lambda: subscriber.count(WARM) >= warmup, 30)
                pids = {"server": server_pid, "publisher": publisher.process.pid, "subscriber": os.getpid(),
                        **(extra_pids or {})}
                before = {key: _cpu(pid) for key, pid in pids.items()}
                wall = time.monotonic()
                published = await publisher.run("throughput", MEASURED, events, concurrency)
                if published["errors"]:
                    result.note = f"publish errors: {published['first_error']}"
                acked = published["acked"]
                await subscriber.wait_for(lambda: subscriber.count(MEASURED) >= acked, DELIVERY_WAIT_S + events / 2000)
                wall = time.monotonic() - wall
                after = {key: _cpu(pid) for key, pid in pids.items()}
                delivered = subscriber.count(MEASURED)
                result.events, result.delivered, result.errors = acked, delivered, published["errors"]
                span = published["end"] - published["start"]
                result.published_per_s = acked / span if span > 0 else None
                last = subscriber.last.get(MEASURED)
                if last is not None and delivered:
                    result.delivered_per_s = delivered / (last - published["start"])
                if delivered < acked:
                    result.note = (result.note + "; " if result.note else "") + \
                        f"throughput test: {acked - delivered} of {acked} acknowledged events never arrived"
                for key, cpu_before in before.items():
                    cpu_after = after[key]
                    if cpu_before is not None and cpu_after is not None and wall > 0:
                        result.busy[key] = (cpu_after - cpu_before) / wall
                if "server" in result.busy and delivered:
                    result.server_cpu_us_per_event = result.busy["server"] * wall / delivered * 1e6

                say(f"{name}: latency at {rate:,.0f} events/s for {latency_seconds:g}s ...")
                steady = await publisher.run("latency", rate, latency_seconds)
                await subscriber.wait_for(lambda: subscriber.count(LATENCY) >= steady["acked"], DELIVERY_WAIT_S)
                latencies = sorted(ns / 1e6 for ns in subscriber.latencies_ns)
                result.latency_events = len(latencies)
                result.latency_rate = steady["rate"]
                result.p50_ms = rest_get._percentile(latencies, 0.50)
                result.p99_ms = rest_get._percentile(latencies, 0.99)
                result.max_ms = latencies[-1] if latencies else None
                result.ack_p50_ms, result.ack_p99_ms = steady["ack_p50_ms"], steady["ack_p99_ms"]
                result.errors += steady["errors"]
                if steady["max_lag_ms"] > 5:
                    result.note = (result.note + "; " if result.note else "") + \
                        f"publisher fell {steady['max_lag_ms']:.0f} ms behind its schedule"
                if result.latency_events < steady["sent"]:
                    result.note = (result.note + "; " if result.note else "") + \
                        f"latency test: {steady['acked'] - result.latency_events} of {steady['acked']} acknowledged " \
                        f"events never arrived (waited {DELIVERY_WAIT_S:g} s)"
                if subscriber.first_payload is not None and len(subscriber.first_payload) != PAYLOAD_BYTES:
                    result.note = (result.note + "; " if result.note else "") + \
                        f"delivered payloads are {len(subscriber.first_payload)} bytes"
            finally:
                await subscriber.stop()
    finally:
        publisher.stop()
    return result


# -- baseline: raw NATS JetStream --------------------------------------------------------------------------------


def nats_reachable(url: str) -> str | None:
    """None when something listens at the NATS URL, else the reason."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 4222), timeout=1.0):
            return None
    except OSError as exc:
        return f"no NATS server at {url}: {exc}"


async def raw_nats_publish(url: str, payload: bytes, count: int, concurrency: int, rounds: int = 3) -> TargetResult:
    """Acked JetStream publishes of ``payload`` to a throwaway file-storage stream (deleted afterwards): the median
    of ``rounds`` windows of ``count`` messages each, after a short warm-up."""
    import nats

    nc = await nats.connect(url, connect_timeout=2, allow_reconnect=False)
    js = nc.jetstream()
    name = "BENCHRAW_" + uuid.uuid4().hex[:10].upper()
    subject = name.lower() + ".event"
    result = TargetResult("raw NATS")
    try:
        await js.add_stream(name=name, subjects=[subject + ".>"], storage="file")
        target = subject + ".Case_Closed__e"
        acked = errors = 0

        async def worker(batches: Iterator[int]) -> None:
            nonlocal acked, errors
            for _ in batches:
                futures = [await js.publish_async(target, payload) for _ in range(BATCH)]
                for outcome in await asyncio.gather(*futures, return_exceptions=True):
                    if isinstance(outcome, BaseException):
                        errors += 1
                    else:
                        acked += 1

        async def run(batches: int) -> None:
            shared = iter(range(batches))  # the workers take batches from one iterator
            await asyncio.gather(*(worker(shared) for _ in range(concurrency)))

        await run(max(1, count // BATCH // 10))  # warm-up: the stream's first blocks, the connection's buffers
        server = find_process("nats-server") if urlsplit(url).hostname in ("127.0.0.1", "localhost") else None
        windows: list[tuple[float, int, int, float | None, float | None]] = []
        for _ in range(max(1, rounds)):
            acked = errors = 0
            cpu_before, me_before = _cpu(server), _cpu(os.getpid())
            start = time.monotonic()
            await run(-(-count // BATCH))
            elapsed = time.monotonic() - start
            cpu_after, me_after = _cpu(server), _cpu(os.getpid())
            server_busy = None if cpu_before is None or cpu_after is None else (cpu_after - cpu_before) / elapsed
            me_busy = None if me_before is None or me_after is None else (me_after - me_before) / elapsed
            windows.append((acked / elapsed if elapsed else 0.0, acked, errors, server_busy, me_busy))
        windows.sort(key=lambda window: window[0])
        rate, result.events, result.errors, server_busy, me_busy = windows[len(windows) // 2]  # the median round
        result.published_per_s = rate
        if server_busy is not None:
            result.busy["nats-server"] = server_busy
        if me_busy is not None:
            result.busy["publisher"] = me_busy
        result.note = (f"{concurrency} x {BATCH} publish_async in flight, file storage; median of {len(windows)} "
                       f"rounds ({', '.join(f'{w[0]:,.0f}' for w in windows)} msgs/s)")
    finally:
        with contextlib.suppress(Exception):
            await js.delete_stream(name)
        await nc.close()
    return result


def with_prefix(url: str, prefix: str) -> str:
    """``url`` with ``prefix=`` set in its query (the NATS backend's stream and subject prefix)."""
    parts = urlsplit(url)
    query = [item for item in parts.query.split("&") if item and not item.startswith("prefix=")]
    return urlunsplit(parts._replace(query="&".join([*query, f"prefix={prefix}"])))


async def delete_nats_streams(url: str, prefix: str) -> list[str]:
    """Delete every stream whose name starts with ``prefix`` (the NATS backend's, after the run)."""
    import nats

    nc = await nats.connect(url, connect_timeout=2, allow_reconnect=False)
    deleted = []
    try:
        jsm = nc.jsm()
        for info in await jsm.streams_info():
            if info.config.name and info.config.name.startswith(prefix):
                await jsm.delete_stream(info.config.name)
                deleted.append(info.config.name)
    finally:
        await nc.close()
    return deleted


# -- baseline: raw gRPC --------------------------------------------------------------------------------------------


class RawPubSub(pb_grpc.PubSubServicer):
    """The least a Pub/Sub server can do: Publish appends payloads to a list, Subscribe streams them with the same
    credit rules (at most 100 outstanding). A topic ``/raw/prebuilt/N`` streams N pre-built events instead."""

    def __init__(self) -> None:
        self._events: list[pb.ConsumerEvent] = []
        self._signals: set[asyncio.Event] = set()
        self._prebuilt: dict[int, pb.FetchResponse] = {}
        self._template = pb.ConsumerEvent(event=pb.ProducerEvent(id=str(uuid.UUID(int=1)), schema_id="r" * 22,
                                                                 payload=b"x" * PAYLOAD_BYTES),
                                          replay_id=(1).to_bytes(8, "big"))

    async def GetTopic(self, request: pb.TopicRequest, context: grpc.aio.ServicerContext) -> pb.TopicInfo:
        return pb.TopicInfo(topic_name=request.topic_name, can_publish=True, can_subscribe=True, schema_id="raw")

    async def Publish(self, request: pb.PublishRequest, context: grpc.aio.ServicerContext) -> pb.PublishResponse:
        results = []
        for event in request.events:
            replay_id = (len(self._events) + 1).to_bytes(8, "big")
            # The id a subscriber sees is a 36-character uuid, as Interlink's; the payload is kept as sent.
            self._events.append(pb.ConsumerEvent(event=pb.ProducerEvent(id=str(uuid.uuid4()),
                                                                        schema_id=event.schema_id,
                                                                        payload=event.payload), replay_id=replay_id))
            results.append(pb.PublishResult(replay_id=replay_id, correlation_key=event.id))
        for waiting in self._signals:
            waiting.set()
        return pb.PublishResponse(results=results, schema_id="raw", rpc_id="raw")

    def _prebuilt_response(self, size: int) -> pb.FetchResponse:
        found = self._prebuilt.get(size)
        if found is None:
            found = pb.FetchResponse(events=[self._template] * size, latest_replay_id=self._template.replay_id,
                                     rpc_id="raw")
            self._prebuilt[size] = found
        return found

    async def Subscribe(self, request_iterator: AsyncIterator[pb.FetchRequest],
                        context: grpc.aio.ServicerContext) -> AsyncIterator[pb.FetchResponse]:
        iterator = request_iterator.__aiter__()
        first = await iterator.__anext__()
        credit = min(first.num_requested, MAX_CREDIT)
        signal_ = asyncio.Event()

        async def read() -> None:
            nonlocal credit
            async for request in iterator:
                credit = min(credit + request.num_requested, MAX_CREDIT)
                signal_.set()

        reader = asyncio.create_task(read())
        prebuilt = first.topic_name.startswith(PREBUILT_TOPIC)
        remaining = int(first.topic_name.removeprefix(PREBUILT_TOPIC)) if prebuilt else 0
        position = len(self._events)
        self._signals.add(signal_)
        try:
            while True:
                signal_.clear()
                if credit <= 0 or (remaining <= 0 if prebuilt else position >= len(self._events)):
                    await signal_.wait()
                    continue
                if prebuilt:
                    size = min(credit, remaining)
                    remaining -= size
                    credit -= size
                    response = pb.FetchResponse()
                    response.CopyFrom(self._prebuilt_response(size))
                    response.pending_num_requested = credit
                    yield response
                    continue
                events = self._events[position:position + credit]
                position += len(events)
                credit -= len(events)
                yield pb.FetchResponse(events=events, latest_replay_id=events[-1].replay_id, rpc_id="raw",
                                       pending_num_requested=credit)
        finally:
            self._signals.discard(signal_)
            reader.cancel()


async def _serve_raw(cert: Path, key: Path) -> None:
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 4 * 1024 * 1024),
                                      ("grpc.max_send_message_length", 16 * 1024 * 1024)])
    pb_grpc.add_PubSubServicer_to_server(RawPubSub(), server)
    credentials = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
    port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    print(f"PORT {port}", flush=True)
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopped.set)
    await stopped.wait()
    await server.stop(grace=0.5)


@contextlib.contextmanager
def raw_grpc_server(workdir: Path) -> Any:
    """Start ``bench/bus.py --raw-grpc-server`` with TLS material from ``ensure_tls``; yield (address, CA, pid)."""
    from interlink.security.tls import ensure_tls

    tls = ensure_tls(workdir, hosts=["localhost", "127.0.0.1"])
    process = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--raw-grpc-server",
                                "--cert", str(tls.server_cert), "--key", str(tls.server_key)],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        if not line.startswith("PORT "):
            raise RuntimeError(f"the raw gRPC server did not start (said {line!r}, exit {process.poll()})")
        yield f"localhost:{line.split()[1]}", str(tls.bundle), process.pid
    finally:
        rest_get._stop(process)  # type: ignore[arg-type]


async def raw_stream(address: str, ca_bundle: str, events: int, server_pid: int) -> TargetResult:
    """Delivered events/s of pre-built 100-event FetchResponses, pulled 100 at a time."""
    result = TargetResult("raw gRPC stream")
    async with _channel(address, ca_bundle) as channel:
        await channel.channel_ready()
        stub = pb_grpc.PubSubStub(channel)
        for total in (max(BATCH, events // 10), events):  # warm-up, then measured
            subscriber = Subscriber(stub, (), f"{PREBUILT_TOPIC}{total}")
            before, me_before = _cpu(server_pid), _cpu(os.getpid())
            start = time.monotonic()
            subscriber.start()
            try:
                await subscriber.wait_for(lambda total=total, s=subscriber: s.count(b"x") >= total, 60)
            finally:
                await subscriber.stop()
            after, me_after = _cpu(server_pid), _cpu(os.getpid())
        delivered = subscriber.count(b"x")
        span = subscriber.last.get(b"x", start) - start
        wall = time.monotonic() - start
        result.events = result.delivered = delivered
        result.delivered_per_s = delivered / span if span > 0 else None
        if before is not None and after is not None and delivered:
            result.busy["server"] = (after - before) / wall
            result.server_cpu_us_per_event = (after - before) / delivered * 1e6
        if me_before is not None and me_after is not None:
            result.busy["subscriber"] = (me_after - me_before) / wall
        result.note = "pre-built 100-event responses, pulled 100 at a time"
    return result


# -- the run ---------------------------------------------------------------------------------------------------


async def _interlink_target(server: Any, name: str, *, events: int, warmup: int, rate: float,
                            latency_seconds: float, concurrency: int, extra_pids: dict[str, int | None],
                            say: Callable[[str], None]) -> TargetResult:
    token = server.token()
    metadata = (("accesstoken", token), ("instanceurl", server.url), ("tenantid", server.org_id))
    async with _channel(server.grpc_target, server.ca_bundle) as channel:
        stub = pb_grpc.PubSubStub(channel)
        topic = await stub.GetTopic(pb.TopicRequest(topic_name=TOPIC), metadata=metadata, timeout=10)
        schema = await stub.GetSchema(pb.SchemaRequest(schema_id=topic.schema_id), metadata=metadata, timeout=10)
    server_schema = json.loads(schema.schema_json)
    parsed = fastavro.parse_schema(server_schema)
    if [f["name"] for f in server_schema["fields"]] != [f["name"] for f in case_closed_schema()["fields"]]:
        raise RuntimeError(f"unexpected schema for {TOPIC}: {schema.schema_json}")
    templates = {tag: build_payload(parsed, tag) for tag in (PROBE, WARM, MEASURED, LATENCY)}
    target = GrpcTarget(server.grpc_target, server.ca_bundle, metadata, TOPIC, topic.schema_id, templates)
    return await measure_pubsub(name, target, events=events, warmup=warmup, rate=rate,
                                latency_seconds=latency_seconds, concurrency=concurrency,
                                server_pid=server.process.pid, extra_pids=extra_pids, say=say)


def run_benchmark(*, events: int = 50_000, warmup: int = 2_000, rate: float = 1000.0, latency_seconds: float = 5.0,
                  concurrency: int = 4, nats_url: str | None = DEFAULT_NATS,
                  log: TextIO | None = None) -> BusReport:
    """Measure every target in one run and return the results."""
    from interlink.testing import live_server

    def say(message: str) -> None:
        if log is not None:
            print(message, file=log, flush=True)

    load = os.getloadavg()[0]
    events = max(BATCH, events // BATCH * BATCH)
    warmup = warmup // BATCH * BATCH
    baseline_events = max(events, BASELINE_MIN_EVENTS)
    parsed = fastavro.parse_schema(case_closed_schema())
    payload = build_payload(parsed, MEASURED)
    say("fastavro encode/decode rates ...")
    encode_rate, decode_rate = avro_rates(parsed, payload)
    results: dict[str, TargetResult] = {}
    nats_down = nats_reachable(nats_url) if nats_url else "NATS disabled (--no-nats)"
    nats_pid = None
    if nats_url and not nats_down and urlsplit(nats_url).hostname in ("127.0.0.1", "localhost"):
        nats_pid = find_process("nats-server")
    common = {"events": events, "warmup": warmup, "rate": rate, "latency_seconds": latency_seconds,
              "concurrency": concurrency}
    env = {"INTERLINK_PUBSUB_KEEPALIVE_SECONDS": "1", "INTERLINK_LOG_LEVEL": "warning",
           "INTERLINK_HOURLY_PUBLISHED_EVENTS": "100000000"}

    with tempfile.TemporaryDirectory(prefix="interlink-bench-bus-") as tmp:
        workdir = Path(tmp)
        if nats_down:
            results["raw NATS"] = TargetResult("raw NATS", skipped=nats_down)
        else:
            say(f"raw NATS: {baseline_events:,} acked JetStream publishes of {PAYLOAD_BYTES} bytes ...")
            try:
                results["raw NATS"] = asyncio.run(raw_nats_publish(nats_url or DEFAULT_NATS, payload, baseline_events,
                                                                   concurrency))
            except Exception as exc:  # a NATS without JetStream, or refusing streams
                results["raw NATS"] = TargetResult("raw NATS", skipped=f"{type(exc).__name__}: {exc}")

        say("raw gRPC: starting the minimal server ...")
        with raw_grpc_server(workdir / "raw") as (address, ca_bundle, raw_pid):
            say(f"raw gRPC stream: {baseline_events:,} pre-built events ...")
            results["raw gRPC stream"] = asyncio.run(raw_stream(address, ca_bundle, baseline_events, raw_pid))
            templates = {tag: build_payload(parsed, tag) for tag in (PROBE, WARM, MEASURED, LATENCY)}
            target = GrpcTarget(address, ca_bundle, (), TOPIC, "r" * 22, templates)
            results["raw gRPC relay"] = asyncio.run(measure_pubsub("raw gRPC relay", target, server_pid=raw_pid,
                                                                   say=say, **common))
            results["raw gRPC relay"].note = "in-memory list; no auth, validation or storage"

        say(f"embedded: starting interlink up in {workdir / 'embedded'} ...")
        with live_server(workdir / "embedded", extra_args=("--sample-data",), env=env) as server:
            results["embedded"] = asyncio.run(_interlink_target(server, "embedded", extra_pids={}, say=say,
                                                                **common))

        if nats_down:
            results["NATS"] = TargetResult("NATS", skipped=nats_down)
        else:
            prefix = "BENCH" + uuid.uuid4().hex[:10].upper()
            bus_url = with_prefix(nats_url, prefix)
            say(f"NATS: starting interlink up --bus {bus_url} ...")
            try:
                with live_server(workdir / "nats", extra_args=("--sample-data", "--bus", bus_url), env=env) as server:
                    results["NATS"] = asyncio.run(_interlink_target(
                        server, "NATS", extra_pids={"nats-server": nats_pid}, say=say, **common))
            except RuntimeError as exc:
                reason = str(exc).strip().splitlines()
                results["NATS"] = TargetResult("NATS", skipped=f"{reason[0] if reason else exc} "
                                               f"({' '.join(reason[-2:])[:300]})")
            finally:
                with contextlib.suppress(Exception):
                    deleted = asyncio.run(delete_nats_streams(nats_url or DEFAULT_NATS, prefix))
                    say(f"NATS: deleted streams {', '.join(deleted) or '(none)'}")

    return BusReport(cpu_count=os.cpu_count() or 1, load_average=load, events=events, baseline_events=baseline_events,
                     warmup_events=warmup,
                     latency_seconds=latency_seconds, rate=rate, concurrency=concurrency, payload_bytes=len(payload),
                     avro_encode_per_s=encode_rate, avro_decode_per_s=decode_rate, results=results)


# -- the report ------------------------------------------------------------------------------------------------


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _verdict(value: float | None, goal: float, *, above: bool = True) -> str:
    if value is None:
        return "n/a"
    return "PASS" if (value >= goal if above else value < goal) else "MISS"


def format_report(report: BusReport) -> str:
    """The human-readable table."""
    lines = [
        f"Event bus: {TOPIC}, Avro payloads of {report.payload_bytes} bytes, batches of {BATCH}, "
        f"{report.concurrency} Publish calls in flight, Subscribe pulling {MAX_CREDIT} at a time; "
        f"{report.events:,} events measured per Interlink target and the relay (after {report.warmup_events:,} "
        f"warm-up), {report.baseline_events:,} for raw NATS and the raw stream; latency at "
        f"{report.rate:,.0f} events/s ({LATENCY_BATCH} per call) for {report.latency_seconds:g}s",
        f"machine: {report.cpu_count} CPUs, shared by the server, the publisher process, the subscriber (this "
        f"process) and nats-server; load average {report.load_average:.2f} at the start",
        "",
        f"{'target':<16} {'published/s':>12} {'delivered/s':>12} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} "
        f"{'ack p99':>8} {'srv us/ev':>9}  CPU busy during throughput",
    ]
    for result in report.results.values():
        if result.skipped:
            lines.append(f"{result.target:<16} skipped: {result.skipped}")
            continue
        busy = ", ".join(f"{key} {value:.0%}" for key, value in result.busy.items())
        lines.append(
            f"{result.target:<16} {_num(result.published_per_s, ',.0f'):>12} "
            f"{_num(result.delivered_per_s, ',.0f'):>12} "
            f"{_num(result.p50_ms, '.2f'):>7} {_num(result.p99_ms, '.2f'):>7} {_num(result.max_ms, '.1f'):>7} "
            f"{_num(result.ack_p99_ms, '.2f'):>8} {_num(result.server_cpu_us_per_event, '.1f'):>9}  {busy}")
    notes = [f"  {r.target}: {r.note}" for r in report.results.values() if r.note and not r.skipped]
    errors = [f"  {r.target}: {r.errors} events not published" for r in report.results.values() if r.errors]
    if notes or errors:
        lines += ["", "notes:", *notes, *errors]
    ratios = report.ratios()
    embedded, nats = report.results.get("embedded"), report.results.get("NATS")
    lines += [
        "",
        f"fastavro on this payload: encode {report.avro_encode_per_s:,.0f}/s, decode {report.avro_decode_per_s:,.0f}/s",
        "",
        f"embedded delivered / raw NATS acked publish:   {_num(ratios['embedded_vs_raw_nats'], '.3f'):>6}   "
        f"goal >= {EMBEDDED_GOAL}: {_verdict(ratios['embedded_vs_raw_nats'], EMBEDDED_GOAL)}",
        f"NATS-backend delivered / raw NATS publish:     {_num(ratios['nats_vs_raw_nats'], '.3f'):>6}   "
        f"goal >= {NATS_GOAL}: {_verdict(ratios['nats_vs_raw_nats'], NATS_GOAL)}",
        f"embedded p99 at {report.rate:,.0f} events/s:               "
        f"{_num(embedded.p99_ms if embedded else None, '.2f'):>6}   goal < {P99_GOAL_MS:g} ms: "
        f"{_verdict(embedded.p99_ms if embedded else None, P99_GOAL_MS, above=False)}",
        f"NATS-backend p99 at {report.rate:,.0f} events/s:           "
        f"{_num(nats.p99_ms if nats and not nats.skipped else None, '.2f'):>6}   goal < {P99_GOAL_MS:g} ms: "
        f"{_verdict(nats.p99_ms if nats and not nats.skipped else None, P99_GOAL_MS, above=False)}",
        "",
        f"embedded delivered / raw gRPC stream:          {_num(ratios['embedded_vs_raw_stream'], '.3f'):>6}",
        f"embedded delivered / raw gRPC relay:           {_num(ratios['embedded_vs_raw_relay'], '.3f'):>6}",
        f"NATS-backend delivered / raw gRPC stream:      {_num(ratios['nats_vs_raw_stream'], '.3f'):>6}",
        f"NATS-backend delivered / raw gRPC relay:       {_num(ratios['nats_vs_raw_relay'], '.3f'):>6}",
        f"NATS-backend delivered / embedded delivered:   {_num(ratios['nats_vs_embedded'], '.3f'):>6}",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Event bus throughput and latency through the Pub/Sub API, against "
                                                 "raw NATS JetStream and raw gRPC streaming.")
    parser.add_argument("--events", type=int, default=None, help="events measured for throughput (50,000)")
    parser.add_argument("--warmup-events", type=int, default=None, help="warm-up events per target (2,000)")
    parser.add_argument("--latency-seconds", type=float, default=None, help="length of the latency test (5)")
    parser.add_argument("--rate", type=float, default=1000.0, help="events/s of the latency test (1,000)")
    parser.add_argument("--concurrency", type=int, default=4, help="Publish calls in flight (4)")
    parser.add_argument("--nats", default=os.environ.get("INTERLINK_BENCH_NATS", DEFAULT_NATS),
                        help=f"NATS server for the baseline and the NATS backend ({DEFAULT_NATS})")
    parser.add_argument("--no-nats", action="store_true", help="skip raw NATS and the NATS backend")
    parser.add_argument("--quick", action="store_true", help="10,000 events, 1,000 warm-up, 3 s of latency")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--raw-grpc-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cert", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--key", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.raw_grpc_server:
        asyncio.run(_serve_raw(args.cert, args.key))
        return 0
    events = args.events or (10_000 if args.quick else 50_000)
    warmup = args.warmup_events if args.warmup_events is not None else (1_000 if args.quick else 2_000)
    seconds = args.latency_seconds or (3.0 if args.quick else 5.0)
    report = run_benchmark(events=events, warmup=warmup, rate=args.rate, latency_seconds=seconds,
                           concurrency=max(1, args.concurrency), nats_url=None if args.no_nats else args.nats,
                           log=None if args.json else sys.stderr)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
