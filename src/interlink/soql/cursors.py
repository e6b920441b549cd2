"""Query cursors: what ``nextRecordsUrl`` points at, kept in the store so any process can serve the next page.

A locator is ``<cursor id>-<offset>``, e.g. ``01gD0000002HU6KIAW-2000``, as on the platform. Cursors follow
the platform's rules by API version: from v56.0 a cursor lives two days and a user may hold any number;
before v56.0 a user holds at most ten (opening an eleventh releases the oldest) and an idle cursor expires
after fifteen minutes. An expired, released or foreign cursor answers INVALID_QUERY_LOCATOR.

Later pages re-run the cached plan at the locator's offset (with a stable ``Id`` tiebreak), so they show the
data as it is when fetched rather than a snapshot taken when the query started.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select, update

from interlink import ids
from interlink.errors import InvalidQueryLocator
from interlink.soql.engine import QueryLocator
from interlink.store.database import Store, utcnow

CURSOR_PREFIX = "01g"
_LOCATOR_RE = re.compile(r"^(01g[A-Za-z0-9]{12}(?:[A-Za-z0-5]{3})?)-(\d{1,9})$")
_MODERN_LIFETIME = timedelta(days=2)
_LEGACY_IDLE = timedelta(minutes=15)
_LEGACY_MAX_PER_USER = 10
_MODERN_FROM_VERSION = 56.0


@dataclass(frozen=True)
class Cursor:
    id: str
    user_id: str
    soql: str
    include_deleted: bool
    batch_size: int
    total_size: int
    api_version: str


def _invalid() -> InvalidQueryLocator:
    return InvalidQueryLocator("invalid query locator", [])


class CursorStore:
    def __init__(self, store: Store) -> None:
        self._store = store

    @property
    def _table(self):  # type: ignore[no-untyped-def]
        return self._store.system["il_query_cursor"]

    def open(self, locator: QueryLocator, api_version: str) -> str:
        """Keep the cursor behind a partly-read result; returns the locator for its next page."""
        cursor_id = ids.new_id(CURSOR_PREFIX)
        now = utcnow()
        table = self._table
        with self._store.write() as conn:
            conn.execute(table.insert().values(
                id=cursor_id, user_id=locator.user_id, soql=locator.soql, include_deleted=locator.include_deleted,
                batch_size=locator.batch_size, total_size=locator.total_size, api_version=api_version,
                created_at=now, last_used_at=now))
            if float(api_version) < _MODERN_FROM_VERSION:
                legacy = conn.execute(
                    select(table.c.id).where(table.c.user_id == locator.user_id,
                                             table.c.api_version.in_(_legacy_versions()))
                    .order_by(table.c.created_at.desc(), table.c.id.desc())).scalars().all()
                if len(legacy) > _LEGACY_MAX_PER_USER:
                    conn.execute(delete(table).where(table.c.id.in_(legacy[_LEGACY_MAX_PER_USER:])))
            expired = select(table.c.id).where(table.c.created_at < now - _MODERN_LIFETIME)
            states = self._store.system["il_query_cursor_state"]
            conn.execute(delete(states).where(states.c.cursor_id.in_(expired)))
            conn.execute(delete(table).where(table.c.created_at < now - _MODERN_LIFETIME))
        self.save_state(cursor_id, locator)
        return f"{cursor_id}-{locator.offset}"

    def save_state(self, cursor_id: str, locator: QueryLocator) -> None:
        """Keep where an external object's data source continues for the page at ``locator.offset``."""
        if locator.state is None:
            return
        states = self._store.system["il_query_cursor_state"]
        with self._store.write() as conn:
            conn.execute(delete(states).where(states.c.cursor_id == cursor_id, states.c.offset == locator.offset))
            conn.execute(states.insert().values(cursor_id=cursor_id, offset=locator.offset,
                                                state=json.dumps(locator.state)))

    def resolve(self, locator_text: str, user_id: str, url_prefix: str) -> QueryLocator:
        """The engine locator for ``<cursor id>-<offset>``; INVALID_QUERY_LOCATOR when it is not usable."""
        match = _LOCATOR_RE.match(locator_text)
        if not match:
            raise _invalid()
        cursor_id = ids.normalize(match.group(1))
        offset = int(match.group(2))
        if cursor_id is None:
            raise _invalid()
        table = self._table
        states = self._store.system["il_query_cursor_state"]
        with self._store.read() as conn:
            row = conn.execute(select(table).where(table.c.id == cursor_id)).first()
            saved = conn.execute(select(states.c.state).where(states.c.cursor_id == cursor_id,
                                                              states.c.offset == offset)).scalar()
        now = utcnow()
        if row is None or row.user_id != user_id or offset > row.total_size:
            raise _invalid()
        legacy = float(row.api_version) < _MODERN_FROM_VERSION
        if now - row.created_at > _MODERN_LIFETIME or (legacy and now - row.last_used_at > _LEGACY_IDLE):
            raise _invalid()
        if legacy:
            with self._store.write() as conn:
                conn.execute(update(table).where(table.c.id == cursor_id).values(last_used_at=now))
        state = json.loads(saved) if saved is not None else None
        return QueryLocator(row.soql, row.user_id, row.include_deleted, row.batch_size, url_prefix, offset,
                            row.total_size, tuple(state) if isinstance(state, list) else state)

    @staticmethod
    def cursor_id(locator_text: str) -> str:
        return locator_text.rsplit("-", 1)[0]


def _legacy_versions() -> list[str]:
    return [f"{v}.0" for v in range(20, int(_MODERN_FROM_VERSION))]
