"""JSONata expressions: the body is the root, $id/$key/$headers are bound, bad expressions fail at load time and
runaway ones fail the message instead of hanging the pipeline."""

from __future__ import annotations

import datetime as dt
import decimal
import threading
import time

import pytest

from interlink.middleware.base import Message, PermanentError, PipelineSpecError
from interlink.middleware.expressions import (
    ExpressionError,
    Limits,
    _parse,
    compile_expression,
    compile_template,
)

ORDER = Message(body={"Id": "a1", "Amount__c": 150, "Note": None, "Lines": [{"sku": "X", "qty": 2},
                                                                           {"sku": "Y", "qty": 1}]},
                id="evt-1", headers={"topic": "/event/Order__e", "replayId": 7}, key="ACME")


@pytest.mark.parametrize(("source", "expected"), [
    ("Id & '-ERP'", "a1-ERP"),
    ("Amount__c * 2", 300),
    ("Amount__c * 1.5", 225),
    ("$id", "evt-1"),
    ("$key", "ACME"),
    ("$headers.topic", "/event/Order__e"),
    ("$sum(Lines.qty)", 3),
    ("Lines[qty > 1].sku", "X"),
    ("Lines.sku", ["X", "Y"]),
    ("{'ref': Id, 'n': $count(Lines)}", {"ref": "a1", "n": 2}),
    ("Lines.$merge([$, {'order': $$.Id}])", [{"sku": "X", "qty": 2, "order": "a1"},
                                             {"sku": "Y", "qty": 1, "order": "a1"}]),
    ("Note", None),
])
def test_the_body_is_the_root_and_message_fields_are_variables(source: str, expected: object) -> None:
    assert compile_expression(source).evaluate(ORDER) == expected


def test_undefined_is_told_apart_from_null() -> None:
    missing = object()
    assert compile_expression("Nope").evaluate(ORDER, missing) is missing
    assert compile_expression("Note").evaluate(ORDER, missing) is None
    assert compile_expression("Nope").evaluate(ORDER) is None


def test_truth_follows_jsonata() -> None:
    assert compile_expression("Amount__c > 100").test(ORDER)
    assert not compile_expression("Amount__c > 1000").test(ORDER)
    assert not compile_expression("Nope").test(ORDER)
    assert not compile_expression("''").test(ORDER)
    assert compile_expression("Lines").test(ORDER)
    assert compile_expression("$headers.replayId = 7").test(ORDER)


def test_a_bare_body_can_be_evaluated() -> None:
    assert compile_expression("a + b").evaluate({"a": 1, "b": 2}) == 3


def test_python_values_are_converted_to_json_types() -> None:
    body = {"at": dt.datetime(2025, 1, 2, 3, 4, 5), "amount": decimal.Decimal("12.50"), "count": decimal.Decimal(3)}
    assert compile_expression("$substring(at, 0, 10)").evaluate(body) == "2025-01-02"
    assert compile_expression("amount * 2").evaluate(body) == 25
    assert compile_expression("count + 1").evaluate(body) == 4


def test_a_syntax_error_is_a_spec_error_with_the_position() -> None:
    with pytest.raises(PipelineSpecError, match=r"steps\[1\]\.when: bad expression 'Amount__c >'.*character 11"):
        compile_expression("Amount__c >", where="steps[1].when")
    with pytest.raises(PipelineSpecError, match="empty"):
        compile_expression("  ")
    with pytest.raises(PipelineSpecError, match="expected a JSONata expression"):
        compile_expression({"not": "text"})


def test_a_type_error_fails_the_message_permanently() -> None:
    with pytest.raises(ExpressionError, match="must evaluate to a number") as caught:
        compile_expression("Id + 1").evaluate(ORDER)
    assert isinstance(caught.value, PermanentError)


def test_runaway_expressions_are_stopped() -> None:
    started = time.monotonic()
    with pytest.raises(ExpressionError, match="timeout"):
        compile_expression("$sum([1..5000000].($ * 2))", limits=Limits(timeout_ms=100)).evaluate({})
    with pytest.raises(ExpressionError):
        compile_expression("( $f := function($n){ $n > 0 ? 1 + $f($n - 1) : 0 }; $f(100000) )",
                           limits=Limits(timeout_ms=2000, max_depth=200)).evaluate({})
    assert time.monotonic() - started < 5
    # The bounds are per evaluation: a slow first message does not eat the budget of the next one.
    quick = compile_expression("$sum([1..2000])", limits=Limits(timeout_ms=1000))
    for _ in range(3):
        assert quick.evaluate({}) == 2001000


def test_expressions_are_parsed_once() -> None:
    _parse.cache_clear()
    for _ in range(5):
        compile_expression("Amount__c * 3").evaluate(ORDER)
    assert _parse.cache_info().misses == 1


def test_one_expression_is_safe_in_several_threads() -> None:
    expression = compile_expression("$sum(items) & ':' & $id")
    failures: list[str] = []

    def work(worker: int) -> None:
        for index in range(50):
            message = Message(body={"items": [worker, index]}, id=f"w{worker}")
            value = expression.evaluate(message)
            if value != f"{worker + index}:w{worker}":
                failures.append(f"{worker}/{index}: {value}")

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_templates_insert_expression_values() -> None:
    template = compile_template("https://erp/customers/{Id}/orders?topic={$headers.topic}&n={$count(Lines)}")
    assert template.render(ORDER, quote=True) == "https://erp/customers/a1/orders?topic=%2Fevent%2FOrder__e&n=2"
    assert compile_template("{{literal}} {Id}").render(ORDER) == "{literal} a1"
    assert compile_template("{ {'a': Id}.a }").render(ORDER) == "a1"
    with pytest.raises(ExpressionError, match="undefined"):
        compile_template("/x/{Nope}").render(ORDER)
    with pytest.raises(PipelineSpecError, match="unclosed"):
        compile_template("/x/{Id")
    with pytest.raises(PipelineSpecError, match="bad expression"):
        compile_template("/x/{Id >}")
