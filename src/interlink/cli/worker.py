"""``interlink worker``: a background worker process: the org's background jobs, pipelines' worker halves, or both.

``interlink worker --jobs`` runs the org's background jobs (Bulk API jobs, async callouts, outbound messages,
event-triggered and scheduled flows) next to API processes started with ``interlink up --no-jobs`` (or with
jobs: claims are safe either way); it opens the same org (``--store``, ``--data-dir``, ``--bus``).

``interlink pipelines run --bus nats://…`` feeds each pipeline's work queue; every ``interlink worker --bus
nats://…`` shares one durable consumer per pipeline with the others, so the work spreads over the processes and a
worker killed mid-message loses nothing (see :mod:`interlink.middleware.distributed`). Without ``--jobs`` a worker
runs pipelines only (every enabled one, or ``--pipelines``); with ``--jobs`` it runs pipelines too when the bus is
NATS and the project has some (``--no-pipelines`` turns that off).

A worker runs until SIGTERM or Ctrl-C: it stops fetching, finishes the work in hand and hands back what it still
holds.
"""

from __future__ import annotations

import signal
import threading
from typing import Annotated, Any

import typer

from interlink.cli.main import DataDir, ProjectDir, StoreUrl, _err, _open, _settings
from interlink.cli.pipelines import (
    AckWait,
    BusUrl,
    MaxAckPending,
    MaxDeliver,
    MetricsHost,
    MetricsPort,
    MiddlewareStoreUrl,
    _echo_error,
    _log_to_stderr,
    _store,
    build_or_exit,
    bus_settings,
    choose_pipelines,
    resolve_connections,
    run_with_status,
)


def worker_command(
    pipelines: Annotated[list[str] | None, typer.Option(
        "--pipelines", "--pipeline", "-p",
        help="Work on these pipelines only (repeat the option, or separate names with commas); default every "
             "enabled pipeline of the project.")] = None,
    jobs: Annotated[bool, typer.Option(
        "--jobs", help="Run the org's background jobs: Bulk API jobs, async callouts, outbound messages, event and "
                       "scheduled flows (for API processes started with `interlink up --no-jobs`, or beside them).")]
    = False,
    no_pipelines: Annotated[bool, typer.Option(
        "--no-pipelines", help="With --jobs: run no pipelines even on a NATS bus.")] = False,
    threads: Annotated[int | None, typer.Option(
        "--threads", min=1, help="With --jobs: threads running background jobs (default: the bulk_workers "
                                 "setting, 2).")] = None,
    store: StoreUrl = None,
    bus: BusUrl = None,
    project_dir: ProjectDir = None,
    data_dir: DataDir = None,
    middleware_store: MiddlewareStoreUrl = None,
    ack_wait: AckWait = 30.0,
    max_deliver: MaxDeliver = 5,
    max_ack_pending: MaxAckPending = 20_000,
    metrics_port: MetricsPort = 0,
    metrics_host: MetricsHost = "127.0.0.1",
) -> None:
    """Run background work until SIGTERM or Ctrl-C: the org's background jobs (--jobs) and the worker half of
    pipelines (steps and sinks), taking messages from the NATS work queues that `interlink pipelines run --bus
    nats://…` feeds.

    Start as many workers as needed, on any machine that reaches the store, NATS and the middleware store
    (PostgreSQL for several machines: --store / --middleware-store postgresql://…; SQLite works for processes of one
    machine). A worker that dies leaves its claims and messages: another worker takes them over once their lease
    (Bulk jobs 30 s, callouts 60 s) or --ack-wait runs out, at once when it is restarted on the same machine.
    """
    from interlink.middleware.distributed import is_nats_bus

    settings = _settings(project_dir=project_dir, data_dir=data_dir, middleware_store=middleware_store, bus=bus,
                         store=store, bulk_workers=threads)
    names = [name.strip() for value in pipelines or [] for name in value.split(",") if name.strip()]
    if not jobs:
        if not is_nats_bus(settings.bus):
            _echo_error("error: interlink worker needs a NATS bus for pipelines: --bus nats://host:port (or "
                        "INTERLINK_BUS); --jobs runs the org's background jobs on any bus")
            raise typer.Exit(2)
        _run_pipelines(settings, names, ack_wait, max_deliver, max_ack_pending, metrics_port, metrics_host, None)
        return
    if names and not is_nats_bus(settings.bus):
        _echo_error("error: pipelines in a worker need a NATS bus: --bus nats://host:port (or INTERLINK_BUS)")
        raise typer.Exit(2)
    with_pipelines = not no_pipelines and is_nats_bus(settings.bus) and bool(
        names or choose_pipelines(settings, None))
    _run_jobs(settings, (names, ack_wait, max_deliver, max_ack_pending, metrics_port, metrics_host)
              if with_pipelines else None)


def _run_jobs(settings: Any, pipeline_args: tuple[Any, ...] | None) -> None:
    """``--jobs``: the org's background jobs on threads; pipelines (if any) in the foreground."""
    from interlink.app.background import run_background_jobs

    if settings.bulk_workers < 1:
        settings = settings.replace(bulk_workers=2)
    _log_to_stderr(settings)
    org = _open(settings)
    stop = threading.Event()
    jobs = threading.Thread(target=run_background_jobs, args=(org, stop), name="interlink-jobs")
    previous = {signum: signal.signal(signum, lambda _signum, _frame: stop.set())
                for signum in (signal.SIGTERM, signal.SIGINT)}
    _err(f"Running the background jobs of org {org.org_id} on {settings.bulk_workers} threads "
         f"(store: {org.store.backend}, bus: {org.bus.backend.name or 'sqlite'})"
         + ("; pipelines too" if pipeline_args else "") + ". Ctrl-C stops.")
    jobs.start()
    try:
        if pipeline_args is not None:
            _run_pipelines(settings, *pipeline_args, stop)
        else:
            while not stop.wait(0.5):
                pass
    finally:
        stop.set()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        jobs.join()
        org.close()


def _run_pipelines(settings: Any, names: list[str], ack_wait: float, max_deliver: int, max_ack_pending: int,
                   metrics_port: int, metrics_host: str, stop: threading.Event | None) -> None:
    from interlink.middleware.distributed import build_runners, check_store_for_workers

    bus_config = bus_settings(settings, ack_wait=ack_wait, max_deliver=max_deliver, max_ack_pending=max_ack_pending)
    chosen = choose_pipelines(settings, names or None)
    if not chosen:
        _echo_error(f"no pipelines to work on in {settings.project_dir / 'pipelines'}")
        raise typer.Exit(2)
    connections = resolve_connections(settings)
    with _store(settings) as store:
        problem = check_store_for_workers(store)
        if problem:
            _echo_error(f"error: {problem}")
            raise typer.Exit(2)
        stop = stop or threading.Event()
        runners: list[Any] = build_runners(chosen, store, bus_config, feeders=False, workers=True,
                                           connections=connections, project_dir=settings.project_dir,
                                           stop_event=stop)
        build_or_exit(runners, settings)
        _log_to_stderr(settings)
        if store.backend == "sqlite":
            _echo_error(f"note: the middleware store is SQLite ({settings.middleware_store_url}): every worker and "
                        "`interlink pipelines run` must share this file on this machine; use --middleware-store "
                        "postgresql://… for workers on several machines")
        # SIGTERM stops the worker like Ctrl-C: the runners finish their batch and hand back what they still hold.
        previous = signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
        try:
            failed = run_with_status(runners, store, once=False, metrics_port=metrics_port,
                                     metrics_host=metrics_host)
        finally:
            signal.signal(signal.SIGTERM, previous)
    if failed:
        raise typer.Exit(1)


__all__ = ["worker_command"]
