"""External Services' typed values: answers checked and coerced against the operation's response schema, and
the inputs and outputs an invocable action's describe lists.

As on the platform, an operation's outputs are generated from its OpenAPI response schemas: ``responseCode`` and
one output per documented code (``"201"``). An answer is made to fit its schema: integers, numbers and booleans
written as text become numbers and booleans (``"12"`` -> 12), numbers where text is expected become text,
``date`` and ``date-time`` strings are checked and kept as ISO strings, nested objects and arrays are walked, and
**properties the schema does not declare are dropped** (the platform's generated classes have no place for them;
``additionalProperties: true`` or a schema keeps them). An answer that cannot fit (an object where a number is
expected, a missing required property, a value outside an enum) is :class:`InvalidResponse`, never passed on.
A code without a JSON schema passes the answer on as it came.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from interlink.errors import InterlinkError

MAX_OCCURS_LIST = 2000  # what the platform's describe says of list inputs and outputs
_TYPES = {"string": "STRING", "integer": "INTEGER", "number": "DOUBLE", "boolean": "BOOLEAN", "object": "APEX"}
_NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")


class InvalidResponse(InterlinkError):
    """An answer that does not fit the operation's response schema: the action fails, nothing is passed on."""

    error_code = "INVALID_RESPONSE"
    http_status = 400


def response_schema(operation: Any, status: int) -> Mapping[str, Any] | None:
    """The JSON schema documented for ``status`` (then ``2XX``, then ``default``), or None."""
    responses = getattr(operation, "responses", None) or {}
    for key in (str(status), f"{str(status)[0]}XX", "default"):
        if key in responses:
            return responses[key]
    return None


def typed_answer(operation: Any, status: int, answer: Any, what: str) -> Any:
    """``answer`` coerced to the schema of ``status``; InvalidResponse naming the path where it does not fit."""
    schema = response_schema(operation, status)
    if not schema:
        return answer
    return _coerce(schema, answer, f"{what}: the {status} answer does not fit its schema", "")


def _coerce(schema: Mapping[str, Any], value: Any, what: str, path: str) -> Any:
    def wrong(expected: str) -> InvalidResponse:
        shown = type(value).__name__ if not isinstance(value, str) else repr(value[:40])
        return InvalidResponse(f"{what}: {path or '(the answer)'}: expected {expected}, got {shown}")

    if value is None:
        return None  # null stays null, as a generated class's field would
    for combined in ("oneOf", "anyOf"):
        if isinstance(schema.get(combined), list):
            for option in schema[combined]:
                try:
                    return _coerce(option, value, what, path)
                except InvalidResponse:
                    continue
            raise wrong(f"one of the {combined} schemas")
    if isinstance(schema.get("allOf"), list):
        merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
        for part in schema["allOf"]:
            merged["properties"].update(part.get("properties") or {})
            merged["required"] += list(part.get("required") or [])
        schema = merged
    kind = schema.get("type") or ("object" if "properties" in schema else "array" if "items" in schema else None)
    if kind == "object":
        if not isinstance(value, dict):
            raise wrong("an object")
        properties: Mapping[str, Any] = schema.get("properties") or {}
        missing = [name for name in schema.get("required") or [] if value.get(name) is None]
        if missing:
            raise InvalidResponse(f"{what}: {_join(path, missing[0])}: required, missing")
        out = {name: _coerce(properties[name], item, what, _join(path, name))
               for name, item in value.items() if name in properties}
        extra = schema.get("additionalProperties")
        if extra is True or isinstance(extra, dict):
            out.update({name: _coerce(extra, item, what, _join(path, name)) if isinstance(extra, dict) else item
                        for name, item in value.items() if name not in properties})
        return out
    if kind == "array":
        if not isinstance(value, list):
            raise wrong("an array")
        return [_coerce(schema.get("items") or {}, item, what, f"{path}[{i}]") for i, item in enumerate(value)]
    result = _scalar(kind, schema.get("format"), value, wrong)
    if isinstance(schema.get("enum"), list) and result not in schema["enum"]:
        raise InvalidResponse(f"{what}: {path or '(the answer)'}: {result!r} is not one of {schema['enum']}")
    return result


def _scalar(kind: Any, fmt: Any, value: Any, wrong: Any) -> Any:
    if kind == "integer":
        if isinstance(value, bool):
            raise wrong("an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
            return int(value)
        raise wrong("an integer")
    if kind == "number":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and _NUMBER.match(value.strip()):
            number = float(value)
            return int(number) if number.is_integer() and "." not in value and "e" not in value.lower() else number
        raise wrong("a number")
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise wrong("a boolean")
    if kind == "string":
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, int | float):
            value = str(value)
        if not isinstance(value, str):
            raise wrong("a string")
        if fmt == "date":
            try:
                date.fromisoformat(value)
            except ValueError:
                raise wrong("a date (YYYY-MM-DD)") from None
        elif fmt == "date-time":
            try:
                datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
            except ValueError:
                raise wrong("a date-time (ISO 8601)") from None
        return value
    return value  # no type: any JSON value


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


# -- describe ------------------------------------------------------------------------------------------------


def value_type(schema: Mapping[str, Any] | None) -> str:
    """The invocable action describe's type of a schema: STRING, INTEGER, LONG, DOUBLE, BOOLEAN, DATE, DATETIME
    or APEX (an object)."""
    schema = schema or {}
    kind = schema.get("type") or ("object" if "properties" in schema or "allOf" in schema else None)
    if kind == "array":
        return value_type(schema.get("items"))
    if kind == "string" and schema.get("format") in ("date", "date-time"):
        return "DATE" if schema["format"] == "date" else "DATETIME"
    if kind == "integer" and schema.get("format") == "int64":
        return "LONG"
    return _TYPES.get(str(kind), "APEX" if kind is None and schema else "STRING")


def describe_values(name: str, schema: Mapping[str, Any] | None, *, required: bool,
                    description: str = "") -> list[dict[str, Any]]:
    """``name`` and, for objects and arrays of objects, its properties (``201.account.number``,
    ``201.items[].id``) as describe entries."""
    schema = schema or {}
    array = schema.get("type") == "array"
    entries = [{"description": str(schema.get("description") or description or "") or None, "label": name,
                "maxOccurs": MAX_OCCURS_LIST if array else 1, "name": name, "required": required,
                "type": value_type(schema)}]
    inner = (schema.get("items") or {}) if array else schema
    properties = dict(inner.get("properties") or {})
    wanted = set(inner.get("required") or [])
    for part in inner.get("allOf") or []:
        properties.update(part.get("properties") or {})
        wanted.update(part.get("required") or [])
    prefix = f"{name}[]" if array else name
    for prop, prop_schema in properties.items():
        entries += describe_values(f"{prefix}.{prop}", prop_schema, required=prop in wanted)
    return entries


def describe_operation(service: Any, operation: Any) -> dict[str, Any]:
    """The platform's describe of one External Services invocable action: typed inputs and outputs."""
    inputs: list[dict[str, Any]] = []
    for param in operation.parameters:
        inputs += describe_values(param.name, param.schema, required=param.required,
                                  description=getattr(param, "description", ""))
    if operation.body_schema is not None:
        inputs += describe_values("body", operation.body_schema, required=operation.body_required)
    outputs = [{"description": "The HTTP status code of the answer", "label": "responseCode", "maxOccurs": 1,
                "name": "responseCode", "required": False, "type": "INTEGER"}]
    for code, schema in (getattr(operation, "responses", None) or {}).items():
        if schema is not None:  # a code without a JSON schema has no typed output
            outputs += describe_values(code, schema, required=False)
    for entry in inputs + outputs:
        entry.update({"byteLength": 0, "picklistValues": None, "sobjectType": None})
    name = f"{service.name}.{operation.name}"
    return {"category": "ExternalService", "description": operation.summary or None, "durableId": name,
            "iconName": None, "inputs": inputs, "label": operation.summary or f"{service.name} {operation.name}",
            "name": name, "outputs": outputs, "standard": False, "targetEntityName": None,
            "type": "EXTERNALSERVICE"}


__all__ = ["InvalidResponse", "describe_operation", "describe_values", "response_schema", "typed_answer",
           "value_type"]
