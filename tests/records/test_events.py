"""Platform events and change events from the write path: publish behaviours, CDC headers, the outbox."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from interlink.app.org import Org
from interlink.bus import avro
from interlink.bus.bus import CUSTOM, EARLIEST
from interlink.bus.model import encode_replay_id
from interlink.errors import ReplayIdInvalid
from interlink.records.context import Context
from interlink.testing import backend_org, rest_client

EVENTS = {
    "Ping_After__e": "publishBehavior: PublishAfterCommit\nfields:\n  - {name: Note__c, type: text, length: 80}\n",
    "Ping_Now__e": "publishBehavior: PublishImmediately\nfields:\n  - {name: Note__c, type: text, length: 80, "
                   "required: true}\n",
    "Account": "changeDataCapture: true\n",
    "Contact": "changeDataCapture: true\n",
}


def nats_reachable() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 4222), timeout=0.5).close()
        return True
    except OSError:
        return False


@pytest.fixture(params=["sqlite", "postgresql", "sqlite+nats", "sqlite+memory"])
def org(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Org]:
    """The same behaviour on the SQLite and PostgreSQL stores, and with the NATS JetStream bus."""
    store, _, bus = request.param.partition("+")
    settings: dict[str, Any] = {}
    if bus == "nats":
        if not nats_reachable():
            pytest.skip("no NATS server with JetStream on 127.0.0.1:4222")
        settings["bus"] = f"nats://127.0.0.1:4222?prefix=T{uuid.uuid4().hex[:10]}"
    elif bus == "memory":
        settings["bus"] = "memory://"
    with backend_org(tmp_path, store, EVENTS, unavailable=pytest.skip, **settings) as opened:
        try:
            yield opened
        finally:
            if bus == "nats":
                opened.bus.backend.delete_streams()


def events_on(org: Org, topic_name: str) -> list[dict[str, Any]]:
    topic = org.bus.topic(topic_name)
    return [org.bus.decode(e) for e in org.bus.read(topic, 0, 10_000)]


def headers(org: Org, topic_name: str = "/data/ChangeEvents") -> list[dict[str, Any]]:
    return [e["ChangeEventHeader"] for e in events_on(org, topic_name)]


def admin(org: Org) -> Context:
    return org.admin_context()


# -- platform events -------------------------------------------------------------------------------------------


def test_publish_returns_enqueued_uuid_and_event_carries_server_fields(org: Org) -> None:
    results = org.records.create(admin(org), "Ping_Now__e", [{"Note__c": "hello"}])
    assert results[0].success and results[0].id.startswith("e0")
    wire = results[0].to_wire()
    assert wire["errors"][0]["statusCode"] == "OPERATION_ENQUEUED"
    [event] = events_on(org, "/event/Ping_Now__e")
    assert event["Note__c"] == "hello"
    assert event["EventUuid"] == wire["errors"][0]["message"]
    assert event["CreatedById"] == admin(org).user_id
    assert abs(event["CreatedDate"] - time.time() * 1000) < 60_000


def test_invalid_event_is_refused_and_nothing_published(org: Org) -> None:
    results = org.records.create(admin(org), "Ping_Now__e", [{}, {"Nope__c": 1}])
    assert [r.errors[0].error_code for r in results] == ["REQUIRED_FIELD_MISSING", "INVALID_FIELD"]
    assert events_on(org, "/event/Ping_Now__e") == []


def test_all_or_none_publishes_nothing_when_one_event_is_bad(org: Org) -> None:
    results = org.records.create(admin(org), "Ping_Now__e", [{"Note__c": "ok"}, {}], all_or_none=True)
    assert not results[0].success and results[0].errors[0].error_code == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert events_on(org, "/event/Ping_Now__e") == []


def test_publish_immediately_survives_a_rollback_publish_after_commit_does_not(org: Org) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom), org.records.unit_of_work(admin(org)):
        org.records.create(admin(org), "Ping_Now__e", [{"Note__c": "now"}])
        org.records.create(admin(org), "Ping_After__e", [{"Note__c": "after"}])
        org.records.create(admin(org), "Account", [{"Name": "Rolled back"}])
        raise Boom
    assert [e["Note__c"] for e in events_on(org, "/event/Ping_Now__e")] == ["now"]
    assert events_on(org, "/event/Ping_After__e") == []
    assert headers(org) == []


def test_publish_after_commit_waits_for_the_commit(org: Org) -> None:
    with org.records.unit_of_work(admin(org)):
        org.records.create(admin(org), "Ping_After__e", [{"Note__c": "later"}])
        assert events_on(org, "/event/Ping_After__e") == []
    assert [e["Note__c"] for e in events_on(org, "/event/Ping_After__e")] == ["later"]


def test_a_rolled_back_savepoint_drops_its_queued_events(org: Org) -> None:
    uow_context = admin(org)
    with org.records.unit_of_work(uow_context) as uow:
        org.records.create(uow_context, "Ping_After__e", [{"Note__c": "kept"}])
        with pytest.raises(RuntimeError), uow.savepoint():
            org.records.create(uow_context, "Ping_After__e", [{"Note__c": "dropped"}])
            raise RuntimeError
    assert [e["Note__c"] for e in events_on(org, "/event/Ping_After__e")] == ["kept"]


def test_hourly_allocation(tmp_path: Path) -> None:
    with backend_org(tmp_path, "sqlite", EVENTS, hourly_published_events=2) as org:
        assert all(r.success for r in org.records.create(admin(org), "Ping_Now__e", [{"Note__c": "1"},
                                                                                     {"Note__c": "2"}]))
        [result] = org.records.create(admin(org), "Ping_Now__e", [{"Note__c": "3"}])
        assert result.errors[0].error_code == "LIMIT_EXCEEDED"
        assert "HourlyPublishedPlatformEvents" in result.errors[0].message
        assert len(events_on(org, "/event/Ping_Now__e")) == 2
        limits = rest_client(org).get("/services/data/v66.0/limits/").json()
        assert limits["HourlyPublishedPlatformEvents"] == {"Max": 2, "Remaining": 0}


# -- change data capture ---------------------------------------------------------------------------------------


def test_change_events_for_create_update_delete_undelete(org: Org) -> None:
    context = admin(org)
    [created] = org.records.create(context, "Account", [{"Name": "Acme", "Phone": "123", "Industry": "Energy"}])
    org.records.update(context, "Account", [{"Id": created.id, "Name": "Acme 2", "Phone": None}])
    org.records.delete(context, [created.id])
    org.records.undelete(context, [created.id])
    events = events_on(org, "/data/AccountChangeEvent")
    assert [e["ChangeEventHeader"]["changeType"] for e in events] == ["CREATE", "UPDATE", "DELETE", "UNDELETE"]
    schema = avro.change_schema(org.store.schema.object("Account"), "AccountChangeEvent")
    positions = {f["name"]: i for i, f in enumerate(schema["fields"])}
    create, update, delete, undelete = events
    for event in events:
        header = event["ChangeEventHeader"]
        assert header["recordIds"] == [created.id] and header["entityName"] == "Account"
        assert header["commitUser"] == context.user_id
        assert header["sequenceNumber"] == 1
    assert create["Name"] == "Acme" and create["Industry"] == "Energy"
    assert create["ChangeEventHeader"]["changedFields"] == []
    changed = avro.bitmap_positions(update["ChangeEventHeader"]["changedFields"][0])
    assert sorted(changed) == sorted(positions[f] for f in ("Name", "Phone", "LastModifiedDate"))
    assert avro.bitmap_positions(update["ChangeEventHeader"]["nulledFields"][0]) == [positions["Phone"]]
    assert update["Name"] == "Acme 2" and update["Industry"] is None and update["Phone"] is None
    assert all(value is None for key, value in delete.items() if key != "ChangeEventHeader")
    assert undelete["Name"] == "Acme 2"
    assert len({e["ChangeEventHeader"]["transactionKey"] for e in events}) == 4


def test_one_transaction_shares_a_key_with_increasing_sequence_numbers(org: Org) -> None:
    context = admin(org)
    with org.records.unit_of_work(context):
        [account] = org.records.create(context, "Account", [{"Name": "Parent"}])
        org.records.create(context, "Contact", [{"LastName": "Child", "AccountId": account.id}])
        org.records.update(context, "Account", [{"Id": account.id, "Phone": "555"}])
    found = headers(org)
    assert [(h["entityName"], h["changeType"]) for h in found] == [("Account", "CREATE"), ("Contact", "CREATE"),
                                                                    ("Account", "UPDATE")]
    assert len({h["transactionKey"] for h in found}) == 1
    assert [h["sequenceNumber"] for h in found] == [1, 2, 3]
    assert [h["entityName"] for h in headers(org, "/data/ContactChangeEvent")] == ["Contact"]


def test_identical_changes_merge_into_one_event(org: Org) -> None:
    context = admin(org)
    created = org.records.create(context, "Account", [{"Name": f"A{i}"} for i in range(3)])
    record_ids = [r.id for r in created]
    org.records.update(context, "Account", [{"Id": i, "Rating": "Hot"} for i in record_ids])
    org.records.delete(context, record_ids)
    found = headers(org, "/data/AccountChangeEvent")
    assert [h["changeType"] for h in found] == ["CREATE"] * 3 + ["UPDATE", "DELETE"]
    assert found[3]["recordIds"] == record_ids and found[4]["recordIds"] == record_ids


def test_a_failed_all_or_none_write_emits_nothing(org: Org) -> None:
    results = org.records.create(admin(org), "Account", [{"Name": "Good"}, {"Phone": "no name"}], all_or_none=True)
    assert not any(r.success for r in results)
    assert headers(org) == []


def test_objects_without_cdc_emit_nothing(org: Org) -> None:
    org.records.create(admin(org), "Lead", [{"LastName": "L", "Company": "C"}])
    assert headers(org) == []
    org.bus.channels.enable("Lead")
    org.records.create(admin(org), "Lead", [{"LastName": "M", "Company": "C"}])
    assert [h["entityName"] for h in headers(org)] == ["Lead"]
    assert org.bus.channels.disable("Lead")


def test_overflow_after_the_threshold(tmp_path: Path) -> None:
    with backend_org(tmp_path, "sqlite", EVENTS, cdc_overflow_threshold=2) as org:
        org.records.create(admin(org), "Account", [{"Name": f"N{i}"} for i in range(5)])
        found = headers(org)
        assert [h["changeType"] for h in found] == ["CREATE", "CREATE", "GAP_OVERFLOW"]
        assert found[2]["recordIds"] == [] and found[2]["entityName"] == "Account"


def test_custom_channel_with_filter_and_enrichment(org: Org) -> None:
    org.bus.channels.enable("Account", "Big__chn", filter="AnnualRevenue > 1000000 AND Name LIKE 'Big%'",
                            enriched_fields=["Industry"])
    context = admin(org)
    created = org.records.create(context, "Account", [
        {"Name": "Big One", "AnnualRevenue": 5_000_000, "Industry": "Energy"},
        {"Name": "Small One", "AnnualRevenue": 10},
        {"Name": "Big but poor", "AnnualRevenue": 10},
    ])
    org.records.update(context, "Account", [{"Id": created[0].id, "Phone": "1"}])
    found = events_on(org, "/data/Big__chn")
    assert [e["ChangeEventHeader"]["recordIds"] for e in found] == [[created[0].id], [created[0].id]]
    assert found[1]["Industry"] == "Energy"  # enriched: sent although unchanged
    assert found[1]["Phone"] == "1"
    assert len(headers(org, "/data/AccountChangeEvent")) == 4  # ChangeEvents is unfiltered


def test_invalid_channel_definitions_are_refused(org: Org) -> None:
    from interlink.errors import MetadataError

    with pytest.raises(MetadataError):
        org.bus.channels.enable("Account", "Big__chn", filter="Nope__c > 1")
    with pytest.raises(MetadataError):
        org.bus.channels.enable("Account", "Big__chn", filter="AND AND")
    with pytest.raises(MetadataError):
        org.bus.channels.enable("Account", "NoSuffix")
    with pytest.raises(MetadataError):
        org.bus.channels.enable("Ping_Now__e")


# -- durability and retention --------------------------------------------------------------------------------------


def test_a_failed_relay_is_retried_from_the_outbox(org: Org, monkeypatch: pytest.MonkeyPatch) -> None:
    real_append = org.bus.backend.append

    def broken(*_args: Any, **_kwargs: Any) -> list[int]:
        raise OSError("bus down")

    monkeypatch.setattr(org.bus.backend, "append", broken)
    [result] = org.records.create(admin(org), "Account", [{"Name": "Outbox"}])
    assert result.success  # the write is acknowledged although the bus is down
    monkeypatch.setattr(org.bus.backend, "append", real_append)
    assert headers(org) == []
    assert org.events.recover() == 1
    assert [h["recordIds"] for h in headers(org)] == [[result.id]]
    assert org.events.recover() == 0


def test_recovery_never_duplicates_an_event_already_on_the_bus(tmp_path: Path) -> None:
    with backend_org(tmp_path, "sqlite", EVENTS) as org:
        org.records.create(admin(org), "Account", [{"Name": "Once"}])
        org.events.housekeeping = lambda: None  # type: ignore[method-assign]  # "crash" before tidying
        org.usage.flush()
        org.bus.close()
        org.store.close()
    with backend_org(tmp_path, "sqlite", EVENTS) as reopened:
        assert len(headers(reopened)) == 1


def test_retention_and_replay_validation(tmp_path: Path) -> None:
    with backend_org(tmp_path, "sqlite", EVENTS, event_retention_hours=0.5 / 3600) as org:
        org.records.create(admin(org), "Ping_Now__e", [{"Note__c": "old"}])
        topic = org.bus.topic("/event/Ping_Now__e")
        first = org.bus.read(topic, 0, 10)[0].replay_id
        time.sleep(0.6)
        org.records.create(admin(org), "Ping_Now__e", [{"Note__c": "new"}])
        assert org.bus.purge_expired() == 1
        after = org.bus.start_after(topic, EARLIEST)
        assert [org.bus.decode(e)["Note__c"] for e in org.bus.read(topic, after, 10)] == ["new"]
        with pytest.raises(ReplayIdInvalid):
            org.bus.start_after(topic, CUSTOM, encode_replay_id(first - 1))
        assert org.bus.start_after(topic, CUSTOM, encode_replay_id(first)) == first


def test_a_deploy_replaces_channel_file_members(tmp_path: Path) -> None:
    channel = tmp_path / "project" / "metadata" / "channels" / "Deals__chn.yaml"
    channel.parent.mkdir(parents=True)
    channel.write_text("members:\n  - {entity: Opportunity, filter: \"Amount > 10\"}\n")
    with backend_org(tmp_path, "sqlite", EVENTS) as org:
        [member] = org.bus.channels.channel("Deals__chn")  # type: ignore[misc]
        assert member.filter == "Amount > 10" and member.source == "metadata"
        channel.write_text("members:\n  - {entity: Opportunity, filter: \"Amount > 99999\"}\n")
        org._bootstrap(deploy=True)
        [member] = org.bus.channels.channel("Deals__chn")  # type: ignore[misc]
        assert member.filter == "Amount > 99999"
        channel.write_text("members:\n  - Account\n")
        org._bootstrap(deploy=True)
        assert [m.entity for m in org.bus.channels.channel("Deals__chn")] == ["Account"]  # type: ignore[union-attr]
        assert org.bus.topic("/data/Deals__chn").name == "/data/Deals__chn"
        from interlink.errors import TopicNotFound

        with pytest.raises(TopicNotFound):
            org.bus.topic("/data/deals__chn")


def test_an_after_save_hook_publishes_with_the_transaction(org: Org) -> None:
    """A Python trigger (after-save hook) publishing a PublishAfterCommit event: only committed saves announce."""
    from interlink.records.hooks import SaveEvent

    def announce(event: SaveEvent) -> None:
        org.records.create(event.context, "Ping_After__e", [{"Note__c": row["Name"]} for row in event.new])

    org.hooks.register("after_save", announce, objects=["Account"], operations=["insert"])
    try:
        org.records.create(admin(org), "Account", [{"Name": "Kept"}])
        with pytest.raises(RuntimeError), org.records.unit_of_work(admin(org)):
            assert org.records.create(admin(org), "Account", [{"Name": "Lost"}])[0].success  # the hook ran
            raise RuntimeError("the caller's transaction fails after the save")
    finally:
        org.hooks.unregister(announce)
    assert [e["Note__c"] for e in events_on(org, "/event/Ping_After__e")] == ["Kept"]


def test_changes_made_outside_the_write_path_become_gap_events(org: Org) -> None:
    from sqlalchemy import text

    [account] = org.records.create(admin(org), "Account", [{"Name": "Watched"}])
    org.events.housekeeping()
    assert org.events.emit_gaps() == 0  # the write path's own changes leave nothing behind
    with org.store.write() as conn:  # as a foreign tool would: plain SQL on the table
        conn.execute(text('UPDATE "Account" SET "Phone" = :phone WHERE "Id" = :id'), {"id": account.id, "phone": "555"})
        conn.execute(text('DELETE FROM "Contact"'))
    assert org.events.emit_gaps() == 1
    found = headers(org, "/data/AccountChangeEvent")
    assert [h["changeType"] for h in found] == ["CREATE", "GAP_UPDATE"]
    assert found[1]["recordIds"] == [account.id] and found[1]["changedFields"] == []
    org.bus.channels.disable("Account")
    with org.store.write() as conn:
        conn.execute(text('UPDATE "Account" SET "Phone" = :phone WHERE "Id" = :id'), {"id": account.id, "phone": "556"})
    assert org.events.emit_gaps() == 0  # no longer selected: no triggers, no events


def test_a_deploy_adding_a_defaulted_field_is_not_a_gap(tmp_path: Path) -> None:
    with backend_org(tmp_path, "sqlite", EVENTS) as org:
        org.records.create(admin(org), "Account", [{"Name": "Before"}])
        (tmp_path / "project" / "metadata" / "objects" / "Account.yaml").write_text(
            "changeDataCapture: true\nfields:\n  - {name: Vip__c, type: checkbox, defaultValue: true}\n")
        org._bootstrap(deploy=True)
        assert org.store.schema.object("Account").has_field("Vip__c")  # type: ignore[union-attr]
        assert org.events.emit_gaps() == 0
