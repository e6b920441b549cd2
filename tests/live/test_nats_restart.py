"""The NATS server behind an org's bus is killed (SIGKILL) and restarted while a Pub/Sub subscriber is connected.

The org runs ``interlink up --bus nats://…`` against a nats-server of this test's own (own port, own store
directory, so the shared server on 4222 is never touched). A gRPC subscriber stays connected through the
outage; events published over REST before, during and after it must reach it once each, in replay-id order,
with nothing missing: a publish during the outage either succeeded (and is delivered) or answered a clean
503 ``EVENT_BUS_UNAVAILABLE`` (and is never delivered, not even once NATS is back). A record written during the
outage commits, and its change event (held in the org's outbox) is delivered once NATS is back.
"""

from __future__ import annotations

import io
import json
import queue
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastavro
import grpc
import httpx
import pytest

from faults import nats_server
from interlink.pubsub._proto import pubsub_api_pb2 as pb
from interlink.pubsub._proto import pubsub_api_pb2_grpc as pb_grpc
from interlink.testing import LiveServer, live_server

pytestmark = pytest.mark.live

TOPIC = "/event/Printer_Status__e"  # sample data, PublishImmediately: a REST publish goes straight to NATS
N = 10


class Subscriber:
    """A Subscribe call kept open in a thread: tops its credit up after every batch, collects what arrives."""

    def __init__(self, server: LiveServer, token: str, topic: str) -> None:
        self._channel = grpc.secure_channel(server.grpc_target, grpc.ssl_channel_credentials(
            Path(server.ca_bundle).read_bytes()))
        self.stub = pb_grpc.PubSubStub(self._channel)
        self.metadata = (("accesstoken", token), ("instanceurl", server.url), ("tenantid", server.org_id))
        self.events: list[pb.ConsumerEvent] = []
        self.keepalives = 0  # empty responses: the subscription had nothing more to send for a while
        self.error: BaseException | None = None
        self._requests: queue.Queue[pb.FetchRequest | None] = queue.Queue()
        self._requests.put(pb.FetchRequest(topic_name=topic, replay_preset=pb.EARLIEST, num_requested=100))
        self._call: Any = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _iterate(self) -> Iterator[pb.FetchRequest]:
        while True:
            request = self._requests.get()
            if request is None:
                return
            yield request

    def _run(self) -> None:
        try:
            self._call = self.stub.Subscribe(self._iterate(), metadata=self.metadata)
            for response in self._call:
                if response.events:
                    with self._lock:
                        self.events.extend(response.events)
                    self._requests.put(pb.FetchRequest(num_requested=len(response.events)))
                else:
                    self.keepalives += 1
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                self.error = error
        except BaseException as error:  # reported by the test
            self.error = error

    def received(self) -> list[pb.ConsumerEvent]:
        with self._lock:
            return list(self.events)

    def wait_for(self, count: int, timeout: float) -> list[pb.ConsumerEvent]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.received()) < count and self.error is None:
            time.sleep(0.05)
        return self.received()

    def close(self) -> None:
        self._requests.put(None)
        if self._call is not None:
            self._call.cancel()
        self._thread.join(5)
        self._channel.close()


def replay_all(server: LiveServer, token: str, topic: str) -> list[pb.ConsumerEvent]:
    """Every event of ``topic`` from EARLIEST, by a fresh subscription (until its first empty keep-alive)."""
    subscriber = Subscriber(server, token, topic)
    try:
        deadline = time.monotonic() + 10
        while not subscriber.keepalives and subscriber.error is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert subscriber.keepalives, f"no keep-alive from a subscription to {topic}: {subscriber.error}"
        return subscriber.received()
    finally:
        subscriber.close()


def schema_of(server: LiveServer, token: str, *, topic: str = "", schema_id: str = "") -> Any:
    """The parsed Avro schema of a topic (its current one) or of a schema id, over GetTopic / GetSchema."""
    channel = grpc.secure_channel(server.grpc_target, grpc.ssl_channel_credentials(
        Path(server.ca_bundle).read_bytes()))
    try:
        stub = pb_grpc.PubSubStub(channel)
        metadata = (("accesstoken", token), ("instanceurl", server.url), ("tenantid", server.org_id))
        if topic:
            schema_id = stub.GetTopic(pb.TopicRequest(topic_name=topic), metadata=metadata, timeout=10).schema_id
        answer = stub.GetSchema(pb.SchemaRequest(schema_id=schema_id), metadata=metadata, timeout=10)
        return fastavro.parse_schema(json.loads(answer.schema_json))
    finally:
        channel.close()


def test_a_subscriber_resumes_without_gaps_when_nats_is_killed_and_restarted(tmp_path: Path) -> None:
    env = {"INTERLINK_PUBSUB_KEEPALIVE_SECONDS": "0.5"}
    started = time.monotonic()
    with nats_server(tmp_path) as nats, live_server(
            tmp_path / "org", extra_args=("--sample-data", "--bus", nats.url), env=env) as server:
        token = server.token()
        trust = ssl.create_default_context(cafile=server.ca_bundle)
        rest = httpx.Client(base_url=f"{server.url}/services/data/v66.0", verify=trust,
                            headers={"Authorization": f"Bearer {token}"}, timeout=20)
        schema = schema_of(server, token, topic=TOPIC)
        subscriber = Subscriber(server, token, TOPIC)
        accepted: dict[str, int] = {}  # event uuid -> marker (AssetId__c) of every publish answered 201
        refused: list[int] = []  # markers of publishes answered 503
        timings: list[float] = []

        def publish(marker: int) -> int:
            began = time.monotonic()
            response = rest.post("/sobjects/Printer_Status__e/", json={"AssetId__c": f"m{marker}",
                                                                      "InkLevel__c": marker})
            timings.append(time.monotonic() - began)
            if response.status_code == 201:
                accepted[response.json()["errors"][0]["message"]] = marker
            else:
                assert response.status_code == 503, response.text
                (error,) = response.json()
                assert error["errorCode"] == "EVENT_BUS_UNAVAILABLE", error
                assert int(response.headers["Retry-After"]) > 0
                refused.append(marker)
            return response.status_code

        try:
            for marker in range(N):
                assert publish(marker) == 201
            assert len(subscriber.wait_for(N, 10)) == N, subscriber.error

            nats.kill()
            outage_accounts = []
            for marker in range(N, N + 3):  # during the outage: refused quickly, or accepted and delivered later
                publish(marker)
                response = rest.post("/sobjects/Account/", json={"Name": f"During outage {marker}"})
                assert response.status_code == 201, response.text  # a record needs no bus: its event waits
                outage_accounts.append(response.json()["id"])
            assert max(timings[N:]) < 8, timings
            nats.start()
            restarted = time.monotonic()

            marker = N + 3
            deadline = time.monotonic() + 15
            while len(accepted) < 2 * N and time.monotonic() < deadline:  # N more, once the org has reconnected
                if publish(marker) != 201:
                    time.sleep(0.2)
                marker += 1
            assert len(accepted) >= 2 * N, (accepted, refused)

            received = subscriber.wait_for(len(accepted), 20)
            assert subscriber.error is None, subscriber.error
            time.sleep(1.0)  # nothing more (a refused publish delivered late, a duplicate) may arrive
            received = subscriber.received()
        finally:
            subscriber.close()

        replay_ids = [int.from_bytes(event.replay_id, "big") for event in received]
        assert replay_ids == sorted(set(replay_ids)), replay_ids
        decoded = [fastavro.schemaless_reader(io.BytesIO(event.event.payload), schema, None) for event in received]
        assert {record["EventUuid"]: int(record["InkLevel__c"]) for record in decoded} == accepted
        # No gaps: a fresh replay of the whole topic after the fact holds exactly what the live subscriber got.
        replayed = replay_all(server, token, TOPIC)
        assert [event.replay_id for event in replayed] == [event.replay_id for event in received]

        # The accounts written during the outage committed, and their change events left the outbox once NATS
        # was back.
        deadline = time.monotonic() + 20
        while True:
            changes = replay_all(server, token, "/data/AccountChangeEvent")
            created = set()
            if changes:
                change_schema = schema_of(server, token, schema_id=changes[0].event.schema_id)
                created = {record_id for event in changes for record_id in fastavro.schemaless_reader(
                    io.BytesIO(event.event.payload), change_schema, None)["ChangeEventHeader"]["recordIds"]}
            if set(outage_accounts) <= created or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert set(outage_accounts) <= created
        for account_id in outage_accounts:
            assert rest.get(f"/sobjects/Account/{account_id}").status_code == 200
        print(f"NATS restart: {len(accepted)} delivered, {len(refused)} refused, slowest publish during the outage "
              f"{max(timings[N:N + 3]):.2f}s, outbox relayed {time.monotonic() - restarted:.1f}s after the restart, "
              f"{time.monotonic() - started:.1f}s in all")
