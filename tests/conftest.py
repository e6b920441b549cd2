"""Shared fixtures: an org per test on every store backend, REST clients, a live TLS server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from interlink.testing import live_server, local_org, postgres_database, rest_client

BACKENDS = ["sqlite", "postgresql"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--store", action="store", default="all", choices=["all", *BACKENDS],
                     help="Store backend(s) for the `org` fixture: sqlite, postgresql or all (default).")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "store_backend" in metafunc.fixturenames:
        chosen = metafunc.config.getoption("--store")
        metafunc.parametrize("store_backend", BACKENDS if chosen == "all" else [chosen], scope="session")


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    return os.environ.get("INTERLINK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def store_url(store_backend: str, tmp_path: Path) -> Iterator[str]:
    """'' for SQLite under tmp_path; a fresh PostgreSQL database (dropped afterwards) otherwise."""
    if store_backend == "sqlite":
        yield ""
        return
    try:
        with postgres_database() as url:
            yield url
    except RuntimeError as exc:
        pytest.skip(str(exc))


@pytest.fixture
def org(tmp_path: Path, store_url: str):  # type: ignore[no-untyped-def]
    """A freshly bootstrapped org, on each store backend."""
    with local_org(tmp_path / "org", store=store_url, reuse_bootstrap=True) as opened:
        yield opened


@pytest.fixture
def sqlite_org(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A freshly bootstrapped org on SQLite only (for tests about the embedded default)."""
    with local_org(tmp_path / "org", reuse_bootstrap=True) as opened:
        yield opened


@pytest.fixture
def client(org):  # type: ignore[no-untyped-def]
    """An authorised in-process REST client for ``org`` (admin user)."""
    with rest_client(org) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """One real `interlink up` over TLS for the session (sample data on)."""
    with live_server(tmp_path_factory.mktemp("live"), extra_args=("--sample-data",)) as server:
        yield server
