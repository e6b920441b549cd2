"""Pipelines distributed over NATS JetStream work queues: feeders, `interlink worker` processes, kill -9, poison
messages and the metrics endpoint.

Needs nats-server with JetStream at 127.0.0.1:4222 and (for the process tests) PostgreSQL at 127.0.0.1:5432; each
missing one skips its tests with the reason. Every test uses its own pipeline names, hence its own streams, and
deletes them afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import nats
import pytest
import sqlalchemy as sa

from interlink.middleware.base import Delivery, Message, PermanentError, Processor, Sink, Source
from interlink.middleware.distributed import (
    DELIVERED_HEADER,
    MAX_ACK_PENDING,
    BusSettings,
    FeederRunner,
    WorkerRunner,
    WorkQueue,
    WorkQueueSource,
    is_nats_bus,
)
from interlink.middleware.metrics_server import CONTENT_TYPE, MetricsServer, pipeline_metrics_text
from interlink.middleware.runtime import PipelineRunner
from interlink.middleware.sinks.nats import NatsSink
from interlink.middleware.sources import sqlalchemy_url
from interlink.middleware.sources.nats import NatsSource, connect_options
from interlink.middleware.spec import Pipeline, load_pipeline_text
from interlink.middleware.store import MiddlewareStore
from interlink.testing import postgres_database, run_cli

NATS_URL = "nats://127.0.0.1:4222"


def _reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


needs_nats = pytest.mark.skipif(not _reachable(4222),
                                reason=f"needs nats-server with JetStream (nats-server -js) at {NATS_URL}")


# -- fixtures and helpers ----------------------------------------------------------------------------------------

@pytest.fixture
def pipeline_names() -> Iterator[Callable[[str], str]]:
    """Unique pipeline names; their work-queue streams are deleted afterwards."""
    made: list[str] = []

    def make(prefix: str) -> str:
        made.append(f"{prefix}-{uuid.uuid4().hex[:8]}")
        return made[-1]

    yield make

    async def delete() -> None:
        nc = await nats.connect(NATS_URL)
        try:
            for name in made:
                with contextlib.suppress(Exception):
                    await nc.jetstream().delete_stream(WorkQueue.of(name).stream)
        finally:
            await nc.close()

    if made and _reachable(4222):
        asyncio.run(delete())


@pytest.fixture(autouse=True)
def checkpoint_bucket(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A KV bucket of this test's own for the feeders' checkpoints (`interlink` subprocesses get it through the
    environment); deleted afterwards."""
    bucket = f"ILTEST_CP_{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("INTERLINK_PIPELINES_CHECKPOINT_BUCKET", bucket)
    yield bucket

    async def delete() -> None:
        nc = await nats.connect(NATS_URL)
        try:
            with contextlib.suppress(Exception):  # not created by every test
                await nc.jetstream().delete_key_value(bucket)
        finally:
            await nc.close()

    if _reachable(4222):
        asyncio.run(delete())


@pytest.fixture
def pg_url() -> Iterator[str]:
    try:
        with postgres_database() as url:
            yield url
    except RuntimeError as exc:
        pytest.skip(f"needs PostgreSQL: {exc}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


WORK_MODULE = '''
import json
import os
import time

from interlink.middleware.base import PermanentError


def record(message, log, sleep=0.0):
    """Log each delivery (pid, message id, delivery count), then take a while."""
    with open(log, "a") as handle:
        handle.write(json.dumps({"pid": os.getpid(), "id": message.id,
                                 "delivered": message.headers.get("interlink.delivered")}) + "\\n")
    if message.body.get("poison"):
        raise PermanentError("poison message")
    time.sleep(sleep)
    return message.body
'''


def make_project(root: Path, name: str, pg: str, table: str, *, count: int, sleep: float = 0.0, batch: int = 5,
                 poison: Sequence[int] = ()) -> Path:
    """A project with one pipeline: a JSONL file -> log + sleep -> map (id, headers) -> SQL upsert by id."""
    project = root / name
    (project / "pipelines").mkdir(parents=True)
    (project / "inbox").mkdir()
    lines = [json.dumps({"n": n, **({"poison": True} if n in poison else {})}) for n in range(count)]
    (project / "inbox" / "items.jsonl").write_text("\n".join(lines) + "\n")
    (project / "pipelines" / "work.py").write_text(WORK_MODULE)
    (project / "pipelines" / f"{name}.yaml").write_text(textwrap.dedent(f"""\
        name: {name}
        source: {{type: files, folder: inbox, pattern: "*.jsonl"}}
        steps:
          - type: transform
            function: "work:record"
            options: {{log: "{project / 'deliveries.log'}", sleep: {sleep}}}
          - {{type: map, fields: {{id: "$id", n: "n", doubled: "n * 2", file: "$headers.file",
                                   line: "$headers.line"}}}}
        sink:
          type: sql
          url: "{pg}"
          table: {table}
          keys: [id]
          columns: {{id: string, n: integer, doubled: integer, file: string, line: integer}}
        retry: {{attempts: 2, backoff: 0s}}
        batch: {batch}
        poll: 200ms
        """))
    return project


def deliveries(project: Path) -> list[dict[str, Any]]:
    log = project / "deliveries.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def table_rows(pg: str, table: str) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(sqlalchemy_url(pg))
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(table):
                return []
            return [tuple(row) for row in conn.execute(sa.text(
                f"SELECT id, n, doubled, file, line FROM {table} ORDER BY n"))]
    finally:
        engine.dispose()


def cli_args(project: Path, pg: str) -> list[str]:
    return ["--project-dir", str(project), "--data-dir", str(project / ".data"), "--middleware-store", pg]


def start_worker(project: Path, pg: str, name: str, *, ack_wait: float = 5.0, max_deliver: int = 5,
                 metrics_port: int = 0) -> subprocess.Popen[bytes]:
    """``interlink worker`` as a process of its own, logging to ``<project>/worker-<pid>.log``."""
    log = (project / f"worker-{uuid.uuid4().hex[:6]}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "interlink.cli.main", "worker", "--bus", NATS_URL, "--pipelines", name,
         *cli_args(project, pg), "--ack-wait", str(ack_wait), "--max-deliver", str(max_deliver),
         "--metrics-port", str(metrics_port)],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "INTERLINK_LOG_LEVEL": "info"})
    process.log_path = Path(log.name)  # type: ignore[attr-defined]
    log.close()
    return process


def stop(process: subprocess.Popen[bytes], timeout: float = 15.0) -> int:
    """SIGTERM, then wait; answers the exit code (SIGKILL after ``timeout``)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return int(process.returncode)


def worker_log(process: subprocess.Popen[bytes]) -> str:
    return process.log_path.read_text(errors="replace")  # type: ignore[attr-defined]


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def get_metrics(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
            return str(answer.read().decode())
    except (OSError, urllib.error.URLError):
        return None


def wait_until_working(workers: Sequence[subprocess.Popen[bytes]], ports: Sequence[int]) -> None:
    """Until every worker serves metrics (it built its pipeline and is binding the consumer)."""
    for worker, port in zip(workers, ports, strict=True):
        wait_for(lambda w=worker, p=port: w.poll() is not None or get_metrics(p), 20, "a worker to start")
        assert worker.poll() is None, worker_log(worker)
    time.sleep(0.5)  # the consumer binds right after the endpoint starts


def metric(text: str, name: str, **labels: str) -> float | None:
    wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{wanted}}} "):
            return float(line.rsplit(" ", 1)[1])
    return None


# -- the hop keeps the message ------------------------------------------------------------------------------------

def test_work_queue_names_are_valid_jetstream_names_and_do_not_collide() -> None:
    dotted, underscored = WorkQueue.of("erp.orders"), WorkQueue.of("erp_orders")
    assert dotted.stream != underscored.stream and "." not in dotted.stream + dotted.durable
    assert dotted.subject == "interlink.pipeline.erp.orders"
    assert WorkQueue.of("orders").stream == "IL_PIPE_orders"
    assert is_nats_bus("nats://a:4222,nats://b:4222") and not is_nats_bus("sqlite:///bus.db")
    assert not is_nats_bus("")


@needs_nats
def test_id_key_and_headers_survive_the_hop_through_nats(pipeline_names: Callable[[str], str]) -> None:
    name = pipeline_names("hop")
    queue, bus = WorkQueue.of(name), BusSettings(NATS_URL, ack_wait=5)
    publisher = NatsSink(options=bus.options, subject=queue.subject, stream=queue.stream, create_stream=True,
                         stream_config=queue.stream_config(bus), forward_headers=True)
    sent = Message(body={"Amount": 5}, id="evt-1", key="acct-9",
                   headers={"topic": "/event/Order__e", "replayId": b"\x00\x01\xff", "timestamp": 1700000000000})
    try:
        [delivery] = publisher.write([sent])
        assert delivery.ok, delivery.error
    finally:
        publisher.close()
    source = WorkQueueSource(queue, bus)
    source.open(None)
    try:
        [got] = wait_for(lambda: source.read(10, 0.5), 5, "the message")
        assert (got.body, got.id, got.key) == (sent.body, "evt-1", "acct-9")
        assert got.headers["replayId"] == b"\x00\x01\xff" and got.headers["topic"] == "/event/Order__e"
        assert got.headers["timestamp"] == 1700000000000 and got.headers[DELIVERED_HEADER] == 1
        source.acknowledge(got.position)
    finally:
        source.close()
    # A plain NATS source (no forwarded headers) still reads what an older sink published, with its key.
    plain = NatsSink(options=connect_options({"url": NATS_URL}), subject=queue.subject)
    try:
        assert plain.write([Message(body={"x": 1}, id="old-1", key="k")])[0].ok
    finally:
        plain.close()
    reader = NatsSource(options=bus.options, stream=queue.stream, subject=queue.subject, durable=queue.durable)
    reader.open(None)
    try:
        [old] = wait_for(lambda: reader.read(10, 0.5), 5, "the plain message")
        assert (old.body, old.id, old.key) == ({"x": 1}, "old-1", "k") and "topic" not in old.headers
        reader.acknowledge(old.position)
    finally:
        reader.close()


# -- embedded and distributed give the same result ---------------------------------------------------------------

@needs_nats
def test_a_pipeline_gives_the_same_table_embedded_and_on_two_worker_processes(
        tmp_path: Path, pg_url: str, pipeline_names: Callable[[str], str]) -> None:
    count = 20
    embedded = pipeline_names("same-emb")
    project = make_project(tmp_path, embedded, pg_url, "rows_embedded", count=count)
    run_cli("pipelines", "run", "--once", "--idle-timeout", "1", embedded, *cli_args(project, pg_url))
    expected = table_rows(pg_url, "rows_embedded")
    assert len(expected) == count and expected[3] == ("items.jsonl:4", 3, 6, "items.jsonl", 4)

    name = pipeline_names("same-dist")
    project = make_project(tmp_path, name, pg_url, "rows_distributed", count=count, sleep=0.1, batch=3)
    ports = [free_port(), free_port()]
    workers = [start_worker(project, pg_url, name, metrics_port=port) for port in ports]
    try:
        wait_until_working(workers, ports)
        fed = run_cli("pipelines", "run", "--bus", NATS_URL, "--no-local-worker", "--once", "--idle-timeout", "1",
                      name, *cli_args(project, pg_url))
        assert f"{name} (feeder): Succeeded: read {count}, written {count}" in fed.stdout
        wait_for(lambda: len(table_rows(pg_url, "rows_distributed")) == count, 30, "every row")
        texts = [get_metrics(port) or "" for port in ports]
        written = [metric(text, "interlink_pipeline_messages_total", pipeline=name, outcome="written") or 0
                   for text in texts]
        assert sum(written) == count
    finally:
        codes = [stop(worker) for worker in workers]
    assert codes == [0, 0], "\n".join(worker_log(worker) for worker in workers)
    assert table_rows(pg_url, "rows_distributed") == expected
    assert {entry["pid"] for entry in deliveries(project)} == {worker.pid for worker in workers}, \
        "both workers took part"
    for worker in workers:
        assert "Traceback" not in worker_log(worker)
        assert f"{name} (worker): Stopped" in worker_log(worker)


# -- a worker killed mid-batch loses nothing ----------------------------------------------------------------------

@needs_nats
def test_a_worker_killed_mid_batch_loses_nothing_and_another_worker_processes_its_messages(
        tmp_path: Path, pg_url: str, pipeline_names: Callable[[str], str]) -> None:
    count = 24
    name = pipeline_names("kill")
    project = make_project(tmp_path, name, pg_url, "rows_killed", count=count, sleep=0.25, batch=4)
    ports = [free_port(), free_port()]
    victim, survivor = (start_worker(project, pg_url, name, ack_wait=2, metrics_port=port) for port in ports)
    try:
        wait_until_working([victim, survivor], ports)
        run_cli("pipelines", "run", "--bus", NATS_URL, "--no-local-worker", "--once", "--idle-timeout", "1", name,
                *cli_args(project, pg_url))

        def in_flight() -> set[str]:
            """Messages the victim's steps took and its sink has not written: unacknowledged."""
            written = {row[0] for row in table_rows(pg_url, "rows_killed")}
            return {entry["id"] for entry in deliveries(project) if entry["pid"] == victim.pid} - written

        wait_for(lambda: len(in_flight()) >= 2, 20, "the victim to be mid-batch", interval=0.02)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        held = in_flight()
        wait_for(lambda: len(table_rows(pg_url, "rows_killed")) == count, 30, "every row")
    finally:
        if victim.poll() is None:
            victim.kill()
        code = stop(survivor)
    assert code == 0, worker_log(survivor)
    rows = table_rows(pg_url, "rows_killed")
    assert [row[1] for row in rows] == list(range(count)), "every message delivered, each key once"
    log = deliveries(project)
    redelivered = [entry for entry in log if entry["delivered"] >= 2]
    assert held and {entry["id"] for entry in redelivered} >= held, "what the victim held came back"
    assert all(entry["pid"] == survivor.pid for entry in redelivered), "to the other worker"
    print(f"\n{len(log)} deliveries for {count} messages: the killed worker held {len(held)} in its steps, "
          f"{len(redelivered)} were redelivered to the survivor")


# -- poison messages ---------------------------------------------------------------------------------------------

@needs_nats
def test_a_poison_message_is_dead_lettered_by_the_runtime_and_the_rest_flows(
        tmp_path: Path, pg_url: str, pipeline_names: Callable[[str], str]) -> None:
    name = pipeline_names("poison")
    project = make_project(tmp_path, name, pg_url, "rows_poison", count=8, poison=[3])
    # Feeder and its local worker in one process; --once stops when the queue is drained.
    result = run_cli("pipelines", "run", "--bus", NATS_URL, "--once", "--idle-timeout", "1", name,
                     *cli_args(project, pg_url), check=False, timeout=40)
    assert result.returncode == 1, result.stderr  # --once exits 1 when a message was dead-lettered
    assert f"{name} (worker): Succeeded: read 8, written 7" in result.stdout
    assert [row[1] for row in table_rows(pg_url, "rows_poison")] == [0, 1, 2, 4, 5, 6, 7]
    with MiddlewareStore.open_url(pg_url) as store:
        [letter] = store.dead_letters(name)
        assert letter.step == "transform[0]" and "poison message" in letter.error
        assert letter.message.id == "items.jsonl:4" and letter.message.headers["file"] == "items.jsonl"


class ListSource(Source):
    """Messages from a list, then exhausted."""

    def __init__(self, messages: list[Message]) -> None:
        self.messages = messages

    def read(self, max_messages: int, timeout: float) -> list[Message]:
        batch, self.messages = self.messages[:max_messages], self.messages[max_messages:]
        self.exhausted = not self.messages
        return batch


class Collect(Sink):
    def __init__(self) -> None:
        self.written: list[Message] = []

    def write(self, messages: Sequence[Message]) -> list[Delivery]:
        self.written += messages
        return [Delivery() for _ in messages]


class UpperStep(Processor):
    """A step object (Python pipelines may use objects): refuses bodies with ``fail``."""

    name = "upper"

    def process(self, message: Message) -> list[tuple[str | None, Message]]:
        if message.body.get("fail"):
            raise PermanentError("refused")
        return [(None, message.copy({"n": message.body["n"], "up": True}))]


def _pipeline(name: str, source: Source, sink: Sink) -> Pipeline:
    return Pipeline(name=name, source=source, steps=[UpperStep()], sink=sink, retry={"attempts": 1}, batch=10,
                    poll=0.2)


@needs_nats
def test_a_message_no_worker_acknowledges_is_dead_lettered_after_max_deliver(
        tmp_path: Path, pipeline_names: Callable[[str], str], checkpoint_bucket: str) -> None:
    name = pipeline_names("maxdeliver")
    bus = BusSettings(NATS_URL, ack_wait=1, max_deliver=1, checkpoint_bucket=checkpoint_bucket)
    messages = [Message(body={"n": n}, id=f"m{n}") for n in range(4)]
    with MiddlewareStore.open_url(f"sqlite:///{tmp_path / 'mw.db'}") as store:
        feeder = FeederRunner(_pipeline(name, ListSource(list(messages)), Collect()), store, bus)
        assert feeder.run(once=True, idle_timeout=1).written == 4
        # A worker takes m0 and dies with it: the message is handed back (delivery 1 used up).
        crashed = WorkQueueSource(WorkQueue.of(name), bus)
        crashed.open(None)
        try:
            first = wait_for(lambda: crashed.read(1, 0.5), 5, "a first delivery")
            assert [m.id for m in first] == ["m0"]
        finally:
            crashed.close()
        sink = Collect()
        worker = WorkerRunner(_pipeline(name, ListSource([]), sink), store, bus, idle_timeout=2)
        report = worker.run(once=True)
        assert sorted(m.id for m in sink.written) == ["m1", "m2", "m3"]
        assert report.dead_lettered == 1 and worker.metrics()["steps"]["upper[0]"]["dead_lettered"] == 1
        [letter] = store.dead_letters(name)
        assert letter.message.id == "m0" and letter.step == "upper[0]" and letter.step_index == 0
        assert "delivered 2 times without being acknowledged" in letter.error
        # `interlink dlq replay` runs it through the whole pipeline, embedded.
        replay_sink = Collect()
        replayed = PipelineRunner(_pipeline(name, ListSource([]), replay_sink), store).replay([letter.id])
        assert replayed.replayed == [letter.id] and replay_sink.written[0].body == {"n": 0, "up": True}


# -- work-queue settings: max ack pending, per-pipeline overrides --------------------------------------------------

def test_a_pipeline_s_distributed_settings_override_the_process_flags(tmp_path: Path) -> None:
    tuned = load_pipeline_text(textwrap.dedent("""\
        name: tuned
        source: {type: files, folder: inbox}
        sink: {type: files, folder: outbox}
        batch: 500
        distributed: {ackWait: 2s, maxDeliver: 3, maxAckPending: 100}
        """))
    plain = load_pipeline_text("name: plain\nsource: {type: files, folder: inbox}\nsink: {type: files, folder: out}\n")
    flags = BusSettings(NATS_URL, ack_wait=30, max_deliver=5, max_ack_pending=40_000)
    own = flags.for_pipeline(tuned)
    assert (own.ack_wait, own.max_deliver, own.hold_limit) == (2.0, 3, 20.0)
    assert own.max_ack_pending == 500, "never below the pipeline's batch: one worker's batch always fits"
    assert flags.for_pipeline(plain) == flags
    assert BusSettings(NATS_URL).max_ack_pending == MAX_ACK_PENDING == 20_000
    with MiddlewareStore.open_url(f"sqlite:///{tmp_path / 'mw.db'}") as store:
        worker = WorkerRunner(tuned, store, flags)  # nothing connects before it runs
        source = worker.pipeline.source
        assert isinstance(source, WorkQueueSource)
        assert (worker.ack_wait, worker.max_deliver) == (2.0, 3)
        assert (source.ack_wait, source.max_ack_pending) == (2.0, 500)
        plain_worker = WorkerRunner(plain, store, flags)
        assert plain_worker.pipeline.source.max_ack_pending == 40_000  # type: ignore[union-attr]
        assert plain_worker.max_deliver == 5


def _consumer_config(queue: WorkQueue) -> Any:
    async def get() -> Any:
        nc = await nats.connect(NATS_URL)
        try:
            return (await nc.jetstream().consumer_info(queue.stream, queue.durable)).config
        finally:
            await nc.close()

    return asyncio.run(get())


def _publish(queue: WorkQueue, bus: BusSettings, count: int, prefix: str = "m") -> None:
    publisher = NatsSink(options=bus.options, subject=queue.subject, stream=queue.stream, create_stream=True,
                         stream_config=queue.stream_config(bus), forward_headers=True, max_pending=64)
    try:
        deliveries = publisher.write([Message(body={"n": n}, id=f"{prefix}{n}") for n in range(count)])
    finally:
        publisher.close()
    assert all(d.ok for d in deliveries), next(d.error for d in deliveries if not d.ok)


@needs_nats
def test_a_consumer_made_with_the_old_default_max_ack_pending_is_updated_in_place(
        pipeline_names: Callable[[str], str]) -> None:
    name = pipeline_names("ackpending")
    queue, bus = WorkQueue.of(name), BusSettings(NATS_URL, ack_wait=5, storage="memory")
    _publish(queue, bus, 3)
    # The durable consumer as an earlier Interlink created it: no max ack pending, so JetStream's default.
    old = NatsSource(options=bus.options, stream=queue.stream, subject=queue.subject, durable=queue.durable,
                     ack_wait=5, max_deliver=bus.max_deliver + 2)
    old.open(None)
    old.close()
    assert _consumer_config(queue).max_ack_pending == 1000
    source = WorkQueueSource(queue, bus)
    source.open(None)
    try:
        assert _consumer_config(queue).max_ack_pending == 20_000
        read: dict[int, Message] = {}
        wait_for(lambda: read.update({m.position: m for m in source.read(10, 0.5)}) or len(read) == 3, 10,
                 "the messages queued before the update")
        assert sorted(m.id for m in read.values()) == ["m0", "m1", "m2"]
        source.acknowledge(max(read))
    finally:
        source.close()


@needs_nats
def test_a_worker_may_hold_a_batch_larger_than_jetstream_s_default_ack_pending(
        pipeline_names: Callable[[str], str]) -> None:
    name = pipeline_names("bigbatch")
    queue, bus = WorkQueue.of(name), BusSettings(NATS_URL, ack_wait=30, storage="memory")
    count = 2500
    _publish(queue, bus, count)
    source = WorkQueueSource(queue, bus)
    source.open(None)
    try:
        held: dict[int, Message] = {}

        def take() -> bool:
            held.update({m.position: m for m in source.read(count - len(held), 1.0)})
            return len(held) == count

        wait_for(take, 30, f"{count} messages held unacknowledged at once")
        assert len(source.unacknowledged) == count
        source.acknowledge(max(held))
        assert source.unacknowledged == []
    finally:
        source.close()


# -- metrics -----------------------------------------------------------------------------------------------------

def test_the_metrics_endpoint_answers_prometheus_text(tmp_path: Path) -> None:
    messages = [Message(body={"n": 1}, id="a"), Message(body={"n": 2, "fail": True}, id="b"),
                Message(body={"n": 3}, id="c", headers={"timestamp": time.time() - 2})]
    with MiddlewareStore.open_url(f"sqlite:///{tmp_path / 'mw.db'}") as store:
        runner = PipelineRunner(_pipeline("metered", ListSource(messages), Collect()), store)
        runner.run(once=True, idle_timeout=0.5)
        port = free_port()
        with MetricsServer(lambda: pipeline_metrics_text([runner], store), port):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
                assert answer.headers["Content-Type"] == CONTENT_TYPE
                text = answer.read().decode()
            with pytest.raises(urllib.error.HTTPError) as missing:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=5)
            assert missing.value.code == 404
    assert metric(text, "interlink_pipeline_messages_total", pipeline="metered", outcome="read") == 3
    assert metric(text, "interlink_pipeline_messages_total", pipeline="metered", outcome="written") == 2
    assert metric(text, "interlink_pipeline_step_messages_total", pipeline="metered", step="upper[0]",
                  outcome="dead_lettered") == 1
    assert metric(text, "interlink_pipeline_dead_letters", pipeline="metered") == 1
    assert (metric(text, "interlink_pipeline_lag_seconds", pipeline="metered") or 0) >= 2
    assert "# TYPE interlink_pipeline_dead_letters gauge" in text
    for line in text.splitlines():  # every sample line is `name{labels} number`
        if line and not line.startswith("#"):
            float(line.rsplit(" ", 1)[1])


def test_interlink_worker_needs_a_nats_bus(tmp_path: Path) -> None:
    result = run_cli("worker", "--project-dir", str(tmp_path), "--data-dir", str(tmp_path / "data"), check=False,
                     env={"INTERLINK_BUS": ""})
    assert result.returncode == 2 and "needs a NATS bus" in result.stderr

