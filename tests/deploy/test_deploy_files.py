"""The files of deploy/ (Compose, Dockerfile, systemd units, health check) and the command lines of
docs/deployment.md: they parse, they are consistent, and every `interlink` command they run exists with the
options they give it."""

from __future__ import annotations

import configparser
import fnmatch
import functools
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from interlink.app.processes import ProcessRegistry
from interlink.settings import Settings
from interlink.store.database import Store
from interlink.testing import LiveServer, live_server, run_cli

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNITS = [DEPLOY / "systemd" / "interlink-api.service", DEPLOY / "systemd" / "interlink-worker@.service"]
DOCUMENTS = [DEPLOY / "README.md", ROOT / "docs" / "deployment.md"]
HEALTHCHECK = DEPLOY / "healthcheck.py"
_SUBCOMMAND = re.compile(r"^[a-z][a-z-]*$")
_SEPARATORS = {"&&", "||", "|", ";", "&"}


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


# -- the `interlink` command lines of the files ------------------------------------------------------------------

def _commands_in(tokens: list[str]) -> Iterator[list[str]]:
    """The arguments after each `interlink` (or `/path/to/interlink`) run in a shell-like token list."""
    segment: list[str] = []
    for token in [*tokens, ";"]:
        if token in _SEPARATORS or token.endswith(";"):
            if token.endswith(";") and token != ";":
                segment.append(token[:-1])
            for index, word in enumerate(segment):
                before = segment[index - 1] if index else ""
                after = segment[index + 1] if index + 1 < len(segment) else ""
                if word.rsplit("/", 1)[-1] == "interlink" and not before.startswith("-") and _SUBCOMMAND.match(after):
                    yield segment[index + 1:]
                    break
            segment = []
        else:
            segment.append(token)


def _code_lines(markdown: str) -> Iterator[str]:
    """The lines of fenced code blocks (but ```text ones: drawings, output), with backslash continuations joined."""
    inside, skipped, pending = False, False, ""
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            inside, pending = not inside, ""
            skipped = inside and line.strip().removeprefix("```") == "text"
            continue
        if skipped:
            continue
        if not inside:
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        yield pending + line
        pending = ""


def command_lines() -> list[tuple[str, list[str]]]:
    """(where, arguments after `interlink`) for every interlink command the deployment files and docs run."""
    found: list[tuple[str, list[str]]] = []
    for name, service in compose()["services"].items():
        command = service.get("command")
        if isinstance(command, list) and command and command[0] == "interlink":
            found.append((f"compose.yaml:{name}", [str(part) for part in command[1:]]))
    for unit in UNITS:
        for line in unit.read_text().splitlines():
            if line.startswith("ExecStart="):
                found.extend((unit.name, args) for args in _commands_in(shlex.split(line.removeprefix("ExecStart="))))
    for document in DOCUMENTS:
        for line in _code_lines(document.read_text()):
            try:
                tokens = shlex.split(line, comments=True)
            except ValueError:  # an unbalanced quote in a heredoc's body: not a command line
                continue
            found.extend((document.name, args) for args in _commands_in(tokens))
    return found


COMMAND_LINES = command_lines()


@functools.cache
def help_of(*path: str) -> tuple[set[str], set[str]]:
    """(options, subcommands) that `interlink PATH --help` lists."""
    result = run_cli(*path, "--help", env={"COLUMNS": "250", "NO_COLOR": "1", "TERM": "dumb"})
    options: set[str] = set()
    commands: set[str] = set()
    box = ""
    for line in result.stdout.splitlines():
        if line.startswith("╭─"):
            box = line.strip("╭─ ").split(" ")[0]
            continue
        cells = line.strip("│ ").split()
        if not cells:
            continue
        if box == "Options" and cells[0].startswith("-"):
            for cell in cells:
                if not cell.startswith("-"):
                    break
                options.update(name for name in cell.split(",") if name)
        elif box == "Commands" and line.startswith("│ ") and not line.startswith("│  "):
            commands.add(cells[0])
    return options, commands


def _command_path(args: list[str]) -> tuple[list[str], list[str]]:
    """Split `interlink ARGS` into the (sub)command path and the rest, by what each group's --help lists."""
    path = [args[0]]
    for word in args[1:]:
        _options, subcommands = help_of(*path)
        if word not in subcommands:
            break
        path.append(word)
    return path, args[len(path):]


def test_the_files_run_the_commands_of_a_multi_process_deployment() -> None:
    seen = {(where.split(":")[0], " ".join(args[:1])) for where, args in COMMAND_LINES}
    for expected in [("compose.yaml", "up"), ("compose.yaml", "worker"), ("interlink-api.service", "up"),
                     ("interlink-worker@.service", "worker"), ("deployment.md", "deploy"),
                     ("deployment.md", "doctor"), ("README.md", "doctor")]:
        assert expected in seen, (expected, sorted(seen))


@pytest.mark.parametrize(("where", "args"), COMMAND_LINES,
                         ids=[f"{where}:{' '.join(args)[:60]}" for where, args in COMMAND_LINES])
def test_every_interlink_command_line_uses_existing_options(where: str, args: list[str]) -> None:
    path, rest = _command_path(args)
    options, _commands = help_of(*path)
    assert options, f"interlink {' '.join(path)} --help listed no options"
    used = [arg.split("=", 1)[0] for arg in rest if arg.startswith("-") and arg != "-"]
    unknown = [option for option in used if option not in options]
    assert not unknown, f"{where}: interlink {' '.join(path)} has no {', '.join(unknown)} (it has {sorted(options)})"


def test_the_scale_out_options_exist() -> None:
    up_options, _ = help_of("up")
    assert {"--workers", "--no-jobs", "--store", "--bus", "--host"} <= up_options
    worker_options, _ = help_of("worker")
    assert {"--jobs", "--store", "--bus", "--data-dir", "--project-dir"} <= worker_options


# -- compose.yaml -------------------------------------------------------------------------------------------------

def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_compose_runs_postgres_nats_api_and_workers() -> None:
    spec = compose()
    services = spec["services"]
    assert set(services) == {"postgres", "nats", "api", "worker"}
    declared_volumes = set(spec["volumes"])

    nats = services["nats"]
    assert "-js" in nats["command"]
    store_dir = _option(nats["command"], "-sd")
    assert any(volume.split(":")[0] in declared_volumes and volume.split(":")[1] == store_dir
               for volume in nats["volumes"]), "JetStream must keep its store in a volume"

    api, worker = services["api"], services["worker"]
    up = api["command"]
    assert up[:2] == ["interlink", "up"] and "--no-jobs" in up
    assert _option(up, "--workers") == "2" and _option(up, "--host") == "0.0.0.0"
    assert _option(up, "--store").startswith("postgresql://") and _option(up, "--bus").startswith("nats://")
    assert worker["command"][:3] == ["interlink", "worker", "--jobs"]
    assert worker["deploy"]["replicas"] == 2
    for service in (api, worker):
        # the environment (for `docker compose exec … interlink doctor` and the health checks) matches the flags
        assert service["environment"]["INTERLINK_STORE"] == _option(service["command"], "--store")
        assert service["environment"]["INTERLINK_BUS"] == _option(service["command"], "--bus")
        assert service["healthcheck"]["test"][:2] == ["CMD", "interlink-healthcheck"]
        build = service["build"]
        assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    assert api["healthcheck"]["test"][2] == "ready" and worker["healthcheck"]["test"][2] == "worker"
    assert {"8443:8443", "7443:7443"} <= set(api["ports"])

    for name, service in services.items():
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert dependency in services, (name, dependency)
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], (name, dependency)
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith(("$", ".", "/")) or source in declared_volumes, (name, volume)


def _compose_cli() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_docker_compose_accepts_the_file() -> None:
    cli = _compose_cli()
    if cli is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    env = {**os.environ, "POSTGRES_PASSWORD": "secret", "INTERLINK_PROJECT": str(ROOT / "examples" / "project")}
    result = subprocess.run([*cli, "-f", str(DEPLOY / "compose.yaml"), "config"], capture_output=True, text=True,
                            env=env, cwd=DEPLOY, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    api = resolved["services"]["api"]
    assert "postgresql://interlink:secret@postgres:5432/interlink" in api["command"]
    assert any(str(ROOT / "examples" / "project") in str(volume) for volume in api["volumes"])


# -- Dockerfile ---------------------------------------------------------------------------------------------------

def test_dockerfile_builds_the_project_from_the_repository_root() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, re.M)
    copies = [line.split()[1:-1] for line in dockerfile.splitlines() if line.startswith("COPY ")]
    sources = [source for sources in copies for source in sources]
    assert {"pyproject.toml", "src", "deploy/healthcheck.py"} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), source
    # the build context filter lets every copied source through
    patterns = [line for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
                if line and not line.startswith("#")]
    for source in sources:
        included = False
        for pattern in patterns:
            negated = pattern.startswith("!")
            if fnmatch.fnmatch(source, pattern.lstrip("!").rstrip("/")):
                included = negated
        assert included, f"{source} is excluded from the build context"
    extras = re.search(r'pip install "\.\[([a-z,]+)\]"', dockerfile)
    assert extras is not None
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(extras.group(1).split(",")) <= set(declared)
    assert re.search(r'^CMD \["interlink", "up"\]$', dockerfile, re.M)


# -- systemd ------------------------------------------------------------------------------------------------------

def _unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


def _env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for line in (DEPLOY / "systemd" / "interlink.env.example").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, _, value = line.partition("=")
        assert re.fullmatch(r"INTERLINK_[A-Z_]+", name), line
        assert " #" not in value, f"systemd takes an inline comment as part of the value: {line}"
        values[name] = value
    return values


def test_units_and_their_environment_file() -> None:
    api, worker = (_unit(path) for path in UNITS)
    for unit in (api, worker):
        assert {"Unit", "Service", "Install"} <= set(unit.sections())
        service = unit["Service"]
        assert service["EnvironmentFile"] == "/etc/interlink/interlink.env"
        assert service["User"] == "interlink" and service["Restart"] == "on-failure"
        assert service["ExecStart"].startswith("/opt/interlink/bin/interlink ")
    assert api["Service"]["KillMode"] == "mixed"  # SIGTERM to the supervisor alone: it stops its API processes
    assert "--workers ${INTERLINK_WORKERS} --no-jobs" in api["Service"]["ExecStart"]
    assert worker["Service"]["ExecStart"].endswith("interlink worker --jobs")

    env = _env_example()
    known = {Settings.env_name(name) for name in Settings.names()} | {"INTERLINK_SECRET_KEY"}
    assert set(env) <= known, set(env) - known
    assert {"INTERLINK_STORE", "INTERLINK_BUS", "INTERLINK_SECRET_KEY", "INTERLINK_WORKERS"} <= set(env)
    assert env["INTERLINK_STORE"].startswith("postgresql://") and env["INTERLINK_BUS"].startswith("nats://")
    for unit in (api, worker):  # every variable an ExecStart line uses is set
        for variable in re.findall(r"\$\{(\w+)\}", unit["Service"]["ExecStart"]):
            assert variable in env or f"{variable}=" in unit["Service"].get("Environment", ""), variable


def test_systemd_analyze_verifies_the_units(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    interlink = Path(sys.executable).parent / "interlink"
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    if not interlink.is_file():
        pytest.skip(f"no interlink executable beside {sys.executable}")
    copies = []
    for unit in UNITS:
        copy = tmp_path / unit.name
        # verify checks that ExecStart's program exists: point it at this environment's interlink
        copy.write_text(unit.read_text().replace("/opt/interlink/bin/interlink", str(interlink)))
        copies.append(copy)
    instance = tmp_path / "interlink-worker@1.service"
    instance.write_text(copies[1].read_text())
    result = subprocess.run([analyze, "verify", "--man=no", *map(str, [*copies, instance])], capture_output=True,
                            text=True, timeout=60, check=False, cwd=tmp_path)
    problems = [line for line in result.stderr.splitlines() if "interlink" in line]
    assert result.returncode == 0 and not problems, result.stderr


# -- healthcheck.py -----------------------------------------------------------------------------------------------

def healthcheck(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(HEALTHCHECK), *args], capture_output=True, text=True, timeout=60,
                          check=False, env={**os.environ, **env})


def test_worker_health_is_a_recent_heartbeat_of_this_host(tmp_path: Path) -> None:
    env = {"INTERLINK_DATA_DIR": str(tmp_path), "INTERLINK_STORE": ""}
    store = Store(f"sqlite:///{tmp_path / 'org.db'}")
    store.open()
    try:
        registry = ProcessRegistry(store)
        registry.register("api", {"jobs": True})  # an API process is no worker
        elsewhere = ProcessRegistry(store, host="another-host").register("worker", {"jobs": True})
        result = healthcheck("worker", env=env)
        assert result.returncode == 1 and f"no worker of {socket.gethostname()}" in result.stdout
        worker = registry.register("worker", {"jobs": True})
        result = healthcheck("worker", env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.startswith("healthy: worker") and "jobs: yes" in result.stdout
        registry.unregister(worker)
        registry.unregister(elsewhere)
        assert healthcheck("worker", env=env).returncode == 1
    finally:
        store.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("deploy") / "org") as running:
        yield running


def test_api_health_is_ready(server: LiveServer) -> None:
    env = {"INTERLINK_DATA_DIR": str(server.data_dir), "INTERLINK_PORT": str(server.port)}
    result = healthcheck("ready", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == f"healthy: https://127.0.0.1:{server.port}/ready 200"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    result = healthcheck("ready", "--port", str(free), "--timeout", "1", env=env)
    assert result.returncode == 1 and "not answering" in result.stdout
