"""The six scenarios of ``interlink demo``: each pattern's example, end to end, checked through the wire APIs.

Every scenario plays the remote side the way a real integration does (REST over TLS, the Pub/Sub API, batch jobs
run with ``interlink sync``, the example systems of ``examples/``), then checks the outcome and fills a
:class:`~interlink.cli.demo_wire.Report`.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from interlink.cli.demo_wire import (
    API_VERSION,
    ConsoleStream,
    EventWatch,
    OrgInfo,
    Run,
    ScenarioFailed,
    ScenarioSkipped,
    Step,
    ThreadOutput,
    Wire,
    clean_env,
)

ADMIN = "admin@interlink.local"


@dataclass
class Stage:
    """What the scenarios share: the org, the example systems and where their files are."""

    wire: Wire
    org: OrgInfo
    examples: Path
    work: Path  # the example systems' files (marketing database, warehouse) and logs
    project: Path  # the org's project (examples/project with the sync and printers metadata)
    systems: dict[str, str]  # billing, listener, erp -> base URL
    logs: dict[str, Path]
    output: ThreadOutput
    timeout: float
    password: str | None = None  # the admin's, for the console (known for orgs the demo created)
    _log_offsets: dict[str, int] = field(default_factory=dict)
    _modules: dict[str, ModuleType] = field(default_factory=dict)

    def example(self, relative: str) -> ModuleType:
        """Import an example (``erp/subscriber.py``) from the examples directory."""
        if relative not in self._modules:
            path = self.examples / relative
            name = f"interlink_demo_example_{path.parent.name}_{path.stem}"
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise ScenarioFailed(f"cannot load {path}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
            self._modules[relative] = module
        return self._modules[relative]

    def log_lines(self, system: str) -> list[str]:
        """What ``system`` logged since the last look."""
        path = self.logs.get(system)
        if path is None or not path.exists():
            return []
        with path.open("rb") as log:
            log.seek(self._log_offsets.get(system, 0))
            data = log.read()
        self._log_offsets[system] = self._log_offsets.get(system, 0) + len(data)
        return [line for line in data.decode("utf-8", "replace").splitlines() if line.strip()]

    def command(self, *args: str, env: dict[str, str] | None = None, timeout: float = 600,
                program: tuple[str, ...] | None = None, secret: str = "") -> subprocess.CompletedProcess[str]:
        """Run ``interlink ARGS`` (or ``program ARGS``) as a user would; recorded as a RUN call (``secret`` shown as
        ``***``)."""
        argv = [*(program or (sys.executable, "-m", "interlink.cli.main")), *args]
        started = time.monotonic()
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                              env={**clean_env(), **(env or {})})
        shown = " ".join(("interlink", *args) if program is None else (Path(argv[1]).name, *args))
        if secret:
            shown = shown.replace(secret, "***")
        self.wire.record("RUN", "$", shown, f"exit {done.returncode}", (time.monotonic() - started) * 1000)
        return done


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


def _one(records: list[dict[str, Any]], what: str) -> dict[str, Any]:
    if len(records) != 1:
        raise ScenarioFailed(f"expected one {what}, found {len(records)}")
    return records[0]


# -- 1. Request and Reply ------------------------------------------------------------------------------------


def _draft_order(stage: Stage, step: Step, account: str) -> dict[str, Any]:
    order_id = stage.wire.rest("POST", "sobjects/Order", {"AccountId": account, "EffectiveDate": _today(),
                                                         "Status": "Draft"})["id"]
    order = stage.wire.get(f"sobjects/Order/{order_id}")
    step.change(f"+ Order {order_id} OrderNumber = {order['OrderNumber']}, Status = Draft")
    return order  # type: ignore[no-any-return]


def _callout_for(stage: Stage, record_id: str) -> dict[str, Any] | None:
    callouts = stage.wire.get("/interlink/v1/callouts", limit=100)["callouts"]
    return next((c for c in callouts if c.get("recordId") == record_id), None)


def _describe_callout(callout: dict[str, Any] | None) -> str:
    if callout is None:
        return "no callout was queued for the order"
    history = callout.get("history") or []
    last = history[-1] if history else None
    answer = "no answer yet" if last is None else (
        f"last answer {last.get('status') or last.get('error')} {(last.get('response') or '').strip()[:120]}")
    return (f"the callout {callout['method']} {callout['credential']}{callout['path']} is {callout['state']} after "
            f"{len(history)} attempt(s); {answer}")


def request_reply(stage: Stage, run: Run) -> None:
    wire = stage.wire
    with run.step("Create a customer account and a draft order (REST)") as step:
        account = wire.rest("POST", "sobjects/Account", {"Name": "Demo Billing Customer"})["id"]
        step.change(f"+ Account {account} Name = Demo Billing Customer")
        order = _draft_order(stage, step, account)
        stage.log_lines("billing")  # what billing logs from here on belongs to the next step
    with run.step("Activate the order: the flow Bill_Activated_Orders calls billing.createAccount after the save "
                  "and stores the answer") as step:
        wire.rest("PATCH", f"sobjects/Order/{order['Id']}", {"Status": "Activated"})
        step.change(f"~ Order {order['Id']} Status Draft -> Activated")
        number = run.wait("the order's billing account number was not stored",
                          lambda: wire.get(f"sobjects/Order/{order['Id']}")["Description"],
                          why=lambda: _describe_callout(_callout_for(stage, order["Id"])))
        callout = _callout_for(stage, order["Id"])
        run.check(callout is not None and callout["state"] == "Delivered",
                  f"the order got {number!r} but its callout is not Delivered: {_describe_callout(callout)}")
        assert callout is not None
        answer = json.loads(callout["history"][-1].get("response") or "{}")
        run.check(re.fullmatch(r"BA-\d{4}", number or "") and answer.get("accountNumber") == number,
                  f"the order's Description is {number!r}, billing answered {answer}")
        step.change(f"~ Order {order['Id']} Description = {number} (billing's account number)")
        step.note(f"callout {callout['id']}: POST {callout['credential']}{callout['path']}, "
                  f"Idempotency-Key {callout['idempotencyKey']}, {len(callout['history'])} attempt(s), answered "
                  f"{callout['history'][-1]['status']} {json.dumps(answer)}")
        for line in stage.log_lines("billing"):
            step.note(line)
    with run.step("Synchronous: POST actions/custom/flow/Activate_Order_Now waits for billing and activates the "
                  "order in one transaction") as step:
        second = _draft_order(stage, step, account)
        (result,) = wire.rest("POST", "actions/custom/flow/Activate_Order_Now",
                              {"inputs": [{"recordId": second["Id"]}]}, expect=(200, 400))
        run.check(result.get("isSuccess"), f"Activate_Order_Now failed: {result.get('errors')}")
        after = wire.get(f"sobjects/Order/{second['Id']}")
        run.check(after["Status"] == "Activated" and re.fullmatch(r"BA-\d{4}", after["Description"] or "")
                  and after["Description"] != number,
                  f"expected an activated order with a new account number, found Status {after['Status']}, "
                  f"Description {after['Description']!r}")
        step.change(f"~ Order {second['Id']} Status = Activated, Description = {after['Description']} "
                    "(one transaction)")
        for line in stage.log_lines("billing"):
            step.note(line)


# -- 2. Fire and Forget ---------------------------------------------------------------------------------------


def fire_and_forget(stage: Stage, run: Run) -> None:
    wire = stage.wire
    from interlink.pubsub._proto import pubsub_api_pb2 as pb

    topic = "/event/Order_Request__e"
    watch: EventWatch | None = None
    stop = threading.Event()
    try:
        with run.step("Create an account and an open opportunity (REST)") as step:
            account = wire.rest("POST", "sobjects/Account", {"Name": "Demo Fire and Forget Co"})["id"]
            step.change(f"+ Account {account} Name = Demo Fire and Forget Co")
            deal = wire.rest("POST", "sobjects/Opportunity", {
                "Name": "Demo: 40 printers", "AccountId": account, "StageName": "Negotiation/Review",
                "CloseDate": _today(), "Amount": 48000})["id"]
            step.change(f"+ Opportunity {deal} StageName = Negotiation/Review, Amount = 48000")
        with run.step(f"The ERP (examples/erp/subscriber.py) subscribes to {topic} over the Pub/Sub API") as step:
            watch = EventWatch(wire, topic)
            start = watch.ready(stage.timeout)
            subscriber = stage.example("erp/subscriber.py")
            handled: list[dict[str, Any]] = []
            failures: list[str] = []

            def requests() -> Any:  # from where the demo's watch started, so no event is missed
                yield pb.FetchRequest(topic_name=topic, replay_preset=pb.CUSTOM, replay_id=start.to_bytes(8, "big"),
                                      num_requested=1)
                stop.wait()

            def erp() -> None:
                try:
                    subscriber.handle_orders(stage.org.url, stage.org.grpc_target, stage.org.org_id, wire.token,
                                             stage.org.ca_bundle, requests=requests(), on_order=handled.append,
                                             limit=1)
                except Exception as error:  # reported by the checks below
                    failures.append(f"{type(error).__name__}: {error}")

            thread, printed = stage.output.thread(erp, "demo-erp-subscriber")
            thread.start()
            step.note(f"subscribed after replay id {start} (Subscribe, CUSTOM); the demo watches the topic too")
        with run.step("Close the opportunity as Closed Won: the flow Closed_Won_Order_Request publishes "
                      "Order_Request__e after the commit") as step:
            wire.rest("PATCH", f"sobjects/Opportunity/{deal}", {"StageName": "Closed Won"})
            step.change(f"~ Opportunity {deal} StageName = Closed Won")
            event = watch.wait_for(lambda p: p.get("OpportunityId__c") == deal, stage.timeout)
            run.check(event is not None, f"no Order_Request__e for {deal} on {topic} within {stage.timeout:g} s"
                      + (f" ({watch.error})" if watch.error else ""))
            assert event is not None
            run.check(event.payload.get("AccountId__c") == account and event.payload.get("Amount__c") == 48000,
                      f"the event carries {event.payload}")
            step.event(topic, event.replay_id, {k: event.payload.get(k) for k in
                                                ("OpportunityId__c", "AccountId__c", "Amount__c", "EventUuid")})
        with run.step("The ERP creates the order and calls back over REST with its number") as step:
            described = run.wait(
                "the ERP's order number did not reach the opportunity",
                lambda: wire.get(f"sobjects/Opportunity/{deal}")["Description"],
                why=lambda: "; ".join(failures) or f"the ERP handled {len(handled)} order request(s)")
            run.check(re.fullmatch(r"ERP order SO-\d{5}", described or ""),
                      f"the opportunity's Description is {described!r}")
            run.check([o.get("OpportunityId__c") for o in handled] == [deal],
                      f"the ERP handled {[o.get('OpportunityId__c') for o in handled]}")
            step.change(f"~ Opportunity {deal} Description = {described}")
            for line in printed:
                step.note(line)
        with run.step("The flow Won_To_ERP also sends an outbound message; the ERP's listener acknowledges it") as step:
            def delivered() -> dict[str, Any] | None:
                notes = wire.get("/interlink/v1/outbound", limit=100)["notifications"]
                return next((n for n in notes if n.get("recordId") == deal and n.get("state") == "Delivered"), None)

            note = run.wait("the outbound message was not delivered", delivered,
                            why=lambda: str(next((n for n in wire.get("/interlink/v1/outbound", limit=100)[
                                "notifications"] if n.get("recordId") == deal), "no notification was queued")))
            step.change(f"notification {note['id']} ({note['definition']}) Delivered after {note['attempts']} "
                        "attempt(s)")
            seen = [line for line in stage.log_lines("listener") if note["id"] in line]
            run.check(seen, f"the listener did not log notification {note['id']}")
            step.notes.extend(seen)
    finally:
        stop.set()
        if watch is not None:
            watch.close()


# -- 3. Batch Data Synchronization ----------------------------------------------------------------------------

PROSPECTS = 2000  # the bulkThreshold of prospect-import: this many rows go through Bulk API 2.0


def _job_state(stage: Stage, job: str) -> Any:
    from interlink.middleware.store import MiddlewareStore

    with MiddlewareStore.open_url(f"sqlite:///{stage.org.data_dir / 'middleware.db'}") as store:
        runs = store.runs(job, limit=1)
        checkpoint = store.load_checkpoint(job)
    return (runs[0] if runs else None), (checkpoint.position if checkpoint is not None else None)


def _ingest_jobs(stage: Stage) -> dict[str, dict[str, Any]]:
    return {job["id"]: job for job in stage.wire.get("jobs/ingest")["records"]}


def _sync(stage: Stage, run: Run, step: Step, job: str, env: dict[str, str]) -> Any:
    done = stage.command("sync", "run", job, "--data-dir", str(stage.org.data_dir), "--project-dir",
                         str(stage.project), env=env)
    run.check(done.returncode == 0, f"interlink sync run {job} exited {done.returncode}: "
                                    f"{done.stderr.strip()[-600:]}")
    record, position = _job_state(stage, job)
    run.check(record is not None and record.status == "Succeeded", f"the last run of {job} is {record}")
    step.note(f"control record {job}: run {record.id} {record.status}, read {record.read}, written "
              f"{record.written}, error rows {record.dead}; restart point {position}")
    return record, position


def batch_sync(stage: Stage, run: Run) -> None:
    wire = stage.wire
    prospects, warehouse = stage.work / "prospects.db", stage.work / "warehouse.db"
    env = {"PROSPECTS_DB": str(prospects), "WAREHOUSE_DB": str(warehouse)}
    make_db = (sys.executable, str(stage.examples / "sync" / "make_source_db.py"))
    with run.step(f"The marketing database: {PROSPECTS} prospects (examples/sync/make_source_db.py)") as step:
        done = stage.command(str(prospects), "--rows", str(PROSPECTS), program=make_db)
        run.check(done.returncode == 0, f"make_source_db.py failed: {done.stderr[-400:]}")
        _record, position = _job_state(stage, "prospect-import")
        if position is not None:  # an org the demo ran on before: start the import afresh
            done = stage.command("sync", "reset", "prospect-import", "--data-dir", str(stage.org.data_dir),
                                 "--project-dir", str(stage.project))
            run.check(done.returncode == 0, f"interlink sync reset failed: {done.stderr[-400:]}")
            step.note(f"forgot the restart point {position} of an earlier demo run")
    with run.step("Nightly prospect import: interlink sync run prospect-import (SQL -> Leads by External_Id__c, "
                  "Bulk API 2.0)") as step:
        before = _ingest_jobs(stage)
        record, position = _sync(stage, run, step, "prospect-import", env)
        run.check((record.read, record.written, record.dead) == (PROSPECTS, PROSPECTS, 0),
                  f"expected {PROSPECTS} prospects read and written, got read {record.read}, written "
                  f"{record.written}, error rows {record.dead}")
        run.check(isinstance(position, dict) and position.get("id") == PROSPECTS,
                  f"the restart point should end at prospect {PROSPECTS}, it is {position}")
        leads = wire.rest("GET", "query", params={"q": "SELECT COUNT() FROM Lead WHERE External_Id__c LIKE 'P-%'"})
        run.check(leads["totalSize"] == PROSPECTS, f"the org has {leads['totalSize']} imported Leads, expected "
                                                   f"{PROSPECTS} (an upsert never duplicates)")
        step.change(f"{PROSPECTS} Leads upserted by External_Id__c (P-1 … P-{PROSPECTS}); the org has "
                    f"{leads['totalSize']}")
        new = [job for job_id, job in _ingest_jobs(stage).items() if job_id not in before]
        bulk = [job for job in new if job.get("object") == "Lead" and job.get("operation") == "upsert"]
        run.check(bulk and all(job.get("state") == "JobComplete" for job in bulk),
                  f"expected a completed Bulk API 2.0 upsert job on Lead, found {new}")
        for job in bulk:
            info = wire.get(f"jobs/ingest/{job['id']}")
            step.change(f"Bulk API 2.0 job {job['id']} (upsert Lead on External_Id__c) {info['state']}: "
                        f"{info.get('numberRecordsProcessed')} processed, {info.get('numberRecordsFailed')} failed")
        first_point = position
    with run.step("The next night: 5 prospects changed; only they are read (the restart point is the watermark)"
                  ) as step:
        done = stage.command(str(prospects), "--touch", "5", program=make_db)
        run.check(done.returncode == 0, f"make_source_db.py --touch failed: {done.stderr[-400:]}")
        record, position = _sync(stage, run, step, "prospect-import", env)
        run.check((record.read, record.written) == (5, 5),
                  f"expected the 5 changed prospects read and written, got {record.read} / {record.written}")
        run.check(position != first_point, f"the restart point did not move from {first_point}")
        changed = wire.query(f"SELECT External_Id__c, Rating FROM Lead WHERE External_Id__c IN "
                             f"({', '.join(repr(f'P-{n}') for n in range(PROSPECTS - 4, PROSPECTS + 1))})")
        run.check(len(changed) == 5 and {r["Rating"] for r in changed} == {"Hot"},
                  f"the changed Leads are {changed}")
        step.change(f"~ 5 Leads P-{PROSPECTS - 4} … P-{PROSPECTS}: Rating = Hot; restart point {first_point} -> "
                    f"{position}")
    with run.step("Weekly activity export: interlink sync run activity-export (Tasks -> the warehouse's activities "
                  "table; prospect-import runs first)") as step:
        lead = wire.query("SELECT Id FROM Lead WHERE External_Id__c = 'P-1'")[0]["Id"]
        made = wire.rest("POST", "composite/sobjects", {"allOrNone": True, "records": [
            {"attributes": {"type": "Task"}, "Subject": f"Demo call {n}", "Status": "Completed", "Priority": "Normal",
             "WhoId": lead} for n in (1, 2, 3)]})
        tasks = [r["id"] for r in made]
        run.check(all(r.get("success") for r in made), f"creating the Tasks failed: {made}")
        step.change(f"+ 3 Tasks {', '.join(tasks)} on Lead {lead}")
        before = _job_state(stage, "prospect-import")[0]
        record, _position = _sync(stage, run, step, "activity-export", env)
        again = _job_state(stage, "prospect-import")[0]
        run.check(again is not None and before is not None and again.id != before.id and again.read == 0,
                  "prospect-import (activity-export depends on it) should have run first and read nothing new")
        with sqlite3.connect(warehouse) as db:
            rows = db.execute(f"SELECT id, subject, status, is_deleted FROM activities WHERE id IN "
                              f"({', '.join('?' for _ in tasks)}) ORDER BY subject", tasks).fetchall()
            total = db.execute("SELECT COUNT(*) FROM activities").fetchone()[0]
        run.check([(r[1], r[2], r[3]) for r in rows] == [(f"Demo call {n}", "Completed", 0) for n in (1, 2, 3)],
                  f"the warehouse has {rows} for the demo's Tasks")
        step.change(f"warehouse {warehouse.name}: activities holds the 3 Tasks ({total} rows in all, "
                    f"{record.written} written by this run)")


# -- 4. Remote Call-In -------------------------------------------------------------------------------------------

PRINTERS = (("Demo printer 1st floor", 82.0, 90.0), ("Demo printer 2nd floor", 45.0, 35.0),
            ("Demo printer reception", 12.0, 70.0))


def _composite(account: str, contacts: list[dict[str, Any]]) -> dict[str, Any]:
    base = f"/services/data/v{API_VERSION}/sobjects"
    return {"allOrNone": True, "compositeRequest": [
        {"method": "POST", "url": f"{base}/Account", "referenceId": "account", "body": {"Name": account}},
        *({"method": "POST", "url": f"{base}/Contact", "referenceId": f"contact{n}",
           "body": {**contact, "AccountId": "@{account.id}"}} for n, contact in enumerate(contacts, start=1)),
        {"method": "POST", "url": f"{base}/Opportunity", "referenceId": "opportunity",
         "body": {"Name": f"{account}: printer fleet", "AccountId": "@{account.id}", "StageName": "Prospecting",
                  "CloseDate": _today(), "Amount": 12000}}]}


def call_in(stage: Stage, run: Run) -> None:
    wire = stage.wire
    name = f"Demo Print Shop {datetime.now(UTC):%H%M%S}"
    with run.step("Composite call-in: one POST /composite (allOrNone) creates an account, two contacts and an "
                  "opportunity, linked with @{account.id}") as step:
        body = _composite(name, [{"FirstName": "Ada", "LastName": "Lovelace", "Email": "ada@example.com"},
                                 {"FirstName": "Grace", "LastName": "Hopper", "Email": "grace@example.com"}])
        kinds = {r["referenceId"]: r["url"].rsplit("/", 1)[1] for r in body["compositeRequest"]}
        answer = wire.rest("POST", "composite", body)
        results = {r["referenceId"]: r for r in answer["compositeResponse"]}
        run.check(all(r["httpStatusCode"] == 201 for r in results.values()),
                  f"the subrequests answered {[(k, r['httpStatusCode'], r['body']) for k, r in results.items()]}")
        account = results["account"]["body"]["id"]
        for reference, result in results.items():
            step.change(f"+ {kinds[reference]} {result['body']['id']} (referenceId {reference})")
        (found,) = wire.query(f"SELECT Id, (SELECT Id FROM Contacts), (SELECT Id FROM Opportunities) FROM Account "
                              f"WHERE Id = '{account}'")
        contacts = (found.get("Contacts") or {}).get("records", [])
        deals = (found.get("Opportunities") or {}).get("records", [])
        run.check(len(contacts) == 2 and len(deals) == 1,
                  f"the account has {len(contacts)} contacts and {len(deals)} opportunities, expected 2 and 1")
    with run.step("All or none: the same call with a contact missing its LastName changes nothing") as step:
        failed = f"{name} (rolled back)"
        answer = wire.rest("POST", "composite", _composite(failed, [
            {"FirstName": "Ada", "LastName": "Lovelace"}, {"FirstName": "Nobody"}]))
        codes = {r["referenceId"]: r["httpStatusCode"] for r in answer["compositeResponse"]}
        run.check(codes.get("contact2") == 400 and all(code >= 400 for code in codes.values()),
                  f"expected every subrequest to fail, got {codes}")
        errors = {e.get("errorCode") for r in answer["compositeResponse"] for e in
                  (r["body"] if isinstance(r["body"], list) else [])}
        left = wire.rest("GET", "query", params={"q": f"SELECT COUNT() FROM Account WHERE Name = '{failed}'"})
        run.check(left["totalSize"] == 0, f"{left['totalSize']} account(s) named {failed!r} were kept")
        step.change(f"nothing: subrequests answered {codes} ({', '.join(sorted(e for e in errors if e))})")
    with run.step("The printers are Assets of the account (sObject Collections)") as step:
        made = wire.rest("POST", "composite/sobjects", {"allOrNone": True, "records": [
            {"attributes": {"type": "Asset"}, "Name": printer, "AccountId": account, "Status": "Installed",
             "SerialNumber": f"PRN-{n:03d}"} for n, (printer, _ink, _paper) in enumerate(PRINTERS, start=1)]})
        run.check(all(r.get("success") for r in made), f"creating the Assets failed: {made}")
        assets = {r["id"]: printer for r, printer in zip(made, PRINTERS, strict=True)}
        for asset_id, (printer, _ink, _paper) in assets.items():
            step.change(f"+ Asset {asset_id} Name = {printer}")
    with run.step("The printer management system (examples/printers/fleet.py) publishes Printer_Status__e over "
                  "the Pub/Sub API") as step:
        fleet = stage.example("printers/fleet.py")
        readings = [fleet.Reading(asset_id, ink, paper) for asset_id, (_n, ink, paper) in assets.items()]
        started = time.monotonic()
        published = fleet.publish_readings(stage.org.grpc_target, stage.org.org_id, stage.org.url, wire.token,
                                           stage.org.ca_bundle, readings)
        wire.record("gRPC", "Publish", f"/event/Printer_Status__e ({len(readings)} events)", "OK",
                    (time.monotonic() - started) * 1000)
        for item in published:
            step.event("/event/Printer_Status__e", item.replay_id, {
                "AssetId__c": item.reading.asset_id, "InkLevel__c": item.reading.ink,
                "PaperLevel__c": item.reading.paper})
    with run.step("The flow Printer_Status_Updates_Asset writes the levels onto each Asset") as step:
        ids = ", ".join(f"'{asset_id}'" for asset_id in assets)

        def updated() -> list[dict[str, Any]] | None:
            rows = wire.query(f"SELECT Id, Name, Ink_Level__c, Paper_Level__c, Status_Reported_At__c FROM Asset "
                              f"WHERE Id IN ({ids})")
            return rows if all(r["Status_Reported_At__c"] for r in rows) else None

        rows = run.wait("the Assets were not updated", updated)
        for row in rows:
            _name, ink, paper = assets[row["Id"]]
            run.check((row["Ink_Level__c"], row["Paper_Level__c"]) == (ink, paper),
                      f"Asset {row['Id']} has ink {row['Ink_Level__c']}, paper {row['Paper_Level__c']}; the printer "
                      f"reported {ink} and {paper}")
            step.change(f"~ Asset {row['Id']} Ink_Level__c = {ink:g}, Paper_Level__c = {paper:g}, "
                        f"Status_Reported_At__c = {row['Status_Reported_At__c']}")
    with run.step("...and orders ink for the printer below 30% (an Order for the asset's account)") as step:
        low = [asset_id for asset_id, (_n, ink, _p) in assets.items() if ink < 30]
        orders = run.wait("no ink Order was created", lambda: wire.query(
            f"SELECT Id, Name, Status, AccountId, Printer_Asset__c, Description FROM Order WHERE Printer_Asset__c "
            f"IN ({ids})"))
        order = _one(orders, "ink order for the demo's printers")
        run.check(order["Printer_Asset__c"] == low[0] and order["AccountId"] == account and order["Status"] == "Draft",
                  f"expected a Draft order for {low[0]} on account {account}, found {order}")
        step.change(f"+ Order {order['Id']} Name = {order['Name']}, Status = Draft, AccountId = {account}")
        step.note(order["Description"])


# -- 5. UI Update ------------------------------------------------------------------------------------------------


PROCESSOR_APP = "Demo Payment Processor"
AMOUNT = 120.5


def _console_login(stage: Stage, run: Run) -> dict[str, str]:
    """Log in to the console as the admin, as a browser does: the login form's CSRF cookie, then the form."""
    if not stage.password:
        raise ScenarioFailed(f"the console login needs {ADMIN}'s password, which the demo knows only for orgs it "
                             "created: run the demo on a new data directory")
    form = stage.wire.console.get("/console/login")
    stage.wire.record("HTTPS", "GET", "/console/login", form.status_code, form.elapsed.total_seconds() * 1000)
    csrf = stage.wire.console.cookies.get("il_login_csrf")
    run.check(form.status_code == 200 and csrf, f"the console's login page answered {form.status_code}")
    done = stage.wire.console.post("/console/login", data={"username": ADMIN, "password": stage.password,
                                                           "csrf": csrf or "", "next": "/console/"})
    stage.wire.record("HTTPS", "POST", "/console/login", done.status_code, done.elapsed.total_seconds() * 1000)
    session = stage.wire.console.cookies.get("il_console")
    run.check(done.status_code == 303 and session, f"the console login answered {done.status_code}")
    return {"il_console": str(session)}


def _processor_app(stage: Stage, run: Run) -> tuple[str, str]:
    """The connected app the payment processor logs in with (created once per org)."""
    args = ("--data-dir", str(stage.org.data_dir))
    made = stage.command("apps", "create", PROCESSOR_APP, "--run-as", ADMIN, *args)
    if made.returncode == 0:
        values = dict(line.split("=", 1) for line in made.stdout.splitlines() if "=" in line)
        return values["consumer_key"], values["consumer_secret"]
    run.check("already exists" in made.stderr, f"interlink apps create failed: {made.stderr.strip()[-400:]}")
    listed = stage.command("apps", "list", "--show-secrets", *args)  # an org the demo ran on before
    for line in listed.stdout.splitlines():
        name, _, rest = line.partition("\t")
        if name == PROCESSOR_APP:
            values = dict(part.split("=", 1) for part in rest.split("\t") if "=" in part)
            return values["consumer_key"], values["consumer_secret"]
    raise ScenarioFailed(f"the connected app {PROCESSOR_APP!r} exists but `interlink apps list` does not show it")


def ui_update(stage: Stage, run: Run) -> None:
    processor = stage.examples / "payments" / "processor.py"
    if not processor.is_file():
        raise ScenarioSkipped("the payment processor sample is not there yet (examples/payments/processor.py)")
    wire = stage.wire
    streams: list[ConsoleStream] = []
    try:
        with run.step("A customer calls about an unpaid invoice: an open case (REST)") as step:
            case_id = wire.rest("POST", "sobjects/Case", {
                "Subject": f"Demo: invoice of {AMOUNT:.2f} not paid yet", "Status": "New", "Origin": "Phone"})["id"]
            case = wire.get(f"sobjects/Case/{case_id}")
            run.check(case.get("Payment_Status__c") == "Unpaid", f"a new case should be Unpaid, it is {case}")
            step.change(f"+ Case {case_id} CaseNumber = {case['CaseNumber']}, Status = New, Payment_Status__c = "
                        "Unpaid")
        with run.step("The agent opens the case's live page in the console (/console/live/cases/ID and its event "
                      "stream)") as step:
            cookies = _console_login(stage, run)
            page = wire.console.get(f"/console/live/cases/{case_id}")
            wire.record("HTTPS", "GET", f"/console/live/cases/{case_id}", page.status_code,
                        page.elapsed.total_seconds() * 1000)
            run.check(page.status_code == 200 and case["CaseNumber"] in page.text,
                      f"the case page answered {page.status_code}")
            live = ConsoleStream(wire, f"/console/live/cases/{case_id}/stream", cookies, stage.timeout)
            streams.append(live)
            everyone = ConsoleStream(wire, "/console/stream/event/Payment_Received__e", cookies, stage.timeout)
            streams.append(everyone)
            step.note(f"the case page's stream starts at replay ids {live.ready(stage.timeout)} (payments, "
                      f"CaseChangeEvent); the payments stream at {everyone.ready(stage.timeout)}")
        with run.step("The payment processor (examples/payments/processor.py) logs in with OAuth 2.0 and publishes "
                      "Payment_Received__e over REST") as step:
            key, secret = _processor_app(stage, run)
            paid = stage.command("--data-dir", str(stage.org.data_dir), "--client-id", key, "--client-secret", secret,
                                 "pay", case_id, "--amount", f"{AMOUNT:.2f}", "--json",
                                 program=(sys.executable, str(processor)), secret=secret)
            run.check(paid.returncode == 0, f"the payment processor failed: {paid.stderr.strip()[-400:]}")
            payment = json.loads(paid.stdout.strip().splitlines()[-1])
            step.note(f"processor: {json.dumps(payment)}")
        with run.step("The open case page gets the payment at once, on its stream (no reload)") as step:
            def ours(data: dict[str, Any]) -> bool:
                return (data.get("payload") or {}).get("CaseId__c") == case_id

            shown = live.wait_for(lambda d: d.get("kind") == "payment" and ours(d), stage.timeout)
            run.check(shown is not None, f"the case page's stream showed no payment within {stage.timeout:g} s"
                      + (f" ({live.error})" if live.error else ""))
            assert shown is not None
            data = shown["data"]
            run.check(data["payload"].get("Amount__c") == AMOUNT and data["payload"].get("Status__c") == "Paid",
                      f"the page got {data['payload']}")
            step.event(data["topic"], int(data["replayId"]), {k: data["payload"].get(k) for k in
                                                              ("CaseId__c", "Amount__c", "Status__c", "EventUuid")})
            seen = everyone.wait_for(ours, stage.timeout)
            run.check(seen is not None and seen["data"]["replayId"] == data["replayId"],
                      "the console's payments stream (/console/stream/event/Payment_Received__e) did not deliver "
                      "the same event")
            step.note(f"/console/stream/event/Payment_Received__e delivered it too (SSE id {seen['id']})")
            change = live.wait_for(lambda d: d.get("kind") == "change" and "Payment_Status__c" in (
                ((d.get("payload") or {}).get("ChangeEventHeader") or {}).get("changedFields") or []), stage.timeout)
            run.check(change is not None, "the case page's stream showed no change of the case's payment status")
            assert change is not None
            header = change["data"]["payload"]["ChangeEventHeader"]
            step.event(change["data"]["topic"], int(change["data"]["replayId"]), {
                "changeType": header.get("changeType"), "recordIds": header.get("recordIds"),
                "changedFields": header.get("changedFields"), "by": change["data"].get("by")})
        with run.step("The flow Payment_Received_Updates_Case recorded the payment on the case") as step:
            after = wire.get(f"sobjects/Case/{case_id}")
            run.check((after.get("Payment_Status__c"), after.get("Payment_Amount__c")) == ("Paid", AMOUNT),
                      f"the case has Payment_Status__c {after.get('Payment_Status__c')!r}, Payment_Amount__c "
                      f"{after.get('Payment_Amount__c')!r}")
            step.change(f"~ Case {case_id} Payment_Status__c = Paid, Payment_Amount__c = {AMOUNT:.2f}")
    finally:
        for stream in streams:
            stream.close()


# -- 6. Data Virtualization ------------------------------------------------------------------------------------

CUSTOMER = "CUST-0007"


def virtualization(stage: Stage, run: Run) -> None:
    wire = stage.wire
    erp = stage.systems["erp"]
    with run.step(f"Give an account the ERP's customer number {CUSTOMER} (upsert on Customer_Number__c)") as step:
        wire.request("PATCH", f"sobjects/Account/Customer_Number__c/{CUSTOMER}", json={"Name": "Demo ERP Customer"})
        account = wire.query(f"SELECT Id FROM Account WHERE Customer_Number__c = '{CUSTOMER}'")[0]["Id"]
        step.change(f"Account {account} Name = Demo ERP Customer, Customer_Number__c = {CUSTOMER}")
    with run.step("The account's ERP orders, read live through SOQL (Order__x over OData 4.0), match the ERP's own "
                  "answer") as step:
        requests_before = wire.example("GET", f"{erp}/control/stats").json()["requests"]
        (row,) = wire.query(f"SELECT Name, (SELECT OrderNumber__c, Status__c, Amount__c FROM Orders__r ORDER BY "
                            f"OrderNumber__c) FROM Account WHERE Id = '{account}'")
        through_org = [(o["OrderNumber__c"], o["Status__c"], o["Amount__c"]) for o in
                       (row.get("Orders__r") or {}).get("records", [])]
        own = wire.example("GET", f"{erp}/odata/Orders", params={
            "$filter": f"CustomerNumber eq '{CUSTOMER}'", "$orderby": "OrderNumber"}).json()["value"]
        run.check(through_org and through_org == [(o["OrderNumber"], o["Status"], o["Amount"]) for o in own],
                  f"the org shows {through_org}, the ERP has {[(o['OrderNumber'], o['Status']) for o in own]}")
        stats = wire.example("GET", f"{erp}/control/stats").json()
        asked = stats["requests"] - requests_before - 1  # less the demo's own OData query
        run.check(asked >= 1, "the ERP got no request from the org: the orders did not come from it")
        step.change(f"{len(through_org)} orders of {CUSTOMER}: "
                    f"{', '.join(number for number, _s, _a in through_org)}")
        step.note(f"the org asked the ERP {asked} time(s); last: {_org_request(stats)}")
    with run.step("Live, not copied: an order entered in the ERP shows up in the org at once") as step:
        made = wire.example("POST", f"{erp}/odata/Orders", json={
            "CustomerNumber": CUSTOMER, "Amount": 149.5, "Currency": "EUR", "OrderDate": _today(),
            "Status": "Submitted", "Notes": "entered in the ERP by the demo",
            "Lines": [{"Sku": "INK-BLACK-XL", "Quantity": 2, "UnitPrice": 74.75}]})
        run.check(made.status_code == 201, f"the ERP refused the order: {made.status_code} {made.text[:300]}")
        number = made.json()["OrderNumber"]
        step.change(f"+ ERP order {number} (CustomerNumber {CUSTOMER}, 149.50 EUR, 1 line)")
        (order,) = wire.query(f"SELECT ExternalId, Status__c, Amount__c, Customer__r.Name, (SELECT Sku__c, "
                              f"Quantity__c FROM Lines__r) FROM Order__x WHERE OrderNumber__c = '{number}'")
        lines = [(line["Sku__c"], line["Quantity__c"]) for line in (order.get("Lines__r") or {}).get("records", [])]
        run.check(order["Amount__c"] == 149.5 and (order.get("Customer__r") or {}).get("Name") == "Demo ERP Customer"
                  and lines == [("INK-BLACK-XL", 2)], f"the org shows {order}")
        step.change(f"Order__x {order['ExternalId']}: Status__c = {order['Status__c']}, Amount__c = "
                    f"{order['Amount__c']}, Customer__r.Name = Demo ERP Customer, lines {lines}")


def _org_request(stats: dict[str, Any]) -> str:
    recent = [line for line in stats.get("recent", []) if "/control/" not in line]
    return recent[-2] if len(recent) > 1 else (recent[-1] if recent else "")


@dataclass(frozen=True)
class Scenario:
    pattern: str
    number: int
    title: str
    summary: str
    run: Callable[[Stage, Run], None]


SCENARIOS = (
    Scenario("request-reply", 1, "Request and Reply",
             "order activation creates a billing account and stores its number", request_reply),
    Scenario("fire-and-forget", 2, "Fire and Forget",
             "Closed Won opportunity -> platform event -> ERP order -> callback with the order number",
             fire_and_forget),
    Scenario("batch-sync", 3, "Batch Data Synchronization",
             "nightly prospect import (control table, Bulk API 2.0); weekly activity export to the warehouse",
             batch_sync),
    Scenario("call-in", 4, "Remote Call-In",
             "printers publish status events, a flow updates the Asset and orders ink; a composite call-in",
             call_in),
    Scenario("ui-update", 5, "UI Update Based on Data Changes", "a payment updates an open Case page live",
             ui_update),
    Scenario("virtualization", 6, "Data Virtualization",
             "ERP orders appear as external objects on the Account, queried live", virtualization),
)

__all__ = ["SCENARIOS", "Scenario", "Stage"]
