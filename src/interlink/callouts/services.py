"""External Services: an OpenAPI description becomes typed actions that call the service through a named credential.

``interlink services register billing openapi.yaml --credential Billing`` checks the spec (OpenAPI 3.x or Swagger
2.0, JSON or YAML) and keeps it in the project as ``metadata/externalServices/billing.yaml``. Every operation is
then an action named ``billing.<operationId>`` whose inputs are the operation's parameters (by name) and ``body``
(the JSON request body), checked against the spec's schemas before anything is sent:

- from a flow: ``external_service: {service: billing, operation: createAccount, inputs: {...},
  on_success: {Billing_Account__c: accountNumber}}``, queued with the save like any callout;
- over REST: ``POST /services/data/vXX.X/actions/custom/externalService/billing.createAccount`` with
  ``{"inputs": [{...}]}``, called at once (Request and Reply outside a save).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from interlink.callouts.credentials import CalloutRefused, NamedCredential
from interlink.errors import MetadataError, RequestError

METHODS = ("get", "post", "put", "patch", "delete")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Parameter:
    name: str
    location: str  # path | query | header
    required: bool
    schema: Mapping[str, Any]
    description: str = ""


@dataclass(frozen=True)
class Operation:
    name: str
    method: str
    path: str
    parameters: tuple[Parameter, ...]
    body_schema: Mapping[str, Any] | None
    body_required: bool
    summary: str = ""
    # the JSON schema of each documented response code ("201", "2XX", "default"); None: no JSON schema
    responses: Mapping[str, Mapping[str, Any] | None] = field(default_factory=dict)


@dataclass(frozen=True)
class ExternalService:
    name: str
    credential: str
    operations: Mapping[str, Operation]
    source: str


class InvalidInputs(RequestError):
    """Inputs that do not fit the operation's parameters and schemas."""

    error_code = "INVALID_INPUT"


# -- reading OpenAPI -------------------------------------------------------------------------------------------


def parse_openapi(spec: Any, source: str) -> dict[str, Operation]:
    """The operations of an OpenAPI 3.x or Swagger 2.0 document; MetadataError naming what is wrong."""
    if not isinstance(spec, dict) or not isinstance(spec.get("paths"), dict):
        raise MetadataError(f"{source}: not an OpenAPI document (no paths)")
    swagger = str(spec.get("swagger", "")).startswith("2")
    if not swagger and not str(spec.get("openapi", "")).startswith("3"):
        raise MetadataError(f"{source}: only OpenAPI 3.x and Swagger 2.0 are supported")
    operations: dict[str, Operation] = {}
    for path, item in spec["paths"].items():
        if not isinstance(item, dict):
            continue
        shared = item.get("parameters") or []
        for method in METHODS:
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            name = str(op.get("operationId") or f"{method}{re.sub(r'[^A-Za-z0-9]+', '_', path).rstrip('_')}")
            name = re.sub(r"[^A-Za-z0-9_]", "_", name)
            where = f"{source}: {method.upper()} {path}"
            if name in operations:
                raise MetadataError(f"{where}: operationId {name} is used twice")
            parameters, body_schema, body_required = [], None, False
            for raw in [*shared, *(op.get("parameters") or [])]:
                param = _resolve(spec, raw, where)
                location = param.get("in")
                if location == "body" and swagger:
                    body_schema = _resolve(spec, param.get("schema") or {}, where)
                    body_required = bool(param.get("required"))
                elif location in ("path", "query", "header"):
                    schema = param.get("schema") if not swagger else {k: v for k, v in param.items()
                                                                      if k in ("type", "format", "enum", "items")}
                    parameters.append(Parameter(str(param["name"]), location, bool(param.get("required")) or
                                                location == "path", _resolve(spec, schema or {}, where),
                                                str(param.get("description") or "")))
            if not swagger and isinstance(op.get("requestBody"), dict):
                request_body = _resolve(spec, op["requestBody"], where)
                media = (request_body.get("content") or {}).get("application/json")
                if media is not None:
                    body_schema = _resolve(spec, media.get("schema") or {}, where)
                    body_required = bool(request_body.get("required"))
            declared = {p.name for p in parameters if p.location == "path"}
            missing = set(re.findall(r"\{([^}]+)\}", path)) - declared
            if missing:
                raise MetadataError(f"{where}: path parameter(s) {', '.join(sorted(missing))} are not declared")
            operations[name] = Operation(name, method.upper(), path, tuple(parameters), body_schema, body_required,
                                         str(op.get("summary") or ""), _responses(spec, op, where, swagger))
    if not operations:
        raise MetadataError(f"{source}: the document has no operations")
    return operations


def _responses(spec: Mapping[str, Any], op: Mapping[str, Any], where: str,
               swagger: bool) -> dict[str, Mapping[str, Any] | None]:
    """Each documented response code's JSON schema (``application/json``; Swagger 2.0: ``schema``)."""
    found: dict[str, Mapping[str, Any] | None] = {}
    for code, raw in (op.get("responses") or {}).items():
        answer = _resolve(spec, raw, where) if isinstance(raw, dict) else {}
        if swagger:
            schema = answer.get("schema")
        else:
            content = answer.get("content") or {}
            media = content.get("application/json") or next(
                (v for k, v in content.items() if k.endswith("+json") or k.endswith("/json")), None) or {}
            schema = media.get("schema")
        found[str(code).upper()] = schema if isinstance(schema, dict) and schema else None
    return found


def _resolve(spec: Mapping[str, Any], node: Any, where: str, depth: int = 0) -> Any:
    """``node`` with local ``$ref``s replaced (``#/components/schemas/X``, ``#/definitions/X``)."""
    if depth > 32:
        raise MetadataError(f"{where}: $ref nesting is too deep (a recursive schema?)")
    if isinstance(node, dict):
        if "$ref" in node:
            ref = str(node["$ref"])
            if not ref.startswith("#/"):
                raise MetadataError(f"{where}: only local $refs (#/...) are supported, not {ref}")
            target: Any = spec
            for part in ref[2:].split("/"):
                target = target.get(part.replace("~1", "/").replace("~0", "~")) if isinstance(target, dict) else None
            if target is None:
                raise MetadataError(f"{where}: $ref {ref} points at nothing")
            return _resolve(spec, target, where, depth + 1)
        return {k: _resolve(spec, v, where, depth + 1) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(spec, v, where, depth + 1) for v in node]
    return node


# -- registrations -----------------------------------------------------------------------------------------------


def load_services(project_dir: Path, credentials: Mapping[str, NamedCredential]) -> dict[str, ExternalService]:
    """Read ``metadata/externalServices/*.yaml`` (what ``interlink services register`` writes)."""
    from interlink.metadata.loader import read_yaml_files

    found: dict[str, ExternalService] = {}
    for path, data in read_yaml_files(project_dir / "metadata" / "externalServices"):
        source = str(path)
        if not isinstance(data, dict) or set(data) - {"credential", "spec", "description"}:
            raise MetadataError(f"{source}: an external service holds credential and spec")
        credential = str(data.get("credential") or "")
        if credential.lower() not in credentials:
            raise MetadataError(f"{source}: credential: {credential!r} is not a named credential of the project")
        found[path.stem.lower()] = ExternalService(path.stem, credentials[credential.lower()].name,
                                                   parse_openapi(data.get("spec"), source), source)
    return found


def register(project_dir: Path, name: str, spec_file: Path, credential: str,
             credentials: Mapping[str, NamedCredential]) -> tuple[Path, list[Operation]]:
    """Check ``spec_file`` and keep it as ``metadata/externalServices/NAME.yaml``; returns the file and operations."""
    import yaml

    if not _NAME.match(name):
        raise MetadataError(f"{name!r} is not a valid service name (letters, digits, _)")
    if credential.lower() not in credentials:
        raise MetadataError(f"{credential!r} is not a named credential of the project (metadata/namedCredentials/)")
    try:
        text = spec_file.read_text(encoding="utf-8")
        spec = json.loads(text) if spec_file.suffix.lower() == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise MetadataError(f"{spec_file}: cannot read the spec: {exc}") from None
    operations = parse_openapi(spec, str(spec_file))
    target = project_dir / "metadata" / "externalServices" / f"{name}.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump({"credential": credentials[credential.lower()].name, "spec": spec},
                                     sort_keys=False, allow_unicode=True), encoding="utf-8")
    return target, list(operations.values())


# -- invoking ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


def build_request(operation: Operation, inputs: Mapping[str, Any]) -> Request:
    """The HTTP request for ``inputs``; INVALID_INPUT (nothing sent) when they do not fit the operation."""
    import jsonschema

    known = {p.name for p in operation.parameters} | {"body"}
    unknown = set(inputs) - known
    if unknown:
        raise InvalidInputs(f"{operation.name}: unknown input(s) {', '.join(sorted(unknown))}; inputs are "
                            f"{', '.join(sorted(known))}")
    path = operation.path
    query: dict[str, str] = {}
    headers: dict[str, str] = {}
    for param in operation.parameters:
        value = inputs.get(param.name)
        if value is None:
            if param.required:
                raise InvalidInputs(f"{operation.name}: the input {param.name} is required", [param.name])
            continue
        _check(jsonschema, param.schema, value, f"{operation.name}: input {param.name}")
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        if param.location == "path":
            path = path.replace("{" + param.name + "}", quote(text, safe=""))
        elif param.location == "query":
            query[param.name] = text
        else:
            headers[param.name] = text
    body = inputs.get("body")
    if body is None and operation.body_required:
        raise InvalidInputs(f"{operation.name}: the input body is required", ["body"])
    if body is not None:
        if operation.body_schema is None:
            raise InvalidInputs(f"{operation.name} takes no body", ["body"])
        _check(jsonschema, operation.body_schema, body, f"{operation.name}: body")
    return Request(operation.method, path + (f"?{urlencode(query)}" if query else ""), headers, body)


def _check(jsonschema: Any, schema: Mapping[str, Any], value: Any, what: str) -> None:
    clean = _json_schema(schema)
    error = next(iter(jsonschema.Draft7Validator(clean).iter_errors(value)), None)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path)
        raise InvalidInputs(f"{what}{'/' + where if where else ''}: {error.message}")


def _json_schema(schema: Any) -> Any:
    """OpenAPI's schema dialect as JSON Schema (``nullable: true`` allows null)."""
    if isinstance(schema, dict):
        out = {k: _json_schema(v) for k, v in schema.items() if k not in ("nullable", "example", "xml")}
        if schema.get("nullable"):
            if isinstance(out.get("type"), str):
                out["type"] = [out["type"], "null"]
            if isinstance(out.get("enum"), list) and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
        return out
    if isinstance(schema, list):
        return [_json_schema(v) for v in schema]
    return schema


class ServiceDirectory:
    """The registered services, and sending an operation at once (REST actions) through its credential."""

    def __init__(self, callouts: Any) -> None:
        self.callouts = callouts  # CalloutQueue: credentials, sender
        self.services: dict[str, ExternalService] = {}

    def operation(self, service: str, name: str) -> tuple[ExternalService, Operation]:
        found = self.services.get(service.lower())
        if found is None:
            raise InvalidInputs(f"there is no external service {service!r}")
        op = found.operations.get(name)
        if op is None:
            raise InvalidInputs(f"{found.name} has no operation {name!r}; it has {', '.join(found.operations)}")
        return found, op

    def call(self, service: str, name: str, inputs: Mapping[str, Any], user_id: str | None = None) -> tuple[int, Any]:
        """Call the operation now, as ``user_id`` (whose credential a per-user principal uses): (status, the
        answer typed by the operation's response schema); errors raise (InvalidResponse: it does not fit)."""
        from interlink.callouts.typed import typed_answer

        found, op = self.operation(service, name)
        request = build_request(op, inputs)
        status, answer = self.callouts.send_now(found.credential, request.method, request.path, request.body,
                                                request.headers, user_id=user_id)
        return status, typed_answer(op, status, answer, f"{found.name}.{op.name}")

    def typed(self, qualified: str, status: int, answer: Any) -> Any:
        """``answer`` of operation ``service.operation`` typed by its response schema for ``status`` (a queued
        callout's answer, before ``on_success`` maps it); InvalidResponse when it does not fit."""
        from interlink.callouts.typed import typed_answer

        service, _, name = qualified.partition(".")
        found, op = self.operation(service, name)
        return typed_answer(op, status, answer, f"{found.name}.{op.name}")

    def invoke(self, service: str, name: str, inputs: Mapping[str, Any], user_id: str | None = None) -> dict[str, Any]:
        """Call the operation now: ``{"responseCode": 200, "200": <typed answer>}``; errors raise."""
        status, answer = self.call(service, name, inputs, user_id)
        return {"responseCode": status, str(status): answer}


__all__ = ["CalloutRefused", "ExternalService", "InvalidInputs", "Operation", "Parameter",
           "Request", "ServiceDirectory", "build_request", "load_services", "parse_openapi", "register"]
