"""External Services: an OpenAPI spec registered as actions, called over REST and from a flow (Request and Reply)."""

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
from interlink.callouts.services import InvalidInputs, build_request, parse_openapi
from interlink.errors import MetadataError
from interlink.testing import backend_org, rest_client, run_cli

SPEC: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "Billing", "version": "1"},
    "paths": {
        "/accounts": {"post": {
            "operationId": "createAccount", "summary": "Open a billing account",
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/NewAccount"}}}},
            "responses": {"201": {"description": "created"}}}},
        "/accounts/{accountId}": {
            "parameters": [{"name": "accountId", "in": "path", "required": True, "schema": {"type": "string"}}],
            "get": {"operationId": "getAccount",
                    "parameters": [{"name": "expand", "in": "query", "schema": {"type": "boolean"}},
                                   {"name": "X-Tenant", "in": "header", "schema": {"type": "string"}}],
                    "responses": {"200": {"description": "ok"}}}},
    },
    "components": {"schemas": {"NewAccount": {
        "type": "object", "required": ["name"],
        "properties": {"name": {"type": "string", "minLength": 1},
                       "tier": {"type": "string", "enum": ["gold", "silver"], "nullable": True}}}}},
}


class Billing:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 201
        billing = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"null")
                billing.requests.append({"method": "POST", "path": self.path, "body": body,
                                         "key": self.headers.get("Idempotency-Key")})
                self._answer(billing.status, {"accountNumber": f"BA-{len(billing.requests):04d}"})

            def do_GET(self) -> None:
                billing.requests.append({"method": "GET", "path": self.path, "tenant": self.headers.get("X-Tenant")})
                self._answer(200, {"id": self.path.split("/")[-1].split("?")[0], "balance": 12.5})

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def billing() -> Iterator[Billing]:
    server = Billing()
    yield server
    server.server.shutdown()
    server.server.server_close()


FLOW = """\
object: Order
trigger: update
condition: "Status = 'Activated'"
when: changed_to_meet
actions:
  - external_service:
      service: billing
      operation: createAccount
      inputs: {body: {name: "{!$Record.OrderNumber}"}}
      on_success: {Description: accountNumber}
"""


def project(root: Path, billing: Billing, *, flow: bool = True) -> Path:
    base = root / "project"
    (base / "metadata" / "namedCredentials").mkdir(parents=True, exist_ok=True)
    (base / "metadata" / "namedCredentials" / "Billing.yaml").write_text(f"url: {billing.url}\n")
    spec = root / "billing.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    run_cli("services", "register", "billing", str(spec), "--credential", "Billing", "--project-dir", str(base))
    if flow:
        (base / "metadata" / "flows").mkdir(parents=True, exist_ok=True)
        (base / "metadata" / "flows" / "Activate_Order.yaml").write_text(FLOW)
    return base


@pytest.fixture
def org(tmp_path: Path, billing: Billing) -> Iterator[Org]:
    project(tmp_path, billing)
    with backend_org(tmp_path, "sqlite", {}, bulk_workers=0) as opened:
        yield opened


def test_register_and_list(tmp_path: Path, billing: Billing) -> None:
    base = project(tmp_path, billing, flow=False)
    assert (base / "metadata" / "externalServices" / "billing.yaml").is_file()
    listed = run_cli("services", "list", "--project-dir", str(base)).stdout.splitlines()
    assert listed == ["billing.createAccount\tPOST /accounts\t(body)",
                      "billing.getAccount\tGET /accounts/{accountId}\t(accountId, expand?, X-Tenant?)"]
    bad = run_cli("services", "register", "x", str(tmp_path / "billing.yaml"), "--credential", "Nope",
                  "--project-dir", str(base), check=False)
    assert bad.returncode == 2 and "'Nope' is not a named credential" in bad.stderr


def test_rest_actions_call_the_service_at_once(org: Org, billing: Billing) -> None:
    client = rest_client(org)
    base = "/services/data/v66.0/actions/custom/externalService"
    names = [a["name"] for a in client.get(base).json()["actions"]]
    assert names == ["billing.createAccount", "billing.getAccount"]
    answer = client.post(f"{base}/billing.createAccount", json={"inputs": [
        {"body": {"name": "Acme", "tier": None}}, {"body": {"tier": "bronze"}}]}).json()
    assert answer[0] == {"actionName": "billing.createAccount", "errors": None, "isSuccess": True,
                         "outputValues": {"responseCode": 201, "201": {"accountNumber": "BA-0001"}}, "version": 1}
    assert answer[1]["isSuccess"] is False and answer[1]["errors"][0]["statusCode"] == "INVALID_INPUT"
    assert len(billing.requests) == 1  # the bad input was never sent
    assert billing.requests[0]["key"]  # synchronous calls carry an idempotency key too
    got = client.post(f"{base}/billing.getAccount", json={"inputs": [
        {"accountId": "a/7", "expand": True, "X-Tenant": "t1"}]}).json()
    assert got[0]["outputValues"]["200"] == {"id": "a%2F7", "balance": 12.5}
    assert billing.requests[-1] == {"method": "GET", "path": "/api/accounts/a%2F7?expand=true", "tenant": "t1"}
    assert client.post(f"{base}/billing.nope", json={"inputs": [{}]}).status_code == 400


def test_a_flow_calls_the_service_and_stores_the_answer(org: Org, billing: Billing) -> None:
    context = org.admin_context()
    (account,) = org.records.create(context, "Account", [{"Name": "Acme"}])
    (order,) = org.records.create(context, "Order", [
        {"AccountId": account.id, "EffectiveDate": "2026-12-01", "Status": "Draft"}])
    org.records.update(context, "Order", [{"Id": order.id, "Status": "Activated"}])
    assert billing.requests == []
    assert org.worker.run_once()
    (sent,) = billing.requests
    row = org.query.execute(f"SELECT OrderNumber, Description FROM Order WHERE Id = '{order.id}'",
                            context).records[0]
    assert sent["body"] == {"name": row["OrderNumber"]}
    assert row["Description"] == "BA-0001"


def test_a_failing_service_leaves_the_order_unchanged(org: Org, billing: Billing) -> None:
    billing.status = 422
    context = org.admin_context()
    (account,) = org.records.create(context, "Account", [{"Name": "Acme"}])
    (order,) = org.records.create(context, "Order", [
        {"AccountId": account.id, "EffectiveDate": "2026-12-01", "Status": "Draft"}])
    org.records.update(context, "Order", [{"Id": order.id, "Status": "Activated"}])
    assert org.worker.run_once()
    (callout,) = org.callouts.list()
    assert callout["state"] == "Dead" and callout["lastError"] == "HTTP 422"
    assert callout["source"] == "flow Activate_Order (billing.createAccount)"
    row = org.query.execute(f"SELECT Description FROM Order WHERE Id = '{order.id}'", context).records[0]
    assert row["Description"] is None


def test_build_request_checks_inputs() -> None:
    ops = parse_openapi(SPEC, "spec")
    request = build_request(ops["getAccount"], {"accountId": "7", "expand": False})
    assert (request.method, request.path, request.body) == ("GET", "/accounts/7?expand=false", None)
    with pytest.raises(InvalidInputs, match="the input accountId is required"):
        build_request(ops["getAccount"], {})
    with pytest.raises(InvalidInputs, match="'name' is a required property"):
        build_request(ops["createAccount"], {"body": {}})
    with pytest.raises(InvalidInputs, match="body/tier: 'bronze' is not one of"):
        build_request(ops["createAccount"], {"body": {"name": "x", "tier": "bronze"}})
    with pytest.raises(InvalidInputs, match="unknown input"):
        build_request(ops["createAccount"], {"body": {"name": "x"}, "extra": 1})


def test_swagger_2_documents_are_read_too() -> None:
    ops = parse_openapi({"swagger": "2.0", "paths": {"/items/{id}": {"put": {
        "operationId": "putItem",
        "parameters": [{"name": "id", "in": "path", "required": True, "type": "integer"},
                       {"name": "item", "in": "body", "required": True, "schema": {"$ref": "#/definitions/Item"}}]}}},
        "definitions": {"Item": {"type": "object", "properties": {"qty": {"type": "integer"}}}}}, "s")
    request = build_request(ops["putItem"], {"id": 3, "body": {"qty": 2}})
    assert (request.method, request.path, request.body) == ("PUT", "/items/3", {"qty": 2})
    with pytest.raises(InvalidInputs):
        build_request(ops["putItem"], {"id": "three", "body": {"qty": 2}})


@pytest.mark.parametrize(("spec", "message"), [
    ({"openapi": "3.0.0", "paths": {"/a/{id}": {"get": {"operationId": "a"}}}}, "path parameter(s) id"),
    ({"openapi": "3.0.0", "paths": {"/a": {"post": {"requestBody": {"content": {"application/json": {
        "schema": {"$ref": "other.yaml#/X"}}}}}}}}, "only local $refs"),
    ({"openapi": "3.0.0", "paths": {}}, "no operations"),
    ({"swagger": "1.2", "paths": {}}, "only OpenAPI 3.x and Swagger 2.0"),
    ({"info": {}}, "not an OpenAPI document"),
])
def test_bad_specs_are_clear_errors(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(MetadataError, match=None) as caught:
        parse_openapi(spec, "spec.yaml")
    assert message in caught.value.message


API_FLOW = """\
trigger: api
object: Order
actions:
  - external_service:
      service: billing
      operation: createAccount
      inputs: {body: {name: "{!$Record.OrderNumber}"}}
      on_success: {Description: accountNumber}
  - update: {Status: Activated}
"""


def api_org(tmp_path: Path, billing: Billing, flow: str = API_FLOW) -> Any:
    base = project(tmp_path, billing, flow=False)
    (base / "metadata" / "flows").mkdir(parents=True, exist_ok=True)
    (base / "metadata" / "flows" / "Activate_Order_Now.yaml").write_text(flow)
    return backend_org(tmp_path, "sqlite", {}, bulk_workers=0)


def draft_order(org: Org) -> str:
    context = org.admin_context()
    (account,) = org.records.create(context, "Account", [{"Name": "Acme"}])
    (order,) = org.records.create(context, "Order", [
        {"AccountId": account.id, "EffectiveDate": "2026-12-01", "Status": "Draft"}])
    return order.id  # type: ignore[return-value]


def test_an_api_flow_waits_for_the_answer_and_saves_it_in_the_same_transaction(tmp_path: Path,
                                                                                billing: Billing) -> None:
    with api_org(tmp_path, billing) as org:
        order_id = draft_order(org)
        client = rest_client(org)
        base = "/services/data/v66.0/actions/custom/flow"
        assert [a["name"] for a in client.get(base).json()["actions"]] == ["Activate_Order_Now"]
        (result,) = client.post(f"{base}/Activate_Order_Now", json={"inputs": [{"recordId": order_id}]}).json()
        assert result["isSuccess"] is True and result["outputValues"] == {"Flow__InterviewStatus": "Finished"}
        row = org.query.execute(f"SELECT Status, Description FROM Order WHERE Id = '{order_id}'",
                                org.admin_context()).records[0]
        assert (row["Status"], row["Description"]) == ("Activated", "BA-0001")
        assert org.callouts.list() == []  # synchronous: nothing queued


def test_a_failing_service_leaves_the_order_as_it_was(tmp_path: Path, billing: Billing) -> None:
    billing.status = 500
    with api_org(tmp_path, billing) as org:
        order_id = draft_order(org)
        (result,) = rest_client(org).post("/services/data/v66.0/actions/custom/flow/Activate_Order_Now",
                                          json={"inputs": [{"recordId": order_id}]}).json()
        assert result["isSuccess"] is False
        (error,) = result["errors"]
        assert error["statusCode"] == "CANNOT_EXECUTE_FLOW_TRIGGER" and "HTTP 500" in error["message"]
        row = org.query.execute(f"SELECT Status, Description FROM Order WHERE Id = '{order_id}'",
                                org.admin_context()).records[0]
        assert (row["Status"], row["Description"]) == ("Draft", None)


def test_a_callout_after_a_change_is_refused_when_the_flow_loads(tmp_path: Path, billing: Billing) -> None:
    flow = API_FLOW.replace("actions:\n", "actions:\n  - update: {Description: first}\n")
    with pytest.raises(MetadataError) as caught, api_org(tmp_path, billing, flow):
        pass
    assert "a callout must come before any change" in caught.value.message


def test_an_api_flow_stops_past_two_minutes_of_callouts(tmp_path: Path, billing: Billing,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import interlink.automation.flows as flows

    monkeypatch.setattr(flows, "MAX_CALLOUT_MS", -1)  # any callout time is over this limit
    with api_org(tmp_path, billing) as org:
        order_id = draft_order(org)
        (result,) = rest_client(org).post("/services/data/v66.0/actions/custom/flow/Activate_Order_Now",
                                          json={"inputs": [{"recordId": order_id}]}).json()
        assert not result["isSuccess"] and "Maximum callout time exceeded" in result["errors"][0]["message"]
        row = org.query.execute(f"SELECT Status FROM Order WHERE Id = '{order_id}'", org.admin_context()).records[0]
        assert row["Status"] == "Draft"
