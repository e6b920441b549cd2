"""``interlink callouts``: the org's asynchronous callouts, their attempts and dead letters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

callouts_app = typer.Typer(help="Asynchronous callouts: list them, show their attempts, send dead ones again.",
                           no_args_is_help=True)

outbound_app = typer.Typer(help="Outbound messages: their notifications, and the WSDL a listener is built from.",
                           no_args_is_help=True)

services_app = typer.Typer(help="External Services: register an OpenAPI spec as typed actions, list them.",
                           no_args_is_help=True)

secrets_app = typer.Typer(help="Secrets for named credentials, encrypted at rest (${secret:NAME} in credentials).",
                          no_args_is_help=True)

# The sub-apps exist before this module imports interlink.cli.main (see interlink.cli.events for why).
from interlink.cli.main import DataDir, StoreUrl, _err, _existing_org  # noqa: E402


@callouts_app.command("list")
def callouts_list(
    state: Annotated[str | None, typer.Option("--state", help="Queued, Delivered, Dead or Discarded.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many, newest first.")] = 50,
    data_dir: DataDir = None,
    store: StoreUrl = None,
) -> None:
    """List callouts, newest first."""
    from rich.table import Table

    from interlink.cli.events import _wide_console

    _check_state(state)
    with _existing_org(data_dir, store) as org:
        rows = org.callouts.list(state=state, limit=limit)
    table = Table("id", "state", "attempts", "request", "source", "last error", "created")
    for row in rows:
        table.add_row(row["id"], row["state"], str(row["attempts"]),
                      f"{row['method']} callout:{row['credential']}{row['path']}", row["source"],
                      row["lastError"] or "", row["createdAt"])
    _wide_console().print(table)


@callouts_app.command("show")
def callouts_show(callout_id: str, data_dir: DataDir = None, store: StoreUrl = None) -> None:
    """Print one callout with every attempt, as JSON."""
    with _existing_org(data_dir, store) as org:
        found = org.callouts.get(callout_id)
    if found is None:
        _err(f"[red]error:[/] no callout {callout_id}")
        raise typer.Exit(1)
    typer.echo(json.dumps(found, indent=2))


@callouts_app.command("retry")
def callouts_retry(callout_id: str, data_dir: DataDir = None, store: StoreUrl = None) -> None:
    """Queue a dead callout again (it keeps its idempotency key, so the receiver can drop a duplicate)."""
    with _existing_org(data_dir, store) as org:
        if not org.callouts.retry(callout_id):
            _err(f"[red]error:[/] {callout_id} is not a dead callout")
            raise typer.Exit(1)
    _err(f"{callout_id} queued again")


@callouts_app.command("discard")
def callouts_discard(callout_id: str, data_dir: DataDir = None, store: StoreUrl = None) -> None:
    """Give up on a queued or dead callout (state Discarded); one being sent right now is left alone."""
    with _existing_org(data_dir, store) as org:
        if not org.callouts.discard(callout_id):
            _err(f"[red]error:[/] {callout_id} is not a queued or dead callout")
            raise typer.Exit(1)
    _err(f"{callout_id} discarded")


def _check_state(state: str | None) -> None:
    if state is not None and state not in _STATES:
        _err(f"[red]error:[/] --state is {', '.join(_STATES[:-1])} or {_STATES[-1]} (not {state!r})")
        raise typer.Exit(2)


_STATES = ("Queued", "Delivered", "Dead", "Discarded")


@outbound_app.command("retry")
def outbound_retry(notification_id: str, data_dir: DataDir = None, store: StoreUrl = None) -> None:
    """Send a waiting or dead outbound-message notification at once."""
    with _existing_org(data_dir, store) as org:
        if not org.outbound.retry(notification_id):
            _err(f"[red]error:[/] {notification_id} is neither waiting nor dead, or is being sent")
            raise typer.Exit(1)
    _err(f"{notification_id} queued again")


@outbound_app.command("discard")
def outbound_discard(notification_id: str, data_dir: DataDir = None, store: StoreUrl = None) -> None:
    """Give up on a queued or dead notification (state Discarded)."""
    with _existing_org(data_dir, store) as org:
        if not org.outbound.discard(notification_id):
            _err(f"[red]error:[/] {notification_id} is not a queued or dead notification")
            raise typer.Exit(1)
    _err(f"{notification_id} discarded")


@outbound_app.command("list")
def outbound_list(
    state: Annotated[str | None, typer.Option("--state", help="Queued, Delivered, Dead or Discarded.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many, newest first.")] = 50,
    data_dir: DataDir = None,
    store: StoreUrl = None,
) -> None:
    """List outbound-message notifications, newest first."""
    from rich.table import Table

    from interlink.cli.events import _wide_console

    _check_state(state)
    with _existing_org(data_dir, store) as org:
        rows = org.outbound.list(state=state, limit=limit)
    table = Table("notification", "message", "record", "state", "attempts", "last error", "next attempt")
    for row in rows:
        table.add_row(row["id"], row["definition"], row["recordId"], row["state"], str(row["attempts"]),
                      row["lastError"] or "", row["nextAttemptAt"] if row["state"] == "Queued" else "")
    _wide_console().print(table)


@outbound_app.command("wsdl")
def outbound_wsdl(
    name: Annotated[str, typer.Argument(help="The outbound message (metadata/outboundMessages/NAME.yaml).")],
    data_dir: DataDir = None,
    store: StoreUrl = None,
    project_dir: Annotated[Path | None, typer.Option("--project-dir", envvar="INTERLINK_PROJECT_DIR",
                                                     help="The project holding metadata/.")] = None,
) -> None:
    """Print the WSDL of an outbound message, to generate a listener from (zeep, wsimport, svcutil ...)."""
    from interlink.errors import MetadataError

    with _existing_org(data_dir, store, project_dir=project_dir) as org:
        try:
            typer.echo(org.outbound.wsdl(name, org.instance_url()), nl=False)
        except MetadataError as error:
            _err(f"[red]error:[/] {error.message}")
            raise typer.Exit(1) from None


@services_app.command("register")
def services_register(
    name: Annotated[str, typer.Argument(help="The service's name (actions are NAME.operationId).")],
    spec: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True,
                                         help="OpenAPI 3.x or Swagger 2.0, JSON or YAML.")],
    credential: Annotated[str, typer.Option("--credential", help="The named credential it is called through.")],
    project_dir: Annotated[Path | None, typer.Option("--project-dir", envvar="INTERLINK_PROJECT_DIR",
                                                     help="The project holding metadata/.")] = None,
) -> None:
    """Check a spec and keep it as metadata/externalServices/NAME.yaml (restart or deploy to load it)."""
    from interlink.callouts.credentials import load_credentials
    from interlink.callouts.services import register
    from interlink.errors import MetadataError

    project = project_dir or Path(".")
    try:
        target, operations = register(project, name, spec, credential, load_credentials(project))
    except MetadataError as error:
        _err(f"[red]error:[/] {error.message}")
        raise typer.Exit(2) from None
    _err(f"registered {name} in {target}: {len(operations)} action(s)")
    for op in operations:
        typer.echo(f"{name}.{op.name}\t{op.method} {op.path}")


@services_app.command("list")
def services_list(
    project_dir: Annotated[Path | None, typer.Option("--project-dir", envvar="INTERLINK_PROJECT_DIR",
                                                     help="The project holding metadata/.")] = None,
) -> None:
    """The actions of the project's registered services, with their inputs."""
    from interlink.callouts.credentials import load_credentials
    from interlink.callouts.services import load_services
    from interlink.errors import MetadataError

    project = project_dir or Path(".")
    try:
        services = load_services(project, load_credentials(project))
    except MetadataError as error:
        _err(f"[red]error:[/] {error.message}")
        raise typer.Exit(2) from None
    for service in services.values():
        for op in service.operations.values():
            inputs = [p.name + ("" if p.required else "?") for p in op.parameters]
            if op.body_schema is not None:
                inputs.append("body" + ("" if op.body_required else "?"))
            typer.echo(f"{service.name}.{op.name}\t{op.method} {op.path}\t({', '.join(inputs)})")


@secrets_app.command("set")
def secrets_set(
    name: Annotated[str, typer.Argument(help="The secret's name (credentials refer to ${secret:NAME}).")],
    user: Annotated[str | None, typer.Option("--user", help="A user's own secret (${user:NAME} of a per-user "
                                                            "principal), by username.")] = None,
    data_dir: DataDir = None,
    store: StoreUrl = None,
) -> None:
    """Store a secret: typed at a hidden prompt, or read from standard input (never a command-line argument)."""
    import re
    import sys

    if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
        _err(f"[red]error:[/] {name!r} is not a valid secret name (letters, digits, _)")
        raise typer.Exit(2)
    value = typer.prompt(f"Value of {name}", hide_input=True) if sys.stdin.isatty() else sys.stdin.read().rstrip("\n")
    if not value:
        _err("[red]error:[/] the secret is empty")
        raise typer.Exit(2)
    with _existing_org(data_dir, store) as org:
        org.secrets.set(_secret_name(org, name, user), value)
    _err(f"secret {name}{f' of {user}' if user else ''} stored (encrypted)")


def _secret_name(org: Any, name: str, user: str | None) -> str:
    """``name``, or where ``user``'s own secret ``name`` is kept (a per-user principal's)."""
    from interlink.callouts.principals import user_secret_name

    if user is None:
        return name
    found = org.directory.user_by_username(user)
    if found is None:
        _err(f"[red]error:[/] there is no user {user!r}")
        raise typer.Exit(2)
    return user_secret_name(name, found.id)


@secrets_app.command("list")
def secrets_list(data_dir: DataDir = None, store: StoreUrl = None) -> None:
    """The stored secrets' names and when they were set (never their values)."""
    with _existing_org(data_dir, store) as org:
        for name, updated in org.secrets.names():
            typer.echo(f"{name}\t{updated.isoformat(timespec='seconds')}Z")


@secrets_app.command("delete")
def secrets_delete(name: str, user: Annotated[str | None, typer.Option("--user", help="A user's own secret.")] = None,
                   data_dir: DataDir = None, store: StoreUrl = None) -> None:
    """Delete a stored secret."""
    with _existing_org(data_dir, store) as org:
        if not org.secrets.delete(_secret_name(org, name, user)):
            _err(f"[red]error:[/] no secret {name}")
            raise typer.Exit(1)
    _err(f"secret {name} deleted")


__all__ = ["callouts_app", "outbound_app", "secrets_app", "services_app"]
