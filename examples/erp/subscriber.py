"""A sample ERP (the remote side of Fire and Forget): it subscribes to ``/event/Order_Request__e`` over the Pub/Sub
API, "creates the order", and calls back over REST to store the order number on the opportunity.

    python examples/erp/subscriber.py [--data-dir .interlink]

It finds the local org through ``<data dir>/run/server.json`` and the CA bundle, and mints a token with
``interlink token``. Close an opportunity as Closed Won (the sample flow publishes the event) and watch. It prints
``erp: subscribed … after replay id N`` when the org first answers (its first keep-alive, or the first events).
"""

from __future__ import annotations

import argparse
import io
import json
import queue
import ssl
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fastavro
import grpc
import httpx

from interlink.pubsub._proto import pubsub_api_pb2 as pb
from interlink.pubsub._proto import pubsub_api_pb2_grpc as pb_grpc

TOPIC = "/event/Order_Request__e"


def handle_orders(url: str, grpc_target: str, org_id: str, token: str, ca_bundle: str, *,
                  requests: Iterator[Any] | None = None, on_order: Callable[[dict[str, Any]], None] | None = None,
                  limit: int | None = None, on_subscribed: Callable[[int], None] | None = None) -> int:
    """Receive order requests and call back with an order number; returns how many were handled.

    ``requests`` replaces the default request stream (tests pass one they can end); ``limit`` stops after that many.
    ``on_subscribed`` gets the replay id the subscription starts after, from the org's first answer (a keep-alive or
    the first events).
    """
    rest = httpx.Client(base_url=f"{url}/services/data/v66.0", headers={"Authorization": f"Bearer {token}"},
                        verify=ssl.create_default_context(cafile=ca_bundle), timeout=20)
    channel = grpc.secure_channel(grpc_target, grpc.ssl_channel_credentials(Path(ca_bundle).read_bytes()))
    stub = pb_grpc.PubSubStub(channel)
    metadata = (("accesstoken", token), ("instanceurl", url), ("tenantid", org_id))
    schema_id = stub.GetTopic(pb.TopicRequest(topic_name=TOPIC), metadata=metadata).schema_id
    schema = fastavro.parse_schema(json.loads(stub.GetSchema(pb.SchemaRequest(schema_id=schema_id),
                                                             metadata=metadata).schema_json))

    more: queue.Queue[int | None] = queue.Queue()

    def forever() -> Iterator[Any]:
        yield pb.FetchRequest(topic_name=TOPIC, replay_preset=pb.LATEST, num_requested=100)
        while (count := more.get()) is not None:  # flow control: ask again for as many as were handled
            yield pb.FetchRequest(num_requested=count)

    handled = 0
    try:
        for response in stub.Subscribe(requests or forever(), metadata=metadata):
            if on_subscribed is not None:
                first = response.events[0].replay_id if response.events else None
                start = int.from_bytes(first or response.latest_replay_id, "big") - (1 if first else 0)
                on_subscribed(start)
                on_subscribed = None
            for event in response.events:
                order = fastavro.schemaless_reader(io.BytesIO(event.event.payload), schema)
                handled += 1
                number = f"SO-{handled:05d}"
                rest.patch(f"/sobjects/Opportunity/{order['OpportunityId__c']}",
                           json={"Description": f"ERP order {number}"}).raise_for_status()
                print(f"erp: order {number} for opportunity {order['OpportunityId__c']} ({order['Amount__c']})",
                      flush=True)
                if on_order is not None:
                    on_order(order)
                if limit is not None and handled >= limit:
                    return handled
            if response.events:
                more.put(len(response.events))
    finally:
        more.put(None)
        channel.close()
        rest.close()
    return handled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=".interlink")
    options = parser.parse_args()
    info = json.loads((Path(options.data_dir) / "run" / "server.json").read_text())
    token = subprocess.run([sys.executable, "-m", "interlink.cli.main", "token", "--data-dir", options.data_dir],
                           capture_output=True, text=True, check=True).stdout.strip()
    print(f"erp: subscribing to {TOPIC} on localhost:{info['grpc_port']}", flush=True)
    handle_orders(info["url"], f"localhost:{info['grpc_port']}", info["org_id"], token, info["ca_bundle"],
                  on_subscribed=lambda after: print(f"erp: subscribed to {TOPIC} after replay id {after}", flush=True))


if __name__ == "__main__":
    main()
