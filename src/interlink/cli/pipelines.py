"""``interlink pipelines`` and ``interlink dlq``: check, list and run middleware pipelines; inspect and replay their
dead letters.

Pipelines live in ``<project>/pipelines/*.yaml`` (and Python files there); their state (checkpoints, dedupe keys,
dead letters, runs) in the middleware store (``--middleware-store``, default ``<data dir>/middleware.db``).
Heavy modules are imported inside the commands so ``interlink --help`` stays instant.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from interlink.middleware.spec import Pipeline
    from interlink.middleware.store import MiddlewareStore
    from interlink.settings import Settings

pipelines_app = typer.Typer(help="Middleware pipelines: validate, list and run them.", no_args_is_help=True)
dlq_app = typer.Typer(help="Dead letters of the pipelines: list, show, replay after a fix, discard.",
                      no_args_is_help=True)

# The sub-apps exist before this module imports interlink.cli.main (see interlink.cli.events for why).
from interlink.cli.main import DataDir, ProjectDir, _err, _settings  # noqa: E402

MiddlewareStoreUrl = Annotated[str | None, typer.Option(
    "--middleware-store", envvar="INTERLINK_MIDDLEWARE_STORE",
    help="Middleware store URL: empty for SQLite middleware.db under the data dir, or postgresql://user@host/db.")]


def resolve_connections(settings: Settings) -> dict[str, Any]:
    """The named connections pipeline steps use (``context.connections``): the org connections declared in
    ``<project>/pipelines/connections.yaml`` plus, when an ``interlink up`` is running for the data directory, the
    local org as ``local`` (and as ``default`` unless the file declares one), with a token minted for the admin.

    The middleware itself only ever talks to these orgs over their wire APIs; minting the local token is the CLI's
    job because it may open the org (as ``interlink data`` does).
    """
    from interlink.middleware.orgapi import OrgConnection
    from interlink.middleware.orgapi import resolve_connections as from_project

    return from_project(settings, local=_local_org(settings, OrgConnection))


def _local_org(settings: Settings, connection_class: Any) -> Any:
    """The running local org as an org connection, or None when no server runs for the data directory."""
    import json
    import os

    server_file = settings.data_dir / "run" / "server.json"
    try:
        info = json.loads(server_file.read_text())
    except (OSError, ValueError):
        return None
    pid = info.get("pid") if isinstance(info, dict) else None
    if isinstance(pid, int) and os.name == "posix":
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None  # a server that is gone left its file behind
        except PermissionError:
            pass
    from interlink.app.org import ADMIN_USERNAME, Org

    with Org.open(settings, deploy=False) as org:
        token = org.mint_token(ADMIN_USERNAME)
    return connection_class.from_server_file(server_file, token)


def _echo_error(message: str, settings: Settings | None = None) -> None:
    if settings is not None:
        # Errors name files by absolute path; show them as the user would type them.
        message = message.replace(str(settings.project_dir), _relative(settings.project_dir), 1)
    typer.echo(message, err=True)


def _log_to_stderr(settings: Settings) -> None:
    import logging

    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")


def _load(settings: Settings) -> tuple[list[Pipeline], list[Exception]]:
    from interlink.middleware.spec import load_project

    pipelines, errors = load_project(settings.project_dir)
    return pipelines, list(errors)


def _store(settings: Settings) -> MiddlewareStore:
    from interlink.middleware.store import open_middleware_store

    return open_middleware_store(settings)


def _relative(path: Path | None) -> str:
    if path is None:
        return "(python)"
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@pipelines_app.command("validate")
def pipelines_validate(project_dir: ProjectDir = None, data_dir: DataDir = None) -> None:
    """Check every pipeline (structure, step types, keys, expressions, branches) without running anything."""
    from interlink.middleware.base import PipelineSpecError
    from interlink.middleware.spec import BuildContext, validate_pipeline
    from interlink.middleware.store import MiddlewareStore

    settings = _settings(project_dir=project_dir, data_dir=data_dir)
    pipelines, errors = _load(settings)
    connections = resolve_connections(settings)
    scratch = MiddlewareStore.open_url("sqlite://")  # validation must not create files
    try:
        for pipeline in pipelines:
            context = BuildContext(store=scratch, pipeline=pipeline.name, connections=connections,
                                   project_dir=settings.project_dir, data_dir=settings.data_dir)
            try:
                validate_pipeline(pipeline, context)
            except PipelineSpecError as exc:
                errors.append(exc)
                continue
            typer.echo(f"ok     {pipeline.name}  ({_relative(pipeline.path)})")
    finally:
        scratch.close()
    for error in errors:
        _echo_error(f"error  {error}", settings)
    if not pipelines and not errors:
        _echo_error(f"no pipelines in {settings.project_dir / 'pipelines'}")
    if errors:
        raise typer.Exit(2)


@pipelines_app.command("list")
def pipelines_list(project_dir: ProjectDir = None, data_dir: DataDir = None,
                   middleware_store: MiddlewareStoreUrl = None) -> None:
    """List the project's pipelines with their checkpoint, last run and dead letters."""
    from rich.console import Console
    from rich.table import Table

    settings = _settings(project_dir=project_dir, data_dir=data_dir, middleware_store=middleware_store)
    pipelines, errors = _load(settings)
    table = Table("pipeline", "file", "source", "steps", "sinks", "checkpoint", "last run", "dead letters")
    with _store(settings) as store:
        for pipeline in pipelines:
            source = pipeline.source.get("type", "?") if isinstance(pipeline.source, dict) else \
                type(pipeline.source).__name__
            sinks = ([] if pipeline.sink is None else ["default"]) + list(pipeline.sinks)
            checkpoint = store.load_checkpoint(pipeline.name)
            runs = store.runs(pipeline.name, limit=1)
            last = f"{runs[0].status}: read {runs[0].read}, written {runs[0].written}, dead {runs[0].dead}" \
                if runs else "-"
            table.add_row(pipeline.name + ("" if pipeline.enabled else " (disabled)"), _relative(pipeline.path),
                          str(source), str(len(pipeline.steps)), ", ".join(sinks),
                          "-" if checkpoint is None else _when(checkpoint.updated_at), last,
                          str(store.count_dead_letters(pipeline.name)))
    Console(width=200).print(table)
    for error in errors:
        _echo_error(f"error  {error}", settings)
    if errors:
        raise typer.Exit(2)


def _when(epoch: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


BusUrl = Annotated[str | None, typer.Option(
    "--bus", envvar="INTERLINK_BUS",
    help="nats://host:port distributes the work through NATS JetStream work queues to `interlink worker` "
         "processes; empty (or any other bus) runs each pipeline whole in this process.")]
AckWait = Annotated[float, typer.Option(
    "--ack-wait", min=0.1, envvar="INTERLINK_PIPELINES_ACK_WAIT",
    help="With a NATS bus: seconds without news from a worker before its messages go to another worker.")]
MaxDeliver = Annotated[int, typer.Option(
    "--max-deliver", min=1, envvar="INTERLINK_PIPELINES_MAX_DELIVER",
    help="With a NATS bus: deliveries of a message that no worker acknowledged (they died or hung on it) before "
         "it is dead-lettered.")]
MaxAckPending = Annotated[int, typer.Option(
    "--max-ack-pending", min=1, envvar="INTERLINK_PIPELINES_MAX_ACK_PENDING",
    help="With a NATS bus: messages of a pipeline that its workers may hold unacknowledged at once, all workers "
         "together (at least the pipeline's batch).")]
CheckpointBucket = Annotated[str | None, typer.Option(
    "--checkpoint-bucket", envvar="INTERLINK_PIPELINES_CHECKPOINT_BUCKET",
    help="With a NATS bus: the JetStream KV bucket of the checkpoints and watermarks (default IL_MW_CHECKPOINTS; "
         "'none' keeps them in the middleware store only).")]
MetricsPort = Annotated[int, typer.Option(
    "--metrics-port", min=0, max=65535, envvar="INTERLINK_METRICS_PORT",
    help="Serve Prometheus metrics at http://HOST:PORT/metrics (0: off).")]
MetricsHost = Annotated[str, typer.Option(
    "--metrics-host", envvar="INTERLINK_METRICS_HOST", help="Interface of the metrics endpoint.")]


def bus_settings(settings: Settings, *, ack_wait: float = 30.0, max_deliver: int = 5,
                 max_ack_pending: int | None = None, checkpoint_bucket: str | None = None) -> Any:
    """The :class:`~interlink.middleware.distributed.BusSettings` of the command line; a bad value exits 2."""
    from interlink.middleware.distributed import MAX_ACK_PENDING, BusSettings
    from interlink.middleware.natskv import CHECKPOINT_BUCKET

    bucket: str | None = CHECKPOINT_BUCKET if checkpoint_bucket is None else checkpoint_bucket.strip()
    if bucket is not None and bucket.lower() in ("", "none"):
        bucket = None
    try:
        return BusSettings(settings.bus, ack_wait=ack_wait, max_deliver=max_deliver,
                           max_ack_pending=MAX_ACK_PENDING if max_ack_pending is None else max_ack_pending,
                           checkpoint_bucket=bucket)
    except ValueError as exc:
        _echo_error(f"error: {exc}")
        raise typer.Exit(2) from None


def run_with_status(runners: list[Any], store: MiddlewareStore, *, once: bool, metrics_port: int,
                    metrics_host: str) -> bool:
    """Run ``runners`` together with a live status line (and the metrics endpoint), print one report line each;
    answer whether any failed (or, with ``once``, dead-lettered a message). Shared by ``interlink pipelines run``
    and ``interlink worker``."""
    from rich.console import Console

    from interlink.middleware.distributed import role_of, run_together
    from interlink.middleware.metrics_server import serve_metrics
    from interlink.middleware.monitor import sample_pipelines

    console = Console(stderr=True, highlight=False)

    def status_line() -> str:
        parts = []
        for runner in runners:
            snap = runner.metrics()
            lag = "" if snap["lag_seconds"] is None else f" lag {snap['lag_seconds']:.1f}s"
            parts.append(f"{snap['pipeline']}: read {snap['read']} written {snap['written']} "
                         f"dead {snap['dead_lettered']}{lag}")
        return " | ".join(parts)

    server = serve_metrics(runners, store, metrics_port, metrics_host)
    if server is not None:
        console.print(f"metrics at {server.url}")
    sampler = sample_pipelines(runners, store)  # samples for the web console's Pipelines page
    try:
        with console.status(status_line()) as status:
            reports = run_together(runners, once=once, monitor=lambda: status.update(status_line()))
    finally:
        sampler.stop()
        if server is not None:
            server.stop()
    failed = False
    for runner, report in zip(runners, reports, strict=True):
        role = role_of(runner)
        typer.echo(f"{report.pipeline}{f' ({role})' if role else ''}: {report.status}: read {report.read}, "
                   f"written {report.written}, filtered {report.filtered}, deduped {report.deduped}, "
                   f"retried {report.retried}, dead-lettered {report.dead_lettered}"
                   + (f" ({report.error})" if report.error else ""))
        failed = failed or report.status == "Failed" or (once and report.dead_lettered > 0)
    return failed


def build_or_exit(runners: list[Any], settings: Settings) -> None:
    """Build every runner's steps; a configuration error is printed and exits 2."""
    from interlink.middleware.base import PipelineSpecError

    for runner in runners:
        try:
            runner.build()
        except PipelineSpecError as exc:
            _echo_error(f"error  {exc}", settings)
            raise typer.Exit(2) from None


def choose_pipelines(settings: Settings, names: list[str] | None) -> list[Pipeline]:
    """The named pipelines (default: every enabled one); load errors and unknown names exit 2."""
    pipelines, errors = _load(settings)
    known = {pipeline.name: pipeline for pipeline in pipelines}
    unknown = [name for name in names or [] if name not in known]
    for error in errors:
        _echo_error(f"error  {error}", settings)
    if unknown:
        _echo_error(f"error  no pipeline named {', '.join(unknown)} (known: {', '.join(sorted(known)) or 'none'})")
    if errors or unknown:
        raise typer.Exit(2)
    return [known[name] for name in names] if names else [pipeline for pipeline in pipelines if pipeline.enabled]


@pipelines_app.command("run")
def pipelines_run(
    names: Annotated[list[str] | None, typer.Argument(help="Pipelines to run (default: every enabled one).")] = None,
    once: Annotated[bool, typer.Option("--once", help="Stop when the sources are exhausted or idle.")] = False,
    idle_timeout: Annotated[float, typer.Option("--idle-timeout", min=0,
                                                help="With --once: stop after this many seconds without a "
                                                     "message.")] = 5.0,
    project_dir: ProjectDir = None,
    data_dir: DataDir = None,
    middleware_store: MiddlewareStoreUrl = None,
    bus: BusUrl = None,
    local_worker: Annotated[bool, typer.Option(
        "--local-worker/--no-local-worker",
        help="With a NATS bus: also run one worker per pipeline in this process (off: only feed the work "
             "queues, for `interlink worker` processes).")] = True,
    ack_wait: AckWait = 30.0,
    max_deliver: MaxDeliver = 5,
    max_ack_pending: MaxAckPending = 20_000,
    checkpoint_bucket: CheckpointBucket = None,
    metrics_port: MetricsPort = 0,
    metrics_host: MetricsHost = "127.0.0.1",
) -> None:
    """Run pipelines until Ctrl-C (or, with --once, until their sources run dry); exit 1 when --once dead-lettered
    messages or a pipeline failed. With --bus nats://…, this process feeds each pipeline's work queue (and, unless
    --no-local-worker, works on it too) and keeps the feeders' checkpoints in a JetStream KV bucket; with --once it
    stops when the queues are drained."""
    from interlink.middleware.distributed import build_runners, is_nats_bus
    from interlink.middleware.runtime import PipelineRunner

    settings = _settings(project_dir=project_dir, data_dir=data_dir, middleware_store=middleware_store, bus=bus)
    chosen = choose_pipelines(settings, names)
    if not chosen:
        _echo_error(f"no pipelines to run in {settings.project_dir / 'pipelines'}")
        return
    connections = resolve_connections(settings)
    with _store(settings) as store:
        runners: list[Any]
        if is_nats_bus(settings.bus):
            bus_config = bus_settings(settings, ack_wait=ack_wait, max_deliver=max_deliver,
                                      max_ack_pending=max_ack_pending, checkpoint_bucket=checkpoint_bucket)
            runners = build_runners(chosen, store, bus_config, feeders=True, workers=local_worker, once=once,
                                    connections=connections, project_dir=settings.project_dir,
                                    idle_timeout=idle_timeout)
        else:
            runners = [PipelineRunner(pipeline, store, connections=connections, project_dir=settings.project_dir,
                                      idle_timeout=idle_timeout) for pipeline in chosen]
        build_or_exit(runners, settings)
        _log_to_stderr(settings)
        failed = run_with_status(runners, store, once=once, metrics_port=metrics_port, metrics_host=metrics_host)
    if failed:
        raise typer.Exit(1)


# -- dead letters ------------------------------------------------------------------------------------------------

@dlq_app.command("list")
def dlq_list(
    pipeline: Annotated[str | None, typer.Option("--pipeline", help="Only this pipeline's dead letters.")] = None,
    state: Annotated[str, typer.Option("--state", help="New, Replayed, Discarded or all.")] = "New",
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many, oldest first.")] = 100,
    data_dir: DataDir = None,
    middleware_store: MiddlewareStoreUrl = None,
) -> None:
    """List dead letters (New ones by default), oldest first."""
    from rich.console import Console
    from rich.table import Table

    if state not in ("New", "Replayed", "Discarded", "all"):
        _echo_error(f"error: --state is New, Replayed, Discarded or all (not {state!r})")
        raise typer.Exit(2)
    settings = _settings(data_dir=data_dir, middleware_store=middleware_store)
    with _store(settings) as store:
        letters = store.dead_letters(pipeline, None if state == "all" else state, limit=limit)
    table = Table("id", "pipeline", "step", "state", "attempts", "error", "message id", "created")
    for letter in letters:
        table.add_row(letter.id, letter.pipeline, letter.step, letter.state, str(len(letter.attempts)),
                      letter.error[:120], letter.message.id, _when(letter.created_at))
    table.columns[0].no_wrap = True
    Console(width=max(200, Console().width)).print(table)


@dlq_app.command("show")
def dlq_show(letter_id: Annotated[str, typer.Argument(help="Dead letter id (or a unique prefix).")],
             data_dir: DataDir = None, middleware_store: MiddlewareStoreUrl = None) -> None:
    """Print one dead letter as JSON: the message, the failing step, the error and every attempt."""
    settings = _settings(data_dir=data_dir, middleware_store=middleware_store)
    with _store(settings) as store:
        letter = store.dead_letter(letter_id)
    if letter is None:
        _echo_error(f"error: no dead letter {letter_id}")
        raise typer.Exit(1)
    typer.echo(json.dumps(letter.to_dict(), indent=2, default=str))


@dlq_app.command("replay")
def dlq_replay(
    letter_ids: Annotated[list[str], typer.Argument(help="Dead letter ids (or unique prefixes).")],
    from_start: Annotated[bool, typer.Option("--from-start", help="Run every step again, not only the failed "
                                                                  "one and those after it.")] = False,
    project_dir: ProjectDir = None,
    data_dir: DataDir = None,
    middleware_store: MiddlewareStoreUrl = None,
) -> None:
    """Send dead letters through their pipeline again (after a fix); delivered ones become Replayed."""
    from interlink.middleware.base import PipelineSpecError
    from interlink.middleware.runtime import PipelineRunner

    settings = _settings(project_dir=project_dir, data_dir=data_dir, middleware_store=middleware_store)
    pipelines, errors = _load(settings)
    known = {pipeline.name: pipeline for pipeline in pipelines}
    problems = False
    _log_to_stderr(settings)
    with _store(settings) as store:
        by_pipeline: dict[str, list[str]] = {}
        for letter_id in letter_ids:
            letter = store.dead_letter(letter_id)
            if letter is None:
                _echo_error(f"error: no dead letter {letter_id}")
                problems = True
                continue
            by_pipeline.setdefault(letter.pipeline, []).append(letter.id)
        for name, ids in by_pipeline.items():
            if name not in known:
                reason = next((str(e) for e in errors if name in str(e)), f"no pipeline {name!r} in the project")
                _echo_error(f"error: cannot replay {', '.join(ids)}: {reason}")
                problems = True
                continue
            runner = PipelineRunner(known[name], store, connections=resolve_connections(settings),
                                    project_dir=settings.project_dir)
            try:
                report = runner.replay(ids, from_start=from_start)
            except PipelineSpecError as exc:
                _echo_error(f"error  {exc}", settings)
                raise typer.Exit(2) from None
            for letter_id in report.replayed:
                typer.echo(f"{letter_id} replayed")
            for letter_id in report.failed:
                failed = store.dead_letter(letter_id)
                typer.echo(f"{letter_id} failed again: {failed.error if failed else '?'}")
            for letter_id, reason in report.skipped.items():
                typer.echo(f"{letter_id} skipped: {reason}")
            problems = problems or bool(report.failed or report.skipped)
    if problems:
        raise typer.Exit(1)


@dlq_app.command("discard")
def dlq_discard(
    letter_ids: Annotated[list[str], typer.Argument(help="Dead letter ids (or unique prefixes).")],
    data_dir: DataDir = None,
    middleware_store: MiddlewareStoreUrl = None,
) -> None:
    """Mark dead letters Discarded: they stay on record but are never replayed."""
    settings = _settings(data_dir=data_dir, middleware_store=middleware_store)
    missing = False
    with _store(settings) as store:
        ids = []
        for letter_id in letter_ids:
            letter = store.dead_letter(letter_id)
            if letter is None:
                _echo_error(f"error: no dead letter {letter_id}")
                missing = True
            elif letter.state != "New":
                _echo_error(f"{letter.id} is {letter.state}: left as it is")
            else:
                ids.append(letter.id)
        changed = store.set_dead_letter_state(ids, "Discarded")
    _err(f"Discarded {changed} dead letter(s).")
    if missing:
        raise typer.Exit(1)


__all__ = ["build_or_exit", "bus_settings", "choose_pipelines", "dlq_app", "pipelines_app", "resolve_connections",
           "run_with_status"]
