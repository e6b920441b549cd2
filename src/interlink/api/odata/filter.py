"""``$filter`` and ``$orderby`` (OData 4.0 with 4.01's ``in``, and 2.0's syntax) parsed by ``filter.lark`` and
translated into SOQL text for the one query engine.

::

    translate_filter("startswith(Name,'Ac') and Account/Industry eq 'Banking'", contact_set, model)
        -> "(Name LIKE 'Ac%') AND (Account.Industry = 'Banking')"

Every value reaches SOQL through :func:`quote` (or as a number, date or datetime rebuilt from its parsed value),
so no value can change the shape of the query: ``Name eq 'x'' OR Name != '''`` compares ``Name`` with the text
``x' OR Name != '``. What SOQL cannot express (arithmetic, most functions, comparing two properties, lambdas
below a lambda) is refused with MALFORMED_QUERY and a message that names it; unknown properties are
INVALID_FIELD. Text comparisons are case-insensitive, as they are in SOQL, so ``tolower``/``toupper`` are
accepted around a property and change nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from lark import Lark, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from interlink.api.odata.model import ChildNav, EntitySet, ParentNav, ServiceModel
from interlink.errors import InvalidFieldError, MalformedQueryError
from interlink.metadata.model import FieldDef, FieldType
from interlink.soql.render import like_pattern, literal, quote

_PARSER = Lark(Path(__file__).with_name("filter.lark").read_text(encoding="utf-8"), parser="lalr",
               lexer="contextual", start=["filter", "orderby"], maybe_placeholders=True)

_TEXT = frozenset({FieldType.STRING, FieldType.TEXTAREA, FieldType.EMAIL, FieldType.PHONE, FieldType.URL,
                   FieldType.PICKLIST, FieldType.MULTIPICKLIST, FieldType.ID, FieldType.REFERENCE})
_NUMERIC = frozenset({FieldType.INT, FieldType.DOUBLE, FieldType.CURRENCY, FieldType.PERCENT})
_OPERATORS = {"eq": "=", "ne": "!=", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}
_FLIPPED = {"eq": "eq", "ne": "ne", "gt": "lt", "ge": "le", "lt": "gt", "le": "ge"}
_LIKE_FUNCTIONS = {"contains", "startswith", "endswith", "substringof"}
_CASE_FUNCTIONS = {"tolower", "toupper"}
# OData date parts SOQL has a function for (in WHERE as well as SELECT).
_DATE_FUNCTIONS = {"year": "CALENDAR_YEAR", "month": "CALENDAR_MONTH", "day": "DAY_IN_MONTH", "hour": "HOUR_IN_DAY"}
_MAX_RELATIONSHIPS = 5
_DATETIME_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}:?\d{2})?$",
                          re.IGNORECASE)
_TIME_RE = re.compile(r"^(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?$")
_DURATION_RE = re.compile(r"^PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)(?:\.(\d+))?S)?$", re.IGNORECASE)


# -- parsed values -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Literal:
    kind: str  # string, number, boolean, null, date, datetime, time
    value: Any
    text: str


@dataclass(frozen=True)
class _Field:
    soql: str
    fdef: FieldDef
    ftype: FieldType  # the operand's type: the field's, or integer under a date function


def _syntax_error(text: str, option: str, exc: UnexpectedInput) -> MalformedQueryError:
    position = getattr(exc, "column", None) or (getattr(exc, "pos_in_stream", 0) or 0) + 1
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        detail = "the expression ends too early"
    elif isinstance(exc, UnexpectedToken):
        detail = f"unexpected '{exc.token}'"
    elif isinstance(exc, UnexpectedCharacters):
        detail = f"unexpected character '{text[exc.pos_in_stream]}'"
    else:
        detail = "unexpected input"
    return MalformedQueryError(f"Syntax error in {option} at position {position}: {detail}", [option])


def _parse(text: str, start: str, option: str) -> Tree[Any]:
    if not text.strip():
        raise MalformedQueryError(f"{option} is empty", [option])
    try:
        return _PARSER.parse(text, start=start)
    except UnexpectedInput as exc:
        raise _syntax_error(text, option, exc) from None


def _unsupported(what: str) -> MalformedQueryError:
    return MalformedQueryError(f"{what} is not supported: it cannot be expressed in SOQL", ["$filter"])


def _literal(node: Tree[Any]) -> _Literal | None:
    kind = node.data
    token = node.children[0] if node.children else None
    text = str(token) if token is not None else kind
    if kind == "string":
        return _Literal("string", text[1:-1].replace("''", "'"), text)
    if kind == "number":
        digits = text.rstrip("mMdDfFlL")
        try:
            number = Decimal(digits)
        except InvalidOperation:
            raise MalformedQueryError(f"Invalid number in $filter: {text}", ["$filter"]) from None
        if not number.is_finite():
            raise MalformedQueryError(f"Invalid number in $filter: {text}", ["$filter"])
        return _Literal("number", number, text)
    if kind in ("true", "false"):
        return _Literal("boolean", kind == "true", kind)
    if kind == "null":
        return _Literal("null", None, kind)
    if kind == "date":
        return _Literal("date", _date(text), text)
    if kind == "datetime":
        return _Literal("datetime", _datetime(text), text)
    if kind == "timeofday":
        return _Literal("time", _time(text), text)
    if kind == "typed":
        prefix, _, rest = text.partition("'")
        body = rest[:-1]
        prefix = prefix.lower()
        if prefix in ("datetime", "datetimeoffset"):
            return _Literal("datetime", _datetime(body), text)
        if prefix == "time":
            return _Literal("time", _duration(body), text)
        raise _unsupported(f"The {prefix} literal {text}")
    return None


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise MalformedQueryError(f"Invalid date in $filter: {text}", ["$filter"]) from None


def _datetime(text: str) -> datetime:
    # A '+' left unencoded in a URL arrives as a space: 2024-03-01T13:00:00 01:00 means +01:00.
    match = _DATETIME_RE.match(re.sub(r" (\d{2}:?\d{2})$", r"+\1", text.strip()))
    if not match:
        raise MalformedQueryError(f"Invalid date and time in $filter: {text}", ["$filter"])
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        value = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0),
                         int((fraction or "0")[:6].ljust(6, "0")), tzinfo=UTC)
    except ValueError:
        raise MalformedQueryError(f"Invalid date and time in $filter: {text}", ["$filter"]) from None
    if zone and zone.upper() != "Z":
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        try:
            value = value - offset if zone[0] == "+" else value + offset
        except OverflowError:  # 9999-12-31T23:59:59-12:00 is after year 9999 in UTC
            raise MalformedQueryError(f"Invalid date and time in $filter: {text}", ["$filter"]) from None
    return value


def _time(text: str) -> time:
    match = _TIME_RE.match(text)
    try:
        if not match:
            raise ValueError(text)
        hour, minute, second, fraction = match.groups()
        return time(int(hour), int(minute), int(second or 0), int((fraction or "0")[:6].ljust(6, "0")))
    except ValueError:
        raise MalformedQueryError(f"Invalid time of day in $filter: {text}", ["$filter"]) from None


def _duration(text: str) -> time:
    match = _DURATION_RE.match(text)
    try:
        if not match or not any(match.groups()):
            raise ValueError(text)
        hours, minutes, seconds, fraction = match.groups()
        return time(int(hours or 0), int(minutes or 0), int(seconds or 0), int((fraction or "0")[:6].ljust(6, "0")))
    except ValueError:
        raise MalformedQueryError(f"Invalid time in $filter: {text}", ["$filter"]) from None


# -- translation ---------------------------------------------------------------------------------------------------

class _Translator:
    """Turns one parsed ``$filter`` or ``$orderby`` over ``entity_set`` into SOQL text."""

    def __init__(self, model: ServiceModel, entity_set: EntitySet, lambda_variable: str | None = None) -> None:
        self.model = model
        self.entity_set = entity_set
        self.lambda_variable = lambda_variable

    # -- conditions ------------------------------------------------------------------------------------------------

    def condition(self, node: Any) -> str:
        kind = node.data if isinstance(node, Tree) else None
        if kind in ("or_op", "and_op"):
            joiner = " OR " if kind == "or_op" else " AND "
            return joiner.join(self._grouped(child) for child in node.children)
        if kind == "not_op":
            return f"NOT ({self.condition(node.children[0])})"
        if kind == "compare":
            return self._compare(node.children[0], str(node.children[1].children[0]), node.children[2])
        if kind == "in_op":
            return self._in(node.children[0], node.children[1].children)
        if kind == "member":
            return self._member_condition(node)
        if kind == "call":
            return self._call_condition(node)
        if kind == "arith":
            raise self._arith(node)
        if kind in ("true", "false"):
            raise MalformedQueryError("A $filter that is only true or false is not supported: filter on a property",
                                      ["$filter"])
        raise MalformedQueryError("$filter must be a condition (a comparison, a function such as contains(), "
                                  "or a Boolean property)", ["$filter"])

    def _grouped(self, node: Any) -> str:
        text = self.condition(node)
        return f"({text})" if isinstance(node, Tree) and node.data in ("or_op", "and_op") else text

    @staticmethod
    def _arith(node: Tree[Any]) -> MalformedQueryError:
        operator = str(node.children[1].children[0])
        return _unsupported(f"The arithmetic operator '{operator}'")

    def _compare(self, left: Any, operator: str, right: Any) -> str:
        for condition_side, value_side in ((left, right), (right, left)):
            if _is_condition(condition_side) and _is_bool_literal(value_side):
                if operator not in ("eq", "ne"):
                    raise MalformedQueryError(f"A condition can only be compared with true or false using eq or ne, "
                                              f"not {operator}", ["$filter"])
                wanted = (value_side.data == "true") == (operator == "eq")
                condition = self.condition(condition_side)
                return condition if wanted else f"NOT ({condition})"
        left_operand, right_operand = self._operand(left), self._operand(right)
        if isinstance(left_operand, _Literal):
            if isinstance(right_operand, _Literal):
                raise _unsupported("Comparing two values without a property")
            left_operand, right_operand, operator = right_operand, left_operand, _FLIPPED[operator]
        if isinstance(right_operand, _Field):
            raise _unsupported(f"Comparing two properties ({left_operand.fdef.name} and {right_operand.fdef.name})")
        assert isinstance(left_operand, _Field)
        if right_operand.kind == "null":
            if operator not in ("eq", "ne"):
                raise MalformedQueryError(f"null can only be compared with eq or ne, not {operator}", ["$filter"])
            return f"{left_operand.soql} {_OPERATORS[operator]} null"
        if left_operand.ftype is FieldType.MULTIPICKLIST and operator not in ("eq", "ne"):
            raise MalformedQueryError(f"{left_operand.fdef.name} holds several values: compare it with eq or ne",
                                      ["$filter"])
        return f"{left_operand.soql} {_OPERATORS[operator]} {self._value(left_operand, right_operand)}"

    def _in(self, left: Any, values: list[Any]) -> str:
        operand = self._operand(left)
        if not isinstance(operand, _Field):
            raise _unsupported("'in' without a property on its left")
        rendered = []
        for node in values:
            value = self._operand(node)
            if not isinstance(value, _Literal):
                raise _unsupported("A property inside an 'in' list")
            rendered.append("null" if value.kind == "null" else self._value(operand, value))
        return f"{operand.soql} IN ({', '.join(rendered)})"

    def _member_condition(self, node: Tree[Any]) -> str:
        steps = node.children
        if isinstance(steps[-1], Tree) and steps[-1].data == "lambda_step":
            return self._lambda(steps)
        field = self._field(steps)
        if field.ftype is not FieldType.BOOLEAN:
            raise MalformedQueryError(f"{field.fdef.name} is not a Boolean property: compare it with a value",
                                      ["$filter"])
        return f"{field.soql} = TRUE"

    def _call_condition(self, node: Tree[Any]) -> str:
        name = str(node.children[0]).lower()
        args = [a for a in node.children[1:] if a is not None]
        if name not in _LIKE_FUNCTIONS:
            if name in _CASE_FUNCTIONS or name in _DATE_FUNCTIONS:
                raise MalformedQueryError(f"{name}() does not give a Boolean: compare it with a value", ["$filter"])
            raise _unsupported(f"The function {name}()")
        if len(args) != 2:
            raise MalformedQueryError(f"{name}() takes two arguments", ["$filter"])
        field_node, value_node = (args[1], args[0]) if name == "substringof" else (args[0], args[1])
        field, value = self._operand(field_node), self._operand(value_node)
        if not isinstance(field, _Field) or not isinstance(value, _Literal) or value.kind != "string":
            expected = "a text value, then a property" if name == "substringof" else "a property, then a text value"
            raise _unsupported(f"{name}() with other arguments than {expected}")
        if field.ftype not in _TEXT or field.ftype is FieldType.MULTIPICKLIST:
            raise MalformedQueryError(f"{name}() needs a text property; {field.fdef.name} is not one", ["$filter"])
        pattern = like_pattern(value.value, prefix=name in ("contains", "substringof", "endswith"),
                               suffix=name in ("contains", "substringof", "startswith"))
        return f"{field.soql} LIKE {pattern}"

    def _lambda(self, steps: list[Any]) -> str:
        if self.lambda_variable is not None:
            raise _unsupported("A lambda (any/all) inside another lambda")
        names = [str(s) for s in steps[:-1]]
        if len(names) != 1:
            raise _unsupported("any()/all() below a parent navigation property")
        nav = self.entity_set.navigation(names[0])
        if not isinstance(nav, ChildNav):
            raise MalformedQueryError(f"any() and all() apply to collection navigation properties; {names[0]} is not "
                                      f"one of {self.entity_set.name}", ["$filter"])
        lambda_node = steps[-1]
        kind = str(lambda_node.children[0].children[0])
        variable, predicate = lambda_node.children[1], lambda_node.children[2]
        child_set = self.model.sets[nav.child.lower()]
        child_object = child_set.obj.name
        if variable is None:
            if kind == "all":
                raise MalformedQueryError("all() needs a condition: all(x: …)", ["$filter"])
            return f"Id IN (SELECT {nav.field} FROM {child_object})"
        inner = _Translator(self.model, child_set, str(variable)).condition(predicate)
        if kind == "any":
            return f"Id IN (SELECT {nav.field} FROM {child_object} WHERE {inner})"
        return f"Id NOT IN (SELECT {nav.field} FROM {child_object} WHERE NOT ({inner}))"

    # -- operands --------------------------------------------------------------------------------------------------

    def _operand(self, node: Any) -> _Field | _Literal:
        if not isinstance(node, Tree):
            raise MalformedQueryError("Unexpected term in $filter", ["$filter"])
        literal = _literal(node)
        if literal is not None:
            return literal
        if node.data == "member":
            if isinstance(node.children[-1], Tree):
                raise _unsupported("Comparing the result of any()/all() with a value other than true or false")
            return self._field(node.children)
        if node.data == "call":
            name = str(node.children[0]).lower()
            args = [a for a in node.children[1:] if a is not None]
            if name in _CASE_FUNCTIONS or name in _DATE_FUNCTIONS:
                if len(args) != 1:
                    raise MalformedQueryError(f"{name}() takes one argument", ["$filter"])
                inner = self._operand(args[0])
                if not isinstance(inner, _Field):
                    raise _unsupported(f"{name}() of a value")
                if name in _CASE_FUNCTIONS:
                    if inner.ftype not in _TEXT:
                        raise MalformedQueryError(f"{name}() needs a text property", ["$filter"])
                    return inner  # SOQL compares text case-insensitively already
                if inner.ftype not in (FieldType.DATE, FieldType.DATETIME) or (
                        name == "hour" and inner.ftype is not FieldType.DATETIME):
                    raise MalformedQueryError(f"{name}() needs a date or date and time property", ["$filter"])
                return _Field(f"{_DATE_FUNCTIONS[name]}({inner.soql})", inner.fdef, FieldType.INT)
            if name in _LIKE_FUNCTIONS:
                raise MalformedQueryError(f"{name}() is a condition: compare it with true or false only", ["$filter"])
            raise _unsupported(f"The function {name}()")
        if node.data == "arith":
            raise self._arith(node)
        raise _unsupported("A condition used as a value")

    def _field(self, steps: list[Any]) -> _Field:
        names = [str(s) for s in steps]
        if self.lambda_variable is not None:
            if names[0] != self.lambda_variable or len(names) < 2:
                raise MalformedQueryError(f"Inside the lambda, paths start with its variable: "
                                          f"{self.lambda_variable}/…", ["$filter"])
            names = names[1:]
        if any(n.startswith("$") for n in names):
            raise _unsupported(f"{'/'.join(names)}")
        current = self.entity_set
        relationships: list[str] = []
        for name in names[:-1]:
            nav = current.navigation(name)
            if isinstance(nav, ChildNav):
                raise MalformedQueryError(f"{nav.name} is a collection: filter on it with any() or all()", ["$filter"])
            if nav is None:
                raise InvalidFieldError(f"No navigation property '{name}' exists in type '{current.type_name}'",
                                        [name])
            relationships.append(nav.name)
            current = self.model.sets[nav.target.lower()]
        if len(relationships) > _MAX_RELATIONSHIPS:
            raise _unsupported(f"A path through more than {_MAX_RELATIONSHIPS} navigation properties")
        last = names[-1]
        nav = current.navigation(last)
        if isinstance(nav, ParentNav) and last.lower() not in current.properties:
            fdef = nav.field  # `Account eq null` compares the lookup itself
        elif isinstance(nav, ChildNav):
            raise MalformedQueryError(f"{nav.name} is a collection: filter on it with any() or all()", ["$filter"])
        else:
            fdef = current.property(last).fdef
        return _Field(".".join([*relationships, fdef.name]), fdef, fdef.type)

    def _value(self, field: _Field, value: _Literal) -> str:
        """``value`` as a SOQL literal of ``field``'s type, or a 400 naming both."""
        ftype = field.ftype
        kind = value.kind
        if ftype in _TEXT and kind == "string":
            return quote(value.value)
        if ftype is FieldType.BOOLEAN and kind == "boolean":
            return "TRUE" if value.value else "FALSE"
        if ftype in _NUMERIC and kind == "number":
            return format(value.value, "f")
        if ftype is FieldType.DATE and kind == "date":
            return value.value.isoformat()  # type: ignore[no-any-return]
        if ftype is FieldType.DATE and kind == "datetime":
            moment: datetime = value.value
            if moment.time() != time(0):
                raise MalformedQueryError(f"{field.fdef.name} is a date: compare it with a date, not {value.text}",
                                          ["$filter"])
            return moment.date().isoformat()
        if ftype is FieldType.DATETIME and kind == "datetime":
            return literal(value.value)
        if ftype is FieldType.DATETIME and kind == "date":
            return literal(datetime.combine(value.value, time(0), UTC))
        if ftype is FieldType.TIME and kind == "time":
            moment_of_day: time = value.value
            return quote(moment_of_day.strftime("%H:%M:%S.") + f"{moment_of_day.microsecond // 1000:03d}Z")
        if ftype is FieldType.TIME and kind == "string":
            return quote(value.value)
        raise MalformedQueryError(f"{field.fdef.name} cannot be compared with {value.text}: it is of type "
                                  f"{_type_word(field)}", ["$filter", field.fdef.name])

    # -- order -----------------------------------------------------------------------------------------------------

    def order_item(self, node: Tree[Any]) -> str:
        member, direction = node.children
        if isinstance(member.children[-1], Tree):
            raise _unsupported("Ordering by any()/all()")
        field = self._field(member.children)
        if field.fdef.type is FieldType.MULTIPICKLIST:
            raise MalformedQueryError(f"{field.fdef.name} holds several values and cannot be ordered by",
                                      ["$orderby"])
        descending = direction is not None and str(direction.children[0]) == "desc"
        return f"{field.soql} {'DESC' if descending else 'ASC'}"


def _type_word(field: _Field) -> str:
    if field.ftype in _TEXT:
        return "text"
    return {FieldType.BOOLEAN: "Boolean", FieldType.DATE: "date", FieldType.DATETIME: "date and time",
            FieldType.TIME: "time of day"}.get(field.ftype, "number")


def _is_condition(node: Any) -> bool:
    if not isinstance(node, Tree):
        return False
    if node.data == "call":
        return str(node.children[0]).lower() in _LIKE_FUNCTIONS
    if node.data == "member":
        return isinstance(node.children[-1], Tree)
    return node.data in ("compare", "in_op", "and_op", "or_op", "not_op")


def _is_bool_literal(node: Any) -> bool:
    return isinstance(node, Tree) and node.data in ("true", "false")


# -- entry points --------------------------------------------------------------------------------------------------

def translate_filter(text: str, entity_set: EntitySet, model: ServiceModel) -> str:
    """The SOQL condition (without ``WHERE``) for the ``$filter`` expression ``text`` over ``entity_set``."""
    tree = _parse(text, "filter", "$filter")
    try:
        return _Translator(model, entity_set).condition(tree.children[0])
    except RecursionError:  # hundreds of nested and/or: more than any query needs (and than SOQL would run)
        raise MalformedQueryError("$filter is nested too deeply: combine fewer conditions (use in for lists)",
                                  ["$filter"]) from None


def translate_orderby(text: str, entity_set: EntitySet, model: ServiceModel) -> list[str]:
    """The SOQL ``ORDER BY`` items (``Name DESC``, ``Account.Name ASC``) for the ``$orderby`` expression ``text``."""
    tree = _parse(text, "orderby", "$orderby")
    translator = _Translator(model, entity_set)
    return [translator.order_item(item) for item in tree.children]
