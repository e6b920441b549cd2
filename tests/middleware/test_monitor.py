"""Metric samples of running pipelines in the middleware store, and what the monitor makes of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from interlink.middleware.base import Message
from interlink.middleware.monitor import KEEP_SECONDS, PipelineMonitor, PipelineSampler, metric_sample_table
from interlink.middleware.store import MiddlewareStore


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class FakeRunner:
    """Counters as a PipelineRunner reports them."""

    def __init__(self, pipeline: str) -> None:
        self.counts: dict[str, Any] = {"pipeline": pipeline, "read": 0, "written": 0, "failed": 0,
                                       "dead_lettered": 0, "lag_seconds": None}

    def metrics(self) -> dict[str, Any]:
        return dict(self.counts)


def _store(tmp_path: Path) -> tuple[str, MiddlewareStore]:
    url = f"sqlite:///{tmp_path / 'middleware.db'}"
    return url, MiddlewareStore.open_url(url)


def test_throughput_lag_and_restarts(tmp_path: Path) -> None:
    url, store = _store(tmp_path)
    clock = Clock()
    runner = FakeRunner("orders")
    sampler = PipelineSampler([runner], store, interval=5, clock=clock)
    for _ in range(12):  # a minute: 10 messages read and written per 5 s, lag 2 s
        clock.now += 5
        runner.counts.update(read=runner.counts["read"] + 10, written=runner.counts["written"] + 10,
                             lag_seconds=2.0)
        sampler.sample()
    restarted = PipelineSampler([FakeRunner("orders")], store, interval=5, clock=clock)  # counters from zero
    clock.now += 5
    restarted.runners[0].counts.update(read=3, written=3)
    restarted.sample()
    monitor = PipelineMonitor(url, clock=clock, interval=5)
    series = monitor.series("orders", window=600, buckets=10)
    assert sum(series["writtenPerSecond"]) * series["step"] == pytest.approx(123)  # no negative rate at the restart
    assert max(value for value in series["lagSeconds"] if value is not None) == 2.0
    (entry,) = monitor.pipelines()
    assert entry["running"] is True and entry["written"] == 123 and len(entry["runners"]) == 2
    clock.now += 60
    assert monitor.pipelines()[0]["running"] is False  # nobody sampled for a minute
    monitor.close()
    store.close()


def test_a_window_starting_mid_run_takes_the_first_sample_as_a_baseline(tmp_path: Path) -> None:
    url, store = _store(tmp_path)
    clock = Clock()
    runner = FakeRunner("big")
    sampler = PipelineSampler([runner], store, interval=5, clock=clock)
    runner.counts["written"] = 1_000_000  # what it did long ago
    sampler.sample()
    clock.now += 7200
    sampler.sample()
    clock.now += 5
    runner.counts["written"] += 50
    sampler.sample()
    series = PipelineMonitor(url, clock=clock).series("big", window=600, buckets=10)
    assert sum(series["writtenPerSecond"]) * series["step"] == pytest.approx(50)
    store.close()


def test_feeders_and_workers_count_reads_once_and_stopping_is_recorded(tmp_path: Path) -> None:
    url, store = _store(tmp_path)
    clock = Clock()
    feeder, worker = FakeRunner("q"), FakeRunner("q")
    sampler = PipelineSampler([feeder, worker], store, interval=5, clock=clock)
    sampler._series = [(feeder, "feeder", "h:1:feeder"), (worker, "worker", "h:1:worker")]
    feeder.counts.update(read=40)
    worker.counts.update(read=40, written=38, dead_lettered=2)
    store.add_dead_letter("q", "map[0]", Message(body={"x": 1}, id="m1"), "boom", [], step_index=0)
    sampler.stop()  # a last sample, marked stopped
    monitor = PipelineMonitor(url, clock=clock)
    (entry,) = monitor.pipelines()
    assert (entry["read"], entry["written"], entry["dead_lettered"], entry["deadLetters"]) == (40, 38, 2, 1)
    assert entry["running"] is False
    (letter,) = monitor.dead_letters(pipeline="q")
    assert letter["messageId"] == "m1" and letter["error"] == "boom"
    assert monitor.discard([letter["id"]]) == 1 and monitor.discard([letter["id"]]) == 0
    assert monitor.replay(["nope-nope"]) == {"replayed": [], "failed": [], "skipped": {"nope-nope":
                                                                                       "no such dead letter"}}
    store.close()


def test_old_samples_are_pruned_and_a_missing_store_is_not_created(tmp_path: Path) -> None:
    _url, store = _store(tmp_path)
    clock = Clock()
    sampler = PipelineSampler([FakeRunner("p")], store, interval=5, clock=clock)
    sampler.sample()
    clock.now += KEEP_SECONDS + 700
    sampler.sample()
    with store.transaction() as conn:
        assert len(conn.execute(metric_sample_table.select()).all()) == 1
    store.close()
    missing = PipelineMonitor(f"sqlite:///{tmp_path / 'elsewhere' / 'middleware.db'}")
    assert missing.available() is False and not (tmp_path / "elsewhere").exists()
    assert PipelineMonitor("postgresql://db/mw").available() is True  # a server: asked when used
