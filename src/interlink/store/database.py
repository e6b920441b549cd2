"""The store: engines, the deployed schema and its tables, transactions.

SQLite (the embedded default) runs in WAL mode with one writer discipline: write transactions start
with ``BEGIN IMMEDIATE`` so two writers queue on the database lock instead of failing half-way, while
readers use a separate engine whose transactions never block the writer. PostgreSQL uses one engine
and takes an advisory lock for schema changes so several processes can deploy safely.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import Connection, Engine, Select, Table, bindparam, create_engine, event, func, select
from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError, OperationalError
from sqlalchemy.pool import NullPool

from interlink.errors import ConfigurationError, DestructiveChangeError
from interlink.metadata.model import ObjectDef, Schema
from interlink.metadata.spec import build_object, object_to_spec
from interlink.store.migrate import Plan, apply_plan, plan_changes
from interlink.store.tables import build_metadata

_DEPLOY_LOCK_ID = 0x1A7E_11C0
_PG_CONNECT_TIMEOUT_SECONDS = 5
_RETIRED_PREFIXES_KEY = "retired_key_prefixes"


def utcnow() -> datetime:
    """Naive UTC now with millisecond precision: what the store keeps and the wire shows."""
    now = datetime.now(UTC).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _normalize_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _unicode_lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _unicode_upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _sqlite_engine(url: str, *, writer: bool) -> Engine:
    path = url.split("sqlite:///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                           poolclass=NullPool if path == ":memory:" else None)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        # SQLite's lower()/upper() fold ASCII only; the platform compares text case-insensitively in every
        # script, so replace them on every connection (expression indexes stay consistent across connections).
        dbapi_connection.create_function("lower", 1, _unicode_lower, deterministic=True)
        dbapi_connection.create_function("upper", 1, _unicode_upper, deterministic=True)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=OFF")
        cursor.close()

    if writer:
        # Readers run in autocommit: each SELECT sees one consistent snapshot, and skipping the BEGIN
        # round trip (and this event hook) roughly halves the cost of a primary-key read.
        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _postgres_engine(url: str) -> Engine:
    """One pool for reads and writes that survives a database restart: ``pool_pre_ping`` replaces a connection the
    restart closed before it is used (and drops the pool's older ones with it), and ``connect_timeout`` bounds how
    long a request waits for an unreachable server before answering 503 (``interlink.store.failures``). A
    ``connect_timeout`` in the URL wins."""
    options = parse_qs(urlsplit(url).query)
    connect_args = {} if "connect_timeout" in options else {"connect_timeout": _PG_CONNECT_TIMEOUT_SECONDS}
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True, connect_args=connect_args)


@dataclass(frozen=True)
class _ManyPlan:
    """A statement compiled once for ``executemany``: where each bind value comes from and how it is converted."""

    sql: str
    positional: bool
    names: list[str]  # bind parameter names, in order
    sources: list[str]  # the row key feeding each
    converted: list[tuple[int, Any]]  # (position, SQLAlchemy bind processor) where one applies


class Store:
    """Owns the database connection(s), the deployed schema and the SQLAlchemy tables for it."""

    def __init__(self, url: str) -> None:
        self.url = _normalize_url(url)
        try:
            if self.url.startswith("sqlite"):
                self.backend = "sqlite"
                self.write_engine = _sqlite_engine(self.url, writer=True)
                self.read_engine = _sqlite_engine(self.url, writer=False)
            elif self.url.startswith("postgresql"):
                self.backend = "postgresql"
                self.write_engine = _postgres_engine(self.url)
                self.read_engine = self.write_engine
            else:
                raise ConfigurationError(f"unsupported store URL {url!r}: use sqlite:///path or postgresql://…")
        except (ArgumentError, NoSuchModuleError) as exc:
            raise ConfigurationError(f"cannot open store {url!r}: {exc}") from None
        self._lock = threading.RLock()
        self._prepared_statements: dict[int, tuple[Select[Any], Any]] = {}
        self._many_plans: dict[tuple[Any, ...], _ManyPlan] = {}
        self._readers = threading.local()
        self._all_readers: list[Any] = []
        self.schema = Schema([])
        self._system_metadata, self.tables, self.system = build_metadata(self.schema)
        # Called inside a deploy's transaction once its DDL ran: (connection, plan, deployed or None, target).
        # The setup audit trail records deploys here, so a deploy that fails leaves no trace.
        self.deploy_listeners: list[Callable[[Connection, Plan, Schema | None, Schema], None]] = []
        # The open write transaction of the current thread *or asyncio task*: a contextvar, so two requests
        # interleaving on one event loop never join each other's transaction.
        self._current_write: contextvars.ContextVar[Connection | None] = contextvars.ContextVar(
            f"interlink_write_{id(self)}", default=None)

    # -- lifecycle -----------------------------------------------------------------------------------------

    def open(self) -> None:
        """Create the system tables if missing and load the deployed schema."""
        try:
            with self.write_engine.begin() as conn:
                self._lock_for_deploy(conn)
                self._system_metadata.create_all(conn)
        except OperationalError as exc:
            raise ConfigurationError(f"cannot open store {self.url}: {exc.orig}") from None
        self._load_deployed()

    def close(self) -> None:
        for reader in self._all_readers:
            with contextlib.suppress(Exception):
                reader.close()
        self._all_readers.clear()
        self._readers = threading.local()
        self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            self.read_engine.dispose()

    def _load_deployed(self) -> None:
        with self.read_engine.connect() as conn:
            self._reload_in(conn)

    def _install_schema(self, schema: Schema) -> None:
        _metadata, tables, system = build_metadata(schema)
        with self._lock:
            self.schema = schema
            self.tables = tables
            self.system = system
            self._system_metadata = _metadata

    def reload_if_changed(self) -> bool:
        """Pick up a schema another process deployed; returns True if it changed."""
        with self.read_engine.connect() as conn:
            table = self.system["il_schema"]
            latest = conn.execute(select(func.max(table.c.deployed_at))).scalar()
        if latest is not None and latest.isoformat() != self.schema.version:
            self._load_deployed()
            return True
        return False

    # -- transactions ----------------------------------------------------------------------------------------

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction; nested calls on the same thread join the outer transaction."""
        current = self._current_write.get()
        if current is not None:
            yield current
            return
        with self.write_engine.begin() as conn:
            token = self._current_write.set(conn)
            try:
                yield conn
            finally:
                self._current_write.reset(token)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only connection (joins the current write transaction when there is one)."""
        current = self._current_write.get()
        if current is not None:
            yield current
            return
        with self.read_engine.connect() as conn:
            yield conn

    def fetch(self, statement: Select[Any], params: Mapping[str, Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run a SELECT built once and reused (hot-path primary-key reads): ``(column names, rows)``.

        On SQLite the statement is compiled once to SQL text and run on the raw DBAPI cursor with the column
        types' own result processors, which skips SQLAlchemy's per-execution machinery (about half the cost of
        a one-row read). Statements with expanding parameters, and other backends, take the ordinary path.
        """
        prepared = self._prepared(statement) if self.backend == "sqlite" else None
        if prepared is None:
            with self.read() as conn:
                result = conn.execute(statement, params)
                return list(result.keys()), [tuple(row) for row in result]
        sql, order, keys, processors = prepared
        current = self._current_write.get()
        # Inside a write transaction read through it (to see its own writes); otherwise on this thread's own
        # autocommit reader connection, kept open so a hot read needs no pool checkout.
        dbapi = current.connection.dbapi_connection if current is not None else self._raw_reader()
        cursor = dbapi.cursor()  # type: ignore[union-attr]
        try:
            raw_rows = cursor.execute(sql, [params[name] for name in order]).fetchall()
        finally:
            cursor.close()
        return keys, [tuple(value if process is None else process(value)
                            for value, process in zip(row, processors, strict=True)) for row in raw_rows]

    def _raw_reader(self) -> Any:
        reader = getattr(self._readers, "connection", None)
        if reader is None:
            reader = self.read_engine.raw_connection()
            reader.detach()  # the thread's own autocommit connection, outside the pool's count
            self._readers.connection = reader
            self._all_readers.append(reader)
        return reader

    def _prepared(self, statement: Select[Any]) -> tuple[str, list[str], list[str], list[Any]] | None:
        cached = self._prepared_statements.get(id(statement))
        if cached is not None and cached[0] is statement:
            return cached[1]
        compiled = statement.compile(dialect=self.read_engine.dialect)
        if compiled.literal_execute_params or any(p.expanding for p in compiled.binds.values()) \
                or compiled.positiontup is None:
            prepared = None
        else:
            dialect = self.read_engine.dialect
            columns = list(statement.selected_columns)
            prepared = (compiled.string, list(compiled.positiontup), [c.key for c in columns],
                        [c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns])
        if len(self._prepared_statements) > 1024:
            self._prepared_statements.clear()
        self._prepared_statements[id(statement)] = (statement, prepared)
        return prepared

    def table(self, object_name: str) -> Table:
        return self.tables[object_name.lower()]

    def object_for_id(self, record_id: str) -> ObjectDef | None:
        """The object a record id belongs to, by its key prefix; when several objects share the prefix (the history
        objects' ``017``), the one whose table holds the id."""
        candidates = self.schema.objects_with_prefix(record_id[:3])
        if len(candidates) <= 1:
            return candidates[0] if candidates else None
        with self.read() as conn:
            for obj in candidates:
                table = self.tables.get(obj.name.lower())
                if table is not None and conn.execute(select(table.c.Id).where(table.c.Id == record_id)).first():
                    return obj
        return None

    # -- deploy ----------------------------------------------------------------------------------------------

    def plan(self, target: Schema) -> Plan:
        return plan_changes(self.schema if len(self.schema) else None, target)

    def deploy(self, target: Schema, *, allow_destructive: bool = False) -> Plan:
        """Bring the database to ``target``; refuses destructive changes unless allowed."""
        with self.write_engine.begin() as conn:
            self._lock_for_deploy(conn)
            self._reload_in(conn)
            deployed = self.schema if len(self.schema) else None
            plan = plan_changes(deployed, target)
            if plan.destructive and not allow_destructive:
                raise DestructiveChangeError(
                    "deploy refused: destructive changes need --allow-destructive:\n  "
                    + "\n  ".join(c.description for c in plan.destructive),
                    [c.description for c in plan.destructive],
                )
            if not plan:
                return plan
            apply_plan(conn, plan, deployed, target)
            for listener in self.deploy_listeners:
                listener(conn, plan, deployed, target)
            dropped = [deployed.object(c.object_name) for c in plan.changes
                       if deployed is not None and c.kind == "drop_table"]
            self._retire_prefixes(conn, {obj.key_prefix for obj in dropped if obj is not None})
            specs_table = self.system["il_schema"]
            now = utcnow()
            conn.execute(specs_table.delete())
            conn.execute(specs_table.insert(), [
                {"object_name": obj.name, "spec_json": json.dumps(object_to_spec(obj), sort_keys=True),
                 "deployed_at": now}
                for obj in target
            ])
        self._install_schema(Schema(list(target), version=now.isoformat()))
        return plan

    def retired_prefixes(self) -> set[str]:
        """Key prefixes of dropped objects: never handed to a new object, so old ids stay unambiguous."""
        raw = self.kv_get(_RETIRED_PREFIXES_KEY)
        return set(json.loads(raw)) if raw else set()

    def _retire_prefixes(self, conn: Connection, prefixes: set[str]) -> None:
        if not prefixes:
            return
        table = self.system["il_kv"]
        raw = conn.execute(select(table.c.value).where(table.c.key == _RETIRED_PREFIXES_KEY)).scalar()
        retired = set(json.loads(bytes(raw))) if raw is not None else set()
        self.kv_put(conn, _RETIRED_PREFIXES_KEY, json.dumps(sorted(retired | prefixes)).encode())

    def _reload_in(self, conn: Connection) -> None:
        specs_table = self.system["il_schema"]
        rows = conn.execute(select(specs_table.c.spec_json, specs_table.c.deployed_at,
                                   specs_table.c.object_name)).all()
        objects = [build_object(json.loads(r.spec_json), f"deployed:{r.object_name}") for r in rows]
        version = max((r.deployed_at.isoformat() for r in rows), default="")
        self._install_schema(Schema(objects, version=version))

    def _lock_for_deploy(self, conn: Connection) -> None:
        if self.backend == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_DEPLOY_LOCK_ID})")
        # SQLite: BEGIN IMMEDIATE already holds the database write lock.

    # -- bulk inserts --------------------------------------------------------------------------------------------

    def insert_rows(self, conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
        """INSERT ``rows`` (dicts by column name; a missing key is NULL) with one DBAPI ``executemany``.

        Values go through the same bind processors SQLAlchemy would apply, so what is stored is identical;
        skipping SQLAlchemy's per-row parameter building roughly halves the cost of a large insert. A unique
        violation raises SQLAlchemy's IntegrityError, as ``conn.execute`` would.
        """
        plan = self._plan_many(conn, (table,), lambda: table.insert(), lambda name: name)
        self._run_many(conn, plan, rows)

    def update_rows(self, conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
        """UPDATE ``rows`` by their ``Id``: one DBAPI ``executemany`` per distinct set of columns (as above)."""
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in rows:
            groups.setdefault(tuple(sorted(k for k in row if k != "Id")), []).append(row)
        for columns, group in groups.items():
            if columns:
                plan = self._plan_many(
                    conn, (table, columns),
                    lambda cols=columns: table.update().where(table.c.Id == bindparam("il_key"))  # type: ignore[misc]
                    .values({c: bindparam(f"il_{c}") for c in cols}),
                    lambda name: "Id" if name == "il_key" else name[3:])
                self._run_many(conn, plan, group)

    def _plan_many(self, conn: Connection, key: tuple[Any, ...], build: Any, source: Any) -> _ManyPlan:
        """The compiled SQL of a statement run with ``executemany``: bind names, row keys, value processors."""
        cache_key = (id(conn.dialect), *key)
        plan = self._many_plans.get(cache_key)
        if plan is None:
            compiled = build().compile(dialect=conn.dialect)
            names = list(compiled.positiontup or ()) if compiled.positional else list(compiled.binds)
            processors = compiled._bind_processors
            plan = _ManyPlan(str(compiled), compiled.positional, names, [source(n) for n in names],
                             [(i, processors[n]) for i, n in enumerate(names) if processors.get(n) is not None])
            self._many_plans[cache_key] = plan
        return plan

    @staticmethod
    def _run_many(conn: Connection, plan: _ManyPlan, rows: list[dict[str, Any]]) -> None:
        params: list[Any] = []
        for row in rows:
            values = list(map(row.get, plan.sources))
            for index, process in plan.converted:
                values[index] = process(values[index])
            params.append(values if plan.positional else dict(zip(plan.names, values, strict=True)))
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(plan.sql, params)
        except conn.dialect.loaded_dbapi.IntegrityError as exc:
            raise IntegrityError(plan.sql, None, exc) from None
        finally:
            cursor.close()

    # -- small key/value space for org-level state -------------------------------------------------------------

    def kv_get(self, key: str) -> bytes | None:
        table = self.system["il_kv"]
        with self.read() as conn:
            value = conn.execute(select(table.c.value).where(table.c.key == key)).scalar()
        return bytes(value) if value is not None else None

    def kv_put(self, conn: Connection, key: str, value: bytes) -> None:
        table = self.system["il_kv"]
        updated = conn.execute(table.update().where(table.c.key == key).values(value=value)).rowcount
        if not updated:
            conn.execute(table.insert().values(key=key, value=value))
