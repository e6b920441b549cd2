"""Fire and Forget end to end, with real clients against ``interlink up --sample-data``.

A sales rep closes an opportunity over REST. The sample flow ``Closed_Won_Order_Request`` publishes
``Order_Request__e`` after the commit. An ERP, subscribed over the Pub/Sub API (gRPC + TLS, Avro), takes the
request, "creates the order" and calls back over REST to store its order number on the opportunity.
"""

from __future__ import annotations

import io
import json
import ssl
import threading
import time
from pathlib import Path

import fastavro
import grpc
import httpx
import pytest

from interlink.pubsub._proto import pubsub_api_pb2 as pb
from interlink.pubsub._proto import pubsub_api_pb2_grpc as pb_grpc
from interlink.testing import live_server

pytestmark = pytest.mark.live


def test_a_won_deal_reaches_the_erp_which_calls_back(tmp_path: Path) -> None:
    with live_server(tmp_path / "org", extra_args=("--sample-data",),
                     env={"INTERLINK_PUBSUB_KEEPALIVE_SECONDS": "1"}) as server:
        token = server.token()
        rest = httpx.Client(base_url=f"{server.url}/services/data/v66.0", verify=ssl.create_default_context(
            cafile=server.ca_bundle), headers={"Authorization": f"Bearer {token}"}, timeout=20)
        deal = rest.post("/sobjects/Opportunity", json={
            "Name": "Big deal", "StageName": "Negotiation/Review", "CloseDate": "2026-12-31", "Amount": 4200}).json()

        channel = grpc.secure_channel(server.grpc_target, grpc.ssl_channel_credentials(
            Path(server.ca_bundle).read_bytes()))
        stub = pb_grpc.PubSubStub(channel)
        metadata = (("accesstoken", token), ("instanceurl", server.url), ("tenantid", server.org_id))
        topic = stub.GetTopic(pb.TopicRequest(topic_name="/event/Order_Request__e"), metadata=metadata)
        schema = fastavro.parse_schema(json.loads(
            stub.GetSchema(pb.SchemaRequest(schema_id=topic.schema_id), metadata=metadata).schema_json))

        received: list[dict[str, object]] = []
        arrived = threading.Event()
        stop = threading.Event()

        def requests():  # type: ignore[no-untyped-def]
            yield pb.FetchRequest(topic_name="/event/Order_Request__e", replay_preset=pb.LATEST, num_requested=10)
            stop.wait(30)

        call = stub.Subscribe(requests(), metadata=metadata, timeout=30)

        def erp() -> None:  # the remote system: read events, "create the order", call back
            for response in call:
                for event in response.events:
                    payload = fastavro.schemaless_reader(io.BytesIO(event.event.payload), schema)
                    received.append(payload)
                    rest.patch(f"/sobjects/Opportunity/{payload['OpportunityId__c']}",
                               json={"Description": f"ERP order SO-{len(received):05d}"})
                    arrived.set()
                    return

        listener = threading.Thread(target=erp, daemon=True)
        listener.start()
        try:
            time.sleep(1.0)  # let the LATEST subscription attach before the event is published
            closed = rest.patch(f"/sobjects/Opportunity/{deal['id']}", json={"StageName": "Closed Won"})
            assert closed.status_code == 204
            assert arrived.wait(20), "the ERP never received Order_Request__e"
        finally:
            stop.set()
            call.cancel()
            channel.close()
        (payload,) = received
        assert payload["OpportunityId__c"] == deal["id"] and payload["Amount__c"] == 4200.0
        stored = rest.get(f"/sobjects/Opportunity/{deal['id']}", params={"fields": "Description"}).json()
        assert stored["Description"] == "ERP order SO-00001"
