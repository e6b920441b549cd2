"""Python actions: project code a flow calls (``actions/*.py``), bulk-safe like triggers.

::

    from interlink.automation import action

    @action("score_leads")
    def score_leads(ctx, inputs):
        # ctx.new: the records the flow runs for (read-only); ctx.insert / update / query / publish / callout
        # inputs: one dict per record, the flow's inputs with merge fields filled in
        return [{"Rating": "Hot" if i["employees"] > 500 else "Warm"} for i in inputs]

    # in a flow: - python: {action: score_leads, inputs: {employees: "{!$Record.NumberOfEmployees}"}}

What the function returns (one mapping of field values per record, or None) is saved on the records in the same
transaction. An exception fails the records it ran for (or runs the flow's fault path), and ``ctx.add_error``
fails one record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from interlink.automation.flows import ActionKind
from interlink.automation.triggers import ActionDef, TriggerContext, TriggerRuntime
from interlink.errors import InterlinkError, MetadataError
from interlink.metadata.model import ObjectDef
from interlink.records.hooks import SaveEvent


def python_action(runtime: TriggerRuntime, actions: Mapping[str, ActionDef]) -> ActionKind:
    """The ``python`` flow action, calling the project's ``actions`` (a mapping the org keeps current)."""

    def check(where: str, spec: dict[str, Any], obj: ObjectDef) -> None:
        if set(spec) - {"action", "inputs"} or "action" not in spec:
            raise MetadataError(f"{where}: python takes action (a function of actions/*.py) and inputs")
        if str(spec["action"]) not in actions:
            known = ", ".join(sorted(actions)) or "none"
            raise MetadataError(f"{where}: there is no Python action {spec['action']!r} (the project has: {known})")
        if not isinstance(spec.get("inputs", {}), dict):
            raise MetadataError(f"{where}: inputs: a mapping of input name to value")

    def run(event: SaveEvent, indexes: list[int], specs: list[dict[str, Any]], flow: str) -> dict[int, str]:
        definition = actions[str(specs[0]["action"])]
        batch = SaveEvent(event.operation, event.object, [event.new[i] for i in indexes],
                          [event.old[i] for i in indexes], event.context, event.uow)
        context = TriggerContext(runtime, definition, batch, before=False)
        try:
            outputs = definition.function(context, [dict(spec.get("inputs") or {}) for spec in specs])
        except Exception as exc:
            detail = exc.message if isinstance(exc, InterlinkError) else str(exc)
            return {i: f"{definition.name}: {type(exc).__name__}: {detail}" for i in indexes}
        failed = {indexes[position]: "; ".join(str(e) for e in errors) for position, errors in batch.errors.items()}
        if outputs is None or event.object.is_event:
            return failed
        if not isinstance(outputs, list) or len(outputs) != len(indexes):
            return {i: f"{definition.name} must return a list with one mapping (or None) per record" for i in indexes}
        updates = [(index, values) for index, values in zip(indexes, outputs, strict=True)
                   if values and index not in failed]
        if updates:
            results = runtime.records.update(event.context.without_permissions(), event.object.name,
                                             [{**values, "Id": event.new[index]["Id"]} for index, values in updates])
            for (index, _values), result in zip(updates, results, strict=True):
                if result.errors:
                    failed[index] = f"{result.errors[0].error_code}: {result.errors[0].message}"
        del flow
        return failed

    return ActionKind(check, run)


__all__ = ["python_action"]
