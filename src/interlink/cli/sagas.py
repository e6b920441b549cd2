"""``interlink saga``: start a saga, show the state of its instances, resume interrupted ones.

Sagas live in ``<project>/sagas/*.yaml`` (and Python files there); their instances in the middleware store
(``--middleware-store``, default ``<data dir>/middleware.db``). Org steps use the connections ``interlink pipelines``
uses: ``<project>/pipelines/connections.yaml`` plus the running local org as ``local`` / ``default``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from interlink.middleware.saga import SagaDefinition, SagaInstance
    from interlink.settings import Settings

saga_app = typer.Typer(help="Sagas: multi-step processes with compensation; start, inspect and resume them.",
                       no_args_is_help=True)

# The sub-app exists before this module imports interlink.cli.main (see interlink.cli.events for why).
from interlink.cli.main import DataDir, ProjectDir, _settings  # noqa: E402
from interlink.cli.pipelines import MiddlewareStoreUrl, resolve_connections  # noqa: E402


def _echo_error(message: str, settings: Settings | None = None) -> None:
    if settings is not None:  # errors name files by absolute path; show them relative to the project
        message = message.replace(str(settings.project_dir.resolve()) + "/", "")
    typer.echo(message, err=True)


def _definitions(settings: Settings) -> dict[str, SagaDefinition]:
    from interlink.middleware.saga import load_sagas

    definitions, errors = load_sagas(settings.project_dir)
    for error in errors:
        _echo_error(f"error  {error}", settings)
    return {definition.name: definition for definition in definitions}


def _print(instance: SagaInstance) -> None:
    typer.echo(json.dumps(instance.to_dict(), indent=2, default=str))


def _ended_well(instance: SagaInstance) -> bool:
    return instance.status == "Completed"


@saga_app.command("start")
def saga_start(
    name: Annotated[str, typer.Argument(help="The saga to run (its name in sagas/).")],
    input_json: Annotated[str, typer.Option("--input", help="The saga's input, a JSON object.")] = "{}",
    saga_id: Annotated[str | None, typer.Option("--id", help="The instance id (default: a new one). An existing "
                                                "id answers that instance instead of running again.")] = None,
    project_dir: ProjectDir = None,
    data_dir: DataDir = None,
    middleware_store: MiddlewareStoreUrl = None,
) -> None:
    """Run a saga to its end and print the instance as JSON; exit 1 unless it Completed."""
    from interlink.middleware.base import PipelineSpecError
    from interlink.middleware.saga import SagaError, SagaRunner
    from interlink.middleware.store import open_middleware_store

    settings = _settings(project_dir=project_dir, data_dir=data_dir, middleware_store=middleware_store)
    try:
        payload = json.loads(input_json)
    except ValueError as exc:
        _echo_error(f"error  --input is not JSON: {exc}")
        raise typer.Exit(2) from None
    definitions = _definitions(settings)
    if name not in definitions:
        _echo_error(f"error  no saga named {name} (known: {', '.join(sorted(definitions)) or 'none'})")
        raise typer.Exit(2)
    with open_middleware_store(settings) as store:
        runner = SagaRunner(definitions[name], store, resolve_connections(settings), project_dir=settings.project_dir)
        try:
            instance = runner.start(payload, saga_id)
        except (SagaError, PipelineSpecError) as exc:
            _echo_error(f"error  {exc}", settings)
            raise typer.Exit(2) from None
        finally:
            runner.close()
    _print(instance)
    if not _ended_well(instance):
        raise typer.Exit(1)


def _when(epoch: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@saga_app.command("status")
def saga_status(
    saga_id: Annotated[str | None, typer.Argument(help="One instance (with its history); default: the latest.")]
    = None,
    name: Annotated[str | None, typer.Option("--name", help="Only instances of this saga.")] = None,
    status: Annotated[str | None, typer.Option("--status", help="Only instances in this status.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many instances to list.")] = 50,
    data_dir: DataDir = None,
    middleware_store: MiddlewareStoreUrl = None,
) -> None:
    """List saga instances (id, name, status, step, updated), or one instance with its history."""
    from rich.console import Console
    from rich.table import Table

    from interlink.middleware.saga import ensure_saga_table, list_sagas, load_saga
    from interlink.middleware.store import open_middleware_store

    settings = _settings(data_dir=data_dir, middleware_store=middleware_store)
    with open_middleware_store(settings) as store:
        ensure_saga_table(store)
        if saga_id is not None:
            found = load_saga(store, saga_id)
            if found is None:
                _echo_error(f"no saga instance {saga_id}")
                raise typer.Exit(1)
            instances = [found]
        else:
            instances = list_sagas(store, name=name, statuses=[status] if status else None, limit=limit)
    console = Console(width=200, highlight=False)
    table = Table("id", "name", "status", "step", "updated", "error")
    for instance in instances:
        table.add_row(instance.id, instance.name, instance.status, instance.step_name or "-",
                      _when(instance.updated_at), instance.error or "")
    console.print(table)
    if saga_id is not None:
        history = Table("at", "step", "phase", "outcome", "attempt", "error")
        for entry in instances[0].history:
            history.add_row(entry["at"], entry["step"], entry["phase"], entry["outcome"],
                            str(entry.get("attempt") or ""), entry.get("error") or "")
        console.print(history)


@saga_app.command("resume")
def saga_resume(
    saga_id: Annotated[str | None, typer.Argument(help="The instance to resume.")] = None,
    every: Annotated[bool, typer.Option("--all", help="Resume every Running or Compensating instance.")] = False,
    project_dir: ProjectDir = None,
    data_dir: DataDir = None,
    middleware_store: MiddlewareStoreUrl = None,
) -> None:
    """Continue interrupted instances (after a crash), or retry a Failed one's compensation (after a fix); exit 1
    unless every one ended Completed or Compensated."""
    from interlink.middleware.base import PipelineSpecError
    from interlink.middleware.saga import INTERRUPTED, SagaError, SagaRunner, ensure_saga_table, list_sagas, load_saga
    from interlink.middleware.store import open_middleware_store

    if (saga_id is None) == (not every):
        _echo_error("error  name one instance ID, or --all")
        raise typer.Exit(2)
    settings = _settings(project_dir=project_dir, data_dir=data_dir, middleware_store=middleware_store)
    definitions = _definitions(settings)
    connections: dict[str, Any] | None = None
    failed = False
    with open_middleware_store(settings) as store:
        ensure_saga_table(store)
        found = load_saga(store, saga_id) if saga_id is not None else None
        if saga_id is not None and found is None:
            _echo_error(f"error  no saga instance {saga_id}")
            raise typer.Exit(1)
        targets = [found] if found is not None else list_sagas(store, statuses=INTERRUPTED, limit=10_000)
        for target in targets:
            definition = definitions.get(target.name)
            if definition is None:
                _echo_error(f"error  {target.id}: no saga named {target.name} in {settings.project_dir / 'sagas'}")
                failed = True
                continue
            if connections is None:
                connections = resolve_connections(settings)
            runner = SagaRunner(definition, store, connections, project_dir=settings.project_dir)
            try:
                instance = runner.resume(target.id)
            except (SagaError, PipelineSpecError) as exc:
                _echo_error(f"error  {target.id}: {exc}", settings)
                failed = True
                continue
            finally:
                runner.close()
            typer.echo(f"{instance.id} {instance.name}: {instance.status}"
                       + (f" ({instance.error})" if instance.error else ""))
            failed = failed or instance.status not in ("Completed", "Compensated")
    if not targets:
        typer.echo("no interrupted sagas")
    if failed:
        raise typer.Exit(1)


__all__ = ["saga_app"]
