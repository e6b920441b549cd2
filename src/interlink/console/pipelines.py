"""The console's Pipelines section: middleware pipelines with throughput and lag over time, and their dead letters.

Pipelines run in other processes (``interlink pipelines run``, ``interlink worker``) and keep their state in the
middleware's own store. The console never imports the middleware: the composition root hands it
``org.pipeline_monitor``, anything shaped like :class:`PipelineMonitor` below (the middleware's implementation
reads the metric samples the running pipelines write, and replays and discards dead letters exactly as
``interlink dlq replay`` / ``discard`` do). Replay runs the pipeline's failed steps again, so it runs off the
event loop.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from interlink.console.render import api, json_response, org_of, page, render
from interlink.console.session import ConsoleUser
from interlink.errors import ClientInputError, InterlinkError, NotFoundError

SECTION = "/console/pipelines"
WINDOWS = {"15m": 900, "1h": 3600, "6h": 6 * 3600, "24h": 24 * 3600}
BUCKETS = 60
LETTER_STATES = ("New", "Replayed", "Discarded")


class PipelineMonitor(Protocol):
    """What the console needs from whoever watches the pipelines (the middleware's ``PipelineMonitor``)."""

    backend: str

    def available(self) -> bool:
        """Whether the pipelines' store exists yet."""

    def pipelines(self) -> list[dict[str, Any]]:
        """Each pipeline: name, description, running, runners, read/written/failed/dead_lettered/..., lagSeconds,
        deadLetters (New), lastSample (epoch), lastRun."""

    def series(self, pipeline: str, *, window: float = 3600.0, buckets: int = 60) -> dict[str, Any]:
        """start, step, readPerSecond, writtenPerSecond, lagSeconds, deadLetters: one value per bucket."""

    def dead_letters(self, *, pipeline: str | None = None, state: str | None = "New",
                     limit: int = 100) -> list[dict[str, Any]]:
        """Dead letters, oldest first, as ``interlink dlq show`` prints them."""

    def dead_letter(self, letter_id: str) -> dict[str, Any] | None:
        """One dead letter, or None."""

    def replay(self, letter_ids: list[str], *, from_start: bool = False) -> dict[str, Any]:
        """{"replayed": [ids], "failed": [ids], "skipped": {id: reason}}."""

    def discard(self, letter_ids: list[str]) -> int:
        """How many New dead letters became Discarded."""


class MonitorUnavailable(InterlinkError):
    error_code = "NOT_AVAILABLE"
    http_status = 503


def monitor_of(request: Request) -> PipelineMonitor | None:
    return getattr(org_of(request), "pipeline_monitor", None)


def _window(request: Request) -> tuple[str, float]:
    name = request.query_params.get("window", "15m")
    return (name, WINDOWS[name]) if name in WINDOWS else ("15m", WINDOWS["15m"])


def _overview(monitor: PipelineMonitor, window: float, *, state: str = "New",
              pipeline: str | None = None) -> dict[str, Any]:
    pipelines = monitor.pipelines()
    series = {p["name"]: monitor.series(p["name"], window=window, buckets=BUCKETS) for p in pipelines}
    letters = monitor.dead_letters(pipeline=pipeline, state=None if state == "all" else state, limit=100)
    for item in pipelines:
        item["lastSampleText"] = _when(item.get("lastSample"))
        if item.get("lastRun"):
            item["lastRun"]["startedText"] = _when(item["lastRun"].get("started"))
    shape = [[p["name"], p["running"], p["deadLetters"], (p["lastRun"] or {}).get("status")] for p in pipelines]
    return {"available": True, "pipelines": pipelines, "series": series, "letters": letters,
            "signature": hashlib.sha1(orjson.dumps(shape)).hexdigest()[:16]}


def _when(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _here(request: Request) -> str:
    """This page's URL without the one-off flash parameters (where an action returns to)."""
    kept = [(key, value) for key, value in request.query_params.multi_items() if key not in ("flash", "n")]
    return request.url.path + (f"?{urlencode(kept)}" if kept else "")


def _not_started(request: Request) -> dict[str, Any]:
    settings = org_of(request).settings
    return {"available": False, "pipelines": [], "series": {}, "letters": [], "signature": "",
            "project_dir": str(settings.project_dir), "data_dir": str(settings.data_dir)}


@page
async def pipelines_page(request: Request, user: ConsoleUser) -> Response:
    monitor = monitor_of(request)
    window_name, window = _window(request)
    state = request.query_params.get("state", "New")
    state = state if state in (*LETTER_STATES, "all") else "New"
    chosen = request.query_params.get("pipeline") or None
    if monitor is None or not monitor.available():
        data = _not_started(request)
    else:
        data = await run_in_threadpool(lambda: _overview(monitor, window, state=state, pipeline=chosen))
    return render(request, "pipelines.html", user, section=SECTION, window=window_name, windows=list(WINDOWS),
                  state=state, states=[*LETTER_STATES, "all"], chosen=chosen or "", flash=_flash(request),
                  back=_here(request),
                  chart_data={"series": data["series"]}, **{k: v for k, v in data.items() if k != "series"},
                  has_monitor=monitor is not None)


@api
async def pipelines_json(request: Request, user: ConsoleUser) -> Response:
    monitor = monitor_of(request)
    if monitor is None or not monitor.available():
        return json_response({"available": False, "pipelines": [], "series": {}, "signature": ""})
    data = await run_in_threadpool(_overview, monitor, _window(request)[1])
    data.pop("letters")
    return json_response(data)


def _monitor(request: Request) -> PipelineMonitor:
    monitor = monitor_of(request)
    if monitor is None or not monitor.available():
        raise MonitorUnavailable("No pipeline has run against this data directory yet: there is nothing to show")
    return monitor


@page
async def dead_letter_page(request: Request, user: ConsoleUser) -> Response:
    monitor = _monitor(request)
    letter = await run_in_threadpool(monitor.dead_letter, request.path_params["letter_id"])
    if letter is None:
        raise NotFoundError()
    message = letter.get("message") or {}
    return render(request, "pipeline_dead_letter.html", user, section=SECTION, letter=letter,
                  body=orjson.dumps(message.get("body"), option=orjson.OPT_INDENT_2).decode(),
                  headers=message.get("headers") or {}, flash=_flash(request), back=_here(request))


async def _ids(request: Request) -> tuple[list[str], dict[str, str]]:
    body = (await request.body()).decode("utf-8", "replace")
    pairs = parse_qsl(body, keep_blank_values=True)
    ids = [value for key, value in pairs if key == "id" and value]
    if not ids:
        raise ClientInputError("Choose at least one dead letter", ["id"])
    return ids, dict(pairs)


def _back(form: dict[str, str], default: str) -> str:
    target = form.get("back", "")
    return target if target.startswith("/console/") and not target.startswith("//") else default


@page
async def replay(request: Request, user: ConsoleUser) -> Response:
    """Replay dead letters through their pipeline (as ``interlink dlq replay``; ``from_start`` runs every step)."""
    monitor = _monitor(request)
    ids, form = await _ids(request)
    report = await run_in_threadpool(lambda: monitor.replay(ids, from_start=form.get("from_start") == "1"))
    outcome = "replayed" if report["replayed"] and not (report["failed"] or report["skipped"]) else \
        "replay-failed" if report["failed"] else "replay-skipped" if report["skipped"] and not report["replayed"] \
        else "replay-partly"
    target = _back(form, "/console/pipelines")
    separator = "&" if "?" in target else "?"
    return RedirectResponse(f"{target}{separator}flash={outcome}&n={len(report['replayed'])}", 303)


@page
async def discard(request: Request, user: ConsoleUser) -> Response:
    """Mark dead letters Discarded (as ``interlink dlq discard``)."""
    monitor = _monitor(request)
    ids, form = await _ids(request)
    changed = await run_in_threadpool(monitor.discard, ids)
    target = _back(form, "/console/pipelines")
    separator = "&" if "?" in target else "?"
    return RedirectResponse(f"{target}{separator}flash={'discarded' if changed else 'not-discarded'}&n={changed}",
                            303)


_FLASHES = {
    "replayed": ("ok", "Replayed {n}: delivered, and marked Replayed."),
    "replay-partly": ("ok", "Replayed {n}; others were skipped or failed again (see their errors)."),
    "replay-failed": ("bad", "The replay failed again: the dead letter stays New with the new attempt."),
    "replay-skipped": ("bad", "Nothing was replayed: the dead letter is not New, or its pipeline is no longer "
                              "in the project (or changed: replay it from the start)."),
    "discarded": ("ok", "Discarded {n}: kept on record, never replayed."),
    "not-discarded": ("bad", "Nothing was discarded: only New dead letters can be."),
}


def _flash(request: Request) -> tuple[str, str] | None:
    found = _FLASHES.get(request.query_params.get("flash", ""))
    if found is None:
        return None
    count = request.query_params.get("n", "")
    return found[0], found[1].replace("{n}", count if count.isdigit() else "")


def routes() -> list[BaseRoute]:
    get = ["GET", "HEAD"]
    return [
        Route("/pipelines", pipelines_page, methods=get),
        Route("/api/pipelines", pipelines_json, methods=["GET"]),
        Route("/dead-letters/{letter_id}", dead_letter_page, methods=get),
        Route("/dead-letters/replay", replay, methods=["POST"]),
        Route("/dead-letters/discard", discard, methods=["POST"]),
    ]
