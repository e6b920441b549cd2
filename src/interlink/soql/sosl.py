"""SOSL: the search language, parsed with lark (LALR) and run over the full-text index.

::

    FIND {term} [IN ALL|NAME|EMAIL|PHONE|SIDEBAR FIELDS]
      [RETURNING Obj [(field, ... [WHERE ...] [ORDER BY ...] [LIMIT n] [OFFSET n])], Obj2 ...]
      [WITH METADATA = 'LABELS' | SNIPPET | HIGHLIGHT | SPELL_CORRECTION = b | USER_MODE | SYSTEM_MODE | ...]
      [LIMIT n] [UPDATE TRACKING, VIEWSTAT]

Two grammars: the statement, where the search term is one ``{...}`` token, and the term itself: words,
``"quoted phrases"``, ``*`` and ``?`` wildcards, ``AND``, ``OR``, ``AND NOT`` (also a bare ``NOT``),
parentheses, and backslash escapes for reserved characters. Words next to each other mean AND.

A RETURNING clause's field list, WHERE and ORDER BY are SOQL: they are kept as the text the user wrote
(the grammar only checks their shape: balanced parentheses, strings closed) and run through the SOQL
engine as ``SELECT <fields> FROM Obj WHERE Id IN (<hit ids>) AND (<where>) ...``, so SOQL is parsed and
compiled in one place and user text never reaches SQL.

Every failure is a :class:`~interlink.errors.MalformedSearchError` in the platform's style.
"""

from __future__ import annotations

import copy
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from interlink import ids
from interlink.errors import InterlinkError, InvalidTypeError, MalformedQueryError, MalformedSearchError
from interlink.metadata.model import ObjectDef, Schema
from interlink.soql import search_index
from interlink.soql.search_index import AllOf, AnyOf, Expr, Hit, IndexQuery, Scope, Terms, Without
from interlink.store.database import Store

MAX_SEARCH_LENGTH = 10_000
MAX_LIMIT = 2000
MAX_NESTING = 100
SCOPES: dict[str, Scope] = {"ALL": "ALL", "NAME": "NAME", "EMAIL": "EMAIL", "PHONE": "PHONE", "SIDEBAR": "ALL"}
SHORT_TERM = "search term must be longer than one character"
NO_TERM = "No search term found. The search term must be enclosed in braces."

# WITH clauses accepted (and, but for METADATA and the modes, without effect here); others are refused.
_WITH_IGNORED = frozenset({"SNIPPET", "HIGHLIGHT", "SPELL_CORRECTION", "DIVISION", "PRICEBOOKID"})
_WITH_MODES = frozenset({"USER_MODE", "SYSTEM_MODE"})
_WITH_REFUSED = frozenset({"DATA", "NETWORK"})

SOSL_GRAMMAR = r"""
start: _FIND SEARCH_TERM in_clause returning with_clauses limit update_clause

in_clause: (_IN NAME _FIELDS)?

returning: (_RETURNING object_spec (_COMMA object_spec)*)?
object_spec: NAME spec_body?
spec_body: "(" field_list where_clause using_clause order_by limit offset ")"
field_list: field_item (_COMMA field_item)*
?field_item: field_path
           | func_field
!func_field: NAME "(" field_path ")"
field_path: NAME ("." NAME)*

where_clause: (_WHERE cond_item+)?
?cond_item: NAME | STRING | OTHER | group
// Inside parentheses keywords are plain words (a semi-join's own ORDER BY / LIMIT). The nested rules are
// distinct from the outer ones so LALR does not merge their states (and lookaheads, which drive the lexer).
!group: "(" inner_item* ")"
?inner_item: NAME | STRING | OTHER | inner_group
!inner_group: "(" inner_item* ")"
using_clause: (_USING NAME (EQ NAME)?)?
order_by: (_ORDER _BY order_item (_COMMA order_item)*)?
order_item: field_item [ASC | DESC] [_NULLS (FIRST | LAST)]
limit: (_LIMIT INT)?
offset: (_OFFSET INT)?

with_clauses: with_clause*
with_clause: _WITH NAME with_word*
?with_word: NAME | STRING | INT | EQ | _COMMA | with_group
with_group: "(" with_word* ")"

update_clause: (_UPDATE NAME (_COMMA NAME)*)?

SEARCH_TERM: /\{(?:[^\\}]|\\[\s\S])*\}/
NAME: /[a-z][a-z0-9_]*/i
STRING: /'(?:[^'\\]|\\[\s\S])*'/
OTHER: /[^\s()'"a-z]+/i
INT: /\d+/
EQ: "="
_COMMA: ","

_FIND: "find"i
_IN: "in"i
_FIELDS: "fields"i
_RETURNING: "returning"i
_WHERE: "where"i
_USING: "using"i
_ORDER: "order"i
_BY: "by"i
_NULLS: "nulls"i
_LIMIT: "limit"i
_OFFSET: "offset"i
_WITH: "with"i
_UPDATE: "update"i
ASC: "asc"i
DESC: "desc"i
FIRST: "first"i
LAST: "last"i

%ignore /[ \t\r\n\f]+/
"""

TERM_GRAMMAR = r"""
start: or_expr
?or_expr: and_expr (_OR and_expr)*             -> any_of
?and_expr: unary
         | and_expr _AND? unary                 -> all_of
         | and_expr _AND? _NOT unary            -> without
?unary: WORD
      | PHRASE
      | "(" or_expr ")"

WORD: /(?:[^\s()"\\]|\\[\s\S])+/i
PHRASE: /"(?:[^"\\]|\\[\s\S])*"/
_AND: "and"i
_OR: "or"i
_NOT: "not"i

%ignore /\s+/
"""


# -- the plan ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Returning:
    """One object of RETURNING, with the SOQL pieces as written (``fields`` empty: Id only)."""

    object_name: str
    fields: tuple[str, ...] = ()
    where: str | None = None
    order_by: str | None = None
    limit: int | None = None
    offset: int | None = None
    # Where each piece starts in the statement (-1: not from a statement), to point errors at the user's text:
    # the object name, the field list (as written: ``select``), WHERE and ORDER BY.
    at: tuple[int, int, int, int] = field(default=(-1, -1, -1, -1), compare=False)
    select: str | None = field(default=None, compare=False)

    @property
    def select_text(self) -> str:
        return self.select if self.select is not None else ", ".join(self.fields) or "Id"


@dataclass(frozen=True)
class SearchPlan:
    """A parsed search: what to find, where, and what to return."""

    expr: Expr
    scope: Scope = "ALL"
    returning: tuple[Returning, ...] = ()
    limit: int | None = None
    metadata: bool = False
    mode: str | None = None
    text: str = field(default="", compare=False)


@dataclass
class SearchResult:
    """Records in answer order, as ``(object, wire record)``, and the fields asked for per object."""

    records: list[tuple[ObjectDef, dict[str, Any]]]
    fields: dict[str, list[str]]  # object name -> fields asked for (for WITH METADATA)


# -- errors --------------------------------------------------------------------------------------------------------


class _SearchError(Exception):
    def __init__(self, offset: int, message: str) -> None:
        super().__init__(message)
        self.offset = offset
        self.message = message


def _position(text: str, offset: int) -> tuple[int, int]:
    before = text[:offset]
    line = before.count("\n") + 1
    return line, offset - (before.rfind("\n") + 1) + 1


def _malformed(text: str, offset: int, message: str) -> MalformedSearchError:
    line, column = _position(text, offset)
    lines = text.split("\n")
    shown = lines[line - 1].rstrip("\r") if 0 < line <= len(lines) else ""
    caret = " " * max(column - 1, 0) + "^"
    return MalformedSearchError(f"\n{shown}\n{caret}\nERROR at Row:{line}:Column:{column}\n{message}")


def _end_offset(text: str) -> int:
    return len(text.rstrip())


def _lark_error(text: str, exc: UnexpectedInput, base: int = 0) -> MalformedSearchError:
    if isinstance(exc, UnexpectedToken) and exc.token.type != "$END":
        token = exc.token
        return _malformed(text, base + (token.start_pos or 0), f"unexpected token: '{token.value}'")
    if isinstance(exc, UnexpectedCharacters):
        return _malformed(text, base + exc.pos_in_stream, f"unexpected token: '{exc.char}'")
    return _malformed(text, _end_offset(text), "unexpected token: '<EOF>'")


def _fail(token: Token, message: str | None = None) -> NoReturn:
    raise _SearchError(token.start_pos or 0, message or f"unexpected token: '{token.value}'")


# -- the statement -------------------------------------------------------------------------------------------------


class _Builder(Transformer):  # type: ignore[type-arg]
    """Builds the plan from the statement grammar (non-inline: it needs the text for slices)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def start(self, c: list[Any]) -> SearchPlan:
        term, scope, returning, withs, limit, _update = c
        metadata = False
        mode = None
        for name, words in withs:
            upper = name.value.upper()
            if upper == "METADATA":
                value = [w for w in words if isinstance(w, Token) and w.type in ("STRING", "NAME")]
                if len(value) != 1 or _unquote(value[0]).upper() != "LABELS":
                    _fail(value[0] if value else name, "WITH METADATA accepts only = 'LABELS'")
                metadata = True
            elif upper in _WITH_MODES:
                if words:
                    _fail(words[0])
                mode = upper
            elif upper in _WITH_REFUSED:
                _fail(name, f"WITH {upper}{' CATEGORY' if upper == 'DATA' else ''} is not supported by Interlink")
            elif upper not in _WITH_IGNORED:
                _fail(name)
        expr = parse_term(self.text, term)
        return SearchPlan(expr, scope, tuple(returning), limit, metadata, mode, self.text)

    def in_clause(self, c: list[Token]) -> Scope:
        if not c:
            return "ALL"
        scope = SCOPES.get(c[0].value.upper())
        if scope is None:
            _fail(c[0])
        return scope

    def returning(self, c: list[Returning]) -> list[Returning]:
        return c

    def object_spec(self, c: list[Any]) -> Returning:
        name: Token = c[0]
        name_at = name.start_pos or 0
        if len(c) == 1:
            return Returning(name.value, at=(name_at, -1, -1, -1))
        (fields, fields_at, select), where, _using, order_by, limit, offset = c[1]
        at = (name_at, fields_at, where[1] if where else -1, order_by[1] if order_by else -1)
        return Returning(name.value, fields, where[0] if where else None, order_by[0] if order_by else None,
                         limit, offset, at, select)

    def spec_body(self, c: list[Any]) -> tuple[Any, ...]:
        return tuple(c)

    def field_list(self, c: list[tuple[str, int, int]]) -> tuple[tuple[str, ...], int, str]:
        return tuple(self.text[start:end] for _, start, end in c), c[0][1], self.text[c[0][1]:c[-1][2]]

    def field_path(self, c: list[Token]) -> tuple[str, int, int]:
        return "path", c[0].start_pos or 0, c[-1].end_pos or 0

    def func_field(self, c: list[Any]) -> tuple[str, int, int]:
        return "func", c[0].start_pos or 0, c[-1].end_pos or 0

    def where_clause(self, c: list[Any]) -> tuple[str, int] | None:
        if not c:
            return None
        return self.text[_start(c[0]):_end(c[-1])], _start(c[0])

    def group(self, c: list[Any]) -> _Span:
        return _Span(_start(c[0]), _end(c[-1]))

    inner_group = group

    def using_clause(self, c: list[Any]) -> None:
        if c:
            _fail(c[0], "USING ListView is not supported in RETURNING by Interlink")

    def order_by(self, c: list[tuple[int, int]]) -> tuple[str, int] | None:
        if not c:
            return None
        return self.text[c[0][0]:c[-1][1]], c[0][0]

    def order_item(self, c: list[Any]) -> tuple[int, int]:
        item, direction, nulls = c
        end = item[2]
        for token in (direction, nulls):
            if token is not None:
                end = token.end_pos or end
        return item[1], end

    def limit(self, c: list[Token]) -> int | None:
        return min(int(c[0].value), MAX_LIMIT) if c else None

    def offset(self, c: list[Token]) -> int | None:
        if not c:
            return None
        value = int(c[0].value)
        if value > MAX_LIMIT:
            _fail(c[0], f"Maximum SOSL offset allowed is {MAX_LIMIT}")
        return value

    def with_clauses(self, c: list[Any]) -> list[Any]:
        return c

    def with_clause(self, c: list[Any]) -> tuple[Token, list[Any]]:
        return c[0], [w for w in c[1:] if isinstance(w, (Token, list))]

    def with_group(self, c: list[Any]) -> list[Any]:
        return c

    def update_clause(self, c: list[Token]) -> None:
        for token in c:
            if token.value.upper() not in ("TRACKING", "VIEWSTAT"):
                _fail(token)


class _Span:
    """A parenthesised group inside WHERE, as (start, end) offsets including its parentheses."""

    __slots__ = ("end", "start")

    def __init__(self, start: int, end: int) -> None:
        self.start = start
        self.end = end


def _start(item: Any) -> int:
    if isinstance(item, Token):
        return item.start_pos or 0
    return item.start  # type: ignore[no-any-return]


def _end(item: Any) -> int:
    if isinstance(item, Token):
        return item.end_pos or 0
    return item.end  # type: ignore[no-any-return]


def _unquote(token: Token) -> str:
    value = token.value
    return value[1:-1] if token.type == "STRING" else value


class _AlwaysName:
    """A pass-through postlexer: NAME is lexed in every parser state and re-typed as a keyword only where one
    is acceptable (so ``RETURNING Order(Id)`` names the object Order)."""

    always_accept: tuple[str, ...] = ("NAME",)

    def process(self, stream: Any) -> Any:
        return stream


class _AlwaysWord(_AlwaysName):
    always_accept = ("WORD",)


_parsers: dict[str, Lark] = {}
_lock = threading.Lock()


def _parser(kind: str) -> Lark:
    parser = _parsers.get(kind)
    if parser is None:
        with _lock:
            parser = _parsers.get(kind)
            if parser is None:
                if kind == "sosl":
                    parser = Lark(SOSL_GRAMMAR, parser="lalr", lexer="contextual", postlex=_AlwaysName(),
                                  maybe_placeholders=True)
                else:
                    parser = Lark(TERM_GRAMMAR, parser="lalr", lexer="contextual", postlex=_AlwaysWord(),
                                  maybe_placeholders=True)
                _parsers[kind] = parser
    return parser


def _check_nesting(text: str) -> None:
    depth = 0
    for offset, char in enumerate(text):
        if char == "(":
            depth += 1
            if depth > MAX_NESTING:
                raise _malformed(text, offset, f"Search nested too deeply: more than {MAX_NESTING} levels of "
                                               "parentheses")
        elif char == ")":
            depth -= 1


def parse_sosl(text: str) -> SearchPlan:
    """Parse a SOSL statement. Raises MalformedSearchError (and nothing else) on bad input."""
    if not isinstance(text, str) or not text.strip():
        raise MalformedSearchError(NO_TERM)
    if len(text) > MAX_SEARCH_LENGTH:
        raise MalformedSearchError(f"Search too long: {len(text)} characters, the limit is {MAX_SEARCH_LENGTH}")
    _check_nesting(text)
    try:
        tree = _parser("sosl").parse(text)
        return _Builder(text).transform(tree)  # type: ignore[no-any-return]
    except _SearchError as exc:
        raise _malformed(text, exc.offset, exc.message) from None
    except UnexpectedInput as exc:
        if _term_missing(exc):
            raise MalformedSearchError(NO_TERM) from None
        raise _lark_error(text, exc) from None
    except MalformedSearchError:
        raise
    except RecursionError:
        raise MalformedSearchError("Search too complicated") from None
    except Exception as exc:  # a bug; the contract is still MALFORMED_SEARCH, never a 500
        cause = getattr(exc, "orig_exc", None)
        if isinstance(cause, MalformedSearchError):
            raise cause from None
        if isinstance(cause, _SearchError):
            raise _malformed(text, cause.offset, cause.message) from None
        raise MalformedSearchError(f"Unknown error parsing search ({type(exc).__name__})") from exc


def _term_missing(exc: UnexpectedInput) -> bool:
    expected = getattr(exc, "expected", None) or getattr(exc, "allowed", None) or ()
    return "SEARCH_TERM" in expected


# -- the search term -----------------------------------------------------------------------------------------------


def _pieces(raw: str) -> list[tuple[str, bool]]:
    pieces: list[tuple[str, bool]] = []
    escaped = False
    for char in raw:
        if escaped:
            pieces.append((char, False))
            escaped = False
        elif char == "\\":
            escaped = True
        else:
            pieces.append((char, char in search_index.WILDCARDS))
    return pieces


class _TermBuilder(Transformer):  # type: ignore[type-arg]
    def __init__(self, base: int) -> None:
        super().__init__()
        self.base = base

    def start(self, c: list[Any]) -> Expr | None:
        return c[0]  # type: ignore[no-any-return]

    def _terms(self, token: Token, raw: str) -> Terms | None:
        tokens = search_index.pattern_tokens(_pieces(raw))
        for tok in tokens:
            prefix = tok
            for wildcard in search_index.WILDCARDS:
                prefix = prefix.split(wildcard, 1)[0]
            if prefix != tok and not prefix:
                raise _SearchError(self.base + (token.start_pos or 0),
                                   f"Invalid search term '{token.value}': a wildcard cannot start a word")
            if prefix != tok and search_index.literal_length(tok) < 2 and len(tokens) == 1:
                raise MalformedSearchError(SHORT_TERM)
        return Terms(tokens, token.value) if tokens else None

    def WORD(self, token: Token) -> Terms | None:
        return self._terms(token, token.value)

    def PHRASE(self, token: Token) -> Terms | None:
        return self._terms(token, token.value[1:-1])

    def any_of(self, c: list[Expr | None]) -> Expr | None:
        items = [i for i in c if i is not None]
        if not items:
            return None
        return items[0] if len(items) == 1 else AnyOf(tuple(_flatten(items, AnyOf)))

    def all_of(self, c: list[Expr | None]) -> Expr | None:
        items = [i for i in c if i is not None]
        if not items:
            return None
        return items[0] if len(items) == 1 else AllOf(tuple(_flatten(items, AllOf)))

    def without(self, c: list[Expr | None]) -> Expr | None:
        keep, drop = c
        if keep is None or drop is None:
            return keep
        return Without(keep, drop)


def _flatten(items: list[Expr], kind: type) -> list[Expr]:
    flat: list[Expr] = []
    for item in items:
        flat.extend(item.items if isinstance(item, kind) else (item,))  # type: ignore[attr-defined]
    return flat


def _longest(expr: Expr) -> int:
    match expr:
        case Terms(tokens=tokens):
            return sum(search_index.literal_length(t) for t in tokens)
        case AllOf(items=items) | AnyOf(items=items):
            return max(_longest(i) for i in items)
        case Without(keep=keep, drop=drop):
            return max(_longest(keep), _longest(drop))
    raise TypeError(expr)


def parse_term(text: str, token: Token | str) -> Expr:
    """Parse a search term (``{...}`` token of a statement, or the bare text of parameterizedSearch)."""
    if isinstance(token, Token):
        raw = token.value[1:-1]
        base = (token.start_pos or 0) + 1
    else:
        raw, base = token, 0
    if not raw.strip():
        raise MalformedSearchError(SHORT_TERM)
    try:
        expr = _TermBuilder(base).transform(_parser("term").parse(raw))
    except UnexpectedInput as exc:
        if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
            raise _malformed(text, base + len(raw.rstrip()), "unexpected token: '<EOF>'") from None
        raise _lark_error(text, exc, base) from None
    except Exception as exc:
        cause = getattr(exc, "orig_exc", exc)
        if isinstance(cause, _SearchError):
            raise _malformed(text, cause.offset, cause.message) from None
        if isinstance(cause, MalformedSearchError):
            raise cause from None
        raise
    if expr is None or _longest(expr) < 2:
        raise MalformedSearchError(SHORT_TERM)
    return expr  # type: ignore[no-any-return]


def parse_parameterized_term(q: str) -> Expr:
    """The ``q`` of parameterizedSearch: a search term without braces."""
    if not isinstance(q, str) or not q.strip():
        raise MalformedSearchError(SHORT_TERM)
    if len(q) > MAX_SEARCH_LENGTH:
        raise MalformedSearchError(f"Search too long: {len(q)} characters, the limit is {MAX_SEARCH_LENGTH}")
    _check_nesting(q)
    return parse_term(q, q)


# -- running a search ----------------------------------------------------------------------------------------------

# Runs one SOQL statement and answers its records as wire dicts (``attributes`` first), in order.
SoqlRunner = Callable[[str], list[dict[str, Any]]]
# Searches an external object at its data source: (object, search text, at most n) -> record Ids, best first.
ExternalSearch = Callable[[ObjectDef, str, int], list[str]]


def _object(schema: Schema, name: str, external: bool) -> ObjectDef:
    obj = schema.object(name)
    if obj is None:
        raise InvalidTypeError(f"sObject type '{name}' is not supported. If you are attempting to use a custom "
                               "object, be sure to append the '__c' after the entity name. Please reference your "
                               "WSDL or the describe call for the appropriate names.")
    if obj.is_external and obj.searchable and external:
        return obj
    if not search_index.searchable(obj):
        raise InvalidTypeError(f"entity type {obj.name} does not support search")
    return obj


def search_text(expr: Expr) -> str:
    """A parsed search term written out again (``acme AND "big deal" OR NOT x``), for a source's own search."""
    if isinstance(expr, Terms):
        return f'"{expr.text}"' if len(expr.tokens) > 1 else expr.text
    if isinstance(expr, AllOf):
        return " AND ".join(f"({search_text(i)})" if isinstance(i, AnyOf) else search_text(i) for i in expr.items)
    if isinstance(expr, AnyOf):
        return " OR ".join(search_text(i) for i in expr.items)
    assert isinstance(expr, Without)
    return f"{search_text(expr.keep)} NOT {search_text(expr.drop)}"


def execute(store: Store, plan: SearchPlan, run_soql: SoqlRunner | None, base_path: str,
            external_search: ExternalSearch | None = None, schema: Schema | None = None) -> SearchResult:
    """Run ``plan``: look up the index, then shape each object's hits through SOQL (fields, WHERE, ORDER BY,
    LIMIT/OFFSET). Objects come in RETURNING order (without RETURNING: best hit first), records in order of
    relevance unless ORDER BY says otherwise; at most ``LIMIT`` (default and cap 2000) records in all.

    Searchable external objects named in RETURNING are searched at their data source (``external_search``);
    without RETURNING only the org's own index is searched, as on the platform."""
    overall = min(plan.limit if plan.limit is not None else MAX_LIMIT, MAX_LIMIT)
    schema = store.schema if schema is None else schema  # the caller's view: what they may not read is not there
    specs: list[tuple[ObjectDef, Returning]] = []
    seen: set[str] = set()
    for spec in plan.returning:
        obj = _object(schema, spec.object_name, external_search is not None)
        if obj.name in seen:
            raise MalformedSearchError(f"duplicate entity in RETURNING: {obj.name}")
        seen.add(obj.name)
        if spec.offset is not None and len(plan.returning) > 1:
            raise MalformedSearchError("OFFSET is only allowed when RETURNING names one object")
        specs.append((obj, spec))
    stored = tuple(o.name for o, _ in specs if not o.is_external)
    only: tuple[str, ...] | None = stored if specs else None
    if not specs and schema is not store.schema:  # default RETURNING: only the objects the caller may read
        only = tuple(o.name for o in schema if o.is_stored and search_index.searchable(o))
    hits = search_index.search(store, IndexQuery(plan.expr, plan.scope, only, _hits_needed(specs, overall)),
                               None if schema is store.schema else schema) if stored or not specs else []
    by_object: dict[str, list[Hit]] = {}
    for hit in hits:
        by_object.setdefault(hit.object_name, []).append(hit)
    for obj, _spec in specs:
        if obj.is_external and external_search is not None:
            found = external_search(obj, search_text(plan.expr), _hits_needed(specs, overall))
            by_object[obj.name] = [Hit(obj.name, record_id, float(-rank)) for rank, record_id in enumerate(found)]
    if not specs:  # default RETURNING: every object with hits, Id only, the best hit's object first
        for name in by_object:
            obj = schema.object(name)
            if obj is not None:
                specs.append((obj, Returning(obj.name)))
    records: list[tuple[ObjectDef, dict[str, Any]]] = []
    fields: dict[str, list[str]] = {}
    for obj, spec in specs:
        if len(records) >= overall:
            break
        object_hits = by_object.get(obj.name, [])
        fields[obj.name] = list(spec.fields) or ["Id"]
        if not object_hits and not spec.fields:
            continue
        rows = _shape(obj, spec, object_hits, run_soql, base_path, plan.text)
        records.extend((obj, row) for row in rows[: overall - len(records)])
    return SearchResult(records, fields)


def _hits_needed(specs: Sequence[tuple[ObjectDef, Returning]], overall: int) -> int:
    """How many of each object's best hits can reach the answer: all of them (up to the cap) when a WHERE
    filters or an ORDER BY reorders them, else the LIMIT / OFFSET window or the overall limit."""
    needed = 0
    for spec in [spec for _obj, spec in specs] or [Returning("")]:
        if spec.where is not None or spec.order_by is not None:
            return MAX_LIMIT
        offset = spec.offset or 0
        needed = max(needed, offset + min(spec.limit if spec.limit is not None else MAX_LIMIT, overall))
    return max(1, min(needed, MAX_LIMIT))


def _shape(obj: ObjectDef, spec: Returning, hits: Sequence[Hit], run_soql: SoqlRunner | None,
           base_path: str, text: str) -> list[dict[str, Any]]:
    ranked = [h.record_id for h in hits if ids.normalize(h.record_id) == h.record_id
              and h.record_id[:3] == obj.key_prefix]
    limit = spec.limit
    offset = spec.offset or 0
    if not spec.fields and spec.where is None and spec.order_by is None:
        chosen = ranked[offset:] if limit is None else ranked[offset:offset + limit]
        return [{"attributes": {"type": obj.name, "url": f"{base_path}/sobjects/{obj.name}/{r}"}, "Id": r}
                for r in chosen]
    if run_soql is None:
        raise MalformedSearchError("RETURNING with a field list needs the SOQL engine, which is not available")
    soql = _Soql()
    soql.add("SELECT ")
    soql.add(spec.select_text, spec.at[1])
    soql.add(" FROM ")
    soql.add(obj.name, spec.at[0])
    # No hits: still run it (with an id no record has), so a bad field or filter is reported all the same.
    in_list = ranked or [ids.to_18(obj.key_prefix + "0" * 12)]
    soql.add(f" WHERE Id IN ({', '.join(repr_id(r) for r in in_list)})")
    if spec.where is not None:
        soql.add(" AND (")
        soql.add(spec.where, spec.at[2])
        soql.add(")")
    if spec.order_by is not None:
        soql.add(" ORDER BY ")
        soql.add(spec.order_by, spec.at[3])
        if limit is not None:
            soql.add(f" LIMIT {limit}")
        if offset:
            soql.add(f" OFFSET {offset}")
    try:
        rows = run_soql(soql.text)
    except InterlinkError as exc:
        raise soql.translate(exc, text, spec.at[0]) from None
    if spec.order_by is None:  # relevance order, then LIMIT / OFFSET
        rank = {record_id: position for position, record_id in enumerate(ranked)}
        rows.sort(key=lambda row: rank.get(_row_id(row), len(rank)))
        rows = rows[offset:] if limit is None else rows[offset:offset + limit]
    return rows


_POSITIONED = re.compile(r"\A\n.*\n *\^\nERROR at Row:(\d+):Column:(\d+)\n(.*)\Z", re.DOTALL)


class _Soql:
    """A SOQL statement built from pieces, remembering which came from the search text (and where)."""

    def __init__(self) -> None:
        self.text = ""
        self.segments: list[tuple[int, int, int]] = []  # (start in SOQL, end in SOQL, start in the search)

    def add(self, piece: str, source: int = -1) -> None:
        if source >= 0:
            self.segments.append((len(self.text), len(self.text) + len(piece), source))
        self.text += piece

    def translate(self, error: InterlinkError, search_text: str, fallback: int) -> InterlinkError:
        """The engine's error about the generated SOQL, pointed at the search text instead."""
        match = _POSITIONED.match(error.message)
        if match is None:
            return MalformedSearchError(error.message) if isinstance(error, MalformedQueryError) else error
        row, column, message = int(match.group(1)), int(match.group(2)), match.group(3)
        lines = self.text.split("\n")
        offset = sum(len(line) + 1 for line in lines[:row - 1]) + column - 1
        where = next((source + offset - start for start, end, source in self.segments if start <= offset <= end),
                     fallback)
        # Not from a statement (parameterizedSearch): the message alone.
        translated = message if where < 0 or not search_text else _malformed(search_text, where, message).message
        if isinstance(error, MalformedQueryError):
            return MalformedSearchError(translated)
        copied = copy.copy(error)
        copied.message = translated
        copied.args = (translated,)
        return copied


def _row_id(row: dict[str, Any]) -> str:
    value = row.get("Id")
    if isinstance(value, str):
        return value
    url = row.get("attributes", {}).get("url", "")
    return str(url).rsplit("/", 1)[-1]


def repr_id(record_id: str) -> str:
    """A validated 18-character id as a SOQL string literal (ids are [A-Za-z0-9] only)."""
    normalized = ids.normalize(record_id)
    if normalized is None or normalized != record_id:
        raise ValueError(f"not a record id: {record_id!r}")
    return f"'{normalized}'"


__all__ = [
    "MAX_LIMIT",
    "Returning",
    "SearchPlan",
    "SearchResult",
    "SoqlRunner",
    "execute",
    "parse_parameterized_term",
    "parse_sosl",
    "parse_term",
]
