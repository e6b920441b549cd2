"""Plain field paths (``Name__c``, ``payload.Account.Name``, `` `Field Name` ``, ``$headers.topic``) are read by a
dict walk instead of the JSONata interpreter: on any document the walk must answer exactly what JSONata answers
(undefined, null, values, errors), and hand over to JSONata where their rules differ (arrays along the path)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from interlink.middleware.base import Message, PipelineSpecError
from interlink.middleware.expressions import (
    _SLOW,
    Expression,
    ExpressionError,
    Limits,
    Scope,
    _field_path,
    _FieldPath,
    _walk,
    compile_expression,
    scope_of,
)

UNDEFINED = object()
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def interpreted(source: str) -> Expression:
    """The expression with the fast path switched off: JSONata evaluates it, as before the fast path existed."""
    expression = Expression(source)
    expression._path = None
    return expression


def outcome(expression: Expression, scope: Scope | Message) -> tuple[str, str]:
    """What an evaluation gives, strictly comparable: the repr of the value (1, 1.5 and True differ), the undefined
    marker, or the error."""
    try:
        value = expression.evaluate(scope, UNDEFINED)
    except Exception as exc:
        return "error", f"{type(exc).__name__}: {exc}"
    return ("undefined", "") if value is UNDEFINED else ("value", repr(value))


def truth(expression: Expression, scope: Scope | Message) -> bool | str:
    try:
        return expression.test(scope)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


def compiles(source: str) -> bool:
    try:
        compile_expression(source)
    except PipelineSpecError:
        return False
    return True


def assert_same(source: str, scope: Scope | Message) -> None:
    fast, slow = compile_expression(source), interpreted(source)
    assert outcome(fast, scope) == outcome(slow, scope), source
    assert truth(fast, scope) == truth(slow, scope), source


# -- examples ------------------------------------------------------------------------------------------------------

BODY: dict[str, Any] = {
    "Name__c": "Acme", "Amount__c": 1.0, "Half": 2.5, "Flag": False, "Zero": 0, "Empty": "", "Null": None,
    "payload": {"Account": {"Name": "Acme", "Tags": ["a", "b"], "One": [7], "None": [], "Nested": [[1, 2], [3]],
                            "Nulls": [None], "Obj": {"x": None}},
                "items": [{"sku": "X", "qty": 2}, {"sku": "Y"}], "text": "abc", "null": None, "number": 3},
    "field name": {"with.dot": 1, "and": {"or": True}},
    "and": "keyword", "true": "not a literal",
}
MESSAGE = Message(body=BODY, id="evt-1", headers={"topic": "/event/X", "replay": {"id": 7, "list": [1]}, "n": None},
                  key="K1")


@pytest.mark.parametrize("source", [
    "Name__c", "Amount__c", "Half", "Flag", "Zero", "Empty", "Null", "Missing", "Null.x", "Name__c.x", "Zero.x",
    "payload", "payload.Account", "payload.Account.Name", "payload.Account.Tags", "payload.Account.One",
    "payload.Account.None", "payload.Account.Nested", "payload.Account.Nulls", "payload.Account.Obj",
    "payload.Account.Obj.x", "payload.Account.Obj.x.y", "payload.items", "payload.items.sku", "payload.items.qty",
    "payload.text.length", "payload.`null`", "payload.`null`.x", "payload.number.x", "payload.missing.x",
    "`field name`", "`field name`.`with.dot`", "`field name`.and", "`field name`.and.or", "and", "`and`", "true",
    "`true`", "$", "$$", "$.Name__c", "$$.payload.Account.Name", "$id", "$key", "$headers", "$headers.topic",
    "$headers.replay.id", "$headers.replay.list", "$headers.n", "$headers.n.x", "$headers.missing", "$id.x",
    "$nope", "$nope.x", "$string", "$string.x", "$keys", '"Name__c"', "payload.'Account'.Name",
])
def test_plain_paths_answer_what_jsonata_answers(source: str) -> None:
    assert_same(source, MESSAGE)  # $id, $key, $headers are read without converting the body
    assert_same(source, scope_of(MESSAGE))
    assert_same(source, scope_of(BODY))  # a bare body: no variables


def test_the_fast_path_is_taken_for_plain_paths_only() -> None:
    assert _field_path("payload.Account.Name") == _FieldPath(None, ("payload", "Account", "Name"))
    assert _field_path("`field name`.x") == _FieldPath(None, ("field name", "x"))
    assert _field_path("$headers.topic") == _FieldPath("headers", ("topic",))
    assert _field_path("$id") == _FieldPath("id", ())
    assert _field_path("$") == _FieldPath("", ())
    for source in ["a[0]", "a[x > 1]", "a.b[0]", "a[]", "a.*", "*.a", "**.a", "a#$i.b", "a@$x.b", "(a)", "a.(b)",
                   "a.$", "a.$x", "a.b.%.c", "a ~> $string", "a & b", "$string(a)", "'a'", "1", "true", "null",
                   "a^(b)", "a{b: c}", "[a]", "{'x': a}", "a.b.c = 1", "-a"]:
        assert _field_path(source) is None, source
    # Where JSONata maps a path over an array, the walk hands over to the interpreter.
    scope = scope_of({"items": [{"sku": "X"}]})
    assert _walk(_FieldPath(None, ("items", "sku")), scope) is _SLOW
    assert _walk(_FieldPath(None, ("items",)), scope) == [{"sku": "X"}]
    # Scopes built by hand (not JSON-typed yet) always go through JSONata, which checks the input.
    with pytest.raises(ExpressionError, match="Only JSON types"):
        compile_expression("a").evaluate(Scope({"a": 1, "b": {1, 2}}, {}))
    assert compile_expression("a").evaluate(Scope({"a": 1, "b": {1, 2}}, {}, json_typed=True)) == 1


def test_tight_limits_keep_jsonata_in_charge() -> None:
    assert compile_expression("a.b")._path is not None
    assert compile_expression("a.b", limits=Limits(max_depth=1))._path is None
    assert compile_expression("a.b", limits=Limits(timeout_ms=0))._path is None


def test_map_leaves_out_undefined_fields_with_the_fast_path() -> None:
    from interlink.middleware.processors import MapProcessor

    fields = {"Name": "payload.Account.Name", "Gone": "payload.missing.x", "Null": "Null", "Tags": "payload.items.sku",
              "Topic": "$headers.topic", "Id": "$id"}
    fast = MapProcessor({target: compile_expression(source) for target, source in fields.items()})
    slow = MapProcessor({target: interpreted(source) for target, source in fields.items()})
    [(_, fast_out)], [(_, slow_out)] = fast.process(MESSAGE), slow.process(MESSAGE)
    assert fast_out.body == slow_out.body == {"Name": "Acme", "Null": None, "Tags": ["X", "Y"],
                                              "Topic": "/event/X", "Id": "evt-1"}


# -- any document, any path ------------------------------------------------------------------------------------------

NAMES = ["a", "b", "c", "Name__c", "x y", "and", "true", "1", "a.b", "dé", "null", "or"]


def _step(name: str) -> str:
    return name if IDENTIFIER.match(name) else f"`{name}`"


_scalars = (st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False)
            | st.sampled_from([0.0, 1.0, -2.0, 2.0**53, 0.5]) | st.text(max_size=5))
_json = st.recursive(_scalars, lambda children: st.lists(children, max_size=3)
                     | st.dictionaries(st.sampled_from(NAMES), children, max_size=4), max_leaves=15)
_documents = st.dictionaries(st.sampled_from(NAMES), _json, max_size=6)
_headers = st.dictionaries(st.sampled_from([*NAMES, "topic"]), _json, max_size=4)
_paths = st.builds(
    lambda prefix, names: (prefix + ".".join(_step(name) for name in names)).rstrip("."),
    st.sampled_from(["", "", "", "$.", "$$.", "$headers.", "$id.", "$key.", "$nope.", "$string."]),
    st.lists(st.sampled_from(NAMES), min_size=0, max_size=4),
).filter(bool)
_messages = st.builds(lambda body, headers, key, mid: Message(body=body, headers=headers, key=key, id=mid),
                      _documents, _headers, st.none() | st.text(max_size=3), st.text(max_size=3))

_SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(source=_paths, message=_messages)
def test_any_path_on_any_message_answers_what_jsonata_answers(source: str, message: Message) -> None:
    assume(compiles(source))  # `null`, `true` unquoted in a path are syntax errors
    assert_same(source, message)
    assert_same(source, scope_of(message))


@_SETTINGS
@given(names=st.lists(st.sampled_from(NAMES), min_size=1, max_size=4), document=_documents)
def test_paths_that_exist_answer_what_jsonata_answers(names: list[str], document: dict[str, Any]) -> None:
    # Build the document along the path, so the walk reaches the end (and often the fast path answers).
    node: Any = document
    for name in names[:-1]:
        child = node.get(name)
        if not isinstance(child, dict):
            child = node[name] = {}
        node = child
    node.setdefault(names[-1], "end")
    source = ".".join(_step(name) for name in names)
    assume(compiles(source))
    assert_same(source, scope_of(document))
