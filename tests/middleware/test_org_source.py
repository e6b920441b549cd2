"""The ``org.pubsub`` source and its Pub/Sub subscription against a real ``interlink up`` (the session's ``live``
server: gRPC + TLS, Avro): receive published events, resume after a checkpoint without gaps or repeats, the
replay-id fallback policy, change events, and the stall watchdog.

Each test starts after a *marker*: an event published through the Pub/Sub API ``Publish`` call, which answers its
replay id, so a subscription opened after it sees exactly the events the test publishes next.
"""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import fastavro
import pytest

from interlink.middleware.base import Message, PipelineSpecError
from interlink.middleware.orgapi import OrgConnection, OrgRejected, ReplayIdInvalid
from interlink.middleware.sinks.org import OrgPublishSink
from interlink.middleware.sources.org import OrgPubSubSource, make_pubsub_source
from interlink.pubsub._proto import pubsub_api_pb2 as pb
from interlink.testing import LiveServer

pytestmark = pytest.mark.live

PRINTER = "/event/Printer_Status__e"
PAYMENT = "/event/Payment_Received__e"
CASE_CLOSED = "/event/Case_Closed__e"
FAR_AHEAD = (2**62).to_bytes(8, "big").hex()  # a well-formed replay id the topic has never reached


@pytest.fixture(scope="module")
def conn(live: LiveServer) -> Iterator[OrgConnection]:
    connection = OrgConnection.from_server_file(live.data_dir / "run" / "server.json", live.token())
    yield connection
    connection.close()


def marker(conn: OrgConnection, topic: str, **fields: Any) -> bytes:
    """Publish one event through the Pub/Sub API and answer its replay id."""
    schema_id = conn.topic(topic).schema_id
    parsed, _ = conn.schema(schema_id)
    datum = {"CreatedDate": 0, "CreatedById": "", "EventUuid": None, **fields}
    payload = io.BytesIO()
    fastavro.schemaless_writer(payload, parsed, datum)
    answer = conn.pubsub_call("Publish", pb.PublishRequest(topic_name=topic, events=[
        pb.ProducerEvent(id=str(uuid.uuid4()), schema_id=schema_id, payload=payload.getvalue())]))
    assert answer.results[0].replay_id, answer
    return bytes(answer.results[0].replay_id)


def read_until(source: OrgPubSubSource, count: int, within: float = 10.0, batch: int = 100) -> list[Message]:
    messages: list[Message] = []
    deadline = time.monotonic() + within
    while len(messages) < count and time.monotonic() < deadline:
        messages += source.read(min(batch, count - len(messages)), 0.5)
    return messages


def tag() -> str:
    return uuid.uuid4().hex[:12]


def test_a_published_event_arrives_as_a_message(conn: OrgConnection) -> None:
    start = marker(conn, PRINTER, AssetId__c="marker")
    asset = tag()
    deliveries = OrgPublishSink(conn, "Printer_Status__e").write(
        [Message(body={"AssetId__c": asset, "InkLevel__c": 42.5, "CreatedDate": 1, "EventUuid": "ignored"})])
    assert deliveries[0].ok, deliveries
    source = OrgPubSubSource(conn, PRINTER)
    source.open(start.hex())
    try:
        (message,) = read_until(source, 1)
    finally:
        source.close()
    assert message.body["AssetId__c"] == asset and message.body["InkLevel__c"] == 42.5
    assert message.id == message.body["EventUuid"] and message.id != "ignored"
    assert message.headers["topic"] == PRINTER and message.headers["replay_id"] == message.position
    assert message.headers["timestamp"] == message.body["CreatedDate"] > 1_600_000_000_000  # epoch ms
    assert int(message.position, 16) > int(start.hex(), 16)


def test_resuming_after_a_checkpoint_has_no_gaps_and_no_repeats(conn: OrgConnection) -> None:
    start = marker(conn, PAYMENT, Status__c="marker")
    batch = tag()
    results = conn.publish("Payment_Received__e", [{"Status__c": f"{batch}-{i}", "Amount__c": i} for i in range(5)])
    assert all(r.success for r in results)

    first = OrgPubSubSource(conn, PAYMENT, batch=2)
    first.open(start.hex())
    try:
        early = read_until(first, 2, batch=2)
    finally:
        first.close()
    assert [m.body["Status__c"] for m in early] == [f"{batch}-0", f"{batch}-1"]
    checkpoint = early[-1].position  # what the runtime stores once both are done

    second = OrgPubSubSource(conn, PAYMENT)
    second.open(checkpoint)
    try:
        rest = read_until(second, 3)
        extra = second.read(10, 0.3)
    finally:
        second.close()
    assert [m.body["Status__c"] for m in rest] == [f"{batch}-2", f"{batch}-3", f"{batch}-4"]
    assert extra == []
    assert len({m.id for m in early + rest}) == 5


@pytest.mark.parametrize("checkpoint", [FAR_AHEAD, "0102", "not-hex"])
def test_fallback_fail_refuses_to_skip_events(conn: OrgConnection, checkpoint: str) -> None:
    source = OrgPubSubSource(conn, CASE_CLOSED, fallback="fail")
    source.open(checkpoint)
    try:
        with pytest.raises(ReplayIdInvalid, match="fallback is 'fail'") as refused:
            read_until(source, 1, within=5)
    finally:
        source.close()
    assert "replayid" in refused.value.error_code  # ...validation.failed or ...corrupted, from the org
    assert source.fallbacks == []


def test_fallback_earliest_replays_what_the_org_keeps_and_says_so(conn: OrgConnection) -> None:
    case = tag()
    assert conn.publish("Case_Closed__e", [{"CaseId__c": case}])[0].success
    source = OrgPubSubSource(conn, CASE_CLOSED, fallback="earliest")
    source.open(FAR_AHEAD)
    try:
        messages: list[Message] = []
        deadline = time.monotonic() + 10
        while not any(m.body.get("CaseId__c") == case for m in messages) and time.monotonic() < deadline:
            messages += source.read(100, 0.5)
    finally:
        source.close()
    assert any(m.body.get("CaseId__c") == case for m in messages)  # from the earliest retained event on
    assert messages[0].headers["replay_fallback"] == "earliest"
    assert "replay_fallback" not in messages[-1].headers or len(messages) == 1
    (fallback,) = source.fallbacks
    assert fallback["from"] == FAR_AHEAD and fallback["to"] == "earliest" and "Replay ID" in fallback["reason"]


def test_change_events_carry_their_header_and_field_names(conn: OrgConnection) -> None:
    account = conn.post("sobjects/Account", {"Name": f"cdc-{tag()}"})["id"]
    subscription = conn.subscribe("/data/AccountChangeEvent", "latest", batch=10)
    source = OrgPubSubSource(conn, "/data/AccountChangeEvent")
    source.subscription = subscription
    try:
        assert subscription.poll(1, 0.5) == []  # the stream is open at the tip now
        conn.patch(f"sobjects/Account/{account}", {"Name": "renamed", "Industry": "Energy"})
        (message,) = read_until(source, 1)
    finally:
        source.close()
    header = message.body["ChangeEventHeader"]
    assert header["changeType"] == "UPDATE" and header["recordIds"] == [account]
    assert {"Name", "Industry"} <= set(header["changedFields"])  # bitmaps expanded to field names
    assert message.id == f"{header['transactionKey']}:{header['sequenceNumber']}"
    assert message.key == account and message.headers["timestamp"] == header["commitTimestamp"]
    assert message.body["Name"] == "renamed"


def test_the_watchdog_reopens_a_silent_stream(conn: OrgConnection) -> None:
    start = marker(conn, PRINTER, AssetId__c="marker")
    # The live server sends keep-alives every 270 s, so with a 0.3 s watchdog an idle stream looks stalled.
    subscription = conn.subscribe(PRINTER, "custom", start, watchdog=0.3)
    try:
        deadline = time.monotonic() + 5
        while subscription.stalls < 2 and time.monotonic() < deadline:
            assert subscription.poll(10, 0.2) == []
        assert subscription.stalls >= 2 and subscription.reopened >= 2
        asset = tag()
        assert conn.publish("Printer_Status__e", [{"AssetId__c": asset}])[0].success
        received = []
        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:
            received = subscription.poll(10, 0.5)  # the reopened stream still delivers, after the marker
    finally:
        subscription.close()
    assert [event.payload["AssetId__c"] for event in received] == [asset]


def test_an_unknown_topic_fails_at_open(conn: OrgConnection) -> None:
    source = OrgPubSubSource(conn, "/event/No_Such_Event__e")
    with pytest.raises(OrgRejected, match="NOT_FOUND"):
        source.open(None)


def test_the_factory_checks_its_configuration(conn: OrgConnection, tmp_path: Path) -> None:
    context = SimpleNamespace(connections={"default": conn}, validating=False)
    source = make_pubsub_source({"topic": PRINTER, "fallback": "earliest", "watchdog": 0}, context)
    assert source.connection is conn and source.fallback == "earliest" and source.watchdog is None
    for config, key in [({}, "topic"), ({"topic": PRINTER, "replay": "custom"}, "replay"),
                        ({"topic": PRINTER, "fallback": "skip"}, "fallback"),
                        ({"topic": PRINTER, "batch": 500}, "batch"),
                        ({"topic": PRINTER, "connection": "prod"}, "connection")]:
        with pytest.raises(PipelineSpecError) as bad:
            make_pubsub_source(config, context)
        assert bad.value.key == (key,)
    validating = SimpleNamespace(connections={}, validating=True)
    assert make_pubsub_source({"topic": PRINTER, "connection": "prod"}, validating).connection is None


def test_fallback_latest_skips_to_new_events_and_records_it(conn: OrgConnection) -> None:
    assert conn.publish("Case_Closed__e", [{"CaseId__c": tag()}])[0].success  # an old event it must not replay
    source = OrgPubSubSource(conn, CASE_CLOSED, fallback="latest")
    source.open(FAR_AHEAD)
    try:
        assert source.read(10, 0.5) == []
    finally:
        source.close()
    assert [(f["from"], f["to"]) for f in source.fallbacks] == [(FAR_AHEAD, "latest")]


# -- without a server ------------------------------------------------------------------------------------------


class FlakySubscription:
    """Gives up once (the org was unavailable too long), having received up to replay id 7."""

    def __init__(self, fail: bool) -> None:
        self.fail = fail
        self.resume_after = (7).to_bytes(8, "big") if fail else None
        self.closed = False

    def poll(self, max_events: int, timeout: float) -> list[Any]:
        if self.fail:
            from interlink.middleware.orgapi import OrgUnavailable

            raise OrgUnavailable("Subscribe: UNAVAILABLE")
        return []

    def close(self) -> None:
        self.closed = True


class FakeConnection:
    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes | None]] = []

    def subscribe(self, topic: str, preset: str, replay_id: bytes | None, batch: int, **options: Any) -> Any:
        self.calls.append((preset, replay_id))
        return FlakySubscription(fail=len(self.calls) == 1)


def test_after_giving_up_the_source_resubscribes_after_the_last_replay_id() -> None:
    from interlink.middleware.base import RetryableError

    fake = FakeConnection()
    source = OrgPubSubSource(fake, PRINTER)  # type: ignore[arg-type]
    source.open((3).to_bytes(8, "big").hex())
    with pytest.raises(RetryableError):
        source.read(10, 0.1)  # the runtime backs off and reads again
    assert source.read(10, 0.1) == []
    assert fake.calls == [("custom", (3).to_bytes(8, "big")), ("custom", (7).to_bytes(8, "big"))]


def test_change_event_bitmaps_become_field_names() -> None:
    from interlink.middleware.sources.org import expand_field_bitmaps

    name = {"type": "record", "name": "Name", "fields": [{"name": "Salutation"}, {"name": "FirstName"},
                                                          {"name": "LastName"}]}
    schema = {"fields": [{"name": "ChangeEventHeader"}, {"name": "Name", "type": ["null", name]},
                         {"name": "Email"}, {"name": "Phone"}]}
    header = {"changedFields": ["0x0C", "1-0x06"], "nulledFields": ["0x08"], "diffFields": []}
    expand_field_bitmaps(header, schema)
    assert header == {"changedFields": ["Email", "Phone", "Name.FirstName", "Name.LastName"],
                      "nulledFields": ["Phone"], "diffFields": []}
