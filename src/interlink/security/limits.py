"""API request allocation: requests per org over a rolling 24 hours.

Counting sits on the hot path of every request, so each process counts in memory and flushes to the
store once a second (and at shutdown); usage is the stored per-minute buckets of the last 24 hours
plus what this process has not flushed yet. A crash can lose at most the last second of counts,
never a record. The buckets double as the usage history the console charts (requests, events
published and delivered per minute or hour over the last 24 hours).
"""

from __future__ import annotations

import threading
import time

from sqlalchemy import func, select, update

from interlink.errors import RequestLimitExceeded
from interlink.store.database import Store

_WINDOW_MINUTES = 24 * 60


class ApiUsage:
    """Counts API requests and enforces the daily allocation (``DailyApiRequests``).

    The same counter, over another table and window, meters hourly platform-event publishing
    (:func:`event_usage`).
    """

    def __init__(self, store: Store, allocation: int, *, refresh_seconds: float = 1.0,
                 table: str = "il_api_usage", window_minutes: int = _WINDOW_MINUTES,
                 limit_message: str = "TotalRequests Limit exceeded.",
                 limit_error_code: str = "REQUEST_LIMIT_EXCEEDED", keep_minutes: int = 0) -> None:
        self._store = store
        self.allocation = allocation
        self._refresh_seconds = refresh_seconds
        self._table = table
        self._window = window_minutes
        # Buckets are kept at least as long as the window counts them; longer when a history is wanted.
        self._keep = max(window_minutes, keep_minutes)
        self._limit_message = limit_message
        self._limit_error_code = limit_error_code
        self._pending: dict[int, int] = {}
        self._stored_total = 0
        self._stored_at = -1e9
        self._lock = threading.Lock()

    @staticmethod
    def _minute() -> int:
        return int(time.time() // 60)

    def count(self, amount: int = 1) -> tuple[int, int]:
        """Count ``amount`` uses; raise REQUEST_LIMIT_EXCEEDED when they do not fit the allocation.

        Returns (used, allocation) including these, for the ``Sforce-Limit-Info`` header.
        """
        used = self.used()
        if used + amount > self.allocation:
            raise RequestLimitExceeded(f"{self._limit_message} ({used}/{self.allocation})",
                                       error_code=self._limit_error_code)
        with self._lock:
            minute = self._minute()
            self._pending[minute] = self._pending.get(minute, 0) + amount
        return used + amount, self.allocation

    def add(self, amount: int = 1) -> None:
        """Count ``amount`` uses without checking the allocation (usage that is metered, not enforced)."""
        if amount:
            with self._lock:
                minute = self._minute()
                self._pending[minute] = self._pending.get(minute, 0) + amount

    def history(self, minutes: int = _WINDOW_MINUTES) -> dict[int, int]:
        """Uses per minute (minutes since the epoch) over the last ``minutes``, unflushed ones included.

        Minutes without uses are left out; history older than what the counter keeps is gone.
        """
        first = self._minute() - minutes + 1
        table = self._store.system[self._table]
        with self._store.read() as conn:
            rows = conn.execute(select(table.c.minute, table.c.requests).where(table.c.minute >= first)).all()
        counts = {int(row.minute): int(row.requests) for row in rows}
        with self._lock:
            for minute, amount in self._pending.items():
                if minute >= first:
                    counts[minute] = counts.get(minute, 0) + amount
        return counts

    def used(self) -> int:
        """Requests in the last 24 hours, including this process's unflushed ones."""
        now = time.monotonic()
        if now - self._stored_at >= self._refresh_seconds:
            self._stored_total = self._read_stored()
            self._stored_at = now
        with self._lock:
            pending = sum(self._pending.values())
        return self._stored_total + pending

    def _read_stored(self) -> int:
        table = self._store.system[self._table]
        with self._store.read() as conn:
            total = conn.execute(select(func.coalesce(func.sum(table.c.requests), 0))
                                 .where(table.c.minute > self._minute() - self._window)).scalar()
        return int(total or 0)

    def flush(self) -> None:
        """Write pending counts to the store and drop buckets older than the window."""
        with self._lock:
            pending, self._pending = self._pending, {}
        table = self._store.system[self._table]
        if not pending:
            return
        with self._store.write() as conn:
            for minute, requests in pending.items():
                changed = conn.execute(update(table).where(table.c.minute == minute)
                                       .values(requests=table.c.requests + requests)).rowcount
                if not changed:
                    conn.execute(table.insert().values(minute=minute, requests=requests))
            conn.execute(table.delete().where(table.c.minute <= self._minute() - self._keep))
        self._stored_total = self._read_stored()
        self._stored_at = time.monotonic()

    def reset(self) -> None:
        """Forget all usage (used by tests)."""
        with self._lock:
            self._pending.clear()
        with self._store.write() as conn:
            conn.execute(self._store.system[self._table].delete())
        self._stored_total = 0


def event_usage(store: Store, allocation: int) -> ApiUsage:
    """Platform events published in the last hour (``HourlyPublishedPlatformEvents``); 24 hours of history."""
    return ApiUsage(store, allocation, table="il_event_usage", window_minutes=60,
                    limit_message="HourlyPublishedPlatformEvents Limit exceeded.", limit_error_code="LIMIT_EXCEEDED",
                    keep_minutes=_WINDOW_MINUTES)


def delivery_usage(store: Store) -> ApiUsage:
    """Events delivered to subscribers (Pub/Sub API, the console's streams) in the last 24 hours.

    Counted per subscriber, as the platform's delivery allocation counts them, but metered only: nothing is refused.
    """
    return ApiUsage(store, 0, table="il_event_delivery")
