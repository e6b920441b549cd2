"""The examples/ remote systems and project work as examples/README.md says (so they cannot silently rot)."""

from __future__ import annotations

import importlib.util
import shutil
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from interlink.app.org import Org
from interlink.store.database import utcnow
from interlink.testing import local_org, rest_client

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example(relative: str) -> ModuleType:
    path = EXAMPLES / relative
    spec = importlib.util.spec_from_file_location(f"example_{path.stem}_{path.parent.name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def serve(server: Any) -> Any:
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def servers() -> Iterator[tuple[Any, Any]]:
    billing = serve(example("billing/service.py").make_server(0))
    listener = serve(example("outbound/listener.py").make_server(0, down_for=1))
    yield billing, listener
    for server in (billing, listener):
        server.shutdown()
        server.server_close()


@pytest.fixture
def org(tmp_path: Path, servers: tuple[Any, Any]) -> Iterator[Org]:
    billing, listener = servers
    project = tmp_path / "project"
    shutil.copytree(EXAMPLES / "project", project)
    credentials = project / "metadata" / "namedCredentials"
    for name, server, port in (("Billing", billing, 8701), ("ERP", listener, 8702)):
        path = credentials / f"{name}.yaml"
        path.write_text(path.read_text().replace(f":{port}/", f":{server.server_address[1]}/"))
    with local_org(tmp_path / "org", project_dir=project, sample_data=True, bulk_workers=0) as opened:
        yield opened


def order(org: Org) -> str:
    context = org.admin_context()
    (account,) = org.records.create(context, "Account", [{"Name": "Example Co"}])
    (created,) = org.records.create(context, "Order", [
        {"AccountId": account.id, "EffectiveDate": "2026-12-01", "Status": "Draft"}])
    return created.id  # type: ignore[return-value]


def field(org: Org, soql: str) -> dict[str, Any]:
    return org.query.execute(soql, org.admin_context()).records[0]


def test_request_and_reply_both_ways(org: Org, servers: tuple[Any, Any]) -> None:
    billing, _ = servers
    later = order(org)
    org.records.update(org.admin_context(), "Order", [{"Id": later, "Status": "Activated"}])
    while org.worker.run_once():
        pass
    assert field(org, f"SELECT Description FROM Order WHERE Id = '{later}'")["Description"] == "BA-0001"
    now = order(org)
    (result,) = rest_client(org).post("/services/data/v66.0/actions/custom/flow/Activate_Order_Now",
                                      json={"inputs": [{"recordId": now}]}).json()
    assert result["isSuccess"], result
    row = field(org, f"SELECT Status, Description FROM Order WHERE Id = '{now}'")
    assert (row["Status"], row["Description"]) == ("Activated", "BA-0002")
    orders = org.query.execute("SELECT OrderNumber FROM Order ORDER BY OrderNumber", org.admin_context()).records
    assert [a["name"] for a in billing.accounts] == [o["OrderNumber"] for o in orders]


def test_fire_and_forget_to_a_listener_that_was_down(org: Org, servers: tuple[Any, Any]) -> None:
    _, listener = servers
    context = org.admin_context()
    (deal,) = org.records.create(context, "Opportunity", [
        {"Name": "Example deal", "StageName": "Prospecting", "CloseDate": "2026-12-31", "Amount": 50}])
    org.records.update(context, "Opportunity", [{"Id": deal.id, "StageName": "Closed Won"}])
    assert org.worker.run_once()  # the listener is down: 503
    org.callouts.clock = lambda: utcnow() + timedelta(minutes=5)  # five minutes later: the retry is due
    while org.worker.run_once():
        pass
    ((_note_id, fields),) = listener.received
    assert fields["Id"] == deal.id and fields["StageName"] == "Closed Won"


def test_data_virtualization_with_the_example_erp(tmp_path: Path) -> None:
    """The example project's ERP data source: Order__x queried live, joined to Accounts by customer number."""
    erp = example("erp/odata_service.py")
    server, url = erp.serve_in_thread(erp.create_app(None, seed=120))
    try:
        project = tmp_path / "project"
        shutil.copytree(EXAMPLES / "project", project)
        source = project / "metadata" / "dataSources" / "ERP.yaml"
        source.write_text(source.read_text().replace("http://127.0.0.1:8703", url))
        with local_org(tmp_path / "org", project_dir=project, bulk_workers=0) as org:
            context = org.admin_context()
            org.records.create(context, "Account", [{"Name": "Example Customer", "Customer_Number__c": "CUST-0003"}])
            shipped = org.query.execute("SELECT OrderNumber__c, Amount__c, Customer__r.Name FROM Order__x WHERE "
                                        "CustomerNumber__c = 'CUST-0003' ORDER BY OrderNumber__c", context).records
            assert [r["OrderNumber__c"] for r in shipped] == ["SO-000002", "SO-000052", "SO-000102"]
            assert {r["Customer__r"]["Name"] for r in shipped} == {"Example Customer"}
            account = field(org, "SELECT Name, (SELECT OrderNumber__c FROM Orders__r) FROM Account "
                                 "WHERE Customer_Number__c = 'CUST-0003'")
            assert account["Orders__r"]["totalSize"] == 3
            lines = field(org, "SELECT ExternalId, (SELECT Sku__c, Quantity__c FROM Lines__r) FROM Order__x "
                               "WHERE ExternalId = 'SO-000002'")
            assert lines["Lines__r"]["totalSize"] >= 1
    finally:
        server.should_exit = True
