"""``interlink connect``: external data sources and the external objects built from them."""

from __future__ import annotations

import time
from typing import Annotated

import typer

connect_app = typer.Typer(help="External data sources (Data Virtualization): sync their tables into external "
                               "objects, list them, test a connection.", no_args_is_help=True)

# The sub-app exists before this module imports interlink.cli.main (see interlink.cli.events for why).
from interlink.cli.main import DataDir, ProjectDir, StoreUrl, _err, _existing_org  # noqa: E402


@connect_app.command("sync")
def connect_sync(
    source: Annotated[str, typer.Argument(help="The data source (metadata/dataSources/<NAME>.yaml).")],
    tables: Annotated[list[str] | None, typer.Option("--table", "-t",
                                                     help="Only this table (repeatable); default: all.")] = None,
    rename: Annotated[list[str] | None, typer.Option("--as", help="Name a table's object: TABLE=NAME "
                                                     "(Orders=Order makes Order__x); repeatable.")] = None,
    deploy: Annotated[bool, typer.Option("--deploy/--no-deploy", help="Deploy the objects after writing them.")]
    = True,
    data_dir: DataDir = None,
    project_dir: ProjectDir = None,
    store: StoreUrl = None,
) -> None:
    """Read the source's schema ($metadata) and write an external object per table, then deploy them."""
    from interlink.connect.sync import write_specs

    with _existing_org(data_dir, store, project_dir=project_dir) as org:
        data_source = org.external.source(source)
        started = time.perf_counter()
        found = org.external.connection(data_source.name).sync()
        names = {}
        for pair in rename or []:
            table_name, sep, object_name = pair.partition("=")
            if not sep or not table_name or not object_name:
                _err(f"[red]error:[/] --as takes TABLE=NAME, not {pair!r}")
                raise typer.Exit(2)
            names[table_name] = object_name
        result = write_specs(org.settings.project_dir, data_source, found, tables, names)
        for name, path in result.written.items():
            added = result.added_fields.get(name, [])
            _err(f"[green]{name}[/] -> {path}" + (f" (+{len(added)} field(s))" if added else ""))
        for line in result.skipped:
            _err(f"[yellow]skipped:[/] {line}")
        _err(f"Synced {len(result.written)} table(s) of {data_source.name} in "
             f"{(time.perf_counter() - started) * 1000:.0f} ms.")
        if not deploy or not result.written:
            return
        loaded = org.load_metadata()
        plan = org.store.plan(loaded.schema)
        if plan.destructive:
            for change in plan.destructive:
                _err(f"[red]not deployed (destructive):[/] {change.description}")
            _err("Run `interlink deploy --allow-destructive` to apply them.")
            raise typer.Exit(1)
        org.store.deploy(loaded.schema)
        _err(f"Deployed {len(plan.changes)} change(s).")


@connect_app.command("list")
def connect_list(data_dir: DataDir = None, project_dir: ProjectDir = None, store: StoreUrl = None) -> None:
    """List the data sources and the external objects of each."""
    from rich.table import Table

    from interlink.cli.events import _wide_console

    with _existing_org(data_dir, store, project_dir=project_dir) as org:
        table = Table("source", "type", "url", "paging", "writable", "objects")
        objects: dict[str, list[str]] = {}
        for obj in org.store.schema:
            if obj.is_external:
                objects.setdefault(obj.data_source.lower(), []).append(obj.name)
        for key, source in sorted(org.external.sources.items()):
            table.add_row(source.name, source.type, source.url or f"callout:{source.named_credential}",
                          source.paging, "yes" if source.writable else "no", ", ".join(objects.get(key, [])))
    _wide_console().print(table)


@connect_app.command("test")
def connect_test(
    source: Annotated[str, typer.Argument(help="The data source to reach.")],
    data_dir: DataDir = None,
    project_dir: ProjectDir = None,
    store: StoreUrl = None,
) -> None:
    """Reach the source: read its schema and report the tables and how long it took."""
    with _existing_org(data_dir, store, project_dir=project_dir) as org:
        data_source = org.external.source(source)
        started = time.perf_counter()
        found = org.external.connection(data_source.name).sync()
        elapsed = (time.perf_counter() - started) * 1000
    for table in found:
        typer.echo(f"{table.name} (key {table.key or '-'}, {len(table.columns)} columns)")
    _err(f"[green]ok:[/] {data_source.name} answered {len(found)} table(s) in {elapsed:.0f} ms")


__all__ = ["connect_app"]
