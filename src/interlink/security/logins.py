"""Login policy: the one gate every login passes, failed-login lockout, API-only users and the login history.

Every way a user logs in goes through :class:`LoginPolicy`:

- paths that take a password (the OAuth password grant, the web-server flow's authorize form, SOAP
  ``login()``, the console's form) call :meth:`LoginPolicy.password_login`;
- paths that identify the user otherwise (the JWT bearer grant, the client-credentials grant's run-as user)
  call :meth:`LoginPolicy.check` directly.

:meth:`LoginPolicy.check` is the single place where a rule refuses a known user (inactive, locked out, API-only
user at the console, outside the profile's login IP ranges or login hours), and it records the outcome. Each
attempt of a known user becomes a ``LoginHistory`` record, as on the platform; attempts with an unknown username
are not recorded there (the platform does not either), only logged. Refusals raise :class:`LoginRefused`, which
each surface answers in its own words (OAuth ``invalid_grant``, SOAP ``INVALID_LOGIN``, the console's message).

After ``lockout_attempts`` consecutive wrong passwords the user is locked for ``lockout_minutes``: every password
login then fails, whatever the password, until the time passes, an administrator unlocks the user
(``interlink users unlock``) or sets a new password. A successful login resets the count. Logins without a
password (JWT bearer, client credentials) are not locked out: a stranger guessing passwords must not be able to
stop an integration that authenticates with a certificate.

Profile login restrictions (:mod:`interlink.security.login_restrictions`) also bind sessions:
:meth:`LoginPolicy.session_refusal`, which the token service asks on each use of a token, ends a session when its
user's login hours end, and with ``enforce_ip_ranges_every_request`` refuses a request from outside the ranges.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import desc, select, update
from sqlalchemy.exc import IntegrityError

from interlink import ids
from interlink.errors import AuthError, ConfigurationError
from interlink.security.apps import Directory, UserRecord, spend_password_check
from interlink.security.login_restrictions import (
    NO_RESTRICTIONS,
    ProfileRestrictions,
    org_zone,
    restrictions_as_json,
    restrictions_from_json,
)
from interlink.store.change_log import forget_own_changes
from interlink.store.database import Store, utcnow

log = logging.getLogger(__name__)

LOGIN_HISTORY = "LoginHistory"
LOGIN_HISTORY_PREFIX = "0Ya"

# LoginHistory.LoginType values (the platform's picklist).
LOGIN_TYPE_APPLICATION = "Application"  # the UI: Interlink's console
LOGIN_TYPE_OAUTH = "Remote Access 2.0"  # every OAuth 2.0 flow
LOGIN_TYPE_SOAP = "Other Apex API"  # the partner API's login()

# LoginHistory.Status values. The platform's wording where it has one; "Failed: API Only User" is Interlink's.
STATUS_SUCCESS = "Success"
STATUS_INVALID_PASSWORD = "Invalid Password"
STATUS_LOCKED_OUT = "Password Lockout"
STATUS_INACTIVE = "User is Inactive"
STATUS_API_ONLY = "Failed: API Only User"
STATUS_RESTRICTED_IP = "Restricted IP"  # outside the profile's login IP ranges
STATUS_RESTRICTED_TIME = "Restricted Time"  # outside the profile's login hours
RESTRICTIONS = frozenset({STATUS_RESTRICTED_IP, STATUS_RESTRICTED_TIME})
# What the login pages (the console's, the web-server flow's) say to a user the profile's restrictions refuse.
RESTRICTED_MESSAGES = {
    STATUS_RESTRICTED_IP: "Login restricted: your profile does not allow logins from this IP address.",
    STATUS_RESTRICTED_TIME: "Login restricted: your profile's login hours do not include this time.",
}

BROWSER_APPLICATION = "Browser"


@dataclass(frozen=True)
class LoginAttempt:
    """Where a login comes from: what LoginHistory records beside the user, the time and the outcome."""

    login_type: str
    application: str
    source_ip: str | None = None
    login_url: str | None = None
    api_type: str | None = None
    api_version: str | None = None
    browser: str | None = None
    uses_password: bool = True

    @property
    def is_console(self) -> bool:
        return self.login_type == LOGIN_TYPE_APPLICATION


class LoginRefused(AuthError):
    """A login the policy refused; ``status`` is what LoginHistory recorded (see the STATUS_* values)."""

    error_code = "INVALID_LOGIN"

    def __init__(self, status: str, user: UserRecord | None = None) -> None:
        super().__init__(f"login refused: {status}")
        self.status = status
        self.user = user


@dataclass(frozen=True)
class LoginState:
    """A user's row of ``il_user_login`` (all defaults when the user has none)."""

    failed_logins: int = 0
    locked_until: datetime | None = None
    api_only: bool = False

    def locked(self, now: datetime) -> bool:
        return self.locked_until is not None and self.locked_until > now


class LoginPolicy:
    """Checks logins, counts failures, locks users out and writes LoginHistory."""

    def __init__(self, store: Store, directory: Directory, *, lockout_attempts: int = 10,
                 lockout_minutes: float = 15) -> None:
        self._store = store
        self._directory = directory
        self.lockout_attempts = 10
        self.lockout_minutes = 15.0
        # Another source of "API only" besides the user's own flag: the API Only User permission of the user's
        # profile or permission sets, once they are wired here (a callable user_id -> bool).
        self.api_only_permission: Callable[[str], bool] | None = None
        # Whether a session used from outside its profile's login IP ranges is refused on every request (the
        # platform's "Enforce login IP ranges on every request"); off, the ranges are checked at login only.
        self.enforce_ip_every_request = False
        self.cache_seconds = 2.0  # how long a user's profile restrictions are trusted before reading them again
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)  # aware; tests move it
        self._restrictions: dict[str, tuple[ProfileRestrictions, float]] = {}
        self._zone: tuple[Any, float] | None = None
        self._cache_lock = threading.Lock()
        self.configure(lockout_attempts=lockout_attempts, lockout_minutes=lockout_minutes)

    def configure(self, *, lockout_attempts: int, lockout_minutes: float) -> None:
        """Apply the org's settings (``lockout_attempts`` 0 turns lockout off)."""
        if lockout_attempts < 0 or lockout_minutes <= 0:
            raise ConfigurationError("lockout_attempts must be 0 (off) or more and lockout_minutes more than 0")
        self.lockout_attempts = int(lockout_attempts)
        self.lockout_minutes = float(lockout_minutes)

    @property
    def _table(self):  # type: ignore[no-untyped-def]
        return self._store.system["il_user_login"]

    # -- the gate ----------------------------------------------------------------------------------------------

    def password_login(self, username: str, password: str, attempt: LoginAttempt) -> UserRecord:
        """The user for ``username``/``password`` if the policy lets them in; raises :class:`LoginRefused`.

        One full password check is spent whatever happens, so neither unknown usernames nor lockouts show in
        the response time.
        """
        user = self._directory.user_by_username(username) if username.strip() else None
        if user is None:
            spend_password_check(password)
            log.warning("failed login for unknown username %r from %s (%s)", username[:80],
                        attempt.source_ip or "?", attempt.login_type)
            raise LoginRefused(STATUS_INVALID_PASSWORD)
        if not self._directory.password_matches(user.id, password):
            state = self.state(user.id)
            if state.locked(utcnow()):
                status = STATUS_LOCKED_OUT
            else:
                status = STATUS_INVALID_PASSWORD
                if user.is_active:
                    self._count_failure(user.id)
            self._record(user, attempt, status)
            raise LoginRefused(status, user)
        self.check(user, attempt)
        return user

    def check(self, user: UserRecord, attempt: LoginAttempt) -> None:
        """Admit or refuse an identified user; every login path ends here. Records the attempt either way.

        Raises :class:`LoginRefused` with the LoginHistory status of the first rule that refuses. On success the
        failed-login count is reset and ``User.LastLoginDate`` set.
        """
        state = self.state(user.id)
        status = self._refusal(user, state, attempt)
        if status is not None:
            self._record(user, attempt, status)
            raise LoginRefused(status, user)
        self._record(user, attempt, STATUS_SUCCESS, reset_failures=state.failed_logins > 0)

    def _refusal(self, user: UserRecord, state: LoginState, attempt: LoginAttempt) -> str | None:
        """The status refusing this login, or None to let it in. New rules (profile IP ranges) go here."""
        if not user.is_active:
            return STATUS_INACTIVE
        if attempt.uses_password and state.locked(utcnow()):
            return STATUS_LOCKED_OUT
        if attempt.is_console and (state.api_only or (self.api_only_permission is not None
                                                      and self.api_only_permission(user.id))):
            return STATUS_API_ONLY
        restrictions = self.restrictions(user.id)
        if not restrictions.ip_allowed(attempt.source_ip):
            return STATUS_RESTRICTED_IP
        if not restrictions.hours_allow(self.org_now()):
            return STATUS_RESTRICTED_TIME
        return None

    # -- profile login restrictions ----------------------------------------------------------------------------

    def session_refusal(self, user_id: str, source_ip: str | None) -> str | None:
        """Why a session of ``user_id`` may not be used now from ``source_ip`` (None: it may).

        ``Restricted Time`` when the user's login hours have ended (the session ends for good); ``Restricted IP``
        when ``enforce_ip_every_request`` is on and ``source_ip`` is outside the ranges (the request is refused,
        the session stays). ``source_ip`` None (a caller that does not know it) skips the IP check.
        """
        restrictions = self.restrictions(user_id)
        if restrictions is NO_RESTRICTIONS:
            return None
        if not restrictions.hours_allow(self.org_now()):
            return STATUS_RESTRICTED_TIME
        if self.enforce_ip_every_request and source_ip is not None and not restrictions.ip_allowed(source_ip):
            return STATUS_RESTRICTED_IP
        return None

    def restrictions(self, user_id: str) -> ProfileRestrictions:
        """The login restrictions of ``user_id``'s profile (trusted for ``cache_seconds``)."""
        now = time.monotonic()
        with self._cache_lock:
            cached = self._restrictions.get(user_id)
        if cached is not None and now - cached[1] < self.cache_seconds:
            return cached[0]
        table = self._store.system["il_profile_login_policy"]
        users = self._store.tables.get("user")
        found = NO_RESTRICTIONS
        if users is not None and "ProfileId" in users.c:
            with self._store.read() as conn:
                row = conn.execute(select(table.c.ip_ranges, table.c.login_hours)
                                   .select_from(users.join(table, table.c.profile_id == users.c.ProfileId))
                                   .where(users.c.Id == user_id)).first()
            if row is not None and (row.ip_ranges or row.login_hours):
                found = restrictions_from_json(row.ip_ranges, row.login_hours)
        with self._cache_lock:
            if len(self._restrictions) > 10_000:
                self._restrictions.clear()
            self._restrictions[user_id] = (found, now)
        return found

    def set_profile_restrictions(self, profile_id: str, restrictions: ProfileRestrictions) -> bool:
        """Store a profile's login IP ranges and login hours; True when they changed."""
        table = self._store.system["il_profile_login_policy"]
        ip_ranges, login_hours = restrictions_as_json(restrictions)
        with self._store.write() as conn:
            row = conn.execute(select(table.c.ip_ranges, table.c.login_hours)
                               .where(table.c.profile_id == profile_id)).first()
            if row is not None and (row.ip_ranges, row.login_hours) == (ip_ranges, login_hours):
                return False
            if row is None and ip_ranges is None and login_hours is None:
                return False
            if row is None:
                conn.execute(table.insert().values(profile_id=profile_id, ip_ranges=ip_ranges,
                                                   login_hours=login_hours, updated_at=utcnow()))
            else:
                conn.execute(update(table).where(table.c.profile_id == profile_id)
                             .values(ip_ranges=ip_ranges, login_hours=login_hours, updated_at=utcnow()))
        self.invalidate_restrictions()
        return True

    def invalidate_restrictions(self) -> None:
        with self._cache_lock:
            self._restrictions.clear()
            self._zone = None

    def org_now(self) -> datetime:
        """Now in the org's time zone (Organization.TimeZoneSidKey; UTC when unknown), which login hours are in."""
        now = time.monotonic()
        with self._cache_lock:
            zone = self._zone
        if zone is None or now - zone[1] >= self.cache_seconds:
            organization = self._store.tables.get("organization")
            name = None
            if organization is not None and "TimeZoneSidKey" in organization.c:
                with self._store.read() as conn:
                    name = conn.execute(select(organization.c.TimeZoneSidKey).limit(1)).scalar()
            zone = (org_zone(name), now)
            with self._cache_lock:
                self._zone = zone
        return self.clock().astimezone(zone[0])

    # -- per-user state ----------------------------------------------------------------------------------------

    def state(self, user_id: str) -> LoginState:
        table = self._table
        with self._store.read() as conn:
            row = conn.execute(select(table.c.failed_logins, table.c.locked_until, table.c.api_only)
                               .where(table.c.user_id == user_id)).first()
        if row is None:
            return LoginState()
        return LoginState(int(row.failed_logins or 0), row.locked_until, bool(row.api_only))

    def is_locked(self, user_id: str) -> bool:
        return self.state(user_id).locked(utcnow())

    def unlock(self, user_id: str) -> bool:
        """Clear a user's lockout and failure count; True when the user was locked."""
        was_locked = self.is_locked(user_id)
        self._upsert(user_id, failed_logins=0, locked_until=None)
        return was_locked

    def set_api_only(self, user_id: str, api_only: bool) -> None:
        """Mark a user API-only (an integration user: every API, never the console) or not."""
        self._upsert(user_id, api_only=bool(api_only))

    def is_api_only(self, user_id: str) -> bool:
        return self.state(user_id).api_only

    def _count_failure(self, user_id: str) -> None:
        """One more consecutive failure; the one that reaches ``lockout_attempts`` locks the user."""
        table = self._table
        now = utcnow()
        for _ in range(2):  # a concurrent first failure may insert the row between our update and insert
            try:
                with self._store.write() as conn:
                    changed = conn.execute(update(table).where(table.c.user_id == user_id).values(
                        failed_logins=table.c.failed_logins + 1, updated_at=now)).rowcount
                    if not changed:
                        conn.execute(table.insert().values(user_id=user_id, failed_logins=1, locked_until=None,
                                                           api_only=False, updated_at=now))
                    failed = conn.execute(select(table.c.failed_logins)
                                          .where(table.c.user_id == user_id)).scalar() or 0
                    if self.lockout_attempts and failed >= self.lockout_attempts:
                        # Locked: the count starts again from zero once the lockout ends.
                        conn.execute(update(table).where(table.c.user_id == user_id).values(
                            failed_logins=0, locked_until=now + timedelta(minutes=self.lockout_minutes)))
                        log.warning("user %s locked out for %g minutes after %d failed logins", user_id,
                                    self.lockout_minutes, failed)
                return
            except IntegrityError:
                continue

    def _upsert(self, user_id: str, **values: Any) -> None:
        table = self._table
        now = utcnow()
        for _ in range(2):
            try:
                with self._store.write() as conn:
                    if not conn.execute(update(table).where(table.c.user_id == user_id)
                                        .values(**values, updated_at=now)).rowcount:
                        row = {"failed_logins": 0, "locked_until": None, "api_only": False, **values}
                        conn.execute(table.insert().values(user_id=user_id, updated_at=now, **row))
                return
            except IntegrityError:
                continue

    # -- history -----------------------------------------------------------------------------------------------

    def _record(self, user: UserRecord, attempt: LoginAttempt, status: str, *, reset_failures: bool = False) -> None:
        """Write the LoginHistory record (and on success LastLoginDate, the reset count) in one transaction."""
        now = utcnow()
        history = self._store.tables.get(LOGIN_HISTORY.lower())
        record_id = ids.new_id(LOGIN_HISTORY_PREFIX)
        with self._store.write() as conn:
            touched: list[str] = []
            if history is not None:  # absent only in an org not yet deployed with this version's objects
                conn.execute(history.insert().values(
                    Id=record_id, UserId=user.id, LoginTime=now, LoginType=attempt.login_type,
                    SourceIp=_clip(attempt.source_ip, 39), LoginUrl=_clip(attempt.login_url, 255),
                    Status=status, Application=_clip(attempt.application, 64), ApiType=attempt.api_type,
                    ApiVersion=attempt.api_version, Browser=_clip(attempt.browser, 64), Platform=None,
                    IsDeleted=False, CreatedDate=now, CreatedById=user.id, LastModifiedDate=now,
                    LastModifiedById=user.id, SystemModstamp=now))
                touched.append(record_id)
            if status == STATUS_SUCCESS:
                users = self._store.table("User")
                conn.execute(update(users).where(users.c.Id == user.id).values(LastLoginDate=now))
                touched.append(user.id)
                if reset_failures:
                    conn.execute(update(self._table).where(self._table.c.user_id == user.id)
                                 .values(failed_logins=0, updated_at=now))
            # The org's own bookkeeping, not a data change: keep CDC from reporting it as a gap.
            forget_own_changes(conn, self._store.backend, touched)
        if status != STATUS_SUCCESS:
            log.info("login refused for %s from %s (%s, %s): %s", user.username, attempt.source_ip or "?",
                     attempt.login_type, attempt.application, status)

    def history(self, user_id: str | None = None, *, limit: int = 50) -> list[dict[str, Any]]:
        """The latest LoginHistory records (of one user, or everyone's), newest first, with each username."""
        table = self._store.tables.get(LOGIN_HISTORY.lower())
        if table is None:
            return []
        users = self._store.table("User")
        statement = (select(table.c.Id, table.c.UserId, users.c.Username, table.c.LoginTime, table.c.LoginType,
                            table.c.Status, table.c.Application, table.c.SourceIp)
                     .select_from(table.outerjoin(users, users.c.Id == table.c.UserId))
                     .order_by(desc(table.c.LoginTime), desc(table.c.Id)).limit(limit))
        if user_id is not None:
            statement = statement.where(table.c.UserId == user_id)
        with self._store.read() as conn:
            return [dict(row._mapping) for row in conn.execute(statement)]


def _clip(value: str | None, length: int) -> str | None:
    return value[:length] if value else value


__all__ = [
    "BROWSER_APPLICATION",
    "LOGIN_TYPE_APPLICATION",
    "LOGIN_TYPE_OAUTH",
    "LOGIN_TYPE_SOAP",
    "RESTRICTED_MESSAGES",
    "RESTRICTIONS",
    "STATUS_API_ONLY",
    "STATUS_INACTIVE",
    "STATUS_INVALID_PASSWORD",
    "STATUS_LOCKED_OUT",
    "STATUS_RESTRICTED_IP",
    "STATUS_RESTRICTED_TIME",
    "STATUS_SUCCESS",
    "LoginAttempt",
    "LoginPolicy",
    "LoginRefused",
    "LoginState",
]
