"""``interlink patterns advise``: the selection matrices, the refinements, prompting and the output formats.

The decision is a pure function (``interlink.cli.pattern_advice.advise``); the command is run through typer's
CliRunner, the way a user runs it, with ``--json`` where the test reads the answer.
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from interlink.cli import patterns as command
from interlink.cli.main import app
from interlink.cli.pattern_advice import MATRIX, PATTERNS, SOLUTIONS, Answers, advise, parse_volume

ROOT = Path(__file__).resolve().parents[2]

# The two matrices of the patterns document, written out again here so the test does not just restate MATRIX.
OUTBOUND = [("process", "sync", "request-reply"), ("process", "async", "fire-and-forget"),
            ("data", "sync", "request-reply"), ("data", "async", "ui-update"),
            ("virtual", "sync", "data-virtualization")]
INBOUND = [("process", "sync", "remote-call-in"), ("process", "async", "remote-call-in"),
           ("data", "sync", "remote-call-in"), ("data", "async", "batch-sync")]


def run(*args: str, input: str | None = None) -> Any:
    return CliRunner().invoke(app, ["patterns", "advise", *args], input=input)


def advice_json(*args: str) -> dict[str, Any]:
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def printed(result: Any, start: str) -> str:
    """What the command printed on stdout from ``start`` on: CliRunner echoes typed answers to stdout, which a
    terminal does not."""
    return result.stdout[result.stdout.index(start):]  # type: ignore[no-any-return]


def flags(direction: str, kind: str, timing: str, volume: str = "low", master: str = "no",
          ui: str = "no") -> list[str]:
    return ["--direction", direction, "--type", kind, "--timing", timing, "--volume", volume,
            "--remote-master", master, "--ui", ui]


# -- the matrices ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "timing", "expected"), OUTBOUND)
def test_every_outbound_row(kind: str, timing: str, expected: str) -> None:
    # Neutral answers keep the matrix's choice: low volume, the org masters the data, and users watching
    # (the data/async row is the live-screen pattern).
    data = advice_json(*flags("out", kind, timing, ui="yes" if expected == "ui-update" else "no"))
    assert data["matrix_pattern"] == expected
    assert data["pattern"] == expected
    assert data["name"] == PATTERNS[expected][0]
    assert "the selection matrix names" in data["reasons"][0]
    assert data["docs"][0] == f"docs/patterns/{expected}.md"


@pytest.mark.parametrize(("kind", "timing", "expected"), INBOUND)
def test_every_inbound_row(kind: str, timing: str, expected: str) -> None:
    data = advice_json(*flags("in", kind, timing))
    assert data["matrix_pattern"] == expected
    assert data["pattern"] == expected
    assert f"(in / {kind} / {timing})" in data["reasons"][0]


def test_the_matrix_pattern_is_reported_whatever_refines_it() -> None:
    rows = {("out", kind, timing): pattern for kind, timing, pattern in OUTBOUND}
    rows |= {("in", kind, timing): pattern for kind, timing, pattern in INBOUND}
    assert rows == MATRIX
    for direction, kind, timing, volume, master, ui in itertools.product(
            ["out", "in"], ["process", "data", "virtual"], ["sync", "async"], ["low", "high"], [False, True],
            [False, True]):
        advice = advise(Answers(direction, kind, timing, volume, master, ui))
        assert advice.matrix_pattern == rows.get((direction, kind, timing))
        assert SOLUTIONS[advice.solution].pattern == advice.pattern
        assert advice.fit in ("Best", "Good")
        assert advice.reasons and advice.keys
        assert all(alternative.fit in ("Best", "Good", "Suboptimal") for alternative in advice.alternatives)


def test_virtual_has_no_asynchronous_row() -> None:
    data = advice_json(*flags("out", "virtual", "async", master="yes"))
    assert data["matrix_pattern"] is None
    assert data["pattern"] == "data-virtualization"
    assert "synchronous by nature" in data["reasons"][0]
    assert any("Batch Data Synchronization" in note for note in data["notes"])


@pytest.mark.parametrize("timing", ["sync", "async"])
def test_inbound_virtual_reads_the_org_live(timing: str) -> None:
    data = advice_json(*flags("in", "virtual", timing))
    assert data["matrix_pattern"] is None
    assert data["pattern"] == "remote-call-in"
    assert data["solution"]["id"] == "callin-odata"
    assert any("/odata/v4/" in use for use in data["solution"]["uses"])


# -- refinements ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("direction", "timing", "expected"), [
    ("out", "sync", ("data-virtualization", "dv-external")), ("out", "async", ("batch-sync", "batch-out")),
    ("in", "sync", ("batch-sync", "batch-in")), ("in", "async", ("batch-sync", "batch-in")),
])
def test_high_volume_data_with_a_remote_master(direction: str, timing: str, expected: tuple[str, str]) -> None:
    data = advice_json(*flags(direction, "data", timing, volume="250000", master="yes"))
    assert (data["pattern"], data["solution"]["id"], data["solution"]["fit"]) == (*expected, "Best")


@pytest.mark.parametrize(("direction", "timing", "solution"), [
    ("out", "sync", "batch-out"), ("out", "async", "batch-out"),
    ("in", "sync", "batch-in"), ("in", "async", "batch-in"),
])
def test_high_volume_data_without_remote_master(direction: str, timing: str, solution: str) -> None:
    data = advice_json(*flags(direction, "data", timing, volume="high"))
    assert data["pattern"] == "batch-sync"
    assert data["solution"]["id"] == solution
    assert data["solution"]["fit"] == "Good"  # the org masters the data: the document rates ETL "Good" then
    assert any("Bulk API 2.0" in reason for reason in data["reasons"])
    if data["matrix_pattern"] != "batch-sync":
        assert any("high volume (--volume high)" in reason for reason in data["reasons"])
        replaced = [a for a in data["alternatives"] if a["pattern"] == data["matrix_pattern"]]
        assert replaced and {a["fit"] for a in replaced} == {"Suboptimal"}


def test_a_count_of_records_sets_the_volume() -> None:
    assert parse_volume("2000") == ("low", 2000)
    assert parse_volume("2,001") == ("high", 2001)
    assert parse_volume(" HIGH ") == ("high", None)
    low = advice_json(*flags("in", "data", "sync", volume="2000"))
    high = advice_json(*flags("in", "data", "sync", volume="2001"))
    assert (low["pattern"], low["answers"]["records"]) == ("remote-call-in", 2000)
    assert (high["pattern"], high["answers"]["volume"]) == ("batch-sync", "high")
    assert any("2,001 records" in reason for reason in high["reasons"])


def test_remote_master_and_a_live_read_is_data_virtualization() -> None:
    data = advice_json(*flags("out", "data", "sync", master="yes"))
    assert (data["matrix_pattern"], data["pattern"]) == ("request-reply", "data-virtualization")
    assert any("--remote-master yes" in reason for reason in data["reasons"])
    assert "ExternalId" in data["keys"]
    replaced = [a for a in data["alternatives"] if a["pattern"] == "request-reply"]
    assert replaced and replaced[0]["fit"] == "Suboptimal"
    # Virtualization also wins over the volume rule: the data stays where it is.
    assert advice_json(*flags("out", "data", "sync", volume="high", master="yes"))["pattern"] == "data-virtualization"
    # Without the ownership answer the same row stays Request and Reply.
    assert advice_json(*flags("out", "data", "sync"))["pattern"] == "request-reply"


def test_no_live_screen_turns_outbound_async_data_into_change_data_capture() -> None:
    data = advice_json(*flags("out", "data", "async", ui="no"))
    assert (data["matrix_pattern"], data["pattern"]) == ("ui-update", "fire-and-forget")
    assert data["solution"]["id"] == "faf-cdc"
    assert any("interlink cdc enable" in use for use in data["solution"]["uses"])


@pytest.mark.parametrize("kind", ["data", "process"])
def test_live_screens_for_inbound_changes_are_ui_update(kind: str) -> None:
    data = advice_json(*flags("in", kind, "async", ui="yes"))
    assert data["pattern"] == "ui-update"
    assert data["solution"]["id"] == "ui-live"
    assert "docs/console.md" in data["docs"]
    combined = [a for a in data["alternatives"] if a["pattern"] == "remote-call-in" and a["fit"] == "Best"]
    assert combined and "combine" in combined[0]["why"]
    # At high volume the data still moves in bulk; live pages are combined with it.
    bulk = advice_json(*flags("in", "data", "async", volume="high", ui="yes"))
    assert bulk["pattern"] == "batch-sync"
    assert [a for a in bulk["alternatives"] if a["pattern"] == "ui-update"][-1]["fit"] == "Best"


def test_outbound_process_keeps_its_pattern_and_says_what_to_combine() -> None:
    data = advice_json(*flags("out", "process", "async", master="yes", ui="yes"))
    assert data["pattern"] == "fire-and-forget"
    assert data["solution"]["id"] == "faf-events"
    assert "calls back with its own key" in data["keys"]
    assert data["alternatives"][-1]["pattern"] == "ui-update"
    busy = advice_json(*flags("out", "process", "sync", volume="high"))
    assert busy["pattern"] == "request-reply"
    assert any("Fire and Forget" in note for note in busy["notes"])


def test_inbound_process_chooses_events_or_api_calls() -> None:
    assert advice_json(*flags("in", "process", "async"))["solution"]["id"] == "callin-events"
    synchronous = advice_json(*flags("in", "process", "sync", volume="high"))
    assert synchronous["solution"]["id"] == "callin-api"
    assert any("composite 25" in note for note in synchronous["notes"])


def test_keys_follow_who_masters_the_data() -> None:
    assert "external-id field" in advice_json(*flags("in", "data", "async", master="yes"))["keys"]
    assert "18-character record Id" in advice_json(*flags("in", "data", "async"))["keys"]
    assert "on_success" in advice_json(*flags("out", "process", "sync", master="yes"))["keys"]


# -- prompting and errors -------------------------------------------------------------------------------------


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(command, "_stdin_is_terminal", lambda: True)


def test_a_terminal_is_asked_for_every_missing_answer(terminal: None) -> None:
    result = run("--json", input="out\ndata\nsync\n5000\nn\nn\n")
    assert result.exit_code == 0, result.output
    assert "Which way?" in result.stderr
    assert "Must users see the changes live" in result.stderr
    data = json.loads(printed(result, "{"))
    assert data["answers"] == {"direction": "out", "type": "data", "timing": "sync", "volume": "high",
                               "records": 5000, "remote_master": False, "ui": False}
    assert data["pattern"] == "batch-sync"


def test_only_missing_answers_are_asked_and_bad_ones_asked_again(terminal: None) -> None:
    result = run("--direction", "in", "--type", "data", "--json", input="soon\nasync\nlots\nlow\nmaybe\ny\ny\n")
    assert result.exit_code == 0, result.output
    assert "Which way?" not in result.stderr
    assert "Error: answer sync or async" in result.stderr
    assert "volume is low, high or a number of records, not 'lots'" in result.stderr
    data = json.loads(printed(result, "{"))
    assert (data["answers"]["timing"], data["answers"]["remote_master"], data["answers"]["ui"]) == ("async", True, True)
    assert data["pattern"] == "ui-update"


def test_text_output_after_prompts(terminal: None) -> None:
    result = run("--direction", "out", "--type", "virtual", "--timing", "sync", "--volume", "low",
                 input="yes\nno\n")
    assert result.exit_code == 0, result.output
    text = printed(result, "Pattern")
    assert text.startswith("Pattern      Data Virtualization (Best fit)\n")
    for label in ("Interlink", "Uses", "Why", "Keys", "Alternatives", "Example", "Docs"):
        assert re.search(rf"^{label} +\S", text, re.MULTILINE), label
    assert "interlink connect sync" in text


def test_no_input_makes_a_missing_answer_an_error(terminal: None) -> None:
    result = run("--direction", "out", "--type", "data", "--no-input")
    assert result.exit_code == 2
    assert "missing answers: --timing, --volume, --remote-master, --ui" in result.stderr
    assert result.stdout == ""


def test_without_a_terminal_nothing_is_asked() -> None:
    result = run("--direction", "out", input="data\n")  # stdin is not a terminal under CliRunner
    assert result.exit_code == 2
    assert "missing answers: --type, --timing" in result.stderr


def test_no_input_is_fine_when_every_answer_is_given() -> None:
    result = run(*flags("in", "process", "sync"), "--no-input")
    assert result.exit_code == 0, result.output
    assert "Remote Call-In (Best fit)" in result.stdout


@pytest.mark.parametrize("bad", [["--volume", "lots"], ["--volume", "-5"], ["--remote-master", "maybe"],
                                 ["--ui", "sometimes"], ["--direction", "sideways"], ["--type", "files"],
                                 ["--timing", "later"]])
def test_bad_values_are_usage_errors(bad: list[str]) -> None:
    result = run(*bad, "--no-input")
    assert result.exit_code == 2
    assert "Invalid value" in result.output


def test_values_are_case_insensitive() -> None:
    data = advice_json("--direction", "IN", "--type", "Data", "--timing", "ASYNC", "--volume", "High",
                       "--remote-master", "Yes", "--ui", "N")
    assert (data["pattern"], data["solution"]["fit"]) == ("batch-sync", "Best")


# -- the JSON document and the references it makes -------------------------------------------------------------


def test_json_document_shape() -> None:
    data = advice_json(*flags("out", "process", "async"))
    assert set(data) == {"answers", "matrix_pattern", "pattern", "name", "solution", "reasons", "alternatives",
                         "keys", "notes", "example", "docs"}
    assert set(data["solution"]) == {"id", "fit", "summary", "uses"}
    assert all(set(alternative) == {"pattern", "solution", "fit", "why"} for alternative in data["alternatives"])
    assert "examples/erp/subscriber.py" in data["example"]


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_page_and_example_it_names_exists() -> None:
    for _, page in PATTERNS.values():
        assert (ROOT / page).is_file(), page
    for solution in SOLUTIONS.values():
        for link in solution.docs:
            path, _, anchor = link.partition("#")
            assert (ROOT / path).is_file(), link
            if anchor:
                headings = re.findall(r"^#+ (.+)$", (ROOT / path).read_text(), re.MULTILINE)
                assert anchor in {_slug(h) for h in headings}, link
        for name in re.findall(r"examples/[\w/.-]+", solution.example):
            assert (ROOT / name.rstrip(".;")).exists(), name
