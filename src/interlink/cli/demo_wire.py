"""What ``interlink demo`` reports, and how its scenarios reach the org: only through the wire APIs.

A scenario is a list of steps. Each step records the calls it made (REST over TLS, the Pub/Sub API, commands it ran,
requests to the example systems), what changed (records, fields), the events it saw (with their replay ids),
notes (what the remote systems logged) and how long it took. A failed check ends the scenario with a message that
says what was expected and what was found.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import queue
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

T = TypeVar("T")
API_VERSION = "66.0"  # the newest the org serves (settings.api_max_version), as a current client would use

PASS, FAIL, SKIPPED = "PASS", "FAIL", "SKIPPED"


class ScenarioFailed(Exception):
    """A check of a scenario did not hold; the message says what was expected and what happened."""


class ScenarioSkipped(Exception):
    """A scenario cannot run here (a sample it needs is missing); the message says which."""


@dataclass
class Call:
    """One request a step made: ``kind`` is REST, gRPC, HTTP (an example system) or RUN (a command)."""

    kind: str
    method: str
    target: str
    status: str
    ms: float
    count: int = 1


@dataclass
class Event:
    """An event a step saw on the bus."""

    topic: str
    replay_id: int
    payload: dict[str, Any]


@dataclass
class Step:
    title: str
    ok: bool = True
    seconds: float = 0.0
    calls: list[Call] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    def change(self, text: str) -> None:
        """What changed: ``+ Account 001… Name = Acme`` (created), ``~ Order 801…: Status = Activated`` (updated)."""
        self.changes.append(text)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def event(self, topic: str, replay_id: int, payload: dict[str, Any]) -> None:
        self.events.append(Event(topic, replay_id, payload))

    def call(self, kind: str, method: str, target: str, status: str, ms: float) -> None:
        last = self.calls[-1] if self.calls else None
        if last is not None and (last.kind, last.method, last.target, last.status) == (kind, method, target, status):
            last.count += 1  # polling: one line with a count
            last.ms = round(last.ms + ms, 1)
            return
        self.calls.append(Call(kind, method, target, status, round(ms, 1)))


@dataclass
class Report:
    """One pattern's scenario: its steps and whether it passed."""

    pattern: str
    number: int
    title: str
    scenario: str
    status: str = PASS
    seconds: float = 0.0
    message: str = ""
    steps: list[Step] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Run:
    """A scenario being run: the report it fills, its timeout for asynchronous outcomes, the current step."""

    def __init__(self, report: Report, timeout: float) -> None:
        self.report = report
        self.timeout = timeout
        self.current: Step | None = None

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[Step]:
        step = Step(title)
        self.report.steps.append(step)
        self.current = step
        started = time.monotonic()
        try:
            yield step
        except ScenarioSkipped:
            raise
        except ScenarioFailed as failure:
            step.ok, step.error = False, str(failure)
            raise
        except Exception as error:  # anything unexpected fails the step with what it was
            step.ok, step.error = False, f"{type(error).__name__}: {error}"
            raise ScenarioFailed(step.error) from error
        finally:
            step.seconds = round(time.monotonic() - started, 3)
            self.current = None

    def record(self, kind: str, method: str, target: str, status: str, ms: float) -> None:
        if self.current is not None:
            self.current.call(kind, method, target, status, ms)

    @staticmethod
    def check(condition: object, message: str) -> None:
        if not condition:
            raise ScenarioFailed(message)

    def wait(self, what: str, probe: Callable[[], T | None], *, why: Callable[[], str] | None = None,
             timeout: float | None = None, every: float = 0.25) -> T:
        """Poll ``probe`` until it answers something truthy; after the timeout fail with ``what`` (and ``why()``)."""
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while True:
            found = probe()
            if found:
                return found
            if time.monotonic() >= deadline:
                detail = why() if why is not None else ""
                raise ScenarioFailed(f"{what} within {limit:g} s" + (f": {detail}" if detail else ""))
            time.sleep(every)


@dataclass(frozen=True)
class OrgInfo:
    """Where the org answers (from ``<data dir>/run/server.json``)."""

    url: str
    ca_bundle: str
    grpc_port: int | None
    org_id: str
    data_dir: Path

    @property
    def grpc_target(self) -> str:
        return f"localhost:{self.grpc_port}"  # the local certificate names localhost


class Wire:
    """The org's REST API (httpx over TLS, trusting the org's CA) and Pub/Sub API, as a remote system calls them.

    Every request is recorded on the run's current step."""

    def __init__(self, org: OrgInfo, token: str, run_of: Callable[[], Run | None]) -> None:
        self.org = org
        self.token = token
        self.base = f"/services/data/v{API_VERSION}"
        self.run_of = run_of
        self.http = httpx.Client(base_url=org.url, verify=ssl.create_default_context(cafile=org.ca_bundle),
                                 headers={"Authorization": f"Bearer {token}"}, timeout=httpx.Timeout(60, connect=10))
        self.plain = httpx.Client(timeout=30)  # the example systems: plain HTTP on 127.0.0.1
        # The web console, as a browser: cookies, no bearer token.
        self.console = httpx.Client(base_url=org.url, verify=ssl.create_default_context(cafile=org.ca_bundle),
                                    timeout=httpx.Timeout(60, connect=10))
        self._channel: Any = None
        self._schemas: dict[str, Any] = {}

    def close(self) -> None:
        self.http.close()
        self.plain.close()
        self.console.close()
        if self._channel is not None:
            self._channel.close()

    def record(self, kind: str, method: str, target: str, status: object, ms: float) -> None:
        run = self.run_of()
        if run is not None:
            run.record(kind, method, target, str(status), ms)

    # -- REST ------------------------------------------------------------------------------------------------

    def request(self, method: str, path: str, *, expect: tuple[int, ...] = (200, 201, 204), **options: Any,
                ) -> httpx.Response:
        """``path`` relative to ``/services/data/vXX.X/`` unless it starts with ``/``."""
        url = path if path.startswith("/") else f"{self.base}/{path}"
        started = time.monotonic()
        response = self.http.request(method, url, **options)
        shown = path
        if "params" in options and isinstance(options["params"], dict) and "q" in options["params"]:
            shown = f"{path} {options['params']['q']}"
        self.record("REST", method, shown, response.status_code, (time.monotonic() - started) * 1000)
        if expect and response.status_code not in expect:
            raise ScenarioFailed(f"{method} {url} answered {response.status_code}: {response.text[:400]}")
        return response

    def rest(self, method: str, path: str, body: Any = None, **options: Any) -> Any:
        response = self.request(method, path, json=body, **options) if body is not None else self.request(
            method, path, **options)
        return response.json() if response.content else None

    def get(self, path: str, **params: Any) -> Any:
        return self.rest("GET", path, params=params or None)

    def query(self, soql: str) -> list[dict[str, Any]]:
        """Every record of a SOQL query (following ``nextRecordsUrl``)."""
        page = self.rest("GET", "query", params={"q": soql})
        records = list(page["records"])
        while not page.get("done", True) and page.get("nextRecordsUrl"):
            page = self.rest("GET", page["nextRecordsUrl"])
            records.extend(page["records"])
        return records

    def example(self, method: str, url: str, **options: Any) -> httpx.Response:
        """A request to an example system (the ERP's OData service), recorded as HTTP."""
        started = time.monotonic()
        response = self.plain.request(method, url, **options)
        self.record("HTTP", method, url, response.status_code, (time.monotonic() - started) * 1000)
        return response

    # -- Pub/Sub API ----------------------------------------------------------------------------------------

    def pubsub(self) -> tuple[Any, tuple[tuple[str, str], ...]]:
        """The Pub/Sub stub and the call metadata (token, instance URL, tenant id)."""
        import grpc

        from interlink.pubsub._proto import pubsub_api_pb2_grpc as pb_grpc

        if self._channel is None:
            if not self.org.grpc_port:
                raise ScenarioFailed("the org serves no Pub/Sub API (its gRPC port is off)")
            self._channel = grpc.secure_channel(
                self.org.grpc_target, grpc.ssl_channel_credentials(Path(self.org.ca_bundle).read_bytes()))
        metadata = (("accesstoken", self.token), ("instanceurl", self.org.url), ("tenantid", self.org.org_id))
        return pb_grpc.PubSubStub(self._channel), metadata

    def decode(self, schema_id: str, payload: bytes) -> dict[str, Any]:
        import fastavro

        from interlink.pubsub._proto import pubsub_api_pb2 as pb

        if schema_id not in self._schemas:
            stub, metadata = self.pubsub()
            started = time.monotonic()
            text = stub.GetSchema(pb.SchemaRequest(schema_id=schema_id), metadata=metadata, timeout=20).schema_json
            self.record("gRPC", "GetSchema", schema_id, "OK", (time.monotonic() - started) * 1000)
            self._schemas[schema_id] = fastavro.parse_schema(json.loads(text))
        return fastavro.schemaless_reader(io.BytesIO(payload), self._schemas[schema_id], None)  # type: ignore[return-value]


def clean_env() -> dict[str, str]:
    """This process's environment without ``INTERLINK_*`` settings: the demo's org and commands use only what the
    demo gives them (not, say, the store or bus of the user's own org)."""
    return {name: value for name, value in os.environ.items() if not name.startswith("INTERLINK_")}


def replay_number(raw: bytes) -> int:
    """A replay id as a number (the org's are 8 bytes, big-endian; other orgs' are opaque: shown as such)."""
    return int.from_bytes(raw, "big")


class EventWatch:
    """A Pub/Sub subscription (``Subscribe``, from LATEST) the demo reads to show which events went by, with replay ids.

    ``ready()`` waits for the first answer: the org's keep-alive, which says where the subscription starts."""

    def __init__(self, wire: Wire, topic: str) -> None:
        from interlink.pubsub._proto import pubsub_api_pb2 as pb

        self.wire = wire
        self.topic = topic
        self.start: int | None = None
        self.events: list[Event] = []
        self.error: str | None = None
        self._pb = pb
        self._changed = threading.Condition()
        self._requests: queue.Queue[Any] = queue.Queue()
        self._requests.put(pb.FetchRequest(topic_name=topic, replay_preset=pb.LATEST, num_requested=100))
        stub, metadata = wire.pubsub()
        self._opened = time.monotonic()
        self._call = stub.Subscribe(iter(self._requests.get, None), metadata=metadata)
        self._thread = threading.Thread(target=self._read, name=f"demo-watch{topic}", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for response in self._call:
                with self._changed:
                    if self.start is None:
                        first = min((replay_number(e.replay_id) for e in response.events), default=None)
                        self.start = replay_number(response.latest_replay_id) if first is None else first - 1
                    for consumed in response.events:
                        payload = self.wire.decode(consumed.event.schema_id, consumed.event.payload)
                        self.events.append(Event(self.topic, replay_number(consumed.replay_id), payload))
                    if response.events and response.pending_num_requested < 50:
                        self._requests.put(self._pb.FetchRequest(num_requested=100))
                    self._changed.notify_all()
        except Exception as error:  # cancelled at the end, or the org went away
            details = getattr(error, "details", None)
            with self._changed:
                self.error = str(details() if callable(details) else error)
                self._changed.notify_all()

    def ready(self, timeout: float) -> int:
        """The replay id the subscription starts after (events published from now on are seen)."""
        with self._changed:
            self._changed.wait_for(lambda: self.start is not None or self.error is not None, timeout)
            if self.start is None:
                raise ScenarioFailed(f"Subscribe {self.topic} did not answer within {timeout:g} s"
                                     + (f": {self.error}" if self.error else ""))
            self.wire.record("gRPC", "Subscribe", f"{self.topic} (LATEST)", "OK",
                             (time.monotonic() - self._opened) * 1000)
            return self.start

    def wait_for(self, match: Callable[[dict[str, Any]], bool], timeout: float) -> Event | None:
        with self._changed:
            self._changed.wait_for(lambda: any(match(e.payload) for e in self.events) or self.error is not None,
                                   timeout)
            return next((e for e in self.events if match(e.payload)), None)

    def close(self) -> None:
        self._requests.put(None)
        self._call.cancel()
        self._thread.join(timeout=5)


class ConsoleStream:
    """A console page's Server-Sent Events stream (``/console/stream/...``), read as a browser's EventSource would,
    with the session cookie of a console login. ``ready()`` waits for the stream's ``: subscribed`` comment."""

    def __init__(self, wire: Wire, path: str, cookies: dict[str, str], timeout: float) -> None:
        self.wire = wire
        self.path = path
        self.messages: list[dict[str, Any]] = []
        self.subscribed: str | None = None
        self.error: str | None = None
        self._changed = threading.Condition()
        self._opened = time.monotonic()
        # Reads may idle until the server's heartbeat (15 s); then the stream is quiet, not broken.
        self._client = httpx.Client(base_url=wire.org.url, cookies=cookies,
                                    verify=ssl.create_default_context(cafile=wire.org.ca_bundle),
                                    timeout=httpx.Timeout(timeout + 20, connect=10))
        self._thread = threading.Thread(target=self._read, name=f"demo-sse{path}", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            with self._client.stream("GET", self.path, headers={"Accept": "text/event-stream"}) as response:
                if response.status_code != 200:
                    response.read()
                    raise RuntimeError(f"GET {self.path} answered {response.status_code}: {response.text[:300]}")
                fields: dict[str, str] = {}
                for line in response.iter_lines():
                    if line.startswith(":"):
                        if line.startswith(": subscribed"):
                            with self._changed:
                                self.subscribed = line.removeprefix(": subscribed").strip()
                                self._changed.notify_all()
                        continue
                    if line:
                        name, _, value = line.partition(":")
                        fields[name] = fields.get(name, "") + value.removeprefix(" ")
                        continue
                    if "data" in fields:
                        message = {"id": fields.get("id"), "event": fields.get("event", "message"),
                                   "data": json.loads(fields["data"])}
                        with self._changed:
                            self.messages.append(message)
                            self._changed.notify_all()
                    fields = {}
        except Exception as error:  # closed at the end, or the org went away
            with self._changed:
                self.error = f"{type(error).__name__}: {error}"
                self._changed.notify_all()

    def ready(self, timeout: float) -> str:
        with self._changed:
            self._changed.wait_for(lambda: self.subscribed is not None or self.error is not None, timeout)
        if self.subscribed is None:
            raise ScenarioFailed(f"the stream {self.path} did not start within {timeout:g} s"
                                 + (f": {self.error}" if self.error else ""))
        self.wire.record("SSE", "GET", self.path, f"subscribed at {self.subscribed}",
                         (time.monotonic() - self._opened) * 1000)
        return self.subscribed

    def wait_for(self, match: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any] | None:
        with self._changed:
            self._changed.wait_for(lambda: any(match(m["data"]) for m in self.messages) or self.error is not None,
                                   timeout)
            return next((m for m in self.messages if match(m["data"])), None)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._client.close()


class ThreadOutput(io.TextIOBase):
    """``sys.stdout`` while a sample runs in a thread of the demo: what that thread prints is kept (for the report)
    rather than mixed into the demo's output."""

    def __init__(self, default: Any) -> None:
        self.default = default
        self.captured: dict[int, list[str]] = {}

    def thread(self, target: Callable[[], None], name: str) -> tuple[threading.Thread, list[str]]:
        """A daemon thread running ``target``; the list receives the lines it prints."""
        lines: list[str] = []

        def run() -> None:
            self.captured[threading.get_ident()] = lines
            target()

        return threading.Thread(target=run, name=name, daemon=True), lines

    def write(self, text: str) -> int:
        target = self.captured.get(threading.get_ident())
        if target is None:
            return int(self.default.write(text))
        target.extend(line for line in text.splitlines() if line.strip())
        return len(text)

    def flush(self) -> None:
        self.default.flush()


__all__ = ["FAIL", "PASS", "SKIPPED", "Call", "ConsoleStream", "Event", "EventWatch", "OrgInfo", "Report", "Run",
           "ScenarioFailed", "ScenarioSkipped", "Step", "ThreadOutput", "Wire", "clean_env", "replay_number"]
