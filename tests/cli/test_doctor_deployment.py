"""`interlink doctor` on a deployment of several processes: the process registry, the store and bus they share,
who runs the background jobs, the schema they run and whether the API answers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from interlink.app.processes import ProcessInfo, ProcessRegistry
from interlink.cli.doctor import (
    FAIL,
    OK,
    WARN,
    Deployment,
    check_bus_sharing,
    check_job_runners,
    check_processes,
    check_schema_agreement,
    check_store_sharing,
)
from interlink.settings import Settings
from interlink.store.database import Store, utcnow
from interlink.testing import LiveServer, live_server, local_org, run_cli

NOW = utcnow()
DEPLOYED = NOW - timedelta(hours=1)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def process(kind: str = "api", host: str = "web-1", *, jobs: bool = False, bus: str = "nats", silent: float = 2,
            schema: str = DEPLOYED.isoformat(), pid: int = 100) -> ProcessInfo:
    return ProcessInfo(id=f"{kind}-{host}-{pid}", kind=kind, host=host, pid=pid, started_at=NOW - timedelta(hours=2),
                       last_seen=NOW - timedelta(seconds=silent), version="0.1.0", schema_version=schema,
                       detail={"jobs": jobs, "bus": bus})


def deployment(live: list[ProcessInfo], stale: list[ProcessInfo] | None = None, *, backend: str = "postgresql",
               bulk_queued: int = 0, callouts_due: int = 0) -> Deployment:
    return Deployment(backend=backend, schema_version=DEPLOYED.isoformat(), now=NOW, live=live, stale=stale or [],
                      bulk_queued=bulk_queued, callouts_due=callouts_due, outbound_due=0)


SETTINGS = Settings.load({"bus": "nats://127.0.0.1:4222"}, env={})


# -- the checks, one by one ------------------------------------------------------------------------------------------

def test_processes_flags_the_stale_ones() -> None:
    name, status, detail = check_processes(deployment([process(), process("worker", jobs=True)]))
    assert (name, status) == ("processes", OK) and "2 live (1 api, 1 worker) on 1 host (web-1)" in detail
    crashed = process("worker", "web-2", silent=600, pid=4242)
    _, status, detail = check_processes(deployment([process()], [crashed]))
    assert status == WARN and "1 stale: worker 4242@web-2" in detail and "10m 0s" in detail
    assert check_processes(deployment([]))[1] == OK


def test_sqlite_store_across_hosts_is_a_warning() -> None:
    two_hosts = [process(host="web-1"), process(host="web-2")]
    _, status, detail = check_store_sharing(deployment(two_hosts, backend="sqlite"))
    assert status == WARN and "2 hosts" in detail and "postgresql://" in detail
    assert check_store_sharing(deployment(two_hosts))[1] == OK
    one_host = [process(pid=1), process(pid=2)]
    assert check_store_sharing(deployment(one_host, backend="sqlite"))[1] == OK


def test_embedded_bus_shared_by_processes() -> None:
    one_machine = [process(bus="sqlite", pid=1), process(bus="sqlite", pid=2)]
    _, status, detail = check_bus_sharing(SETTINGS, deployment(one_machine))
    assert status == WARN and "fine on one machine, not across machines" in detail
    two_machines = [process("api", "web-1", bus="sqlite"), process("worker", "web-2", bus="sqlite")]
    _, status, detail = check_bus_sharing(SETTINGS, deployment(two_machines))
    assert status == WARN and "do not cross machines" in detail
    mixed = [process(bus="sqlite"), process("worker", bus="nats")]
    assert check_bus_sharing(SETTINGS, deployment(mixed))[1] == FAIL
    assert check_bus_sharing(SETTINGS, deployment([process(pid=1), process(pid=2)])) == \
        ("bus sharing", OK, "nats shared by 2 processes")
    assert check_bus_sharing(SETTINGS, deployment([process(bus="sqlite")]))[1] == OK  # one process: nothing shared


def test_queued_work_needs_a_live_process_running_jobs() -> None:
    api_only = [process("api", jobs=False)]
    _, status, detail = check_job_runners(deployment(api_only, bulk_queued=2, callouts_due=1))
    assert status == FAIL and "2 bulk jobs, 1 callout waiting" in detail and "interlink worker --jobs" in detail
    assert check_job_runners(deployment(api_only))[1] == WARN  # nothing waiting yet
    with_worker = [*api_only, process("worker", "web-2", jobs=True, pid=7)]
    _, status, detail = check_job_runners(deployment(with_worker, bulk_queued=2))
    assert status == OK and "worker 7@web-2" in detail
    # A crashed worker does not count: only live ones run jobs.
    assert check_job_runners(deployment(api_only, [process("worker", jobs=True, silent=600)], bulk_queued=1))[1] \
        == FAIL
    assert check_job_runners(deployment([], bulk_queued=1))[1] == WARN  # nothing runs at all: they wait


def test_schema_agreement() -> None:
    assert check_schema_agreement(deployment([process(pid=1), process("worker", pid=2)])) == \
        ("schema", OK, f"2 of 2 processes run the schema deployed {DEPLOYED.isoformat()}")
    older = (DEPLOYED - timedelta(days=1)).isoformat()
    _, status, detail = check_schema_agreement(deployment([process(pid=1), process("worker", schema=older, pid=2)]))
    assert status == WARN and "worker 2@web-1" in detail and older in detail
    # A process whose last heartbeat came before the deploy has not had the chance to report it yet.
    just_deployed = Deployment(backend="postgresql", schema_version=NOW.isoformat(), now=NOW,
                               live=[process(schema=older)], stale=[], bulk_queued=0, callouts_due=0, outbound_due=0)
    _, status, detail = check_schema_agreement(just_deployed)  # type: ignore[misc]
    assert status == OK and "1 picking it up now" in detail
    assert check_schema_agreement(deployment([process("supervisor", schema=older)])) is None


# -- the command ------------------------------------------------------------------------------------------------------

def _dead_pid() -> int:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                           check=True)
    return int(child.stdout)


def test_doctor_fails_when_queued_jobs_have_no_runner(tmp_path: Path) -> None:
    data_dir = tmp_path / "org"
    with local_org(data_dir, bulk_workers=0) as org:
        context = org.admin_context()
        job = org.bulk.create_ingest(context, {"object": "Account", "operation": "insert"})
        org.bulk.upload(context, job.id, b"Name\nAcme\n")
        org.bulk.set_state(context, job.id, "V2Ingest", "UploadComplete")
        # Two API processes on two other machines share this SQLite store and its embedded bus, neither runs jobs.
        for host in ("web-2", "web-3"):
            ProcessRegistry(org.store, host=host, pid=1000).register("api", {"jobs": False, "bus": "sqlite",
                                                                             "port": 8443})
        # A worker of this machine that died without unregistering, and a supervisor silent for ten minutes.
        dead = _dead_pid()
        ProcessRegistry(org.store, pid=dead).register("worker", {"jobs": True, "bus": "sqlite"})
        earlier = ProcessRegistry(org.store, clock=lambda: utcnow() - timedelta(minutes=10))
        earlier.register("supervisor", {"workers": 2})
        # A container with this host name (host networking) but pids of its own: its pid means nothing here.
        ProcessRegistry(org.store, pid=dead + 1_000_000).register("worker", {"bus": "sqlite", "pidns": "pid:[1]"})
    result = run_cli("doctor", "--data-dir", str(data_dir), "--port", str(_free_port()), check=False,
                     env={"COLUMNS": "250"})
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    lines = {line.split("│")[1].strip(): line for line in output.splitlines() if line.count("│") >= 3}
    assert "fail" in lines["background jobs"] and "1 bulk job waiting" in lines["background jobs"]
    assert "warn" in lines["processes"] and "3 live (2 api, 1 worker)" in lines["processes"]
    assert "2 stale" in lines["processes"] and "1 whose pid is gone" in lines["processes"]
    assert "warn" in lines["store sharing"] and "3 hosts" in lines["store sharing"]
    assert "warn" in lines["bus sharing"] and "do not cross machines" in lines["bus sharing"]
    assert "web-2" in output and "supervisor" in output
    states = {line.split("│")[3].strip(): line.split("│")[-2].strip() for line in output.splitlines()
              if line.count("│") >= 9}  # the processes table, by pid
    assert states[str(dead)] == "gone" and states[str(dead + 1_000_000)] == "live"
    assert states[str(os.getpid())] == "stale"  # the supervisor


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("doctor") / "org") as running:
        yield running


def test_doctor_reads_a_running_server(server: LiveServer) -> None:
    result = run_cli("doctor", "--data-dir", str(server.data_dir), check=False, env={"COLUMNS": "250"})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    lines = {line.split("│")[1].strip(): line for line in output.splitlines() if line.count("│") >= 3}
    assert "ok" in lines["api ready"] and f":{server.port}/" in lines["api ready"]
    assert "ok" in lines["background jobs"] and "run by 1 process" in lines["background jobs"]
    assert "ok" in lines["processes"] and "1 live (1 api)" in lines["processes"]
    assert "ok" in lines["schema"]
    row = next(line for line in output.splitlines() if f"│ {server.process.pid} " in line)
    assert "api" in row and "live" in row and "yes" in row and "deployed" in row


def test_a_stopped_server_unregisters(tmp_path: Path) -> None:
    data_dir = tmp_path / "org"
    with live_server(data_dir) as running:
        store = Store(f"sqlite:///{data_dir / 'org.db'}")
        store.open()
        try:
            [api] = ProcessRegistry(store).live()
            assert (api.kind, api.pid, api.host) == ("api", running.process.pid, socket.gethostname())
            assert api.detail["jobs"] is True and api.detail["bus"] == "sqlite"
        finally:
            store.close()
    store = Store(f"sqlite:///{data_dir / 'org.db'}")
    store.open()
    try:
        assert ProcessRegistry(store).all() == []
    finally:
        store.close()
    assert os.path.exists(data_dir / "org.db")
