"""External Services' typed outputs: answers coerced to the response schema, misfits refused, nested paths in
``on_success``, loops over an answer's array, and the describe of one action."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from interlink.app.org import Org
from interlink.callouts.services import parse_openapi
from interlink.callouts.typed import InvalidResponse, typed_answer
from interlink.testing import backend_org, rest_client

ITEM = {"type": "object", "required": ["id"], "properties": {
    "id": {"type": "string"}, "amount": {"type": "number"}, "due": {"type": "string", "format": "date-time"}}}
SPEC: dict[str, Any] = {
    "openapi": "3.0.3", "info": {"title": "Invoices", "version": "1"},
    "paths": {"/accounts/{accountId}/invoices": {"get": {
        "operationId": "listInvoices", "summary": "An account's invoices",
        "parameters": [{"name": "accountId", "in": "path", "required": True, "description": "The billing account",
                        "schema": {"type": "string"}}],
        "responses": {
            "200": {"description": "ok", "content": {"application/json": {"schema": {
                "type": "object", "required": ["account"],
                "properties": {
                    "account": {"type": "object", "properties": {
                        "number": {"type": "string", "description": "The account number"},
                        "opened": {"type": "string", "format": "date"}}},
                    "total": {"type": "integer", "format": "int64"},
                    "paid": {"type": "boolean"},
                    "status": {"type": "string", "enum": ["open", "closed"]},
                    "items": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}}}}}}},
            "404": {"description": "no such account"}}}}},
    "components": {"schemas": {"Item": ITEM}},
}
GOOD = {"account": {"number": 4711, "opened": "2024-02-29", "internal": "dropped"}, "total": "1200", "paid": "true",
        "status": "open", "secretField": "x",
        "items": [{"id": "INV-1", "amount": "99.5", "due": "2026-12-01T00:00:00Z"}, {"id": "INV-2", "amount": 3}]}


def operation() -> Any:
    return parse_openapi(SPEC, "spec")["listInvoices"]


def test_an_answer_is_coerced_to_its_schema_and_undeclared_properties_are_dropped() -> None:
    typed = typed_answer(operation(), 200, GOOD, "invoices.listInvoices")
    assert typed == {"account": {"number": "4711", "opened": "2024-02-29"}, "total": 1200, "paid": True,
                     "status": "open", "items": [{"id": "INV-1", "amount": 99.5, "due": "2026-12-01T00:00:00Z"},
                                                 {"id": "INV-2", "amount": 3}]}
    assert typed_answer(operation(), 404, {"anything": 1}, "x") == {"anything": 1}  # no schema: as it came


@pytest.mark.parametrize(("change", "message"), [
    ({"total": {"nested": 1}}, "total: expected an integer, got dict"),
    ({"account": None}, "account: required, missing"),
    ({"items": [{"amount": 1}]}, "items[0].id: required, missing"),
    ({"items": [{"id": "a", "due": "yesterday"}]}, "items[0].due: expected a date-time (ISO 8601), got 'yesterday'"),
    ({"account": {"opened": "2024-02-30"}}, "account.opened: expected a date (YYYY-MM-DD), got '2024-02-30'"),
    ({"status": "lost"}, "status: 'lost' is not one of ['open', 'closed']"),
    ({"paid": 3}, "paid: expected a boolean, got int"),
])
def test_a_misfit_is_an_error_naming_the_path(change: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidResponse) as raised:
        typed_answer(operation(), 200, {**GOOD, **change}, "invoices.listInvoices")
    assert raised.value.message == f"invoices.listInvoices: the 200 answer does not fit its schema: {message}"
    assert raised.value.error_code == "INVALID_RESPONSE"


class Invoices:
    def __init__(self) -> None:
        self.answer: Any = GOOD
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                data = json.dumps(service.answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


API_FLOW = """\
trigger: api
object: Account
actions:
  - external_service:
      name: Invoices
      service: invoices
      operation: listInvoices
      inputs: {accountId: "{!$Record.AccountNumber}"}
      on_success: {Description: "items[1].id", Site: account.number}
  - loop:
      collection: Invoices.items
      actions:
        - create: {object: Task, values: {Subject: "Invoice {!$Item.id}: {!$Item.amount}", WhatId: "{!$Record.Id}"}}
"""


@pytest.fixture
def org(tmp_path: Path) -> Iterator[Org]:
    server = Invoices()
    base = tmp_path / "project" / "metadata"
    for folder in ("namedCredentials", "externalServices", "flows"):
        (base / folder).mkdir(parents=True, exist_ok=True)
    (base / "namedCredentials" / "Billing.yaml").write_text(f"url: {server.url}\n")
    (base / "externalServices" / "invoices.yaml").write_text(yaml.safe_dump({"credential": "Billing", "spec": SPEC}))
    (base / "flows" / "Sync_Invoices.yaml").write_text(API_FLOW)
    with backend_org(tmp_path, "sqlite", {}, bulk_workers=0) as opened:
        opened.test_service = server  # type: ignore[attr-defined]
        yield opened
    server.server.shutdown()
    server.server.server_close()


BASE = "/services/data/v66.0/actions/custom/externalService"


def test_the_rest_action_answers_typed_values_and_refuses_a_misfit(org: Org) -> None:
    client = rest_client(org)
    (good,) = client.post(f"{BASE}/invoices.listInvoices", json={"inputs": [{"accountId": "A1"}]}).json()
    assert good["isSuccess"] is True
    assert good["outputValues"]["responseCode"] == 200
    assert good["outputValues"]["200"]["account"] == {"number": "4711", "opened": "2024-02-29"}
    assert "secretField" not in good["outputValues"]["200"]
    org.test_service.answer = {"account": {"number": "1"}, "total": "lots"}  # type: ignore[attr-defined]
    (bad,) = client.post(f"{BASE}/invoices.listInvoices", json={"inputs": [{"accountId": "A1"}]}).json()
    assert bad["isSuccess"] is False and bad["outputValues"] is None
    assert bad["errors"] == [{"statusCode": "INVALID_RESPONSE", "fields": [], "message":
                              "invoices.listInvoices: the 200 answer does not fit its schema: total: expected an "
                              "integer, got 'lots'"}]


def test_describe_lists_typed_inputs_and_outputs(org: Org) -> None:
    described = rest_client(org).get(f"{BASE}/invoices.listInvoices").json()
    assert described["name"] == "invoices.listInvoices" and described["type"] == "EXTERNALSERVICE"
    inputs = {i["name"]: (i["type"], i["required"], i["description"]) for i in described["inputs"]}
    assert inputs == {"accountId": ("STRING", True, "The billing account")}
    outputs = {o["name"]: (o["type"], o["required"], o["maxOccurs"]) for o in described["outputs"]}
    assert outputs["responseCode"] == ("INTEGER", False, 1)
    assert outputs["200"][0] == "APEX" and outputs["200.total"] == ("LONG", False, 1)
    assert outputs["200.account.opened"][0] == "DATE" and outputs["200.items"] == ("APEX", False, 2000)
    assert outputs["200.items[].id"] == ("STRING", True, 1) and outputs["200.items[].due"][0] == "DATETIME"
    assert "404" not in outputs  # no JSON schema: no typed output
    assert next(o for o in described["outputs"] if o["name"] == "200.account.number")["description"] == \
        "The account number"
    assert rest_client(org).get(f"{BASE}/invoices.nope").status_code == 400


def test_an_api_flow_maps_nested_paths_and_loops_over_the_answer(org: Org) -> None:
    context = org.admin_context()
    (account,) = org.records.create(context, "Account", [{"Name": "Acme", "AccountNumber": "A1"}])
    (result,) = rest_client(org).post("/services/data/v66.0/actions/custom/flow/Sync_Invoices",
                                      json={"inputs": [{"recordId": account.id}]}).json()
    assert result["isSuccess"] is True, result
    row = org.query.execute(f"SELECT Description, Site FROM Account WHERE Id = '{account.id}'", context).records[0]
    assert (row["Description"], row["Site"]) == ("INV-2", "4711")
    tasks = org.query.execute("SELECT Subject FROM Task ORDER BY Subject", context).records
    assert [t["Subject"] for t in tasks] == ["Invoice INV-1: 99.5", "Invoice INV-2: 3"]


QUEUED_FLOW = """\
object: Account
trigger: create
condition: "Type = 'Customer - Direct'"
actions:
  - external_service:
      service: invoices
      operation: listInvoices
      inputs: {accountId: "{!$Record.AccountNumber}"}
      on_success: {NumberOfEmployees: total, Site: account.number}
"""


def test_a_queued_call_from_a_record_flow_maps_the_typed_answer_and_refuses_a_misfit(tmp_path: Path) -> None:
    server = Invoices()
    base = tmp_path / "project" / "metadata"
    for folder in ("namedCredentials", "externalServices", "flows"):
        (base / folder).mkdir(parents=True, exist_ok=True)
    (base / "namedCredentials" / "Billing.yaml").write_text(f"url: {server.url}\n")
    (base / "externalServices" / "invoices.yaml").write_text(yaml.safe_dump({"credential": "Billing", "spec": SPEC}))
    (base / "flows" / "Invoices_On_Create.yaml").write_text(QUEUED_FLOW)
    try:
        with backend_org(tmp_path, "sqlite", {}, bulk_workers=0) as org:
            context = org.admin_context()

            def customer(name: str) -> str:
                (created,) = org.records.create(context, "Account", [
                    {"Name": name, "AccountNumber": "A1", "Type": "Customer - Direct"}])
                assert created.success, created.errors
                assert org.worker.run_once()  # the queued callout, delivered after commit
                return str(created.id)

            good = customer("Typed")
            row = org.query.execute(f"SELECT NumberOfEmployees, Site FROM Account WHERE Id = '{good}'",
                                    context).records[0]
            # "1200" (a string in the answer) is the schema's integer; 4711 (a number) its string.
            assert (row["NumberOfEmployees"], row["Site"]) == (1200, "4711")

            server.answer = {"account": {"number": "9"}, "total": "lots"}
            bad = customer("Misfit")
            row = org.query.execute(f"SELECT NumberOfEmployees, Site FROM Account WHERE Id = '{bad}'",
                                    context).records[0]
            assert (row["NumberOfEmployees"], row["Site"]) == (None, None)  # nothing of the misfit is stored
            dead = next(c for c in org.callouts.list() if c["recordId"] == bad)
            assert dead["state"] == "Dead"
            assert dead["lastError"] == ("invoices.listInvoices: the 200 answer does not fit its schema: total: "
                                         "expected an integer, got 'lots'")
    finally:
        server.server.shutdown()
        server.server.server_close()
