"""Noticing changes made outside the write path, so CDC can send GAP events for them.

Each table of an object selected for Change Data Capture gets row triggers that log every insert, update and
delete into ``il_external_change``. The write path deletes the rows its own transaction logged before it
commits (it describes those changes with real change events). Whatever is left was written by something else,
such as SQL typed into the store or another tool, and becomes ``GAP_CREATE`` / ``GAP_UPDATE`` / ``GAP_DELETE``
events (see ``records/events.py``).

The triggers use plain SQL that any connection can run, so a foreign tool's writes are logged too. On
PostgreSQL each row carries the writing transaction's id, so the write path removes exactly its own rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Connection, text

from interlink.store.database import Store

TRIGGER_PREFIX = "il_cdc_"
_OPERATIONS = ("insert", "update", "delete")
_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION il_log_external_change() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO il_external_change (object_name, record_id, operation, txid)
        VALUES (TG_ARGV[0], OLD."Id", 'delete', txid_current());
        RETURN OLD;
    END IF;
    INSERT INTO il_external_change (object_name, record_id, operation, txid)
    VALUES (TG_ARGV[0], NEW."Id", lower(TG_OP), txid_current());
    RETURN NEW;
END $$ LANGUAGE plpgsql
"""


def _trigger_name(object_name: str) -> str:
    return f"{TRIGGER_PREFIX}{object_name.lower()}"


def _existing(conn: Connection, backend: str) -> set[str]:
    if backend == "sqlite":
        rows = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'il_cdc_%'"))
        return {row[0].rsplit("_", 1)[0] for row in rows}
    rows = conn.execute(text("SELECT tgname FROM pg_trigger WHERE tgname LIKE 'il_cdc_%' AND NOT tgisinternal"))
    return {row[0] for row in rows}


def sync_triggers(store: Store, object_names: Iterable[str]) -> None:
    """Make exactly ``object_names`` (objects with a table) carry the change-logging triggers."""
    wanted = {_trigger_name(name): name for name in object_names
              if store.schema.object(name) is not None and store.schema.object(name).is_stored}  # type: ignore[union-attr]
    quote = store.write_engine.dialect.identifier_preparer.quote
    with store.write() as conn:
        existing = _existing(conn, store.backend)
        if store.backend == "postgresql" and set(wanted) - existing:
            conn.execute(text(_PG_FUNCTION))
        for trigger in existing - set(wanted):
            table = _table_of(conn, store.backend, trigger)
            if store.backend == "sqlite":
                for operation in _OPERATIONS:
                    conn.execute(text(f"DROP TRIGGER IF EXISTS {quote(f'{trigger}_{operation}')}"))
            elif table is not None:
                conn.execute(text(f"DROP TRIGGER IF EXISTS {quote(trigger)} ON {quote(table)}"))
        for trigger, name in wanted.items():
            if trigger in existing:
                continue
            literal = name.replace("'", "''")
            if store.backend == "sqlite":
                for operation, row in (("insert", "NEW"), ("update", "NEW"), ("delete", "OLD")):
                    conn.execute(text(
                        f"CREATE TRIGGER {quote(f'{trigger}_{operation}')} AFTER {operation.upper()} ON {quote(name)} "
                        f"BEGIN INSERT INTO il_external_change (object_name, record_id, operation) "
                        f"VALUES ('{literal}', {row}.\"Id\", '{operation}'); END"))
            else:
                conn.execute(text(f"CREATE TRIGGER {quote(trigger)} AFTER INSERT OR UPDATE OR DELETE ON {quote(name)} "
                                  f"FOR EACH ROW EXECUTE FUNCTION il_log_external_change('{literal}')"))


def _table_of(conn: Connection, backend: str, trigger: str) -> str | None:
    if backend == "sqlite":
        return None
    return conn.execute(text("SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                             "WHERE t.tgname = :name"), {"name": trigger}).scalar()


def forget_own_changes(conn: Connection, backend: str, record_ids: Sequence[str]) -> None:
    """Inside a write-path transaction: drop the log rows this transaction's writes produced."""
    if backend == "postgresql":
        conn.execute(text("DELETE FROM il_external_change WHERE txid = txid_current()"))
        return
    # SQLite has one writer at a time: rows for these records logged in this transaction are ours.
    for start in range(0, len(record_ids), 500):
        chunk = list(record_ids[start:start + 500])
        marks = ", ".join(f":r{i}" for i in range(len(chunk)))
        conn.execute(text(f"DELETE FROM il_external_change WHERE record_id IN ({marks})"),
                     {f"r{i}": record_id for i, record_id in enumerate(chunk)})
