"""Pipeline definitions: YAML and Python give the same model, and every mistake is reported with its file, line and
key path before anything runs."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from interlink.middleware.base import Delivery, Message, PipelineSpecError, Processor, Sink, Source
from interlink.middleware.spec import (
    BuildContext,
    DistributedOptions,
    Pipeline,
    RetryPolicy,
    build_pipeline,
    discover_pipelines,
    load_pipeline_file,
    load_pipeline_text,
    load_project,
    option,
    parse_duration,
    register_sink,
    register_source,
    registered,
    spec_error,
    validate_pipeline,
)
from interlink.middleware.store import MiddlewareStore


class ListSource(Source):
    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    def read(self, max_messages: int, timeout: float) -> list[Message]:
        return []


class NullSink(Sink):
    def write(self, messages: Sequence[Message]) -> list[Delivery]:
        return [Delivery() for _ in messages]


def _list_source(config: dict[str, Any], context: BuildContext) -> ListSource:
    items = option(config, "items", list, [])
    if option(config, "limit", int, 10) < 1:
        raise spec_error("limit must be positive", "limit")
    return ListSource(items)


register_source("test.list", _list_source, keys={"items", "limit"}, replace=True)
register_sink("test.null", lambda config, context: NullSink(), keys={"label"}, replace=True)

EXAMPLE = """\
name: erp-orders
source: {type: test.list, items: [{Id: a}]}
steps:
  - {type: map, fields: {OrderNumber__c: "Id & '-ERP'", Amount__c: "Amount__c * 1.2"}}
  - {type: filter, when: "Amount__c > 100"}
  - {type: dedupe, key: "$id", retention: 7d}
  - {type: route, routes: {big: "Amount__c > 1000"}, default: small}
sinks:
  big: {type: test.null}
  small: {type: test.null, retry: {attempts: 2}}
retry: {attempts: 5, backoff: 1s, max_backoff: 60s}
batch: 100
"""


@pytest.fixture
def context(tmp_path: Path) -> Iterator[BuildContext]:
    with MiddlewareStore.open_url("sqlite://") as store:
        yield BuildContext(store=store, pipeline="test", project_dir=tmp_path)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / "pipelines" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def error_of(text: str, context: BuildContext, path: Path | None = None) -> PipelineSpecError:
    with pytest.raises(PipelineSpecError) as caught:
        target = path or Path("pipelines/p.yaml")
        validate_pipeline(load_pipeline_text(textwrap.dedent(text), target), context)
    return caught.value


def test_the_example_loads_and_builds(context: BuildContext) -> None:
    pipeline = load_pipeline_text(EXAMPLE, Path("pipelines/erp.yaml"))
    assert pipeline.name == "erp-orders" and pipeline.batch == 100
    assert pipeline.retry == RetryPolicy(attempts=5, backoff=1.0, max_backoff=60.0)
    built = build_pipeline(pipeline, context)
    assert [step.name for step in built.steps] == ["map[0]", "filter[1]", "dedupe[2]", "route[3]"]
    assert set(built.sinks) == {"big", "small"}
    assert built.sinks["small"].retry.attempts == 2 and built.sinks["big"].retry.attempts == 5
    assert built.source_type == "test.list"
    built.close()


def test_the_name_defaults_to_the_file_stem(tmp_path: Path) -> None:
    path = write(tmp_path, "nightly-sync.yaml", "source: {type: test.list}\nsink: {type: test.null}\n")
    assert load_pipeline_file(path).name == "nightly-sync"


@pytest.mark.parametrize(("text", "line", "message"), [
    ("source: {type: test.list}\nsink: {type: test.null}\nbatchsize: 5\n", 3, "unknown key 'batchsize'"),
    ("source: {type: test.list}\nsink: {type: test.null}\nretry: {attempts: 3, backoff: 5 parsecs}\n", 3,
     "retry.backoff: bad duration '5 parsecs'"),
    ("source: {type: test.list}\nsink: {type: test.null}\nretry:\n  attempts: 3\n  tries: 2\n", 5,
     "retry.tries: unknown key 'tries'"),
    ("source: {type: test.list}\nsink: {type: test.null}\nbatch: 0\n", 3, "batch must be a positive integer"),
    ("source: {type: test.list}\nsteps:\n  - {when: x}\nsink: {type: test.null}\n", 3,
     r"steps\[0\]\.type: type is required"),
    ("source: {type: test.list}\nsteps: {type: map}\nsink: {type: test.null}\n", 2, "steps is a list"),
    ("source: {type: test.list}\n", 1, "needs a sink"),
    ("steps: []\nsink: {type: test.null}\n", 1, "source is required"),
    ("source: {type: test.list}\nsink: {type: test.null}\nsink: {type: test.null}\n", 3, "duplicate key 'sink'"),
    ("source: {type: test.list\nsink: x\n", 2, "invalid YAML"),
    ("name: 'bad name!'\nsource: {type: test.list}\nsink: {type: test.null}\n", 1, "bad pipeline name"),
    ("source: {type: test.list}\nsink: {type: test.null}\nexpressions: {timeout: 2s, depth: 3}\n", 3,
     "unknown key 'depth'"),
    ("source: {type: test.list}\nsink: {type: test.null}\ndistributed:\n  ackWait: 10s\n  maxAckPendin: 5\n", 5,
     "distributed.maxAckPendin: unknown key 'maxAckPendin' \\(expected ackWait, maxDeliver, maxAckPending\\)"),
    ("source: {type: test.list}\nsink: {type: test.null}\ndistributed:\n  ackWait: soon\n", 4,
     "distributed.ackWait: bad duration 'soon'"),
    ("source: {type: test.list}\nsink: {type: test.null}\ndistributed:\n  ackWait: 0s\n", 4,
     "distributed.ackWait: ackWait must be more than 0s"),
    ("source: {type: test.list}\nsink: {type: test.null}\ndistributed: {maxDeliver: 0}\n", 3,
     "distributed.maxDeliver: maxDeliver must be at least 1"),
    ("source: {type: test.list}\nsink: {type: test.null}\ndistributed:\n  maxAckPending: lots\n", 4,
     "distributed.maxAckPending: expected an integer, got str 'lots'"),
    ("source: {type: test.list}\nsink: {type: test.null}\ndistributed: 5\n", 3,
     "distributed: expected a mapping with ackWait"),
])
def test_structure_errors_name_file_line_and_key(text: str, line: int, message: str) -> None:
    with pytest.raises(PipelineSpecError, match=message) as caught:
        load_pipeline_text(text, Path("pipelines/p.yaml"))
    assert str(caught.value).startswith(f"pipelines/p.yaml:{line}:")
    assert caught.value.line == line


def test_distributed_settings_of_a_pipeline_are_read_and_default_to_the_process_ones() -> None:
    pipeline = load_pipeline_text("source: {type: test.list}\nsink: {type: test.null}\n"
                                  "distributed: {ackWait: 1m, maxDeliver: 3, maxAckPending: 50000}\n")
    assert pipeline.distributed_options == DistributedOptions(ack_wait=60.0, max_deliver=3, max_ack_pending=50000)
    plain = load_pipeline_text("source: {type: test.list}\nsink: {type: test.null}\ndistributed: {maxDeliver: 2}\n")
    assert plain.distributed_options == DistributedOptions(max_deliver=2)  # the others: the process's flags
    python = Pipeline(name="p", source={"type": "test.list"}, sink={"type": "test.null"},
                      distributed={"ackWait": "500ms"})
    assert python.distributed_options.ack_wait == 0.5
    assert Pipeline(name="q", source={"type": "test.list"}, sink={"type": "test.null"}).distributed_options == \
        DistributedOptions()


def test_unknown_step_types_list_the_known_ones(context: BuildContext) -> None:
    error = error_of("""\
        source: {type: test.list}
        steps:
          - {type: map, fields: {a: b}}
          - {type: mapp, fields: {a: b}}
        sink: {type: test.null}
        """, context)
    assert str(error).startswith("pipelines/p.yaml:4: steps[1].type: unknown processor type 'mapp'")
    assert "filter" in str(error) and "map" in str(error)
    sink_error = error_of("source: {type: test.list}\nsink: {type: nowhere}\n", context)
    assert str(sink_error).startswith("pipelines/p.yaml:2: sink.type: unknown sink type 'nowhere'")


def test_unknown_step_keys_are_errors(context: BuildContext) -> None:
    error = error_of("""\
        source: {type: test.list}
        steps:
          - type: filter
            when: "a > 1"
            whenn: "b"
        sink: {type: test.null}
        """, context)
    assert str(error).startswith("pipelines/p.yaml:5: steps[0].whenn: unknown key 'whenn' for filter")


def test_bad_expressions_point_at_their_key(context: BuildContext) -> None:
    error = error_of("""\
        source: {type: test.list}
        steps:
          - type: map
            fields:
              Name: "Id & '-X'"
              Amount: "Amount *"
          - {type: filter, when: "a >"}
        sink: {type: test.null}
        """, context)
    assert str(error).startswith("pipelines/p.yaml:6: steps[0].fields.Amount: bad expression 'Amount *'")
    filter_error = error_of("""\
        source: {type: test.list}
        steps:
          - {type: filter, when: "a >"}
        sink: {type: test.null}
        """, context)
    assert str(filter_error).startswith("pipelines/p.yaml:3: steps[0].when: bad expression 'a >'")


def test_factory_errors_are_located_at_the_key(context: BuildContext) -> None:
    error = error_of("""\
        source:
          type: test.list
          limit: 0
        steps:
          - {type: dedupe, retention: forever}
        sink: {type: test.null}
        """, context)
    assert str(error) == "pipelines/p.yaml:3: source.limit: limit must be positive"
    dedupe_error = error_of("""\
        source: {type: test.list}
        steps:
          - {type: dedupe, retention: forever}
        sink: {type: test.null}
        """, context)
    assert str(dedupe_error).startswith("pipelines/p.yaml:3: steps[0].retention: bad duration 'forever'")


def test_branches_without_their_own_sink_use_the_default_one(context: BuildContext) -> None:
    pipeline = load_pipeline_text(textwrap.dedent("""\
        source: {type: test.list}
        steps:
          - {type: route, routes: {big: "a > 1", huge: "a > 100"}}
        sinks:
          big: {type: test.null}
        sink: {type: test.null}
        """), Path("pipelines/p.yaml"))
    built = build_pipeline(pipeline, context)
    assert built.sink_for("huge") is built.sinks[None] and built.sink_for("big") is built.sinks["big"]
    built.close()


def test_branches_without_a_sink_and_default_are_errors(context: BuildContext) -> None:
    error = error_of("""\
        source: {type: test.list}
        steps:
          - {type: route, routes: {big: "a > 1"}, default: small}
        sinks:
          big: {type: test.null}
        """, context)
    assert str(error).startswith("pipelines/p.yaml:3: steps[0]: branch 'small' has no sink")
    unrouted = error_of("""\
        source: {type: test.list}
        steps:
          - {type: route, routes: {big: "a > 1"}}
        sinks:
          big: {type: test.null}
        """, context)
    assert "need a default sink" in str(unrouted)


@pytest.mark.parametrize(("text", "seconds"), [
    (5, 5.0), (0.5, 0.5), ("250ms", 0.25), ("30s", 30.0), ("5m", 300.0), ("1h30m", 5400.0), ("7d", 604800.0),
    ("2w", 1209600.0), ("10", 10.0),
])
def test_durations(text: Any, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5x", "m5", "-1", "1h 2", True, -3])
def test_bad_durations(text: Any) -> None:
    with pytest.raises(ValueError, match="bad duration"):
        parse_duration(text)


def test_backoff_is_exponential_capped_with_full_jitter() -> None:
    policy = RetryPolicy(attempts=10, backoff=1.0, max_backoff=8.0)
    assert [policy.delay(failures, lambda: 1.0) for failures in range(1, 7)] == [1, 2, 4, 8, 8, 8]
    assert policy.delay(3, lambda: 0.25) == 1.0


def test_pipelines_built_in_python_use_the_same_model(context: BuildContext) -> None:
    pipeline = Pipeline(name="in-code", source=ListSource([]), steps=[{"type": "filter", "when": "a > 1"}],
                        sink=NullSink(), retry={"attempts": 2, "backoff": "10ms"})
    assert pipeline.retry == RetryPolicy(attempts=2, backoff=0.01, max_backoff=60.0)
    built = build_pipeline(pipeline, context)
    assert isinstance(built.steps[0].processor, Processor) and built.steps[0].name == "filter[0]"
    with pytest.raises(PipelineSpecError, match=r"^pipeline in-code: steps\[0\]\.when: bad expression"):
        build_pipeline(Pipeline(name="in-code", source=ListSource([]), steps=[{"type": "filter", "when": "("}],
                                sink=NullSink()), context)
    with pytest.raises(PipelineSpecError, match=r"pipeline in-code: retry\.attempts: attempts must be at least 1"):
        Pipeline(name="in-code", source=ListSource([]), sink=NullSink(), retry={"attempts": 0})


def test_a_project_has_yaml_and_python_pipelines(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "source: {type: test.list}\nsink: {type: test.null}\n")
    write(tmp_path, "b.yml", "name: a\nsource: {type: test.list}\nsink: {type: test.null}\n")
    write(tmp_path, "connections.yaml", "default: {url: https://example.org}\n")
    write(tmp_path, "broken.yaml", "source: [\n")
    write(tmp_path, "code.py", """\
        from interlink.middleware.spec import Pipeline

        nightly = Pipeline(name="from-code", source={"type": "test.list"}, sink={"type": "test.null"})
        """)
    assert [path.name for path in discover_pipelines(tmp_path)] == ["a.yaml", "b.yml", "broken.yaml"]
    pipelines, errors = load_project(tmp_path)
    assert [pipeline.name for pipeline in pipelines] == ["a", "from-code"]
    messages = sorted(str(error) for error in errors)
    assert any("b.yml:1: name: pipeline name 'a' is already used" in message for message in messages)
    assert any("broken.yaml:2: invalid YAML" in message for message in messages)


def test_the_registry_lists_the_built_in_steps() -> None:
    processors = registered("processor")
    assert {"map", "filter", "route", "enrich", "split", "aggregate", "validate", "dedupe", "transform"} <= \
        set(processors)
    assert processors["filter"].keys == frozenset({"when"})
    with pytest.raises(ValueError, match="already registered"):
        register_source("test.list", lambda config, context: ListSource([]))
