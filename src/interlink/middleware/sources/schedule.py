"""The schedule source: a cron expression that emits one tick message at each due time.

Each tick is ``{"scheduled_at": "<ISO time>"}`` (in the configured ``timezone``, UTC by default) with the same
text as message id and position, so the runtime's checkpoint is the last fired due time:

- a restart resumes after the checkpoint and never fires a due time twice (a tick read but not acknowledged
  before a crash fires again, with the same id, for ``dedupe``);
- due times missed while the pipeline was down fire **once** on start, as one tick for the latest of them,
  with ``catchUp: true`` (the default); with ``catchUp: false`` they are skipped and the next tick is the next
  due time after now;
- a first run (no checkpoint) waits for the first due time after start;
- ticks that fall due while the pipeline is busy are likewise collapsed into one.

Cron expressions use croniter's syntax: five fields, or six with seconds last; ``@hourly``-style aliases.
The source never ends (:attr:`exhausted` stays False).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter

from interlink.middleware.base import Message, PipelineSpecError, Source
from interlink.middleware.sources import require

_TICK = dt.timedelta(microseconds=1)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ScheduleSource(Source):
    """Cron ticks (see the module docstring). ``clock`` and ``sleep`` are injectable for tests."""

    name = "schedule"

    def __init__(self, *, cron: str, timezone: str = "UTC", catch_up: bool = True,
                 clock: Callable[[], dt.datetime] = utc_now, sleep: Callable[[float], None] = time.sleep) -> None:
        if not croniter.is_valid(cron):
            raise PipelineSpecError(f"schedule: invalid cron expression {cron!r}")
        try:
            self.zone = ZoneInfo(timezone)
        except (KeyError, ValueError):
            raise PipelineSpecError(f"schedule: unknown timezone {timezone!r}") from None
        self.cron = cron
        self.catch_up = catch_up
        self.clock = clock
        self.sleep = sleep
        self.next_due: dt.datetime | None = None

    def _now(self) -> dt.datetime:
        return self.clock().astimezone(self.zone)

    def _next_after(self, moment: dt.datetime) -> dt.datetime:
        return croniter(self.cron, moment.astimezone(self.zone)).get_next(dt.datetime)

    def _latest_due(self, now: dt.datetime) -> dt.datetime:
        """The latest due time at or before ``now``."""
        return croniter(self.cron, now + _TICK).get_prev(dt.datetime)

    def open(self, checkpoint: Any | None) -> None:
        """Plan the next tick: after ``checkpoint`` (catching up or skipping missed ones), else after now."""
        now = self._now()
        if checkpoint is None:
            self.next_due = self._next_after(now)
            return
        last_fired = dt.datetime.fromisoformat(str(checkpoint))
        if last_fired.tzinfo is None:
            last_fired = last_fired.replace(tzinfo=self.zone)
        due = self._next_after(last_fired)
        if due <= now and not self.catch_up:
            due = self._next_after(now)
        self.next_due = due

    def read(self, max_messages: int, timeout: float) -> list[Message]:
        """The tick that is due (one, however many were missed), waiting up to ``timeout`` seconds for it."""
        if self.next_due is None:
            raise RuntimeError("schedule source is not open")
        now = self._now()
        if self.next_due > now:
            wait = (self.next_due - now).total_seconds()
            if wait > timeout:
                if timeout > 0:
                    self.sleep(timeout)
                return []
            self.sleep(max(wait, 0.0))
            now = self._now()
            if self.next_due > now:
                return []
        fired = max(self.next_due, self._latest_due(now))  # collapse a backlog into its latest due time
        self.next_due = self._next_after(fired)
        scheduled_at = fired.isoformat()
        return [Message(body={"scheduled_at": scheduled_at}, id=scheduled_at, position=scheduled_at,
                        headers={"cron": self.cron, "fired_at": now.isoformat()})]


def make_schedule_source(config: dict[str, Any], context: Any) -> ScheduleSource:
    """Build a schedule source from its pipeline config (keys in docs/middleware-connectors.md)."""
    return ScheduleSource(
        cron=str(require(config, "cron", "schedule")),
        timezone=str(config.get("timezone", "UTC")),
        catch_up=bool(config.get("catchUp", True)),
    )


__all__ = ["ScheduleSource", "make_schedule_source"]
