"""Console pages over external objects: list views pushed down to the data source, related lists across stored
and external objects, edits sent to the source through the records service, and the source's errors shown."""

from __future__ import annotations

import html
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from console_helpers import login  # type: ignore[import-not-found]
from starlette.testclient import TestClient

from interlink.api.app import build_app
from interlink.connect.sources import adapter_class, parse_source
from interlink.connect.sync import write_specs
from interlink.testing import local_org

ADAPTER = Path(__file__).parents[1] / "connect" / "memory_adapter.py"
SOURCE = """\
type: python
adapter: memory:MemoryAdapter
writable: true
options: {seed: 40}
"""


def _relate(project: Path, object_name: str, field_name: str, **changes: str) -> None:
    path = project / "metadata" / "objects" / f"{object_name}.yaml"
    spec = yaml.safe_load(path.read_text())
    fdef = next(f for f in spec["fields"] if f["name"] == field_name)
    fdef.update(changes)
    fdef.pop("length", None)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))


@pytest.fixture
def org(tmp_path: Path) -> Iterator[Any]:
    project = tmp_path / "project"
    for folder in ("metadata/dataSources", "metadata/objects", "adapters"):
        (project / folder).mkdir(parents=True)
    shutil.copy(ADAPTER, project / "adapters" / "memory.py")
    (project / "metadata" / "dataSources" / "Warehouse.yaml").write_text(SOURCE)
    (project / "metadata" / "objects" / "Account.yaml").write_text(
        "fields:\n  - {name: Customer_Number__c, type: text, length: 40, externalId: true, unique: true}\n")
    source = parse_source("Warehouse", yaml.safe_load(SOURCE), "Warehouse.yaml")
    write_specs(project, source, adapter_class(source, project)(source).sync())  # type: ignore[call-arg]
    _relate(project, "Shipments__x", "Customer__c", type="indirectLookup", referenceTo="Account",
            referenceTargetField="Customer_Number__c", relationshipName="Customer__r",
            childRelationshipName="Shipments")
    _relate(project, "Parcels__x", "Shipment__c", type="externalLookup", referenceTo="Shipments__x",
            relationshipName="Shipment__r", childRelationshipName="Parcels")
    with local_org(tmp_path / "org", project_dir=project) as opened:
        opened.records.create(opened.admin_context(), "Account", [
            {"Name": f"Customer {n}", "Customer_Number__c": f"CUST-{n:04d}"} for n in range(1, 4)])
        yield opened


@pytest.fixture
def client(org: Any) -> Iterator[TestClient]:
    with TestClient(build_app(org), base_url="https://testserver") as logged_in:
        logged_in.csrf = login(logged_in)  # type: ignore[attr-defined]
        yield logged_in


def _adapter(org: Any) -> Any:
    return org.external.connection("Warehouse")


def _rows(page: str) -> list[str]:
    body = page.split('<table class="grid records">', 1)[1].split("</table>", 1)[0]
    return [html.unescape(m) for m in re.findall(r'<tr>\s*<td><a href="/console/r/[^"]+">([^<]*)</a>', body)]


def _shipment_id(org: Any, number: str) -> str:
    records = org.query.execute(f"SELECT Id FROM Shipments__x WHERE ExternalId = '{number}'",
                                org.admin_context()).records
    return str(records[0]["Id"])


def test_objects_index_marks_external_objects(client: TestClient) -> None:
    page = client.get("/console/objects")
    row = re.search(r'<a href="/console/o/Shipments__x">.*?</tr>', page.text, re.S)
    assert row and "External (Warehouse)" in row.group(0)


def test_list_view_filters_sorts_and_pages_at_the_source(client: TestClient, org: Any) -> None:
    page = client.get("/console/o/Shipments__x", params={"ff": "Pieces__c", "fo": "ge", "fv": "5",
                                                         "sort": "Weight__c", "dir": "desc", "size": "4"})
    assert page.status_code == 200, page.text
    sent = _adapter(org).requests[-1]
    assert sent.table == "Shipments" and sent.order_by[0].column == "Weight" and sent.order_by[0].descending
    assert sent.filter is not None and sent.top == 4
    assert _rows(page.text) == ["SH-0040", "SH-0034", "SH-0033", "SH-0027"]  # pieces = n % 7 >= 5
    second = client.get(html.unescape(re.search(r'rel="next" href="([^"]+)"', page.text).group(1)))  # type: ignore[union-attr]
    assert second.status_code == 200 and _rows(second.text) == ["SH-0026", "SH-0020", "SH-0019", "SH-0013"]
    assert _adapter(org).requests[-1].skip == 4


def test_a_failing_source_is_shown_clearly(client: TestClient, org: Any) -> None:
    _adapter(org).down = True
    page = client.get("/console/o/Shipments__x")
    assert page.status_code == 400
    assert "EXTERNAL_OBJECT_EXCEPTION" in page.text and "Warehouse" in page.text
    # a stored object's page with an external related list still renders; only that list reports the error
    account = org.query.execute("SELECT Id FROM Account WHERE Name = 'Customer 2'", org.admin_context()).records[0]
    detail = client.get(f"/console/r/{account['Id']}")
    assert detail.status_code == 200
    shipments = re.search(r'data-relationship="Shipments__r">.*?</section>', detail.text, re.S).group(0)  # type: ignore[union-attr]
    assert "EXTERNAL_OBJECT_EXCEPTION" in shipments


def test_unsupported_queries_on_external_objects_are_refused_in_the_workbench(client: TestClient) -> None:
    all_rows = client.get("/console/soql", params={"q": "SELECT ExternalId FROM Shipments__x", "all": "1"})
    assert all_rows.status_code == 400 and "EXTERNAL_OBJECT_UNSUPPORTED_EXCEPTION" in all_rows.text
    grid = client.get("/console/soql", params={"q": "SELECT ExternalId, Customer__r.Name FROM Shipments__x "
                                                    "WHERE Customer__c = 'CUST-0002' ORDER BY ExternalId LIMIT 2"})
    assert grid.status_code == 200 and "<th>Customer__r.Name</th>" in grid.text and "Customer 2" in grid.text


def test_stored_parent_lists_its_external_children(client: TestClient, org: Any) -> None:
    account = org.query.execute("SELECT Id FROM Account WHERE Name = 'Customer 2'", org.admin_context()).records[0]
    page = client.get(f"/console/r/{account['Id']}")
    assert page.status_code == 200
    shipments = re.search(r'data-relationship="Shipments__r">.*?</section>', page.text, re.S).group(0)  # type: ignore[union-attr]
    assert "External" in shipments and shipments.count('<a href="/console/r/') == 5 and ">5+<" in shipments
    # "View all" filters on the lookup's own key: the account's customer number, not its Id
    view_all = html.unescape(re.search(r'<a href="([^"]+)">View all</a>', shipments).group(1))  # type: ignore[union-attr]
    assert view_all == "/console/o/Shipments__x?ff=Customer__c&fo=eq&fv=CUST-0002"
    listed = client.get(view_all)
    assert len(_rows(listed.text)) == 8  # customers cycle (n % 5) + 1 over 40 shipments


def test_external_detail_links_parents_and_lists_external_children(client: TestClient, org: Any) -> None:
    shipment = _shipment_id(org, "SH-0001")
    page = client.get(f"/console/r/{shipment}")
    assert page.status_code == 200 and "<h1>SH-0001</h1>" in page.text
    account = org.query.execute("SELECT Id FROM Account WHERE Customer_Number__c = 'CUST-0002'",
                                org.admin_context()).records[0]["Id"]
    assert f'<a href="/console/r/{account}">Customer 2</a>' in page.text  # the indirect lookup, by name
    parcels = re.search(r'data-relationship="Parcels__r">.*?</section>', page.text, re.S).group(0)  # type: ignore[union-attr]
    assert "P-3" in parcels and "P-6" in parcels  # parcel n belongs to shipment (n % 3) + 1


def test_edit_and_delete_go_to_the_source(client: TestClient, org: Any) -> None:
    shipment = _shipment_id(org, "SH-0005")
    form = client.get(f"/console/r/{shipment}/edit")
    assert form.status_code == 200 and 'name="Notes__c"' in form.text
    saved = client.post(f"/console/r/{shipment}/edit", data={"csrf": client.csrf, "Notes__c": "expedite",  # type: ignore[attr-defined]
                                                               "Pieces__c": "5"}, follow_redirects=False)
    assert saved.status_code == 303, saved.text
    assert _adapter(org).rows["SH-0005"]["Notes"] == "expedite"
    assert str(_adapter(org).rows["SH-0005"]["Weight"]) == "1.25"  # fields the form did not post are left alone
    bad = client.post(f"/console/r/{shipment}/edit", data={"csrf": client.csrf, "Pieces__c": "many"})  # type: ignore[attr-defined]
    assert bad.status_code == 400 and re.search(r'class="formfield invalid"[^>]*data-field="Pieces__c"', bad.text)
    assert _adapter(org).rows["SH-0005"]["Pieces"] == 5
    deleted = client.post(f"/console/r/{shipment}/delete", data={"csrf": client.csrf},  # type: ignore[attr-defined]
                          follow_redirects=False)
    assert deleted.status_code == 303 and deleted.headers["location"] == "/console/o/Shipments__x?done=deleted"
    assert "SH-0005" not in _adapter(org).rows
