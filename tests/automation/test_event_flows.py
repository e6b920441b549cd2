"""Platform-event-triggered flows: each published event runs the flow once, across restarts and crashes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from interlink.app.org import Org
from interlink.automation.event_flows import EventFlowRunner
from interlink.errors import MetadataError
from interlink.testing import backend_org

OBJECTS = {"Printer_Status__e": """\
label: Printer Status
fields:
  - {name: Printer_Id__c, type: text, length: 40}
  - {name: Ink_Level__c, type: number, precision: 5, scale: 0}
"""}

FLOW = """\
object: Printer_Status__e
trigger: event
condition: "Ink_Level__c < 30"
actions:
  - create:
      object: Case
      values: {Subject: "Ink low on {!$Record.Printer_Id__c}", Description: "{!$Record.Ink_Level__c}%"}
"""


def write_flow(root: Path, text: str = FLOW) -> None:
    folder = root / "project" / "metadata" / "flows"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Ink_Low.yaml").write_text(text)


@pytest.fixture
def org(store_backend: str, tmp_path: Path) -> Iterator[Org]:
    write_flow(tmp_path)
    with backend_org(tmp_path, store_backend, OBJECTS, unavailable=pytest.skip, bulk_workers=0) as opened:
        yield opened


def publish(org: Org, *levels: tuple[str, int]) -> None:
    results = org.records.create(org.admin_context(), "Printer_Status__e",
                                 [{"Printer_Id__c": p, "Ink_Level__c": level} for p, level in levels])
    assert all(r.success for r in results)


def cases(org: Org) -> list[tuple[str, str]]:
    rows = org.query.execute("SELECT Subject, Description FROM Case ORDER BY Subject", org.admin_context()).records
    return [(r["Subject"], r["Description"]) for r in rows]


def drain(org: Org) -> None:
    while org.event_flows.run_once("test"):
        pass


def test_each_matching_event_runs_the_flow_once(org: Org) -> None:
    publish(org, ("P-1", 12), ("P-2", 80), ("P-3", 29))
    drain(org)
    assert cases(org) == [("Ink low on P-1", "12%"), ("Ink low on P-3", "29%")]
    drain(org)  # nothing new: nothing runs again
    publish(org, ("P-4", 5))
    drain(org)
    assert len(cases(org)) == 3


def test_a_restart_resumes_after_the_checkpoint(org: Org) -> None:
    publish(org, ("A", 1))
    drain(org)
    publish(org, ("B", 2), ("C", 99))
    restarted = EventFlowRunner(org.flows, org.bus, org.store, org.records, lambda: org.admin_context().as_system())
    while restarted.run_once("after-restart"):
        pass
    assert [s for s, _ in cases(org)] == ["Ink low on A", "Ink low on B"]


def test_a_crash_mid_batch_processes_the_batch_again_never_twice(org: Org, monkeypatch: pytest.MonkeyPatch) -> None:
    publish(org, ("X", 3), ("Y", 4))
    real = org.flows.run_for

    class Crash(BaseException):
        pass

    def crash_after_running(flow: Any, event: Any) -> None:
        real(flow, event)  # the cases are written ... and then the process dies before the commit
        raise Crash()

    monkeypatch.setattr(org.flows, "run_for", crash_after_running)
    with pytest.raises(Crash):
        org.event_flows.run_once("doomed")
    assert cases(org) == []
    monkeypatch.setattr(org.flows, "run_for", real)
    drain(org)
    assert [s for s, _ in cases(org)] == ["Ink low on X", "Ink low on Y"]


def test_events_published_before_the_flow_existed_are_not_replayed(tmp_path: Path) -> None:
    with backend_org(tmp_path, "sqlite", OBJECTS, bulk_workers=0) as org:
        publish(org, ("Old", 1))
    write_flow(tmp_path)
    with backend_org(tmp_path, "sqlite", OBJECTS, bulk_workers=0) as org:
        publish(org, ("New", 2))
        drain(org)
        assert [s for s, _ in cases(org)] == ["Ink low on New"]


@pytest.mark.parametrize(("text", "message"), [
    (FLOW.replace("object: Printer_Status__e", "object: Account"), "is not a platform event"),
    (FLOW + "  - update: {Subject: x}\n", "has no record to update"),
    (FLOW.replace("trigger: event", "trigger: event\ntiming: before"),
     "only record-triggered flows run before the save"),
])
def test_bad_event_flows_are_clear_errors(tmp_path: Path, text: str, message: str) -> None:
    write_flow(tmp_path, text)
    with pytest.raises(MetadataError) as caught, backend_org(tmp_path, "sqlite", OBJECTS):
        pass
    assert message in caught.value.message
