"""``interlink events`` and ``interlink cdc``, run as a user runs them (a subprocess per command).

One sample-data org (platform events and a CDC selection) serves the module; each test works on its own
topics so the tests stay independent. Records are written in-process, the way a running server would.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from interlink.app.org import Org
from interlink.settings import Settings
from interlink.testing import local_org, run_cli

SUBCOMMANDS = ["events", "events publish", "events tail", "events topics", "events subscription",
               "events subscription create", "events subscription list", "events subscription delete", "cdc",
               "cdc enable", "cdc disable", "cdc list"]
HEAVY = ("sqlalchemy", "starlette", "uvicorn", "cryptography", "fastavro")


@pytest.fixture(autouse=True)
def _no_interlink_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the settings a test passes count (run_cli passes this process's environment on)."""
    for name in list(os.environ):
        if name.startswith("INTERLINK_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("COLUMNS", "200")


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, ...]:
    """A sample-data org (Order_Request__e & co., ChangeEvents for Account, Contact, Opportunity...)."""
    root = tmp_path_factory.mktemp("events-cli")
    with local_org(root / "org", project_dir=root / "project", sample_data=True):
        pass
    return "--data-dir", str(root / "org"), "--project-dir", str(root / "project")


@pytest.fixture
def opened(dirs: tuple[str, ...]) -> Iterator[Org]:
    """The org, opened in this process without deploying (as a server next to the CLI would have it)."""
    settings = Settings.load({"data_dir": Path(dirs[1]), "project_dir": Path(dirs[3])}, env={})
    with Org.open(settings, deploy=False) as org:
        yield org


def cli(dirs: tuple[str, ...], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, *dirs, check=check)


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def published(stdout: str) -> list[dict[str, str]]:
    """``event_uuid=... id=... replay_id=...`` lines as dicts."""
    return [dict(part.split("=", 1) for part in line.split()) for line in stdout.splitlines()]


# -- help ------------------------------------------------------------------------------------------------------


def test_help_for_every_subcommand_without_heavy_imports() -> None:
    probe = textwrap.dedent(f"""
        import contextlib, io, json, sys
        import interlink.cli.main as cli
        results = {{}}
        for command in {SUBCOMMANDS!r}:
            out = io.StringIO()
            code = 0
            with contextlib.redirect_stdout(out):
                try:
                    cli.app([*command.split(), "--help"], standalone_mode=False, prog_name="interlink")
                except SystemExit as done:
                    code = done.code or 0
            results[command] = [code, out.getvalue()]
        heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r}))
        print(json.dumps({{"help": results, "heavy": heavy}}))
    """)
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    for command, (code, text) in report["help"].items():
        assert code == 0, command
        assert "Usage:" in text and "--help" in text, (command, text)
    for word in ("publish", "tail", "topics", "subscription"):
        assert word in report["help"]["events"][1]
    assert "--data-dir" in report["help"]["events tail"][1] and "--bus" in report["help"]["events tail"][1]
    assert report["heavy"] == []
    # The console entry point (python -m, as run_cli uses) lists the new groups too.
    top = run_cli("--help").stdout
    assert " events " in top and " cdc " in top


# -- publish and tail ------------------------------------------------------------------------------------------


def test_publish_then_tail_shows_the_events_with_their_fields(dirs: tuple[str, ...], tmp_path: Path) -> None:
    first = published(cli(dirs, "events", "publish", "Order_Request__e",
                          '{"Amount__c": 10, "OpportunityId__c": "006000000000001"}').stdout)
    assert len(first) == 1 and first[0]["id"].startswith("e0") and len(first[0]["replay_id"]) == 16

    batch = tmp_path / "events.json"
    batch.write_text(json.dumps([{"Amount__c": 20}, {"Nope__c": 1}, {"Amount__c": 30}]))
    mixed = cli(dirs, "events", "publish", "/event/Order_Request__e", "--file", str(batch), check=False)
    assert mixed.returncode == 1  # one invalid event: reported, the valid ones are published
    assert "event 2: INVALID_FIELD" in mixed.stderr and "Nope__c" in mixed.stderr
    later = published(mixed.stdout)
    assert len(later) == 2

    tail = cli(dirs, "events", "tail", "/event/Order_Request__e", "--replay", "earliest", "--no-follow", "--json")
    events = json_lines(tail.stdout)
    assert [e["event_uuid"] for e in events] == [p["event_uuid"] for p in first + later]
    assert [e["replay_id"] for e in events] == [p["replay_id"] for p in first + later]
    event = events[0]
    assert event["topic"] == "/event/Order_Request__e" and event["schema_id"]
    assert event["payload"]["Amount__c"] == 10.0
    assert event["payload"]["OpportunityId__c"] == "006000000000001"
    assert event["payload"]["EventUuid"] == event["event_uuid"]
    assert event["payload"]["CreatedDate"].endswith("Z") and "T" in event["payload"]["CreatedDate"]

    # After a replay id, in the human format, following until --limit events have arrived.
    after = cli(dirs, "events", "tail", "Order_Request__e", "--replay", first[0]["replay_id"], "--follow",
                "--limit", "2")
    assert first[0]["event_uuid"] not in after.stdout
    assert after.stdout.startswith(f"{later[0]['replay_id']}  /event/Order_Request__e  ")
    assert f"  {later[1]['event_uuid']}\n" in after.stdout
    assert "  Amount__c: 20.0" in after.stdout and "  Amount__c: 30.0" in after.stdout


def test_publish_and_tail_errors(dirs: tuple[str, ...]) -> None:
    bad_json = cli(dirs, "events", "publish", "Order_Request__e", "{Amount__c: 1", check=False)
    assert bad_json.returncode == 2 and "invalid JSON" in bad_json.stderr
    unknown = cli(dirs, "events", "publish", "No_Such__e", "{}", check=False)
    assert unknown.returncode == 1 and "Topic not found: /event/No_Such__e" in unknown.stderr
    corrupted = cli(dirs, "events", "tail", "Order_Request__e", "--replay", "c0ffee", "--no-follow", check=False)
    assert corrupted.returncode == 1 and "The Replay ID is corrupted" in corrupted.stderr
    beyond = cli(dirs, "events", "tail", "Order_Request__e", "--replay", "00000000ffffffff", "--no-follow",
                 check=False)
    assert beyond.returncode == 1 and "The Replay ID validation failed" in beyond.stderr
    for result in (bad_json, unknown, corrupted, beyond):
        assert "Traceback" not in result.stderr and result.stdout == ""


def _lines(stream: IO[str]) -> queue.Queue[str]:
    found: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [found.put(line) for line in stream], daemon=True).start()
    return found


def test_tail_follows_new_events_and_ctrl_c_exits_cleanly(dirs: tuple[str, ...], opened: Org) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "interlink.cli.main", "events", "tail", "Payment_Received__e", "--json", *dirs],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # even if pytest runs with SIGINT ignored
    try:
        stdout, stderr = _lines(process.stdout), _lines(process.stderr)  # type: ignore[arg-type]
        assert "Following /event/Payment_Received__e" in stderr.get(timeout=30)
        [result] = opened.records.create(opened.admin_context(), "Payment_Received__e",
                                         [{"Amount__c": 42, "Status__c": "Settled"}])
        assert not result.errors
        event = json.loads(stdout.get(timeout=30))
        assert event["event_uuid"] == result.notices[0].message
        assert event["payload"]["Status__c"] == "Settled" and event["payload"]["Amount__c"] == 42.0
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# -- change data capture ---------------------------------------------------------------------------------------


def test_cdc_enable_list_tail_and_disable(dirs: tuple[str, ...]) -> None:
    enabled = cli(dirs, "cdc", "enable", "Lead")
    assert "/data/LeadChangeEvent" in enabled.stderr
    channel = cli(dirs, "cdc", "enable", "Opportunity", "--channel", "Big__chn", "--filter", "Amount > 1000",
                  "--enrich", "Name", "--enrich", "StageName,CloseDate")
    assert "/data/Big__chn" in channel.stderr and "Amount > 1000" in channel.stderr
    invalid = cli(dirs, "cdc", "enable", "Opportunity", "--channel", "Big__chn", "--filter", "Amount >", check=False)
    assert invalid.returncode == 2 and "not a valid condition" in invalid.stderr and "Traceback" not in invalid.stderr

    settings = Settings.load({"data_dir": Path(dirs[1]), "project_dir": Path(dirs[3])}, env={})
    with Org.open(settings, deploy=False) as org:  # opened after the CLI changed the channels
        admin = org.admin_context()
        [lead] = org.records.create(admin, "Lead", [{"LastName": "Lovelace", "Company": "Engines", "Phone": "1"}])
        assert not org.records.update(admin, "Lead", [{"Id": lead.id, "Phone": None, "City": "London"}])[0].errors
        big, small = org.records.create(admin, "Opportunity", [
            {"Name": "Big deal", "StageName": "Prospecting", "CloseDate": "2030-01-31", "Amount": 5000},
            {"Name": "Small deal", "StageName": "Prospecting", "CloseDate": "2030-01-31", "Amount": 50}])
        assert not big.errors and not small.errors
        assert not org.records.update(admin, "Opportunity", [{"Id": big.id, "Amount": 6000}])[0].errors

    leads = json_lines(cli(dirs, "events", "tail", "LeadChangeEvent", "--replay", "earliest", "--no-follow",
                           "--json").stdout)
    assert [e["payload"]["ChangeEventHeader"]["changeType"] for e in leads] == ["CREATE", "UPDATE"]
    created, updated = (e["payload"] for e in leads)
    assert created["ChangeEventHeader"]["recordIds"] == [lead.id] and created["LastName"] == "Lovelace"
    assert created["CreatedDate"].endswith("Z")
    assert {"City", "Phone"} <= set(updated["ChangeEventHeader"]["changedFields"])
    assert updated["ChangeEventHeader"]["nulledFields"] == ["Phone"]
    assert updated["City"] == "London" and "Phone" not in updated and "LastName" not in updated

    big_events = cli(dirs, "events", "tail", "/data/Big__chn", "--replay", "earliest", "--no-follow").stdout
    assert f"CREATE Opportunity {big.id}" in big_events and f"UPDATE Opportunity {big.id}" in big_events
    assert small.id not in big_events  # filtered out by the channel
    update_part = big_events.split("UPDATE", 1)[1]
    assert "changedFields: Amount" in update_part and "  CloseDate: 2030-01-31" in update_part  # enriched, ISO

    listed = cli(dirs, "cdc", "list").stdout
    assert "LeadChangeEvent" in listed and "Big__chn" in listed and "Amount > 1000" in listed
    assert "Name, StageName, CloseDate" in listed and "metadata" in listed
    topics = cli(dirs, "events", "topics").stdout
    for expected in ("/event/Order_Request__e", "PublishAfterCommit", "/data/ChangeEvents", "/data/LeadChangeEvent",
                     "/data/Big__chn", "filter: Amount > 1000"):
        assert expected in topics, expected

    disabled = cli(dirs, "cdc", "disable", "Lead")
    assert "Disabled change events for Lead" in disabled.stderr and "restores it" not in disabled.stderr
    from_metadata = cli(dirs, "cdc", "disable", "Account")
    assert "next deploy" in from_metadata.stderr and "restores it" in from_metadata.stderr
    with Org.open(settings, deploy=False) as org:
        entities = {m.entity for m in org.bus.channels.channel("ChangeEvents") or []}
        assert "Lead" not in entities and "Account" not in entities and "Contact" in entities
        assert [m.entity for m in org.bus.channels.channel("Big__chn") or []] == ["Opportunity"]


# -- managed subscriptions -------------------------------------------------------------------------------------


def test_subscription_create_list_delete(dirs: tuple[str, ...], opened: Org) -> None:
    created = cli(dirs, "events", "subscription", "create", "Order_Sync", "--topic", "Order_Request__e",
                  "--replay", "earliest")
    subscription_id = created.stdout.strip()
    assert subscription_id.startswith("18x") and len(subscription_id) == 18
    duplicate = cli(dirs, "events", "subscription", "create", "order_sync", "--topic", "/event/Order_Request__e",
                    check=False)
    assert duplicate.returncode == 1 and "Order_Sync already exists" in duplicate.stderr
    bad_name = cli(dirs, "events", "subscription", "create", "9-lives", "--topic", "Order_Request__e", check=False)
    assert bad_name.returncode == 2 and "start with a letter" in bad_name.stderr

    listed = cli(dirs, "events", "subscription", "list").stdout
    assert "Order_Sync" in listed and subscription_id in listed and "/event/Order_Request__e" in listed
    assert "EARLIEST" in listed

    from sqlalchemy import select

    table = opened.store.system["il_managed_subscription"]
    with opened.store.read() as conn:
        row = conn.execute(select(table).where(table.c.id == subscription_id)).one()
    assert (row.developer_name, row.topic, row.default_replay, row.committed_replay_id) == (
        "Order_Sync", "/event/Order_Request__e", "EARLIEST", None)

    cli(dirs, "events", "subscription", "delete", "Order_Sync")
    missing = cli(dirs, "events", "subscription", "delete", "Order_Sync", check=False)
    assert missing.returncode == 1 and "No managed event subscription" in missing.stderr
