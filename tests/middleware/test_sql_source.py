"""The SQL source at the watermark boundary, on SQLite and PostgreSQL: shared timestamps across batches, rows
updated during the extract, restarts mid-extract, late commits and the overlap window."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa

from interlink.middleware.base import Message
from interlink.middleware.sources.sql import SqlSource, make_sql_source
from interlink.testing import postgres_database

T0 = dt.datetime(2024, 5, 1, 9, 0, 0, 123456)
T1 = dt.datetime(2024, 5, 1, 9, 0, 1, 500000)
T2 = dt.datetime(2024, 5, 1, 9, 0, 2)
T9 = dt.datetime(2024, 5, 1, 10, 0, 0)

metadata = sa.MetaData()
events = sa.Table("events", metadata,
                  sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                  sa.Column("updated_at", sa.DateTime),
                  sa.Column("version", sa.Integer),
                  sa.Column("name", sa.String(50)))


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'extract.db'}"
        return
    try:
        with postgres_database() as pg_url:
            yield pg_url
    except RuntimeError as exc:
        pytest.skip(f"PostgreSQL case skipped: {exc}")


@pytest.fixture
def engine(url: str) -> Iterator[sa.Engine]:
    from interlink.middleware.sources import sqlalchemy_url

    created = sa.create_engine(sqlalchemy_url(url))
    metadata.create_all(created)
    # 3 rows at T0, 12 at T1 (one bulk update), 10 at T2; ids deliberately not in insertion order.
    rows = ([{"id": i, "updated_at": T0} for i in (30, 10, 20)]
            + [{"id": i, "updated_at": T1} for i in range(100, 112)]
            + [{"id": i, "updated_at": T2} for i in range(200, 210)])
    with created.begin() as conn:
        conn.execute(events.insert(), [{**row, "version": n, "name": f"row {row['id']}"}
                                       for n, row in enumerate(rows)])
        conn.execute(events.insert(), {"id": 999, "updated_at": None, "version": None, "name": "never stamped"})
    try:
        yield created
    finally:
        created.dispose()


ALL_IDS = {10, 20, 30, *range(100, 112), *range(200, 210)}


def context() -> SimpleNamespace:
    return SimpleNamespace(pipeline="extract", project_dir=None, store=None, connections={})


def source(url: str, checkpoint: Any = None, **config: Any) -> SqlSource:
    opened = make_sql_source({"url": url, "table": "events", "watermark": "updated_at", "id": "id",
                              "batchSize": 5, **config}, context())
    # The runtime stores checkpoints as JSON: prove the position survives that.
    opened.open(json.loads(json.dumps(checkpoint)) if checkpoint is not None else None)
    return opened


def drain(opened: SqlSource, limit: int = 100) -> list[Message]:
    read: list[Message] = []
    for _ in range(limit):
        batch = opened.read(5, 0.0)
        if not batch:
            break
        read.extend(batch)
    assert opened.exhausted
    return read


def test_rows_sharing_a_timestamp_across_batch_boundaries_are_each_read_once(url: str, engine: sa.Engine) -> None:
    extract = source(url)
    try:
        first = extract.read(5, 0.0)
        # The first batch ends inside the T1 group (3 at T0, then 2 of the 12 at T1).
        assert [m.body["id"] for m in first] == [10, 20, 30, 100, 101]
        rest = drain(extract)
    finally:
        extract.close()
    ids = [m.body["id"] for m in first + rest]
    assert len(ids) == len(set(ids)) == 25
    assert set(ids) == ALL_IDS  # the NULL-watermark row is never read
    if engine.dialect.name == "sqlite":  # the cursor holds SQLite's stored text, compared as stored
        stamp = T0.isoformat(sep=" ")
        assert first[0].position == {"watermark": stamp, "id": 10}
    else:
        stamp = T0.isoformat()
        assert first[0].position == {"watermark": stamp, "id": 10, "watermarkType": "datetime"}
    assert first[0].id == f"10@{stamp}" and first[0].key == "10"
    assert first[0].body["updated_at"] == T0.isoformat()


def test_a_restart_mid_extract_resumes_exactly_after_the_checkpoint(url: str, engine: sa.Engine) -> None:
    extract = source(url)
    try:
        done = extract.read(5, 0.0) + extract.read(5, 0.0) + extract.read(3, 0.0)
        checkpoint = done[-1].position  # id 109, in the middle of the T1 group
        assert done[-1].body["id"] == 109
        # Read further but "crash" before those were acknowledged: they must come again.
        extract.read(5, 0.0)
    finally:
        extract.close()
    resumed = source(url, checkpoint)
    try:
        rest = drain(resumed)
    finally:
        resumed.close()
    ids = [m.body["id"] for m in done] + [m.body["id"] for m in rest]
    assert rest[0].body["id"] == 110
    assert len(ids) == len(set(ids)) and set(ids) == ALL_IDS


def test_a_row_updated_during_the_extract_is_not_missed(url: str, engine: sa.Engine) -> None:
    extract = source(url)
    try:
        first = extract.read(5, 0.0)  # 10, 20, 30, 100, 101
        with engine.begin() as conn:
            # One row already read and one not read yet are both updated while the extract runs.
            conn.execute(events.update().where(events.c.id.in_([20, 105])).values(updated_at=T9, name="changed"))
        rest = drain(extract)
    finally:
        extract.close()
    read = first + rest
    ids = [m.body["id"] for m in read]
    assert set(ids) == ALL_IDS
    assert ids.count(20) == 2            # its old version and its new one
    assert ids.count(105) == 1           # read once, at its new watermark, not lost behind the cursor
    assert [m.body["name"] for m in read if m.body["id"] == 105] == ["changed"]
    versions = [m.id for m in read if m.body["id"] == 20]
    assert versions[0] != versions[1]    # distinct versions are distinct messages for dedupe
    assert ids[-2:] == [20, 105]         # the updated rows come last, in (watermark, id) order


def test_a_late_commit_with_an_older_timestamp_needs_the_overlap_window(url: str, engine: sa.Engine) -> None:
    first_run = source(url)
    try:
        everything = drain(first_run)
    finally:
        first_run.close()
    checkpoint = everything[-1].position
    with engine.begin() as conn:  # committed after the extract, stamped before its checkpoint
        conn.execute(events.insert(), {"id": 150, "updated_at": T1, "version": 99, "name": "late"})

    plain = source(url, checkpoint)
    try:
        assert drain(plain) == []  # documented caveat: without overlap it is behind the cursor
    finally:
        plain.close()

    overlapping = source(url, checkpoint, overlap=5)
    try:
        again = drain(overlapping)
    finally:
        overlapping.close()
    assert 150 in [m.body["id"] for m in again]
    seen_before = {m.id for m in everything}
    repeated = [m for m in again if m.body["id"] != 150]
    # Everything else in the window is a re-read with the same message id: dedupe drops it.
    assert repeated and all(m.id in seen_before for m in repeated)


def test_a_query_with_an_integer_watermark(url: str, engine: sa.Engine) -> None:
    query = "SELECT id, version, name FROM events WHERE name <> 'row 20'"
    extract = make_sql_source({"url": url, "query": query, "watermark": "version", "id": "id", "batchSize": 4},
                              context())
    extract.open(None)
    try:
        first = extract.read(4, 0.0)
        checkpoint = json.loads(json.dumps(first[-1].position))
    finally:
        extract.close()
    assert checkpoint == {"watermark": 4, "id": 101}
    resumed = make_sql_source({"url": url, "query": query, "watermark": "version", "id": "id"}, context())
    resumed.open(checkpoint)
    try:
        rest = drain(resumed)
    finally:
        resumed.close()
    ids = [m.body["id"] for m in first + rest]
    assert len(ids) == len(set(ids)) == 24 and 20 not in ids
    assert set(first[0].body) == {"id", "version", "name"}


def test_start_sets_the_first_runs_watermark(url: str, engine: sa.Engine) -> None:
    extract = source(url, start=T2.isoformat())
    try:
        assert {m.body["id"] for m in drain(extract)} == set(range(200, 210))
    finally:
        extract.close()


def test_sqlite_text_timestamps_in_their_own_notation_are_not_skipped(tmp_path: Path) -> None:
    """SQLite keeps '2026-01-01 10:00:00' as written; a cursor compared as a bound datetime
    ('... 10:00:00.000000') would skip the rest of a group sharing that timestamp across a batch boundary."""
    import sqlite3

    path = tmp_path / "text-stamps.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, updated_at TIMESTAMP NOT NULL)")
        db.executemany("INSERT INTO t VALUES (?, ?)", [(n, f"2026-01-01 10:0{n // 100}:00") for n in range(1, 351)])
    seen: list[int] = []
    position = None
    while True:
        source = SqlSource(url=f"sqlite:///{path}", table="t", watermark="updated_at", id_column="id", batch_size=150)
        source.open(position)
        batch = source.read(150, 0)
        if not batch:
            break
        seen += [m.body["id"] for m in batch]
        position = batch[-1].position
    assert sorted(seen) == list(range(1, 351)) and len(seen) == 350
