"""The example remote systems of ``examples/``, as ``interlink demo`` and ``interlink up --with-examples`` run them.

Both find Interlink's ``examples/`` directory, assemble the org's project from ``examples/project`` and the
``sync`` and ``printers`` overlays (pointed at the ports the systems listen on), start the systems the project
talks to (the billing service, the outbound-message listener, the ERP's OData service) as subprocesses, and stop
everything they started together.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

# The example systems the project talks to, by the port examples/project names for each (rewritten to free ports).
SYSTEMS = {
    "billing": (8701, "billing/service.py", "/api"),
    "listener": (8702, "outbound/listener.py", "/erp"),
    "erp": (8703, "erp/odata_service.py", ""),
}
NEEDED = ("project/metadata", "sync/pipelines", "sync/make_source_db.py", "printers/metadata", "printers/fleet.py",
          "erp/subscriber.py", *(script for _port, script, _path in SYSTEMS.values()))


class ExamplesError(Exception):
    """The example systems could not be set up (examples missing, a system or the org did not start): exit 2 or 1
    with the message."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def find_examples(option: Path | None) -> Path:
    """``--examples-dir``, else ``./examples``, else the repository's ``examples/`` next to ``src/``."""
    candidates = [option] if option is not None else [Path.cwd() / "examples",
                                                      Path(__file__).resolve().parents[3] / "examples"]
    for candidate in candidates:
        if candidate is not None and (candidate / "project").is_dir():
            missing = [item for item in NEEDED if not (candidate / item).exists()]
            if missing:
                raise ExamplesError(f"{candidate} lacks {', '.join(missing)}: is it Interlink's examples/ directory?",
                                    2)
            return candidate.resolve()
    where = str(option) if option is not None else f"{Path.cwd() / 'examples'} or {candidates[1]}"
    raise ExamplesError(f"no examples/ directory at {where}: run Interlink from a checkout of its repository "
                        "(`interlink demo` also takes --examples-dir PATH)", 2)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:``port`` (so an example system can: they reuse addresses, so a
    connection of the last run's in TIME_WAIT does not count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def system_urls(ports: dict[str, int]) -> dict[str, str]:
    """Each system's base URL on ``ports``: billing, listener, erp."""
    return {name: f"http://127.0.0.1:{ports[name]}{path}" for name, (_p, _s, path) in SYSTEMS.items()}


def compose_project(examples: Path, target: Path, ports: dict[str, int]) -> None:
    """``examples/project`` plus the org-side files of ``sync/`` and ``printers/``, pointed at ``ports``."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(examples / "project", target, ignore=shutil.ignore_patterns("__pycache__"))
    for overlay in ("sync", "printers"):
        for folder in ("metadata", "pipelines", "actions", "triggers"):
            source = examples / overlay / folder
            for path in sorted(source.rglob("*")) if source.is_dir() else []:
                if path.is_dir() or "__pycache__" in path.parts:
                    continue
                destination = target / folder / path.relative_to(source)
                if destination.exists():
                    raise ExamplesError(f"{path} and {examples / 'project' / folder / path.relative_to(source)} "
                                        "both define the same file", 2)
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, destination)
    for path in target.rglob("*.yaml"):
        text = path.read_text()
        changed = text
        for name, (port, _script, _path) in SYSTEMS.items():
            changed = re.sub(rf"//127\.0\.0\.1:{port}(?!\d)", f"//127.0.0.1:{ports[name]}", changed)
        if changed != text:
            path.write_text(changed)


def _clean_env() -> dict[str, str]:
    from interlink.cli.demo_wire import clean_env

    return clean_env()


def _die_with_parent() -> None:
    """Children that are not kept get SIGTERM if the process that started them is killed (Linux)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Processes:
    """The subprocesses started for the examples (the example systems, the demo's org), stopped together."""

    keep: bool
    started: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, argv: list[str], log: Path,
              env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env={**_clean_env(), **(env or {})},
                                       start_new_session=self.keep,
                                       preexec_fn=None if self.keep or os.name != "posix" else _die_with_parent)
        self.started[name] = process
        return process

    def stop(self) -> None:
        for process in reversed(self.started.values()):
            if process.poll() is None:
                process.terminate()
        for process in self.started.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def start_systems(processes: Processes, examples: Path, ports: dict[str, int], logs: dict[str, Path],
                  arguments: dict[str, list[str]]) -> None:
    """Start billing, the listener and the ERP's OData service on ``ports`` (each with its ``arguments``)."""
    for name, (_port, script, _path) in SYSTEMS.items():
        processes.start(name, [sys.executable, "-u", str(examples / script), "--port", str(ports[name]),
                               *arguments.get(name, [])], logs[name])


def wait_systems(processes: Processes, ports: dict[str, int], logs: dict[str, Path]) -> None:
    """Wait until each system :func:`start_systems` started listens; an error with its log when one exits."""
    for name in SYSTEMS:
        wait_port(name, processes.started[name], ports[name], logs[name])


def wait_port(name: str, process: subprocess.Popen[bytes], port: int, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise ExamplesError(f"{name} exited {process.returncode}:\n{tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        if time.monotonic() > deadline:
            raise ExamplesError(f"{name} did not listen on port {port} within {timeout:g} s:\n{tail(log)}")
        time.sleep(0.05)


def tail(log: Path, lines: int = 25) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


__all__ = ["NEEDED", "SYSTEMS", "ExamplesError", "Processes", "compose_project", "find_examples", "free_port",
           "port_is_free", "start_systems", "system_urls", "tail", "wait_port", "wait_systems"]
