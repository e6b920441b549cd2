"""The query engine every surface shares: SOQL text in, pages of REST-shaped records out.

::

    engine = QueryEngine(store)
    page = engine.execute("SELECT Id, Name, Account.Name FROM Contact", context, batch_size=2000)
    page.to_wire()                       # {"totalSize", "done", "records": [...]}
    if not page.done:
        more = engine.fetch_more(page.locator, context)

Plans are cached (LRU) by query text, user, deployed schema version and whether deleted rows are included, so
a repeated query pays neither parsing nor compiling. A page is the cached plan run with ``LIMIT``/``OFFSET``;
later pages run it again at their offset (the plan's ``ORDER BY`` ends in a unique tiebreak, so pages are
stable while the data is). ``totalSize`` comes for free when the first page is not full; otherwise one
``COUNT`` runs, once: the :class:`QueryLocator` carries it to later pages. Child relationship subqueries run
as one query per subquery per page, for all the page's parents at once.

Cursors (``nextRecordsUrl`` ids, their lifetime and limits) belong to the API layer: it keeps a
:class:`QueryLocator` per cursor and calls :meth:`QueryEngine.fetch_more`.

Queries time out (QUERY_TIMEOUT) after ``timeout_seconds`` (120 by default, as on the platform). SQLite runs a
progress handler that aborts the statement once the deadline has passed; for PostgreSQL a watchdog thread sends
a server-side cancel for a query still running at its deadline (``SET LOCAL statement_timeout`` would cost an
extra round trip on every query, doubling the latency of small lookups).
"""

from __future__ import annotations

import contextlib
import dataclasses
import heapq
import itertools
import json
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import Connection, Select, bindparam, func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ClauseElement, Executable

from interlink.errors import ExternalObjectUnsupported, MalformedQueryError, QueryTimeout
from interlink.metadata.model import ObjectDef, Schema
from interlink.metadata.values import wire_plan
from interlink.records.context import Context
from interlink.soql import ast
from interlink.soql import external as _external
from interlink.soql import parser as _parser
from interlink.soql.compiler import (
    ChildOut,
    ChildPlan,
    CompiledQuery,
    FieldOut,
    Out,
    ParentOut,
    RecordShape,
    TypeOfOut,
    compile_query,
)
from interlink.soql.dates import today_utc
from interlink.store.database import Store

DEFAULT_URL_PREFIX = "/services/data/v66.0/sobjects"
DEFAULT_BATCH_SIZE = 2000
DEFAULT_TIMEOUT_SECONDS = 120.0
_TIMEOUT_MESSAGE = "Your query request was running for too long."


@dataclass(frozen=True)
class QueryLocator:
    """Everything needed to fetch the next page of a query (the API layer maps cursor ids to these)."""

    soql: str
    user_id: str
    include_deleted: bool
    batch_size: int
    url_prefix: str
    offset: int
    total_size: int
    # External objects: where the data source's next page starts (a server-driven paging token).
    state: Any = None


@dataclass
class QueryPage:
    """One page of a query result."""

    total_size: int
    records: list[dict[str, Any]]
    done: bool
    next_offset: int | None = None
    locator: QueryLocator | None = None
    state: Any = None

    def to_wire(self, next_records_url: str | None = None) -> dict[str, Any]:
        """The REST body: ``{"totalSize", "done", "nextRecordsUrl"?, "records"}``."""
        body: dict[str, Any] = {"totalSize": self.total_size, "done": self.done}
        if next_records_url is not None and not self.done:
            body["nextRecordsUrl"] = next_records_url
        body["records"] = self.records
        return body


@dataclass
class _Plan:
    """A compiled query plus its paged statements, as cached; or, for an external object, its pushdown plan."""

    compiled: CompiledQuery | None
    paged: Select[Any] | None = None
    children: list[Select[Any]] = field(default_factory=list)
    external: _external.ExternalPlan | None = None


@dataclass
class ExternalPage:
    """What an :class:`ExternalRunner` answers for one page: rows keyed by field API name (``Id`` included),
    the total when known, and the state that continues the query (None when this page ends it)."""

    rows: list[dict[str, Any]]
    total: int | None
    state: Any = None
    done: bool = True


class ExternalRunner:
    """Runs external-object plans (the connect layer implements this; the engine knows no data source)."""

    def run(self, plan: _external.ExternalPlan, context: Context, *, offset: int, batch_size: int, state: Any,
            today: date) -> ExternalPage:
        raise NotImplementedError

    def children(self, child: _external.ExternalChild, keys: Sequence[Any], context: Context,
                 today: date) -> dict[Any, list[dict[str, Any]]]:
        """Rows of the child plan whose lookup holds one of ``keys``, grouped by that key."""
        raise NotImplementedError


# -- EXPLAIN as a construct (so bind parameters go through SQLAlchemy as usual) -----------------------------


class _Explain(Executable, ClauseElement):
    inherit_cache = False

    def __init__(self, statement: Select[Any], prefix: str) -> None:
        self.statement = statement
        self.prefix = prefix


@compiles(_Explain)
def _compile_explain(element: _Explain, compiler: Any, **kw: Any) -> str:
    return element.prefix + compiler.process(element.statement, **kw)


# -- the timeout watchdog (PostgreSQL) -------------------------------------------------------------------


class _Watchdog:
    """One daemon thread that calls a cancel function for each watched statement still running at its deadline."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int]] = []
        self._active: dict[int, Callable[[], Any]] = {}
        self._fired: set[int] = set()
        self._counter = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, deadline: float, cancel: Callable[[], Any]) -> int:
        with self._cond:
            token = next(self._counter)
            heapq.heappush(self._heap, (deadline, token))
            self._active[token] = cancel
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="interlink-query-watchdog", daemon=True)
                self._thread.start()
            self._cond.notify()
        return token

    def release(self, token: int) -> bool:
        """Stop watching ``token``; True if its cancel function was called."""
        with self._cond:
            self._active.pop(token, None)
            if token in self._fired:
                self._fired.discard(token)
                return True
            return False

    def _loop(self) -> None:
        with self._cond:
            while True:
                while self._heap and self._heap[0][1] not in self._active:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                deadline, token = self._heap[0]
                now = time.monotonic()
                if now < deadline:
                    self._cond.wait(deadline - now)
                    continue
                heapq.heappop(self._heap)
                cancel = self._active.pop(token)
                self._fired.add(token)
                with contextlib.suppress(Exception):  # the statement may have just finished
                    cancel()


_WATCHDOG = _Watchdog()


# -- rendering rows ------------------------------------------------------------------------------------------


def _fill(target: dict[str, Any], items: Sequence[Out], row: Sequence[Any], prefix: str,
          children: list[dict[str, Any]], record_id: Any) -> None:
    for item in items:
        kind = type(item)
        if kind is FieldOut:
            value = row[item.index]  # type: ignore[union-attr]
            convert = item.convert  # type: ignore[union-attr]
            target[item.key] = value if convert is None else convert(value)
        elif kind is ParentOut:
            parent_id = row[item.id_index]  # type: ignore[union-attr]
            if parent_id is None:
                target[item.key] = None
                continue
            type_name = item.type_name or item.prefixes.get(parent_id[:3], "Name")  # type: ignore[union-attr]
            nested: dict[str, Any] = {"attributes": {"type": type_name, "url": f"{prefix}/{type_name}/{parent_id}"}}
            _fill(nested, item.items, row, prefix, children, parent_id)  # type: ignore[union-attr]
            target[item.key] = nested
        elif kind is ChildOut:
            target[item.key] = children[item.child].get(record_id)  # type: ignore[union-attr]
        elif kind is TypeOfOut:
            parent_id = row[item.id_index]  # type: ignore[union-attr]
            if parent_id is None:
                target[item.key] = None
                continue
            type_name = item.prefixes.get(parent_id[:3], "Name")  # type: ignore[union-attr]
            nested = {"attributes": {"type": type_name, "url": f"{prefix}/{type_name}/{parent_id}"}}
            fields = item.variants.get(type_name, item.otherwise)  # type: ignore[union-attr]
            _fill(nested, fields, row, prefix, children, parent_id)
            target[item.key] = nested


def _records(shape: RecordShape, rows: Sequence[Sequence[Any]], prefix: str,
             children: list[dict[str, Any]]) -> list[dict[str, Any]]:
    type_name = shape.type_name
    id_index = shape.id_index
    base = f"{prefix}/{type_name}/"
    result = []
    for row in rows:
        record_id = row[id_index]
        record: dict[str, Any] = {"attributes": {"type": type_name, "url": base + record_id}}
        _fill(record, shape.items, row, prefix, children, record_id)
        result.append(record)
    return result


def _aggregate_records(columns: Sequence[FieldOut], rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    result = []
    for row in rows:
        record: dict[str, Any] = {"attributes": {"type": "AggregateResult"}}
        for column in columns:
            value = row[column.index]
            record[column.key] = value if column.convert is None else column.convert(value)
        result.append(record)
    return result


_CONVERTERS: dict[int, tuple[weakref.ref[ObjectDef], dict[str, Any]]] = {}


def _converters(obj: ObjectDef) -> dict[str, Any]:
    """Field name -> wire converter for ``obj`` (memoized per object definition, for as long as it lives: a user's
    view of an object is replaced when their permissions change, and its entry goes with it)."""
    key = id(obj)
    cached = _CONVERTERS.get(key)
    if cached is None or cached[0]() is not obj:
        cached = (weakref.ref(obj), dict(wire_plan(obj)))
        _CONVERTERS[key] = cached
        weakref.finalize(obj, _CONVERTERS.pop, key, None)
    return cached[1]


# -- the engine ----------------------------------------------------------------------------------------------


def _row_filter(context: Context | None) -> Any:
    access = None if context is None else context.enforced
    return None if access is None else access.row_filter


class QueryEngine:
    """Parses, compiles (cached) and runs SOQL against a :class:`Store`.

    ``today`` gives the current UTC date for relative date literals (tests pin it); ``timeout_seconds`` None
    disables the query timeout.
    """

    def __init__(self, store: Store, *, timeout_seconds: float | None = DEFAULT_TIMEOUT_SECONDS,
                 cache_size: int = 512, today: Callable[[], date] = today_utc, fiscal_start_month: int = 1) -> None:
        self.store = store
        self.timeout_seconds = timeout_seconds
        self.cache_size = cache_size
        self.today = today
        self.fiscal_start_month = fiscal_start_month
        self._cache: OrderedDict[tuple[Any, ...], _Plan] = OrderedDict()
        self._lock = threading.Lock()
        # Runs queries on external objects; set by the org when it has data sources.
        self.external: ExternalRunner | None = None
        self.hits = 0
        self.misses = 0

    # -- plans ------------------------------------------------------------------------------------------------

    def schema_for(self, context: Context | None) -> Schema:
        """The schema ``context``'s user sees: without the objects and fields they may not read."""
        access = None if context is None else context.enforced
        return self.store.schema if access is None else access.schema(self.store.schema)

    def compile(self, soql: str, context: Context, *, include_deleted: bool = False) -> CompiledQuery:
        """The compiled plan for ``soql`` (from the cache when possible)."""
        plan = self._plan(soql, context, include_deleted)
        if plan.compiled is None:
            assert plan.external is not None
            raise ExternalObjectUnsupported(f"{plan.external.object.name} is an external object: this operation "
                                            "reads stored records only (use the REST query resource)")
        return plan.compiled

    def _plan(self, soql: str, context: Context, include_deleted: bool) -> _Plan:
        schema = self.schema_for(context)
        user_id = context.user_id
        key = (soql, user_id, schema.version, include_deleted)
        with self._lock:
            plan = self._cache.get(key)
            if plan is not None:
                self._cache.move_to_end(key)
                self.hits += 1
                return plan
        query = _parser.parse_soql(soql)
        root = schema.object(query.object)
        if root is not None and root.is_external:
            if include_deleted:
                raise ExternalObjectUnsupported(f"{root.name} is an external object: queryAll is not supported")
            plan = _Plan(None, external=_external.compile_external(query, schema, root))
        else:
            compiled = compile_query(query, schema, self.store.tables, include_deleted=include_deleted,
                                     row_filter=_row_filter(context), user_id=user_id,
                                     fiscal_start_month=self.fiscal_start_month)
            plan = _Plan(compiled)
            if compiled.kind != "count":
                plan.paged = compiled.statement.limit(bindparam("il_limit")).offset(bindparam("il_offset"))
        with self._lock:
            self.misses += 1
            self._cache[key] = plan
            self._cache.move_to_end(key)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return plan

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    # -- running ----------------------------------------------------------------------------------------------

    def execute(self, soql: str, context: Context, *, include_deleted: bool = False,
                batch_size: int = DEFAULT_BATCH_SIZE, url_prefix: str = DEFAULT_URL_PREFIX, offset: int = 0,
                total_size: int | None = None) -> QueryPage:
        """Run ``soql`` and return the page starting at ``offset`` (0: the first page) of ``batch_size`` rows.

        ``total_size``, when the caller knows it from an earlier page, saves the COUNT.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        plan = self._plan(soql, context, include_deleted)
        page = self._run(plan, offset, batch_size, url_prefix, total_size, context, None)
        if not page.done:
            page.locator = QueryLocator(soql, context.user_id, include_deleted, batch_size, url_prefix,
                                        page.next_offset or 0, page.total_size, page.state)
        return page

    def fetch_more(self, locator: QueryLocator, context: Context | None = None) -> QueryPage:
        """The page a locator points at (queryMore). The plan comes from the cache, or is compiled again."""
        plan = self._plan(locator.soql, context or Context(locator.user_id, ""), locator.include_deleted)
        page = self._run(plan, locator.offset, locator.batch_size, locator.url_prefix, locator.total_size,
                         context or Context(locator.user_id, ""), locator.state)
        if not page.done:
            page.locator = QueryLocator(locator.soql, locator.user_id, locator.include_deleted, locator.batch_size,
                                        locator.url_prefix, page.next_offset or 0, page.total_size, page.state)
        return page

    def _run(self, plan: _Plan, offset: int, batch_size: int, url_prefix: str,
             known_total: int | None, context: Context, state: Any) -> QueryPage:
        if plan.external is not None:
            return self._run_external(plan.external, offset, batch_size, url_prefix, known_total, context, state)
        compiled = plan.compiled
        assert compiled is not None
        params = compiled.parameters(self.today()) if compiled.date_params else {}
        with self.store.read() as conn, self._deadline(conn):
            if compiled.kind == "count":
                count = conn.execute(compiled.statement, params).scalar() or 0
                return QueryPage(self._clip(compiled, count), [], True)
            remaining = None if compiled.limit is None else compiled.limit - offset
            page_limit = batch_size if remaining is None else max(0, min(batch_size, remaining))
            rows: Sequence[Any] = []
            if page_limit > 0:
                assert plan.paged is not None
                rows = conn.execute(plan.paged, {**params, "il_limit": page_limit,
                                                 "il_offset": compiled.offset + offset}).all()
            total = known_total
            if total is None:
                if len(rows) < page_limit and (rows or offset == 0):
                    total = offset + len(rows)
                elif remaining is not None and len(rows) == remaining:
                    total = compiled.limit
                else:
                    total = self._clip(compiled, conn.execute(compiled.count_statement, params).scalar() or 0)
            assert total is not None
            if compiled.kind == "aggregate":
                records = _aggregate_records(compiled.columns, rows)
            else:
                assert compiled.shape is not None
                children = [self._children(conn, child, compiled.shape, rows, params, url_prefix, context)
                            for child in compiled.children]
                records = _records(compiled.shape, rows, url_prefix, children)
        end = offset + len(rows)
        done = end >= total or not rows
        return QueryPage(total, records, done, None if done else end)

    def stream(self, soql: str, context: Context, *, include_deleted: bool = False,
               chunk_size: int = 10_000) -> Iterator[tuple[CompiledQuery, Sequence[Any]]]:
        """Run ``soql`` once and yield its raw rows in chunks, never holding the whole result (Bulk query jobs).

        Rows are the compiled statement's columns; :func:`interlink.soql.compiled.flat_columns` maps the shape
        onto them. No query timeout applies: the caller is a background job, not a waiting request.
        """
        compiled = self.compile(soql, context, include_deleted=include_deleted)
        params = compiled.parameters(self.today()) if compiled.date_params else {}
        with self.store.read_engine.connect() as conn:
            result = conn.execution_options(yield_per=chunk_size).execute(compiled.statement, params)
            for partition in result.partitions(chunk_size):
                yield compiled, partition

    def stream_records(self, soql: str, context: Context, *, include_deleted: bool = False, chunk_size: int = 10_000,
                       url_prefix: str = DEFAULT_URL_PREFIX) -> Iterator[list[dict[str, Any]]]:
        """:meth:`stream` rendered as REST records (no child subqueries: callers refuse them)."""
        for compiled, rows in self.stream(soql, context, include_deleted=include_deleted, chunk_size=chunk_size):
            assert compiled.shape is not None
            yield _records(compiled.shape, rows, url_prefix, [])

    # -- external objects ----------------------------------------------------------------------------------------

    def _runner(self, obj_name: str) -> ExternalRunner:
        if self.external is None:
            raise ExternalObjectUnsupported(f"{obj_name} is an external object and this org has no data sources "
                                            "configured")
        return self.external

    def _run_external(self, plan: _external.ExternalPlan, offset: int, batch_size: int, url_prefix: str,
                      known_total: int | None, context: Context, state: Any) -> QueryPage:
        runner = self._runner(plan.object.name)
        page = runner.run(plan, context, offset=offset, batch_size=batch_size, state=state, today=self.today())
        if plan.kind == "count":
            return QueryPage(page.total or 0, [], True)
        rows = page.rows
        end = offset + len(rows)
        total = known_total if known_total is not None else page.total
        done = page.done or not rows
        if total is None:
            total = end if done else end + 1  # the source gave no count: at least one more row exists
        parents = [self._external_parents(select_, rows, url_prefix, context) for select_ in plan.parents]
        children = {child.key: self._external_child_rows(child, rows, url_prefix, context)
                    for child in plan.children}
        render = self._external_renderer(plan, url_prefix, parents, children)
        records = [render(row) for row in rows]
        return QueryPage(max(total, end), records, done, None if done else end, state=page.state)

    @staticmethod
    def _external_renderer(plan: _external.ExternalPlan, url_prefix: str, parents: list[dict[Any, dict[str, Any]]],
                           children: dict[str, dict[Any, dict[str, Any]]]) -> Callable[[dict[str, Any]],
                                                                                    dict[str, Any]]:
        """A function rendering one external row as a REST record; what each select item needs is looked up once
        per page, not per row."""
        obj = plan.object
        convert = _converters(obj)
        fields = {f.name for f in plan.fields}
        by_parent = {p.key: (p.lookup.name, found) for p, found in zip(plan.parents, parents, strict=True)}
        by_child = {c.key: (c.parent_field, children[c.key]) for c in plan.children if c.key in children}
        items: list[tuple[str, Callable[[dict[str, Any]], Any]]] = []
        for key in plan.order:
            if key in fields:
                converter = convert.get(key)
                items.append((key, (lambda row, k=key: row.get(k)) if converter is None else
                              (lambda row, k=key, c=converter: None if row.get(k) is None else c(row.get(k)))))
            elif key in by_parent:
                lookup, found = by_parent[key]
                items.append((key, lambda row, lookup=lookup, found=found: found.get(row.get(lookup))))
            else:
                parent_field, blocks = by_child[key]
                items.append((key, lambda row, f=parent_field, b=blocks: b.get(row.get(f))))
        base = f"{url_prefix}/{obj.name}/"

        def render(row: dict[str, Any]) -> dict[str, Any]:
            record: dict[str, Any] = {"attributes": {"type": obj.name, "url": base + str(row["Id"])}}
            for key, value in items:
                record[key] = value(row)
            return record

        return render

    def _external_parents(self, select_: _external.ParentSelect, rows: Sequence[dict[str, Any]], url_prefix: str,
                          context: Context) -> dict[Any, dict[str, Any]]:
        """Parents of an external page's rows, read through the query engine by the field the lookup matches."""
        keys = list(dict.fromkeys(row.get(select_.lookup.name) for row in rows if row.get(select_.lookup.name)))
        parent = select_.parent
        if not keys:
            return {}
        target = select_.lookup.reference_target_field or "Id"
        names = list(dict.fromkeys([f.name for f in select_.fields]))
        query = ast.Query(
            select=tuple(ast.SelectItem(ast.FieldPath((name,))) for name in dict.fromkeys(["Id", target, *names])),
            object=parent.name, where=ast.InList(ast.FieldPath((target,)), tuple(keys)))
        if parent.is_external:  # an external lookup: the parents come from their own data source
            plan = _external.compile_external(query, self.schema_for(context), parent)
            records: list[dict[str, Any]] = []
            offset, state = 0, None
            while True:
                page = self._runner(parent.name).run(plan, context, offset=offset, batch_size=DEFAULT_BATCH_SIZE,
                                                     state=state, today=self.today())
                render = self._external_renderer(plan, url_prefix, [], {})
                records += [render(row) for row in page.rows]
                offset += len(page.rows)
                if page.done or not page.rows:
                    break
                state = page.state
        else:
            compiled = compile_query(query, self.schema_for(context), self.store.tables,
                                     row_filter=_row_filter(context), user_id=context.user_id,
                                     fiscal_start_month=self.fiscal_start_month)
            assert compiled.shape is not None
            with self.store.read() as conn, self._deadline(conn):
                records = _records(compiled.shape, conn.execute(compiled.statement).all(), url_prefix, [])
        found: dict[Any, dict[str, Any]] = {}
        lowered = {str(k).lower(): k for k in keys}
        for record in records:
            key = record.get(target)
            shown = {"attributes": record["attributes"], **{n: record.get(n) for n in names}}
            found[key] = shown
            if isinstance(key, str) and key.lower() in lowered:  # text keys match case-insensitively
                found[lowered[key.lower()]] = shown
        return found

    def _external_child_rows(self, child: _external.ExternalChild, rows: Sequence[dict[str, Any]],
                             url_prefix: str, context: Context) -> dict[Any, dict[str, Any]]:
        keys = list(dict.fromkeys(row.get(child.parent_field) for row in rows if row.get(child.parent_field)))
        return self._child_blocks(child, keys, url_prefix, context)

    def _external_children(self, child: ChildPlan, rows: Sequence[Any], id_index: int, url_prefix: str,
                           context: Context) -> dict[str, Any]:
        """Blocks of external children for a page of stored parents, keyed by parent id."""
        spec = child.external
        assert spec is not None
        keys_by_id = {row[id_index]: row[child.parent_index] for row in rows}
        keys = list(dict.fromkeys(k for k in keys_by_id.values() if k is not None))
        blocks = self._child_blocks(spec, keys, url_prefix, context)
        return {parent_id: blocks[key] for parent_id, key in keys_by_id.items() if key in blocks}

    def _child_blocks(self, child: _external.ExternalChild, keys: list[Any], url_prefix: str,
                      context: Context) -> dict[Any, dict[str, Any]]:
        if not keys:
            return {}
        if child.plan is None:
            return self._stored_child_blocks(child, keys, url_prefix, context)
        grouped = self._runner(child.plan.object.name).children(child, keys, context, self.today())
        blocks: dict[Any, dict[str, Any]] = {}
        render = self._external_renderer(child.plan, url_prefix, [{} for _ in child.plan.parents], {})
        for key, group in grouped.items():
            records = [render(row) for row in group]
            blocks[key] = {"totalSize": len(records), "done": True, "records": records}
        return blocks

    def _stored_child_blocks(self, child: _external.ExternalChild, keys: list[Any], url_prefix: str,
                             context: Context) -> dict[Any, dict[str, Any]]:
        """Stored children of a page of external parents: one ordinary query with ``lookup IN (keys)``."""
        assert child.stored is not None
        sub = child.stored
        lookup = child.lookup.name
        shown = any(isinstance(i.expr, ast.FieldPath) and i.expr.parts[-1].lower() == lookup.lower()
                    and len(i.expr.parts) == 1 for i in sub.select)
        select = sub.select if shown else (*sub.select, ast.SelectItem(ast.FieldPath((lookup,))))
        match = ast.InList(ast.FieldPath((lookup,)), tuple(keys))
        where: ast.Condition = match if sub.where is None else ast.And((match, sub.where))
        query = dataclasses.replace(sub, select=select, where=where, limit=None, offset=None)
        compiled = compile_query(query, self.schema_for(context), self.store.tables, row_filter=_row_filter(context),
                                     user_id=context.user_id,
                                 fiscal_start_month=self.fiscal_start_month)
        assert compiled.shape is not None
        params = compiled.parameters(self.today()) if compiled.date_params else {}
        with self.store.read() as conn, self._deadline(conn):
            records = _records(compiled.shape, conn.execute(compiled.statement, params).all(), url_prefix, [])
        grouped: dict[Any, list[dict[str, Any]]] = {}
        for record in records:
            key = record[lookup] if shown else record.pop(lookup)
            grouped.setdefault(key, []).append(record)
        blocks = {}
        for key, group in grouped.items():
            group = group[(sub.offset or 0):] if sub.limit is None else group[(sub.offset or 0):
                                                                              (sub.offset or 0) + sub.limit]
            blocks[key] = {"totalSize": len(group), "done": True, "records": group}
        return blocks

    @staticmethod
    def _clip(compiled: CompiledQuery, count: int) -> int:
        total = max(0, count - compiled.offset)
        return total if compiled.limit is None else min(total, compiled.limit)

    def _children(self, conn: Connection, child: ChildPlan, parent_shape: RecordShape, rows: Sequence[Any],
                  params: dict[str, Any], url_prefix: str, context: Context) -> dict[str, Any]:
        parent_ids = [row[parent_shape.id_index] for row in rows]
        if not parent_ids:
            return {}
        if child.external is not None:
            return self._external_children(child, rows, parent_shape.id_index, url_prefix, context)
        child_rows = conn.execute(child.statement, {**params, "parent_ids": parent_ids}).all()
        grouped: dict[str, list[Sequence[Any]]] = {}
        for row in child_rows:
            grouped.setdefault(row[child.parent_index], []).append(row)
        return {
            parent_id: {"totalSize": len(group), "done": True,
                        "records": _records(child.shape, group, url_prefix, [])}
            for parent_id, group in grouped.items()
        }

    # -- timeouts -----------------------------------------------------------------------------------------------

    @contextmanager
    def _deadline(self, conn: Connection) -> Iterator[None]:
        try:
            with self._deadline_of(conn):
                yield
        except DBAPIError as exc:
            text = str(exc.orig).lower()
            # A WHERE clause with thousands of conditions: the database refuses to build it (SQLite's expression depth
            # limit, PostgreSQL's stack depth limit). The caller gets the query error, not a 500.
            if "expression tree is too large" in text or "stack depth limit exceeded" in text:
                raise MalformedQueryError("The query is too complex: it has too many conditions nested in its WHERE "
                                          "clause; split it into several queries or use IN (...) lists") from None
            raise

    @contextmanager
    def _deadline_of(self, conn: Connection) -> Iterator[None]:
        if self.timeout_seconds is None:
            yield
            return
        if self.store.backend == "postgresql":
            with self._postgres_deadline(conn):
                yield
            return
        raw = conn.connection.driver_connection
        deadline = time.monotonic() + self.timeout_seconds
        raw.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 1000)  # type: ignore[union-attr]
        try:
            yield
        except DBAPIError as exc:
            if "interrupted" in str(exc.orig).lower() and time.monotonic() > deadline:
                raise QueryTimeout(_TIMEOUT_MESSAGE) from None
            raise
        finally:
            raw.set_progress_handler(None, 1000)  # type: ignore[union-attr]

    @contextmanager
    def _postgres_deadline(self, conn: Connection) -> Iterator[None]:
        # A watchdog cancels the running statement server-side at the deadline (PostgreSQL answers 57014,
        # query_canceled). Unlike ``SET LOCAL statement_timeout`` this costs no extra round trip per query.
        raw = conn.connection.driver_connection
        cancel = getattr(raw, "cancel_safe", None) or raw.cancel  # type: ignore[union-attr]
        token = _WATCHDOG.watch(time.monotonic() + (self.timeout_seconds or 0), cancel)
        fired = False
        try:
            yield
        except DBAPIError as exc:
            fired = _WATCHDOG.release(token)
            if fired and getattr(exc.orig, "sqlstate", None) == "57014":
                raise QueryTimeout(_TIMEOUT_MESSAGE) from None
            raise
        finally:
            if not fired:
                _WATCHDOG.release(token)

    # -- explain ------------------------------------------------------------------------------------------------

    def explain(self, soql: str, context: Context, *, include_deleted: bool = False) -> dict[str, Any]:
        """The platform's ``?explain=`` shape, from the database's own plan for the query."""
        compiled = self.compile(soql, context, include_deleted=include_deleted)
        obj = compiled.object
        table = self.store.table(obj.name)
        params = compiled.parameters(self.today()) if compiled.date_params else {}
        with self.store.read() as conn, self._deadline(conn):
            sobject_cardinality = conn.execute(select(func.count()).select_from(table)).scalar() or 0
            if self.store.backend == "postgresql":
                raw = conn.execute(_Explain(compiled.statement, "EXPLAIN (FORMAT JSON) "), params).scalar()
                document = raw if isinstance(raw, list) else json.loads(raw)
                operation, index_text, estimate = _postgres_plan(document[0]["Plan"], table.name)
                cardinality = int(estimate)
            else:
                details = [row[3] for row in conn.execute(_Explain(compiled.statement, "EXPLAIN QUERY PLAN "),
                                                          params)]
                operation, index_text = _sqlite_plan(details, table.name)
                cardinality = (conn.execute(compiled.count_statement, params).scalar() or 0
                               if compiled.kind != "count" else 1)
        fields = [f for f in dict.fromkeys(["Id", *compiled.filter_fields]) if _mentions(index_text, f)]
        if operation == "Index" and not fields and "autoindex" in index_text.lower():
            fields = ["Id"]
        ratio = cardinality / sobject_cardinality if sobject_cardinality else 0.0
        # Relative cost: an index plan is selective below 1 (10% of the object's rows); a table scan costs its
        # full read, a bit over the index threshold, as the platform's usual 0.65..3 scan costs do.
        relative_cost = round(ratio / 0.1, 6) if operation == "Index" else round(0.65 + ratio, 6)
        notes = []
        unindexed = [f for f in compiled.filter_fields if f not in fields]
        if unindexed:
            notes.append({"description": "Not considering filter for optimization because unindexed",
                          "fields": unindexed, "tableEnumOrId": obj.name})
        return {"plans": [{
            "cardinality": cardinality,
            "fields": fields,
            "leadingOperationType": operation,
            "notes": notes,
            "relativeCost": relative_cost,
            "sobjectCardinality": sobject_cardinality,
            "sobjectType": obj.name,
        }]}


def _mentions(text: str, field_name: str) -> bool:
    lowered = text.lower()
    name = field_name.lower()
    return f'"{name}"' in lowered or f"({name}" in lowered or f" {name}" in lowered or f"_{name}_" in lowered


def _sqlite_plan(details: Sequence[str], table_name: str) -> tuple[str, str]:
    for detail in details:
        words = detail.split()
        if len(words) >= 2 and words[0] in ("SCAN", "SEARCH") and words[1] == table_name:
            if words[0] == "SEARCH":
                return "Index", detail
            return "TableScan", detail
    return "TableScan", ""


def _postgres_plan(node: dict[str, Any], table_name: str) -> tuple[str, str, float]:
    estimate = float(node.get("Plan Rows", 0))
    found = _find_relation(node, table_name)
    if found is None:
        return "TableScan", "", estimate
    node_type = found.get("Node Type", "")
    if node_type in ("Index Scan", "Index Only Scan", "Bitmap Heap Scan"):
        text = " ".join(str(found.get(k, "")) for k in ("Index Name", "Index Cond", "Recheck Cond"))
        for child in found.get("Plans", []):
            text += " " + " ".join(str(child.get(k, "")) for k in ("Index Name", "Index Cond"))
        return "Index", text, estimate
    return "TableScan", "", estimate


def _find_relation(node: dict[str, Any], table_name: str) -> dict[str, Any] | None:
    if node.get("Relation Name") == table_name and node.get("Alias", table_name) == table_name:
        return node
    for child in node.get("Plans", []):
        found = _find_relation(child, table_name)
        if found is not None:
            return found
    return None


__all__ = ["DEFAULT_BATCH_SIZE", "DEFAULT_URL_PREFIX", "QueryEngine", "QueryLocator", "QueryPage"]
