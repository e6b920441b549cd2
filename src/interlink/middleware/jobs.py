"""Batch jobs (Batch Data Synchronization): pipelines run to completion, with control records, chains and schedules.

A job is an ordinary pipeline whose source is finite — a SQL extract by watermark (``sql``), an org extract by
``SystemModstamp`` (``org.query``), a folder of files — run with ``interlink sync run NAME``. The classic
control-table recipe is built in, without anything new to declare:

- **read the control record**: the pipeline's checkpoint is the last successfully loaded watermark (a compound
  ``(watermark, id)`` cursor, so rows sharing a timestamp are never missed at a boundary);
- **extract** only what changed since, **validate and enrich** in the steps, **load** (Bulk API 2.0 upsert by
  external id above the sink's ``bulkThreshold``, a SQL upsert, files);
- **advance the watermark** only after each batch is loaded: the checkpoint *is* the restart point, so a run
  that fails (or is killed) resumes after the last loaded batch;
- **error rows** land in the dead letters (the message, the error, every attempt): ``interlink dlq`` lists and
  replays them; a run with error rows, or one that failed, makes ``sync run`` exit non-zero;
- **control records**: every run is kept (id, status, counts, error) and ``interlink sync status`` shows each
  job's last run, restart point and waiting error rows.

``dependsOn: [other]`` chains jobs (the chain stops at the first failure; later jobs are skipped) and
``schedule: "0 2 * * *"`` (cron, UTC) runs a chain when due (``interlink sync run --schedule``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from interlink.middleware.base import PipelineSpecError
from interlink.middleware.runtime import PipelineRunner, RunReport
from interlink.middleware.spec import Pipeline
from interlink.middleware.store import MiddlewareStore, RunRecord

Progress = Callable[[str, dict[str, Any]], None]


@dataclass
class JobResult:
    """One job of a chain: its run report, or why it did not run."""

    name: str
    report: RunReport | None = None
    skipped: str | None = None
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        """A failed or stopped run, or one that left error rows in the dead letters."""
        if self.skipped is not None:
            return True
        assert self.report is not None
        return self.report.status != "Succeeded" or self.report.dead_lettered > 0


@dataclass
class JobStatus:
    """A job's control record: its last run, its restart point and the error rows waiting for a decision."""

    name: str
    last_run: RunRecord | None
    restart_point: Any
    error_rows: int
    depends_on: list[str]
    schedule: str | None
    next_run: datetime | None


def chain(pipelines: Mapping[str, Pipeline], name: str) -> list[Pipeline]:
    """``name`` and everything it depends on, dependencies first; unknown names and cycles are errors."""
    order: list[Pipeline] = []
    state: dict[str, str] = {}

    def visit(current: str, path: list[str]) -> None:
        if state.get(current) == "done":
            return
        if state.get(current) == "visiting":
            raise PipelineSpecError(f"dependsOn forms a cycle: {' -> '.join([*path, current])}")
        pipeline = pipelines.get(current)
        if pipeline is None:
            where = f" (needed by {path[-1]})" if path else ""
            raise PipelineSpecError(f"no pipeline named {current!r}{where}")
        state[current] = "visiting"
        for dependency in pipeline.depends_on:
            visit(dependency, [*path, current])
        state[current] = "done"
        order.append(pipeline)

    visit(name, [])
    return order


def run_chain(jobs: Iterable[Pipeline], store: MiddlewareStore, *, connections: Mapping[str, Any] | None = None,
              project_dir: Path | None = None, progress: Progress | None = None,
              stop_event: threading.Event | None = None, idle_timeout: float = 2.0,
              interval: float = 0.25) -> list[JobResult]:
    """Run each job to completion in order; after a failure the rest are skipped. ``progress(name, metrics)`` is
    called while a job runs (every ``interval`` seconds) and once when it ends."""
    results: list[JobResult] = []
    failed: str | None = None
    for job in jobs:
        if failed is not None:
            results.append(JobResult(job.name, skipped=f"{failed} failed"))
            continue
        runner = PipelineRunner(job, store, connections=connections, project_dir=project_dir,
                                stop_event=stop_event, idle_timeout=idle_timeout)
        started = time.monotonic()
        done = threading.Event()
        watcher = None
        if progress is not None:
            def watch(runner: PipelineRunner = runner, name: str = job.name, done: threading.Event = done) -> None:
                while not done.wait(interval):
                    progress(name, runner.metrics())

            watcher = threading.Thread(target=watch, name=f"interlink-job-{job.name}", daemon=True)
            watcher.start()
        try:
            report = runner.run(once=True, idle_timeout=idle_timeout)
        finally:
            done.set()
            if watcher is not None:
                watcher.join()
        if progress is not None:
            progress(job.name, runner.metrics())
        result = JobResult(job.name, report, seconds=time.monotonic() - started)
        results.append(result)
        if result.failed:
            failed = job.name
    return results


def status(pipelines: Iterable[Pipeline], store: MiddlewareStore, *, now: datetime | None = None) -> list[JobStatus]:
    """The control record of each pipeline, in name order."""
    found = []
    for pipeline in sorted(pipelines, key=lambda p: p.name):
        runs = store.runs(pipeline.name, limit=1)
        checkpoint = store.load_checkpoint(pipeline.name)
        found.append(JobStatus(pipeline.name, runs[0] if runs else None,
                               checkpoint.position if checkpoint else None,
                               store.count_dead_letters(pipeline.name), list(pipeline.depends_on), pipeline.schedule,
                               next_run(pipeline, now) if pipeline.schedule else None))
    return found


def reset(store: MiddlewareStore, name: str) -> bool:
    """Forget a job's restart point: its next run extracts everything again. True if there was one."""
    return store.delete_checkpoint(name) > 0


def next_run(pipeline: Pipeline, now: datetime | None = None) -> datetime:
    """When a scheduled job is next due (UTC)."""
    from croniter import croniter

    assert pipeline.schedule is not None
    base = (now or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
    return croniter(pipeline.schedule, base).get_next(datetime).replace(tzinfo=UTC)  # type: ignore[no-any-return]


def run_on_schedule(pipelines: Mapping[str, Pipeline], store: MiddlewareStore, *, stop_event: threading.Event,
                    run: Callable[[str], list[JobResult]], clock: Callable[[], datetime] | None = None,
                    wait: Callable[[float], bool] | None = None) -> None:
    """Run the chain of each scheduled pipeline whenever it falls due, until ``stop_event`` is set. A chain that
    is still running when it falls due again is not started twice (runs are sequential)."""
    now = clock or (lambda: datetime.now(UTC))
    pause = wait or stop_event.wait
    due = {name: next_run(p, now()) for name, p in pipelines.items() if p.schedule and p.enabled}
    while due and not stop_event.is_set():
        name, when = min(due.items(), key=lambda item: item[1])
        seconds = (when - now()).total_seconds()
        if seconds > 0:
            if pause(min(seconds, 60.0)):
                return
            continue
        run(name)
        due[name] = next_run(pipelines[name], now())


__all__ = ["JobResult", "JobStatus", "chain", "next_run", "reset", "run_chain", "run_on_schedule", "status"]
