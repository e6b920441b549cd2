"""EventBus: topic resolution and the Pub/Sub publish path's checks (in process)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from interlink.app.org import Org
from interlink.bus import avro
from interlink.bus.bus import MAX_EVENT_BYTES
from interlink.errors import PubSubPermissionDenied, TopicNotFound
from interlink.testing import local_org


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Org]:
    with local_org(tmp_path_factory.mktemp("bus"), sample_data=True) as opened:
        yield opened


def encoded(org: Org, resolution: str) -> tuple[str, bytes]:
    obj = org.store.schema.object("Case_Closed__e")
    schema_id, parsed = org.bus.event_schema(obj)  # type: ignore[arg-type]
    return schema_id, avro.encode(parsed, {"CreatedDate": 0, "CreatedById": "", "EventUuid": None, "CaseId__c": None,
                                           "OwnerId__c": None, "Resolution__c": resolution})


@pytest.mark.parametrize("name", ["/event/Nope__e", "/event/case_closed__e", "/data/Nope__chn", "/data/Foo",
                                  "event/Case_Closed__e", "/data/AccountChangeEvents", ""])
def test_unknown_topics(org: Org, name: str) -> None:
    with pytest.raises(TopicNotFound):
        org.bus.topic(name)


def test_known_topics(org: Org) -> None:
    assert org.bus.topic("/event/Case_Closed__e").can_publish
    change = org.bus.topic("/data/AccountChangeEvent")
    assert not change.can_publish and change.schema_id
    assert org.bus.topic("/data/ChangeEvents").selector.topic is None


def test_oversized_and_mismatched_events_fail_alone(org: Org) -> None:
    schema_id, good = encoded(org, "fine")
    _, huge = encoded(org, "x" * (MAX_EVENT_BYTES + 10))
    user = org.admin_context().user_id
    _, outcomes = asyncio.run(org.bus.publish_encoded("/event/Case_Closed__e", [
        ("a", schema_id, good), ("b", schema_id, huge), ("c", "unknown-schema", good), ("d", schema_id, b"\x01")],
        user))
    assert [o.replay_id is not None for o in outcomes] == [True, False, False, False]
    assert "limited to 1000000 bytes" in (outcomes[1].error or "")
    assert "Unknown schema id" in (outcomes[2].error or "")
    assert "does not match its Avro schema" in (outcomes[3].error or "")
    assert [o.correlation_key for o in outcomes] == ["a", "b", "c", "d"]


def test_change_event_topics_refuse_publishing(org: Org) -> None:
    schema_id, good = encoded(org, "x")
    with pytest.raises(PubSubPermissionDenied):
        asyncio.run(org.bus.publish_encoded("/data/AccountChangeEvent", [("a", schema_id, good)], "005"))


def test_a_changed_definition_gets_a_new_schema_id_and_old_events_stay_readable(tmp_path: Path) -> None:
    project = tmp_path / "project" / "metadata" / "objects"
    project.mkdir(parents=True)
    (project / "Ping__e.yaml").write_text("fields:\n  - {name: A__c, type: text, length: 10}\n")
    with local_org(tmp_path / "org", project_dir=tmp_path / "project") as org:
        org.records.create(org.admin_context(), "Ping__e", [{"A__c": "one"}])
        first = org.bus.topic("/event/Ping__e").schema_id
        (project / "Ping__e.yaml").write_text("fields:\n  - {name: A__c, type: text, length: 10}\n"
                                              "  - {name: B__c, type: number}\n")
        org._bootstrap(deploy=True)
        second = org.bus.topic("/event/Ping__e").schema_id
        assert first != second
        org.records.create(org.admin_context(), "Ping__e", [{"A__c": "two", "B__c": 2}])
        topic = org.bus.topic("/event/Ping__e")
        decoded = [org.bus.decode(e) for e in org.bus.read(topic, 0, 10)]
        assert [(d["A__c"], d.get("B__c")) for d in decoded] == [("one", None), ("two", 2.0)]
        assert org.bus.registry.json_of(first) and org.bus.registry.json_of(second)
