"""The SOQL parser: query text in, :class:`~interlink.soql.ast.Query` out.

The grammar is ``soql.lark`` (lark, LALR(1)); an inline :class:`lark.Transformer` builds the ``ast`` dataclasses
while parsing, so no intermediate parse tree is made. Tokens come from :class:`_SoqlLexer`, a contextual lexer
built from the grammar's terminals that decides, per parser state, whether a word is a keyword or a name (lark's
stock contextual lexer with NAME always accepted makes the same decisions, a little slower; the tests hold the two
to the same trees). The parser is built once, on first use, and shared: it keeps no per-parse state, so concurrent
parses are safe.

Every failure is a :class:`~interlink.errors.MalformedQueryError` in the platform's style::

    \\nSELECT Id FRM Account\\n          ^\\nERROR at Row:1:Column:11\\nunexpected token: 'FRM'

Nothing else escapes :func:`parse_soql`, whatever the input.
"""

from __future__ import annotations

import math
import re
import threading
from datetime import date, datetime, timedelta
from typing import Any, NoReturn

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.lexer import Lexer

from interlink.errors import MalformedQueryError
from interlink.soql.ast import (
    And,
    Bind,
    Comparison,
    DateLiteral,
    FieldPath,
    FieldsMacro,
    Function,
    GroupBy,
    Includes,
    InList,
    InSubquery,
    Not,
    Or,
    OrderItem,
    Query,
    SelectItem,
    SubQuery,
    TypeOf,
    TypeOfWhen,
    Value,
)

#: The platform's limit on the length of a SOQL statement.
MAX_QUERY_LENGTH = 100_000
#: Deepest parenthesis nesting accepted (conditions, subqueries, function calls). Keeps every later
#: recursive walk over the tree far from Python's recursion limit.
MAX_NESTING = 100

AGGREGATE_FUNCTIONS = frozenset({"COUNT", "COUNT_DISTINCT", "SUM", "AVG", "MIN", "MAX"})
DATE_FUNCTIONS = frozenset({
    "CALENDAR_YEAR", "CALENDAR_QUARTER", "CALENDAR_MONTH", "DAY_IN_MONTH", "DAY_IN_WEEK", "DAY_IN_YEAR",
    "DAY_ONLY", "HOUR_IN_DAY", "WEEK_IN_MONTH", "WEEK_IN_YEAR", "FISCAL_YEAR", "FISCAL_QUARTER", "FISCAL_MONTH",
})
OTHER_FUNCTIONS = frozenset({"TOLABEL", "FORMAT", "CONVERTCURRENCY", "CONVERTTIMEZONE", "GROUPING"})
FUNCTIONS = AGGREGATE_FUNCTIONS | DATE_FUNCTIONS | OTHER_FUNCTIONS
#: Location functions: recognised so the refusal is clear, but not supported.
UNSUPPORTED_FUNCTIONS = frozenset({"DISTANCE", "GEOLOCATION"})

DATE_LITERALS = frozenset({
    "YESTERDAY", "TODAY", "TOMORROW",
    "LAST_WEEK", "THIS_WEEK", "NEXT_WEEK",
    "LAST_MONTH", "THIS_MONTH", "NEXT_MONTH",
    "LAST_90_DAYS", "NEXT_90_DAYS",
    "THIS_QUARTER", "LAST_QUARTER", "NEXT_QUARTER",
    "THIS_YEAR", "LAST_YEAR", "NEXT_YEAR",
    "THIS_FISCAL_QUARTER", "LAST_FISCAL_QUARTER", "NEXT_FISCAL_QUARTER",
    "THIS_FISCAL_YEAR", "LAST_FISCAL_YEAR", "NEXT_FISCAL_YEAR",
})
DATE_LITERALS_N = frozenset({
    "LAST_N_DAYS", "NEXT_N_DAYS", "N_DAYS_AGO",
    "LAST_N_WEEKS", "NEXT_N_WEEKS", "N_WEEKS_AGO",
    "LAST_N_MONTHS", "NEXT_N_MONTHS", "N_MONTHS_AGO",
    "LAST_N_QUARTERS", "NEXT_N_QUARTERS", "N_QUARTERS_AGO",
    "LAST_N_YEARS", "NEXT_N_YEARS", "N_YEARS_AGO",
    "LAST_N_FISCAL_QUARTERS", "NEXT_N_FISCAL_QUARTERS", "N_FISCAL_QUARTERS_AGO",
    "LAST_N_FISCAL_YEARS", "NEXT_N_FISCAL_YEARS", "N_FISCAL_YEARS_AGO",
})

WITH_NAMES = frozenset({"SECURITY_ENFORCED", "USER_MODE", "SYSTEM_MODE"})
FIELDS_KINDS = frozenset({"ALL", "STANDARD", "CUSTOM"})

_ESCAPES = {
    "n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f",
    "'": "'", '"': '"', "\\": "\\",
    # Kept escaped: the compiler reads them as a literal % and _ in LIKE patterns.
    "%": "\\%", "_": "\\_",
}
# In a LIKE pattern the backslash stays the pattern's escape character, so \\ is kept escaped too: the pattern
# 'a\\%' (a backslash, then any text) must stay distinguishable from 'a\%' (a literal percent sign).
_LIKE_ESCAPES = {**_ESCAPES, "\\": "\\\\"}
_ESCAPE_RE = re.compile(r"\\(u[0-9a-fA-F]{4}|[\s\S])")
_DATETIME_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(?:Z|([+-])([0-9]{2}):?([0-9]{2}))\Z"
)


class _QueryError(Exception):
    """A refusal found while building the tree; ``parse_soql`` turns it into MalformedQueryError."""

    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.column = column
        self.message = message


def _fail(token: Token, message: str | None = None) -> NoReturn:
    raise _QueryError(token.line or 1, token.column or 1, message or f"unexpected token: '{token.value}'")


def _fail_at(line: int, column: int, message: str) -> NoReturn:
    raise _QueryError(line, column, message)


def _path_token(path: FieldPath) -> tuple[int, int]:
    return path.line or 1, path.column or 1


def _unescape(token: Token, escapes: dict[str, str] = _ESCAPES) -> str:
    """The text of a string literal with its escapes resolved (see _ESCAPES and _LIKE_ESCAPES)."""
    raw = token.value[1:-1]
    if "\\" not in raw:
        return raw

    def replace(match: re.Match[str]) -> str:
        code = match.group(1)
        if len(code) == 5:
            char = chr(int(code[1:], 16))
            return escapes["\\"] if char == "\\" else char
        resolved = escapes.get(code)
        if resolved is None:
            # The offending escape's position inside the (possibly multi-line) literal.
            before = token.value[: match.start() + 1]
            newlines = before.count("\n")
            line = token.line + newlines
            column = (len(before) - before.rfind("\n")) if newlines else token.column + match.start() + 1
            _fail_at(line, column, f"Invalid string literal {token.value}. "
                                   f"Illegal character sequence '\\{code}' in string literal.")
        return resolved

    return _ESCAPE_RE.sub(replace, raw)


def _number(token: Token) -> int | float:
    text = token.value
    try:
        if "." in text or "e" in text or "E" in text:
            value = float(text)
            if math.isfinite(value):
                return value
        else:
            return int(text)
    except ValueError:  # more digits than int() accepts (sys.get_int_max_str_digits)
        pass
    _fail(token, f"Invalid number: {text[:40]}")


def _count(token: Token) -> int:
    """A non-negative integer (LIMIT, OFFSET, the n of LAST_N_DAYS:n)."""
    if not (token.value.isascii() and token.value.isdigit()):
        _fail(token)
    return _number(token)  # type: ignore[return-value]


def _datetime(token: Token) -> datetime:
    m = _DATETIME_RE.match(token.value)
    if m is None:  # pragma: no cover - the terminal's regex guarantees the shape
        _fail(token)
    year, month, day, hour, minute, second, fraction, sign, off_h, off_m = m.groups()
    try:
        micro = int((fraction or "0")[:6].ljust(6, "0"))
        value = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro)
        if sign:
            offset = timedelta(hours=int(off_h), minutes=int(off_m))
            if offset >= timedelta(hours=24):
                raise ValueError("offset")
            value = value - offset if sign == "+" else value + offset
    except (ValueError, OverflowError):
        _fail(token, f"Invalid datetime: {token.value}")
    return value


class _Builder(Transformer):  # type: ignore[type-arg]
    """Inline callbacks (one per rule/alias of soql.lark) that build ast dataclasses. Stateless."""

    # -- query -------------------------------------------------------------------------------------------------

    def start(self, children: list[Any]) -> Query:
        return children[0]  # type: ignore[no-any-return]

    def query(self, c: list[Any]) -> Query:
        select, obj, alias, scope, where, with_clauses, group_by, having, order_by, limit, offset, for_clause, rows = c
        return Query(
            select=select,
            object=obj.value,
            alias=alias,
            where=where,
            with_clauses=with_clauses,
            group_by=group_by,
            having=having,
            order_by=order_by,
            limit=limit,
            offset=offset,
            for_clause=for_clause,
            all_rows=rows,
            using_scope=scope,
        )

    def alias(self, c: list[Token]) -> str | None:
        return c[0].value if c else None

    def select_list(self, c: list[SelectItem]) -> tuple[SelectItem, ...]:
        return tuple(c)

    # -- select items ---------------------------------------------------------------------------------------------

    def sel_path(self, c: list[FieldPath]) -> SelectItem:
        return SelectItem(c[0])

    def sel_func(self, c: list[Any]) -> SelectItem:
        func, alias = c
        if isinstance(func, _Fields):
            if alias is not None:
                _fail(alias)
            return SelectItem(func.macro)
        return SelectItem(func, alias.value if alias is not None else None)

    def sel_subquery(self, c: list[Query]) -> SelectItem:
        return SelectItem(SubQuery(c[0]))

    def sel_typeof(self, c: list[Any]) -> SelectItem:
        relationship = c[0].value
        else_fields = c[-1]
        whens = tuple(c[1:-1])
        return SelectItem(TypeOf(relationship, whens, else_fields or ()))

    def typeof_when(self, c: list[Any]) -> TypeOfWhen:
        return TypeOfWhen(c[0].value, c[1])

    def path_list(self, c: list[FieldPath]) -> tuple[FieldPath, ...]:
        return tuple(c)

    def field_path(self, c: list[Token]) -> FieldPath:
        first = c[0]
        return FieldPath(tuple(t.value for t in c), first.line or 0, first.column or 0)

    def func_call(self, c: list[Any]) -> Function | _Fields:
        name_token: Token = c[0]
        args = c[1:] if c[1:] != [None] else []
        name = name_token.value.upper()
        for arg in args:
            _plain(arg)
        if name == "FIELDS":
            if len(args) != 1 or not isinstance(args[0], FieldPath) or len(args[0].parts) != 1:
                _fail(name_token, "FIELDS() takes one of ALL, STANDARD or CUSTOM")
            kind = args[0].parts[0].upper()
            if kind not in FIELDS_KINDS:
                _fail_at(*_path_token(args[0]), f"unexpected token: '{args[0].parts[0]}'")
            return _Fields(FieldsMacro(kind), name_token)  # type: ignore[arg-type]
        if name in UNSUPPORTED_FUNCTIONS:
            _fail(name_token, f"{name} is not supported: location-based queries are not available")
        if name not in FUNCTIONS:
            _fail(name_token, f"Unknown function: {name_token.value}")
        for arg in args:
            if isinstance(arg, Token):  # a literal argument: only the location functions take them
                _fail(arg)
        if name == "COUNT":
            if len(args) > 1:
                _fail(name_token, "COUNT() takes at most one field")
        elif len(args) != 1:
            _fail(name_token, f"{name_token.value}() takes exactly one field")
        return Function(name, tuple(args), name_token.line or 0, name_token.column or 0)

    def literal_arg(self, c: list[Token]) -> Token:
        return c[0]

    # -- FROM extras ------------------------------------------------------------------------------------------------

    def using_scope(self, c: list[Token]) -> str | None:
        return c[0].value if c else None

    # -- conditions ---------------------------------------------------------------------------------------------------

    def where_clause(self, c: list[Any]) -> Any:
        return c[0] if c else None

    def having(self, c: list[Any]) -> Any:
        return c[0] if c else None

    def condition(self, c: list[Any]) -> Any:
        if len(c) == 1:
            return c[0]
        first_op: Token = c[1]
        kind = first_op.type
        for op in c[3::2]:
            if op.type != kind:
                _fail(op, f"unexpected token: '{op.value}' (use parentheses to combine AND and OR)")
        items = tuple(c[0::2])
        return And(items) if kind == "AND" else Or(items)

    def not_cond(self, c: list[Any]) -> Not:
        return Not(c[1])

    def comparison(self, c: list[Any]) -> Comparison:
        left, op, value = c
        if op == "LIKE" and isinstance(value.value, str) and "\\" in value.value:
            return Comparison(_plain(left), op, _unescape(value.token, _LIKE_ESCAPES))
        return Comparison(_plain(left), op, value.value)

    def comp_op(self, c: list[Token]) -> str:
        op = c[0].value
        if op == "<>":
            return "!="
        return op.upper()  # type: ignore[no-any-return]

    def in_list(self, c: list[Any]) -> InList:
        return InList(_plain(c[0]), tuple(v for v, _ in c[-1].items), negated=c[1].type == "NOT")

    def in_query(self, c: list[Any]) -> InSubquery:
        left = _plain(c[0])
        if not isinstance(left, FieldPath):
            _fail_at(left.line, left.column, "A semi-join or anti-join must compare a field, not a function")
        return InSubquery(left, c[-1], negated=c[1].type == "NOT")

    def in_bind(self, c: list[Any]) -> InList:
        return InList(_plain(c[0]), (c[-1].value,), negated=c[1].type == "NOT")

    def includes(self, c: list[Any]) -> Includes:
        left, keyword, values = c
        left = _plain(left)
        if not isinstance(left, FieldPath):
            _fail_at(left.line, left.column, f"{keyword.value.upper()} needs a multi-select picklist field")
        strings = []
        for value, token in values.items:
            if not isinstance(value, str):
                _fail(token, f"{keyword.value.upper()} takes quoted strings only")
            strings.append(value)
        return Includes(left, tuple(strings), negated=keyword.type == "EXCLUDES")

    # -- values -------------------------------------------------------------------------------------------------------

    def value_list(self, c: list[Any]) -> _Values:
        return _Values(c)

    def string_value(self, c: list[Token]) -> _Val:
        return _Val(_unescape(c[0]), c[0])

    def number_value(self, c: list[Token]) -> _Val:
        return _Val(_number(c[0]), c[0])

    def date_value(self, c: list[Token]) -> _Val:
        token = c[0]
        try:
            return _Val(date.fromisoformat(token.value), token)
        except ValueError:
            _fail(token, f"Invalid date: {token.value}")

    def datetime_value(self, c: list[Token]) -> _Val:
        return _Val(_datetime(c[0]), c[0])

    def true_value(self, c: list[Token]) -> _Val:
        return _Val(True, c[0])

    def false_value(self, c: list[Token]) -> _Val:
        return _Val(False, c[0])

    def null_value(self, c: list[Token]) -> _Val:
        return _Val(None, c[0])

    def date_literal(self, c: list[Token]) -> _Val:
        name_token = c[0]
        name = name_token.value.upper()
        if len(c) == 1:
            if name in DATE_LITERALS:
                return _Val(DateLiteral(name), name_token)
            if name in DATE_LITERALS_N:
                _fail(name_token, f"Date literal {name} needs a number: {name}:n")
            _fail(name_token)
        colon, number = c[1], c[2]
        if name not in DATE_LITERALS_N:
            _fail(colon if name in DATE_LITERALS else name_token)
        if colon.start_pos != name_token.end_pos:
            _fail(colon)
        if number.start_pos != colon.end_pos:
            _fail(number)
        return _Val(DateLiteral(name, _count(number)), name_token)

    def bind(self, c: list[Token]) -> _Val:
        return _Val(Bind(c[1].value), c[0])

    # -- WITH, GROUP BY, ORDER BY, LIMIT, OFFSET, FOR, ALL ROWS ----------------------------------------------------

    def with_clauses(self, c: list[str]) -> tuple[str, ...]:
        return tuple(c)

    def with_name(self, c: list[Token]) -> str:
        name = c[0].value.upper()
        if name not in WITH_NAMES:
            _fail(c[0])
        return name

    def with_data_category(self, c: list[Any]) -> str:
        return "DATA CATEGORY"

    def data_category_filter(self, c: list[Any]) -> None:
        return None

    def group_by(self, c: list[Any]) -> GroupBy | None:
        if not c:
            return None
        if isinstance(c[0], Token):  # ROLLUP or CUBE
            return GroupBy(tuple(_plain(item) for item in c[1:]), c[0].type)
        return GroupBy(tuple(_plain(item) for item in c))

    def order_by(self, c: list[OrderItem]) -> tuple[OrderItem, ...]:
        return tuple(c)

    def order_item(self, c: list[Any]) -> OrderItem:
        expr, direction, nulls = c
        return OrderItem(
            _plain(expr),
            descending=direction is not None and direction.type == "DESC",
            nulls_last=None if nulls is None else nulls.type == "LAST",
        )

    def limit(self, c: list[Any]) -> int | Bind | None:
        return _count_or_bind(c[0]) if c else None

    def offset(self, c: list[Any]) -> int | Bind | None:
        return _count_or_bind(c[0]) if c else None

    def for_clause(self, c: list[Token]) -> str | None:
        return c[0].type if c else None

    def all_rows(self, c: list[Any]) -> bool:
        return bool(c)


class _Fields:
    """FIELDS(...) with its position: only the select list unwraps it; anywhere else it is refused."""

    __slots__ = ("macro", "token")

    def __init__(self, macro: FieldsMacro, token: Token) -> None:
        self.macro = macro
        self.token = token


def _plain(expr: Any) -> Any:
    if isinstance(expr, _Fields):
        _fail(expr.token, "FIELDS() is only allowed in the SELECT list")
    return expr


class _Val:
    """A value with the token it came from (for error positions); unwrapped by the rules that use values."""

    __slots__ = ("token", "value")

    def __init__(self, value: Value, token: Token) -> None:
        self.value = value
        self.token = token


class _Values:
    """A parenthesised value list: (value, token) pairs."""

    __slots__ = ("items",)

    def __init__(self, items: list[_Val]) -> None:
        self.items = [(item.value, item.token) for item in items]


def _count_or_bind(item: Token | _Val) -> int | Bind:
    if isinstance(item, _Val):
        return item.value  # type: ignore[return-value]
    return _count(item)


class _AlwaysName:
    """A pass-through postlexer whose only job is ``always_accept``: NAME is lexed in every parser state.

    Used with lark's stock contextual lexer (``_build_parser("contextual")``), the reference the fast lexer
    below is tested against.
    """

    always_accept = ("NAME",)

    def process(self, stream: Any) -> Any:
        return stream


class _SoqlLexer(Lexer):
    """A contextual lexer built from the grammar's own terminals, doing one regex match per token.

    It decides exactly what lark's ContextualLexer decides with NAME always accepted: a word is a keyword
    when that keyword's terminal is acceptable in the current parser state, and NAME otherwise. Lark's
    ContextualLexer gets there by trying one alternation regex per parser state and re-typing through a
    callback; this does it with a single master regex and a dict lookup, which saves about a fifth of the
    parse time. The token patterns all come from soql.lark, so the grammar stays the single source.
    """

    __future_interface__ = 2

    def __init__(self, conf: Any) -> None:
        self.keywords: dict[str, str] = {}
        self.punctuation: dict[str, str] = {}
        regexes: list[tuple[int, str, str]] = []
        ignored: list[str] = []
        for term in conf.terminals:
            pattern, name = term.pattern, str(term.name)
            if name in conf.ignore:
                ignored.append(pattern.to_regexp())
            elif pattern.type == "re":
                regexes.append((-term.priority, name, pattern.to_regexp()))
            elif pattern.value[:1].isalpha():
                self.keywords[pattern.value.upper()] = name  # lexed as NAME, re-typed by parser state
            else:
                self.punctuation[pattern.value] = name
        # Ignored text first, then regex terminals by priority (DATETIME before DATE before NUMBER), then
        # punctuation longest first ("<=" before "<").
        alternatives = ["(?P<WS>" + "|".join(ignored) + ")"] if ignored else []
        alternatives += [f"(?P<{name}>{regexp})" for _priority, name, regexp in sorted(regexes)]
        punctuation = sorted(self.punctuation, key=len, reverse=True)
        alternatives.append("(?P<P>" + "|".join(re.escape(p) for p in punctuation) + ")")
        self.regex = re.compile("|".join(alternatives))

    def lex(self, lexer_state: Any, parser_state: Any) -> Any:
        text: str = lexer_state.text.text
        states = parser_state.parse_conf.states
        keywords = self.keywords
        punctuation = self.punctuation
        match = self.regex.match
        new_token = Token
        pos, end, line, line_start = 0, len(text), 1, 0
        while pos < end:
            m = match(text, pos)
            if m is None:
                raise _QueryError(line, pos - line_start + 1, _bad_character_message(text[pos]))
            kind = m.lastgroup
            value = m.group()
            next_pos = m.end()
            if kind == "NAME":
                keyword = keywords.get(value.upper())
                if keyword is not None and keyword in states[parser_state.position]:
                    kind = keyword
            elif kind == "P":
                kind = punctuation[value]
            elif kind == "WS":
                newlines = value.count("\n")
                if newlines:
                    line += newlines
                    line_start = pos + value.rfind("\n") + 1
                pos = next_pos
                continue
            token = new_token(kind, value, pos, line, pos - line_start + 1, None, None, next_pos)
            if "\n" in value:
                line += value.count("\n")
                line_start = pos + value.rfind("\n") + 1
            pos = next_pos
            yield token


def _build_parser(lexer: str = "fast") -> Lark:
    """The SOQL parser; ``lexer="contextual"`` uses lark's stock contextual lexer instead of _SoqlLexer."""
    options: dict[str, Any] = {"lexer": _SoqlLexer} if lexer == "fast" else {
        "lexer": "contextual", "postlex": _AlwaysName()}
    return Lark.open_from_package(
        "interlink.soql", "soql.lark", parser="lalr", transformer=_Builder(), maybe_placeholders=True, **options
    )


_parser: Lark | None = None
_parser_lock = threading.Lock()


def _get_parser() -> Lark:
    global _parser
    if _parser is None:
        with _parser_lock:
            if _parser is None:
                _parser = _build_parser()
    return _parser


# -- errors ------------------------------------------------------------------------------------------------------------


def _malformed(text: str, line: int, column: int, message: str) -> MalformedQueryError:
    lines = text.split("\n")
    shown = lines[line - 1] if 0 < line <= len(lines) else ""
    shown = shown.rstrip("\r")
    caret = " " * max(column - 1, 0) + "^"
    return MalformedQueryError(f"\n{shown}\n{caret}\nERROR at Row:{line}:Column:{column}\n{message}")


def _bad_character_message(char: str) -> str:
    if char == "'":
        return "unexpected token: \"'\" (unterminated string literal)"
    return f"unexpected token: '{char}'"


def _end_position(text: str) -> tuple[int, int]:
    """Row and column just past the last non-blank character (where '<EOF>' is reported)."""
    stripped = text.rstrip()
    line = stripped.count("\n") + 1
    column = len(stripped) - (stripped.rfind("\n") + 1) + 1
    return line, column


def _lark_error(text: str, exc: UnexpectedInput) -> MalformedQueryError:
    if isinstance(exc, UnexpectedToken) and exc.token.type != "$END":
        token = exc.token
        return _malformed(text, token.line or 1, token.column or 1, f"unexpected token: '{token.value}'")
    if isinstance(exc, UnexpectedCharacters):
        return _malformed(text, exc.line, exc.column, _bad_character_message(exc.char))
    if isinstance(exc, (UnexpectedToken, UnexpectedEOF)):
        line, column = _end_position(text)
        return _malformed(text, line, column, "unexpected token: '<EOF>'")
    line, column = _end_position(text)  # pragma: no cover - lark has no other UnexpectedInput for LALR
    return _malformed(text, line, column, "unexpected token: '<EOF>'")  # pragma: no cover


def _check_nesting(text: str) -> None:
    """Refuse parentheses nested deeper than MAX_NESTING (outside string literals)."""
    if text.count("(") <= MAX_NESTING:
        return
    depth = 0
    in_string = False
    escaped = False
    line, line_start = 1, 0
    for i, ch in enumerate(text):
        if ch == "\n":
            line, line_start = line + 1, i + 1
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == "'":
                in_string = False
        elif ch == "'":
            in_string = True
        elif ch == "(":
            depth += 1
            if depth > MAX_NESTING:
                raise _malformed(text, line, i - line_start + 1,
                                 f"Query nested too deeply: more than {MAX_NESTING} levels of parentheses")
        elif ch == ")":
            depth -= 1


def parse_soql(text: str) -> Query:
    """Parse one SOQL statement. Raises MalformedQueryError (and nothing else) on any bad input."""
    if not isinstance(text, str):
        raise MalformedQueryError("The query must be a string")
    if len(text) > MAX_QUERY_LENGTH:
        raise MalformedQueryError(f"Query too long: {len(text)} characters, the limit is {MAX_QUERY_LENGTH}")
    if not text.strip():
        raise _malformed(text, 1, 1, "unexpected token: '<EOF>'")
    _check_nesting(text)
    try:
        query: Query = _get_parser().parse(text)
    except _QueryError as exc:
        raise _malformed(text, exc.line, exc.column, exc.message) from None
    except UnexpectedInput as exc:
        raise _lark_error(text, exc) from None
    except RecursionError:
        raise MalformedQueryError("Query too complicated") from None
    except MalformedQueryError:
        raise
    except Exception as exc:  # a bug; the contract is still MALFORMED_QUERY, never a 500
        raise MalformedQueryError(f"Unknown error parsing query ({type(exc).__name__})") from exc
    return _with_text(query, text)


def _with_text(query: Query, text: str) -> Query:
    object.__setattr__(query, "text", text)
    return query


__all__ = ["MAX_NESTING", "MAX_QUERY_LENGTH", "parse_soql"]
