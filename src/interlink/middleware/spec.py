"""Pipeline definitions: the :class:`Pipeline` model, YAML loading with line numbers, retry policies, options.

A pipeline is written in ``<project>/pipelines/NAME.yaml`` or built in Python; both give the same :class:`Pipeline`::

    name: erp-orders                       # defaults to the file stem
    source: {type: org.pubsub, topic: /event/Order_Request__e}
    steps:
      - {type: map, fields: {OrderNumber__c: "Id & '-ERP'"}}
      - {type: filter, when: "Amount__c > 100"}
    sink: {type: org.upsert, object: Order__c, externalId: ERP_Id__c}
    retry: {attempts: 5, backoff: 1s, max_backoff: 60s}
    batch: 100
    distributed: {ackWait: 30s, maxDeliver: 5, maxAckPending: 20000}   # only used with --bus nats://…

Everything is checked before anything runs, and every error names the file, the line and the key path
(``pipelines/erp.yaml:7: steps[1].when: bad expression 'Amount__c >': ...``): the structure here, the step types,
their keys and their configuration when :func:`~interlink.middleware.registry.build_pipeline` calls the registered
factories. The step registry and building live in :mod:`interlink.middleware.registry` (its names are still
importable from here); this module gives factories their helpers: :func:`spec_error`, :func:`option`,
:func:`duration_option`, :func:`expression_option` and :func:`template_option`.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import yaml

from interlink.middleware.base import PipelineSpecError, Processor, Sink, Source
from interlink.middleware.expressions import (
    DEFAULT_LIMITS,
    Expression,
    Limits,
    Template,
    compile_expression,
    compile_template,
)

if TYPE_CHECKING:  # re-exported lazily (see __getattr__ at the end): the registry imports this module
    from interlink.middleware.registry import (
        BuildContext,
        BuiltPipeline,
        BuiltSink,
        BuiltStep,
        Registration,
        build_pipeline,
        load_connectors,
        register_processor,
        register_sink,
        register_source,
        registered,
        validate_pipeline,
    )

KeyPath = tuple[str | int, ...]
COMMON_STEP_KEYS = frozenset({"type", "name", "retry"})
TOP_KEYS = ("name", "description", "enabled", "source", "steps", "sink", "sinks", "retry", "batch", "poll",
            "expressions", "dependsOn", "schedule", "distributed")
RETRY_KEYS = ("attempts", "backoff", "max_backoff")
DISTRIBUTED_KEYS = ("ackWait", "maxDeliver", "maxAckPending")
#: YAML files of ``pipelines/`` that are not pipelines (named org connections)
RESERVED_STEMS = frozenset({"connections"})
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


# -- errors and configuration helpers for factories ---------------------------------------------------------------

def spec_error(message: str, key: str | KeyPath | None = None) -> PipelineSpecError:
    """A configuration error about ``key`` (``"when"``, ``"fields.Name"`` or a tuple path) of the step being built.

    The builder adds the file, line and the step's key path, so factories only say what is wrong.
    """
    return PipelineSpecError(message, key=tuple(key.split(".")) if isinstance(key, str) else tuple(key or ()))


def parse_duration(value: Any) -> float:
    """Seconds in ``value``: a number (seconds) or text such as ``500ms``, ``30s``, ``5m``, ``1h30m``, ``7d``."""
    if isinstance(value, bool):
        raise ValueError(f"bad duration {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"bad duration {value!r}: negative")
        return float(value)
    text = str(value).strip().lower().replace(" ", "")
    if not text:
        raise ValueError("bad duration '': empty")
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    total, position = 0.0, 0
    for match in _DURATION.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if position != len(text) or position == 0:
        raise ValueError(f"bad duration {value!r}: use a number of seconds or 500ms, 30s, 5m, 2h, 7d")
    return total


_REQUIRED = object()


def option(config: Mapping[str, Any], key: str, kind: type | tuple[type, ...], default: Any = _REQUIRED) -> Any:
    """``config[key]`` checked to be of ``kind`` (ints are accepted as floats); required without ``default``."""
    if key not in config or config[key] is None:
        if default is _REQUIRED:
            raise spec_error(f"{key} is required", key)
        return default
    value = config[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, bool) and bool not in kinds:
        raise spec_error(f"expected {_kind_name(kinds)}, got {value!r}", key)
    if not isinstance(value, kinds):
        raise spec_error(f"expected {_kind_name(kinds)}, got {type(value).__name__} {value!r}", key)
    return value


def _kind_name(kinds: tuple[type, ...]) -> str:
    names = {dict: "a mapping", list: "a list", str: "text", int: "an integer", float: "a number", bool: "true/false"}
    return " or ".join(names.get(kind, kind.__name__) for kind in kinds)


def duration_option(config: Mapping[str, Any], key: str, default: Any = _REQUIRED) -> float:
    """``config[key]`` as seconds (see :func:`parse_duration`)."""
    value = config.get(key)
    if value is None:
        if default is _REQUIRED:
            raise spec_error(f"{key} is required", key)
        return float(default)
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise spec_error(str(exc), key) from None


def expression_option(config: Mapping[str, Any], key: str | KeyPath, context: BuildContext,
                      default: Any = _REQUIRED, *, value: Any = _REQUIRED) -> Expression | None:
    """The JSONata expression at ``key`` of ``config`` (or the given ``value``), compiled with the pipeline's limits."""
    path = tuple(key.split(".")) if isinstance(key, str) else key
    if value is _REQUIRED:
        value = config.get(str(path[0]))
    if value is None:
        if default is _REQUIRED:
            raise spec_error(f"{path[-1]} is required (a JSONata expression)", path)
        return None if default is None else compile_expression(default, where="", limits=context.limits)
    try:
        return compile_expression(value, where="", limits=context.limits)
    except PipelineSpecError as exc:
        raise spec_error(str(exc), path) from None


def template_option(config: Mapping[str, Any], key: str, context: BuildContext) -> Template:
    """The ``{expression}`` template at ``config[key]``."""
    try:
        return compile_template(option(config, key, str), where="", limits=context.limits)
    except PipelineSpecError as exc:
        if exc.key:
            raise
        raise spec_error(str(exc), key) from None


# -- the model ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RetryPolicy:
    """How often a failing step is tried (``attempts`` in all) and how long to wait between tries."""

    attempts: int = 5
    backoff: float = 1.0
    max_backoff: float = 60.0

    def delay(self, failures: int, random: Callable[[], float]) -> float:
        """Seconds to wait after the ``failures``-th failure: exponential backoff, capped, with full jitter."""
        ceiling = min(self.max_backoff, self.backoff * (2 ** max(0, failures - 1)))
        return random() * ceiling

    @classmethod
    def from_config(cls, config: Any, base: RetryPolicy | None = None) -> RetryPolicy:
        """A policy from a ``retry:`` mapping; missing keys come from ``base`` (the pipeline's policy)."""
        if isinstance(config, RetryPolicy):
            return config
        base = base or cls()
        if not isinstance(config, Mapping):
            raise spec_error(f"expected a mapping with {', '.join(RETRY_KEYS)}, got {config!r}")
        unknown = sorted(set(config) - set(RETRY_KEYS))
        if unknown:
            raise spec_error(f"unknown key {unknown[0]!r} (expected {', '.join(RETRY_KEYS)})", unknown[0])
        attempts = option(config, "attempts", int, base.attempts)
        if attempts < 1:
            raise spec_error("attempts must be at least 1", "attempts")
        backoff = duration_option(config, "backoff", base.backoff)
        max_backoff = duration_option(config, "max_backoff", max(base.max_backoff, backoff))
        if max_backoff < backoff:
            raise spec_error("max_backoff must not be less than backoff", "max_backoff")
        return cls(attempts=attempts, backoff=backoff, max_backoff=max_backoff)


@dataclass(frozen=True)
class DistributedOptions:
    """How a pipeline's work queue behaves when it runs on a NATS bus (``distributed:`` in YAML); None leaves the
    process's setting (``--ack-wait``, ``--max-deliver``, ``--max-ack-pending``) in force for that key."""

    ack_wait: float | None = None
    max_deliver: int | None = None
    max_ack_pending: int | None = None

    @classmethod
    def from_config(cls, config: Any) -> DistributedOptions:
        """The options of a ``distributed:`` mapping (``ackWait``, ``maxDeliver``, ``maxAckPending``)."""
        if isinstance(config, DistributedOptions):
            return config
        if config is None:
            return cls()
        if not isinstance(config, Mapping):
            raise spec_error(f"expected a mapping with {', '.join(DISTRIBUTED_KEYS)}, got {config!r}")
        unknown = sorted(str(key) for key in set(config) - set(DISTRIBUTED_KEYS))
        if unknown:
            raise spec_error(f"unknown key {unknown[0]!r} (expected {', '.join(DISTRIBUTED_KEYS)})", unknown[0])
        ack_wait = duration_option(config, "ackWait", None) if config.get("ackWait") is not None else None
        if ack_wait is not None and ack_wait <= 0:
            raise spec_error("ackWait must be more than 0s", "ackWait")
        max_deliver = option(config, "maxDeliver", int, None)
        if max_deliver is not None and max_deliver < 1:
            raise spec_error("maxDeliver must be at least 1", "maxDeliver")
        max_ack_pending = option(config, "maxAckPending", int, None)
        if max_ack_pending is not None and max_ack_pending < 1:
            raise spec_error("maxAckPending must be at least 1", "maxAckPending")
        return cls(ack_wait=ack_wait, max_deliver=max_deliver, max_ack_pending=max_ack_pending)


StepConfig = Mapping[str, Any]


@dataclass
class Pipeline:
    """One pipeline: a source, processing steps and the sink(s) of its branches, with its retry policy and batch.

    Steps, source and sinks are configuration mappings (``{"type": "filter", "when": "..."}``) or, in Python,
    ready-made :class:`Source` / :class:`Processor` / :class:`Sink` objects. Messages of no branch go to ``sink``
    (or ``sinks["default"]``); a ``route`` step's branch ``b`` goes to ``sinks[b]``, else to ``sink``.
    """

    name: str
    source: StepConfig | Source
    steps: list[StepConfig | Processor] = field(default_factory=list)
    sink: StepConfig | Sink | None = None
    sinks: dict[str, StepConfig | Sink] = field(default_factory=dict)
    retry: RetryPolicy | Mapping[str, Any] = field(default_factory=RetryPolicy)
    batch: int = 100
    poll: float | str = 1.0
    description: str = ""
    enabled: bool = True
    limits: Limits = DEFAULT_LIMITS
    path: Path | None = None
    lines: dict[KeyPath, int] = field(default_factory=dict, repr=False)
    # Batch jobs (``interlink sync run``): pipelines that must succeed first, and a cron schedule (UTC).
    depends_on: list[str] = field(default_factory=list)
    schedule: str | None = None
    # On a NATS bus (``--bus nats://…``): this pipeline's work-queue settings, over the process's flags.
    distributed: DistributedOptions | Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise self.error(f"bad pipeline name {self.name!r}: use letters, digits, '_', '-' and '.'", "name")
        self.retry = self._checked(lambda: RetryPolicy.from_config(self.retry), "retry")
        self.distributed = self._checked(lambda: DistributedOptions.from_config(self.distributed), "distributed")
        try:
            self.poll = parse_duration(self.poll)
        except ValueError as exc:
            raise self.error(str(exc), "poll") from None
        if isinstance(self.batch, bool) or not isinstance(self.batch, int) or self.batch < 1:
            raise self.error(f"batch must be a positive integer, got {self.batch!r}", "batch")
        if not isinstance(self.source, Source | Mapping):
            raise self.error("source must be a mapping with a type (or a Source object)", "source")
        if self.sink is None and not self.sinks:
            raise self.error("a pipeline needs a sink (or sinks per route branch)", "sink")
        if not isinstance(self.depends_on, list) or not all(isinstance(d, str) and _NAME.match(d)
                                                            for d in self.depends_on):
            raise self.error("dependsOn is a list of pipeline names", "dependsOn")
        if self.name in self.depends_on:
            raise self.error("a pipeline cannot depend on itself", "dependsOn")
        if self.schedule is not None:
            from croniter import croniter

            if not isinstance(self.schedule, str) or not croniter.is_valid(self.schedule):
                raise self.error(f"schedule is a cron expression such as '0 2 * * *', not {self.schedule!r}",
                                 "schedule")

    def _checked(self, build: Callable[[], Any], *path: str | int) -> Any:
        try:
            return build()
        except PipelineSpecError as exc:
            raise self.error(str(exc), *path, *exc.key) from None

    @property
    def retry_policy(self) -> RetryPolicy:
        """The pipeline's retry policy (``retry`` after checking)."""
        assert isinstance(self.retry, RetryPolicy)
        return self.retry

    @property
    def distributed_options(self) -> DistributedOptions:
        """The pipeline's ``distributed:`` settings (after checking)."""
        assert isinstance(self.distributed, DistributedOptions)
        return self.distributed

    @property
    def poll_seconds(self) -> float:
        """How long one source read waits for a first message."""
        return float(self.poll)  # type: ignore[arg-type]

    def line_of(self, *path: str | int) -> int | None:
        """The line of the deepest part of ``path`` the YAML file has (None for pipelines built in Python)."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None

    def locate(self, *path: str | int) -> str:
        """``file:line: key.path`` (or ``pipeline NAME: key.path``) for error messages."""
        keys = format_key_path(path)
        if self.path is None:
            return f"pipeline {self.name}" + (f": {keys}" if keys else "")
        line = self.line_of(*path)
        return f"{self.path}:{line or 1}" + (f": {keys}" if keys else "")

    def error(self, message: str, *path: str | int) -> PipelineSpecError:
        """A :class:`PipelineSpecError` located at ``path``, with ``file``, ``line`` and ``key_path`` attributes."""
        return PipelineSpecError(f"{self.locate(*path)}: {message}", file=self.path,
                                 line=self.line_of(*path) if self.path else None, key_path=format_key_path(path))


def format_key_path(path: Iterable[str | int]) -> str:
    """``("steps", 1, "when")`` -> ``steps[1].when``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# -- YAML loading ------------------------------------------------------------------------------------------------

def _file_error(path: Path | None, line: int | None, message: str) -> PipelineSpecError:
    where = f"{path}:{line or 1}" if path is not None else "pipeline"
    return PipelineSpecError(f"{where}: {message}", file=path, line=line)


def _walk(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], source: Path | None) -> None:
    """Record the line of every key and list item, and reject duplicate keys (YAML would keep the last silently)."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                raise _file_error(source, key_node.start_mark.line + 1,
                                  f"{format_key_path((*path, key))}: duplicate key {key!r}")
            seen.add(key)
            lines[(*path, key)] = key_node.start_mark.line + 1
            _walk(value_node, (*path, key), lines, source)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            _walk(item, (*path, index), lines, source)


def load_pipeline_text(text: str, path: Path | None = None, *, default_name: str | None = None) -> Pipeline:
    """A :class:`Pipeline` from YAML ``text`` (``path`` is only for messages); the structure is checked."""
    loader = yaml.SafeLoader(text)
    lines: dict[KeyPath, int] = {(): 1}
    try:
        node = loader.get_single_node()
        if node is None:
            raise _file_error(path, 1, "the file is empty")
        _walk(node, (), lines, path)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise _file_error(path, mark.line + 1 if mark else None, f"invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise _file_error(path, None, f"invalid YAML: {exc}") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise _file_error(path, 1, f"a pipeline is a mapping (name, source, steps, sink), not {type(data).__name__}")
    return _pipeline_from_data(data, path, lines, default_name or (path.stem if path else "pipeline"))


def load_pipeline_file(path: Path) -> Pipeline:
    """The pipeline defined in one YAML file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise _file_error(Path(path), None, f"cannot read: {exc.strerror or exc}") from None
    return load_pipeline_text(text, Path(path), default_name=Path(path).stem)


def _pipeline_from_data(data: dict[str, Any], path: Path | None, lines: dict[KeyPath, int],
                        default_name: str) -> Pipeline:
    shell = _Locator(path, lines, str(data.get("name") or default_name))
    for key in data:
        if key not in TOP_KEYS:
            raise shell.error(f"unknown key {key!r} (expected one of {', '.join(TOP_KEYS)})", str(key))
    source = data.get("source")
    if source is None:
        raise shell.error("source is required", "source")
    _check_step_mapping(shell, source, "source")
    steps = data.get("steps") or []
    if not isinstance(steps, list):
        raise shell.error(f"steps is a list of mappings, not {type(steps).__name__}", "steps")
    for index, step in enumerate(steps):
        _check_step_mapping(shell, step, "steps", index)
    sinks = data.get("sinks") or {}
    if not isinstance(sinks, dict):
        raise shell.error("sinks maps branch names to sinks", "sinks")
    for branch, sink in sinks.items():
        _check_step_mapping(shell, sink, "sinks", str(branch))
    if data.get("sink") is not None:
        _check_step_mapping(shell, data["sink"], "sink")
    limits = DEFAULT_LIMITS
    if data.get("expressions") is not None:
        limits = _limits(shell, data["expressions"])
    for key, kind in (("description", str), ("enabled", bool)):
        if key in data and not isinstance(data[key], kind):
            raise shell.error(f"expected {_kind_name((kind,))}, got {data[key]!r}", key)
    name = data.get("name", default_name)
    return Pipeline(name=name if isinstance(name, str) else str(name), source=source, steps=list(steps),
                    sink=data.get("sink"), sinks={str(k): v for k, v in sinks.items()},
                    retry=data.get("retry") or RetryPolicy(), batch=data.get("batch", 100), poll=data.get("poll", 1.0),
                    description=data.get("description", ""), enabled=data.get("enabled", True), limits=limits,
                    path=path, lines=lines, depends_on=data.get("dependsOn") or [], schedule=data.get("schedule"),
                    distributed=data.get("distributed"))


@dataclass
class _Locator:
    """Locates errors in a file before its :class:`Pipeline` exists."""

    path: Path | None
    lines: dict[KeyPath, int]
    name: str

    def error(self, message: str, *keys: str | int) -> PipelineSpecError:
        line = next((self.lines[keys[:end]] for end in range(len(keys), -1, -1) if keys[:end] in self.lines), None)
        error = _file_error(self.path, line, f"{format_key_path(keys)}: {message}" if keys else message)
        error.key_path = format_key_path(keys)
        return error


def _check_step_mapping(shell: _Locator, value: Any, *path: str | int) -> None:
    if not isinstance(value, dict):
        raise shell.error(f"expected a mapping with a type, got {type(value).__name__}", *path)
    kind = value.get("type")
    if not isinstance(kind, str) or not kind:
        raise shell.error("type is required (text)", *path, "type")


def _limits(shell: _Locator, value: Any) -> Limits:
    if not isinstance(value, dict):
        raise shell.error("expected a mapping with timeout and max_depth", "expressions")
    for key in value:
        if key not in ("timeout", "max_depth"):
            raise shell.error(f"unknown key {key!r} (expected timeout, max_depth)", "expressions", str(key))
    try:
        timeout = parse_duration(value.get("timeout", DEFAULT_LIMITS.timeout_ms / 1000))
    except ValueError as exc:
        raise shell.error(str(exc), "expressions", "timeout") from None
    depth = value.get("max_depth", DEFAULT_LIMITS.max_depth)
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 10:
        raise shell.error(f"max_depth must be an integer of at least 10, got {depth!r}", "expressions", "max_depth")
    return Limits(timeout_ms=max(1, round(timeout * 1000)), max_depth=depth)


def discover_pipelines(project_dir: Path) -> list[Path]:
    """The pipeline files of a project: ``<project>/pipelines/*.yaml`` (and ``*.yml``) but ``connections.yaml``."""
    folder = Path(project_dir) / "pipelines"
    if not folder.is_dir():
        return []
    return sorted(path for path in [*folder.glob("*.yaml"), *folder.glob("*.yml")]
                  if path.stem not in RESERVED_STEMS)


def load_project(project_dir: Path) -> tuple[list[Pipeline], list[PipelineSpecError]]:
    """Every pipeline of a project (YAML files, then ``Pipeline`` objects that ``pipelines/*.py`` define), and the
    errors of those that failed to load. A name used twice is an error on the second definition."""
    pipelines: list[Pipeline] = []
    errors: list[PipelineSpecError] = []
    names: dict[str, Pipeline] = {}

    def add(pipeline: Pipeline) -> None:
        if pipeline.name in names:
            first = names[pipeline.name]
            errors.append(pipeline.error(f"pipeline name {pipeline.name!r} is already used by "
                                         f"{first.path or 'a Python pipeline'}", "name"))
            return
        names[pipeline.name] = pipeline
        pipelines.append(pipeline)

    for path in discover_pipelines(project_dir):
        try:
            add(load_pipeline_file(path))
        except PipelineSpecError as exc:
            errors.append(exc)
    folder = Path(project_dir) / "pipelines"
    for path in sorted(folder.glob("*.py")) if folder.is_dir() else []:
        try:
            module = import_project_module(project_dir, path.stem)
        except PipelineSpecError as exc:
            errors.append(exc)
            continue
        for value in vars(module).values():
            found = value if isinstance(value, list | tuple) else [value]
            for item in found:
                if isinstance(item, Pipeline):
                    add(item)
    return pipelines, errors


_project_modules: dict[Path, tuple[float, ModuleType]] = {}


def import_project_module(project_dir: Path, name: str) -> ModuleType:
    """Import ``<project>/pipelines/NAME.py`` (again when the file changed); a failure is a spec error."""
    path = (Path(project_dir) / "pipelines" / f"{name}.py").resolve()
    if not path.is_file():
        raise _file_error(path, None, "no such file")
    mtime = path.stat().st_mtime
    cached = _project_modules.get(path)
    if cached and cached[0] == mtime:
        return cached[1]
    module_name = f"interlink_project_pipelines_{abs(hash(str(path.parent))):x}.{name}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise _file_error(path, None, "cannot import")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))  # project modules may import one another
    try:
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        line = getattr(exc, "lineno", None)
        raise _file_error(path, line, f"cannot import: {type(exc).__name__}: {exc}") from None
    finally:
        sys.path.remove(str(path.parent))
    _project_modules[path] = (mtime, module)
    return module


def __getattr__(name: str) -> Any:
    """The registry's names (those of ``__all__`` not defined here), imported on first use: importing the registry
    while this module loads would be a cycle, since the registry builds on this module."""
    if name in __all__:
        from interlink.middleware import registry

        return getattr(registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BuildContext", "BuiltPipeline", "BuiltSink", "BuiltStep", "DistributedOptions", "Pipeline", "Registration",
    "RetryPolicy",
    "build_pipeline", "discover_pipelines", "duration_option", "expression_option", "format_key_path",
    "import_project_module", "load_connectors", "load_pipeline_file", "load_pipeline_text", "load_project", "option",
    "parse_duration", "register_processor", "register_sink", "register_source", "registered", "spec_error",
    "template_option", "validate_pipeline",
]
