"""Outbound messages: SOAP notifications from a flow to a listener that acknowledges, is down for a while, or
never answers; the WSDL consumed by zeep."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest

from interlink.app.org import Org
from interlink.callouts.outbound import acknowledged
from interlink.errors import MetadataError
from interlink.testing import backend_org

OM = "{http://soap.sforce.com/2005/09/outbound}"
SF = "{urn:sobject.enterprise.soap.sforce.com}"
ACK = (b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>'
       b'<notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack>'
       b"</notificationsResponse></soapenv:Body></soapenv:Envelope>")


class Listener:
    """An outbound-message listener on 127.0.0.1 that answers from a script (status, body)."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.answers: list[tuple[int, bytes]] = []
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                listener.messages.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                status, body = listener.answers.pop(0) if listener.answers else (200, ACK)
                self.send_response(status)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/erp"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def notifications(self, index: int = -1) -> list[ET.Element]:
        root = ET.fromstring(self.messages[index])
        return root.findall(f".//{OM}Notification")


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 29, 12, 0, 0)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.server.shutdown()
    server.server.server_close()


def project(root: Path, listener: Listener, *, message: str | None = None) -> None:
    base = root / "project" / "metadata"
    for folder in ("namedCredentials", "outboundMessages", "flows"):
        (base / folder).mkdir(parents=True, exist_ok=True)
    (base / "namedCredentials" / "ERP.yaml").write_text(f"url: {listener.url}\n")
    (base / "outboundMessages" / "Order_To_ERP.yaml").write_text(message or (
        "object: Opportunity\nfields: [Name, Amount, StageName, IsPrivate, CloseDate]\ncredential: ERP\n"
        "path: /notifications\n"))
    (base / "flows" / "Won_To_ERP.yaml").write_text(
        "object: Opportunity\ntrigger: update\ncondition: \"StageName = 'Closed Won'\"\nwhen: changed_to_meet\n"
        "actions:\n  - outbound_message: {name: Order_To_ERP}\n")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def org(store_backend: str, tmp_path: Path, listener: Listener, clock: Clock) -> Iterator[Org]:
    project(tmp_path, listener)
    with backend_org(tmp_path, store_backend, {}, unavailable=pytest.skip, bulk_workers=0) as opened:
        opened.callouts.clock = clock
        yield opened


def win(org: Org, count: int = 1) -> list[str]:
    context = org.admin_context()
    deals = org.records.create(context, "Opportunity", [
        {"Name": f"Deal {i}", "StageName": "Prospecting", "CloseDate": "2026-12-31", "Amount": 10 * (i + 1)}
        for i in range(count)])
    org.records.update(context, "Opportunity", [{"Id": d.id, "StageName": "Closed Won"} for d in deals])
    return [d.id for d in deals]  # type: ignore[misc]


def test_one_message_carries_the_batch_with_the_latest_data(org: Org, listener: Listener) -> None:
    ids = win(org, 3)
    org.records.update(org.admin_context(), "Opportunity", [{"Id": ids[0], "Amount": 999}])  # before sending
    assert org.worker.run_once()
    assert len(listener.messages) == 1
    root = ET.fromstring(listener.messages[0])
    assert root.findtext(f".//{OM}OrganizationId") == org.org_id
    assert root.findtext(f".//{OM}ActionId", "").startswith("04k")
    notes = listener.notifications()
    assert [n.findtext(f"{OM}Id", "")[:3] for n in notes] == ["04l"] * 3
    sent = {n.find(f"{OM}sObject").findtext(f"{SF}Id"): n.find(f"{OM}sObject") for n in notes}  # type: ignore[union-attr]
    assert set(sent) == set(ids)
    first = sent[ids[0]]
    assert first.findtext(f"{SF}Amount") == "999.0" and first.findtext(f"{SF}StageName") == "Closed Won"
    assert first.findtext(f"{SF}IsPrivate") == "false" and first.findtext(f"{SF}CloseDate") == "2026-12-31"
    assert {n["state"] for n in org.outbound.list()} == {"Delivered"}


def test_a_listener_that_is_down_for_a_while_gets_every_notification(org: Org, listener: Listener,
                                                                      clock: Clock) -> None:
    listener.answers = [(503, b"down"), (200, b"<html>no ack</html>")]
    ids = win(org, 2)
    assert org.worker.run_once()  # 503
    assert not org.worker.run_once()  # the retry waits 15 s
    clock.now += timedelta(seconds=15)
    assert org.worker.run_once()  # answered without an Ack: not delivered
    clock.now += timedelta(seconds=30)
    assert org.worker.run_once()
    assert len(listener.messages) == 3
    first_ids = {n.findtext(f"{OM}Id") for n in listener.notifications(0)}
    assert first_ids == {n.findtext(f"{OM}Id") for n in listener.notifications(-1)}  # the same ids: dedupe works
    received = {n.find(f"{OM}sObject").findtext(f"{SF}Id") for n in listener.notifications(-1)}  # type: ignore[union-attr]
    assert received == set(ids)
    states = org.outbound.list()
    assert {s["state"] for s in states} == {"Delivered"} and {s["attempts"] for s in states} == {3}
    assert states[0]["history"][1]["error"] == "the listener did not acknowledge with <Ack>true</Ack>"


def test_retries_grow_to_two_hours_and_stop_after_a_day(org: Org, listener: Listener, clock: Clock) -> None:
    listener.answers = [(500, b"")] * 40
    win(org)
    attempts = 0
    while org.outbound.list()[0]["state"] == "Queued":
        clock.now += timedelta(hours=2)
        assert org.worker.run_once()
        attempts += 1
    (note,) = org.outbound.list()
    assert note["state"] == "Dead" and attempts == note["attempts"] <= 14
    gaps = [datetime.fromisoformat(b["at"][:-1]) - datetime.fromisoformat(a["at"][:-1])
            for a, b in zip(note["history"], note["history"][1:], strict=False)]
    assert max(gaps) <= timedelta(hours=2)


def test_zeep_reads_the_wsdl_and_the_messages(org: Org, listener: Listener, tmp_path: Path) -> None:
    import zeep
    from lxml import etree

    wsdl = tmp_path / "om.wsdl"
    wsdl.write_text(org.outbound.wsdl("Order_To_ERP"))
    client = zeep.Client(str(wsdl))
    ids = win(org)
    assert org.worker.run_once()
    binding = client.wsdl.bindings["{http://soap.sforce.com/2005/09/outbound}NotificationBinding"]
    operation = binding.get("notifications")
    envelope = etree.fromstring(listener.messages[0])
    request = operation.input.deserialize(envelope)
    assert request.OrganizationId == org.org_id
    (notification,) = request.Notification
    assert notification.sObject.Id == ids[0] and notification.sObject.Name == "Deal 0"
    assert notification.sObject.Amount == 10.0 and notification.sObject.IsPrivate is False
    reply = client.get_element("{http://soap.sforce.com/2005/09/outbound}notificationsResponse")(Ack=True)
    assert reply.Ack is True


@pytest.mark.parametrize("body", [
    ACK,
    b"<notifications xmlns='http://soap.sforce.com/2005/09/outbound'><Ack>True</Ack></notifications>",
    b"<Envelope><Body><Ack> true </Ack></Body></Envelope>",
])
def test_acks_in_the_wrappers_listeners_use(body: bytes) -> None:
    assert acknowledged(body)


@pytest.mark.parametrize("body", [
    b"<Ack>false</Ack>", b"", b"not xml", b"<!DOCTYPE x [<!ENTITY a 'b'>]><Ack>true</Ack>"])
def test_no_ack(body: bytes) -> None:
    assert not acknowledged(body)


@pytest.mark.parametrize(("message", "error"), [
    ("object: Nope__c\ncredential: ERP\n", "is not an object"),
    ("object: Opportunity\nfields: [Bogus__c]\ncredential: ERP\n", "list fields of Opportunity"),
    ("object: Opportunity\ncredential: Nobody\n", "is not a named credential"),
    ("object: Opportunity\ncredential: ERP\npath: https://elsewhere.example/x\n", "takes a path, not a URL"),
])
def test_a_bad_outbound_message_is_a_clear_error(tmp_path: Path, listener: Listener, message: str,
                                                 error: str) -> None:
    project(tmp_path, listener, message=message)
    with pytest.raises(MetadataError) as caught, backend_org(tmp_path, "sqlite", {}):
        pass
    assert error in caught.value.message


def test_a_flow_sending_another_objects_message_is_refused(tmp_path: Path, listener: Listener) -> None:
    project(tmp_path, listener, message="object: Account\ncredential: ERP\n")
    with pytest.raises(MetadataError) as caught, backend_org(tmp_path, "sqlite", {}):
        pass
    assert "sends Account records, not Opportunity" in caught.value.message


def test_the_session_id_lets_the_listener_call_back(tmp_path: Path, listener: Listener) -> None:
    from interlink.testing import rest_client

    project(tmp_path, listener, message="object: Opportunity\nfields: [Name]\ncredential: ERP\npath: /n\n"
                                        "includeSessionId: true\n")
    with backend_org(tmp_path, "sqlite", {}, bulk_workers=0) as org:
        (deal,) = win(org)
        assert org.worker.run_once()
        session = ET.fromstring(listener.messages[0]).findtext(f".//{OM}SessionId")
        assert session and session.startswith(org.org_id[:15])
        client = rest_client(org, authorised=False)
        client.headers["Authorization"] = f"Bearer {session}"
        answer = client.patch(f"/services/data/v66.0/sobjects/Opportunity/{deal}", json={"Description": "SO-9"})
        assert answer.status_code == 204
