"""Connected apps (OAuth clients) and user credentials, kept in the org's system tables."""

from __future__ import annotations

import functools
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from interlink import ids
from interlink.errors import ConfigurationError
from interlink.security.passwords import hash_password, verify_password
from interlink.store.database import Store, utcnow

CONNECTED_APP_PREFIX = "0H4"
#: The Permitted Users policy's options of :meth:`Directory.update_app`.
_ACCESS_KEYS = ("admin_approved_only", "profiles", "permission_sets")


@dataclass(frozen=True)
class ConnectedApp:
    id: str
    name: str
    consumer_key: str
    consumer_secret: str
    certificate_pem: str | None
    run_as_user_id: str | None
    callback_url: str | None = None
    rotate_refresh_tokens: bool = False  # each refresh_token grant replaces the refresh token (see tokens.py)
    # Permitted Users: "Admin approved users are pre-authorized" (only users of these profiles or permission sets,
    # by name) rather than "All users may self-authorize".
    admin_approved_only: bool = False
    profiles: tuple[str, ...] = ()
    permission_sets: tuple[str, ...] = ()

    def secret_matches(self, secret: str | None) -> bool:
        return secret is not None and hmac.compare_digest(secret.encode(), self.consumer_secret.encode())


@dataclass(frozen=True)
class UserRecord:
    """The columns of a User row that authentication needs."""

    id: str
    username: str
    is_active: bool
    name: str
    email: str | None
    fields: dict[str, Any]


@functools.cache
def _equalizer_hash() -> str:
    return hash_password("timing-equalizer")


def spend_password_check(password: str) -> None:
    """Spend the time of a real password check, so usernames and lockouts can't be probed by timing."""
    verify_password(password, _equalizer_hash())


class Directory:
    """Looks up users and connected apps; verifies and sets passwords."""

    def __init__(self, store: Store) -> None:
        self._store = store

    # -- users -----------------------------------------------------------------------------------------------

    def user_by_username(self, username: str) -> UserRecord | None:
        table = self._store.table("User")
        from sqlalchemy import func

        with self._store.read() as conn:
            row = conn.execute(select(table).where(func.lower(table.c.Username) == username.strip().lower())
                               .where(table.c.IsDeleted.is_not(True))).first()
        return self._user(row)

    def user_by_id(self, user_id: str) -> UserRecord | None:
        table = self._store.table("User")
        normalized = ids.normalize(user_id)
        if normalized is None:
            return None
        with self._store.read() as conn:
            row = conn.execute(select(table).where(table.c.Id == normalized)).first()
        return self._user(row)

    @staticmethod
    def _user(row: Any) -> UserRecord | None:
        if row is None:
            return None
        data = dict(row._mapping)
        return UserRecord(data["Id"], data["Username"], bool(data.get("IsActive", True)), data.get("Name") or "",
                          data.get("Email"), data)

    def set_password(self, user_id: str, password: str) -> None:
        if len(password) < 8:
            raise ConfigurationError("passwords need at least 8 characters")
        table = self._store.system["il_user_credential"]
        hashed = hash_password(password)  # scrypt is deliberately slow: hash once
        login_state = self._store.system["il_user_login"]
        with self._store.write() as conn:
            changed = conn.execute(update(table).where(table.c.user_id == user_id).values(
                password_hash=hashed, failed_attempts=0, updated_at=utcnow())).rowcount
            if not changed:
                conn.execute(table.insert().values(user_id=user_id, password_hash=hashed, failed_attempts=0,
                                                   updated_at=utcnow()))
            # A new password also ends a lockout, as an administrator's password reset does on the platform.
            conn.execute(update(login_state).where(login_state.c.user_id == user_id)
                         .values(failed_logins=0, locked_until=None, updated_at=utcnow()))

    def check_password(self, username: str, password: str) -> UserRecord | None:
        """The user when ``username``/``password`` match an active user, else None.

        Only a check: it neither counts failures nor records history. Logins go through
        :class:`interlink.security.logins.LoginPolicy`.
        """
        user = self.user_by_username(username)
        if user is None or not user.is_active:
            spend_password_check(password)
            return None
        return user if self.password_matches(user.id, password) else None

    def password_matches(self, user_id: str, password: str) -> bool:
        """Whether ``password`` is the user's (always one full scrypt check, even without a stored password)."""
        table = self._store.system["il_user_credential"]
        with self._store.read() as conn:
            stored = conn.execute(select(table.c.password_hash).where(table.c.user_id == user_id)).scalar()
        if stored is None:
            spend_password_check(password)
            return False
        return verify_password(password, stored)

    # -- connected apps ----------------------------------------------------------------------------------------

    def create_app(self, name: str, *, run_as_user_id: str | None = None, certificate_pem: str | None = None,
                   consumer_key: str | None = None, consumer_secret: str | None = None,
                   callback_url: str | None = None, rotate_refresh_tokens: bool = False) -> ConnectedApp:
        table = self._store.system["il_connected_app"]
        app = ConnectedApp(
            id=ids.new_id(CONNECTED_APP_PREFIX),
            name=name,
            consumer_key=consumer_key or "3MVG9" + secrets.token_urlsafe(60).replace("-", "A").replace("_", "b"),
            consumer_secret=consumer_secret or secrets.token_hex(32).upper(),
            certificate_pem=certificate_pem,
            run_as_user_id=run_as_user_id,
            callback_url=callback_url,
            rotate_refresh_tokens=rotate_refresh_tokens,
        )
        with self._store.write() as conn:
            if conn.execute(select(table.c.id).where(table.c.name == name)).first() is not None:
                raise ConfigurationError(f"a connected app named {name!r} already exists")
            if conn.execute(select(table.c.id).where(table.c.consumer_key == app.consumer_key)).first():
                raise ConfigurationError(f"consumer key {app.consumer_key!r} is already used by another app")
            conn.execute(table.insert().values(
                id=app.id, name=app.name, consumer_key=app.consumer_key, consumer_secret=app.consumer_secret,
                certificate_pem=certificate_pem, run_as_user_id=run_as_user_id, created_at=utcnow(),
                callback_url=callback_url))
            if rotate_refresh_tokens:
                self._set_policy(conn, app.id, rotate_refresh_tokens=True)
        return app

    def update_app(self, name: str, **values: Any) -> ConnectedApp:
        table = self._store.system["il_connected_app"]
        allowed = {"certificate_pem", "run_as_user_id", "callback_url", "consumer_secret", "rotate_refresh_tokens",
                   *_ACCESS_KEYS}
        unknown = set(values) - allowed
        if unknown:
            raise ConfigurationError(f"cannot change {', '.join(sorted(unknown))} of a connected app")
        policy = {key: values.pop(key) for key in ("rotate_refresh_tokens",) if key in values}
        access = {key: values.pop(key) for key in _ACCESS_KEYS if key in values}
        with self._store.write() as conn:
            app_id = conn.execute(select(table.c.id).where(table.c.name == name)).scalar()
            if app_id is None:
                raise ConfigurationError(f"no connected app named {name!r}")
            if values:
                conn.execute(update(table).where(table.c.id == app_id).values(**values))
            if policy:
                self._set_policy(conn, app_id, **policy)
            if access:
                self._set_access(conn, app_id, **access)
        app = self.app_by_name(name)
        assert app is not None
        return app

    def _set_policy(self, conn: Any, app_id: str, *, rotate_refresh_tokens: bool) -> None:
        policy = self._store.system["il_connected_app_policy"]
        if not conn.execute(update(policy).where(policy.c.app_id == app_id)
                            .values(rotate_refresh_tokens=bool(rotate_refresh_tokens))).rowcount:
            conn.execute(policy.insert().values(app_id=app_id, rotate_refresh_tokens=bool(rotate_refresh_tokens)))

    def _set_access(self, conn: Any, app_id: str, **values: Any) -> None:
        table = self._store.system["il_connected_app_access"]
        current = conn.execute(select(table).where(table.c.app_id == app_id)).first()
        row = {"admin_approved_only": bool(current.admin_approved_only) if current else False,
               "profiles": current.profiles if current else "[]",
               "permission_sets": current.permission_sets if current else "[]"}
        if "admin_approved_only" in values:
            row["admin_approved_only"] = bool(values["admin_approved_only"])
        for key in ("profiles", "permission_sets"):
            if key in values:
                row[key] = json.dumps(sorted({str(name) for name in values[key]}))
        if current is None:
            conn.execute(table.insert().values(app_id=app_id, **row))
        else:
            conn.execute(update(table).where(table.c.app_id == app_id).values(**row))

    def _select_apps(self):  # type: ignore[no-untyped-def]
        table = self._store.system["il_connected_app"]
        policy = self._store.system["il_connected_app_policy"]
        access = self._store.system["il_connected_app_access"]
        return select(table, policy.c.rotate_refresh_tokens, access.c.admin_approved_only, access.c.profiles,
                      access.c.permission_sets).select_from(
            table.outerjoin(policy, policy.c.app_id == table.c.id).outerjoin(access, access.c.app_id == table.c.id))

    def app_by_key(self, consumer_key: str) -> ConnectedApp | None:
        table = self._store.system["il_connected_app"]
        with self._store.read() as conn:
            row = conn.execute(self._select_apps().where(table.c.consumer_key == consumer_key)).first()
        return self._app(row)

    def app_by_name(self, name: str) -> ConnectedApp | None:
        table = self._store.system["il_connected_app"]
        with self._store.read() as conn:
            row = conn.execute(self._select_apps().where(table.c.name == name)).first()
        return self._app(row)

    def apps(self) -> list[ConnectedApp]:
        table = self._store.system["il_connected_app"]
        with self._store.read() as conn:
            rows = conn.execute(self._select_apps().order_by(table.c.name))
            return [a for a in (self._app(r) for r in rows) if a]

    @staticmethod
    def _app(row: Any) -> ConnectedApp | None:
        if row is None:
            return None
        return ConnectedApp(row.id, row.name, row.consumer_key, row.consumer_secret, row.certificate_pem,
                            row.run_as_user_id, row.callback_url, bool(row.rotate_refresh_tokens),
                            bool(row.admin_approved_only), tuple(json.loads(row.profiles or "[]")),
                            tuple(json.loads(row.permission_sets or "[]")))
