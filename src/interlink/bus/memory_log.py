"""An in-memory event log (``--bus memory://``) for tests and throwaway orgs: fast, shared by nothing, lost
when the process ends. It behaves like the other logs in everything but durability (same shared test suite):
one increasing sequence for every family, per-family purge floors, cursors woken by appends.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import threading
import time
from collections.abc import Sequence

from interlink.bus.backend import Bounds, BusBackend, Cursor
from interlink.bus.model import FAMILIES, NewEvent, Selector, StoredEvent


class MemoryLog(BusBackend):
    name = "memory"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[str, list[StoredEvent]] = {family: [] for family in FAMILIES}
        self._floors: dict[str, int] = dict.fromkeys(FAMILIES, 0)
        self._sequence = 0
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

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
            waiters = list(self._waiters)
        for loop, signal in waiters:
            with contextlib.suppress(RuntimeError):  # that loop has closed
                loop.call_soon_threadsafe(signal.set)
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
        return _MemoryCursor(self, selector, after)

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

    def _watch(self, signal: asyncio.Event) -> tuple[asyncio.AbstractEventLoop, asyncio.Event]:
        entry = (asyncio.get_running_loop(), signal)
        with self._lock:
            self._waiters.add(entry)
        return entry

    def _unwatch(self, entry: tuple[asyncio.AbstractEventLoop, asyncio.Event]) -> None:
        with self._lock:
            self._waiters.discard(entry)


class _MemoryCursor(Cursor):
    def __init__(self, log: MemoryLog, selector: Selector, after: int) -> None:
        self._log = log
        self._selector = selector
        self.position = after
        self._signal = asyncio.Event()
        self._entry: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None

    async def fetch(self, limit: int, wait: float) -> list[StoredEvent]:
        if self._entry is None:
            self._entry = self._log._watch(self._signal)
        deadline = time.monotonic() + wait
        while True:
            self._signal.clear()
            events = self._log.read(self._selector, self.position, limit)
            if events:
                self.position = events[-1].replay_id
                return events
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._signal.wait(), remaining)

    async def close(self) -> None:
        if self._entry is not None:
            self._log._unwatch(self._entry)
            self._entry = None
