"""Database failures that are not the request's fault become wire errors: 503 with Retry-After for an unreachable
database, 507 for a full disk, 409 for a lock that never came; everything else stays a 500.

The live proofs (a cut PostgreSQL connection, a full tmpfs) are tests/live/test_postgres_outage.py and
tests/store/test_disk_full.py; these pin down the mapping itself, including errors that are hard to provoke.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import psycopg.errors
import pytest
from sqlalchemy import exc as sa_exc

from interlink.api.http import error_response, unexpected_error_response
from interlink.errors import ServiceUnavailable, StorageLimitExceeded, UnableToLockRow
from interlink.store.failures import store_failure
from interlink.testing import local_org, rest_client


def wrapped(orig: Exception, *, invalidated: bool = False) -> sa_exc.DBAPIError:
    """What SQLAlchemy raises around a driver error."""
    return sa_exc.DBAPIError.instance("SELECT 1", {}, orig, Exception, connection_invalidated=invalidated)


@pytest.mark.parametrize("error", [
    psycopg.OperationalError("connection failed: Connection refused"),
    psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly"),
    psycopg.InterfaceError("the connection is closed"),
    psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
    psycopg.errors.CannotConnectNow("the database system is starting up"),
    psycopg.errors.TooManyConnections("sorry, too many clients already"),
    psycopg.errors.ConnectionFailure("connection failure"),
    sa_exc.TimeoutError("QueuePool limit of size 10 overflow 20 reached"),
], ids=lambda error: type(error).__name__)
def test_an_unreachable_database_is_service_unavailable(error: Exception) -> None:
    for raised in (error, wrapped(error)) if not isinstance(error, sa_exc.SQLAlchemyError) else (error,):
        failure = store_failure(raised)
        assert isinstance(failure, ServiceUnavailable), raised
        assert failure.http_status == 503 and failure.grpc_status == "UNAVAILABLE"
        assert "127.0.0.1" not in failure.message  # the driver's text (hosts, ports) stays in the server log


def test_a_connection_sqlalchemy_invalidated_is_service_unavailable() -> None:
    assert isinstance(store_failure(wrapped(ValueError("?"), invalidated=True)), ServiceUnavailable)


def test_a_full_disk_is_storage_limit_exceeded() -> None:
    for error in (sqlite3.OperationalError("database or disk is full"), psycopg.errors.DiskFull("could not extend")):
        failure = store_failure(wrapped(error))
        assert isinstance(failure, StorageLimitExceeded)
        assert (failure.error_code, failure.http_status) == ("STORAGE_LIMIT_EXCEEDED", 507)


def test_a_lock_that_never_came_is_unable_to_lock_row(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    waiter = sqlite3.connect(path, isolation_level=None, timeout=0.05)
    try:
        holder.execute("CREATE TABLE t (x)")
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(sqlite3.OperationalError) as busy:  # a real SQLITE_BUSY after the busy timeout
            waiter.execute("BEGIN IMMEDIATE")
    finally:
        holder.close()
        waiter.close()
    for raised in (busy.value, wrapped(busy.value), wrapped(psycopg.errors.DeadlockDetected("deadlock"))):
        failure = store_failure(raised)
        assert isinstance(failure, UnableToLockRow)
        assert (failure.error_code, failure.http_status) == ("UNABLE_TO_LOCK_ROW", 409)


@pytest.mark.parametrize("error", [
    ValueError("a bug"),
    wrapped(sqlite3.IntegrityError("UNIQUE constraint failed")),
    wrapped(psycopg.errors.UndefinedColumn("column does not exist")),
    wrapped(sqlite3.OperationalError("no such table: x")),
], ids=repr)
def test_anything_else_is_left_alone(error: Exception) -> None:
    assert store_failure(error) is None
    assert unexpected_error_response(error).status_code == 500


def test_a_driver_error_raised_from_is_still_recognised() -> None:
    try:
        try:
            raise psycopg.OperationalError("connection failed")
        except psycopg.OperationalError as cause:
            raise RuntimeError("while loading the session") from cause
    except RuntimeError as error:
        assert isinstance(store_failure(error), ServiceUnavailable)


def test_rest_renders_503_with_retry_after() -> None:
    response = unexpected_error_response(wrapped(psycopg.errors.AdminShutdown("terminating connection")))
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert b'"errorCode":"SERVER_UNAVAILABLE"' in response.body
    assert "Retry-After" not in error_response(StorageLimitExceeded("full")).headers


def test_a_database_error_before_any_surface_code_runs_is_a_503(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                ) -> None:
    """Authentication reads the database first: an outage there is answered by the app's handler."""
    with local_org(tmp_path / "org") as org:
        client = rest_client(org)

        def unreachable(_token: str, _source_ip: str | None = None) -> None:
            raise wrapped(psycopg.OperationalError("connection failed: Connection refused"), invalidated=True)

        monkeypatch.setattr(org.tokens, "validate", unreachable)
        for path in ("/services/data/v66.0/sobjects/Account/001000000000001", "/services/data/v66.0/limits"):
            response = client.get(path)
            assert response.status_code == 503, response.text
            assert response.headers["Retry-After"] == "5"
            assert response.json()[0]["errorCode"] == "SERVER_UNAVAILABLE"
        client.close()
