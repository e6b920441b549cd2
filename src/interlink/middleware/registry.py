"""The step registry and pipeline building: the ``type:`` names, and how a pipeline becomes live objects.

Connectors plug in through the registry: ``register_source("webhook", factory, keys={...})`` and likewise
:func:`register_processor` and :func:`register_sink`. A factory receives the step's configuration (the step's
mapping without the keys every step has: ``type``, ``name``, ``retry``) and a :class:`BuildContext`, and answers
the Source / Processor / Sink. It checks its configuration and raises
:func:`~interlink.middleware.spec.spec_error` (with the offending key) for bad values; it does no I/O (connecting
belongs in ``Source.open`` or the first write), so validating a project never touches remote systems.
:func:`build_pipeline` turns a :class:`~interlink.middleware.spec.Pipeline` into a :class:`BuiltPipeline` through
the registered factories, locating every error at its file, line and key path; :func:`validate_pipeline` does the
same and closes the result.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import pkgutil
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interlink.middleware.base import PipelineSpecError, Processor, Sink, Source
from interlink.middleware.expressions import DEFAULT_LIMITS, Limits
from interlink.middleware.spec import COMMON_STEP_KEYS, KeyPath, Pipeline, RetryPolicy

if TYPE_CHECKING:
    from interlink.middleware.store import MiddlewareStore

log = logging.getLogger("interlink.middleware")


# -- the registry ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Registration:
    """A step type: its factory, the keys its configuration may have (None: the factory checks), a help line."""

    kind: str
    name: str
    factory: Callable[[dict[str, Any], BuildContext], Any]
    keys: frozenset[str] | None
    help: str = ""


_registry: dict[str, dict[str, Registration]] = {"source": {}, "processor": {}, "sink": {}}
_unavailable: dict[str, str] = {}


def _identity(factory: Callable[..., Any]) -> str:
    """Where a factory is defined: registering it again (a module imported twice) is not a conflict."""
    return f"{getattr(factory, '__module__', '?')}.{getattr(factory, '__qualname__', repr(factory))}"


def _register(kind: str, name: str, factory: Callable[..., Any], keys: Iterable[str] | None, help: str,
              replace: bool) -> None:
    previous = _registry[kind].get(name)
    if not replace and previous is not None and _identity(previous.factory) != _identity(factory):
        raise ValueError(f"{kind} type {name!r} is already registered (by {_identity(previous.factory)})")
    _registry[kind][name] = Registration(kind, name, factory, None if keys is None else frozenset(keys), help)


def register_source(name: str, factory: Callable[[dict[str, Any], BuildContext], Source], *,
                    keys: Iterable[str] | None = None, help: str = "", replace: bool = False) -> None:
    """Make ``type: NAME`` available as a pipeline source. ``keys``: the configuration keys it accepts."""
    _register("source", name, factory, keys, help, replace)


def register_processor(name: str, factory: Callable[[dict[str, Any], BuildContext], Processor], *,
                       keys: Iterable[str] | None = None, help: str = "", replace: bool = False) -> None:
    """Make ``type: NAME`` available as a pipeline step."""
    _register("processor", name, factory, keys, help, replace)


def register_sink(name: str, factory: Callable[[dict[str, Any], BuildContext], Sink], *,
                  keys: Iterable[str] | None = None, help: str = "", replace: bool = False) -> None:
    """Make ``type: NAME`` available as a pipeline sink."""
    _register("sink", name, factory, keys, help, replace)


def registered(kind: str) -> dict[str, Registration]:
    """The registered types of ``kind`` (source, processor or sink), after loading the built-in connectors."""
    load_connectors()
    return dict(_registry[kind])


_loaded = False


def load_connectors() -> dict[str, str]:
    """Import the built-in steps and connectors (and ``interlink.middleware`` entry points) so they register;
    answer the modules that could not be imported, with why (a missing optional dependency)."""
    global _loaded
    if _loaded:
        return dict(_unavailable)
    _loaded = True
    names = ["interlink.middleware.processors"]
    for package in ("interlink.middleware.sources", "interlink.middleware.sinks"):
        try:
            imported = importlib.import_module(package)
        except ImportError:
            continue
        # A package may register its connectors lazily (register_all + CONNECTORS: kind -> (module, factory)),
        # so their dependencies load only when a pipeline uses them; other modules register on import.
        lazy = {module for module, _ in getattr(imported, "CONNECTORS", {}).values()}
        register_all = getattr(imported, "register_all", None)
        if callable(register_all):
            try:
                register_all(sys.modules[__name__])
            except Exception as exc:
                _unavailable[package] = f"{type(exc).__name__}: {exc}"
        names += [f"{package}.{info.name}" for info in pkgutil.iter_modules(imported.__path__)
                  if not info.name.startswith("_") and f"{package}.{info.name}" not in lazy]
    for module in names:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                _unavailable[module] = f"{exc}"
        except Exception as exc:  # a broken connector must not take the others down
            _unavailable[module] = f"{type(exc).__name__}: {exc}"
            log.warning("middleware connector %s failed to load: %s", module, exc)
    for entry in importlib.metadata.entry_points(group="interlink.middleware"):
        try:
            entry.load()
        except Exception as exc:
            _unavailable[entry.value] = f"{type(exc).__name__}: {exc}"
    return dict(_unavailable)


# -- building ----------------------------------------------------------------------------------------------------

@dataclass
class BuildContext:
    """What a factory may use: the middleware store, the pipeline's name, named connections (org clients, HTTP
    clients, lookup functions), the project directory, the data directory (local state such as spools) and the
    clock. ``validating`` is True when the pipeline is only being checked: factories must not require live
    connections then."""

    store: MiddlewareStore
    pipeline: str
    connections: Mapping[str, Any] = field(default_factory=dict)
    project_dir: Path = Path(".")
    clock: Callable[[], float] = time.time
    limits: Limits = DEFAULT_LIMITS
    validating: bool = False
    data_dir: Path | None = None


@dataclass
class BuiltStep:
    """A processor with its name, position and retry policy."""

    name: str
    type: str
    index: int
    processor: Processor
    retry: RetryPolicy


@dataclass
class BuiltSink:
    """A sink with the branch it serves (None: the default sink) and its retry policy."""

    name: str
    branch: str | None
    sink: Sink
    retry: RetryPolicy


@dataclass
class BuiltPipeline:
    """A pipeline's live objects."""

    pipeline: Pipeline
    source: Source
    source_type: str
    steps: list[BuiltStep]
    sinks: dict[str | None, BuiltSink]
    source_retry: RetryPolicy | None = None

    def sink_for(self, branch: str | None) -> BuiltSink | None:
        """The sink of ``branch``: its own, else the default one."""
        return self.sinks.get(branch) or self.sinks.get(None)

    def close(self) -> None:
        """Close every step, logging (not raising) failures so the others still close."""
        closers: list[tuple[str, Callable[[], None]]] = [("source", self.source.close)]
        closers += [(step.name, step.processor.close) for step in self.steps]
        closers += [(built.name, built.sink.close) for built in self.sinks.values()]
        for name, close in closers:
            try:
                close()
            except Exception:
                log.exception("pipeline %s: closing %s failed", self.pipeline.name, name)


def _build_one(pipeline: Pipeline, kind: str, config: Any, context: BuildContext, path: KeyPath) -> tuple[Any, str]:
    """Build one step from its mapping (or pass an object through); answer it and its type name."""
    expected = {"source": Source, "processor": Processor, "sink": Sink}[kind]
    if isinstance(config, expected):
        return config, getattr(config, "name", kind)
    if not isinstance(config, Mapping) or not isinstance(config.get("type"), str):
        raise pipeline.error(f"expected a mapping with a type or a {expected.__name__} object", *path)
    kind_name = config["type"]
    registration = _registry[kind].get(kind_name)
    if registration is None:
        known = ", ".join(sorted(_registry[kind])) or "none"
        hint = next((f" ({why})" for module, why in _unavailable.items() if module.rsplit(".", 1)[-1] in kind_name),
                    "")
        raise pipeline.error(f"unknown {kind} type {kind_name!r}{hint} (known: {known})", *path, "type")
    own = {key: value for key, value in config.items() if key not in COMMON_STEP_KEYS}
    if registration.keys is not None:
        for key in own:
            if key not in registration.keys:
                allowed = ", ".join(sorted(registration.keys | COMMON_STEP_KEYS))
                raise pipeline.error(f"unknown key {key!r} for {kind_name} (expected {allowed})", *path, str(key))
    try:
        built = registration.factory(dict(own), context)
    except PipelineSpecError as exc:
        raise pipeline.error(str(exc), *path, *exc.key) from None
    except Exception as exc:
        raise pipeline.error(f"cannot build {kind_name}: {type(exc).__name__}: {exc}", *path) from exc
    if not isinstance(built, expected):
        raise pipeline.error(f"the {kind_name} factory answered {type(built).__name__}, not a {expected.__name__}",
                             *path)
    return built, kind_name


def _step_retry(pipeline: Pipeline, config: Any, path: KeyPath) -> RetryPolicy:
    if not isinstance(config, Mapping) or config.get("retry") is None:
        return pipeline.retry_policy
    try:
        return RetryPolicy.from_config(config["retry"], pipeline.retry_policy)
    except PipelineSpecError as exc:
        raise pipeline.error(str(exc), *path, "retry", *exc.key) from None


def _step_name(config: Any, default: str) -> str:
    if isinstance(config, Mapping) and isinstance(config.get("name"), str) and config["name"]:
        return str(config["name"])
    return default


def build_pipeline(pipeline: Pipeline, context: BuildContext) -> BuiltPipeline:
    """Build every step of ``pipeline`` through the registry; any problem is a located :class:`PipelineSpecError`.

    Nothing is opened: the runtime opens the source. On an error the steps built so far are closed.
    """
    load_connectors()
    context.limits = pipeline.limits
    built: list[Any] = []
    try:
        source, source_type = _build_one(pipeline, "source", pipeline.source, context, ("source",))
        built.append(source)
        steps: list[BuiltStep] = []
        for index, config in enumerate(pipeline.steps):
            path: KeyPath = ("steps", index)
            processor, kind = _build_one(pipeline, "processor", config, context, path)
            built.append(processor)
            steps.append(BuiltStep(_step_name(config, f"{kind}[{index}]"), kind, index, processor,
                                   _step_retry(pipeline, config, path)))
        sinks: dict[str | None, BuiltSink] = {}
        targets: list[tuple[str | None, Any, KeyPath]] = []
        if pipeline.sink is not None:
            targets.append((None, pipeline.sink, ("sink",)))
        targets += [(None if branch == "default" and pipeline.sink is None else branch, config, ("sinks", branch))
                    for branch, config in pipeline.sinks.items()]
        for branch, config, path in targets:
            sink, kind = _build_one(pipeline, "sink", config, context, path)
            built.append(sink)
            default_name = "sink" if branch is None else f"sink:{branch}"
            sinks[branch] = BuiltSink(_step_name(config, default_name), branch, sink,
                                      _step_retry(pipeline, config, path))
        result = BuiltPipeline(pipeline, source, source_type, steps, sinks,
                               _step_retry(pipeline, pipeline.source, ("source",)))
        _check_branches(result)
        return result
    except BaseException:
        for item in built:
            try:
                item.close()
            except Exception:
                log.debug("closing a half-built step failed", exc_info=True)
        raise


def _check_branches(built: BuiltPipeline) -> None:
    """Every branch a step can send to needs a sink; a pipeline without route steps needs a default sink."""
    pipeline = built.pipeline
    for step in built.steps:
        for branch in step.processor.branches or ():
            if branch is not None and built.sink_for(branch) is None:
                raise pipeline.error(f"branch {branch!r} has no sink: add sinks.{branch} or a default sink",
                                     "steps", step.index)
    routes_everything = any(step.processor.routes_everything for step in built.steps)
    if None not in built.sinks and not routes_everything:
        raise pipeline.error("messages that no route sends to a branch need a default sink (sink, or "
                             "sinks.default)", "sinks")


def validate_pipeline(pipeline: Pipeline, context: BuildContext) -> None:
    """Check ``pipeline`` completely (types, keys, configuration, expressions, branches) without running it."""
    context.validating = True
    build_pipeline(pipeline, context).close()


__all__ = [
    "BuildContext",
    "BuiltPipeline",
    "BuiltSink",
    "BuiltStep",
    "Registration",
    "build_pipeline",
    "load_connectors",
    "register_processor",
    "register_sink",
    "register_source",
    "registered",
    "validate_pipeline",
]
