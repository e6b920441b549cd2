"""``interlink`` commands. Heavy modules are imported inside commands so ``--help`` stays instant.

Every option also reads an ``INTERLINK_*`` environment variable. Errors map to exit codes in one
place (:func:`main`): configuration problems exit 2, anything else Interlink raises exits 1.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from interlink.app.org import Org
    from interlink.cli.up_examples import ExampleRun
    from interlink.settings import Settings

app = typer.Typer(
    name="interlink",
    help="Interlink: a local, wire-compatible CRM org and the integration middleware around it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
users_app = typer.Typer(help="Manage the org's users.", no_args_is_help=True)
apps_app = typer.Typer(help="Manage connected apps (OAuth clients).", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(apps_app, name="apps")

DataDir = Annotated[Path | None, typer.Option("--data-dir", envvar="INTERLINK_DATA_DIR",
                                              help="Directory of the org's embedded data, TLS material and logs.")]
ProjectDir = Annotated[Path | None, typer.Option("--project-dir", envvar="INTERLINK_PROJECT_DIR",
                                                 help="Org project directory holding metadata/ and SFDX source.")]
StoreUrl = Annotated[str | None, typer.Option("--store", envvar="INTERLINK_STORE",
                                              help="Store URL: empty for SQLite under the data dir, or "
                                                   "postgresql://user@host/db.")]


def _settings(**flags: Any) -> Settings:
    from interlink.settings import Settings

    return Settings.load(flags)


def _open(settings: Settings, *, deploy: bool = False, lenient_project: bool = False) -> Org:
    from interlink.app.org import Org

    return Org.open(settings, deploy=deploy, lenient_project=lenient_project)


def user_named(org: Org, username: str) -> Any:
    """The user called ``username`` (a UserRecord); a clear error (exit 2) when there is none."""
    from interlink.errors import ConfigurationError

    user = org.directory.user_by_username(username)
    if user is None:
        raise ConfigurationError(f"no user {username!r}")
    return user


def _err(message: str) -> None:
    from rich.console import Console

    Console(stderr=True, highlight=False, soft_wrap=True).print(message)


@app.command()
def up(
    host: Annotated[str | None, typer.Option(envvar="INTERLINK_HOST", help="Interface to listen on.")] = None,
    port: Annotated[int | None, typer.Option(envvar="INTERLINK_PORT", help="HTTPS port (0 picks a free one).")] = None,
    insecure_http_port: Annotated[int | None, typer.Option(
        "--insecure-http", envvar="INTERLINK_INSECURE_HTTP_PORT",
        help="Also serve plain HTTP on this port, for debugging.")] = None,
    store: StoreUrl = None,
    data_dir: DataDir = None,
    project_dir: ProjectDir = None,
    sample_data: Annotated[bool | None, typer.Option("--sample-data/--no-sample-data",
                                                     envvar="INTERLINK_SAMPLE_DATA",
                                                     help="Seed sample records into a new org.")] = None,
    log_level: Annotated[str | None, typer.Option(envvar="INTERLINK_LOG_LEVEL", help="debug, info, warning, error.")]
    = None,
    grpc_port: Annotated[int | None, typer.Option(
        envvar="INTERLINK_GRPC_PORT", help="Pub/Sub API (gRPC, TLS) port; 0 picks a free one, -1 turns it off.")]
    = None,
    bus: Annotated[str | None, typer.Option(
        envvar="INTERLINK_BUS", help="Event bus: nats://host:port, or empty for the embedded SQLite log.")] = None,
    with_examples: Annotated[bool, typer.Option(
        "--with-examples", help="Also start the example remote systems of every integration pattern (examples/) "
                                "on a project made from them, with sample data; prints where to look.")] = False,
    workers: Annotated[int | None, typer.Option(
        "--workers", envvar="INTERLINK_WORKERS", min=1,
        help="API processes behind the HTTPS and Pub/Sub ports (a supervisor restarts any that dies); use "
             "--store postgresql://… and --bus nats://… to run more on other machines.")] = None,
    jobs: Annotated[bool | None, typer.Option(
        "--jobs/--no-jobs", help="Run background jobs (Bulk API jobs, async callouts, outbound messages, event and "
                                 "scheduled flows) in the API processes; --no-jobs leaves them to `interlink worker "
                                 "--jobs`.")] = None,
    free_example_ports: Annotated[bool, typer.Option(
        "--free-example-ports", help="With --with-examples: free ports for the example systems, not 8701-8704 "
                                     "(used anyway when one of those is taken).")] = False,
) -> None:
    """Start the org: HTTPS REST API, OAuth 2.0, SOAP login and the Pub/Sub API, embedded store and bus by default."""
    settings = _settings(host=host, port=port, insecure_http_port=insecure_http_port, store=store,
                         data_dir=data_dir, project_dir=project_dir, sample_data=sample_data, log_level=log_level,
                         grpc_port=grpc_port, bus=bus, workers=workers, bulk_workers=0 if jobs is False else None)
    if not with_examples:
        _serve_org(settings)
        return
    from rich.markup import escape

    from interlink.cli.example_systems import ExamplesError
    from interlink.cli.up_examples import start_examples

    try:
        settings, examples = start_examples(settings, project_dir=project_dir, sample_data=sample_data,
                                            free_ports=free_example_ports)
    except ExamplesError as error:
        _err(f"[red]error:[/] {escape(str(error))}")
        raise typer.Exit(error.exit_code) from None
    try:
        _serve_org(settings, examples)
    finally:
        examples.stop()


def _serve_org(settings: Settings, examples: ExampleRun | None = None) -> None:
    """``interlink up``: open (and deploy) the org, seed it, serve it until SIGINT/SIGTERM."""
    import asyncio
    import logging

    from interlink.app.org import ADMIN_USERNAME
    from interlink.app.sample_data import seed_sample_data
    from interlink.app.server import ServerInfo, serve

    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    org = _open(settings, deploy=True)
    report = org.bootstrap
    for warning in report.warnings:
        _err(f"[yellow]warning:[/] {warning}")
    for change in report.identity_changes:
        _err(change)
    if report.plan:
        for line in report.plan.describe():
            logging.getLogger("interlink.deploy").debug(line)
    if settings.sample_data:
        seeded = seed_sample_data(org)
        if seeded:
            _err(f"Seeded sample data: {', '.join(f'{n} {o}' for o, n in seeded.items())}")
            if seeded.generated_password:
                _err(f"  [bold]Sample users' password {seeded.generated_password}[/]  (maya.manager@, alex.rep@, "
                     "sam.rep@, noor.manager@, jordan.rep@interlink.local; shown once; set "
                     "INTERLINK_SAMPLE_PASSWORD to choose it)")
    if examples is not None:
        examples.seed(org)

    def ready(info: ServerInfo) -> None:
        token = org.mint_token(ADMIN_USERNAME)
        lines = [
            f"[bold green]Interlink org {org.org_id} ready[/] at [bold]{info.url}[/] "
            f"(store: {org.store.backend}, objects: {len(org.store.schema)})",
            f"  REST API      {info.url}/services/data/v{settings.api_max_version}/",
            f"  OAuth token   {info.url}/services/oauth2/token",
            f"  SOAP login    {info.url}/services/Soap/u/64.0  (login() is retired from v65.0, as on the platform)",
            f"  CA bundle     {info.tls.bundle}   (export REQUESTS_CA_BUNDLE=... or run `interlink ca`)",
            *([f"  Pub/Sub API   {info.url.split('://')[1].rsplit(':', 1)[0]}:{info.grpc_port}  (gRPC over TLS, "
               f"event bus: {org.bus.backend.name})"] if info.grpc_port else []),
            f"  Admin user    {ADMIN_USERNAME}",
        ]
        if settings.workers > 1 or not settings.bulk_workers:
            lines.append(f"  Processes     {settings.workers} API process{'es' if settings.workers > 1 else ''}"
                         + (f" under supervisor pid {info.pid}" if settings.workers > 1 else "")
                         + ("" if settings.bulk_workers else "; background jobs left to `interlink worker --jobs`"))
        if info.insecure_url:
            lines.append(f"  Plain HTTP    {info.insecure_url}  (debugging only)")
        if report.admin_password:
            lines.append(f"  [bold]Admin password {report.admin_password}[/]  (shown once; set "
                         "INTERLINK_ADMIN_PASSWORD to choose it)")
        lines.append(f"  Access token  {token}")
        lines.append(f"  Try it:       export SF_TOKEN={token[:12]}…  (the token above), then\n"
                     f"                curl --cacert {info.tls.bundle} -H \"Authorization: Bearer $SF_TOKEN\" "
                     f"{info.url}/services/data/v{settings.api_max_version}/sobjects/Account/describe")
        _err("\n".join(lines))
        if examples is not None:
            examples.org_ready(org, info, report.admin_password)

    on_stop = examples.stop_clients if examples is not None else None
    try:
        if settings.workers > 1:
            from interlink.app.supervisor import run_supervised

            run_supervised(org, on_ready=ready, on_stop=on_stop)
        else:
            asyncio.run(serve(org, on_ready=ready, on_stop=on_stop))
    finally:
        org.close()


@app.command()
def token(
    user: Annotated[str, typer.Option("--user", envvar="INTERLINK_USER", help="Username to mint a token for.")]
    = "admin@interlink.local",
    data_dir: DataDir = None,
    store: StoreUrl = None,
) -> None:
    """Mint an access token for a user; prints only the token, for scripts."""
    with _existing_org(data_dir, store, lenient_project=True) as org:
        typer.echo(org.mint_token(user))


@contextlib.contextmanager
def _existing_org(data_dir: Path | None, store: str | None, *, project_dir: Path | None = None,
                  bus: str | None = None, lenient_project: bool = False) -> Iterator[Org]:
    """Open the org a command works on (without deploying); a clear error (exit 2) when the data dir has none."""
    settings = _settings(data_dir=data_dir, store=store, project_dir=project_dir, bus=bus)
    _require_org(settings)
    with _open(settings, lenient_project=lenient_project) as org:
        yield org


def _require_org(settings: Settings) -> None:
    if not settings.store and not (settings.data_dir / "org.db").exists():
        from interlink.errors import ConfigurationError

        raise ConfigurationError(f"no org in {settings.data_dir.resolve()}: run `interlink up` first "
                                 "(or pass --data-dir)")


@app.command()
def ca(
    data_dir: DataDir = None,
    path: Annotated[bool, typer.Option("--path", help="Print only the CA bundle's path.")] = False,
    install: Annotated[bool, typer.Option("--install", help="Trust the local CA system-wide and in certifi.")]
    = False,
    uninstall: Annotated[bool, typer.Option("--uninstall", help="Undo --install.")] = False,
) -> None:
    """Show how clients trust the org's local CA (export lines), or install it."""
    from interlink.security.tls import ca_export_lines, ensure_tls, install_ca, uninstall_ca

    settings = _settings(data_dir=data_dir)
    paths = ensure_tls(settings.data_dir)
    if path:
        typer.echo(str(paths.bundle))
    elif install:
        for line in install_ca(paths):
            _err(line)
    elif uninstall:
        for line in uninstall_ca(paths):
            _err(line)
    else:
        typer.echo(ca_export_lines(paths), nl=False)


@app.command()
def deploy(
    data_dir: DataDir = None,
    project_dir: ProjectDir = None,
    store: StoreUrl = None,
    allow_destructive: Annotated[bool, typer.Option("--allow-destructive",
                                                    help="Apply changes that drop fields, objects or data.")]
    = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the changes without applying them.")] = False,
) -> None:
    """Apply the project's metadata (objects, users, connected apps; SFDX source) to the org."""
    from interlink.app.provisioning import apply_identity_metadata

    settings = _settings(data_dir=data_dir, project_dir=project_dir, store=store)
    # Lenient: a new flow may use a field this deploy adds; the code is checked again after the deploy.
    with _open(settings, lenient_project=True) as org:
        loaded = org.load_metadata()
        for warning in loaded.warnings:
            _err(f"[yellow]warning:[/] {warning}")
        plan = org.store.plan(loaded.schema)
        if not plan:
            for change in [] if dry_run else apply_identity_metadata(org, settings.project_dir):
                _err(change)
            _err("Nothing to deploy: the org matches the project.")
            _check_project_code(org)
            return
        for line in plan.describe():
            _err(("[red]" if line.startswith("!") else "[green]") + line.replace("[", "\\[") + "[/]")
        if dry_run:
            _err(f"Dry run: {len(plan.additive)} additive, {len(plan.destructive)} destructive change(s).")
            return
        org.store.deploy(loaded.schema, allow_destructive=allow_destructive)
        _err(f"Deployed {len(plan.changes)} change(s).")
        for change in apply_identity_metadata(org, settings.project_dir):
            _err(change)
        _check_project_code(org)


def _check_project_code(org: Org) -> None:
    """After a deploy: the project's flows, triggers and credentials must load against the new schema."""
    try:
        org.load_project_code()
    except Exception as exc:
        _err(f"[red]error:[/] the project's code does not load: {getattr(exc, 'message', None) or exc}")
        raise typer.Exit(1) from exc


@app.command()
def doctor(
    data_dir: DataDir = None,
    store: StoreUrl = None,
    port: Annotated[int | None, typer.Option(envvar="INTERLINK_PORT", help="HTTPS port to check.")] = None,
    host: Annotated[str | None, typer.Option(envvar="INTERLINK_HOST", help="Interface to check.")] = None,
) -> None:
    """Check the machine, ports, storage, TLS material and reachable services."""
    from interlink.cli.doctor import run_doctor

    settings = _settings(data_dir=data_dir, store=store, port=port, host=host)
    if not run_doctor(settings):
        raise typer.Exit(1)


@users_app.command("create")
def users_create(
    username: Annotated[str, typer.Argument(help="Username, e.g. integration@acme.local.")],
    last_name: Annotated[str, typer.Option(help="Last name.")] = "User",
    first_name: Annotated[str | None, typer.Option(help="First name.")] = None,
    email: Annotated[str | None, typer.Option(help="Email (defaults to the username).")] = None,
    password: Annotated[str | None, typer.Option(envvar="INTERLINK_NEW_USER_PASSWORD",
                                                 help="Password (generated and printed when omitted).")] = None,
    api_only: Annotated[bool, typer.Option("--api-only", help="An integration user: every API, never the "
                                                               "console.")] = False,
    profile: Annotated[str | None, typer.Option("--profile", help="Profile name (default: Standard User).")]
    = None,
    permission_set: Annotated[list[str] | None, typer.Option("--permission-set", help="Assign this permission set "
                                                                                      "(repeatable).")] = None,
    data_dir: DataDir = None,
    store: StoreUrl = None,
) -> None:
    """Create a user (through the one write path) and set a password."""
    from interlink.app.setup_users import create_user
    from interlink.errors import ConfigurationError

    if password is not None and len(password) < 8:
        raise ConfigurationError("passwords need at least 8 characters")
    with _existing_org(data_dir, store) as org:
        user_id, chosen = create_user(org, username, last_name=last_name, first_name=first_name, email=email,
                                      password=password)
        if api_only:
            org.oauth.logins.set_api_only(user_id, True)
        if profile or permission_set:
            from interlink.app.permissions import assign

            assign(org, user_id, profile=profile, permission_sets=list(permission_set or []))
        _err(f"Created {'API-only ' if api_only else ''}user {username} ({user_id})")
        if password is None:
            _err(f"Password: {chosen}")


@users_app.command("assign")
def users_assign(
    username: Annotated[str, typer.Argument(help="The user.")],
    profile: Annotated[str | None, typer.Option("--profile", help="Give the user this profile.")] = None,
    permission_set: Annotated[list[str] | None, typer.Option("--permission-set", help="Assign this permission set "
                                                                                      "(repeatable).")] = None,
    group: Annotated[list[str] | None, typer.Option("--group", help="Assign this permission set group "
                                                                    "(repeatable).")] = None,
    exact: Annotated[bool, typer.Option("--exact", help="Remove the user's other assignments.")] = False,
    data_dir: DataDir = None,
    store: StoreUrl = None,
) -> None:
    """Set a user's profile and permission set (group) assignments (docs/permissions.md)."""
    from interlink.app.permissions import assign

    with _existing_org(data_dir, store) as org:
        user = user_named(org, username)
        assign(org, user.id, profile=profile, permission_sets=list(permission_set or []), groups=list(group or []),
               exact=exact)
        rows = org.query.execute("SELECT PermissionSet.Name, PermissionSetGroup.DeveloperName FROM "
                                 f"PermissionSetAssignment WHERE AssigneeId = '{user.id}'", org.admin_context()).records
        held = sorted((r.get("PermissionSet") or {}).get("Name") or (r.get("PermissionSetGroup") or {}).get(
            "DeveloperName") or "" for r in rows)
        _err(f"{username}: permission sets {', '.join(held) or '(none)'}")


@users_app.command("list")
def users_list(data_dir: DataDir = None, store: StoreUrl = None) -> None:
    """List users."""
    from rich.console import Console
    from rich.table import Table

    from interlink.app.setup_users import list_users

    with _existing_org(data_dir, store) as org:
        table = Table("Id", "Username", "Name", "Active", "API only", "Locked")
        for row in list_users(org):
            state = org.oauth.logins.state(row["Id"])
            table.add_row(row["Id"], row["Username"], row.get("Name") or "", "yes" if row.get("IsActive") else "no",
                          "yes" if state.api_only else "no", "yes" if org.oauth.logins.is_locked(row["Id"]) else "no")
        Console().print(table)


@users_app.command("password")
def users_password(
    username: Annotated[str, typer.Argument(help="Username.")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, envvar="INTERLINK_NEW_USER_PASSWORD",
                                          help="The new password.")],
    data_dir: DataDir = None,
    store: StoreUrl = None,
) -> None:
    """Set a user's password."""
    with _existing_org(data_dir, store) as org:
        org.directory.set_password(user_named(org, username).id, password)
        _err(f"Password set for {username}")


@apps_app.command("create")
def apps_create(
    name: Annotated[str, typer.Argument(help="App name.")],
    run_as: Annotated[str | None, typer.Option(help="Username the client-credentials flow runs as.")] = None,
    certificate: Annotated[Path | None, typer.Option(help="PEM certificate for the JWT bearer flow.")] = None,
    callback_url: Annotated[str | None, typer.Option(help="Redirect URI(s) for the web-server flow, "
                                                          "comma-separated.")] = None,
    rotate_refresh_tokens: Annotated[bool, typer.Option(
        "--rotate-refresh-tokens", help="Each refresh returns a new refresh token and revokes the old one.")] = False,
    data_dir: DataDir = None,
    store: StoreUrl = None,
) -> None:
    """Create a connected app; prints its consumer key and secret."""
    from interlink.errors import ConfigurationError

    with _existing_org(data_dir, store) as org:
        run_as_id = None
        if run_as:
            user = org.directory.user_by_username(run_as)
            if user is None:
                raise ConfigurationError(f"no user {run_as!r}")
            run_as_id = user.id
        pem = certificate.read_text() if certificate else None
        created = org.directory.create_app(name, run_as_user_id=run_as_id, certificate_pem=pem,
                                           callback_url=callback_url, rotate_refresh_tokens=rotate_refresh_tokens)
        typer.echo(f"consumer_key={created.consumer_key}")
        typer.echo(f"consumer_secret={created.consumer_secret}")


@apps_app.command("list")
def apps_list(data_dir: DataDir = None, store: StoreUrl = None,
              secrets: Annotated[bool, typer.Option("--show-secrets", help="Also print secrets.")] = False) -> None:
    """List connected apps with their consumer keys."""
    from rich.console import Console
    from rich.table import Table

    with _existing_org(data_dir, store) as org:
        if secrets:
            # Plain lines, so keys and secrets are never cut to fit a table.
            for item in org.directory.apps():
                typer.echo(f"{item.name}\tconsumer_key={item.consumer_key}\tconsumer_secret={item.consumer_secret}")
            return
        table = Table("Name", "Consumer key", "Run as", "JWT cert", "Rotates refresh tokens")
        for item in org.directory.apps():
            run_as = org.directory.user_by_id(item.run_as_user_id) if item.run_as_user_id else None
            table.add_row(item.name, item.consumer_key, run_as.username if run_as else "-",
                          "yes" if item.certificate_pem else "no", "yes" if item.rotate_refresh_tokens else "no")
        table.columns[1].overflow = "fold"
        Console(width=max(160, Console().width)).print(table)


@app.command()
def version() -> None:
    """Print Interlink's version."""
    from interlink import __version__

    typer.echo(__version__)


def main() -> None:
    """Console-script entry point: run the app and map errors to exit codes."""
    from interlink.errors import InterlinkError

    try:
        code = app(standalone_mode=False)
    except InterlinkError as error:
        _err(f"[red]error:[/] {error.message}")
        sys.exit(error.exit_code)
    except typer.Abort:
        _err("Aborted.")
        sys.exit(1)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as error:
        from interlink.middleware.base import PipelineSpecError

        if isinstance(error, PipelineSpecError):  # a bad pipeline, saga or connection definition: file:line: key
            from rich.markup import escape

            _err(f"[red]error:[/] {escape(str(error))}")
            sys.exit(2)
        # Usage errors (unknown command or option, bad value) come from typer's bundled click: show them
        # the way click does, exit 2, no traceback.
        show = getattr(error, "show", None)
        if callable(show) and isinstance(getattr(error, "exit_code", None), int):
            show()
            sys.exit(error.exit_code)  # type: ignore[attr-defined]
        raise
    sys.exit(code if isinstance(code, int) else 0)


from interlink.cli.audit import audit_command  # noqa: E402 - registered after the shared options exist
from interlink.cli.callouts import callouts_app, outbound_app, secrets_app, services_app  # noqa: E402 - registered after the shared options exist
from interlink.cli.connect import connect_app  # noqa: E402 - registered after the shared options exist
from interlink.cli.data import data_app  # noqa: E402 - registered after the shared options exist
from interlink.cli.demo import demo_command  # noqa: E402 - registered after the shared options exist
from interlink.cli.events import cdc_app, events_app  # noqa: E402 - registered after the shared options exist
from interlink.cli.patterns import patterns_app  # noqa: E402 - registered after the shared options exist
from interlink.cli.pipelines import dlq_app, pipelines_app  # noqa: E402 - registered after the shared options exist
from interlink.cli.sagas import saga_app  # noqa: E402 - registered after the shared options exist
from interlink.cli.security import (  # noqa: E402 - registered after the shared options exist
    apps_update,
    users_api_only,
    users_logins,
    users_revoke,
    users_unlock,
)
from interlink.cli.sync import sync_app  # noqa: E402 - registered after the shared options exist
from interlink.cli.worker import worker_command  # noqa: E402 - registered after the shared options exist

app.add_typer(events_app, name="events")
app.add_typer(cdc_app, name="cdc")
app.add_typer(data_app, name="data")
app.add_typer(callouts_app, name="callouts")
app.add_typer(outbound_app, name="outbound")
app.add_typer(services_app, name="services")
app.add_typer(secrets_app, name="secrets")
app.add_typer(connect_app, name="connect")
app.add_typer(pipelines_app, name="pipelines")
app.add_typer(dlq_app, name="dlq")
app.add_typer(saga_app, name="saga")
app.add_typer(sync_app, name="sync")
app.add_typer(patterns_app, name="patterns")
app.command("worker")(worker_command)
app.command("audit")(audit_command)
users_app.command("unlock")(users_unlock)
users_app.command("revoke")(users_revoke)
users_app.command("api-only")(users_api_only)
users_app.command("logins")(users_logins)
apps_app.command("update")(apps_update)
app.command("demo")(demo_command)

if __name__ == "__main__":
    main()
