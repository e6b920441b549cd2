"""``interlink up --with-examples`` (what ``make run`` starts): the org with sample data, the example remote systems
of every integration pattern around it, and where to look.

Before the org starts, under ``<data dir>/examples/``: the project (``examples/project`` with the ``sync`` and
``printers`` overlays, as ``interlink demo`` assembles it) in ``project/``; the billing service, the
outbound-message listener and the ERP's OData service (seeded, its orders in ``erp.db``) on 8701, 8702 and 8703;
the marketing database ``prospects.db`` and an empty warehouse ``warehouse.db``. When one of 8701-8704 is taken (or
with ``--free-example-ports``) every system gets a free port and the project is rewritten to match. Once the org
serves: the ERP's Pub/Sub subscriber and the payment processor (``serve``, port 8704, logged in through the
connected app "Example Payment Processor"). Then it prints where to look and one command per pattern, and writes
``systems.json`` (each system's pid, URL and log) until it stops. Every process it started stops with it (Ctrl-C,
SIGTERM, or an org that fails to start).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interlink.cli.example_systems import (
    SYSTEMS,
    ExamplesError,
    Processes,
    compose_project,
    find_examples,
    free_port,
    port_is_free,
    start_systems,
    system_urls,
    tail,
    wait_port,
    wait_systems,
)

if TYPE_CHECKING:
    from interlink.app.org import Org
    from interlink.app.server import ServerInfo
    from interlink.settings import Settings

# Fixed ports: the three examples/project names, and the payment processor's own default.
PORTS = {**{name: port for name, (port, _script, _path) in SYSTEMS.items()}, "payments": 8704}
PROCESSOR_APP = "Example Payment Processor"
ERP_ORDERS = 120  # the ERP's seed: customers CUST-0001 … CUST-0050, 2 or 3 orders each
PROSPECTS = 2000  # the marketing database: prospect-import loads them with Bulk API 2.0
PRINTERS = ("Printer 1st floor", "Printer 2nd floor", "Printer reception")


@dataclass
class ExampleRun:
    """The example systems of one ``interlink up --with-examples``: where they are, and what was started."""

    examples: Path
    data_dir: Path  # as given (possibly relative: shown that way)
    ports: dict[str, int]
    why_free: str | None  # None: the fixed ports; else why they are free ones
    env: dict[str, str]  # for the children that open the org themselves (interlink token)
    processes: Processes = field(default_factory=lambda: Processes(keep=False))
    seeded: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    @property
    def work(self) -> Path:
        return self.data_dir / "examples"

    @property
    def project(self) -> Path:
        return self.work / "project"

    @property
    def prospects(self) -> Path:
        return self.work / "prospects.db"

    @property
    def warehouse(self) -> Path:
        return self.work / "warehouse.db"

    @property
    def systems_file(self) -> Path:
        return self.work / "systems.json"

    def log(self, name: str) -> Path:
        return self.work / "logs" / f"{name}.log"

    def urls(self) -> dict[str, str]:
        return {**system_urls(self.ports), "payments": f"http://127.0.0.1:{self.ports['payments']}/payments"}

    # -- before the org ----------------------------------------------------------------------------------------

    def start(self) -> None:
        """The project, the databases and the systems the project calls; waits until they listen."""
        self.work.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            self.systems_file.unlink()
        compose_project(self.examples, self.project, self.ports)
        logs = {name: self.log(name) for name in SYSTEMS}
        start_systems(self.processes, self.examples, self.ports, logs, {
            "erp": ["--seed", str(ERP_ORDERS), "--db", str(self.work.resolve() / "erp.db")]})
        if not self.prospects.exists():
            done = subprocess.run([sys.executable, str(self.examples / "sync" / "make_source_db.py"),
                                   str(self.prospects), "--rows", str(PROSPECTS)], capture_output=True, text=True,
                                  check=False, timeout=120)
            if done.returncode != 0:
                raise ExamplesError(f"make_source_db.py failed: {done.stderr.strip()[-600:]}")
        sqlite3.connect(self.warehouse).close()  # an empty warehouse: activity-export creates its table
        wait_systems(self.processes, self.ports, logs)

    def seed(self, org: Org) -> None:
        """What the printed commands use, made once through the one write path: the sample accounts' ERP customer
        numbers, three printers (Assets), a draft order, an open opportunity and an unpaid case."""
        context = org.admin_context()

        def rows(soql: str) -> list[dict[str, Any]]:
            return list(org.query.execute(soql, context).records)

        def create(name: str, values: dict[str, Any]) -> str:
            (result,) = org.records.create(context, name, [values])
            if result.errors:
                raise result.errors[0]
            return str(result.id)

        accounts = rows("SELECT Id, Customer_Number__c FROM Account ORDER BY CreatedDate, Id LIMIT 5")
        if not accounts:
            accounts = [{"Id": create("Account", {"Name": "Example Customer"}), "Customer_Number__c": None}]
        taken = {r["Customer_Number__c"] for r in rows("SELECT Customer_Number__c FROM Account WHERE "
                                                       "Customer_Number__c != null")}
        numbered = [{"Id": a["Id"], "Customer_Number__c": f"CUST-{n:04d}"} for n, a in enumerate(accounts, start=1)
                    if not a["Customer_Number__c"] and f"CUST-{n:04d}" not in taken]
        for result in org.records.update(context, "Account", numbered) if numbered else []:
            if result.errors:
                raise result.errors[0]
        account = accounts[0]["Id"]
        self.seeded["customer"] = rows("SELECT Customer_Number__c FROM Account WHERE Customer_Number__c != null ORDER "
                                       "BY Customer_Number__c LIMIT 1")[0]["Customer_Number__c"]
        names = ", ".join(f"'{name}'" for name in PRINTERS)
        have = {r["Name"]: r["Id"] for r in rows(f"SELECT Id, Name FROM Asset WHERE Name IN ({names})")}
        for number, name in enumerate(PRINTERS, start=1):
            if name not in have:
                have[name] = create("Asset", {"Name": name, "AccountId": account, "Status": "Installed",
                                              "SerialNumber": f"PRN-{number:03d}"})
        self.seeded["printer"] = have[PRINTERS[-1]]
        draft = [r for r in rows("SELECT Id, Description FROM Order WHERE Status = 'Draft' AND Printer_Asset__c = null "
                                 "ORDER BY CreatedDate LIMIT 50") if not r["Description"]]
        self.seeded["order"] = draft[0]["Id"] if draft else create("Order", {
            "AccountId": account, "EffectiveDate": date.today().isoformat(), "Status": "Draft"})
        deal = rows("SELECT Id FROM Opportunity WHERE IsClosed = false ORDER BY CreatedDate LIMIT 1")
        self.seeded["opportunity"] = deal[0]["Id"] if deal else create("Opportunity", {
            "Name": "Example: 40 printers", "AccountId": account, "StageName": "Negotiation/Review",
            "CloseDate": date.today().isoformat(), "Amount": 48000})
        case = rows("SELECT Id, CaseNumber FROM Case WHERE Payment_Status__c = 'Unpaid' AND IsClosed = false "
                    "ORDER BY CaseNumber LIMIT 1")
        if not case:
            made = create("Case", {"Subject": "Invoice not paid yet", "Status": "New", "Origin": "Phone"})
            case = rows(f"SELECT Id, CaseNumber FROM Case WHERE Id = '{made}'")
        self.seeded["case"], self.seeded["case_number"] = case[0]["Id"], case[0]["CaseNumber"]

    # -- once the org serves -----------------------------------------------------------------------------------

    def org_ready(self, org: Org, info: ServerInfo, admin_password: str | None) -> None:
        """Start the ERP's subscriber and the payment processor (which talk to the org), then, from a thread so the
        org keeps answering them, wait for them and print where to look."""
        from interlink.app.org import ADMIN_USERNAME

        app = org.directory.app_by_name(PROCESSOR_APP)
        if app is None:
            admin = org.directory.user_by_username(ADMIN_USERNAME)
            app = org.directory.create_app(PROCESSOR_APP, run_as_user_id=admin.id if admin else None)
        data_dir = str(self.data_dir.resolve())
        if info.grpc_port:
            self.processes.start("erp-subscriber", [sys.executable, "-u", str(self.examples / "erp" / "subscriber.py"),
                                                    "--data-dir", data_dir], self.log("erp-subscriber"), self.env)
        else:
            self.notes.append("the ERP's subscriber and the printers need the Pub/Sub API, which is off "
                              "(--grpc-port -1)")
        self.processes.start("payments", [sys.executable, "-u", str(self.examples / "payments" / "processor.py"),
                                          "--data-dir", data_dir, "serve", "--port", str(self.ports["payments"])],
                             self.log("payments"), {"PAYMENTS_CLIENT_ID": app.consumer_key,
                                                    "PAYMENTS_CLIENT_SECRET": app.consumer_secret})
        threading.Thread(target=self._announce, args=(info, admin_password, org.settings.api_max_version),
                         name="examples-ready", daemon=True).start()

    def _announce(self, info: ServerInfo, admin_password: str | None, api_version: str) -> None:
        try:
            wait_port("payments", self.processes.started["payments"], self.ports["payments"], self.log("payments"))
        except ExamplesError as error:
            if self.stopping.is_set():
                return
            self.notes.append(f"the payment processor did not start: {error}")
        subscriber = self.processes.started.get("erp-subscriber")
        if subscriber is not None and subscriber.poll() is not None and not self.stopping.is_set():
            log = tail(self.log("erp-subscriber"))
            self.notes.append(f"the ERP's subscriber exited {subscriber.returncode}:\n{log}")
        if self.stopping.is_set():
            return
        self._write_systems_file()
        _print(where_to_look(self, info, admin_password, api_version))

    def _write_systems_file(self) -> None:
        urls = self.urls()
        systems = {name: {"pid": process.pid, "url": urls.get(name), "log": str(self.log(name))}
                   for name, process in self.processes.started.items()}
        written = self.systems_file.with_suffix(".tmp")
        written.write_text(json.dumps({
            "examples": str(self.examples), "project": str(self.project), "ports": "free" if self.why_free else "fixed",
            "prospects_db": str(self.prospects), "warehouse_db": str(self.warehouse), "systems": systems}, indent=2))
        written.replace(self.systems_file)  # whole, for whoever waits for it

    def stop_clients(self) -> None:
        """When the org is asked to stop: first the systems that are its clients (they would hold its connections
        and subscriptions open), without waiting for them."""
        self.stopping.set()
        for name in ("payments", "erp-subscriber"):
            process = self.processes.started.get(name)
            if process is not None and process.poll() is None:
                process.terminate()

    def stop(self) -> None:
        self.stopping.set()
        self.processes.stop()
        with contextlib.suppress(OSError):
            self.systems_file.unlink()


def start_examples(settings: Settings, *, project_dir: Path | None, sample_data: bool | None,
                   free_ports: bool) -> tuple[Settings, ExampleRun]:
    """Assemble the project and start the systems the org calls; the settings to start the org with."""
    from interlink.errors import ConfigurationError

    if sample_data is False:
        raise ConfigurationError("--with-examples needs the sample org (its flows use the sample platform events): "
                                 "drop --no-sample-data")
    examples = find_examples(None)
    # The subscriber and the processor are forked once the org's gRPC server runs: without this, gRPC logs that it
    # skips its fork handlers (they only matter to a child that uses gRPC without exec).
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
    taken = [port for port in PORTS.values() if not port_is_free(port)]
    why_free = "asked (--free-example-ports)" if free_ports else (
        f"{', '.join(map(str, taken))} {'is' if len(taken) == 1 else 'are'} taken" if taken else None)
    ports = {name: free_port() for name in PORTS} if why_free else dict(PORTS)
    env = {"INTERLINK_STORE": settings.store} if settings.store else {}
    run = ExampleRun(examples, settings.data_dir, ports, why_free, env)
    if project_dir is not None and project_dir.resolve() != run.project.resolve():
        run.notes.append(f"--with-examples serves {run.project}; the project directory {project_dir} is not used")
    try:
        run.start()
    except BaseException:
        run.stop()
        raise
    return settings.replace(project_dir=run.project, sample_data=True), run


# -- where to look ---------------------------------------------------------------------------------------------


def _shown(path: Path | str) -> str:
    """A path as a user types it here: relative to the working directory when under it, shell-quoted."""
    absolute = Path(os.path.abspath(path))
    with contextlib.suppress(ValueError):
        return shlex.quote(str(absolute.relative_to(Path.cwd())))
    return shlex.quote(str(absolute))


def _program(name: str, fallback: list[str]) -> str:
    """``name`` when the shell finds this interpreter's one, else its path (``.venv/bin/name``), else ``fallback``."""
    own = Path(sys.executable).parent / name
    found = shutil.which(name)
    if found and os.path.abspath(found) == os.path.abspath(own):
        return name
    return _shown(own) if own.exists() else " ".join(shlex.quote(part) for part in fallback)


def where_to_look(run: ExampleRun, info: ServerInfo, admin_password: str | None, api_version: str) -> list[str]:
    """The block ``interlink up --with-examples`` prints once everything runs (rich markup)."""
    from rich.markup import escape

    from interlink.app.org import ADMIN_USERNAME

    python = _program("python", [sys.executable])
    interlink = _program("interlink", [sys.executable, "-m", "interlink.cli.main"])
    data = _shown(run.data_dir)
    urls, seeded = run.urls(), run.seeded
    login = f"{ADMIN_USERNAME} / {admin_password}" if admin_password else (
        f"{ADMIN_USERNAME} with the admin password printed when the org was created, or INTERLINK_ADMIN_PASSWORD")
    ports = (f"on ports {min(run.ports.values())}-{max(run.ports.values())}" if not run.why_free else
             f"on free ports, as {run.why_free}: the project points at them")
    fleet = f"{python} {_shown(run.examples / 'printers' / 'fleet.py')} --data-dir {data}"
    grpc = f"localhost:{info.grpc_port}" if info.grpc_port else "(Pub/Sub API off)"
    sf = (f'sf() {{ curl -s --cacert {_shown(info.tls.bundle)} -H "Authorization: Bearer $SF_TOKEN" '
          "-H 'Content-Type: application/json' \"$@\"; echo; }")
    soql = (f"SELECT Name, (SELECT OrderNumber__c, Status__c, Amount__c FROM Orders__r) FROM Account WHERE "
            f"Customer_Number__c = '{seeded['customer']}'")
    order, deal = seeded["order"], seeded["opportunity"]
    lines = [f"[bold]Example systems[/] of the six patterns {escape(ports)} (logs in "
             f"{escape(_shown(run.work / 'logs'))}/)"]
    plain = [
        ("org", f"{info.url}  (project {_shown(run.project)})"),
        ("console", f"{info.url}/console/  (log in as {login})"),
        ("billing", f"{urls['billing']}  Request and Reply: named credential Billing, flow Bill_Activated_Orders"),
        ("listener", f"{urls['listener']}/notifications  Fire and Forget: outbound message of the flow Won_To_ERP"),
        ("ERP OData", f"{urls['erp']}/odata/  Data Virtualization: Order__x, OrderLine__x ({ERP_ORDERS} orders, "
                      f"{_shown(run.work / 'erp.db')})"),
        ("ERP events", f"subscribed to /event/Order_Request__e on {grpc}  Fire and Forget (erp/subscriber.py)"),
        ("payments", f"{urls['payments']}  UI Update: POST {{\"case\", \"amount\"}}; connected app "
                     f"\"{PROCESSOR_APP}\""),
        ("marketing", f"{_shown(run.prospects)}  Batch Data Synchronization: {PROSPECTS} prospects"),
        ("warehouse", f"{_shown(run.warehouse)}  (activity-export writes its activities table)"),
        ("printers", f"{fleet}  Remote Call-In: a CLI you run"),
    ]
    lines += [f"  {label:<11} {escape(text)}" for label, text in plain]
    lines += [f"  [yellow]note:[/] {escape(note)}" for note in run.notes]
    commands = [
        ("", f"export SF_TOKEN=$({interlink} token --data-dir {data}) API={info.url}/services/data/v{api_version}"),
        ("", sf),
        ("Request and Reply", f"sf -X PATCH $API/sobjects/Order/{order} -d '{{\"Status\": \"Activated\"}}'"),
        ("", f"sf \"$API/sobjects/Order/{order}?fields=Description\"   # BA-…: billing's account number"),
        ("Fire and Forget", f"sf -X PATCH $API/sobjects/Opportunity/{deal} -d '{{\"StageName\": \"Closed Won\"}}'"),
        ("", f"sf \"$API/sobjects/Opportunity/{deal}?fields=Description\"   # ERP order SO-…: the ERP's callback"),
        ("Batch Data Sync", f"PROSPECTS_DB={_shown(run.prospects)} WAREHOUSE_DB={_shown(run.warehouse)} {interlink} "
                            f"sync run prospect-import --data-dir {data} --project-dir {_shown(run.project)}"),
        ("Remote Call-In", f"{fleet} --printer {seeded['printer']}:12:80   # the Asset's levels, and a "
                           "Draft ink Order"),
        ("UI Update", f"open {info.url}/console/live/cases/{seeded['case']} (logged in), then"),
        ("", f"curl -s {urls['payments']} -d '{{\"case\": \"{seeded['case_number']}\", "
             "\"amount\": 120.5}'"),
        ("Virtualization", f"sf -G $API/query --data-urlencode \"q={soql}\""),
        ("End to end", f"{interlink} demo PATTERN   # a pattern's scenario, checked, on an org of its own"),
    ]
    lines.append("[bold]Try each pattern[/] (in another terminal, from here):")
    lines += [f"  {label:<18} {escape(text)}" for label, text in commands]
    return lines


def _print(lines: list[str]) -> None:
    from rich.console import Console

    Console(stderr=True, highlight=False, soft_wrap=True).print("\n".join(lines))


__all__ = ["ExampleRun", "start_examples", "where_to_look"]
