"""Scheduled flows: at each tick of a cron schedule (UTC), run a flow for the records meeting its condition.

::

    object: Account
    trigger: schedule
    schedule: "0 2 * * *"             # every day at 02:00 UTC
    condition: "Rating = 'Hot'"       # which records (a SOQL condition; none: every record)
    actions:
      - update: {Description: "Reviewed {!$Flow.CurrentDateTime}"}

The records are read in batches of 200, each run through the actions in its own transaction, as the automated
process. Each flow keeps the time of its last run; a tick is claimed with compare-and-set before it runs, so one
process runs it, once. Missed ticks (the org was down) collapse into one run when it is back; a flow activated
for the first time waits for its next tick.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import and_, update

from interlink.automation.flows import FlowDef, FlowRuntime
from interlink.records.context import Context
from interlink.records.hooks import SaveEvent
from interlink.records.service import RecordService
from interlink.soql.engine import QueryEngine
from interlink.store.database import Store, utcnow

log = logging.getLogger(__name__)

BATCH = 200


class ScheduledFlowRunner:
    """Runs scheduled flows when their tick is due (a worker task)."""

    def __init__(self, flows: FlowRuntime, store: Store, records: RecordService, query: QueryEngine,
                 context: Callable[[], Context], clock: Callable[[], datetime] = utcnow) -> None:
        self.flows = flows
        self.store = store
        self.records = records
        self.query = query
        self.context = context
        self.clock = clock

    def prime(self) -> None:
        """Give every scheduled flow its last-run time now (a new flow waits for its next tick)."""
        for flow in self.flows.scheduled_flows:
            self._last_run(flow)

    def next_run(self, flow: FlowDef) -> datetime:
        from croniter import croniter

        return croniter(flow.schedule, self._last_run(flow)).get_next(datetime)  # type: ignore[no-any-return]

    def run_once(self, worker_id: str) -> bool:
        """Run one scheduled flow whose tick has come; False when none is due."""
        del worker_id
        now = self.clock()
        for flow in self.flows.scheduled_flows:
            from croniter import croniter

            last = self._last_run(flow)
            due = croniter(flow.schedule, last).get_next(datetime)
            if due > now:
                continue
            latest = croniter(flow.schedule, now).get_prev(datetime)  # missed ticks run once
            table = self.store.system["il_kv"]
            with self.store.write() as conn:
                claimed = conn.execute(update(table).where(and_(
                    table.c.key == self._key(flow), table.c.value == last.isoformat().encode())).values(
                    value=latest.isoformat().encode())).rowcount
            if claimed == 1:
                self._run(flow)
            return True
        return False

    def _run(self, flow: FlowDef) -> None:
        obj = self.store.schema.object(flow.object)
        if obj is None:
            return
        context = self.context()
        # The one query engine finds the records; each batch of 200 is read whole and run in its own transaction.
        soql = f"SELECT Id FROM {obj.name}" + (f" WHERE {flow.condition_text}" if flow.condition_text else "")
        for _compiled, rows in self.query.stream(soql + " ORDER BY Id", context, chunk_size=BATCH):
            batch = [row for row in self.records.retrieve(obj.name, [r[0] for r in rows]) if row is not None]
            with self.records.unit_of_work(context) as uow:
                event = SaveEvent("update", obj, batch, [dict(row) for row in batch], context, uow)
                self.flows.run_for(flow, event)
                for index, errors in event.errors.items():
                    log.warning("scheduled flow %s failed for %s: %s", flow.name, batch[index].get("Id"),
                                "; ".join(str(e) for e in errors))

    def _last_run(self, flow: FlowDef) -> datetime:
        stored = self.store.kv_get(self._key(flow))
        if stored is None:
            with self.store.write() as conn:
                if self.store.kv_get(self._key(flow)) is None:
                    self.store.kv_put(conn, self._key(flow), self.clock().isoformat().encode())
            stored = self.store.kv_get(self._key(flow)) or b""
        return datetime.fromisoformat(stored.decode())

    @staticmethod
    def _key(flow: FlowDef) -> str:
        return f"scheduled_flow_last_run:{flow.name.lower()}"


__all__ = ["ScheduledFlowRunner"]
