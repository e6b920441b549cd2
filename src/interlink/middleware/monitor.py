"""Watching pipelines from outside their processes: metric samples in the middleware store, and what a console asks.

Pipelines run in their own processes (``interlink pipelines run``, ``interlink worker``), so their in-memory
counters (:meth:`~interlink.middleware.runtime.PipelineRunner.metrics`) are out of reach of anyone else. A
:class:`PipelineSampler` in each of those processes writes a sample of every runner's counters every few seconds
(and a last one when it stops) to ``mw_metric_sample`` in the middleware store; :class:`PipelineMonitor` reads the
samples back for the web console: each pipeline with its latest figures, throughput and lag over time, and its dead
letters, which it replays and discards with the functions ``interlink dlq replay`` and ``interlink dlq discard`` use
(:meth:`PipelineRunner.replay <interlink.middleware.runtime.PipelineRunner.replay>`,
:meth:`MiddlewareStore.set_dead_letter_state`).

Counters in a sample are totals since the runner started (``started``), one series per runner (``runner``: host,
process and role), so a restart starts a new series and rates never go negative. Samples older than a day are
pruned by the samplers.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, Boolean, Column, Double, Index, Integer, String, Table, delete, func, insert, select

from interlink.middleware.store import MIDDLEWARE_METADATA, DeadLetter, MiddlewareStore

log = logging.getLogger(__name__)

SAMPLE_SECONDS = 5.0
KEEP_SECONDS = 25 * 3600  # a day of history, and some
COUNTERS = ("read", "written", "filtered", "deduped", "retried", "failed", "dead_lettered")

metric_sample_table = Table(
    "mw_metric_sample", MIDDLEWARE_METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("pipeline", String(200), nullable=False),
    Column("runner", String(120), nullable=False),  # host:pid:role:nonce, one series per runner
    Column("role", String(20), nullable=False),  # "" (the whole pipeline), feeder or worker (NATS work queues)
    Column("started", Double, nullable=False),  # when the runner's counters started at zero
    Column("at", Double, nullable=False),
    *(Column(name, BigInteger, nullable=False, default=0) for name in COUNTERS),
    Column("lag_seconds", Double, nullable=True),
    Column("dead_letters", Integer, nullable=True),  # New dead letters of the pipeline when sampled
    Column("queue_pending", Integer, nullable=True),  # a work queue's undelivered messages, as its worker saw them
    Column("running", Boolean, nullable=False),  # False in the last sample of a runner that stopped
    Index("ix_mw_metric_sample_pipeline_at", "pipeline", "at"),
    Index("ix_mw_metric_sample_at", "at"),
)


def _role(runner: Any) -> str:
    from interlink.middleware.distributed import role_of

    try:
        return role_of(runner)
    except Exception:
        return ""


# -- recording -----------------------------------------------------------------------------------------------------

class PipelineSampler:
    """Writes a sample of each runner's metrics every ``interval`` seconds from a daemon thread."""

    def __init__(self, runners: Sequence[Any], store: MiddlewareStore, *, interval: float = SAMPLE_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        self.runners = list(runners)
        self.store = store
        self.interval = interval
        self.clock = clock
        self.started = clock()
        prefix = f"{socket.gethostname()}:{os.getpid()}"
        nonce = uuid.uuid4().hex[:6]
        self._series = [(runner, _role(runner), f"{prefix}:{_role(runner) or 'run'}:{nonce}:{index}")
                        for index, runner in enumerate(self.runners)]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pruned_at = 0.0
        try:
            store.ensure_tables([metric_sample_table])
        except Exception:  # monitoring must never keep a pipeline from running; sampling will retry and log
            log.warning("cannot create the pipeline metrics table", exc_info=True)

    def sample(self, *, running: bool = True) -> None:
        """Write one sample of every runner now (and prune old samples now and then)."""
        now = self.clock()
        depths: dict[str, int | None] = {}
        rows = []
        for runner, role, series in self._series:
            snapshot = runner.metrics()
            name = snapshot["pipeline"]
            if name not in depths:
                try:
                    depths[name] = self.store.count_dead_letters(name)
                except Exception:
                    depths[name] = None
            pending = getattr(runner, "queue_pending", None)
            rows.append({"pipeline": name, "runner": series, "role": role, "started": self.started, "at": now,
                         **{counter: int(snapshot.get(counter) or 0) for counter in COUNTERS},
                         "lag_seconds": snapshot.get("lag_seconds"), "dead_letters": depths[name],
                         "queue_pending": pending if isinstance(pending, int) else None, "running": running})
        with self.store.transaction() as conn:
            if rows:
                conn.execute(insert(metric_sample_table), rows)
            if now - self._pruned_at > 600:
                self._pruned_at = now
                conn.execute(delete(metric_sample_table).where(metric_sample_table.c.at < now - KEEP_SECONDS))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sample()
            except Exception:  # the store is busy or gone: the pipelines must not notice
                log.warning("pipeline metrics sample failed", exc_info=True)

    def start(self) -> PipelineSampler:
        """Sample now, then every ``interval`` seconds in the background; answers self."""
        try:
            self.sample()
        except Exception:
            log.warning("pipeline metrics sample failed", exc_info=True)
        self._thread = threading.Thread(target=self._loop, name="interlink-pipeline-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sampling, after a last sample that marks the runners stopped."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 5)
            self._thread = None
        try:
            self.sample(running=False)
        except Exception:
            log.warning("the last pipeline metrics sample failed", exc_info=True)


def sample_pipelines(runners: Sequence[Any], store: MiddlewareStore,
                     interval: float = SAMPLE_SECONDS) -> PipelineSampler:
    """Start sampling ``runners`` into ``store`` (``interlink pipelines run`` and ``interlink worker``); call
    ``stop()`` on the answer when they are done."""
    return PipelineSampler(runners, store, interval=interval).start()


# -- reading, for the console -----------------------------------------------------------------------------------------

class PipelineMonitor:
    """What the web console shows of the pipelines sharing one middleware store, and the dead-letter actions.

    ``project_dir`` holds the pipelines (replay runs the failed steps again, so it needs their definitions);
    ``connections`` answers the named org connections a replay's steps use. Nothing is opened or created until
    asked: :meth:`available` is False while an embedded (SQLite) store does not exist yet.
    """

    def __init__(self, store_url: str, *, project_dir: Path | None = None,
                 connections: Callable[[], Mapping[str, Any]] | None = None, clock: Callable[[], float] = time.time,
                 interval: float = SAMPLE_SECONDS) -> None:
        self.store_url = store_url
        self.project_dir = project_dir
        self.connections = connections or dict
        self.clock = clock
        self.interval = interval
        self._store: MiddlewareStore | None = None
        self._lock = threading.Lock()
        self._defined_cache: tuple[Any, dict[str, str | None]] | None = None

    # -- the store ---------------------------------------------------------------------------------------------

    def _sqlite_path(self) -> Path | None:
        if not self.store_url.startswith("sqlite:///"):
            return None
        path = self.store_url.removeprefix("sqlite:///")
        return None if path in ("", ":memory:") else Path(path)

    def available(self) -> bool:
        """Whether the middleware store exists (an embedded one is created by the first pipeline run)."""
        path = self._sqlite_path()
        return path is None or path.exists()

    @property
    def backend(self) -> str:
        return "sqlite" if self.store_url.startswith("sqlite") else "postgresql"

    def store(self) -> MiddlewareStore:
        with self._lock:
            if self._store is None:
                store = MiddlewareStore.open_url(self.store_url)
                store.ensure_tables([metric_sample_table])
                self._store = store
            return self._store

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    # -- pipelines and their figures --------------------------------------------------------------------------

    def pipelines(self) -> list[dict[str, Any]]:
        """Every pipeline of the project or the store: its latest figures (summed over its runners), whether a
        runner is running, its last run and its dead-letter depth; sorted by name."""
        store = self.store()
        now = self.clock()
        table = metric_sample_table
        latest = select(table.c.runner, func.max(table.c.at).label("at")).where(
            table.c.at >= now - KEEP_SECONDS).group_by(table.c.runner).subquery()
        with store.transaction() as conn:
            rows = conn.execute(select(table).join(latest, (table.c.runner == latest.c.runner)
                                                   & (table.c.at == latest.c.at))).all()
        found: dict[str, dict[str, Any]] = {}
        for name, description in self._defined().items():
            found[name] = _empty(name, description, defined=True)
        for row in rows:
            entry = found.setdefault(row.pipeline, _empty(row.pipeline, None))
            running = bool(row.running) and now - row.at <= 3 * self.interval + 5
            entry["runners"].append({"runner": row.runner, "role": row.role, "running": running,
                                     "lastSample": row.at, "started": row.started})
            counting = row.role != "worker" or not any(r.pipeline == row.pipeline and r.role != "worker"
                                                       for r in rows)
            entry["read"] += row.read if counting else 0
            for counter in ("written", "filtered", "deduped", "retried", "failed", "dead_lettered"):
                entry[counter] += getattr(row, counter)
            if row.lag_seconds is not None and (running or entry["lagSeconds"] is None):
                entry["lagSeconds"] = max(entry["lagSeconds"] or 0.0, float(row.lag_seconds))
            if row.queue_pending is not None:
                entry["queuePending"] = (entry["queuePending"] or 0) + row.queue_pending
            entry["running"] = entry["running"] or running
            entry["lastSample"] = max(entry["lastSample"] or 0.0, row.at)
        for name, entry in found.items():
            entry["deadLetters"] = store.count_dead_letters(name)
            runs = store.runs(name, limit=1)
            if runs:
                run = runs[0]
                entry["lastRun"] = {"status": run.status, "started": run.started, "finished": run.finished,
                                    "read": run.read, "written": run.written, "failed": run.failed,
                                    "dead": run.dead, "error": run.error}
        for name in self._pipelines_with_letters(store):
            if name not in found:
                found[name] = _empty(name, None)
                found[name]["deadLetters"] = store.count_dead_letters(name)
        return [found[name] for name in sorted(found)]

    def _defined(self) -> dict[str, str | None]:
        """The project's pipelines (name: description), loaded again only when a file in ``pipelines/`` changed."""
        folder = None if self.project_dir is None else self.project_dir / "pipelines"
        if folder is None or not folder.is_dir():
            return {}
        try:
            stamp = tuple(sorted((path.name, path.stat().st_mtime_ns) for path in folder.iterdir()))
        except OSError:
            return {}
        if self._defined_cache is not None and self._defined_cache[0] == stamp:
            return self._defined_cache[1]
        from interlink.middleware.spec import load_project

        try:
            pipelines, _errors = load_project(self.project_dir)  # type: ignore[arg-type]
        except Exception:
            log.warning("console: loading the project's pipelines failed", exc_info=True)
            return {}
        defined = {pipeline.name: pipeline.description for pipeline in pipelines}
        self._defined_cache = (stamp, defined)
        return defined

    @staticmethod
    def _pipelines_with_letters(store: MiddlewareStore) -> list[str]:
        from interlink.middleware.store import dead_letter_table

        with store.transaction() as conn:
            return list(conn.execute(select(dead_letter_table.c.pipeline).distinct()).scalars())

    def series(self, pipeline: str, *, window: float = 3600.0, buckets: int = 60) -> dict[str, Any]:
        """Throughput (messages per second read and written, summed over runners), the highest lag and the DLQ
        depth of ``pipeline`` in ``buckets`` equal slices of the last ``window`` seconds, oldest first (None where
        no runner sampled)."""
        store = self.store()
        now = self.clock()
        step = window / buckets
        start = now - window
        table = metric_sample_table
        with store.transaction() as conn:
            rows = conn.execute(select(table).where(table.c.pipeline == pipeline, table.c.at >= start - 2 * step)
                                .order_by(table.c.runner, table.c.at)).all()
        read = [0.0] * buckets
        written = [0.0] * buckets
        dead = [0.0] * buckets
        lag: list[float | None] = [None] * buckets
        depth: list[int | None] = [None] * buckets
        sampled = [False] * buckets
        feeders = {row.runner for row in rows if row.role != "worker"}
        previous: dict[str, Any] = {}
        for row in rows:
            before = previous.get(row.runner)
            previous[row.runner] = row
            if row.at < start:
                continue
            index = min(int((row.at - start) // step), buckets - 1)
            sampled[index] = True
            if row.lag_seconds is not None:
                lag[index] = max(lag[index] or 0.0, float(row.lag_seconds))
            if row.dead_letters is not None:
                depth[index] = row.dead_letters
            if before is None and row.started < start - 2 * step:
                continue  # the series began before the window: its first sample here is only a baseline

            def delta(counter: str, earlier: Any = before, current: Any = row) -> int:
                return max(0, getattr(current, counter) - (getattr(earlier, counter) if earlier is not None else 0))

            if row.runner in feeders or not feeders:
                read[index] += delta("read")
            written[index] += delta("written")
            dead[index] += delta("dead_lettered")
        return {"pipeline": pipeline, "start": start, "step": step, "sampled": sampled,
                "readPerSecond": [round(value / step, 6) for value in read],
                "writtenPerSecond": [round(value / step, 6) for value in written],
                "deadLettered": [int(value) for value in dead], "lagSeconds": lag, "deadLetters": depth}

    # -- dead letters -----------------------------------------------------------------------------------------

    def dead_letters(self, *, pipeline: str | None = None, state: str | None = "New",
                     limit: int = 100) -> list[dict[str, Any]]:
        """Dead letters (newest last, as ``interlink dlq list``), each as ``interlink dlq show`` prints it."""
        return [_letter(letter) for letter in self.store().dead_letters(pipeline, state, limit=limit)]

    def dead_letter(self, letter_id: str) -> dict[str, Any] | None:
        found = self.store().dead_letter(letter_id)
        return None if found is None else _letter(found)

    def replay(self, letter_ids: Sequence[str], *, from_start: bool = False) -> dict[str, Any]:
        """Send dead letters through their pipeline again, as ``interlink dlq replay`` does: ``{"replayed": [...],
        "failed": [...], "skipped": {id: reason}}``."""
        from interlink.middleware.base import PipelineSpecError
        from interlink.middleware.runtime import PipelineRunner
        from interlink.middleware.spec import load_project

        store = self.store()
        result: dict[str, Any] = {"replayed": [], "failed": [], "skipped": {}}
        by_pipeline: dict[str, list[str]] = {}
        for letter_id in letter_ids:
            letter = store.dead_letter(letter_id)
            if letter is None:
                result["skipped"][letter_id] = "no such dead letter"
            else:
                by_pipeline.setdefault(letter.pipeline, []).append(letter.id)
        if not by_pipeline:
            return result
        pipelines, errors = load_project(self.project_dir) if self.project_dir is not None else ([], [])
        known = {pipeline.name: pipeline for pipeline in pipelines}
        for name, ids in by_pipeline.items():
            if name not in known:
                reason = next((str(e) for e in errors if name in str(e)), f"no pipeline {name!r} in the project")
                result["skipped"].update(dict.fromkeys(ids, reason))
                continue
            try:
                runner = PipelineRunner(known[name], store, connections=self.connections(),
                                        project_dir=self.project_dir)
                report = runner.replay(ids, from_start=from_start)
            except PipelineSpecError as exc:
                result["skipped"].update(dict.fromkeys(ids, str(exc)))
                continue
            result["replayed"] += report.replayed
            result["failed"] += report.failed
            result["skipped"].update(report.skipped)
        return result

    def discard(self, letter_ids: Sequence[str]) -> int:
        """Mark New dead letters Discarded, as ``interlink dlq discard`` does; answers how many changed."""
        store = self.store()
        ids = [letter.id for letter in (store.dead_letter(item) for item in letter_ids) if letter is not None]
        return store.set_dead_letter_state(ids, "Discarded")


def _empty(name: str, description: str | None, *, defined: bool = False) -> dict[str, Any]:
    return {"name": name, "description": description, "defined": defined,
            "running": False, "runners": [], "lastSample": None, "lagSeconds": None, "queuePending": None,
            "deadLetters": 0, "lastRun": None, **dict.fromkeys(COUNTERS, 0)}


def _letter(letter: DeadLetter) -> dict[str, Any]:
    data = letter.to_dict()
    data["messageId"] = letter.message.id
    data["createdEpoch"] = letter.created_at
    return data


__all__ = ["KEEP_SECONDS", "SAMPLE_SECONDS", "PipelineMonitor", "PipelineSampler", "metric_sample_table",
           "sample_pipelines"]
