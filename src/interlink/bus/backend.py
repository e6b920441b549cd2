"""The interface every event log implements (embedded SQLite, NATS JetStream, tests' doubles).

Appends are synchronous and durable when they return (the records layer calls them from worker
threads); reading is a cursor that async subscribers pull batches from. Replay ids are integers here and
opaque bytes on the wire: strictly increasing within a family's log, never reused.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from interlink.bus.model import NewEvent, Selector, StoredEvent


@dataclass(frozen=True)
class Bounds:
    """The replayable window of a selector: events after ``floor`` are all still kept; ``head`` is the newest."""

    floor: int
    head: int


class Cursor(ABC):
    """A read position in the log that an async subscriber pulls from."""

    position: int

    @abstractmethod
    async def fetch(self, limit: int, wait: float) -> list[StoredEvent]:
        """Up to ``limit`` events after the position, waiting up to ``wait`` seconds for the first one."""

    async def close(self) -> None:  # noqa: B027 - optional
        """Release what the cursor holds."""


class BusBackend(ABC):
    """A durable, ordered, retention-bounded event log."""

    name: str = ""

    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def append(self, events: Sequence[NewEvent], *, dedupe: bool = False) -> list[int]:
        """Append in order; durable on return. Returns each event's replay id.

        ``dedupe`` (used when re-relaying after a crash) answers an already stored ``event_uuid`` with its
        original replay id instead of storing it twice.
        """

    async def append_async(self, events: Sequence[NewEvent]) -> list[int]:
        """Append from the event loop (backends with an async client override this)."""
        return self.append(events)

    @abstractmethod
    def read(self, selector: Selector, after: int, limit: int) -> list[StoredEvent]:
        """Up to ``limit`` events after ``after`` (synchronous, for tools and tests)."""

    @abstractmethod
    def bounds(self, selector: Selector) -> Bounds: ...

    @abstractmethod
    def cursor(self, selector: Selector, after: int) -> Cursor: ...

    @abstractmethod
    def purge(self, older_than_ms: int) -> int:
        """Drop events created before ``older_than_ms``; returns how many went."""


Waiter = tuple[asyncio.AbstractEventLoop, asyncio.Event]


class Notifier:
    """Wakes the async cursors of this process when an append commits (appends may come from any thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: set[Waiter] = set()

    def watch(self, signal: asyncio.Event) -> Waiter:
        entry = (asyncio.get_running_loop(), signal)
        with self._lock:
            self._waiters.add(entry)
        return entry

    def unwatch(self, entry: Waiter) -> None:
        with self._lock:
            self._waiters.discard(entry)

    def wake(self) -> None:
        with self._lock:
            waiters = list(self._waiters)
        for entry in waiters:
            loop, signal = entry
            try:
                loop.call_soon_threadsafe(signal.set)
            except RuntimeError:  # that loop has closed
                self.unwatch(entry)


class ReadingCursor(Cursor):
    """A cursor over a backend's ``read``: reads, and when nothing is there waits for a wake-up from the
    notifier or ``poll_seconds`` (appends by other processes are only seen by polling).

    Cancelling ``fetch`` is safe: the position only moves together with returning events, with no await in
    between.
    """

    def __init__(self, backend: BusBackend, notifier: Notifier, selector: Selector, after: int, *,
                 poll_seconds: float) -> None:
        self._backend = backend
        self._notifier = notifier
        self._selector = selector
        self._poll_seconds = poll_seconds
        self.position = after
        self._signal = asyncio.Event()
        self._entry: Waiter | None = None

    async def fetch(self, limit: int, wait: float) -> list[StoredEvent]:
        if self._entry is None:
            self._entry = self._notifier.watch(self._signal)
        deadline = time.monotonic() + wait
        while True:
            self._signal.clear()
            events = self._backend.read(self._selector, self.position, limit)
            if events:
                self.position = events[-1].replay_id
                return events
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._signal.wait(), min(remaining, self._poll_seconds))

    async def close(self) -> None:
        if self._entry is not None:
            self._notifier.unwatch(self._entry)
            self._entry = None
