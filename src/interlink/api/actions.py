"""Invocable actions: External Services operations and autolaunched (``trigger: api``) flows.

    GET  B/actions/custom/externalService                      the operations of every registered service
    GET  B/actions/custom/externalService/{service.operation}  describe: typed inputs and outputs
    POST B/actions/custom/externalService/{service.operation}  {"inputs": [{...}, ...]}: one call per input
    GET  B/actions/custom/flow                                 the API flows
    POST B/actions/custom/flow/{name}                          {"inputs": [{"recordId": ...}]}: one run per input

Each input is called at once through the service's named credential (Request and Reply from an API client); the
answer is the platform's list of ``{actionName, errors, isSuccess, outputValues, version}``.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from interlink.api.http import json_response, parse_json_object
from interlink.api.resources import ApiRequest, ResourceRouter
from interlink.errors import InterlinkError, JsonParserError, NotFoundError


async def list_actions(request: ApiRequest) -> Response:
    actions = [{"label": op.summary or f"{service.name} {op.name}", "name": f"{service.name}.{op.name}",
                "type": "EXTERNALSERVICE"}
               for service in request.org.services.services.values() for op in service.operations.values()]
    return json_response({"actions": actions}, pretty=request.pretty)


async def describe_action(request: ApiRequest) -> Response:
    """The platform's describe of one action: its typed inputs and outputs (from the OpenAPI schemas)."""
    from interlink.callouts.typed import describe_operation

    service, _, operation = request.params["action"].partition(".")
    if not operation:
        raise NotFoundError()
    found, op = request.org.services.operation(service, operation)
    return json_response(describe_operation(found, op), pretty=request.pretty)


async def invoke(request: ApiRequest) -> Response:
    name = request.params["action"]
    service, _, operation = name.partition(".")
    if not operation:
        raise NotFoundError()
    request.org.services.operation(service, operation)  # an unknown action is a 404-like error before any call
    body = parse_json_object(request.body)
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
        raise JsonParserError("inputs must be a list of objects")
    results: list[dict[str, Any]] = []
    for values in inputs:
        try:
            # As the caller: a per-user principal uses their own credential.
            output = await run_in_threadpool(request.org.services.invoke, service, operation, values,
                                             request.context.user_id)
            results.append({"actionName": name, "errors": None, "isSuccess": True, "outputValues": output,
                            "version": 1})
        except InterlinkError as error:
            results.append({"actionName": name, "errors": [error.to_save_error()], "isSuccess": False,
                            "outputValues": None, "version": 1})
    return json_response(results, pretty=request.pretty)


async def list_flows(request: ApiRequest) -> Response:
    flows = [{"label": flow.name, "name": flow.name, "type": "FLOW"} for flow in request.org.flows.flows
             if flow.kind == "api" and flow.active]
    return json_response({"actions": flows}, pretty=request.pretty)


async def invoke_flow(request: ApiRequest) -> Response:
    """Run an autolaunched flow per input (``recordId``): its callouts wait for their answers; a failure keeps
    nothing of that input's run."""
    name = request.params["flow"]
    flow = request.org.flows.api_flow(name)
    if flow is None:
        raise NotFoundError()
    body = parse_json_object(request.body)
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
        raise JsonParserError("inputs must be a list of objects")
    results: list[dict[str, Any]] = []
    for values in inputs:
        record_id = values.get("recordId")
        try:
            await run_in_threadpool(request.org.flows.invoke, flow, request.context,
                                    str(record_id) if record_id else None)
            results.append({"actionName": flow.name, "errors": None, "isSuccess": True,
                            "outputValues": {"Flow__InterviewStatus": "Finished"}, "version": 1})
        except InterlinkError as error:
            results.append({"actionName": flow.name, "errors": [error.to_save_error()], "isSuccess": False,
                            "outputValues": None, "version": 1})
    return json_response(results, pretty=request.pretty)


def register(router: ResourceRouter) -> None:
    router.add("actions/custom/externalService", {"GET": list_actions})
    router.add("actions/custom/externalService/{action}", {"GET": describe_action, "POST": invoke})
    router.add("actions/custom/flow", {"GET": list_flows})
    router.add("actions/custom/flow/{flow}", {"POST": invoke_flow})
