"""Console fixtures: an in-process org and a logged-in browser-like client."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from interlink.api.app import build_app
from interlink.testing import ADMIN_PASSWORD, local_org

ADMIN = "admin@interlink.local"


def login(client: TestClient, username: str = ADMIN, password: str = ADMIN_PASSWORD) -> str:
    """Log in through the form as a browser would; returns the session's CSRF token."""
    page = client.get("/console/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token, page.text
    response = client.post("/console/login", data={"username": username, "password": password,
                                                   "csrf": token.group(1), "next": "/console/"},
                           follow_redirects=True)
    assert response.status_code == 200, response.text
    found = re.search(r'data-csrf="([^"]+)"', response.text)
    assert found
    return found.group(1)


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
