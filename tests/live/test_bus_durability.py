"""Acknowledged events survive ``kill -9`` of the server: publish, crash, restart, replay finds every one."""

from __future__ import annotations

import io
import json
import ssl
from pathlib import Path

import fastavro
import grpc
import httpx
import pytest

from interlink.pubsub._proto import pubsub_api_pb2 as pb
from interlink.pubsub._proto import pubsub_api_pb2_grpc as pb_grpc
from interlink.testing import LiveServer, live_server

pytestmark = pytest.mark.live


def stub_for(server: LiveServer) -> tuple[pb_grpc.PubSubStub, tuple[tuple[str, str], ...], grpc.Channel]:
    channel = grpc.secure_channel(server.grpc_target, grpc.ssl_channel_credentials(
        Path(server.ca_bundle).read_bytes()))
    metadata = (("accesstoken", server.token()), ("instanceurl", server.url), ("tenantid", server.org_id))
    return pb_grpc.PubSubStub(channel), metadata, channel


def replay_all(server: LiveServer, topic: str) -> list[pb.ConsumerEvent]:
    """Every event of ``topic`` from EARLIEST (reads until an empty keep-alive says the log is drained)."""
    stub, metadata, channel = stub_for(server)
    events: list[pb.ConsumerEvent] = []
    requests = iter([pb.FetchRequest(topic_name=topic, replay_preset=pb.EARLIEST, num_requested=100)])

    def more() -> object:
        yield next(requests)
        while True:
            yield pb.FetchRequest(num_requested=100)

    call = stub.Subscribe(more(), metadata=metadata, timeout=20)
    try:
        for response in call:
            events.extend(response.events)
            if not response.events:
                break
    finally:
        call.cancel()
        channel.close()
    return events


def test_acknowledged_events_survive_kill_9(tmp_path: Path) -> None:
    env = {"INTERLINK_PUBSUB_KEEPALIVE_SECONDS": "0.5"}
    data_dir = tmp_path / "org"
    rest_uuids: list[str] = []
    grpc_replay_ids: list[bytes] = []
    account_ids: list[str] = []
    with live_server(data_dir, extra_args=("--sample-data",), env=env) as server:
        trust = ssl.create_default_context(cafile=server.ca_bundle)
        client = httpx.Client(base_url=f"{server.url}/services/data/v66.0", verify=trust,
                              headers={"Authorization": f"Bearer {server.token()}"}, timeout=20)
        for index in range(20):
            response = client.post("/sobjects/Printer_Status__e/", json={"InkLevel__c": index})
            assert response.status_code == 201
            rest_uuids.append(response.json()["errors"][0]["message"])
            response = client.post("/sobjects/Account/", json={"Name": f"Crash {index}"})
            assert response.status_code == 201
            account_ids.append(response.json()["id"])
        stub, metadata, channel = stub_for(server)
        topic = stub.GetTopic(pb.TopicRequest(topic_name="/event/Printer_Status__e"), metadata=metadata, timeout=10)
        schema = fastavro.parse_schema(json.loads(stub.GetSchema(
            pb.SchemaRequest(schema_id=topic.schema_id), metadata=metadata, timeout=10).schema_json))
        for index in range(5):
            buffer = io.BytesIO()
            fastavro.schemaless_writer(buffer, schema, {"CreatedDate": 0, "CreatedById": "", "EventUuid": None,
                                                        "AssetId__c": f"grpc-{index}", "InkLevel__c": None,
                                                        "PaperLevel__c": None})
            request = pb.PublishRequest(topic_name=topic.topic_name, events=[
                pb.ProducerEvent(id=f"p{index}", schema_id=topic.schema_id, payload=buffer.getvalue())])
            result = stub.Publish(request, metadata=metadata, timeout=10).results[0]
            assert result.replay_id
            grpc_replay_ids.append(result.replay_id)
        channel.close()
        server.process.kill()  # SIGKILL: no shutdown hooks, no flush
        server.process.wait()

    with live_server(data_dir, env=env) as restarted:
        printer = replay_all(restarted, "/event/Printer_Status__e")
        schema_json = None
        seen_uuids = set()
        stub, metadata, channel = stub_for(restarted)
        for event in printer:
            if schema_json is None:
                schema_json = stub.GetSchema(pb.SchemaRequest(schema_id=event.event.schema_id), metadata=metadata,
                                             timeout=10).schema_json
            decoded = fastavro.schemaless_reader(io.BytesIO(event.event.payload),
                                                 fastavro.parse_schema(json.loads(schema_json)), None)
            seen_uuids.add(decoded["EventUuid"])
        channel.close()
        assert set(rest_uuids) <= seen_uuids
        assert set(grpc_replay_ids) <= {e.replay_id for e in printer}
        replay_ids = [int.from_bytes(e.replay_id, "big") for e in printer]
        assert replay_ids == sorted(replay_ids) and len(set(replay_ids)) == len(replay_ids)
        changes = replay_all(restarted, "/data/AccountChangeEvent")
        stub, metadata, channel = stub_for(restarted)
        change_schema = fastavro.parse_schema(json.loads(stub.GetSchema(pb.SchemaRequest(
            schema_id=changes[0].event.schema_id), metadata=metadata, timeout=10).schema_json))
        channel.close()
        created = {record_id for event in changes for record_id in fastavro.schemaless_reader(
            io.BytesIO(event.event.payload), change_schema, None)["ChangeEventHeader"]["recordIds"]}
        assert set(account_ids) <= created
