"""Data Virtualization with real clients: the example ERP (OData 4.0) as external objects of a live
``interlink up``, read and written with the unpatched simple-salesforce over TLS; and one Interlink org
virtualizing another's Accounts through the cross-org adapter.
"""

from __future__ import annotations

import importlib.util
import json
import ssl
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest
import requests
import yaml
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceError

from interlink.connect.sync import write_specs
from interlink.testing import LiveServer, live_server, local_org, run_cli

pytestmark = pytest.mark.live

ROOT = Path(__file__).resolve().parents[2]


def _erp_module() -> ModuleType:
    path = ROOT / "examples" / "erp" / "odata_service.py"
    spec = importlib.util.spec_from_file_location("example_erp_odata_live", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _session(server: LiveServer) -> requests.Session:
    session = requests.Session()
    session.verify = server.ca_bundle
    session.trust_env = False
    return session


@pytest.fixture(scope="module")
def erp() -> Iterator[str]:
    module = _erp_module()
    server, url = module.serve_in_thread(module.create_app(None, seed=300, max_page_size=120))
    yield url
    server.should_exit = True


@pytest.fixture(scope="module")
def org_server(tmp_path_factory: pytest.TempPathFactory, erp: str) -> Iterator[LiveServer]:
    data_dir = tmp_path_factory.mktemp("virtual")
    (data_dir / "metadata" / "dataSources").mkdir(parents=True)
    (data_dir / "metadata" / "objects").mkdir(parents=True)
    (data_dir / "metadata" / "dataSources" / "ERP.yaml").write_text(yaml.safe_dump({
        "label": "ERP orders", "type": "odata4", "url": f"{erp}/odata", "paging": "server", "pageSize": 200,
        "writable": True, "searchable": True, "timeout": 10}))
    (data_dir / "metadata" / "objects" / "Account.yaml").write_text(yaml.safe_dump({"fields": [
        {"name": "Customer_Number__c", "type": "text", "length": 40, "externalId": True, "unique": True}]}))
    with local_org(data_dir, project_dir=data_dir) as org:
        org.records.create(org.admin_context(), "Account", [
            {"Name": f"ERP customer {n}", "Customer_Number__c": f"CUST-{n:04d}"} for n in (1, 2, 3)])
    with live_server(data_dir) as server:
        env = {"INTERLINK_PROJECT_DIR": str(data_dir)}
        synced = run_cli("connect", "sync", "ERP", "--as", "Orders=Order", "--as", "OrderLines=OrderLine",
                         "--data-dir", str(data_dir), env=env)
        assert synced.returncode == 0, synced.stderr
        path = data_dir / "metadata" / "objects" / "Order__x.yaml"
        spec = yaml.safe_load(path.read_text())
        customer = next(f for f in spec["fields"] if f["name"] == "CustomerNumber__c")
        customer.update(type="indirectLookup", referenceTo="Account", referenceTargetField="Customer_Number__c",
                        relationshipName="Customer__r", childRelationshipName="Orders")
        customer.pop("length", None)
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        deployed = run_cli("deploy", "--data-dir", str(data_dir), env=env)
        assert deployed.returncode == 0, deployed.stderr
        yield server


@pytest.fixture(scope="module")
def sf(org_server: LiveServer) -> Salesforce:
    return Salesforce(instance_url=org_server.url, session_id=org_server.token(), session=_session(org_server))


def _wait_for_schema(sf: Salesforce) -> None:
    import time

    deadline = time.monotonic() + 10
    while True:
        try:
            sf.query("SELECT Id, Customer__r.Name FROM Order__x LIMIT 1")
            return
        except SalesforceError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_filtered_paged_query_goes_live_to_the_erp(sf: Salesforce, erp: str) -> None:
    _wait_for_schema(sf)
    described = sf.Order__x.describe()
    assert described["custom"] and {f["name"] for f in described["fields"]} >= {
        "Id", "ExternalId", "DisplayUrl", "OrderNumber__c", "Amount__c", "OrderDate__c"}
    result = sf.query_all("SELECT ExternalId, OrderNumber__c, Amount__c, OrderDate__c, Status__c FROM Order__x "
                          "WHERE Status__c IN ('Shipped', 'Delivered') AND Amount__c > 100 ORDER BY OrderNumber__c")
    answer = httpx.get(f"{erp}/odata/Orders", params={
        "$filter": "Status in ('Shipped','Delivered') and Amount gt 100", "$orderby": "OrderNumber",
        "$select": "OrderNumber"}).json()
    direct = answer["value"]
    while "@odata.nextLink" in answer:
        answer = httpx.get(answer["@odata.nextLink"]).json()
        direct += answer["value"]
    assert [r["OrderNumber__c"] for r in result["records"]] == [r["OrderNumber"] for r in direct]
    assert result["totalSize"] == len(direct) > 120  # more than one ERP page: nextLinks were followed
    first = result["records"][0]
    assert first["attributes"]["type"] == "Order__x" and first["ExternalId"] == first["OrderNumber__c"]
    assert isinstance(first["Amount__c"], float) and len(first["OrderDate__c"]) == 10
    stats = httpx.get(f"{erp}/control/stats").json()
    assert any("%24filter" in u or "$filter" in u for u in stats["recent"])


def test_query_more_cursors_page_through_external_rows(sf: Salesforce, org_server: LiveServer) -> None:
    _wait_for_schema(sf)
    headers = {"Authorization": f"Bearer {org_server.token()}", "Sforce-Query-Options": "batchSize=200"}
    verify = ssl.create_default_context(cafile=org_server.ca_bundle)
    with httpx.Client(verify=verify, base_url=org_server.url, headers=headers) as client:
        page = client.get("/services/data/v66.0/query", params={
            "q": "SELECT OrderNumber__c FROM Order__x ORDER BY OrderNumber__c"}).json()
        numbers = [r["OrderNumber__c"] for r in page["records"]]
        # server-driven paging: the ERP's pages (120 rows) set the batches, never more than asked for
        assert page["totalSize"] == 300 and not page["done"] and len(numbers) == 120
        while not page["done"]:
            page = client.get(page["nextRecordsUrl"]).json()
            numbers += [r["OrderNumber__c"] for r in page["records"]]
    assert numbers == sorted(numbers) and len(set(numbers)) == 300


def test_indirect_lookup_from_account_and_back(sf: Salesforce) -> None:
    _wait_for_schema(sf)
    accounts = sf.query("SELECT Name, (SELECT OrderNumber__c FROM Orders__r ORDER BY OrderNumber__c) FROM Account "
                        "WHERE Customer_Number__c = 'CUST-0002'")["records"]
    orders = accounts[0]["Orders__r"]["records"]
    assert len(orders) == 6 and orders[0]["OrderNumber__c"] == "SO-000001"  # orders 1, 51, 101, ... of 300
    order = sf.query("SELECT Customer__r.Name, CustomerNumber__c FROM Order__x WHERE OrderNumber__c = 'SO-000001'")
    assert order["records"][0]["Customer__r"]["Name"] == "ERP customer 2"


def test_update_an_external_order_changes_the_erp(sf: Salesforce, erp: str) -> None:
    _wait_for_schema(sf)
    found = sf.query("SELECT Id, Notes__c FROM Order__x WHERE OrderNumber__c = 'SO-000007'")["records"][0]
    assert sf.Order__x.update(found["Id"], {"Notes__c": "expedite, customer called"}) == 204
    remote = httpx.get(f"{erp}/odata/Orders('SO-000007')").json()
    assert remote["Notes"] == "expedite, customer called"
    assert sf.Order__x.get(found["Id"])["Notes__c"] == "expedite, customer called"


def test_erp_down_is_a_clear_error_and_accounts_still_work(sf: Salesforce, erp: str) -> None:
    _wait_for_schema(sf)
    httpx.post(f"{erp}/control/down")
    try:
        with pytest.raises(SalesforceError) as failure:
            sf.query("SELECT OrderNumber__c FROM Order__x LIMIT 5")
        error = failure.value.content[0]  # type: ignore[attr-defined]
        assert error["errorCode"] == "EXTERNAL_OBJECT_EXCEPTION" and "ERP" in error["message"]
        assert sf.query("SELECT COUNT() FROM Account WHERE Customer_Number__c != null")["totalSize"] == 3
    finally:
        httpx.post(f"{erp}/control/up")


def test_one_org_virtualizes_another_orgs_accounts(tmp_path: Path, live: LiveServer,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The session's sample org is the remote; a second, in-process org reads its Accounts as Account__x."""
    remote = Salesforce(instance_url=live.url, session_id=live.token(), session=_session(live))
    marker = remote.Account.create({"Name": "Virtualized Inc", "AccountNumber": "VIRT-1"})["id"]
    project = tmp_path / "project"
    (project / "metadata" / "dataSources").mkdir(parents=True)
    (project / "metadata" / "namedCredentials").mkdir(parents=True)
    (project / "metadata" / "namedCredentials" / "SalesOrg.yaml").write_text(yaml.safe_dump({
        "url": live.url, "auth": {"protocol": "bearer", "token": "${REMOTE_ORG_TOKEN}"},
        "tls": {"caBundle": live.ca_bundle}}))
    (project / "metadata" / "dataSources" / "SalesOrg.yaml").write_text(yaml.safe_dump({
        "type": "crossorg", "namedCredential": "SalesOrg", "paging": "server", "writable": False,
        "options": {"objects": ["Account"]}}))
    monkeypatch.setenv("REMOTE_ORG_TOKEN", live.token())
    try:
        with local_org(tmp_path / "org", project_dir=project) as first:
            write_specs(project, first.external.source("SalesOrg"), first.external.connection("SalesOrg").sync())
        with local_org(tmp_path / "org", project_dir=project) as org:
            page = org.query.execute("SELECT ExternalId, Name__c, AccountNumber__c FROM Account__x WHERE "
                                     "AccountNumber__c = 'VIRT-1'", org.admin_context())
            assert [(r["ExternalId"], r["Name__c"]) for r in page.records] == [(marker, "Virtualized Inc")]
            count = org.query.execute("SELECT COUNT() FROM Account__x", org.admin_context()).total_size
            assert count == remote.query("SELECT COUNT() FROM Account")["totalSize"]
            assert json.dumps(page.records)  # rows are plain JSON
    finally:
        remote.Account.delete(marker)


@pytest.mark.parametrize("version", ["odata4", "odata2"])
def test_an_org_consumes_another_orgs_odata_producer(tmp_path: Path, live: LiveServer, version: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Both halves at once: the live sample org's /odata/v4 and /odata/v2 producers as external data sources of a
    second org, through its OData 4.0 and 2.0 adapters."""
    remote = Salesforce(instance_url=live.url, session_id=live.token(), session=_session(live))
    tag = f"Odata {version} {uuid.uuid4().hex[:8]}"
    made = [remote.Contact.create({"LastName": f"{tag} {n}", "Email": f"c{n}@odata.example"})["id"]
            for n in range(3)]
    project = tmp_path / "project"
    (project / "metadata" / "dataSources").mkdir(parents=True)
    (project / "metadata" / "namedCredentials").mkdir(parents=True)
    (project / "metadata" / "namedCredentials" / "Sample.yaml").write_text(yaml.safe_dump({
        "url": live.url, "auth": {"protocol": "bearer", "token": "${SAMPLE_ORG_TOKEN}"},
        "tls": {"caBundle": live.ca_bundle}}))
    path = "odata/v4" if version == "odata4" else "odata/v2"
    (project / "metadata" / "dataSources" / "Sample.yaml").write_text(yaml.safe_dump({
        "type": version, "namedCredential": "Sample", "url": path, "paging": "server", "pageSize": 2,
        "writable": True}))
    monkeypatch.setenv("SAMPLE_ORG_TOKEN", live.token())
    try:
        with local_org(tmp_path / "org", project_dir=project) as first:
            tables = first.external.connection("Sample").sync()
            assert {"Account", "Contact", "Opportunity"} <= {t.name for t in tables}
            write_specs(project, first.external.source("Sample"), tables, ["Contact"])
        with local_org(tmp_path / "org", project_dir=project) as org:
            context = org.admin_context()
            page = org.query.execute(f"SELECT Id, ExternalId, LastName__c, Email__c FROM Contact__x WHERE LastName__c "
                                     f"LIKE '{tag}%' ORDER BY LastName__c", context, batch_size=2)
            records = page.records
            while not page.done:
                assert page.locator is not None
                page = org.query.fetch_more(page.locator, context)
                records += page.records
            assert [r["ExternalId"] for r in records] == made
            assert [r["LastName__c"] for r in records] == [f"{tag} {n}" for n in range(3)]
            assert org.query.execute(f"SELECT COUNT() FROM Contact__x WHERE LastName__c LIKE '{tag}%'",
                                     context).total_size == 3
            (changed,) = org.records.update(context, "Contact__x", [{"Id": records[0]["Id"], "Title__c": "CTO"}])
            assert changed.success, changed.errors
            assert remote.Contact.get(made[0])["Title"] == "CTO"
    finally:
        for record_id in made:
            remote.Contact.delete(record_id)
