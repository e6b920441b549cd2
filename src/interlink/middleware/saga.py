"""Running sagas: a multi-step process whose completed steps are compensated, in reverse order, when a step fails.

:class:`SagaRunner` runs the steps of a :class:`~interlink.middleware.sagaspec.SagaDefinition` in order, saving each
result (``saveAs``) into the instance's data. A retryable failure (408/429/5xx, a connection error, an org row lock,
any unexpected exception) is tried again per the retry policy (exponential backoff with full jitter); a step that
still fails, or fails permanently, turns the instance ``Compensating`` and the compensations of the completed steps
run in reverse order, each with the same retries (the failed step itself is not compensated). A compensation that
fails for good ends the instance ``Failed`` with its error: it needs a human, then ``resume ID`` tries it again.

Durability: the instance (status, current step, data, history) is written to the ``mw_saga`` table of the
middleware store before each step runs ("started", a write-ahead record) and after it ("ok"/"failed"), with a
compare-and-set version so two processes never both move one instance on. After a crash, :meth:`SagaRunner.resume`
(or :meth:`~SagaRunner.resume_all`) re-runs the step that was in flight, or goes on compensating. Steps must
therefore be idempotent: HTTP steps send ``Idempotency-Key: <saga id>:<step>`` (``…:compensate`` for a
compensation) for the receiver to honour; org updates and deletes are naturally idempotent, creates and publishes
are not (pair them with an upsert-style receiver, or accept a possible duplicate after a crash).

Statuses: ``Running`` → ``Completed``; ``Running`` → ``Compensating`` → ``Compensated`` (every completed step undone)
or ``Failed`` (a compensation failed for good). Starting with an existing id answers the stored instance.
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import random as random_module
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Column, Double, Index, Integer, String, Table, Text, insert, select, update
from sqlalchemy.exc import IntegrityError

from interlink.middleware.base import MiddlewareError, PermanentError, PipelineSpecError, RetryableError
from interlink.middleware.expressions import Scope, jsonable
from interlink.middleware.orgapi import connection_from_config
from interlink.middleware.sagaspec import (
    DEFAULT_RETRY,
    Action,
    Call,
    Function,
    SagaDefinition,
    SagaDefinitionError,
    SagaStep,
    import_saga_module,
    load_saga_text,
    load_sagas,
)
from interlink.middleware.store import MIDDLEWARE_METADATA, MiddlewareStore, decode_json, encode_json

log = logging.getLogger(__name__)

RUNNING, COMPLETED, COMPENSATING, COMPENSATED, FAILED = "Running", "Completed", "Compensating", "Compensated", "Failed"
STATUSES = (RUNNING, COMPLETED, COMPENSATING, COMPENSATED, FAILED)
#: statuses a restart continues (Failed waits for a human: ``resume ID`` tries its compensation again)
INTERRUPTED = (RUNNING, COMPENSATING)

saga_table = Table(
    "mw_saga", MIDDLEWARE_METADATA,
    Column("id", String(255), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("status", String(20), nullable=False),
    Column("step", Integer, nullable=False),  # running: the next/in-flight step; compensating: the one to undo
    Column("step_name", String(200), nullable=True),
    Column("data", Text, nullable=False),
    Column("history", Text, nullable=False),
    Column("error", Text, nullable=True),
    Column("version", Integer, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    Index("ix_mw_saga_status_name", "status", "name"),
)


class SagaError(MiddlewareError):
    """A saga cannot be started or resumed as asked (unknown id, another saga's id)."""


class SagaConflict(SagaError):
    """Another process moved this saga on since this runner read it; this runner stops touching it."""


# -- instances -------------------------------------------------------------------------------------------------

@dataclass
class SagaInstance:
    """One run of a saga as stored: ``history`` holds ``{step, phase, at, outcome, error, attempt}`` entries
    (phase ``action``/``compensate``; outcome ``started``, ``retry``, ``ok`` or ``failed``)."""

    id: str
    name: str
    status: str
    step: int
    data: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    step_name: str | None = None
    version: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def failed_step(self) -> str | None:
        """The step whose action failed (the reason for compensating), if any."""
        return next((entry["step"] for entry in reversed(self.history)
                     if entry["phase"] == "action" and entry["outcome"] == "failed"), None)

    @property
    def compensated(self) -> list[str]:
        """The steps whose compensation succeeded, in the order they ran."""
        return [entry["step"] for entry in self.history if entry["phase"] == "compensate" and entry["outcome"] == "ok"]

    def summary(self) -> dict[str, Any]:
        """Status, failed step, compensated steps and error (what a sink reports)."""
        return {"saga": self.id, "name": self.name, "status": self.status, "failedStep": self.failed_step,
                "compensated": self.compensated, "error": self.error}

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape ``interlink saga`` prints."""
        return {**self.summary(), "step": self.step_name, "data": jsonable(self.data), "history": self.history,
                "createdAt": _iso(self.created_at), "updatedAt": _iso(self.updated_at)}


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _instance(row: Any) -> SagaInstance:
    return SagaInstance(id=row.id, name=row.name, status=row.status, step=row.step, data=decode_json(row.data),
                        history=decode_json(row.history), error=row.error, step_name=row.step_name,
                        version=row.version, created_at=row.created_at, updated_at=row.updated_at)


def ensure_saga_table(store: MiddlewareStore) -> None:
    """Create ``mw_saga`` when missing."""
    store.ensure_tables([saga_table])


def load_saga(store: MiddlewareStore, saga_id: str) -> SagaInstance | None:
    """The stored instance ``saga_id``, or None."""
    with store.transaction() as conn:
        row = conn.execute(select(saga_table).where(saga_table.c.id == saga_id)).first()
    return None if row is None else _instance(row)


def list_sagas(store: MiddlewareStore, *, name: str | None = None, statuses: Sequence[str] | None = None,
               limit: int = 100) -> list[SagaInstance]:
    """Stored instances, most recently updated first, of one saga or all, in some statuses or any."""
    query = select(saga_table).order_by(saga_table.c.updated_at.desc()).limit(limit)
    if name is not None:
        query = query.where(saga_table.c.name == name)
    if statuses:
        query = query.where(saga_table.c.status.in_(list(statuses)))
    with store.transaction() as conn:
        return [_instance(row) for row in conn.execute(query).all()]


# -- running ---------------------------------------------------------------------------------------------------

Hook = Callable[[SagaInstance, str, str, str], None]


class _Failed(Exception):
    def __init__(self, error: str, attempts: int) -> None:
        super().__init__(error)
        self.error, self.attempts = error, attempts


class SagaRunner:
    """Starts and resumes instances of one :class:`SagaDefinition`, persisting each in ``store``.

    ``connections``: named org connections (OrgConnection objects or ``{url, auth}`` mappings) for ``org.*`` steps.
    ``project_dir`` locates ``sagas/*.py`` for ``python`` steps. ``clock``, ``sleep`` and ``random`` are
    injectable; ``http`` (an httpx.Client) or ``transport`` replaces the network. ``hook(instance, step, phase,
    event)`` is called after each persisted record (event ``started``/``retry``/``ok``/``failed``) and with event
    ``executed`` right after a call returned, before its outcome is stored (a test kills the runner there).
    """

    def __init__(self, definition: SagaDefinition, store: MiddlewareStore,
                 connections: Mapping[str, Any] | None = None, *, project_dir: Path | None = None,
                 clock: Callable[[], float] | None = None, sleep: Callable[[float], Any] | None = None,
                 random: Callable[[], float] | None = None, http: httpx.Client | None = None,
                 transport: httpx.BaseTransport | None = None, hook: Hook | None = None) -> None:
        self.definition = definition
        self.store = store
        self.connections = dict(connections or {})
        self.project_dir = Path(project_dir) if project_dir is not None else Path(".")
        self.clock = clock or time.time
        self.sleep = sleep or time.sleep
        self.random = random or random_module.random
        self.hook = hook
        self._http, self._transport, self._own_http = http, transport, http is None
        self._ready = False
        self._orgs: dict[str, Any] = {}

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(transport=self._transport, follow_redirects=False)
        return self._http

    def close(self) -> None:
        """Release the HTTP client this runner created."""
        if self._http is not None and self._own_http:
            self._http.close()
            self._http = None

    def org(self, name: str) -> Any:
        """The org connection named ``name`` (a configuration error when there is none)."""
        if name not in self._orgs:
            found = self.connections.get(name)
            if found is None:
                known = ", ".join(sorted(self.connections)) or "none"
                raise SagaDefinitionError(f"saga {self.definition.name!r}: no org connection named {name!r} "
                                          f"(declared: {known})")
            self._orgs[name] = connection_from_config(name, found) if isinstance(found, Mapping) else found
        return self._orgs[name]

    def function(self, reference: str) -> Function:
        """The callable ``module:function`` names: ``<project>/sagas/module.py`` first, else an importable module."""
        module_name, attribute = reference.split(":")
        try:
            if (self.project_dir / "sagas" / f"{module_name}.py").is_file():
                module = import_saga_module(self.project_dir, module_name)
            else:
                module = importlib.import_module(module_name)
        except ImportError as exc:
            raise SagaDefinitionError(f"saga {self.definition.name!r}: cannot import {module_name}: {exc}") from None
        function = getattr(module, attribute, None)
        if not callable(function):
            raise SagaDefinitionError(f"saga {self.definition.name!r}: {reference} is not a function")
        return function  # type: ignore[no-any-return]

    def _ensure_table(self) -> None:
        if not self._ready:
            ensure_saga_table(self.store)
            self._ready = True

    def _preflight(self) -> None:
        """Every connection and function the saga needs exists, so it never half-runs for a configuration typo."""
        self._ensure_table()
        for pair in self.definition.compiled:
            for action in pair:
                if action is not None and action.connection is not None:
                    self.org(action.connection)
                if action is not None and action.function is not None:
                    self.function(action.function)

    # -- public API ----------------------------------------------------------------------------------------

    def get(self, saga_id: str) -> SagaInstance | None:
        """The stored instance ``saga_id`` (of any saga), or None."""
        self._ensure_table()
        return load_saga(self.store, saga_id)

    def start(self, input: Mapping[str, Any], saga_id: str | None = None) -> SagaInstance:
        """Run a new instance with ``input`` as its data; with the id of an existing instance, answer that one
        unchanged (a start is idempotent)."""
        saga_id = saga_id or uuid.uuid4().hex
        if not isinstance(input, Mapping):
            raise SagaError(f"a saga's input is a JSON object, not {type(input).__name__}")
        if len(saga_id) > 255:
            raise SagaError("a saga id has at most 255 characters")
        existing = self.get(saga_id)
        if existing is not None:
            if existing.name != self.definition.name:
                raise SagaError(f"saga id {saga_id!r} is taken by an instance of {existing.name!r}")
            return existing
        self._preflight()
        now = self.clock()
        instance = SagaInstance(id=saga_id, name=self.definition.name, status=RUNNING, step=0,
                                data=decode_json(encode_json(dict(input))), version=1, created_at=now,
                                updated_at=now, step_name=self.definition.steps[0].name)
        try:
            with self.store.transaction() as conn:
                conn.execute(insert(saga_table).values(**self._row(instance), created_at=now))
        except IntegrityError:  # another process started the same id at the same moment
            return self.get(saga_id)  # type: ignore[return-value]
        return self._drive(instance)

    def resume(self, saga_id: str) -> SagaInstance:
        """Continue an interrupted instance: re-run the step in flight (Running), go on compensating
        (Compensating), or retry the compensation that failed (Failed, after a human fixed the cause)."""
        instance = self.get(saga_id)
        if instance is None:
            raise SagaError(f"no saga instance {saga_id!r}")
        if instance.name != self.definition.name:
            raise SagaError(f"saga instance {saga_id!r} is a {instance.name!r}, not a {self.definition.name!r}")
        if instance.status in (COMPLETED, COMPENSATED):
            return instance
        steps = self.definition.steps
        if 0 <= instance.step < len(steps) and instance.step_name not in (None, steps[instance.step].name):
            raise SagaError(f"saga instance {saga_id!r} stopped at step {instance.step_name!r}, which the definition "
                            f"no longer has at position {instance.step}")
        self._preflight()
        if instance.status == FAILED:  # a human fixed the cause: try the failed compensation again
            instance.status = COMPENSATING
            failed = next((entry for entry in reversed(instance.history)
                           if entry["phase"] == "action" and entry["outcome"] == "failed"), None)
            instance.error = f"step {failed['step']} failed: {failed.get('error')}" if failed else None
        return self._drive(instance)

    def resume_all(self) -> list[SagaInstance]:
        """Resume every Running or Compensating instance of this saga (after a restart); answer them."""
        self._ensure_table()
        return [self.resume(found.id) for found in list_sagas(self.store, name=self.definition.name,
                                                                statuses=INTERRUPTED, limit=10_000)]

    # -- the state machine ---------------------------------------------------------------------------------

    def _drive(self, instance: SagaInstance) -> SagaInstance:
        steps = self.definition.steps
        while instance.status == RUNNING and instance.step < len(steps):
            index, step = instance.step, steps[instance.step]
            self._record(instance, step.name, "action", "started")
            action = self.definition.compiled[index][0]
            try:
                result = self._attempt(instance, index, "action", action)
            except _Failed as failure:
                instance.status, instance.step = COMPENSATING, index - 1
                instance.error = f"step {step.name} failed: {failure.error}"
                self._record(instance, step.name, "action", "failed", failure.error, failure.attempts)
                break
            if action.save_as:
                instance.data[action.save_as] = jsonable(result)
            elif isinstance(result, Mapping) and action.kind == "python":
                instance.data.update(jsonable(result))
            instance.step += 1
            if instance.step == len(steps):
                instance.status = COMPLETED
            self._record(instance, step.name, "action", "ok")
        if instance.status == RUNNING:  # resumed past the last step (the definition lost steps since)
            instance.status = COMPLETED
            self._save(instance)
        while instance.status == COMPENSATING:
            if instance.step < 0:
                instance.status = COMPENSATED
                self._save(instance)
                break
            index, step = instance.step, steps[instance.step]
            compensation = self.definition.compiled[index][1]
            if compensation is None:
                instance.step -= 1
                continue
            self._record(instance, step.name, "compensate", "started")
            try:
                self._attempt(instance, index, "compensate", compensation)
            except _Failed as failure:
                instance.status = FAILED
                instance.error = f"compensation of {step.name} failed: {failure.error}" + \
                    (f" (after {instance.error})" if instance.error else "")
                self._record(instance, step.name, "compensate", "failed", failure.error, failure.attempts)
                log.error("saga %s %s needs a human: %s", instance.name, instance.id, instance.error)
                break
            instance.step -= 1
            self._record(instance, step.name, "compensate", "ok")
        return instance

    def _attempt(self, instance: SagaInstance, index: int, phase: str, action: Action) -> Any:
        """Run ``action`` until it succeeds, fails permanently or runs out of attempts (then :class:`_Failed`)."""
        step = self.definition.steps[index]
        policy = self.definition.policy(index)
        key = f"{instance.id}:{step.name}" + (":compensate" if phase == "compensate" else "")
        failures = 0
        while True:
            data = jsonable(instance.data)
            call = Call(self, instance.data, Scope(data, {"sagaId": instance.id, "step": step.name}), key)
            try:
                result = action.run(call)
            except Exception as exc:
                failures += 1
                error = str(exc) or type(exc).__name__
                if not isinstance(exc, RetryableError) and isinstance(exc, PermanentError | PipelineSpecError):
                    raise _Failed(error, failures) from None
                if failures >= policy.attempts:
                    raise _Failed(f"{error} (after {failures} attempts)", failures) from None
                self._record(instance, step.name, phase, "retry", error, failures)
                self.sleep(policy.delay(failures, self.random))
                continue
            if self.hook is not None:
                self.hook(instance, step.name, phase, "executed")
            return result

    def _record(self, instance: SagaInstance, step: str, phase: str, outcome: str, error: str | None = None,
                attempt: int | None = None) -> None:
        entry: dict[str, Any] = {"step": step, "phase": phase, "at": _iso(self.clock()), "outcome": outcome}
        if error is not None:
            entry["error"] = error
        if attempt is not None:
            entry["attempt"] = attempt
        instance.history.append(entry)
        self._save(instance)
        if self.hook is not None:
            self.hook(instance, step, phase, outcome)

    def _row(self, instance: SagaInstance) -> dict[str, Any]:
        steps = self.definition.steps
        instance.step_name = steps[instance.step].name if 0 <= instance.step < len(steps) else None
        return {"id": instance.id, "name": instance.name, "status": instance.status, "step": instance.step,
                "step_name": instance.step_name, "data": encode_json(instance.data),
                "history": encode_json(instance.history), "error": instance.error, "version": instance.version,
                "updated_at": instance.updated_at}

    def _save(self, instance: SagaInstance) -> None:
        """Store ``instance`` if nobody else changed it since it was read (compare-and-set on its version)."""
        expected = instance.version
        instance.version, instance.updated_at = expected + 1, self.clock()
        with self.store.transaction() as conn:
            moved = conn.execute(update(saga_table).where(saga_table.c.id == instance.id,
                                                          saga_table.c.version == expected)
                                 .values(**self._row(instance))).rowcount
        if moved != 1:
            raise SagaConflict(f"saga instance {instance.id!r} was changed by another process; this runner stops")


__all__ = ["COMPENSATED", "COMPENSATING", "COMPLETED", "DEFAULT_RETRY", "FAILED", "INTERRUPTED", "RUNNING",
           "STATUSES", "SagaConflict", "SagaDefinition", "SagaDefinitionError", "SagaError", "SagaInstance",
           "SagaRunner", "SagaStep", "ensure_saga_table", "list_sagas", "load_saga", "load_saga_text", "load_sagas",
           "saga_table"]
