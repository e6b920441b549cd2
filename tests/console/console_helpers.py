"""Helpers for the console tests: log in through the form (in-process) or in a real browser."""

from __future__ import annotations

import re

from starlette.testclient import TestClient

from interlink.testing import ADMIN_PASSWORD

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


def open_console(chromium, live, username: str = ADMIN, password: str = ADMIN_PASSWORD):  # type: ignore[no-untyped-def]
    """A new browser page logged in to ``live``'s console (the caller closes ``page.context``).

    The server's certificate comes from the org's own CA, which Chromium's store does not hold, hence
    ``ignore_https_errors``; the cookies are still Secure and the origin is https.
    """
    context = chromium.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.goto(f"{live.url}/console/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live.url}/console/")
    return page
