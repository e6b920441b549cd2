"""The legacy Streaming API (Bayeux long polling at /cometd/{version}) of a real ``interlink up`` over TLS.

The client here speaks the protocol the way CometD clients do (handshake, subscribe with the replay extension,
connect, disconnect), with httpx; events are published and records changed through REST.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from interlink.testing import LiveServer, live_server

pytestmark = pytest.mark.live

API = "/services/data/v66.0"
COMETD = "/cometd/66.0"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("cometd"), extra_args=("--sample-data",)) as running:
        yield running


@pytest.fixture(scope="module")
def token(server: LiveServer) -> str:
    return server.token()


@pytest.fixture
def http(server: LiveServer, token: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, verify=server.ca_bundle, timeout=30,
                      headers={"Authorization": f"OAuth {token}"}) as client:
        yield client


class Bayeux:
    """A minimal long-polling Bayeux client: each call posts one message and returns the answer array."""

    def __init__(self, http: httpx.Client, path: str = COMETD) -> None:
        self.http = http
        self.path = path
        self.client_id = ""
        self.counter = 0

    def send(self, message: dict[str, Any], suffix: str = "") -> list[dict[str, Any]]:
        self.counter += 1
        body = {"id": str(self.counter), **message}
        if self.client_id and "clientId" not in body:
            body["clientId"] = self.client_id
        response = self.http.post(self.path + suffix, json=[body])
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def handshake(self) -> dict[str, Any]:
        answer = self.send({"channel": "/meta/handshake", "version": "1.0", "minimumVersion": "1.0",
                            "supportedConnectionTypes": ["long-polling"], "ext": {"replay": True}})
        self.client_id = answer[0].get("clientId", "")
        return answer[0]

    def subscribe(self, channel: str, replay: int | None = None) -> dict[str, Any]:
        message: dict[str, Any] = {"channel": "/meta/subscribe", "subscription": channel}
        if replay is not None:
            message["ext"] = {"replay": {channel: replay}}
        return self.send(message)[0]

    def connect(self, timeout_ms: int = 10_000) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        answer = self.send({"channel": "/meta/connect", "connectionType": "long-polling",
                            "advice": {"timeout": timeout_ms}})
        return answer[:-1], answer[-1]

    def events_until(self, count: int, rounds: int = 10) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for _ in range(rounds):
            events, reply = self.connect(5_000)
            assert reply["channel"] == "/meta/connect" and reply["successful"], reply
            found.extend(events)
            if len(found) >= count:
                break
        return found


def publish(http: httpx.Client, case_id: str, amount: float = 10.0) -> None:
    response = http.post(f"{API}/sobjects/Payment_Received__e",
                         json={"CaseId__c": case_id, "Amount__c": amount, "Status__c": "Paid"})
    assert response.status_code == 201, response.text


def test_handshake_without_a_valid_token_is_denied(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, verify=server.ca_bundle, timeout=10,
                      headers={"Authorization": "OAuth forged"}) as bad:
        answer = Bayeux(bad).handshake()
    assert answer["successful"] is False
    assert answer["error"] == "403::Handshake denied"
    assert answer["ext"]["sfdc"]["failureReason"] == "401::Authentication invalid"
    assert answer["advice"]["reconnect"] == "none"


def test_platform_events_arrive_with_replay_ids(http: httpx.Client) -> None:
    client = Bayeux(http)
    shake = client.handshake()
    assert shake["successful"] and shake["ext"]["replay"] is True
    assert shake["supportedConnectionTypes"] == ["long-polling"]
    assert client.subscribe("/event/Payment_Received__e", -1)["successful"]
    first, reply = client.connect()  # the first connect answers at once
    assert first == [] and reply["successful"] and reply["advice"]["reconnect"] == "retry"
    received: list[dict[str, Any]] = []
    poller = threading.Thread(target=lambda: received.extend(client.events_until(2)))
    poller.start()
    publish(http, "500000000000001AAA", 12.5)
    publish(http, "500000000000002AAA", 7)
    poller.join(60)
    assert [e["data"]["payload"]["CaseId__c"] for e in received] == ["500000000000001AAA", "500000000000002AAA"]
    event = received[0]
    assert event["channel"] == "/event/Payment_Received__e"
    assert isinstance(event["data"]["event"]["replayId"], int)
    assert event["data"]["event"]["EventUuid"]
    assert event["data"]["payload"]["Amount__c"] == 12.5
    assert event["data"]["payload"]["CreatedDate"].endswith("Z")
    assert event["data"]["schema"]
    assert received[1]["data"]["event"]["replayId"] > event["data"]["event"]["replayId"]
    assert client.send({"channel": "/meta/disconnect"})[0]["successful"]


def test_replay_all_from_an_id_and_invalid_ids(http: httpx.Client) -> None:
    publish(http, "500000000000003AAA")
    publish(http, "500000000000004AAA")
    everything = Bayeux(http)
    everything.handshake()
    assert everything.subscribe("/event/Payment_Received__e", -2)["successful"]
    events = everything.events_until(2)
    ids = [e["data"]["event"]["replayId"] for e in events]
    cases = [e["data"]["payload"]["CaseId__c"] for e in events]
    assert "500000000000003AAA" in cases and "500000000000004AAA" in cases
    resumed = Bayeux(http)
    resumed.handshake()
    after = ids[cases.index("500000000000003AAA")]
    assert resumed.subscribe("/event/Payment_Received__e", after)["successful"]
    later = resumed.events_until(1)
    assert later[0]["data"]["event"]["replayId"] > after
    assert "500000000000003AAA" not in [e["data"]["payload"]["CaseId__c"] for e in later]
    refused = resumed.subscribe("/event/Order_Request__e", 10**12)
    assert refused["successful"] is False
    assert refused["error"].startswith("400::The replayId {1000000000000} you provided was invalid.")


def test_change_events_carry_changed_field_names(http: httpx.Client) -> None:
    account = http.post(f"{API}/sobjects/Account", json={"Name": "CometD Co"}).json()["id"]
    client = Bayeux(http)
    client.handshake()
    assert client.subscribe("/data/AccountChangeEvent", -1)["successful"]
    client.connect()
    received: list[dict[str, Any]] = []
    poller = threading.Thread(target=lambda: received.extend(client.events_until(1)))
    poller.start()
    assert http.patch(f"{API}/sobjects/Account/{account}", json={"Phone": "+1 555 0101"}).status_code == 204
    poller.join(60)
    payload = received[0]["data"]["payload"]
    header = payload["ChangeEventHeader"]
    assert header["changeType"] == "UPDATE" and header["recordIds"] == [account]
    assert "Phone" in header["changedFields"]
    assert "nulledFields" not in header and "diffFields" not in header
    assert payload["Phone"] == "+1 555 0101"
    assert "Name" not in payload  # unchanged fields are left out


def test_unknown_channels_clients_and_bodies(http: httpx.Client) -> None:
    client = Bayeux(http)
    client.handshake()
    missing = client.subscribe("/event/Nope__e")
    assert missing["successful"] is False
    assert missing["error"] == "400::The channel you requested to subscribe to does not exist {/event/Nope__e}"
    stranger = Bayeux(http)
    stranger.client_id = "not-a-client"
    _, reply = stranger.connect()
    assert reply["successful"] is False and reply["error"] == "403::Unknown client"
    assert reply["advice"]["reconnect"] == "handshake"
    bad = http.post(COMETD, content=b"{not json")
    assert bad.status_code == 400 and bad.json()[0]["successful"] is False
    assert http.post("/cometd/12.0", json=[{"channel": "/meta/handshake"}]).status_code == 404
    published = client.send({"channel": "/event/Payment_Received__e", "data": {}})[0]
    assert published["successful"] is False and published["error"].startswith("403::")


def test_message_type_in_the_url_and_held_connect_times_out(http: httpx.Client) -> None:
    client = Bayeux(http)
    assert client.send({"channel": "/meta/handshake", "version": "1.0",
                        "supportedConnectionTypes": ["long-polling"]}, "/handshake")[0]["successful"]
    client.client_id = client.send({"channel": "/meta/handshake", "version": "1.0",
                                    "supportedConnectionTypes": ["long-polling"]}, "/handshake")[0]["clientId"]
    assert client.subscribe("/event/Printer_Status__e")["successful"]
    client.connect()
    answer = client.send({"channel": "/meta/connect", "connectionType": "long-polling",
                          "advice": {"timeout": 300}}, "/connect")
    assert answer == [{"channel": "/meta/connect", "id": answer[0]["id"], "clientId": client.client_id,
                       "successful": True, "advice": {"interval": 0, "timeout": 110000, "reconnect": "retry"}}]


def test_a_revoked_session_ends_the_client(server: LiveServer) -> None:
    token = server.token()
    with httpx.Client(base_url=server.url, verify=server.ca_bundle, timeout=10,
                      headers={"Authorization": f"Bearer {token}"}) as http:
        client = Bayeux(http)
        client.handshake()
        assert http.post("/services/oauth2/revoke", data={"token": token}).status_code == 200
        _, reply = client.connect()
    assert reply["successful"] is False and reply["error"] == "403::Unknown client"


def test_shutdown_ends_a_held_connect(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with live_server(tmp_path / "org", extra_args=("--sample-data",)) as running, \
            httpx.Client(base_url=running.url, verify=running.ca_bundle, timeout=60,
                         headers={"Authorization": f"OAuth {running.token()}"}) as http:
        client = Bayeux(http)
        client.handshake()
        client.subscribe("/event/Printer_Status__e")
        client.connect()
        outcome: list[object] = []

        def hold() -> None:
            try:
                outcome.append(client.connect(110_000))
            except httpx.HTTPError as error:
                outcome.append(error)

        holder = threading.Thread(target=hold)
        holder.start()
        time.sleep(0.5)  # let the connect reach the server and be held
        running.process.send_signal(signal.SIGTERM)
        running.process.wait(timeout=30)  # far less than the 110-second hold
        holder.join(30)
        assert running.process.returncode == 0
        assert outcome, "the held connect never ended"
