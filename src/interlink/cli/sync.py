"""``interlink sync``: batch jobs (Batch Data Synchronization) — run a job and what it depends on, show control
records, reset a restart point. A job is a pipeline of ``<project>/pipelines/`` (see docs/middleware.md#batch-jobs).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

sync_app = typer.Typer(help="Batch jobs: run one with its dependencies (or on their schedules), show control "
                            "records, reset a restart point.", no_args_is_help=True)

# The sub-app exists before this module imports interlink.cli.main (see interlink.cli.events for why).
from interlink.cli.main import DataDir, ProjectDir, _err, _settings  # noqa: E402
from interlink.cli.pipelines import (  # noqa: E402
    BusUrl,
    CheckpointBucket,
    MiddlewareStoreUrl,
    _echo_error,
    _load,
    _log_to_stderr,
    _store,
    bus_settings,
    resolve_connections,
)


def _pipelines(settings: Any) -> dict[str, Any]:
    pipelines, errors = _load(settings)
    for error in errors:
        _echo_error(f"error  {error}", settings)
    if errors:
        raise typer.Exit(2)
    return {pipeline.name: pipeline for pipeline in pipelines}


def _summary(results: list[Any]) -> bool:
    """Print one line per job; True when all succeeded without error rows."""
    from rich.console import Console
    from rich.table import Table

    table = Table("job", "status", "read", "written", "error rows", "seconds", "restart point", "error")
    for result in results:
        if result.report is None:
            table.add_row(result.name, "Skipped", "", "", "", "", "", result.skipped or "")
            continue
        report = result.report
        table.add_row(result.name, report.status, str(report.read), str(report.written), str(report.dead_lettered),
                      f"{result.seconds:.1f}", _point(report.checkpoint), report.error or "")
    Console(stderr=True, highlight=False).print(table)
    return not any(result.failed for result in results)


def _point(position: Any) -> str:
    if isinstance(position, dict) and "watermark" in position:
        return f"{position['watermark']} / {position.get('id')}"
    return "" if position is None else str(position)


@sync_app.command("run")
def sync_run(
    name: Annotated[str | None, typer.Argument(help="The job to run (its dependsOn chain runs first).")] = None,
    schedule: Annotated[bool, typer.Option("--schedule", help="Run every scheduled job's chain when it falls due, "
                                                              "until Ctrl-C.")] = False,
    idle_timeout: Annotated[float, typer.Option("--idle-timeout", min=0,
                                                help="A job whose source stays silent this long is done.")] = 2.0,
    project_dir: ProjectDir = None,
    data_dir: DataDir = None,
    middleware_store: MiddlewareStoreUrl = None,
    bus: BusUrl = None,
    checkpoint_bucket: CheckpointBucket = None,
) -> None:
    """Run a job and its dependencies with a progress bar and a final summary; exit 1 when a job failed or left
    error rows (see `interlink dlq list`), 2 for a bad job definition. With --bus nats://… the watermarks live in
    a JetStream KV bucket (copied to the middleware store, which keeps the run records and error rows); the jobs
    still run in this process."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from interlink.middleware import jobs
    from interlink.middleware.base import PipelineSpecError
    from interlink.middleware.distributed import is_nats_bus

    if (name is None) == (not schedule):
        _err("[red]error:[/] give a job NAME, or --schedule (not both)")
        raise typer.Exit(2)
    settings = _settings(project_dir=project_dir, data_dir=data_dir, middleware_store=middleware_store, bus=bus)
    bus_config = bus_settings(settings, checkpoint_bucket=checkpoint_bucket) if is_nats_bus(settings.bus) else None
    known = _pipelines(settings)
    connections = resolve_connections(settings)
    _log_to_stderr(settings)
    stop = threading.Event()

    def run(job: str) -> list[Any]:
        try:
            order = jobs.chain(known, job)
        except PipelineSpecError as exc:
            _echo_error(f"error  {exc}", settings)
            raise typer.Exit(2) from None
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("read {task.fields[read]}"),
                      TextColumn("written {task.fields[written]}"), TextColumn("errors {task.fields[dead]}"),
                      TimeElapsedColumn(), transient=False) as progress, _store(settings) as store:
            tasks = {p.name: progress.add_task(p.name, total=None, read=0, written=0, dead=0) for p in order}

            def seen(job_name: str, metrics: dict[str, Any]) -> None:
                progress.update(tasks[job_name], read=metrics["read"], written=metrics["written"],
                                dead=metrics["dead_lettered"])

            watermarks = store if bus_config is None else bus_config.checkpoint_store(store, stop)
            try:
                results = jobs.run_chain(order, watermarks, connections=connections,
                                         project_dir=settings.project_dir, progress=seen, stop_event=stop,
                                         idle_timeout=idle_timeout)
            finally:
                if watermarks is not store:
                    watermarks.close()
            for result in results:
                progress.update(tasks[result.name], total=1, completed=1)
        return results

    try:
        if name is not None:
            if not _summary(run(name)):
                raise typer.Exit(1)
            return
        scheduled = {n: p for n, p in known.items() if p.schedule and p.enabled}
        if not scheduled:
            _err("no scheduled jobs (add `schedule: \"0 2 * * *\"` to a pipeline)")
            return
        for job_name, pipeline in sorted(scheduled.items()):
            _err(f"{job_name}: {pipeline.schedule} (next {jobs.next_run(pipeline):%Y-%m-%d %H:%M} UTC)")
        with _store(settings) as store:
            jobs.run_on_schedule(scheduled, store, stop_event=stop, run=lambda job: [_summary(run(job))])
    except KeyboardInterrupt:
        stop.set()
        _err("stopped")


@sync_app.command("status")
def sync_status(
    name: Annotated[str | None, typer.Argument(help="One job (default: all).")] = None,
    project_dir: ProjectDir = None,
    data_dir: DataDir = None,
    middleware_store: MiddlewareStoreUrl = None,
) -> None:
    """Each job's control record: last run (status, counts), restart point, error rows waiting, schedule."""
    from rich.table import Table

    from interlink.cli.events import _wide_console
    from interlink.middleware import jobs

    settings = _settings(project_dir=project_dir, data_dir=data_dir, middleware_store=middleware_store)
    known = _pipelines(settings)
    if name is not None and name not in known:
        _err(f"[red]error:[/] no job named {name!r}")
        raise typer.Exit(2)
    chosen = [known[name]] if name else list(known.values())
    with _store(settings) as store:
        rows = jobs.status(chosen, store)
    table = Table("job", "last run", "status", "read", "written", "error rows", "restart point", "depends on",
                  "next run")
    for row in rows:
        run = row.last_run
        when = "" if run is None else datetime.fromtimestamp(run.started, UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(row.name, when, "" if run is None else run.status, "" if run is None else str(run.read),
                      "" if run is None else str(run.written), str(row.error_rows), _point(row.restart_point),
                      ", ".join(row.depends_on), "" if row.next_run is None else f"{row.next_run:%Y-%m-%d %H:%M}")
    _wide_console().print(table)


@sync_app.command("reset")
def sync_reset(
    name: Annotated[str, typer.Argument(help="The job whose restart point to forget.")],
    project_dir: ProjectDir = None,
    data_dir: DataDir = None,
    middleware_store: MiddlewareStoreUrl = None,
) -> None:
    """Forget a job's restart point (its watermark): the next run extracts everything again."""
    from interlink.middleware import jobs

    settings = _settings(project_dir=project_dir, data_dir=data_dir, middleware_store=middleware_store)
    if name not in _pipelines(settings):
        _err(f"[red]error:[/] no job named {name!r}")
        raise typer.Exit(2)
    with _store(settings) as store:
        had = jobs.reset(store, name)
    _err(f"{name}: restart point forgotten" if had else f"{name}: had no restart point")


__all__ = ["sync_app"]
