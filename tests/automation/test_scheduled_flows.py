"""Scheduled flows: a cron tick runs the flow once for the records meeting its condition."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from interlink.errors import MetadataError
from interlink.testing import backend_org

FLOW = """\
object: Account
trigger: schedule
schedule: "0 2 * * *"
condition: "Rating = 'Hot'"
actions:
  - update: {Site: "Reviewed"}
  - create: {object: Task, values: {Subject: "Call {!$Record.Name}", WhatId: "{!$Record.Id}"}}
"""


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 29, 1, 0, 0)

    def __call__(self) -> datetime:
        return self.now


def write_flow(root: Path, text: str = FLOW) -> None:
    folder = root / "project" / "metadata" / "flows"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Nightly_Review.yaml").write_text(text)


def test_a_tick_runs_the_flow_once_for_matching_records(tmp_path: Path) -> None:
    write_flow(tmp_path)
    with backend_org(tmp_path, "sqlite", {}, bulk_workers=0) as org:
        clock = Clock()
        org.scheduled_flows.clock = clock
        with org.store.write() as conn:
            org.store.kv_put(conn, "scheduled_flow_last_run:nightly_review", clock.now.isoformat().encode())
        context = org.admin_context()
        org.records.create(context, "Account", [{"Name": f"Hot {i}", "Rating": "Hot"} for i in range(250)] +
                           [{"Name": "Cold", "Rating": "Cold"}])
        assert org.scheduled_flows.next_run(org.flows.scheduled_flows[0]) == datetime(2026, 11, 29, 2, 0)
        assert not org.scheduled_flows.run_once("w")  # 01:00: not yet
        clock.now += timedelta(hours=1, minutes=1)
        assert org.scheduled_flows.run_once("w")
        assert not org.scheduled_flows.run_once("w")  # the tick ran once
        reviewed = org.query.execute("SELECT COUNT() FROM Account WHERE Site = 'Reviewed'", context)
        assert reviewed.total_size == 250  # two batches (200 + 50)
        assert org.query.execute("SELECT COUNT() FROM Task", context).total_size == 250
        clock.now += timedelta(days=3)  # three missed ticks run once
        assert org.scheduled_flows.run_once("w") and not org.scheduled_flows.run_once("w")
        assert org.query.execute("SELECT COUNT() FROM Task", context).total_size == 500


@pytest.mark.parametrize(("text", "message"), [
    (FLOW.replace('"0 2 * * *"', '"every night"'), "a cron expression"),
    (FLOW.replace('schedule: "0 2 * * *"\n', ""), "a cron expression"),
    (FLOW.replace("trigger: schedule", "trigger: create"), "schedule applies to trigger: schedule"),
])
def test_bad_schedules_are_clear_errors(tmp_path: Path, text: str, message: str) -> None:
    write_flow(tmp_path, text)
    with pytest.raises(MetadataError) as caught, backend_org(tmp_path, "sqlite", {}):
        pass
    assert message in caught.value.message
