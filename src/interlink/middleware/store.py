"""The middleware's own durable state: checkpoints, dedupe keys, dead letters, run records and a small key-value area.

It lives in its own database (``<data_dir>/middleware.db`` by default, or PostgreSQL by URL), never in the org's
store: the middleware talks to orgs only over their wire APIs, and a pipeline's state must survive a switch from a
local org to a production one.

Several processes may share one store (``interlink pipelines run`` in two terminals, a worker per pipeline), so
nothing lives only in memory and every change is a transaction:

- a checkpoint carries a version; :meth:`MiddlewareStore.save_checkpoint` is a compare-and-set on it, so a worker
  holding a stale view can never move a checkpoint backwards over another worker's progress;
- :meth:`MiddlewareStore.seen_before` records a dedupe key with an insert-if-absent, so two workers racing on the
  same key agree on which one saw it first; :meth:`MiddlewareStore.record_seen` and
  :meth:`MiddlewareStore.seen_keys` do the same for a whole batch of keys in one transaction.

SQLite write transactions start with ``BEGIN IMMEDIATE`` (writers queue on the lock instead of failing half-way);
PostgreSQL creates the tables under an advisory lock so processes starting together do not trip over each other.

Adding tables: define them on :data:`MIDDLEWARE_METADATA` (created by every :meth:`MiddlewareStore.open`), or
call :meth:`MiddlewareStore.ensure_tables` for tables defined after the store opened; run statements in
:meth:`MiddlewareStore.transaction`.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Double,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from interlink.errors import ConfigurationError
from interlink.middleware.base import CheckpointConflict, Message

#: every middleware table; modules that add tables define them here before a store opens
MIDDLEWARE_METADATA = MetaData()

# Keys longer than this are stored as their SHA-256, so any business key fits the column.
_MAX_KEY = 200
# Keys per IN (...) list of the batch dedupe methods: far below SQLite's limit of bound parameters.
_KEYS_PER_STATEMENT = 500
_CREATE_LOCK_ID = 0x1A7E_3D1E

checkpoint_table = Table(
    "mw_checkpoint", MIDDLEWARE_METADATA,
    Column("pipeline", String(200), primary_key=True),
    Column("source", String(200), primary_key=True),
    Column("position", Text, nullable=True),  # tagged JSON, see encode_json
    Column("version", Integer, nullable=False),
    Column("updated_at", Double, nullable=False),
)

dedupe_table = Table(
    "mw_dedupe", MIDDLEWARE_METADATA,
    Column("scope", String(200), primary_key=True),
    Column("key", String(_MAX_KEY + 10), primary_key=True),
    Column("seen_at", Double, nullable=False),
    Index("ix_mw_dedupe_seen_at", "seen_at"),
)

dead_letter_table = Table(
    "mw_dead_letter", MIDDLEWARE_METADATA,
    Column("id", String(40), primary_key=True),
    Column("pipeline", String(200), nullable=False),
    Column("step", String(200), nullable=False),
    Column("step_index", Integer, nullable=False),
    Column("branch", String(200), nullable=True),
    Column("message", Text, nullable=False),
    Column("error", Text, nullable=False),
    Column("attempts", Text, nullable=False),
    Column("state", String(20), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    Index("ix_mw_dead_letter_pipeline_state", "pipeline", "state"),
)

run_table = Table(
    "mw_run", MIDDLEWARE_METADATA,
    Column("id", String(40), primary_key=True),
    Column("pipeline", String(200), nullable=False),
    Column("started", Double, nullable=False),
    Column("finished", Double, nullable=True),
    Column("read", Integer, nullable=False, default=0),
    Column("written", Integer, nullable=False, default=0),
    Column("failed", Integer, nullable=False, default=0),
    Column("dead", Integer, nullable=False, default=0),
    Column("status", String(20), nullable=False),
    Column("error", Text, nullable=True),
    Index("ix_mw_run_pipeline_started", "pipeline", "started"),
)

kv_table = Table(
    "mw_kv", MIDDLEWARE_METADATA,
    Column("namespace", String(200), primary_key=True),
    Column("key", String(_MAX_KEY + 10), primary_key=True),
    Column("value", Text, nullable=True),
    Column("updated_at", Double, nullable=False),
)

DEAD_LETTER_STATES = ("New", "Replayed", "Discarded")
RUN_STATES = ("Running", "Succeeded", "Failed", "Stopped")


# -- JSON that keeps the Python types sources use in positions and bodies ------------------------------------------

def _tag(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, dt.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, decimal.Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, set | frozenset | tuple):
        return [_tag(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _tag(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_tag(item) for item in value]
    return value


_UNTAG: dict[str, Callable[[str], Any]] = {
    "$bytes": lambda text: base64.b64decode(text),
    "$datetime": dt.datetime.fromisoformat,
    "$date": dt.date.fromisoformat,
    "$decimal": decimal.Decimal,
}


def _untag(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1:
            (key, item), = value.items()
            if key in _UNTAG and isinstance(item, str):
                return _UNTAG[key](item)
        return {key: _untag(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_untag(item) for item in value]
    return value


def encode_json(value: Any) -> str:
    """JSON text for ``value`` that round-trips bytes (Pub/Sub replay ids), datetimes, dates and decimals."""
    return json.dumps(_tag(value), separators=(",", ":"), default=str)


def decode_json(text_value: str | None) -> Any:
    """The inverse of :func:`encode_json` (None for a NULL column)."""
    return None if text_value is None else _untag(json.loads(text_value))


def message_to_dict(message: Message) -> dict[str, Any]:
    """A message's stored shape: body, id, headers, key, position."""
    return {"body": message.body, "id": message.id, "headers": message.headers, "key": message.key,
            "position": message.position}


def message_from_dict(data: dict[str, Any]) -> Message:
    """The message :func:`message_to_dict` stored."""
    return Message(body=dict(data.get("body") or {}), id=str(data.get("id")), headers=dict(data.get("headers") or {}),
                   position=data.get("position"), key=data.get("key"))


def _stored_key(key: str) -> str:
    if len(key) <= _MAX_KEY:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def _stored_keys(keys: Iterable[str]) -> dict[str, list[str]]:
    """Stored key -> the keys given that are stored under it (in order, without repeats)."""
    stored: dict[str, list[str]] = {}
    for key in dict.fromkeys(keys):
        stored.setdefault(_stored_key(key), []).append(key)
    return stored


# -- records ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Checkpoint:
    """Where a pipeline's source resumes, and the version a compare-and-set must name."""

    pipeline: str
    source: str
    position: Any
    version: int
    updated_at: float


@dataclass
class DeadLetter:
    """A message that still failed after its retries, with the step that failed and every attempt."""

    id: str
    pipeline: str
    step: str
    step_index: int
    branch: str | None
    message: Message
    error: str
    attempts: list[dict[str, Any]]
    state: str
    created_at: float
    updated_at: float

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape ``interlink dlq show`` prints."""
        return {"id": self.id, "pipeline": self.pipeline, "step": self.step, "stepIndex": self.step_index,
                "branch": self.branch, "state": self.state, "error": self.error, "attempts": self.attempts,
                "message": _tag(message_to_dict(self.message)), "createdAt": _iso(self.created_at),
                "updatedAt": _iso(self.updated_at)}


@dataclass
class RunRecord:
    """One run of a pipeline and what it did."""

    id: str
    pipeline: str
    started: float
    finished: float | None
    read: int
    written: int
    failed: int
    dead: int
    status: str
    error: str | None = None


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- the store ----------------------------------------------------------------------------------------------------

def _normalize_url(url: str) -> str:
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _sqlite_engine(url: str) -> Engine:
    path = url.split("sqlite:///", 1)[-1] if "sqlite:///" in url else ""
    in_memory = path in ("", ":memory:")
    if not in_memory:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 30}}
    if in_memory:
        # One shared connection, or every checkout would see its own empty database.
        from sqlalchemy.pool import StaticPool

        options["poolclass"] = StaticPool
    engine = create_engine(url, **options)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class MiddlewareStore:
    """Checkpoints, dedupe keys, dead letters, runs and key-value state of the middleware, in SQLite or PostgreSQL.

    ``clock`` (epoch seconds) stamps every row and decides dedupe expiry; tests pass a fake one.
    """

    def __init__(self, url: str, *, clock: Callable[[], float] = time.time) -> None:
        self.url = _normalize_url(url)
        self.clock = clock
        try:
            if self.url.startswith("sqlite"):
                self.backend = "sqlite"
                self.engine = _sqlite_engine(self.url)
            elif self.url.startswith("postgresql"):
                self.backend = "postgresql"
                self.engine = create_engine(self.url, pool_size=5, max_overflow=10, pool_pre_ping=True)
            else:
                raise ConfigurationError(
                    f"unsupported middleware store URL {url!r}: use sqlite:///path or postgresql://…")
        except (ArgumentError, NoSuchModuleError) as exc:
            raise ConfigurationError(f"cannot open middleware store {url!r}: {exc}") from None
        # SQLite serialises writers with BEGIN IMMEDIATE across processes; this lock only spares threads of one
        # process the busy-wait.
        self._lock = threading.RLock() if self.backend == "sqlite" else None

    # -- lifecycle ---------------------------------------------------------------------------------------------

    @classmethod
    def open_url(cls, url: str, *, clock: Callable[[], float] = time.time) -> MiddlewareStore:
        """Connect to ``url`` and create the middleware tables when missing."""
        store = cls(url, clock=clock)
        store.open()
        return store

    def open(self) -> None:
        """Create every table of :data:`MIDDLEWARE_METADATA` that does not exist yet."""
        self.ensure_tables(MIDDLEWARE_METADATA.tables.values())

    def ensure_tables(self, tables: Iterable[Table]) -> None:
        """Create ``tables`` (defined on :data:`MIDDLEWARE_METADATA`) when missing; safe with several processes."""
        chosen = list(tables)
        try:
            with self.transaction() as conn:
                if self.backend == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _CREATE_LOCK_ID})
                MIDDLEWARE_METADATA.create_all(conn, tables=chosen, checkfirst=True)
        except OperationalError as exc:
            raise ConfigurationError(f"cannot open middleware store {self.url}: {exc.orig}") from None

    def close(self) -> None:
        """Release the connections."""
        self.engine.dispose()

    def __enter__(self) -> MiddlewareStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction (committed on success, rolled back on error); for tables other modules add."""
        if self._lock is None:
            with self.engine.begin() as conn:
                yield conn
            return
        with self._lock, self.engine.begin() as conn:
            yield conn

    # -- checkpoints -------------------------------------------------------------------------------------------

    def load_checkpoint(self, pipeline: str, source: str = "source") -> Checkpoint | None:
        """The stored checkpoint of ``pipeline``'s ``source``, or None before its first commit."""
        with self.transaction() as conn:
            row = conn.execute(select(checkpoint_table).where(
                checkpoint_table.c.pipeline == pipeline, checkpoint_table.c.source == source)).first()
        if row is None:
            return None
        return Checkpoint(row.pipeline, row.source, decode_json(row.position), row.version, row.updated_at)

    def save_checkpoint(self, pipeline: str, position: Any, *, expected_version: int,
                        source: str = "source") -> int:
        """Store ``position`` if the checkpoint still has ``expected_version`` (0: none yet); answer the new version.

        Raises :class:`CheckpointConflict` when another worker stored a checkpoint in between.
        """
        now = self.clock()
        encoded = encode_json(position)
        with self.transaction() as conn:
            if expected_version == 0:
                if self._insert_if_absent(conn, checkpoint_table, {
                        "pipeline": pipeline, "source": source, "position": encoded, "version": 1,
                        "updated_at": now}):
                    return 1
            else:
                moved = conn.execute(update(checkpoint_table).where(
                    checkpoint_table.c.pipeline == pipeline, checkpoint_table.c.source == source,
                    checkpoint_table.c.version == expected_version,
                ).values(position=encoded, version=expected_version + 1, updated_at=now)).rowcount
                if moved == 1:
                    return expected_version + 1
        current = self.load_checkpoint(pipeline, source)
        raise CheckpointConflict(
            f"checkpoint of pipeline {pipeline!r} ({source}) is at version "
            f"{current.version if current else 0}, not {expected_version}: another worker runs this pipeline")

    def delete_checkpoint(self, pipeline: str, source: str | None = None) -> int:
        """Forget ``pipeline``'s checkpoint(s), so the next run starts where its source starts."""
        query = delete(checkpoint_table).where(checkpoint_table.c.pipeline == pipeline)
        if source is not None:
            query = query.where(checkpoint_table.c.source == source)
        with self.transaction() as conn:
            return int(conn.execute(query).rowcount)

    # -- dedupe ------------------------------------------------------------------------------------------------

    def seen_before(self, scope: str, key: str, retention_seconds: float) -> bool:
        """Whether ``key`` was recorded in ``scope`` within ``retention_seconds``; records it (now) if not.

        Atomic: of two workers asking about a new key at once, exactly one is told False.
        """
        now = self.clock()
        stored = _stored_key(key)
        with self.transaction() as conn:
            if self._insert_if_absent(conn, dedupe_table, {"scope": scope, "key": stored, "seen_at": now}):
                return False
            # Present: an expired entry counts as new (and restarts its retention).
            refreshed = conn.execute(update(dedupe_table).where(
                dedupe_table.c.scope == scope, dedupe_table.c.key == stored,
                dedupe_table.c.seen_at < now - retention_seconds,
            ).values(seen_at=now)).rowcount
            return refreshed == 0

    def is_seen(self, scope: str, key: str, retention_seconds: float) -> bool:
        """Whether ``key`` was recorded in ``scope`` within ``retention_seconds``, without recording it."""
        now = self.clock()
        with self.transaction() as conn:
            seen_at = conn.execute(select(dedupe_table.c.seen_at).where(
                dedupe_table.c.scope == scope, dedupe_table.c.key == _stored_key(key))).scalar()
        return seen_at is not None and seen_at >= now - retention_seconds

    def seen_keys(self, scope: str, keys: Iterable[str], retention_seconds: float) -> set[str]:
        """The keys among ``keys`` recorded in ``scope`` within ``retention_seconds``, without recording any: the
        batch form of :meth:`is_seen`, in one transaction."""
        wanted = _stored_keys(keys)
        if not wanted:
            return set()
        cutoff = self.clock() - retention_seconds
        found: set[str] = set()
        stored = list(wanted)
        with self.transaction() as conn:
            for start in range(0, len(stored), _KEYS_PER_STATEMENT):
                chunk = stored[start:start + _KEYS_PER_STATEMENT]
                found.update(conn.execute(select(dedupe_table.c.key).where(
                    dedupe_table.c.scope == scope, dedupe_table.c.key.in_(chunk),
                    dedupe_table.c.seen_at >= cutoff)).scalars())
        return {key for stored_key in found for key in wanted[stored_key]}

    def record_seen(self, scope: str, keys: Iterable[str], retention_seconds: float) -> set[str]:
        """Record ``keys`` in ``scope`` as :meth:`seen_before` does for each (new or expired keys are stamped now,
        keys seen within ``retention_seconds`` keep their time), in one transaction; answer the keys that were seen
        within ``retention_seconds`` already.

        Atomic like :meth:`seen_before`: of two workers recording the same new key at once, exactly one is told it
        was new.
        """
        wanted = _stored_keys(keys)
        if not wanted:
            return set()
        now = self.clock()
        fresh: set[str] = set()  # inserted now, or expired and restamped
        # In key order, so workers recording overlapping batches take the row locks in the same order (PostgreSQL
        # would otherwise deadlock two of them).
        stored = sorted(wanted)
        dialect = pg_dialect if self.backend == "postgresql" else sqlite_dialect
        # One statement compiled once, executed for every key (SQLAlchemy batches the rows into multi-row INSERTs);
        # RETURNING names the keys actually inserted.
        insert_new = dialect.insert(dedupe_table).on_conflict_do_nothing().returning(dedupe_table.c.key)
        with self.transaction() as conn:
            inserted = set(conn.execute(insert_new, [{"scope": scope, "key": key, "seen_at": now}
                                                     for key in stored]).scalars())
            present = [key for key in stored if key not in inserted]
            for start in range(0, len(present), _KEYS_PER_STATEMENT):
                # Present: an expired entry counts as new (and restarts its retention).
                fresh.update(conn.execute(update(dedupe_table).where(
                    dedupe_table.c.scope == scope, dedupe_table.c.key.in_(present[start:start + _KEYS_PER_STATEMENT]),
                    dedupe_table.c.seen_at < now - retention_seconds,
                ).values(seen_at=now).returning(dedupe_table.c.key)).scalars())
            fresh.update(inserted)
        return {key for stored_key in stored if stored_key not in fresh for key in wanted[stored_key]}

    def purge(self, older_than: float, scope: str | None = None) -> int:
        """Delete dedupe keys recorded more than ``older_than`` seconds ago (in ``scope``, or all); answer how many."""
        query = delete(dedupe_table).where(dedupe_table.c.seen_at < self.clock() - older_than)
        if scope is not None:
            query = query.where(dedupe_table.c.scope == scope)
        with self.transaction() as conn:
            return int(conn.execute(query).rowcount)

    def _insert_if_absent(self, conn: Connection, table: Table, values: dict[str, Any]) -> bool:
        dialect = pg_dialect if self.backend == "postgresql" else sqlite_dialect
        # RETURNING, not rowcount: psycopg reports -1 for an INSERT ... ON CONFLICT through SQLAlchemy.
        key_column = next(iter(table.primary_key.columns))
        statement = dialect.insert(table).values(**values).on_conflict_do_nothing().returning(key_column)
        return conn.execute(statement).first() is not None

    # -- dead letters ------------------------------------------------------------------------------------------

    def add_dead_letter(self, pipeline: str, step: str, message: Message, error: str,
                        attempts: list[dict[str, Any]], *, step_index: int, branch: str | None = None) -> str:
        """Store a message that failed for good; answer its id."""
        now = self.clock()
        letter_id = uuid.uuid4().hex
        with self.transaction() as conn:
            conn.execute(insert(dead_letter_table).values(
                id=letter_id, pipeline=pipeline, step=step, step_index=step_index, branch=branch,
                message=encode_json(message_to_dict(message)), error=error, attempts=encode_json(attempts),
                state="New", created_at=now, updated_at=now))
        return letter_id

    def dead_letter(self, letter_id: str) -> DeadLetter | None:
        """One dead letter by id (a unique prefix of at least 6 characters also works)."""
        with self.transaction() as conn:
            row = conn.execute(select(dead_letter_table).where(dead_letter_table.c.id == letter_id)).first()
            if row is None and len(letter_id) >= 6:
                rows = conn.execute(select(dead_letter_table).where(
                    dead_letter_table.c.id.startswith(letter_id, autoescape=True)).limit(2)).all()
                row = rows[0] if len(rows) == 1 else None
        return None if row is None else self._dead_letter(row)

    def dead_letters(self, pipeline: str | None = None, state: str | None = "New", limit: int = 100,
                     offset: int = 0) -> list[DeadLetter]:
        """Dead letters, oldest first, of one pipeline or all, in one state (None: any)."""
        query = select(dead_letter_table).order_by(dead_letter_table.c.created_at, dead_letter_table.c.id)
        if pipeline is not None:
            query = query.where(dead_letter_table.c.pipeline == pipeline)
        if state is not None:
            query = query.where(dead_letter_table.c.state == state)
        with self.transaction() as conn:
            rows = conn.execute(query.limit(limit).offset(offset)).all()
        return [self._dead_letter(row) for row in rows]

    def count_dead_letters(self, pipeline: str | None = None, state: str | None = "New") -> int:
        """How many dead letters one pipeline (or all) has in ``state`` (None: any)."""
        query = select(func.count()).select_from(dead_letter_table)
        if pipeline is not None:
            query = query.where(dead_letter_table.c.pipeline == pipeline)
        if state is not None:
            query = query.where(dead_letter_table.c.state == state)
        with self.transaction() as conn:
            return int(conn.execute(query).scalar() or 0)

    def set_dead_letter_state(self, letter_ids: Iterable[str], state: str, *, only_from: str | None = "New") -> int:
        """Move dead letters to ``state`` (Replayed, Discarded, New); answer how many changed."""
        if state not in DEAD_LETTER_STATES:
            raise ValueError(f"dead-letter state is one of {', '.join(DEAD_LETTER_STATES)}, not {state!r}")
        ids = list(letter_ids)
        if not ids:
            return 0
        query = update(dead_letter_table).where(dead_letter_table.c.id.in_(ids))
        if only_from is not None:
            query = query.where(dead_letter_table.c.state == only_from)
        with self.transaction() as conn:
            return int(conn.execute(query.values(state=state, updated_at=self.clock())).rowcount)

    def record_dead_letter_failure(self, letter_id: str, step: str, step_index: int, branch: str | None,
                                   error: str, attempts: list[dict[str, Any]]) -> None:
        """A replay failed again: keep the letter New, with the new failing step, error and attempts appended."""
        with self.transaction() as conn:
            previous = conn.execute(select(dead_letter_table.c.attempts).where(
                dead_letter_table.c.id == letter_id)).scalar()
            history = (decode_json(previous) or []) + attempts
            conn.execute(update(dead_letter_table).where(dead_letter_table.c.id == letter_id).values(
                step=step, step_index=step_index, branch=branch, error=error, attempts=encode_json(history),
                state="New", updated_at=self.clock()))

    @staticmethod
    def _dead_letter(row: Any) -> DeadLetter:
        return DeadLetter(id=row.id, pipeline=row.pipeline, step=row.step, step_index=row.step_index,
                          branch=row.branch, message=message_from_dict(decode_json(row.message)), error=row.error,
                          attempts=decode_json(row.attempts) or [], state=row.state, created_at=row.created_at,
                          updated_at=row.updated_at)

    # -- runs --------------------------------------------------------------------------------------------------

    def start_run(self, pipeline: str) -> str:
        """Record that a run of ``pipeline`` started; answer its id."""
        run_id = uuid.uuid4().hex
        with self.transaction() as conn:
            conn.execute(insert(run_table).values(id=run_id, pipeline=pipeline, started=self.clock(), read=0,
                                                  written=0, failed=0, dead=0, status="Running"))
        return run_id

    def update_run(self, run_id: str, *, read: int, written: int, failed: int, dead: int,
                   status: str | None = None, error: str | None = None) -> None:
        """Store a run's counts so far; with a final ``status`` (Succeeded, Failed, Stopped) it is finished."""
        values: dict[str, Any] = {"read": read, "written": written, "failed": failed, "dead": dead}
        if status is not None:
            if status not in RUN_STATES:
                raise ValueError(f"run status is one of {', '.join(RUN_STATES)}, not {status!r}")
            values["status"] = status
            if status != "Running":
                values["finished"] = self.clock()
        if error is not None:
            values["error"] = error
        with self.transaction() as conn:
            conn.execute(update(run_table).where(run_table.c.id == run_id).values(**values))

    def runs(self, pipeline: str | None = None, limit: int = 20) -> list[RunRecord]:
        """Runs, newest first."""
        query = select(run_table).order_by(run_table.c.started.desc()).limit(limit)
        if pipeline is not None:
            query = query.where(run_table.c.pipeline == pipeline)
        with self.transaction() as conn:
            rows = conn.execute(query).all()
        return [RunRecord(id=row.id, pipeline=row.pipeline, started=row.started, finished=row.finished,
                          read=row.read, written=row.written, failed=row.failed, dead=row.dead, status=row.status,
                          error=row.error) for row in rows]

    # -- key-value ---------------------------------------------------------------------------------------------

    def kv_get(self, namespace: str, key: str, default: Any = None) -> Any:
        """The value stored under ``namespace``/``key``, or ``default``."""
        with self.transaction() as conn:
            row = conn.execute(select(kv_table.c.value).where(
                kv_table.c.namespace == namespace, kv_table.c.key == _stored_key(key))).first()
        return default if row is None else decode_json(row.value)

    def kv_set(self, namespace: str, key: str, value: Any) -> None:
        """Store ``value`` (anything :func:`encode_json` takes) under ``namespace``/``key``."""
        stored, encoded, now = _stored_key(key), encode_json(value), self.clock()
        with self.transaction() as conn:
            if not self._insert_if_absent(conn, kv_table, {"namespace": namespace, "key": stored, "value": encoded,
                                                           "updated_at": now}):
                conn.execute(update(kv_table).where(kv_table.c.namespace == namespace, kv_table.c.key == stored)
                             .values(value=encoded, updated_at=now))

    def kv_delete(self, namespace: str, key: str) -> bool:
        """Remove ``namespace``/``key``; answer whether it existed."""
        with self.transaction() as conn:
            return conn.execute(delete(kv_table).where(
                kv_table.c.namespace == namespace, kv_table.c.key == _stored_key(key))).rowcount == 1

    def kv_items(self, namespace: str) -> dict[str, Any]:
        """Every key and value of ``namespace``."""
        with self.transaction() as conn:
            rows = conn.execute(select(kv_table.c.key, kv_table.c.value).where(
                kv_table.c.namespace == namespace).order_by(kv_table.c.key)).all()
        return {row.key: decode_json(row.value) for row in rows}


def open_middleware_store(settings: Any, *, clock: Callable[[], float] = time.time) -> MiddlewareStore:
    """The middleware store ``settings`` name (``middleware_store``, or ``<data_dir>/middleware.db``), opened."""
    return MiddlewareStore.open_url(settings.middleware_store_url, clock=clock)


__all__ = [
    "MIDDLEWARE_METADATA",
    "Checkpoint",
    "CheckpointConflict",
    "DeadLetter",
    "MiddlewareStore",
    "RunRecord",
    "decode_json",
    "encode_json",
    "message_from_dict",
    "message_to_dict",
    "open_middleware_store",
]
