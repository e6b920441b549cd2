"""The ``interlink`` command line, run as a user runs it (a subprocess per command)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from interlink.app.org import ADMIN_USERNAME, Org
from interlink.settings import Settings
from interlink.testing import local_org, run_cli

SUBCOMMANDS = ["up", "token", "ca", "deploy", "doctor", "version", "users", "apps", "users create", "users list",
               "users password", "apps create", "apps list"]
HEAVY = ("sqlalchemy", "starlette", "uvicorn", "cryptography")
INVOICE = """\
name: Invoice__c
label: Invoice
labelPlural: Invoices
fields:
  - {name: Amount__c, type: currency, precision: 16, scale: 2}
"""
NOTE_FIELD = "  - {name: Note__c, type: text, length: 80}\n"


@pytest.fixture(scope="module")
def org_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("cli") / "org"
    with local_org(data_dir):
        pass
    return data_dir


@pytest.fixture(scope="module")
def org_id(org_dir: Path) -> str:
    with opened(org_dir) as org:
        return org.org_id


def opened(data_dir: Path) -> Org:
    """Open an existing org to look at it, without deploying anything."""
    return Org.open(Settings.load({"data_dir": data_dir, "project_dir": data_dir / "no-project"}, env={}),
                    deploy=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def _no_interlink_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the settings a test passes count (run_cli passes this process's environment on)."""
    for name in list(os.environ):
        if name.startswith("INTERLINK_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("COLUMNS", "200")


def cli(*args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env=env, check=check)


# -- help and start-up cost ----------------------------------------------------------------------------------------

def test_help_lists_commands() -> None:
    result = run_cli("--help")
    for command in ("up", "token", "ca", "doctor", "deploy", "users", "apps"):
        assert f" {command} " in result.stdout, result.stdout


def test_every_subcommand_has_help_without_heavy_imports() -> None:
    # One interpreter runs every `--help` (cheap), then reports which heavy packages got imported.
    probe = textwrap.dedent(f"""
        import contextlib, io, json, sys
        import interlink.cli.main as cli
        results = {{}}
        for command in {SUBCOMMANDS!r}:
            out = io.StringIO()
            code = 0
            with contextlib.redirect_stdout(out):
                try:
                    cli.app([*command.split(), "--help"], standalone_mode=False, prog_name="interlink")
                except SystemExit as done:
                    code = done.code or 0
            results[command] = [code, out.getvalue()]
        heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r}))
        print(json.dumps({{"help": results, "heavy": heavy}}))
    """)
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    for command, (code, text) in report["help"].items():
        assert code == 0, command
        assert "Usage:" in text and "--help" in text, (command, text)
    assert report["heavy"] == []


def test_help_import_time_has_no_heavy_modules() -> None:
    timed = subprocess.run([sys.executable, "-X", "importtime", "-m", "interlink.cli.main", "--help"],
                           capture_output=True, text=True, timeout=60, check=False)
    assert timed.returncode == 0, timed.stderr
    imported = {line.rsplit("|", 1)[1].strip().split(".")[0]
                for line in timed.stderr.splitlines() if line.startswith("import time:") and "|" in line}
    assert "typer" in imported  # the probe really measured something
    assert not imported & set(HEAVY), imported & set(HEAVY)


# -- token ---------------------------------------------------------------------------------------------------------

def test_token_prints_only_a_token(org_dir: Path, org_id: str) -> None:
    result = cli("token", "--user", ADMIN_USERNAME, "--data-dir", str(org_dir))
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    token = lines[0]
    assert token.startswith(org_id[:15] + "!")
    assert token == token.strip() and " " not in token
    with opened(org_dir) as org:
        session = org.tokens.validate(token)
        admin = org.directory.user_by_username(ADMIN_USERNAME)
        assert admin is not None and session.user_id == admin.id


def test_token_for_unknown_user_fails(org_dir: Path) -> None:
    result = cli("token", "--user", "nobody@interlink.local", "--data-dir", str(org_dir), check=False)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "nobody@interlink.local" in result.stderr
    assert "Traceback" not in result.stderr


def test_token_without_an_org_fails(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = cli("token", "--data-dir", str(empty), check=False)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "no org in" in result.stderr and "interlink up" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (empty / "org.db").exists()


def test_data_dir_from_environment(org_dir: Path, org_id: str) -> None:
    result = cli("token", env={"INTERLINK_DATA_DIR": str(org_dir)})
    assert result.stdout.strip().startswith(org_id[:15] + "!")


# -- ca and doctor -------------------------------------------------------------------------------------------------

def test_ca_path(org_dir: Path) -> None:
    result = cli("ca", "--path", "--data-dir", str(org_dir))
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    bundle = Path(lines[0])
    assert bundle.is_absolute() and bundle.is_file()
    assert "BEGIN CERTIFICATE" in bundle.read_text()


def test_ca_prints_export_lines(org_dir: Path) -> None:
    result = cli("ca", "--data-dir", str(org_dir))
    lines = result.stdout.splitlines()
    assert lines and all(line.startswith("export ") for line in lines)
    exported = dict(line.removeprefix("export ").split("=", 1) for line in lines)
    bundle = Path(exported["REQUESTS_CA_BUNDLE"])
    assert bundle.is_file() and bundle.is_relative_to(org_dir.resolve())
    assert any(line.startswith("export SSL_CERT_FILE=") for line in lines)


def test_doctor(org_dir: Path) -> None:
    result = cli("doctor", "--data-dir", str(org_dir), "--port", str(_free_port()))
    assert result.returncode == 0
    output = result.stdout + result.stderr
    for word in ("check", "status", "python", "data dir", "store", "tls", "port", "bulk jobs"):
        assert word in output, output
    assert "│ fail " not in output


# -- deploy --------------------------------------------------------------------------------------------------------

def _fields(data_dir: Path) -> set[str] | None:
    with opened(data_dir) as org:
        obj = org.store.schema.object("Invoice__c")
        return {f.name for f in obj.fields} if obj is not None else None


def test_deploy_dry_run_apply_and_destructive_refusal(tmp_path: Path) -> None:
    data_dir, project_dir = tmp_path / "org", tmp_path / "project"
    (project_dir / "metadata" / "objects").mkdir(parents=True)
    with local_org(data_dir, project_dir=project_dir):
        pass
    spec = project_dir / "metadata" / "objects" / "Invoice__c.yaml"
    spec.write_text(INVOICE + NOTE_FIELD)
    dirs = ("--data-dir", str(data_dir), "--project-dir", str(project_dir))

    dry = cli("deploy", "--dry-run", *dirs)
    assert "create object Invoice__c" in dry.stderr and "Dry run" in dry.stderr
    assert _fields(data_dir) is None  # nothing applied

    applied = cli("deploy", *dirs)
    assert "Deployed" in applied.stderr
    assert {"Amount__c", "Note__c"} <= (_fields(data_dir) or set())

    spec.write_text(INVOICE)  # drop Note__c
    refused = cli("deploy", *dirs, check=False)
    assert refused.returncode == 2
    assert "--allow-destructive" in refused.stderr
    assert "Note__c" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert "Note__c" in (_fields(data_dir) or set())

    cli("deploy", "--allow-destructive", *dirs)
    fields = _fields(data_dir)
    assert fields is not None and "Amount__c" in fields and "Note__c" not in fields

    # Both directories can come from the environment instead of flags.
    again = cli("deploy", env={"INTERLINK_DATA_DIR": str(data_dir), "INTERLINK_PROJECT_DIR": str(project_dir)})
    assert "Nothing to deploy" in again.stderr


# -- users and apps ------------------------------------------------------------------------------------------------

def test_users_create_and_list(org_dir: Path) -> None:
    created = cli("users", "create", "integration@acme.local", "--last-name", "Integration", "--first-name", "Ivy",
                  "--password", "integration-pass-1", "--data-dir", str(org_dir))
    assert "Created user integration@acme.local" in created.stderr
    assert "Password:" not in created.stderr
    with opened(org_dir) as org:
        assert org.directory.check_password("integration@acme.local", "integration-pass-1") is not None

    listed = cli("users", "list", "--data-dir", str(org_dir))
    assert ADMIN_USERNAME in listed.stdout
    assert "integration@acme.local" in listed.stdout
    assert "Ivy Integration" in listed.stdout


def test_apps_create(org_dir: Path) -> None:
    result = cli("apps", "create", "Reporting", "--run-as", ADMIN_USERNAME, "--data-dir", str(org_dir))
    lines = result.stdout.splitlines()
    assert [line.split("=", 1)[0] for line in lines] == ["consumer_key", "consumer_secret"]
    values = dict(line.split("=", 1) for line in lines)
    with opened(org_dir) as org:
        app = org.directory.app_by_key(values["consumer_key"])
        assert app is not None and app.name == "Reporting"
        assert app.secret_matches(values["consumer_secret"])
        admin = org.directory.user_by_username(ADMIN_USERNAME)
        assert admin is not None and app.run_as_user_id == admin.id
    listed = cli("apps", "list", "--show-secrets", "--data-dir", str(org_dir))
    assert "Reporting" in listed.stdout and values["consumer_secret"] in listed.stdout


def test_deploy_a_field_together_with_the_flow_that_uses_it(tmp_path: Path) -> None:
    """A flow naming a field the same deploy adds: the org opens, the deploy applies, then the flow loads."""
    data_dir, project_dir = tmp_path / "org", tmp_path / "project"
    (project_dir / "metadata" / "objects").mkdir(parents=True)
    with local_org(data_dir, project_dir=project_dir):
        pass
    (project_dir / "metadata" / "objects" / "Invoice__c.yaml").write_text(INVOICE + NOTE_FIELD)
    flows = project_dir / "metadata" / "flows"
    flows.mkdir(parents=True)
    (flows / "Note_Invoices.yaml").write_text(textwrap.dedent("""\
        object: Invoice__c
        trigger: create
        condition: "Note__c = null"
        actions:
          - update: {Note__c: "new"}
        """))
    dirs = ("--data-dir", str(data_dir), "--project-dir", str(project_dir))
    project_env = {"INTERLINK_PROJECT_DIR": str(project_dir)}
    assert cli("token", *dirs[:2], env=project_env).stdout.strip()  # the flow does not load yet: still a token
    applied = cli("deploy", *dirs)
    assert "Deployed" in applied.stderr and "error" not in applied.stderr
    with local_org(data_dir, project_dir=project_dir) as org:  # now everything loads, and the flow runs
        (created,) = org.records.create(org.admin_context(), "Invoice__c", [{"Name": "I-1", "Amount__c": 5}])
        assert not created.errors, created.errors
        row = org.query.execute(f"SELECT Note__c FROM Invoice__c WHERE Id = '{created.id}'",
                                org.admin_context()).records[0]
        assert row["Note__c"] == "new"
    (flows / "Broken.yaml").write_text("object: Invoice__c\ntrigger: create\ncondition: \"Nope__c = 1\"\n"
                                       "actions:\n  - update: {Note__c: x}\n")
    broken = cli("deploy", *dirs, check=False)
    assert broken.returncode == 1
    assert "the project's code does not load" in broken.stderr and "Nope__c" in broken.stderr
    assert "Traceback" not in broken.stderr
    refused = cli("users", "list", *dirs[:2], env=project_env, check=False)  # commands that may write refuse
    assert refused.returncode != 0 and "Nope__c" in refused.stderr


def test_users_get_profiles_and_permission_sets(tmp_path: Path) -> None:
    data_dir, project_dir = tmp_path / "org", tmp_path / "project"
    (project_dir / "metadata" / "permissionSets").mkdir(parents=True)
    (project_dir / "metadata" / "permissionSets" / "Reader.yaml").write_text(
        "userPermissions: [ApiEnabled]\nobjectPermissions:\n  Account: read\n")
    with local_org(data_dir, project_dir=project_dir):
        pass
    dirs = ("--data-dir", str(data_dir))
    created = cli("users", "create", "int@cli.test", "--profile", "Minimum Access - API Only Integrations",
                  "--permission-set", "Reader", "--password", "Long-Enough-1", *dirs)
    assert "Created user int@cli.test" in created.stderr
    assigned = cli("users", "assign", "int@cli.test", "--permission-set", "Reader", *dirs)
    assert "permission sets Reader" in assigned.stderr
    unknown = cli("users", "assign", "int@cli.test", "--profile", "Nope", *dirs, check=False)
    assert unknown.returncode == 2 and "no profile 'Nope'" in unknown.stderr
    with local_org(data_dir, project_dir=project_dir) as org:
        user = org.directory.user_by_username("int@cli.test")
        assert user is not None
        access = org.access.for_user(user.id)
        assert access.can(org.store.schema.object("Account"), "read")  # type: ignore[arg-type]
        assert not access.can(org.store.schema.object("Contact"), "read")  # type: ignore[arg-type]
