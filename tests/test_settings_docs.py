"""Every setting is documented, with its environment variable; precedence works as documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from interlink.errors import ConfigurationError
from interlink.settings import Settings

DOCS = Path(__file__).resolve().parents[1] / "docs" / "settings.md"


def test_every_setting_is_documented_with_its_env_var() -> None:
    text = DOCS.read_text()
    for name in Settings.names():
        assert f"`{name}`" in text, f"docs/settings.md does not document {name}"
        assert f"`{Settings.env_name(name)}`" in text, f"docs/settings.md lacks {Settings.env_name(name)}"


def test_precedence_defaults_file_env_flags(tmp_path: Path) -> None:
    (tmp_path / "interlink.toml").write_text('[interlink]\nport = 9000\nlog_level = "debug"\norg_name = "File"\n')
    env = {"INTERLINK_PROJECT_DIR": str(tmp_path), "INTERLINK_PORT": "9100", "INTERLINK_ORG_NAME": "Env"}
    settings = Settings.load({"port": 9200}, env=env)
    assert settings.port == 9200  # flag beats env
    assert settings.org_name == "Env"  # env beats file
    assert settings.log_level == "debug"  # file beats default
    assert settings.daily_api_requests == 100_000  # default


def test_bad_values_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="INTERLINK_PORT"):
        Settings.load(env={"INTERLINK_PORT": "eighty"})
    (tmp_path / "interlink.toml").write_text("[interlink]\nnot_a_setting = 1\n")
    with pytest.raises(ConfigurationError, match="not_a_setting"):
        Settings.load(env={"INTERLINK_PROJECT_DIR": str(tmp_path)})


def test_store_url_defaults_to_sqlite_in_data_dir(tmp_path: Path) -> None:
    settings = Settings.load({"data_dir": tmp_path}, env={})
    assert settings.store_url == f"sqlite:///{(tmp_path / 'org.db').resolve()}"
    assert settings.store_backend == "sqlite"
    assert Settings.load({"store": "postgresql://u@h/db"}, env={}).store_backend == "postgresql"
