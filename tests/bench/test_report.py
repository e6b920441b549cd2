"""bench/report.py on canned benchmark output: the table, the Markdown page and failing benchmarks (nothing is timed).

``data/*.json`` are real ``--json`` outputs of the benchmarks (quick variants, a 2-core machine); the tests check what
the report makes of them, never the figures themselves.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"


def _load_report() -> ModuleType:
    spec = importlib.util.spec_from_file_location("interlink_bench_report", ROOT / "bench" / "report.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


report = _load_report()


def canned(name: str) -> dict[str, Any]:
    return json.loads((DATA / f"{name}.json").read_text())


@pytest.mark.parametrize("name", list(report.BENCHMARKS))
def test_every_benchmark_output_becomes_rows_without_errors(name: str) -> None:
    rows = report.rows_for(name, canned(name))
    assert rows and all(row.benchmark == name and row.error is None for row in rows)
    assert any(row.baseline and row.ratio is not None for row in rows), "each benchmark has a ratio to a baseline"


def test_rest_get_judges_the_goal_on_cpu_when_the_client_was_the_bottleneck() -> None:
    data = canned("rest_get")
    assert data["saturated"] is False  # the canned run used the httpx fallback
    throughput, cpu, first, second = report.rows_for("rest_get", data)
    assert (throughput.value, throughput.baseline_value) == (data["interlink"]["requests_per_second"],
                                                             data["baseline"]["requests_per_second"])
    assert throughput.ratio == data["ratio"] and throughput.goal == ">= 0.5" and throughput.met is None
    assert cpu.ratio == data["cpu_ratio"] and cpu.met is data["throughput_goal_met"]
    assert first.goal == second.goal == "< 1.5 s"
    assert first.met is (data["startup"]["first_start_s"] < 1.5)


def test_goals_come_from_the_benchmarks_own_verdicts() -> None:
    soql = report.rows_for("soql", canned("soql"))
    verdicts = {row.measurement: row.met for row in soql if row.measurement.startswith("SOQL")}
    assert verdicts == {f"SOQL {q['name']}: median": q["goal_met"] for q in canned("soql")["queries"]}
    bulk_insert = report.rows_for("bulk", canned("bulk"))[0]
    assert bulk_insert.goal == ">= 0.3" and bulk_insert.met is canned("bulk")["goal_met"]
    virtual = report.rows_for("virtual", canned("virtual"))[0]
    assert virtual.goal == "< 1.3" and virtual.met is (canned("virtual")["ratio"] < 1.3)


def test_load_rows_check_errors_and_lost_events_and_compare_two_processes_with_one() -> None:
    data = canned("load")
    rows = {row.measurement: row for row in report.rows_for("load", data)}
    assert rows["mixed load, 1 process: errors"].met is True and rows["mixed load, 1 process: errors"].value == 0
    lost = rows["mixed load, 2 processes: events lost"]
    assert lost.goal == "= 0" and lost.met is True
    assert "179 of 179 published events received" in lost.note
    scaling = rows["mixed load, 2 processes: all requests"]
    assert scaling.ratio == data["ratios"]["scaling_2_vs_1"] and scaling.baseline == "the same, 1 process"
    reads = rows["mixed load, 1 process, postgresql + nats: REST reads"]
    assert reads.baseline_value == data["baseline"]["per_second"]


def test_load_with_lost_events_and_a_skipped_deployment_is_not_met() -> None:
    data = canned("load")
    data["runs"][0]["events"]["lost"] = 3
    data["runs"][1] = {"workers": 2, "label": "2 processes", "store": "sqlite", "bus": "embedded",
                       "skipped": "interlink up has no --workers option"}
    rows = {row.measurement: row for row in report.rows_for("load", data)}
    assert rows["mixed load, 1 process: events lost"].met is False
    assert rows["mixed load, 2 processes, sqlite + embedded"].note.startswith("skipped: ")


def test_the_table_has_one_line_per_row_and_notes_below() -> None:
    rows = [row for name in report.BENCHMARKS for row in report.rows_for(name, canned(name))]
    text = report.format_table(rows)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["benchmark", "measurement", "Interlink"]
    assert len([line for line in lines if line.startswith(tuple(report.BENCHMARKS))]) >= len(rows)
    assert "notes:" in text and "NOT met" in text  # some quick-run goals were missed on the busy machine


def test_a_failing_benchmark_is_a_row_with_its_error() -> None:
    failed = report.RunRecord("bus", ["python", "bus.py", "--json"], error="exited 1: no NATS server")
    unreadable = report.RunRecord("soql", ["python", "soql.py", "--json"], data={"queries": ["not a query"]})
    rows = report.rows_of(failed) + report.rows_of(unreadable)
    assert [(row.benchmark, row.error is not None) for row in rows] == [("bus", True), ("soql", True)]
    assert "could not read the results" in str(rows[1].error)
    text = report.format_table(rows)
    assert "ERROR" in text and "exited 1: no NATS server" in text
    assert "| **ERROR** |" in "\n".join(report.markdown_table(rows))


def test_the_output_is_found_after_stray_lines() -> None:
    assert report.parse_output('starting...\n{\n  "ratio": 0.5\n}\n') == {"ratio": 0.5}
    with pytest.raises(ValueError):
        report.parse_output("Traceback (most recent call last):\n  boom")


def test_the_markdown_page_says_how_and_where_it_was_measured() -> None:
    records = [report.RunRecord(name, ["python", f"/x/bench/{report.BENCHMARKS[name].script}", "--json"],
                                seconds=12.0, returncode=0, load_before=[1.0, 0.5, 0.25],
                                load_after=[1.5, 0.75, 0.5], data=canned(name)) for name in report.BENCHMARKS]
    rows = [row for record in records for row in report.rows_of(record)]
    page = report.format_markdown(rows, records, info={"cpus": 2, "cpu_model": "Test CPU", "memory_gb": 4.0,
                                                       "system": "Linux", "python": "3.11", "wrk": False},
                                  started="2026-11-29 09:00 UTC", load_start=[1.0, 0.5, 0.25],
                                  load_end=[2.0, 1.0, 0.5], full=False)
    assert page.startswith("# Performance")
    assert "2 CPU cores (Test CPU)" in page and "2026-11-29 09:00 UTC" in page and "1.00 / 0.50 / 0.25" in page
    assert "| benchmark | measurement | Interlink | baseline | baseline figure | ratio | goal | met |" in page
    assert "`python rest_get.py --json`" in page and "## Load test per surface" in page
    assert all(f"**{name}**" in page for name in report.BENCHMARKS)


def test_report_runs_the_chosen_scripts_and_exits_1_when_one_fails(tmp_path: Path, capsys: Any,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    good = tmp_path / "good.py"
    good.write_text(f"import sys\nprint('warming up', file=sys.stderr)\nprint({json.dumps(canned('virtual'))!r})\n")
    bad = tmp_path / "bad.py"
    bad.write_text("import sys\nprint('no NATS server at nats://x', file=sys.stderr)\nsys.exit(1)\n")
    benchmarks = {"virtual": report.Benchmark("virtual", str(good), ("--quick",), (), report.parse_virtual, "v"),
                  "bus": report.Benchmark("bus", str(bad), (), (), report.parse_bus, "b")}
    monkeypatch.setattr(report, "BENCHMARKS", benchmarks)
    markdown = tmp_path / "performance.md"
    assert report.main(["--markdown", str(markdown)]) == 1
    out = capsys.readouterr().out
    assert "external-object query" in out and "ERROR" in out and "no NATS server at nats://x" in out
    assert "FAILED: bus" in out
    page = markdown.read_text()
    assert "**failed**" in page and "`python good.py --quick --json`" in page  # the quick variants by default
    assert report.main(["--only", "virtual", "--json", "--full"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["failed"] == [] and [row["benchmark"] for row in result["rows"]] == ["virtual"]
    assert result["runs"][0]["command"][1:] == [str(good), "--json"]


def test_pipeline_warnings_are_shown_once() -> None:
    data = canned("pipeline")
    data["batch_rows"]["2 workers"]["warnings"] = ["12 messages were dead-lettered"]
    data["notes"] = ["batch 2 workers: 12 messages were dead-lettered", "the stream was purged"]
    rows = report.rows_for("pipeline", data)
    text = report.format_table(rows)
    assert text.count("12 messages were dead-lettered") == 1 and "the stream was purged" in text
