"""Console login, logout, CSRF and security headers."""

from __future__ import annotations

import re

from starlette.testclient import TestClient

from interlink.api.app import build_app


def test_pages_redirect_to_login_and_back(console_org) -> None:  # type: ignore[no-untyped-def]
    with TestClient(build_app(console_org), base_url="https://testserver") as client:
        response = client.get("/console/?x=1", follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == "/console/login?next=%2Fconsole%2F%3Fx%3D1"
        login_page = client.get(response.headers["location"])
        assert 'name="next" value="/console/?x=1"' in login_page.text


def test_login_sets_a_secure_http_only_cookie_and_home_renders(browser) -> None:  # type: ignore[no-untyped-def]
    cookie = next(c for c in browser.cookies.jar if c.name == "il_console")
    assert cookie.secure and cookie.path == "/console"
    assert cookie.has_nonstandard_attr("HttpOnly")
    home = browser.get("/console/")
    assert home.status_code == 200
    assert "Objects" in home.text and "Account" in home.text
    assert home.headers["strict-transport-security"].startswith("max-age=")
    assert "script-src 'self'" in home.headers["content-security-policy"]
    assert home.headers["x-frame-options"] == "DENY"
    assert "<script>" not in home.text  # no inline scripts anywhere


def test_wrong_password_is_refused(console_org) -> None:  # type: ignore[no-untyped-def]
    with TestClient(build_app(console_org), base_url="https://testserver") as client:
        page = client.get("/console/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        response = client.post("/console/login", data={"username": "admin@interlink.local", "password": "nope",
                                                       "csrf": token})
        assert response.status_code == 401
        assert "check your username and password" in response.text
        assert "il_console" not in client.cookies


def test_login_without_the_form_token_is_refused(console_org) -> None:  # type: ignore[no-untyped-def]
    from interlink.testing import ADMIN_PASSWORD

    with TestClient(build_app(console_org), base_url="https://testserver") as client:
        response = client.post("/console/login", data={"username": "admin@interlink.local",
                                                       "password": ADMIN_PASSWORD, "csrf": "forged"})
        assert response.status_code == 403
        assert "il_console" not in client.cookies


def test_next_never_leaves_the_console(console_org) -> None:  # type: ignore[no-untyped-def]
    from interlink.testing import ADMIN_PASSWORD

    with TestClient(build_app(console_org), base_url="https://testserver") as client:
        page = client.get("/console/login?next=//evil.example/x")
        assert 'name="next" value="/console/"' in page.text
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        response = client.post("/console/login", data={"username": "admin@interlink.local",
                                                       "password": ADMIN_PASSWORD, "csrf": token,
                                                       "next": "https://evil.example/"}, follow_redirects=False)
        assert response.headers["location"] == "/console/"


def test_logout_needs_csrf_and_revokes_the_session(browser) -> None:  # type: ignore[no-untyped-def]
    refused = browser.post("/console/logout", data={"csrf": "wrong"})
    assert refused.status_code == 403
    assert browser.get("/console/").status_code == 200
    token = next(c.value for c in browser.cookies.jar if c.name == "il_console")
    out = browser.post("/console/logout", data={"csrf": browser.csrf}, follow_redirects=False)
    assert out.status_code == 303
    browser.cookies.set("il_console", token, domain="testserver.local", path="/console")
    again = browser.get("/console/", follow_redirects=False)
    assert again.status_code == 303  # the revoked token no longer opens the console


def test_static_files_are_served(browser) -> None:  # type: ignore[no-untyped-def]
    assert "const Console" in browser.get("/console/static/console.js").text
    assert browser.get("/console/static/../session.py").status_code == 404
