"""``interlink callouts``: the org's asynchronous callouts, their attempts and dead letters."""

from __future__ import annotations

import json
from typing import Annotated

import typer

callouts_app = typer.Typer(help="Asynchronous callouts: list them, show their attempts, send dead ones again.",
                           no_args_is_help=True)

from interlink.cli.main import DataDir, StoreUrl, _err, _existing_org  # noqa: E402


@callouts_app.command("list")
def callouts_list(
    state: Annotated[str | None, typer.Option("--state", help="Queued, Delivered or Dead.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many, newest first.")] = 50,
    data_dir: DataDir = None,
    store: StoreUrl = None,
) -> None:
    """List callouts, newest first."""
    from rich.table import Table

    from interlink.cli.events import _wide_console

    if state is not None and state not in ("Queued", "Delivered", "Dead"):
        _err(f"[red]error:[/] --state is Queued, Delivered or Dead (not {state!r})")
        raise typer.Exit(2)
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


__all__ = ["callouts_app"]
