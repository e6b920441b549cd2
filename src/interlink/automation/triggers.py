"""Python triggers: the org's code extension point, run by the one write path.

A project keeps them in ``triggers/*.py``::

    from interlink.automation import trigger

    @trigger("Opportunity", before=["insert", "update"], after=["update"])
    def opportunity_rules(ctx):
        for record, old in ctx.pairs():
            if ctx.is_before and (record["Amount"] or 0) < 0:
                ctx.add_error(record, "Amount can't be negative", field="Amount")
            if ctx.is_after and record["StageName"] == "Closed Won" and old["StageName"] != "Closed Won":
                ctx.insert("Task", [{"Subject": "Kick-off", "WhatId": record["Id"]}])

A trigger is called once per batch with lists (bulk-safe, as on the platform): 200 records from a collections call,
10,000 from a Bulk API batch. Before triggers may change the new values; after triggers see ids and may run more
DML, which joins the same transaction. ``add_error`` rejects a record (``FIELD_CUSTOM_VALIDATION_EXCEPTION``);
an exception escaping the trigger fails every record of the batch with ``CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY``, as
an unhandled Apex exception does. Triggers that keep firing each other stop at a depth of 16.
"""

from __future__ import annotations

import contextvars
import importlib.util
import logging
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interlink.errors import DmlError, InterlinkError, MetadataError
from interlink.metadata.model import FieldDef, ObjectDef, Schema
from interlink.metadata.values import parse_value
from interlink.records.hooks import HookRegistry, Operation, SaveEvent

if TYPE_CHECKING:
    from interlink.records.results import SaveResult
    from interlink.records.service import RecordService
    from interlink.soql.engine import QueryEngine

log = logging.getLogger(__name__)

OPERATIONS: tuple[Operation, ...] = ("insert", "update", "delete", "undelete")
MAX_DEPTH = 16
# How deep triggers and flows are nested in the current transaction (they may fire each other through DML).
automation_depth: contextvars.ContextVar[int] = contextvars.ContextVar("interlink_automation_depth", default=0)


@dataclass(frozen=True)
class TriggerDef:
    """One decorated function: what it fires on, and where it was declared (for messages)."""

    name: str
    object: str
    before: tuple[Operation, ...]
    after: tuple[Operation, ...]
    function: Callable[[TriggerContext], Any]
    source: str


_collecting: list[Any] | None = None


def trigger(object_name: str, *, before: Sequence[str] = (), after: Sequence[str] = (),
            name: str | None = None) -> Callable[[Callable[[TriggerContext], Any]], Callable[[TriggerContext], Any]]:
    """Declare a trigger on ``object_name`` for the ``before`` and ``after`` operations
    (``insert``, ``update``, ``delete``, ``undelete``)."""
    for operation in (*before, *after):
        if operation not in OPERATIONS:
            raise MetadataError(f"trigger on {object_name}: unknown operation {operation!r} "
                                f"(use {', '.join(OPERATIONS)})")
    if not before and not after:
        raise MetadataError(f"trigger on {object_name}: name at least one operation in before= or after=")

    def register(function: Callable[[TriggerContext], Any]) -> Callable[[TriggerContext], Any]:
        code = getattr(function, "__code__", None)
        source = f"{code.co_filename}:{code.co_firstlineno}" if code is not None else repr(function)
        definition = TriggerDef(name or function.__name__, object_name, tuple(before), tuple(after),  # type: ignore[arg-type]
                                function, source)
        if _collecting is not None:
            _collecting.append(definition)
        function.trigger_definition = definition  # type: ignore[attr-defined]
        return function

    return register


def load_triggers(project_dir: Path) -> list[TriggerDef]:
    """Import ``triggers/*.py`` of the project and return the triggers they declare, in file order.

    A file that does not import is a MetadataError naming the file and line.
    """
    return load_code(project_dir / "triggers", "trigger")


def load_code(folder: Path, what: str) -> list[Any]:
    """Import every ``*.py`` of ``folder`` and return what their decorators declared (triggers, actions)."""
    global _collecting
    if not folder.is_dir():
        return []
    found: list[Any] = []
    for path in sorted(folder.glob("*.py")):
        module_name = f"interlink_project_{folder.name}.{path.stem}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        _collecting = []
        try:
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
        except MetadataError as error:
            raise MetadataError(f"{path}: {error.message}") from None
        except Exception as exc:
            frame = next((f for f in reversed(traceback.extract_tb(exc.__traceback__)) if f.filename == str(path)),
                         None)
            line = exc.lineno if isinstance(exc, SyntaxError) else frame.lineno if frame is not None else None
            detail = exc.msg if isinstance(exc, SyntaxError) else str(exc)
            where = f"{path}:{line}" if line else str(path)
            raise MetadataError(f"{where}: the {what} file does not load: {type(exc).__name__}: {detail}") from None
        finally:
            found.extend(_collecting or [])
            _collecting = None
    return found


@dataclass(frozen=True)
class ActionDef:
    """A Python action flows can call (``python: {action: NAME, inputs: {...}}``)."""

    name: str
    function: Callable[..., Any]
    source: str


def action(name: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a Python action in ``actions/*.py``: ``fn(ctx, inputs) -> list of field values per record | None``."""

    def register(function: Callable[..., Any]) -> Callable[..., Any]:
        code = getattr(function, "__code__", None)
        source = f"{code.co_filename}:{code.co_firstlineno}" if code is not None else repr(function)
        definition = ActionDef(name or function.__name__, function, source)
        if _collecting is not None:
            _collecting.append(definition)
        return function

    return register


class TriggerRecord(Mapping[str, Any]):
    """A record as a trigger sees it: fields by name (any case); writable in before triggers only."""

    __slots__ = ("_obj", "_values", "_writable")

    def __init__(self, obj: ObjectDef, values: dict[str, Any], writable: bool) -> None:
        self._obj = obj
        self._values = values
        self._writable = writable

    def _field(self, name: str) -> FieldDef:
        fdef = self._obj.field(name)
        if fdef is None:
            raise KeyError(f"{self._obj.name} has no field {name}")
        return fdef

    def __getitem__(self, name: str) -> Any:
        return self._values.get(self._field(name).name)

    def __setitem__(self, name: str, value: Any) -> None:
        fdef = self._field(name)
        if not self._writable:
            raise TypeError(f"{self._obj.name}.{fdef.name}: records are read-only in after triggers; change them in "
                            "a before trigger, or update them with ctx.update()")
        if fdef.is_system:
            raise TypeError(f"{self._obj.name}.{fdef.name} is a system field and cannot be changed")
        self._values[fdef.name] = _coerce(fdef, value)

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"TriggerRecord({self._obj.name}, {self._values!r})"


def _coerce(fdef: FieldDef, value: Any) -> Any:
    """A value a trigger assigned, checked like any incoming value (Python dates and numbers are taken as they are)."""
    if isinstance(value, datetime | date | time) and not isinstance(value, bool):
        return value
    return parse_value(fdef, value)


class TriggerContext:
    """What a trigger is called with: the batch, its phase, and the means to act (DML, queries, events)."""

    def __init__(self, runtime: TriggerRuntime, definition: TriggerDef | ActionDef, event: SaveEvent,
                 before: bool) -> None:
        self._runtime = runtime
        self._event = event
        self.trigger = definition.name
        self.object = event.object.name
        self.operation: Operation = event.operation
        self.is_before = before
        self.is_after = not before
        self.user_id = event.context.user_id
        writable = before and event.operation in ("insert", "update")
        self.new = [TriggerRecord(event.object, values, writable) for values in event.new]
        self.old: list[TriggerRecord | None] = [
            None if values is None else TriggerRecord(event.object, values, False) for values in event.old]

    def pairs(self) -> Iterator[tuple[TriggerRecord, TriggerRecord | None]]:
        """(new, old) for each record of the batch."""
        return zip(self.new, self.old, strict=True)

    def add_error(self, record: TriggerRecord | int, message: str, field: str | None = None) -> None:
        """Reject ``record`` (or the record at that index): it fails with FIELD_CUSTOM_VALIDATION_EXCEPTION."""
        index = record if isinstance(record, int) else next(
            (i for i, candidate in enumerate(self.new) if candidate is record), None)
        if index is None or not 0 <= index < len(self.new):
            raise ValueError("add_error takes a record of this batch (or its index)")
        fdef = self._event.object.field(field) if field else None
        self._event.add_error(index, message, fdef.name if fdef is not None else field)

    def changed(self, record: TriggerRecord | int, field: str) -> bool:
        """ISCHANGED: whether ``field`` differs from its value before this update (False on insert)."""
        index = record if isinstance(record, int) else self.new.index(record)  # type: ignore[arg-type]
        old = self.old[index]
        return old is not None and old[field] != self.new[index][field]

    # -- acting --------------------------------------------------------------------------------------------

    def insert(self, object_name: str, records: Sequence[dict[str, Any]]) -> list[str]:
        """Create records in this transaction; returns their ids. Any failure raises (and fails this batch)."""
        return self._dml(self._runtime.records.create(self._context(), object_name, list(records), all_or_none=True))

    def update(self, object_name: str, records: Sequence[dict[str, Any]]) -> list[str]:
        """Update records (each with an ``Id``) in this transaction."""
        return self._dml(self._runtime.records.update(self._context(), object_name, list(records), all_or_none=True))

    def delete(self, record_ids: Sequence[str]) -> None:
        """Delete records in this transaction."""
        self._dml(self._runtime.records.delete(self._context(), list(record_ids), all_or_none=True))

    def publish(self, event_name: str, values: dict[str, Any] | Sequence[dict[str, Any]]) -> None:
        """Publish platform events (publish-after-commit events wait for this transaction)."""
        batch = [values] if isinstance(values, dict) else list(values)
        self._dml(self._runtime.records.create(self._context(), event_name, batch, all_or_none=True))

    def callout(self, credential: str, method: str, path: str, *, json: Any = None,
                headers: dict[str, str] | None = None, record: TriggerRecord | None = None,
                on_success: dict[str, str] | None = None, wait: bool = False) -> str:
        """Queue an asynchronous callout through a named credential; it is sent after this transaction commits.

        With ``record`` and ``on_success`` ({field: response path}), the response's values are stored on that
        record (Request and Reply). Returns the callout's id.
        """
        if wait:  # the platform's rule: a save never waits on a remote system
            raise CalloutException("Callout from triggers are currently not supported.")
        queue = self._runtime.services.get("callouts")
        if queue is None:
            raise RuntimeError("callouts are not available in this org")
        uow = self._event.uow
        return str(queue.enqueue(uow.conn, uow.counters, self._event.context, credential=credential, method=method,
                                 path=path, body=json, headers=headers, source=f"trigger {self.trigger}",
                                 object_name=self.object if record is not None else None,
                                 record_id=record["Id"] if record is not None else None, on_success=on_success))

    def query(self, soql: str) -> list[dict[str, Any]]:
        """Run SOQL in this transaction (it sees the batch's own writes)."""
        page = self._runtime.query.execute(soql, self._context(), batch_size=2000)
        records = list(page.records)
        while not page.done and page.locator is not None:
            page = self._runtime.query.fetch_more(page.locator, self._context())
            records.extend(page.records)
        return records

    def _context(self) -> Any:
        return self._event.context.without_permissions()  # triggers run in system context, as Apex does

    @staticmethod
    def _dml(results: list[SaveResult]) -> list[str]:
        for result in results:
            if result.errors:
                error = result.errors[0]
                raise TriggerDmlError(f"{error.error_code}: {error.message}")
        return [result.id or "" for result in results]


class CalloutException(Exception):
    """A callout the platform would refuse (``System.CalloutException``), such as a synchronous one in a trigger."""


class TriggerDmlError(Exception):
    """DML a trigger ran failed (as an Apex DmlException would, it fails the trigger's batch unless caught)."""


class TriggerRuntime:
    """Installs a project's triggers as hooks of the write path."""

    def __init__(self, hooks: HookRegistry, records: RecordService, query: QueryEngine) -> None:
        self.hooks = hooks
        self.records = records
        self.query = query
        self.triggers: list[TriggerDef] = []
        self._installed: list[Callable[[SaveEvent], None]] = []
        # Services of lower layers the org wires in for triggers to use (``callouts``).
        self.services: dict[str, Any] = {}

    def install(self, triggers: list[TriggerDef], schema: Schema) -> None:
        """Replace the installed triggers with ``triggers`` (checked against ``schema``)."""
        for definition in triggers:
            obj = schema.object(definition.object)
            if obj is None or obj.is_event:
                raise MetadataError(f"{definition.source}: trigger {definition.name} is on {definition.object}, "
                                    "which is not an object of this org")
            if obj.is_external:
                raise MetadataError(f"{definition.source}: trigger {definition.name} is on {obj.name}, an external "
                                    "object: triggers run on records the org stores")
        for hook in self._installed:
            self.hooks.unregister(hook)
        self._installed = []
        for definition in triggers:
            obj = schema.object(definition.object)
            assert obj is not None
            for phase, operations, before in (("before_save", definition.before, True),
                                              ("after_save", definition.after, False)):
                if operations:
                    hook = self._hook(definition, before)
                    self.hooks.register(phase, hook, objects=[obj.name], operations=list(operations))  # type: ignore[arg-type]
                    self._installed.append(hook)
        self.triggers = list(triggers)

    def _hook(self, definition: TriggerDef, before: bool) -> Callable[[SaveEvent], None]:
        def run(event: SaveEvent) -> None:
            if not event.new:
                return
            depth = automation_depth.get()
            if depth >= MAX_DEPTH:
                for index in range(len(event.new)):
                    event.errors.setdefault(index, []).append(DmlError(
                        f"{definition.name}: maximum trigger depth exceeded", [],
                        error_code="CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY"))
                return
            token = automation_depth.set(depth + 1)
            try:
                definition.function(TriggerContext(self, definition, event, before))
            except Exception as exc:
                what = f"{'Before' if before else 'After'}{event.operation.capitalize()}"
                detail = exc.message if isinstance(exc, InterlinkError) else str(exc)
                log.info("trigger %s failed: %s", definition.name, detail, exc_info=not isinstance(
                    exc, TriggerDmlError))
                for index in range(len(event.new)):
                    event.errors.setdefault(index, []).append(DmlError(
                        f"{definition.name}: execution of {what} caused by: {type(exc).__name__}: {detail}", [],
                        error_code="CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY"))
            finally:
                automation_depth.reset(token)

        return run


__all__ = [
    "MAX_DEPTH",
    "TriggerContext",
    "TriggerDef",
    "TriggerDmlError",
    "TriggerRecord",
    "TriggerRuntime",
    "automation_depth",
    "load_triggers",
    "trigger",
]
