"""The SQL source: an incremental extract of a table or query past a compound ``(watermark, id)`` cursor.

Each read asks for the next batch in ``(watermark, id)`` order after the last row handed out::

    SELECT * FROM <table or (query)>
     WHERE wm IS NOT NULL AND (wm > :w OR (wm = :w AND id > :id))
     ORDER BY wm, id LIMIT :batch

A plain ``wm > :w`` cursor skips the rest of a group of rows that share one watermark value when a batch ends in
the middle of the group (a bulk update stamps thousands of rows with one timestamp); ``wm >= :w`` re-reads the
whole group forever. The id breaks the tie, so every row is read exactly once per version.

A row updated during the extract gets a newer watermark and is read again, later in the same run or in the next
one: each message's id is ``<id>@<watermark>`` (one per row version), its key the row id.

Late commits: a row committed *after* the extract passed its watermark, but stamped with an older one (its
transaction started earlier, or its clock lags), is behind the cursor and never read. Setting ``overlap``
(seconds for timestamps, a number for integer watermarks) starts each run that much before the checkpoint, so
such rows are picked up; the rows read twice have the same ``<id>@<watermark>`` id, for ``dedupe`` to drop.

The source is finite per run: :attr:`SqlSource.exhausted` is set once the query returns no rows. Rows with a
NULL watermark are never read.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from interlink.middleware.base import Message, PipelineSpecError, Source
from interlink.middleware.sources import duration, require, sqlalchemy_url, with_connection

_RAW = "interlink_raw_watermark"
_TYPES: dict[type, str] = {dt.datetime: "datetime", dt.date: "date", dt.time: "time", Decimal: "decimal",
                           uuid.UUID: "uuid"}


def encode_value(value: Any) -> tuple[Any, str | None]:
    """A cursor value as (JSON-able value, type tag or None), so a checkpoint round-trips exactly."""
    for kind, tag in _TYPES.items():
        if isinstance(value, kind):
            return (str(value) if tag in ("decimal", "uuid") else value.isoformat()), tag
    if isinstance(value, bytes):
        return base64.b64encode(value).decode(), "bytes"
    return value, None


def decode_value(value: Any, tag: str | None) -> Any:
    """The inverse of :func:`encode_value`."""
    if value is None or tag is None:
        return value
    decoders = {"datetime": dt.datetime.fromisoformat, "date": dt.date.fromisoformat, "time": dt.time.fromisoformat,
                "decimal": Decimal, "uuid": uuid.UUID, "bytes": base64.b64decode}
    if tag not in decoders:
        raise PipelineSpecError(f"sql source: unknown checkpoint type {tag!r}")
    return decoders[tag](value)


def json_value(value: Any) -> Any:
    """A column value as it goes into a message body (JSON-able)."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return base64.b64encode(bytes(value)).decode()
    return value


def step_back(watermark: Any, overlap: float) -> Any:
    """``watermark`` moved ``overlap`` back (seconds for dates and times, units for numbers)."""
    if isinstance(watermark, dt.datetime):
        return watermark - dt.timedelta(seconds=overlap)
    if isinstance(watermark, dt.date):
        return watermark - dt.timedelta(days=max(1, round(overlap / 86400)))
    if isinstance(watermark, int | float | Decimal) and not isinstance(watermark, bool):
        return watermark - type(watermark)(overlap)
    if isinstance(watermark, str):  # a timestamp kept as text (SQLite): step back in the same notation
        try:
            parsed = dt.datetime.fromisoformat(watermark)
        except ValueError:
            raise PipelineSpecError(f"sql source: cannot apply overlap to watermark {watermark!r}") from None
        earlier = parsed - dt.timedelta(seconds=overlap)
        return earlier.isoformat(sep="T" if "T" in watermark else " ",
                                 timespec="microseconds" if "." in watermark else "seconds")
    raise PipelineSpecError(f"sql source: cannot apply overlap to a {type(watermark).__name__} watermark")


class SqlSource(Source):
    """Rows of a table or query, in ``(watermark, id)`` order, from a checkpointed cursor."""

    name = "sql"

    def __init__(self, *, url: str, watermark: str, id_column: str, table: str | None = None,
                 query: str | None = None, schema: str | None = None, batch_size: int = 500,
                 overlap: float | None = None, start: Any = None, engine: Engine | None = None) -> None:
        if bool(table) == bool(query):
            raise PipelineSpecError("sql source: set exactly one of 'table' and 'query'")
        self.url = url
        self.table_name = table
        self.query = query
        self.schema = schema
        self.watermark = watermark
        self.id_column = id_column
        self.batch_size = max(1, batch_size)
        self.overlap = overlap
        self.start = start
        self.engine = engine
        self._owns_engine = engine is None
        self._source: sa.FromClause | None = None
        # The cursor: the (watermark, id) of the last row handed out; id None means "from watermark inclusive".
        self._cursor_watermark: Any = None
        self._cursor_id: Any = None
        self._raw = False  # compare the watermark as the stored text (SQLite dates and timestamps)

    def open(self, checkpoint: Any | None) -> None:
        """Connect, and place the cursor after ``checkpoint`` (less the overlap), or at ``start``."""
        if self.engine is None:
            self.engine = sa.create_engine(self.url, pool_pre_ping=True)
        if self.table_name:
            self._source = sa.Table(self.table_name, sa.MetaData(), schema=self.schema, autoload_with=self.engine)
        else:
            self._source = sa.text(str(self.query)).columns(
                sa.column(self.watermark), sa.column(self.id_column)).subquery("interlink_extract")
        for column in (self.watermark, self.id_column):
            if column not in self._source.c:
                raise PipelineSpecError(f"sql source: column {column!r} is not in {self.table_name or 'the query'}")
        # SQLite keeps dates and timestamps as text in whatever notation wrote them ('2026-01-01 10:00:00'), while a
        # bound datetime is written '2026-01-01 10:00:00.000000': compared as text those differ, and the cursor
        # would skip the rest of a group sharing a timestamp. There, the cursor holds and compares the stored text.
        self._raw = self.engine.dialect.name == "sqlite" and isinstance(
            self._source.c[self.watermark].type, sa.DateTime | sa.Date)
        if checkpoint:
            self._cursor_watermark = decode_value(checkpoint.get("watermark"), checkpoint.get("watermarkType"))
            if self._raw and isinstance(self._cursor_watermark, dt.date):  # a checkpoint from before raw cursors
                self._cursor_watermark = self._cursor_watermark.isoformat(sep=" ") if isinstance(
                    self._cursor_watermark, dt.datetime) else self._cursor_watermark.isoformat()
            self._cursor_id = decode_value(checkpoint.get("id"), checkpoint.get("idType"))
            if self.overlap and self._cursor_watermark is not None:
                self._cursor_watermark = step_back(self._cursor_watermark, self.overlap)
                self._cursor_id = None
        elif self.start is not None:
            self._cursor_watermark, self._cursor_id = self._typed(self.start), None
        self.exhausted = False

    def _typed(self, value: Any) -> Any:
        """A configured watermark (YAML gives text or numbers) as the watermark column's Python type."""
        assert self._source is not None
        if self._raw:
            return str(value).replace("T", " ") if isinstance(value, str) else value
        try:
            python_type = self._source.c[self.watermark].type.python_type
        except NotImplementedError:  # an untyped query column: compare as given
            return value
        if isinstance(value, str) and python_type in (dt.datetime, dt.date):
            return python_type.fromisoformat(value)
        return value

    def _statement(self, limit: int) -> sa.Select[Any]:
        assert self._source is not None
        wm, key = self._source.c[self.watermark], self._source.c[self.id_column]
        if self.table_name:
            statement = sa.select(self._source)
        else:  # every column of the query, whatever it selects
            statement = sa.select(sa.literal_column("*")).select_from(self._source)
        if self._raw:
            wm = sa.type_coerce(wm, sa.String())  # type: ignore[assignment]
            statement = statement.add_columns(wm.label(_RAW))
        statement = statement.where(wm.is_not(None))
        if self._cursor_watermark is not None:
            if self._cursor_id is None:
                statement = statement.where(wm >= self._cursor_watermark)
            else:
                statement = statement.where(sa.or_(wm > self._cursor_watermark,
                                                   sa.and_(wm == self._cursor_watermark, key > self._cursor_id)))
        return statement.order_by(wm, key).limit(limit)

    def read(self, max_messages: int, timeout: float) -> list[Message]:
        """The next rows after the cursor; [] (and :attr:`exhausted`) when there are none."""
        if self.engine is None or self._source is None:
            raise RuntimeError("sql source is not open")
        with self.engine.connect() as conn:
            rows = conn.execute(self._statement(max(1, min(max_messages, self.batch_size)))).mappings().all()
        if not rows:
            self.exhausted = True
            return []
        self.exhausted = False
        messages = []
        for row in rows:
            watermark, row_id = row[_RAW] if self._raw else row[self.watermark], row[self.id_column]
            self._cursor_watermark, self._cursor_id = watermark, row_id
            encoded_wm, wm_type = encode_value(watermark)
            encoded_id, id_type = encode_value(row_id)
            position: dict[str, Any] = {"watermark": encoded_wm, "id": encoded_id}
            if wm_type:
                position["watermarkType"] = wm_type
            if id_type:
                position["idType"] = id_type
            body = {str(column): json_value(value) for column, value in row.items() if column != _RAW}
            messages.append(Message(body=body, id=f"{encoded_id}@{encoded_wm}", key=str(encoded_id),
                                    headers={"source": self.table_name or "query", "watermark": encoded_wm},
                                    position=position))
        return messages

    def close(self) -> None:
        """Dispose of the connection pool (when this source created it)."""
        if self.engine is not None and self._owns_engine:
            self.engine.dispose()
            self.engine = None


def make_sql_source(config: dict[str, Any], context: Any) -> SqlSource:
    """Build a SQL source from its pipeline config (keys in docs/middleware-connectors.md)."""
    config = with_connection(config, context)
    return SqlSource(
        url=sqlalchemy_url(str(require(config, "url", "sql source"))),
        table=config.get("table"),
        query=config.get("query"),
        schema=config.get("schema"),
        watermark=str(require(config, "watermark", "sql source")),
        id_column=str(config.get("id", "id")),
        batch_size=int(config.get("batchSize", 500)),
        overlap=duration(config, "overlap", None) or None,
        start=config.get("start"),
    )


__all__ = ["SqlSource", "decode_value", "encode_value", "json_value", "make_sql_source", "step_back"]
