"""``interlink demo [PATTERN]...``: run each integration pattern's example scenario end to end and report it.

The demo starts what a user would: ``interlink up`` on a temporary data directory (or ``--data-dir``) with a copy of
``examples/project`` (plus the batch jobs of ``examples/sync`` and the printer flow of ``examples/printers``), its
named credentials and data source pointed at the example systems it starts on free ports (the billing service,
the outbound-message listener, the ERP's OData service). Each scenario then talks to the org only through its wire
APIs and checks the outcome (:mod:`interlink.cli.demo_scenarios`). Everything it started is stopped at the end,
on Ctrl-C and on failure, unless ``--keep`` leaves the org and the example systems running to explore.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from interlink.cli.example_systems import (
    SYSTEMS,
    ExamplesError,
    Processes,
    compose_project,
    find_examples,
    free_port,
    start_systems,
    system_urls,
    tail,
    wait_systems,
)

if TYPE_CHECKING:
    from interlink.cli.demo_scenarios import Scenario, Stage
    from interlink.cli.demo_wire import OrgInfo, Report, ThreadOutput

# The scenarios, in the order the demo runs them (interlink.cli.demo_scenarios.SCENARIOS; kept here so that
# `interlink --help` does not import them).
PATTERNS = ("request-reply", "fire-and-forget", "batch-sync", "call-in", "ui-update", "virtualization")
PASS, FAIL, SKIPPED = "PASS", "FAIL", "SKIPPED"
COLOURS = {PASS: "green", FAIL: "red", SKIPPED: "yellow"}
ADMIN = "admin@interlink.local"
DemoError = ExamplesError  # the demo could not set up: exit 2 or 1 with the message


def _running_server(data_dir: Path) -> int | None:
    """The pid of an ``interlink up`` already serving ``data_dir``, if any."""
    try:
        pid = json.loads((data_dir / "run" / "server.json").read_text()).get("pid")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(pid, int):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return pid


def start_org(processes: Processes, data_dir: Path, project: Path, log: Path, password: str | None,
              timeout: float = 90) -> OrgInfo:
    """``interlink up --port 0 --sample-data`` on ``data_dir``; waits for ``run/server.json``."""
    from interlink.cli.demo_wire import OrgInfo

    info_path = data_dir / "run" / "server.json"
    with contextlib.suppress(OSError):
        info_path.unlink()
    env = {"INTERLINK_GRPC_PORT": "0",
           # Subscribers learn where a subscription starts from the first keep-alive; a second is plenty here.
           "INTERLINK_PUBSUB_KEEPALIVE_SECONDS": "1"}
    if password:
        env["INTERLINK_ADMIN_PASSWORD"] = password
    process = processes.start("org", [sys.executable, "-m", "interlink.cli.main", "up", "--port", "0", "--data-dir",
                                      str(data_dir), "--project-dir", str(project), "--sample-data"], log, env)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise DemoError(f"interlink up exited {process.returncode}:\n{tail(log)}")
        with contextlib.suppress(OSError, ValueError):
            info = json.loads(info_path.read_text())
            if info.get("pid") == process.pid:
                return OrgInfo(info["url"], info["ca_bundle"], info.get("grpc_port"), info.get("org_id", ""),
                               data_dir)
        if time.monotonic() > deadline:
            raise DemoError(f"interlink up did not start within {timeout:g} s:\n{tail(log)}")
        time.sleep(0.1)


def mint_token(data_dir: Path) -> str:
    from interlink.cli.demo_wire import clean_env

    done = subprocess.run([sys.executable, "-m", "interlink.cli.main", "token", "--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=120, check=False, env=clean_env())
    if done.returncode != 0:
        raise DemoError(f"interlink token failed: {done.stderr.strip()}")
    return done.stdout.strip()


def run_scenario(scenario: Scenario, stage: Stage) -> Report:
    from interlink.cli.demo_wire import Report, Run, ScenarioFailed, ScenarioSkipped
    report = Report(scenario.pattern, scenario.number, scenario.title, scenario.summary)
    run = Run(report, stage.timeout)
    stage.wire.run_of = lambda: run  # the wire records onto the scenario being run
    started = time.monotonic()
    try:
        scenario.run(stage, run)
    except ScenarioSkipped as skipped:
        report.status, report.message = SKIPPED, f"SKIPPED: {skipped}"
    except ScenarioFailed as failure:
        report.status, report.message = FAIL, str(failure)
    except Exception as error:  # a bug or an outage outside any step: still a report, never a traceback
        report.status, report.message = FAIL, f"{type(error).__name__}: {error}"
    finally:
        report.seconds = round(time.monotonic() - started, 3)
    return report


# -- output -----------------------------------------------------------------------------------------------------


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def _esc(text: object) -> str:
    from rich.markup import escape

    return escape(str(text))


def print_header(console: Any, org: OrgInfo, systems: dict[str, str], password: str | None, work: Path) -> None:
    console.print("[bold]Interlink demo[/]: the integration patterns, end to end, against a real org")
    console.print(f"  org        [bold]{org.url}[/]  (org {org.org_id}, data dir {_esc(org.data_dir)})")
    login = f"{ADMIN} / {_esc(password)}" if password else f"{ADMIN} with its password"
    console.print(f"  console    {org.url}/console/  ({login})")
    console.print(f"  token      interlink token --data-dir {_esc(org.data_dir)}   (CA bundle {_esc(org.ca_bundle)})")
    if org.grpc_port:
        console.print(f"  Pub/Sub    {org.grpc_target}  (gRPC over TLS)")
    console.print("  systems    " + ", ".join(f"{name} {url}" for name, url in systems.items()))
    console.print(f"  logs       {_esc(work / 'logs')}")


def print_report(console: Any, report: Report) -> None:
    colour = COLOURS[report.status]
    console.print()
    console.print(f"[bold]{report.number}. {report.title}[/] ({report.pattern}): {_esc(report.scenario)}")
    for step in report.steps:
        mark = "[green]✓[/]" if step.ok else "[red]✗[/]"
        console.print(f"  {mark} {_esc(step.title)}  [dim]{step.seconds:.2f} s[/]")
        for call in step.calls:
            times = f" x{call.count}" if call.count > 1 else ""
            console.print(f"      [dim]{call.kind:<4}[/] {call.method} {_esc(call.target)} → {_esc(call.status)}"
                          f"{times}  [dim]{call.ms:.0f} ms[/]")
        for change in step.changes:
            console.print(f"      [cyan]{_esc(change)}[/]")
        for event in step.events:
            console.print(f"      [magenta]event[/] {event.topic} replay id [bold]{event.replay_id}[/] "
                          f"{_esc(json.dumps(event.payload, default=str))}")
        for note in step.notes:
            console.print(f"      [dim]· {_esc(note)}[/]")
        if step.error:
            console.print(f"      [red]{_esc(step.error)}[/]")
    tail = f": {_esc(report.message)}" if report.message and report.status != SKIPPED else ""
    shown = _esc(report.message) if report.status == SKIPPED else f"{report.status}{tail}"
    console.print(f"  [bold {colour}]{shown}[/]  [dim]{report.pattern} in {report.seconds:.2f} s[/]")


def print_summary(console: Any, reports: list[Report], seconds: float) -> None:
    counts = {status: sum(r.status == status for r in reports) for status in (PASS, FAIL, SKIPPED)}
    console.print()
    console.print(f"[bold]Summary[/]: {counts[PASS]} passed, {counts[FAIL]} failed, {counts[SKIPPED]} skipped "
                  f"in {seconds:.1f} s")
    for report in reports:
        colour = COLOURS[report.status]
        console.print(f"  [{colour}]{report.status:<7}[/] {report.number}. {report.pattern:<16} "
                      f"{report.seconds:6.2f} s")


# -- the command ------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _stdout_router() -> Iterator[ThreadOutput]:
    from interlink.cli.demo_wire import ThreadOutput

    router = ThreadOutput(sys.stdout)
    sys.stdout = router  # type: ignore[assignment]
    try:
        yield router
    finally:
        sys.stdout = router.default


def demo_command(
    patterns: Annotated[list[str] | None, typer.Argument(
        metavar="PATTERN", help=f"Which scenarios, in this order (default: all): {', '.join(PATTERNS)}.",
        show_default=False)] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the reports as JSON on stdout.")] = False,
    keep: Annotated[bool, typer.Option("--keep", help="Leave the org and the example systems running at the end.")]
    = False,
    data_dir: Annotated[Path | None, typer.Option(
        "--data-dir", help="The org's data directory (default: a new temporary one, removed afterwards).")] = None,
    examples_dir: Annotated[Path | None, typer.Option(
        "--examples-dir", help="Interlink's examples/ (default: ./examples, else the checkout's).")] = None,
    timeout: Annotated[float, typer.Option("--timeout", min=1, help="Seconds to wait for each asynchronous "
                                                                    "outcome (a callout, an event, a flow).")] = 30.0,
    billing_fail_every: Annotated[int, typer.Option("--billing-fail-every", hidden=True, min=0,
                                                    help="Start billing with --fail-every N (tests).")] = 0,
) -> None:
    """Run each integration pattern's example scenario end to end against a fresh org and report what was called,
    what changed, the events' replay ids and timings; exit 1 when a scenario fails."""
    chosen = list(dict.fromkeys(patterns or PATTERNS))
    unknown = [p for p in chosen if p not in PATTERNS]
    if unknown:
        _console(stderr=True).print(f"[red]error:[/] unknown pattern {', '.join(unknown)} (choose from "
                                    f"{', '.join(PATTERNS)})")
        raise typer.Exit(2)

    def interrupted(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt  # SIGTERM too stops everything the demo started

    with contextlib.suppress(ValueError):  # not the main thread (tests calling the command): no handler
        signal.signal(signal.SIGTERM, interrupted)
    try:
        code = _demo(chosen, json_output=json_output, keep=keep, data_dir=data_dir, examples_dir=examples_dir,
                     timeout=timeout, billing_fail_every=billing_fail_every)
    except DemoError as error:
        _console(stderr=True).print(f"[red]error:[/] {_esc(error)}")
        raise typer.Exit(error.exit_code) from None
    raise typer.Exit(code)


def _demo(chosen: list[str], *, json_output: bool, keep: bool, data_dir: Path | None, examples_dir: Path | None,
          timeout: float, billing_fail_every: int) -> int:
    from interlink.cli.demo_scenarios import SCENARIOS, Stage
    from interlink.cli.demo_wire import Wire

    assert tuple(s.pattern for s in SCENARIOS) == PATTERNS
    examples = find_examples(examples_dir)
    temporary = data_dir is None
    root = Path(tempfile.mkdtemp(prefix="interlink-demo-")) if data_dir is None else data_dir.resolve()
    root.mkdir(parents=True, exist_ok=True)
    running = _running_server(root)
    if running is not None:
        raise DemoError(f"an org is already running on {root} (pid {running}): stop it first (kill {running})", 2)
    work = root / "demo"
    work.mkdir(exist_ok=True)
    password_file = work / "admin-password"
    password: str | None = None
    if not (root / "org.db").exists():
        password = secrets.token_urlsafe(12)
        password_file.write_text(password)
        password_file.chmod(0o600)
    elif password_file.exists():
        password = password_file.read_text().strip()
    out = _console(stderr=json_output)
    processes = Processes(keep)
    ports = {name: free_port() for name in SYSTEMS}
    systems = system_urls(ports)
    logs = {name: work / "logs" / f"{name}.log" for name in (*SYSTEMS, "org")}
    started = time.monotonic()
    reports: list[Report] = []
    try:
        compose_project(examples, work / "project", ports)
        start_systems(processes, examples, ports, logs, {"erp": ["--seed", "120"], "billing": [
            "--fail-every", str(billing_fail_every)] if billing_fail_every else []})
        org = start_org(processes, root, work / "project", logs["org"], password)
        wait_systems(processes, ports, logs)
        with _stdout_router() as router:
            wire = Wire(org, mint_token(root), lambda: None)
            stage = Stage(wire, org, examples, work, work / "project", systems, logs, router, timeout, password)
            print_header(out, org, systems, password, work)
            for pattern in chosen:
                scenario = next(s for s in SCENARIOS if s.pattern == pattern)
                report = run_scenario(scenario, stage)
                reports.append(report)
                if not json_output:
                    print_report(out, report)
            wire.close()
        seconds = time.monotonic() - started
        if json_output:
            typer.echo(json.dumps({
                "org": {"url": org.url, "console": f"{org.url}/console/", "orgId": org.org_id,
                        "dataDir": str(root), "pubsub": org.grpc_target if org.grpc_port else None},
                "systems": systems, "passed": all(r.status != FAIL for r in reports),
                "seconds": round(seconds, 3), "reports": [r.to_json() for r in reports]}, indent=2))
        else:
            print_summary(out, reports, seconds)
    except KeyboardInterrupt:
        _console(stderr=True).print("\n[yellow]Interrupted[/]: stopping what the demo started")
        raise
    finally:
        if keep and processes.started:
            pids = " ".join(str(p.pid) for p in processes.started.values())
            out.print(f"\nThe org and the example systems keep running (data dir {_esc(root)}). Stop them with:\n"
                      f"  kill {pids}")
        else:
            processes.stop()
            if temporary:
                shutil.rmtree(root, ignore_errors=True)
    return 1 if any(r.status == FAIL for r in reports) else 0


__all__ = ["demo_command", "find_examples"]
