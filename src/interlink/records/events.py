"""Events from the write path: publishing platform events and emitting change events, durably.

Platform events are "created" like records (REST, composite, collections, triggers): each is validated
against its definition, encoded, and published either at once (``PublishImmediately``, even if the
caller's transaction later rolls back) or with the transaction (``PublishAfterCommit``).

Change events and publish-after-commit events go through an outbox: just before a unit of work
commits, its events are written to ``il_outbox`` in the same transaction; once it has committed they
are appended to the bus and the outbox row is marked relayed (rows are deleted in batches). A crash
between the commit and the append leaves the row behind, and the next start relays it (the bus drops
events it already holds), so a committed change never loses its event and a rolled-back one never
emits one.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import delete, select

from interlink import ids
from interlink.bus.bus import EventBus
from interlink.bus.cdc import Origin, RecordChange, change_origin
from interlink.bus.model import NewEvent
from interlink.errors import BusUnavailable, DmlError, InterlinkError, OperationEnqueued, all_or_none_rolled_back
from interlink.metadata.model import ObjectDef
from interlink.records import prepare
from interlink.records.context import Context
from interlink.records.results import SaveResult
from interlink.records.unit_of_work import UnitOfWork, UnitOfWorkManager
from interlink.store.change_log import forget_own_changes
from interlink.store.database import Store, utcnow

log = logging.getLogger(__name__)

_RETRY_AFTER_SECONDS = 10.0


def _pack(events: Sequence[NewEvent]) -> bytes:
    return orjson.dumps([[e.topic, e.event_uuid, e.schema_id, base64.b64encode(e.payload).decode(), e.created_ms]
                         for e in events])


def _unpack(blob: bytes) -> list[NewEvent]:
    return [NewEvent(topic, event_uuid, schema_id, base64.b64decode(payload), created_ms)
            for topic, event_uuid, schema_id, payload, created_ms in orjson.loads(blob)]


class EventEmitter:
    """Connects the records layer to the bus: platform-event publishing and the change-event outbox."""

    def __init__(self, store: Store, units: UnitOfWorkManager, bus: EventBus) -> None:
        self.store = store
        self.units = units
        self.bus = bus
        self._ids = ids.IdGenerator()
        self._relayed: list[int] = []
        self._in_flight: set[int] = set()
        self._failed: set[int] = set()  # rows whose relay failed (bus outage): retried at the next housekeeping
        self._waiting = False  # housekeeping found the bus still down (said once per outage)
        self._lock = threading.Lock()
        units.before_commit.append(self._before_commit)

    # -- platform events ---------------------------------------------------------------------------------------

    def publish(self, context: Context, obj: ObjectDef, records: Sequence[dict[str, Any]], *,
                all_or_none: bool = False) -> list[SaveResult]:
        """Publish platform events given as field values; one SaveResult per event."""
        results = [SaveResult() for _ in records]
        ready: list[tuple[int, NewEvent]] = []
        for index, values in enumerate(records):
            try:
                parsed, refs = prepare.resolve(obj, values, creating=True, system_mode=context.system_mode)
                if refs:
                    raise DmlError("Platform event fields take values, not relationship references", [])
                error = prepare.missing_required(obj, parsed, creating=True)
                if error is not None:
                    raise error
                ready.append((index, self.bus.encode_event(obj, parsed, context.user_id)))
            except InterlinkError as error:
                results[index].errors.append(prepare.as_dml_error(error))
        if all_or_none and any(r.errors for r in results):
            for index, _ in ready:
                results[index].errors.append(all_or_none_rolled_back())
            return results
        if not ready:
            return results
        try:
            self.bus.reserve(len(ready))
        except InterlinkError as error:
            for index, _ in ready:
                results[index].errors.append(DmlError(error.message, error_code=error.error_code))
            return results
        events = [event for _, event in ready]
        uow = self.units.current
        if obj.publish_behavior == "PublishAfterCommit" and uow is not None:
            uow.events.extend(events)
        else:
            self.bus.append(events)
        for index, event in ready:
            results[index].id = self._ids.new(obj.key_prefix)
            results[index].notices.append(OperationEnqueued(event.event_uuid))
        return results

    # -- the outbox --------------------------------------------------------------------------------------------

    def _before_commit(self, uow: UnitOfWork) -> None:
        if uow.changes and self.bus.channels.any_members():
            # The change-logging triggers saw this transaction's writes too; they are described below.
            forget_own_changes(uow.conn, self.store.backend, [change.record_id for change in uow.changes])
        events = list(self._change_events(uow)) + uow.events
        if not events:
            return
        table = self.store.system["il_outbox"]
        row_id = uow.conn.execute(table.insert().values(created_at=utcnow(), events=_pack(events))
                                  .returning(table.c.id)).scalar_one()
        with self._lock:
            self._in_flight.add(row_id)
        uow.after_commit(lambda: self._relay(row_id, events))
        uow.after_rollback(lambda: self._forget(row_id))

    def _change_events(self, uow: UnitOfWork) -> list[NewEvent]:
        if not uow.changes:
            return []
        schema = self.store.schema
        changes: list[RecordChange] = []
        for change in uow.changes:
            if not self.bus.channels.members_for(change.object_name):
                continue
            obj = schema.object(change.object_name)
            if obj is not None:
                changes.append(RecordChange(change.operation, obj, change.record_id, change.fields,
                                            change.changed_fields))
        if not changes:
            return []
        context = uow.context
        origin = Origin(context.user_id, change_origin(context.api_version, context.client,
                                                       internal=context.system_mode, api=context.api))
        return self.bus.changes.build(changes, origin)

    def _forget(self, row_id: int) -> None:
        with self._lock:
            self._in_flight.discard(row_id)

    def _relay(self, row_id: int, events: list[NewEvent]) -> None:
        try:
            self.bus.append(events)
        except Exception as error:
            if isinstance(error, BusUnavailable):
                log.warning("could not append %d events to the bus (%s); they stay in the outbox and are retried",
                            len(events), error.message)
            else:
                log.exception("could not append %d events to the bus; they stay in the outbox and are retried",
                              len(events))
            with self._lock:
                self._in_flight.discard(row_id)
                self._failed.add(row_id)
            return
        with self._lock:
            self._in_flight.discard(row_id)
            self._relayed.append(row_id)

    def emit_gaps(self, limit: int = 10_000) -> int:
        """GAP events for changes made outside the write path (logged by the store's triggers)."""
        table = self.store.system["il_external_change"]
        with self.store.read() as conn:
            rows = conn.execute(select(table).order_by(table.c.id).limit(limit)).all()
        if not rows:
            return 0
        groups: list[tuple[Any, str, list[str]]] = []
        for row in rows:
            obj = self.store.schema.object(row.object_name)
            if obj is None:
                continue
            if groups and groups[-1][0] is obj and groups[-1][1] == row.operation:
                if row.record_id not in groups[-1][2]:
                    groups[-1][2].append(row.record_id)
            else:
                groups.append((obj, row.operation, [row.record_id]))
        events = self.bus.changes.build_gaps(groups)
        if events:
            self.bus.append(events)
        read_ids = [row.id for row in rows]  # exactly these: a concurrent writer may commit lower ids meanwhile
        with self.store.write() as conn:
            for start in range(0, len(read_ids), 500):
                conn.execute(delete(table).where(table.c.id.in_(read_ids[start:start + 500])))
        return len(events)

    def housekeeping(self) -> None:
        """Delete relayed outbox rows; relay rows a crash or a bus outage left behind (at least once); send GAP
        events for changes made outside the write path."""
        self.emit_gaps()
        with self._lock:
            done, self._relayed = self._relayed, []
            in_flight = set(self._in_flight)
            failed = set(self._failed)
        table = self.store.system["il_outbox"]
        if done:
            with self.store.write() as conn:
                conn.execute(delete(table).where(table.c.id.in_(done)))
        cutoff = utcnow().timestamp() - _RETRY_AFTER_SECONDS
        with self.store.read() as conn:
            stuck = [row for row in conn.execute(select(table).order_by(table.c.id))
                     if row.id in failed or (row.id not in in_flight and row.created_at.timestamp() < cutoff)]
        if stuck:
            try:
                self._replay_rows(stuck)
            except BusUnavailable as error:  # still down: tried again at the next housekeeping
                if not self._waiting:
                    log.warning("%d outbox rows wait for the event bus: %s", len(stuck), error.message)
                self._waiting = True
                return
            self._waiting = False

    def recover(self) -> int:
        """Relay everything left in the outbox (at start, before serving). Returns the events relayed."""
        table = self.store.system["il_outbox"]
        with self.store.read() as conn:
            rows = list(conn.execute(select(table).order_by(table.c.id)))
        return self._replay_rows(rows)

    def _replay_rows(self, rows: Sequence[Any]) -> int:
        table = self.store.system["il_outbox"]
        relayed = 0
        for row in rows:
            events = _unpack(row.events)
            self.bus.append(events, dedupe=True)
            with self.store.write() as conn:
                conn.execute(delete(table).where(table.c.id == row.id))
            with self._lock:
                self._failed.discard(row.id)
            relayed += len(events)
        if relayed:
            log.info("relayed %d events left in the outbox", relayed)
        return relayed
