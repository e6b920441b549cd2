"""The console in headless Chromium against a live `interlink up`: log in, see the home page, log out."""

from __future__ import annotations

from console_helpers import open_console  # type: ignore[import-not-found]


def test_login_home_and_logout_in_a_real_browser(chromium, live_console) -> None:  # type: ignore[no-untyped-def]
    page = open_console(chromium, live_console)
    try:
        assert page.inner_text("h1")
        assert page.locator("table.grid >> text=Account").first.is_visible()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.reload()
        assert errors == []
        page.click("button:has-text('Log out')")
        page.wait_for_url(f"{live_console.url}/console/login")
        page.goto(f"{live_console.url}/console/")
        assert "/console/login" in page.url
    finally:
        page.context.close()
