"""Platform-event-triggered flows: run a flow's actions for each event published on its channel.

A flow with ``trigger: event`` on ``Printer_Status__e`` reads ``/event/Printer_Status__e`` from where it stopped.
Each poll takes the next events (at most 200, as the platform's event batches), runs the flow's actions for those
that meet its condition as the automated process (``$Record`` is the event), and moves the flow's checkpoint, the
last replay id it processed, in the same transaction. After a restart the flow resumes after its checkpoint, so an
event is handled once even across a crash; a flow activated for the first time starts at the newest event, as the
platform's subscriptions do. Two processes never both move one checkpoint (compare-and-set).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from sqlalchemy import and_, update

from interlink.automation.flows import FlowDef, FlowRuntime
from interlink.bus.bus import EventBus
from interlink.records.context import Context
from interlink.records.hooks import SaveEvent
from interlink.records.service import RecordService
from interlink.store.database import Store

log = logging.getLogger(__name__)

BATCH = 200


class _Moved(Exception):
    """Another worker moved the checkpoint first: this batch is theirs."""


class EventFlowRunner:
    """Feeds published events to the event-triggered flows (a worker task)."""

    def __init__(self, flows: FlowRuntime, bus: EventBus, store: Store, records: RecordService,
                 context: Callable[[], Context]) -> None:
        self.flows = flows
        self.bus = bus
        self.store = store
        self.records = records
        self.context = context

    def checkpoint(self, flow: FlowDef) -> int:
        """The last replay id ``flow`` processed (set to the newest event the first time it is asked)."""
        key = self._key(flow)
        stored = self.store.kv_get(key)
        if stored is not None:
            return int(stored.decode())
        latest = self.bus.latest_replay_id(self.bus.topic(f"/event/{flow.object}"))
        with self.store.write() as conn:
            if self.store.kv_get(key) is None:
                self.store.kv_put(conn, key, str(latest).encode())
        return int((self.store.kv_get(key) or b"0").decode())

    def prime(self) -> None:
        """Give every event-triggered flow its checkpoint now (a new flow starts at the newest event)."""
        for flow in self.flows.event_flows:
            self.checkpoint(flow)

    def run_once(self, worker_id: str) -> bool:
        """Process the next events of one flow that has some; False when none has."""
        del worker_id
        for flow in self.flows.event_flows:
            after = self.checkpoint(flow)
            topic = self.bus.topic(f"/event/{flow.object}")
            events = self.bus.read(topic, after, BATCH)
            if not events:
                continue
            obj = self.store.schema.object(flow.object)
            if obj is None:
                continue
            with contextlib.suppress(_Moved):  # another worker took this batch
                self._process(flow, obj, after, events)
            return True
        return False

    def _process(self, flow: FlowDef, obj: object, after: int, events: list[object]) -> None:
        context = self.context()
        payloads = [self.bus.decode(event) for event in events]  # type: ignore[arg-type]
        table = self.store.system["il_kv"]
        with self.records.unit_of_work(context) as uow:
            moved = uow.conn.execute(update(table).where(and_(
                table.c.key == self._key(flow), table.c.value == str(after).encode())).values(
                value=str(events[-1].replay_id).encode())).rowcount  # type: ignore[attr-defined]
            if moved != 1:
                raise _Moved()
            batch = SaveEvent("insert", obj, payloads, [None] * len(payloads), context, uow)  # type: ignore[arg-type]
            self.flows.run_for(flow, batch)
            for index, errors in batch.errors.items():  # no save to fail: the failures are logged
                log.warning("flow %s failed for event %s: %s", flow.name,
                            payloads[index].get("EventUuid"), "; ".join(str(e) for e in errors))

    @staticmethod
    def _key(flow: FlowDef) -> str:
        return f"event_flow_checkpoint:{flow.name.lower()}"


__all__ = ["EventFlowRunner"]
