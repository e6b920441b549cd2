"""Safe expressions for ``map``, ``filter``, ``route`` and the other steps: JSONata (via ``jsonata-python``).

An expression is evaluated against one message. The **message body is the root** (``Amount__c`` reads the body's
field, ``$`` is the whole body) and three variables are bound:

- ``$id``: the message id (the default dedupe key),
- ``$key``: the business / partition key (or undefined),
- ``$headers``: the source metadata (``$headers.topic``, ``$headers.timestamp``...).

So ``Amount__c > 100``, ``Id & '-ERP'``, ``$headers.replayId`` and ``$id`` all read naturally.

Why this is safe to run inside a pipeline:

- JSONata has no I/O and no access to Python: an expression can only compute a value from its input;
- each expression is parsed once (cached) and evaluated on a per-thread copy of the parsed tree, because the
  library keeps evaluation state on the expression object;
- every evaluation runs under its own bounds (wall-clock timeout and nesting depth, see :class:`Limits`), checked
  at each evaluation step, so an infinite recursion or a huge range fails that message (a
  :class:`~interlink.middleware.base.PermanentError`, which dead-letters it) instead of hanging the pipeline. A single
  slow built-in call (a regular expression over a large string) is not interrupted midway;
- a syntax error is a :class:`~interlink.middleware.base.PipelineSpecError` when the pipeline is loaded, before
  anything runs.

Results are plain Python values (dict, list, str, int, float, bool, None). An *undefined* result (a missing field)
is told apart from JSON ``null``: :meth:`Expression.evaluate` answers its ``default`` for undefined and None for
null, which lets ``map`` leave a field out rather than blank it.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import decimal
import functools
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from jsonata import Jsonata
from jsonata.jexception import JException
from jsonata.utils import Utils

from interlink.middleware.base import Message, PermanentError, PipelineSpecError

_UNDEFINED = object()


@dataclass(frozen=True)
class Limits:
    """Runtime bounds of one evaluation: wall-clock milliseconds and evaluation nesting depth."""

    timeout_ms: int = 1000
    max_depth: int = 400


DEFAULT_LIMITS = Limits()


class ExpressionError(PermanentError):
    """An expression failed on a message (a type error, a timeout): bad data that retries cannot fix."""


# -- inputs -------------------------------------------------------------------------------------------------------

def jsonable(value: Any) -> Any:
    """A JSON-typed copy of ``value``: what JSONata expects (decimals become numbers, datetimes ISO strings)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(item) for item in value]
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    return str(value)


@dataclass(frozen=True)
class Scope:
    """One message prepared for evaluation (converted once, shared by every expression of a step).

    ``json_typed`` marks a root :func:`jsonable` made (as :func:`scope_of` does): nothing in it can fail JSONata's
    input check, so evaluations skip that walk over the whole document, and plain field paths are read directly.
    """

    root: Any
    variables: dict[str, Any]
    json_typed: bool = False


def scope_of(message: Message | Mapping[str, Any] | Scope) -> Scope:
    """The evaluation scope of a message (body as root; ``$id``, ``$key``, ``$headers``), or of a bare body."""
    if isinstance(message, Scope):
        return message
    if isinstance(message, Message):
        return Scope(jsonable(message.body), _variables_of(message), json_typed=True)
    return Scope(jsonable(message), {}, json_typed=True)


def _variables_of(message: Message) -> dict[str, Any]:
    variables: dict[str, Any] = {"id": message.id, "headers": jsonable(message.headers)}
    if message.key is not None:
        variables["key"] = message.key
    return variables


def _plain(value: Any) -> Any:
    """A result as fresh plain Python values (the library's lists and null marker replaced)."""
    if value is Utils.NULL_VALUE:
        return None
    if isinstance(value, dict):
        # Inside containers None is a null copied from the input (constructors leave undefined values out).
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise ExpressionError("the expression answered a function, not a value")


# -- compiled expressions -------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=2048)
def _parse(source: str) -> Jsonata:
    parsed = Jsonata(source)
    parsed.set_output_convert_nulls(False)  # tell null (NULL_VALUE) from undefined (None)
    return parsed


_per_thread = threading.local()


def _thread_instance(source: str) -> Jsonata:
    """This thread's copy of the parsed expression (the library mutates it while evaluating)."""
    instances: dict[str, Jsonata] | None = getattr(_per_thread, "instances", None)
    if instances is None:
        instances = _per_thread.instances = {}
    instance = instances.get(source)
    if instance is None:
        if len(instances) > 4096:
            instances.clear()
        instance = instances[source] = copy.copy(_parse(source))
    return instance


# -- plain field paths ----------------------------------------------------------------------------------------------
#
# Most map fields are plain paths (``Name__c``, ``payload.Account.Name``, `` `Field Name` ``, ``$id``,
# ``$headers.topic``). Read from a JSON-typed scope they need no interpreter: a walk through dicts gives exactly what
# JSONata gives. The walk answers _SLOW whenever JSONata's rules differ from a plain lookup (an array along the way
# maps the rest of the path over its elements and flattens them; an unknown variable may be a built-in function),
# and the evaluation then goes through JSONata as usual.

_SLOW = object()
#: attributes a plain name or variable step may set; any other one set (a predicate, a stage, a focus or index
#: binding, a group, keep-array brackets...) keeps the expression on the interpreter
_STEP_ATTRIBUTES = frozenset({"_outer_instance", "id", "value", "type", "position", "bp", "lbp"})


@dataclass(frozen=True)
class _FieldPath:
    """A plain path: ``variable`` (None: the root; ``""``/``"$"`` for ``$``/``$$`` are the root too) then names."""

    variable: str | None
    names: tuple[str, ...]


def _bare(symbol: Any, *allowed: str) -> bool:
    """Whether ``symbol`` sets nothing beyond its kind and value (and the ``allowed`` attributes)."""
    return all(not value for name, value in vars(symbol).items()
               if name not in _STEP_ATTRIBUTES and name not in allowed)


@functools.lru_cache(maxsize=2048)
def _field_path(source: str) -> _FieldPath | None:
    """The plain path ``source`` is, or None when it is anything else."""
    ast = _parse(source).ast
    if ast is None:
        return None
    if ast.type == "path":
        if not _bare(ast, "steps") or not ast.steps:
            return None
        steps = list(ast.steps)
    else:
        steps = [ast]
    variable: str | None = None
    if steps[0].type == "variable":
        variable = steps.pop(0).value
        if not isinstance(variable, str):
            return None
    names: list[str] = []
    for step in steps:
        if step.type != "name" or not isinstance(step.value, str) or not _bare(step):
            return None
        names.append(step.value)
    if variable is None and not names:
        return None
    return _FieldPath(variable, tuple(names))


def _walk(path: _FieldPath, scope: Scope) -> Any:
    """The path's value in ``scope`` as JSONata answers it (None: undefined, Utils.NULL_VALUE: null), or _SLOW."""
    if path.variable is None or path.variable in ("", "$"):
        current = scope.root
        if not isinstance(current, dict):
            return _SLOW  # an array root is mapped over
    else:
        if path.variable not in scope.variables:
            return _SLOW  # a built-in function, or a binding of the library
        current = scope.variables[path.variable]
        if current is None:
            return None  # a variable bound to None is undefined
        if isinstance(current, list):
            return _SLOW
    for name in path.names:
        if isinstance(current, dict):
            current = current.get(name, _SLOW)
            if current is _SLOW:
                return None  # no such field: undefined
            if current is None:
                current = Utils.NULL_VALUE  # a JSON null in the document
        elif isinstance(current, list):
            return _SLOW  # mapped over its elements, then flattened
        else:
            return None  # a field of a string, a number or null: undefined
    return current


def _bounds(limits: Limits) -> tuple[Callable[..., None], Callable[..., None]]:
    """Entry/exit callbacks enforcing ``limits`` for one evaluation (fresh clock and depth each time)."""
    started = time.monotonic()
    depth = 0

    def check() -> None:
        if depth > limits.max_depth:
            raise JException("D1011", -1)
        if (time.monotonic() - started) * 1000 > limits.timeout_ms:
            raise JException("D1012", -1, limits.timeout_ms)

    def entry(_expr: Any, _input: Any, env: Any) -> None:
        nonlocal depth
        if not env.is_parallel_call:
            depth += 1
            check()

    def leave(_expr: Any, _input: Any, env: Any, _result: Any) -> None:
        nonlocal depth
        if not env.is_parallel_call:
            depth -= 1
            check()

    return entry, leave


class Expression:
    """A parsed JSONata expression; evaluate it against messages with :meth:`evaluate` or :meth:`test`."""

    def __init__(self, source: str, limits: Limits = DEFAULT_LIMITS) -> None:
        self.source = source
        self.limits = limits
        # A plain field path is read by a dict walk (the same answers as JSONata's), unless the limits are so tight
        # that JSONata itself could fail on it (its depth reaches 2 on a path; the timeout checks wall time).
        self._path: _FieldPath | None = None
        if limits.max_depth >= 4 and limits.timeout_ms >= 1:
            try:
                self._path = _field_path(source)
            except Exception:  # not parseable: evaluate() reports it, as it always did
                self._path = None

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"

    def evaluate(self, message: Message | Mapping[str, Any] | Scope, default: Any = None) -> Any:
        """The expression's value for ``message`` (plain Python), or ``default`` when it is undefined.

        Raises :class:`ExpressionError` when evaluation fails or exceeds the limits.
        """
        path = self._path
        if path is not None and isinstance(message, Message) and path.variable not in (None, "", "$"):
            # $id, $key, $headers.topic...: the body need not be converted at all.
            result = _walk(path, Scope(None, _variables_of(message), json_typed=True))
            if result is not _SLOW:
                return default if result is None else _plain(result)
        scope = scope_of(message)
        if path is not None and scope.json_typed:
            result = _walk(path, scope)
            if result is not _SLOW:
                return default if result is None else _plain(result)
        instance = _thread_instance(self.source)
        entry, leave = _bounds(self.limits)
        bindings = {**scope.variables, "__evaluate_entry": entry, "__evaluate_exit": leave}
        # The library routes nested evaluation through "the current instance of this thread": make it ours.
        Jsonata.CURRENT.jsonata = instance
        # jsonable() made the root of JSON types already: the library's check of every value of it is redundant.
        instance.validate_input = not scope.json_typed
        try:
            result = instance.evaluate(scope.root, bindings)
        except JException as exc:
            raise ExpressionError(f"expression {self.source!r} failed: {exc}") from None
        except RecursionError:
            raise ExpressionError(f"expression {self.source!r} failed: recursion too deep") from None
        except (TypeError, ValueError, ArithmeticError, AttributeError, KeyError, IndexError) as exc:
            raise ExpressionError(f"expression {self.source!r} failed: {type(exc).__name__}: {exc}") from None
        if result is None:
            return default
        return _plain(result)

    def test(self, message: Message | Mapping[str, Any] | Scope) -> bool:
        """The expression's truth for ``message``, by JSONata's rules (undefined, empty and zero are false)."""
        value = self.evaluate(message, _UNDEFINED)
        if value is _UNDEFINED:
            return False
        return bool(Jsonata.boolize(value))


def _at(where: str) -> str:
    return f"{where}: " if where else ""


def compile_expression(source: Any, *, where: str = "expression", limits: Limits = DEFAULT_LIMITS) -> Expression:
    """Parse ``source`` once (cached); a syntax error is a :class:`PipelineSpecError` naming ``where``."""
    if isinstance(source, bool) or not isinstance(source, str | int | float):
        raise PipelineSpecError(_at(where) + f"expected a JSONata expression (text), got {type(source).__name__}")
    text = str(source).strip()
    if not text:
        raise PipelineSpecError(_at(where) + "the expression is empty")
    try:
        _parse(text)
    except JException as exc:
        position = getattr(exc, "location", None)
        at = f" (at character {position})" if isinstance(position, int) and position >= 0 else ""
        raise PipelineSpecError(_at(where) + f"bad expression {text!r}: {exc}{at}") from None
    except (RecursionError, ValueError, TypeError, IndexError) as exc:
        raise PipelineSpecError(_at(where) + f"bad expression {text!r}: {exc}") from None
    return Expression(text, limits)


# -- templates ---------------------------------------------------------------------------------------------------

class Template:
    """Text with ``{expression}`` parts, e.g. ``https://erp/customers/{CustomerId}?region={$headers.region}``.

    Each part is a JSONata expression; its value is inserted as text (URL-quoted when ``quote`` is set). ``{{``
    and ``}}`` stand for literal braces.
    """

    def __init__(self, parts: list[str | Expression], source: str) -> None:
        self.parts = parts
        self.source = source

    def render(self, message: Message | Mapping[str, Any] | Scope, *, quote: bool = False) -> str:
        """The text for ``message``; an undefined part is an :class:`ExpressionError`."""
        scope = scope_of(message)
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = part.evaluate(scope, _UNDEFINED)
            if value is _UNDEFINED or value is None:
                raise ExpressionError(f"template {self.source!r}: {{{part.source}}} is undefined for this message")
            text = value if isinstance(value, str) else str(jsonable(value)).lower() if isinstance(value, bool) \
                else str(value)
            out.append(urllib.parse.quote(text, safe="") if quote else text)
        return "".join(out)


def compile_template(source: Any, *, where: str = "template", limits: Limits = DEFAULT_LIMITS) -> Template:
    """Parse a ``{expression}`` template; unbalanced braces or a bad expression are a :class:`PipelineSpecError`."""
    if not isinstance(source, str):
        raise PipelineSpecError(_at(where) + f"expected text, got {type(source).__name__}")
    parts: list[str | Expression] = []
    literal: list[str] = []
    index = 0
    while index < len(source):
        char = source[index]
        if source.startswith("{{", index) or source.startswith("}}", index):
            literal.append(char)
            index += 2
            continue
        if char == "}":
            raise PipelineSpecError(_at(where) + f"unmatched '}}' at character {index} of {source!r}")
        if char != "{":
            literal.append(char)
            index += 1
            continue
        end = _closing_brace(source, index)
        if end < 0:
            raise PipelineSpecError(_at(where) + f"unclosed '{{' at character {index} of {source!r}")
        if literal:
            parts.append("".join(literal))
            literal = []
        parts.append(compile_expression(source[index + 1:end], where=where, limits=limits))
        index = end + 1
    if literal:
        parts.append("".join(literal))
    return Template(parts, source)


def _closing_brace(source: str, start: int) -> int:
    """Index of the brace closing the one at ``start`` (nested braces and quoted text skipped), or -1."""
    depth, quote, index = 0, "", start
    while index < len(source):
        char = source[index]
        if quote:
            if char == "\\":
                index += 1
            elif char == quote:
                quote = ""
        elif char in "\"'`":
            quote = char
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    return -1


__all__ = [
    "DEFAULT_LIMITS",
    "Expression",
    "ExpressionError",
    "Limits",
    "Scope",
    "Template",
    "compile_expression",
    "compile_template",
    "jsonable",
    "scope_of",
]
