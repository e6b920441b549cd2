"""Console event streams in-process: the SSE endpoint (auth, channels, replay, Last-Event-ID, limits, shutdown),
publishing a test event, and the live pages' server-side filters. Streams here end by ``?limit=`` or a patched
lifetime, so every read of a response is bounded."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from console_helpers import login  # type: ignore[import-not-found]
from starlette.testclient import TestClient

from interlink.api.app import build_app
from interlink.app.org import Org
from interlink.app.sample_data import MANAGER, seed_sample_data
from interlink.console import streams
from interlink.testing import ADMIN_PASSWORD, local_org

PAYMENTS = "/console/stream/event/Payment_Received__e"


@pytest.fixture
def org(tmp_path: Path) -> Iterator[Org]:
    with local_org(tmp_path / "org", sample_data=True, bulk_workers=0) as opened:
        seed_sample_data(opened)
        yield opened


@pytest.fixture
def client(org: Org) -> Iterator[TestClient]:
    with TestClient(build_app(org), base_url="https://testserver") as logged_in:
        logged_in.csrf = login(logged_in)  # type: ignore[attr-defined]
        yield logged_in


def messages(body: str) -> list[dict[str, Any]]:
    """SSE messages as dicts of their fields (``data`` parsed as JSON); comments and bare retry lines dropped."""
    found = []
    for block in body.split("\n\n"):
        fields: dict[str, Any] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        if "data" in fields:
            fields["data"] = orjson.loads(fields["data"])
        if set(fields) - {"retry"}:
            found.append(fields)
    return found


def events_of(body: str) -> list[dict[str, Any]]:
    return [m for m in messages(body) if m.get("event") == "event"]


def pay(org: Org, case_id: str, amount: float) -> None:
    (result,) = org.records.create(org.admin_context(), "Payment_Received__e",
                                   [{"CaseId__c": case_id, "Amount__c": amount, "Status__c": "Paid"}])
    assert result.success, result.errors


def case_ids(org: Org) -> dict[str, str]:
    rows = org.query.execute("SELECT Id, CaseNumber, Owner.Username FROM Case ORDER BY CaseNumber",
                             org.admin_context()).records
    return {row["CaseNumber"]: row["Id"] for row in rows}


def head(org: Org, topic: str) -> int:
    return org.bus.latest_replay_id(org.bus.topic(topic))


# -- the endpoint --------------------------------------------------------------------------------------------------


def test_a_stream_needs_a_session_and_a_known_channel(org: Org, client: TestClient) -> None:
    with TestClient(build_app(org), base_url="https://testserver") as anonymous:
        refused = anonymous.get(PAYMENTS)
    assert refused.status_code == 401
    assert refused.json()[0]["errorCode"] == "INVALID_SESSION_ID"
    unknown = client.get("/console/stream/event/No_Such__e")
    assert unknown.status_code == 404
    assert unknown.json() == [{"message": "Topic not found: /event/No_Such__e",
                               "errorCode": "sfdc.platform.eventbus.grpc.topic.not.found", "fields": []}]
    assert client.get("/console/stream/nonsense").status_code == 404


def test_events_replay_from_earliest_with_ids_times_and_decoded_payloads(org: Org, client: TestClient) -> None:
    cases = case_ids(org)
    pay(org, cases["00000001"], 10.5)
    pay(org, cases["00000002"], 20)
    pay(org, cases["00000003"], 30)
    response = client.get(f"{PAYMENTS}?replay=EARLIEST&limit=2")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-store"
    first, second = events_of(response.text)
    assert int(first["id"]) < int(second["id"])
    assert first["data"]["replayId"] == int(first["id"])
    assert first["data"]["channel"] == "/event/Payment_Received__e"
    assert first["data"]["time"].endswith("Z") and first["data"]["payload"]["CreatedDate"].endswith("Z")
    assert first["data"]["schemaId"] == org.bus.topic("/event/Payment_Received__e").schema_id
    assert (first["data"]["payload"]["CaseId__c"], first["data"]["payload"]["Amount__c"]) == (cases["00000001"], 10.5)
    assert second["data"]["payload"]["Amount__c"] == 20


def test_last_event_id_resumes_after_it_and_wins_over_replay(org: Org, client: TestClient) -> None:
    cases = case_ids(org)
    for amount in (1, 2, 3):
        pay(org, cases["00000001"], amount)
    first = events_of(client.get(f"{PAYMENTS}?replay=EARLIEST&limit=1").text)[0]
    resumed = events_of(client.get(f"{PAYMENTS}?replay=EARLIEST&limit=2",
                                   headers={"Last-Event-ID": first["id"]}).text)
    assert [e["data"]["payload"]["Amount__c"] for e in resumed] == [2, 3]
    after_id = events_of(client.get(f"{PAYMENTS}?replay={first['id']}&limit=1").text)
    assert after_id[0]["data"]["payload"]["Amount__c"] == 2


def test_latest_is_the_default_and_sees_only_what_comes_next(org: Org, client: TestClient) -> None:
    cases = case_ids(org)
    pay(org, cases["00000001"], 1)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(client.get(f"{PAYMENTS}?limit=1").text))
    registry = client.app.state.console_streams = streams.StreamRegistry(per_user=10, total=10)
    reader.start()
    deadline = time.monotonic() + 10
    while registry.count() == 0 and time.monotonic() < deadline:  # the stream is open (and positioned)
        time.sleep(0.02)
    pay(org, cases["00000001"], 99)
    reader.join(10)
    assert not reader.is_alive()
    assert [e["data"]["payload"]["Amount__c"] for e in events_of(got[0])] == [99]
    assert registry.count() == 0  # the slot is given back when the stream ends


def test_bad_replay_values_are_refused_and_a_purged_position_is_an_error_event(org: Org, client: TestClient) -> None:
    corrupted = client.get(f"{PAYMENTS}?replay=yesterday")
    assert corrupted.status_code == 400
    assert corrupted.json()[0]["errorCode"] == "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"
    assert client.get(f"{PAYMENTS}?limit=0").status_code == 400
    cases = case_ids(org)
    pay(org, cases["00000001"], 1)
    first = head(org, "/event/Payment_Received__e")
    pay(org, cases["00000001"], 2)
    org.bus.backend.purge(int(time.time() * 1000) + 60_000)  # everything is past retention now
    response = client.get(f"{PAYMENTS}?replay={first - 1}")
    assert response.status_code == 200
    (error,) = messages(response.text)
    assert error["event"] == "error"
    assert error["data"]["errorCode"] == "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.validation.failed"
    assert "retention" in error["data"]["message"]
    assert "retry: 60000" in response.text  # clients that do not close it do not hammer the server


def test_change_events_carry_field_names_and_iso_dates(org: Org, client: TestClient) -> None:
    start = head(org, "/data/CaseChangeEvent")
    case_id = case_ids(org)["00000001"]
    org.records.update(org.admin_context(), "Case", [{"Id": case_id, "Subject": "Renamed"}])
    (event,) = events_of(client.get(f"/console/stream/data/CaseChangeEvent?replay={start}&limit=1").text)
    payload = event["data"]["payload"]
    assert payload["ChangeEventHeader"]["changeType"] == "UPDATE"
    assert payload["ChangeEventHeader"]["recordIds"] == [case_id]
    assert "Subject" in payload["ChangeEventHeader"]["changedFields"]
    assert payload["Subject"] == "Renamed" and payload["LastModifiedDate"].endswith("Z")
    everything = events_of(client.get(f"/console/stream/data/ChangeEvents?replay={start}&limit=1").text)
    assert everything[0]["data"]["topic"] == "/data/CaseChangeEvent"


def test_idle_streams_get_heartbeats_and_end_on_their_own(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streams, "HEARTBEAT_SECONDS", 0.05)
    monkeypatch.setattr(streams, "WAIT_SECONDS", 0.05)
    monkeypatch.setattr(streams, "MAX_STREAM_SECONDS", 0.4)
    body = client.get(PAYMENTS).text
    assert body.startswith("retry: 2000\n")
    assert ": heartbeat" in body
    assert events_of(body) == []


def test_a_server_shutting_down_ends_every_stream(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streams, "WAIT_SECONDS", 0.05)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(client.get(PAYMENTS).text))
    registry = client.app.state.console_streams = streams.StreamRegistry(per_user=10, total=10)
    reader.start()
    deadline = time.monotonic() + 10
    while registry.count() == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    client.app.state.draining.set()  # what `interlink up` does on SIGTERM
    reader.join(10)
    assert not reader.is_alive() and got and registry.count() == 0


def test_a_stream_ends_when_its_session_does(org: Org, client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streams, "WAIT_SECONDS", 0.05)
    monkeypatch.setattr(streams, "SESSION_CHECK_SECONDS", 0.05)
    registry = client.app.state.console_streams = streams.StreamRegistry(per_user=10, total=10)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(client.get(PAYMENTS).text))
    reader.start()
    deadline = time.monotonic() + 10
    while registry.count() == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    org.tokens.revoke(next(c.value for c in client.cookies.jar if c.name == "il_console"))  # logged out elsewhere
    reader.join(15)
    assert not reader.is_alive()
    (error,) = messages(got[0])
    assert error["event"] == "error" and error["data"]["errorCode"] == "INVALID_SESSION_ID"


def test_a_stream_ends_when_the_login_policy_refuses_its_address(org: Org, client: TestClient,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The periodic re-check passes the stream's client address, so per-request IP enforcement reaches streams."""
    monkeypatch.setattr(streams, "WAIT_SECONDS", 0.05)
    monkeypatch.setattr(streams, "SESSION_CHECK_SECONDS", 0.05)
    registry = client.app.state.console_streams = streams.StreamRegistry(per_user=10, total=10)
    seen: list[str | None] = []
    refuse = threading.Event()

    def policy(user_id: str, source_ip: str | None) -> str | None:
        seen.append(source_ip)
        return "refuse" if refuse.is_set() and source_ip is not None else None

    monkeypatch.setattr(org.tokens, "session_policy", policy)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(client.get(PAYMENTS).text))
    reader.start()
    deadline = time.monotonic() + 10
    while registry.count() == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    refuse.set()  # the user's address is now outside the profile's ranges
    reader.join(15)
    assert not reader.is_alive()
    (error,) = messages(got[0])
    assert error["event"] == "error" and error["data"]["errorCode"] == "INVALID_SESSION_ID"
    assert seen and None not in seen


def test_a_user_has_a_bounded_number_of_streams(org: Org, client: TestClient) -> None:
    registry = streams.StreamRegistry(per_user=1, total=10)
    client.app.state.console_streams = registry
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(client.get(f"{PAYMENTS}?limit=1").text))
    reader.start()
    deadline = time.monotonic() + 10
    while registry.count() == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    refused = client.get(PAYMENTS)
    assert refused.status_code == 429
    assert refused.json()[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    assert "event streams open" in refused.json()[0]["message"]
    pay(org, case_ids(org)["00000001"], 5)  # lets the first stream finish
    reader.join(10)
    assert not reader.is_alive() and registry.count() == 0


# -- publishing a test event ---------------------------------------------------------------------------------------


def test_publishing_from_the_console_answers_the_replay_id(org: Org, client: TestClient) -> None:
    case_id = case_ids(org)["00000001"]
    response = client.post("/console/api/events/publish", headers={"X-CSRF-Token": client.csrf},  # type: ignore[attr-defined]
                           json={"channel": "/event/Payment_Received__e",
                                 "values": {"CaseId__c": case_id, "Amount__c": 42.5, "Status__c": "Paid"}})
    assert response.status_code == 201, response.text
    outcome = response.json()
    assert outcome["success"] and outcome["replayId"] == head(org, "/event/Payment_Received__e")
    (stored,) = org.bus.read(org.bus.topic("/event/Payment_Received__e"), outcome["replayId"] - 1, 1)
    assert stored.event_uuid == outcome["eventUuid"]
    assert org.bus.decode(stored)["Amount__c"] == 42.5


def test_publishing_refuses_bad_fields_other_channels_and_missing_csrf(client: TestClient) -> None:
    csrf = {"X-CSRF-Token": client.csrf}  # type: ignore[attr-defined]
    bad_field = client.post("/console/api/events/publish", headers=csrf,
                            json={"channel": "/event/Payment_Received__e", "values": {"Nope__c": 1}})
    assert bad_field.status_code == 400 and bad_field.json()[0]["errorCode"] == "INVALID_FIELD"
    bad_value = client.post("/console/api/events/publish", headers=csrf,
                            json={"channel": "/event/Payment_Received__e", "values": {"Amount__c": "lots"}})
    assert bad_value.status_code == 400
    change = client.post("/console/api/events/publish", headers=csrf,
                         json={"channel": "/data/CaseChangeEvent", "values": {}})
    assert change.status_code == 403
    forged = client.post("/console/api/events/publish", json={"channel": "/event/Payment_Received__e", "values": {}})
    assert forged.status_code == 403 and forged.json()[0]["errorCode"] == "INVALID_CSRF_TOKEN"


def test_the_events_page_lists_every_kind_of_channel(client: TestClient) -> None:
    page = client.get("/console/events")
    assert page.status_code == 200
    for channel in ("/event/Payment_Received__e", "/data/ChangeEvents", "/data/CaseChangeEvent"):
        assert f'value="{channel}"' in page.text
    assert "<script>" not in page.text
    groups = client.get("/console/api/events/channels").json()
    assert [g["label"] for g in groups] == ["Platform events", "Change events"]
    payment = next(c for c in groups[0]["channels"] if c["channel"] == "/event/Payment_Received__e")
    assert [f["name"] for f in payment["fields"]] == ["CaseId__c", "Amount__c", "Status__c"]


# -- the live pages ------------------------------------------------------------------------------------------------


def test_a_case_stream_carries_only_that_case(org: Org, client: TestClient) -> None:
    cases = case_ids(org)
    mine, other = cases["00000001"], cases["00000002"]
    start = f"{head(org, '/event/Payment_Received__e')},{head(org, '/data/CaseChangeEvent')}"
    pay(org, other, 1)
    org.records.update(org.admin_context(), "Case", [{"Id": other, "Subject": "Not mine"}])
    pay(org, mine, 2)
    org.records.update(org.admin_context(), "Case", [{"Id": mine, "Description": "Mine"}])
    received = events_of(client.get(f"/console/live/cases/{mine}/stream?replay={start}&limit=2").text)
    kinds = sorted(m["data"]["kind"] for m in received)
    assert kinds == ["change", "payment"]
    payment = next(m["data"] for m in received if m["data"]["kind"] == "payment")
    change = next(m["data"] for m in received if m["data"]["kind"] == "change")
    assert payment["payload"]["CaseId__c"] == mine and payment["payload"]["Amount__c"] == 2
    assert change["payload"]["Description"] == "Mine" and change["by"] == "Org Admin"
    assert all("," in m["id"] for m in received)  # one position per topic
    wrong = client.get(f"/console/live/cases/{mine}/stream?replay=5")
    assert wrong.status_code == 400


def test_the_manager_stream_sends_only_their_reps_closed_cases(org: Org, client: TestClient) -> None:
    rows = org.query.execute("SELECT Id, CaseNumber, Owner.Username FROM Case", org.admin_context()).records
    by_owner = {row["Owner"]["Username"]: row["Id"] for row in rows}
    start = head(org, "/event/Case_Closed__e")
    close = {"Status": "Closed", "Resolution__c": "Successful"}
    org.records.update(org.admin_context(), "Case", [{"Id": by_owner["jordan.rep@interlink.local"], **close}])
    org.records.update(org.admin_context(), "Case", [{"Id": by_owner["sam.rep@interlink.local"], "Status": "Closed",
                                                       "Resolution__c": "Unsuccessful"}])
    org.records.update(org.admin_context(), "Case", [{"Id": by_owner["alex.rep@interlink.local"], **close}])
    with TestClient(build_app(org), base_url="https://testserver") as manager:
        login(manager, MANAGER, ADMIN_PASSWORD)
        page = manager.get("/console/live/manager")
        assert "Alex Rivera" in page.text and "Sam Chen" in page.text and "Jordan Blake" not in page.text
        (alert,) = events_of(manager.get(f"/console/live/manager/stream?replay={start}&limit=1").text)
    data = alert["data"]
    assert data["rep"]["Name"] == "Alex Rivera"
    assert data["case"]["Id"] == by_owner["alex.rep@interlink.local"] and data["case"]["CaseNumber"]
    assert data["payload"]["Resolution__c"] == "Successful"
    # The admin manages nobody.
    assert "Nobody reports to you" in client.get("/console/live/manager").text


def test_saving_the_case_form_goes_through_the_records_service(org: Org, client: TestClient) -> None:
    case_id = case_ids(org)["00000003"]
    csrf = {"X-CSRF-Token": client.csrf}  # type: ignore[attr-defined]
    saved = client.post(f"/console/api/live/cases/{case_id}", headers=csrf,
                        json={"values": {"Subject": "Fixed invoice", "Description": ""}})
    assert saved.status_code == 200, saved.text
    assert saved.json()["record"]["Subject"] == "Fixed invoice"
    assert saved.json()["record"]["Description"] is None
    refused = client.post(f"/console/api/live/cases/{case_id}", headers=csrf, json={"values": {"OwnerId": "x"}})
    assert refused.status_code == 400
    page = client.get(f"/console/live/cases/{case_id}")
    assert page.status_code == 200 and "Fixed invoice" in page.text and 'id="live-config"' in page.text
    assert client.get("/console/live/cases/001000000000000AAA").status_code == 400
    assert "00000003" in client.get("/console/live/").text
