"""The interface every event log implements (embedded SQLite, NATS JetStream, tests' doubles).

Appends are synchronous and durable when they return (the records layer calls them from worker
threads); reading is a cursor that async subscribers pull batches from. Replay ids are integers here and
opaque bytes on the wire: strictly increasing within a family's log, never reused.
"""

from __future__ import annotations

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
