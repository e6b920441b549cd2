"""The console's Limits & health section: the /limits figures, /health's components, usage over 24 hours."""

from __future__ import annotations

from starlette.testclient import TestClient

from interlink.api.app import build_app
from interlink.testing import rest_client

V = "/services/data/v66.0"


def test_limits_json_matches_the_api_and_has_the_usage_history(console_org, browser) -> None:  # type: ignore[no-untyped-def]
    api = rest_client(console_org)
    for _ in range(4):
        assert api.get(f"{V}/sobjects/Account/describe").status_code == 200
    console_org.bus.reserve(3)  # three platform events published
    console_org.bus.deliveries.add(7)  # delivered to subscribers
    from_api = api.get(f"{V}/limits").json()  # the fifth request: it counts itself
    data = browser.get("/console/api/limits").json()
    assert data["limits"] == from_api
    assert data["limits"]["DailyApiRequests"]["Max"] - data["limits"]["DailyApiRequests"]["Remaining"] == 5
    health = api.get("/health").json()
    assert data["health"]["status"] == health["status"] == "ok"
    assert data["health"]["components"]["store"] == {"status": "ok", "backend": "sqlite"}
    assert data["health"]["components"]["bus"]["backend"] == "sqlite"
    assert set(data["health"]["components"]) == set(health["components"])

    usage = data["usage"]
    hourly, minute = usage["hourly"], usage["perMinute"]
    assert len(hourly["apiRequests"]) == 24 and len(minute["apiRequests"]) == 60
    assert hourly["step"] == 3600 and minute["step"] == 60 and minute["start"] % 60 == 0
    # Everything happened in the last minute or two: the newest buckets hold it (the current one is last).
    assert sum(hourly["apiRequests"]) == sum(minute["apiRequests"]) == 5
    assert sum(hourly["eventsPublished"]) == 3 and sum(minute["eventsDelivered"]) == 7
    assert sum(minute["apiRequests"][:-2]) == 0
    assert usage["totals"]["eventsDelivered"] == 7
    assert usage["allocations"] == {"apiRequestsPerDay": console_org.usage.allocation,
                                    "eventsPublishedPerHour": console_org.bus.usage.allocation}


def test_limits_page_shows_allocations_backends_and_charts(console_org, browser) -> None:  # type: ignore[no-untyped-def]
    page = browser.get("/console/limits")
    assert page.status_code == 200
    text = page.text
    assert 'aria-current="page">Limits &amp; health' in text
    for name in ("DailyApiRequests", "DailyBulkApiBatches", "HourlyPublishedPlatformEvents"):
        assert f'data-limit="{name}"' in text
    assert "backend</span> sqlite" in text  # store and bus
    assert 'id="live-chart"' in text and 'id="api-hourly"' in text and 'id="events-hourly"' in text
    assert '<script type="application/json" id="limits-data">{' in text
    assert "<script>" not in text


def test_limits_need_a_session(console_org) -> None:  # type: ignore[no-untyped-def]
    with TestClient(build_app(console_org), base_url="https://testserver") as client:
        assert client.get("/console/limits", follow_redirects=False).status_code == 303
        refused = client.get("/console/api/limits")
        assert refused.status_code == 401
        assert refused.json()[0]["errorCode"] == "INVALID_SESSION_ID"
