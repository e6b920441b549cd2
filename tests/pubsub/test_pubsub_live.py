"""The Pub/Sub API (``eventbus.v1.PubSub`` over gRPC + TLS) of a real ``interlink up``, with the generated client.

One server for the module (sample data: platform events Order_Request__e, Printer_Status__e, Payment_Received__e,
Case_Closed__e; CDC for Account, Contact, Opportunity, Order, Case), with a one-second keep-alive so idle
subscriptions answer quickly. Subscriptions run in a :class:`Stream`: the request iterator blocks on a queue
(so the stream stays open until the test is done), a reader thread collects the responses, and the call is
cancelled on exit. Records are written through REST with httpx; events are published through REST and through
the Pub/Sub API. Managed subscriptions are created with ``interlink events subscription create``.
"""

from __future__ import annotations

import io
import json
import queue
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fastavro
import grpc
import httpx
import pytest

from interlink import ids
from interlink.bus.avro import bitmap_positions
from interlink.pubsub._proto import pubsub_api_pb2 as pb
from interlink.pubsub._proto import pubsub_api_pb2_grpc as pb_grpc
from interlink.testing import LiveServer, live_server, run_cli

pytestmark = pytest.mark.live

API = "/services/data/v66.0"
ADMIN = "admin@interlink.local"
ERROR_PREFIX = "sfdc.platform.eventbus.grpc."
_END = object()


# -- fixtures ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("pubsub"), extra_args=("--sample-data",),
                     env={"INTERLINK_PUBSUB_KEEPALIVE_SECONDS": "1"}) as running:
        assert running.grpc_port, "interlink up did not report a Pub/Sub port"
        yield running


@pytest.fixture(scope="module")
def token(server: LiveServer) -> str:
    return server.token()


@pytest.fixture(scope="module")
def md(server: LiveServer, token: str) -> tuple[tuple[str, str], ...]:
    return (("accesstoken", token), ("instanceurl", server.url), ("tenantid", server.org_id))


@pytest.fixture(scope="module")
def stub(server: LiveServer) -> Iterator[pb_grpc.PubSubStub]:
    credentials = grpc.ssl_channel_credentials(root_certificates=Path(server.ca_bundle).read_bytes())
    with grpc.secure_channel(server.grpc_target, credentials) as channel:
        yield pb_grpc.PubSubStub(channel)


@pytest.fixture(scope="module")
def http(server: LiveServer, token: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, verify=ssl.create_default_context(cafile=server.ca_bundle),
                      headers={"Authorization": f"Bearer {token}"}, timeout=10, trust_env=False) as client:
        yield client


@pytest.fixture(scope="module")
def admin_id(http: httpx.Client) -> str:
    answer = http.get(f"{API}/query", params={"q": f"SELECT Id FROM User WHERE Username = '{ADMIN}'"})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["records"][0]["Id"])


@pytest.fixture(scope="module")
def schemas(stub: pb_grpc.PubSubStub, md: Any) -> Callable[[str], dict[str, Any]]:
    """Schema JSON (as a dict) by schema id, fetched once through GetSchema."""
    cache: dict[str, dict[str, Any]] = {}

    def get(schema_id: str) -> dict[str, Any]:
        if schema_id not in cache:
            cache[schema_id] = json.loads(stub.GetSchema(pb.SchemaRequest(schema_id=schema_id), metadata=md,
                                                         timeout=5).schema_json)
        return cache[schema_id]

    return get


# -- helpers -------------------------------------------------------------------------------------------------


class Stream:
    """A Subscribe / ManagedSubscribe call held open until closed; responses are collected by a thread."""

    def __init__(self, method: Any, first: Any, metadata: Any) -> None:
        self._requests: queue.Queue[Any] = queue.Queue()
        self._requests.put(first)
        self._incoming: queue.Queue[Any] = queue.Queue()
        self.responses: list[Any] = []
        self.error: grpc.RpcError | None = None
        self.ended = False
        self.call = method(self._outgoing(), metadata=metadata, timeout=25)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _outgoing(self) -> Iterator[Any]:
        while True:
            request = self._requests.get()
            if request is None:
                return
            yield request

    def _read(self) -> None:
        try:
            for response in self.call:
                self._incoming.put(response)
        except grpc.RpcError as error:
            self.error = error
        finally:
            self._incoming.put(_END)

    def send(self, request: Any) -> None:
        self._requests.put(request)

    def collect(self, until: Callable[[list[Any]], bool], within: float) -> list[Any]:
        """Gather responses until ``until(all responses so far)`` holds, the stream ends or ``within`` passes."""
        deadline = time.monotonic() + within
        while not until(self.responses) and not self.ended:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                item = self._incoming.get(timeout=remaining)
            except queue.Empty:
                break
            if item is _END:
                self.ended = True
            else:
                self.responses.append(item)
        return self.responses

    def events(self) -> list[pb.ConsumerEvent]:
        return [event for response in self.responses for event in response.events]

    def wait_events(self, count: int, within: float = 5.0) -> list[pb.ConsumerEvent]:
        self.collect(lambda _: len(self.events()) >= count, within)
        return self.events()

    def wait_ready(self, within: float = 4.0) -> Any:
        """The first response (the keep-alive of an idle subscription): the server has placed the subscription."""
        self.collect(lambda responses: bool(responses), within)
        assert self.responses, f"no response within {within}s (error: {self.error})"
        return self.responses[0]

    def idle(self, seconds: float) -> list[Any]:
        """Responses that arrive in the next ``seconds``."""
        before = len(self.responses)
        self.collect(lambda _: False, seconds)
        return self.responses[before:]

    def wait_error(self, within: float = 5.0) -> grpc.RpcError:
        self.collect(lambda _: False, within)
        assert self.ended, f"the stream did not end within {within}s"
        assert self.error is not None, "the stream ended without an error"
        return self.error

    def close(self) -> None:
        self._requests.put(None)
        self.call.cancel()
        self._reader.join(timeout=5)

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def subscribe(stub: pb_grpc.PubSubStub, md: Any, topic: str, preset: int = pb.LATEST, num_requested: int = 100,
              replay_id: bytes = b"") -> Stream:
    return Stream(stub.Subscribe, pb.FetchRequest(topic_name=topic, replay_preset=preset, replay_id=replay_id,
                                                  num_requested=num_requested), md)


def encode(schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(schema), record)
    return buffer.getvalue()


def decode(schema: dict[str, Any], payload: bytes) -> dict[str, Any]:
    buffer = io.BytesIO(payload)
    record = fastavro.schemaless_reader(buffer, fastavro.parse_schema(schema), None)
    assert buffer.tell() == len(payload), "bytes left over after the datum"
    return record  # type: ignore[return-value]


def replay(raw: bytes) -> int:
    assert len(raw) == 8, raw
    return int.from_bytes(raw, "big")


def topic_schema(stub: pb_grpc.PubSubStub, md: Any, schemas: Callable[[str], dict[str, Any]],
                 topic: str) -> tuple[str, dict[str, Any]]:
    info = stub.GetTopic(pb.TopicRequest(topic_name=topic), metadata=md, timeout=5)
    return info.schema_id, schemas(info.schema_id)


def grpc_publish(stub: pb_grpc.PubSubStub, md: Any, schemas: Callable[[str], dict[str, Any]], topic: str,
                 records: list[dict[str, Any]]) -> list[pb.PublishResult]:
    """Publish events through the Pub/Sub API; asserts every one was accepted."""
    schema_id, schema = topic_schema(stub, md, schemas, topic)
    base = {"CreatedDate": 0, "CreatedById": "005000000000000AAA", "EventUuid": None}
    events = [pb.ProducerEvent(id=f"k{i}", schema_id=schema_id, payload=encode(schema, {**base, **record}))
              for i, record in enumerate(records)]
    response = stub.Publish(pb.PublishRequest(topic_name=topic, events=events), metadata=md, timeout=10)
    assert [r.correlation_key for r in response.results] == [e.id for e in events]
    assert all(not r.HasField("error") and r.replay_id for r in response.results), response
    return list(response.results)


def rest_publish(http: httpx.Client, event: str, values: dict[str, Any]) -> str:
    """Publish a platform event through REST; returns the event uuid the server reports."""
    answer = http.post(f"{API}/sobjects/{event}/", json=values)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["success"] is True
    assert [e["statusCode"] for e in body["errors"]] == ["OPERATION_ENQUEUED"]
    return str(uuid.UUID(body["errors"][0]["message"]))


def assert_rpc_error(error: grpc.RpcError, code: grpc.StatusCode, error_code: str) -> None:
    assert error.code() == code, (error.code(), error.details())
    trailers = dict(error.trailing_metadata() or ())
    assert trailers.get("error-code") == ERROR_PREFIX + error_code, trailers
    assert "rpcId: " in (error.details() or ""), error.details()
    assert trailers.get("rpc-id") and (error.details() or "").endswith(trailers["rpc-id"])


def unary_error(call: Callable[..., Any], request: Any, metadata: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, metadata=metadata, timeout=5)
    return caught.value


def field_names(schema: dict[str, Any]) -> list[str]:
    return [f["name"] for f in schema["fields"]]


def create_account(http: httpx.Client, values: dict[str, Any]) -> str:
    answer = http.post(f"{API}/sobjects/Account/", json=values)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


# -- 1. topics and schemas -------------------------------------------------------------------------------------


def test_get_topic_and_schema(stub: pb_grpc.PubSubStub, md: Any, server: LiveServer) -> None:
    order = stub.GetTopic(pb.TopicRequest(topic_name="/event/Order_Request__e"), metadata=md, timeout=5)
    assert order.topic_name == "/event/Order_Request__e"
    assert order.can_publish is True
    assert order.can_subscribe is True
    assert order.schema_id
    assert order.tenant_guid == server.org_id
    assert order.rpc_id

    account = stub.GetTopic(pb.TopicRequest(topic_name="/data/AccountChangeEvent"), metadata=md, timeout=5)
    assert account.topic_name == "/data/AccountChangeEvent"
    assert account.can_publish is False
    assert account.can_subscribe is True
    assert account.schema_id and account.schema_id != order.schema_id
    assert account.tenant_guid == server.org_id

    everything = stub.GetTopic(pb.TopicRequest(topic_name="/data/ChangeEvents"), metadata=md, timeout=5)
    assert everything.topic_name == "/data/ChangeEvents"
    assert everything.can_publish is False
    assert everything.can_subscribe is True
    assert everything.tenant_guid == server.org_id

    info = stub.GetSchema(pb.SchemaRequest(schema_id=order.schema_id), metadata=md, timeout=5)
    assert info.schema_id == order.schema_id
    schema = json.loads(info.schema_json)
    assert schema["type"] == "record"
    assert schema["name"] == "Order_Request__e"
    assert [(f["name"], f["type"]) for f in schema["fields"][:2]] == [("CreatedDate", "long"),
                                                                        ("CreatedById", "string")]
    assert schema["fields"][2]["name"] == "EventUuid"
    assert field_names(schema)[3:] == ["OpportunityId__c", "AccountId__c", "Amount__c"]
    fastavro.parse_schema(schema)  # valid Avro

    change = json.loads(stub.GetSchema(pb.SchemaRequest(schema_id=account.schema_id), metadata=md,
                                       timeout=5).schema_json)
    assert change["name"] == "AccountChangeEvent"
    assert change["fields"][0]["name"] == "ChangeEventHeader"
    assert "Name" in field_names(change) and "Id" not in field_names(change)


# -- 2. REST publish, gRPC receive -----------------------------------------------------------------------------


def test_rest_published_event_reaches_a_latest_subscriber(stub: pb_grpc.PubSubStub, md: Any, http: httpx.Client,
                                                          schemas: Any, admin_id: str) -> None:
    with subscribe(stub, md, "/event/Printer_Status__e", num_requested=10) as sub:
        first = sub.wait_ready()
        assert not first.events and len(first.latest_replay_id) == 8  # an empty keep-alive
        before = time.time() * 1000
        answer = http.post(f"{API}/sobjects/Printer_Status__e/",
                           json={"AssetId__c": "02i000000000001", "InkLevel__c": 42.5, "PaperLevel__c": 7})
        assert answer.status_code == 201, answer.text
        body = answer.json()
        assert body["success"] is True
        assert len(body["errors"]) == 1
        assert body["errors"][0]["statusCode"] == "OPERATION_ENQUEUED"
        event_uuid = body["errors"][0]["message"]
        assert str(uuid.UUID(event_uuid)) == event_uuid

        events = sub.wait_events(1)
        sub.idle(1.2)
        events = sub.events()
    assert len(events) == 1, events
    received = events[0]
    assert replay(received.replay_id) > replay(first.latest_replay_id)
    schema = schemas(received.event.schema_id)
    assert schema["name"] == "Printer_Status__e"
    record = decode(schema, received.event.payload)
    assert record["AssetId__c"] == "02i000000000001"
    assert record["InkLevel__c"] == 42.5
    assert record["PaperLevel__c"] == 7.0
    assert record["EventUuid"] == event_uuid
    assert received.event.id == event_uuid
    assert record["CreatedById"] == admin_id
    assert before - 5000 <= record["CreatedDate"] <= time.time() * 1000 + 5000


# -- 3. replay -------------------------------------------------------------------------------------------------


def test_replay_earliest_and_custom(stub: pb_grpc.PubSubStub, md: Any, schemas: Any) -> None:
    topic = "/event/Order_Request__e"
    results = grpc_publish(stub, md, schemas, topic, [{"OpportunityId__c": f"replay-{i}"} for i in range(3)])
    r1, r2, r3 = (replay(r.replay_id) for r in results)
    assert r1 < r2 < r3

    with (subscribe(stub, md, topic, pb.EARLIEST) as earliest,
          subscribe(stub, md, topic, pb.CUSTOM, replay_id=results[0].replay_id) as after_first,
          subscribe(stub, md, topic, pb.CUSTOM, replay_id=results[2].replay_id) as after_last):
        earliest.collect(lambda _: r3 in [replay(e.replay_id) for e in earliest.events()], 5)
        after_first.wait_events(2)
        after_last.wait_ready()
        extra = after_first.idle(0.3)  # nothing beyond the two

    seen = [replay(e.replay_id) for e in earliest.events()]
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    assert [r for r in seen if r >= r1] == [r1, r2, r3]
    assert seen[0] <= r1

    assert [replay(e.replay_id) for e in after_first.events()] == [r2, r3]
    assert all(not r.events for r in extra)
    assert after_last.events() == []
    assert replay(after_last.responses[0].latest_replay_id) == r3


# -- 4. flow control -------------------------------------------------------------------------------------------


def test_flow_control_delivers_only_what_was_requested(stub: pb_grpc.PubSubStub, md: Any, schemas: Any) -> None:
    topic = "/event/Payment_Received__e"
    grpc_publish(stub, md, schemas, topic, [{"Amount__c": float(i), "Status__c": "flow"} for i in range(30)])
    with subscribe(stub, md, topic, pb.EARLIEST, num_requested=5) as sub:
        sub.wait_events(5)
        after = sub.idle(2.2)
        assert len(sub.events()) == 5
        first_batch = list(sub.responses)
        sub.send(pb.FetchRequest(num_requested=10))
        sub.wait_events(15)
        sub.idle(1.2)
    events = sub.events()
    assert len(events) == 15, [len(r.events) for r in sub.responses]
    seen = [replay(e.replay_id) for e in events]
    assert seen == sorted(seen) and len(set(seen)) == 15

    with_events = [r for r in first_batch if r.events]
    assert [r.pending_num_requested for r in with_events][-1] == 0
    assert sum(len(r.events) for r in with_events) == 5
    for response in with_events:
        assert replay(response.latest_replay_id) == replay(response.events[-1].replay_id)
    keepalives = [r for r in after if not r.events]
    assert keepalives and len(keepalives) == len(after), "only empty keep-alives once the credit is spent"
    for keepalive in keepalives:
        assert keepalive.pending_num_requested == 0
        assert replay(keepalive.latest_replay_id) == seen[4]
    assert [r.pending_num_requested for r in sub.responses if r.events][-1] == 0


def test_credit_is_capped_at_100(stub: pb_grpc.PubSubStub, md: Any, schemas: Any) -> None:
    topic = "/event/Case_Closed__e"
    grpc_publish(stub, md, schemas, topic, [{"CaseId__c": f"cap-{i}"} for i in range(130)])
    with subscribe(stub, md, topic, pb.EARLIEST, num_requested=500) as sub:
        sub.wait_events(100)
        sub.idle(1.3)
    assert len(sub.events()) == 100
    assert all(r.pending_num_requested <= 100 for r in sub.responses)
    assert [r.pending_num_requested for r in sub.responses if r.events][-1] == 0


# -- 5, 6. publishing through the Pub/Sub API ------------------------------------------------------------------


def test_publish_reaches_concurrent_subscribers(stub: pb_grpc.PubSubStub, md: Any, schemas: Any,
                                                admin_id: str) -> None:
    topic = "/event/Order_Request__e"
    schema_id, schema = topic_schema(stub, md, schemas, topic)
    with subscribe(stub, md, topic) as one, subscribe(stub, md, topic) as two:
        one.wait_ready()
        two.wait_ready()
        payload = encode(schema, {"CreatedDate": 1, "CreatedById": "005000000000000AAA", "EventUuid": "mine",
                                  "OpportunityId__c": "006000000000001", "AccountId__c": None, "Amount__c": 12.5})
        before = time.time() * 1000
        response = stub.Publish(pb.PublishRequest(topic_name=topic, events=[
            pb.ProducerEvent(id="producer-1", schema_id=schema_id, payload=payload)]), metadata=md, timeout=5)
        assert response.schema_id == schema_id
        assert response.rpc_id
        [result] = response.results
        assert result.correlation_key == "producer-1"
        assert not result.HasField("error")
        published = replay(result.replay_id)
        one.wait_events(1)
        two.wait_events(1)
    for sub in (one, two):
        [event] = sub.events()
        assert replay(event.replay_id) == published
        record = decode(schemas(event.event.schema_id), event.event.payload)
        assert record["OpportunityId__c"] == "006000000000001"
        assert record["AccountId__c"] is None
        assert record["Amount__c"] == 12.5
        assert record["CreatedById"] == admin_id
        assert record["CreatedDate"] >= before - 5000
        assert record["EventUuid"] not in (None, "mine")
        assert event.event.id == record["EventUuid"]


def test_publish_stream(stub: pb_grpc.PubSubStub, md: Any, schemas: Any) -> None:
    topic = "/event/Printer_Status__e"
    schema_id, schema = topic_schema(stub, md, schemas, topic)
    base = {"CreatedDate": 0, "CreatedById": "x", "EventUuid": None, "AssetId__c": None, "PaperLevel__c": None}
    requests = [
        pb.PublishRequest(topic_name=topic, events=[
            pb.ProducerEvent(id="s1", schema_id=schema_id, payload=encode(schema, {**base, "InkLevel__c": 1.0}))]),
        pb.PublishRequest(events=[
            pb.ProducerEvent(id="s2", schema_id=schema_id, payload=encode(schema, {**base, "InkLevel__c": 2.0}))]),
    ]
    responses = list(stub.PublishStream(iter(requests), metadata=md, timeout=10))
    assert len(responses) == 2
    assert [[r.correlation_key for r in response.results] for response in responses] == [["s1"], ["s2"]]
    assert all(not r.HasField("error") for response in responses for r in response.results)
    first, second = (replay(response.results[0].replay_id) for response in responses)
    assert first < second


# -- 7, 8, 9. change data capture -------------------------------------------------------------------------------


def test_change_events_for_create_update_delete(stub: pb_grpc.PubSubStub, md: Any, http: httpx.Client,
                                                schemas: Any, admin_id: str) -> None:
    # REST has no undelete (no sObject resource or composite call restores from the recycle bin), so
    # UNDELETE is not exercised here.
    name = f"CDC {uuid.uuid4().hex[:8]}"
    with subscribe(stub, md, "/data/AccountChangeEvent") as sub:
        sub.wait_ready()
        account_id = create_account(http, {"Name": name, "Phone": "555-0100", "Industry": "Energy"})
        patched = http.patch(f"{API}/sobjects/Account/{account_id}", json={"Name": name + " v2", "Phone": None})
        assert patched.status_code == 204, patched.text
        deleted = http.delete(f"{API}/sobjects/Account/{account_id}")
        assert deleted.status_code == 204, deleted.text
        events = sub.wait_events(3)
    assert len(events) == 3
    schema = schemas(events[0].event.schema_id)
    assert schema["name"] == "AccountChangeEvent"
    names = field_names(schema)
    body_fields = names[1:]
    records = [decode(schemas(e.event.schema_id), e.event.payload) for e in events]
    headers = [r["ChangeEventHeader"] for r in records]
    assert [h["changeType"] for h in headers] == ["CREATE", "UPDATE", "DELETE"]
    for header in headers:
        assert header["entityName"] == "Account"
        assert header["recordIds"] == [account_id]
        assert header["commitUser"] == admin_id
        assert header["changeOrigin"].startswith("com/salesforce/api/rest/"), header["changeOrigin"]
        assert header["sequenceNumber"] == 1
    assert len({h["transactionKey"] for h in headers}) == 3
    assert headers[0]["commitNumber"] < headers[1]["commitNumber"] < headers[2]["commitNumber"]

    created, updated, removed = records
    assert created["Name"] == name and created["Phone"] == "555-0100" and created["Industry"] == "Energy"
    assert created["CreatedById"] == admin_id
    assert headers[0]["changedFields"] == [] and headers[0]["nulledFields"] == []

    changed = {names[p] for p in bitmap_positions(headers[1]["changedFields"][0])}
    assert changed == {"Name", "Phone", "LastModifiedDate"}
    assert len(headers[1]["changedFields"]) == 1
    assert [names[p] for p in bitmap_positions(headers[1]["nulledFields"][0])] == ["Phone"]
    assert updated["Name"] == name + " v2"
    assert updated["Phone"] is None
    assert isinstance(updated["LastModifiedDate"], int)
    assert {f for f in body_fields if updated[f] is not None} == {"Name", "LastModifiedDate"}

    assert all(removed[f] is None for f in body_fields)
    assert headers[2]["changedFields"] == [] and headers[2]["nulledFields"] == []


def test_rolled_back_collection_emits_no_change_event(stub: pb_grpc.PubSubStub, md: Any, http: httpx.Client,
                                                      schemas: Any) -> None:
    tag = uuid.uuid4().hex[:8]
    with subscribe(stub, md, "/data/AccountChangeEvent") as sub:
        start = sub.wait_ready()
        answer = http.post(f"{API}/composite/sobjects", json={"allOrNone": True, "records": [
            {"attributes": {"type": "Account"}, "Name": f"rolled back {tag}"},
            {"attributes": {"type": "Account"}, "Phone": "555-0199"},
        ]})
        assert answer.status_code == 200, answer.text
        results = answer.json()
        assert [r["success"] for r in results] == [False, False]
        assert results[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
        assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
        quiet = sub.idle(2.0)
        assert quiet, "no keep-alive while idle"
        assert all(not r.events for r in quiet)
        assert all(r.latest_replay_id == start.latest_replay_id for r in quiet)
        account_id = create_account(http, {"Name": f"kept {tag}"})
        events = sub.wait_events(1)
    assert len(events) == 1
    header = decode(schemas(events[0].event.schema_id), events[0].event.payload)["ChangeEventHeader"]
    assert header["changeType"] == "CREATE"
    assert header["recordIds"] == [account_id]


def _composite(tag: str, *, fail: bool) -> dict[str, Any]:
    requests: list[dict[str, Any]] = [
        {"method": "POST", "url": f"{API}/sobjects/Account", "referenceId": "acc", "body": {"Name": f"comp {tag}"}},
        {"method": "POST", "url": f"{API}/sobjects/Order_Request__e", "referenceId": "evt",
         "body": {"AccountId__c": "@{acc.id}", "OpportunityId__c": tag, "Amount__c": 99}},
    ]
    if fail:
        requests.append({"method": "POST", "url": f"{API}/sobjects/Account", "referenceId": "bad",
                         "body": {"Phone": "555-0000"}})
    return {"allOrNone": True, "compositeRequest": requests}


def test_failed_composite_emits_neither_change_nor_after_commit_event(stub: pb_grpc.PubSubStub, md: Any,
                                                                      http: httpx.Client, schemas: Any) -> None:
    tag = uuid.uuid4().hex[:8]
    with (subscribe(stub, md, "/data/AccountChangeEvent") as changes,
          subscribe(stub, md, "/event/Order_Request__e") as orders):
        changes.wait_ready()
        orders.wait_ready()
        failed = http.post(f"{API}/composite", json=_composite(tag + "x", fail=True))
        assert failed.status_code == 200, failed.text
        outcomes = failed.json()["compositeResponse"]
        assert [r["httpStatusCode"] for r in outcomes] == [400, 400, 400], outcomes
        assert [r["body"][0]["errorCode"] for r in outcomes] == ["PROCESSING_HALTED", "PROCESSING_HALTED",
                                                                  "REQUIRED_FIELD_MISSING"]
        quiet_changes = changes.idle(1.2)
        assert all(not r.events for r in quiet_changes) and orders.events() == []

        answer = http.post(f"{API}/composite", json=_composite(tag, fail=False))
        assert answer.status_code == 200, answer.text
        responses = answer.json()["compositeResponse"]
        assert [r["httpStatusCode"] for r in responses] == [201, 201], responses
        account_id = responses[0]["body"]["id"]
        changes.wait_events(1)
        orders.wait_events(1)
        changes.idle(0.3)
    # The first events either subscriber sees are the successful composite's: the failed one left none.
    assert len(changes.events()) == 1 and len(orders.events()) == 1
    header = decode(schemas(changes.events()[0].event.schema_id), changes.events()[0].event.payload)
    assert header["ChangeEventHeader"]["recordIds"] == [account_id]
    assert header["ChangeEventHeader"]["changeType"] == "CREATE"
    order = decode(schemas(orders.events()[0].event.schema_id), orders.events()[0].event.payload)
    assert order["AccountId__c"] == account_id
    assert order["OpportunityId__c"] == tag
    assert order["Amount__c"] == 99.0


# -- 10. errors ------------------------------------------------------------------------------------------------


def test_authentication_errors(stub: pb_grpc.PubSubStub, server: LiveServer, token: str) -> None:
    request = pb.TopicRequest(topic_name="/event/Order_Request__e")
    missing = unary_error(stub.GetTopic, request, (("instanceurl", server.url), ("tenantid", server.org_id)))
    assert_rpc_error(missing, grpc.StatusCode.UNAUTHENTICATED, "service.auth.error")
    bad = unary_error(stub.GetTopic, request, (("accesstoken", token[:-4] + "AAAA"), ("instanceurl", server.url),
                                               ("tenantid", server.org_id)))
    assert_rpc_error(bad, grpc.StatusCode.UNAUTHENTICATED, "service.auth.error")
    other_org = ids.new_id("00D")
    wrong = unary_error(stub.GetTopic, request, (("accesstoken", token), ("instanceurl", server.url),
                                                 ("tenantid", other_org)))
    assert_rpc_error(wrong, grpc.StatusCode.UNAUTHENTICATED, "service.auth.error")
    # Subscribing needs the same authentication.
    with Stream(stub.Subscribe, pb.FetchRequest(topic_name="/event/Order_Request__e", num_requested=1),
                (("accesstoken", "nope"),)) as sub:
        assert_rpc_error(sub.wait_error(), grpc.StatusCode.UNAUTHENTICATED, "service.auth.error")


def test_unknown_topic_and_schema(stub: pb_grpc.PubSubStub, md: Any) -> None:
    for name in ("/event/Nope__e", "/data/NopeChangeEvent", "Order_Request__e", "/event/Account"):
        error = unary_error(stub.GetTopic, pb.TopicRequest(topic_name=name), md)
        assert_rpc_error(error, grpc.StatusCode.NOT_FOUND, "topic.not.found")
    error = unary_error(stub.GetSchema, pb.SchemaRequest(schema_id="not-a-schema"), md)
    assert_rpc_error(error, grpc.StatusCode.NOT_FOUND, "schema.not.found")
    with subscribe(stub, md, "/event/Nope__e") as sub:
        assert_rpc_error(sub.wait_error(), grpc.StatusCode.NOT_FOUND, "topic.not.found")


def test_bad_replay_ids(stub: pb_grpc.PubSubStub, md: Any) -> None:
    topic = "/event/Order_Request__e"
    with (subscribe(stub, md, topic, pb.CUSTOM, replay_id=b"\x01\x02\x03") as corrupted,
          subscribe(stub, md, topic, pb.CUSTOM, replay_id=(2**40).to_bytes(8, "big")) as future):
        assert_rpc_error(corrupted.wait_error(), grpc.StatusCode.INVALID_ARGUMENT,
                         "subscription.fetch.replayid.corrupted")
        assert_rpc_error(future.wait_error(), grpc.StatusCode.INVALID_ARGUMENT,
                         "subscription.fetch.replayid.validation.failed")
    assert corrupted.events() == [] and future.events() == []


def test_second_fetch_request_for_another_topic(stub: pb_grpc.PubSubStub, md: Any) -> None:
    with subscribe(stub, md, "/event/Order_Request__e", num_requested=1) as sub:
        sub.wait_ready()
        sub.send(pb.FetchRequest(topic_name="/event/Printer_Status__e", num_requested=1))
        assert_rpc_error(sub.wait_error(), grpc.StatusCode.INVALID_ARGUMENT, "service.invalid.argument")


def test_invalid_fetch_requests(stub: pb_grpc.PubSubStub, md: Any) -> None:
    with (Stream(stub.Subscribe, pb.FetchRequest(num_requested=1), md) as no_topic,
          subscribe(stub, md, "/event/Order_Request__e", num_requested=-1) as negative):
        assert_rpc_error(no_topic.wait_error(), grpc.StatusCode.INVALID_ARGUMENT, "service.invalid.argument")
        assert_rpc_error(negative.wait_error(), grpc.StatusCode.INVALID_ARGUMENT, "service.invalid.argument")


def test_publish_stream_errors(stub: pb_grpc.PubSubStub, md: Any) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        list(stub.PublishStream(iter([pb.PublishRequest()]), metadata=md, timeout=5))
    assert_rpc_error(caught.value, grpc.StatusCode.INVALID_ARGUMENT, "service.invalid.argument")
    other = [pb.PublishRequest(topic_name="/event/Printer_Status__e"),
             pb.PublishRequest(topic_name="/event/Order_Request__e")]
    received: list[pb.PublishResponse] = []
    with pytest.raises(grpc.RpcError) as caught:
        received.extend(stub.PublishStream(iter(other), metadata=md, timeout=5))
    assert len(received) == 1 and not received[0].results  # the first request (no events) was answered
    assert_rpc_error(caught.value, grpc.StatusCode.INVALID_ARGUMENT, "service.invalid.argument")
    assert "/event/Order_Request__e" in (caught.value.details() or "")


def test_publish_errors(stub: pb_grpc.PubSubStub, md: Any, schemas: Any) -> None:
    change_id, _ = topic_schema(stub, md, schemas, "/data/AccountChangeEvent")
    denied = unary_error(stub.Publish, pb.PublishRequest(topic_name="/data/AccountChangeEvent", events=[
        pb.ProducerEvent(id="c", schema_id=change_id, payload=b"\x00")]), md)
    assert_rpc_error(denied, grpc.StatusCode.PERMISSION_DENIED, "service.permission.denied")

    topic = "/event/Printer_Status__e"
    schema_id, schema = topic_schema(stub, md, schemas, topic)
    good = encode(schema, {"CreatedDate": 0, "CreatedById": "x", "EventUuid": None, "AssetId__c": "ok",
                           "InkLevel__c": None, "PaperLevel__c": None})
    too_many = unary_error(stub.Publish, pb.PublishRequest(topic_name=topic, events=[
        pb.ProducerEvent(id=str(i), schema_id=schema_id, payload=good) for i in range(201)]), md)
    assert_rpc_error(too_many, grpc.StatusCode.INVALID_ARGUMENT, "service.invalid.argument")

    with subscribe(stub, md, topic) as sub:
        sub.wait_ready()
        response = stub.Publish(pb.PublishRequest(topic_name=topic, events=[
            pb.ProducerEvent(id="unknown-schema", schema_id="AAAAAAAAAAAAAAAAAAAAAA", payload=good),
            pb.ProducerEvent(id="other-topic-schema", schema_id=change_id, payload=good),
            pb.ProducerEvent(id="garbage", schema_id=schema_id, payload=b"\xff\xff\xff\xff\xff\xff"),
            pb.ProducerEvent(id="trailing", schema_id=schema_id, payload=good + b"\x00"),
        ]), metadata=md, timeout=5)
        assert [r.correlation_key for r in response.results] == ["unknown-schema", "other-topic-schema",
                                                                  "garbage", "trailing"]
        for result in response.results:
            assert result.error.code == pb.PUBLISH, result
            assert result.error.msg
            assert result.replay_id == b""
        [ok] = grpc_publish(stub, md, schemas, topic, [{"AssetId__c": "after-errors"}])
        sub.wait_events(1)
        sub.idle(0.3)
    assert [replay(e.replay_id) for e in sub.events()] == [replay(ok.replay_id)]
    assert decode(schema, sub.events()[0].event.payload)["AssetId__c"] == "after-errors"


# -- 11. managed subscriptions ---------------------------------------------------------------------------------


def _create_managed_subscription(server: LiveServer, developer_name: str, topic: str) -> str:
    """``interlink events subscription create`` next to the running server; returns the printed id."""
    created = run_cli("events", "subscription", "create", developer_name, "--topic", topic, "--replay", "earliest",
                      "--data-dir", str(server.data_dir), "--project-dir", str(server.data_dir))
    subscription_id = created.stdout.strip()
    assert ids.is_valid(subscription_id) and subscription_id.startswith("18x"), created.stdout
    return subscription_id


def test_managed_subscribe_commits_and_resumes(stub: pb_grpc.PubSubStub, md: Any, schemas: Any,
                                               server: LiveServer) -> None:
    topic = "/event/Printer_Status__e"
    subscription_id = _create_managed_subscription(server, "Printer_Watch", topic)
    mine = [replay(r.replay_id) for r in grpc_publish(stub, md, schemas, topic,
                                                       [{"AssetId__c": f"managed-{i}"} for i in range(5)])]

    with Stream(stub.ManagedSubscribe, pb.ManagedFetchRequest(developer_name="Printer_Watch", num_requested=100),
                md) as managed:
        managed.collect(lambda _: mine[-1] in [replay(e.replay_id) for e in managed.events()], 5)
        seen = [replay(e.replay_id) for e in managed.events()]
        assert seen[-5:] == mine, (seen, mine)
        assert seen == sorted(seen)
        managed.send(pb.ManagedFetchRequest(commit_replay_id_request=pb.CommitReplayRequest(
            commit_request_id="c1", replay_id=mine[2].to_bytes(8, "big"))))
        managed.collect(lambda responses: any(r.commit_response.commit_request_id == "c1" for r in responses), 4)
        # A replay id that is not one of ours is refused in the commit response; the stream goes on.
        managed.send(pb.ManagedFetchRequest(commit_replay_id_request=pb.CommitReplayRequest(
            commit_request_id="c2", replay_id=b"xyz")))
        managed.collect(lambda responses: any(r.commit_response.commit_request_id == "c2" for r in responses), 4)
        assert managed.error is None and not managed.ended
    commits = [r.commit_response for r in managed.responses if r.HasField("commit_response")]
    assert [c.commit_request_id for c in commits] == ["c1", "c2"]
    assert not commits[0].HasField("error")
    assert replay(commits[0].replay_id) == mine[2]
    assert commits[0].process_time > 0
    assert commits[1].error.code == pb.COMMIT and "corrupted" in commits[1].error.msg

    # Reconnect, by id this time: delivery resumes strictly after the committed event.
    with Stream(stub.ManagedSubscribe, pb.ManagedFetchRequest(subscription_id=subscription_id, num_requested=100),
                md) as resumed:
        resumed.wait_events(2)
        resumed.idle(0.3)
    assert [replay(e.replay_id) for e in resumed.events()] == mine[3:]
    records = [decode(schemas(e.event.schema_id), e.event.payload) for e in resumed.events()]
    assert [r["AssetId__c"] for r in records] == ["managed-3", "managed-4"]


def test_managed_subscribe_unknown_name(stub: pb_grpc.PubSubStub, md: Any) -> None:
    with Stream(stub.ManagedSubscribe, pb.ManagedFetchRequest(developer_name="No_Such_Subscription",
                                                              num_requested=1), md) as managed:
        assert_rpc_error(managed.wait_error(), grpc.StatusCode.NOT_FOUND, "subscription.not.found")


def test_a_taken_pubsub_port_is_a_clear_error(server: LiveServer, tmp_path: Path) -> None:
    result = run_cli("up", "--port", "0", "--grpc-port", str(server.grpc_port), "--data-dir", str(tmp_path / "other"),
                     "--project-dir", str(tmp_path / "other"), check=False, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "cannot listen for the Pub/Sub API" in result.stderr and "Traceback" not in result.stderr


def test_the_platform_sample_flow_soap_login_then_subscribe(server: LiveServer) -> None:
    """What the Pub/Sub API's Python sample does: SOAP login, read the result by position, then call the API."""
    from xml.etree import ElementTree

    from interlink.testing import ADMIN_PASSWORD

    envelope = (
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:urn="urn:partner.soap.sforce.com"><soapenv:Body><urn:login>'
        f"<urn:username><![CDATA[admin@interlink.local]]></urn:username>"
        f"<urn:password><![CDATA[{ADMIN_PASSWORD}]]></urn:password>"
        "</urn:login></soapenv:Body></soapenv:Envelope>")
    trust = ssl.create_default_context(cafile=server.ca_bundle)
    response = httpx.post(f"{server.url}/services/Soap/u/57.0/", content=envelope, verify=trust, trust_env=False,
                          headers={"content-type": "text/xml", "SOAPAction": "Login"}, timeout=20)
    assert response.status_code == 200
    result = ElementTree.fromstring(response.content.decode("utf-8"))[0][0][0]
    server_url, session_id, org_id = result[3].text or "", result[4].text or "", result[6][8].text or ""
    instance_url = "/".join(server_url.split("/")[:3])
    metadata = (("accesstoken", session_id), ("instanceurl", instance_url), ("tenantid", org_id))
    credentials = grpc.ssl_channel_credentials(root_certificates=Path(server.ca_bundle).read_bytes())
    with grpc.secure_channel(server.grpc_target, credentials) as channel:
        sample_stub = pb_grpc.PubSubStub(channel)
        topic = sample_stub.GetTopic(pb.TopicRequest(topic_name="/data/OpportunityChangeEvent"), metadata=metadata,
                                     timeout=10)
        assert topic.tenant_guid == org_id and topic.can_subscribe and topic.schema_id
        schema = sample_stub.GetSchema(pb.SchemaRequest(schema_id=topic.schema_id), metadata=metadata, timeout=10)
        assert json.loads(schema.schema_json)["name"] == "OpportunityChangeEvent"
        requests = iter([pb.FetchRequest(topic_name=topic.topic_name, replay_preset=pb.EARLIEST, num_requested=1)])
        call = sample_stub.Subscribe(requests, metadata=metadata, timeout=10)
        try:
            first = next(iter(call))
            assert len(first.events) == 1 and first.pending_num_requested == 0
            decoded = fastavro.schemaless_reader(io.BytesIO(first.events[0].event.payload),
                                                 fastavro.parse_schema(json.loads(schema.schema_json)), None)
            header = decoded["ChangeEventHeader"]
            assert header["entityName"] == "Opportunity" and header["changeType"] == "CREATE"
        finally:
            call.cancel()


def test_change_origin_names_the_calling_client(server: LiveServer, md: Any, stub: pb_grpc.PubSubStub) -> None:
    trust = ssl.create_default_context(cafile=server.ca_bundle)
    with httpx.Client(base_url=f"{server.url}/services/data/v66.0", verify=trust, trust_env=False, timeout=20,
                      headers={"Authorization": f"Bearer {server.token()}",
                               "Sforce-Call-Options": "client=SalesforceListener"}) as client:
        created = client.post("/sobjects/Contact/", json={"LastName": "Origin"})
        assert created.status_code == 201
    topic = stub.GetTopic(pb.TopicRequest(topic_name="/data/ContactChangeEvent"), metadata=md, timeout=10)
    schema = fastavro.parse_schema(json.loads(stub.GetSchema(pb.SchemaRequest(schema_id=topic.schema_id),
                                                             metadata=md, timeout=10).schema_json))
    call = stub.Subscribe(iter([pb.FetchRequest(topic_name=topic.topic_name, replay_preset=pb.EARLIEST,
                                                num_requested=100)]), metadata=md, timeout=10)
    try:
        origins = {}
        for response in call:
            for event in response.events:
                header = fastavro.schemaless_reader(io.BytesIO(event.event.payload), schema, None)["ChangeEventHeader"]
                origins[header["recordIds"][0]] = header["changeOrigin"]
            if created.json()["id"] in origins or not response.events:
                break
    finally:
        call.cancel()
    assert origins[created.json()["id"]] == "com/salesforce/api/rest/66.0;client=SalesforceListener"
