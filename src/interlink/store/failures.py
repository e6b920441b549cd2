"""Database failures that are not the request's fault, as the wire errors clients see.

The store's drivers (SQLAlchemy over psycopg and sqlite3) raise their own exceptions when the database goes
away or the disk fills up; left alone they surface as 500 ``UNKNOWN_EXCEPTION``. The surfaces (REST, composite,
Bulk, the Pub/Sub API) ask :func:`store_failure` about any exception they did not expect:

* connection lost or refused, server shutting down or starting up, too many connections, no pooled connection
  in time -> :class:`ServiceUnavailable` (503 ``SERVER_UNAVAILABLE`` with ``Retry-After``; gRPC UNAVAILABLE). The
  transaction was rolled back by the server; the pool (``pool_pre_ping``) replaces dead connections, so the org
  recovers by itself once the database is back;
* disk full (``SQLITE_FULL``, PostgreSQL ``53100``) -> :class:`StorageLimitExceeded` (507
  ``STORAGE_LIMIT_EXCEEDED``): the write was rolled back, what was stored before is intact;
* the SQLite database still locked after the busy timeout, a PostgreSQL deadlock or lock timeout ->
  :class:`UnableToLockRow` (409 ``UNABLE_TO_LOCK_ROW``), as the DML path already answers.

Anything else is a real bug and stays a 500. Drivers are recognised by their exception classes and codes,
wrapped by SQLAlchemy (``DBAPIError.orig``) or raw (the store's fast paths use DBAPI cursors directly).
"""

from __future__ import annotations

import sqlite3
import sys
from typing import Any

from sqlalchemy import exc as sa_exc

from interlink.errors import InterlinkError, ServiceUnavailable, StorageLimitExceeded, UnableToLockRow

_UNAVAILABLE = ("The database is unavailable ({detail}); the request was not carried out and nothing was partially "
                "written. Try again in a few seconds.")
_FULL = ("The disk under the org's database is full ({detail}); the write was rolled back and nothing stored before "
         "was affected. Free some space and try again.")
_LOCKED = "unable to obtain exclusive access to this record or 1 records"

# SQLite primary result codes (the low byte of an extended code).
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_IOERR, _SQLITE_FULL, _SQLITE_CANTOPEN = 5, 6, 10, 13, 14

# PostgreSQL SQLSTATEs (class 08 is every connection exception).
_PG_UNAVAILABLE = {"57P01": "the server is shutting down", "57P02": "the server crashed",
                   "57P03": "the server is starting up or shutting down", "53300": "too many connections",
                   "53200": "the server is out of memory"}
_PG_FULL = "53100"
_PG_LOCKED = {"40P01", "55P03"}  # deadlock detected, lock not available


def driver_errors() -> tuple[type[Exception], ...]:
    """The exception classes :func:`store_failure` knows (for frameworks that pick a handler by class)."""
    psycopg = _psycopg()
    return (sa_exc.DBAPIError, sa_exc.DisconnectionError, sa_exc.TimeoutError, sqlite3.Error,
            *((psycopg.Error,) if psycopg is not None else ()))


def _psycopg() -> Any:
    # Only a loaded psycopg can have raised anything: an org on SQLite never pays for importing it.
    return sys.modules.get("psycopg")


def store_failure(error: BaseException) -> InterlinkError | None:
    """The wire error for a database failure that is not the request's fault; None for anything else.

    Looks at ``error``, then at what it was raised from (a few levels), so a driver error re-raised as another
    exception is still recognised.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen and len(seen) < 5:
        seen.add(id(current))
        mapped = _classify(current)
        if mapped is not None:
            return mapped
        current = current.__cause__ or current.__context__
    return None


def _classify(error: BaseException) -> InterlinkError | None:
    if isinstance(error, InterlinkError):
        return None
    if isinstance(error, sa_exc.TimeoutError):  # no pooled connection came free within pool_timeout
        return ServiceUnavailable(_UNAVAILABLE.format(detail="no connection to it came free in time"))
    if isinstance(error, sa_exc.DisconnectionError):
        return ServiceUnavailable(_UNAVAILABLE.format(detail="the connection was lost"))
    if isinstance(error, sa_exc.DBAPIError):
        mapped = _classify_driver(error.orig) if error.orig is not None else None
        if mapped is None and error.connection_invalidated:
            mapped = ServiceUnavailable(_UNAVAILABLE.format(detail="the connection was lost"))
        return mapped
    return _classify_driver(error)


def _classify_driver(error: BaseException) -> InterlinkError | None:
    if isinstance(error, sqlite3.Error):
        return _classify_sqlite(error)
    psycopg = _psycopg()
    if psycopg is not None and isinstance(error, psycopg.Error):
        return _classify_postgres(psycopg, error)
    return None


def _classify_sqlite(error: sqlite3.Error) -> InterlinkError | None:
    code = getattr(error, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(error).lower()
    if primary == _SQLITE_FULL or "database or disk is full" in text:
        return StorageLimitExceeded(_FULL.format(detail=f"SQLite: {error}"))
    if primary in (_SQLITE_BUSY, _SQLITE_LOCKED) or "database is locked" in text:
        return UnableToLockRow(_LOCKED)
    if primary in (_SQLITE_IOERR, _SQLITE_CANTOPEN) or "disk i/o error" in text or "unable to open database" in text:
        return ServiceUnavailable(_UNAVAILABLE.format(detail=f"SQLite: {error}"))
    return None


def _classify_postgres(psycopg: Any, error: BaseException) -> InterlinkError | None:
    sqlstate = getattr(error, "sqlstate", None)
    # The driver's own text names hosts and ports: it goes to the server log (the caller logs ``error``), not to
    # the client.
    detail = "PostgreSQL: the connection to it was lost or refused"
    if sqlstate == _PG_FULL:
        return StorageLimitExceeded(_FULL.format(detail="PostgreSQL: could not extend a file"))
    if sqlstate in _PG_LOCKED:
        return UnableToLockRow(_LOCKED)
    if sqlstate in _PG_UNAVAILABLE:
        return ServiceUnavailable(_UNAVAILABLE.format(detail=f"PostgreSQL: {_PG_UNAVAILABLE[sqlstate]}"))
    if sqlstate is not None and sqlstate.startswith("08"):
        return ServiceUnavailable(_UNAVAILABLE.format(detail=detail))
    # No SQLSTATE: the client library itself failed to connect or lost the connection (refused, reset, closed).
    if sqlstate is None and isinstance(error, psycopg.OperationalError | psycopg.InterfaceError):
        return ServiceUnavailable(_UNAVAILABLE.format(detail=detail))
    return None

