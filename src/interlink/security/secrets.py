"""Secrets kept in the org, encrypted at rest (Fernet: AES-128-CBC with HMAC-SHA256).

Named credentials name a secret as ``${secret:BILLING_PASSWORD}`` (or an environment variable as
``${BILLING_PASSWORD}``). ``interlink secrets set NAME`` stores one; its value is encrypted with a key that never
enters the store: ``INTERLINK_SECRET_KEY`` (a Fernet key) or, when unset, ``<data_dir>/secret.key``, created on
first use readable by its owner only. A stolen database without the key reveals nothing. No API, log or export
shows a secret's value; ``interlink secrets list`` shows names and dates only.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select

from interlink.errors import ConfigurationError
from interlink.store.database import Store, utcnow

KEY_VARIABLE = "INTERLINK_SECRET_KEY"


def load_key(data_dir: Path) -> bytes:
    """The secret key: ``INTERLINK_SECRET_KEY``, else ``data_dir/secret.key`` (created, mode 0600)."""
    from_env = os.environ.get(KEY_VARIABLE)
    if from_env:
        return from_env.encode()
    path = data_dir / "secret.key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(Fernet.generate_key())
    return path.read_bytes().strip()


class SecretStore:
    """Encrypted named secrets in ``il_secret``."""

    def __init__(self, store: Store, data_dir: Path) -> None:
        self.store = store
        self.data_dir = data_dir
        self._fernet: Fernet | None = None

    @property
    def fernet(self) -> Fernet:
        if self._fernet is None:
            try:
                self._fernet = Fernet(load_key(self.data_dir))
            except ValueError:
                raise ConfigurationError(f"{KEY_VARIABLE} (or secret.key) is not a valid Fernet key: make one with "
                                         "`python -c 'from cryptography.fernet import Fernet; "
                                         "print(Fernet.generate_key().decode())'`") from None
        return self._fernet

    @property
    def _table(self):  # type: ignore[no-untyped-def]
        return self.store.system["il_secret"]

    def set(self, name: str, value: str) -> None:
        token = self.fernet.encrypt(value.encode())
        table = self._table
        with self.store.write() as conn:
            if conn.execute(table.update().where(table.c.name == name).values(
                    value=token, updated_at=utcnow())).rowcount == 0:
                conn.execute(table.insert().values(name=name, value=token, updated_at=utcnow()))

    def get(self, name: str) -> str | None:
        table = self._table
        with self.store.read() as conn:
            token = conn.execute(select(table.c.value).where(table.c.name == name)).scalar()
        if token is None:
            return None
        try:
            return self.fernet.decrypt(bytes(token)).decode()
        except InvalidToken:
            raise ConfigurationError(f"the secret {name} cannot be decrypted with this key (was "
                                     f"{KEY_VARIABLE} or secret.key changed?)") from None

    def delete(self, name: str) -> bool:
        table = self._table
        with self.store.write() as conn:
            return bool(conn.execute(table.delete().where(table.c.name == name)).rowcount)

    def names(self) -> list[tuple[str, datetime]]:
        table = self._table
        with self.store.read() as conn:
            return [(row.name, row.updated_at) for row in conn.execute(
                select(table.c.name, table.c.updated_at).order_by(table.c.name))]


__all__ = ["KEY_VARIABLE", "SecretStore", "load_key"]
