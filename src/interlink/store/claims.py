"""Claiming queued work safely from many processes: one mechanism for Bulk jobs, callouts and outbound messages.

A claim marks rows ``claimed_by`` / ``claimed_until`` (a lease) in one write transaction. On PostgreSQL the rows are
picked with ``SELECT … FOR UPDATE SKIP LOCKED``, so workers racing for the same queue each take different rows
without waiting on one another or failing a compare-and-set; on SQLite the write transaction (``BEGIN IMMEDIATE``)
already serialises claimers. A cheap read first keeps idle workers from taking SQLite's write lock every poll.

The ``where`` clause is checked again inside the write transaction, so a row another worker took (or finished)
between the read and the claim is never taken twice.

A holder is named ``host:pid-random`` (:func:`holder_id`), so a process starting on a host can give back at once the
claims of that host's processes that died (:func:`holder_is_gone`) instead of waiting for their leases to run out.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Table, select, update
from sqlalchemy.sql.elements import ColumnElement

from interlink.store.database import Store


def claim(store: Store, table: Table, where: ColumnElement[bool], *, order_by: Sequence[Any], limit: int,
          values: Mapping[str, Any]) -> list[Any]:
    """Claim up to ``limit`` rows of ``table`` matching ``where`` (oldest first by ``order_by``), setting
    ``values`` on them; returns the claimed rows as they are after the update (empty when none was free)."""
    key = table.primary_key.columns.values()[0]
    with store.read() as conn:
        if conn.execute(select(key).where(where).limit(1)).first() is None:
            return []
    with store.write() as conn:
        pick = select(key).where(where).order_by(*order_by).limit(limit)
        if store.backend == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        ids = list(conn.execute(pick).scalars())
        if not ids:
            return []
        conn.execute(update(table).where(key.in_(ids), where).values(**values))
        return list(conn.execute(select(table).where(key.in_(ids)).order_by(*order_by)))


_HOST = socket.gethostname()[:40]


def holder_id() -> str:
    """A claim holder's name: ``host:pid-random``, unique per worker, telling which process of which host holds it."""
    return f"{_HOST}:{os.getpid()}-{uuid.uuid4().hex[:12]}"


def holder_is_gone(holder: str) -> bool:
    """True when ``holder`` (see :func:`holder_id`) was a process of this host that has exited."""
    host, _, rest = holder.rpartition(":")
    if host and host != _HOST:
        return False
    try:
        pid = int(rest.split("-", 1)[0])
    except ValueError:
        return False
    return pid != os.getpid() and not process_alive(pid)


def process_alive(pid: int) -> bool:
    """True while ``pid`` runs on this host (a zombie waiting for its parent to reap it counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's: alive
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


__all__ = ["claim", "holder_id", "holder_is_gone", "process_alive"]
