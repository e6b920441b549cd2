"""Benchmark: middleware pipelines against a live ``interlink up``, next to raw baselines, embedded and distributed.

Run ``python bench/pipeline.py`` (20,000 events, 1,000,000 rows: about 50 minutes on 2 cores, most of it the four
batch targets) or ``python bench/pipeline.py --quick`` (2,000 events, 50,000 rows, about 4 minutes: what ``make bench``
runs). In one run:

1. **Streaming.** A real ``interlink up`` (one process, TLS, embedded SQLite store) starts in a temporary data
   directory with :func:`interlink.testing.live_server`. Its project (the data directory) declares the platform
   event ``Bench_Event__e`` (``Key__c``, ``Name__c``, ``Amount__c``, ``City__c``) and the external id
   ``Account.Bench_Key__c`` (text, ``externalId``, ``unique``). N events are published first, 200 per REST
   sObject Collections create (not part of any rate; their publish rate is shown). Then, timed:

   * **pipeline**: ``org.pubsub`` (``replay: earliest``) -> ``map`` (event fields to Account fields; the key
     becomes ``'<tag>-' & Key__c``, a tag per measurement so that each one inserts new Accounts) -> ``dedupe``
     (on ``$id``, the EventUuid) -> ``org.upsert`` (Account by ``Bench_Key__c``; the batches stay below
     ``bulkThreshold``, so sObject Collections), run by :class:`~interlink.middleware.runtime.PipelineRunner` in a
     thread of this process with a SQLite :class:`~interlink.middleware.store.MiddlewareStore`. Timed **from
     ``run()`` until a REST ``SELECT COUNT() FROM Account`` (polled every 50 ms) shows all N upserted**, so it
     includes building the steps, ``GetTopic``, ``Subscribe`` and ``GetSchema``.
   * **raw REST** (baseline): the same N Account records (their own keys, so inserts too) sent by this process
     straight to ``PATCH /composite/sobjects/Account/Bench_Key__c``, 200 per call, one call after the other over one
     keep-alive httpx client: what the sink sends, without the middleware. From the first call to the last answer.
   * **raw NATS** (baseline): nats-py publishes N messages of the event's JSON size to a throwaway JetStream
     stream (file storage, batches of 100 ``publish_async`` with their acks), then drains them through a durable
     pull consumer (``fetch(100)``, ``ack()`` each). Its messages/s is the drain, the phase the pipeline's time
     covers (its events were published beforehand); the publish rate is shown beside it.

   Ratios: pipeline messages/s / raw REST messages/s, and / raw NATS drain messages/s.

2. **Batch.** A SQLite file with a ``prospects`` table of N rows (``id``, an integer ``modified`` watermark, name,
   account number, industry, phone, city, revenue, key), written before anything is timed. Each target gets a
   **fresh** ``interlink up`` (same project), so each upserts N new Accounts into an empty org:

   * **pipeline**: ``sql`` (table ``prospects``, watermark ``modified``, ``batchSize`` = the batch) -> ``map``
     (columns to Account fields) -> ``org.upsert`` (``bulkThreshold`` 1,000), pipeline ``batch`` 50,000
     (``--batch``): one Bulk API 2.0 upsert job per batch (create, upload the CSV, close, poll with the sink's
     growing delay, then ``successfulResults`` / ``failedResults`` mapped back to the messages). Timed from
     ``run(once=True)`` until it returns (the source is exhausted and everything written).
   * **script** (baseline): the same rows read with ``sqlite3`` (``fetchmany`` of the batch size), written with
     ``csv.writer``, and sent as one Bulk API 2.0 upsert job per batch with httpx: ``POST jobs/ingest``, ``PUT
     .../batches``, ``PATCH UploadComplete``, ``GET`` the job every 0.1 s until ``JobComplete`` (and the
     ``failedResults`` only when a record failed). From the first read to the last ``JobComplete``.

   Each is checked afterwards by a REST ``SELECT COUNT() FROM Account`` (it must be N); ``GET jobs/ingest`` gives
   the number of Bulk jobs the org ran. Ratio: pipeline rows/s / script rows/s.

3. **Distributed** (when :mod:`interlink.middleware.distributed` exists and NATS answers): the same two pipelines
   split by it into a **feeder** in this process (the source publishing to the JetStream work queue
   ``IL_PIPE_<name>``, :func:`~interlink.middleware.distributed.build_runners` with ``feeders=True,
   workers=False``) and 1, then 2 (``--workers``) real ``interlink worker --bus nats://…`` **processes** sharing its
   durable consumer and running the steps and the sink, all sharing one SQLite middleware store file. The workers
   start first and the clock starts once JetStream shows each of them waiting on the consumer. Streaming rows use
   the streaming server (the same N events replayed from ``earliest`` under a new pipeline name and key tag) and
   are timed like the embedded pipeline, until REST counts the N new Accounts. Batch rows get a fresh org each and
   are timed from the feeder's start until the workers' ``/metrics`` (``--metrics-port``) report N written; a
   REST count checks it afterwards. The streams are deleted afterwards. Without the module or without NATS, the
   report says so on a clearly marked line.

CPU columns: ``client CPU s`` is this process's CPU (all threads) over the timed span, plus the worker processes'
for the distributed rows; ``server CPU s`` and ``busy`` are the server's (``/proc``, Linux only). Nothing is
asserted about timings: the script prints the numbers and warnings (missing rows, dead letters).

Flags: ``--events N`` (default 20,000; ``--quick``: 2,000), ``--rows N`` (default 1,000,000; ``--quick``:
50,000), ``--batch N`` (pipeline batch and rows per Bulk job, default 50,000), ``--workers 1,2``, ``--nats URL``,
``--no-nats`` (no raw NATS row, no distributed rows), ``--no-stream``, ``--no-batch``, ``--quick``, ``--json``.

Importable: :func:`run_benchmark` returns a :class:`PipelineReport`; :func:`measure_stream_pipeline`,
:func:`raw_rest_upserts`, :func:`raw_nats`, :func:`write_prospects`, :func:`measure_batch_pipeline`,
:func:`measure_batch_script` and :func:`measure_distributed` can be used on their own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import dataclasses
import importlib.util
import io
import json
import os
import re
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import httpx
import yaml

from interlink.middleware.orgapi import OrgConnection
from interlink.middleware.runtime import PipelineRunner
from interlink.middleware.spec import Pipeline, load_pipeline_text
from interlink.middleware.store import MiddlewareStore
from interlink.testing import ADMIN_PASSWORD, API_VERSION, LiveServer, live_server

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:  # ``python bench/pipeline.py`` has it already; an importer may not
    sys.path.insert(0, str(BENCH_DIR))

import rest_get  # noqa: E402  (bench/rest_get.py: server CPU time from /proc)

BASE = f"/services/data/v{API_VERSION}"
FULL_EVENTS, QUICK_EVENTS = 20_000, 2_000
FULL_ROWS, QUICK_ROWS = 1_000_000, 50_000
BATCH = 50_000  # pipeline batch and rows per Bulk job, both sides of part 2
WORKERS = (1, 2)
BULK_THRESHOLD = 1_000
STREAM_BATCH = 200  # the streaming pipeline's batch (the Pub/Sub source hands out at most ~100 at a time)
COLLECTION = 200  # records per sObject Collections call
NATS_BATCH = 100
POLL_SECONDS = 0.1  # the script's Bulk job polling
COUNT_EVERY = 0.05  # REST COUNT() polling while a streaming pipeline runs
METRICS_EVERY = 0.1  # worker /metrics polling while a distributed batch pipeline runs
DEFAULT_NATS = os.environ.get("INTERLINK_BENCH_NATS", "nats://127.0.0.1:4222")
EVENT = "Bench_Event__e"
TOPIC = f"/event/{EVENT}"
KEY = "Bench_Key__c"
EVENT_YAML = """label: Bench Event
fields:
  - {name: Key__c, label: Key, type: text, length: 40}
  - {name: Name__c, label: Name, type: text, length: 80}
  - {name: Amount__c, label: Amount, type: number, precision: 16, scale: 2}
  - {name: City__c, label: City, type: text, length: 40}
"""
ACCOUNT_YAML = (f"fields:\n  - {{name: {KEY}, label: Bench Key, type: text, length: 40, externalId: true, "
                "unique: true}\n")
CITIES = ["San Francisco", "New York", "Chicago", "Austin", "Seattle", "Boston", "Denver", "Atlanta"]
INDUSTRIES = ["Banking", "Technology", "Retail", "Energy", "Healthcare", "Manufacturing", "Media", "Shipping"]
EVENT_TO_ACCOUNT = {"Name": "Name__c", "AnnualRevenue": "Amount__c", "BillingCity": "City__c"}  # + the tagged key
PROSPECT_COLUMNS = ["id", "modified", "name", "number", "industry", "phone", "city", "revenue", "key"]
PROSPECT_TO_ACCOUNT = {KEY: "key", "Name": "name", "AccountNumber": "number", "Industry": "industry",
                       "Phone": "phone", "BillingCity": "city", "AnnualRevenue": "revenue"}
DISTRIBUTED_MODULE = "interlink.middleware.distributed"
SERVER_ENV = {"INTERLINK_LOG_LEVEL": "warning", "INTERLINK_HOURLY_PUBLISHED_EVENTS": "100000000"}
_WRITTEN = re.compile(r'^interlink_pipeline_messages_total\{pipeline="([^"]*)",outcome="(written|dead_lettered)"\} '
                      r"(\d+)", re.MULTILINE)


@dataclass
class Row:
    """One measured (or skipped) target."""

    target: str
    count: int = 0  # messages or rows done
    seconds: float = 0.0
    per_second: float = 0.0
    publish_per_s: float | None = None  # streaming: how fast the input was published (not part of the rate)
    open_s: float | None = None  # streaming pipelines: start to the first message read
    jobs: int | None = None  # batch: Bulk API 2.0 jobs the org ran
    workers: int | None = None  # distributed rows: worker processes
    client_cpu_s: float | None = None  # this process over the timed span (+ the worker processes)
    server_cpu_s: float | None = None
    server_busy: float | None = None
    skipped: str | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)  # something went wrong (rows missing, failures)

    def finish(self, count: int, seconds: float) -> Row:
        self.count, self.seconds = count, seconds
        self.per_second = count / seconds if seconds > 0 else 0.0
        return self


@dataclass
class PipelineReport:
    """Everything one run measured."""

    events: int
    rows: int
    batch: int
    cpu_count: int
    load_average: float
    stream: dict[str, Row]
    batch_rows: dict[str, Row]
    distributed: str | None  # why the distributed rows are missing (None when they were measured)
    wall_s: float = 0.0
    notes: list[str] = dataclasses.field(default_factory=list)

    @staticmethod
    def ratio(mine: Row | None, base: Row | None) -> float | None:
        if mine is None or base is None or mine.skipped or base.skipped or not base.per_second:
            return None
        return mine.per_second / base.per_second

    @property
    def stream_vs_rest(self) -> float | None:
        return self.ratio(self.stream.get("pipeline"), self.stream.get("raw REST"))

    @property
    def stream_vs_nats(self) -> float | None:
        return self.ratio(self.stream.get("pipeline"), self.stream.get("raw NATS"))

    @property
    def batch_vs_script(self) -> float | None:
        return self.ratio(self.batch_rows.get("pipeline"), self.batch_rows.get("script"))

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for name in ("stream_vs_rest", "stream_vs_nats", "batch_vs_script"):
            value = getattr(self, name)
            data[name] = None if value is None else round(value, 4)
        return data


# -- the org -----------------------------------------------------------------------------------------------------------


def write_project(data_dir: Path) -> None:
    """The server's project (its data directory): the platform event and Account's external id."""
    objects = data_dir / "metadata" / "objects"
    objects.mkdir(parents=True, exist_ok=True)
    (objects / f"{EVENT}.yaml").write_text(EVENT_YAML)
    (objects / "Account.yaml").write_text(ACCOUNT_YAML)


@contextlib.contextmanager
def bench_server(data_dir: Path) -> Iterator[tuple[LiveServer, str, httpx.Client]]:
    """A live ``interlink up`` on a fresh project, with a token and an authorised httpx client."""
    write_project(data_dir)
    with live_server(data_dir, env=SERVER_ENV) as server:
        token = server.token()
        verify = ssl.create_default_context(cafile=server.ca_bundle)
        with httpx.Client(base_url=server.url, verify=verify, timeout=600.0,
                          headers={"Authorization": f"Bearer {token}"}) as client:
            yield server, token, client


def org_connection(server: LiveServer, token: str) -> OrgConnection:
    """The middleware's connection to the live server (REST over TLS, Pub/Sub on its gRPC port)."""
    return OrgConnection(server.url, token=token, ca_bundle=server.ca_bundle, grpc_target=server.grpc_target,
                         org_id=server.org_id or None, name="default")


def _checked(response: httpx.Response, expect: int = 200) -> httpx.Response:
    if response.status_code != expect:
        raise RuntimeError(f"{response.request.method} {response.request.url.path}: expected {expect}, got "
                           f"{response.status_code}: {response.text[:500]}")
    return response


def count_accounts(client: httpx.Client) -> int:
    response = _checked(client.get(f"{BASE}/query", params={"q": "SELECT COUNT() FROM Account"}))
    return int(response.json()["totalSize"])


def ingest_jobs(client: httpx.Client) -> tuple[int, int]:
    """Bulk API 2.0 ingest jobs the org knows (``GET jobs/ingest``, every page) and the records they processed
    (``GET`` of each job)."""
    ids: list[str] = []
    url = f"{BASE}/jobs/ingest"
    while url:
        page = _checked(client.get(url)).json()
        ids += [str(job["id"]) for job in page.get("records") or []]
        url = page.get("nextRecordsUrl") or ""
    processed = sum(int(_checked(client.get(f"{BASE}/jobs/ingest/{job}")).json().get("numberRecordsProcessed") or 0)
                    for job in ids)
    return len(ids), processed


def _server_cpu(server: LiveServer) -> float | None:
    return rest_get.process_cpu_seconds(server.process.pid)


class CpuSpan:
    """CPU seconds over a timed span: this process (all threads), extra processes (workers) and the server."""

    def __init__(self, server: LiveServer, extra_pids: list[int] | None = None) -> None:
        self.server = server
        self.extra_pids = extra_pids or []
        self.me = time.process_time()
        self.server_before = _server_cpu(server)
        self.extra_before = [rest_get.process_cpu_seconds(pid) for pid in self.extra_pids]

    def fill(self, row: Row, seconds: float) -> None:
        """Set the row's client and server CPU for a span of ``seconds`` ending now."""
        mine = time.process_time() - self.me
        extra = 0.0
        for pid, before in zip(self.extra_pids, self.extra_before, strict=True):
            after = rest_get.process_cpu_seconds(pid)
            if before is not None and after is not None:
                extra += after - before
        row.client_cpu_s = mine + extra
        if self.extra_pids:
            row.notes.append(f"client CPU: this process (feeder) {mine:.1f}s, {len(self.extra_pids)} worker "
                             f"process(es) {extra:.1f}s")
        after = _server_cpu(self.server)
        if self.server_before is not None and after is not None:
            row.server_cpu_s = after - self.server_before
            row.server_busy = row.server_cpu_s / seconds if seconds else None


def wait_until(count: Callable[[], int], target: int, *, started: float, timeout: float, every: float,
               running: Callable[[], bool], tick: Callable[[float], None] | None = None) -> tuple[int, float]:
    """Poll ``count()`` until it reaches ``target``, ``running()`` turns false or ``timeout`` passes; answers the
    last count and the seconds since ``started``."""
    while True:
        now = time.perf_counter()
        if tick is not None:
            tick(now - started)
        value = count()
        if value >= target or not running() or now - started > timeout:
            return value, time.perf_counter() - started
        time.sleep(every)


def pipeline_of(config: dict[str, Any]) -> Pipeline:
    """The pipeline a YAML file with ``config`` defines (the same text the worker processes load)."""
    return load_pipeline_text(yaml.safe_dump(config, sort_keys=False))


# -- 1. streaming ------------------------------------------------------------------------------------------------------


def event_payload(n: int) -> dict[str, Any]:
    return {"Key__c": f"EVP-{n:010d}", "Name__c": f"Bench Event {n}", "Amount__c": (n % 10_000) * 10 + 0.5,
            "City__c": CITIES[n % len(CITIES)]}


def account_record(n: int, tag: str) -> dict[str, Any]:
    """The Account a streaming pipeline with key tag ``tag`` makes of event ``n``."""
    event = event_payload(n)
    return {KEY: f"{tag}-{event['Key__c']}", **{target: event[field] for target, field in EVENT_TO_ACCOUNT.items()}}


def publish_events(client: httpx.Client, count: int) -> float:
    """Publish ``count`` events, 200 per Collections create; answers the seconds it took."""
    started = time.perf_counter()
    for start in range(0, count, COLLECTION):
        records = [{"attributes": {"type": EVENT}, **event_payload(n)}
                   for n in range(start, min(start + COLLECTION, count))]
        answer = _checked(client.post(f"{BASE}/composite/sobjects", json={"allOrNone": True, "records": records}))
        failed = [item for item in answer.json() if not item.get("success")]
        if failed:
            raise RuntimeError(f"publishing {EVENT} failed: {failed[:2]}")
    return time.perf_counter() - started


def stream_pipeline_config(name: str, tag: str) -> dict[str, Any]:
    """``org.pubsub -> map -> dedupe -> org.upsert``; the map tags the key so each run inserts new Accounts."""
    return {"name": name,
            "source": {"type": "org.pubsub", "topic": TOPIC, "replay": "earliest", "fallback": "earliest"},
            "steps": [{"type": "map", "fields": {KEY: f"'{tag}-' & Key__c", **EVENT_TO_ACCOUNT}},
                      {"type": "dedupe", "key": "$id", "retention": "1d"}],
            "sink": {"type": "org.upsert", "object": "Account", "externalId": KEY, "bulkThreshold": 1_000_000},
            "batch": STREAM_BATCH, "poll": 0.2, "retry": {"attempts": 3, "backoff": 0.2}}


def measure_stream_pipeline(server: LiveServer, token: str, client: httpx.Client, store_path: Path, events: int, *,
                            tag: str = "E", before: int = 0, timeout: float = 600.0) -> Row:
    """Run the streaming pipeline embedded until REST counts ``before + events`` Accounts (or ``timeout``)."""
    row = Row("pipeline")
    connection = org_connection(server, token)
    with MiddlewareStore.open_url(f"sqlite:///{store_path}") as store:
        runner = PipelineRunner(pipeline_of(stream_pipeline_config(f"bench-stream-{tag.lower()}", tag)), store,
                                connections={"default": connection}, project_dir=server.data_dir)
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                outcome["report"] = runner.run()
            except BaseException as exc:  # reported below
                outcome["error"] = exc

        def first_read(elapsed: float) -> None:
            if row.open_s is None and runner.metrics()["read"] > 0:
                row.open_s = elapsed

        cpu = CpuSpan(server)
        started = time.perf_counter()
        thread = threading.Thread(target=work, name="bench-stream-pipeline", daemon=True)
        thread.start()
        total, elapsed = wait_until(lambda: count_accounts(client), before + events, started=started,
                                    timeout=timeout, every=COUNT_EVERY, running=thread.is_alive, tick=first_read)
        cpu.fill(row, elapsed)
        runner.stop()
        thread.join(timeout=60)
        connection.close()
    done = total - before
    row.finish(done, elapsed)
    metrics = runner.metrics()
    batches = metrics.get("batches") or 0
    row.notes.append(f"read {metrics['read']:,} in {batches:,} batches (avg {metrics['read'] / max(1, batches):.0f}),"
                     f" written {metrics['written']:,}, deduped {metrics['deduped']:,}, "
                     f"dead-lettered {metrics['dead_lettered']:,}")
    if metrics["dead_lettered"]:
        row.warnings.append(f"{metrics['dead_lettered']:,} messages were dead-lettered")
    if done < events:
        row.warnings.append(f"only {done:,} of {events:,} Accounts were upserted "
                            f"({'the runner ended' if not thread.is_alive() else f'timeout {timeout:.0f}s'})")
    report = outcome.get("report")
    if "error" in outcome:
        row.warnings.append(f"the runner raised {outcome['error']!r}")
    elif report is not None and report.error:
        row.warnings.append(f"the run ended {report.status}: {report.error}")
    return row


def raw_rest_upserts(server: LiveServer, client: httpx.Client, count: int, tag: str = "R") -> Row:
    """The same upserts straight to sObject Collections, 200 per call, sequentially."""
    row = Row("raw REST")
    path = f"{BASE}/composite/sobjects/Account/{KEY}"
    chunks = [[{"attributes": {"type": "Account"}, **account_record(n, tag)}
               for n in range(start, min(start + COLLECTION, count))] for start in range(0, count, COLLECTION)]
    ok = 0
    cpu = CpuSpan(server)
    started = time.perf_counter()
    for chunk in chunks:
        answer = _checked(client.patch(path, json={"allOrNone": False, "records": chunk}))
        ok += sum(1 for item in answer.json() if item.get("success"))
    elapsed = time.perf_counter() - started
    cpu.fill(row, elapsed)
    row.finish(ok, elapsed)
    if ok != count:
        row.warnings.append(f"{count - ok:,} of {count:,} upserts failed")
    return row


def nats_problem(url: str) -> str | None:
    """None when nats-py is installed and something listens at ``url``, else the reason."""
    if importlib.util.find_spec("nats") is None:
        return "nats-py is not installed"
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 4222), timeout=1.0):
            return None
    except OSError as exc:
        return f"no NATS server at {url}: {exc}"


async def _raw_nats(url: str, payload: bytes, count: int) -> Row:
    import nats
    from nats.js.api import ConsumerConfig

    row = Row("raw NATS")
    nc = await nats.connect(url, connect_timeout=2, allow_reconnect=False)
    js = nc.jetstream()
    name = "BENCHPIPE_" + uuid.uuid4().hex[:10].upper()
    subject = f"{name.lower()}.events"
    try:
        await js.add_stream(name=name, subjects=[subject], storage="file")
        started = time.perf_counter()
        for start in range(0, count, NATS_BATCH):
            futures = [await js.publish_async(subject, payload) for _ in range(min(NATS_BATCH, count - start))]
            await asyncio.gather(*futures)
        published = time.perf_counter() - started
        row.publish_per_s = count / published if published else None
        consumer = await js.pull_subscribe(subject, durable="bench", stream=name,
                                           config=ConsumerConfig(max_ack_pending=10 * NATS_BATCH))
        received = 0
        started = time.perf_counter()
        while received < count:
            messages = await consumer.fetch(min(NATS_BATCH, count - received), timeout=5)
            for message in messages:
                await message.ack()
            received += len(messages)
        await nc.flush()
        row.finish(received, time.perf_counter() - started)
        row.notes.append(f"{len(payload)}-byte messages, file storage; publish {count:,} in {published:.2f}s, then "
                         f"drain (fetch {NATS_BATCH}, ack each) in {row.seconds:.2f}s")
    finally:
        with contextlib.suppress(Exception):
            await js.delete_stream(name)
        await nc.close()
    return row


def raw_nats(url: str, count: int) -> Row:
    """Publish ``count`` event-sized messages to a throwaway JetStream stream, then drain them (or a skipped row)."""
    problem = nats_problem(url)
    if problem:
        return Row("raw NATS", skipped=problem)
    payload = json.dumps(event_payload(123_456)).encode()
    try:
        return asyncio.run(_raw_nats(url, payload, count))
    except Exception as exc:  # a NATS without JetStream, or refusing streams
        return Row("raw NATS", skipped=f"{type(exc).__name__}: {exc}")


# -- 2. batch ----------------------------------------------------------------------------------------------------------


def prospect(n: int) -> tuple[Any, ...]:
    return (n + 1, 1_700_000_000 + n // 100, f"Prospect {n}", f"AN-{n:08d}", INDUSTRIES[n % len(INDUSTRIES)],
            f"(555) {n % 1000:03d}-{(n // 1000) % 10000:04d}", CITIES[n % len(CITIES)], 10_000 * (n % 5_000),
            f"PR-{n:010d}")


def write_prospects(db_path: Path, rows: int) -> None:
    """A SQLite ``prospects`` table of ``rows`` rows (groups of 100 share a ``modified`` value, as a bulk update
    stamps them), with an index on ``(modified, id)`` for the sql source's cursor."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE prospects (id INTEGER PRIMARY KEY, modified INTEGER NOT NULL, name TEXT, "
                     "number TEXT, industry TEXT, phone TEXT, city TEXT, revenue INTEGER, key TEXT NOT NULL)")
        for start in range(0, rows, 50_000):
            conn.execute("BEGIN")
            conn.executemany(f"INSERT INTO prospects VALUES ({', '.join('?' * len(PROSPECT_COLUMNS))})",
                             (prospect(n) for n in range(start, min(start + 50_000, rows))))
            conn.execute("COMMIT")
        conn.execute("CREATE INDEX prospects_cursor ON prospects (modified, id)")
        conn.execute("ANALYZE")
    finally:
        conn.close()


def batch_pipeline_config(name: str, db_path: Path, batch: int) -> dict[str, Any]:
    """``sql -> map -> org.upsert`` with a batch at or above ``bulkThreshold``: one Bulk API 2.0 job per batch."""
    return {"name": name,
            "source": {"type": "sql", "url": f"sqlite:///{db_path}", "table": "prospects", "watermark": "modified",
                       "id": "id", "batchSize": batch},
            "steps": [{"type": "map", "fields": dict(PROSPECT_TO_ACCOUNT)}],
            "sink": {"type": "org.upsert", "object": "Account", "externalId": KEY, "bulkThreshold": BULK_THRESHOLD},
            "batch": batch, "poll": 0.1, "retry": {"attempts": 3, "backoff": 1}}


def _batch_checks(row: Row, client: httpx.Client, rows: int) -> None:
    """Jobs the org ran (and rows per job) and the REST count of Accounts (it must be ``rows``)."""
    row.jobs, in_jobs = ingest_jobs(client)
    if row.jobs:
        row.notes.append(f"{row.jobs:,} Bulk API 2.0 job(s) processed {in_jobs:,} rows ({in_jobs / row.jobs:,.0f} per "
                         "job)" + (f"; {rows - in_jobs:,} rows went through sObject Collections (sink batches below "
                                   f"bulkThreshold {BULK_THRESHOLD:,})" if in_jobs < rows else ""))
    else:
        row.notes.append(f"no Bulk API 2.0 job: every batch the sink got was below bulkThreshold ({BULK_THRESHOLD:,}),"
                         " so it used sObject Collections")
    total = count_accounts(client)
    if total != rows:
        row.warnings.append(f"REST counts {total:,} Accounts, not {rows:,}")


def measure_batch_pipeline(server: LiveServer, token: str, client: httpx.Client, db_path: Path, store_path: Path,
                           rows: int, batch: int) -> Row:
    """``sql -> map -> org.upsert`` (Bulk API 2.0) embedded, once through the table."""
    row = Row("pipeline")
    connection = org_connection(server, token)
    with MiddlewareStore.open_url(f"sqlite:///{store_path}") as store:
        runner = PipelineRunner(pipeline_of(batch_pipeline_config("bench-batch", db_path, batch)), store,
                                connections={"default": connection}, project_dir=server.data_dir)
        cpu = CpuSpan(server)
        started = time.perf_counter()
        report = runner.run(once=True, idle_timeout=0)
        elapsed = time.perf_counter() - started
        cpu.fill(row, elapsed)
        connection.close()
    row.finish(report.written, elapsed)
    row.notes.append(f"run {report.status}: read {report.read:,}, written {report.written:,}, "
                     f"dead-lettered {report.dead_lettered:,}")
    if report.error:
        row.warnings.append(f"the run ended {report.status}: {report.error}")
    if report.dead_lettered:
        row.warnings.append(f"{report.dead_lettered:,} rows were dead-lettered")
    _batch_checks(row, client, rows)
    return row


def _wait_for_job(client: httpx.Client, path: str) -> dict[str, Any]:
    while True:
        info = _checked(client.get(path)).json()
        if info.get("state") == "JobComplete":
            return info
        if info.get("state") in ("Failed", "Aborted"):
            raise RuntimeError(f"job {info.get('id')} ended {info.get('state')}: {info.get('errorMessage')}")
        time.sleep(POLL_SECONDS)


def measure_batch_script(server: LiveServer, client: httpx.Client, db_path: Path, rows: int, batch: int) -> Row:
    """The plain script: sqlite3 + csv + Bulk API 2.0 upsert jobs over httpx, one job per ``batch`` rows."""
    row = Row("script")
    header = list(PROSPECT_TO_ACCOUNT)
    columns = [PROSPECT_COLUMNS.index(column) for column in PROSPECT_TO_ACCOUNT.values()]
    processed = failed = 0
    spec = {"object": "Account", "operation": "upsert", "externalIdFieldName": KEY, "contentType": "CSV",
            "columnDelimiter": "COMMA", "lineEnding": "LF"}
    cpu = CpuSpan(server)
    started = time.perf_counter()
    conn = sqlite3.connect(db_path)
    try:
        cursor = conn.execute(f"SELECT {', '.join(PROSPECT_COLUMNS)} FROM prospects ORDER BY modified, id")
        while chunk := cursor.fetchmany(batch):
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(header)
            writer.writerows([values[i] for i in columns] for values in chunk)
            job = _checked(client.post(f"{BASE}/jobs/ingest", json=spec)).json()["id"]
            path = f"{BASE}/jobs/ingest/{job}"
            _checked(client.put(f"{path}/batches", content=buffer.getvalue().encode(),
                                headers={"Content-Type": "text/csv"}), 201)
            _checked(client.patch(path, json={"state": "UploadComplete"}))
            info = _wait_for_job(client, path)
            processed += int(info.get("numberRecordsProcessed", 0))
            if int(info.get("numberRecordsFailed", 0)):
                failed += int(info["numberRecordsFailed"])
                lines = _checked(client.get(f"{path}/failedResults")).text.splitlines()[1:3]
                row.warnings.append(f"job {job}: {info['numberRecordsFailed']} failed, e.g. {lines}")
    finally:
        conn.close()
    elapsed = time.perf_counter() - started
    cpu.fill(row, elapsed)
    row.finish(processed - failed, elapsed)
    _batch_checks(row, client, rows)
    return row


# -- 3. distributed ----------------------------------------------------------------------------------------------------


def distributed_problem(nats_url: str | None) -> str | None:
    """Why the distributed rows cannot be measured (None when they can)."""
    try:
        present = importlib.util.find_spec(DISTRIBUTED_MODULE) is not None
    except (ImportError, ValueError):
        present = False
    if not present:
        return f"{DISTRIBUTED_MODULE} does not exist (NATS-distributed workers are not built yet)"
    if not nats_url:
        return "NATS disabled (--no-nats)"
    return nats_problem(nats_url)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class WorkerProcesses:
    """``interlink worker`` processes started by this script, with their metrics ports and logs."""

    processes: list[subprocess.Popen[bytes]]
    ports: list[int]
    logs: list[Path]

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def alive(self) -> bool:
        return any(process.poll() is None for process in self.processes)

    def log_tail(self) -> str:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-1][:200]
                          for path in self.logs if path.exists() and path.read_text(errors="replace").strip())

    def counters(self, pipeline: str) -> dict[str, int]:
        """``written`` and ``dead_lettered`` of ``pipeline`` summed over the workers' ``/metrics``."""
        totals = {"written": 0, "dead_lettered": 0}
        for port in self.ports:
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            except httpx.HTTPError:
                continue
            for match in _WRITTEN.finditer(text):
                if match.group(1) == pipeline:
                    totals[match.group(2)] += int(match.group(3))
        return totals


@contextlib.contextmanager
def worker_processes(count: int, *, pipeline: str, project_dir: Path, data_dir: Path, store_url: str, nats_url: str,
                     log_dir: Path) -> Iterator[WorkerProcesses]:
    """Start ``count`` ``interlink worker`` processes for ``pipeline``; SIGTERM them (then kill) afterwards."""
    workers = WorkerProcesses([], [], [])
    env = {**os.environ, **SERVER_ENV, "INTERLINK_ADMIN_PASSWORD": ADMIN_PASSWORD}
    env.pop("INTERLINK_PROJECT_DIR", None)
    try:
        for index in range(count):
            port, log_path = _free_port(), log_dir / f"worker-{pipeline}-{index}.log"
            with log_path.open("wb") as log:
                workers.processes.append(subprocess.Popen(
                    [sys.executable, "-m", "interlink.cli.main", "worker", "--bus", nats_url, "--pipelines", pipeline,
                     "--project-dir", str(project_dir), "--data-dir", str(data_dir), "--middleware-store", store_url,
                     "--metrics-port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env))
            workers.ports.append(port)
            workers.logs.append(log_path)
        yield workers
    finally:
        for process in workers.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in workers.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def _consumer_waiting(url: str, stream: str, durable: str) -> int:
    """Pull requests waiting on the durable consumer (-1 while it does not exist)."""
    import nats

    nc = await nats.connect(url, connect_timeout=2, allow_reconnect=False)
    try:
        info = await nc.jetstream().consumer_info(stream, durable)
        return int(info.num_waiting or 0)
    except Exception:
        return -1
    finally:
        await nc.close()


def wait_for_workers(workers: WorkerProcesses, nats_url: str, stream: str, durable: str,
                     timeout: float = 120.0) -> None:
    """Return once JetStream shows a pull request of every worker waiting on the consumer (they are ready)."""
    deadline = time.monotonic() + timeout
    while True:
        dead = [process for process in workers.processes if process.poll() is not None]
        if dead:
            raise RuntimeError(f"an interlink worker exited {dead[0].returncode}: {workers.log_tail()}")
        if asyncio.run(_consumer_waiting(nats_url, stream, durable)) >= len(workers.processes):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the workers were not waiting on {stream} after {timeout:.0f}s: {workers.log_tail()}")
        time.sleep(0.2)


async def _delete_stream(url: str, stream: str) -> None:
    import nats

    nc = await nats.connect(url, connect_timeout=2, allow_reconnect=False)
    try:
        with contextlib.suppress(Exception):
            await nc.jetstream().delete_stream(stream)
    finally:
        await nc.close()


def measure_distributed(server: LiveServer, token: str, client: httpx.Client, workdir: Path, config: dict[str, Any],
                        *, workers: int, nats_url: str, expected: int, streaming: bool, before: int = 0,
                        timeout: float = 3600.0) -> Row:
    """Run ``config`` as a feeder in this process and ``workers`` ``interlink worker`` processes until ``expected``
    records are upserted: counted through REST (``streaming``; ``before`` Accounts existed) or the workers'
    metrics (batch, then checked through REST)."""
    from interlink.middleware.distributed import BusSettings, WorkQueue, build_runners

    name = config["name"]
    row = Row(f"{workers} worker{'s' if workers > 1 else ''}", workers=workers)
    project = workdir / f"project-{name}"
    (project / "pipelines").mkdir(parents=True)
    (project / "pipelines" / f"{name}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    store_path = workdir / f"middleware-{name}.db"
    store_url = f"sqlite:///{store_path}"
    queue = WorkQueue.of(name)
    connection = org_connection(server, token)
    try:
        with MiddlewareStore.open_url(store_url) as store, \
                worker_processes(workers, pipeline=name, project_dir=project, data_dir=server.data_dir,
                                 store_url=store_url, nats_url=nats_url, log_dir=workdir) as processes:
            wait_for_workers(processes, nats_url, queue.stream, queue.durable)
            feeder = build_runners([pipeline_of(config)], store, BusSettings(nats_url), feeders=True, workers=False,
                                   once=not streaming, connections={"default": connection}, project_dir=project,
                                   idle_timeout=0)[0]
            outcome: dict[str, Any] = {}

            def work() -> None:
                try:
                    outcome["report"] = feeder.run(not streaming, idle_timeout=0)
                except BaseException as exc:  # reported below
                    outcome["error"] = exc

            def first_read(elapsed: float) -> None:
                if row.open_s is None and feeder.metrics()["read"] > 0:
                    row.open_s = elapsed

            if streaming:
                def done() -> int:
                    return count_accounts(client) - before
            else:
                def done() -> int:
                    return processes.counters(name)["written"]
            cpu = CpuSpan(server, processes.pids)
            started = time.perf_counter()
            thread = threading.Thread(target=work, name=f"bench-feeder-{name}", daemon=True)
            thread.start()
            count, elapsed = wait_until(done, expected, started=started, timeout=timeout,
                                        every=COUNT_EVERY if streaming else METRICS_EVERY, running=processes.alive,
                                        tick=first_read if streaming else None)
            cpu.fill(row, elapsed)
            counters = processes.counters(name)
            workers_alive = processes.alive()
            feeder.stop()
            thread.join(timeout=60)
    finally:
        connection.close()
        asyncio.run(_delete_stream(nats_url, queue.stream))
    row.finish(count, elapsed)
    fed = feeder.metrics()
    row.notes.append(f"feeder read {fed['read']:,}, published {fed['written']:,}; workers wrote "
                     f"{counters['written']:,}, dead-lettered {counters['dead_lettered']:,}")
    if counters["dead_lettered"]:
        row.warnings.append(f"{counters['dead_lettered']:,} messages were dead-lettered")
    if count < expected:
        row.warnings.append(f"only {count:,} of {expected:,} were upserted "
                            f"({'the workers exited' if not workers_alive else f'timeout {timeout:.0f}s'})")
    report = outcome.get("report")
    if "error" in outcome:
        row.warnings.append(f"the feeder raised {outcome['error']!r}")
    elif report is not None and report.error:
        row.warnings.append(f"the feeder ended {report.status}: {report.error}")
    if not streaming:
        _batch_checks(row, client, expected)
    return row


# -- the run -----------------------------------------------------------------------------------------------------------


def run_stream(workdir: Path, events: int, nats_url: str | None, workers: tuple[int, ...], distributed: bool,
               say: Callable[[str], None]) -> dict[str, Row]:
    rows: dict[str, Row] = {}
    timeout = max(120.0, events / 20)
    with bench_server(workdir / "org-stream") as (server, token, client):
        say(f"streaming: publishing {events:,} {EVENT} events (Collections create, 200 per call) ...")
        publish_s = publish_events(client, events)
        say(f"  {events / publish_s:,.0f} events/s; running org.pubsub -> map -> dedupe -> org.upsert ...")
        row = measure_stream_pipeline(server, token, client, workdir / "middleware-stream.db", events,
                                      timeout=timeout)
        row.publish_per_s = events / publish_s
        rows["pipeline"] = row
        say(f"  {row.per_second:,.0f} messages/s ({row.seconds:.2f}s)")
        say(f"raw REST: {events:,} upserts, {COLLECTION} per Collections call ...")
        rows["raw REST"] = raw_rest_upserts(server, client, events)
        say(f"  {rows['raw REST'].per_second:,.0f} records/s ({rows['raw REST'].seconds:.2f}s)")
        before = count_accounts(client)
        if before != 2 * events:
            rows["raw REST"].warnings.append(f"after both there are {before:,} Accounts, not {2 * events:,}")
        for count in workers if distributed else ():
            tag = f"W{count}"
            name = f"bench-stream-w{count}-{uuid.uuid4().hex[:6]}"
            say(f"distributed streaming: feeder + {count} interlink worker process(es), {events:,} events ...")
            try:
                found = measure_distributed(server, token, client, workdir, stream_pipeline_config(name, tag),
                                            workers=count, nats_url=str(nats_url), expected=events, streaming=True,
                                            before=before, timeout=timeout)
            except RuntimeError as exc:
                found = Row(f"{count} worker{'s' if count > 1 else ''}", workers=count, skipped=str(exc)[:300])
            rows[found.target] = found
            say(f"  {found.per_second:,.0f} messages/s ({found.seconds:.2f}s)" if not found.skipped
                else f"  skipped: {found.skipped}")
            before = count_accounts(client)
    if nats_url:
        say(f"raw NATS: {events:,} messages through a JetStream stream at {nats_url} ...")
        rows["raw NATS"] = raw_nats(nats_url, events)
    else:
        rows["raw NATS"] = Row("raw NATS", skipped="NATS disabled (--no-nats)")
    return rows


def run_batch(workdir: Path, rows: int, batch: int, nats_url: str | None, workers: tuple[int, ...],
              distributed: bool, say: Callable[[str], None]) -> dict[str, Row]:
    db_path = workdir / "prospects.db"
    say(f"batch: writing {rows:,} prospects to {db_path.name} ...")
    write_prospects(db_path, rows)
    results: dict[str, Row] = {}
    jobs = -(-rows // batch)
    with bench_server(workdir / "org-batch-pipeline") as (server, token, client):
        say(f"batch pipeline: sql -> map -> org.upsert, {jobs} Bulk job(s) of <= {batch:,} rows ...")
        results["pipeline"] = measure_batch_pipeline(server, token, client, db_path, workdir / "middleware-batch.db",
                                                     rows, batch)
        say(f"  {results['pipeline'].per_second:,.0f} rows/s ({results['pipeline'].seconds:.1f}s)")
    with bench_server(workdir / "org-batch-script") as (server, _token, client):
        say(f"batch script: sqlite3 + csv + httpx, {jobs} Bulk job(s) of <= {batch:,} rows ...")
        results["script"] = measure_batch_script(server, client, db_path, rows, batch)
        say(f"  {results['script'].per_second:,.0f} rows/s ({results['script'].seconds:.1f}s)")
    for count in workers if distributed else ():
        name = f"bench-batch-w{count}-{uuid.uuid4().hex[:6]}"
        with bench_server(workdir / f"org-batch-w{count}") as (server, token, client):
            say(f"distributed batch: feeder + {count} interlink worker process(es), {rows:,} rows ...")
            try:
                found = measure_distributed(server, token, client, workdir, batch_pipeline_config(name, db_path, batch),
                                            workers=count, nats_url=str(nats_url), expected=rows, streaming=False)
            except RuntimeError as exc:
                found = Row(f"{count} worker{'s' if count > 1 else ''}", workers=count, skipped=str(exc)[:300])
        results[found.target] = found
        say(f"  {found.per_second:,.0f} rows/s ({found.seconds:.1f}s)" if not found.skipped
            else f"  skipped: {found.skipped}")
    return results


def run_benchmark(*, events: int = FULL_EVENTS, rows: int = FULL_ROWS, batch: int = BATCH,
                  workers: tuple[int, ...] = WORKERS, nats_url: str | None = DEFAULT_NATS, stream: bool = True,
                  bulk: bool = True, log: TextIO | None = None) -> PipelineReport:
    """Measure the streaming and batch pipelines (embedded and distributed) and their baselines in one run."""
    if events < 1 or rows < 1 or batch < 1 or any(count < 1 for count in workers):
        raise ValueError("--events, --rows, --batch and --workers must be positive")

    def say(message: str) -> None:
        if log is not None:
            print(message, file=log, flush=True)

    run_started = time.perf_counter()
    load = os.getloadavg()[0]
    problem = distributed_problem(nats_url) if workers else "no worker counts asked for (--workers '')"
    with tempfile.TemporaryDirectory(prefix="interlink-bench-pipeline-") as tmp:
        workdir = Path(tmp)
        stream_rows = run_stream(workdir, events, nats_url, workers, problem is None, say) if stream else {}
        batch_rows = run_batch(workdir, rows, batch, nats_url, workers, problem is None, say) if bulk else {}
    notes = [f"{part} {row.target}: {warning}" for part, found in (("streaming", stream_rows), ("batch", batch_rows))
             for row in found.values() for warning in row.warnings]
    return PipelineReport(events=events, rows=rows, batch=batch, cpu_count=os.cpu_count() or 1, load_average=load,
                          stream=stream_rows, batch_rows=batch_rows, distributed=problem,
                          wall_s=time.perf_counter() - run_started, notes=notes)


# -- the report --------------------------------------------------------------------------------------------------------


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _ratio_line(label: str, value: float | None, why: str) -> str:
    return f"{label}: {'-' if value is None else f'{value:.3f}'}" + ("" if value is not None else f" ({why})")


def _worker_ratios(report: PipelineReport, rows: dict[str, Row], unit: str) -> list[str]:
    lines = []
    embedded = rows.get("pipeline")
    for key, row in rows.items():
        if row.workers is None or row.skipped:
            continue
        lines.append(_ratio_line(f"ratio {key} / embedded pipeline ({unit})", report.ratio(row, embedded),
                                 "a row is missing"))
    one, two = rows.get("1 worker"), rows.get("2 workers")
    if one is not None and two is not None and not one.skipped and not two.skipped:
        lines.append(_ratio_line(f"ratio 2 workers / 1 worker ({unit})", report.ratio(two, one), "a row is missing"))
    return lines


def format_report(report: PipelineReport) -> str:
    """The human-readable tables."""
    lines = [f"Middleware pipelines (SQLite middleware store) against interlink up over TLS (embedded SQLite); "
             f"{report.cpu_count} CPUs, load {report.load_average:.2f} at the start", ""]
    if report.stream:
        lines += [
            f"1. Streaming: {report.events:,} {EVENT} events -> Account upserts by {KEY}",
            f"{'target':<52} {'messages/s':>11} {'seconds':>8} {'publish/s':>10} {'open s':>7} "
            f"{'client CPU s':>13} {'server CPU s':>13} {'busy':>6}",
        ]
        labels = {"pipeline": "embedded: org.pubsub -> map -> dedupe -> org.upsert",
                  "raw REST": "raw REST (Collections upsert, 200/call)",
                  "raw NATS": "raw NATS JetStream (drain: fetch + ack)",
                  "1 worker": "distributed: feeder + 1 worker process",
                  "2 workers": "distributed: feeder + 2 worker processes"}
        for key, row in report.stream.items():
            label = labels.get(key, key)
            if row.skipped:
                lines.append(f"{label:<52} skipped: {row.skipped}")
                continue
            lines.append(f"{label:<52} {row.per_second:>11,.0f} {row.seconds:>8.2f} "
                         f"{_num(row.publish_per_s, ',.0f'):>10} {_num(row.open_s, '.2f'):>7} "
                         f"{_num(row.client_cpu_s, '.1f'):>13} {_num(row.server_cpu_s, '.1f'):>13} "
                         f"{_num(row.server_busy, '.0%'):>6}")
        lines += [
            _ratio_line("ratio pipeline / raw REST (messages/s)", report.stream_vs_rest, "a row is missing"),
            _ratio_line("ratio pipeline / raw NATS (messages/s)", report.stream_vs_nats, "raw NATS skipped"),
            *_worker_ratios(report, report.stream, "messages/s"),
            "pipeline rows: start until REST COUNT() shows all N upserted (the events were published beforehand; "
            "publish/s is that REST publish). raw REST: the same upserts sent directly. raw NATS: drain of a "
            "pre-filled stream; publish/s is its acked publish.",
        ]
        lines += [f"  {key}: {note}" for key, row in report.stream.items() for note in row.notes]
        lines.append("")
    if report.batch_rows:
        lines += [
            f"2. Batch: {report.rows:,} SQLite prospects -> Account upserts by {KEY} through Bulk API 2.0, "
            f"batch {report.batch:,} (fresh org per target)",
            f"{'target':<52} {'rows/s':>11} {'seconds':>8} {'jobs':>6} {'client CPU s':>13} {'server CPU s':>13} "
            f"{'busy':>6}",
        ]
        labels = {"pipeline": "embedded: sql -> map -> org.upsert (Bulk API 2.0)",
                  "script": "script: sqlite3 + csv + httpx Bulk API 2.0",
                  "1 worker": "distributed: feeder + 1 worker process",
                  "2 workers": "distributed: feeder + 2 worker processes"}
        for key, row in report.batch_rows.items():
            label = labels.get(key, key)
            if row.skipped:
                lines.append(f"{label:<52} skipped: {row.skipped}")
                continue
            lines.append(f"{label:<52} {row.per_second:>11,.0f} {row.seconds:>8.1f} "
                         f"{_num(row.jobs, 'd'):>6} {_num(row.client_cpu_s, '.1f'):>13} "
                         f"{_num(row.server_cpu_s, '.1f'):>13} {_num(row.server_busy, '.0%'):>6}")
        lines += [_ratio_line("ratio pipeline / script (rows/s)", report.batch_vs_script, "a row is missing"),
                  *_worker_ratios(report, report.batch_rows, "rows/s")]
        lines += [f"  {key}: {note}" for key, row in report.batch_rows.items() for note in row.notes]
        lines.append("")
    if report.distributed:
        lines.append(f"*** DISTRIBUTED ROWS NOT MEASURED: {report.distributed} ***")
    lines += [f"warning: {note}" for note in report.notes]
    lines.append(f"whole run: {report.wall_s:.0f}s")
    return "\n".join(lines)


def _worker_counts(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--workers is a comma-separated list of counts, not {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Middleware pipelines (streaming org.pubsub -> org.upsert, batch sql "
                                                 "-> Bulk API 2.0; embedded and distributed) against raw REST, raw "
                                                 "NATS and a plain script.")
    parser.add_argument("--events", type=int, default=None, help=f"streaming events (default {FULL_EVENTS:,})")
    parser.add_argument("--rows", type=int, default=None, help=f"batch rows (default {FULL_ROWS:,}: minutes)")
    parser.add_argument("--batch", type=int, default=BATCH, help=f"pipeline batch and rows per Bulk job ({BATCH:,})")
    parser.add_argument("--workers", type=_worker_counts, default=WORKERS,
                        help="worker process counts for the distributed rows (default 1,2; '' for none)")
    parser.add_argument("--nats", default=DEFAULT_NATS, help=f"NATS server ({DEFAULT_NATS})")
    parser.add_argument("--no-nats", action="store_true", help="skip the raw NATS row and the distributed rows")
    parser.add_argument("--no-stream", dest="stream", action="store_false", help="skip part 1 (streaming)")
    parser.add_argument("--no-batch", dest="bulk", action="store_false", help="skip part 2 (batch)")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_EVENTS:,} events and {QUICK_ROWS:,} rows (unless given)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    events = args.events if args.events is not None else QUICK_EVENTS if args.quick else FULL_EVENTS
    rows = args.rows if args.rows is not None else QUICK_ROWS if args.quick else FULL_ROWS
    report = run_benchmark(events=events, rows=rows, batch=args.batch, workers=args.workers,
                           nats_url=None if args.no_nats else args.nats, stream=args.stream, bulk=args.bulk,
                           log=None if args.json else sys.stderr)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
