"""The org sinks against a real ``interlink up`` over TLS: upsert by external id through sObject Collections and,
past the bulk threshold, Bulk API 2.0; per-message deliveries with retryable / permanent classification; create,
update and publish.

Upserts need an external id field, which the standard metadata does not declare, so this module runs its own
server whose project adds ``Ext_Id__c`` to Account (as the simple-salesforce Bulk tests do).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from interlink.middleware.base import Message, PipelineSpecError
from interlink.middleware.orgapi import OrgConnection
from interlink.middleware.sinks.org import (
    OrgCreateSink,
    OrgPublishSink,
    OrgUpdateSink,
    OrgUpsertSink,
    make_publish_sink,
    make_update_sink,
    make_upsert_sink,
)
from interlink.testing import LiveServer, live_server

pytestmark = pytest.mark.live

ACCOUNT_EXTENSION = """\
fields:
  - {name: Ext_Id__c, type: text, length: 40, externalId: true, unique: true}
"""


@pytest.fixture(scope="module")
def ext(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data_dir = tmp_path_factory.mktemp("org-sinks")
    (data_dir / "metadata" / "objects").mkdir(parents=True)
    (data_dir / "metadata" / "objects" / "Account.yaml").write_text(ACCOUNT_EXTENSION)
    with live_server(data_dir) as server:
        yield server


@pytest.fixture(scope="module")
def conn(ext: LiveServer) -> Iterator[OrgConnection]:
    connection = OrgConnection.from_server_file(ext.data_dir / "run" / "server.json", ext.token())
    yield connection
    connection.close()


def tag() -> str:
    return uuid.uuid4().hex[:10]


def names(conn: OrgConnection, prefix: str) -> dict[str, str]:
    return {r["Ext_Id__c"]: r["Name"]
            for r in conn.query(f"SELECT Ext_Id__c, Name FROM Account WHERE Ext_Id__c LIKE '{prefix}%'")}


def test_upsert_creates_then_updates(conn: OrgConnection) -> None:
    t = tag()
    sink = OrgUpsertSink(conn, "Account", "Ext_Id__c")
    first = sink.write([Message(body={"Ext_Id__c": f"{t}-{i}", "Name": f"first {i}"}) for i in range(3)])
    assert [(d.ok, d.detail["created"]) for d in first] == [(True, True)] * 3
    second = sink.write([Message(body={"Ext_Id__c": f"{t}-{i}", "Name": f"second {i}"}) for i in range(3)])
    assert [(d.ok, d.detail["created"]) for d in second] == [(True, False)] * 3
    assert [d.detail["id"] for d in second] == [d.detail["id"] for d in first]
    assert names(conn, t) == {f"{t}-{i}": f"second {i}" for i in range(3)}
    assert sink.bulk_jobs == 0


def test_a_bad_record_fails_alone_and_permanently(conn: OrgConnection) -> None:
    t = tag()
    sink = OrgUpsertSink(conn, "Account", "Ext_Id__c", fields=["Name", "Website"])
    deliveries = sink.write([
        Message(body={"Ext_Id__c": f"{t}-ok", "Name": "fine", "Description": "not in the allow-list"}),
        Message(body={"Ext_Id__c": f"{t}-bad", "Website": "https://example.com"}),  # a new Account needs a Name
        Message(body={"Name": "no external id"}),
    ])
    assert deliveries[0].ok
    assert not deliveries[1].ok and deliveries[1].retryable is False
    assert "REQUIRED_FIELD_MISSING" in str(deliveries[1].error)
    assert not deliveries[2].ok and deliveries[2].retryable is False and "Ext_Id__c" in str(deliveries[2].error)
    stored = next(conn.query(f"SELECT Name, Description FROM Account WHERE Ext_Id__c = '{t}-ok'"))
    assert (stored["Name"], stored["Description"]) == ("fine", None)


def test_a_big_batch_goes_through_bulk_api_2(conn: OrgConnection) -> None:
    t = tag()
    sink = OrgUpsertSink(conn, "Account", "Ext_Id__c", bulk_threshold=2000)
    tricky = 'Comma, "quotes" and\na newline'
    messages = [Message(body={"Ext_Id__c": f"{t}-{i:04d}", "Name": f"bulk {i}", "NumberOfEmployees": i,
                              "Description": tricky if i % 500 == 0 else None}) for i in range(2500)]
    messages[1234].body["Name"] = None  # an empty cell: a new Account without a Name fails
    deliveries = sink.write(messages)
    assert sink.bulk_jobs == 1
    failed = [i for i, d in enumerate(deliveries) if not d.ok]
    assert failed == [1234]
    assert deliveries[1234].retryable is False and "REQUIRED_FIELD_MISSING" in str(deliveries[1234].error)
    assert all(d.detail["created"] is True and d.detail["id"] for d in deliveries if d.ok)
    stored = names(conn, t)
    assert len(stored) == 2499 and stored[f"{t}-0042"] == "bulk 42"
    described = next(conn.query(f"SELECT Description FROM Account WHERE Ext_Id__c = '{t}-1000'"))
    assert described["Description"] == tricky

    again = sink.write(messages[:1999])  # below the threshold: collections, all updates now
    assert sink.bulk_jobs == 1
    assert all(d.ok and d.detail["created"] is False for i, d in enumerate(again) if i != 1234)


def test_a_refused_call_fails_every_message_permanently(conn: OrgConnection) -> None:
    deliveries = OrgUpsertSink(conn, "No_Such_Object__c", "Ext_Id__c").write(
        [Message(body={"Ext_Id__c": "a"}), Message(body={"Ext_Id__c": "b"})])
    assert [(d.ok, d.retryable) for d in deliveries] == [(False, False)] * 2
    assert "NOT_FOUND" in str(deliveries[0].error) or "INVALID_TYPE" in str(deliveries[0].error)


def test_an_unreachable_org_is_retryable(ext: LiveServer) -> None:
    nowhere = OrgConnection("https://127.0.0.1:9", token="x", ca_bundle=ext.ca_bundle, timeout=3)
    deliveries = OrgUpsertSink(nowhere, "Account", "Ext_Id__c").write([Message(body={"Ext_Id__c": "a"})])
    assert not deliveries[0].ok and deliveries[0].retryable is True


def test_create_then_update_by_id(conn: OrgConnection) -> None:
    t = tag()
    created = OrgCreateSink(conn, "Account").write(
        [Message(body={"Name": f"{t}-a", "attributes": {"type": "x"}}), Message(body={"Name": f"{t}-b"})])
    assert all(d.ok for d in created)
    ids = [d.detail["id"] for d in created]
    updated = OrgUpdateSink(conn, "Account", id_field="AccountId").write([
        Message(body={"AccountId": ids[0], "Name": f"{t}-a2"}),
        Message(body={"AccountId": "001000000000000AAA", "Name": "ghost"}),
        Message(body={"Name": "no id"})])
    assert updated[0].ok
    assert not updated[1].ok and updated[1].retryable is False
    assert not updated[2].ok and "AccountId" in str(updated[2].error)
    rows = {r["Id"]: r["Name"] for r in conn.query(f"SELECT Id, Name FROM Account WHERE Name LIKE '{t}-%'")}
    assert rows == {ids[0]: f"{t}-a2", ids[1]: f"{t}-b"}


def test_publish_rejects_an_unknown_event(conn: OrgConnection) -> None:
    deliveries = OrgPublishSink(conn, "No_Such_Event__e").write([Message(body={"A__c": 1})])
    assert not deliveries[0].ok and deliveries[0].retryable is False


def test_factories_check_their_configuration(conn: OrgConnection) -> None:
    context = SimpleNamespace(connections={"default": conn, "erp": conn}, validating=False)
    sink = make_upsert_sink({"connection": "erp", "object": "Account", "externalId": "Ext_Id__c",
                             "bulkThreshold": 50, "fields": ["Name"]}, context)
    assert sink.bulk_threshold == 50 and sink.fields == ["Name", "Ext_Id__c"]
    assert make_publish_sink({"event": "Printer_Status__e"}, context).object_name == "Printer_Status__e"
    assert make_update_sink({"object": "Account"}, context).id_field == "Id"
    for config, key in [({"externalId": "Ext_Id__c"}, "object"), ({"object": "Account"}, "externalId"),
                        ({"object": "Account", "externalId": "E", "bulkThreshold": "lots"}, "bulkThreshold"),
                        ({"object": "Account", "externalId": "E", "fields": "Name"}, "fields"),
                        ({"object": "Account", "externalId": "E", "connection": "prod"}, "connection")]:
        with pytest.raises(PipelineSpecError) as bad:
            make_upsert_sink(config, context)
        assert bad.value.key == (key,)
