"""``/metrics``: Prometheus figures of requests by surface, Pub/Sub calls, events, job queues and pools; several
processes added up in multiprocess mode.

Counted metrics are process-wide (every org of a test process shares them), so tests compare before and after.
Nothing here sets ``PROMETHEUS_MULTIPROC_DIR`` in the test process: multiprocess mode runs in subprocesses.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from interlink.api.operations import surface_of
from interlink.app.metrics import MULTIPROC_ENV
from interlink.app.org import Org
from interlink.bus import avro
from interlink.callouts.credentials import NamedCredential
from interlink.callouts.queue import Delivery
from interlink.pubsub._proto import pubsub_api_pb2 as pb
from interlink.pubsub._proto import pubsub_api_pb2_grpc as pb_grpc
from interlink.pubsub.service import start_server
from interlink.security.tls import ensure_tls
from interlink.testing import local_org, rest_client

API = "/services/data/v66.0"
SURFACES = {"rest", "composite", "collections", "bulk", "graphql", "query", "search", "soap", "oauth", "odata",
            "console", "cometd", "metrics/health", "other"}


@pytest.fixture(autouse=True)
def _no_multiprocess_leak() -> Iterator[None]:
    assert MULTIPROC_ENV not in os.environ
    yield
    assert MULTIPROC_ENV not in os.environ


@pytest.fixture
def events_org(tmp_path: Path) -> Iterator[Org]:
    """A platform event ``Ping__e`` and change events for Account; no background workers."""
    metadata = tmp_path / "project" / "metadata"
    (metadata / "objects").mkdir(parents=True)
    (metadata / "channels").mkdir()
    (metadata / "objects" / "Ping__e.yaml").write_text("fields:\n  - {name: Note__c, type: text, length: 40}\n")
    (metadata / "channels" / "ChangeEvents.yaml").write_text("members: [Account]\n")
    with local_org(tmp_path / "org", project_dir=tmp_path / "project", bulk_workers=0) as org:
        yield org


@pytest.fixture
def api(sqlite_org: Org) -> TestClient:
    return rest_client(sqlite_org)  # no lifespan: no background work moves the figures


def parse(text: str) -> list[Metric]:
    return list(text_string_to_metric_families(text))


def scrape(client: TestClient) -> list[Metric]:
    answer = client.get("/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(answer.text)


def value(families: list[Metric], sample: str, **labels: str) -> float:
    """The sum of the samples named ``sample`` whose labels include ``labels`` (0 when there is none)."""
    return sum(s.value for family in families for s in family.samples
               if s.name == sample and labels.items() <= s.labels.items())


def label_sets(families: list[Metric], sample: str) -> list[dict[str, str]]:
    return [s.labels for family in families for s in family.samples if s.name == sample]


# -- HTTP ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("path", "surface"), [
    ("/services/data", "rest"), ("/services/data/", "rest"), ("/services/data/v66.0", "rest"),
    ("/services/data/v66.0/", "rest"), ("/services/data/v66.0/sobjects/Account/001xx000003DGb2AAG", "rest"),
    ("/services/data/v66.0/limits", "rest"), ("/services/data/v66.0/actions/custom/flow", "rest"),
    ("/services/data/v66.0/composite", "composite"), ("/services/data/v66.0/composite/batch", "composite"),
    ("/services/data/v66.0/composite/tree/Account", "composite"),
    ("/services/data/v66.0/composite/sobjects", "collections"),
    ("/services/data/v66.0/composite/sobjects/Account/Ext__c", "collections"),
    ("/services/data/v66.0/jobs/ingest/750xx/batches", "bulk"), ("/services/async/66.0/job", "bulk"),
    ("/services/data/v66.0/graphql", "graphql"), ("/services/data/v66.0/query", "query"),
    ("/services/data/v66.0/queryAll/01gxx-2000", "query"), ("/services/data/v66.0/search", "search"),
    ("/services/data/v66.0/parameterizedSearch", "search"), ("/services/Soap/u/66.0", "soap"),
    ("/services/oauth2/token", "oauth"), ("/id/00Dxx/005xx", "oauth"), ("/odata/v4/Accounts", "odata"),
    ("/cometd/66.0/connect", "cometd"), ("/console", "console"), ("/console/o/Account", "console"),
    ("/health", "metrics/health"), ("/ready", "metrics/health"), ("/metrics", "metrics/health"),
    ("/", "other"), ("/interlink/v1/callouts", "other"), ("/services/dataset", "other"), ("/healthz", "other"),
])
def test_each_path_belongs_to_one_surface(path: str, surface: str) -> None:
    assert surface_of(path) == surface


def test_requests_are_timed_by_surface_method_and_status_class(sqlite_org: Org, api: TestClient) -> None:
    before = scrape(api)
    created = api.post(f"{API}/sobjects/Account/", json={"Name": "Metered"})
    assert created.status_code == 201
    calls = [
        ("GET", f"{API}/sobjects/Account/{created.json()['id']}", "rest"),
        ("GET", f"{API}/sobjects/Account/001000000000000AAA", "rest"),  # 404
        ("GET", f"{API}/query?q=SELECT+Id+FROM+Account", "query"),
        ("GET", f"{API}/composite", "composite"),
        ("GET", f"{API}/jobs/ingest", "bulk"),
        ("GET", f"{API}/search?q=FIND+%7BMetered%7D", "search"),
        ("GET", "/services/oauth2/userinfo", "oauth"),
        ("GET", "/console/login", "console"),
        ("GET", "/no/such/page", "other"),
    ]
    for method, path, _surface in calls:
        api.request(method, path)
    api.post(f"{API}/composite/sobjects", json={"records": [{"attributes": {"type": "Account"}, "Name": "B"}]})
    api.post(f"{API}/graphql", json={"query": "{ uiapi { query { Account { edges { node { Id } } } } } }"})
    after = scrape(api)

    def added(sample: str, **labels: str) -> float:
        return value(after, sample, **labels) - value(before, sample, **labels)

    count = "interlink_http_request_duration_seconds_count"
    assert added(count, surface="rest", method="GET") == 2
    assert added(count, surface="rest", method="POST") == 1
    for surface in ("query", "composite", "bulk", "search", "oauth", "console", "other"):
        assert added(count, surface=surface, method="GET") == 1, surface
    assert added(count, surface="collections", method="POST") == 1
    assert added(count, surface="graphql", method="POST") == 1
    assert added(count, surface="metrics/health", method="GET") == 1  # the first scrape
    requests = "interlink_http_requests_total"
    assert added(requests, surface="rest", method="GET", status_class="2xx") == 1
    assert added(requests, surface="rest", method="GET", status_class="4xx") == 1
    assert added(requests, surface="rest", method="POST", status_class="2xx") == 1
    assert added(requests, surface="other", status_class="4xx") == 1
    # Buckets are cumulative: every request is in +Inf; the time spent is in _sum.
    assert added("interlink_http_request_duration_seconds_bucket", surface="rest", method="GET", le="+Inf") == 2
    assert added("interlink_http_request_duration_seconds_sum", surface="rest", method="GET") > 0
    # Labels come from a fixed set: never a path, an id or a query.
    assert {labels["surface"] for labels in label_sets(after, requests)} <= SURFACES
    assert {labels["method"] for labels in label_sets(after, requests)} <= {
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "OTHER"}
    # Single-process mode: the process collector's figures, under the project's prefix.
    assert value(after, "interlink_process_start_time_seconds") > 0


def test_a_request_that_fails_is_counted_as_5xx(sqlite_org: Org, monkeypatch: pytest.MonkeyPatch) -> None:
    client = TestClient(rest_client(sqlite_org).app, base_url="https://testserver", raise_server_exceptions=False)
    client.headers["Authorization"] = f"Bearer {sqlite_org.mint_token('admin@interlink.local')}"
    before = scrape(client)

    def broken() -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(sqlite_org.usage, "count", broken)
    assert client.get(f"{API}/limits").status_code == 500
    monkeypatch.undo()
    after = scrape(client)
    requests = "interlink_http_requests_total"
    assert value(after, requests, surface="rest", status_class="5xx") - \
        value(before, requests, surface="rest", status_class="5xx") == 1


def test_metrics_need_no_authentication(sqlite_org: Org) -> None:
    anonymous = rest_client(sqlite_org, authorised=False)
    assert value(scrape(anonymous), "interlink_job_queue_depth", kind="bulk", state="queued") == 0
    answer = anonymous.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert answer.headers["content-type"].startswith("application/openmetrics-text")
    assert answer.text.endswith("# EOF\n")


def test_metrics_can_be_turned_off(tmp_path: Path) -> None:
    with local_org(tmp_path / "org", metrics_enabled=False) as org:
        client = rest_client(org)
        assert client.get("/metrics").status_code == 404
        before = parse(org.metrics.exposition()[0].decode())
        assert client.get(f"{API}/limits").status_code == 200
        after = parse(org.metrics.exposition()[0].decode())
        count = "interlink_http_request_duration_seconds_count"
        assert value(after, count, surface="rest") == value(before, count, surface="rest")  # not timed
        assert org.metrics.pubsub_interceptors() == []
        assert client.get("/ready").status_code == 200  # readiness is not a metric


def test_a_metric_that_cannot_be_written_fails_nothing(events_org: Org, monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    from interlink.app import metrics

    def broken() -> Any:
        raise OSError("No space left on device")

    monkeypatch.setattr(metrics, "_current", None)
    monkeypatch.setattr(metrics, "_instruments", broken)
    monkeypatch.setattr(metrics, "_failure_logged", False)
    client = rest_client(events_org)
    assert client.post(f"{API}/sobjects/Ping__e/", json={"Note__c": "still published"}).status_code == 201
    assert client.get(f"{API}/limits").status_code == 200
    failures = [r for r in caplog.records if r.name == "interlink.app.metrics"]
    assert len(failures) == 1 and "No space left on device" in failures[0].getMessage()


# -- events --------------------------------------------------------------------------------------------------------

def test_published_events_are_counted_by_kind_and_cometd_deliveries_too(events_org: Org) -> None:
    client = rest_client(events_org)
    before = scrape(client)
    assert client.post(f"{API}/sobjects/Ping__e/", json={"Note__c": "one"}).status_code == 201
    assert client.post(f"{API}/sobjects/Ping__e/", json={"Note__c": "two"}).status_code == 201
    assert client.post(f"{API}/sobjects/Account/", json={"Name": "Changed"}).status_code == 201
    # A CometD client replaying every Ping__e event gets both at its first connect.
    (hello,) = client.post("/cometd/66.0/handshake", json=[{"channel": "/meta/handshake", "version": "1.0",
                                                            "supportedConnectionTypes": ["long-polling"]}]).json()
    client_id = hello["clientId"]
    client.post("/cometd/66.0", json=[{"channel": "/meta/subscribe", "clientId": client_id,
                                       "subscription": "/event/Ping__e", "ext": {"replay": {"/event/Ping__e": -2}}}])
    messages = client.post("/cometd/66.0/connect", json=[{"channel": "/meta/connect", "clientId": client_id,
                                                          "connectionType": "long-polling"}]).json()
    assert len([m for m in messages if m["channel"] == "/event/Ping__e"]) == 2
    after = scrape(client)

    def added(sample: str, **labels: str) -> float:
        return value(after, sample, **labels) - value(before, sample, **labels)

    assert added("interlink_events_published_total", kind="platform_event") == 2
    assert added("interlink_events_published_total", kind="change_event") == 1
    assert added("interlink_events_delivered_total", surface="cometd") == 2
    assert added("interlink_http_request_duration_seconds_count", surface="cometd", method="POST") == 3


def test_pubsub_calls_are_timed_and_streams_counted(events_org: Org, tmp_path: Path) -> None:
    """Over a real gRPC server with the interceptor: a unary call, a failed one, a publish and a subscription."""
    tls = ensure_tls(tmp_path / "tls", hosts=["localhost", "127.0.0.1"])
    token = events_org.mint_token("admin@interlink.local")
    metadata = (("accesstoken", token),)
    topic = "/event/Ping__e"
    ping = events_org.store.schema.object("Ping__e")
    schema_id, parsed = events_org.bus.event_schema(ping)  # type: ignore[arg-type]
    payload = avro.encode(parsed, {"CreatedDate": 0, "CreatedById": "", "EventUuid": None, "Note__c": "grpc"})

    def figures() -> list[Metric]:
        return parse(events_org.metrics.exposition()[0].decode())

    before = figures()
    seen: dict[str, list[Metric]] = {}

    async def session() -> int:
        server, port = await start_server(events_org, "127.0.0.1", 0, server_cert=tls.server_cert.read_bytes(),
                                          server_key=tls.server_key.read_bytes(), keepalive_seconds=1)
        credentials = grpc.ssl_channel_credentials(root_certificates=tls.bundle.read_bytes())
        try:
            async with grpc.aio.secure_channel(f"localhost:{port}", credentials) as channel:
                stub = pb_grpc.PubSubStub(channel)
                await stub.GetTopic(pb.TopicRequest(topic_name=topic), metadata=metadata)
                with pytest.raises(grpc.aio.AioRpcError):
                    await stub.GetSchema(pb.SchemaRequest(schema_id="nope"), metadata=metadata)
                published = await stub.Publish(pb.PublishRequest(topic_name=topic, events=[
                    pb.ProducerEvent(id="p1", schema_id=schema_id, payload=payload)]), metadata=metadata)
                assert published.results[0].replay_id
                done = asyncio.Event()

                async def requests() -> AsyncIterator[pb.FetchRequest]:
                    yield pb.FetchRequest(topic_name=topic, replay_preset=pb.EARLIEST, num_requested=10)
                    await done.wait()

                call = stub.Subscribe(requests(), metadata=metadata)
                received = 0
                async for response in call:
                    received += len(response.events)
                    if received:
                        break
                seen["open"] = figures()
                done.set()
                call.cancel()
                deadline = time.monotonic() + 10
                while value(figures(), "interlink_pubsub_streams_active", rpc="Subscribe") and \
                        time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                return received
        finally:
            await server.stop(grace=None)

    # In a thread of its own: a session's browser tests may hold a running event loop in this one.
    with ThreadPoolExecutor(1) as pool:
        received = pool.submit(asyncio.run, session()).result(timeout=60)
    after = figures()

    def added(sample: str, **labels: str) -> float:
        return value(after, sample, **labels) - value(before, sample, **labels)

    count = "interlink_pubsub_rpc_duration_seconds_count"
    for rpc in ("GetTopic", "GetSchema", "Publish", "Subscribe"):  # a failed call is timed too
        assert added(count, rpc=rpc) == 1, rpc
    assert value(seen["open"], "interlink_pubsub_streams_active", rpc="Subscribe") == 1
    assert value(after, "interlink_pubsub_streams_active", rpc="Subscribe") == 0
    assert added("interlink_events_published_total", kind="platform_event") == 1
    assert received == 1 and added("interlink_events_delivered_total", surface="pubsub") == 1
    assert {labels["rpc"] for labels in label_sets(after, count)} <= {
        "Subscribe", "Publish", "PublishStream", "GetTopic", "GetSchema", "ManagedSubscribe", "other"}


# -- read at scrape time -------------------------------------------------------------------------------------------

def test_queue_depth_follows_bulk_jobs_and_callouts(sqlite_org: Org, api: TestClient) -> None:
    def depth(kind: str, state: str) -> float:
        return value(scrape(api), "interlink_job_queue_depth", kind=kind, state=state)

    job = api.post(f"{API}/jobs/ingest", json={"object": "Account", "operation": "insert"}).json()
    api.put(f"{API}/jobs/ingest/{job['id']}/batches", content=b"Name\nQueued\n", headers={"Content-Type": "text/csv"})
    assert depth("bulk", "queued") == 0  # still open: nothing to run yet
    api.patch(f"{API}/jobs/ingest/{job['id']}", json={"state": "UploadComplete"})
    assert (depth("bulk", "queued"), depth("bulk", "running")) == (1, 0)
    while sqlite_org.worker.run_once():
        pass
    assert depth("bulk", "queued") == 0

    callouts = sqlite_org.callouts
    callouts.credentials["billing"] = NamedCredential("Billing", "https://billing.example.com/api")
    callouts.sender = lambda *args: Delivery(503, b"busy", None, 5)  # type: ignore[assignment]
    with sqlite_org.store.write() as conn:
        callouts.enqueue(conn, {}, sqlite_org.admin_context(), credential="Billing", method="POST", path="/a",
                         body={"n": 1}, source="test")
    assert (depth("callout", "due"), depth("callout", "waiting")) == (1, 0)
    assert callouts.run_once("w")  # 503: it waits for its retry
    assert (depth("callout", "due"), depth("callout", "waiting"), depth("callout", "running")) == (0, 1, 0)
    assert depth("outbound_message", "due") == 0


def test_connection_pools_of_the_answering_process(api: TestClient) -> None:
    families = scrape(api)
    for pool in ("write", "read"):  # SQLite: a writer engine and a reader engine
        assert value(families, "interlink_db_pool_size", pool=pool) >= 1
        assert value(families, "interlink_db_pool_connections", pool=pool, state="idle") >= 0
        assert [labels for labels in label_sets(families, "interlink_db_pool_connections")
                if labels["pool"] == pool and labels["state"] == "checked_out"]


def test_a_store_that_is_down_leaves_the_queue_out_not_the_scrape(sqlite_org: Org, api: TestClient,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    def down() -> Any:
        raise ConnectionError("store down")

    monkeypatch.setattr(sqlite_org.bulk, "queue", down)
    families = scrape(api)
    assert label_sets(families, "interlink_job_queue_depth") == []
    assert value(families, "interlink_http_request_duration_seconds_count") > 0


# -- several processes ---------------------------------------------------------------------------------------------

_PROCESSES = textwrap.dedent("""
    import json, os, subprocess, sys
    from pathlib import Path

    from interlink.app import metrics  # imports prometheus_client before multiprocess mode is set up
    from interlink.testing import local_org, rest_client

    def serve(data_dir):
        with local_org(Path(data_dir)) as org:
            assert rest_client(org).get("/services/data/v66.0/limits").status_code == 200
            org.metrics.stream_opened("Subscribe")  # still open when the process exits: a live gauge

    def supervise(run_dir, data_dir):
        directory = metrics.setup_multiprocess(Path(run_dir))
        assert os.environ[metrics.MULTIPROC_ENV] == str(directory)
        assert not (directory / "counter_1.db").exists(), "a previous run's files are removed"
        with local_org(Path(data_dir)):  # bootstrap the org once; the processes then share it
            pass
        script = sys.argv[1]
        children = [subprocess.Popen([sys.executable, "-c", script, script, "serve", data_dir]) for _ in (1, 2)]
        assert [child.wait(timeout=120) for child in children] == [0, 0]
        with local_org(Path(data_dir)) as org:
            client = rest_client(org)
            client.get("/services/data/v66.0/limits")  # this process counts in the same files
            while_open = client.get("/metrics").text
            for child in children:
                metrics.child_exited(child.pid)
            after_exit = client.get("/metrics").text
        print(json.dumps({"while_open": while_open, "after_exit": after_exit,
                          "children": [child.pid for child in children]}))

    {"serve": serve, "supervise": supervise}[sys.argv[2]](*sys.argv[3:])
""")


def test_several_processes_are_added_up(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    (run_dir / "metrics").mkdir(parents=True)
    (run_dir / "metrics" / "counter_1.db").write_bytes(b"stale: not a metrics file")
    env = {name: value for name, value in os.environ.items() if name != MULTIPROC_ENV}
    done = subprocess.run([sys.executable, "-c", _PROCESSES, _PROCESSES, "supervise", str(run_dir),
                           str(tmp_path / "org")],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    while_open, after_exit = parse(report["while_open"]), parse(report["after_exit"])

    # Two children and the reader each made one REST call: one total, without a pid label.
    count = "interlink_http_request_duration_seconds_count"
    assert value(while_open, count, surface="rest", method="GET") == 3
    assert label_sets(while_open, count) == [{"surface": "rest", "method": "GET"}]
    assert value(after_exit, "interlink_http_requests_total", surface="rest", status_class="2xx") == 3
    assert value(after_exit, count, surface="metrics/health") == 1  # the first scrape (the second is not over)
    # Streams the children left open count until the supervisor says they exited.
    assert value(while_open, "interlink_pubsub_streams_active", rpc="Subscribe") == 2
    assert value(after_exit, "interlink_pubsub_streams_active", rpc="Subscribe") == 0
    # Gauges read at scrape time are reported once, by the answering process: not summed, no pid label.
    queue = label_sets(after_exit, "interlink_job_queue_depth")
    assert queue and len(queue) == len({tuple(sorted(labels.items())) for labels in queue})
    assert all("pid" not in labels for labels in queue)
    assert label_sets(after_exit, "interlink_db_pool_size")
    assert value(after_exit, "interlink_process_start_time_seconds") == 0  # per-process figures are left out
