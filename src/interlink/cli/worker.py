"""``interlink worker``: a background worker process. Today it runs the worker halves of pipelines on a NATS bus.

``interlink pipelines run --bus nats://…`` feeds each pipeline's work queue; every ``interlink worker --bus
nats://…`` shares one durable consumer per pipeline with the others, so the work spreads over the processes and a
worker killed mid-message loses nothing (see :mod:`interlink.middleware.distributed`). A worker runs until
SIGTERM or Ctrl-C: it stops fetching, finishes the batch in hand and hands back what it still holds.

The org's background jobs may join ``interlink worker`` later; pipelines are what it runs by default, limited with
``--pipelines``.
"""

from __future__ import annotations

import signal
import threading
from typing import Annotated, Any

import typer

from interlink.cli.main import DataDir, ProjectDir, _settings
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
    """Run background work until SIGTERM or Ctrl-C: by default the worker half of every enabled pipeline (steps
    and sinks), taking messages from the NATS work queues that `interlink pipelines run --bus nats://…` feeds.

    Start as many workers as needed, on any machine that reaches NATS and the middleware store (PostgreSQL,
    --middleware-store postgresql://…; a SQLite store works for processes of one machine). A worker that dies
    leaves its messages unacknowledged: another worker gets them after --ack-wait seconds.
    """
    from interlink.middleware.distributed import build_runners, check_store_for_workers, is_nats_bus

    settings = _settings(project_dir=project_dir, data_dir=data_dir, middleware_store=middleware_store, bus=bus)
    if not is_nats_bus(settings.bus):
        _echo_error("error: interlink worker needs a NATS bus: --bus nats://host:port (or INTERLINK_BUS)")
        raise typer.Exit(2)
    names = [name.strip() for value in pipelines or [] for name in value.split(",") if name.strip()]
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
        stop = threading.Event()
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
