"""The schedule source on a fake clock: due times, restarts that do not fire twice, missed runs caught up once."""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace
from typing import Any

import pytest

from interlink.middleware.base import PipelineSpecError
from interlink.middleware.sources.schedule import ScheduleSource, make_schedule_source

UTC = dt.UTC


class FakeClock:
    """A clock that only moves when the source sleeps (or the test says so)."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> dt.datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += dt.timedelta(seconds=seconds)


def at(hour: int, minute: int, second: int = 0) -> dt.datetime:
    return dt.datetime(2024, 6, 3, hour, minute, second, tzinfo=UTC)


def schedule(clock: FakeClock, checkpoint: Any = None, **config: Any) -> ScheduleSource:
    source = make_schedule_source({"cron": "*/5 * * * *", **config}, SimpleNamespace(pipeline="tick"))
    source.clock, source.sleep = clock, clock.sleep
    source.open(json.loads(json.dumps(checkpoint)) if checkpoint is not None else None)
    return source


def ticks(source: ScheduleSource, timeout: float = 0.0) -> list[str]:
    return [m.body["scheduled_at"] for m in source.read(10, timeout)]


def test_a_first_run_waits_for_the_next_due_time_and_fires_it_once() -> None:
    clock = FakeClock(at(10, 2, 30))
    source = schedule(clock)
    assert ticks(source, timeout=1.0) == []           # not due yet: waited the whole timeout
    assert clock.slept == [1.0]
    [message] = source.read(10, 600.0)                # due within the timeout: sleeps until then
    assert message.body == {"scheduled_at": "2024-06-03T10:05:00+00:00"}
    assert message.id == message.position == "2024-06-03T10:05:00+00:00"
    assert clock.now == at(10, 5)
    assert ticks(source) == []                        # and only once
    clock.now = at(10, 10, 1)
    assert ticks(source) == ["2024-06-03T10:10:00+00:00"]


def test_a_restart_after_a_fired_tick_does_not_fire_it_again() -> None:
    clock = FakeClock(at(10, 7))
    source = schedule(clock, "2024-06-03T10:05:00+00:00")
    assert ticks(source) == []
    assert ticks(source, timeout=300.0) == ["2024-06-03T10:10:00+00:00"]


def test_runs_missed_while_down_fire_once_on_start_with_catch_up() -> None:
    clock = FakeClock(at(11, 3))  # down from 10:05 to 11:03: twelve due times missed
    source = schedule(clock, "2024-06-03T10:05:00+00:00")
    assert ticks(source) == ["2024-06-03T11:00:00+00:00"]  # one tick, for the latest of them
    assert ticks(source) == []
    assert ticks(source, timeout=300.0) == ["2024-06-03T11:05:00+00:00"]


def test_missed_runs_are_skipped_without_catch_up() -> None:
    clock = FakeClock(at(11, 3))
    source = schedule(clock, "2024-06-03T10:05:00+00:00", catchUp=False)
    assert ticks(source) == []
    assert ticks(source, timeout=300.0) == ["2024-06-03T11:05:00+00:00"]


def test_ticks_that_fall_due_while_the_pipeline_is_busy_collapse_into_one() -> None:
    clock = FakeClock(at(10, 4))
    source = schedule(clock)
    assert ticks(source, timeout=120.0) == ["2024-06-03T10:05:00+00:00"]
    clock.now = at(10, 21)  # a slow sink held the runtime for sixteen minutes
    assert ticks(source) == ["2024-06-03T10:20:00+00:00"]
    assert ticks(source) == []


def test_cron_in_a_timezone_with_seconds() -> None:
    clock = FakeClock(dt.datetime(2024, 6, 3, 0, 29, 50, tzinfo=UTC))
    source = schedule(clock, cron="30 2 * * *", timezone="Europe/Paris")  # 02:30 Paris = 00:30 UTC in June
    assert ticks(source, timeout=60.0) == ["2024-06-03T02:30:00+02:00"]
    every_15s = schedule(FakeClock(at(9, 0, 1)), cron="* * * * * */15")
    assert ticks(every_15s, timeout=20.0) == ["2024-06-03T09:00:15+00:00"]


@pytest.mark.parametrize("config", [{"cron": "not a cron"}, {"cron": "* * * * *", "timezone": "Mars/Olympus"}, {}])
def test_bad_configuration_is_refused(config: dict[str, Any]) -> None:
    with pytest.raises(PipelineSpecError):
        make_schedule_source(config, SimpleNamespace(pipeline="tick"))
