"""The built-in steps, each on its own: what comes out of map, filter, route, enrich, split, aggregate, validate,
dedupe and transform for a given message."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from interlink.middleware.base import Message, PermanentError, PipelineSpecError, Processor, RetryableError
from interlink.middleware.processors import REPLAY_HEADER
from interlink.middleware.spec import BuildContext, registered
from interlink.middleware.store import MiddlewareStore


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def context(tmp_path: Path, clock: Clock) -> Iterator[BuildContext]:
    with MiddlewareStore.open_url(f"sqlite:///{tmp_path / 'mw.db'}", clock=clock) as store:
        yield BuildContext(store=store, pipeline="orders", project_dir=tmp_path, clock=clock)


def make(context: BuildContext, kind: str, **config: Any) -> Processor:
    return registered("processor")[kind].factory(config, context)


def bodies(outputs: list[tuple[str | None, Message]]) -> list[dict[str, Any]]:
    return [message.body for _, message in outputs]


ORDER = Message(body={"Id": "a1", "Amount__c": 150, "Customer": "C7", "Lines": [{"sku": "X"}, {"sku": "Y"}]},
                id="evt-1", headers={"topic": "/event/Order__e"}, position=11)


def test_map_builds_a_new_body(context: BuildContext) -> None:
    step = make(context, "map", fields={"OrderNumber__c": "Id & '-ERP'", "Amount__c": "Amount__c * 1.2",
                                        "Missing__c": "Nope", "Topic__c": "$headers.topic"}, key="Customer")
    ((branch, out),) = step.process(ORDER)
    assert branch is None
    assert out.body == {"OrderNumber__c": "a1-ERP", "Amount__c": 180, "Topic__c": "/event/Order__e"}
    assert (out.id, out.position, out.key, out.headers) == ("evt-1", 11, "C7", ORDER.headers)
    kept = make(context, "map", fields={"Amount__c": "Amount__c + 1"}, keep=True).process(ORDER)
    assert bodies(kept) == [{**ORDER.body, "Amount__c": 151}]
    with pytest.raises(PipelineSpecError):
        make(context, "map", fields={})


def test_filter_keeps_what_matches(context: BuildContext) -> None:
    step = make(context, "filter", when="Amount__c > 100")
    assert step.process(ORDER) == [(None, ORDER)]
    assert step.process(ORDER.copy({"Amount__c": 5})) == []
    assert step.drop_metric == "filtered"


def test_route_first_match_wins_then_default(context: BuildContext) -> None:
    step = make(context, "route", routes={"huge": "Amount__c > 1000", "big": "Amount__c > 100"}, default="small")
    assert step.process(ORDER.copy({"Amount__c": 5000}))[0][0] == "huge"
    assert step.process(ORDER)[0][0] == "big"
    assert step.process(ORDER.copy({"Amount__c": 1}))[0][0] == "small"
    assert step.branches == {"huge", "big", "small"}
    assert make(context, "route", routes={"big": "Amount__c > 1000"}).process(ORDER)[0][0] is None


def test_enrich_over_http_is_cached_with_a_ttl(context: BuildContext, clock: Clock) -> None:
    calls: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        customer = request.url.path.rsplit("/", 1)[-1]
        if customer == "gone":
            return httpx.Response(404)
        if customer == "busy":
            return httpx.Response(503)
        if customer == "bad":
            return httpx.Response(400, text="no")
        return httpx.Response(200, json={"name": f"Customer {customer}", "auth": request.headers.get("x-key")})

    context.connections = {"erp": httpx.Client(transport=httpx.MockTransport(answer))}
    step = make(context, "enrich", url="https://erp.example/customers/{Customer}", connection="erp",
                headers={"X-Key": "k-{Id}"}, into="customer", cache_ttl="1m", cache_size=2)
    ((_, out),) = step.process(ORDER)
    assert out.body["customer"] == {"name": "Customer C7", "auth": "k-a1"}
    step.process(ORDER)
    assert len(calls) == 1  # cached
    clock.now += 61
    step.process(ORDER)
    assert len(calls) == 2  # expired
    for customer in ("c1", "c2", "c3"):
        step.process(ORDER.copy({**ORDER.body, "Customer": customer}))
    assert len(step.cache) == 2  # type: ignore[attr-defined]
    assert step.process(ORDER.copy({**ORDER.body, "Customer": "gone"})) == [
        (None, ORDER.copy({**ORDER.body, "Customer": "gone"}))]
    with pytest.raises(RetryableError, match="503"):
        step.process(ORDER.copy({**ORDER.body, "Customer": "busy"}))
    with pytest.raises(PermanentError, match="400"):
        step.process(ORDER.copy({**ORDER.body, "Customer": "bad"}))
    dropping = make(context, "enrich", url="https://erp.example/customers/{Customer}", connection="erp",
                    on_missing="drop")
    assert dropping.process(ORDER.copy({**ORDER.body, "Customer": "gone"})) == []
    merged = make(context, "enrich", url="https://erp.example/customers/{Customer}", connection="erp")
    assert bodies(merged.process(ORDER))[0]["name"] == "Customer C7"


def test_enrich_with_a_lookup_function(context: BuildContext) -> None:
    looked_up: list[Any] = []

    def tiers(customer: str) -> dict[str, Any] | None:
        looked_up.append(customer)
        return {"tier": "gold"} if customer == "C7" else None

    context.connections = {"tiers": tiers}
    step = make(context, "enrich", lookup="tiers", key="Customer", into="tier", on_missing="error")
    assert bodies(step.process(ORDER))[0]["tier"] == {"tier": "gold"}
    step.process(ORDER)
    assert looked_up == ["C7"]
    with pytest.raises(PermanentError, match="nothing found"):
        step.process(ORDER.copy({**ORDER.body, "Customer": "C8"}))
    with pytest.raises(PipelineSpecError, match="no connection named 'nope'"):
        make(context, "enrich", lookup="nope", key="Customer")
    with pytest.raises(PipelineSpecError, match="either url"):
        make(context, "enrich", key="Customer")


def test_split_makes_one_message_per_element(context: BuildContext) -> None:
    step = make(context, "split", items="Lines.$merge([$, {'order': $$.Id}])")
    outputs = step.process(ORDER)
    assert bodies(outputs) == [{"sku": "X", "order": "a1"}, {"sku": "Y", "order": "a1"}]
    assert [message.id for _, message in outputs] == ["evt-1:0", "evt-1:1"]
    assert all(message.position == 11 for _, message in outputs)
    assert bodies(make(context, "split", items="Lines.sku").process(ORDER)) == [{"value": "X"}, {"value": "Y"}]
    assert make(context, "split", items="Nope").process(ORDER) == []


def test_aggregate_by_count_window_and_flush(context: BuildContext, clock: Clock) -> None:
    step: Any = make(context, "aggregate", key="Customer", count=2, window="10s")
    first = Message(body={"Customer": "A", "n": 1}, id="1", position=1)
    assert step.process(first) == []
    assert step.process(Message(body={"Customer": "B", "n": 2}, id="2", position=2)) == []
    ((_, pair),) = step.process(Message(body={"Customer": "A", "n": 3}, id="3", position=3))
    assert pair.body == {"key": "A", "count": 2, "items": [{"Customer": "A", "n": 1}, {"Customer": "A", "n": 3}]}
    assert (pair.id, pair.position, pair.key) == ("1:agg2", 3, "A")
    assert [message.id for message in step.held()] == ["2"]
    assert step.tick() == []
    clock.now += 10
    ((_, single),) = step.tick()
    assert single.body["count"] == 1 and single.body["key"] == "B" and step.held() == []
    step.process(Message(body={"Customer": "C"}, id="4", position=4))
    assert bodies(step.flush()) == [{"key": "C", "count": 1, "items": [{"Customer": "C"}]}]
    with pytest.raises(PipelineSpecError, match="count, window"):
        make(context, "aggregate", key="Customer")


def test_validate_reports_the_failing_path(context: BuildContext, tmp_path: Path) -> None:
    schema = {"type": "object", "required": ["Id"],
              "properties": {"Amount__c": {"type": "number", "minimum": 0}, "Id": {"type": "string"}}}
    step = make(context, "validate", schema=schema)
    assert step.process(ORDER) == [(None, ORDER)]
    with pytest.raises(PermanentError, match=r"schema: Amount__c: -1 is less than the minimum of 0"):
        step.process(ORDER.copy({"Id": "x", "Amount__c": -1}))
    with pytest.raises(PermanentError, match=r"schema: \(body\): 'Id' is a required property"):
        step.process(ORDER.copy({}))
    (tmp_path / "order.schema.yaml").write_text("type: object\nrequired: [Customer]\n")
    from_file = make(context, "validate", schema_file="order.schema.yaml")
    assert from_file.process(ORDER) == [(None, ORDER)]
    with pytest.raises(PipelineSpecError, match="invalid JSON Schema"):
        make(context, "validate", schema={"type": "nonsense"})


def test_dedupe_drops_what_was_delivered_before(context: BuildContext, clock: Clock) -> None:
    step: Any = make(context, "dedupe", key="Id", retention="1h")
    assert step.process(ORDER) == [(None, ORDER)]
    assert step.process(ORDER.copy(id="evt-2")) == []  # same key, same batch
    step.commit()
    fresh: Any = make(context, "dedupe", key="Id", retention="1h")  # a restart: state comes from the store
    assert fresh.process(ORDER) == []
    replayed = ORDER.copy()
    replayed.headers[REPLAY_HEADER] = "dlq-1"
    assert fresh.process(replayed) == [(None, replayed)]
    clock.now += 3601
    assert fresh.process(ORDER) == [(None, ORDER)]
    by_id: Any = make(context, "dedupe")
    assert by_id.process(ORDER) == [(None, ORDER)]
    by_id.rollback()
    by_id.commit()
    assert context.store.is_seen("orders", "evt-1", 3600) is False  # a rolled-back batch records nothing


def test_transform_calls_a_project_function(context: BuildContext, tmp_path: Path) -> None:
    folder = tmp_path / "pipelines"
    folder.mkdir()
    (folder / "shaping.py").write_text(textwrap.dedent("""\
        from interlink.middleware.base import Message

        def shout(message, suffix="!"):
            return {"text": message.body["text"].upper() + suffix}

        def explode(message):
            return [{"n": n} for n in range(message.body["n"])]

        def drop(message):
            return None

        def same(message):
            return Message(body={"kept": True}, id="custom")
        """))
    assert bodies(make(context, "transform", function="shaping:shout", options={"suffix": "?"}).process(
        Message(body={"text": "hi"}))) == [{"text": "HI?"}]
    exploded = make(context, "transform", function="shaping:explode").process(Message(body={"n": 2}, id="m"))
    assert [(message.id, message.body) for _, message in exploded] == [("m:0", {"n": 0}), ("m:1", {"n": 1})]
    assert make(context, "transform", function="shaping:drop").process(ORDER) == []
    assert make(context, "transform", function="shaping:same").process(ORDER)[0][1].id == "custom"
    with pytest.raises(PipelineSpecError, match="has no 'nope'"):
        make(context, "transform", function="shaping:nope")
    with pytest.raises(PipelineSpecError, match="module:function"):
        make(context, "transform", function="shaping")
    with pytest.raises(PipelineSpecError, match="cannot import"):
        make(context, "transform", function="no_such_module_xyz:f")
    with pytest.raises(PipelineSpecError, match="cannot be called"):
        make(context, "transform", function="shaping:drop", options={"extra": 1})


def test_dedupe_checks_a_prepared_batch_in_one_store_transaction(context: BuildContext, clock: Clock,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    store = context.store
    store.record_seen("orders", ["old"], 3600)
    calls: dict[str, list[Any]] = {"is_seen": [], "seen_keys": [], "record_seen": [], "seen_before": []}
    for method in calls:
        original = getattr(store, method)

        def counted(*args: Any, _original: Any = original, _name: str = method) -> Any:
            calls[_name].append(args[1])
            return _original(*args)

        monkeypatch.setattr(store, method, counted)

    def batch() -> list[Message]:
        replayed = Message(body={"Id": "old"}, id="r", headers={REPLAY_HEADER: "dlq-1"})
        return [*(Message(body={"Id": key}, id=f"e{index}") for index, key in enumerate(["a", "old", "a", "b"])),
                Message(body={}, id="no-key"), replayed]

    def run(step: Any, messages: list[Message]) -> list[Any]:
        answers: list[Any] = []
        for message in messages:
            try:
                answers.append([out.id for _, out in step.process(message)])
            except PermanentError as exc:
                answers.append(str(exc))
        return answers

    prepared: Any = make(context, "dedupe", key="Id", retention="1h")
    messages = batch()
    prepared.prepare(messages)
    with_prepare = run(prepared, messages)
    assert with_prepare == [["e0"], [], [], ["e3"], "dedupe: the key 'Id' is undefined for this message", ["r"]]
    assert calls["is_seen"] == [] and [sorted(keys) for keys in calls["seen_keys"]] == [["a", "b", "old"]]
    prepared.commit()
    assert calls["record_seen"] == [["a", "b"]] and calls["seen_before"] == []
    assert store.seen_keys("orders", ["a", "b"], 3600) == {"a", "b"}

    # Without prepare (a replay, a runtime subclass running one message at a time): the same answers, asked per key.
    clock.now += 1
    store.purge(0)
    store.record_seen("orders", ["old"], 3600)
    alone: Any = make(context, "dedupe", key="Id", retention="1h")
    assert run(alone, batch()) == with_prepare
    assert len(calls["is_seen"]) == 3  # a, old, b (the repeated a is caught in memory)
    # A message prepare did not see (a copy) is looked up on its own.
    again: Any = make(context, "dedupe", key="Id", retention="1h")
    again.prepare([Message(body={"Id": "c"}, id="c1")])
    assert run(again, [Message(body={"Id": "c"}, id="c1")]) == [["c1"]]
    # A batch abandoned after prepare leaves nothing behind.
    again.rollback()
    assert again._prepared == {} and again._pending == []
