"""Saga definitions: the steps of a saga, what each step does (its action) and how it is undone (its compensation).

A saga is declared in ``<project>/sagas/NAME.yaml`` or built in Python as a :class:`SagaDefinition`::

    name: order-activation
    steps:
      - name: reserve-stock
        action: {type: http, method: POST, url: "http://erp/reservations", body: {sku: "$.sku"}, saveAs: reservation}
        compensate: {type: http, method: DELETE, url: "http://erp/reservations/{reservation.id}"}
      - name: mark-activated
        action: {type: org.update, connection: default, object: Order, id: "$.orderId", values: {Status: Activated}}
    retry: {attempts: 3, backoff: 1s}

Action and compensation kinds: ``http`` (2xx ok; 408, 429, 5xx and connection errors retryable; other answers
permanent), ``org.create`` / ``org.update`` / ``org.delete`` / ``org.publish`` through a named org connection, and
``python`` (``function: module:name``, called with a copy of the saga data). The saga's *data* is its input plus
every result saved so far (``saveAs``); in ``body``, ``values``, ``id`` a text starting with ``$`` is a JSONata
expression over it (``$sagaId`` and ``$step`` are bound; ``$$`` escapes a literal ``$``), and ``{a.b}`` parts of a
URL or header are filled from it (URL-encoded in URLs). Everything is compiled when the definition is created, so a
bad expression is an error before anything runs. :mod:`interlink.middleware.saga` runs definitions.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import httpx
import yaml

from interlink.middleware.base import PermanentError, PipelineSpecError, RetryableError
from interlink.middleware.expressions import Expression, Scope, Template, compile_expression, compile_template
from interlink.middleware.sinks.http import classify
from interlink.middleware.spec import RetryPolicy, parse_duration

if TYPE_CHECKING:
    from interlink.middleware.saga import SagaRunner

DEFAULT_RETRY = RetryPolicy(attempts=3, backoff=1.0, max_backoff=30.0)
_MISSING = object()


class SagaDefinitionError(PipelineSpecError):
    """A saga definition is invalid (the message names the file or saga and the key)."""


# -- definitions -----------------------------------------------------------------------------------------------

Function = Callable[[dict[str, Any]], Any]


@dataclass
class SagaStep:
    """One step: its action, the compensation that undoes it (optional) and its own retry policy (optional).

    ``action``/``compensate`` are configuration mappings (``{"type": "http", ...}``) or Python callables taking the
    saga data; ``save_as`` names where a callable's result goes (mappings say ``saveAs``)."""

    name: str
    action: Mapping[str, Any] | Function
    compensate: Mapping[str, Any] | Function | None = None
    retry: RetryPolicy | Mapping[str, Any] | None = None
    save_as: str | None = None


@dataclass
class SagaDefinition:
    """A named list of steps and the default retry policy; checked (expressions compiled) when created."""

    name: str
    steps: list[SagaStep]
    retry: RetryPolicy | Mapping[str, Any] = DEFAULT_RETRY
    path: Path | None = None
    description: str = ""
    compiled: list[tuple[Action, Action | None]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        where = str(self.path) if self.path else f"saga {self.name!r}"
        if not isinstance(self.name, str) or not self.name:
            raise SagaDefinitionError(f"{where}: name is required")
        if not self.steps:
            raise SagaDefinitionError(f"{where}: steps: a saga needs at least one step")
        self.retry = _retry(self.retry, f"{where}: retry", DEFAULT_RETRY)
        self.compiled, seen = [], set()
        for index, step in enumerate(self.steps):
            at = f"{where}: steps[{index}]"
            if not isinstance(step.name, str) or not step.name or step.name in seen:
                raise SagaDefinitionError(f"{at}.name: each step needs a unique name, got {step.name!r}")
            seen.add(step.name)
            if step.retry is not None:
                step.retry = _retry(step.retry, f"{at}.retry", self.retry)
            try:
                self.compiled.append((compile_action(step.action, f"{at}.action", step.save_as),
                                      None if step.compensate is None else compile_action(step.compensate,
                                                                                           f"{at}.compensate")))
            except SagaDefinitionError:
                raise
            except PipelineSpecError as exc:  # a bad expression or template (the message names where)
                raise SagaDefinitionError(str(exc)) from None

    def policy(self, index: int) -> RetryPolicy:
        step_retry = self.steps[index].retry
        return step_retry if isinstance(step_retry, RetryPolicy) else self.retry  # type: ignore[return-value]


def _retry(value: Any, where: str, base: RetryPolicy) -> RetryPolicy:
    try:
        return RetryPolicy.from_config(value, base)
    except PipelineSpecError as exc:
        key = ".".join(str(k) for k in getattr(exc, "key", ()))
        raise SagaDefinitionError(f"{where}{'.' + key if key else ''}: {exc}") from None


# -- actions ---------------------------------------------------------------------------------------------------

@dataclass
class Call:
    """What an action runs with: the runner, the saga data, its evaluation scope and the idempotency key."""

    runner: SagaRunner
    data: dict[str, Any]
    scope: Scope
    key: str


class Action:
    """One action or compensation kind; :meth:`run` answers the result (saved under ``save_as``) or raises
    :class:`RetryableError` / :class:`PermanentError`."""

    kind = ""
    save_as: str | None = None
    connection: str | None = None  # org kinds: the connection they need
    function: str | None = None  # python kind: the ``module:function`` they call

    def run(self, call: Call) -> Any:
        raise NotImplementedError


def _compile_value(value: Any, where: str) -> Any:
    """A body/values tree with text starting with ``$`` compiled to JSONata (``$$`` escapes a literal ``$``)."""
    if isinstance(value, str) and value.startswith("$"):
        return value[1:] if value.startswith("$$") else compile_expression(value, where=where)
    if isinstance(value, Mapping):
        return {str(key): _compile_value(item, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, list):
        return [_compile_value(item, f"{where}[{index}]") for index, item in enumerate(value)]
    return value


def _render(value: Any, scope: Scope) -> Any:
    """The value of a compiled tree for ``scope``; undefined expressions leave their key out."""
    if isinstance(value, Expression):
        return value.evaluate(scope, _MISSING)
    if isinstance(value, dict):
        rendered = {key: _render(item, scope) for key, item in value.items()}
        return {key: item for key, item in rendered.items() if item is not _MISSING}
    if isinstance(value, list):
        return [item for item in (_render(entry, scope) for entry in value) if item is not _MISSING]
    return value


class HttpAction(Action):
    kind = "http"
    METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

    def __init__(self, config: Mapping[str, Any], where: str) -> None:
        self.method = str(config.get("method", "POST")).upper()
        if self.method not in self.METHODS:
            raise SagaDefinitionError(f"{where}.method: one of {', '.join(self.METHODS)}, not {self.method!r}")
        self.url: Template = compile_template(_required(config, "url", where), where=f"{where}.url")
        self.headers = {str(name): compile_template(str(value), where=f"{where}.headers.{name}")
                        for name, value in (config.get("headers") or {}).items()}
        self.body = _compile_value(config["body"], f"{where}.body") if "body" in config else _MISSING
        try:
            self.timeout = parse_duration(config.get("timeout", 10.0))
        except ValueError as exc:
            raise SagaDefinitionError(f"{where}.timeout: {exc}") from None

    def run(self, call: Call) -> Any:
        url = self.url.render(call.scope, quote=True)
        headers = {name: template.render(call.scope) for name, template in self.headers.items()}
        headers.setdefault("Idempotency-Key", call.key)
        content = None
        if self.body is not _MISSING:
            headers.setdefault("Content-Type", "application/json")
            content = json.dumps(_render(self.body, call.scope), default=str).encode()
        try:
            response = call.runner.http.request(self.method, url, content=content, headers=headers,
                                                timeout=self.timeout)
        except httpx.TimeoutException as exc:
            raise RetryableError(f"timed out: {self.method} {url}: {exc!r}") from None
        except httpx.TransportError as exc:
            raise RetryableError(f"cannot reach {url}: {exc!r}") from None
        delivery = classify(response)
        if not delivery.ok:
            raise (RetryableError if delivery.retryable else PermanentError)(delivery.error)
        if not response.content:
            return {"status": response.status_code}
        try:
            return response.json()
        except ValueError:
            return {"status": response.status_code, "text": response.text}


class OrgAction(Action):
    """``org.create`` / ``org.update`` / ``org.delete`` a record, or ``org.publish`` a platform event."""

    def __init__(self, kind: str, config: Mapping[str, Any], where: str) -> None:
        self.kind = kind
        self.connection = str(config.get("connection") or "default")
        self.target = str(_required(config, "event" if kind == "org.publish" else "object", where))
        self.record_id = _compile_value(_required(config, "id", where), f"{where}.id") \
            if kind in ("org.update", "org.delete") else None
        self.values = {} if kind == "org.delete" else _compile_value(_required(config, "values", where),
                                                                      f"{where}.values")
        if not isinstance(self.values, dict):
            raise SagaDefinitionError(f"{where}.values: a mapping of field -> value")

    def run(self, call: Call) -> Any:
        connection = call.runner.org(self.connection)
        record = _render(self.values, call.scope)
        record_id = None if self.record_id is None else _render(self.record_id, call.scope)
        if self.record_id is not None and record_id in (_MISSING, None, ""):
            raise PermanentError(f"{self.kind} {self.target}: the record Id is undefined")
        if self.kind == "org.delete":
            try:
                connection.delete(f"sobjects/{self.target}/{record_id}")
            except PermanentError as exc:
                if getattr(exc, "status", None) != 404:  # already gone: a re-run after a crash
                    raise
            return {"id": record_id}
        if self.kind == "org.publish":
            [result] = connection.publish(self.target, [record])
        else:
            operation = self.kind.split(".", 1)[1]
            [result] = connection.save(operation, self.target,
                                       [{"Id": record_id, **record} if record_id is not None else record])
        if not result.success:
            raise (RetryableError if result.retryable else PermanentError)(f"{self.kind} {self.target}: "
                                                                          f"{result.error}")
        return {"id": result.id}


class PythonAction(Action):
    """``python``: ``function: module:name`` from ``<project>/sagas/module.py`` or an importable module."""

    kind = "python"

    def __init__(self, config: Mapping[str, Any] | None, where: str, function: Function | None = None) -> None:
        self.callable = function
        if function is None:
            self.function = str(_required(config or {}, "function", where))
            if self.function.count(":") != 1 or not all(self.function.split(":")):
                raise SagaDefinitionError(f"{where}.function: 'module:function', not {self.function!r}")

    def run(self, call: Call) -> Any:
        function = self.callable or call.runner.function(str(self.function))
        return function(copy.deepcopy(call.data))


_KEYS = {
    "http": {"method", "url", "body", "headers", "timeout"},
    "org.create": {"connection", "object", "values"},
    "org.update": {"connection", "object", "id", "values"},
    "org.delete": {"connection", "object", "id"},
    "org.publish": {"connection", "event", "values"},
    "python": {"function"},
}


def _required(config: Mapping[str, Any], key: str, where: str) -> Any:
    if config.get(key) in (None, ""):
        raise SagaDefinitionError(f"{where}.{key} is required")
    return config[key]


def compile_action(value: Any, where: str, save_as: str | None = None) -> Action:
    """An :class:`Action` from a configuration mapping or a Python callable; errors name ``where``."""
    if callable(value):
        action: Action = PythonAction(None, where, function=value)
    elif not isinstance(value, Mapping):
        raise SagaDefinitionError(f"{where}: expected a mapping with a type, or a Python callable")
    else:
        kind = value.get("type")
        if kind not in _KEYS:
            raise SagaDefinitionError(f"{where}.type: one of {', '.join(_KEYS)}, not {kind!r}")
        unknown = sorted(set(value) - _KEYS[kind] - {"type", "saveAs"})
        if unknown:
            raise SagaDefinitionError(f"{where}: unknown key {unknown[0]!r} for {kind} "
                                      f"(expected {', '.join(sorted(_KEYS[kind] | {'type', 'saveAs'}))})")
        action = HttpAction(value, where) if kind == "http" else PythonAction(value, where) if kind == "python" \
            else OrgAction(kind, value, where)
        save_as = value.get("saveAs", save_as)
    if save_as is not None and (not isinstance(save_as, str) or not save_as):
        raise SagaDefinitionError(f"{where}.saveAs: a name, not {save_as!r}")
    action.save_as = save_as
    return action


# -- loading ---------------------------------------------------------------------------------------------------

_TOP_KEYS = {"name", "description", "steps", "retry"}
_STEP_KEYS = {"name", "action", "compensate", "retry"}


def load_saga_text(text: str, path: Path | None = None) -> SagaDefinition:
    """A saga from YAML text (its name defaults to the file stem)."""
    where = str(path) if path else "saga"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SagaDefinitionError(f"{where}: not valid YAML: {exc}") from None
    if not isinstance(data, Mapping):
        raise SagaDefinitionError(f"{where}: a saga is a mapping with name, steps and retry")
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise SagaDefinitionError(f"{where}: unknown key {unknown[0]!r} (expected {', '.join(sorted(_TOP_KEYS))})")
    steps = data.get("steps")
    if not isinstance(steps, list):
        raise SagaDefinitionError(f"{where}: steps: a list of {{name, action, compensate}}")
    built = []
    for index, step in enumerate(steps):
        if not isinstance(step, Mapping) or set(step) - _STEP_KEYS or "action" not in step:
            raise SagaDefinitionError(f"{where}: steps[{index}]: a mapping of {', '.join(sorted(_STEP_KEYS))} "
                                      "with an action")
        built.append(SagaStep(name=step.get("name"), action=step["action"], compensate=step.get("compensate"),
                              retry=step.get("retry")))
    return SagaDefinition(name=str(data.get("name") or (path.stem if path else "")), steps=built,
                          retry=data.get("retry") or DEFAULT_RETRY, path=path,
                          description=str(data.get("description") or ""))


def load_sagas(project_dir: Path) -> tuple[list[SagaDefinition], list[SagaDefinitionError]]:
    """The sagas of a project: ``sagas/*.yaml`` then :class:`SagaDefinition` objects in ``sagas/*.py``, and the
    errors of those that failed to load (a name used twice is an error on the second one)."""
    folder = Path(project_dir) / "sagas"
    found: dict[str, SagaDefinition] = {}
    errors: list[SagaDefinitionError] = []

    def add(definition: SagaDefinition) -> None:
        if definition.name in found:
            errors.append(SagaDefinitionError(f"{definition.path or 'sagas/*.py'}: saga name {definition.name!r} "
                                              f"is already used by {found[definition.name].path or 'Python'}"))
        else:
            found[definition.name] = definition

    if folder.is_dir():
        for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
            try:
                add(load_saga_text(path.read_text(), path))
            except SagaDefinitionError as exc:
                errors.append(exc)
        for path in sorted(folder.glob("*.py")):
            try:
                module = import_saga_module(project_dir, path.stem)
            except SagaDefinitionError as exc:
                errors.append(exc)
                continue
            for value in vars(module).values():
                if isinstance(value, SagaDefinition):
                    add(value)
    return list(found.values()), errors


_modules: dict[Path, tuple[float, ModuleType]] = {}


def import_saga_module(project_dir: Path, name: str) -> ModuleType:
    """Import ``<project>/sagas/NAME.py`` (again when the file changed); a failure is a definition error."""
    path = (Path(project_dir) / "sagas" / f"{name}.py").resolve()
    mtime = path.stat().st_mtime
    if path in _modules and _modules[path][0] == mtime:
        return _modules[path][1]
    module_name = f"interlink_project_sagas_{abs(hash(str(path.parent))):x}.{name}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise SagaDefinitionError(f"{path}: cannot import")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise SagaDefinitionError(f"{path}: cannot import: {type(exc).__name__}: {exc}") from None
    _modules[path] = (mtime, module)
    return module


__all__ = ["DEFAULT_RETRY", "Action", "Call", "HttpAction", "OrgAction", "PythonAction", "SagaDefinition",
           "SagaDefinitionError", "SagaStep", "compile_action", "import_saga_module", "load_saga_text", "load_sagas"]
