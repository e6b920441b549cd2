"""The ``callout`` action of record-triggered flows: an asynchronous callout per matching record.

::

    actions:
      - callout:
          credential: Billing                  # a named credential (metadata/namedCredentials/Billing.yaml)
          method: POST
          path: /accounts
          body: {name: "{!$Record.Name}", orderId: "{!$Record.Id}"}
          headers: {X-Source: interlink}
          on_success: {Billing_Account__c: accountNumber}   # Request and Reply: response fields onto the record

Callouts from a save are asynchronous, as the platform requires: each is queued in the transaction and sent after
it commits (:mod:`interlink.callouts.queue`).
"""

from __future__ import annotations

from typing import Any

from interlink.automation.flows import ActionKind, valid_path
from interlink.callouts.outbound import OutboundQueue
from interlink.callouts.queue import CalloutQueue
from interlink.callouts.services import ServiceDirectory, build_request
from interlink.errors import InterlinkError, MetadataError
from interlink.metadata.model import ObjectDef
from interlink.records.hooks import SaveEvent

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_KEYS = {"name", "credential", "method", "path", "body", "headers", "on_success"}


def _check_on_success(where: str, spec: dict[str, Any], obj: ObjectDef) -> None:
    """``on_success`` maps fields of the record to paths in the JSON response (Request and Reply): dotted names
    and list positions, ``account.number``, ``items[0].id``."""
    mapping = spec.get("on_success") or {}
    if not isinstance(mapping, dict):
        raise MetadataError(f"{where}: on_success: a mapping of field to response path")
    for field_name, path in mapping.items():
        if obj.field(field_name) is None:
            raise MetadataError(f"{where}: on_success: {obj.name} has no field {field_name}")
        if not isinstance(path, str) or not valid_path(path):
            raise MetadataError(f"{where}: on_success.{field_name}: a path in the answer such as accountNumber, "
                                f"account.number or items[0].id (not {path!r})")
    if spec.get("name") is not None and not isinstance(spec["name"], str):
        raise MetadataError(f"{where}: name: a name for the answer (loops in API flows read it: collection)")


def callout_action(queue: CalloutQueue) -> ActionKind:
    """The ``callout`` flow action, queuing on ``queue``."""

    def check(where: str, spec: dict[str, Any], obj: ObjectDef) -> None:
        unknown = set(spec) - _KEYS
        if unknown:
            raise MetadataError(f"{where}: callout takes {', '.join(sorted(_KEYS))}; not {', '.join(sorted(unknown))}")
        if str(spec.get("credential", "")).lower() not in queue.credentials:
            raise MetadataError(f"{where}: credential: {spec.get('credential')!r} is not a named credential of the "
                                "project (metadata/namedCredentials/)")
        if str(spec.get("method", "POST")).upper() not in METHODS:
            raise MetadataError(f"{where}: method: one of {', '.join(METHODS)}")
        if not isinstance(spec.get("path", ""), str):
            raise MetadataError(f"{where}: path: a path under the credential's URL, such as /orders")
        if not isinstance(spec.get("headers", {}), dict):
            raise MetadataError(f"{where}: headers: a mapping")
        _check_on_success(where, spec, obj)

    def run(event: SaveEvent, indexes: list[int], specs: list[dict[str, Any]], flow: str) -> dict[int, str]:
        failed: dict[int, str] = {}
        for index, spec in zip(indexes, specs, strict=True):
            try:
                queue.enqueue(event.uow.conn, event.uow.counters, event.context, credential=spec["credential"],
                              method=str(spec.get("method", "POST")), path=str(spec.get("path", "")),
                              body=spec.get("body"), headers={k: str(v) for k, v in spec.get("headers", {}).items()},
                              source=f"flow {flow}", object_name=event.object.name,
                              record_id=event.new[index].get("Id"), on_success=spec.get("on_success"))
            except InterlinkError as error:
                failed[index] = error.message
        return failed

    def call(spec: dict[str, Any], context: Any) -> Any:
        return queue.send_now(spec["credential"], str(spec.get("method", "POST")), str(spec.get("path", "")),
                              spec.get("body"), {k: str(v) for k, v in spec.get("headers", {}).items()},
                              user_id=context.user_id)[1]

    return ActionKind(check, run, call)


def outbound_action(outbound: OutboundQueue) -> ActionKind:
    """The ``outbound_message`` flow action: ``{name: Order_To_ERP}`` queues a notification per record."""

    def check(where: str, spec: dict[str, Any], obj: ObjectDef) -> None:
        if set(spec) != {"name"}:
            raise MetadataError(f"{where}: outbound_message takes name (the outbound message to send)")
        definition = outbound.definitions.get(str(spec["name"]).lower())
        if definition is None:
            raise MetadataError(f"{where}: {spec['name']!r} is not an outbound message of the project "
                                "(metadata/outboundMessages/)")
        if definition.object != obj.name:
            raise MetadataError(f"{where}: {definition.name} sends {definition.object} records, not {obj.name}")

    def run(event: SaveEvent, indexes: list[int], specs: list[dict[str, Any]], flow: str) -> dict[int, str]:
        del flow
        by_name: dict[str, list[int]] = {}
        for index, spec in zip(indexes, specs, strict=True):
            by_name.setdefault(str(spec["name"]), []).append(index)
        failed: dict[int, str] = {}
        for name, chosen in by_name.items():
            try:
                outbound.enqueue(event.uow.conn, name, [str(event.new[i]["Id"]) for i in chosen])
            except InterlinkError as error:
                failed.update({i: error.message for i in chosen})
        return failed

    return ActionKind(check, run)


def service_action(services: ServiceDirectory, queue: CalloutQueue) -> ActionKind:
    """The ``external_service`` flow action: an operation of a registered service, queued like any callout.

    ``{service: billing, operation: createAccount, inputs: {...}, on_success: {Field: path}}``; the inputs are
    checked against the operation's schemas per record (a misfit fails that record, or runs the fault path).
    """

    def check(where: str, spec: dict[str, Any], obj: ObjectDef) -> None:
        unknown = set(spec) - {"name", "service", "operation", "inputs", "on_success"}
        if unknown:
            raise MetadataError(f"{where}: external_service takes name, service, operation, inputs and on_success")
        try:
            _service, op = services.operation(str(spec.get("service", "")), str(spec.get("operation", "")))
        except InterlinkError as error:
            raise MetadataError(f"{where}: {error.message}") from None
        inputs = spec.get("inputs") or {}
        if not isinstance(inputs, dict):
            raise MetadataError(f"{where}: inputs: a mapping of input name to value")
        known = {p.name for p in op.parameters} | {"body"}
        if set(inputs) - known:
            raise MetadataError(f"{where}: {op.name} has no input(s) {', '.join(sorted(set(inputs) - known))}")
        _check_on_success(where, spec, obj)

    def run(event: SaveEvent, indexes: list[int], specs: list[dict[str, Any]], flow: str) -> dict[int, str]:
        failed: dict[int, str] = {}
        for index, spec in zip(indexes, specs, strict=True):
            try:
                found, op = services.operation(spec["service"], spec["operation"])
                request = build_request(op, spec.get("inputs") or {})
                queue.enqueue(event.uow.conn, event.uow.counters, event.context, credential=found.credential,
                              method=request.method, path=request.path, body=request.body,
                              headers=request.headers, source=f"flow {flow} ({found.name}.{op.name})",
                              object_name=event.object.name, record_id=event.new[index].get("Id"),
                              on_success=spec.get("on_success"), operation=f"{found.name}.{op.name}")
            except InterlinkError as error:
                failed[index] = error.message
        return failed

    def call(spec: dict[str, Any], context: Any) -> Any:
        # Waits for the answer, typed by the operation's response schema (a misfit fails the flow).
        return services.call(spec["service"], spec["operation"], spec.get("inputs") or {}, context.user_id)[1]

    return ActionKind(check, run, call)


__all__ = ["METHODS", "callout_action", "outbound_action", "service_action"]
