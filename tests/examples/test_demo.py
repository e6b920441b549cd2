"""`interlink demo`: every pattern's example scenario runs end to end against a real org (so the demo, the examples
and the org cannot drift apart silently), and a broken remote system makes its scenario fail with a clear message."""

from __future__ import annotations

import json
import os
import re
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.live

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PATTERNS = ("request-reply", "fire-and-forget", "batch-sync", "call-in", "ui-update", "virtualization")


def demo(*args: str, timeout: float = 120, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``interlink demo ARGS`` as a subprocess in its own session; past ``timeout`` it is stopped (SIGTERM: the demo
    stops what it started) and the test fails with its output."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("INTERLINK_")}
    process = subprocess.Popen([sys.executable, "-m", "interlink.cli.main", "demo", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env, cwd=cwd, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
        pytest.fail(f"interlink demo {' '.join(args)} took more than {timeout} s:\n{stdout}\n{stderr}")
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def steps_text(report: dict[str, Any]) -> str:
    """Everything a report says, as one text to search."""
    return json.dumps(report)


def test_every_pattern_end_to_end_as_json() -> None:
    done = demo("--json", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    body = json.loads(done.stdout)  # stdout is only the JSON: where to look goes to stderr
    assert "/console/" in done.stderr and "interlink token --data-dir" in done.stderr
    assert body["passed"] is True and body["org"]["url"].startswith("https://127.0.0.1:")
    reports = {r["pattern"]: r for r in body["reports"]}
    assert [r["pattern"] for r in body["reports"]] == list(PATTERNS)
    assert {p: r["status"] for p, r in reports.items()} == dict.fromkeys(PATTERNS, "PASS"), {
        p: r["message"] for p, r in reports.items()}
    for report in body["reports"]:
        assert report["seconds"] > 0
        assert all(step["ok"] and (step["calls"] or step["events"]) for step in report["steps"])

    reply = steps_text(reports["request-reply"])
    assert re.search(r"Description = BA-\d{4} \(billing's account number\)", reply)
    assert "actions/custom/flow/Activate_Order_Now" in reply and "accountNumber" in reply

    fire = reports["fire-and-forget"]
    (event,) = [e for step in fire["steps"] for e in step["events"]]
    assert event["topic"] == "/event/Order_Request__e" and event["replay_id"] > 0
    assert re.search(r"Description = ERP order SO-\d{5}", steps_text(fire))
    assert "(Opportunity_To_ERP) Delivered" in steps_text(fire)

    batch = steps_text(reports["batch-sync"])
    assert re.search(r"Bulk API 2\.0 job 750\w+ \(upsert Lead on External_Id__c\) JobComplete: 2000 processed", batch)
    assert "read 2000, written 2000, error rows 0" in batch and "read 5, written 5" in batch
    assert "activities holds the 3 Tasks" in batch

    call_in = reports["call-in"]
    statuses = [e for step in call_in["steps"] for e in step["events"]]
    assert [e["payload"]["InkLevel__c"] for e in statuses] == [82.0, 45.0, 12.0]
    assert len({e["replay_id"] for e in statuses}) == 3
    text = steps_text(call_in)
    assert "Ink_Level__c = 12, Paper_Level__c = 70" in text and "Ink cartridge for Demo printer reception" in text
    assert "(referenceId contact2)" in text and "PROCESSING_HALTED" in text

    ui = reports["ui-update"]
    seen = {e["topic"]: e for step in ui["steps"] for e in step["events"]}
    assert seen["/event/Payment_Received__e"]["payload"]["Amount__c"] == 120.5
    assert "Payment_Status__c" in seen["/data/CaseChangeEvent"]["payload"]["changedFields"]
    assert "Payment_Status__c = Paid, Payment_Amount__c = 120.50" in steps_text(ui)

    assert re.search(r"Order__x SO-\d{6}: Status__c = Submitted, Amount__c = 149\.5",
                     steps_text(reports["virtualization"]))


def test_one_pattern_as_text_kept_running_then_run_again_on_the_same_org(tmp_path: Path) -> None:
    data_dir = tmp_path / "org"
    done = demo("call-in", "--keep", "--data-dir", str(data_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert re.search(r"console +https://127\.0\.0\.1:\d+/console/ +\(admin@interlink\.local / \S+\)", out)
    assert "4. Remote Call-In (call-in)" in out and "PASS" in out and "1 passed, 0 failed" in out
    assert re.search(r"event /event/Printer_Status__e replay id \d+ .*\"InkLevel__c\": 12\.0", out)
    assert "gRPC Publish /event/Printer_Status__e (3 events) → OK" in out
    pids = [int(pid) for pid in re.search(r"kill ([\d ]+)", out).group(1).split()]  # type: ignore[union-attr]
    try:
        info = json.loads((data_dir / "run" / "server.json").read_text())
        assert info["pid"] in pids
        trusted = ssl.create_default_context(cafile=info["ca_bundle"])
        assert httpx.get(f"{info['url']}/services/data", verify=trusted).status_code == 200
        busy = demo("call-in", "--data-dir", str(data_dir), timeout=60)
        assert busy.returncode == 2 and "already running" in busy.stderr
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGTERM)
        assert wait_gone(pids)
    again = demo("call-in", "virtualization", "--data-dir", str(data_dir))  # the org's data is still there
    assert again.returncode == 0, again.stdout + again.stderr
    assert "2 passed, 0 failed" in again.stdout and "kill " not in again.stdout
    assert not (data_dir / "run" / "server.json").exists()  # the org it started stopped cleanly


def wait_gone(pids: list[int], within: float = 20) -> bool:
    """Whether the processes ended within ``within`` seconds (they are not this test's children)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        alive = []
        for pid in pids:
            try:
                os.kill(pid, 0)
                alive.append(pid)
            except ProcessLookupError:
                pass
        if not alive:
            return True
        time.sleep(0.1)
    return False


def test_billing_down_fails_request_and_reply_with_the_reason() -> None:
    done = demo("request-reply", "--json", "--billing-fail-every", "1", "--timeout", "4")
    assert done.returncode == 1, done.stdout + done.stderr
    (report,) = json.loads(done.stdout)["reports"]
    assert report["status"] == "FAIL"
    assert re.fullmatch(r"the order's billing account number was not stored within 4 s: the callout POST "
                        r"Billing/accounts is Queued after \d+ attempt\(s\); last answer 503 "
                        r"\{\"error\": \"busy, try again\"\}", report["message"]), report["message"]
    assert [step["ok"] for step in report["steps"]] == [True, False]


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    unknown = demo("teleport", timeout=60)
    assert unknown.returncode == 2 and "unknown pattern teleport" in unknown.stderr
    missing = demo("call-in", "--examples-dir", str(tmp_path / "nowhere"), timeout=60)
    assert missing.returncode == 2 and "no examples/ directory" in missing.stderr
    (tmp_path / "examples" / "project").mkdir(parents=True)
    partial = demo("call-in", timeout=60, cwd=tmp_path)  # ./examples comes first, and it lacks the samples
    assert partial.returncode == 2 and "lacks" in partial.stderr and "billing/service.py" in partial.stderr


def test_examples_are_found_from_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from interlink.cli.demo import find_examples

    monkeypatch.chdir(tmp_path)  # no ./examples: the checkout's, next to src/
    assert find_examples(None) == EXAMPLES
    assert find_examples(EXAMPLES) == EXAMPLES
