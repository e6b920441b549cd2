"""A sample printer management system (the remote side of Remote Call-In): it reports each printer's ink and paper
levels to the org as ``Printer_Status__e`` platform events, published over the Pub/Sub API (gRPC).

    python examples/printers/fleet.py [--data-dir .interlink] [--printer ASSET_ID:INK:PAPER ...] [--every 60]

Each printer is an Asset in the org (the flow ``Printer_Status_Updates_Asset`` of ``examples/printers/metadata``
writes the levels onto it and orders ink below 30%). Without ``--printer`` it reports every Asset of the org with
made-up levels that drop a little at each report. It finds the local org through ``<data dir>/run/server.json``
and mints a token with ``interlink token``, like ``examples/erp/subscriber.py``.
"""

from __future__ import annotations

import argparse
import io
import json
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
import grpc
import httpx

from interlink.pubsub._proto import pubsub_api_pb2 as pb
from interlink.pubsub._proto import pubsub_api_pb2_grpc as pb_grpc

TOPIC = "/event/Printer_Status__e"


@dataclass(frozen=True)
class Reading:
    """One printer's levels, in percent."""

    asset_id: str
    ink: float
    paper: float


@dataclass(frozen=True)
class Published:
    """A reading the org accepted: the replay id the event got on the bus and the correlation key sent with it."""

    reading: Reading
    replay_id: int
    correlation_key: str


def publish_readings(grpc_target: str, org_id: str, url: str, token: str, ca_bundle: str,
                     readings: Sequence[Reading]) -> list[Published]:
    """Publish one ``Printer_Status__e`` per reading in one ``PublishRequest``; raises when the org refuses one."""
    channel = grpc.secure_channel(grpc_target, grpc.ssl_channel_credentials(Path(ca_bundle).read_bytes()))
    try:
        stub = pb_grpc.PubSubStub(channel)
        metadata = (("accesstoken", token), ("instanceurl", url), ("tenantid", org_id))
        schema_id = stub.GetTopic(pb.TopicRequest(topic_name=TOPIC), metadata=metadata, timeout=20).schema_id
        schema = fastavro.parse_schema(json.loads(stub.GetSchema(pb.SchemaRequest(schema_id=schema_id),
                                                                 metadata=metadata, timeout=20).schema_json))
        events = []
        for reading in readings:
            buffer = io.BytesIO()
            # CreatedDate, CreatedById and EventUuid are the org's to fill in; the schema still wants them.
            fastavro.schemaless_writer(buffer, schema, {
                "CreatedDate": int(time.time() * 1000), "CreatedById": "", "EventUuid": None,
                "AssetId__c": reading.asset_id, "InkLevel__c": reading.ink, "PaperLevel__c": reading.paper})
            events.append(pb.ProducerEvent(id=str(uuid.uuid4()), schema_id=schema_id, payload=buffer.getvalue()))
        response = stub.Publish(pb.PublishRequest(topic_name=TOPIC, events=events), metadata=metadata, timeout=20)
    finally:
        channel.close()
    by_key = {event.id: reading for event, reading in zip(events, readings, strict=True)}
    published = []
    for result in response.results:
        if result.HasField("error"):
            raise RuntimeError(f"the org refused a printer status: {result.error.msg}")
        published.append(Published(by_key[result.correlation_key], int.from_bytes(result.replay_id, "big"),
                                    result.correlation_key))
    return published


def fleet_readings(url: str, token: str, ca_bundle: str, round_number: int) -> list[Reading]:
    """Every Asset of the org with made-up levels: each printer starts somewhere between 40% and 100% and loses a few
    points per round."""
    with httpx.Client(base_url=f"{url}/services/data/v66.0", headers={"Authorization": f"Bearer {token}"},
                      verify=ssl.create_default_context(cafile=ca_bundle), timeout=20) as rest:
        answer = rest.get("/query", params={"q": "SELECT Id, Name FROM Asset ORDER BY Name LIMIT 200"})
        answer.raise_for_status()
        assets = answer.json()["records"]
    readings = []
    for asset in assets:
        start = 40 + sum(asset["Id"].encode()) % 61
        ink = max(0.0, start - 7.5 * round_number)
        paper = max(0.0, 100 - (sum(asset["Name"].encode()) + 11 * round_number) % 100)
        readings.append(Reading(asset["Id"], ink, float(paper)))
    return readings


def parse_printer(text: str) -> Reading:
    asset_id, _, levels = text.partition(":")
    ink, _, paper = levels.partition(":")
    try:
        return Reading(asset_id, float(ink), float(paper or 100))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use ASSET_ID:INK[:PAPER], e.g. 02i...:12.5:80") from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=".interlink")
    parser.add_argument("--printer", action="append", type=parse_printer, default=[],
                        help="ASSET_ID:INK[:PAPER] (repeatable); default: every Asset with made-up levels")
    parser.add_argument("--every", type=float, default=0, help="report again every this many seconds")
    options = parser.parse_args(argv)
    info: dict[str, Any] = json.loads((Path(options.data_dir) / "run" / "server.json").read_text())
    token = subprocess.run([sys.executable, "-m", "interlink.cli.main", "token", "--data-dir", options.data_dir],
                           capture_output=True, text=True, check=True).stdout.strip()
    round_number = 0
    while True:
        readings = options.printer or fleet_readings(info["url"], token, info["ca_bundle"], round_number)
        if not readings:
            print("fleet: the org has no Assets (printers) to report; pass --printer ASSET_ID:INK:PAPER", flush=True)
        for item in publish_readings(f"localhost:{info['grpc_port']}", info["org_id"], info["url"], token,
                                     info["ca_bundle"], readings) if readings else []:
            print(f"fleet: {item.reading.asset_id} ink {item.reading.ink:g}% paper {item.reading.paper:g}% "
                  f"-> replay id {item.replay_id}", flush=True)
        if not options.every:
            return
        round_number += 1
        time.sleep(options.every)


if __name__ == "__main__":
    main()
