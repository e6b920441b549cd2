"""The console's Pipelines section over a middleware store prepared the way `interlink pipelines run` fills it: a
real pipeline run with its metric samples and dead letters; replay after a fix and discard, with CSRF."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from interlink.middleware.monitor import PipelineSampler
from interlink.middleware.runtime import PipelineRunner
from interlink.middleware.spec import load_project
from interlink.middleware.store import MiddlewareStore

PIPELINE = """\
name: orders-out
description: Orders from the inbox, checked, written to the outbox
source: {type: files, folder: inbox, pattern: "*.jsonl"}
steps:
  - {type: validate, schema: {type: object, required: [Id], properties: {Amount: {type: number, minimum: %s}}}}
sink: {type: files, folder: outbox}
retry: {attempts: 1, backoff: 0s}
"""


def _project(project: Path, minimum: int) -> None:
    (project / "pipelines").mkdir(parents=True, exist_ok=True)
    (project / "pipelines" / "orders-out.yaml").write_text(PIPELINE % minimum)


@pytest.fixture
def ran(console_org) -> MiddlewareStore:  # type: ignore[no-untyped-def]
    """orders-out ran once over four orders: two written, two dead-lettered (negative amounts), sampled."""
    project = console_org.settings.project_dir
    _project(project, 0)
    (project / "inbox").mkdir(parents=True, exist_ok=True)
    (project / "inbox" / "a.jsonl").write_text('{"Id": "o1", "Amount": 10}\n{"Id": "o2", "Amount": -5}\n'
                                               '{"Id": "o3", "Amount": 7}\n{"Id": "o4", "Amount": -1}\n')
    store = MiddlewareStore.open_url(console_org.settings.middleware_store_url)
    (pipeline,), errors = load_project(project)
    assert not errors
    runner = PipelineRunner(pipeline, store, project_dir=project, idle_timeout=0.2)
    sampler = PipelineSampler([runner], store, interval=60)
    sampler.sample()
    report = runner.run(once=True)
    assert (report.written, report.dead_lettered) == (2, 2)
    sampler.stop()
    yield store
    store.close()


def test_without_a_middleware_store_the_page_says_how_to_start(console_org, browser) -> None:  # type: ignore[no-untyped-def]
    page = browser.get("/console/pipelines")
    assert page.status_code == 200
    assert "No pipeline has run here yet" in page.text
    assert "interlink pipelines run --project-dir" in page.text
    assert str(console_org.settings.data_dir) in page.text
    assert browser.get("/console/api/pipelines").json() == {"available": False, "pipelines": [], "series": {},
                                                          "signature": ""}
    assert not Path(console_org.settings.middleware_store_url.removeprefix("sqlite:///")).exists()  # not created


def test_pipelines_with_figures_charts_and_dead_letters(console_org, browser, ran) -> None:  # type: ignore[no-untyped-def]
    data = browser.get("/console/api/pipelines").json()
    assert data["available"] is True and data["signature"]
    (pipeline,) = data["pipelines"]
    assert pipeline["name"] == "orders-out" and pipeline["defined"] is True
    assert (pipeline["read"], pipeline["written"], pipeline["dead_lettered"]) == (4, 2, 2)
    assert pipeline["deadLetters"] == 2 and pipeline["running"] is False  # the last sample marked it stopped
    assert pipeline["lastRun"]["status"] == "Succeeded"
    series = data["series"]["orders-out"]
    assert len(series["writtenPerSecond"]) == 60 and series["step"] == 15  # 15 minutes by default
    assert sum(series["writtenPerSecond"]) * series["step"] == pytest.approx(2, rel=1e-3)
    assert sum(series["deadLettered"]) == 2 and series["deadLetters"][-1] == 2

    page = browser.get("/console/pipelines")
    assert page.status_code == 200
    text = page.text
    assert 'data-pipeline="orders-out"' in text and "Orders from the inbox" in text
    assert '<script type="application/json" id="pipelines-data">' in text and "<script>" not in text
    ids = re.findall(r'name="id" value="([0-9a-f]{32})"', text)
    assert len(ids) == 2
    assert "schema: Amount" in text  # the validation error of each dead letter
    detail = browser.get(f"/console/dead-letters/{ids[0]}")
    assert detail.status_code == 200
    assert "&#34;Amount&#34;: -" in detail.text and "validate" in detail.text
    assert browser.get("/console/dead-letters/ffffffffffffffffffffffffffffffff").status_code == 404


def test_replay_after_a_fix_and_discard_need_csrf(console_org, browser, ran) -> None:  # type: ignore[no-untyped-def]
    first, second = (letter.id for letter in ran.dead_letters("orders-out"))
    refused = browser.post("/console/dead-letters/replay", data={"csrf": "forged", "id": first})
    assert refused.status_code == 403
    assert ran.dead_letter(first).state == "New"  # type: ignore[union-attr]

    # Unfixed, the replay fails again: the letter stays New with one more attempt.
    again = browser.post("/console/dead-letters/replay", data={"csrf": browser.csrf, "id": first,
                                                               "back": "/console/pipelines?window=6h"},
                         follow_redirects=False)
    assert again.headers["location"] == "/console/pipelines?window=6h&flash=replay-failed&n=0"
    letter = ran.dead_letter(first)
    assert letter is not None and letter.state == "New" and len(letter.attempts) == 2

    _project(console_org.settings.project_dir, -10)  # the fix: negative amounts down to -10 are fine
    done = browser.post("/console/dead-letters/replay", data={"csrf": browser.csrf, "id": first})
    assert "Replayed 1: delivered" in done.text
    assert ran.dead_letter(first).state == "Replayed"  # type: ignore[union-attr]
    outbox = console_org.settings.project_dir / "outbox"
    assert any('"o2"' in path.read_text() for path in outbox.glob("*.jsonl"))

    assert browser.post("/console/dead-letters/discard", data={"csrf": "", "id": second}).status_code == 403
    discarded = browser.post("/console/dead-letters/discard", data={"csrf": browser.csrf, "id": second})
    assert "Discarded 1" in discarded.text
    assert ran.dead_letter(second).state == "Discarded"  # type: ignore[union-attr]
    nothing = browser.post("/console/dead-letters/discard", data={"csrf": browser.csrf, "id": second})
    assert "Nothing was discarded" in nothing.text
    assert browser.post("/console/dead-letters/replay", data={"csrf": browser.csrf}).status_code == 400
    listed = browser.get("/console/pipelines?state=all").text
    assert "Replayed" in listed and "Discarded" in listed
