"""The SQL sink: upsert message bodies into a table by key columns (SQLite, PostgreSQL, MySQL).

Each body's keys that are columns of the table are written (others are ignored); a row whose body lacks a key
column is refused. Rows are upserted with the dialect's native statement (SQLAlchemy Core)::

    INSERT INTO t (k, a, b) VALUES (...) ON CONFLICT (k) DO UPDATE SET a = excluded.a, b = excluded.b

(``ON DUPLICATE KEY UPDATE`` on MySQL), so only the columns a message carries are updated: a partial body
never blanks the others (when such an upsert fails on a NOT NULL column the body lacks, an existing row is
updated with a plain ``UPDATE`` instead). The key columns need a primary key or unique constraint. With
``columns`` set (name -> type) the table is created when missing, with the keys as its primary key.

A batch goes in one transaction, as one ``executemany`` per shape of row. If it fails on bad data (a
constraint violation, a value of the wrong type), it is rolled back and retried row by row, so that the bad row
alone is reported — permanent, with the database's message — and the others are written. Lost connections,
locks and timeouts (``OperationalError``) are retryable for the whole batch.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from interlink.middleware.base import Delivery, Message, PipelineSpecError, Sink
from interlink.middleware.sources import require, sqlalchemy_url, with_connection

COLUMN_TYPES: dict[str, Any] = {
    "string": sa.String(255), "text": sa.Text, "integer": sa.Integer, "int": sa.Integer, "bigint": sa.BigInteger,
    "float": sa.Float, "double": sa.Float, "numeric": sa.Numeric(18, 6), "decimal": sa.Numeric(18, 6),
    "boolean": sa.Boolean, "date": sa.Date, "datetime": sa.DateTime, "timestamp": sa.DateTime(timezone=True),
    "json": sa.JSON,
}

# Errors that are about the data of a row (a retry of the same row cannot succeed).
_DATA_ERRORS = (sa.exc.IntegrityError, sa.exc.DataError, sa.exc.ProgrammingError, sa.exc.StatementError)


def _column_type(name: str, spec: Any) -> Any:
    kind = str(spec).lower()
    if kind not in COLUMN_TYPES:
        raise PipelineSpecError(f"sql sink: column {name!r} has unknown type {spec!r} "
                                f"({', '.join(sorted(COLUMN_TYPES))})")
    return COLUMN_TYPES[kind]


def _error_text(exc: Exception) -> str:
    original = getattr(exc, "orig", None)
    return str(original if original is not None else exc).strip().splitlines()[0]


class SqlSink(Sink):
    """Upserts into one table (see the module docstring)."""

    name = "sql"

    def __init__(self, *, url: str, table: str, keys: Sequence[str], schema: str | None = None,
                 columns: Mapping[str, Any] | None = None, engine: Engine | None = None) -> None:
        if not keys:
            raise PipelineSpecError("sql sink: 'keys' needs at least one key column")
        self.url = url
        self.table_name = table
        self.schema = schema
        self.keys = list(keys)
        self.columns = dict(columns or {})
        self.engine = engine
        self._owns_engine = engine is None
        self.table: sa.Table | None = None

    def _connect(self) -> sa.Table:
        if self.table is not None:
            return self.table
        if self.engine is None:
            self.engine = sa.create_engine(self.url, pool_pre_ping=True)
        if self.engine.dialect.name not in ("sqlite", "postgresql", "mysql", "mariadb"):
            raise PipelineSpecError(f"sql sink: upsert is not supported on {self.engine.dialect.name}")
        metadata = sa.MetaData()
        if self.columns:
            missing = [key for key in self.keys if key not in self.columns]
            if missing:
                raise PipelineSpecError(f"sql sink: key columns {missing} are not in 'columns'")
            table = sa.Table(self.table_name, metadata,
                             *(sa.Column(name, _column_type(name, kind), primary_key=name in self.keys)
                               for name, kind in self.columns.items()), schema=self.schema)
            metadata.create_all(self.engine, tables=[table], checkfirst=True)
        table = sa.Table(self.table_name, sa.MetaData(), schema=self.schema, autoload_with=self.engine)
        missing = [key for key in self.keys if key not in table.c]
        if missing:
            raise PipelineSpecError(f"sql sink: key columns {missing} are not in table {self.table_name}")
        self.table = table
        return table

    def _row(self, table: sa.Table, body: Mapping[str, Any]) -> dict[str, Any]:
        row: dict[str, Any] = {}
        for name, value in body.items():
            if name not in table.c:
                continue
            column = table.c[name]
            try:
                python_type = column.type.python_type
            except NotImplementedError:
                python_type = object
            if isinstance(value, str) and python_type in (dt.datetime, dt.date, dt.time):
                value = python_type.fromisoformat(value.replace("Z", "+00:00"))
            elif isinstance(value, dict | list) and not isinstance(column.type, sa.JSON):
                value = json.dumps(value)
            row[name] = value
        missing = [key for key in self.keys if row.get(key) is None]
        if missing:
            raise ValueError(f"the message has no value for key column(s) {', '.join(missing)}")
        return row

    def _upsert(self, table: sa.Table, names: Sequence[str]) -> Any:
        dialect = self.engine.dialect.name if self.engine is not None else ""
        updates = [name for name in names if name not in self.keys]
        if dialect in ("mysql", "mariadb"):
            from sqlalchemy.dialects.mysql import insert as mysql_insert

            statement = mysql_insert(table)
            targets = updates or self.keys[:1]  # a no-op update keeps "insert or leave" semantics
            return statement.on_duplicate_key_update({name: statement.inserted[name] for name in targets})
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        statement = dialect_insert(table)
        if not updates:
            return statement.on_conflict_do_nothing(index_elements=self.keys)
        return statement.on_conflict_do_update(index_elements=self.keys,
                                               set_={name: statement.excluded[name] for name in updates})

    def _execute(self, conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
        shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in rows:
            shapes.setdefault(tuple(sorted(row)), []).append(row)
        for names, group in shapes.items():
            conn.execute(self._upsert(table, names), group)

    def write(self, messages: Sequence[Message]) -> list[Delivery]:
        """Upsert the batch; on a data error, row by row so that only the bad rows fail."""
        if not messages:
            return []
        try:
            table = self._connect()
        except sa.exc.OperationalError as exc:
            return [Delivery(error=f"cannot reach the database: {_error_text(exc)}") for _ in messages]
        deliveries: list[Delivery | None] = [None] * len(messages)
        rows: list[tuple[int, dict[str, Any]]] = []
        for index, message in enumerate(messages):
            try:
                rows.append((index, self._row(table, message.body)))
            except ValueError as exc:
                deliveries[index] = Delivery(error=str(exc), retryable=False)
        assert self.engine is not None
        try:
            with self.engine.begin() as conn:
                self._execute(conn, table, [row for _, row in rows])
        except sa.exc.OperationalError as exc:
            for index, _ in rows:
                deliveries[index] = Delivery(error=f"database unavailable: {_error_text(exc)}", retryable=True)
        except _DATA_ERRORS:
            self._write_one_by_one(table, rows, deliveries)
        else:
            for index, row in rows:
                deliveries[index] = Delivery(detail={key: row[key] for key in self.keys})
        return [delivery or Delivery(error="not written") for delivery in deliveries]

    def _write_one_by_one(self, table: sa.Table, rows: Sequence[tuple[int, dict[str, Any]]],
                          deliveries: list[Delivery | None]) -> None:
        assert self.engine is not None
        for index, row in rows:
            try:
                with self.engine.begin() as conn:
                    self._execute(conn, table, [row])
            except sa.exc.OperationalError as exc:
                deliveries[index] = Delivery(error=f"database unavailable: {_error_text(exc)}", retryable=True)
            except _DATA_ERRORS as exc:
                if self._update_existing(table, row):
                    deliveries[index] = Delivery(detail={key: row[key] for key in self.keys})
                else:
                    deliveries[index] = Delivery(error=_error_text(exc), retryable=False)
            else:
                deliveries[index] = Delivery(detail={key: row[key] for key in self.keys})

    def _update_existing(self, table: sa.Table, row: dict[str, Any]) -> bool:
        """Update an existing row with a partial body: an upsert checks NOT NULL columns on the row it would
        insert before it finds the conflict, so a body without them fails even when the row exists."""
        updates = {name: value for name, value in row.items() if name not in self.keys}
        if not updates or len(row) == len(table.c):
            return False
        assert self.engine is not None
        statement = table.update().where(*(table.c[key] == row[key] for key in self.keys)).values(updates)
        try:
            with self.engine.begin() as conn:
                return bool(conn.execute(statement).rowcount == 1)
        except sa.exc.SQLAlchemyError:
            return False

    def close(self) -> None:
        """Dispose of the connection pool (when this sink created it)."""
        if self.engine is not None and self._owns_engine:
            self.engine.dispose()
            self.engine = None
            self.table = None


def make_sql_sink(config: dict[str, Any], context: Any) -> SqlSink:
    """Build a SQL sink from its pipeline config (keys in docs/middleware-connectors.md)."""
    config = with_connection(config, context)
    keys = config.get("keys") or config.get("key")
    if isinstance(keys, str):
        keys = [keys]
    return SqlSink(
        url=sqlalchemy_url(str(require(config, "url", "sql sink"))),
        table=str(require(config, "table", "sql sink")),
        schema=config.get("schema"),
        keys=[str(key) for key in keys or []],
        columns=config.get("columns"),
    )


__all__ = ["COLUMN_TYPES", "SqlSink", "make_sql_sink"]
