"""The SQL sink on SQLite and PostgreSQL: upserts by key, partial updates, and a bad row reported alone."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa

from interlink.middleware.base import Message
from interlink.middleware.sinks.sql import SqlSink, make_sql_sink
from interlink.middleware.sources import sqlalchemy_url
from interlink.testing import postgres_database

COLUMNS = {"external_id": "string", "name": "string", "amount": "numeric", "closed_on": "date", "tags": "json"}


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'target.db'}"
        return
    try:
        with postgres_database() as pg_url:
            yield pg_url
    except RuntimeError as exc:
        pytest.skip(f"PostgreSQL case skipped: {exc}")


def context() -> SimpleNamespace:
    return SimpleNamespace(pipeline="load", project_dir=None, store=None, connections={})


def sink(url: str, **config: Any) -> SqlSink:
    return make_sql_sink({"url": url, "table": "accounts", "keys": ["external_id"], "columns": COLUMNS, **config},
                         context())


def rows(url: str, table: str = "accounts") -> dict[str, dict[str, Any]]:
    engine = sa.create_engine(sqlalchemy_url(url))
    try:
        with engine.connect() as conn:
            found = conn.execute(sa.text(f"SELECT * FROM {table}")).mappings().all()
    finally:
        engine.dispose()
    return {str(row.get("external_id", row.get("code"))): dict(row) for row in found}


def test_the_table_is_created_and_upserts_update_existing_rows(url: str) -> None:
    target = sink(url)
    try:
        first = target.write([
            Message(body={"external_id": "A-1", "name": "Acme", "amount": 10, "closed_on": "2024-05-01",
                          "tags": ["gold"], "ignored_field": "x"}),
            Message(body={"external_id": "A-2", "name": "Globex", "amount": 20}),
        ])
        assert all(d.ok for d in first)
        assert first[0].detail == {"external_id": "A-1"}
        # A second run: one row changes, one body is partial, one row is new.
        second = target.write([
            Message(body={"external_id": "A-1", "name": "Acme Corp"}),
            Message(body={"external_id": "A-2", "name": "Globex", "amount": 25}),
            Message(body={"external_id": "A-3", "name": "Initech"}),
        ])
        assert all(d.ok for d in second)
    finally:
        target.close()
    stored = rows(url)
    assert sorted(stored) == ["A-1", "A-2", "A-3"]
    assert stored["A-1"]["name"] == "Acme Corp"
    assert float(stored["A-1"]["amount"]) == 10  # not in the partial body: kept, not blanked
    assert str(stored["A-1"]["closed_on"]) == "2024-05-01"
    assert float(stored["A-2"]["amount"]) == 25


def test_one_bad_row_is_reported_alone_and_the_rest_of_the_batch_is_written(url: str) -> None:
    engine = sa.create_engine(sqlalchemy_url(url))
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE contacts (code VARCHAR(20) PRIMARY KEY, email VARCHAR(80) NOT NULL UNIQUE,"
                             " age INTEGER CHECK (age >= 0))"))
        conn.execute(sa.text("INSERT INTO contacts VALUES ('C-0', 'taken@example.com', 40)"))
    engine.dispose()
    target = make_sql_sink({"url": url, "table": "contacts", "keys": "code"}, context())
    try:
        deliveries = target.write([
            Message(body={"code": "C-1", "email": "one@example.com", "age": 30}),
            Message(body={"code": "C-2", "email": "two@example.com", "age": -5}),       # CHECK violation
            Message(body={"code": "C-3", "email": "three@example.com", "age": 33}),
            Message(body={"code": "C-4", "email": "taken@example.com", "age": 44}),     # UNIQUE violation
            Message(body={"email": "nokey@example.com"}),                               # no key
            Message(body={"code": "C-0", "age": 41}),                                   # update, partial
        ])
    finally:
        target.close()
    assert [d.ok for d in deliveries] == [True, False, True, False, False, True]
    assert [d.retryable for d in deliveries if not d.ok] == [False, False, False]
    assert "check" in str(deliveries[1].error).lower()
    assert "unique" in str(deliveries[3].error).lower() or "duplicate" in str(deliveries[3].error).lower()
    assert "code" in str(deliveries[4].error)
    stored = rows(url, "contacts")
    assert sorted(stored) == ["C-0", "C-1", "C-3"]
    assert stored["C-0"]["age"] == 41 and stored["C-0"]["email"] == "taken@example.com"


def test_an_unreachable_database_is_retryable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    target = make_sql_sink({"url": f"postgresql://postgres@127.0.0.1:{port}/nothing?connect_timeout=2",
                            "table": "t", "keys": ["id"]}, context())
    [delivery] = target.write([Message(body={"id": 1})])
    assert not delivery.ok and delivery.retryable
    target.close()
