"""The built-in pipeline steps: map, filter, route, enrich, split, aggregate, validate, dedupe and transform.

Each step is a :class:`~interlink.middleware.base.Processor` registered under its type name; its factory checks the
step's configuration (expressions are compiled then, so a typo fails validation, not the first message). Steps are
pure functions of the message except three, which use the optional hooks of :class:`Processor`:

- ``aggregate`` holds messages back: ``held()`` lists them (the runtime never checkpoints past a held message) and
  ``tick()`` releases the groups whose window elapsed even when no message arrives;
- ``dedupe`` records the keys it let through only in ``commit()``, which the runtime calls once the batch is
  delivered, so a crash before delivery cannot make a redelivered message look like a duplicate; ``prepare()``
  looks a whole batch of keys up at once (and ``commit()`` records them at once), one store transaction each;
- ``route`` announces its ``branches`` so validation can check every branch has a sink.

A step may also set ``drop_metric`` (``filtered`` or ``deduped``): what the runtime counts a dropped message as.
"""

from __future__ import annotations

import collections
import importlib
import inspect
import json
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import jsonschema

from interlink.middleware.base import Message, PermanentError, Processor, RetryableError
from interlink.middleware.expressions import Expression, Scope, Template, scope_of
from interlink.middleware.registry import BuildContext, register_processor
from interlink.middleware.spec import (
    duration_option,
    expression_option,
    import_project_module,
    option,
    spec_error,
    template_option,
)

Output = list[tuple[str | None, Message]]
_MISSING = object()

#: a header the runtime sets on a message replayed from the dead letters (dedupe lets it through)
REPLAY_HEADER = "interlink.replay"


# -- map / filter / route ----------------------------------------------------------------------------------------

class MapProcessor(Processor):
    """Builds a new body from expressions (``fields``: target -> expression); ``keep`` keeps the other fields.

    A field whose expression is undefined for a message is left out (a null result is kept as null). ``key`` sets the
    message's business key.
    """

    name = "map"

    def __init__(self, fields: dict[str, Expression], *, keep: bool = False, key: Expression | None = None) -> None:
        self.fields = fields
        self.keep = keep
        self.key = key

    def process(self, message: Message) -> Output:
        scope = scope_of(message)
        body: dict[str, Any] = dict(message.body) if self.keep else {}
        for target, expression in self.fields.items():
            value = expression.evaluate(scope, _MISSING)
            if value is not _MISSING:
                body[target] = value
        key = message.key
        if self.key is not None:
            value = self.key.evaluate(scope)
            key = None if value is None else str(value)
        return [(None, message.copy(body, key=key))]


def _map(config: dict[str, Any], context: BuildContext) -> MapProcessor:
    fields = option(config, "fields", dict)
    if not fields:
        raise spec_error("fields needs at least one target: expression", "fields")
    compiled = {str(target): expression_option(config, ("fields", str(target)), context, value=source)
                for target, source in fields.items()}
    return MapProcessor({k: v for k, v in compiled.items() if v is not None}, keep=option(config, "keep", bool, False),
                        key=expression_option(config, "key", context, None))


class FilterProcessor(Processor):
    """Passes the messages for which ``when`` is true (JSONata truth: undefined, false, 0, '' and [] are false)."""

    name = "filter"
    drop_metric = "filtered"

    def __init__(self, when: Expression) -> None:
        self.when = when

    def process(self, message: Message) -> Output:
        return [(None, message)] if self.when.test(message) else []


def _filter(config: dict[str, Any], context: BuildContext) -> FilterProcessor:
    when = expression_option(config, "when", context)
    assert when is not None
    return FilterProcessor(when)


class RouteProcessor(Processor):
    """Sends each message to the branch of the first matching condition, else to ``default`` (None: the default
    sink)."""

    name = "route"

    def __init__(self, routes: list[tuple[str, Expression]], default: str | None = None) -> None:
        self.routes = routes
        self.default = default
        self.branches = {name for name, _ in routes} | ({default} if default else set())
        self.routes_everything = default is not None

    def process(self, message: Message) -> Output:
        scope = scope_of(message)
        for branch, condition in self.routes:
            if condition.test(scope):
                return [(branch, message)]
        return [(self.default, message)]


def _route(config: dict[str, Any], context: BuildContext) -> RouteProcessor:
    routes = option(config, "routes", dict)
    if not routes:
        raise spec_error("routes needs at least one branch: condition", "routes")
    compiled = []
    for branch, condition in routes.items():
        expression = expression_option(config, ("routes", str(branch)), context, value=condition)
        assert expression is not None
        compiled.append((str(branch), expression))
    default = option(config, "default", str, None)
    return RouteProcessor(compiled, default)


# -- enrich ------------------------------------------------------------------------------------------------------

class TtlCache:
    """A bounded least-recently-used cache whose entries expire ``ttl`` seconds after they were stored."""

    def __init__(self, ttl: float, size: int, clock: Callable[[], float]) -> None:
        self.ttl, self.size, self.clock = ttl, size, clock
        self._items: collections.OrderedDict[Any, tuple[float, Any]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        """The cached value, or ``_MISSING``."""
        with self._lock:
            found = self._items.get(key)
            if found is None:
                return _MISSING
            if self.clock() - found[0] >= self.ttl:
                del self._items[key]
                return _MISSING
            self._items.move_to_end(key)
            return found[1]

    def put(self, key: Any, value: Any) -> None:
        if self.ttl <= 0 or self.size <= 0:
            return
        with self._lock:
            self._items[key] = (self.clock(), value)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class EnrichProcessor(Processor):
    """Adds data from elsewhere: an HTTP GET of a URL template, or a lookup function, cached with a TTL.

    The result (a JSON object, or any value with ``into``) is stored under ``into``, or merged into the body. When
    nothing is found (HTTP 404, a lookup answering None) ``on_missing`` decides: ``keep`` the message as it is,
    ``drop`` it, or ``error`` (dead-letter it).
    """

    name = "enrich"

    def __init__(self, *, fetch: Callable[[Message, Scope], tuple[Any, Any]], into: str | None, on_missing: str,
                 cache: TtlCache, close: Callable[[], None] | None = None) -> None:
        self.fetch = fetch
        self.into = into
        self.on_missing = on_missing
        self.cache = cache
        self._close = close

    def process(self, message: Message) -> Output:
        scope = scope_of(message)
        cache_key, load = self.fetch(message, scope)
        found = self.cache.get(cache_key)
        if found is _MISSING:
            found = load()
            self.cache.put(cache_key, found)
        if found is None:
            if self.on_missing == "drop":
                return []
            if self.on_missing == "error":
                raise PermanentError(f"enrich: nothing found for {cache_key}")
            return [(None, message)]
        body = dict(message.body)
        if self.into:
            body[self.into] = found
        elif isinstance(found, dict):
            body.update(found)
        else:
            raise PermanentError(f"enrich: {cache_key} answered {type(found).__name__}, not an object (set into)")
        return [(None, message.copy(body))]

    def close(self) -> None:
        if self._close is not None:
            self._close()


def _http_fetch(url: Template, headers: dict[str, Template], client: httpx.Client | None, timeout: float,
                ) -> tuple[Callable[[Message, Scope], tuple[Any, Any]], Callable[[], None]]:
    state: dict[str, httpx.Client] = {}

    def session() -> httpx.Client:
        if client is not None:
            return client
        if "client" not in state:
            state["client"] = httpx.Client(timeout=timeout, follow_redirects=True)
        return state["client"]

    def fetch(_message: Message, scope: Scope) -> tuple[Any, Any]:
        target = url.render(scope, quote=True)
        sent = {name: value.render(scope) for name, value in headers.items()}

        def load() -> Any:
            try:
                response = session().get(target, headers=sent, timeout=timeout)
            except httpx.TimeoutException as exc:
                raise RetryableError(f"enrich: GET {target} timed out: {exc}") from None
            except httpx.TransportError as exc:
                raise RetryableError(f"enrich: GET {target} failed: {exc}") from None
            if response.status_code == 404:
                return None
            if response.status_code in (408, 425, 429) or response.status_code >= 500:
                raise RetryableError(f"enrich: GET {target} answered {response.status_code}")
            if response.status_code >= 400:
                raise PermanentError(f"enrich: GET {target} answered {response.status_code}: {response.text[:200]}")
            try:
                return response.json()
            except json.JSONDecodeError:
                raise PermanentError(f"enrich: GET {target} did not answer JSON") from None

        return target, load

    def close() -> None:
        if "client" in state:
            state.pop("client").close()

    return fetch, close


def _enrich(config: dict[str, Any], context: BuildContext) -> EnrichProcessor:
    has_url, has_lookup = "url" in config, "lookup" in config
    if has_url == has_lookup:
        raise spec_error("enrich needs either url (an HTTP GET) or lookup (a connection name), not both",
                         "url" if has_url else None)
    into = option(config, "into", str, None)
    on_missing = option(config, "on_missing", str, "keep")
    if on_missing not in ("keep", "drop", "error"):
        raise spec_error(f"on_missing is keep, drop or error, not {on_missing!r}", "on_missing")
    ttl = duration_option(config, "cache_ttl", 60.0)
    size = option(config, "cache_size", int, 1000)
    cache = TtlCache(ttl, size, context.clock)
    close: Callable[[], None] | None = None
    if has_url:
        url = template_option(config, "url", context)
        headers = {str(name): template_option({"h": value}, "h", context)
                   for name, value in option(config, "headers", dict, {}).items()}
        client = None
        if "connection" in config:
            client = _connection(config, "connection", context, httpx.Client)
        fetch, close = _http_fetch(url, headers, client, duration_option(config, "timeout", 10.0))
    else:
        key = expression_option(config, "key", context)
        assert key is not None
        lookup = _connection(config, "lookup", context, None)

        def fetch(message: Message, scope: Scope) -> tuple[Any, Any]:
            value = key.evaluate(scope)
            if value is None:
                raise PermanentError(f"enrich: the key {key.source!r} is undefined for this message")
            cache_key = json.dumps(value, sort_keys=True, default=str)
            return cache_key, lambda: lookup(value) if lookup is not None else None
    return EnrichProcessor(fetch=fetch, into=into, on_missing=on_missing, cache=cache, close=close)


def _connection(config: dict[str, Any], key: str, context: BuildContext, kind: type | None) -> Any:
    name = option(config, key, str)
    found = context.connections.get(name)
    if found is None:
        if context.validating:
            return None
        known = ", ".join(sorted(context.connections)) or "none"
        raise spec_error(f"no connection named {name!r} (connections: {known})", key)
    if kind is not None and not isinstance(found, kind):
        raise spec_error(f"connection {name!r} is a {type(found).__name__}, not a {kind.__name__}", key)
    if kind is None and not callable(found):
        raise spec_error(f"connection {name!r} is not callable (a lookup is a function of the key)", key)
    return found


# -- split / aggregate -------------------------------------------------------------------------------------------

class SplitProcessor(Processor):
    """One message per element of the array ``items`` yields; ids ``<id>:<n>`` (n from 0). An object element
    becomes the body; any other value becomes ``{"value": element}``. No elements: the message is dropped."""

    name = "split"
    drop_metric = "filtered"

    def __init__(self, items: Expression) -> None:
        self.items = items

    def process(self, message: Message) -> Output:
        value = self.items.evaluate(message)
        if value is None:
            return []
        elements = value if isinstance(value, list) else [value]
        return [(None, message.copy(element if isinstance(element, dict) else {"value": element},
                                    id=f"{message.id}:{index}"))
                for index, element in enumerate(elements)]


def _split(config: dict[str, Any], context: BuildContext) -> SplitProcessor:
    items = expression_option(config, "items", context)
    assert items is not None
    return SplitProcessor(items)


class AggregateProcessor(Processor):
    """Groups messages by ``key`` and emits one message per group when it has ``count`` messages or its ``window``
    (seconds since the group's first message) elapsed: body ``{"key", "count", <into>: [bodies]}``, id
    ``<first id>:agg<count>``, the last message's position."""

    name = "aggregate"
    drop_metric = "held"  # a step counter only: held messages leave later, inside an aggregate

    def __init__(self, key: Expression, *, count: int | None, window: float | None, into: str,
                 clock: Callable[[], float]) -> None:
        self.key, self.count, self.window, self.into, self.clock = key, count, window, into, clock
        self._groups: dict[str, tuple[float, list[Message]]] = {}
        self._lock = threading.Lock()

    def process(self, message: Message) -> Output:
        value = self.key.evaluate(message)
        group = "" if value is None else value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        with self._lock:
            _started, members = self._groups.setdefault(group, (self.clock(), []))
            members.append(message)
            released = []
            if self.count is not None and len(members) >= self.count:
                del self._groups[group]
                released.append(self._emit(group, members))
            released += self._due()
        return released

    def tick(self) -> Output:
        """Release the groups whose window elapsed."""
        with self._lock:
            return self._due()

    def flush(self) -> Output:
        with self._lock:
            groups, self._groups = self._groups, {}
        return [self._emit(group, members) for group, (_, members) in groups.items()]

    def held(self) -> list[Message]:
        """The messages waiting in open groups."""
        with self._lock:
            return [message for _, members in self._groups.values() for message in members]

    def _due(self) -> Output:
        if self.window is None:
            return []
        now = self.clock()
        due = [group for group, (started, _) in self._groups.items() if now - started >= self.window]
        return [self._emit(group, self._groups.pop(group)[1]) for group in due]

    def _emit(self, group: str, members: list[Message]) -> tuple[str | None, Message]:
        first, last = members[0], members[-1]
        body = {"key": group, "count": len(members), self.into: [member.body for member in members]}
        return None, Message(body=body, id=f"{first.id}:agg{len(members)}", headers=dict(first.headers),
                             position=last.position, key=group or None)


def _aggregate(config: dict[str, Any], context: BuildContext) -> AggregateProcessor:
    key = expression_option(config, "key", context, "$key")
    assert key is not None
    count = option(config, "count", int, None)
    if count is not None and count < 1:
        raise spec_error("count must be at least 1", "count")
    window = duration_option(config, "window") if config.get("window") is not None else None
    if window is not None and window <= 0:
        raise spec_error("window must be positive", "window")
    if count is None and window is None:
        raise spec_error("aggregate needs count, window or both (when to emit a group)", "count")
    return AggregateProcessor(key, count=count, window=window, into=option(config, "into", str, "items"),
                              clock=context.clock)


# -- validate / dedupe / transform -------------------------------------------------------------------------------

class ValidateProcessor(Processor):
    """Checks the body against a JSON Schema; a failing message is a permanent error naming the path."""

    name = "validate"

    def __init__(self, validator: Any) -> None:
        self.validator = validator

    def process(self, message: Message) -> Output:
        error = jsonschema.exceptions.best_match(self.validator.iter_errors(message.body))
        if error is None:
            return [(None, message)]
        path = ".".join(str(part) for part in error.absolute_path) or "(body)"
        raise PermanentError(f"schema: {path}: {error.message}")


def _validate(config: dict[str, Any], context: BuildContext) -> ValidateProcessor:
    if ("schema" in config) == ("schema_file" in config):
        raise spec_error("validate needs schema (inline) or schema_file (a JSON or YAML file)", "schema")
    if "schema" in config:
        schema, key = option(config, "schema", dict), "schema"
    else:
        key = "schema_file"
        path = Path(option(config, key, str))
        path = path if path.is_absolute() else Path(context.project_dir) / path
        try:
            import yaml

            schema = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise spec_error(f"cannot read {path}: {exc}", key) from None
        if not isinstance(schema, dict):
            raise spec_error(f"{path} does not hold a JSON Schema object", key)
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        where = ".".join(str(part) for part in exc.absolute_path)
        raise spec_error(f"invalid JSON Schema{' at ' + where if where else ''}: {exc.message}", key) from None
    return ValidateProcessor(cls(schema, format_checker=cls.FORMAT_CHECKER))


class DedupeProcessor(Processor):
    """Drops a message whose ``key`` was seen within ``retention`` (in the middleware store, so across restarts and
    workers). Keys are recorded by :meth:`commit`, after the batch was delivered.

    The runtime hands each batch to :meth:`prepare` first, which looks its keys up in one store transaction, and
    :meth:`commit` records the batch's keys in one transaction; :meth:`process` alone (a replayed message) asks the
    store itself.
    """

    name = "dedupe"
    drop_metric = "deduped"

    def __init__(self, key: Expression, *, retention: float, scope: str, store: Any,
                 clock: Callable[[], float]) -> None:
        self.key, self.retention, self.scope, self.store, self.clock = key, retention, scope, store, clock
        self._pending: list[str] = []
        self._pending_set: set[str] = set()
        # id(message) -> (message, key, seen in the store) for the messages of the last prepare()
        self._prepared: dict[int, tuple[Message, str, bool]] = {}
        self._last_purge = clock()

    def _key_of(self, message: Message) -> str:
        value = self.key.evaluate(message)
        if value is None:
            raise PermanentError(f"dedupe: the key {self.key.source!r} is undefined for this message")
        return value if isinstance(value, str) else json.dumps(value, sort_keys=True)

    def prepare(self, messages: Sequence[Message]) -> None:
        """Evaluate the keys of a batch and look them up in the store in one transaction, for :meth:`process`."""
        self._prepared = {}
        keyed: list[tuple[Message, str]] = []
        for message in messages:
            if message.headers.get(REPLAY_HEADER):
                continue
            try:
                keyed.append((message, self._key_of(message)))
            except Exception:  # process() raises it again, for this message only
                continue
        asked = {key for _, key in keyed if key not in self._pending_set}
        seen = self.store.seen_keys(self.scope, asked, self.retention) if asked else set()
        self._prepared = {id(message): (message, key, key in seen) for message, key in keyed}

    def process(self, message: Message) -> Output:
        if message.headers.get(REPLAY_HEADER):
            return [(None, message)]  # an operator asked for it again
        prepared = self._prepared.pop(id(message), None)
        if prepared is not None and prepared[0] is message:
            _, key, seen = prepared
        else:
            key, seen = self._key_of(message), None
        if key in self._pending_set:
            return []
        if seen is None:
            seen = self.store.is_seen(self.scope, key, self.retention)
        if seen:
            return []
        self._pending.append(key)
        self._pending_set.add(key)
        return [(None, message)]

    def commit(self) -> None:
        """Record the keys let through since the last commit (their messages are delivered or dead-lettered), all in
        one transaction."""
        self._prepared = {}
        if self._pending:
            self.store.record_seen(self.scope, self._pending, self.retention)
        self._pending, self._pending_set = [], set()
        if self.clock() - self._last_purge >= min(self.retention, 3600.0):
            self.store.purge(self.retention, self.scope)
            self._last_purge = self.clock()

    def rollback(self) -> None:
        """Forget keys of an abandoned batch (it will be read again)."""
        self._pending, self._pending_set, self._prepared = [], set(), {}


def _dedupe(config: dict[str, Any], context: BuildContext) -> DedupeProcessor:
    key = expression_option(config, "key", context, "$id")
    assert key is not None
    retention = duration_option(config, "retention", 7 * 86400.0)
    if retention <= 0:
        raise spec_error("retention must be positive", "retention")
    scope = option(config, "scope", str, context.pipeline)
    return DedupeProcessor(key, retention=retention, scope=scope, store=context.store, clock=context.clock)


class TransformProcessor(Processor):
    """Calls a Python function with the message. It answers a dict (the new body), a Message, a list of them
    (several messages; dict items get ids ``<id>:<n>``) or None (drop the message)."""

    name = "transform"
    drop_metric = "filtered"

    def __init__(self, function: Callable[..., Any], options: dict[str, Any], label: str) -> None:
        self.function, self.options, self.label = function, options, label

    def process(self, message: Message) -> Output:
        result = self.function(message, **self.options)
        if result is None:
            return []
        if isinstance(result, dict):
            return [(None, message.copy(result))]
        if isinstance(result, Message):
            return [(None, result)]
        if isinstance(result, list | tuple):
            out: Output = []
            for index, item in enumerate(result):
                if isinstance(item, Message):
                    out.append((None, item))
                elif isinstance(item, dict):
                    out.append((None, message.copy(item, id=f"{message.id}:{index}")))
                else:
                    raise PermanentError(f"transform {self.label}: item {index} is a {type(item).__name__}, "
                                         "not a dict or Message")
            return out
        raise PermanentError(f"transform {self.label} answered a {type(result).__name__}, not a dict, Message, "
                             "list or None")


def resolve_function(reference: str, project_dir: Path) -> Callable[..., Any]:
    """``module:function`` from ``<project>/pipelines/module.py``, else from an importable module."""
    module_name, _, function_name = reference.partition(":")
    if not module_name or not function_name:
        raise spec_error(f"expected module:function, got {reference!r}", "function")
    if (Path(project_dir) / "pipelines" / f"{module_name}.py").is_file():
        module = import_project_module(project_dir, module_name)
    else:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise spec_error(f"cannot import {module_name!r}: {exc}", "function") from None
    target: Any = module
    for part in function_name.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise spec_error(f"{module_name} has no {function_name!r}", "function")
    if not callable(target):
        raise spec_error(f"{reference} is not callable", "function")
    return target  # type: ignore[no-any-return]


def _transform(config: dict[str, Any], context: BuildContext) -> TransformProcessor:
    reference = option(config, "function", str)
    function = resolve_function(reference, context.project_dir)
    options = option(config, "options", dict, {})
    try:
        inspect.signature(function).bind(Message(body={}), **options)
    except TypeError as exc:
        raise spec_error(f"{reference} cannot be called with a message and options {sorted(options)}: {exc}",
                         "options" if options else "function") from None
    except ValueError:
        pass  # builtins without a signature
    return TransformProcessor(function, options, reference)


register_processor("map", _map, keys={"fields", "keep", "key"}, help="new body from JSONata expressions")
register_processor("filter", _filter, keys={"when"}, help="keep messages for which `when` is true")
register_processor("route", _route, keys={"routes", "default"}, help="send messages to named branches")
register_processor("enrich", _enrich, keys={"url", "headers", "timeout", "connection", "lookup", "key", "into",
                                            "on_missing", "cache_ttl", "cache_size"},
                   help="add data from an HTTP GET or a lookup function, cached")
register_processor("split", _split, keys={"items"}, help="one message per array element")
register_processor("aggregate", _aggregate, keys={"key", "count", "window", "into"},
                   help="group messages by key, emit by count or time window")
register_processor("validate", _validate, keys={"schema", "schema_file"}, help="check bodies against a JSON Schema")
register_processor("dedupe", _dedupe, keys={"key", "retention", "scope"}, help="drop messages seen before")
register_processor("transform", _transform, keys={"function", "options"}, help="a Python function of the message")


__all__ = [
    "REPLAY_HEADER",
    "AggregateProcessor",
    "DedupeProcessor",
    "EnrichProcessor",
    "FilterProcessor",
    "MapProcessor",
    "RouteProcessor",
    "SplitProcessor",
    "TransformProcessor",
    "TtlCache",
    "ValidateProcessor",
    "resolve_function",
]
