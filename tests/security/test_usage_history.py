"""Usage counters keep a per-minute history: what the console charts over 24 hours."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from interlink.security.limits import ApiUsage, delivery_usage, event_usage
from interlink.store.database import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(f"sqlite:///{tmp_path / 'org.db'}")
    opened.open()
    yield opened
    opened.close()


def _at(monkeypatch: pytest.MonkeyPatch, minute: int) -> None:
    monkeypatch.setattr(ApiUsage, "_minute", staticmethod(lambda: minute))


def test_history_has_flushed_and_pending_counts_per_minute(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    usage = ApiUsage(store, 1000)
    _at(monkeypatch, 1000)
    usage.count(3)
    usage.flush()
    _at(monkeypatch, 1002)
    usage.count(2)  # not flushed yet: still part of the history
    assert usage.history(60) == {1000: 3, 1002: 2}
    assert usage.history(2) == {1002: 2}  # only the last two minutes (1001, 1002)
    usage.flush()
    assert usage.history(60) == {1000: 3, 1002: 2}


def test_event_usage_counts_an_hour_but_keeps_a_day(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    usage = event_usage(store, 100)
    _at(monkeypatch, 10_000)
    usage.count(5)
    usage.flush()
    _at(monkeypatch, 10_000 + 90)  # an hour and a half later
    usage.count(1)
    usage.flush()  # prunes only what is older than a day
    usage._stored_at = -1e9  # read the store again
    assert usage.used() == 1  # the allocation counts the last hour only
    assert usage.history(24 * 60) == {10_000: 5, 10_090: 1}
    _at(monkeypatch, 10_000 + 24 * 60 + 5)
    usage.count(1)
    usage.flush()
    assert 10_000 not in usage.history(48 * 60)


def test_deliveries_are_metered_not_refused(store: Store) -> None:
    deliveries = delivery_usage(store)
    deliveries.add(5000)
    deliveries.add(0)
    deliveries.flush()
    assert sum(deliveries.history(5).values()) == 5000
