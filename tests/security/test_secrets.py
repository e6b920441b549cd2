"""Secrets encrypted at rest with a key outside the store; the CLI never shows a value."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from interlink.errors import ConfigurationError
from interlink.security.secrets import KEY_VARIABLE
from interlink.testing import local_org, run_cli


def test_values_are_encrypted_and_the_key_stays_outside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_VARIABLE, raising=False)
    with local_org(tmp_path / "org") as org:
        org.secrets.set("BILLING_PW", "hunter2-very-secret")
        assert org.secrets.get("BILLING_PW") == "hunter2-very-secret"
        table = org.store.system["il_secret"]
        with org.store.read() as conn:
            raw = bytes(conn.execute(select(table.c.value)).scalar())
        assert b"hunter2" not in raw
        key_file = tmp_path / "org" / "secret.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert b"hunter2" not in (tmp_path / "org" / "org.db").read_bytes()
        org.secrets.set("BILLING_PW", "rotated")
        assert org.secrets.get("BILLING_PW") == "rotated" and [n for n, _ in org.secrets.names()] == ["BILLING_PW"]
        assert org.secrets.delete("BILLING_PW") and org.secrets.get("BILLING_PW") is None


def test_a_different_key_cannot_read_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_VARIABLE, Fernet.generate_key().decode())
    with local_org(tmp_path / "org") as org:
        org.secrets.set("S", "v")
    monkeypatch.setenv(KEY_VARIABLE, Fernet.generate_key().decode())
    with local_org(tmp_path / "org") as org, pytest.raises(ConfigurationError, match="cannot be decrypted"):
        org.secrets.get("S")
    monkeypatch.setenv(KEY_VARIABLE, "not-a-key")
    with local_org(tmp_path / "org") as org, pytest.raises(ConfigurationError, match="not a valid Fernet key"):
        org.secrets.get("S")


def test_the_cli_reads_values_from_stdin_and_never_prints_them(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_VARIABLE, raising=False)
    data_dir = tmp_path / "org"
    with local_org(data_dir):
        pass
    stored = subprocess.run([sys.executable, "-m", "interlink.cli.main", "secrets", "set", "ERP_TOKEN",
                             "--data-dir", str(data_dir)], input="tok-123\n", capture_output=True, text=True,
                            check=False, timeout=60)
    assert stored.returncode == 0, stored.stderr
    listed = run_cli("secrets", "list", "--data-dir", str(data_dir))
    assert listed.stdout.startswith("ERP_TOKEN\t") and "tok-123" not in listed.stdout + listed.stderr
    with local_org(data_dir) as org:
        assert org.secrets.get("ERP_TOKEN") == "tok-123"
    assert run_cli("secrets", "delete", "NOPE", "--data-dir", str(data_dir), check=False).returncode == 1
    assert run_cli("secrets", "set", "bad name", "--data-dir", str(data_dir), check=False).returncode == 2
