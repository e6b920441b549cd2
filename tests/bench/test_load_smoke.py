"""bench/load.py end to end on the embedded store: a short mixed load and a Pub/Sub subscriber (no timings checked)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.live


def test_a_short_load_run_on_sqlite_has_no_errors_and_loses_no_events() -> None:
    command = [sys.executable, str(ROOT / "bench" / "load.py"), "--duration", "2", "--workers-list", "1", "--store",
               "sqlite", "--connections", "4", "--json"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["problems"] == []
    (run,) = report["runs"]
    assert run["failed"] is None and run["skipped"] is None
    assert set(run["surfaces"]) == {"rest read", "rest write", "composite", "event publish"}
    assert all(surface["errors"] == 0 for surface in run["surfaces"].values())
    assert run["total"]["requests"] > 0
    events = run["events"]
    assert events["lost"] == 0 and events["received"] == events["published"] and events["subscriber_error"] is None
    assert report["baseline"]["errors"] == 0 and report["ratios"]["total_vs_baseline_1"] is not None
