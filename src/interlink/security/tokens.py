"""Access and refresh tokens: minted, validated, refreshed and revoked.

Tokens look like the platform's (``00D…!A…``: the org id, ``!``, then random text) and are kept only
as SHA-256 hashes. Validation is on the hot path of every request, so a process trusts a token it has
validated for ``token_cache_seconds`` before asking the store again; revocation in the same process
takes effect at once, in another process within that window. Access tokens expire after
``session_timeout`` seconds without use, like a platform session.

Refresh tokens of an app with rotation on are single-use: :meth:`TokenService.rotate` revokes the one presented
and mints its successor in the same *family*. Presenting a replaced token again means it leaked (or a client
raced itself), so :meth:`TokenService.reject_reused` revokes the whole family, access tokens included.

Each use of a token also asks ``session_policy`` (the login policy's profile restrictions, wired by the OAuth
service): ``"end"`` ends the session for good (its user's login hours are over), ``"refuse"`` refuses this request
only (an address outside the login IP ranges, when they are enforced on every request).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, or_, select, update

from interlink.errors import InvalidSession
from interlink.store.database import Store, utcnow

_TOUCH_EVERY = timedelta(seconds=60)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Session:
    """What a valid access token stands for."""

    user_id: str
    org_id: str
    app_id: str | None
    token_hash: str
    issued_at: datetime
    scope: str


@dataclass
class _Cached:
    session: Session
    checked_at: float
    last_used_at: datetime


class TokenService:
    def __init__(self, store: Store, org_id: str, *, session_timeout: int = 7200,
                 cache_seconds: float = 2.0) -> None:
        self._store = store
        self.org_id = org_id
        self._timeout = timedelta(seconds=session_timeout)
        self._cache_seconds = cache_seconds
        self._cache: dict[str, _Cached] = {}
        self._touches: dict[str, datetime] = {}  # token hash -> last use not yet written
        self._lock = threading.Lock()
        # (user_id, source_ip) -> None, "refuse" (this request) or "end" (the session); see the module docstring.
        self.session_policy: Callable[[str, str | None], str | None] | None = None

    @property
    def _table(self):  # type: ignore[no-untyped-def]
        return self._store.system["il_token"]

    def _new_token(self) -> str:
        return f"{self.org_id[:15]}!{secrets.token_urlsafe(72)}"

    def mint(self, user_id: str, *, app_id: str | None = None, kind: str = "access",
             parent: str | None = None, scope: str = "api") -> tuple[str, datetime]:
        """Store a new token and return (token, issued_at)."""
        token = self._new_token() if kind == "access" else secrets.token_urlsafe(64)
        now = utcnow()
        with self._store.write() as conn:
            conn.execute(self._table.insert().values(
                token_hash=token_hash(token), kind=kind, user_id=user_id, app_id=app_id,
                parent_hash=token_hash(parent) if parent else None, issued_at=now, last_used_at=now,
                expires_at=None, revoked=False, scope=scope))
        return token, now

    def validate(self, token: str, source_ip: str | None = None) -> Session:
        """The session for an access token; INVALID_SESSION_ID if unknown, revoked or expired, or if the login
        policy refuses its use now from ``source_ip`` (the client's address, when the surface knows it)."""
        return self._checked(token, self._validate(token), source_ip)

    def _checked(self, token: str, session: Session, source_ip: str | None) -> Session:
        verdict = self.session_policy(session.user_id, source_ip) if self.session_policy is not None else None
        if verdict == "end":
            self.revoke(token)
            raise InvalidSession()
        if verdict is not None:
            raise InvalidSession()
        return session

    def _validate(self, token: str) -> Session:
        if not token:
            raise InvalidSession()
        hashed = token_hash(token)
        now_monotonic = time.monotonic()
        cached = self._cache.get(hashed)
        if (cached is not None and now_monotonic - cached.checked_at < self._cache_seconds
                and utcnow() - cached.last_used_at < _TOUCH_EVERY):
            return cached.session
        row = self._load(hashed)
        now = utcnow()
        if row is not None and not row.revoked and not self._user_active(row.user_id):
            # A deactivated user's sessions end for good: reactivating the user does not bring them back.
            self.revoke_user(row.user_id)
            raise InvalidSession()
        last_used = row.last_used_at if row is not None else now
        with self._lock:
            last_used = max(last_used, self._touches.get(hashed, last_used))
        if row is None or row.kind != "access" or row.revoked or now - last_used > self._timeout:
            with self._lock:
                self._cache.pop(hashed, None)
            raise InvalidSession()
        if now - last_used >= _TOUCH_EVERY:
            # Recorded by flush_touches() (the process's housekeeping), not here: a request never waits for the
            # write lock (on SQLite another process may hold it for a whole Bulk batch).
            with self._lock:
                self._touches[hashed] = now
            last_used = now
        session = Session(row.user_id, self.org_id, row.app_id, hashed, row.issued_at, row.scope)
        with self._lock:
            self._cache[hashed] = _Cached(session, now_monotonic, last_used)
        return session

    def flush_touches(self) -> int:
        """Write the last-use times that :meth:`validate` noted since the last flush; returns how many."""
        with self._lock:
            touches, self._touches = self._touches, {}
        if not touches:
            return 0
        table = self._table
        try:
            with self._store.write() as conn:
                for hashed, used_at in touches.items():
                    conn.execute(update(table).where(table.c.token_hash == hashed, table.c.last_used_at < used_at)
                                 .values(last_used_at=used_at))
        except BaseException:
            with self._lock:  # kept for the next flush
                for hashed, used_at in touches.items():
                    self._touches[hashed] = max(used_at, self._touches.get(hashed, used_at))
            raise
        return len(touches)

    def _user_active(self, user_id: str) -> bool:
        """A deactivated (or deleted) user's tokens stop working, as the platform's sessions do."""
        table = self._store.table("User")
        with self._store.read() as conn:
            row = conn.execute(select(table.c.IsActive, table.c.IsDeleted).where(table.c.Id == user_id)).first()
        return row is not None and bool(row.IsActive) and not row.IsDeleted

    def _load(self, hashed: str):  # type: ignore[no-untyped-def]
        with self._store.read() as conn:
            return conn.execute(select(self._table).where(self._table.c.token_hash == hashed)).first()

    def refresh_owner(self, refresh_token: str) -> tuple[str, str | None]:
        """(user_id, app_id) of a live refresh token; INVALID_SESSION_ID otherwise."""
        row = self._load(token_hash(refresh_token))
        if row is None or row.kind != "refresh" or row.revoked:
            raise InvalidSession("expired access/refresh token")
        return row.user_id, row.app_id

    def rotate(self, refresh_token: str) -> str:
        """Replace a live refresh token by a new one of the same family (user, app, scope); returns the new token.

        The old token is revoked in the same transaction that checks it is live, so of two concurrent refreshes
        with one token only one wins; the loser is treated as a reuse (INVALID_SESSION_ID, family revoked).
        The access tokens already issued from the old token keep working until they expire.
        """
        hashed = token_hash(refresh_token)
        family_table = self._store.system["il_refresh_family"]
        replacement = secrets.token_urlsafe(64)
        now = utcnow()
        with self._store.write() as conn:
            row = conn.execute(select(self._table).where(self._table.c.token_hash == hashed)).first()
            if row is None or row.kind != "refresh":
                raise InvalidSession("expired access/refresh token")
            family = self._family(conn, hashed)
            won = conn.execute(update(self._table).where(self._table.c.token_hash == hashed)
                               .where(self._table.c.revoked.is_(False)).values(revoked=True)).rowcount
            if not won:
                self._revoke_family(conn, family or hashed)
                revoked = True
            else:
                revoked = False
                if family is None:
                    family = hashed
                    conn.execute(family_table.insert().values(token_hash=hashed, family_hash=family, created_at=now))
                conn.execute(self._table.insert().values(
                    token_hash=token_hash(replacement), kind="refresh", user_id=row.user_id, app_id=row.app_id,
                    parent_hash=None, issued_at=now, last_used_at=now, expires_at=None, revoked=False,
                    scope=row.scope))
                conn.execute(family_table.insert().values(token_hash=token_hash(replacement), family_hash=family,
                                                          created_at=now))
        with self._lock:
            self._cache.clear()
        if revoked:
            raise InvalidSession("expired access/refresh token")
        return replacement

    def reject_reused(self, refresh_token: str) -> bool:
        """A revoked refresh token was presented: if rotation replaced it, revoke its whole family.

        Returns True when a family was revoked. Tokens that never took part in rotation are left alone.
        """
        hashed = token_hash(refresh_token)
        with self._store.read() as conn:  # most bad tokens are simply unknown: no write transaction for them
            family = self._family(conn, hashed)
        if family is None:
            return False
        with self._store.write() as conn:
            self._revoke_family(conn, family)
        with self._lock:
            self._cache.clear()
        return True

    def _family(self, conn: Connection, hashed: str) -> str | None:
        table = self._store.system["il_refresh_family"]
        return conn.execute(select(table.c.family_hash).where(table.c.token_hash == hashed)).scalar()

    def _revoke_family(self, conn: Connection, family: str) -> None:
        """Revoke every refresh token of ``family`` and every access token issued from one of them."""
        table = self._store.system["il_refresh_family"]
        members = select(table.c.token_hash).where(table.c.family_hash == family)
        conn.execute(update(self._table).where(or_(self._table.c.token_hash.in_(members),
                                                   self._table.c.parent_hash.in_(members)))
                     .values(revoked=True))

    def revoke(self, token: str) -> bool:
        """Revoke an access or refresh token (a refresh token takes its access tokens along)."""
        hashed = token_hash(token)
        with self._store.write() as conn:
            count = conn.execute(update(self._table)
                                 .where(or_(self._table.c.token_hash == hashed, self._table.c.parent_hash == hashed))
                                 .values(revoked=True)).rowcount
        with self._lock:
            self._cache.clear()
        return bool(count)

    def revoke_user(self, user_id: str, *, scope: str | None = None) -> int:
        """Revoke a user's live tokens (API sessions, refresh tokens, console sessions); returns how many.

        ``scope`` limits it to the tokens of one scope (``console``: the console's sessions).
        """
        statement = (update(self._table).where(self._table.c.user_id == user_id)
                     .where(self._table.c.revoked.is_(False)))
        if scope is not None:
            statement = statement.where(self._table.c.scope == scope)
        with self._store.write() as conn:
            count = conn.execute(statement.values(revoked=True)).rowcount
        with self._lock:
            self._cache.clear()
        return int(count or 0)

    def introspect(self, token: str) -> dict[str, object]:
        """RFC 7662 view of a token (``{"active": false}`` when it is not usable)."""
        row = self._load(token_hash(token))
        now = utcnow()
        if row is None or row.revoked or (row.kind == "access" and now - row.last_used_at > self._timeout):
            return {"active": False}
        issued = int(row.issued_at.replace(tzinfo=UTC).timestamp())
        body: dict[str, object] = {
            "active": True, "scope": row.scope, "token_type": f"{row.kind}_token", "iat": issued, "nbf": issued,
            "user_id": row.user_id, "app_id": row.app_id,
        }
        if row.kind == "access":
            body["exp"] = int((row.last_used_at + self._timeout).replace(tzinfo=UTC).timestamp())
        return body
