"""OData 4.0 query options for the sample ERP (``odata_service.py``): ``$filter`` and ``$search`` compiled to
parameterized SQLite, and the parsing of ``$select`` / ``$orderby`` / ``$expand`` / ``$top`` and key predicates.

Values never enter the SQL text: every literal becomes a ``?`` parameter, and property names are checked against
the entity's properties before they are quoted into it. Comparisons follow OData's null rules (``eq null`` is
``IS NULL``; ``gt`` / ``lt`` … with a null operand are false); the functions need :func:`register_functions` on
the connection.
"""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple
from urllib.parse import unquote_plus

from lark import Lark, Token, Tree
from lark.exceptions import LarkError


class QueryError(Exception):
    """A query the service refuses: ``status`` 400 (malformed, unknown property) or 501 (not implemented)."""

    def __init__(self, message: str, status: int = 400, code: str = "BadRequest") -> None:
        super().__init__(message)
        self.status, self.code = status, code


def unsupported(message: str) -> QueryError:
    return QueryError(message, 501, "NotImplemented")


GRAMMAR = r"""
?start: or_expr
?or_expr: and_expr | or_expr "or" and_expr -> or_
?and_expr: not_expr | and_expr "and" not_expr -> and_
?not_expr: rel_expr | "not" not_expr -> not_
?rel_expr: arith | arith CMP arith -> compare | arith "in" "(" arith ("," arith)* ")" -> in_
?arith: primary | arith ARITH primary -> arith
?primary: literal | path | call | "(" or_expr ")"
call: NAME "(" [or_expr ("," or_expr)*] ")"
path: NAME ("/" NAME)*
literal: STRING | DATETIME | DATE | DECIMAL | INT | TRUE | FALSE | NULL
TRUE: "true"
FALSE: "false"
NULL: "null"
CMP: /(eq|ne|gt|ge|lt|le)\b/
ARITH: /(add|sub|mul|divby|div|mod)\b/
STRING: /'(?:[^']|'')*'/
DATETIME.4: /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,12})?)?(Z|[+-]\d{2}:\d{2})/i
DATE.3: /\d{4}-\d{2}-\d{2}/
DECIMAL.2: /-?\d+(\.\d+)?[eE][+-]?\d+|-?\d+\.\d+/
INT.1: /-?\d+/
NAME: /[A-Za-z_][A-Za-z0-9_]*/
%ignore /[ \t]+/
"""

PARSER = Lark(GRAMMAR, parser="lalr", maybe_placeholders=True)

SYSTEM_OPTIONS = {"$select", "$filter", "$orderby", "$top", "$skip", "$count", "$search", "$expand", "$skiptoken",
                  "$format"}
UNSUPPORTED_OPTIONS = {"$apply", "$compute", "$levels", "$index", "$deltatoken", "$id", "$schemaversion"}
NUMERIC = {"Edm.Int32", "Edm.Int64", "Edm.Decimal", "Edm.Double"}
SQL_OPS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
# OData 4.0 canonical functions this service does not implement: 501, not 400.
KNOWN_FUNCTIONS = {"indexof", "substring", "trim", "concat", "hour", "minute", "second", "fractionalseconds",
                   "date", "time", "now", "round", "floor", "ceiling", "cast", "isof", "maxdatetime",
                   "mindatetime", "totaloffsetminutes", "totalseconds", "geo.distance", "geo.length",
                   "geo.intersects", "matchesPattern"}


class Expr(NamedTuple):
    sql: str
    params: tuple[Any, ...]
    type: str  # an Edm type, or "null" for the null literal


def normalize_datetime(text: str) -> str:
    """An ISO 8601 date-time with offset as stored: UTC, milliseconds, ``2025-01-31T10:00:00.000Z``."""
    match = re.fullmatch(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2})?)(\.\d+)?(Z|[+-]\d{2}:\d{2})", text.strip(), re.I)
    if not match:
        raise ValueError(f"not a DateTimeOffset: {text!r}")
    head, fraction, offset = match.groups()
    value = datetime.fromisoformat(head + (fraction or "")[:7] + ("+00:00" if offset.upper() == "Z" else offset))
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:23] + "Z"


def format_datetime(stored: str) -> str:
    """The stored form as OData JSON writes it (no fraction when it is zero)."""
    return stored.replace(".000Z", "Z")


def register_functions(connection: sqlite3.Connection) -> None:
    """Unicode-aware tolower/toupper (SQLite's own only fold ASCII)."""
    connection.create_function("odata_lower", 1, lambda s: None if s is None else str(s).lower(), deterministic=True)
    connection.create_function("odata_upper", 1, lambda s: None if s is None else str(s).upper(), deterministic=True)


def literal(token: Token) -> Expr:
    text = str(token)
    kind = token.type
    if kind == "STRING":
        return Expr("?", (text[1:-1].replace("''", "'"),), "Edm.String")
    if kind in ("TRUE", "FALSE"):
        return Expr("?", (int(kind == "TRUE"),), "Edm.Boolean")
    if kind == "NULL":
        return Expr("NULL", (), "null")
    if kind == "INT":
        value = int(text)
        return Expr("?", (value,), "Edm.Int32" if -2**31 <= value < 2**31 else "Edm.Int64")
    if kind == "DECIMAL":
        try:
            return Expr("?", (float(Decimal(text)),), "Edm.Decimal")
        except (InvalidOperation, OverflowError) as error:
            raise QueryError(f"bad number {text!r}") from error
    try:
        if kind == "DATE":
            return Expr("?", (date.fromisoformat(text).isoformat(),), "Edm.Date")
        return Expr("?", (normalize_datetime(text),), "Edm.DateTimeOffset")
    except ValueError as error:
        raise QueryError(f"bad {kind.lower()} literal {text!r}") from error


def comparable(left: str, right: str) -> bool:
    return "null" in (left, right) or left == right or (left in NUMERIC and right in NUMERIC)


class FilterCompiler:
    """Turns a parsed ``$filter`` into ``(sql, params)`` for one entity set (``columns``: name -> Edm type)."""

    def __init__(self, columns: dict[str, str], navigations: tuple[str, ...] = ()) -> None:
        self.columns, self.navigations = columns, navigations

    def compile(self, text: str) -> tuple[str, list[Any]]:
        if re.search(r"/\s*(any|all)\s*\(", text):
            raise unsupported("lambda operators (any/all) are not supported in $filter")
        try:
            tree = PARSER.parse(text)
        except LarkError as error:
            raise QueryError(f"invalid $filter: {str(error).splitlines()[0]}") from error
        expr = self.expr(tree)
        if expr.type != "Edm.Boolean":
            raise QueryError("$filter must be a Boolean expression")
        return expr.sql, list(expr.params)

    def expr(self, node: Tree | Token) -> Expr:
        if isinstance(node, Token):  # pragma: no cover - the grammar wraps every token
            raise QueryError(f"unexpected {node!r}")
        kind = node.data
        if kind == "literal":
            return literal(node.children[0])
        if kind == "path":
            return self.path([str(name) for name in node.children])
        if kind in ("and_", "or_"):
            left, right = (self.boolean(child) for child in node.children)
            joiner = " AND " if kind == "and_" else " OR "
            return Expr(f"({left.sql}{joiner}{right.sql})", left.params + right.params, "Edm.Boolean")
        if kind == "not_":
            inner = self.boolean(node.children[0])
            return Expr(f"(NOT {inner.sql})", inner.params, "Edm.Boolean")
        if kind == "compare":
            left, op, right = node.children
            return self.compare(self.expr(left), str(op), self.expr(right))
        if kind == "in_":
            left, *items = (self.expr(child) for child in node.children)
            tests = [self.compare(left, "eq", item) for item in items]
            return Expr("(" + " OR ".join(t.sql for t in tests) + ")", sum((t.params for t in tests), ()),
                        "Edm.Boolean")
        if kind == "arith":
            raise unsupported(f"arithmetic operator {node.children[1]!s} is not supported in $filter")
        if kind == "call":
            name, *args = node.children
            return self.call(str(name), [self.expr(a) for a in args if a is not None])
        raise QueryError(f"unsupported expression {kind}")  # pragma: no cover

    def boolean(self, node: Tree) -> Expr:
        expr = self.expr(node)
        if expr.type != "Edm.Boolean":
            raise QueryError("and/or/not need Boolean operands")
        return expr

    def path(self, names: list[str]) -> Expr:
        if len(names) > 1:
            if names[0] in self.navigations:
                raise unsupported(f"navigation paths ({'/'.join(names)}) are not supported in $filter")
            raise QueryError(f"unknown property path {'/'.join(names)!r}")
        if names[0] not in self.columns:
            raise QueryError(f"unknown property {names[0]!r}")
        return Expr(f'"{names[0]}"', (), self.columns[names[0]])

    def compare(self, left: Expr, op: str, right: Expr) -> Expr:
        if not comparable(left.type, right.type):
            raise QueryError(f"cannot compare {left.type} with {right.type}")
        params = left.params + right.params
        if op in ("eq", "ne"):  # null-safe: eq null is IS NULL, and ne keeps rows whose value is null
            return Expr(f"({left.sql} {'IS' if op == 'eq' else 'IS NOT'} {right.sql})", params, "Edm.Boolean")
        if "null" in (left.type, right.type):
            return Expr("0", (), "Edm.Boolean")
        return Expr(f"COALESCE({left.sql} {SQL_OPS[op]} {right.sql}, 0)", params, "Edm.Boolean")

    def call(self, name: str, args: list[Expr]) -> Expr:
        signatures = {"contains": 2, "startswith": 2, "endswith": 2, "tolower": 1, "toupper": 1, "length": 1,
                      "year": 1, "month": 1, "day": 1}
        if name not in signatures:
            if name in KNOWN_FUNCTIONS:
                raise unsupported(f"function {name}() is not supported")
            raise QueryError(f"unknown function {name}()")
        if len(args) != signatures[name]:
            raise QueryError(f"{name}() takes {signatures[name]} argument(s)")
        if name in ("year", "month", "day"):
            (arg,) = args
            if arg.type not in ("Edm.Date", "Edm.DateTimeOffset", "null"):
                raise QueryError(f"{name}() needs a Date or DateTimeOffset")
            start, length = {"year": (1, 4), "month": (6, 2), "day": (9, 2)}[name]
            return Expr(f"CAST(substr({arg.sql}, {start}, {length}) AS INTEGER)", arg.params, "Edm.Int32")
        if any(arg.type not in ("Edm.String", "null") for arg in args):
            raise QueryError(f"{name}() needs String arguments")
        if name in ("tolower", "toupper"):
            return Expr(f"odata_{name[2:]}({args[0].sql})", args[0].params, "Edm.String")
        if name == "length":
            return Expr(f"length({args[0].sql})", args[0].params, "Edm.Int32")
        text, part = args
        if name == "contains":
            return Expr(f"(instr({text.sql}, {part.sql}) > 0)", text.params + part.params, "Edm.Boolean")
        if name == "startswith":
            return Expr(f"(instr({text.sql}, {part.sql}) = 1)", text.params + part.params, "Edm.Boolean")
        sql = (f"(CASE WHEN {text.sql} IS NULL OR {part.sql} IS NULL THEN NULL WHEN length({part.sql}) = 0 THEN 1 "
               f"ELSE substr({text.sql}, -length({part.sql})) = {part.sql} END)")
        return Expr(sql, text.params + part.params * 2 + text.params + part.params * 2, "Edm.Boolean")


def compile_filter(text: str, columns: dict[str, str], navigations: tuple[str, ...] = ()) -> tuple[str, list[Any]]:
    """``$filter`` text -> ``(sql, params)``; raises :class:`QueryError`."""
    return FilterCompiler(columns, navigations).compile(text)


def compile_search(text: str, columns: tuple[str, ...]) -> tuple[str, list[Any]]:
    """``$search`` (terms, "phrases", AND / OR / NOT, parentheses) -> ``(sql, params)``: a term matches when any of
    ``columns`` contains it, ignoring case."""
    tokens = re.findall(r'"[^"]*"|\(|\)|[^\s()"]+|"', text)
    if '"' in tokens:
        raise QueryError(f"invalid $search (unbalanced quotes): {text!r}")
    position = 0

    def peek() -> str | None:
        return tokens[position] if position < len(tokens) else None

    def take() -> str:
        nonlocal position
        position += 1
        return tokens[position - 1]

    def or_expr() -> tuple[str, list[Any]]:
        parts = [and_expr()]
        while peek() == "OR":
            take()
            parts.append(and_expr())
        return "(" + " OR ".join(p[0] for p in parts) + ")", [x for p in parts for x in p[1]]

    def and_expr() -> tuple[str, list[Any]]:
        parts = [unary()]
        while peek() not in (None, "OR", ")"):
            if peek() == "AND":
                take()
            parts.append(unary())
        return "(" + " AND ".join(p[0] for p in parts) + ")", [x for p in parts for x in p[1]]

    def unary() -> tuple[str, list[Any]]:
        token = take() if peek() is not None else None
        if token is None or token in ("AND", "OR", ")"):
            raise QueryError(f"invalid $search: {text!r}")
        if token == "NOT":
            sql, params = unary()
            return f"(NOT {sql})", params
        if token == "(":
            inner = or_expr()
            if peek() != ")":
                raise QueryError(f"invalid $search (unbalanced parentheses): {text!r}")
            take()
            return inner
        term = (token[1:-1] if token.startswith('"') else token).lower()
        tests = [f"(instr(odata_lower(COALESCE(\"{c}\", '')), ?) > 0)" for c in columns]
        return "(" + " OR ".join(tests) + ")", [term] * len(columns)

    result = or_expr()
    if peek() is not None:
        raise QueryError(f"invalid $search: {text!r}")
    return result


# -- the other query options and key predicates (``es`` is the service's EntitySet) ----------------------------

def key_literal(value: Any) -> str:
    return "'" + value.replace("'", "''") + "'" if isinstance(value, str) else str(value)


def parse_key(es: Any, text: str) -> Any:
    text = re.sub(rf"^{es.key}\s*=\s*", "", text.strip())
    if es.columns[es.key] == "Edm.String":
        match = re.fullmatch(r"'((?:[^']|'')*)'", text)
        if match:
            return match.group(1).replace("''", "'")
    elif re.fullmatch(r"-?\d+", text):
        return int(text)
    raise QueryError(f"invalid key predicate ({text}) for {es.name}")


def parse_options(raw: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for part in filter(None, raw.split("&")):
        name, _, value = part.partition("=")
        name = unquote_plus(name)
        if not name.startswith("$"):
            continue  # custom query options are ignored
        if name in UNSUPPORTED_OPTIONS:
            raise unsupported(f"{name} is not supported")
        if name not in SYSTEM_OPTIONS:
            raise QueryError(f"unknown system query option {name}")
        if name in options:
            raise QueryError(f"{name} given twice")
        options[name] = unquote_plus(value)
    return options


def number_option(options: dict[str, str], name: str) -> int | None:
    if name not in options:
        return None
    if not re.fullmatch(r"\d{1,12}", options[name].strip()):
        raise QueryError(f"{name} must be a non-negative integer")
    return int(options[name])


def select_list(es: Any, text: str | None) -> list[str]:
    if text is None or text.strip() == "*":
        return [p.name for p in es.props]
    names = [n.strip() for n in text.split(",")]
    for name in names:
        if es.prop(name) is None and name != "*":
            raise (unsupported if "/" in name or es.nav(name) else QueryError)(f"cannot $select {name!r} on {es.name}")
    return [p.name for p in es.props] if "*" in names else list(dict.fromkeys(names))


def order_clause(es: Any, text: str | None) -> str:
    keys = []
    for item in filter(None, (i.strip() for i in (text or "").split(","))):
        match = re.fullmatch(r"(\w+)(?:\s+(asc|desc))?", item)
        if not match or es.prop(match.group(1)) is None:
            raise QueryError(f"cannot $orderby {item!r} on {es.name}")
        keys.append(f'"{match.group(1)}" {(match.group(2) or "asc").upper()}')
    return ", ".join([*keys, f'"{es.key}" ASC'])  # the key last: a stable order, so paging is exact


def parse_expand(es: Any, text: str | None) -> dict[str, dict[str, str]]:
    """``Lines`` or ``Lines($select=…;$filter=…;$orderby=…)`` -> {nav name: nested options}."""
    expands: dict[str, dict[str, str]] = {}
    for item in filter(None, (i.strip() for i in re.split(r",(?![^(]*\))", text or ""))):
        match = re.fullmatch(r"(\w+|\*)(?:\((.*)\))?", item, re.S)
        names = [n.name for n in es.navs] if match and match.group(1) == "*" else [match.group(1) if match else ""]
        if not match or any(es.nav(name) is None for name in names):
            raise QueryError(f"cannot $expand {item!r} on {es.name}")
        nested = {}
        for part in filter(None, (match.group(2) or "").split(";")):
            name, _, value = part.partition("=")
            if name.strip() not in ("$select", "$filter", "$orderby"):
                raise unsupported(f"{name.strip()} inside $expand is not supported")
            nested[name.strip()] = value
        expands.update(dict.fromkeys(names, nested))
    return expands
