"""Run every benchmark of ``bench/`` and print one table of Interlink's figures against their same-run baselines.

Run ``python bench/report.py`` (``make bench``), or ``python bench/report.py --markdown docs/performance.md``
(``make perf-doc``) to also write the table as a Markdown page. Each benchmark runs as its own subprocess with
``--json`` (the quick variants unless ``--full``), one after the other:

=====================  ==========================================================================================
``rest_get``           ``bench/rest_get.py``: REST GET by id against a bare Starlette + sqlite3 app; startup time
``soql``               ``bench/soql.py --quick``: the SOQL engine against hand-written SQL; REST query vs GET by id
``collections_insert`` ``bench/collections_insert.py``: sObject Collections against single POSTs and executemany
``bus``                ``bench/bus.py --quick``: Pub/Sub API delivery against raw NATS JetStream and raw gRPC
``bulk``               ``bench/bulk.py --quick``: Bulk API 2.0 jobs against csv + sqlite3 executemany
``virtual``            ``bench/virtual.py --quick``: an external-object query against the same OData call sent directly
``pipeline``           ``bench/pipeline.py --quick``: middleware pipelines against raw REST, raw NATS and a script
``load``               ``bench/load.py``: mixed load on 1 and 2 API processes (PostgreSQL + NATS) against the
                       bare Starlette baseline; zero errors and zero lost events
=====================  ==========================================================================================

Each row of the table is one measurement: the benchmark, what was measured, Interlink's figure, the baseline it is
compared with and the baseline's figure, the ratio the benchmark computes, its goal (where the benchmark states
one) and whether the goal was met. A benchmark that fails (exit status, timeout, unreadable output) is a row with
the error; the others still run, and the exit status is 1. Nothing is asserted on timings.

Flags: ``--only NAME`` (repeatable), ``--quick`` (the default) or ``--full`` (the full-size variants: an hour and
more), ``--markdown PATH``, ``--json`` (the rows as JSON on stdout), ``--timeout S`` (per benchmark).

The parsing and table functions (:func:`rows_for`, :func:`format_table`, :func:`format_markdown`) work on the
benchmarks' JSON alone, so they can be used (and are tested) without running anything.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent


@dataclass
class Row:
    """One line of the table."""

    benchmark: str
    measurement: str
    value: float | None = None  # Interlink's figure
    unit: str = ""
    baseline: str = ""  # what it is compared with
    baseline_value: float | None = None
    ratio: float | None = None  # as the benchmark defines it (see ``ratio_note``)
    goal: str = ""  # e.g. ">= 0.5" on the ratio, "< 1.5 s" on the figure
    met: bool | None = None  # None: no goal, or not judged on this row
    note: str = ""
    error: str | None = None  # the benchmark failed


@dataclass
class Benchmark:
    """How to run one benchmark script and read its JSON."""

    name: str
    script: str
    quick_args: tuple[str, ...]
    full_args: tuple[str, ...]
    parse: Callable[[dict[str, Any]], list[Row]]
    compares: str  # the note under the table: what is measured against what


@dataclass
class RunRecord:
    """What happened when one benchmark ran."""

    name: str
    command: list[str]
    seconds: float = 0.0
    returncode: int | None = None
    load_before: list[float] = field(default_factory=list)
    load_after: list[float] = field(default_factory=list)
    error: str | None = None
    data: dict[str, Any] | None = None


# -- parsers: one per benchmark, from its --json output to rows ---------------------------------------------------


def _get(data: Any, *keys: str | int) -> Any:
    """``data[k1][k2]…`` or None when a step is missing."""
    for key in keys:
        if isinstance(data, dict):
            data = data.get(key)  # type: ignore[arg-type]
        elif isinstance(data, list) and isinstance(key, int) and -len(data) <= key < len(data):
            data = data[key]
        else:
            return None
    return data


def _ratio(mine: float | None, base: float | None) -> float | None:
    return mine / base if mine is not None and base else None


def parse_rest_get(data: dict[str, Any]) -> list[Row]:
    """Throughput (requests/s and CPU per request) against the bare baseline; startup."""
    goal = f">= {data.get('throughput_goal', 0.5)}"
    on_cpu = data.get("saturated") is False and data.get("cpu_ratio") is not None
    judged = data.get("throughput_goal_met")
    rows = [
        Row("rest_get", "GET sobjects/Account/{id}", _get(data, "interlink", "requests_per_second"), "req/s",
            "bare Starlette + sqlite3", _get(data, "baseline", "requests_per_second"), data.get("ratio"), goal,
            None if on_cpu else judged,
            note=f"{data.get('tool')}, {data.get('connections')} connections"
                 + ("; the load generator was the bottleneck: the goal is judged on CPU per request" if on_cpu
                    else "")),
        Row("rest_get", "GET by id: server CPU per request", _get(data, "interlink", "server_cpu_us_per_request"),
            "us", "bare Starlette + sqlite3", _get(data, "baseline", "server_cpu_us_per_request"),
            data.get("cpu_ratio"), goal, judged if on_cpu else None, note="ratio = baseline / Interlink"),
    ]
    startup = data.get("startup")
    if startup:
        limit = startup.get("goal_s", 1.5)
        for key, label in (("first_start_s", "startup, fresh data dir"), ("second_start_s", "startup, again")):
            value = startup.get(key)
            rows.append(Row("rest_get", label, value, "s", goal=f"< {limit:g} s",
                            met=None if value is None else value < limit))
    return rows


def parse_soql(data: dict[str, Any]) -> list[Row]:
    """Each query's engine median against hand-written SQL; REST query against GET by id."""
    limit = data.get("engine_goal_max_ratio", 1.5)
    rows = [Row("soql", f"SOQL {q.get('name')}: median", _get(q, "engine", "median_ms"), "ms",
                "hand-written SQL", _get(q, "hand", "median_ms"), q.get("ratio"), f"<= {limit:g}", q.get("goal_met"))
            for q in data.get("queries", [])]
    http = data.get("http")
    if http:
        goal = f">= {http.get('rps_goal', 0.7)}"
        on_cpu = http.get("saturated") is False and http.get("cpu_ratio") is not None
        rows.append(Row("soql", "REST query", _get(http, "query", "requests_per_second"), "req/s", "REST GET by id",
                        _get(http, "get_by_id", "requests_per_second"), http.get("ratio"), goal,
                        None if on_cpu else http.get("goal_met"),
                        note="goal judged on CPU per request (client-bound)" if on_cpu else ""))
        rows.append(Row("soql", "REST query: server CPU per request", _get(http, "query", "server_cpu_us_per_request"),
                        "us", "REST GET by id", _get(http, "get_by_id", "server_cpu_us_per_request"),
                        http.get("cpu_ratio"), goal, http.get("goal_met") if on_cpu else None,
                        note="ratio = GET by id / query"))
    return rows


def parse_collections(data: dict[str, Any]) -> list[Row]:
    """Collections inserts against single-record POSTs and raw executemany (no goal)."""
    mine = _get(data, "collections", "records_per_second")
    batch = data.get("batch")
    return [
        Row("collections_insert", f"sObject Collections insert ({batch}/call)", mine, "records/s",
            "single-record POSTs", _get(data, "single", "records_per_second"), data.get("collections_vs_single"),
            note="" if data.get("cpu_ratio") is None else f"{data['cpu_ratio']:.1f}x less server CPU per record"),
        Row("collections_insert", f"sObject Collections insert ({batch}/call)", mine, "records/s",
            "raw SQLite executemany", _get(data, "executemany", "records_per_second"),
            data.get("collections_vs_executemany")),
    ]


def parse_bus(data: dict[str, Any]) -> list[Row]:
    """Delivered events/s against raw NATS, raw gRPC; p99 latency."""
    results, ratios, goals = data.get("results", {}), data.get("ratios", {}), data.get("goals", {})
    raw_nats = _get(results, "raw NATS", "published_per_s")
    rows: list[Row] = []
    for key, label, prefix in (("embedded", "embedded bus", "embedded"), ("NATS", "NATS bus", "nats")):
        result = results.get(key)
        if result is None:
            continue
        if result.get("skipped"):
            rows.append(Row("bus", f"Pub/Sub delivered, {label}", note=f"skipped: {result['skipped']}"))
            continue
        delivered = result.get("delivered_per_s")
        goal = goals.get(f"{prefix}_vs_raw_nats")
        ratio = ratios.get(f"{prefix}_vs_raw_nats")
        rows.append(Row("bus", f"Pub/Sub delivered, {label}", delivered, "events/s", "raw NATS JetStream acked publish",
                        raw_nats, ratio, "" if goal is None else f">= {goal}",
                        None if goal is None or ratio is None else ratio >= goal))
        for base_key, ratio_key in (("raw gRPC stream", "raw_stream"), ("raw gRPC relay", "raw_relay")):
            rows.append(Row("bus", f"Pub/Sub delivered, {label}", delivered, "events/s", base_key,
                            _get(results, base_key, "delivered_per_s"), ratios.get(f"{prefix}_vs_{ratio_key}")))
        limit = goals.get("p99_ms")
        p99 = result.get("p99_ms")
        rows.append(Row("bus", f"publish-to-receive p99 at {data.get('rate', 1000):,.0f}/s, {label}", p99, "ms",
                        "raw gRPC relay", _get(results, "raw gRPC relay", "p99_ms"),
                        _ratio(p99, _get(results, "raw gRPC relay", "p99_ms")),
                        "" if limit is None else f"< {limit:g} ms",
                        None if limit is None or p99 is None else p99 < limit))
        if result.get("errors"):
            rows[-1].note = f"{result['errors']} events not published"
    return rows


def parse_bulk(data: dict[str, Any]) -> list[Row]:
    """Bulk API 2.0 jobs against csv + sqlite3."""
    rows_n = data.get("rows")
    goal = data.get("goal", 0.3)
    rows = [Row("bulk", f"Bulk 2.0 insert, {rows_n:,} rows" if rows_n else "Bulk 2.0 insert",
                _get(data, "insert", "rows_per_second"), "rows/s", "csv + sqlite3 executemany",
                _get(data, "baseline_insert", "rows_per_second"), data.get("insert_ratio"), f">= {goal}",
                data.get("goal_met")),
            Row("bulk", "Bulk 2.0 upsert", _get(data, "upsert", "rows_per_second"), "rows/s",
                "csv + sqlite3 executemany", _get(data, "baseline_upsert", "rows_per_second"),
                data.get("upsert_ratio")),
            Row("bulk", "Bulk 2.0 query", _get(data, "query", "rows_per_second"), "rows/s",
                "SELECT + csv.writer", _get(data, "baseline_query", "rows_per_second"), data.get("query_ratio"))]
    if data.get("cdc_insert"):
        rows.append(Row("bulk", "Bulk 2.0 insert, CDC on", _get(data, "cdc_insert", "rows_per_second"), "rows/s",
                        "Bulk 2.0 insert, CDC off", _get(data, "insert", "rows_per_second"), data.get("cdc_ratio")))
    for note in data.get("notes", []):
        rows[0].note = (rows[0].note + "; " if rows[0].note else "") + f"warning: {note}"
    return rows


def parse_virtual(data: dict[str, Any]) -> list[Row]:
    """External-object query against the same OData request sent directly (lower is better)."""
    ratio = data.get("ratio")
    return [Row("virtual", f"external-object query ({data.get('page', 200)} rows/page): median", _get(
        data, "interlink", "median_ms"), "ms", "direct OData request", _get(data, "direct", "median_ms"), ratio,
        "< 1.3", None if ratio is None else ratio < 1.3, note="ratio = Interlink / direct (time)")]


def _pipeline_rows(part: str, rows: dict[str, Any], unit: str, embedded_vs: list[tuple[str, str]]) -> list[Row]:
    out: list[Row] = []
    embedded = rows.get("pipeline")

    def rate(row: dict[str, Any] | None) -> float | None:
        return None if row is None or row.get("skipped") else row.get("per_second")

    def warnings(row: dict[str, Any] | None) -> str:
        return "; ".join(f"warning: {w}" for w in (row or {}).get("warnings", []))

    for base_key, base_label in embedded_vs:
        if embedded is None or base_key not in rows:
            continue
        base = rows[base_key]
        out.append(Row("pipeline", f"{part} pipeline, embedded", rate(embedded), unit, base_label, rate(base),
                       _ratio(rate(embedded), rate(base)),
                       note="; ".join(filter(None, [f"baseline skipped: {base['skipped']}" if base.get("skipped")
                                                    else "", warnings(embedded)]))))
    for key, base_key, base_label in (("1 worker", "pipeline", f"{part} pipeline, embedded"),
                                      ("2 workers", "1 worker", f"{part} pipeline, 1 worker")):
        row = rows.get(key)
        if row is None:
            continue
        if row.get("skipped"):
            out.append(Row("pipeline", f"{part} pipeline, {key}", note=f"skipped: {row['skipped']}"))
            continue
        out.append(Row("pipeline", f"{part} pipeline, {key}", rate(row), unit, base_label, rate(rows.get(base_key)),
                       _ratio(rate(row), rate(rows.get(base_key))), note=warnings(row)))
    return out


def parse_pipeline(data: dict[str, Any]) -> list[Row]:
    """Streaming and batch pipelines against raw REST, raw NATS, a plain script; distributed workers."""
    rows = _pipeline_rows("streaming", data.get("stream") or {}, "messages/s",
                          [("raw REST", "raw REST Collections upserts"), ("raw NATS", "raw NATS JetStream drain")])
    rows += _pipeline_rows("batch", data.get("batch_rows") or {}, "rows/s",
                           [("script", "sqlite3 + csv + httpx Bulk 2.0 script")])
    if data.get("distributed"):
        rows.append(Row("pipeline", "distributed rows", note=f"not measured: {data['distributed']}"))
    shown = [w for part in ("stream", "batch_rows") for row in (data.get(part) or {}).values()
             for w in (row or {}).get("warnings", [])]
    for note in data.get("notes", []):
        if not any(note.endswith(warning) for warning in shown):  # the run's notes repeat the rows' warnings
            rows.append(Row("pipeline", "warning", note=note))
    return rows


def parse_load(data: dict[str, Any]) -> list[Row]:
    """Mixed load per API process count against the bare baseline's reads; errors and lost events."""
    ratios = data.get("ratios", {})
    baseline = _get(data, "baseline", "per_second")
    base_label = "bare Starlette + sqlite3 (reads)"
    rows: list[Row] = []
    for run in data.get("runs", []):
        label, workers = run.get("label", f"{run.get('workers')} processes"), run.get("workers")
        where = f"{label}, {run.get('store')} + {run.get('bus')}"
        if run.get("skipped"):
            rows.append(Row("load", f"mixed load, {where}", note=f"skipped: {run['skipped']}"))
            continue
        if run.get("failed"):
            rows.append(Row("load", f"mixed load, {where}", error=run["failed"]))
            continue
        total, reads = run.get("total") or {}, _get(run, "surfaces", "rest read") or {}
        busy = run.get("server_busy")
        rows.append(Row("load", f"mixed load, {where}: all requests", total.get("per_second"), "req/s", base_label,
                        baseline, ratios.get(f"total_vs_baseline_{workers}"),
                        note=f"{data.get('connections')} clients; p50 {_fmt(total.get('p50_ms'))} ms, p99 "
                             f"{_fmt(total.get('p99_ms'))} ms" + ("" if busy is None else f"; server busy {busy:.0%}")))
        rows.append(Row("load", f"mixed load, {where}: REST reads", reads.get("per_second"), "req/s", base_label,
                        baseline, ratios.get(f"reads_vs_baseline_{workers}")))
        errors = sum((s or {}).get("errors", 0) for s in (run.get("surfaces") or {}).values())
        rows.append(Row("load", f"mixed load, {label}: errors", errors, "", goal="= 0", met=errors == 0,
                        note="; ".join(s for surface in (run.get("surfaces") or {}).values()
                                       for s in (surface or {}).get("error_samples", []))[:300]))
        events = run.get("events") or {}
        lost = events.get("lost", 0)
        rows.append(Row("load", f"mixed load, {label}: events lost", lost, "", goal="= 0",
                        met=lost == 0 and not events.get("subscriber_error"),
                        note=f"{events.get('received', 0)} of {events.get('published', 0)} published events received"
                             + (f"; subscriber: {events['subscriber_error']}" if events.get("subscriber_error")
                                else "")))
    if ratios.get("scaling_2_vs_1") is not None:
        two = next((r for r in data.get("runs", []) if r.get("workers") == 2), {})
        one = next((r for r in data.get("runs", []) if r.get("workers") == 1), {})
        rows.append(Row("load", "mixed load, 2 processes: all requests", _get(two, "total", "per_second"), "req/s",
                        "the same, 1 process", _get(one, "total", "per_second"), ratios["scaling_2_vs_1"],
                        note=f"{data.get('cpu_count')} CPUs shared with the load generator"))
    return rows


BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in (
    Benchmark("rest_get", "rest_get.py", (), (), parse_rest_get,
              "`GET /services/data/v66.0/sobjects/Account/{id}` on a real `interlink up` (one process, embedded "
              "SQLite, TLS) against `bench/baseline_app.py`, a bare Starlette app reading the same row with "
              "`sqlite3`, with the same TLS certificate and load generator (`wrk` when installed, else asyncio + "
              "httpx). When the load generator is the bottleneck (a server busy < 80%), the goal is judged on server "
              "CPU per request. Startup: `interlink up` until the first `/health` 200."),
    Benchmark("soql", "soql.py", ("--quick",), (), parse_soql,
              "Four SOQL queries through the engine (parse, compile, execute, shape) against the same hand-written "
              "SQL on 50,000 Accounts and 150,000 Contacts (`--quick`; the fixture bypasses the write path); then "
              "`GET /query` against `GET` by id on a live server."),
    Benchmark("collections_insert", "collections_insert.py", (), (), parse_collections,
              "Account inserts through `POST /composite/sobjects` (200 per call) against single-record `POST`s and "
              "against raw SQLite `executemany` of the same rows (the floor: no HTTP, JSON, validation or hooks)."),
    Benchmark("bus", "bus.py", ("--quick",), (), parse_bus,
              "Events published and delivered through the Pub/Sub API (gRPC, Avro) on the embedded bus and on NATS, "
              "against raw NATS JetStream acked publishes and raw gRPC servers (a pre-built stream; an in-memory "
              "relay); publish-to-receive latency at 1,000 events/s."),
    Benchmark("bulk", "bulk.py", ("--quick",), (), parse_bulk,
              "Bulk API 2.0 insert, upsert and query jobs of 100,000 Accounts (`--quick`) through a live server "
              "against `csv` + `sqlite3` `executemany` of the same CSV bytes; insert with CDC on against CDC off."),
    Benchmark("virtual", "virtual.py", ("--quick",), (), parse_virtual,
              "A filtered, paged SOQL query on an external object (`Order__x`, OData 4.0 ERP) against the OData "
              "request Interlink sends for it, sent directly to the ERP. The ratio is a time ratio (lower is "
              "better)."),
    Benchmark("pipeline", "pipeline.py", ("--quick",), (), parse_pipeline,
              "A streaming pipeline (`org.pubsub` → `map` → `dedupe` → `org.upsert`, 2,000 events with `--quick`) "
              "against raw REST Collections upserts and a raw NATS JetStream drain; a batch pipeline (`sql` → Bulk "
              "API 2.0, 50,000 rows) against a plain sqlite3 + csv + httpx script; both also split over 1 and 2 "
              "`interlink worker` processes on NATS."),
    Benchmark("load", "load.py", (), (), parse_load,
              "A mixed workload (REST reads 50%, REST writes 25%, composite `allOrNone` graphs 10%, platform-event "
              "publishes 15%) from 16 asyncio + httpx clients for 10 s against `interlink up --workers N` on a fresh "
              "PostgreSQL database and NATS JetStream, N = 1 then 2, with one Pub/Sub subscriber that must receive "
              "every published event; against the bare Starlette + `sqlite3` baseline serving reads to the same "
              "clients. Ratios: each deployment's requests/s ÷ the baseline's reads/s, and 2 ÷ 1 processes."),
)}


def rows_for(name: str, data: dict[str, Any]) -> list[Row]:
    """The table rows of benchmark ``name`` from its ``--json`` output."""
    return BENCHMARKS[name].parse(data)


# -- running -----------------------------------------------------------------------------------------------------


def parse_output(stdout: str) -> dict[str, Any]:
    """The JSON object a benchmark printed (ignoring anything printed before it)."""
    text = stdout.strip()
    try:
        data = json.loads(text)
    except ValueError:
        start = text.find("\n{")
        if start < 0:
            raise ValueError("no JSON object in the output") from None
        data = json.loads(text[start + 1:])
    if not isinstance(data, dict):
        raise ValueError("the output is not a JSON object")
    return data


def _tail(text: str, lines: int = 8) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:] if line.strip())


def run_one(benchmark: Benchmark, *, full: bool, timeout: float, log: Callable[[str], None]) -> RunRecord:
    """Run one benchmark with ``--json`` and read its output; never raises for a failing benchmark."""
    args = benchmark.full_args if full else benchmark.quick_args
    command = [sys.executable, str(BENCH_DIR / benchmark.script), *args, "--json"]
    record = RunRecord(benchmark.name, command, load_before=list(os.getloadavg()))
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)  # the benchmarks clean up (servers, databases) on SIGTERM
        try:
            stdout, stderr = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        record.error = f"timed out after {timeout:g}s"
    except KeyboardInterrupt:
        with _ignore_sigint():  # the child got the Ctrl-C too: let it clean up
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
        raise
    record.seconds = time.monotonic() - started
    record.returncode = process.returncode
    record.load_after = list(os.getloadavg())
    if record.error is None:
        try:
            record.data = parse_output(stdout)
        except ValueError as exc:
            record.error = f"exited {process.returncode}, unreadable output ({exc}): {_tail(stderr or stdout)}"
    if record.error is None and process.returncode != 0:
        problems = record.data.get("problems") if record.data else None
        record.error = f"exited {process.returncode}" + (
            f": {'; '.join(problems)}" if problems else f": {_tail(stderr)}" if stderr.strip() else "")
    log(f"{benchmark.name}: {'ok' if record.error is None else 'FAILED'} in {record.seconds:.0f}s "
        f"(load {record.load_after[0]:.2f})")
    return record


@contextlib.contextmanager
def _ignore_sigint() -> Iterator[None]:
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def rows_of(record: RunRecord) -> list[Row]:
    """The rows of one run: parsed from its JSON, plus an error row when it failed."""
    rows: list[Row] = []
    if record.data is not None:
        try:
            rows = rows_for(record.name, record.data)
        except Exception as exc:  # a parser bug must not hide the other benchmarks
            rows = [Row(record.name, "(report)", error=f"could not read the results: {type(exc).__name__}: {exc}")]
    if record.error is not None:
        rows.append(Row(record.name, "(run)", error=record.error))
    return rows


# -- formatting --------------------------------------------------------------------------------------------------


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    magnitude = abs(value)
    if magnitude >= 100 or float(value).is_integer():
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if magnitude >= 1 else f"{value:.3f}"


def _figure(value: float | None, unit: str) -> str:
    return "-" if value is None else f"{_fmt(value)} {unit}".strip()


def _met(row: Row) -> str:
    if row.error is not None:
        return "ERROR"
    if row.met is None:
        return "" if not row.goal else "-"
    return "met" if row.met else "NOT met"


def table_cells(row: Row) -> list[str]:
    """The cells of one row: benchmark, measurement, Interlink, baseline, baseline figure, ratio, goal, met."""
    if row.error is not None:
        return [row.benchmark, row.measurement, "-", "-", "-", "-", row.goal, _met(row)]
    return [row.benchmark, row.measurement, _figure(row.value, row.unit), row.baseline or "-",
            _figure(row.baseline_value, row.unit) if row.baseline else "-",
            "-" if row.ratio is None else f"{row.ratio:.3f}", row.goal, _met(row)]


HEADERS = ["benchmark", "measurement", "Interlink", "baseline", "baseline figure", "ratio", "goal", "met"]


def _notes(rows: Sequence[Row]) -> list[str]:
    return [f"{row.benchmark} / {row.measurement}: {'ERROR: ' + row.error if row.error else row.note}"
            for row in rows if row.error or row.note]


def format_table(rows: Sequence[Row]) -> str:
    """The plain-text table, then one line per row note or error."""
    cells = [HEADERS, *(table_cells(row) for row in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(HEADERS))]
    numeric = {2, 4, 5}
    lines = []
    for number, line in enumerate(cells):
        lines.append("  ".join(cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
                               for i, cell in enumerate(line)).rstrip())
        if number == 0:
            lines.append("  ".join("-" * width for width in widths))
    notes = _notes(rows)
    if notes:
        lines += ["", "notes:", *(f"  {note}" for note in notes)]
    return "\n".join(lines)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: Sequence[Row]) -> list[str]:
    """The table as Markdown lines."""
    lines = ["| " + " | ".join(HEADERS) + " |",
             "|" + "|".join("---:" if i in {2, 4, 5} else "---" for i in range(len(HEADERS))) + "|"]
    for row in rows:
        cells = table_cells(row)
        cells[7] = f"**{cells[7]}**" if cells[7] in ("NOT met", "ERROR") else cells[7]
        lines.append("| " + " | ".join(_md(cell) for cell in cells) + " |")
    return lines


def _loads(values: Sequence[float]) -> str:
    return " / ".join(f"{v:.2f}" for v in values) if values else "-"


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = round(int(line.split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return {"cpus": os.cpu_count() or 1, "cpu_model": model, "memory_gb": memory,
            "system": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
            "wrk": shutil.which("wrk") is not None}


WRK_INSTALLED = "`wrk` was installed: it generated the REST read load of `rest_get` and `soql`."
WRK_MISSING = ("`wrk` was not installed, so every HTTP load generator was asyncio + httpx (a few hundred requests/s "
               "on these cores): the rows say when it, not the server, was the bottleneck.")


def format_markdown(rows: Sequence[Row], records: Sequence[RunRecord], *, info: dict[str, Any], started: str,
                    load_start: Sequence[float], load_end: Sequence[float], full: bool) -> str:
    """docs/performance.md: how it was produced, the table, the runs with their load average, what is compared."""
    cpu = f"{info['cpus']} CPU cores" + (f" ({info['cpu_model']})" if info.get("cpu_model") else "")
    memory = f", {info['memory_gb']} GB of memory" if info.get("memory_gb") else ""
    lines = [
        "# Performance",
        "",
        "<!-- Generated by bench/report.py: do not edit by hand; run `make perf-doc` to regenerate. -->",
        "",
        f"This page was produced by `python bench/report.py --markdown docs/performance.md` (`make perf-doc`), "
        f"which ran every benchmark of `bench/` ({'the full-size variants' if full else 'the quick variants'}) "
        f"one after the other, each as its own process with `--json`, on {started}. The machine: {cpu}{memory}, "
        f"{info['system']}, Python {info['python']}; the load generators, the servers, PostgreSQL and nats-server "
        f"all shared those cores, and other work ran on the machine at the same time (load average "
        f"{_loads(load_start)} at the start and {_loads(load_end)} at the end, over 1 / 5 / 15 minutes). "
        + (WRK_INSTALLED if info.get("wrk") else WRK_MISSING),
        "",
        "Every figure is compared with a baseline measured in the same run, on the same machine, by the same "
        "client; the ratio is what carries over to another machine, not the absolute numbers. Expect ±20% from "
        "run to run on a shared 2-core machine, more on the short quick runs. `goal` is the target the benchmark "
        "itself states; `met` says whether this run reached it. Nothing in the test suite asserts on timings.",
        "",
        *markdown_table(rows),
        "",
    ]
    notes = _notes(rows)
    if notes:
        lines += ["Notes on the rows:", "", *(f"- {_md(note)}" for note in notes), ""]
    lines += ["## The runs", "", "| benchmark | command | seconds | load average before | load average after | "
              "status |", "|---|---|---:|---|---|---|"]
    for record in records:
        command = " ".join(["python", *[Path(part).name if part.endswith(".py") else part
                                        for part in record.command[1:]]])
        status = "ok" if record.error is None else f"**failed**: {_md(record.error)[:300]}"
        lines.append(f"| {record.name} | `{command}` | {record.seconds:.0f} | {_loads(record.load_before)} | "
                     f"{_loads(record.load_after)} | {status} |")
    load_record = next((r for r in records if r.name == "load" and r.data), None)
    if load_record is not None and load_record.data is not None:
        lines += ["", *load_details(load_record.data)]
    lines += ["", "## What each benchmark compares", ""]
    for record in records:
        benchmark = BENCHMARKS[record.name]
        lines += [f"- **{benchmark.name}** (`bench/{benchmark.script}`): {benchmark.compares}"]
    lines += ["", "Each script's section of `bench/README.md` describes its method, flags and earlier results.", ""]
    return "\n".join(lines)


def load_details(data: dict[str, Any]) -> list[str]:
    """The load test per surface, as Markdown."""
    lines = ["## Load test per surface", "",
             f"{data.get('connections')} clients, {data.get('warmup_s')} s warm-up + {data.get('duration_s')} s per "
             f"deployment, store {data.get('store')}, bus {data.get('bus')}; load average "
             f"{_loads(data.get('load_average', []))} at the start of `load.py`.", "",
             "| deployment | surface | requests | req/s | p50 ms | p99 ms | errors |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for run in data.get("runs", []):
        label = run.get("label", str(run.get("workers")))
        if run.get("skipped") or run.get("failed"):
            lines.append(f"| {label} | {_md('skipped: ' + run['skipped'] if run.get('skipped') else 'failed')} "
                         "| | | | | |")
            continue
        for surface in [*(run.get("surfaces") or {}).values(), run.get("total") or {}]:
            lines.append(f"| {label} | {surface.get('surface')} | {surface.get('requests')} | "
                         f"{_fmt(surface.get('per_second'))} | {_fmt(surface.get('p50_ms'))} | "
                         f"{_fmt(surface.get('p99_ms'))} | {surface.get('errors')} |")
    base = data.get("baseline")
    if base:
        lines.append(f"| baseline | rest read | {base.get('requests')} | {_fmt(base.get('per_second'))} | "
                     f"{_fmt(base.get('p50_ms'))} | {_fmt(base.get('p99_ms'))} | {base.get('errors')} |")
    lines += ["", "| deployment | events published | received | lost | server CPU busy | client CPU busy |",
              "|---|---:|---:|---:|---:|---:|"]
    for run in data.get("runs", []):
        if run.get("skipped") or run.get("failed"):
            continue
        events = run.get("events") or {}
        busy, client = run.get("server_busy"), run.get("client_busy")
        lines.append(f"| {run.get('label')} | {events.get('published')} | {events.get('received')} | "
                     f"{events.get('lost')} | {'-' if busy is None else f'{busy:.0%}'} | "
                     f"{'-' if client is None else f'{client:.0%}'} |")
    return lines


# -- main --------------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run every benchmark of bench/ and print one table of ratios "
                                                 "against their same-run baselines.")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", dest="full", action="store_false", help="the quick variants (the default)")
    size.add_argument("--full", dest="full", action="store_true", help="the full-size variants (an hour and more)")
    parser.set_defaults(full=False)  # else argparse takes --quick's store_false default (True) for ``full``
    parser.add_argument("--only", action="append", choices=list(BENCHMARKS), metavar="NAME",
                        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}")
    parser.add_argument("--markdown", type=Path, metavar="PATH", help="also write the table as Markdown to PATH")
    parser.add_argument("--json", action="store_true", help="print the rows and runs as JSON instead of the table")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds per benchmark before it is stopped (900; 7200 with --full)")
    args = parser.parse_args(argv)
    chosen = [BENCHMARKS[name] for name in BENCHMARKS if not args.only or name in args.only]
    timeout = args.timeout or (7200.0 if args.full else 900.0)
    started = datetime.datetime.now().astimezone()
    load_start = list(os.getloadavg())

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    records: list[RunRecord] = []
    for number, benchmark in enumerate(chosen, 1):
        options = benchmark.full_args if args.full else benchmark.quick_args
        log(f"[{number}/{len(chosen)}] {' '.join([benchmark.script, *options, '--json'])} ...")
        try:
            records.append(run_one(benchmark, full=args.full, timeout=timeout, log=log))
        except KeyboardInterrupt:
            log("interrupted")
            return 130
    rows = [row for record in records for row in rows_of(record)]
    failed = [record.name for record in records if record.error is not None]
    load_end = list(os.getloadavg())
    if args.json:
        print(json.dumps({"started": started.isoformat(timespec="seconds"), "machine": machine(),
                          "load_average_start": load_start, "load_average_end": load_end,
                          "full": args.full, "rows": [dataclasses.asdict(row) for row in rows],
                          "runs": [{k: v for k, v in dataclasses.asdict(r).items() if k != "data"} for r in records],
                          "failed": failed}, indent=2))
    else:
        print(f"{len(records)} benchmarks, {sum(r.seconds for r in records):.0f}s; {os.cpu_count()} CPUs; load "
              f"average {_loads(load_start)} at the start, {_loads(load_end)} at the end")
        print(format_table(rows))
        if failed:
            print(f"\nFAILED: {', '.join(failed)}")
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(format_markdown(rows, records, info=machine(),
                                                 started=started.strftime("%Y-%m-%d %H:%M %Z"),
                                                 load_start=load_start, load_end=load_end, full=args.full))
        log(f"wrote {args.markdown}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
