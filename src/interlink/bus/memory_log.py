"""An in-memory event log (``--bus memory://``) for tests and throwaway orgs: fast, shared by nothing, lost
when the process ends. It behaves like the other logs in everything but durability (same shared test suite):
one increasing sequence for every family, per-family purge floors, cursors woken by appends.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Sequence

from interlink.bus.backend import Bounds, BusBackend, Cursor, Notifier, ReadingCursor
from interlink.bus.model import FAMILIES, NewEvent, Selector, StoredEvent


class MemoryLog(BusBackend):
    name = "memory"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[str, list[StoredEvent]] = {family: [] for family in FAMILIES}
        self._floors: dict[str, int] = dict.fromkeys(FAMILIES, 0)
        self._sequence = 0
        self._notifier = Notifier()

    def open(self) -> None:
        """Nothing to open: the log lives in this object."""

    def close(self) -> None:
        """Nothing to release; the events stay readable until the object goes."""

    def append(self, events: Sequence[NewEvent], *, dedupe: bool = False) -> list[int]:
        replay_ids: list[int] = []
        with self._lock:
            known: dict[str, int] = {}
            if dedupe:
                wanted = {e.event_uuid for e in events}
                known = {e.event_uuid: e.replay_id for log in self._events.values() for e in log
                         if e.event_uuid in wanted}
            for new in events:
                if new.event_uuid in known:
                    replay_ids.append(known[new.event_uuid])
                    continue
                self._sequence += 1
                self._events[new.family].append(StoredEvent(self._sequence, new.topic, new.event_uuid,
                                                            new.schema_id, new.payload, new.created_ms))
                replay_ids.append(self._sequence)
                if dedupe:
                    known[new.event_uuid] = self._sequence
        self._notifier.wake()
        return replay_ids

    def read(self, selector: Selector, after: int, limit: int) -> list[StoredEvent]:
        with self._lock:
            log = self._events[selector.family]
            start = bisect.bisect_right(log, after, key=lambda e: e.replay_id)
            found: list[StoredEvent] = []
            for stored in log[start:]:
                if len(found) >= limit:
                    break
                if selector.topic is None or stored.topic == selector.topic:
                    found.append(stored)
            return found

    def bounds(self, selector: Selector) -> Bounds:
        with self._lock:
            return Bounds(self._floors[selector.family], self._sequence)

    def cursor(self, selector: Selector, after: int) -> Cursor:
        return ReadingCursor(self, self._notifier, selector, after, poll_seconds=3600.0)

    def purge(self, older_than_ms: int) -> int:
        removed = 0
        with self._lock:
            for family, log in self._events.items():
                old = [e for e in log if e.created_ms < older_than_ms]
                if not old:
                    continue
                top = max(e.replay_id for e in old)
                kept = [e for e in log if e.replay_id > top]
                removed += len(log) - len(kept)
                self._events[family] = kept
                self._floors[family] = max(self._floors[family], top)
        return removed
