"""Record-triggered flows declared in ``metadata/flows/*.yaml``, run by the one write path.

::

    name: Closed_Won_Order_Request          # defaults to the file name
    object: Opportunity
    trigger: update                         # create | update | create_or_update | delete
    timing: after                           # before (fast field updates) | after (default)
    condition: "StageName = 'Closed Won'"   # a SOQL condition on the record, evaluated in memory
    changed: [StageName]                    # only when one of these fields changed (ISCHANGED)
    when: changed_to_meet                   # every_time (default) | changed_to_meet: not met before the update
    actions:
      - update: {Rating: Hot}               # the triggering record ($Record)
      - update: {object: Case, id: "{!$Record.CaseId__c}", values: {Status: Working}}   # another record, by id
      - create: {object: Task, values: {Subject: "Follow up {!$Record.Name}", WhatId: "{!$Record.Id}"}}
      - publish: {event: Order_Request__e, values: {Opportunity_Id__c: "{!$Record.Id}"}}
    fault:                                  # instead of failing the save when an action fails
      - create: {object: Integration_Error__c, values: {Message__c: "{!$Flow.FaultMessage}"}}

Merge fields: ``{!$Record.Field}``, ``{!$Record__Prior.Field}`` (the value before the update), ``{!$User.Id}``,
``{!$Flow.CurrentDateTime}`` and, in fault actions, ``{!$Flow.FaultMessage}``. A value that is one merge field
keeps its type; inside text it is written as text.

Actions run bulkified, as the platform does: one DML call per action for every record of the batch that meets
the entry conditions. A before-save flow may only ``update`` the triggering record (the platform's rule), and
does so without another DML. When an action fails and the flow has no fault path, the records fail with
``CANNOT_EXECUTE_FLOW_TRIGGER``; with a fault path, the fault actions run and the save goes on.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interlink.automation.triggers import MAX_DEPTH, automation_depth
from interlink.errors import DmlError, InterlinkError, MetadataError
from interlink.metadata.model import ObjectDef, Schema
from interlink.metadata.values import format_datetime, parse_value, to_wire
from interlink.records.hooks import HookRegistry, Operation, SaveEvent
from interlink.soql import ast
from interlink.soql.memory import check_condition_fields, evaluate, parse_condition

if TYPE_CHECKING:
    from interlink.records.service import RecordService

TRIGGERS: dict[str, tuple[Operation, ...]] = {
    "create": ("insert",), "update": ("update",), "create_or_update": ("insert", "update"), "delete": ("delete",),
    "event": (),  # a platform event published on the object's channel
    "schedule": (),  # a cron schedule: the records meeting the condition
    "api": ()}  # invoked over REST (an autolaunched flow): POST actions/custom/flow/NAME
ACTIONS = ("update", "create", "publish", "decision", "loop")
MAX_CALLOUT_MS = 120_000
_MERGE = re.compile(r"\{!\s*\$(Record__Prior|Record|User|Flow|Item)\.([A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*)\s*\}")
_KEYS = {"name", "object", "trigger", "timing", "condition", "changed", "when", "actions", "fault", "description",
         "active", "schedule"}


@dataclass(frozen=True)
class ActionKind:
    """An action kind another layer adds (callouts add ``callout``).

    ``check(where, spec, obj)`` refuses a bad spec with MetadataError when flows load; ``run(event, indexes, specs,
    flow)`` runs it for those records of the batch (specs with merge fields filled in) and returns
    {record index: failure message}.
    """

    check: Callable[[str, dict[str, Any], ObjectDef], None]
    run: Callable[[SaveEvent, list[int], list[dict[str, Any]], str], dict[int, str]]
    # In a flow invoked over REST (``trigger: api``) a callout waits for its answer: ``call(spec, context)`` sends
    # it as the context's user and returns the JSON answer (errors raise); the flow stores ``on_success`` values
    # in the same transaction.
    call: Callable[[dict[str, Any], Any], Any] | None = None


@dataclass(frozen=True)
class Action:
    kind: str  # update | create | publish | decision | an added kind (callout, ...)
    target: str | None  # the object or event created / published
    values: Mapping[str, Any]
    # decision: (condition, or None for otherwise; the branch's actions), tried in order, per record
    branches: tuple[tuple[ast.Condition | None, tuple[Action, ...]], ...] = ()
    # update of another record (``update: {object, id, values}``): the id, usually a merge field
    record_id: Any = None
    loop: Any = None  # loop: the LoopDef (interlink.automation.loops)


@dataclass(frozen=True)
class FlowDef:
    """One record-triggered flow, validated against the schema."""

    name: str
    object: str
    operations: tuple[Operation, ...]
    before: bool
    condition: ast.Condition | None
    changed: tuple[str, ...]
    changed_to_meet: bool
    actions: tuple[Action, ...]
    fault: tuple[Action, ...]
    source: str
    active: bool = True
    kind: str = "record"  # record (a save) | event (a platform event) | schedule (cron)
    schedule: str | None = None
    condition_text: str | None = None  # the condition as written (scheduled flows query with it)

    @property
    def event(self) -> bool:
        """Triggered by platform events (``trigger: event``) rather than by saves."""
        return self.kind == "event"


def load_flows(project_dir: Path, schema: Schema, *, include_sample: bool = False,
               kinds: Mapping[str, ActionKind] | None = None) -> list[FlowDef]:
    """Read and check ``metadata/flows/*.yaml`` (and the sample org's flows); errors name the file and the key."""
    from interlink.metadata.loader import SAMPLE_DIR, read_yaml_files

    flows: list[FlowDef] = []
    names: dict[str, str] = {}
    files = read_yaml_files(SAMPLE_DIR / "flows") if include_sample else []
    for path, data in [*files, *read_yaml_files(project_dir / "metadata" / "flows")]:
        flow = _flow(str(path), path.stem, data, schema, kinds or {})
        if flow.name.lower() in names:
            raise MetadataError(f"{path}: flow {flow.name} is already defined in {names[flow.name.lower()]}")
        names[flow.name.lower()] = str(path)
        flows.append(flow)
    return flows


def _flow(source: str, stem: str, data: Any, schema: Schema, kinds: Mapping[str, ActionKind]) -> FlowDef:
    if not isinstance(data, dict):
        raise MetadataError(f"{source}: a flow file holds a mapping (object, trigger, actions, ...)")
    unknown = set(data) - _KEYS
    if unknown:
        raise MetadataError(f"{source}: unknown key(s) {', '.join(sorted(unknown))} "
                            f"(flows take {', '.join(sorted(_KEYS))})")
    trigger = data.get("trigger")
    if trigger not in TRIGGERS:
        raise MetadataError(f"{source}: trigger: use one of {', '.join(TRIGGERS)} (not {trigger!r})")
    obj = schema.object(str(data.get("object") or ""))
    if obj is None or obj.is_event != (trigger == "event"):
        what = "a platform event" if trigger == "event" else "an object"
        raise MetadataError(f"{source}: object: {data.get('object')!r} is not {what} of this org")
    if obj.is_external:
        raise MetadataError(f"{source}: object: {obj.name} is an external object: flows run on records the org "
                            "stores")
    if trigger in ("event", "schedule", "api") and data.get("timing", "after") != "after":
        raise MetadataError(f"{source}: timing: only record-triggered flows run before the save")
    schedule = data.get("schedule")
    if trigger == "schedule":
        from croniter import croniter

        if not isinstance(schedule, str) or not croniter.is_valid(schedule):
            raise MetadataError(f"{source}: schedule: a cron expression such as \"0 2 * * *\" (UTC)")
    elif schedule is not None:
        raise MetadataError(f"{source}: schedule applies to trigger: schedule")
    timing = data.get("timing", "after")
    if timing not in ("before", "after"):
        raise MetadataError(f"{source}: timing: use before or after (not {timing!r})")
    condition = None
    if data.get("condition") is not None:
        if not isinstance(data["condition"], str) or not data["condition"].strip():
            raise MetadataError(f"{source}: condition: a SOQL condition such as \"StageName = 'Closed Won'\"")
        condition = parse_condition(obj.name, data["condition"], "condition")
        check_condition_fields(obj, condition, f"{source}: condition")
    changed = data.get("changed") or []
    if not isinstance(changed, list) or any(not isinstance(f, str) or obj.field(f) is None for f in changed):
        raise MetadataError(f"{source}: changed: list fields of {obj.name}")
    when = data.get("when", "every_time")
    if when not in ("every_time", "changed_to_meet"):
        raise MetadataError(f"{source}: when: use every_time or changed_to_meet (not {when!r})")
    if (changed or when == "changed_to_meet") and trigger not in ("update", "create_or_update"):
        raise MetadataError(f"{source}: changed and when: changed_to_meet apply to update triggers")
    api = trigger == "api"
    actions = _actions(source, "actions", data.get("actions"), obj, schema, kinds, before=timing == "before",
                       api=api)
    if not actions:
        raise MetadataError(f"{source}: actions: a flow needs at least one action")
    fault = _actions(source, "fault", data.get("fault") or [], obj, schema, kinds, before=timing == "before",
                     api=api)
    kind = trigger if trigger in ("event", "schedule", "api") else "record"
    if kind == "api":
        _check_callouts_first(source, actions, kinds)
    return FlowDef(str(data.get("name") or stem), obj.name, TRIGGERS[trigger], timing == "before", condition,
                   tuple(obj.field(f).name for f in changed), when == "changed_to_meet", tuple(actions),  # type: ignore[union-attr]
                   tuple(fault), source, bool(data.get("active", True)), kind, schedule,
                   data.get("condition"))


def _actions(source: str, key: str, raw: Any, obj: ObjectDef, schema: Schema, kinds: Mapping[str, ActionKind], *,
             before: bool, item: ObjectDef | None = None, api: bool = False,
             outputs: set[str] | None = None) -> list[Action]:
    """The actions of a flow (or of a branch, or of a loop when ``item`` is the loop's items' object)."""
    from interlink.automation.loops import is_json_item, parse_loop

    names = (*ACTIONS, *kinds)
    outputs = set() if outputs is None else outputs  # names of an API flow's callouts (their answers)
    if not isinstance(raw, list):
        raise MetadataError(f"{source}: {key}: a list of actions ({', '.join(names)})")
    actions: list[Action] = []
    for number, entry in enumerate(raw, start=1):
        where = f"{source}: {key}[{number}]"
        if not isinstance(entry, dict) or len(entry) != 1 or next(iter(entry)) not in names:
            raise MetadataError(f"{where}: an action is one of {', '.join(names)} with its settings")
        kind, spec = next(iter(entry.items()))
        other_record = kind == "update" and _updates_another_record(spec)
        if item is not None and (kind == "loop" or (kind == "update" and not other_record)):
            raise MetadataError(f"{where}: inside a loop, update records by id (update: {{object, id: "
                                "\"{!$Item.Id}\", values}}); loops do not nest" if kind == "update" else
                                f"{where}: loops do not nest")
        if kind == "loop":
            loop = parse_loop(where, key, spec, obj, schema, kinds, _actions, api=api, outputs=outputs)
            actions.append(Action("loop", None, {}, loop=loop))
            continue
        if before and (kind not in ("update", "decision") or other_record):
            raise MetadataError(f"{where}: a before-save flow can only update the triggering record")
        if obj.is_event and (kind == "outbound_message" or (kind == "update" and not other_record)):
            raise MetadataError(f"{where}: an event-triggered flow has no record to {kind.replace('_', ' ')}; "
                                "create records, update one by id (update: {object, id, values}), publish or "
                                "call out instead")
        if kind == "decision":
            actions.append(_decision(where, key, spec, item or obj, schema, kinds, before=before, record=obj,
                                     api=api, outputs=outputs))
            continue
        if kind in kinds:
            if not isinstance(spec, dict):
                raise MetadataError(f"{where}: {kind} takes a mapping of settings")
            kinds[kind].check(where, spec, obj if item is None or is_json_item(item) else item)
            _check_merge_fields(where, spec, obj, fault=key == "fault", schema=schema, item=item)
            if spec.get("name") is not None and kinds[kind].call is not None:
                outputs.add(str(spec["name"]))
            actions.append(Action(kind, None, dict(spec)))
            continue
        record_id = None
        if other_record:
            target = spec["object"]
            target_obj = schema.object(str(target or ""))
            if target_obj is None or target_obj.is_event or target_obj.is_external:
                raise MetadataError(f"{where}: {target!r} is not an object of this org whose records it stores")
            record_id = spec["id"]
            if not isinstance(record_id, str) or not record_id.strip():
                raise MetadataError(f"{where}: id: the record's id, such as \"{{!$Record.CaseId__c}}\"")
            _check_merge_fields(f"{where}: id", record_id, obj, fault=key == "fault", schema=schema, item=item)
            values = spec["values"]
        elif kind == "update":
            values = spec
            target_obj = obj
            target = None
        else:
            if not isinstance(spec, dict) or set(spec) - {"object", "event", "values"}:
                raise MetadataError(f"{where}: {kind} takes {'object' if kind == 'create' else 'event'} and values")
            target = spec.get("object" if kind == "create" else "event")
            target_obj = schema.object(str(target or ""))
            if target_obj is None or target_obj.is_event != (kind == "publish"):
                what = "a platform event" if kind == "publish" else "an object"
                raise MetadataError(f"{where}: {target!r} is not {what} of this org")
            values = spec.get("values") or {}
        if not isinstance(values, dict) or not values:
            raise MetadataError(f"{where}: values: a mapping of field to value")
        for name, value in values.items():
            if target_obj.field(str(name)) is None:
                raise MetadataError(f"{where}: {target_obj.name} has no field {name}")
            _check_merge_fields(f"{where}: {name}", value, obj, fault=key == "fault", schema=schema, item=item)
        actions.append(Action(kind, target_obj.name if kind != "update" or other_record else None, dict(values),
                              record_id=record_id))
    return actions


def _updates_another_record(spec: Any) -> bool:
    """``update: {object: Case, id: "{!$Record.CaseId__c}", values: {...}}`` rather than field values of $Record."""
    return isinstance(spec, dict) and set(spec) == {"object", "id", "values"}


def _decision(where: str, key: str, spec: Any, obj: ObjectDef, schema: Schema, kinds: Mapping[str, ActionKind], *,
              before: bool, record: ObjectDef | None = None, api: bool = False,
              outputs: set[str] | None = None) -> Action:
    """``decision: [{when: CONDITION, actions: [...]}, ..., {otherwise: [...]}]``: the first branch a record meets.

    In a loop, ``obj`` is the items' object (conditions are on the item) and ``record`` the flow's."""
    flow_obj = record or obj
    item = obj if record is not None and record is not obj else None

    def branch_actions(at: str, raw: Any) -> tuple[Action, ...]:
        return tuple(_actions(at, key, raw, flow_obj, schema, kinds, before=before, item=item, api=api,
                              outputs=outputs))

    if not isinstance(spec, list) or not spec:
        raise MetadataError(f"{where}: decision takes a list of branches ({{when, actions}} and a last {{otherwise}})")
    branches: list[tuple[ast.Condition | None, tuple[Action, ...]]] = []
    for number, branch in enumerate(spec, start=1):
        at = f"{where}.decision[{number}]"
        if isinstance(branch, dict) and set(branch) == {"otherwise"} and number == len(spec):
            branches.append((None, branch_actions(at, branch["otherwise"])))
            continue
        if not isinstance(branch, dict) or set(branch) != {"when", "actions"} or not isinstance(branch["when"], str):
            raise MetadataError(f"{at}: a branch is {{when: CONDITION, actions: [...]}}; otherwise comes last")
        condition = parse_condition(obj.name, branch["when"], "decision")
        check_condition_fields(obj, condition, at)
        branches.append((condition, branch_actions(at, branch["actions"])))
    return Action("decision", None, {}, tuple(branches))


def _check_callouts_first(source: str, actions: list[Action], kinds: Mapping[str, ActionKind]) -> None:
    """The platform's rule for synchronous callouts: none after a change in the same transaction
    ("You have uncommitted work pending")."""
    changed = False
    for number, action in enumerate(actions, start=1):
        waits = action.kind in kinds and kinds[action.kind].call is not None
        if waits and changed:
            raise MetadataError(f"{source}: actions[{number}]: a callout must come before any change in an API "
                                "flow (the platform refuses a callout with uncommitted work pending)")
        changed = changed or not waits


def _check_parent_path(obj: ObjectDef, path: str, schema: Schema | None) -> str | None:
    """Why ``Account.Owner.Name`` is not a path from ``obj`` through lookups to a field, or None when it is."""
    *relations, last = path.split(".")
    current = obj
    for relation in relations:
        reference = current.relationship(relation)
        target = schema.object(reference.reference_to[0]) if reference is not None and schema is not None else None
        if reference is None or target is None:
            return f"{current.name} has no relationship {relation}"
        current = target
    return None if current.field(last) is not None else f"{current.name} has no field {last}"


def _check_merge_fields(where: str, value: Any, obj: ObjectDef, *, fault: bool, schema: Schema | None = None,
                        item: ObjectDef | None = None) -> None:
    from interlink.automation.loops import is_json_item

    if isinstance(value, dict | list):
        for entry in value.values() if isinstance(value, dict) else value:
            _check_merge_fields(where, entry, obj, fault=fault, schema=schema, item=item)
        return
    if not isinstance(value, str):
        return
    for scope, name in _MERGE.findall(value):
        if scope == "Item":
            if item is None:
                raise MetadataError(f"{where}: {{!$Item.{name}}}: $Item is the current item of a loop")
            problem = None if is_json_item(item) else _check_parent_path(item, name, schema)
            if problem:
                raise MetadataError(f"{where}: {{!$Item.{name}}}: {problem}")
            continue
        if scope in ("Record", "Record__Prior") and "." in name:
            problem = _check_parent_path(obj, name, schema)
            if problem:
                raise MetadataError(f"{where}: {{!${scope}.{name}}}: {problem}")
            continue
        if scope in ("Record", "Record__Prior") and obj.field(name) is None:
            raise MetadataError(f"{where}: {{!${scope}.{name}}}: {obj.name} has no field {name}")
        if scope == "User" and name.lower() != "id":
            raise MetadataError(f"{where}: {{!$User.{name}}}: only $User.Id is available")
        if scope == "Flow" and name not in ("CurrentDateTime", *(("FaultMessage",) if fault else ())):
            raise MetadataError(f"{where}: {{!$Flow.{name}}}: use $Flow.CurrentDateTime (and $Flow.FaultMessage in "
                                "fault actions)")
    if "{!" in value.replace("{!$", ""):
        raise MetadataError(f"{where}: merge fields look like {{!$Record.Field}}")


# -- running -------------------------------------------------------------------------------------------------


@dataclass
class _Run:
    """The records of one batch a flow runs for, and what happened to each."""

    indexes: list[int]
    failed: dict[int, str] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)  # an API flow's named callouts: their answers


@dataclass
class _LoopBatch(SaveEvent):
    """The items of a loop, for every record of the batch that reached it, run as one batch of nested actions:
    ``new`` holds the items; ``parents[i]`` is the index in ``parent`` of the record item ``i`` belongs to."""

    parent: SaveEvent | None = None
    parents: list[int] = field(default_factory=list)


class FlowRuntime:
    """Installs flows as hooks of the write path and runs their actions."""

    def __init__(self, hooks: HookRegistry, records: RecordService,
                 kinds: Mapping[str, ActionKind] | None = None) -> None:
        self.hooks = hooks
        self.records = records
        self.kinds: dict[str, ActionKind] = dict(kinds or {})
        self.flows: list[FlowDef] = []
        self._installed: list[Callable[[SaveEvent], None]] = []
        self.query: Any = None  # the org's QueryEngine (loops query through it); one is made when not given

    def install(self, flows: list[FlowDef]) -> None:
        for hook in self._installed:
            self.hooks.unregister(hook)
        self._installed = []
        for flow in flows:
            if not flow.active or flow.kind != "record":
                continue
            hook = self._hook(flow)
            self.hooks.register("before_save" if flow.before else "after_save", hook, objects=[flow.object],
                                operations=list(flow.operations), first=flow.before)
            self._installed.append(hook)
        self.flows = list(flows)

    @property
    def event_flows(self) -> list[FlowDef]:
        return [flow for flow in self.flows if flow.active and flow.kind == "event"]

    @property
    def scheduled_flows(self) -> list[FlowDef]:
        return [flow for flow in self.flows if flow.active and flow.kind == "schedule"]

    def api_flow(self, name: str) -> FlowDef | None:
        return next((f for f in self.flows if f.kind == "api" and f.active and f.name.lower() == name.lower()), None)

    def invoke(self, flow: FlowDef, context: Any, record_id: str | None) -> None:
        """Run an API flow for one record, in one transaction: its callouts wait for their answers and store
        ``on_success`` values; any failure rolls everything back and raises FlowFailed."""
        obj = self.records.store.schema.object(flow.object)
        assert obj is not None
        row: dict[str, Any] = {}
        if record_id is not None:
            (found,) = self.records.retrieve(obj.name, [record_id])
            if found is None:
                raise FlowFailed(f"{flow.name}: there is no {obj.name} {record_id}")
            row = found
        with self.records.unit_of_work(context) as uow:
            event = SaveEvent("update", obj, [row], [dict(row)], context, uow)
            if flow.condition is not None and not evaluate(flow.condition, row):
                return
            run = _Run([0])
            self._invoke_actions(flow, event, flow.actions, run)
            if run.failed:
                raise FlowFailed(f"{flow.name}: {run.failed[0]}")

    def _invoke_actions(self, flow: FlowDef, event: SaveEvent, actions: tuple[Action, ...], run: _Run) -> None:
        for action in actions:
            if run.failed:
                return
            kind = self.kinds.get(action.kind)
            if action.kind == "decision":
                branch = next((acts for condition, acts in action.branches
                               if condition is None or evaluate(condition, event.new[0])), ())
                self._invoke_actions(flow, event, branch, run)
            elif action.kind == "loop":
                self._loop(flow, event, action, [0], run, None)
            elif kind is not None and kind.call is not None:
                self._call(flow, event, action, kind, run)
            else:
                self._action(flow, event, action, [0], run)

    def _call(self, flow: FlowDef, event: SaveEvent, action: Action, kind: ActionKind, run: _Run) -> None:
        assert kind.call is not None
        counters = event.uow.counters
        started = time.perf_counter()
        try:
            spec = _merge_all(action.values, event, 0, "", self.records)
            answer = kind.call(spec, event.context)
        except InterlinkError as error:
            run.failed[0] = error.message
            return
        finally:
            counters["callout_ms"] = counters.get("callout_ms", 0) + int((time.perf_counter() - started) * 1000)
        if counters["callout_ms"] > MAX_CALLOUT_MS:  # the platform's limit on callout time in one transaction
            run.failed[0] = f"Maximum callout time exceeded: {counters['callout_ms']} ms (the limit is 120 s)"
            return
        if spec.get("name"):
            run.outputs[str(spec["name"])] = answer
        mapping = spec.get("on_success") or {}
        if mapping and event.new[0].get("Id"):
            values = {name: response_value(answer, str(path)) for name, path in mapping.items()}
            (result,) = self.records.update(event.context.without_permissions(), event.object.name,
                                            [{**values, "Id": event.new[0]["Id"]}])
            if result.errors:
                run.failed[0] = f"{result.errors[0].error_code}: {result.errors[0].message}"
            else:
                event.new[0].update(values)

    def run_for(self, flow: FlowDef, event: SaveEvent) -> None:
        """Run ``flow`` for the records (or events) of ``event`` that meet its entry conditions."""
        chosen = [i for i in range(len(event.new)) if _enters(flow, event, i)]
        if chosen:
            self._run(flow, event, _Run(chosen))

    def _hook(self, flow: FlowDef) -> Callable[[SaveEvent], None]:
        def run(event: SaveEvent) -> None:
            chosen = [i for i in range(len(event.new)) if i not in event.errors and _enters(flow, event, i)]
            if not chosen:
                return
            depth = automation_depth.get()
            if depth >= MAX_DEPTH:  # flows and triggers that keep firing each other
                for index in chosen:
                    _fail(flow, event, index, "maximum trigger depth exceeded")
                return
            token = automation_depth.set(depth + 1)
            try:
                self._run(flow, event, _Run(chosen))
            finally:
                automation_depth.reset(token)

        return run

    def _run(self, flow: FlowDef, event: SaveEvent, run: _Run) -> None:
        self._run_actions(flow, event, flow.actions, run.indexes, run)
        if not run.failed:
            return
        if flow.fault:
            faults = sorted(run.failed)
            fault_run = _Run(faults)
            self._run_actions(flow, event, flow.fault, faults, fault_run, run.failed)
            for index, message in fault_run.failed.items():  # the fault path failed too
                _fail(flow, event, index, message)
            return
        for index, message in run.failed.items():
            _fail(flow, event, index, message)

    def _run_actions(self, flow: FlowDef, event: SaveEvent, actions: tuple[Action, ...], indexes: list[int],
                     run: _Run, fault_messages: Mapping[int, str] | None = None) -> None:
        for action in actions:
            live = [i for i in indexes if i not in run.failed]
            if not live:
                return
            if action.kind == "decision":
                self._decide(flow, event, action, live, run, fault_messages)
            elif action.kind == "loop":
                self._loop(flow, event, action, live, run, fault_messages)
            else:
                self._action(flow, event, action, live, run, fault_messages=fault_messages)

    def _decide(self, flow: FlowDef, event: SaveEvent, action: Action, indexes: list[int], run: _Run,
                fault_messages: Mapping[int, str] | None) -> None:
        """Each record takes the first branch whose condition it meets (or otherwise)."""
        remaining = list(indexes)
        for condition, actions in action.branches:
            taken = [i for i in remaining if condition is None or evaluate(condition, event.new[i])]
            remaining = [i for i in remaining if i not in taken]
            if taken:
                self._run_actions(flow, event, actions, taken, run, fault_messages)

    def _loop(self, flow: FlowDef, event: SaveEvent, action: Action, indexes: list[int], run: _Run,
              fault_messages: Mapping[int, str] | None) -> None:
        """Run a loop's actions for the items of every record in ``indexes``: each nested action once for all
        of them (bulk-safe); an item's failure fails its record."""
        from interlink.automation.loops import count

        loop = action.loop
        try:
            items = self._loop_items(loop, event, indexes, run)
            parents = [index for index in indexes for _item in items.get(index, ())]
            rows = [item for index in indexes for item in items.get(index, ())]
            count(event.uow.counters, "loop_items", len(rows))
        except InterlinkError as error:
            run.failed.update({i: f"{loop.name}: {error.message}" for i in indexes})
            return
        if not rows:
            return
        item_obj = self.records.store.schema.object(loop.item_object) if loop.item_object else _json_item()
        assert item_obj is not None
        batch = _LoopBatch(event.operation, item_obj, rows, [None] * len(rows), event.context, event.uow,
                           parent=event, parents=parents)
        inner = _Run(list(range(len(rows))), outputs=run.outputs)
        messages = {position: (fault_messages or {}).get(parent, "") for position, parent in enumerate(parents)}
        for nested in loop.actions:
            live = [position for position, parent in enumerate(parents) if parent not in run.failed]
            if not live:
                return
            self._run_actions(flow, batch, (nested,), live, inner, messages)
            for position, message in sorted(inner.failed.items()):
                run.failed.setdefault(parents[position], message)

    def _loop_items(self, loop: Any, event: SaveEvent, indexes: list[int], run: _Run) -> dict[int, list[Any]]:
        """Each record's items: the records of a relationship (one query for the batch), of a query (one per
        distinct text), or a callout answer's array."""
        from interlink.automation.loops import query_text
        from interlink.soql.render import quote

        if loop.source == "collection":
            step, path = loop.collection
            found = response_value(run.outputs.get(step), path) if path else run.outputs.get(step)
            if found is not None and not isinstance(found, list):
                raise FlowFailed(f"{step}{'.' + path if path else ''} is not a list")
            return {index: list(found or []) for index in indexes}
        context = event.context.without_permissions()
        ids_of: dict[int, list[str]] = {}
        if loop.source == "over":
            parent_ids = {index: event.new[index].get("Id") for index in indexes}
            wanted = sorted({str(v) for v in parent_ids.values() if v})
            children: dict[str, list[str]] = {}
            for start in range(0, len(wanted), 500):
                chunk = ", ".join(quote(v) for v in wanted[start:start + 500])
                for row in self._select(f"SELECT Id, {loop.parent_field} FROM {loop.item_object} WHERE "
                                        f"{loop.parent_field} IN ({chunk}) ORDER BY Id", context, event):
                    children.setdefault(str(row[loop.parent_field]), []).append(str(row["Id"]))
            ids_of = {index: children.get(str(parent_ids[index]), []) for index in indexes}
        else:
            found_ids: dict[str, list[str]] = {}
            for index in indexes:
                text = query_text(loop.query, lambda scope, name, i=index: _raw(scope, name, event, i,
                                                                                  self.records))
                if text not in found_ids:
                    found_ids[text] = [str(row["Id"]) for row in self._select(text, context, event)]
                ids_of[index] = found_ids[text]
        every = list(dict.fromkeys(i for ids in ids_of.values() for i in ids))
        stored: dict[str, dict[str, Any]] = {}
        for start in range(0, len(every), 1000):
            for row in self.records.retrieve(loop.item_object, every[start:start + 1000]):
                if row is not None:
                    stored[str(row["Id"])] = row
        return {index: [stored[i] for i in ids if i in stored] for index, ids in ids_of.items()}

    def _select(self, soql: str, context: Any, event: SaveEvent) -> list[dict[str, Any]]:
        """Rows of ``soql`` through the one query engine, in the transaction; they count against its 50,000."""
        from interlink.automation.loops import count

        if self.query is None:
            from interlink.soql.engine import QueryEngine

            self.query = QueryEngine(self.records.store)
        page = self.query.execute(soql, context, batch_size=2000)
        rows = list(page.records)
        count(event.uow.counters, "query_rows", len(page.records))
        while not page.done and page.locator is not None:
            page = self.query.fetch_more(page.locator, context)
            count(event.uow.counters, "query_rows", len(page.records))
            rows.extend(page.records)
        return rows

    def _action(self, flow: FlowDef, event: SaveEvent, action: Action, indexes: list[int], run: _Run, *,
                fault_messages: Mapping[int, str] | None = None) -> None:
        context = event.context.without_permissions()  # flows run in system context, as on the platform
        try:
            bodies = [_merge_all(action.values, event, i, (fault_messages or {}).get(i, ""), self.records)
                      for i in indexes]
        except InterlinkError as error:
            run.failed.update({i: error.message for i in indexes})
            return
        if action.kind in self.kinds:
            run.failed.update(self.kinds[action.kind].run(event, indexes, bodies, flow.name))
            return
        if action.kind == "update" and flow.before:
            for index, body in zip(indexes, bodies, strict=True):
                try:
                    for name, value in body.items():
                        fdef = event.object.field(name)
                        assert fdef is not None
                        event.new[index][fdef.name] = _typed(fdef, value)
                except InterlinkError as error:
                    run.failed[index] = error.message
            return
        if action.kind == "update" and action.target is not None:  # another record, by its id
            targets: list[int] = []
            chosen: list[dict[str, Any]] = []
            for index, body in zip(indexes, bodies, strict=True):
                record_id = _merge(action.record_id, event, index, (fault_messages or {}).get(index, ""),
                                   self.records)
                if not record_id:  # a lookup left empty: nothing matches, nothing to update (not a failure)
                    continue
                targets.append(index)
                chosen.append({**body, "Id": str(record_id)})
            indexes = targets
            results = self.records.update(context, action.target, chosen) if chosen else []
        elif action.kind == "update":
            target = event.object.name
            bodies = [{**body, "Id": event.new[i]["Id"]} for i, body in zip(indexes, bodies, strict=True)]
            results = self.records.update(context, target, bodies)
        else:
            assert action.target is not None
            results = self.records.create(context, action.target, bodies)
        for index, result in zip(indexes, results, strict=True):
            if result.errors:
                error = result.errors[0]
                run.failed[index] = f"{error.error_code}: {error.message}"


def _enters(flow: FlowDef, event: SaveEvent, index: int) -> bool:
    new = event.new[index]
    old = event.old[index]
    values = old if event.operation == "delete" and old is not None else new
    meets = flow.condition is None or evaluate(flow.condition, values)
    if not meets:
        return False
    if event.operation != "update" or old is None:
        return True
    if flow.changed and all(old.get(f) == new.get(f) for f in flow.changed):
        return False
    return not (flow.changed_to_meet and flow.condition is not None and evaluate(flow.condition, old))


class FlowFailed(InterlinkError):
    """An API-invoked flow stopped: nothing it did is kept."""

    error_code = "CANNOT_EXECUTE_FLOW_TRIGGER"
    http_status = 400


_PATH = re.compile(r"[^.\[\]]+(?:\[\d+\])*(?:\.[^.\[\]]+(?:\[\d+\])*)*")
_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def valid_path(path: str) -> bool:
    """Whether ``path`` reads like ``account.number`` or ``items[0].id``."""
    return bool(_PATH.fullmatch(path))


def response_value(answer: Any, path: str) -> Any:
    """The value at ``path`` of a JSON answer: dotted names and list positions (``account.number``,
    ``items[0].id``); None where it is missing."""
    value = answer
    for name, position in _PATH_PART.findall(path):
        if position:
            value = value[int(position)] if isinstance(value, list) and int(position) < len(value) else None
        else:
            value = value.get(name) if isinstance(value, dict) else None
    return value


def _fail(flow: FlowDef, event: SaveEvent, index: int, message: str) -> None:
    event.errors.setdefault(index, []).append(DmlError(
        f"We can't save this record because the \u201c{flow.name}\u201d flow failed: {message}", [],
        error_code="CANNOT_EXECUTE_FLOW_TRIGGER"))


def _merge_all(values: Any, event: SaveEvent, index: int, fault_message: str, records: Any = None) -> Any:
    """An action's settings with merge fields filled in from the record, its prior values, the user and the flow
    (nested mappings and lists too)."""
    if isinstance(values, dict):
        return {name: _merge_all(value, event, index, fault_message, records) for name, value in values.items()}
    if isinstance(values, list):
        return [_merge_all(value, event, index, fault_message, records) for value in values]
    return _merge(values, event, index, fault_message, records)


def _merge(value: Any, event: SaveEvent, index: int, fault_message: str, records: Any = None) -> Any:
    if not isinstance(value, str) or "{!" not in value:
        return value
    whole = _MERGE.fullmatch(value.strip())
    if whole is not None:
        return _lookup(whole.group(1), whole.group(2), event, index, fault_message, as_text=False, records=records)
    return _MERGE.sub(lambda m: str(_lookup(m.group(1), m.group(2), event, index, fault_message,
                                            as_text=True, records=records) or ""), value)


def _json_item() -> ObjectDef:
    from interlink.automation.loops import _JSON_ITEM

    return _JSON_ITEM


def _raw(scope: str, name: str, event: SaveEvent, index: int, records: Any) -> Any:
    """A merge field's stored value (a date stays a date): what a loop's query compares with."""
    if scope == "User":
        return event.context.user_id
    if isinstance(event, _LoopBatch) and event.parent is not None:
        event, index = event.parent, event.parents[index]
    return _field(scope, name, event, index, records)[1]


def _field(scope: str, name: str, event: SaveEvent, index: int, records: Any) -> tuple[Any, Any]:
    """(the field, its stored value) of ``$Record.Path``, ``$Record__Prior.Path`` or ``$Item.Path``."""
    record = event.old[index] if scope == "Record__Prior" else event.new[index]
    obj = event.object
    if "." in name:  # through lookups: {!$Record.Account.Owner.Name}
        *relations, name = name.split(".")
        for relation in relations:
            reference = obj.relationship(relation)
            parent_id = None if record is None or reference is None else record.get(reference.name)
            target = records.store.schema.object(reference.reference_to[0]) if reference and records else None
            if parent_id is None or target is None:
                record = None
                break
            # retrieve reads inside the transaction, so it sees the save's own changes
            (record,) = records.retrieve(target.name, [parent_id], include_deleted=True)
            obj = target
    fdef = obj.field(name)
    if fdef is None:
        raise MetadataError(f"${scope}.{name}: {obj.name} has no field {name}")
    return fdef, None if record is None else record.get(fdef.name)


def _lookup(scope: str, name: str, event: SaveEvent, index: int, fault_message: str, *, as_text: bool,
            records: Any = None) -> Any:
    if isinstance(event, _LoopBatch) and event.parent is not None and scope in ("Record", "Record__Prior"):
        event, index = event.parent, event.parents[index]  # in a loop, $Record is still the flow's record
    if scope == "Item" and event.object.name == "$Item":  # an item of a callout's answer: a JSON value
        value = response_value(event.new[index], name)
        return ("true" if value else "false") if as_text and isinstance(value, bool) else value
    if scope == "User":
        if name.lower() != "id":
            raise MetadataError(f"$User.{name}: only $User.Id is available")
        return event.context.user_id
    if scope == "Flow":
        if name == "FaultMessage":
            return fault_message
        if name == "CurrentDateTime":
            return format_datetime(datetime.now(UTC).replace(tzinfo=None))
        raise MetadataError(f"$Flow.{name}: use $Flow.FaultMessage or $Flow.CurrentDateTime")
    fdef, value = _field(scope, name, event, index, records)
    wire = to_wire(fdef, value)
    if as_text and isinstance(wire, bool):
        return str(wire).lower()
    if as_text and isinstance(wire, float) and wire.is_integer() and not fdef.scale:
        return str(int(wire))  # a whole number field reads "12" in text, not "12.0"
    return wire


def _typed(fdef: Any, value: Any) -> Any:
    return parse_value(fdef, value) if value is not None else None


__all__ = ["Action", "ActionKind", "FlowDef", "FlowFailed", "FlowRuntime", "load_flows", "response_value",
           "valid_path"]
