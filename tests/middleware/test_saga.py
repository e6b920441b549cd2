"""Sagas against a local stock/billing service (starlette under uvicorn on 127.0.0.1): the happy path, compensation in
reverse order, retries, a compensation that fails for good, a crash mid-step and the resume, idempotent starts, the
``saga`` pipeline sink and the ``interlink saga`` commands."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from typer.testing import CliRunner

from interlink.cli.main import app
from interlink.middleware.base import Delivery, Message, Source
from interlink.middleware.orgapi import RecordResult
from interlink.middleware.runtime import PipelineRunner
from interlink.middleware.saga import (
    SagaDefinition,
    SagaDefinitionError,
    SagaInstance,
    SagaRunner,
    SagaStep,
    list_sagas,
    load_saga_text,
)
from interlink.middleware.spec import Pipeline
from interlink.middleware.store import MiddlewareStore


@dataclass
class Service:
    """The ERP (stock reservations) and billing systems: records every call; ``script`` forces statuses."""

    calls: list[tuple[str, str, str | None, Any]] = field(default_factory=list)
    script: dict[str, list[int]] = field(default_factory=dict)  # "POST /invoices" -> statuses to answer first
    reservations: dict[str, dict[str, Any]] = field(default_factory=dict)
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def seen(self) -> list[str]:
        return [f"{method} {path}" for method, path, _key, _body in self.calls]

    def keys(self) -> list[str | None]:
        return [key for _method, _path, key, _body in self.calls]


def _app(service: Service) -> Starlette:
    async def handle(request: Request) -> Response:
        body = json.loads(await request.body() or b"null")
        path = request.url.path
        service.calls.append((request.method, path, request.headers.get("idempotency-key"), body))
        forced = service.script.get(f"{request.method} {path}")
        if forced:
            return JSONResponse({"error": "scripted"}, status_code=forced.pop(0))
        key = request.headers.get("idempotency-key") or ""
        if request.method == "POST" and path == "/reservations":
            reservation = service.reservations.setdefault(key, {"id": str(len(service.reservations) + 1), **body})
            return JSONResponse(reservation, status_code=201)
        if request.method == "DELETE" and path.startswith("/reservations/"):
            service.reservations = {k: v for k, v in service.reservations.items() if v["id"] != path.split("/")[-1]}
            return Response(status_code=204)
        if request.method == "POST" and path == "/invoices":
            invoice = service.invoices.setdefault(key, {"id": f"INV-{len(service.invoices) + 1}", **body})
            return JSONResponse(invoice, status_code=201)
        if request.method == "POST" and path.endswith("/void"):
            return JSONResponse({"voided": path.split("/")[2]})
        return JSONResponse({"error": "no route"}, status_code=404)

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    return Starlette(routes=[Route("/{path:path}", handle, methods=methods)])


@pytest.fixture(scope="module")
def server() -> Iterator[Service]:
    service = Service()
    uv = uvicorn.Server(uvicorn.Config(_app(service), host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started and time.monotonic() < deadline:
        time.sleep(0.01)
    service.port = uv.servers[0].sockets[0].getsockname()[1]
    yield service
    uv.should_exit = True
    thread.join(5)


@pytest.fixture
def service(server: Service) -> Service:
    server.calls.clear()
    server.script.clear()
    server.reservations.clear()
    server.invoices.clear()
    return server


class FakeOrg:
    """What org.* steps need of an OrgConnection: save and publish, one RecordResult per record."""

    def __init__(self, fail_with: str | None = None) -> None:
        self.saved: list[tuple[str, str, list[dict[str, Any]]]] = []
        self.fail_with = fail_with

    def save(self, operation: str, object_name: str, records: list[dict[str, Any]]) -> list[RecordResult]:
        self.saved.append((operation, object_name, records))
        if self.fail_with:
            return [RecordResult(False, errors=[{"statusCode": self.fail_with, "message": "no"}]) for _ in records]
        return [RecordResult(True, id=str(r.get("Id", "a01NEW"))) for r in records]

    def publish(self, event: str, payloads: list[dict[str, Any]]) -> list[RecordResult]:
        self.saved.append(("publish", event, payloads))
        return [RecordResult(True, id="e01") for _ in payloads]


SAGA = """\
name: order-activation
steps:
  - name: reserve-stock
    action: {{type: http, method: POST, url: "{url}/reservations", body: {{sku: "$.sku", qty: "$.qty"}},
              saveAs: reservation}}
    compensate: {{type: http, method: DELETE, url: "{url}/reservations/{{reservation.id}}"}}
  - name: bill
    action: {{type: http, method: POST, url: "{url}/invoices", body: {{order: "$.orderId", ref: "$sagaId"}},
              saveAs: invoice}}
    compensate: {{type: http, method: POST, url: "{url}/invoices/{{invoice.id}}/void"}}
  - name: mark-activated
    action: {{type: org.update, connection: default, object: Order, id: "$.orderId",
              values: {{Status: Activated, Invoice__c: "$.invoice.id"}}}}
retry: {{attempts: 3, backoff: 1s}}
"""

ORDER = {"sku": "SKU-1", "qty": 2, "orderId": "801A"}


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def store() -> Iterator[MiddlewareStore]:
    with MiddlewareStore.open_url("sqlite://") as opened:
        yield opened


@pytest.fixture
def clock() -> Clock:
    return Clock()


def runner_for(service: Service, store: MiddlewareStore, clock: Clock, org: FakeOrg | None = None,
               **options: Any) -> SagaRunner:
    definition = load_saga_text(SAGA.format(url=service.url))
    return SagaRunner(definition, store, {"default": org or FakeOrg()}, clock=clock, sleep=clock.sleep,
                      random=lambda: 1.0, **options)


def test_happy_path_saves_results_and_persists_every_step(service: Service, store: MiddlewareStore,
                                                         clock: Clock) -> None:
    org = FakeOrg()
    instance = runner_for(service, store, clock, org).start(ORDER, "order-1")
    assert instance.status == "Completed" and instance.error is None
    assert service.seen() == ["POST /reservations", "POST /invoices"]
    assert service.keys() == ["order-1:reserve-stock", "order-1:bill"]
    assert service.calls[1][3] == {"order": "801A", "ref": "order-1"}
    assert instance.data["reservation"] == {"id": "1", "sku": "SKU-1", "qty": 2}
    assert org.saved == [("update", "Order", [{"Id": "801A", "Status": "Activated", "Invoice__c": "INV-1"}])]
    [stored] = list_sagas(store)
    assert stored.status == "Completed" and stored.data == instance.data
    # Write-ahead: every step is recorded as started before it runs, then as ok.
    assert [(e["step"], e["outcome"]) for e in stored.history] == [
        ("reserve-stock", "started"), ("reserve-stock", "ok"), ("bill", "started"), ("bill", "ok"),
        ("mark-activated", "started"), ("mark-activated", "ok")]


def test_a_failing_third_step_compensates_two_then_one(service: Service, store: MiddlewareStore,
                                                      clock: Clock) -> None:
    instance = runner_for(service, store, clock, FakeOrg(fail_with="FIELD_CUSTOM_VALIDATION_EXCEPTION")).start(
        ORDER, "order-2")
    assert instance.status == "Compensated"
    assert service.seen() == ["POST /reservations", "POST /invoices", "POST /invoices/INV-1/void",
                              "DELETE /reservations/1"]
    assert service.keys()[2:] == ["order-2:bill:compensate", "order-2:reserve-stock:compensate"]
    assert instance.failed_step == "mark-activated" and instance.compensated == ["bill", "reserve-stock"]
    assert "FIELD_CUSTOM_VALIDATION_EXCEPTION" in str(instance.error)
    assert service.reservations == {}
    assert clock.slept == []  # a permanent failure is not retried


def test_a_retryable_failure_is_retried_with_backoff_then_succeeds(service: Service, store: MiddlewareStore,
                                                                   clock: Clock) -> None:
    service.script["POST /invoices"] = [503, 429]
    instance = runner_for(service, store, clock).start(ORDER, "order-3")
    assert instance.status == "Completed"
    assert service.seen() == ["POST /reservations"] + ["POST /invoices"] * 3
    assert clock.slept == [1.0, 2.0]  # exponential backoff (full jitter, random() fixed at 1 here)
    retries = [e for e in instance.history if e["outcome"] == "retry"]
    assert [(e["step"], e["attempt"]) for e in retries] == [("bill", 1), ("bill", 2)]
    assert "HTTP 503" in retries[0]["error"]


def test_a_step_that_keeps_failing_is_compensated_after_its_attempts(service: Service, store: MiddlewareStore,
                                                                     clock: Clock) -> None:
    service.script["POST /invoices"] = [500, 500, 500]
    instance = runner_for(service, store, clock).start(ORDER, "order-4")
    assert instance.status == "Compensated" and instance.compensated == ["reserve-stock"]
    assert "after 3 attempts" in str(instance.error)
    assert service.seen()[-1] == "DELETE /reservations/1"


def test_a_compensation_failing_for_good_ends_failed_with_the_error(service: Service, store: MiddlewareStore,
                                                                    clock: Clock) -> None:
    service.script["POST /invoices/INV-1/void"] = [409]
    runner = runner_for(service, store, clock, FakeOrg(fail_with="INVALID_STATUS"))
    instance = runner.start(ORDER, "order-5")
    assert instance.status == "Failed"
    assert instance.error is not None and instance.error.startswith("compensation of bill failed: HTTP 409")
    assert "step mark-activated failed" in instance.error
    assert instance.step_name == "bill"
    assert "DELETE /reservations/1" not in service.seen()  # it stops: the order of undoing matters
    assert runner.resume_all() == []  # Failed waits for a human...
    fixed = runner.resume("order-5")  # ...who fixed the cause and resumes it
    assert fixed.status == "Compensated" and fixed.compensated == ["bill", "reserve-stock"]
    assert str(fixed.error).startswith("step mark-activated failed: org.update Order: INVALID_STATUS")


class Killed(BaseException):
    """The process dies (kill -9): nothing after this point runs."""


def test_a_crash_mid_step_is_resumed_by_a_new_runner(service: Service, store: MiddlewareStore, clock: Clock) -> None:
    def kill_after_billing(instance: SagaInstance, step: str, phase: str, event: str) -> None:
        if (step, phase, event) == ("bill", "action", "executed"):
            raise Killed

    with pytest.raises(Killed):
        runner_for(service, store, clock, hook=kill_after_billing).start(ORDER, "order-6")
    [stored] = list_sagas(store)
    assert stored.status == "Running" and stored.step_name == "bill"
    assert stored.history[-1] == {"step": "bill", "phase": "action", "at": stored.history[-1]["at"],
                                  "outcome": "started"}

    org = FakeOrg()
    resumed = runner_for(service, store, clock, org).resume("order-6")
    assert resumed.status == "Completed"
    assert service.keys().count("order-6:bill") == 2  # step 2 ran again, with the same idempotency key...
    assert len(service.invoices) == 1  # ...so the billing system billed once
    assert service.keys().count("order-6:reserve-stock") == 1
    assert org.saved[0][2][0]["Invoice__c"] == "INV-1"


def test_a_crash_while_compensating_goes_on_compensating(service: Service, store: MiddlewareStore,
                                                         clock: Clock) -> None:
    def kill(instance: SagaInstance, step: str, phase: str, event: str) -> None:
        if (step, phase, event) == ("reserve-stock", "compensate", "started"):
            raise Killed

    with pytest.raises(Killed):
        runner_for(service, store, clock, FakeOrg(fail_with="INVALID"), hook=kill).start(ORDER, "order-7")
    assert list_sagas(store)[0].status == "Compensating"
    [resumed] = runner_for(service, store, clock).resume_all()
    assert resumed.status == "Compensated" and resumed.compensated == ["bill", "reserve-stock"]
    assert service.seen().count("POST /invoices/INV-1/void") == 1


def test_starting_an_existing_id_answers_it_without_running_again(service: Service, store: MiddlewareStore,
                                                                 clock: Clock) -> None:
    runner = runner_for(service, store, clock)
    first = runner.start(ORDER, "order-8")
    again = runner.start({"sku": "OTHER"}, "order-8")
    assert again.status == "Completed" and again.data == first.data
    assert len(service.calls) == 2


def test_python_definitions_and_python_steps(store: MiddlewareStore, clock: Clock) -> None:
    done: list[str] = []

    def reserve(data: dict[str, Any]) -> dict[str, Any]:
        done.append("reserve")
        return {"ref": f"R-{data['qty']}"}

    def release(data: dict[str, Any]) -> None:
        done.append(f"release {data['reservation']['ref']}")

    def fail(data: dict[str, Any]) -> None:
        raise ValueError("ledger closed")

    definition = SagaDefinition("py", [SagaStep("reserve", reserve, release, save_as="reservation"),
                                       SagaStep("post", fail)], retry={"attempts": 2, "backoff": "0s"})
    instance = SagaRunner(definition, store, clock=clock, sleep=clock.sleep).start({"qty": 3})
    assert instance.status == "Compensated" and done == ["reserve", "release R-3"]
    assert "ledger closed (after 2 attempts)" in str(instance.error)


def test_definition_errors_name_the_key() -> None:
    with pytest.raises(SagaDefinitionError, match=r"steps\[0\].action.type: one of http"):
        load_saga_text("name: x\nsteps:\n  - {name: a, action: {type: ftp}}\n")
    with pytest.raises(SagaDefinitionError, match=r"steps\[0\].action.body.sku: bad expression"):
        load_saga_text("name: x\nsteps:\n  - {name: a, action: {type: http, url: 'http://x', body: {sku: '$.('}}}\n")
    with pytest.raises(SagaDefinitionError, match="unique name"):
        load_saga_text("name: x\nsteps:\n  - {name: a, action: {type: python, function: 'm:f'}}\n"
                       "  - {name: a, action: {type: python, function: 'm:f'}}\n")


# -- the saga sink in a pipeline, and the CLI on a temporary project ------------------------------------------------

class ListSource(Source):
    def __init__(self, messages: list[Message]) -> None:
        self.messages = messages

    def read(self, max_messages: int, timeout: float) -> list[Message]:
        batch, self.messages = self.messages[:max_messages], self.messages[max_messages:]
        self.exhausted = not self.messages
        return batch


@pytest.fixture
def project(tmp_path: Path, service: Service) -> Path:
    folder = tmp_path / "project"
    (folder / "sagas").mkdir(parents=True)
    (folder / "sagas" / "order-activation.yaml").write_text(
        SAGA.format(url=service.url).replace(
            "{type: org.update, connection: default, object: Order, id: \"$.orderId\",\n"
            "              values: {Status: Activated, Invoice__c: \"$.invoice.id\"}}",
            "{type: python, function: \"activation:activate\", saveAs: activation}"))
    (folder / "sagas" / "activation.py").write_text(
        "def activate(data):\n"
        "    if data.get('reject'):\n"
        "        from interlink.middleware.base import PermanentError\n"
        "        raise PermanentError('order is on hold')\n"
        "    return {'activated': data['orderId']}\n")
    return folder


def test_the_saga_sink_runs_one_saga_per_message(project: Path, service: Service, store: MiddlewareStore) -> None:
    messages = [Message(body=dict(ORDER), id="m-1"), Message(body={**ORDER, "reject": True}, id="m-2"),
                Message(body=dict(ORDER), id="m-1")]  # a redelivery: the saga does not run twice
    deliveries: list[Delivery] = []

    pipeline = Pipeline(name="activations", source=ListSource(messages), sink={"type": "saga",
                                                                                "saga": "order-activation"},
                        retry={"attempts": 1, "backoff": "0s"})
    runner = PipelineRunner(pipeline, store, project_dir=project)
    built = runner.build()
    sink = built.sinks[None].sink
    original = sink.write

    def recording(batch: list[Message]) -> list[Delivery]:
        results = original(batch)
        deliveries.extend(results)
        return results

    sink.write = recording  # type: ignore[method-assign]
    report = runner.run(once=True, idle_timeout=0.1)
    assert report.status == "Succeeded" and report.written == 3 and report.dead_lettered == 0
    assert all(d.ok for d in deliveries)
    assert deliveries[0].detail["status"] == "Completed"
    assert deliveries[1].detail == {"saga": "m-2", "name": "order-activation", "status": "Compensated",
                                    "failedStep": "mark-activated", "compensated": ["bill", "reserve-stock"],
                                    "error": "step mark-activated failed: order is on hold"}
    assert service.keys().count("m-1:reserve-stock") == 1
    assert {s.id: s.status for s in list_sagas(store)} == {"m-1": "Completed", "m-2": "Compensated"}


def cli(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, (result.output, result.exception)
    return result.output


def test_cli_start_status_resume(project: Path, tmp_path: Path, service: Service,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("INTERLINK_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("COLUMNS", "250")
    common = ["--project-dir", str(project), "--data-dir", str(tmp_path / "data")]
    shown = json.loads(cli("saga", "start", "order-activation", "--input", json.dumps(ORDER), "--id", "c-1", *common))
    assert shown["status"] == "Completed" and shown["data"]["activation"] == {"activated": "801A"}
    again = json.loads(cli("saga", "start", "order-activation", "--input", "{}", "--id", "c-1", *common))
    assert again["history"] == shown["history"]  # the same instance, not a second run
    failed = json.loads(cli("saga", "start", "order-activation", "--input", json.dumps({**ORDER, "reject": 1}),
                            "--id", "c-2", *common, code=1))
    assert failed["status"] == "Compensated"
    assert "no saga named nope" in cli("saga", "start", "nope", *common, code=2)

    # An instance interrupted mid-step (as a crash leaves it) is picked up by `resume --all`.
    with MiddlewareStore.open_url(f"sqlite:///{tmp_path / 'data' / 'middleware.db'}") as store:
        definition = load_saga_text((project / "sagas" / "order-activation.yaml").read_text())

        def kill(instance: SagaInstance, step: str, phase: str, event: str) -> None:
            if event == "started" and step == "bill":
                raise Killed

        with pytest.raises(Killed):
            SagaRunner(definition, store, project_dir=project, hook=kill).start(ORDER, "c-3")

    listing = cli("saga", "status", "--data-dir", str(tmp_path / "data"))
    assert "c-1" in listing and "Completed" in listing and "c-3" in listing and "Running" in listing
    assert "bill" in listing
    detail = cli("saga", "status", "c-2", "--data-dir", str(tmp_path / "data"))
    assert "compensate" in detail and "order is on hold" in detail
    assert "c-3 order-activation: Completed" in cli("saga", "resume", "--all", *common)
    assert "no interrupted sagas" in cli("saga", "resume", "--all", *common)
    assert "c-1 order-activation: Completed" in cli("saga", "resume", "c-1", *common)
    assert "name one instance ID, or --all" in cli("saga", "resume", *common, code=2)

    (project / "pipelines").mkdir()
    (project / "pipelines" / "activations.yaml").write_text(
        "source: {type: schedule, cron: '* * * * *'}\nsink: {type: saga, saga: order-activation}\n")
    (project / "pipelines" / "typo.yaml").write_text(
        "source: {type: schedule, cron: '* * * * *'}\nsink: {type: saga, saga: order-activaton}\n")
    output = cli("pipelines", "validate", *common, code=2)
    assert "ok     activations" in output
    assert "typo.yaml:2: sink.saga: no saga named 'order-activaton'" in output
