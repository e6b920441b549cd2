"""Console fixtures: an in-process org and a logged-in browser-like client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from console_helpers import login  # type: ignore[import-not-found]
from starlette.testclient import TestClient

from interlink.api.app import build_app
from interlink.testing import local_org


@pytest.fixture
def console_org(tmp_path: Path):  # type: ignore[no-untyped-def]
    with local_org(tmp_path / "org") as org:
        yield org


@pytest.fixture
def browser(console_org) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    """A client on https://testserver (secure cookies are sent) logged in as the admin."""
    with TestClient(build_app(console_org), base_url="https://testserver") as client:
        client.csrf = login(client)  # type: ignore[attr-defined]
        yield client


# -- a real browser against a live server ------------------------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")
BROWSER_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def chromium():  # type: ignore[no-untyped-def]
    """Headless Debian Chromium driven by Playwright (skips with the reason when either is missing).

    Module-scoped: Playwright's sync API keeps an asyncio loop running in the main thread while it is started, and
    tests that call ``asyncio.run`` (the NATS ones) cannot run in a worker where it still is."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (make test installs it: apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def live_console(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """One `interlink up --sample-data` over TLS for the browser tests of this session."""
    from interlink.testing import live_server

    with live_server(tmp_path_factory.mktemp("console-live"), extra_args=("--sample-data",)) as server:
        yield server


