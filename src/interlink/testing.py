"""Public helpers for testing against Interlink: an in-process org with a REST client, and a live server.

In-process (fast, no sockets)::

    with local_org(tmp_path) as org:
        client = rest_client(org)                    # httpx-style client, already authorised
        client.post("/services/data/v66.0/sobjects/Account/", json={"Name": "Acme"})

Live (a real ``interlink up`` over TLS on a free port, for real clients such as simple-salesforce)::

    with live_server(tmp_path) as server:
        session = requests.Session(); session.verify = server.ca_bundle
        Salesforce(instance_url=server.url, session_id=server.token, session=session)
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interlink.settings import Settings
from interlink.store.claims import process_alive

if TYPE_CHECKING:
    from starlette.testclient import TestClient

    from interlink.app.org import Org

ADMIN_PASSWORD = "interlink-test-password"
API_VERSION = "66.0"
POSTGRES_ADMIN_URL = os.environ.get("INTERLINK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextlib.contextmanager
def local_org(data_dir: Path, *, store: str = "", project_dir: Path | None = None, reuse_bootstrap: bool = False,
              **settings: Any) -> Iterator[Org]:
    """Open an org in ``data_dir`` (bootstrapping it) and close it afterwards.

    With ``reuse_bootstrap`` a new org starts as a copy of one this process bootstrapped before with the same
    project files, store kind and settings (its data directory, and on PostgreSQL its database through ``CREATE
    DATABASE … TEMPLATE``), then opens as an existing org does: the same schema, users and permissions, in a
    fraction of the time. Copies share the template's org id, user ids and keys, so do not use it for orgs that
    must differ from each other (two orgs of one test that talk to each other), or to test a first bootstrap."""
    from interlink.app.org import Org

    project = project_dir or data_dir / "project"
    values: dict[str, Any] = {"data_dir": data_dir, "store": store, "admin_password": ADMIN_PASSWORD,
                              "project_dir": project, **settings}
    if reuse_bootstrap and not (data_dir.exists() and any(data_dir.iterdir())):
        _templates.copy_into(data_dir, store, project, values)
    org = Org.open(Settings.load(values, env={}))
    try:
        yield org
    finally:
        org.close()


class _Templates:
    """Bootstrapped orgs kept by this process to copy from (:func:`local_org`'s ``reuse_bootstrap``)."""

    def __init__(self) -> None:
        self.root: Path | None = None
        self.found: dict[str, tuple[Path, str, str]] = {}  # key -> (template data dir, its database or "", URL)

    @staticmethod
    def key(store: str, project: Path, values: Mapping[str, Any]) -> str:
        digest = hashlib.sha256()
        digest.update((store.rsplit("/", 1)[0] if store else "sqlite").encode())
        digest.update(repr(sorted((k, repr(v)) for k, v in values.items()
                                  if k not in ("data_dir", "store", "project_dir"))).encode())
        if project.is_dir():
            for path in sorted(project.rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    digest.update(str(path.relative_to(project)).encode() + b"\0" + path.read_bytes() + b"\0")
        return digest.hexdigest()

    def copy_into(self, data_dir: Path, store: str, project: Path, values: Mapping[str, Any]) -> None:
        from interlink.app.org import Org

        key = self.key(store, project, values)
        if key not in self.found:
            if self.root is None:
                self.root = Path(tempfile.mkdtemp(prefix="interlink-templates-"))
                atexit.register(self.remove)
            template_dir = self.root / str(len(self.found))
            database = f"interlink_tmpl_{os.getpid()}_{len(self.found)}" if store else ""
            if database:
                _drop_orphaned_templates(store)
                _admin_sql(store, f'CREATE DATABASE "{database}"')
            try:
                Org.open(Settings.load({**values, "data_dir": template_dir,
                                        "store": _with_database(store, database) if database else ""},
                                       env={})).close()
            except BaseException:
                if database:
                    _admin_sql(store, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
                raise
            self.found[key] = (template_dir, database, store)
        template_dir, database, _url = self.found[key]
        shutil.copytree(template_dir, data_dir, dirs_exist_ok=True)
        if database:  # the test's own (empty) database becomes a copy of the template's
            name = store.rsplit("/", 1)[1]
            _admin_sql(store, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            _admin_sql(store, f'CREATE DATABASE "{name}" TEMPLATE "{database}"')

    def remove(self) -> None:
        for _template_dir, database, url in self.found.values():
            if database:
                with contextlib.suppress(Exception):
                    _admin_sql(url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)


_templates = _Templates()


def _drop_orphaned_templates(url: str) -> None:
    """Drop the template databases of processes that are gone (killed before their exit hook ran)."""
    import psycopg

    with _admin_connection(_with_database(url, "postgres")) as conn:
        names = [row[0] for row in conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'interlink\\_tmpl\\_%'")]
        for name in names:
            pid = name.split("_")[2]
            if pid.isdigit() and int(pid) != os.getpid() and not process_alive(int(pid)):
                with contextlib.suppress(psycopg.Error):
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _with_database(url: str, database: str) -> str:
    return f"{url.rsplit('/', 1)[0]}/{database}"


def _admin_connection(url: str) -> Any:
    """An autocommit connection to the PostgreSQL database of ``url`` (a SQLAlchemy or libpq URL)."""
    import psycopg

    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True, connect_timeout=3)


def _admin_sql(url: str, statement: str) -> None:
    """Run ``statement`` on the PostgreSQL server of ``url``, connected to its ``postgres`` database."""
    with _admin_connection(_with_database(url, "postgres")) as conn:
        conn.execute(statement)


def rest_client(org: Org, username: str = "admin@interlink.local", *, authorised: bool = True) -> TestClient:
    """A Starlette ``TestClient`` for the org's HTTPS app, with a Bearer token for ``username``."""
    from starlette.testclient import TestClient

    from interlink.api.app import build_app

    client = TestClient(build_app(org), base_url="https://testserver", raise_server_exceptions=True)
    if authorised:
        client.headers["Authorization"] = f"Bearer {org.mint_token(username)}"
    return client


@contextlib.contextmanager
def postgres_database(admin_url: str = POSTGRES_ADMIN_URL) -> Iterator[str]:
    """Create a uniquely named PostgreSQL database, yield its URL, drop it afterwards.

    Raises ``RuntimeError`` when no server is reachable, so callers can skip with the reason.
    """
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - test extras install it
        raise RuntimeError(f"psycopg is not installed: {exc}") from None
    name = f"interlink_test_{uuid.uuid4().hex[:12]}"
    try:
        with _admin_connection(admin_url) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        raise RuntimeError(f"PostgreSQL not reachable at {admin_url}: {str(exc).strip()}") from None
    try:
        yield _with_database(admin_url.replace("postgresql+psycopg://", "postgresql://"), name)
    finally:
        with _admin_connection(admin_url) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def backend_org(root: Path, backend: str = "sqlite", objects: Mapping[str, str] | None = None, *,
                unavailable: Callable[[str], Any] | None = None, reuse_bootstrap: bool = True,
                **settings: Any) -> Iterator[Org]:
    """An org under ``root`` on ``backend`` (``sqlite`` or ``postgresql``, a fresh database dropped afterwards),
    whose project declares ``objects`` (object name -> YAML text); a copy of an earlier identical bootstrap of
    this process unless ``reuse_bootstrap`` is false (see :func:`local_org`).

    When PostgreSQL is unreachable, ``unavailable(reason)`` is called (pass ``pytest.skip``); without it the
    ``RuntimeError`` propagates.
    """
    project = root / "project"
    folder = project / "metadata" / "objects"
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (objects or {}).items():
        (folder / f"{name}.yaml").write_text(text)
    with contextlib.ExitStack() as stack:
        url = ""
        if backend != "sqlite":
            try:
                url = stack.enter_context(postgres_database())
            except RuntimeError as exc:
                if unavailable is None:
                    raise
                unavailable(str(exc))
                raise
        yield stack.enter_context(local_org(root / "org", store=url, project_dir=project,
                                            reuse_bootstrap=reuse_bootstrap, **settings))


@dataclass
class LiveServer:
    url: str
    port: int
    ca_bundle: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    grpc_port: int | None = None
    org_id: str = ""
    store: str = ""  # the --store URL it was started with ('' for SQLite under data_dir)

    @property
    def grpc_target(self) -> str:
        """``localhost:<port>`` of the Pub/Sub API (the certificate names localhost)."""
        return f"localhost:{self.grpc_port}"

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1]

    def token(self, username: str = "admin@interlink.local") -> str:
        """Mint a token through the real CLI (``interlink token``)."""
        store = ("--store", self.store) if self.store else ()
        return run_cli("token", "--user", username, "--data-dir", str(self.data_dir), *store).stdout.strip()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def info(self) -> dict[str, Any]:
        """``<data_dir>/run/server.json`` as the server wrote it last (``workers``: the API processes' pids)."""
        return json.loads((self.data_dir / "run" / "server.json").read_text())  # type: ignore[no-any-return]

    @property
    def workers(self) -> list[int]:
        """The pids of the API processes (``--workers N``); the server's own pid when it serves alone."""
        return list(self.info().get("workers") or [self.process.pid])

    def kill_all(self) -> None:
        """SIGKILL the server and each of its API processes: no shutdown hook, no flush, no drain."""
        workers = [pid for pid in self.workers if pid != self.process.pid]
        self.process.kill()
        self.process.wait()
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in workers:
            deadline = time.monotonic() + 10
            while process_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60,
            check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``interlink ARGS`` as a user would (a subprocess of this interpreter)."""
    merged = {**os.environ, **(env or {})}
    result = subprocess.run([sys.executable, "-m", "interlink.cli.main", *args], capture_output=True, text=True,
                            env=merged, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"interlink {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
    return result


@contextlib.contextmanager
def live_server(data_dir: Path, *, extra_args: tuple[str, ...] = (), env: dict[str, str] | None = None,
                timeout: float = 30, ready_file: str | None = None) -> Iterator[LiveServer]:
    """Start ``interlink up --port 0`` in ``data_dir`` and wait until it serves; stop it afterwards.

    ``ready_file`` (relative to ``data_dir``) is a file the server writes when it is ready beyond serving, e.g.
    ``examples/systems.json`` with ``--with-examples``: it is waited for too."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "server.log"
    info_path = data_dir / "run" / "server.json"
    waited = [info_path, *([data_dir / ready_file] if ready_file else [])]
    for path in waited:
        with contextlib.suppress(OSError):
            path.unlink()
    merged = {**os.environ, "INTERLINK_ADMIN_PASSWORD": ADMIN_PASSWORD, "INTERLINK_PROJECT_DIR": str(data_dir),
              "INTERLINK_GRPC_PORT": "0", **(env or {})}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "interlink.cli.main", "up", "--port", "0", "--data-dir", str(data_dir),
             *extra_args], stdout=log, stderr=subprocess.STDOUT, env=merged)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"interlink up exited {process.returncode}:\n{log_path.read_text()}")
            if all(path.exists() for path in waited):
                try:
                    info = json.loads(info_path.read_text())
                    break
                except ValueError:
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"interlink up did not start in {timeout}s:\n{log_path.read_text()}")
            time.sleep(0.05)
        store = extra_args[extra_args.index("--store") + 1] if "--store" in extra_args[:-1] else merged.get(
            "INTERLINK_STORE", "")
        yield LiveServer(info["url"], int(info["port"]), info["ca_bundle"], data_dir, process, log_path,
                         info.get("grpc_port"), info.get("org_id", ""), store)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


__all__ = ["ADMIN_PASSWORD", "API_VERSION", "LiveServer", "backend_org", "live_server", "local_org",
           "postgres_database", "process_alive", "rest_client", "run_cli"]
