"""The Limits & health page in headless Chromium against a live `interlink up`: the charts draw and keep updating."""

from __future__ import annotations

import ssl

import httpx
from console_helpers import open_console  # type: ignore[import-not-found]


def test_limits_page_draws_usage_charts_and_updates_them(chromium, live_console) -> None:  # type: ignore[no-untyped-def]
    trust = ssl.create_default_context(cafile=live_console.ca_bundle)
    with httpx.Client(base_url=live_console.url, verify=trust, timeout=20,
                      headers={"Authorization": f"Bearer {live_console.token()}"}) as http:
        for _ in range(5):
            assert http.get("/services/data/v66.0/limits").status_code == 200
    page = open_console(chromium, live_console)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(f"{live_console.url}/console/limits")
        assert page.locator("#live-chart path.line").count() == 3  # requests, published, delivered
        assert page.locator("#api-hourly rect.bar").count() >= 1  # this hour's requests
        assert "backend sqlite" in page.locator("#health").inner_text()
        first = page.locator("#live-chart").get_attribute("data-drawn")
        page.wait_for_function("(first) => document.querySelector('#live-chart').dataset.drawn !== first", arg=first,
                               timeout=15_000)
        assert page.locator("#live-updated").inner_text().startswith("updated")
        assert int(page.locator('[data-limit="DailyApiRequests"] [data-field="used"]').inner_text()) >= 5
        assert errors == []
    finally:
        page.context.close()
