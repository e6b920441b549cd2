"""``interlink doctor``: check the machine, ports, storage, TLS and the services scale-out uses.

For a deployment of several processes (``interlink up --workers N``, ``interlink worker --jobs``, on one machine
or several) it also reads the org's process registry (:mod:`interlink.app.processes`): which processes are live
or stale, whether the store and the bus suit processes on several hosts, whether some process runs the background
jobs that are waiting, whether every process runs the deployed schema, and whether the API processes of this
host answer ``/ready``.
"""

from __future__ import annotations

import os
import socket
import ssl
import sys
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from interlink.settings import Settings

if TYPE_CHECKING:
    from interlink.app.processes import ProcessInfo

OK, WARN, FAIL = "ok", "warn", "fail"
Check = tuple[str, str, str]  # (name, status, detail)


def _tcp(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def check_python() -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    return ("python", OK if sys.version_info >= (3, 11) else FAIL, f"{version} at {sys.executable}")


def check_data_dir(settings: Settings) -> Check:
    path = settings.data_dir.resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".doctor-probe"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        return ("data dir", FAIL, f"{path}: {exc}")
    return ("data dir", OK, f"{path} is writable")


def check_store(settings: Settings) -> Check:
    from interlink.errors import InterlinkError
    from interlink.store.database import Store

    if not settings.store and not (settings.data_dir / "org.db").exists():
        return ("store", WARN, f"no org yet in {settings.data_dir.resolve()} (interlink up creates one)")
    try:
        store = Store(settings.store_url)
        store.open()
        try:
            objects = len(store.schema)
        finally:
            store.close()
    except InterlinkError as exc:
        return ("store", FAIL, exc.message)
    shown = settings.store_url.split("@")[-1] if "@" in settings.store_url else settings.store_url
    return ("store", OK, f"{store.backend}: {shown} ({objects} objects deployed)")


def check_bulk_jobs(settings: Settings) -> Check:
    from interlink.jobs.bulk import job_queue
    from interlink.store.database import Store

    if not settings.store and not (settings.data_dir / "org.db").exists():
        return ("bulk jobs", OK, "no org yet")
    store = Store(settings.store_url)
    store.open()
    try:
        stats = job_queue(store)
    finally:
        store.close()
    detail = f"{stats.running} running, {stats.queued} waiting for a worker"
    if stats.queued and stats.oldest_wait > 300:
        return ("bulk jobs", WARN, f"{detail}; the oldest has waited {stats.oldest_wait / 60:.0f} min: is a server "
                                   "with bulk_workers > 0 running?")
    return ("bulk jobs", OK, detail)


def check_tls(settings: Settings) -> Check:
    from cryptography import x509

    server = settings.data_dir / "tls" / "server.pem"
    if not server.exists():
        return ("tls", WARN, "no certificates yet (created on first `interlink up`)")
    cert = x509.load_pem_x509_certificate(server.read_bytes())
    expires = cert.not_valid_after_utc
    days = (expires - datetime.now(UTC)).days
    status = OK if days > 30 else WARN if days > 0 else FAIL
    return ("tls", status, f"server certificate valid for {days} more days; bundle {server.parent / 'bundle.pem'}")


def check_port(settings: Settings) -> Check:
    from interlink.app.server import read_server_file

    info = read_server_file(settings.data_dir)
    if info is not None:
        url = str(info.get("url"))
        bundle = str(info.get("ca_bundle"))
        try:
            context = ssl.create_default_context(cafile=bundle)
            with urllib.request.urlopen(f"{url}/health", timeout=3, context=context) as response:
                return ("server", OK, f"running at {url} (pid {info.get('pid')}), /health {response.status}")
        except (OSError, ValueError) as exc:
            return ("server", WARN, f"{url} recorded but not answering ({exc}); stale server.json?")
    host = settings.host if settings.host not in ("0.0.0.0", "::") else "127.0.0.1"
    if _tcp(host, settings.port, 0.5):
        return ("port", FAIL, f"{host}:{settings.port} is taken by another program (use --port)")
    return ("port", OK, f"{host}:{settings.port} is free")


def check_bus(settings: Settings) -> Check:
    """The configured event bus: the embedded log's file, or the NATS server named by ``bus``."""
    from urllib.parse import urlparse

    url = settings.bus_url
    if url.startswith("sqlite:"):
        path = url.removeprefix("sqlite:///")
        return ("event bus", OK, f"embedded SQLite log {path}")
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 4222
    if _tcp(host, port):
        return ("event bus", OK, f"NATS reachable at {host}:{port}")
    return ("event bus", FAIL, f"NATS not reachable at {host}:{port} (bus = {url})")


def check_grpc_port(settings: Settings) -> Check:
    from interlink.app.server import read_server_file

    info = read_server_file(settings.data_dir)
    if info is not None and info.get("grpc_port"):
        return ("pubsub port", OK, f"Pub/Sub API of the running server on port {info['grpc_port']}")
    if settings.grpc_port <= 0:
        return ("pubsub port", OK, "picked at start" if settings.grpc_port == 0 else "Pub/Sub API turned off")
    host = settings.host if settings.host not in ("0.0.0.0", "::") else "127.0.0.1"
    if _tcp(host, settings.grpc_port, 0.5):
        return ("pubsub port", FAIL, f"{host}:{settings.grpc_port} is taken by another program (use --grpc-port)")
    return ("pubsub port", OK, f"{host}:{settings.grpc_port} is free")


def check_service(name: str, host: str, port: int, hint: str) -> Check:
    if _tcp(host, port):
        return (name, OK, f"reachable at {host}:{port}")
    return (name, WARN, f"not reachable at {host}:{port} ({hint})")


# -- a deployment of several processes -------------------------------------------------------------------------------

READY_TIMEOUT = 2.0  # seconds per /ready probe
MAX_READY_PROBES = 8
STARTING_SECONDS = 30.0  # an API process younger than this may not listen yet
SCHEMA_GRACE_SECONDS = 5.0  # a process picks a deploy up within a second or two, and reports it at its next heartbeat
_EMBEDDED_BUSES = ("sqlite", "memory")


@dataclass
class Deployment:
    """What the org's store says about its processes and the background work waiting for them."""

    backend: str  # the store's: sqlite | postgresql
    schema_version: str  # when the deployed schema was deployed (Store.schema.version)
    now: datetime
    live: list[ProcessInfo]
    stale: list[ProcessInfo]  # stopped heartbeating, or (this host) whose pid is gone
    bulk_queued: int
    callouts_due: int
    outbound_due: int
    gone: frozenset[str] = frozenset()  # ids of the stale processes of this host whose pid no longer exists

    @property
    def waiting(self) -> int:
        return self.bulk_queued + self.callouts_due + self.outbound_due

    @property
    def hosts(self) -> list[str]:
        return sorted({p.host for p in self.live})


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, owned by someone else
        return True
    return True


def read_deployment(settings: Settings) -> Deployment | None:
    """Read the process registry and the queues from the org's store; None when there is no org yet."""
    from sqlalchemy import and_, func, or_, select

    from interlink.app.processes import ProcessRegistry, pid_namespace
    from interlink.callouts.queue import QUEUED
    from interlink.jobs.bulk import job_queue
    from interlink.store.database import Store, utcnow

    if not settings.store and not (settings.data_dir / "org.db").exists():
        return None
    store = Store(settings.store_url)
    store.open()
    try:
        registry = ProcessRegistry(store)
        live, stale = registry.live(), registry.stale()
        here, namespace = socket.gethostname(), pid_namespace()
        # A process of this host (and pid namespace) whose pid is gone crashed, even if its last heartbeat is recent.
        gone = [p for p in live if p.host == here and p.detail.get("pidns") == namespace and p.pid != os.getpid()
                and not _pid_alive(p.pid)]
        now = utcnow()
        due: list[int] = []
        with store.read() as conn:
            for name in ("il_callout", "il_om_notification"):  # due, and not being delivered right now
                table = store.system[name]
                due.append(int(conn.execute(select(func.count()).select_from(table).where(and_(
                    table.c.state == QUEUED, table.c.next_attempt_at <= now,
                    or_(table.c.claimed_until.is_(None), table.c.claimed_until < now)))).scalar() or 0))
        return Deployment(backend=store.backend, schema_version=store.schema.version, now=now,
                          live=[p for p in live if p not in gone], stale=[*gone, *stale],
                          bulk_queued=job_queue(store).queued, callouts_due=due[0], outbound_due=due[1],
                          gone=frozenset(p.id for p in gone))
    finally:
        store.close()


def _who(process: ProcessInfo) -> str:
    return f"{process.kind} {process.pid}@{process.host}"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60}s"
    if seconds < 86400:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m"
    return f"{seconds // 86400}d {seconds % 86400 // 3600}h"


def _listing(processes: list[ProcessInfo], limit: int = 3) -> str:
    shown = ", ".join(_who(p) for p in processes[:limit])
    return shown + (f" and {len(processes) - limit} more" if len(processes) > limit else "")


def check_processes(deployment: Deployment) -> Check:
    """The registry: live processes by kind and host, and the stale ones (stopped without unregistering)."""
    live, stale = deployment.live, deployment.stale
    if not live and not stale:
        return ("processes", OK, "none running (`interlink up` and `interlink worker --jobs` register themselves)")
    kinds = Counter(p.kind for p in live)
    hosts = deployment.hosts
    detail = (f"{len(live)} live ({', '.join(f'{n} {kind}' for kind, n in sorted(kinds.items()))}) on "
              f"{len(hosts)} host{'s' if len(hosts) != 1 else ''}" + (f" ({', '.join(hosts[:4])})" if hosts else "")
              if live else "none live")
    if not stale:
        return ("processes", OK, detail)
    silent = max(p.silent_seconds(deployment.now) for p in stale)
    gone = sum(1 for p in stale if p.id in deployment.gone)
    return ("processes", WARN, f"{detail}; {len(stale)} stale: {_listing(stale)} (silent up to {_duration(silent)}"
                               + (f"; {gone} whose pid is gone" if gone else "") + "): stopped without "
                               "unregistering (crashed or killed); the leases of the work they held expire and "
                               "other processes take it over")


def check_store_sharing(deployment: Deployment) -> Check:
    """SQLite serves processes of one machine; processes on several hosts need PostgreSQL."""
    hosts, count = deployment.hosts, len(deployment.live)
    if deployment.backend == "sqlite" and len(hosts) > 1:
        return ("store sharing", WARN, f"SQLite store used by processes on {len(hosts)} hosts ({', '.join(hosts[:4])})"
                                       ": SQLite is for processes of one machine; use --store postgresql://…")
    where = f"{count} process{'es' if count != 1 else ''} on {len(hosts)} host{'s' if len(hosts) != 1 else ''}"
    return ("store sharing", OK, f"{deployment.backend} shared by {where}" if count else
            f"{deployment.backend}; no live process")


def check_bus_sharing(settings: Settings, deployment: Deployment) -> Check:
    """Processes must share one bus; the embedded SQLite log is one machine's file."""
    from urllib.parse import urlparse

    own = urlparse(settings.bus_url).scheme or "sqlite"
    buses = Counter(str(p.detail.get("bus") or own) for p in deployment.live if p.kind != "supervisor")
    count, hosts = sum(buses.values()), deployment.hosts
    if len(buses) > 1:
        mix = ", ".join(f"{name}: {n}" for name, n in sorted(buses.items()))
        return ("bus sharing", FAIL, f"processes use different event buses ({mix}): events one publishes are not "
                                     "seen by the others; give every process the same --bus")
    bus = next(iter(buses), own)
    if bus in _EMBEDDED_BUSES and count > 1:
        if len(hosts) > 1:
            return ("bus sharing", WARN, f"{count} processes on {len(hosts)} hosts use the embedded {bus} event log: "
                                         "each machine has its own, so events do not cross machines; use --bus "
                                         "nats://…")
        return ("bus sharing", WARN, f"{count} processes share the embedded {bus} event log: fine on one machine, "
                                     "not across machines (use --bus nats://… before adding one)")
    return ("bus sharing", OK, bus + (f" shared by {count} processes" if count > 1 else ", one process" if count
                                      else ", no live process"))


def check_job_runners(deployment: Deployment) -> Check:
    """Some live process must run the background jobs when work is waiting."""
    runners = [p for p in deployment.live if p.jobs]
    counts = [(deployment.bulk_queued, "bulk job"), (deployment.callouts_due, "callout"),
              (deployment.outbound_due, "outbound message")]
    waiting = (", ".join(f"{n} {what}{'s' if n != 1 else ''}" for n, what in counts if n) + " waiting"
               if deployment.waiting else "nothing waiting")
    if runners:
        return ("background jobs", OK, f"run by {len(runners)} process{'es' if len(runners) != 1 else ''} "
                                       f"({_listing(runners)}); {waiting}")
    hint = "start `interlink worker --jobs` (or an `interlink up` without --no-jobs, with bulk_workers > 0)"
    if not deployment.live:
        if deployment.waiting:
            return ("background jobs", WARN, f"{waiting} and no process running: they run once one starts")
        return ("background jobs", OK, "no process running; nothing waiting")
    if deployment.waiting:
        return ("background jobs", FAIL, f"no live process runs background jobs and {waiting}: {hint}")
    return ("background jobs", WARN, f"no live process runs background jobs (nothing waiting yet): Bulk jobs, "
                                     f"callouts, outbound messages and flows will wait; {hint}")


def _stamp(version: str) -> datetime | None:
    try:
        return datetime.fromisoformat(version) if version else None
    except ValueError:
        return None


def check_schema_agreement(deployment: Deployment) -> Check | None:
    """Every serving process runs the deployed schema (each reloads it within seconds of a deploy)."""
    serving = [p for p in deployment.live if p.kind in ("api", "worker") and p.schema_version]
    if not serving:
        return None
    deployed = _stamp(deployment.schema_version)
    grace = timedelta(seconds=SCHEMA_GRACE_SECONDS)
    behind = [p for p in serving if p.schema_version != deployment.schema_version
              and (deployed is None or p.last_seen > deployed + grace)]
    if behind:
        return ("schema", WARN, f"{_listing(behind)} still run{'s' if len(behind) == 1 else ''} the schema deployed "
                                f"{behind[0].schema_version or '(none)'}, not the one deployed "
                                f"{deployment.schema_version}: restart {'it' if len(behind) == 1 else 'them'}")
    catching_up = sum(1 for p in serving if p.schema_version != deployment.schema_version)
    return ("schema", OK, f"{len(serving) - catching_up} of {len(serving)} processes run the schema deployed "
                          f"{deployment.schema_version}" + (f"; {catching_up} picking it up now" if catching_up
                                                            else ""))


def _endpoint(settings: Settings, process: ProcessInfo) -> tuple[str, int] | None:
    """Where to reach an API process of this host: its listen address and port (``server.json`` when it picked
    a free port at start)."""
    from interlink.app.server import read_server_file

    port = process.detail.get("port")
    if not isinstance(port, int) or port <= 0:
        info = read_server_file(settings.data_dir) or {}
        workers = info.get("workers")
        if info.get("pid") == process.pid or (isinstance(workers, list) and process.pid in workers):
            port = info.get("port")
    if not isinstance(port, int) or port <= 0:
        return None
    listen = str(process.detail.get("listen") or "127.0.0.1")
    return ("127.0.0.1" if listen in ("0.0.0.0", "::", "") else listen), port


def _probe(url: str, context: ssl.SSLContext) -> tuple[int | None, str]:
    """GET ``url``: (HTTP status, short note); (None, error) when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=READY_TIMEOUT, context=context) as response:
            return response.status, ""
    except urllib.error.HTTPError as exc:
        return exc.code, exc.reason if isinstance(exc.reason, str) else ""
    except (OSError, ValueError) as exc:
        return None, str(getattr(exc, "reason", None) or exc)


def check_ready(settings: Settings, deployment: Deployment) -> list[Check]:
    """Probe ``/ready`` of every API port of this host (several processes may share one port)."""
    here = socket.gethostname()
    endpoints: dict[tuple[str, int], list[ProcessInfo]] = {}
    unknown: list[ProcessInfo] = []
    for process in deployment.live:
        if process.kind != "api" or process.host != here:
            continue
        endpoint = _endpoint(settings, process)
        if endpoint is None:
            unknown.append(process)
        else:
            endpoints.setdefault(endpoint, []).append(process)
    bundle = settings.data_dir / "tls" / "bundle.pem"
    if bundle.exists():
        context, note = ssl.create_default_context(cafile=str(bundle)), ""
    else:
        context, note = ssl._create_unverified_context(), " (certificate not verified: no CA bundle in the data dir)"
    checks: list[Check] = []
    for (host, port), processes in list(endpoints.items())[:MAX_READY_PROBES]:
        base = f"https://{host if ':' not in host else f'[{host}]'}:{port}"
        status, reason = _probe(f"{base}/ready", context)
        path = "/ready"
        if status == 404:  # a server without the readiness endpoint
            status, reason = _probe(f"{base}/health", context)
            path = "/health"
        served = f"{len(processes)} api process{'es' if len(processes) != 1 else ''}"
        if status == 200:
            checks.append(("api ready", OK, f"{base}{path} 200 ({served}){note}"))
        elif status is not None:
            checks.append(("api ready", WARN, f"{base}{path} {status} {reason} ({served}): not ready"))
        else:
            young = all(p.age_seconds(deployment.now) < STARTING_SECONDS for p in processes)
            checks.append(("api ready", WARN if young else FAIL,
                           f"{base}{path} not answering ({reason}) though {served} heartbeat"
                           + (": still starting?" if young else "")))
    if unknown:
        checks.append(("api ready", WARN, f"{_listing(unknown)}: port unknown (picked at start; not in "
                                          "server.json), not probed"))
    return checks


def check_deployment(settings: Settings, deployment: Deployment | None) -> list[Check]:
    """The checks of a deployment of several processes (none when there is no org yet)."""
    if deployment is None:
        return []
    checks: list[Check | None] = [
        check_processes(deployment),
        check_store_sharing(deployment),
        check_bus_sharing(settings, deployment),
        check_job_runners(deployment),
        check_schema_agreement(deployment),
        *check_ready(settings, deployment),
    ]
    return [check for check in checks if check is not None]


def process_table(deployment: Deployment) -> Table:
    """The registered processes: live ones first, then the stale ones."""
    table = Table("kind", "host", "pid", "age", "last seen", "jobs", "schema", "version", "state",
                  title="processes")
    now = deployment.now
    for process, live in [*((p, True) for p in deployment.live), *((p, False) for p in deployment.stale)]:
        schema = "" if not process.schema_version else (
            "deployed" if process.schema_version == deployment.schema_version else process.schema_version)
        state = "[green]live[/]" if live else "[red]gone[/]" if process.id in deployment.gone else "[red]stale[/]"
        table.add_row(process.kind, process.host, str(process.pid), _duration(process.age_seconds(now)),
                      f"{_duration(process.silent_seconds(now))} ago", "yes" if process.jobs else "no", schema,
                      process.version, state)
    return table


def run_doctor(settings: Settings, console: Console | None = None) -> bool:
    """Print a table of checks (and the registered processes, if any); True when nothing failed."""
    console = console or Console(stderr=True)
    seen: list[Deployment] = []

    def deployment_checks() -> list[Check]:
        deployment = read_deployment(settings)
        if deployment is not None:
            seen.append(deployment)
        return check_deployment(settings, deployment)

    checks: list[Callable[[], Check | list[Check]]] = [
        check_python,
        lambda: check_data_dir(settings),
        lambda: check_store(settings),
        lambda: check_tls(settings),
        lambda: check_port(settings),
        lambda: check_grpc_port(settings),
        lambda: check_bus(settings),
        lambda: check_bulk_jobs(settings),
        lambda: check_service("postgresql", os.environ.get("PGHOST", "127.0.0.1"), 5432,
                              "needed only for --store postgresql://"),
        lambda: check_service("nats", "127.0.0.1", 4222, "needed only for --bus nats://"),
        deployment_checks,
    ]
    table = Table("check", "status", "detail", title="interlink doctor")
    failed = False
    colours = {OK: "green", WARN: "yellow", FAIL: "red"}
    for check in checks:
        try:
            result = check()
        except Exception as exc:
            result = (getattr(check, "__name__", "check"), FAIL, f"{type(exc).__name__}: {exc}")
        for name, status, detail in [result] if isinstance(result, tuple) else result:
            failed = failed or status == FAIL
            table.add_row(name, f"[{colours[status]}]{status}[/]", detail)
    console.print(table)
    if seen and (seen[0].live or seen[0].stale):
        console.print(process_table(seen[0]))
    return not failed


__all__ = ["run_doctor"]


