"""Fire and Forget end to end, with real clients against ``interlink up --sample-data``.

A sales rep closes an opportunity over REST. The sample flow ``Closed_Won_Order_Request`` publishes
``Order_Request__e`` after the commit. The example ERP (``examples/erp/subscriber.py``), subscribed over the Pub/Sub
API (gRPC + TLS, Avro), takes the request and calls back over REST to store its order number on the opportunity.
"""

from __future__ import annotations

import importlib.util
import ssl
import threading
import time
from pathlib import Path

import httpx
import pytest

from interlink.testing import live_server

pytestmark = pytest.mark.live

SUBSCRIBER = Path(__file__).resolve().parents[2] / "examples" / "erp" / "subscriber.py"


def test_a_won_deal_reaches_the_erp_which_calls_back(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("example_erp_subscriber", SUBSCRIBER)
    assert spec is not None and spec.loader is not None
    erp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(erp)
    with live_server(tmp_path / "org", extra_args=("--sample-data",)) as server:
        token = server.token()
        rest = httpx.Client(base_url=f"{server.url}/services/data/v66.0", verify=ssl.create_default_context(
            cafile=server.ca_bundle), headers={"Authorization": f"Bearer {token}"}, timeout=20)
        deal = rest.post("/sobjects/Opportunity", json={
            "Name": "Big deal", "StageName": "Negotiation/Review", "CloseDate": "2026-12-31", "Amount": 4200}).json()
        orders: list[dict[str, object]] = []
        thread = threading.Thread(target=erp.handle_orders, daemon=True, kwargs={
            "url": server.url, "grpc_target": server.grpc_target, "org_id": server.org_id, "token": token,
            "ca_bundle": server.ca_bundle, "on_order": orders.append, "limit": 1})
        thread.start()
        time.sleep(1.0)  # let the LATEST subscription attach before the event is published
        assert rest.patch(f"/sobjects/Opportunity/{deal['id']}", json={"StageName": "Closed Won"}).status_code == 204
        thread.join(20)
        assert not thread.is_alive(), "the ERP never received Order_Request__e"
        (order,) = orders
        assert order["OpportunityId__c"] == deal["id"] and order["Amount__c"] == 4200.0
        stored = rest.get(f"/sobjects/Opportunity/{deal['id']}", params={"fields": "Description"}).json()
        assert stored["Description"] == "ERP order SO-00001"
