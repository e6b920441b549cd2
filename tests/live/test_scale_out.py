"""Scale-out under faults: several API processes on one port, a supervisor that restarts them, separate job workers,
and ``kill -9`` at the worst moments (mid-transaction, mid-Bulk-job, mid-callout). Every test runs real processes:
``interlink up --workers N`` and ``interlink worker --jobs`` over TLS, on SQLite and on PostgreSQL (+ NATS)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_bus_durability import replay_all, stub_for

from interlink.testing import ADMIN_PASSWORD, LiveServer, live_server, postgres_database, process_alive

pytestmark = pytest.mark.live

API = "/services/data/v66.0"
NATS = "nats://127.0.0.1:4222"


@pytest.fixture
def store(store_url: str) -> str:
    """'' for the embedded SQLite store; a fresh PostgreSQL database (dropped afterwards) otherwise."""
    return store_url


def store_args(store: str) -> tuple[str, ...]:
    return ("--store", store) if store else ()


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def rest(server: LiveServer, **options: Any) -> httpx.Client:
    return httpx.Client(base_url=server.url + API, verify=ssl.create_default_context(cafile=server.ca_bundle),
                        headers={"Authorization": f"Bearer {server.token()}"}, timeout=30, **options)


def ready_pid(server: LiveServer) -> int | None:
    """The pid of the API process that answers ``/ready`` on a new connection (None when none answers)."""
    try:
        response = httpx.get(server.url + "/ready", verify=ssl.create_default_context(cafile=server.ca_bundle),
                             timeout=5)
    except httpx.HTTPError:
        return None
    return int(response.json()["pid"]) if response.status_code == 200 else None


def count(client: httpx.Client, where: str, sobject: str = "Account") -> int:
    response = client.get("/query", params={"q": f"SELECT COUNT() FROM {sobject} WHERE {where}"})
    assert response.status_code == 200, response.text
    return int(response.json()["totalSize"])


def write_project(root: Path, triggers: dict[str, str], files: dict[str, str] | None = None) -> Path:
    project = root / "project"
    (project / "triggers").mkdir(parents=True, exist_ok=True)
    for name, source in triggers.items():
        (project / "triggers" / name).write_text(source)
    for relative, text in (files or {}).items():
        path = project / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return project


def start_worker(data_dir: Path, project: Path, store: str, log_path: Path,
                 env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """``interlink worker --jobs`` on the org of ``data_dir`` (its own process, its log in ``log_path``)."""
    merged = {**os.environ, "INTERLINK_ADMIN_PASSWORD": ADMIN_PASSWORD, **(env or {})}
    with log_path.open("ab") as log:
        return subprocess.Popen([sys.executable, "-m", "interlink.cli.main", "worker", "--jobs", "--data-dir",
                                 str(data_dir), "--project-dir", str(project), *store_args(store)],
                                stdout=log, stderr=subprocess.STDOUT, env=merged)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- several API processes behind one port -----------------------------------------------------------------------


def test_api_processes_share_the_port_and_a_killed_one_comes_back(tmp_path: Path) -> None:
    with live_server(tmp_path / "org", extra_args=("--workers", "2")) as server:
        first = server.workers
        assert len(first) == 2 and server.process.pid not in first
        seen = wait_for(lambda: _answering(server, first), 30, "both API processes to answer on the one port")
        assert seen == set(first)
        client = rest(server)
        created = client.post("/sobjects/Account/", json={"Name": "Before the kill"})
        assert created.status_code == 201, created.text

        os.kill(first[0], signal.SIGKILL)
        replaced = wait_for(lambda: (pids := server.workers) != first and pids, 20, "a new API process")
        assert first[1] in replaced and first[0] not in replaced
        new_pid = next(pid for pid in replaced if pid != first[1])
        wait_for(lambda: new_pid in _answering(server, replaced, attempts=4), 30, "the new process to serve")
        # The org kept serving: a write and a read through whichever process answers.
        with rest(server) as fresh:
            assert fresh.post("/sobjects/Account/", json={"Name": "After the kill"}).status_code == 201
            assert count(fresh, "Name LIKE '% the kill'") == 2
        client.close()
        workers = server.workers
    # SIGTERM to the supervisor stops every API process (drained, not killed) and removes server.json.
    for pid in workers:
        assert not process_alive(pid), f"API process {pid} outlived its supervisor's stop"
    assert "exited with signal SIGKILL; starting it again" in server.log()
    assert not (tmp_path / "org" / "run" / "server.json").exists()


def _answering(server: LiveServer, pids: list[int], attempts: int = 30) -> set[int]:
    seen: set[int] = set()
    for _ in range(attempts):
        pid = ready_pid(server)
        if pid is not None:
            seen.add(pid)
        if seen >= set(pids):
            break
    return seen


def test_api_processes_stop_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    with live_server(tmp_path / "org", extra_args=("--workers", "2", "--grpc-port", "-1")) as server:
        workers = server.workers
        server.process.kill()  # the supervisor only: its API processes notice and drain on their own
        server.process.wait()
        wait_for(lambda: not any(process_alive(pid) for pid in workers), 15, "orphaned API processes to stop")


# -- what one process changes, the others see -----------------------------------------------------------------------

INVOICE = """\
name: Invoice__c
label: Invoice
labelPlural: Invoices
fields:
  - {name: Amount__c, type: currency, precision: 16, scale: 2}
"""


def per_process(server: LiveServer, attempts: int, call: Callable[[httpx.Client], Any]) -> dict[int, list[Any]]:
    """``call`` on new connections, grouped by the pid of the API process each one reached (``/ready`` first, on
    the same keep-alive connection)."""
    answers: dict[int, list[Any]] = {}
    token = server.token()
    for _ in range(attempts):
        with httpx.Client(base_url=server.url, verify=ssl.create_default_context(cafile=server.ca_bundle),
                          headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
            pid = int(client.get("/ready").json()["pid"])
            answers.setdefault(pid, []).append(call(client))
    return answers


def test_a_deploy_reaches_every_running_api_process(tmp_path: Path, store: str) -> None:
    project = write_project(tmp_path, {}, {"metadata/objects/Invoice__c.yaml": INVOICE})
    data_dir = tmp_path / "org"
    env = {"INTERLINK_PROJECT_DIR": str(project)}
    with live_server(data_dir, extra_args=("--workers", "2", "--grpc-port", "-1", *store_args(store)),
                     env=env) as server:
        (project / "metadata" / "objects" / "Invoice__c.yaml").write_text(
            INVOICE + "  - {name: Note__c, type: text, length: 80}\n")
        from interlink.testing import run_cli

        run_cli("deploy", "--data-dir", str(data_dir), "--project-dir", str(project), *store_args(store))

        def create(client: httpx.Client) -> int:
            response = client.post(API + "/sobjects/Invoice__c/", json={"Name": "I-1", "Note__c": "new"})
            return response.status_code

        # Every process picks the new field up by itself (within a second or two), without a restart.
        answers = wait_for(lambda: (found := per_process(server, 12, create)) and len(found) == 2 and all(
            code == 201 for codes in found.values() for code in codes) and found, 30,
            "both API processes to accept the deployed field")
        assert set(answers) == set(server.workers)


def test_events_published_through_any_process_reach_a_subscriber_of_another(tmp_path: Path) -> None:
    env = {"INTERLINK_PUBSUB_KEEPALIVE_SECONDS": "0.5"}
    with live_server(tmp_path / "org", extra_args=("--workers", "2", "--sample-data"), env=env) as server:
        def publish(client: httpx.Client) -> str:
            response = client.post(API + "/sobjects/Printer_Status__e/", json={"InkLevel__c": 7})
            assert response.status_code == 201, response.text
            return str(response.json()["errors"][0]["message"])

        published = per_process(server, 16, publish)
        assert len(published) == 2, f"the publishes did not spread over both processes: {published}"
        uuids = {uuid for values in published.values() for uuid in values}
        # A subscriber (on whichever process the Pub/Sub port hands it to) replays every one of them.
        events = wait_for(lambda: (found := replay_all(server, "/event/Printer_Status__e")) and len(found) >= 16
                          and found, 20, "the subscriber to see every event")
        assert _event_uuids(server, events) == uuids
        replay_ids = [int.from_bytes(event.replay_id, "big") for event in events]
        assert replay_ids == sorted(replay_ids) and len(set(replay_ids)) == 16


# -- kill -9 in the middle of an allOrNone composite request ----------------------------------------------------

SLOW_TRIGGER = """
import os, time
from interlink.automation import trigger

@trigger("Account", before=["insert"])
def hold(ctx):
    marker = os.environ.get("SCALE_TEST_MARKER")
    if marker and any((record.get("Name") or "").startswith("Hold") for record in ctx.new):
        with open(marker, "w") as out:
            out.write(str(os.getpid()))
        time.sleep(float(os.environ.get("SCALE_TEST_HOLD", "3")))
"""


def composite(tag: str) -> dict[str, Any]:
    return {"allOrNone": True, "compositeRequest": [
        {"method": "POST", "url": f"{API}/sobjects/Account", "referenceId": "first", "body": {"Name": f"{tag} 1"}},
        {"method": "POST", "url": f"{API}/sobjects/Contact", "referenceId": "contact",
         "body": {"LastName": tag, "AccountId": "@{first.id}"}},
        {"method": "POST", "url": f"{API}/sobjects/Account", "referenceId": "held", "body": {"Name": f"Hold {tag}"}},
        {"method": "POST", "url": f"{API}/sobjects/Account", "referenceId": "last", "body": {"Name": f"{tag} 2"}},
    ]}


def test_kill_9_during_an_all_or_none_composite_leaves_all_or_nothing(tmp_path: Path, store: str) -> None:
    marker = tmp_path / "held.pid"
    project = write_project(tmp_path, {"hold.py": SLOW_TRIGGER})
    env = {"SCALE_TEST_MARKER": str(marker), "INTERLINK_PROJECT_DIR": str(project)}
    with live_server(tmp_path / "org", extra_args=("--workers", "2", "--grpc-port", "-1", *store_args(store)),
                     env=env) as server:
        client = rest(server)
        outcome: dict[str, Any] = {}

        def send() -> None:
            try:
                outcome["response"] = rest(server).post("/composite", json=composite("Killed"))
            except httpx.HTTPError as exc:
                outcome["error"] = exc

        sender = threading.Thread(target=send)
        sender.start()
        holder = int(wait_for(lambda: marker.exists() and marker.read_text(), 30, "the composite to be in flight"))
        assert holder in server.workers
        os.kill(holder, signal.SIGKILL)  # mid-transaction: two records written, two to go
        sender.join(30)
        assert "error" in outcome, f"the request answered although its process was killed: {outcome}"
        # Nothing of the killed request is visible, through whichever process answers now (a new connection: the
        # client's pooled one may have been to the killed process).
        client.close()
        client = rest(server)
        assert count(client, "Name LIKE 'Killed%' OR Name = 'Hold Killed'") == 0
        assert count(client, "LastName = 'Killed'", "Contact") == 0

        # The same request, not killed, commits as a whole; a kill right after the answer changes nothing.
        marker.unlink()
        done = client.post("/composite", json=composite("Kept"))
        assert done.status_code == 200, done.text
        assert all(part["httpStatusCode"] == 201 for part in done.json()["compositeResponse"]), done.text
        os.kill(int(marker.read_text()), signal.SIGKILL)
        client.close()
        with rest(server) as fresh:
            assert count(fresh, "Name LIKE 'Kept%' OR Name = 'Hold Kept'") == 3
            assert count(fresh, "LastName = 'Kept'", "Contact") == 1


# -- a job worker killed mid-Bulk-job ----------------------------------------------------------------------------

BATCH_TRIGGER = """
import os, time
from interlink.automation import trigger

@trigger("Account", before=["insert"])
def pace(ctx):
    if any((record.get("Name") or "").startswith("Bulk") for record in ctx.new):
        time.sleep(float(os.environ.get("SCALE_TEST_PACE", "0.4")))
"""


def test_a_worker_killed_mid_bulk_job_is_taken_over_and_no_batch_runs_twice(tmp_path: Path, store: str) -> None:
    project = write_project(tmp_path, {"pace.py": BATCH_TRIGGER})
    data_dir = tmp_path / "org"
    env = {"INTERLINK_PROJECT_DIR": str(project), "INTERLINK_BULK_BATCH_SIZE": "10"}
    with live_server(data_dir, extra_args=("--no-jobs", "--grpc-port", "-1", *store_args(store)), env=env) as server:
        client = rest(server)
        job = client.post("/jobs/ingest", json={"object": "Account", "operation": "insert",
                                                "lineEnding": "LF"}).json()
        rows = "\n".join(f"Bulk {index:03d}" for index in range(120))
        assert client.put(f"/jobs/ingest/{job['id']}/batches", content=f"Name\n{rows}\n",
                          headers={"Content-Type": "text/csv"}).status_code == 201
        assert client.patch(f"/jobs/ingest/{job['id']}", json={"state": "UploadComplete"}).status_code == 200
        time.sleep(1.0)
        assert client.get(f"/jobs/ingest/{job['id']}").json()["numberRecordsProcessed"] == 0  # --no-jobs: idle

        first = start_worker(data_dir, project, store, tmp_path / "worker-1.log", env)
        try:
            wait_for(lambda: client.get(f"/jobs/ingest/{job['id']}").json()["numberRecordsProcessed"] >= 30, 60,
                     "the first worker to process three batches")
            first.kill()  # SIGKILL mid-job: the batch in hand rolls back, the lease stays
            first.wait()
        finally:
            stop(first)
        processed = client.get(f"/jobs/ingest/{job['id']}").json()["numberRecordsProcessed"]
        assert processed < 120
        second = start_worker(data_dir, project, store, tmp_path / "worker-2.log", env)
        try:
            final = wait_for(lambda: (state := client.get(f"/jobs/ingest/{job['id']}").json())["state"] in {
                "JobComplete", "Failed"} and state, 90, "the second worker to finish the job")
        finally:
            stop(second)
        assert final["state"] == "JobComplete", final
        assert (final["numberRecordsProcessed"], final["numberRecordsFailed"]) == (120, 0), final
        names = client.get("/query", params={"q": "SELECT Name FROM Account WHERE Name LIKE 'Bulk%'"}).json()
        listed = [record["Name"] for record in names["records"]]
        assert sorted(listed) == [f"Bulk {index:03d}" for index in range(120)]  # each row exactly once
        success = client.get(f"/jobs/ingest/{job['id']}/successfulResults").text.strip().splitlines()
        assert len(success) == 121  # header + one line per row: no batch reported twice
        client.close()


# -- a job worker killed mid-callout -----------------------------------------------------------------------------

CALLOUT_TRIGGER = """
from interlink.automation import trigger

@trigger("Account", after=["insert"])
def bill(ctx):
    for record in ctx.new:
        if (record.get("Name") or "").startswith("Bill"):
            ctx.callout("Billing", "POST", "/accounts", json={"id": record["Id"], "name": record["Name"]})
"""


class Billing:
    """A receiver whose first request hangs until released (the worker delivering it is killed meanwhile)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, str]] = []
        self.first_arrived = threading.Event()
        self.release = threading.Event()
        billing = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                billing.requests.append(dict(self.headers))
                if len(billing.requests) == 1:
                    billing.first_arrived.set()
                    billing.release.wait(30)
                    return  # the worker is dead by now: no answer
                body = b'{"ok": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def billing() -> Iterator[Billing]:
    receiver = Billing()
    yield receiver
    receiver.close()


def test_a_worker_killed_mid_callout_loses_nothing(tmp_path: Path, store: str, billing: Billing) -> None:
    project = write_project(tmp_path, {"bill.py": CALLOUT_TRIGGER}, {
        "metadata/namedCredentials/Billing.yaml":
            f"url: {billing.url}\ntimeoutSeconds: 20\nauth: {{protocol: none}}\n"})
    data_dir = tmp_path / "org"
    env = {"INTERLINK_PROJECT_DIR": str(project)}
    with live_server(data_dir, extra_args=("--no-jobs", "--grpc-port", "-1", *store_args(store)), env=env) as server:
        client = rest(server)
        assert client.post("/sobjects/Account/", json={"Name": "Bill Me"}).status_code == 201
        first = start_worker(data_dir, project, store, tmp_path / "worker-1.log", env)
        try:
            assert billing.first_arrived.wait(60), "the first worker never called out"
            first.kill()  # SIGKILL while the callout waits for its answer
            first.wait()
        finally:
            stop(first)
        billing.release.set()
        second = start_worker(data_dir, project, store, tmp_path / "worker-2.log", env)
        try:
            wait_for(lambda: len(billing.requests) >= 2, 60, "the second worker to deliver the callout again")
            deliveries = wait_for(lambda: [c for c in _callouts(server) if c["state"] == "Delivered"], 30,
                                  "the callout to be recorded as delivered")
        finally:
            stop(second)
        assert len(deliveries) == 1
        # At least once, never lost: the receiver saw the same idempotency key twice and can drop the repeat.
        keys = {request["Idempotency-Key"] for request in billing.requests}
        assert len(billing.requests) == 2 and len(keys) == 1 and deliveries[0]["idempotencyKey"] in keys
        client.close()


def _callouts(server: LiveServer) -> list[dict[str, Any]]:
    with httpx.Client(verify=ssl.create_default_context(cafile=server.ca_bundle), timeout=10) as http:
        response = http.get(server.url + "/interlink/v1/callouts",
                            headers={"Authorization": f"Bearer {server.token()}"})
    assert response.status_code == 200, response.text
    body = response.json()
    return body["callouts"] if isinstance(body, dict) else body  # type: ignore[no-any-return]


# -- acknowledged writes and events survive kill -9 of every process, on PostgreSQL and NATS ------------------------


@pytest.fixture
def nats_prefix() -> Iterator[str]:
    from interlink.bus.nats_log import NatsLog

    prefix = "T" + uuid.uuid4().hex[:10]
    probe = NatsLog(NATS, prefix=prefix, retention_seconds=3600, request_timeout=1.0)
    try:
        probe.open()
    except Exception as exc:
        pytest.skip(f"NATS JetStream is not reachable on {NATS}: {exc}")
    try:
        yield prefix
    finally:
        try:
            probe.delete_streams()
        finally:
            probe.close()


def test_acknowledged_writes_and_events_survive_kill_9_on_postgresql_and_nats(tmp_path: Path,
                                                                              nats_prefix: str) -> None:
    try:
        database = postgres_database()
        url = database.__enter__()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    try:
        args = ("--workers", "2", "--store", url, "--bus", f"{NATS}?prefix={nats_prefix}", "--sample-data")
        env = {"INTERLINK_PUBSUB_KEEPALIVE_SECONDS": "0.5"}
        data_dir = tmp_path / "org"
        accounts: list[str] = []
        uuids: list[str] = []
        with live_server(data_dir, extra_args=args, env=env) as server:
            with rest(server) as client:
                for index in range(20):
                    published = client.post("/sobjects/Printer_Status__e/", json={"InkLevel__c": index})
                    assert published.status_code == 201, published.text
                    uuids.append(published.json()["errors"][0]["message"])
                    created = client.post("/sobjects/Account/", json={"Name": f"Acked {index}"})
                    assert created.status_code == 201, created.text
                    accounts.append(created.json()["id"])
            server.kill_all()  # supervisor and API processes: SIGKILL right after the last acknowledgement
        with live_server(data_dir, extra_args=args, env=env) as restarted:
            with rest(restarted) as client:
                found = client.get("/query", params={"q": "SELECT Id FROM Account WHERE Name LIKE 'Acked%'"}).json()
                assert {record["Id"] for record in found["records"]} == set(accounts)
            events = replay_all(restarted, "/event/Printer_Status__e")
            replay_ids = [int.from_bytes(event.replay_id, "big") for event in events]
            assert replay_ids == sorted(replay_ids) and len(set(replay_ids)) == len(replay_ids)
            assert _event_uuids(restarted, events) >= set(uuids)
    finally:
        with contextlib.suppress(Exception):
            database.__exit__(None, None, None)


def _event_uuids(server: LiveServer, events: list[Any]) -> set[str]:
    import io

    import fastavro

    from interlink.pubsub._proto import pubsub_api_pb2 as pb

    stub, metadata, channel = stub_for(server)
    try:
        schemas: dict[str, Any] = {}
        found = set()
        for event in events:
            schema_id = event.event.schema_id
            if schema_id not in schemas:
                schemas[schema_id] = fastavro.parse_schema(json.loads(stub.GetSchema(
                    pb.SchemaRequest(schema_id=schema_id), metadata=metadata, timeout=10).schema_json))
            found.add(fastavro.schemaless_reader(io.BytesIO(event.event.payload), schemas[schema_id],
                                                 None)["EventUuid"])
        return found
    finally:
        channel.close()
