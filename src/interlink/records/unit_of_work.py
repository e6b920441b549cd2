"""A unit of work: one database transaction around any number of DML operations.

Everything a request writes, and everything its hooks write, commits or rolls back together. Work
that must only happen after a commit (change events, publish-after-commit events, outbound calls)
is queued with :meth:`UnitOfWork.after_commit` and runs once the transaction is durable; a rollback
discards it and runs the rollback callbacks instead.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

if TYPE_CHECKING:
    from interlink.records.context import Context
    from interlink.store.database import Store

log = logging.getLogger(__name__)


@dataclass
class Change:
    """One committed record change, in the order it happened (the raw material for change events)."""

    operation: str
    object_name: str
    record_id: str
    fields: dict[str, Any]
    changed_fields: list[str]
    context: Context


@dataclass
class UnitOfWork:
    conn: Connection
    context: Context
    changes: list[Change] = field(default_factory=list)
    # Events to publish only if this transaction commits (publish-after-commit platform events).
    events: list[Any] = field(default_factory=list)
    # Per-transaction counters for governor limits (callouts made, ...).
    counters: dict[str, int] = field(default_factory=dict)
    _after_commit: list[Callable[[], None]] = field(default_factory=list)
    _after_rollback: list[Callable[[], None]] = field(default_factory=list)
    depth: int = 0

    def after_commit(self, callback: Callable[[], None]) -> None:
        self._after_commit.append(callback)

    def after_rollback(self, callback: Callable[[], None]) -> None:
        self._after_rollback.append(callback)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A nested transaction: roll back part of the work and keep the rest.

        Rolling back also forgets what the undone part queued: its change records and after-commit work are
        dropped (undone records must never emit change events when the rest commits) and its after-rollback
        callbacks run at once.
        """
        nested = self.conn.begin_nested()
        marks = len(self.changes), len(self._after_commit), len(self._after_rollback), len(self.events)
        try:
            yield
        except BaseException:
            nested.rollback()
            undone = self._after_rollback[marks[2]:]
            del self.changes[marks[0]:]
            del self.events[marks[3]:]
            del self._after_commit[marks[1]:]
            del self._after_rollback[marks[2]:]
            _run_all(undone, "after-rollback")
            raise
        else:
            nested.commit()


class UnitOfWorkManager:
    """Hands out units of work; a nested request on the same thread joins the open one."""

    def __init__(self, store: Store) -> None:
        self._store = store
        # Per thread and per asyncio task (a contextvar), so concurrent requests never share a unit of work.
        self._current: contextvars.ContextVar[UnitOfWork | None] = contextvars.ContextVar(
            f"interlink_uow_{id(self)}", default=None)
        # Run inside the transaction just before it commits (the event outbox writes here), so what
        # they write commits or rolls back with the records.
        self.before_commit: list[Callable[[UnitOfWork], None]] = []

    @property
    def current(self) -> UnitOfWork | None:
        return self._current.get()

    @contextmanager
    def begin(self, context: Context) -> Iterator[UnitOfWork]:
        outer = self.current
        if outer is not None:
            outer.depth += 1
            try:
                yield outer
            finally:
                outer.depth -= 1
            return
        uow: UnitOfWork | None = None
        token = None
        try:
            with self._store.write() as conn:
                uow = UnitOfWork(conn, context)
                token = self._current.set(uow)
                yield uow
                for hook in self.before_commit:
                    hook(uow)
        except BaseException:
            if token is not None:
                self._current.reset(token)
            if uow is not None:
                _run_all(uow._after_rollback, "after-rollback")
            raise
        self._current.reset(token)  # type: ignore[arg-type]
        _run_all(uow._after_commit, "after-commit")


def _run_all(callbacks: list[Callable[[], None]], what: str) -> None:
    for callback in callbacks:
        try:
            callback()
        except Exception:  # a failing listener must not undo a committed transaction
            log.exception("%s callback failed", what)
