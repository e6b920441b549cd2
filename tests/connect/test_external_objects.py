"""External objects end to end in-process: metadata, SOQL pushdown, lookups, REST reads and writes, errors.

The data source is a custom Python adapter (tests/connect/memory_adapter.py) loaded from the project's
``adapters/`` folder, exactly as a user's adapter is.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from interlink.connect.sources import adapter_class, parse_source
from interlink.connect.sync import write_specs
from interlink.errors import ExternalObjectError, ExternalObjectUnsupported, InvalidFieldError
from interlink.soql.external import AllOf, Compare, In
from interlink.testing import backend_org, rest_client

HERE = Path(__file__).parent

SOURCE = """\
type: python
adapter: memory:MemoryAdapter
writable: true
searchable: true
options: {seed: 40}
"""

ACCOUNT = """\
fields:
  - {name: Customer_Number__c, type: text, length: 40, externalId: true, unique: true}
"""


def _project(root: Path) -> Path:
    project = root / "project"
    (project / "metadata" / "dataSources").mkdir(parents=True)
    (project / "metadata" / "objects").mkdir(parents=True)
    (project / "adapters").mkdir()
    shutil.copy(HERE / "memory_adapter.py", project / "adapters" / "memory.py")
    (project / "metadata" / "dataSources" / "Warehouse.yaml").write_text(SOURCE)
    (project / "metadata" / "objects" / "Account.yaml").write_text(ACCOUNT)
    return project


@pytest.fixture
def org(tmp_path: Path, store_backend: str) -> Iterator[Any]:
    project = _project(tmp_path)
    source = parse_source("Warehouse", yaml.safe_load(SOURCE), "Warehouse.yaml")
    write_specs(project, source, adapter_class(source, project)(source).sync())  # type: ignore[call-arg]
    path = project / "metadata" / "objects" / "Shipments__x.yaml"
    spec = yaml.safe_load(path.read_text())
    customer = next(f for f in spec["fields"] if f["name"] == "Customer__c")
    customer.update(type="indirectLookup", referenceTo="Account", referenceTargetField="Customer_Number__c",
                    relationshipName="Customer__r", childRelationshipName="Shipments")
    customer.pop("length")
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    account_ref = next(f for f in spec["fields"] if f["name"] == "AccountRef__c")
    account_ref.update(type="lookup", referenceTo="Account", relationshipName="AccountRef__r",
                       childRelationshipName="ShipmentsById")
    account_ref.pop("length")
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    path = project / "metadata" / "objects" / "Parcels__x.yaml"
    spec = yaml.safe_load(path.read_text())
    shipment = next(f for f in spec["fields"] if f["name"] == "Shipment__c")
    shipment.update(type="externalLookup", referenceTo="Shipments__x", relationshipName="Shipment__r",
                    childRelationshipName="Parcels")
    shipment.pop("length")
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    with backend_org(tmp_path, store_backend, unavailable=pytest.skip) as opened:
        admin = opened.admin_context()
        opened.records.create(admin, "Account", [
            {"Name": f"Customer {n}", "Customer_Number__c": f"CUST-{n:04d}"} for n in range(1, 4)])
        yield opened


def _adapter(org: Any) -> Any:
    return org.external.connection("Warehouse")


def _query(org: Any, soql: str, **kwargs: Any) -> Any:
    return org.query.execute(soql, org.admin_context(), **kwargs)


def test_sync_writes_an_external_object_with_mapped_fields(org: Any) -> None:
    obj = org.store.schema.object("Shipments__x")
    assert obj.is_external and obj.data_source == "Warehouse" and obj.external_name == "Shipments"
    assert obj.key_prefix.startswith("x")
    assert [f.name for f in obj.fields[:3]] == ["Id", "ExternalId", "DisplayUrl"]
    assert obj.field("ExternalId").external_name == "ShipmentNo"
    weight = obj.field("Weight__c")
    assert (weight.type.value, weight.precision, weight.scale, weight.external_name) == ("double", 10, 2, "Weight")
    assert obj.field("Notes__c").type.value == "textarea"
    assert obj.field("Customer__c").reference_target_field == "Customer_Number__c"
    # describe shows it as the platform does
    described = rest_client(org).get("/services/data/v66.0/sobjects/Shipments__x/describe").json()
    assert described["name"] == "Shipments__x" and described["custom"] is True
    customer = next(f for f in described["fields"] if f["name"] == "Customer__c")
    assert customer["referenceTargetField"] == "Customer_Number__c" and customer["referenceTo"] == ["Account"]


def test_resync_keeps_relationship_edits(org: Any, tmp_path: Path) -> None:
    """Syncing again adds nothing and keeps the indirect lookup a person made of a plain column."""
    project = tmp_path / "project"
    result = write_specs(project, org.external.source("Warehouse"), _adapter(org).sync())
    assert result.added_fields["Shipments__x"] == []
    assert "indirectLookup" in (project / "metadata" / "objects" / "Shipments__x.yaml").read_text()


def test_filters_sorts_and_paging_are_pushed_down(org: Any) -> None:
    page = _query(org, "SELECT ExternalId, Weight__c, Pieces__c FROM Shipments__x WHERE Pieces__c >= 3 AND "
                       "(Customer__c = 'CUST-0002' OR Customer__c LIKE '%0003') ORDER BY Weight__c DESC LIMIT 5")
    sent = _adapter(org).requests[-1]
    assert sent.table == "Shipments"
    assert sent.top == 5 and sent.skip == 0 and sent.order_by[0].column == "Weight" and sent.order_by[0].descending
    assert isinstance(sent.filter, AllOf)
    assert Compare("Pieces", "ge", 3) in sent.filter.items
    weights = [r["Weight__c"] for r in page.records]
    assert weights == sorted(weights, reverse=True) and len(weights) == 5
    assert all(r["Pieces__c"] >= 3 for r in page.records)
    record = page.records[0]
    assert record["attributes"]["type"] == "Shipments__x"
    assert record["attributes"]["url"].startswith("/services/data/v66.0/sobjects/Shipments__x/x")


def test_client_driven_paging_with_query_more(org: Any) -> None:
    page = _query(org, "SELECT ExternalId FROM Shipments__x ORDER BY ExternalId", batch_size=15)
    assert page.total_size == 40 and not page.done and len(page.records) == 15
    seen = [r["ExternalId"] for r in page.records]
    while not page.done:
        page = org.query.fetch_more(page.locator, org.admin_context())
        seen += [r["ExternalId"] for r in page.records]
    assert seen == [f"SH-{n:04d}" for n in range(1, 41)]
    skips = [r.skip for r in _adapter(org).requests[-3:]]
    assert skips == [0, 15, 30]


def test_count_and_offset(org: Any) -> None:
    assert _query(org, "SELECT COUNT() FROM Shipments__x WHERE Fragile__c = true").total_size == 13
    assert _adapter(org).requests[-1].count_only
    page = _query(org, "SELECT ExternalId FROM Shipments__x ORDER BY ExternalId LIMIT 3 OFFSET 10")
    assert [r["ExternalId"] for r in page.records] == ["SH-0011", "SH-0012", "SH-0013"]


def test_relative_dates_become_ranges(org: Any) -> None:
    org.query.today = lambda: __import__("datetime").date(2025, 1, 11)
    page = _query(org, "SELECT ExternalId FROM Shipments__x WHERE ShippedOn__c = LAST_N_DAYS:3 ORDER BY ExternalId")
    assert [r["ExternalId"] for r in page.records] == ["SH-0007", "SH-0008", "SH-0009", "SH-0010"]


def test_ids_are_stable_and_filterable(org: Any) -> None:
    first = _query(org, "SELECT Id, ExternalId FROM Shipments__x WHERE ExternalId = 'SH-0004'").records[0]
    again = _query(org, "SELECT Id FROM Shipments__x WHERE ExternalId = 'SH-0004'").records[0]
    assert first["Id"] == again["Id"] and len(first["Id"]) == 18
    by_id = _query(org, f"SELECT ExternalId FROM Shipments__x WHERE Id = '{first['Id']}'").records
    assert [r["ExternalId"] for r in by_id] == ["SH-0004"]
    sent = _adapter(org).requests[-1].filter
    assert sent == Compare("ShipmentNo", "eq", "SH-0004")


def test_indirect_lookup_parent_fields_and_children(org: Any) -> None:
    page = _query(org, "SELECT ExternalId, Customer__r.Name FROM Shipments__x WHERE ExternalId IN "
                       "('SH-0001', 'SH-0004') ORDER BY ExternalId")
    assert [r["Customer__r"]["Name"] if r["Customer__r"] else None for r in page.records] == [
        "Customer 2", None]  # SH-0004 belongs to CUST-0005, which has no Account
    assert page.records[0]["Customer__r"]["attributes"]["type"] == "Account"
    accounts = _query(org, "SELECT Name, (SELECT ExternalId FROM Shipments__r ORDER BY ExternalId) FROM Account "
                           "WHERE Customer_Number__c != null ORDER BY Name")
    blocks = {r["Name"]: r["Shipments__r"] for r in accounts.records}
    assert blocks["Customer 2"]["totalSize"] == 8
    assert [r["ExternalId"] for r in blocks["Customer 2"]["records"]][:2] == ["SH-0001", "SH-0006"]
    sent = _adapter(org).requests[-1].filter
    assert isinstance(sent, In) and sent.column == "Customer" and set(sent.values) == {
        "CUST-0001", "CUST-0002", "CUST-0003"}


@pytest.mark.parametrize(("soql", "error"), [
    ("SELECT ExternalId FROM Shipments__x WHERE Notes__c LIKE 'a%b'", ExternalObjectUnsupported),
    ("SELECT ExternalId FROM Shipments__x WHERE Customer__r.Name = 'x'", ExternalObjectUnsupported),
    ("SELECT Customer__c, COUNT(Id) FROM Shipments__x GROUP BY Customer__c", ExternalObjectUnsupported),
    ("SELECT ExternalId FROM Shipments__x WHERE Pieces__c = '3'", InvalidFieldError),
    ("SELECT Nope__c FROM Shipments__x", InvalidFieldError),
])
def test_what_cannot_be_pushed_down_is_refused(org: Any, soql: str, error: type[Exception]) -> None:
    before = len(_adapter(org).requests)
    with pytest.raises(error):
        _query(org, soql)
    assert len(_adapter(org).requests) == before  # refused before anything was sent


def test_source_failure_names_the_source_and_spares_stored_objects(org: Any) -> None:
    _adapter(org).down = True
    with pytest.raises(ExternalObjectError, match="Warehouse"):
        _query(org, "SELECT ExternalId FROM Shipments__x")
    assert _query(org, "SELECT COUNT() FROM Account").total_size >= 3
    response = rest_client(org).get("/services/data/v66.0/query", params={"q": "SELECT ExternalId FROM Shipments__x"})
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "EXTERNAL_OBJECT_EXCEPTION"
    assert "Warehouse" in response.json()[0]["message"]


def test_rest_reads_and_writes_go_to_the_source(org: Any) -> None:
    client = rest_client(org)
    base = "/services/data/v66.0/sobjects/Shipments__x"
    created = client.post(base, json={"ExternalId": "SH-9000", "Customer__c": "CUST-0001", "Pieces__c": 2,
                                      "Weight__c": 1.5})
    assert created.status_code == 201, created.text
    record_id = created.json()["id"]
    assert _adapter(org).rows["SH-9000"]["Pieces"] == 2
    got = client.get(f"{base}/{record_id}")
    assert got.status_code == 200 and got.json()["ExternalId"] == "SH-9000" and got.json()["Pieces__c"] == 2
    changed = client.patch(f"{base}/{record_id}", json={"Pieces__c": 5})
    assert changed.status_code == 204, changed.text
    assert _adapter(org).rows["SH-9000"]["Pieces"] == 5
    bad = client.patch(f"{base}/{record_id}", json={"Pieces__c": "many"})
    assert bad.status_code == 400 and _adapter(org).rows["SH-9000"]["Pieces"] == 5
    assert client.delete(f"{base}/{record_id}").status_code == 204
    assert "SH-9000" not in _adapter(org).rows
    assert client.get(f"{base}/{record_id}").status_code == 404


def test_hourly_callout_allocation_is_counted(org: Any) -> None:
    before = org.external.usage.used()
    _query(org, "SELECT ExternalId FROM Shipments__x LIMIT 1")
    assert org.external.usage.used() == before + 1
    limits = rest_client(org).get("/services/data/v66.0/limits").json()
    assert limits["HourlyODataCallout"]["Max"] == 20_000


def test_sosl_searches_the_source(org: Any) -> None:
    client = rest_client(org)
    found = client.get("/services/data/v66.0/search", params={
        "q": "FIND {note 12} RETURNING Shipments__x(ExternalId, Pieces__c ORDER BY ExternalId), Account(Name)"})
    assert found.status_code == 200, found.text
    records = found.json()["searchRecords"]
    assert [r["ExternalId"] for r in records if r["attributes"]["type"] == "Shipments__x"] == ["SH-0012"]
    assert _adapter(org).requests[-1].filter == In("ShipmentNo", ("SH-0012",))


def test_graphql_reads_external_objects(org: Any) -> None:
    query = """query { uiapi { query { Shipments__x(first: 3, where: {Pieces__c: {gt: 4}},
                orderBy: {ExternalId: {order: ASC}}) {
                edges { node { ExternalId { value } Pieces__c { value } } } totalCount } } } }"""
    answer = rest_client(org).post("/services/data/v66.0/graphql", json={"query": query}).json()
    assert "errors" not in answer or not answer["errors"], answer
    edges = answer["data"]["uiapi"]["query"]["Shipments__x"]["edges"]
    assert [e["node"]["Pieces__c"]["value"] for e in edges] == [5, 6, 5]



def test_external_lookup_between_external_objects(org: Any) -> None:
    """Parcels__x rows point at their Shipments__x by its ExternalId: both directions query."""
    page = _query(org, "SELECT ExternalId, Shipment__r.Weight__c FROM Parcels__x ORDER BY ExternalId")
    weights = {r["ExternalId"]: r["Shipment__r"]["Weight__c"] for r in page.records}
    assert weights["P-1"] == 0.5 and weights["P-2"] == 0.75  # SH-0002 and SH-0003
    shipments = _query(org, "SELECT ExternalId, (SELECT ExternalId FROM Parcels__r ORDER BY ExternalId) "
                            "FROM Shipments__x WHERE ExternalId = 'SH-0002'")
    assert [r["ExternalId"] for r in shipments.records[0]["Parcels__r"]["records"]] == ["P-1", "P-4"]


def test_lookup_by_id_to_a_stored_parent(org: Any) -> None:
    (account,) = _query(org, "SELECT Id FROM Account WHERE Customer_Number__c = 'CUST-0001'").records
    for number in ("SH-0003", "SH-0009"):
        _adapter(org).rows[number]["AccountRef"] = account["Id"]
    rows = _query(org, "SELECT ExternalId, AccountRef__r.Name FROM Shipments__x WHERE AccountRef__c != null "
                       "ORDER BY ExternalId").records
    assert [(r["ExternalId"], r["AccountRef__r"]["Name"]) for r in rows] == [
        ("SH-0003", "Customer 1"), ("SH-0009", "Customer 1")]
    parent = _query(org, "SELECT Name, (SELECT ExternalId FROM ShipmentsById__r) FROM Account "
                         f"WHERE Id = '{account['Id']}'").records[0]
    assert parent["ShipmentsById__r"]["totalSize"] == 2


def test_cache_seconds_trades_freshness_for_speed(org: Any) -> None:
    org.external.sources["warehouse"].cache_seconds = 60
    soql = "SELECT ExternalId, Pieces__c FROM Shipments__x WHERE ExternalId = 'SH-0005'"
    before = len(_adapter(org).requests)
    assert _query(org, soql).records[0]["Pieces__c"] == 5
    _adapter(org).rows["SH-0005"]["Pieces"] = 6  # changed at the source, behind the org's back
    assert _query(org, soql).records[0]["Pieces__c"] == 5  # still the cached answer
    assert len(_adapter(org).requests) == before + 1
    record_id = _query(org, "SELECT Id FROM Shipments__x WHERE ExternalId = 'SH-0004'").records[0]["Id"]
    org.records.update(org.admin_context(), "Shipments__x", [{"Id": record_id, "Pieces__c": 1}])
    assert _query(org, soql).records[0]["Pieces__c"] == 6  # a write through the org clears the cache


def test_rest_by_external_id_and_upsert(org: Any) -> None:
    client = rest_client(org)
    base = "/services/data/v66.0/sobjects/Shipments__x"
    got = client.get(f"{base}/ExternalId/SH-0007")
    assert got.status_code == 200, got.text
    assert got.json()["Pieces__c"] == 0 and got.json()["attributes"]["type"] == "Shipments__x"
    assert client.get(f"{base}/ExternalId/SH-9999").status_code == 404
    updated = client.patch(f"{base}/ExternalId/SH-0007", json={"Pieces__c": 3})
    assert updated.status_code in (200, 204), updated.text
    assert _adapter(org).rows["SH-0007"]["Pieces"] == 3
    created = client.patch(f"{base}/ExternalId/SH-7777", json={"Pieces__c": 1, "Customer__c": "CUST-0001"})
    assert created.status_code == 201, created.text
    assert _adapter(org).rows["SH-7777"]["Pieces"] == 1


@pytest.mark.parametrize(("method", "path", "body", "code"), [
    ("GET", "/services/data/v66.0/query?explain=SELECT+ExternalId+FROM+Shipments__x", None,
     "EXTERNAL_OBJECT_UNSUPPORTED_EXCEPTION"),
    ("GET", "/services/data/v66.0/queryAll?q=SELECT+ExternalId+FROM+Shipments__x", None,
     "EXTERNAL_OBJECT_UNSUPPORTED_EXCEPTION"),
    ("GET", "/services/data/v66.0/sobjects/Shipments__x/updated/?start={start}&end={end}", None, "INVALID_TYPE"),
    ("POST", "/services/data/v66.0/jobs/ingest", {"object": "Shipments__x", "operation": "insert"},
     "INVALIDENTITY"),
    ("GET", "/services/data/v66.0/query?q=SELECT+Id,(SELECT+Name+FROM+Contacts)+FROM+Shipments__x", None,
     "MALFORMED_QUERY"),
])
def test_surfaces_refuse_what_external_objects_cannot_do(org: Any, method: str, path: str, body: Any,
                                                          code: str) -> None:
    now = datetime.now(UTC).replace(microsecond=0, tzinfo=None)
    path = path.format(start=(now - timedelta(days=1)).isoformat() + "Z", end=now.isoformat() + "Z")
    response = rest_client(org).request(method, path, json=body)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()[0]["errorCode"] == code, response.text


def test_external_lookup_on_a_stored_object(org: Any, tmp_path: Path) -> None:
    """Account.Last_Shipment__c holds a shipment's ExternalId: the shipment lists its Accounts; a path from Account
    into the shipment's fields is refused (the stored query cannot join a remote table)."""
    spec = {"fields": [{"name": "Customer_Number__c", "type": "text", "length": 40, "externalId": True,
                        "unique": True},
                       {"name": "Last_Shipment__c", "type": "externalLookup", "referenceTo": "Shipments__x",
                        "relationshipName": "Last_Shipment__r", "childRelationshipName": "Accounts"}]}
    (tmp_path / "project" / "metadata" / "objects" / "Account.yaml").write_text(yaml.safe_dump(spec))
    org.store.deploy(org.load_metadata().schema)
    (saved,) = org.records.create(org.admin_context(), "Account", [{"Name": "Has a shipment",
                                                                    "Last_Shipment__c": "SH-0001"}])
    assert saved.success, saved.errors
    row = _query(org, f"SELECT Last_Shipment__c FROM Account WHERE Id = '{saved.id}'").records[0]
    assert row["Last_Shipment__c"] == "SH-0001"
    with pytest.raises(ExternalObjectUnsupported):
        _query(org, "SELECT Name, Last_Shipment__r.Weight__c FROM Account")
    shipment = _query(org, "SELECT ExternalId, (SELECT Name FROM Accounts__r ORDER BY Name) FROM Shipments__x "
                           "WHERE ExternalId IN ('SH-0001', 'SH-0002') ORDER BY ExternalId").records
    assert [r["Name"] for r in shipment[0]["Accounts__r"]["records"]] == ["Has a shipment"]
    assert "Last_Shipment__c" not in shipment[0]["Accounts__r"]["records"][0]
    assert shipment[1]["Accounts__r"] is None
