"""The console's Limits & health section: allocations, usage over 24 hours, the backends, a live chart.

The figures are the ones the API answers: :func:`interlink.api.app.org_limits` (``GET /limits``) and
:func:`interlink.api.app.health_report` (``GET /health``). Usage history comes from the usage counters' own
per-minute buckets (API requests, platform events published, events delivered to subscribers), which every serving
process flushes to the store once a second, so the charts show the whole org, not just this process.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from interlink.api.app import health_report, org_limits
from interlink.console.render import api, json_response, org_of, page, render
from interlink.console.session import ConsoleUser

SECTION = "/console/limits"
HOURS = 24
LIVE_MINUTES = 60
_LABELS = {
    "DailyApiRequests": "API requests (24 h)",
    "DailyBulkApiBatches": "Bulk API batches (24 h)",
    "DailyBulkV2QueryJobs": "Bulk API 2.0 query jobs (24 h)",
    "HourlyODataCallout": "OData callouts (1 h)",
    "HourlyPublishedPlatformEvents": "Platform events published (1 h)",
}


def _series(history: dict[int, int], first: int, count: int, width: int) -> list[int]:
    """Counts per bucket of ``width`` minutes, ``count`` buckets from bucket ``first`` on."""
    buckets = [0] * count
    for minute, amount in history.items():
        index = minute // width - first
        if 0 <= index < count:
            buckets[index] += amount
    return buckets


def usage(org: Any, *, hours: int = HOURS, minutes: int = LIVE_MINUTES) -> dict[str, Any]:
    """Requests and events per hour over ``hours`` and per minute over ``minutes`` (oldest first, the current one
    last, still filling)."""
    counters = {"apiRequests": org.usage, "eventsPublished": org.bus.usage, "eventsDelivered": org.bus.deliveries}
    histories = {name: counter.history(hours * 60) for name, counter in counters.items()}
    now_minute = int(time.time() // 60)
    first_hour = now_minute // 60 - hours + 1
    first_minute = now_minute - minutes + 1
    return {
        "hourly": {"start": first_hour * 3600, "step": 3600,
                   **{name: _series(history, first_hour, hours, 60) for name, history in histories.items()}},
        "perMinute": {"start": first_minute * 60, "step": 60,
                      **{name: _series(history, first_minute, minutes, 1) for name, history in histories.items()}},
        "allocations": {"apiRequestsPerDay": org.usage.allocation, "eventsPublishedPerHour": org.bus.usage.allocation},
        "totals": {name: sum(history.values()) for name, history in histories.items()},
    }


def limits_data(org: Any) -> dict[str, Any]:
    limits = org_limits(org)
    status, components = health_report(org)
    rows = []
    for name, figures in limits.items():
        used = figures["Max"] - figures["Remaining"]
        rows.append({"name": name, "label": _LABELS.get(name, name), "max": figures["Max"],
                     "remaining": figures["Remaining"], "used": used,
                     "percent": round(100 * used / figures["Max"], 1) if figures["Max"] else 0})
    return {"limits": limits, "rows": rows, "health": {"status": status, "components": components},
            "usage": usage(org)}


@page
async def limits_page(request: Request, user: ConsoleUser) -> Response:
    data = limits_data(org_of(request))
    return render(request, "limits.html", user, section=SECTION, **data)


@api
async def limits_json(request: Request, user: ConsoleUser) -> Response:
    data = limits_data(org_of(request))
    data.pop("rows")
    return json_response(data)


def routes() -> list[BaseRoute]:
    return [
        Route("/limits", limits_page, methods=["GET", "HEAD"]),
        Route("/api/limits", limits_json, methods=["GET"]),
    ]
