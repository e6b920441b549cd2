"""examples/project/pipelines/erp-orders.yaml: Fire and Forget through the middleware — a Closed Won opportunity's
Order_Request__e becomes an ERP order (the example OData ERP) and a callback, as a saga; a callback that cannot
be made undoes the ERP order."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import httpx
import pytest

from interlink.middleware.orgapi import OrgConnection
from interlink.testing import live_server, run_cli

pytestmark = pytest.mark.live

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _erp() -> object:
    path = EXAMPLES / "erp" / "odata_service.py"
    spec = importlib.util.spec_from_file_location("example_erp_for_pipeline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_won_opportunity_becomes_an_erp_order_and_a_failed_callback_is_compensated(tmp_path: Path) -> None:
    erp = _erp()
    server, erp_url = erp.serve_in_thread(erp.create_app(None, seed=0))  # type: ignore[attr-defined]
    data_dir = tmp_path / "org"
    shutil.copytree(EXAMPLES / "project", data_dir)
    saga = data_dir / "sagas" / "erp-order.yaml"
    saga.write_text(saga.read_text().replace("http://127.0.0.1:8703", erp_url))
    try:
        with live_server(data_dir, extra_args=("--sample-data",)) as org_server:
            org = OrgConnection.from_server_file(data_dir / "run" / "server.json", org_server.token())
            try:
                account = org.post("sobjects/Account", {"Name": "Pipeline Co"})["id"]
                opportunity = org.post("sobjects/Opportunity", {"Name": "Big deal", "AccountId": account,
                                                                "StageName": "Prospecting", "Amount": 1200,
                                                                "CloseDate": "2026-12-31"})["id"]
                org.patch(f"sobjects/Opportunity/{opportunity}", {"StageName": "Closed Won"})
                # an event for an opportunity that does not exist: its callback fails for good
                org.post("sobjects/Order_Request__e", {"OpportunityId__c": "006000000000000AAA",
                                                       "AccountId__c": account, "Amount__c": 5})
                args = ("--data-dir", str(data_dir), "--project-dir", str(data_dir))
                ran = run_cli("pipelines", "run", "erp-orders", "--once", "--idle-timeout", "3", *args,
                              check=False, timeout=120)
                assert ran.returncode == 0, ran.stderr
                described = org.get(f"sobjects/Opportunity/{opportunity}")["Description"]
                assert described.startswith("ERP order SO-")
                number = described.removeprefix("ERP order ")
                orders = httpx.get(f"{erp_url}/odata/Orders").json()["value"]  # the sample data's won deals too
                ours = [(o["OrderNumber"], o["Status"], o["Notes"]) for o in orders if o["CustomerNumber"] == account]
                assert ours == [(number, "Submitted", f"Opportunity {opportunity}")]  # the failed one was undone
                assert not [o for o in orders if "006000000000000AAA" in (o["Notes"] or "")]
                status = run_cli("saga", "status", "--data-dir", str(data_dir))
                assert "Completed" in status.stdout and "Compensated" in status.stdout
            finally:
                org.close()
    finally:
        server.should_exit = True
