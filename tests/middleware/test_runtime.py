"""The runtime's guarantees, observed from a source and sinks: at least once across crashes, retries, dead letters
and their replay, back-pressure, dedupe across restarts, aggregate windows and route branches. Time is a fake
clock: retries and windows advance it instead of sleeping."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from interlink.middleware.base import Delivery, Message, PermanentError, Processor, RetryableError, Sink, Source
from interlink.middleware.runtime import PipelineRunner, metrics_text, run_all
from interlink.middleware.spec import Pipeline
from interlink.middleware.store import MiddlewareStore


class Crash(BaseException):
    """The process dies (not an error the runtime handles)."""


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class MemorySource(Source):
    """Messages 1..n (position = number), resuming after the checkpoint; finite."""

    def __init__(self, bodies: list[dict[str, Any]], *, ids: list[str] | None = None,
                 on_read: Callable[[MemorySource], None] | None = None, headers: dict[str, Any] | None = None) -> None:
        self.messages = [Message(body=body, id=(ids[index] if ids else f"m{index + 1}"), position=index + 1,
                                 headers=dict(headers or {}))
                         for index, body in enumerate(bodies)]
        self.cursor = 0
        self.opened_at: Any = "never"
        self.acknowledged: list[Any] = []
        self.delivered = 0  # messages handed to the runtime
        self.on_read = on_read
        self.closed = False

    def open(self, checkpoint: Any | None) -> None:
        self.opened_at = checkpoint
        self.cursor = int(checkpoint or 0)

    def read(self, max_messages: int, timeout: float) -> list[Message]:
        if self.on_read is not None:
            self.on_read(self)
        batch = self.messages[self.cursor:self.cursor + max_messages]
        self.cursor += len(batch)
        self.delivered += len(batch)
        self.exhausted = self.cursor >= len(self.messages)
        return [message.copy() for message in batch]

    def acknowledge(self, position: Any) -> None:
        self.acknowledged.append(position)

    def close(self) -> None:
        self.closed = True


class MemorySink(Sink):
    """Keeps what it accepted; ``verdict`` may refuse a message (a Delivery) or blow up (an exception)."""

    def __init__(self, verdict: Callable[[Message], Delivery | BaseException | None] | None = None) -> None:
        self.verdict = verdict
        self.accepted: list[Message] = []
        self.calls = 0

    def write(self, messages: Sequence[Message]) -> list[Delivery]:
        self.calls += 1
        results = []
        for message in messages:
            outcome = self.verdict(message) if self.verdict else None
            if isinstance(outcome, BaseException):
                raise outcome
            if outcome is None or outcome.ok:
                self.accepted.append(message)
                results.append(Delivery(detail="ok"))
            else:
                results.append(outcome)
        return results

    @property
    def ids(self) -> list[str]:
        return [message.id for message in self.accepted]


class Flaky(Processor):
    """Fails the first ``failures`` times it sees each message listed in ``targets``."""

    name = "flaky"

    def __init__(self, targets: set[str], failures: int, error: type[Exception] = RetryableError) -> None:
        self.targets, self.failures, self.error = targets, failures, error
        self.seen: dict[str, int] = {}

    def process(self, message: Message) -> list[tuple[str | None, Message]]:
        count = self.seen[message.id] = self.seen.get(message.id, 0) + 1
        if message.id in self.targets and count <= self.failures:
            raise self.error(f"flaky {message.id} #{count}")
        return [(None, message)]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[MiddlewareStore]:
    with MiddlewareStore.open_url(f"sqlite:///{tmp_path / 'middleware.db'}", clock=clock) as opened:
        yield opened


def runner_for(pipeline: Pipeline, store: MiddlewareStore, clock: Clock, **options: Any) -> PipelineRunner:
    return PipelineRunner(pipeline, store, clock=clock, sleep=clock.sleep, random=lambda: 1.0, **options)


def numbered(count: int, **extra: Any) -> list[dict[str, Any]]:
    return [{"n": index + 1, **extra} for index in range(count)]


def test_everything_is_delivered_in_order_and_checkpointed(store: MiddlewareStore, clock: Clock) -> None:
    source, sink = MemorySource(numbered(7)), MemorySink()
    runner = runner_for(Pipeline(name="p", source=source, sink=sink, batch=3), store, clock)
    report = runner.run(once=True)
    assert report.status == "Succeeded" and (report.read, report.written, report.dead_lettered) == (7, 7, 0)
    clock.now += 1
    again = runner.run(once=True)  # resumes at the checkpoint: nothing left; the report is this run's
    assert (again.status, again.read, again.written) == ("Succeeded", 0, 0) and runner.metrics()["read"] == 7
    assert sink.ids == [f"m{n}" for n in range(1, 8)]
    assert source.acknowledged == [3, 6, 7] and source.closed
    checkpoint = store.load_checkpoint("p")
    assert checkpoint is not None and checkpoint.position == 7
    second, first = store.runs("p")
    assert (first.status, first.read, first.written) == ("Succeeded", 7, 7) and second.read == 0


def test_a_crash_mid_batch_loses_nothing(store: MiddlewareStore, clock: Clock) -> None:
    def crash_on_m5(message: Message) -> Delivery | BaseException | None:
        return Crash() if message.id == "m5" else None

    first_sink = MemorySink(crash_on_m5)
    with pytest.raises(Crash):
        runner_for(Pipeline(name="p", source=MemorySource(numbered(9)), sink=first_sink, batch=3), store,
                   clock).run(once=True)
    assert first_sink.ids == ["m1", "m2", "m3", "m4"]  # m4 was written before the crash
    checkpoint = store.load_checkpoint("p")
    assert checkpoint is not None and checkpoint.position == 3  # only the first batch is done
    assert store.runs("p")[0].status == "Failed"

    source, sink = MemorySource(numbered(9)), MemorySink()
    report = runner_for(Pipeline(name="p", source=source, sink=sink, batch=3), store, clock).run(once=True)
    assert source.opened_at == 3 and report.status == "Succeeded"
    assert sink.ids == ["m4", "m5", "m6", "m7", "m8", "m9"]  # m4 twice overall: at least once, never lost
    assert set(first_sink.ids) | set(sink.ids) == {f"m{n}" for n in range(1, 10)}


def test_retries_with_backoff_then_success(store: MiddlewareStore, clock: Clock) -> None:
    refusals = {"m2": 2}

    def busy_twice(message: Message) -> Delivery | None:
        if refusals.get(message.id, 0) > 0:
            refusals[message.id] -= 1
            return Delivery(error="503 busy", retryable=True)
        return None

    sink = MemorySink(busy_twice)
    flaky = Flaky({"m3"}, failures=3)
    pipeline = Pipeline(name="p", source=MemorySource(numbered(3)), steps=[flaky], sink=sink,
                        retry={"attempts": 5, "backoff": "1s", "max_backoff": "3s"})
    runner = runner_for(pipeline, store, clock)
    report = runner.run(once=True)
    assert report.dead_lettered == 0 and sorted(sink.ids) == ["m1", "m2", "m3"]
    assert sink.ids.count("m2") == 1
    # the processor waited 1, 2, 3 (capped) for m3; the sink 1, 2 for m2 (jitter fixed at its ceiling)
    assert clock.slept == [1.0, 2.0, 3.0, 1.0, 2.0]
    metrics = runner.metrics()
    assert metrics["retried"] == 5 and metrics["steps"]["flaky[0]"]["retried"] == 3
    assert metrics["steps"]["sink"]["written"] == 3


def test_poison_message_goes_to_the_dead_letters_and_replays_once_after_the_fix(store: MiddlewareStore,
                                                                                 clock: Clock) -> None:
    fixed = {"sink": False}

    def reject_poison(message: Message) -> Delivery | None:
        if message.body.get("poison") and not fixed["sink"]:
            return Delivery(error="INVALID_FIELD: Amount__c", retryable=False)
        return None

    sink = MemorySink(reject_poison)
    bodies = [{"n": 1}, {"n": 2, "poison": True}, {"n": 3}]
    pipeline = Pipeline(name="orders", source=MemorySource(bodies),
                        steps=[{"type": "map", "fields": {"amount": "n * 10"}, "keep": True}], sink=sink,
                        retry={"attempts": 3, "backoff": "1s"})
    runner = runner_for(pipeline, store, clock)
    report = runner.run(once=True)
    assert report.dead_lettered == 1 and sink.ids == ["m1", "m3"]
    assert store.load_checkpoint("orders").position == 3  # type: ignore[union-attr]  # the pipeline moved on
    (letter,) = store.dead_letters("orders")
    assert (letter.step, letter.step_index, letter.error) == ("sink", 1, "INVALID_FIELD: Amount__c")
    assert letter.message.body == {"n": 2, "poison": True, "amount": 20} and len(letter.attempts) == 1
    assert clock.slept == []  # a permanent refusal is not retried

    fixed["sink"] = True
    result = runner_for(pipeline, store, clock).replay([letter.id])
    assert result.replayed == [letter.id] and sink.ids == ["m1", "m3", "m2"]
    assert store.dead_letter(letter.id).state == "Replayed"  # type: ignore[union-attr]
    again = runner_for(pipeline, store, clock).replay([letter.id])
    assert again.skipped == {letter.id: "is Replayed"} and sink.ids.count("m2") == 1


def test_a_failing_step_is_replayed_from_that_step(store: MiddlewareStore, clock: Clock) -> None:
    broken = Flaky({"m2"}, failures=99, error=PermanentError)
    sink = MemorySink()
    pipeline = Pipeline(name="p", source=MemorySource(numbered(3)),
                        steps=[{"type": "map", "fields": {"n": "n * 2"}}, broken], sink=sink)
    runner_for(pipeline, store, clock).run(once=True)
    (letter,) = store.dead_letters("p")
    assert (letter.step, letter.step_index, letter.message.body) == ("flaky[1]", 1, {"n": 4})
    still_broken = runner_for(pipeline, store, clock).replay([letter.id])
    assert still_broken.failed == [letter.id]
    kept = store.dead_letter(letter.id)
    assert kept is not None and kept.state == "New" and len(kept.attempts) == 2
    broken.failures = 0  # the fix
    assert runner_for(pipeline, store, clock).replay([letter.id]).replayed == [letter.id]
    assert [message.body for message in sink.accepted] == [{"n": 2}, {"n": 6}, {"n": 4}]  # mapped once, not twice
    assert runner_for(pipeline, store, clock).discard([letter.id]) == 0  # already replayed


def test_unexpected_exceptions_are_retried_then_dead_lettered(store: MiddlewareStore, clock: Clock) -> None:
    def explode(message: Message) -> BaseException | None:
        return ConnectionError("reset by peer") if message.id == "m1" else None

    sink = MemorySink(explode)
    pipeline = Pipeline(name="p", source=MemorySource(numbered(1)), sink=sink, retry={"attempts": 3})
    report = runner_for(pipeline, store, clock).run(once=True)
    assert report.dead_lettered == 1 and sink.calls == 3
    (letter,) = store.dead_letters("p")
    assert letter.error == "ConnectionError: reset by peer" and len(letter.attempts) == 3


def test_the_source_is_never_more_than_a_batch_ahead(store: MiddlewareStore, clock: Clock) -> None:
    sink = MemorySink()
    ahead: list[int] = []
    source = MemorySource(numbered(50), on_read=lambda src: ahead.append(src.delivered - len(sink.accepted)))
    runner_for(Pipeline(name="p", source=source, sink=sink, batch=4), store, clock).run(once=True)
    assert len(sink.accepted) == 50
    assert max(ahead) == 0  # every read happens after the previous batch was written
    assert source.acknowledged[:3] == [4, 8, 12]


def test_dedupe_holds_across_restarts_and_crashes(store: MiddlewareStore, clock: Clock) -> None:
    ids = ["a", "b", "a", "c"]
    steps: list[Any] = [{"type": "dedupe", "key": "$id", "retention": "1d"}]

    def crash_on_c(message: Message) -> BaseException | None:
        return Crash() if message.id == "c" else None

    first = MemorySink(crash_on_c)
    with pytest.raises(Crash):
        runner_for(Pipeline(name="p", source=MemorySource(numbered(4), ids=ids), steps=steps, sink=first, batch=4),
                   store, clock).run(once=True)
    assert first.ids == ["a", "b"]  # the duplicate "a" was dropped within the batch
    # The batch never completed: its keys were not recorded, so the restart delivers them again (none lost).
    second = MemorySink()
    runner = runner_for(Pipeline(name="p", source=MemorySource(numbered(4), ids=ids), steps=steps, sink=second,
                                 batch=4), store, clock)
    report = runner.run(once=True)
    assert second.ids == ["a", "b", "c"] and report.deduped == 1
    # A new run over the same events (say a replay from the earliest event) delivers nothing twice.
    store.delete_checkpoint("p")
    third = MemorySink()
    report = runner_for(Pipeline(name="p", source=MemorySource(numbered(4), ids=ids), steps=steps, sink=third),
                        store, clock).run(once=True)
    assert third.ids == [] and report.deduped == 4


def test_aggregate_windows_and_the_checkpoint_of_held_messages(store: MiddlewareStore, clock: Clock) -> None:
    customers = ["A", "B", "A", "C", "C", "B"]
    reads = {"count": 0}

    def two_per_read(source: MemorySource) -> None:
        reads["count"] += 1
        clock.now += 6  # each read takes 6 s

    steps: list[Any] = [{"type": "aggregate", "key": "customer", "count": 2, "window": "10s"}]
    sink = MemorySink()
    source = MemorySource([{"customer": name} for name in customers], on_read=two_per_read)
    runner = runner_for(Pipeline(name="agg", source=source, steps=steps, sink=sink, batch=2), store, clock)
    runner.run(once=True)
    got = [(message.body["key"], message.body["count"]) for message in sink.accepted]
    # A pairs up in the second batch; in the third (t+18) C pairs up and B's window (opened at t+6) has elapsed,
    # so B leaves alone; the last B opens a new group, flushed at the end of the run.
    assert got == [("A", 2), ("C", 2), ("B", 1), ("B", 1)]
    assert store.load_checkpoint("agg").position == 6  # type: ignore[union-attr]
    assert runner.metrics()["steps"]["aggregate[0]"]["in"] == 6

    # A crash while a group is open: the checkpoint stays before the first held message.
    def crash_on_third_read(source: MemorySource) -> None:
        if source.cursor >= 3:
            raise Crash()

    crashed = MemorySink()
    with pytest.raises(Crash):
        runner_for(Pipeline(name="held", source=MemorySource([{"customer": c} for c in ["A", "B", "A"]],
                                                             on_read=crash_on_third_read),
                            steps=[{"type": "aggregate", "key": "customer", "count": 2}], sink=crashed, batch=3),
                   store, clock).run(once=True)
    assert [message.body["key"] for message in crashed.accepted] == ["A"]
    assert store.load_checkpoint("held").position == 1  # type: ignore[union-attr]  # B (position 2) is held


def test_route_branches_reach_their_sinks(store: MiddlewareStore, clock: Clock) -> None:
    big, small, default = MemorySink(), MemorySink(), MemorySink()
    amounts = [5, 5000, 50, 500]
    pipeline = Pipeline(name="r", source=MemorySource([{"amount": amount} for amount in amounts]),
                        steps=[{"type": "route", "routes": {"big": "amount > 1000", "small": "amount < 10"}},
                               {"type": "map", "fields": {"amount": "amount"}, "keep": True}],
                        sink=default, sinks={"big": big, "small": small})
    runner_for(pipeline, store, clock).run(once=True)
    assert big.ids == ["m2"] and small.ids == ["m1"] and default.ids == ["m3", "m4"]


def test_metrics_count_each_outcome_and_lag(store: MiddlewareStore, clock: Clock) -> None:
    source = MemorySource(numbered(4), headers={"timestamp": (clock.now - 2.5) * 1000})
    runner = runner_for(Pipeline(name="m", source=source, steps=[{"type": "filter", "when": "n > 1"}],
                                 sink=MemorySink()), store, clock)
    runner.run(once=True)
    metrics = runner.metrics()
    assert (metrics["read"], metrics["filtered"], metrics["written"]) == (4, 1, 3)
    assert metrics["lag_seconds"] == pytest.approx(2.5)
    assert metrics["steps"]["filter[0]"] == {"in": 4, "filtered": 1, "out": 3}
    text = runner.metrics_text()
    assert 'interlink_pipeline_messages_total{pipeline="m",outcome="written"} 3' in text
    assert 'interlink_pipeline_step_messages_total{pipeline="m",step="filter[0]",outcome="filtered"} 1' in text
    assert 'interlink_pipeline_lag_seconds{pipeline="m"} 2.500' in text
    assert metrics_text([runner]) == text


def test_several_pipelines_run_together(store: MiddlewareStore) -> None:
    sinks = [MemorySink(), MemorySink()]
    pipelines = [Pipeline(name=f"p{index}", source=MemorySource(numbered(5)), sink=sinks[index])
                 for index in range(2)]
    reports = run_all(pipelines, store, once=True)
    assert {name: report.written for name, report in reports.items()} == {"p0": 5, "p1": 5}


def test_stop_ends_a_continuous_run(store: MiddlewareStore, clock: Clock) -> None:
    runner_box: dict[str, PipelineRunner] = {}

    def stop_after_all(source: MemorySource) -> None:
        if source.cursor >= len(source.messages):
            runner_box["runner"].stop()

    sink = MemorySink()
    runner = runner_for(Pipeline(name="s", source=MemorySource(numbered(3), on_read=stop_after_all), sink=sink,
                                 batch=2, poll=0), store, clock)
    runner_box["runner"] = runner
    thread_report: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: thread_report.update(report=runner.run()))
    thread.start()
    thread.join(10)
    assert not thread.is_alive() and thread_report["report"].status == "Stopped" and len(sink.accepted) == 3


def test_a_second_worker_cannot_move_the_checkpoint_back(store: MiddlewareStore, clock: Clock) -> None:
    def other_worker_moves_on(source: MemorySource) -> None:
        if source.cursor == 2:
            current = store.load_checkpoint("w")
            store.save_checkpoint("w", 100, expected_version=current.version if current else 0)

    report = runner_for(Pipeline(name="w", source=MemorySource(numbered(4), on_read=other_worker_moves_on),
                                 sink=MemorySink(), batch=2), store, clock).run(once=True)
    assert report.status == "Failed" and "another worker" in (report.error or "")
    assert store.load_checkpoint("w").position == 100  # type: ignore[union-attr]


def test_a_source_that_keeps_failing_fails_the_run(store: MiddlewareStore, clock: Clock) -> None:
    def down(source: MemorySource) -> None:
        raise RetryableError("broker unavailable")

    report = runner_for(Pipeline(name="f", source=MemorySource(numbered(2), on_read=down), sink=MemorySink(),
                                 retry={"attempts": 3}), store, clock).run(once=True)
    assert report.status == "Failed" and "broker unavailable" in (report.error or "")
    assert len(clock.slept) == 2 and store.runs("f")[0].status == "Failed"


class Recorder(Processor):
    """Notes the batches it is prepared with and the messages it processes, in order."""

    name = "recorder"

    def __init__(self, log: list[str], label: str) -> None:
        self.log, self.label = log, label

    def prepare(self, messages: Sequence[Message]) -> None:
        self.log.append(f"{self.label}:prepare:" + ",".join(message.id for message in messages))

    def process(self, message: Message) -> list[tuple[str | None, Message]]:
        self.log.append(f"{self.label}:{message.id}")
        return [(None, message)]


def test_each_step_gets_the_whole_batch_and_dedupe_one_transaction_per_batch(
        store: MiddlewareStore, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: dict[str, int] = {"is_seen": 0, "seen_before": 0, "seen_keys": 0, "record_seen": 0}
    for method in calls:
        original = getattr(store, method)

        def counted(*args: Any, _original: Any = original, _name: str = method) -> Any:
            calls[_name] += 1
            return _original(*args)

        monkeypatch.setattr(store, method, counted)
    log: list[str] = []
    ids = ["a", "b", "a", "c", "d", "b", "e"]  # duplicates inside a batch and across batches
    sink = MemorySink()
    pipeline = Pipeline(name="d", source=MemorySource(numbered(7), ids=ids), sink=sink, batch=3, steps=[
        Recorder(log, "first"), {"type": "filter", "when": "n != 4"}, {"type": "dedupe", "key": "$id"},
        Recorder(log, "last")])
    report = runner_for(pipeline, store, clock).run(once=True)
    assert sink.ids == ["a", "b", "d", "e"] and (report.filtered, report.deduped) == (1, 2)
    # A step at a time: each step is prepared with its whole batch, then processes it in order.
    assert log[:6] == ["first:prepare:a,b,a", "first:a", "first:b", "first:a", "last:prepare:a,b", "last:a"]
    assert calls == {"is_seen": 0, "seen_before": 0, "seen_keys": 3, "record_seen": 3}
    assert store.seen_keys("d", ["a", "b", "c", "d", "e"], 7 * 86400) == {"a", "b", "d", "e"}


def test_step_counters_are_the_same_as_per_message(store: MiddlewareStore, clock: Clock) -> None:
    def fail_m2(message: Message) -> list[tuple[str | None, Message]]:
        if message.id == "m2":
            raise PermanentError("bad m2")
        return [(None, message)]

    failing = Flaky(set(), 0)
    failing.process = fail_m2  # type: ignore[method-assign]
    steps: list[Any] = [failing, {"type": "filter", "when": "n != 3"},
                        {"type": "split", "items": "[n, n]"}, {"type": "dedupe", "key": "$id"}]
    runner = runner_for(Pipeline(name="c", source=MemorySource(numbered(4)), sink=MemorySink(), steps=steps),
                        store, clock)
    report = runner.run(once=True)
    assert (report.read, report.written, report.filtered, report.deduped, report.dead_lettered) == (4, 4, 1, 0, 1)
    assert runner.metrics()["steps"] == {
        "source": {"read": 4},
        "flaky[0]": {"in": 4, "failed": 1, "dead_lettered": 1, "out": 3},
        "filter[1]": {"in": 3, "filtered": 1, "out": 2},
        "split[2]": {"in": 2, "out": 4},
        "dedupe[3]": {"in": 4, "out": 4},
        "sink": {"written": 4},
    }


def test_a_runner_subclass_sees_each_message_it_admits(store: MiddlewareStore, clock: Clock) -> None:
    class Admitting(PipelineRunner):
        def _admit(self, message: Message) -> bool:
            if message.id == "m2":
                self._dead_letter("gate", 0, None, message, [{"at": "now", "error": "refused"}])
                return False
            return True

    class PerMessage(PipelineRunner):  # the older hook: _run_steps per message read
        def _run_steps(self, message: Message, start: int, branch: str | None) -> list[tuple[str | None, Message]]:
            if start == 0 and message.id == "m2":
                return []
            return super()._run_steps(message, start, branch)

    for runner_class in (Admitting, PerMessage):
        sink, log = MemorySink(), []
        name = runner_class.__name__.lower()
        runner = runner_class(Pipeline(name=name, source=MemorySource(numbered(4)), sink=sink, batch=4,
                                       steps=[Recorder(log, "r"), {"type": "dedupe", "key": "$id"}]), store,
                              clock=clock, sleep=clock.sleep)
        report = runner.run(once=True)
        assert sink.ids == ["m1", "m3", "m4"] and report.status == "Succeeded", runner_class
        if runner_class is Admitting:
            assert log == ["r:prepare:m1,m3,m4", "r:m1", "r:m3", "r:m4"]
            assert [letter.step for letter in store.dead_letters(name)] == ["gate"]
        else:  # one message at a time, as before
            assert log == ["r:prepare:m1", "r:m1", "r:prepare:m3", "r:m3", "r:prepare:m4", "r:m4"]
