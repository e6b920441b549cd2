"""Load test: a mixed workload against a multi-process ``interlink up`` on PostgreSQL + NATS (or the embedded store).

Run ``python bench/load.py`` (``make bench`` runs it through ``bench/report.py``). For each API process count N of
``--workers-list`` (default 1, then 2), in one run:

1. A fresh deployment starts: ``interlink up --sample-data --store postgresql://…/<fresh database> --bus
   nats://127.0.0.1:4222?prefix=<fresh prefix> --workers N`` through :func:`interlink.testing.live_server` (with
   ``--store sqlite``: the embedded SQLite store and event log instead). The database and the NATS streams are
   dropped afterwards, also on Ctrl-C or SIGTERM.
2. One Pub/Sub API subscriber (gRPC ``Subscribe`` to ``/event/Printer_Status__e`` from ``EARLIEST``, pulling 100 at a
   time) starts in this process and decodes every event's Avro payload to read its ``EventUuid``.
3. ``--connections`` C asyncio clients share one httpx ``AsyncClient`` (HTTP/1.1, TLS trusting the server's CA bundle,
   C keep-alive connections). Each loops for ``--warmup`` + ``--duration`` seconds over a weighted mix (a seeded
   random choice per request):

   * **rest read** (50%): ``GET sobjects/Account/{id}``, an id of a sample or a created Account;
   * **rest write** (25%): in turn ``POST`` Account, ``POST`` Contact (under the client's Account), ``PATCH`` that
     Account, ``PATCH`` that Contact;
   * **composite** (10%): ``POST composite`` with ``allOrNone: true``: an Account and two Contacts referring to it
     with ``@{NewAccount.id}``;
   * **event publish** (15%): ``POST sobjects/Printer_Status__e`` (a publish-immediately platform event of the
     sample metadata); the ``EventUuid`` the answer carries is remembered.

   Requests that start during the warm-up are not counted (their events are still checked).
4. After the load, the subscriber has ``--grace`` seconds to receive every published event. Then the run is checked:
   **zero errors** (any unexpected status, bad body or transport error) and **zero lost events**.

The baseline, measured in the same run with the same load generator and C connections, is ``bench/baseline_app.py``
(a bare Starlette app + ``sqlite3``, as in ``bench/rest_get.py``) serving ``GET sobjects/Account/{id}`` over TLS with
the first deployment's certificate. Ratios: each deployment's REST reads/s and all requests/s against the baseline's
reads/s, and N=2 / N=1 on all requests/s.

Per surface the report gives requests, requests/s, p50/p99 latency (ms) and errors; per deployment, events published
and received, and the CPU used by the server processes and by this process (``/proc``, Linux only): on a 2-core
machine the load generator, the API processes, PostgreSQL and nats-server share the same cores, so read the busy
figures before reading N=2 / N=1.

When a count above 1 is asked for, ``interlink up --help`` is checked for ``--workers``: without it N = 1 runs a plain
``interlink up`` and the larger counts are reported as skipped. ``--workers-list 1`` alone always runs a plain
``interlink up`` (one process, as ``--workers 1`` does).

Flags: ``--duration S`` (10), ``--warmup S`` (1), ``--connections C`` (16), ``--workers-list 1,2``,
``--store postgresql|sqlite`` (postgresql), ``--postgres URL``, ``--nats URL``, ``--grace S`` (15), ``--seed N``,
``--no-baseline``, ``--json``. Exit status 1 when a check failed (errors, lost events, a deployment that failed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import io
import json
import os
import random
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx

from interlink.testing import API_VERSION, POSTGRES_ADMIN_URL, LiveServer, live_server, postgres_database, run_cli

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:  # ``python bench/load.py`` has it already; an importer may not
    sys.path.insert(0, str(BENCH_DIR))

import rest_get  # noqa: E402  (bench/rest_get.py: the baseline server, CPU accounting, percentiles)

API = f"/services/data/v{API_VERSION}"
EVENT = "Printer_Status__e"
TOPIC = f"/event/{EVENT}"
SURFACES = ("rest read", "rest write", "composite", "event publish")
WEIGHTS = (50, 25, 10, 15)  # percent of requests per surface, in SURFACES order
DEFAULT_NATS = os.environ.get("INTERLINK_BENCH_NATS", "nats://127.0.0.1:4222")
SERVER_ENV = {"INTERLINK_LOG_LEVEL": "warning", "INTERLINK_HOURLY_PUBLISHED_EVENTS": "100000000",
              "INTERLINK_DAILY_API_REQUESTS": "100000000"}
CREDIT = 100  # events a Subscribe asks for at a time (the Pub/Sub API's cap)
ERROR_SAMPLES = 5


# -- results -------------------------------------------------------------------------------------------------------


@dataclass
class SurfaceResult:
    """What the load generator saw for one surface (or all of them) in the measured window."""

    surface: str
    requests: int = 0  # answered as expected
    errors: int = 0  # unexpected status, bad body or transport error
    seconds: float = 0.0
    per_second: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    error_samples: list[str] = field(default_factory=list)


@dataclass
class EventCheck:
    """Events published over REST against events the Pub/Sub subscriber received."""

    published: int = 0  # answered 201 with an EventUuid (warm-up included)
    received: int = 0  # of those, received by the subscriber
    lost: int = 0
    other: int = 0  # events received that this run did not publish (none expected on a fresh org)
    wait_s: float = 0.0  # from the end of the load until the last one arrived (or the grace ran out)
    subscriber_error: str | None = None


@dataclass
class RunResult:
    """One deployment (N API processes) under load."""

    workers: int
    store: str
    bus: str
    surfaces: dict[str, SurfaceResult] = field(default_factory=dict)
    total: SurfaceResult | None = None
    events: EventCheck = field(default_factory=EventCheck)
    start_s: float | None = None  # ``interlink up`` until it served (sample data included)
    server_processes: int = 0
    server_cpu_s: float | None = None  # all the server's processes over the measured window
    server_busy: float | None = None  # that / wall seconds (cores: up to N and more)
    client_cpu_s: float | None = None  # this process (load generator + subscriber)
    client_busy: float | None = None
    skipped: str | None = None
    failed: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.workers} process" + ("es" if self.workers != 1 else "")

    @property
    def problems(self) -> list[str]:
        if self.skipped:
            return []
        if self.failed:
            return [f"{self.label}: {self.failed}"]
        found = [f"{self.label}: {s.errors} {s.surface} errors ({'; '.join(s.error_samples)})"
                 for s in self.surfaces.values() if s.errors]
        if self.events.lost:
            found.append(f"{self.label}: {self.events.lost} of {self.events.published} events lost")
        if self.events.subscriber_error:
            found.append(f"{self.label}: subscriber failed: {self.events.subscriber_error}")
        return found


@dataclass
class LoadReport:
    """Everything one run measured."""

    store: str
    bus: str
    connections: int
    duration_s: float
    warmup_s: float
    weights: dict[str, int]
    cpu_count: int
    load_average: list[float]  # 1, 5, 15 minutes, when the run started
    load_average_end: list[float]
    workers_option: bool  # whether ``interlink up --workers`` was used (looked for only when N > 1 is wanted)
    runs: list[RunResult]
    baseline: SurfaceResult | None = None
    baseline_busy: float | None = None
    wall_s: float = 0.0

    def run(self, workers: int) -> RunResult | None:
        for run in self.runs:
            if run.workers == workers and not run.skipped and not run.failed and run.total is not None:
                return run
        return None

    def ratios(self) -> dict[str, float | None]:
        """``reads_vs_baseline_N``, ``total_vs_baseline_N`` per deployment, and ``scaling_2_vs_1``."""
        out: dict[str, float | None] = {}
        base = self.baseline.per_second if self.baseline and self.baseline.requests else None
        for run in self.runs:
            measured = self.run(run.workers)
            reads = measured.surfaces.get("rest read") if measured else None
            out[f"reads_vs_baseline_{run.workers}"] = (reads.per_second / base if reads and base else None)
            out[f"total_vs_baseline_{run.workers}"] = (
                measured.total.per_second / base if measured and measured.total and base else None)
        one, two = self.run(1), self.run(2)
        out["scaling_2_vs_1"] = (two.total.per_second / one.total.per_second
                                 if one and two and one.total and two.total and one.total.per_second else None)
        return out

    @property
    def problems(self) -> list[str]:
        found = [problem for run in self.runs for problem in run.problems]
        if self.baseline is not None and self.baseline.errors:
            found.append(f"baseline: {self.baseline.errors} errors ({'; '.join(self.baseline.error_samples)})")
        return found

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["ratios"] = {k: None if v is None else round(v, 4) for k, v in self.ratios().items()}
        data["goals"] = {"errors": 0, "lost_events": 0}
        data["problems"] = self.problems
        data["ok"] = self.ok
        for run, item in zip(self.runs, data["runs"], strict=True):
            item["label"] = run.label
            item["problems"] = run.problems
        return data


# -- the load generator ---------------------------------------------------------------------------------------------


class Recorder:
    """Latencies and errors per surface; only requests started at or after ``measure_from`` count."""

    def __init__(self) -> None:
        self.measure_from = 0.0
        self.latencies: dict[str, list[float]] = {name: [] for name in SURFACES}
        self.errors: dict[str, Counter[str]] = {name: Counter() for name in SURFACES}

    def add(self, surface: str, started: float, error: str | None) -> None:
        if started < self.measure_from:
            return
        if error is None:
            self.latencies[surface].append((time.perf_counter() - started) * 1000.0)
        else:
            self.errors[surface][error[:160]] += 1

    def results(self, seconds: float) -> tuple[dict[str, SurfaceResult], SurfaceResult]:
        surfaces = {name: summarise(name, self.latencies[name], self.errors[name], seconds) for name in SURFACES}
        everything = [value for name in SURFACES for value in self.latencies[name]]
        errors: Counter[str] = Counter()
        for name in SURFACES:
            errors.update({f"{name}: {text}": n for text, n in self.errors[name].items()})
        return surfaces, summarise("all", everything, errors, seconds)


def summarise(surface: str, latencies: list[float], errors: Counter[str], seconds: float) -> SurfaceResult:
    """A :class:`SurfaceResult` from latencies (ms) of the requests that succeeded and error texts."""
    ordered = sorted(latencies)
    return SurfaceResult(surface=surface, requests=len(ordered), errors=sum(errors.values()), seconds=seconds,
                         per_second=len(ordered) / seconds if seconds > 0 else 0.0,
                         p50_ms=rest_get._percentile(ordered, 0.50), p99_ms=rest_get._percentile(ordered, 0.99),
                         error_samples=[f"{n} x {text}" for text, n in errors.most_common(ERROR_SAMPLES)])


def _expect(response: httpx.Response, status: int, what: str) -> Any:
    """The decoded body when ``response`` has ``status``; else :class:`LoadError` naming ``what`` was sent."""
    if response.status_code != status:
        raise LoadError(f"{what} answered {response.status_code}: {response.text[:120]}")
    return response.json() if response.content else None


class LoadError(Exception):
    """A request that did not answer as expected."""


class Client:
    """One simulated API client: a seeded random mix of the four surfaces, with its own records to update."""

    def __init__(self, number: int, http: httpx.AsyncClient, account_ids: list[str], published: dict[str, float],
                 recorder: Recorder, seed: int) -> None:
        self.number = number
        self.http = http
        self.account_ids = account_ids  # shared: sample Accounts, then every Account created
        self.published = published  # shared: EventUuid -> when the publish was answered
        self.recorder = recorder
        self.random = random.Random(seed * 1000 + number)
        self.sent = 0
        self.my_account: str | None = None
        self.my_contact: str | None = None

    async def run(self, deadline: float) -> None:
        operations: dict[str, Callable[[], Awaitable[None]]] = {
            "rest read": self.read, "rest write": self.write, "composite": self.composite,
            "event publish": self.publish}
        while True:
            started = time.perf_counter()
            if started >= deadline:
                return
            surface = self.random.choices(SURFACES, WEIGHTS)[0]
            self.sent += 1
            try:
                await operations[surface]()
                error = None
            except LoadError as exc:
                error = str(exc)
            except (httpx.HTTPError, ValueError, KeyError, TypeError, IndexError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            self.recorder.add(surface, started, error)

    def _name(self) -> str:
        return f"Load {self.number}-{self.sent}"

    async def read(self) -> None:
        record_id = self.random.choice(self.account_ids)
        body = _expect(await self.http.get(f"{API}/sobjects/Account/{record_id}"), 200, "GET Account")
        if body["Id"] != record_id:
            raise LoadError(f"GET Account/{record_id} answered {body['Id']}")

    async def write(self) -> None:
        step = self.sent % 4
        if self.my_account is None or step == 0:
            body = _expect(await self.http.post(f"{API}/sobjects/Account/", json={
                "Name": self._name(), "Industry": "Technology", "NumberOfEmployees": self.sent}), 201, "POST Account")
            self.my_account = body["id"]
            self.account_ids.append(body["id"])
        elif self.my_contact is None or step == 1:
            contact = {"LastName": self._name(), "AccountId": self.my_account, "Email": "load@example.com"}
            body = _expect(await self.http.post(f"{API}/sobjects/Contact/", json=contact), 201, "POST Contact")
            self.my_contact = body["id"]
        elif step == 2:
            _expect(await self.http.patch(f"{API}/sobjects/Account/{self.my_account}",
                                          json={"Phone": f"+1 555 {self.sent:07d}"}), 204, "PATCH Account")
        else:
            _expect(await self.http.patch(f"{API}/sobjects/Contact/{self.my_contact}",
                                          json={"Title": f"Title {self.sent}"}), 204, "PATCH Contact")

    async def composite(self) -> None:
        name = self._name()
        requests = [{"method": "POST", "url": f"{API}/sobjects/Account", "referenceId": "NewAccount",
                     "body": {"Name": name}}]
        requests += [{"method": "POST", "url": f"{API}/sobjects/Contact", "referenceId": f"NewContact{n}",
                      "body": {"LastName": f"{name} {n}", "AccountId": "@{NewAccount.id}"}} for n in (1, 2)]
        sent = {"allOrNone": True, "compositeRequest": requests}
        body = _expect(await self.http.post(f"{API}/composite", json=sent), 200, "POST composite")
        statuses = [item["httpStatusCode"] for item in body["compositeResponse"]]
        if statuses != [201, 201, 201]:
            raise LoadError(f"composite subrequests answered {statuses}: {json.dumps(body)[:120]}")
        self.account_ids.append(body["compositeResponse"][0]["body"]["id"])

    async def publish(self) -> None:
        body = _expect(await self.http.post(f"{API}/sobjects/{EVENT}/", json={
            "AssetId__c": f"L{self.number}-{self.sent}"[:18], "InkLevel__c": self.sent % 100}), 201, f"POST {EVENT}")
        if not body.get("success") or not body.get("errors"):
            raise LoadError(f"publish answered {json.dumps(body)[:120]}")
        self.published[body["errors"][0]["message"]] = time.monotonic()


# -- the subscriber -------------------------------------------------------------------------------------------------


class Subscriber:
    """One Pub/Sub API ``Subscribe`` from EARLIEST with pull flow control, recording each event's ``EventUuid``."""

    def __init__(self, server: LiveServer, token: str) -> None:
        import grpc

        self._grpc = grpc
        self._channel = grpc.aio.secure_channel(server.grpc_target, grpc.ssl_channel_credentials(
            Path(server.ca_bundle).read_bytes()))
        self._metadata = (("accesstoken", token), ("instanceurl", server.url), ("tenantid", server.org_id))
        self._credit: asyncio.Queue[int | None] = asyncio.Queue()
        self._schemas: dict[str, Any] = {}
        self._task: asyncio.Task[None] | None = None
        self._call: Any = None
        self.received: dict[str, float] = {}  # EventUuid -> monotonic receive time
        self.error: str | None = None

    async def _requests(self) -> Any:
        from interlink.pubsub._proto import pubsub_api_pb2 as pb

        yield pb.FetchRequest(topic_name=TOPIC, replay_preset=pb.EARLIEST, num_requested=CREDIT)
        while True:
            more = await self._credit.get()
            if more is None:
                return
            yield pb.FetchRequest(topic_name=TOPIC, num_requested=more)

    async def _schema(self, stub: Any, schema_id: str) -> Any:
        import fastavro

        from interlink.pubsub._proto import pubsub_api_pb2 as pb

        if schema_id not in self._schemas:
            answer = await stub.GetSchema(pb.SchemaRequest(schema_id=schema_id), metadata=self._metadata, timeout=10)
            self._schemas[schema_id] = fastavro.parse_schema(json.loads(answer.schema_json))
        return self._schemas[schema_id]

    async def _read(self) -> None:
        import fastavro

        from interlink.pubsub._proto import pubsub_api_pb2_grpc as pb_grpc

        stub = pb_grpc.PubSubStub(self._channel)
        try:
            self._call = stub.Subscribe(self._requests(), metadata=self._metadata)
            async for response in self._call:
                if not response.events:
                    continue
                self._credit.put_nowait(len(response.events))
                now = time.monotonic()
                for consumer in response.events:
                    schema = await self._schema(stub, consumer.event.schema_id)
                    decoded = fastavro.schemaless_reader(io.BytesIO(consumer.event.payload), schema, None)
                    self.received[str(decoded.get("EventUuid"))] = now
        except asyncio.CancelledError:
            raise
        except self._grpc.aio.AioRpcError as exc:
            if exc.code() != self._grpc.StatusCode.CANCELLED:
                self.error = f"{exc.code().name}: {exc.details()}"
        except Exception as exc:  # a decoding problem is reported, not raised into the load generator
            self.error = f"{type(exc).__name__}: {exc}"

    def start(self) -> None:
        self._task = asyncio.create_task(self._read())

    async def wait_for(self, wanted: set[str], timeout: float) -> float:
        """Seconds waited until every uuid of ``wanted`` was received (or the timeout ran out)."""
        start = time.monotonic()
        while not wanted <= self.received.keys():
            if self._task is not None and self._task.done() and self.error is None:
                self.error = "the subscription ended before every event arrived"
            if self.error is not None:
                break
            if time.monotonic() - start > timeout:
                break
            await asyncio.sleep(0.05)
        return time.monotonic() - start

    async def stop(self) -> None:
        self._credit.put_nowait(None)
        if self._call is not None:
            self._call.cancel()
        if self._task is not None:
            self._task.cancel()
            # asyncio.wait, not ``await task``: suppressing the task's CancelledError there would also swallow a
            # cancellation of the caller (Ctrl-C), and the run would go on after the user stopped it.
            await asyncio.wait([self._task], timeout=5)
        await self._channel.close(grace=None)


# -- CPU of a process tree ------------------------------------------------------------------------------------------


def process_tree(root: int) -> list[int]:
    """``root`` and its descendants (Linux ``/proc``; just ``[root]`` elsewhere)."""
    children: dict[int, list[int]] = {}
    proc = Path("/proc")
    for entry in proc.iterdir() if proc.is_dir() else ():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def tree_cpu(pids: Sequence[int]) -> dict[int, float]:
    """User + system CPU seconds of each of ``pids`` still alive."""
    out = {}
    for pid in pids:
        seconds = rest_get.process_cpu_seconds(pid)
        if seconds is not None:
            out[pid] = seconds
    return out


def _cpu_delta(before: dict[int, float], after: dict[int, float]) -> float | None:
    shared = before.keys() & after.keys()
    return sum(after[pid] - before[pid] for pid in shared) if shared else None


# -- one deployment -------------------------------------------------------------------------------------------------


def workers_option_available() -> bool:
    """Whether ``interlink up`` has a ``--workers`` option (it is being added)."""
    result = subprocess.run([sys.executable, "-m", "interlink.cli.main", "up", "--help"], capture_output=True,
                            text=True, timeout=60, check=False, env={**os.environ, "COLUMNS": "200"})
    return "--workers" in result.stdout


async def _sample_ids(http: httpx.AsyncClient) -> list[str]:
    answer = await http.get(f"{API}/query", params={"q": "SELECT Id FROM Account ORDER BY Name LIMIT 200"})
    ids = [record["Id"] for record in _expect(answer, 200, "query")["records"]]
    if not ids:  # no sample data: create a few to read
        for index in range(20):
            created = await http.post(f"{API}/sobjects/Account/", json={"Name": f"Load seed {index}"})
            ids.append(_expect(created, 201, "POST Account")["id"])
    return ids


async def drive(server: LiveServer, token: str, run: RunResult, *, connections: int, duration: float,
                warmup: float, grace: float, seed: int) -> None:
    """The mixed workload against ``server`` plus the subscriber; fills ``run``."""
    verify = ssl.create_default_context(cafile=server.ca_bundle)
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=server.url, verify=verify, http2=False, limits=limits, timeout=30.0,
                                 headers=headers) as http:
        account_ids = await _sample_ids(http)
        subscriber = Subscriber(server, token)
        subscriber.start()
        try:
            recorder = Recorder()
            published: dict[str, float] = {}
            clients = [Client(n, http, account_ids, published, recorder, seed) for n in range(connections)]
            pids = process_tree(server.process.pid)
            run.server_processes = len(pids)
            start = time.perf_counter()
            recorder.measure_from = start + warmup
            deadline = recorder.measure_from + duration
            tasks = [asyncio.create_task(client.run(deadline)) for client in clients]
            await asyncio.sleep(max(0.0, recorder.measure_from - time.perf_counter()))
            cpu_before, me_before = tree_cpu(pids), time.process_time()
            await asyncio.gather(*tasks)
            elapsed = time.perf_counter() - recorder.measure_from
            cpu_after, me_after = tree_cpu(pids), time.process_time()
            run.surfaces, run.total = recorder.results(elapsed)
            run.server_cpu_s = _cpu_delta(cpu_before, cpu_after)
            run.server_busy = run.server_cpu_s / elapsed if run.server_cpu_s is not None and elapsed else None
            run.client_cpu_s = me_after - me_before
            run.client_busy = run.client_cpu_s / elapsed if elapsed else None
            end = time.monotonic()
            wanted = set(published)
            await subscriber.wait_for(wanted, grace)
            got = wanted & subscriber.received.keys()
            last = max((subscriber.received[u] for u in got), default=end)
            run.events = EventCheck(published=len(wanted), received=len(got), lost=len(wanted - got),
                                    other=len(subscriber.received.keys() - wanted), wait_s=max(0.0, last - end),
                                    subscriber_error=subscriber.error)
        finally:
            await subscriber.stop()


@contextlib.contextmanager
def deployment(workdir: Path, workers: int, store: str, *, postgres: str, nats: str, workers_option: bool,
               notes: list[str]) -> Iterator[tuple[LiveServer, str]]:
    """A fresh ``interlink up --sample-data`` with N API processes, and an admin token; the database and the NATS
    streams are dropped afterwards."""
    with contextlib.ExitStack() as stack:
        args = ["--sample-data"]
        url = ""
        if store == "postgresql":
            url = stack.enter_context(postgres_database(postgres))
            prefix = "ILLOAD" + uuid.uuid4().hex[:10].upper()
            stack.callback(_delete_streams, nats, prefix, notes)
            args += ["--store", url, "--bus", _with_prefix(nats, prefix)]
        if workers_option:
            args += ["--workers", str(workers)]
        server = stack.enter_context(live_server(workdir, extra_args=tuple(args), env=SERVER_ENV, timeout=120))
        token = run_cli("token", "--data-dir", str(server.data_dir), "--store", url).stdout.strip()
        yield server, token


def _with_prefix(url: str, prefix: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}prefix={prefix}"


def _delete_streams(url: str, prefix: str, notes: list[str]) -> None:
    async def delete() -> None:
        import nats

        connection = await nats.connect(url, connect_timeout=2, allow_reconnect=False)
        try:
            manager = connection.jsm()
            for info in await manager.streams_info():
                if info.config.name and info.config.name.startswith(prefix):
                    await manager.delete_stream(info.config.name)
        finally:
            await connection.close()

    try:
        asyncio.run(delete())
    except Exception as exc:  # cleanup must not hide the run's own outcome
        notes.append(f"could not delete the NATS streams {prefix}_*: {exc}")


def measure_baseline(server: LiveServer, token: str, workdir: Path, *, connections: int, duration: float,
                     warmup: float) -> tuple[SurfaceResult, float | None]:
    """``bench/baseline_app.py`` serving a record of ``server`` with its TLS material, under reads only."""
    verify = ssl.create_default_context(cafile=server.ca_bundle)
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.url, verify=verify, headers=headers, timeout=30) as client:
        answer = client.get(f"{API}/query", params={"q": "SELECT Id FROM Account ORDER BY Name LIMIT 1"})
        record_id = _expect(answer, 200, "query")["records"][0]["Id"]
        record = _expect(client.get(f"{API}/sobjects/Account/{record_id}"), 200, "GET Account")
    tls = server.data_dir / "tls"
    with rest_get.baseline_server(workdir, record, tls / "server.pem", tls / "server-key.pem", verify) as (url, pid):
        path = url + f"{API}/sobjects/Account/{record_id}"
        if warmup > 0:
            rest_get.run_httpx(path, token, connections=connections, duration=warmup, target="baseline",
                               verify=verify)
        before = rest_get.process_cpu_seconds(pid)
        result = rest_get.run_httpx(path, token, connections=connections, duration=duration, target="baseline",
                                    verify=verify)
        after = rest_get.process_cpu_seconds(pid)
    busy = (after - before) / result.seconds if before is not None and after is not None and result.seconds else None
    return SurfaceResult(surface="rest read", requests=result.requests, errors=result.errors, seconds=result.seconds,
                         per_second=result.requests_per_second, p50_ms=result.p50_ms, p99_ms=result.p99_ms,
                         error_samples=[f"{result.errors} non-200 or transport errors"] if result.errors else []
                         ), busy


# -- the run --------------------------------------------------------------------------------------------------------


def _raise_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so servers are stopped and the database and streams dropped."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    with contextlib.suppress(ValueError):  # not the main thread
        signal.signal(signal.SIGTERM, handler)


# What ends one deployment's run with a "failed" row (the CLI helpers raise AssertionError and RuntimeError).
RUN_FAILURES = (AssertionError, RuntimeError, OSError, httpx.HTTPError, LoadError, subprocess.SubprocessError)


def run_benchmark(*, duration: float = 10.0, warmup: float = 1.0, connections: int = 16,
                  workers_list: Sequence[int] = (1, 2), store: str = "postgresql",
                  postgres: str = POSTGRES_ADMIN_URL, nats: str = DEFAULT_NATS, grace: float = 15.0, seed: int = 1,
                  baseline: bool = True, log: TextIO | None = None) -> LoadReport:
    """Each deployment of ``workers_list`` under the mixed load, then the baseline; returns the results."""

    def say(message: str) -> None:
        if log is not None:
            print(message, file=log, flush=True)

    began = time.monotonic()
    # ``--workers 1`` is a plain ``interlink up`` (no supervisor): only ask ``--help`` when more are wanted.
    workers_option = max(workers_list, default=1) > 1 and workers_option_available()
    report = LoadReport(store=store, bus="nats" if store == "postgresql" else "embedded", connections=connections,
                        duration_s=duration, warmup_s=warmup, weights=dict(zip(SURFACES, WEIGHTS, strict=True)),
                        cpu_count=os.cpu_count() or 1, load_average=list(os.getloadavg()), load_average_end=[],
                        workers_option=workers_option, runs=[])
    with tempfile.TemporaryDirectory(prefix="interlink-bench-load-") as tmp:
        workdir = Path(tmp)
        for workers in workers_list:
            run = RunResult(workers=workers, store=store, bus=report.bus)
            report.runs.append(run)
            if workers != 1 and not workers_option:
                run.skipped = "interlink up has no --workers option"
                say(f"{run.label}: skipped ({run.skipped})")
                continue
            if not workers_option and max(workers_list) > 1:
                run.notes.append("interlink up has no --workers option: a plain interlink up")
            say(f"{run.label}: starting interlink up ({store}, {report.bus} bus) ...")
            try:
                started = time.monotonic()
                with deployment(workdir / f"org-{workers}", workers, store, postgres=postgres, nats=nats,
                                workers_option=workers_option, notes=run.notes) as (server, token):
                    run.start_s = time.monotonic() - started
                    say(f"{run.label}: {connections} clients, {warmup:g}s warm-up + {duration:g}s ...")
                    asyncio.run(drive(server, token, run, connections=connections, duration=duration,
                                      warmup=warmup, grace=grace, seed=seed))
                    if baseline and report.baseline is None:
                        say(f"baseline (bare Starlette + sqlite3, reads): {warmup:g}s warm-up + {duration:g}s ...")
                        report.baseline, report.baseline_busy = measure_baseline(
                            server, token, workdir, connections=connections, duration=duration, warmup=warmup)
            except RUN_FAILURES as exc:
                run.failed = f"{type(exc).__name__}: {str(exc).strip()[:2000]}"
                say(f"{run.label}: failed: {run.failed}")
    report.load_average_end = list(os.getloadavg())
    report.wall_s = time.monotonic() - began
    return report


# -- the report -----------------------------------------------------------------------------------------------------


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _loads(values: Sequence[float]) -> str:
    return " ".join(f"{v:.2f}" for v in values)


def format_report(report: LoadReport) -> str:
    """The human-readable tables."""
    lines = [
        f"Mixed load: {report.connections} asyncio + httpx clients (HTTP/1.1, TLS, keep-alive), "
        f"{report.warmup_s:g}s warm-up + {report.duration_s:g}s per deployment; mix "
        + ", ".join(f"{name} {weight}%" for name, weight in report.weights.items()),
        f"store {report.store}, bus {report.bus}; {report.cpu_count} CPUs shared by the load generator, the API "
        f"processes{', PostgreSQL and nats-server' if report.store == 'postgresql' else ''}; load average "
        f"{_loads(report.load_average)} at the start, {_loads(report.load_average_end)} at the end",
        "",
        f"{'deployment':<12} {'surface':<14} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}",
    ]
    for run in report.runs:
        if run.skipped or run.failed:
            state = f"skipped: {run.skipped}" if run.skipped else f"FAILED: {run.failed}"
            lines.append(f"{run.label:<12} {state}")
            continue
        for result in [*run.surfaces.values(), *([run.total] if run.total else [])]:
            lines.append(f"{run.label:<12} {result.surface:<14} {result.requests:>9} {result.per_second:>8.1f} "
                         f"{_num(result.p50_ms, '.1f'):>8} {_num(result.p99_ms, '.1f'):>8} {result.errors:>7}")
    if report.baseline is not None:
        base = report.baseline
        lines.append(f"{'baseline':<12} {'rest read':<14} {base.requests:>9} {base.per_second:>8.1f} "
                     f"{_num(base.p50_ms, '.1f'):>8} {_num(base.p99_ms, '.1f'):>8} {base.errors:>7}")
    lines += ["", f"{'deployment':<12} {'events published':>17} {'received':>9} {'lost':>5} {'wait s':>7} "
                  f"{'server CPU s':>13} {'busy':>6} {'processes':>10} {'client busy':>12} {'start s':>8}"]
    for run in report.runs:
        if run.skipped or run.failed:
            continue
        events = run.events
        lines.append(f"{run.label:<12} {events.published:>17} {events.received:>9} {events.lost:>5} "
                     f"{events.wait_s:>7.2f} {_num(run.server_cpu_s, '.1f'):>13} {_num(run.server_busy, '.0%'):>6} "
                     f"{run.server_processes:>10} {_num(run.client_busy, '.0%'):>12} {_num(run.start_s, '.1f'):>8}")
    if report.baseline_busy is not None:
        lines.append(f"baseline server busy {report.baseline_busy:.0%}")
    ratios = report.ratios()
    lines.append("")
    for run in report.runs:
        reads, total = ratios.get(f"reads_vs_baseline_{run.workers}"), ratios.get(f"total_vs_baseline_{run.workers}")
        if reads is not None or total is not None:
            lines.append(f"{run.label}: REST reads/s / baseline reads/s {_num(reads, '.3f')}; all requests/s / "
                         f"baseline reads/s {_num(total, '.3f')}")
    if ratios.get("scaling_2_vs_1") is not None:
        lines.append(f"all requests/s, 2 processes / 1 process: {ratios['scaling_2_vs_1']:.3f}")
    lines += [f"note ({run.label}): {note}" for run in report.runs for note in run.notes]
    lines.append("check: zero errors and zero lost events: " + ("met" if report.ok else "NOT met"))
    lines += [f"  {problem}" for problem in report.problems]
    lines.append(f"whole run: {report.wall_s:.0f}s")
    return "\n".join(lines)


def _counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"a comma-separated list of process counts, not {text!r}") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"process counts must be >= 1: {text!r}")
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Mixed REST / composite / platform-event load with a Pub/Sub "
                                                 "subscriber against 1 and 2 API processes, plus a bare baseline.")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per deployment (10)")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per deployment (1)")
    parser.add_argument("--connections", type=int, default=16, help="concurrent clients and connections (16)")
    parser.add_argument("--workers-list", type=_counts, default=(1, 2), help="API process counts (1,2)")
    parser.add_argument("--store", choices=["postgresql", "sqlite"], default="postgresql",
                        help="postgresql (fresh database + NATS bus) or sqlite (the embedded default)")
    parser.add_argument("--postgres", default=POSTGRES_ADMIN_URL, help=f"admin URL ({POSTGRES_ADMIN_URL})")
    parser.add_argument("--nats", default=DEFAULT_NATS, help=f"NATS server for --store postgresql ({DEFAULT_NATS})")
    parser.add_argument("--grace", type=float, default=15.0, help="seconds to wait for the last events (15)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the clients' random mix (1)")
    parser.add_argument("--no-baseline", dest="baseline", action="store_false", help="skip the baseline")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    _raise_on_sigterm()
    report = run_benchmark(duration=args.duration, warmup=max(0.0, args.warmup),
                           connections=max(1, args.connections), workers_list=args.workers_list, store=args.store,
                           postgres=args.postgres, nats=args.nats, grace=args.grace, seed=args.seed,
                           baseline=args.baseline, log=None if args.json else sys.stderr)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(format_report(report))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
