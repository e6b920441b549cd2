"""The process registry: every serving process of an org records itself in the org's store and heartbeats.

Each API process of ``interlink up``, each ``interlink worker --jobs`` and the supervisor of ``interlink up
--workers N`` registers when it starts (a row of ``il_process``: kind, host, pid, version, what it runs), heartbeats
every few seconds and unregisters when it stops. A process that crashed stops heartbeating, so its row goes
*stale*: ``interlink doctor`` lists live and stale processes, checks that some live process runs the background
jobs, and that every process runs the deployed schema. The rows live in the store, so every process on every
machine sharing it sees the same list. Times are the processes' own UTC clocks (as job leases are): keep the
machines' clocks synchronised.

Usage::

    membership = org.processes.membership("worker", {"jobs": True})
    with membership:          # registers, heartbeats on a background thread, unregisters on exit
        run_forever()

or, from an event loop that already wakes up every second: ``membership.start()``, ``membership.beat()`` on
every tick (it writes only every ``HEARTBEAT_SECONDS``), ``membership.stop()``.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

from sqlalchemy import Table, delete, insert, select, update

import interlink
from interlink.store.database import Store, utcnow

log = logging.getLogger(__name__)

KINDS = ("api", "worker", "supervisor")
HEARTBEAT_SECONDS = 5.0  # how often a process writes its heartbeat
LIVE_SECONDS = 30.0  # a process silent for longer is stale: it stopped without unregistering (crashed, killed -9)
PRUNE_SECONDS = 24 * 3600.0  # rows silent for this long are deleted (every register prunes)


@dataclass(frozen=True)
class ProcessInfo:
    """One registered process as the store last saw it."""

    id: str
    kind: str  # api | worker | supervisor
    host: str
    pid: int
    started_at: datetime
    last_seen: datetime
    version: str  # interlink.__version__ of the process
    schema_version: str  # the deployed schema it ran at its last heartbeat (Store.schema.version)
    detail: dict[str, Any]  # what it runs: {"jobs": true, "port": 8443, "grpc_port": 7443, "bus": "nats", ...}

    @property
    def jobs(self) -> bool:
        """Whether the process runs the org's background jobs (Bulk jobs, callouts, outbound messages, flows)."""
        return bool(self.detail.get("jobs"))

    def age_seconds(self, now: datetime) -> float:
        return max(0.0, (now - self.started_at).total_seconds())

    def silent_seconds(self, now: datetime) -> float:
        """Seconds since its last heartbeat."""
        return max(0.0, (now - self.last_seen).total_seconds())


class ProcessRegistry:
    """The ``il_process`` table of an org's store: register, heartbeat, unregister, list, prune."""

    def __init__(self, store: Store, *, clock: Callable[[], datetime] = utcnow, host: str | None = None,
                 pid: int | None = None) -> None:
        self.store = store
        self.clock = clock
        self.host = host or socket.gethostname()
        self.pid = os.getpid() if pid is None else pid
        # The rows this registry registered: to merge a heartbeat's detail without reading, and to re-create a
        # row that was pruned while its process was paused.
        self._mine: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    @property
    def _table(self) -> Table:
        return self.store.system["il_process"]

    # -- this process ---------------------------------------------------------------------------------------------

    def register(self, kind: str, detail: Mapping[str, Any] | None = None) -> str:
        """Record a process of this host and pid starting now; returns its id (unique per process start).

        Also prunes the rows of processes silent for ``PRUNE_SECONDS``, so the table never grows without bound.
        """
        if kind not in KINDS:
            raise ValueError(f"unknown process kind {kind!r}: use one of {', '.join(KINDS)}")
        now = self.clock()
        process_id = f"{kind}-{uuid.uuid4().hex[:16]}"
        # The pid namespace the pid belongs to (the registering process's): containers that share a host name (host
        # networking) each have their own, so only a reader in the same one may look the pid up.
        described = {"pidns": pid_namespace(), **(detail or {})}
        row = {"id": process_id, "kind": kind, "host": self.host[:255], "pid": self.pid, "started_at": now,
               "last_seen": now, "version": str(getattr(interlink, "__version__", ""))[:32],
               "schema_version": self.store.schema.version[:64], "detail_json": _dumps(described)}
        table = self._table
        with self.store.write() as conn:
            conn.execute(delete(table).where(table.c.last_seen < now - timedelta(seconds=PRUNE_SECONDS)))
            conn.execute(insert(table).values(row))
        with self._lock:
            self._mine[process_id] = row
        return process_id

    def heartbeat(self, process_id: str, detail: Mapping[str, Any] | None = None) -> None:
        """Say the process is alive (one UPDATE): its last-seen time, the schema it runs and, when given, its
        detail. ``detail`` is merged into what this registry registered for the process; for a process registered
        elsewhere it replaces the stored detail. A row pruned meanwhile is written again."""
        now = self.clock()
        values: dict[str, Any] = {"last_seen": now, "schema_version": self.store.schema.version[:64]}
        with self._lock:
            mine = self._mine.get(process_id)
            if detail is not None:
                merged = {**(json.loads(mine["detail_json"]) if mine else {}), **detail}
                values["detail_json"] = _dumps(merged)
            if mine is not None:
                mine.update(values)
                mine = dict(mine)
        table = self._table
        with self.store.write() as conn:
            updated = conn.execute(update(table).where(table.c.id == process_id).values(values)).rowcount
            if not updated and mine is not None:
                conn.execute(insert(table).values(mine))

    def unregister(self, process_id: str) -> None:
        """Remove the process's row: it stopped cleanly."""
        table = self._table
        with self.store.write() as conn:
            conn.execute(delete(table).where(table.c.id == process_id))
        with self._lock:
            self._mine.pop(process_id, None)

    def membership(self, kind: str, detail: Mapping[str, Any] | None = None, *,
                   interval: float = HEARTBEAT_SECONDS) -> Membership:
        """A process's registration for its lifetime (see :class:`Membership`)."""
        return Membership(self, kind, detail, interval=interval)

    # -- every process --------------------------------------------------------------------------------------------

    def all(self) -> list[ProcessInfo]:
        """Every registered process, live or stale, by kind, host and pid."""
        return self._select(None)

    def get(self, process_id: str) -> ProcessInfo | None:
        table = self._table
        with self.store.read() as conn:
            row = conn.execute(select(table).where(table.c.id == process_id)).first()
        return None if row is None else _info(row)

    def live(self, max_age_seconds: float = LIVE_SECONDS) -> list[ProcessInfo]:
        """Processes that heartbeated within ``max_age_seconds``."""
        table = self._table
        return self._select(table.c.last_seen >= self.clock() - timedelta(seconds=max_age_seconds))

    def stale(self, max_age_seconds: float = LIVE_SECONDS) -> list[ProcessInfo]:
        """Processes silent for more than ``max_age_seconds`` that never unregistered: they crashed or were
        killed (or their machine lost the store)."""
        table = self._table
        return self._select(table.c.last_seen < self.clock() - timedelta(seconds=max_age_seconds))

    def prune(self, older_than_seconds: float = PRUNE_SECONDS) -> int:
        """Delete the rows of processes silent for more than ``older_than_seconds``; returns how many."""
        table = self._table
        with self.store.write() as conn:
            return int(conn.execute(delete(table).where(
                table.c.last_seen < self.clock() - timedelta(seconds=older_than_seconds))).rowcount or 0)

    def _select(self, where: Any) -> list[ProcessInfo]:
        table = self._table
        query = select(table).order_by(table.c.kind, table.c.host, table.c.pid, table.c.started_at)
        if where is not None:
            query = query.where(where)
        with self.store.read() as conn:
            return [_info(row) for row in conn.execute(query)]


class Membership:
    """One process's entry in the registry: :meth:`start` registers it, :meth:`beat` keeps it fresh (writing at
    most every ``interval`` seconds), :meth:`stop` removes it. As a context manager it also heartbeats on a
    daemon thread. Store errors are logged, never raised: a store that is briefly unreachable must not stop the
    process; registration is retried on the next beat."""

    def __init__(self, registry: ProcessRegistry, kind: str, detail: Mapping[str, Any] | None = None, *,
                 interval: float = HEARTBEAT_SECONDS, monotonic: Callable[[], float] = time.monotonic) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown process kind {kind!r}: use one of {', '.join(KINDS)}")
        self.registry = registry
        self.kind = kind
        self.detail = dict(detail or {})
        self.interval = interval
        self.process_id: str | None = None
        self._monotonic = monotonic
        self._last_beat = 0.0
        self._pending: dict[str, Any] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> str | None:
        """Register; returns the process id (None when the store refused: retried by :meth:`beat`)."""
        try:
            self.process_id = self.registry.register(self.kind, self.detail)
        except Exception:
            log.exception("could not register this %s process in the store", self.kind)
            return None
        self._last_beat = self._monotonic()
        return self.process_id

    def beat(self, detail: Mapping[str, Any] | None = None, *, force: bool = False) -> bool:
        """Heartbeat when ``interval`` seconds passed since the last one (or ``force``); ``detail`` changes are
        kept until written. True when a heartbeat (or a late registration) was written."""
        if detail:
            self.detail.update(detail)
            self._pending.update(detail)
        if self.process_id is None:
            return self.start() is not None
        now = self._monotonic()
        if not force and now - self._last_beat < self.interval:
            return False
        try:
            self.registry.heartbeat(self.process_id, self._pending or None)
        except Exception:
            log.exception("heartbeat of this %s process failed", self.kind)
            return False
        self._last_beat = now
        self._pending = {}
        return True

    def stop(self) -> None:
        """Stop the heartbeat thread (if any) and unregister."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self.process_id is None:
            return
        try:
            self.registry.unregister(self.process_id)
        except Exception:
            log.exception("could not unregister this %s process", self.kind)
        self.process_id = None

    def run_in_background(self) -> None:
        """Heartbeat on a daemon thread until :meth:`stop` (for processes without a loop that ticks)."""
        if self._thread is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(min(self.interval, 1.0)):
                self.beat()

        self._thread = threading.Thread(target=loop, name=f"interlink-{self.kind}-heartbeat", daemon=True)
        self._thread.start()

    def __enter__(self) -> Membership:
        self.start()
        self.run_in_background()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()


def pid_namespace() -> str | None:
    """This process's pid namespace (Linux: ``pid:[4026531836]``), None where there is no such thing: a pid means
    a process only to those in the same namespace on the same host."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _dumps(detail: Mapping[str, Any]) -> str:
    return json.dumps(dict(detail), sort_keys=True, default=str)


def _info(row: Any) -> ProcessInfo:
    try:
        detail = json.loads(row.detail_json or "{}")
    except ValueError:
        detail = {}
    return ProcessInfo(id=row.id, kind=row.kind, host=row.host, pid=int(row.pid), started_at=row.started_at,
                       last_seen=row.last_seen, version=row.version, schema_version=row.schema_version or "",
                       detail=detail if isinstance(detail, dict) else {})


__all__ = ["HEARTBEAT_SECONDS", "KINDS", "LIVE_SECONDS", "PRUNE_SECONDS", "Membership", "ProcessInfo",
           "ProcessRegistry", "pid_namespace"]
