"""Connected apps (OAuth clients) and user credentials, kept in the org's system tables."""

from __future__ import annotations

import functools
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from interlink import ids
from interlink.errors import ConfigurationError
from interlink.security.passwords import hash_password, verify_password
from interlink.store.database import Store, utcnow

CONNECTED_APP_PREFIX = "0H4"


@dataclass(frozen=True)
class ConnectedApp:
    id: str
    name: str
    consumer_key: str
    consumer_secret: str
    certificate_pem: str | None
    run_as_user_id: str | None
    callback_url: str | None = None

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
        with self._store.write() as conn:
            changed = conn.execute(update(table).where(table.c.user_id == user_id).values(
                password_hash=hashed, failed_attempts=0, updated_at=utcnow())).rowcount
            if not changed:
                conn.execute(table.insert().values(user_id=user_id, password_hash=hashed, failed_attempts=0,
                                                   updated_at=utcnow()))

    def check_password(self, username: str, password: str) -> UserRecord | None:
        """The user when ``username``/``password`` match an active user, else None."""
        user = self.user_by_username(username)
        if user is None or not user.is_active:
            # Spend the same time as a real check so usernames can't be probed by timing.
            verify_password(password, _equalizer_hash())
            return None
        table = self._store.system["il_user_credential"]
        with self._store.read() as conn:
            stored = conn.execute(select(table.c.password_hash).where(table.c.user_id == user.id)).scalar()
        if stored is None or not verify_password(password, stored):
            return None
        return user

    # -- connected apps ----------------------------------------------------------------------------------------

    def create_app(self, name: str, *, run_as_user_id: str | None = None, certificate_pem: str | None = None,
                   consumer_key: str | None = None, consumer_secret: str | None = None,
                   callback_url: str | None = None) -> ConnectedApp:
        table = self._store.system["il_connected_app"]
        app = ConnectedApp(
            id=ids.new_id(CONNECTED_APP_PREFIX),
            name=name,
            consumer_key=consumer_key or "3MVG9" + secrets.token_urlsafe(60).replace("-", "A").replace("_", "b"),
            consumer_secret=consumer_secret or secrets.token_hex(32).upper(),
            certificate_pem=certificate_pem,
            run_as_user_id=run_as_user_id,
            callback_url=callback_url,
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
        return app

    def update_app(self, name: str, **values: Any) -> ConnectedApp:
        table = self._store.system["il_connected_app"]
        allowed = {"certificate_pem", "run_as_user_id", "callback_url", "consumer_secret"}
        unknown = set(values) - allowed
        if unknown:
            raise ConfigurationError(f"cannot change {', '.join(sorted(unknown))} of a connected app")
        with self._store.write() as conn:
            if not conn.execute(update(table).where(table.c.name == name).values(**values)).rowcount:
                raise ConfigurationError(f"no connected app named {name!r}")
        app = self.app_by_name(name)
        assert app is not None
        return app

    def app_by_key(self, consumer_key: str) -> ConnectedApp | None:
        table = self._store.system["il_connected_app"]
        with self._store.read() as conn:
            row = conn.execute(select(table).where(table.c.consumer_key == consumer_key)).first()
        return self._app(row)

    def app_by_name(self, name: str) -> ConnectedApp | None:
        table = self._store.system["il_connected_app"]
        with self._store.read() as conn:
            row = conn.execute(select(table).where(table.c.name == name)).first()
        return self._app(row)

    def apps(self) -> list[ConnectedApp]:
        table = self._store.system["il_connected_app"]
        with self._store.read() as conn:
            return [a for a in (self._app(r) for r in conn.execute(select(table).order_by(table.c.name))) if a]

    @staticmethod
    def _app(row: Any) -> ConnectedApp | None:
        if row is None:
            return None
        return ConnectedApp(row.id, row.name, row.consumer_key, row.consumer_secret, row.certificate_pem,
                            row.run_as_user_id, row.callback_url)
