"""Running pipelines: the delivery guarantees, retries, dead letters, checkpoints and metrics.

One :class:`PipelineRunner` runs one pipeline in a loop:

1. read a bounded batch (``batch`` messages at most) from the source;
2. run the batch through the steps, a step at a time: each step is handed the whole batch first
   (:meth:`~interlink.middleware.base.Processor.prepare`, so dedupe looks its keys up in one transaction), then each
   message in order; a failing step is retried for that message (exponential backoff with full jitter, capped), and
   a message that still fails is dead-lettered at that step, with its error and every attempt;
3. group the results by branch and write each group to its sink; retryable failures are written again, the rest
   (and those still failing after the retries) are dead-lettered;
4. once every message of the batch is delivered, dropped or dead-lettered, store the checkpoint (the last message's
   position; never past a message a stateful step still holds) and acknowledge it to the source.

Only then is the next batch read, so the source is never more than one batch ahead of the sinks (back-pressure),
and a crash anywhere before step 4 makes the next run read the batch again (at least once).

``clock`` and ``sleep`` are injectable so tests run retries and windows on a fake clock.
"""

from __future__ import annotations

import datetime as dt
import logging
import random as random_module
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interlink.middleware.base import Delivery, Message, MiddlewareError, PermanentError
from interlink.middleware.processors import REPLAY_HEADER
from interlink.middleware.registry import BuildContext, BuiltPipeline, BuiltSink, BuiltStep, build_pipeline
from interlink.middleware.spec import Pipeline
from interlink.middleware.store import DeadLetter, MiddlewareStore

log = logging.getLogger("interlink.middleware")

Routed = list[tuple[str | None, Message]]
OUTCOMES = ("read", "written", "filtered", "deduped", "retried", "failed", "dead_lettered")


class _Interrupted(Exception):
    """The runner was stopped while waiting to retry: abandon the batch (it will be read again)."""


# -- metrics -----------------------------------------------------------------------------------------------------

def _timestamp_of(value: Any) -> float | None:
    """Epoch seconds from a ``timestamp`` header: epoch seconds or milliseconds, ISO text or a datetime."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value) / 1000.0 if value > 1e11 else float(value)
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            try:
                return _timestamp_of(float(value))
            except ValueError:
                return None
        return _timestamp_of(parsed)
    return None


class PipelineMetrics:
    """Counters of one pipeline and of each step, the last end-to-end lag and the last checkpoint."""

    def __init__(self, pipeline: str) -> None:
        self.pipeline = pipeline
        self._lock = threading.Lock()
        self.totals: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        self.steps: dict[str, dict[str, int]] = {}
        self.lag_seconds: float | None = None
        self.checkpoint: Any = None
        self.batches = 0

    def count(self, outcome: str, amount: int = 1, *, step: str | None = None) -> None:
        """Add ``amount`` to ``outcome`` (pipeline-wide when it is one of :data:`OUTCOMES`) and to ``step``'s."""
        with self._lock:
            if outcome in self.totals:
                self.totals[outcome] += amount
            if step is not None:
                counters = self.steps.setdefault(step, {})
                counters[outcome] = counters.get(outcome, 0) + amount

    def count_step(self, step: str, drop_metric: str, entered: int, answered: int, dropped: int, out: int) -> None:
        """A step's counters for a batch at once: ``entered`` messages ``in``, ``answered`` of them not
        dead-lettered, ``dropped`` of those counted as ``drop_metric`` (pipeline-wide too when it is an outcome), and
        ``out`` messages out. The same counters as :meth:`count` per message, with one lock."""
        if not entered:
            return
        with self._lock:
            counters = self.steps.setdefault(step, {})
            counters["in"] = counters.get("in", 0) + entered
            if dropped:
                counters[drop_metric] = counters.get(drop_metric, 0) + dropped
                if drop_metric in self.totals:
                    self.totals[drop_metric] += dropped
            if answered:
                counters["out"] = counters.get("out", 0) + out

    def count_batch(self) -> None:
        with self._lock:
            self.batches += 1

    def observe_lag(self, messages: Message | Sequence[Message], now: float) -> None:
        """The lag of the last of ``messages`` (delivered now) that has a ``timestamp`` header."""
        for message in reversed([messages] if isinstance(messages, Message) else messages):
            stamp = _timestamp_of(message.headers.get("timestamp"))
            if stamp is not None:
                with self._lock:
                    self.lag_seconds = max(0.0, now - stamp)
                return

    def snapshot(self) -> dict[str, Any]:
        """Everything as a plain dict: ``{"pipeline", <outcome>: n..., "lag_seconds", "checkpoint", "steps"}``."""
        with self._lock:
            return {"pipeline": self.pipeline, **self.totals, "batches": self.batches,
                    "lag_seconds": self.lag_seconds, "checkpoint": self.checkpoint,
                    "steps": {name: dict(values) for name, values in self.steps.items()}}


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def metrics_text(runners: Iterable[PipelineRunner]) -> str:
    """The metrics of several pipelines in the Prometheus text exposition format."""
    snapshots = [runner.metrics() for runner in runners]
    lines = ["# HELP interlink_pipeline_messages_total Messages of a pipeline by outcome.",
             "# TYPE interlink_pipeline_messages_total counter"]
    for snap in snapshots:
        for outcome in OUTCOMES:
            lines.append(f'interlink_pipeline_messages_total{{pipeline="{_label(snap["pipeline"])}",'
                         f'outcome="{outcome}"}} {snap[outcome]}')
    lines += ["# HELP interlink_pipeline_step_messages_total Messages of a pipeline step by outcome.",
              "# TYPE interlink_pipeline_step_messages_total counter"]
    for snap in snapshots:
        for step, counters in snap["steps"].items():
            for outcome, value in sorted(counters.items()):
                lines.append(f'interlink_pipeline_step_messages_total{{pipeline="{_label(snap["pipeline"])}",'
                             f'step="{_label(step)}",outcome="{outcome}"}} {value}')
    lines += ["# HELP interlink_pipeline_lag_seconds Seconds between a message's timestamp header and its delivery.",
              "# TYPE interlink_pipeline_lag_seconds gauge"]
    for snap in snapshots:
        if snap["lag_seconds"] is not None:
            lines.append(f'interlink_pipeline_lag_seconds{{pipeline="{_label(snap["pipeline"])}"}} '
                         f'{snap["lag_seconds"]:.3f}')
    return "\n".join(lines) + "\n"


# -- reports -----------------------------------------------------------------------------------------------------

@dataclass
class RunReport:
    """What one run did."""

    pipeline: str
    run_id: str | None
    status: str
    read: int = 0
    written: int = 0
    filtered: int = 0
    deduped: int = 0
    retried: int = 0
    dead_lettered: int = 0
    error: str | None = None
    checkpoint: Any = None


@dataclass
class ReplayReport:
    """What a replay of dead letters did: ids replayed (delivered), failed again, or skipped with the reason."""

    replayed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def _describe(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    if isinstance(error, MiddlewareError):
        return text
    return f"{type(error).__name__}: {text}"


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- the runner --------------------------------------------------------------------------------------------------

class PipelineRunner:
    """Runs one :class:`Pipeline` with at-least-once delivery, retries, dead letters and checkpoints.

    ``connections`` (named clients for org.* and lookup steps) and ``project_dir`` reach the step factories;
    ``clock`` (epoch seconds), ``sleep`` and ``random`` are injectable for tests. ``sleep`` defaults to waiting on
    the stop event, so :meth:`stop` also cuts a backoff short.
    """

    def __init__(self, pipeline: Pipeline, store: MiddlewareStore, *, connections: Mapping[str, Any] | None = None,
                 project_dir: Path | None = None, clock: Callable[[], float] | None = None,
                 sleep: Callable[[float], Any] | None = None, random: Callable[[], float] | None = None,
                 stop_event: threading.Event | None = None, idle_timeout: float = 5.0) -> None:
        self.pipeline = pipeline
        self.store = store
        self.connections = dict(connections or {})
        self.project_dir = Path(project_dir) if project_dir is not None else Path(".")
        self.clock = clock or time.time
        self.stop_event = stop_event or threading.Event()
        self.sleep = sleep or self.stop_event.wait
        self.random = random or random_module.random
        self.idle_timeout = idle_timeout
        self._metrics = PipelineMetrics(pipeline.name)
        self._built: BuiltPipeline | None = None
        self._ledger: list[Any] = []  # positions read and not yet checkpointed, in read order
        self._version = 0
        self._run_id: str | None = None
        self._run_base: dict[str, Any] | None = None
        self._replaying: DeadLetter | None = None
        self._replay_failed = False

    @property
    def name(self) -> str:
        return self.pipeline.name

    def build(self) -> BuiltPipeline:
        """The pipeline's live steps (built once per run; a configuration error is a PipelineSpecError)."""
        if self._built is None:
            context = BuildContext(store=self.store, pipeline=self.name, connections=self.connections,
                                   project_dir=self.project_dir, clock=self.clock)
            self._built = build_pipeline(self.pipeline, context)
        return self._built

    def _close(self) -> None:
        if self._built is not None:
            self._built.close()
            self._built = None

    def stop(self) -> None:
        """Ask a running :meth:`run` to finish its batch and stop."""
        self.stop_event.set()

    def metrics(self) -> dict[str, Any]:
        """This pipeline's counters, per step too, lag and last checkpoint."""
        return self._metrics.snapshot()

    def metrics_text(self) -> str:
        """This pipeline's metrics in the Prometheus text format."""
        return metrics_text([self])

    # -- the loop ----------------------------------------------------------------------------------------------

    def run(self, once: bool = False, *, idle_timeout: float | None = None) -> RunReport:
        """Run until stopped; with ``once``, until the source is exhausted or idle for ``idle_timeout`` seconds.

        Answers the run's report; a failure (a source that keeps failing, a checkpoint conflict) ends the run with
        status Failed and its error, and the last stored checkpoint stays where it was.
        """
        idle_limit = self.idle_timeout if idle_timeout is None else idle_timeout
        built = self.build()
        self._run_id = self.store.start_run(self.name)
        self._run_base = self._metrics.snapshot()  # metrics add up over runs; reports count this run only
        # Until the loop ends normally, a way out (KeyboardInterrupt, a crash in a step) is a failed run.
        status, error = "Failed", "interrupted"
        try:
            checkpoint = self.store.load_checkpoint(self.name)
            self._version = checkpoint.version if checkpoint else 0
            self._metrics.checkpoint = checkpoint.position if checkpoint else None
            self._ledger = []
            self._with_source_retries(lambda: built.source.open(checkpoint.position if checkpoint else None),
                                      "open", once)
            idle_since = time.monotonic()
            while not self.stop_event.is_set():
                asked = time.monotonic()
                messages = self._with_source_retries(
                    lambda: built.source.read(self.pipeline.batch, self.pipeline.poll_seconds), "read", once)
                if not messages and not (once and built.source.exhausted):
                    # A source that answers [] at once (an exhausted finite one) must not make this loop spin.
                    self.stop_event.wait(max(0.0, self.pipeline.poll_seconds - (time.monotonic() - asked)))
                if messages:
                    self._process_batch(list(messages))
                    idle_since = time.monotonic()
                    continue
                released = self._release(built, "tick")
                if released:
                    self._deliver(released)
                    self._commit(built)
                if once and (built.source.exhausted or time.monotonic() - idle_since >= idle_limit):
                    break
            self._deliver(self._release(built, "flush"))
            self._commit(built)
            status = "Stopped" if self.stop_event.is_set() else "Succeeded"
            error = None
        except _Interrupted:
            status, error = "Stopped", None
            self._rollback(built)
        except Exception as exc:
            status, error = "Failed", _describe(exc)
            log.error("pipeline %s failed: %s", self.name, error, exc_info=not isinstance(exc, MiddlewareError))
            self._rollback(built)
        finally:
            self._save_run(status, error)
            self._close()
        totals = self._run_totals()
        return RunReport(pipeline=self.name, run_id=self._run_id, status=status, read=totals["read"],
                         written=totals["written"], filtered=totals["filtered"], deduped=totals["deduped"],
                         retried=totals["retried"], dead_lettered=totals["dead_lettered"], error=error,
                         checkpoint=totals["checkpoint"])

    def _with_source_retries(self, call: Callable[[], Any], what: str, once: bool) -> Any:
        """Call the source; retry failures with backoff (forever when running continuously, unless permanent)."""
        policy = self.build().source_retry or self.pipeline.retry_policy
        failures = 0
        while True:
            try:
                return call()
            except Exception as exc:
                failures += 1
                self._metrics.count("failed", step="source")
                if isinstance(exc, PermanentError) or (once and failures >= policy.attempts):
                    raise MiddlewareError(f"source {what} failed: {_describe(exc)}") from exc
                log.warning("pipeline %s: source %s failed (%s), retrying", self.name, what, _describe(exc))
                self._pause(policy.delay(failures, self.random))

    def _pause(self, seconds: float) -> None:
        self.sleep(seconds)
        if self.stop_event.is_set():
            raise _Interrupted

    def _process_batch(self, messages: list[Message]) -> None:
        built = self.build()
        now = self.clock()
        self._ledger.extend(message.position for message in messages)
        self._metrics.count("read", len(messages), step="source")
        if type(self)._run_steps is not PipelineRunner._run_steps:
            # A subclass still intercepting each message in _run_steps: run the batch one message at a time.
            outputs: Routed = []
            for message in messages:
                outputs += self._run_steps(message, 0, None)
        else:
            outputs = self._run_batch([(None, message) for message in messages if self._admit(message)], 0)
        outputs += self._release(built, "tick")
        self._deliver(outputs)
        self._commit(built)
        self._metrics.count_batch()
        log.debug("pipeline %s: batch of %d done in %.3fs", self.name, len(messages), self.clock() - now)

    def _release(self, built: BuiltPipeline, method: str) -> Routed:
        """Messages stateful steps let go (``tick``: windows that elapsed; ``flush``: everything), run through the
        steps after the one releasing them."""
        outputs: Routed = []
        for step in built.steps:
            released = getattr(step.processor, method)() or []
            outputs += self._run_batch(self._checked_outputs(step, released), step.index + 1)
        return outputs

    # -- steps -------------------------------------------------------------------------------------------------

    def _admit(self, message: Message) -> bool:
        """Whether a message read from the source enters the steps; a subclass may dead-letter it instead (and answer
        False)."""
        return True

    def _run_steps(self, message: Message, start: int, branch: str | None) -> Routed:
        """``message`` through the steps from ``start``; answers what reaches the sinks, with branches."""
        return self._run_batch([(branch, message)], start)

    def _run_batch(self, items: Routed, start: int) -> Routed:
        """Messages (with their branches) through the steps from ``start``, a step at a time: each step gets the whole
        batch (its :meth:`~Processor.prepare` first, then each message in order, with retries and dead letters per
        message). Answers what reaches the sinks, with branches, in order."""
        current = items
        metrics = self._metrics
        for step in self.build().steps[start:]:
            if not current:
                break
            processor = step.processor
            try:
                processor.prepare([item for _, item in current])
            except Exception as exc:
                # Only an optimisation: process() does the work per message, with the step's retries.
                log.debug("pipeline %s: %s.prepare failed (%s); processing one message at a time", self.name,
                          step.name, _describe(exc))
            following: Routed = []
            entered = answered = dropped = out = 0
            try:
                for current_branch, item in current:
                    entered += 1
                    result = self._apply(step, item, current_branch)
                    if result is None:  # dead-lettered
                        continue
                    answered += 1
                    if not result:
                        dropped += 1
                        continue
                    out += len(result)
                    following += [(current_branch if out_branch is None else out_branch, output)
                                  for out_branch, output in result]
            finally:
                metrics.count_step(step.name, processor.drop_metric, entered, answered, dropped, out)
            current = following
        return current

    def _apply(self, step: BuiltStep, message: Message, branch: str | None) -> Routed | None:
        """One step on one message with retries; None when the message was dead-lettered."""
        attempts: list[dict[str, Any]] = []
        policy = step.retry
        for attempt in range(1, policy.attempts + 1):
            try:
                return self._checked_outputs(step, step.processor.process(message))
            except Exception as exc:
                attempts.append({"at": _iso(self.clock()), "error": _describe(exc)})
                self._metrics.count("failed", step=step.name)
                if isinstance(exc, PermanentError) or attempt == policy.attempts:
                    break
                self._metrics.count("retried", step=step.name)
                self._pause(policy.delay(attempt, self.random))
        self._dead_letter(step.name, step.index, branch, message, attempts)
        return None

    @staticmethod
    def _checked_outputs(step: BuiltStep, result: Any) -> Routed:
        if not isinstance(result, list) or not all(
                isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], Message)
                and (item[0] is None or isinstance(item[0], str)) for item in result):
            raise PermanentError(f"step {step.name} answered {type(result).__name__}, not a list of "
                                 "(branch, Message)")
        return result

    # -- sinks -------------------------------------------------------------------------------------------------

    def _deliver(self, outputs: Routed) -> None:
        """Write the messages to the sinks of their branches, in order, a batch at a time."""
        built = self.build()
        groups: dict[str | None, list[Message]] = {}
        for branch, message in outputs:
            groups.setdefault(branch, []).append(message)
        for branch, messages in groups.items():
            sink = built.sink_for(branch)
            if sink is None:
                for message in messages:
                    self._dead_letter(f"sink:{branch}", len(built.steps), branch, message,
                                      [{"at": _iso(self.clock()), "error": f"no sink for branch {branch!r}"}])
                continue
            size = self.pipeline.batch
            for start in range(0, len(messages), size):
                self._write(sink, messages[start:start + size], len(built.steps))

    def _write(self, built: BuiltSink, messages: Sequence[Message], step_index: int) -> None:
        pending: list[tuple[Message, list[dict[str, Any]]]] = [(message, []) for message in messages]
        policy = built.retry
        for attempt in range(1, policy.attempts + 1):
            batch = [message for message, _ in pending]
            retry: list[tuple[Message, list[dict[str, Any]]]] = []
            at = _iso(self.clock())
            try:
                deliveries = built.sink.write(batch)
                if not isinstance(deliveries, list) or len(deliveries) != len(batch) or not all(
                        isinstance(item, Delivery) for item in deliveries):
                    raise MiddlewareError(f"sink {built.name} answered {len(deliveries or [])} deliveries for "
                                          f"{len(batch)} messages")
            except Exception as exc:
                self._metrics.count("failed", len(batch), step=built.name)
                for message, history in pending:
                    history.append({"at": at, "error": _describe(exc)})
                    if isinstance(exc, PermanentError):
                        self._dead_letter(built.name, step_index, built.branch, message, history)
                    else:
                        retry.append((message, history))
            else:
                written: list[Message] = []
                for (message, history), delivery in zip(pending, deliveries, strict=True):
                    if delivery.ok:
                        written.append(message)
                        continue
                    self._metrics.count("failed", step=built.name)
                    history.append({"at": at, "error": delivery.error})
                    if delivery.retryable:
                        retry.append((message, history))
                    else:
                        self._dead_letter(built.name, step_index, built.branch, message, history)
                if written:
                    self._metrics.count("written", len(written), step=built.name)
                    self._metrics.observe_lag(written, self.clock())
            pending = retry
            if not pending:
                return
            if attempt < policy.attempts:
                self._metrics.count("retried", len(pending), step=built.name)
                self._pause(policy.delay(attempt, self.random))
        for message, history in pending:
            self._dead_letter(built.name, step_index, built.branch, message, history)

    # -- dead letters and checkpoints --------------------------------------------------------------------------

    def _dead_letter(self, step: str, step_index: int, branch: str | None, message: Message,
                     attempts: list[dict[str, Any]]) -> None:
        error = attempts[-1]["error"] if attempts else "failed"
        self._metrics.count("dead_lettered", step=step)
        if self._replaying is not None:
            self.store.record_dead_letter_failure(self._replaying.id, step, step_index, branch, error, attempts)
            self._replay_failed = True
            return
        letter_id = self.store.add_dead_letter(self.name, step, message, error, attempts, step_index=step_index,
                                               branch=branch)
        log.warning("pipeline %s: message %s dead-lettered at %s (%s): %s", self.name, message.id, step, letter_id,
                    error)

    def _commit(self, built: BuiltPipeline) -> None:
        """Checkpoint the last position whose messages are all done (none held by a stateful step), then ack it."""
        if not self._ledger:
            return
        held = [message.position for step in built.steps for message in (step.processor.held() or [])]
        done = len(self._ledger)
        if held:
            done = next((index for index, position in enumerate(self._ledger) if position in held), done)
        for step in built.steps:
            step.processor.commit()
        if done == 0:
            return
        finished, self._ledger = self._ledger[:done], self._ledger[done:]
        position = next((item for item in reversed(finished) if item is not None), None)
        if position is None:
            return
        self._version = self.store.save_checkpoint(self.name, position, expected_version=self._version)
        self._metrics.checkpoint = position
        built.source.acknowledge(position)
        self._save_run("Running", None)

    def _rollback(self, built: BuiltPipeline) -> None:
        for step in built.steps:
            step.processor.rollback()

    def _run_totals(self) -> dict[str, Any]:
        now = self._metrics.snapshot()
        base = self._run_base or {}
        return {**now, **{outcome: now[outcome] - base.get(outcome, 0) for outcome in OUTCOMES}}

    def _save_run(self, status: str, error: str | None) -> None:
        if self._run_id is None:
            return
        totals = self._run_totals()
        try:
            self.store.update_run(self._run_id, read=totals["read"], written=totals["written"],
                                  failed=totals["failed"], dead=totals["dead_lettered"], status=status, error=error)
        except Exception:
            log.exception("pipeline %s: storing the run record failed", self.name)

    # -- replay ------------------------------------------------------------------------------------------------

    def replay(self, dead_letter_ids: Iterable[str], *, from_start: bool = False) -> ReplayReport:
        """Send dead letters through again, from the step that failed (or from the first step), and mark the
        delivered ones Replayed. A letter that fails again stays New with the new attempts appended. Replayed
        messages carry the ``interlink.replay`` header, which ``dedupe`` lets through."""
        report = ReplayReport()
        built = self.build()
        try:
            for letter_id in dead_letter_ids:
                letter = self.store.dead_letter(letter_id)
                reason = self._replay_problem(letter, built, from_start)
                if reason is not None or letter is None:
                    report.skipped[letter_id] = reason or "not found"
                    continue
                message = letter.message
                message.headers[REPLAY_HEADER] = letter.id
                start = 0 if from_start else letter.step_index
                self._replaying, self._replay_failed = letter, False
                try:
                    if start < len(built.steps):
                        outputs = self._run_steps(message, start, None if start == 0 else letter.branch)
                    else:
                        outputs = [(letter.branch, message)]
                    outputs += self._release(built, "flush")
                    self._deliver(outputs)
                finally:
                    self._replaying = None
                if self._replay_failed:
                    report.failed.append(letter.id)
                else:
                    self.store.set_dead_letter_state([letter.id], "Replayed")
                    report.replayed.append(letter.id)
        except _Interrupted:
            pass
        finally:
            for step in built.steps:
                step.processor.commit()
            self._close()
        return report

    def _replay_problem(self, letter: DeadLetter | None, built: BuiltPipeline, from_start: bool) -> str | None:
        if letter is None:
            return "no such dead letter"
        if letter.pipeline != self.name:
            return f"belongs to pipeline {letter.pipeline!r}, not {self.name!r}"
        if letter.state != "New":
            return f"is {letter.state}"
        if from_start or letter.step_index >= len(built.steps):
            return None
        step = built.steps[letter.step_index]
        if step.name != letter.step:
            return (f"the pipeline changed: step {letter.step_index} is now {step.name!r}, not {letter.step!r} "
                    "(replay it from the start)")
        return None

    def discard(self, dead_letter_ids: Iterable[str]) -> int:
        """Mark dead letters Discarded (they stay stored for the record); answer how many changed."""
        ids = [letter.id for letter in (self.store.dead_letter(item) for item in dead_letter_ids)
               if letter is not None and letter.pipeline == self.name]
        return self.store.set_dead_letter_state(ids, "Discarded")


# -- several pipelines -------------------------------------------------------------------------------------------

def run_in_threads(runners: Sequence[PipelineRunner], *, once: bool = False, idle_timeout: float | None = None,
                   monitor: Callable[[], None] | None = None, monitor_interval: float = 0.5,
                   stop_timeout: float = 30.0) -> dict[str, RunReport]:
    """:func:`run_runners`, with the reports keyed by pipeline name."""
    reports = run_runners(runners, once=once, idle_timeout=idle_timeout, monitor=monitor,
                          monitor_interval=monitor_interval, stop_timeout=stop_timeout)
    return {runner.name: report for runner, report in zip(runners, reports, strict=True)}


def run_runners(runners: Sequence[PipelineRunner], *, once: bool = False, idle_timeout: float | None = None,
                monitor: Callable[[], None] | None = None, monitor_interval: float = 0.5,
                stop_timeout: float = 30.0) -> list[RunReport]:
    """Run each runner in its own thread until all finish; ``monitor`` is called meanwhile (a status line). Answers
    the reports in the runners' order (a distributed feeder and worker of one pipeline share its name).

    Ctrl-C (KeyboardInterrupt in the calling thread) stops every runner after its current batch: this waits up to
    ``stop_timeout`` seconds for them and answers their reports (status Stopped). A runner still busy then (a sink
    call that does not return) is left behind and reported Failed; its batch was not checkpointed, so the next run
    reads it again. A second Ctrl-C while waiting stops waiting and raises KeyboardInterrupt. Setting the runners'
    stop event (``interlink worker`` on SIGTERM) stops them the same way.

    The calling thread polls flags and sleeps; it never blocks in ``Thread.join`` or on a lock the runners also take:
    a KeyboardInterrupt landing inside ``join`` makes CPython (3.11) take a running thread for finished, and the
    runners would be abandoned mid-batch.
    """
    reports: list[RunReport | None] = [None] * len(runners)
    finished = [threading.Event() for _ in runners]

    def work(index: int, runner: PipelineRunner) -> None:
        try:
            reports[index] = runner.run(once, idle_timeout=idle_timeout)
        except Exception as exc:  # a spec error at build time
            reports[index] = RunReport(runner.name, None, "Failed", error=_describe(exc))
        finally:
            finished[index].set()

    threads = [threading.Thread(target=work, args=(index, runner), name=f"pipeline-{runner.name}", daemon=True)
               for index, runner in enumerate(runners)]
    try:
        for thread in threads:
            thread.start()
        _wait_for(finished, monitor, monitor_interval)
    except KeyboardInterrupt:
        started = [index for index, thread in enumerate(threads) if thread.ident is not None]
        try:
            for runner in runners:
                runner.stop()
            log.warning("interrupted: stopping %d pipeline(s) after their current batch", len(runners))
            _wait_for([finished[index] for index in started], monitor, monitor_interval,
                      deadline=time.monotonic() + stop_timeout)
        except KeyboardInterrupt:
            for runner in runners:  # in case the second Ctrl-C came before all were asked
                runner.stop()
            log.warning("interrupted again: not waiting for the pipelines to stop")
            raise
        for index, runner in enumerate(runners):
            if reports[index] is not None:
                continue
            if index not in started:
                reports[index] = RunReport(runner.name, None, "Stopped", error="interrupted before it started")
            elif not finished[index].is_set():
                log.warning("pipeline %s did not stop within %gs; leaving it behind", runner.name, stop_timeout)
                reports[index] = RunReport(runner.name, None, "Failed",
                                           error=f"did not stop within {stop_timeout:g}s of Ctrl-C")
    if monitor is not None:
        monitor()
    return [report or RunReport(runner.name, None, "Failed", error="did not report")
            for runner, report in zip(runners, reports, strict=True)]


def _wait_for(events: Sequence[threading.Event], monitor: Callable[[], None] | None, monitor_interval: float, *,
              deadline: float | None = None, poll: float = 0.05) -> None:
    """Sleep until every event is set (or until ``deadline``, on the monotonic clock), calling ``monitor`` every
    ``monitor_interval`` seconds meanwhile. Only reads the events' flags (see :func:`run_in_threads`)."""
    next_monitor = time.monotonic() + monitor_interval
    while not all(event.is_set() for event in events):
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            return
        if monitor is not None and now >= next_monitor:
            monitor()
            next_monitor = now + monitor_interval
        time.sleep(poll if deadline is None else max(0.0, min(poll, deadline - now)))


def run_all(pipelines: Iterable[Pipeline], store: MiddlewareStore, *, once: bool = False,
            connections: Mapping[str, Any] | None = None, project_dir: Path | None = None,
            stop_event: threading.Event | None = None, idle_timeout: float = 5.0) -> dict[str, RunReport]:
    """Run several pipelines (the enabled ones), each in a thread, sharing ``stop_event``; answers their reports."""
    event = stop_event or threading.Event()
    runners = [PipelineRunner(pipeline, store, connections=connections, project_dir=project_dir, stop_event=event,
                              idle_timeout=idle_timeout) for pipeline in pipelines if pipeline.enabled]
    return run_in_threads(runners, once=once)


__all__ = [
    "OUTCOMES",
    "PipelineMetrics",
    "PipelineRunner",
    "ReplayReport",
    "RunReport",
    "metrics_text",
    "run_all",
    "run_in_threads",
]
