"""A sample ERP order service (the remote side of Data Virtualization): its orders and order lines over OData 4.0.

    python examples/erp/odata_service.py [--port 8703] [--seed 500] [--db erp.sqlite] [--max-page-size 500]
                                         [--token T] [--latency-ms 0]

The service root is ``http://127.0.0.1:8703/odata/`` (``$metadata`` there). ``--seed N`` fills an empty database
with N orders (order i: ``SO-00000i``, customer ``CUST-%04d`` of ``i % 50 + 1``, 1-3 lines); the database is
in memory unless ``--db`` (or ``ERP_ODATA_DB``) names a file. ``--token`` requires ``Authorization: Bearer T``.
``POST /control/down`` (``/control/up``) makes every OData request answer 503; ``GET /control/stats`` counts them.
It does not use the ``interlink`` package: it plays an independent system.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import socket
import sqlite3
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote, unquote, unquote_plus

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parent))  # odata_filter.py sits beside this file
from odata_filter import (
    QueryError,
    compile_filter,
    compile_search,
    format_datetime,
    key_literal,
    normalize_datetime,
    number_option,
    order_clause,
    parse_expand,
    parse_key,
    parse_options,
    register_functions,
    select_list,
    unsupported,
)

JSON_TYPE = "application/json;odata.metadata=minimal"
STATUSES = ("Draft", "Submitted", "Shipped", "Delivered", "Cancelled")


# -- the model -----------------------------------------------------------------------------------------------------

class Prop(NamedTuple):
    name: str
    type: str
    nullable: bool = True
    max_length: int | None = None
    precision: int | None = None
    scale: int | None = None


class Nav(NamedTuple):
    name: str
    target: str  # entity set
    many: bool
    partner: str
    column: str  # the same column on both sides (OrderNumber)


class EntitySet(NamedTuple):
    name: str
    type: str
    key: str
    props: tuple[Prop, ...]
    navs: tuple[Nav, ...]
    search: tuple[str, ...]

    @property
    def columns(self) -> dict[str, str]:
        return {p.name: p.type for p in self.props}

    def prop(self, name: str) -> Prop | None:
        return next((p for p in self.props if p.name == name), None)

    def nav(self, name: str) -> Nav | None:
        return next((n for n in self.navs if n.name == name), None)


SETS = {s.name: s for s in (
    EntitySet("Orders", "Order", "OrderNumber", (
        Prop("OrderNumber", "Edm.String", False, 20), Prop("CustomerNumber", "Edm.String", False, 40),
        Prop("OrderDate", "Edm.Date", False), Prop("Status", "Edm.String", False, 20),
        Prop("Amount", "Edm.Decimal", False, precision=16, scale=2), Prop("Currency", "Edm.String", False, 3),
        Prop("ShippedAt", "Edm.DateTimeOffset", precision=3), Prop("Priority", "Edm.Int32", False),
        Prop("Express", "Edm.Boolean", False), Prop("Notes", "Edm.String", max_length=2000)),
        (Nav("Lines", "OrderLines", True, "Order", "OrderNumber"),),
        ("OrderNumber", "CustomerNumber", "Notes", "Status")),
    EntitySet("OrderLines", "OrderLine", "LineId", (
        Prop("LineId", "Edm.Int32", False), Prop("OrderNumber", "Edm.String", False, 20),
        Prop("Sku", "Edm.String", False, 40), Prop("Quantity", "Edm.Int32", False),
        Prop("UnitPrice", "Edm.Decimal", False, precision=16, scale=2)),
        (Nav("Order", "Orders", False, "Lines", "OrderNumber"),), ("Sku", "OrderNumber")),
)}
SQL_TYPES = {"Edm.String": "TEXT", "Edm.Date": "TEXT", "Edm.DateTimeOffset": "TEXT", "Edm.Int32": "INTEGER",
             "Edm.Boolean": "INTEGER", "Edm.Decimal": "REAL"}


def metadata_xml() -> str:
    """The CSDL document (``$metadata``)."""
    out = ['<?xml version="1.0" encoding="utf-8"?>',
           '<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">',
           "<edmx:DataServices>", '<Schema Namespace="ERP" xmlns="http://docs.oasis-open.org/odata/ns/edm">']
    for es in SETS.values():
        out.append(f'<EntityType Name="{es.type}"><Key><PropertyRef Name="{es.key}"/></Key>')
        for p in es.props:
            facets = "".join(f' {name}="{value}"' for name, value in (
                ("MaxLength", p.max_length), ("Precision", p.precision), ("Scale", p.scale)) if value is not None)
            out.append(f'<Property Name="{p.name}" Type="{p.type}" Nullable="{str(p.nullable).lower()}"{facets}/>')
        for n in es.navs:
            kind = f"Collection(ERP.{SETS[n.target].type})" if n.many else f"ERP.{SETS[n.target].type}"
            out.append(f'<NavigationProperty Name="{n.name}" Type="{kind}" Partner="{n.partner}"'
                       + ("/>" if n.many else f' Nullable="false"><ReferentialConstraint Property="{n.column}" '
                          f'ReferencedProperty="{n.column}"/></NavigationProperty>'))
        out.append("</EntityType>")
    out.append('<EntityContainer Name="Container">')
    for es in SETS.values():
        out.append(f'<EntitySet Name="{es.name}" EntityType="ERP.{es.type}">'
                   + "".join(f'<NavigationPropertyBinding Path="{n.name}" Target="{n.target}"/>' for n in es.navs)
                   + "</EntitySet>")
    out += ["</EntityContainer>", "</Schema>", "</edmx:DataServices>", "</edmx:Edmx>"]
    return "\n".join(out)


# -- storage -------------------------------------------------------------------------------------------------------

def open_database(path: str | None) -> sqlite3.Connection:
    connection = sqlite3.connect(path or ":memory:", check_same_thread=False)
    connection.row_factory = sqlite3.Row
    register_functions(connection)
    for es in SETS.values():
        columns = ", ".join(f'"{p.name}" {SQL_TYPES[p.type]}' + (" PRIMARY KEY" if p.name == es.key else "")
                            + ("" if p.nullable else " NOT NULL") for p in es.props)
        connection.execute(f'CREATE TABLE IF NOT EXISTS "{es.name}" ({columns})')
    connection.execute('CREATE INDEX IF NOT EXISTS "OrderLines_Order" ON "OrderLines" ("OrderNumber")')
    connection.commit()
    return connection


SKUS = {f"SKU-{1000 + n}": Decimal(5 + (n * 37) % 240) + Decimal((n * 13) % 100) / 100 for n in range(1, 21)}
NOTES = (None, None, None, "Gift wrap", "Call before delivery", "Rush order, customer waiting",
         "Deliver to O'Brien's dock", "Partial shipment OK", "Invoice by e-mail")


def seed(connection: sqlite3.Connection, count: int) -> None:
    """``count`` deterministic orders (order i is the same whatever ``count`` is)."""
    orders, lines = [], []
    for i in range(1, count + 1):
        rng = random.Random(f"order-{i}")
        number, ordered = f"SO-{i:06d}", date(2025, 1, 1) + timedelta(days=rng.randrange(365))
        status = rng.choice(("Draft", "Submitted", "Submitted", "Shipped", "Delivered", "Delivered", "Cancelled"))
        shipped = None
        if status in ("Shipped", "Delivered"):
            moment = datetime(ordered.year, ordered.month, ordered.day, tzinfo=UTC) + timedelta(
                days=rng.randrange(1, 6), hours=rng.randrange(7, 18), minutes=rng.randrange(0, 60, 15))
            shipped = moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        amount = Decimal(0)
        for _ in range(rng.randint(1, 3)):
            sku, quantity = rng.choice(sorted(SKUS)), rng.randint(1, 10)
            amount += SKUS[sku] * quantity
            lines.append((len(lines) + 1, number, sku, quantity, float(SKUS[sku])))
        orders.append((number, f"CUST-{i % 50 + 1:04d}", ordered.isoformat(), status, float(amount),
                       rng.choice(("USD", "USD", "USD", "EUR", "GBP")), shipped, rng.randint(1, 5),
                       int(rng.random() < 0.2), rng.choice(NOTES)))
    connection.executemany('INSERT INTO "Orders" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)', orders)
    connection.executemany('INSERT INTO "OrderLines" VALUES (?, ?, ?, ?, ?)', lines)
    connection.commit()


# -- values --------------------------------------------------------------------------------------------------------

def to_json(prop: Prop, value: Any, ieee754: bool) -> Any:
    if value is None:
        return None
    if prop.type == "Edm.Boolean":
        return bool(value)
    if prop.type == "Edm.Decimal":
        text = f"{value:.{prop.scale}f}"
        return text if ieee754 else float(text)
    if prop.type == "Edm.DateTimeOffset":
        return format_datetime(value)
    return value


def from_json(prop: Prop, value: Any) -> Any:
    """A JSON value for ``prop`` as stored, or ValueError saying what is wrong."""
    if value is None:
        if not prop.nullable:
            raise ValueError(f"{prop.name} cannot be null")
        return None
    if prop.type == "Edm.String":
        if not isinstance(value, str):
            raise ValueError(f"{prop.name} must be a string")
        if prop.max_length and len(value) > prop.max_length:
            raise ValueError(f"{prop.name} is longer than {prop.max_length} characters")
        if prop.name == "Status" and value not in STATUSES:
            raise ValueError(f"Status must be one of {', '.join(STATUSES)}")
        if prop.name == "Currency" and not re.fullmatch(r"[A-Z]{3}", value):
            raise ValueError("Currency must be a three-letter ISO code")
        return value
    if prop.type == "Edm.Int32":
        if isinstance(value, bool) or not isinstance(value, int) or not -2**31 <= value < 2**31:
            raise ValueError(f"{prop.name} must be an Int32")
        return value
    if prop.type == "Edm.Boolean":
        if not isinstance(value, bool):
            raise ValueError(f"{prop.name} must be true or false")
        return int(value)
    if prop.type == "Edm.Decimal":
        try:
            number = Decimal(str(value)) if not isinstance(value, bool) else None
        except InvalidOperation:
            number = None
        if number is None or not number.is_finite() or -number.as_tuple().exponent > prop.scale \
                or abs(number) >= Decimal(10) ** (prop.precision - prop.scale):
            raise ValueError(f"{prop.name} must be a decimal with at most {prop.scale} decimal places")
        return float(number)
    try:
        if prop.type == "Edm.Date" and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            return date.fromisoformat(value).isoformat()
        if prop.type == "Edm.DateTimeOffset":
            return normalize_datetime(value)
    except (TypeError, ValueError):
        pass
    raise ValueError(f"{prop.name} must be an ISO 8601 {prop.type[4:]}")


# -- reading -------------------------------------------------------------------------------------------------------

class Context(NamedTuple):
    """One request: the service root URL, its query options, and how to write numbers."""

    root: str
    url: str
    query: str
    options: dict[str, str]
    ieee754: bool
    metadata: bool
    prefer: dict[str, str]


class Service:
    """The ERP: a SQLite database behind a lock, and the knobs tests turn."""

    def __init__(self, db_path: str | None, seed_count: int, max_page_size: int, token: str | None,
                 latency_ms: int) -> None:
        self.db, self.lock = open_database(db_path), threading.RLock()
        if seed_count and not self.db.execute('SELECT 1 FROM "Orders" LIMIT 1').fetchone():
            seed(self.db, seed_count)
        self.max_page_size, self.token, self.latency_ms = max_page_size, token, latency_ms
        self.down, self.requests, self.log = False, 0, []

    def where(self, es: EntitySet, options: dict[str, str], base: tuple[str, list[Any]] | None) -> tuple[str, list]:
        clauses, params = ([base[0]], list(base[1])) if base else ([], [])
        if options.get("$filter"):
            sql, more = compile_filter(options["$filter"], es.columns, tuple(n.name for n in es.navs))
            clauses.append(sql)
            params += more
        if options.get("$search"):
            sql, more = compile_search(options["$search"], es.search)
            clauses.append(sql)
            params += more
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params

    def count(self, es: EntitySet, options: dict[str, str], base: tuple[str, list] | None = None) -> int:
        where, params = self.where(es, options, base)
        with self.lock:
            return self.db.execute(f'SELECT COUNT(*) FROM "{es.name}"{where}', params).fetchone()[0]

    def rows(self, es: EntitySet, where: str, params: list, order: str, limit: int = -1, offset: int = 0) -> list:
        with self.lock:
            return self.db.execute(f'SELECT * FROM "{es.name}"{where} ORDER BY {order} LIMIT ? OFFSET ?',
                                   [*params, limit, offset]).fetchall()

    def shape(self, ctx: Context, es: EntitySet, rows: list, options: dict[str, str]) -> list[dict[str, Any]]:
        """Rows as JSON entities: the ``$select``ed properties, then the ``$expand``ed navigation properties."""
        selected = select_list(es, options.get("$select"))
        expands = parse_expand(es, options.get("$expand"))
        props = [es.prop(name) for name in selected]
        entities = [{p.name: to_json(p, row[p.name], ctx.ieee754) for p in props if p} for row in rows]
        for name, nested in expands.items():
            nav = es.nav(name)
            assert nav is not None  # parse_expand checked the name
            values, target, related = sorted({row[nav.column] for row in rows}), SETS[nav.target], {}
            for start in range(0, len(values), 500):
                chunk = values[start:start + 500]
                where, params = self.where(target, nested, (f'"{nav.column}" IN ({", ".join("?" * len(chunk))})',
                                                            chunk))
                found = self.rows(target, where, params, order_clause(target, nested.get("$orderby")))
                for row, entity in zip(found, self.shape(ctx, target, found, nested), strict=True):
                    related.setdefault(row[nav.column], []).append(entity)
            for row, entity in zip(rows, entities, strict=True):
                items = related.get(row[nav.column], [])
                entity[name] = items if nav.many else (items[0] if items else None)
        return entities

    def context_url(self, ctx: Context, es: EntitySet, suffix: str = "") -> str:
        items = select_list(es, ctx.options["$select"]) if "$select" in ctx.options else []
        items += [f"{name}()" for name in parse_expand(es, ctx.options.get("$expand"))]
        return f"{ctx.root}$metadata#{es.name}" + (f"({','.join(items)})" if items else "") + suffix

    def collection(self, ctx: Context, es: EntitySet, base: tuple[str, list] | None = None) -> Response:
        """A page of ``es``: ``$top``/``$skip`` first, then server-driven pages of at most the page size, each
        with an ``@odata.nextLink`` (the same query plus ``$skiptoken`` = rows already served) while rows remain."""
        options, headers = ctx.options, {}
        where, params = self.where(es, options, base)
        top, skip = number_option(options, "$top"), number_option(options, "$skip") or 0
        served, page = number_option(options, "$skiptoken") or 0, self.max_page_size
        asked = ctx.prefer.get("odata.maxpagesize", "")
        if asked.isdigit() and int(asked) > 0:
            page = min(page, int(asked))
            headers["Preference-Applied"] = f"odata.maxpagesize={page}"
        limit = page if top is None else max(0, min(page, top - served))
        found = self.rows(es, where, params, order_clause(es, options.get("$orderby")), limit + 1, skip + served)
        more = len(found) > limit and (top is None or served + limit < top)
        body: dict[str, Any] = {"@odata.context": self.context_url(ctx, es)} if ctx.metadata else {}
        if options.get("$count", "false") not in ("true", "false"):
            raise QueryError("$count must be true or false")
        if options.get("$count") == "true":
            body["@odata.count"] = self.count(es, options, base)
        body["value"] = self.shape(ctx, es, found[:limit], options)
        if more:
            kept = [p for p in ctx.query.split("&") if p and unquote_plus(p.partition("=")[0]) != "$skiptoken"]
            body["@odata.nextLink"] = f"{ctx.url}?" + "&".join([*kept, f"$skiptoken={served + limit}"])
        return json_response(ctx, body, headers=headers)

    def find(self, es: EntitySet, key: Any) -> sqlite3.Row:
        with self.lock:
            row = self.db.execute(f'SELECT * FROM "{es.name}" WHERE "{es.key}" = ?', [key]).fetchone()
        if row is None:
            raise QueryError(f"{es.name}({key_literal(key)}) does not exist", 404, "NotFound")
        return row

    def entity(self, ctx: Context, es: EntitySet, row: sqlite3.Row, status: int = 200,
               headers: dict[str, str] | None = None) -> Response:
        body = {"@odata.context": self.context_url(ctx, es, "/$entity")} if ctx.metadata else {}
        body.update(self.shape(ctx, es, [row], ctx.options)[0])
        return json_response(ctx, body, status, headers)

    # -- writing ---------------------------------------------------------------------------------------------------

    def values(self, es: EntitySet, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise QueryError("the request body must be a JSON object")
        values = {}
        for name, value in body.items():
            if name.endswith("@odata.bind"):
                raise unsupported("@odata.bind is not supported")
            if name.startswith("@"):
                continue  # instance annotations such as @odata.type
            prop = es.prop(name)
            if prop is None:
                raise QueryError(f"{es.type} has no property {name!r}"
                                 + (" that can be written here" if es.nav(name) else ""))
            try:
                values[name] = from_json(prop, value)
            except ValueError as error:
                raise QueryError(str(error)) from error
        return values

    def complete(self, es: EntitySet, values: dict[str, Any]) -> None:
        """Fill what a new (or replaced) row leaves out: defaults, nulls; a missing required property is a 400."""
        defaults = {"OrderDate": date.today().isoformat(), "Status": "Draft", "Amount": 0.0, "Currency": "USD",
                    "Priority": 3, "Express": 0}
        for prop in es.props:
            if prop.name not in values:
                if prop.name not in defaults and not prop.nullable:
                    raise QueryError(f"{prop.name} is required")
                values[prop.name] = defaults.get(prop.name)
        if es.name == "OrderLines" and not self.db.execute(
                'SELECT 1 FROM "Orders" WHERE "OrderNumber" = ?', [values["OrderNumber"]]).fetchone():
            raise QueryError(f"order {values['OrderNumber']!r} does not exist")

    def next_key(self, es: EntitySet) -> Any:
        if es.name == "OrderLines":
            return (self.db.execute('SELECT MAX("LineId") FROM "OrderLines"').fetchone()[0] or 0) + 1
        numbers = [int(n[3:]) for (n,) in self.db.execute(
            'SELECT "OrderNumber" FROM "Orders" WHERE "OrderNumber" GLOB \'SO-[0-9]*\'') if n[3:].isdigit()]
        return f"SO-{max(numbers, default=0) + 1:06d}"

    def insert(self, es: EntitySet, values: dict[str, Any]) -> None:
        if self.db.execute(f'SELECT 1 FROM "{es.name}" WHERE "{es.key}" = ?', [values[es.key]]).fetchone():
            raise QueryError(f"{es.name}({key_literal(values[es.key])}) already exists", 409, "Conflict")
        names = [p.name for p in es.props]
        self.db.execute(f'INSERT INTO "{es.name}" ({", ".join(f"{chr(34)}{n}{chr(34)}" for n in names)}) '
                        f'VALUES ({", ".join("?" * len(names))})', [values[n] for n in names])

    def create(self, ctx: Context, es: EntitySet, body: Any) -> Response:
        """POST: 201 with the entity (``Lines`` may be inserted with an order: a deep insert)."""
        deep = body.pop("Lines", None) if isinstance(body, dict) and es.name == "Orders" else None
        if deep is not None and (not isinstance(deep, list) or not all(isinstance(d, dict) for d in deep)):
            raise QueryError("Lines must be an array of order lines")
        values = self.values(es, body)
        with self.lock:
            try:
                values.setdefault(es.key, self.next_key(es))
                self.complete(es, values)
                self.insert(es, values)
                for line in deep or []:
                    fields = self.values(SETS["OrderLines"], line)
                    if fields.setdefault("OrderNumber", values["OrderNumber"]) != values["OrderNumber"]:
                        raise QueryError("a deep-inserted line belongs to its order")
                    fields.setdefault("LineId", self.next_key(SETS["OrderLines"]))
                    self.complete(SETS["OrderLines"], fields)
                    self.insert(SETS["OrderLines"], fields)
                self.db.commit()
            except BaseException:
                self.db.rollback()
                raise
        location = f"{ctx.root}{es.name}({quote(key_literal(values[es.key]), safe=chr(39))})"
        headers = {"Location": location, "OData-EntityId": location}
        if ctx.prefer.get("return") == "minimal":
            return Response(status_code=204, headers={**headers, "OData-Version": "4.0",
                                                      "Preference-Applied": "return=minimal"})
        if deep is not None and "$expand" not in ctx.options:
            ctx.options["$expand"] = "Lines"
        return self.entity(ctx, es, self.find(es, values[es.key]), 201, headers)

    def update(self, ctx: Context, es: EntitySet, key: Any, body: Any, replace: bool) -> Response:
        """PATCH (the given properties) or PUT (all of them): 204, or 200 with ``Prefer: return=representation``."""
        values = self.values(es, body)
        if values.setdefault(es.key, key) != key:
            raise QueryError(f"{es.key} cannot be changed")
        with self.lock:
            self.find(es, key)
            if replace:
                self.complete(es, values)
            elif es.name == "OrderLines" and "OrderNumber" in values:
                self.complete(es, {**self.find(es, key), **values})
            names = [n for n in values if n != es.key]
            if names:
                self.db.execute(f'UPDATE "{es.name}" SET {", ".join(f"{chr(34)}{n}{chr(34)} = ?" for n in names)} '
                                f'WHERE "{es.key}" = ?', [*(values[n] for n in names), key])
                self.db.commit()
        if ctx.prefer.get("return") == "representation":
            return self.entity(ctx, es, self.find(es, key), headers={"Preference-Applied": "return=representation"})
        return Response(status_code=204, headers={"OData-Version": "4.0"})

    def delete(self, es: EntitySet, key: Any) -> Response:
        with self.lock:
            self.find(es, key)
            if es.name == "Orders":
                self.db.execute('DELETE FROM "OrderLines" WHERE "OrderNumber" = ?', [key])
            self.db.execute(f'DELETE FROM "{es.name}" WHERE "{es.key}" = ?', [key])
            self.db.commit()
        return Response(status_code=204, headers={"OData-Version": "4.0"})


# -- HTTP ----------------------------------------------------------------------------------------------------------

def json_response(ctx: Context | None, body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    media = JSON_TYPE + (";IEEE754Compatible=true" if ctx and ctx.ieee754 else "")
    return Response(json.dumps(body, ensure_ascii=False), status, {"OData-Version": "4.0", **(headers or {})}, media)


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response(None, {"error": {"code": code, "message": message}}, status, headers)


def handle(service: Service, request: Request, raw_body: bytes) -> Response:
    """One OData request (run in a worker thread: SQLite is synchronous)."""
    query = request.scope.get("query_string", b"").decode("latin-1")
    options = parse_options(query)
    formats = " ".join((request.headers.get("accept", ""), options.get("$format", ""))).lower()
    fmt = options.get("$format", "json").lower()
    if fmt != "json" and not fmt.startswith("application/json") and not request.url.path.endswith("/$metadata"):
        raise QueryError(f"$format={options['$format']} is not supported (only JSON)", 406, "NotAcceptable")
    prefer = {}
    for item in request.headers.get("prefer", "").split(","):
        name, _, value = item.strip().partition("=")
        prefer[name.strip().lower()] = value.strip().strip('"')
    root = f"{request.base_url}odata/"
    ctx = Context(root, str(request.url).split("?")[0], query, options,
                  "ieee754compatible=true" in formats.replace(" ", ""), "odata.metadata=none" not in formats, prefer)
    raw = (request.scope.get("raw_path") or request.url.path.encode()).decode("latin-1")
    rest = raw.split("/odata", 1)[1].strip("/") if "/odata" in raw else ""
    segments = [unquote(s) for s in rest.split("/")] if rest else []
    method = request.method

    def only(*methods: str) -> None:
        if method not in methods:
            raise QueryError(f"{method} is not allowed on {request.url.path}", 405, "MethodNotAllowed")

    if not segments:
        only("GET")
        return json_response(ctx, {"@odata.context": f"{root}$metadata", "value": [
            {"name": name, "kind": "EntitySet", "url": name} for name in SETS]})
    if segments == ["$metadata"]:
        only("GET")
        return Response(metadata_xml(), 200, {"OData-Version": "4.0"}, "application/xml")
    if segments[0] == "$batch":
        raise unsupported("$batch is not supported")
    match = re.fullmatch(r"(\w+)(?:\((.*)\))?", segments[0], re.S)
    es = SETS.get(match.group(1)) if match else None
    if es is None or match is None:
        raise QueryError(f"no resource {segments[0]!r}", 404, "NotFound")
    body = None
    if method in ("POST", "PATCH", "PUT"):
        try:
            body = json.loads(raw_body or b"null")
        except ValueError as exc:
            raise QueryError("the request body is not JSON") from exc
    if match.group(2) is None:
        if segments[1:] == ["$count"]:
            only("GET")
            return Response(str(service.count(es, options)), 200, {"OData-Version": "4.0"}, "text/plain")
        if len(segments) > 1:
            raise QueryError(f"no resource {'/'.join(segments)!r}", 404, "NotFound")
        only("GET", "POST")
        return service.collection(ctx, es) if method == "GET" else service.create(ctx, es, body)
    key = parse_key(es, match.group(2))
    if len(segments) == 1:
        only("GET", "PATCH", "PUT", "DELETE")
        if method == "GET":
            return service.entity(ctx, es, service.find(es, key))
        if method == "DELETE":
            return service.delete(es, key)
        return service.update(ctx, es, key, body, replace=method == "PUT")
    only("GET")
    row, name, tail = service.find(es, key), segments[1], segments[2:]
    nav, prop = es.nav(name), es.prop(name)
    if nav and nav.many and tail in ([], ["$count"]):
        target, base = SETS[nav.target], (f'"{nav.column}" = ?', [row[nav.column]])
        if tail:
            return Response(str(service.count(target, options, base)), 200, {"OData-Version": "4.0"}, "text/plain")
        return service.collection(ctx, target, base)
    if nav and not tail:
        target = SETS[nav.target]
        return service.entity(ctx, target, service.find(target, row[nav.column]))
    if prop and tail in ([], ["$value"]):
        value = to_json(prop, row[name], ctx.ieee754)
        if value is None:
            return Response(status_code=204, headers={"OData-Version": "4.0"})
        if tail:
            text = str(value).lower() if isinstance(value, bool) else str(value)
            return Response(text, 200, {"OData-Version": "4.0"}, "text/plain")
        return json_response(ctx, {"@odata.context": f"{root}$metadata#{es.name}({key_literal(key)})/{name}",
                                   "value": value})
    if name == "$ref" or "$ref" in tail:
        raise unsupported("$ref is not supported")
    raise QueryError(f"no resource {'/'.join(segments)!r}", 404, "NotFound")


def create_app(db_path: str | None = None, *, seed: int = 0, max_page_size: int = 500, token: str | None = None,
               latency_ms: int = 0) -> Starlette:
    """The ERP as an ASGI app (``app.state.service`` is its :class:`Service`: database, knobs, request log)."""
    service = Service(db_path, seed, max_page_size, token, latency_ms)

    async def odata(request: Request) -> Response:
        service.requests += 1
        service.log = [*service.log[-99:], f"{request.method} {request.url}"]
        if service.latency_ms:
            await asyncio.sleep(service.latency_ms / 1000)
        if service.down:
            return error(503, "ServiceUnavailable", "the ERP order service is down for maintenance",
                         {"Retry-After": "30"})
        if service.token and request.headers.get("authorization") != f"Bearer {service.token}":
            return error(401, "Unauthorized", "a valid bearer token is required", {"WWW-Authenticate": "Bearer"})
        raw_body = await request.body()
        try:
            return await run_in_threadpool(handle, service, request, raw_body)
        except QueryError as exc:
            return error(exc.status, exc.code, str(exc))

    async def control(request: Request) -> Response:
        action = request.path_params["action"]
        if request.method == "POST" and action in ("down", "up"):
            service.down = action == "down"
        elif request.method == "POST" and action == "latency":
            service.latency_ms = int(request.query_params.get("ms", "0"))
        elif request.method == "POST" and action == "reset":
            service.requests, service.log = 0, []
        elif not (request.method == "GET" and action == "stats"):
            return JSONResponse({"error": f"no control {request.method} /control/{action}"}, 404)
        return JSONResponse({"requests": service.requests, "last_url": service.log[-1].split(" ", 1)[1]
                             if service.log else None, "recent": service.log, "down": service.down,
                             "latency_ms": service.latency_ms})

    app = Starlette(routes=[Route("/control/{action}", control, methods=["GET", "POST"]),
                            Route("/odata{path:path}", odata, methods=["GET", "POST", "PATCH", "PUT", "DELETE"])])
    app.state.service = service
    return app


def serve_in_thread(app: Starlette, port: int = 0) -> tuple[uvicorn.Server, str]:
    """Run ``app`` under uvicorn on 127.0.0.1:``port`` (0: a free one) in a daemon thread; returns the server (set
    ``server.should_exit = True`` to stop it) and its base URL."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    return server, f"http://127.0.0.1:{sock.getsockname()[1]}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8703)
    parser.add_argument("--seed", type=int, default=500, help="orders to create in an empty database")
    parser.add_argument("--db", default=os.environ.get("ERP_ODATA_DB"), help="SQLite file (default: in memory)")
    parser.add_argument("--max-page-size", type=int, default=500)
    parser.add_argument("--token", default=os.environ.get("ERP_ODATA_TOKEN"), help="require this bearer token")
    parser.add_argument("--latency-ms", type=int, default=0, help="wait this long before answering")
    options = parser.parse_args(argv)
    app = create_app(options.db, seed=options.seed, max_page_size=options.max_page_size, token=options.token,
                     latency_ms=options.latency_ms)
    print(f"ERP order service on http://127.0.0.1:{options.port}/odata/", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=options.port, log_level="info")


if __name__ == "__main__":
    main()
